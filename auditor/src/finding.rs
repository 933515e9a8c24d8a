//! Findings: what the rules found, with the rule, its severity, who it concerns, the
//! entries that prove it and a one-line explanation a non-engineer understands.
//!
//! Explanations are French by default ([`Lang::Fr`]), English on request; instants in them
//! are Europe/Paris local time with the offset shown ([`crate::time_fmt::paris`]).

use std::fmt;

use serde::Serialize;
use time::OffsetDateTime;

use crate::time_fmt::paris;

/// The language of explanations and reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// French (default).
    #[default]
    Fr,
    /// English.
    En,
}

impl std::str::FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fr" => Ok(Lang::Fr),
            "en" => Ok(Lang::En),
            other => Err(format!("unknown language {other:?}: expected fr or en")),
        }
    }
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Reported as the charters require, not a breach (e.g. an emergency).
    Info,
    /// Minor.
    Low,
    /// A breach to follow up.
    Medium,
    /// A serious breach.
    High,
    /// Evidence at risk or access by someone who should have none.
    Critical,
}

impl Severity {
    /// The stable name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The name in a language.
    pub fn label(self, lang: Lang) -> &'static str {
        match (lang, self) {
            (Lang::En, s) => s.name(),
            (Lang::Fr, Severity::Info) => "information",
            (Lang::Fr, Severity::Low) => "faible",
            (Lang::Fr, Severity::Medium) => "moyenne",
            (Lang::Fr, Severity::High) => "élevée",
            (Lang::Fr, Severity::Critical) => "critique",
        }
    }
}

