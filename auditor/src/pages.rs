//! The plain HTML pages the auditor serves, per tenant: its vendors, recent sessions and
//! open findings (`/t/{tenant}/`), and the timeline of sessions against windows
//! (`/t/{tenant}/timeline`, the SVG of the HTML report).
//!
//! French by default, English with `?lang=en`; instants in Europe/Paris local time with
//! the offset shown. No script, no external resource: inline CSS and SVG only.

use std::fmt::Write as _;

use time::OffsetDateTime;

use crate::audit::Audit;
use crate::finding::{Lang, Severity};
use crate::http::percent_encode;
use crate::report::esc;
use crate::time_fmt::{paris, rfc3339};

/// Recent sessions shown on the tenant page.
pub const RECENT_SESSIONS: usize = 20;

struct Labels {
    lang: &'static str,
    establishment: &'static str,
    period: &'static str,
    generated: &'static str,
    vendors: &'static str,
    vendor: &'static str,
    name: &'static str,
    staff: &'static str,
    staff_filed: &'static str,
    windows: &'static str,
    sessions: &'static str,
    recent: &'static str,
    start: &'static str,
    end: &'static str,
    person: &'static str,
    account: &'static str,
    target: &'static str,
    window: &'static str,
    open_findings: &'static str,
    when: &'static str,
    severity: &'static str,
    rule: &'static str,
    explanation: &'static str,
    none: &'static str,
    no_sessions: &'static str,
    no_vendors: &'static str,
    in_progress: &'static str,
    emergency: &'static str,
    timeline: &'static str,
    back: &'static str,
    other_lang: &'static str,
    other_code: &'static str,
    error: &'static str,
    forbidden: &'static str,
    unauthorized: &'static str,
}

const FR: Labels = Labels {
    lang: "fr",
    establishment: "Établissement",
    period: "Période",
    generated: "Page générée le",
    vendors: "Prestataires",
    vendor: "Prestataire",
    name: "Raison sociale",
    staff: "Personnes déclarées",
    staff_filed: "Liste du personnel déclarée le",
    windows: "Plages accordées",
    sessions: "Sessions sur la période",
    recent: "Sessions récentes",
    start: "Début",
    end: "Fin",
    person: "Personne",
    account: "Compte",
    target: "Cible",
    window: "Plage",
    open_findings: "Constats ouverts",
    when: "Date",
    severity: "Gravité",
    rule: "Règle",
    explanation: "Explication",
    none: "Aucun constat ouvert sur la période.",
    no_sessions: "Aucune session sur la période.",
    no_vendors: "Aucun prestataire déclaré.",
    in_progress: "en cours",
    emergency: "urgence",
    timeline: "Chronologie",
    back: "Retour à l'établissement",
    other_lang: "English",
    other_code: "en",
    error: "Erreur",
    forbidden: "Accès refusé : vous n'avez pas le droit de consulter cette page.",
    unauthorized: "Authentification requise.",
};

const EN: Labels = Labels {
    lang: "en",
    establishment: "Establishment",
    period: "Period",
    generated: "Page generated on",
    vendors: "Vendors",
    vendor: "Vendor",
    name: "Legal name",
    staff: "Declared persons",
    staff_filed: "Staff list declared on",
    windows: "Windows granted",
    sessions: "Sessions in the period",
    recent: "Recent sessions",
    start: "Start",
    end: "End",
    person: "Person",
    account: "Account",
    target: "Target",
    window: "Window",
    open_findings: "Open findings",
    when: "When",
    severity: "Severity",
    rule: "Rule",
    explanation: "Explanation",
    none: "No open finding in the period.",
    no_sessions: "No session in the period.",
    no_vendors: "No vendor declared.",
    in_progress: "in progress",
    emergency: "emergency",
    timeline: "Timeline",
    back: "Back to the establishment",
    other_lang: "Français",
    other_code: "fr",
    error: "Error",
    forbidden: "Access denied: you may not see this page.",
    unauthorized: "Authentication required.",
};

