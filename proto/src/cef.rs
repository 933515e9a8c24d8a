//! Parsing ArcSight Common Event Format (CEF) messages, as bastions (Wallix, CyberArk…) send
//! them in a syslog MSG.
//!
//! ```text
//! [prefix] "CEF:" *SP Version "|" Device Vendor "|" Device Product "|" Device Version "|"
//!          Signature ID "|" Name "|" Severity ["|" Extension]
//!   prefix        anything before the first "CEF:" (a syslog header left in MSG), ignored
//!   Version       1*3DIGIT (0 or 1)
//!   header field  \| is |, \\ is \, any other \ stays
//!   Extension     *SP [pair *(1*SP pair)] *SP
//!   pair          key "=" value            key = 1*(ALPHA / DIGIT / "_" / "." / "-")
//!   value         up to the space before the next `key=`, trailing spaces dropped;
//!                 \= is =, \\ is \, \n is LF, \r is CR, any other \ stays
//!
//! CEF:0|WALLIX|Bastion|10.0.4|session_started|Session started|5|suser=jdoe duser=root
//!       dhost=srv-pacs-01 src=203.0.113.7 app=SSH msg=Session opened on target
//! ```
//!
//! A `=` that is neither escaped nor preceded by `SP key` (as in `request=http://h/?a=b`) is
//! taken as part of the value: senders often forget to escape it.

/// A parsed CEF event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CefEvent {
    /// CEF version (0 or 1).
    pub version: u8,
    /// Device Vendor.
    pub device_vendor: String,
    /// Device Product.
    pub device_product: String,
    /// Device Version.
    pub device_version: String,
    /// Signature ID (Device Event Class ID).
    pub signature_id: String,
    /// Name.
    pub name: String,
    /// Severity: 0 to 10, or Unknown, Low, Medium, High, Very-High, as sent.
    pub severity: String,
    /// Extension pairs in order, values unescaped.
    pub extensions: Vec<(String, String)>,
}