/// The rules, with their stable ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// A connection outside every window in force (and no emergency).
    OutsideWindow,
    /// The only window covering a connection was filed after it.
    WindowAfterFact,
    /// The connection cannot be tied to a person, or to a vendor.
    NotNominative,
    /// The person is not on the vendor's staff list in force.
    NotOnStaffList,
    /// The staff list in force is older than 12 months.
    StaffListStale,
    /// An account used after its holder's departure.
    AccountAfterDeparture,
    /// One account used by several persons, or concurrently from different addresses.
    SharedAccount,
    /// The target is not among the person's declared resources.
    UndeclaredTarget,
    /// Remote access without a possession factor.
    NoSecondFactor,
    /// A session with no end.
    SessionWithoutEnd,
    /// A session running past the window it started in.
    SessionOverrun,
    /// An intervention with no report.
    MissingReport,
    /// An off-hours intervention whose report was not filed the same day.
    LateReport,
    /// Source and collector clocks differ beyond the bound.
    ClockSkew,
    /// A gap or break in a chain.
    ChainBroken,
    /// A source silent for longer than expected.
    SilentSource,
    /// The ledger covers less than the 18 months of retention.
    RetentionShort,
    /// A connection covered by a declared emergency (reported, as the charters require).
    Emergency,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 18] = [
        Rule::OutsideWindow,
        Rule::WindowAfterFact,
        Rule::NotNominative,
        Rule::NotOnStaffList,
        Rule::StaffListStale,
        Rule::AccountAfterDeparture,
        Rule::SharedAccount,
        Rule::UndeclaredTarget,
        Rule::NoSecondFactor,
        Rule::SessionWithoutEnd,
        Rule::SessionOverrun,
        Rule::MissingReport,
        Rule::LateReport,
        Rule::ClockSkew,
        Rule::ChainBroken,
        Rule::SilentSource,
        Rule::RetentionShort,
        Rule::Emergency,
    ];

    /// The stable id.
    pub fn id(self) -> &'static str {
        match self {
            Rule::OutsideWindow => "outside_window",
            Rule::WindowAfterFact => "window_after_fact",
            Rule::NotNominative => "not_nominative",
            Rule::NotOnStaffList => "not_on_staff_list",
            Rule::StaffListStale => "staff_list_stale",
            Rule::AccountAfterDeparture => "account_after_departure",
            Rule::SharedAccount => "shared_account",
            Rule::UndeclaredTarget => "undeclared_target",
            Rule::NoSecondFactor => "no_second_factor",
            Rule::SessionWithoutEnd => "session_without_end",
            Rule::SessionOverrun => "session_overrun",
            Rule::MissingReport => "missing_report",
            Rule::LateReport => "late_report",
            Rule::ClockSkew => "clock_skew",
            Rule::ChainBroken => "chain_broken",
            Rule::SilentSource => "silent_source",
            Rule::RetentionShort => "retention_short",
            Rule::Emergency => "emergency",
        }
    }

    /// The severity of the rule's findings.
    pub fn severity(self) -> Severity {
        match self {
            Rule::AccountAfterDeparture | Rule::ChainBroken => Severity::Critical,
            Rule::OutsideWindow
            | Rule::NotNominative
            | Rule::NotOnStaffList
            | Rule::SharedAccount
            | Rule::NoSecondFactor
            | Rule::RetentionShort => Severity::High,
            Rule::WindowAfterFact
            | Rule::StaffListStale
            | Rule::UndeclaredTarget
            | Rule::SessionWithoutEnd
            | Rule::SessionOverrun
            | Rule::MissingReport
            | Rule::SilentSource => Severity::Medium,
            Rule::LateReport | Rule::ClockSkew => Severity::Low,
            Rule::Emergency => Severity::Info,
        }
    }

    /// A short title in a language.
    pub fn title(self, lang: Lang) -> &'static str {
        match lang {
            Lang::Fr => match self {
                Rule::OutsideWindow => "Connexion hors plage autorisée",
                Rule::WindowAfterFact => "Plage déclarée après la connexion",
                Rule::NotNominative => "Connexion non nominative",
                Rule::NotOnStaffList => "Personne absente de la liste du personnel",
                Rule::StaffListStale => "Liste du personnel de plus de 12 mois",
                Rule::AccountAfterDeparture => "Compte utilisé après un départ",
                Rule::SharedAccount => "Compte partagé",
                Rule::UndeclaredTarget => "Ressource non déclarée",
                Rule::NoSecondFactor => "Accès sans second facteur",
                Rule::SessionWithoutEnd => "Session sans fin",
                Rule::SessionOverrun => "Session dépassant sa plage",
                Rule::MissingReport => "Intervention sans rapport",
                Rule::LateReport => "Rapport d'intervention hors délai",
                Rule::ClockSkew => "Décalage d'horloge",
                Rule::ChainBroken => "Chaîne de preuve rompue",
                Rule::SilentSource => "Source silencieuse",
                Rule::RetentionShort => "Conservation inférieure à 18 mois",
                Rule::Emergency => "Intervention d'urgence",
            },
            Lang::En => match self {
                Rule::OutsideWindow => "Connection outside any window",
                Rule::WindowAfterFact => "Window filed after the connection",
                Rule::NotNominative => "Connection not nominative",
                Rule::NotOnStaffList => "Person not on the staff list",
                Rule::StaffListStale => "Staff list older than 12 months",
                Rule::AccountAfterDeparture => "Account used after a departure",
                Rule::SharedAccount => "Shared account",
                Rule::UndeclaredTarget => "Undeclared resource",
                Rule::NoSecondFactor => "Access without a second factor",
                Rule::SessionWithoutEnd => "Session without end",
                Rule::SessionOverrun => "Session past its window",
                Rule::MissingReport => "Intervention without report",
                Rule::LateReport => "Late intervention report",
                Rule::ClockSkew => "Clock skew",
                Rule::ChainBroken => "Chain of evidence broken",
                Rule::SilentSource => "Silent source",
                Rule::RetentionShort => "Retention shorter than 18 months",
                Rule::Emergency => "Emergency intervention",
            },
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One entry of the ledger, as evidence: which chain and which seq.
///
/// The label is shared (`Arc<str>`): one is made per event streamed.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct EntryRef {
    /// The label of the ledger source (its directory name).
    #[serde(serialize_with = "ser_label")]
    pub ledger: std::sync::Arc<str>,
    /// The entry's seq in that chain.
    pub seq: u64,
}

fn ser_label<S: serde::Serializer>(label: &std::sync::Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(label)
}

impl fmt::Display for EntryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.ledger, self.seq)
    }
}

/// The facts an explanation quotes; what is absent is not quoted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// The target resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The address connected from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// The other person or address (shared account).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
    /// The window concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_id: Option<String>,
    /// A second instant: departure, filing, window end, report filing, last event…
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_rfc3339")]
    pub when: Option<OffsetDateTime>,
    /// A number: seconds of skew or silence, count of events, days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    /// Free text from the verifier or a declaration (reason, problem).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A length of time for people: `3 j 4 h` / `3 days 4 h`, or `5 h 20 min`.
