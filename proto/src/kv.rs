//! Parsing `key=value` messages, as FortiGate and many appliances send them in MSG.
//!
//! ```text
//! message = *WS pair *(1*WS pair) *WS             WS = SP / HTAB / CR / LF / FF
//! pair    = key "=" [value]
//! key     = 1*(any but WS, "=", DQUOTE)
//! value   = quoted / 1*(any but WS)               unquoted: taken as is, no escapes
//! quoted  = DQUOTE *(\" / \\ / any but DQUOTE) DQUOTE   then WS or the end
//!           ; \" is ", \\ is \, any other \ stays
//!
//! date=2026-03-01 time=10:00:01 devname="FGT60F" logid="0101039424" type="event"
//! subtype="vpn" user="jdoe" remip=203.0.113.7 action="tunnel-up" reason= msg="a \"b\""
//! ```
//!
//! Pairs keep their order and duplicates; an empty value (`reason=`) is an empty string.

/// Why text is not `key=value` pairs, or pairs cannot be printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// A word with no `=`.
    #[error("key=value: expected '=' after the key at byte {offset}")]
    MissingEquals {
        /// Offset of the word.
        offset: usize,
    },
    /// `=` with no key before it.
    #[error("key=value: empty key at byte {offset}")]
    EmptyKey {
        /// Offset of the `=`.
        offset: usize,
    },
    /// A `"` inside a key.
    #[error("key=value: quote inside a key at byte {offset}")]
    QuoteInKey {
        /// Offset of the quote.
        offset: usize,
    },
    /// A quoted value with no closing quote.
    #[error("key=value: unterminated quote opened at byte {offset}")]
    UnterminatedQuote {
        /// Offset of the opening quote.
        offset: usize,
    },
    /// Something right after a closing quote.
    #[error("key=value: expected a space after the closing quote at byte {offset}")]
    AfterQuote {
        /// Offset of the byte after the closing quote.
        offset: usize,
    },
    /// A key that cannot be written.
    #[error("cannot print key {key:?}: empty or holds a space, '=' or '\"'")]
    Unprintable {
        /// The key.
        key: String,
    },
}

fn is_ws(b: u8) -> bool {
    b.is_ascii_whitespace()
}

/// Parses `key=value` pairs.
///
/// # Errors
///
/// A [`KvError`] naming the byte offset of a word without `=`, an empty key, a quote in a key,
/// an unterminated quoted value, or text glued to a closing quote.
///
/// # Examples
/// ```
/// let pairs = proto::kv::parse(r#"user="jdoe" remip=203.0.113.7 msg="said \"hi\"" x="#).unwrap();
/// assert_eq!(pairs[0], ("user".to_string(), "jdoe".to_string()));
/// assert_eq!(pairs[2].1, r#"said "hi""#);
/// assert_eq!(pairs[3].1, "");
/// ```
pub fn parse(text: &str) -> Result<Vec<(String, String)>, KvError> {
    let bytes = text.as_bytes();
    let skip_ws = |mut pos: usize| {
        while bytes.get(pos).is_some_and(|&b| is_ws(b)) {
            pos += 1;
        }
        pos
    };
    let mut pairs = Vec::new();
    let mut pos = skip_ws(0);
    while pos < bytes.len() {
        let key_start = pos;
        loop {
            match bytes.get(pos) {
                None => return Err(KvError::MissingEquals { offset: key_start }),
                Some(&b) if is_ws(b) => return Err(KvError::MissingEquals { offset: key_start }),
                Some(b'"') => return Err(KvError::QuoteInKey { offset: pos }),
                Some(b'=') => break,
                Some(_) => pos += 1,
            }
        }
        if pos == key_start {
            return Err(KvError::EmptyKey { offset: pos });
        }
        // Delimiters are ASCII, so every slice below is on a char boundary.
        let key = text[key_start..pos].to_owned();
        pos += 1;
        let value = if bytes.get(pos) == Some(&b'"') {
            let open = pos;
            pos += 1;
            let mut value = String::new();
            let mut run = pos;
            loop {
                match bytes.get(pos) {
                    None => return Err(KvError::UnterminatedQuote { offset: open }),
                    Some(b'"') => {
                        value.push_str(&text[run..pos]);
                        pos += 1;
                        break;
                    }
                    Some(b'\\') if matches!(bytes.get(pos + 1), Some(b'"' | b'\\')) => {
                        value.push_str(&text[run..pos]);
                        run = pos + 1;
                        pos += 2;
                    }
                    Some(_) => pos += 1,
                }
            }
            if bytes.get(pos).is_some_and(|&b| !is_ws(b)) {
                return Err(KvError::AfterQuote { offset: pos });
            }
            value
        } else {
            let start = pos;
            while bytes.get(pos).is_some_and(|&b| !is_ws(b)) {
                pos += 1;
            }
            text[start..pos].to_owned()
        };
        pairs.push((key, value));
        pos = skip_ws(pos);
    }
    Ok(pairs)
}

