//! Importing a vendor's staff list from the CSV file a vendor sends.
//!
//! ```text
//! nom;prénom;email;comptes;niveau;ressources;date_debut          ← header (French or English)
//! Martin;Claire;claire.martin@acme.example;cmartin|acme-adm;admin;pacs-01|ris-*;2026-01-05
//! ```
//!
//! - The separator is `;` or `,`, whichever the header uses most. Fields may be quoted
//!   (`"…"`, `""` for a quote); a quoted field must close on its line. A UTF-8 BOM is
//!   skipped; blank lines are ignored.
//! - Columns, in any order, named in French or English (case and accents ignored):
//!   `nom`/`last_name`, `prénom`/`first_name`, `email`/`e-mail`/`courriel`,
//!   `comptes`/`accounts`, `niveau`/`access_level`, `ressources`/`resources`,
//!   `date_debut`/`start_date`, and optionally `identifiant`/`person` (the identifier the
//!   sources report; the e-mail address, lower-cased, when absent).
//! - Lists (accounts, resources) are separated by `|`, or by the separator not used
//!   between fields; a resource ending in `*` is a prefix (`ris-*`).
//! - Dates are `YYYY-MM-DD` or `DD/MM/YYYY`.
//!
//! Every error names the file, the line and the column; one bad line refuses the whole
//! file.

use proto::model::StaffMember;
use time::{Date, Month};

use crate::error::AuditError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Person,
    LastName,
    FirstName,
    Email,
    Accounts,
    Level,
    Resources,
    Start,
}

impl Col {
    fn name(self) -> &'static str {
        match self {
            Col::Person => "person",
            Col::LastName => "last_name",
            Col::FirstName => "first_name",
            Col::Email => "email",
            Col::Accounts => "accounts",
            Col::Level => "access_level",
            Col::Resources => "resources",
            Col::Start => "start_date",
        }
    }

    fn from_header(h: &str) -> Option<Col> {
        let folded: String = h
            .trim()
            .to_lowercase()
            .chars()
            .map(|c| match c {
                'é' | 'è' | 'ê' => 'e',
                'à' | 'â' => 'a',
                ' ' | '-' | '\'' => '_',
                c => c,
            })
            .collect();
        Some(match folded.as_str() {
            "identifiant" | "person" | "id" => Col::Person,
            "nom" | "last_name" | "name" | "lastname" | "nom_de_famille" => Col::LastName,
            "prenom" | "first_name" | "firstname" => Col::FirstName,
            "email" | "e_mail" | "courriel" | "mail" => Col::Email,
            "comptes" | "compte" | "accounts" | "account" => Col::Accounts,
            "niveau" | "niveau_d_acces" | "niveau_acces" | "access_level" | "level" => Col::Level,
            "ressources" | "resources" => Col::Resources,
            "date_debut" | "date_de_debut" | "debut" | "start_date" | "start" => Col::Start,
            _ => return None,
        })
    }
}

const REQUIRED: [Col; 7] = [
    Col::LastName,
    Col::FirstName,
    Col::Email,
    Col::Accounts,
    Col::Level,
    Col::Resources,
    Col::Start,
];

/// Reads a staff list.
///
/// `file` names the file in errors.
///
/// # Errors
/// [`AuditError::Input`] naming the file, line and column of the first problem: an
/// unknown or missing column, a line with the wrong number of fields, an empty required
/// field, an invalid e-mail address or date, a person listed twice, no person at all.
///
/// # Examples
/// ```
/// let csv = "nom;prénom;email;comptes;niveau;ressources;date_debut\n\
///            Martin;Claire;claire.martin@acme.example;cmartin;admin;pacs-01|ris-*;05/01/2026\n";
/// let staff = auditor::staff_csv::parse("acme.csv", csv)?;
/// assert_eq!(staff[0].person, "claire.martin@acme.example");
/// assert_eq!(staff[0].resources, ["pacs-01", "ris-*"]);
/// let err = auditor::staff_csv::parse("acme.csv", &csv.replace("05/01/2026", "31/02/2026")).unwrap_err();
/// assert_eq!(err.to_string(), "acme.csv:2: start_date: invalid date \"31/02/2026\": expected YYYY-MM-DD or DD/MM/YYYY");
/// # Ok::<(), auditor::AuditError>(())
/// ```
pub fn parse(file: &str, text: &str) -> Result<Vec<StaffMember>, AuditError> {
    let err = |line: usize, field: &str, reason: String| AuditError::Input {
        file: file.to_owned(),
        line,
        field: field.to_owned(),
        reason,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty());
    let (hline, header) = lines
        .next()
        .ok_or_else(|| err(1, "header", "empty file".into()))?;
    let sep = if header.matches(';').count() >= header.matches(',').count() {
        ';'
    } else {
        ','
    };
    let list_seps: &[char] = if sep == ';' { &['|', ','] } else { &['|', ';'] };
    let names = split(header, sep).map_err(|r| err(hline, "header", r.into()))?;
    let mut cols = Vec::with_capacity(names.len());
    for name in &names {
        let col =
            Col::from_header(name).ok_or_else(|| err(hline, name, "unknown column".into()))?;
        if cols.contains(&col) {
            return Err(err(hline, name, "column given twice".into()));
        }
        cols.push(col);
    }
    for col in REQUIRED {
        if !cols.contains(&col) {
            return Err(err(hline, col.name(), "missing column".into()));
        }
    }
    let mut out: Vec<StaffMember> = Vec::new();
    for (line, text) in lines {
        let fields = split(text, sep).map_err(|r| err(line, "line", r.into()))?;
        if fields.len() != cols.len() {
            return Err(err(
                line,
                "line",
                format!("{} fields, expected {}", fields.len(), cols.len()),
            ));
        }
        let get = |c: Col| {
            cols.iter()
                .position(|x| *x == c)
                .map(|i| fields[i].trim().to_owned())
                .unwrap_or_default()
        };
        let required = |c: Col| {
            let v = get(c);
            if v.is_empty() {
                Err(err(line, c.name(), "empty".into()))
            } else {
                Ok(v)
            }
        };
        let list = |c: Col| -> Result<Vec<String>, AuditError> {
            let items: Vec<String> = required(c)?
                .split(list_seps)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if items.is_empty() {
                return Err(err(line, c.name(), "empty list".into()));
            }
            Ok(items)
        };
        let email = required(Col::Email)?;
        let at = email.find('@');
        if at.is_none_or(|i| i == 0 || i + 1 == email.len()) || email.contains(char::is_whitespace)
        {
            return Err(err(
                line,
                "email",
                format!("invalid e-mail address {email:?}"),
            ));
        }
        let start = required(Col::Start)?;
        let start_date = parse_date(&start).ok_or_else(|| {
            err(
                line,
                "start_date",
                format!("invalid date {start:?}: expected YYYY-MM-DD or DD/MM/YYYY"),
            )
        })?;
        let person = match get(Col::Person) {
            p if p.is_empty() => email.to_lowercase(),
            p => p,
        };
        if out.iter().any(|m| m.person == person) {
            return Err(err(line, "email", format!("{person} is listed twice")));
        }
        out.push(StaffMember {
            person,
            last_name: required(Col::LastName)?,
            first_name: required(Col::FirstName)?,
            email,
            accounts: list(Col::Accounts)?,
            access_level: required(Col::Level)?,
            resources: list(Col::Resources)?,
            start_date,
        });
    }
    if out.is_empty() {
        return Err(err(hline, "line", "no person in the list".into()));
    }
    Ok(out)
}