fn span(seconds: i64, lang: Lang) -> String {
    let (d, h, m) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    let days = match lang {
        Lang::Fr => "j",
        Lang::En => "days",
    };
    if d > 0 {
        format!("{d} {days} {h} h")
    } else {
        format!("{h} h {m} min")
    }
}

mod opt_rfc3339 {
    use serde::Serializer;
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&crate::time_fmt::rfc3339(*t)),
            None => s.serialize_none(),
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// Its severity.
    pub severity: Severity,
    /// The establishment.
    pub tenant: String,
    /// The vendor, when the finding concerns one.
    pub vendor: Option<String>,
    /// The person, when known.
    pub person: Option<String>,
    /// The account, when known.
    pub account: Option<String>,
    /// When it happened.
    #[serde(serialize_with = "ser_rfc3339")]
    pub at: OffsetDateTime,
    /// The entries that prove it.
    pub entries: Vec<EntryRef>,
    /// What the explanation quotes.
    pub facts: Facts,
}

fn ser_rfc3339<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::time_fmt::rfc3339(*t))
}

impl Finding {
    /// A finding of `rule` at `at`, with the rule's severity.
    pub fn new(rule: Rule, tenant: &str, at: OffsetDateTime) -> Self {
        Finding {
            rule,
            severity: rule.severity(),
            tenant: tenant.to_owned(),
            vendor: None,
            person: None,
            account: None,
            at,
            entries: Vec::new(),
            facts: Facts::default(),
        }
    }