fn labels(lang: Lang) -> &'static Labels {
    match lang {
        Lang::Fr => &FR,
        Lang::En => &EN,
    }
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:80em;\
padding:0 1em;color:#111}h1{font-size:1.4em}h2{font-size:1.15em;border-bottom:1px solid #999;\
margin-top:1.6em}table{border-collapse:collapse;width:100%;font-size:.9em}\
th,td{border:1px solid #bbb;padding:3px 6px;text-align:left;vertical-align:top}th{background:#eee}\
.sev-critical{background:#f8c9c9}.sev-high{background:#fde0c8}.sev-medium{background:#fff3c4}\
.sev-low{background:#eef5ff}.sev-info{background:#f4f4f4}nav a{margin-right:1.2em}\
#findings td:first-child,#sessions td{white-space:nowrap}.meta{color:#444}.count{font-size:1.1em;background:#333;color:#fff;border-radius:1em;\
padding:0 .6em;margin-left:.3em}svg{width:100%;height:auto}";

fn head(h: &mut String, l: &Labels, title: &str) {
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{}</title>\
         <style>{CSS}</style></head><body>\n",
        l.lang,
        esc(title)
    );
}

/// The query keeping the page's period and the language.
fn query(audit: &Audit, code: &str) -> String {
    format!(
        "?from={}&amp;to={}&amp;lang={code}",
        percent_encode(&rfc3339(audit.config.from)),
        percent_encode(&rfc3339(audit.config.to))
    )
}

fn header(h: &mut String, audit: &Audit, l: &Labels, now: OffsetDateTime) {
    let _ = writeln!(
        h,
        "<p class=\"meta\">{} : <span id=\"period\">{} → {}</span> · {} {}</p>",
        l.period,
        esc(&paris(audit.config.from)),
        esc(&paris(audit.config.to)),
        l.generated,
        esc(&paris(now))
    );
}

/// The tenant page: vendors, recent sessions and open findings of the period.
pub fn tenant_page(audit: &Audit, tenant: &str, lang: Lang, now: OffsetDateTime) -> String {
    let l = labels(lang);
    let mut h = String::new();
    head(&mut h, l, &format!("{} {tenant}", l.establishment));
    let _ = writeln!(h, "<h1>{} {}</h1>", l.establishment, esc(tenant));
    let _ = writeln!(
        h,
        "<nav><a id=\"timeline-link\" href=\"timeline{}\">{}</a><a href=\"{}\" hreflang=\"{}\">{}</a></nav>",
        query(audit, l.lang),
        l.timeline,
        query(audit, l.other_code),
        l.other_code,
        l.other_lang
    );
    header(&mut h, audit, l, now);

    // Vendors, with what is declared in force at the end of the period.
    let _ = writeln!(h, "<h2>{}</h2>", l.vendors);
    let vendors: Vec<_> = audit
        .declarations
        .vendors()
        .filter(|(t, _, _)| *t == tenant)
        .collect();
    if vendors.is_empty() {
        let _ = writeln!(h, "<p>{}</p>", l.no_vendors);
    } else {
        let _ = write!(
            h,
            "<table id=\"vendors\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            l.vendor, l.name, l.staff, l.staff_filed, l.windows, l.sessions
        );
        for (_, vendor, decls) in vendors {
            let staff = decls.staff_list_at(audit.config.to);
            let sessions = audit
                .sessions
                .iter()
                .filter(|s| s.vendor.as_deref() == Some(vendor))
                .count();
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{sessions}</td></tr>",
                esc(vendor),
                esc(decls.registered.as_ref().map_or("", |r| r.value.as_str())),
                staff.map_or(0, |s| s.value.len()),
                staff.map_or_else(String::new, |s| esc(&paris(s.filed_at))),
                decls.windows.len()
            );
        }
        h.push_str("</table>\n");
    }

    // Open findings: everything above information.
    let open: Vec<_> = audit
        .findings
        .iter()
        .filter(|f| f.severity > Severity::Info)
        .collect();
    let _ = writeln!(
        h,
        "<h2>{} <span class=\"count\" id=\"open-findings\">{}</span></h2>",
        l.open_findings,
        open.len()
    );
    if open.is_empty() {
        let _ = writeln!(h, "<p>{}</p>", l.none);
    } else {
        let _ = write!(
            h,
            "<table id=\"findings\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            l.when, l.severity, l.rule, l.vendor, l.person, l.explanation
        );
        let mut open = open;
        open.sort_by_key(|f| (std::cmp::Reverse(f.severity), f.at));
        for f in open {
            let _ = writeln!(
                h,
                "<tr class=\"sev-{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                f.severity.name(),
                esc(&paris(f.at)),
                f.severity.label(lang),
                esc(f.rule.title(lang)),
                esc(f.vendor.as_deref().unwrap_or("")),
                esc(f.person.as_deref().unwrap_or("")),
                esc(&f.explain(lang))
            );
        }
        h.push_str("</table>\n");
    }

    // Recent sessions, latest first.
    let _ = writeln!(h, "<h2>{}</h2>", l.recent);
    let mut sessions: Vec<_> = audit.sessions.iter().collect();
    sessions.sort_by_key(|s| std::cmp::Reverse(s.start));
    if sessions.is_empty() {
        let _ = writeln!(h, "<p>{}</p>", l.no_sessions);
    } else {
        let _ = write!(
            h,
            "<table id=\"sessions\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            l.start, l.end, l.vendor, l.person, l.account, l.target, l.window
        );
        for s in sessions.into_iter().take(RECENT_SESSIONS) {
            let window = match (&s.window, s.emergency) {
                (Some(w), _) => esc(w),
                (None, true) => l.emergency.to_owned(),
                (None, false) => "—".to_owned(),
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{window}</td></tr>",
                esc(&paris(s.start)),
                s.end
                    .map_or_else(|| l.in_progress.to_owned(), |e| esc(&paris(e))),
                esc(s.vendor.as_deref().unwrap_or("")),
                esc(s.person.as_deref().unwrap_or("")),
                esc(s.account.as_deref().unwrap_or("")),
                esc(s.target.as_deref().unwrap_or(""))
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// The timeline page: the report's SVG timeline of the period.
pub fn timeline_page(audit: &Audit, tenant: &str, lang: Lang, now: OffsetDateTime) -> String {
    let l = labels(lang);
    let mut h = String::new();
    head(&mut h, l, &format!("{} — {tenant}", l.timeline));
    let _ = writeln!(h, "<h1>{} — {}</h1>", l.timeline, esc(tenant));
    let _ = writeln!(
        h,
        "<nav><a href=\"./{}\">{}</a><a href=\"{}\" hreflang=\"{}\">{}</a></nav>",
        query(audit, l.lang),
        l.back,
        query(audit, l.other_code),
        l.other_code,
        l.other_lang
    );
    header(&mut h, audit, l, now);
    h.push_str(&crate::report::timeline_html(audit, lang));
    h.push_str("</body></html>\n");
    h
}

/// The page of a refusal or an error.
pub fn error_page(status: u16, message: &str, lang: Lang) -> String {
    let l = labels(lang);
    // A bare refusal says it in the page's language; a refusal with a reason (a
    // certificate that is no user's) gives the reason, already in that language.
    let text = match (status, message) {
        (401, _) => l.unauthorized.to_owned(),
        (403, "forbidden") => l.forbidden.to_owned(),
        (403, reason) => {
            let mut chars = reason.chars();
            let first = chars.next().map(char::to_uppercase);
            esc(&format!(
                "{}{}.",
                first.into_iter().flatten().collect::<String>(),
                chars.as_str()
            ))
        }
        _ => esc(message),
    };
    let mut h = String::new();
    head(&mut h, l, &format!("{status} — {}", l.error));
    let _ = writeln!(
        h,
        "<h1 id=\"error\">{status} — {}</h1>\n<p>{text}</p>\n</body></html>",
        l.error
    );
    h
}