/// Appends the pairs separated by spaces, quoting values that hold whitespace or `"` (or
/// start with one), so that [`parse`] gives them back.
///
/// # Errors
///
/// [`KvError::Unprintable`] for a key that is empty or holds whitespace, `=` or `"`.
pub fn write(pairs: &[(String, String)], out: &mut String) -> Result<(), KvError> {
    for (i, (key, value)) in pairs.iter().enumerate() {
        if key.is_empty() || key.bytes().any(|b| is_ws(b) || b == b'=' || b == b'"') {
            return Err(KvError::Unprintable { key: key.clone() });
        }
        if i > 0 {
            out.push(' ');
        }
        out.push_str(key);
        out.push('=');
        if value.bytes().any(|b| is_ws(b) || b == b'"') {
            out.push('"');
            for c in value.chars() {
                if matches!(c, '"' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        } else {
            out.push_str(value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fortigate_ssl_vpn_tunnel_up() {
        let msg = r#"date=2026-03-01 time=10:00:01 devname="FGT60F" devid="FGT60FTK2109XXXX" eventtime=1772355601123456789 tz="+0100" logid="0101039424" type="event" subtype="vpn" level="information" vd="root" logdesc="SSL VPN tunnel up" action="tunnel-up" tunneltype="ssl-tunnel" tunnelid=1234567 remip=203.0.113.7 tunnelip=10.212.134.200 user="jdoe" group="prestataires" dst_host="N/A" reason="N/A" msg="SSL tunnel established""#;
        let parsed = parse(msg).unwrap();
        assert_eq!(parsed.len(), 22);
        assert_eq!(parsed[0], ("date".into(), "2026-03-01".into()));
        assert_eq!(parsed[2], ("devname".into(), "FGT60F".into()));
        assert_eq!(parsed[11], ("logdesc".into(), "SSL VPN tunnel up".into()));
        assert_eq!(parsed[15], ("remip".into(), "203.0.113.7".into()));
        assert_eq!(parsed[17], ("user".into(), "jdoe".into()));
        assert_eq!(parsed[21], ("msg".into(), "SSL tunnel established".into()));
    }

    #[test]
    fn spaces_escapes_and_empty_values() {
        assert_eq!(
            parse("  a=1   b=\"x \\\" y \\\\ \\n\"\tc= d=\"\"  e=é=ç  \r\n").unwrap(),
            pairs(&[
                ("a", "1"),
                ("b", "x \" y \\ \\n"),
                ("c", ""),
                ("d", ""),
                ("e", "é=ç"),
            ])
        );
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("   ").unwrap(), vec![]);
        assert_eq!(parse("k=a\"b").unwrap(), pairs(&[("k", "a\"b")]));
    }

    #[test]
    fn errors_name_the_offset() {
        let cases = [
            (
                "a=1 b=\"open",
                "key=value: unterminated quote opened at byte 6",
            ),
            (
                "a=1 word b=2",
                "key=value: expected '=' after the key at byte 4",
            ),
            (
                "a=1 word",
                "key=value: expected '=' after the key at byte 4",
            ),
            ("a=1 =2", "key=value: empty key at byte 4"),
            ("a\"b=1", "key=value: quote inside a key at byte 1"),
            (
                "a=\"x\"y",
                "key=value: expected a space after the closing quote at byte 5",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(parse(text).unwrap_err().to_string(), message, "{text}");
        }
    }

    #[test]
    fn write_quotes_what_needs_it() {
        let mut out = String::new();
        write(
            &pairs(&[
                ("user", "jdoe"),
                ("msg", "a \"b\" \\"),
                ("x", ""),
                ("p", "c:\\t"),
            ]),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, r#"user=jdoe msg="a \"b\" \\" x= p=c:\t"#);
        assert!(write(&pairs(&[("a b", "1")]), &mut String::new()).is_err());
    }

    proptest! {
        #[test]
        fn random_text_never_panics(text in "[a-z=\" \\\\\t]{0,80}|\\PC{0,80}") {
            let _ = parse(&text);
        }

        #[test]
        fn write_then_parse(list in proptest::collection::vec(("[^\\s=\"]{1,12}", "\\PC{0,20}|[a \"\\\\=]{0,10}"), 0..8)) {
            let mut out = String::new();
            write(&list, &mut out).unwrap();
            prop_assert_eq!(parse(&out).unwrap(), list);
        }
    }
}