    /// The one-line explanation, in `lang`.
    pub fn explain(&self, lang: Lang) -> String {
        let who = self
            .person
            .clone()
            .or_else(|| self.account.as_ref().map(|a| format!("compte {a}")))
            .unwrap_or_else(|| match lang {
                Lang::Fr => "une personne non identifiée".into(),
                Lang::En => "an unidentified person".into(),
            });
        let who = if lang == Lang::En {
            who.replace("compte ", "account ")
        } else {
            who
        };
        let vendor = self.vendor.as_deref().unwrap_or("?");
        // "bob@x (medimage)", or the person alone when the vendor is unknown.
        let subject = match &self.vendor {
            Some(v) => format!("{who} ({v})"),
            None => who.clone(),
        };
        let account_of = match &self.vendor {
            Some(v) => format!("{} ({v})", self.account.as_deref().unwrap_or("?")),
            None => self.account.clone().unwrap_or_else(|| "?".into()),
        };
        let at = paris(self.at);
        let f = &self.facts;
        let when = f.when.map(paris).unwrap_or_default();
        let target = f.target.as_deref().unwrap_or("?");
        let account = self.account.as_deref().unwrap_or("?");
        let window = f.window_id.as_deref().unwrap_or("?");
        let other = f.other.as_deref().unwrap_or("?");
        let amount = f.amount.unwrap_or(0);
        let note = f.note.as_deref().unwrap_or("");
        let addr = f.addr.as_deref().unwrap_or("?");
        // Where the 18 rolling months that end at the finding start (retention only).
        let since = if self.rule == Rule::RetentionShort {
            paris(self.at - crate::audit::RETENTION)
        } else {
            String::new()
        };
        match (lang, self.rule) {
            (Lang::Fr, Rule::OutsideWindow) => format!(
                "{subject} s'est connecté le {at} alors qu'aucune plage d'intervention autorisée n'était en vigueur."
            ),
            (Lang::En, Rule::OutsideWindow) => format!(
                "{subject} connected on {at} while no authorised maintenance window was in force."
            ),
            (Lang::Fr, Rule::WindowAfterFact) => format!(
                "La connexion de {subject} le {at} n'est couverte que par la plage {window}, déclarée après coup le {when}."
            ),
            (Lang::En, Rule::WindowAfterFact) => format!(
                "The connection of {subject} on {at} is covered only by window {window}, filed after the fact on {when}."
            ),
            (Lang::Fr, Rule::NotNominative) => format!(
                "Une connexion le {at} (compte {account}) ne permet pas de savoir qui s'est connecté ni pour quel prestataire."
            ),
            (Lang::En, Rule::NotNominative) => format!(
                "A connection on {at} (account {account}) does not say who connected or for which vendor."
            ),
            (Lang::Fr, Rule::NotOnStaffList) => format!(
                "{who} s'est connecté le {at} pour {vendor} sans figurer sur la liste du personnel déclarée en vigueur."
            ),
            (Lang::En, Rule::NotOnStaffList) => format!(
                "{who} connected on {at} for {vendor} without being on the staff list in force."
            ),
            (Lang::Fr, Rule::StaffListStale) => format!(
                "La liste du personnel de {vendor} en vigueur le {at} date du {when} ({amount} jours) : elle doit être renouvelée tous les 12 mois."
            ),
            (Lang::En, Rule::StaffListStale) => format!(
                "The staff list of {vendor} in force on {at} dates from {when} ({amount} days): it must be renewed every 12 months."
            ),
            (Lang::Fr, Rule::AccountAfterDeparture) => format!(
                "Le compte {account} de {subject} a servi le {at}, après son départ déclaré au {when}."
            ),
            (Lang::En, Rule::AccountAfterDeparture) => format!(
                "Account {account} of {subject} was used on {at}, after their declared departure on {when}."
            ),
            (Lang::Fr, Rule::SharedAccount) if note == "concurrent" => format!(
                "Le compte {account_of} est partagé : ouvert le {at} par {who} depuis {addr} alors qu'une autre session du même compte était ouverte depuis {other}."
            ),
            (Lang::En, Rule::SharedAccount) if note == "concurrent" => format!(
                "Account {account_of} is shared: opened on {at} by {who} from {addr} while another session of the same account was open from {other}."
            ),
            (Lang::Fr, Rule::SharedAccount) => format!(
                "Le compte {account_of} est partagé : utilisé le {at} par {who} alors qu'il sert aussi à {other}."
            ),
            (Lang::En, Rule::SharedAccount) => format!(
                "Account {account_of} is shared: used on {at} by {who} while it is also used by {other}."
            ),
            (Lang::Fr, Rule::UndeclaredTarget) => format!(
                "{subject} a accédé le {at} à {target}, qui ne fait pas partie de ses ressources déclarées."
            ),
            (Lang::En, Rule::UndeclaredTarget) => format!(
                "{subject} reached {target} on {at}, which is not among their declared resources."
            ),
            (Lang::Fr, Rule::NoSecondFactor) => format!(
                "{subject} s'est connecté à distance le {at} sans second facteur d'authentification."
            ),
            (Lang::En, Rule::NoSecondFactor) => format!(
                "{subject} connected remotely on {at} without a second authentication factor."
            ),
            (Lang::Fr, Rule::SessionWithoutEnd) => {
                format!("La session ouverte par {subject} le {at} n'a pas de fin enregistrée.")
            }
            (Lang::En, Rule::SessionWithoutEnd) => {
                format!("The session opened by {subject} on {at} has no recorded end.")
            }
            (Lang::Fr, Rule::SessionOverrun) => format!(
                "La session de {subject} ouverte le {at} a duré au-delà de la fin de sa plage {window} ({when})."
            ),
            (Lang::En, Rule::SessionOverrun) => format!(
                "The session of {subject} opened on {at} ran past the end of its window {window} ({when})."
            ),
            (Lang::Fr, Rule::MissingReport) => format!(
                "L'intervention de {subject} le {at} n'a fait l'objet d'aucun rapport d'intervention."
            ),
            (Lang::En, Rule::MissingReport) => {
                format!("The intervention of {subject} on {at} has no intervention report.")
            }
            (Lang::Fr, Rule::LateReport) => format!(
                "L'intervention hors heures ouvrées de {subject} le {at} a été rapportée le {when}, pas le jour même."
            ),
            (Lang::En, Rule::LateReport) => format!(
                "The off-hours intervention of {subject} on {at} was reported on {when}, not the same day."
            ),
            (Lang::Fr, Rule::ClockSkew) => format!(
                "L'horloge de la source {note} s'écarte de {amount} s de celle du collecteur (le {at})."
            ),
            (Lang::En, Rule::ClockSkew) => format!(
                "The clock of source {note} is {amount} s away from the collector's (on {at})."
            ),
            (Lang::Fr, Rule::ChainBroken) => {
                format!("Le journal {other} n'est pas intact : {note}.")
            }
            (Lang::En, Rule::ChainBroken) => format!("Journal {other} is not intact: {note}."),
            (Lang::Fr, Rule::SilentSource) => format!(
                "La source {note} n'a rien envoyé pendant {}, du {when} au {at}.",
                span(amount, lang)
            ),
            (Lang::En, Rule::SilentSource) => format!(
                "Source {note} sent nothing for {}, from {when} to {at}.",
                span(amount, lang)
            ),
            // Information: the journal starts there (its first entry), nothing was cut.
            (Lang::Fr, Rule::RetentionShort) if self.severity == Severity::Info => format!(
                "Le journal {other} commence le {when}, à sa première entrée : il ne couvre pas encore les 18 mois glissants à conserver (depuis le {since}), et rien n'en a été retiré."
            ),
            (Lang::En, Rule::RetentionShort) if self.severity == Severity::Info => format!(
                "The {other} journal starts on {when}, with its first entry: it does not yet hold the 18 rolling months to keep (since {since}), and nothing was removed from it."
            ),
            (Lang::Fr, Rule::RetentionShort) => format!(
                "Le journal {other} ne remonte qu'au {when} : 18 mois glissants doivent être conservés, soit depuis le {since}."
            ),
            (Lang::En, Rule::RetentionShort) => format!(
                "The {other} journal goes back only to {when}: 18 rolling months must be kept, that is since {since}."
            ),
            (Lang::Fr, Rule::Emergency) => format!(
                "{subject} s'est connecté le {at} au titre d'une urgence déclarée ({note})."
            ),
            (Lang::En, Rule::Emergency) => {
                format!("{subject} connected on {at} under a declared emergency ({note}).")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn explanations_leave_out_what_is_unknown() {
        let mut f = Finding::new(Rule::NoSecondFactor, "chu", datetime!(2026-03-03 7:00 UTC));
        f.account = Some("svc-vpn".into());
        assert_eq!(
            f.explain(Lang::Fr),
            "compte svc-vpn s'est connecté à distance le 2026-03-03 08:00:00 +01:00 sans second facteur d'authentification."
        );
        assert_eq!(
            f.explain(Lang::En),
            "account svc-vpn connected remotely on 2026-03-03 08:00:00 +01:00 without a second authentication factor."
        );
    }

    #[test]
    fn concurrent_sessions_and_silences_read_well() {
        let mut f = Finding::new(Rule::SharedAccount, "chu", datetime!(2026-07-10 20:20 UTC));
        f.vendor = Some("acme".into());
        f.person = Some("alice".into());
        f.account = Some("alice.m".into());
        f.facts.addr = Some("10.0.0.1".into());
        f.facts.other = Some("10.9.9.9".into());
        f.facts.note = Some("concurrent".into());
        assert_eq!(
            f.explain(Lang::En),
            "Account alice.m (acme) is shared: opened on 2026-07-10 22:20:00 +02:00 by alice from 10.0.0.1 while another session of the same account was open from 10.9.9.9."
        );
        let mut s = Finding::new(Rule::SilentSource, "chu", datetime!(2026-03-31 22:00 UTC));
        s.facts.note = Some("vpn".into());
        s.facts.when = Some(datetime!(2026-03-03 7:30 UTC));
        s.facts.amount = Some(28 * 86_400 + 3 * 3600);
        assert!(s.explain(Lang::Fr).contains("pendant 28 j 3 h,"));
        assert_eq!(Rule::ALL.len(), 18);
        assert!(Rule::ALL.iter().all(|r| !r.title(Lang::Fr).is_empty()));
    }

    /// A journal younger than the retention is told apart from one that lost its start.
    #[test]
    fn a_short_retention_says_whether_anything_was_removed() {
        let mut f = Finding::new(Rule::RetentionShort, "chu", datetime!(2026-04-01 0:00 +2));
        f.facts.other = Some("events".into());
        f.facts.when = Some(datetime!(2026-03-01 9:00 +1));
        assert_eq!(
            f.explain(Lang::En),
            "The events journal goes back only to 2026-03-01 09:00:00 +01:00: 18 rolling months must be kept, that is since 2024-09-30 00:00:00 +02:00."
        );
        f.severity = Severity::Info;
        assert_eq!(
            f.explain(Lang::En),
            "The events journal starts on 2026-03-01 09:00:00 +01:00, with its first entry: it does not yet hold the 18 rolling months to keep (since 2024-09-30 00:00:00 +02:00), and nothing was removed from it."
        );
        assert!(f.explain(Lang::Fr).contains("rien n'en a été retiré"));
    }
}
