//! Conformance reports: a summary (connections, persons, findings by rule and severity),
//! the findings with their explanations, and a timeline (sessions against windows, per
//! person).
//!
//! - **JSON**: `{ "summary": {…}, "findings": [{…, "explanation": "…"}], "sessions": […] }`;
//!   instants RFC 3339 in Paris local time.
//! - **CSV**: one finding per line: `rule,severity,tenant,vendor,person,account,at,entries,explanation`
//!   (`entries` is `ledger#seq` separated by spaces).
//! - **HTML**: one self-contained file (inline CSS and SVG, no script, no external
//!   resource) laid out for A4 landscape printing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

use proto::model::Schedule;
use serde::Serialize;
use time::OffsetDateTime;

use crate::audit::Audit;
use crate::error::AuditError;
use crate::finding::{Finding, Lang, Severity};
use crate::rules::SessionRecord;
use crate::time_fmt::{paris, rfc3339};

/// The output format of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// CSV of the findings.
    Csv,
    /// Self-contained HTML.
    Html,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "html" => Ok(Format::Html),
            other => Err(format!(
                "unknown format {other:?}: expected json, csv or html"
            )),
        }
    }
}

/// The summary of a report.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The establishment.
    pub tenant: Option<String>,
    /// The vendor, if the report is for one.
    pub vendor: Option<String>,
    /// Start of the period.
    pub from: String,
    /// End of the period (excluded).
    pub to: String,
    /// When the report was made.
    pub generated_at: String,
    /// Connections judged.
    pub connections: u64,
    /// Distinct persons.
    pub persons: u64,
    /// Events read.
    pub events: u64,
    /// Findings per rule id.
    pub by_rule: BTreeMap<&'static str, u64>,
    /// Findings per severity.
    pub by_severity: BTreeMap<&'static str, u64>,
}

/// Builds the summary of an audit.
pub fn summary(audit: &Audit, generated_at: OffsetDateTime) -> Summary {
    let mut by_rule = BTreeMap::new();
    let mut by_severity = BTreeMap::new();
    for f in &audit.findings {
        *by_rule.entry(f.rule.id()).or_insert(0) += 1;
        *by_severity.entry(f.severity.name()).or_insert(0) += 1;
    }
    Summary {
        tenant: audit.config.tenant.clone(),
        vendor: audit.config.vendor.clone(),
        from: rfc3339(audit.config.from),
        to: rfc3339(audit.config.to),
        generated_at: rfc3339(generated_at),
        connections: audit.stats.connections,
        persons: audit.stats.persons,
        events: audit.stats.events,
        by_rule,
        by_severity,
    }
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    #[serde(flatten)]
    finding: &'a Finding,
    title: &'static str,
    explanation: String,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    summary: Summary,
    findings: Vec<JsonFinding<'a>>,
    sessions: &'a [SessionRecord],
}

/// Writes the report.
///
/// # Errors
/// [`AuditError::Output`] when writing fails.
pub fn write(
    audit: &Audit,
    format: Format,
    lang: Lang,
    generated_at: OffsetDateTime,
    out: &mut impl Write,
) -> Result<(), AuditError> {
    match format {
        Format::Json => {
            let report = JsonReport {
                summary: summary(audit, generated_at),
                findings: audit
                    .findings
                    .iter()
                    .map(|f| JsonFinding {
                        finding: f,
                        title: f.rule.title(lang),
                        explanation: f.explain(lang),
                    })
                    .collect(),
                sessions: &audit.sessions,
            };
            serde_json::to_writer_pretty(&mut *out, &report)
                .map_err(|e| AuditError::Output(e.into()))?;
            writeln!(out).map_err(AuditError::Output)
        }
        Format::Csv => write_csv(audit, lang, out).map_err(AuditError::Output),
        Format::Html => {
            let html = html(audit, lang, generated_at);
            out.write_all(html.as_bytes()).map_err(AuditError::Output)
        }
    }
}