fn split(line: &str, sep: char) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if at_start && c == '"' {
            // A quoted field.
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        cur.push('"');
                    }
                    Some('"') => break,
                    Some(c) => cur.push(c),
                    None => return Err("unclosed quote"),
                }
            }
            match chars.next() {
                None => break,
                Some(c) if c == sep => {
                    fields.push(std::mem::take(&mut cur));
                    at_start = true;
                    continue;
                }
                Some(_) => return Err("text after a closing quote"),
            }
        }
        if c == sep {
            fields.push(std::mem::take(&mut cur));
            at_start = true;
        } else {
            cur.push(c);
            at_start = false;
        }
    }
    fields.push(cur);
    Ok(fields)
}

fn parse_date(s: &str) -> Option<Date> {
    let (y, m, d) = if s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' {
        (s.get(0..4)?, s.get(5..7)?, s.get(8..10)?)
    } else if s.len() == 10 && s.as_bytes()[2] == b'/' && s.as_bytes()[5] == b'/' {
        (s.get(6..10)?, s.get(3..5)?, s.get(0..2)?)
    } else {
        return None;
    };
    let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "last_name,first_name,email,accounts,access_level,resources,start_date\n";

    #[test]
    fn english_header_comma_separated_with_quotes() {
        let csv = format!(
            "{HEADER}\"Dupont, Jr\",Jean,jean@acme.example,jdupont;acme-adm,read,\"pacs-01;ris-*\",2025-11-03\n"
        );
        let staff = parse("s.csv", &csv).expect("valid");
        assert_eq!(staff[0].last_name, "Dupont, Jr");
        assert_eq!(staff[0].accounts, ["jdupont", "acme-adm"]);
        assert_eq!(staff[0].resources, ["pacs-01", "ris-*"]);
    }

    #[test]
    fn errors_name_line_and_field() {
        let cases = [
            (
                format!("{HEADER}A,B,not-an-email,a,r,x,2026-01-01\n"),
                "s.csv:2: email: invalid e-mail address \"not-an-email\"",
            ),
            (
                format!("{HEADER}A,B,a@b.c,a,r,x\n"),
                "s.csv:2: line: 6 fields, expected 7",
            ),
            (
                format!("{HEADER}\nA,B,a@b.c,,r,x,2026-01-01\n"),
                "s.csv:3: accounts: empty",
            ),
            (
                format!("{HEADER}A,B,a@b.c,a,r,x,2026-01-01\nC,D,A@b.c,a,r,x,2026-01-01\n"),
                "s.csv:3: email: a@b.c is listed twice",
            ),
            (
                "nom;prénom;couleur\n".to_owned(),
                "s.csv:1: couleur: unknown column",
            ),
            (
                "nom;prénom;email\n".to_owned(),
                "s.csv:1: accounts: missing column",
            ),
            (HEADER.to_owned(), "s.csv:1: line: no person in the list"),
            (
                format!("{HEADER}\"A,B,a@b.c,a,r,x,2026-01-01\n"),
                "s.csv:2: line: unclosed quote",
            ),
        ];
        for (csv, want) in cases {
            assert_eq!(
                parse("s.csv", &csv).map(|_| ()).unwrap_err().to_string(),
                want
            );
        }
    }
}