impl CefEvent {
    /// The value of the first extension named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.extensions
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Why text is not CEF, or an event cannot be printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CefError {
    /// No `CEF:` in the text.
    #[error("cef: no 'CEF:' prefix")]
    MissingPrefix,
    /// A version that is not a number up to 255.
    #[error("cef: version at byte {offset} is not a number up to 255")]
    Version {
        /// Offset of the version.
        offset: usize,
    },
    /// The text ends before the header does.
    #[error("cef: header ends at byte {offset}, before the {field} field")]
    Header {
        /// Offset of the end.
        offset: usize,
        /// The missing field.
        field: &'static str,
    },
    /// The extension is not `key=value` pairs.
    #[error("cef: extension invalid at byte {offset}: {reason}")]
    Extension {
        /// Offset in the text.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A value CEF cannot carry.
    #[error("cannot print cef {field}: {reason}")]
    Unprintable {
        /// The field or extension key.
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
}

const HEADER_FIELDS: [&str; 6] = [
    "device vendor",
    "device product",
    "device version",
    "signature id",
    "name",
    "severity",
];

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Parses the first CEF event in `text` (a syslog MSG).
///
/// # Errors
///
/// A [`CefError`] naming the byte offset: no `CEF:`, a bad version, a header cut short, text
/// before the first extension key.
///
/// # Examples
/// ```
/// let e = proto::cef::parse(
///     "CEF:0|Security|threatmanager|1.0|100|detected a \\| in message|10|src=10.0.0.1 act=blocked a \\= dst=1.1.1.1",
/// ).unwrap();
/// assert_eq!(e.name, "detected a | in message");
/// assert_eq!(e.get("act"), Some("blocked a ="));
/// ```
pub fn parse(text: &str) -> Result<CefEvent, CefError> {
    let start = text.find("CEF:").ok_or(CefError::MissingPrefix)?;
    let bytes = text.as_bytes();
    let mut pos = start + 4;
    while bytes.get(pos) == Some(&b' ') {
        pos += 1;
    }
    let version_start = pos;
    while bytes.get(pos).is_some_and(u8::is_ascii_digit) {
        pos += 1;
    }
    let version = text[version_start..pos]
        .parse::<u8>()
        .ok()
        .filter(|_| pos - version_start <= 3)
        .ok_or(CefError::Version {
            offset: version_start,
        })?;
    if bytes.get(pos) != Some(&b'|') {
        return Err(if pos == bytes.len() {
            CefError::Header {
                offset: pos,
                field: HEADER_FIELDS[0],
            }
        } else {
            CefError::Version {
                offset: version_start,
            }
        });
    }
    pos += 1;
    let mut fields: [String; 6] = Default::default();
    for (i, field) in fields.iter_mut().enumerate() {
        let mut run = pos;
        loop {
            match bytes.get(pos) {
                // The last field may end the text when there is no extension.
                None if i == 5 => {
                    field.push_str(&text[run..pos]);
                    break;
                }
                None => {
                    return Err(CefError::Header {
                        offset: pos,
                        field: HEADER_FIELDS[i + 1],
                    });
                }
                Some(b'|') => {
                    field.push_str(&text[run..pos]);
                    pos += 1;
                    break;
                }
                Some(b'\\') if matches!(bytes.get(pos + 1), Some(b'|' | b'\\')) => {
                    field.push_str(&text[run..pos]);
                    run = pos + 1;
                    pos += 2;
                }
                Some(_) => pos += 1,
            }
        }
    }
    let extensions = parse_extension(text, pos.min(text.len()))?;
    let [
        device_vendor,
        device_product,
        device_version,
        signature_id,
        name,
        severity,
    ] = fields;
    Ok(CefEvent {
        version,
        device_vendor,
        device_product,
        device_version,
        signature_id,
        name,
        severity,
        extensions,
    })
}

/// The extension pairs of `text[from..]`.
fn parse_extension(text: &str, from: usize) -> Result<Vec<(String, String)>, CefError> {
    let bytes = text.as_bytes();
    // Each key: (start of key, offset of its '=').
    let mut keys: Vec<(usize, usize)> = Vec::new();
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' => {
                let mut k = i;
                while k > from && is_key_byte(bytes[k - 1]) {
                    k -= 1;
                }
                if k < i && (k == from || bytes[k - 1] == b' ') {
                    keys.push((k, i));
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    let first = keys.first().map_or(bytes.len(), |&(k, _)| k);
    if let Some(junk) = bytes[from..first].iter().position(|&b| b != b' ') {
        return Err(CefError::Extension {
            offset: from + junk,
            reason: "text before the first key=value",
        });
    }
    let mut pairs = Vec::with_capacity(keys.len());
    for (n, &(k, eq)) in keys.iter().enumerate() {
        let end = keys.get(n + 1).map_or(bytes.len(), |&(next, _)| next);
        let raw = text[eq + 1..end].trim_end_matches(' ');
        pairs.push((text[k..eq].to_owned(), unescape_value(raw)));
    }
    Ok(pairs)
}

fn unescape_value(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let mut lookahead = chars.clone();
        match lookahead.next() {
            Some('=') => out.push('='),
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            _ => {
                out.push('\\');
                continue;
            }
        }
        chars = lookahead;
    }
    out
}

impl CefEvent {
    /// Writes the event as CEF, such that [`parse`] gives it back.
    ///
    /// # Errors
    ///
    /// [`CefError::Unprintable`] for an extension key that is empty or holds a byte other
    /// than ASCII letters, digits, `_`, `.`, `-`, or a value that ends with a space.
    pub fn write(&self, out: &mut String) -> Result<(), CefError> {
        out.push_str("CEF:");
        out.push_str(&self.version.to_string());
        for field in [
            &self.device_vendor,
            &self.device_product,
            &self.device_version,
            &self.signature_id,
            &self.name,
            &self.severity,
        ] {
            out.push('|');
            for c in field.chars() {
                if matches!(c, '|' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
        }
        out.push('|');
        for (i, (key, value)) in self.extensions.iter().enumerate() {
            if key.is_empty() || !key.bytes().all(is_key_byte) {
                return Err(CefError::Unprintable {
                    field: key.clone(),
                    reason: "key is not ASCII letters, digits, '_', '.', '-'",
                });
            }
            if value.ends_with(' ') {
                return Err(CefError::Unprintable {
                    field: key.clone(),
                    reason: "value ends with a space",
                });
            }
            if i > 0 {
                out.push(' ');
            }
            out.push_str(key);
            out.push('=');
            for c in value.chars() {
                match c {
                    '=' => out.push_str("\\="),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn arcsight_sample() {
        let e = parse("CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|10|src=10.0.0.1 dst=2.1.2.2 spt=1232").unwrap();
        assert_eq!(
            e,
            CefEvent {
                version: 0,
                device_vendor: "Security".into(),
                device_product: "threatmanager".into(),
                device_version: "1.0".into(),
                signature_id: "100".into(),
                name: "worm successfully stopped".into(),
                severity: "10".into(),
                extensions: vec![
                    ("src".into(), "10.0.0.1".into()),
                    ("dst".into(), "2.1.2.2".into()),
                    ("spt".into(), "1232".into()),
                ],
            }
        );
    }

    #[test]
    fn bastion_session_inside_a_syslog_msg() {
        let msg = "bastion01 CEF:0|WALLIX|Bastion|10.0.4|session_started|Session started|5|suser=jdoe duser=root dhost=srv-pacs-01 src=203.0.113.7 app=SSH cs1Label=Session ID cs1=a1b2 msg=Session opened on target  ";
        let e = parse(msg).unwrap();
        assert_eq!(e.device_vendor, "WALLIX");
        assert_eq!(e.get("suser"), Some("jdoe"));
        assert_eq!(e.get("cs1Label"), Some("Session ID"));
        assert_eq!(e.get("msg"), Some("Session opened on target"));
    }

    #[test]
    fn cyberark_style_escapes_and_empty_values() {
        let e = parse(r#"CEF: 0|Cyber-Ark|Vault|12.6.0000|295|Retrieve password|5|act=Retrieve password suser=PasswordManager fname=Root\\Operating System-WinDomain-a\=b dvc= shost=10.0.0.1 dhost= duser=admin msg=line1\nline2\r request=https://h/?a=b"#).unwrap();
        assert_eq!(e.get("act"), Some("Retrieve password"));
        assert_eq!(e.get("fname"), Some(r"Root\Operating System-WinDomain-a=b"));
        assert_eq!(e.get("dvc"), Some(""));
        assert_eq!(e.get("dhost"), Some(""));
        assert_eq!(e.get("msg"), Some("line1\nline2\r"));
        assert_eq!(e.get("request"), Some("https://h/?a=b"));
    }

    #[test]
    fn header_escapes_and_no_extension() {
        let e = parse(r"CEF:1|V\|x|P\\y|1|sig|a \q b|Very-High").unwrap();
        assert_eq!(e.version, 1);
        assert_eq!(e.device_vendor, "V|x");
        assert_eq!(e.device_product, r"P\y");
        assert_eq!(e.name, r"a \q b");
        assert_eq!(e.severity, "Very-High");
        assert!(e.extensions.is_empty());
        assert!(parse("CEF:0|a|b|c|d|e|5|").unwrap().extensions.is_empty());
    }

    #[test]
    fn errors_name_the_offset() {
        let cases = [
            ("LEEF:1.0|x", "cef: no 'CEF:' prefix"),
            (
                "CEF:x|a",
                "cef: version at byte 4 is not a number up to 255",
            ),
            (
                "CEF:256|a",
                "cef: version at byte 4 is not a number up to 255",
            ),
            (
                "CEF:0",
                "cef: header ends at byte 5, before the device vendor field",
            ),
            (
                "CEF:0|a|b|c",
                "cef: header ends at byte 11, before the signature id field",
            ),
            (
                "CEF:0|a|b|c|d|e|5| junk a=1",
                "cef: extension invalid at byte 19: text before the first key=value",
            ),
            (
                "CEF:0|a|b|c|d|e|5|junk",
                "cef: extension invalid at byte 18: text before the first key=value",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(parse(text).unwrap_err().to_string(), message, "{text}");
        }
    }

    #[test]
    fn write_then_parse() {
        let e = parse(r"CEF:0|V\|x|P|1|s|n|3|a=x\=y b=multi word c=\\ d=").unwrap();
        let mut out = String::new();
        e.write(&mut out).unwrap();
        assert_eq!(out, r"CEF:0|V\|x|P|1|s|n|3|a=x\=y b=multi word c=\\ d=");
        assert_eq!(parse(&out).unwrap(), e);
    }

    proptest! {
        #[test]
        fn random_text_never_panics(text in "(CEF: ?[0-9]{0,4})?[a-z|\\\\= ]{0,80}|\\PC{0,80}") {
            let _ = parse(&text);
        }

        #[test]
        fn write_then_parse_any(
            header in proptest::collection::vec("[a-z |\\\\=]{0,8}|\\PC{0,8}", 6),
            version in any::<u8>(),
            extensions in proptest::collection::vec(
                ("[a-zA-Z0-9_.-]{1,8}", "([a-z =\\\\\n|]|\\PC){0,12}[^ ]|"), 0..6),
        ) {
            let e = CefEvent {
                version,
                device_vendor: header[0].clone(),
                device_product: header[1].clone(),
                device_version: header[2].clone(),
                signature_id: header[3].clone(),
                name: header[4].clone(),
                severity: header[5].clone(),
                extensions,
            };
            let mut out = String::new();
            e.write(&mut out).unwrap();
            prop_assert_eq!(parse(&out).unwrap(), e);
        }
    }
}