/// Quotes a CSV field when it needs it.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn write_csv(audit: &Audit, lang: Lang, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "rule,severity,tenant,vendor,person,account,at,entries,explanation"
    )?;
    for f in &audit.findings {
        let entries: Vec<String> = f.entries.iter().map(ToString::to_string).collect();
        let fields = [
            f.rule.id().to_owned(),
            f.severity.name().to_owned(),
            f.tenant.clone(),
            f.vendor.clone().unwrap_or_default(),
            f.person.clone().unwrap_or_default(),
            f.account.clone().unwrap_or_default(),
            rfc3339(f.at),
            entries.join(" "),
            f.explain(lang),
        ];
        let line: Vec<String> = fields.iter().map(|s| csv_field(s)).collect();
        writeln!(out, "{}", line.join(","))?;
    }
    Ok(())
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

struct Labels {
    title: &'static str,
    period: &'static str,
    tenant: &'static str,
    vendor: &'static str,
    all: &'static str,
    generated: &'static str,
    summary: &'static str,
    connections: &'static str,
    persons: &'static str,
    events: &'static str,
    by_rule: &'static str,
    rule: &'static str,
    severity: &'static str,
    count: &'static str,
    findings: &'static str,
    none: &'static str,
    when: &'static str,
    person: &'static str,
    account: &'static str,
    explanation: &'static str,
    evidence: &'static str,
    timeline: &'static str,
    legend: &'static str,
    truncated: &'static str,
}

const FR: Labels = Labels {
    title: "Rapport de conformité des accès distants",
    period: "Période",
    tenant: "Établissement",
    vendor: "Prestataire",
    all: "tous",
    generated: "Établi le",
    summary: "Synthèse",
    connections: "Connexions",
    persons: "Personnes",
    events: "Événements lus",
    by_rule: "Constats par règle",
    rule: "Règle",
    severity: "Gravité",
    count: "Nombre",
    findings: "Constats",
    none: "Aucun constat.",
    when: "Date",
    person: "Personne",
    account: "Compte",
    explanation: "Explication",
    evidence: "Preuves (journal#seq)",
    timeline: "Chronologie : sessions et plages autorisées, par personne",
    legend: "vert : plage autorisée · bleu : session conforme · rouge : session avec constat",
    truncated: "personnes non représentées (limite de lisibilité)",
};

const EN: Labels = Labels {
    title: "Remote access conformance report",
    period: "Period",
    tenant: "Establishment",
    vendor: "Vendor",
    all: "all",
    generated: "Generated on",
    summary: "Summary",
    connections: "Connections",
    persons: "Persons",
    events: "Events read",
    by_rule: "Findings by rule",
    rule: "Rule",
    severity: "Severity",
    count: "Count",
    findings: "Findings",
    none: "No finding.",
    when: "Date",
    person: "Person",
    account: "Account",
    explanation: "Explanation",
    evidence: "Evidence (journal#seq)",
    timeline: "Timeline: sessions and authorised windows, per person",
    legend: "green: authorised window · blue: conforming session · red: session with a finding",
    truncated: "persons not drawn (readability limit)",
};

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#111}\
h1{font-size:1.4em}h2{font-size:1.15em;border-bottom:1px solid #999;margin-top:1.5em}\
table{border-collapse:collapse;width:100%;font-size:.85em}th,td{border:1px solid #bbb;padding:3px 5px;text-align:left;vertical-align:top}\
th{background:#eee}tr{page-break-inside:avoid}.sev-critical{background:#f8c9c9}.sev-high{background:#fde0c8}\
.sev-medium{background:#fff3c4}.sev-low{background:#eef5ff}.sev-info{background:#f4f4f4}\
.meta td:first-child{font-weight:bold;width:12em}svg{width:100%;height:auto}\
@page{size:A4 landscape;margin:12mm}@media print{body{margin:0}h2{page-break-after:avoid}.timeline{page-break-inside:avoid}}";

fn html(audit: &Audit, lang: Lang, generated_at: OffsetDateTime) -> String {
    let l = match lang {
        Lang::Fr => &FR,
        Lang::En => &EN,
    };
    let s = summary(audit, generated_at);
    let mut h = String::new();
    let code = match lang {
        Lang::Fr => "fr",
        Lang::En => "en",
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\"><title>{}</title><style>{CSS}</style></head><body>\n<h1>{}</h1>\n",
        esc(l.title),
        esc(l.title)
    );
    let _ = write!(
        h,
        "<table class=\"meta\"><tr><td>{}</td><td>{}</td></tr><tr><td>{}</td><td>{}</td></tr>\
         <tr><td>{}</td><td>{} → {}</td></tr><tr><td>{}</td><td>{}</td></tr></table>",
        l.tenant,
        esc(s.tenant.as_deref().unwrap_or(l.all)),
        l.vendor,
        esc(s.vendor.as_deref().unwrap_or(l.all)),
        l.period,
        esc(&paris(audit.config.from)),
        esc(&paris(audit.config.to)),
        l.generated,
        esc(&paris(generated_at))
    );
    let _ = write!(
        h,
        "<h2>{}</h2><table class=\"meta\"><tr><td>{}</td><td>{}</td></tr><tr><td>{}</td><td>{}</td></tr><tr><td>{}</td><td>{}</td></tr></table>",
        l.summary, l.connections, s.connections, l.persons, s.persons, l.events, s.events
    );
    let _ = write!(
        h,
        "<h3>{}</h3><table><tr><th>{}</th><th>{}</th><th>{}</th></tr>",
        l.by_rule, l.rule, l.severity, l.count
    );
    // A row per rule and severity found, as the findings say: a rule's finding may stand
    // below the rule's usual severity (a journal younger than the retention is information
    // only, not a gap in it).
    let mut rows = BTreeMap::new();
    for f in &audit.findings {
        *rows
            .entry((std::cmp::Reverse(f.severity), f.rule))
            .or_insert(0u64) += 1;
    }
    for ((std::cmp::Reverse(sev), rule), n) in rows {
        let _ = write!(
            h,
            "<tr class=\"sev-{}\"><td>{} <small>({})</small></td><td>{}</td><td>{n}</td></tr>",
            sev.name(),
            esc(rule.title(lang)),
            rule.id(),
            sev.label(lang)
        );
    }
    h.push_str("</table>\n");
    let _ = writeln!(h, "<h2>{}</h2>", l.timeline);
    h.push_str(&timeline_svg(audit, l));
    let _ = writeln!(h, "<h2>{}</h2>", l.findings);
    if audit.findings.is_empty() {
        let _ = write!(h, "<p>{}</p>", l.none);
    } else {
        let _ = write!(
            h,
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            l.when, l.severity, l.rule, l.vendor, l.person, l.account, l.explanation, l.evidence
        );
        for f in &audit.findings {
            let entries: Vec<String> = f.entries.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                h,
                "<tr class=\"sev-{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                f.severity.name(),
                esc(&paris(f.at)),
                f.severity.label(lang),
                esc(f.rule.title(lang)),
                esc(f.vendor.as_deref().unwrap_or("")),
                esc(f.person.as_deref().unwrap_or("")),
                esc(f.account.as_deref().unwrap_or("")),
                esc(&f.explain(lang)),
                esc(&entries.join(" "))
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body></html>\n");
    h
}

const MAX_ROWS: usize = 60;

/// The report's timeline alone (an inline SVG with its legend, in a `div`), for pages.
pub fn timeline_html(audit: &Audit, lang: Lang) -> String {
    let l = match lang {
        Lang::Fr => &FR,
        Lang::En => &EN,
    };
    timeline_svg(audit, l)
}

fn timeline_svg(audit: &Audit, l: &Labels) -> String {
    let (from, to) = (audit.config.from, audit.config.to);
    let span = (to - from).as_seconds_f64().max(1.0);
    let mut persons: Vec<(String, String, String)> = audit
        .sessions
        .iter()
        .filter_map(|s| Some((s.tenant.clone(), s.vendor.clone()?, s.person.clone()?)))
        .collect();
    persons.sort();
    persons.dedup();
    let dropped = persons.len().saturating_sub(MAX_ROWS);
    persons.truncate(MAX_ROWS);
    let (left, width, row) = (260.0, 900.0, 22.0);
    let height = 30.0 + row * persons.len() as f64;
    let x = |t: OffsetDateTime| left + ((t - from).as_seconds_f64() / span).clamp(0.0, 1.0) * width;
    let mut svg = String::new();
    // On the right, room for half of the last day's label, centred on the period's end.
    let _ = write!(
        svg,
        "<div class=\"timeline\"><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {height}\" role=\"img\" font-size=\"11\">",
        left + width + 24.0
    );
    // Day ticks (at most ~40).
    let days = ((to - from).whole_days().max(1)) as usize;
    let step = days.div_ceil(40).max(1);
    let mut d = 0;
    while d <= days {
        let t = from + time::Duration::days(d as i64);
        let xx = x(t);
        let date = crate::time_fmt::paris_date(t);
        let _ = write!(
            svg,
            "<line x1=\"{xx:.1}\" y1=\"14\" x2=\"{xx:.1}\" y2=\"{height}\" stroke=\"#ddd\"/><text x=\"{xx:.1}\" y=\"11\" text-anchor=\"middle\" fill=\"#555\">{:02}/{:02}</text>",
            date.day(),
            u8::from(date.month())
        );
        d += step;
    }
    let flagged: std::collections::HashSet<&crate::finding::EntryRef> = audit
        .findings
        .iter()
        .filter(|f| f.severity > Severity::Info)
        .filter_map(|f| f.entries.first())
        .collect();
    for (i, (tenant, vendor, person)) in persons.iter().enumerate() {
        let y = 18.0 + row * i as f64;
        let _ = write!(
            svg,
            "<text x=\"4\" y=\"{:.1}\">{}</text>",
            y + 14.0,
            esc(&format!("{person} ({vendor})"))
        );
        if let Some(vd) = audit.declarations.vendor(tenant, vendor) {
            let mut drawn = 0;
            for w in &vd.windows {
                if !w.applies_to(Some(person), None) {
                    continue;
                }
                let occs: Vec<(OffsetDateTime, OffsetDateTime)> =
                    match (&w.grant.value.schedule, &w.recurrence) {
                        (Schedule::OneOff { starts_at, ends_at }, _) => {
                            vec![(*starts_at, *ends_at)]
                        }
                        (_, Some(r)) => r
                            .occurrences(from, to)
                            .take(400)
                            .map(|o| (o.start, o.end))
                            .collect(),
                        _ => Vec::new(),
                    };
                for (a, b) in occs {
                    if b <= from || a >= to || drawn > 2000 {
                        continue;
                    }
                    drawn += 1;
                    let (xa, xb) = (x(a), x(b));
                    let _ = write!(
                        svg,
                        "<rect x=\"{xa:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#bfe6c0\"><title>{}</title></rect>",
                        (xb - xa).max(1.0),
                        row - 4.0,
                        esc(&w.grant.value.id)
                    );
                }
            }
        }
        for s in audit.sessions.iter().filter(|s| {
            &s.tenant == tenant
                && s.vendor.as_ref() == Some(vendor)
                && s.person.as_ref() == Some(person)
        }) {
            let end = s.end.unwrap_or(to);
            let (xa, xb) = (x(s.start), x(end));
            let bad = s.entries.first().is_some_and(|e| flagged.contains(e));
            let colour = if bad { "#d33" } else { "#2a62c9" };
            let _ = write!(
                svg,
                "<rect x=\"{xa:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{} → {}</title></rect>",
                y + 4.0,
                (xb - xa).max(2.0),
                row - 12.0,
                esc(&paris(s.start)),
                esc(&s.end.map(paris).unwrap_or_else(|| "…".into()))
            );
        }
    }
    svg.push_str("</svg>");
    let _ = write!(svg, "<p><small>{}", l.legend);
    if dropped > 0 {
        let _ = write!(svg, " · {dropped} {}", l.truncated);
    }
    svg.push_str("</small></p></div>\n");
    svg
}
