//! Small field extraction the profiles share: a key=value splitter, client addresses,
//! times, JSON paths and authentication factor names.
//!
//! These are deliberately local to the profiles (the transport parsers live in
//! [`crate::syslog`], [`crate::cef`] and [`crate::kv`]); every function here takes any
//! text and never panics.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

use memchr::memmem;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::model::AuthFactor;

/// At most this many pairs are read from one message; the rest is ignored.
const MAX_PAIRS: usize = 512;

/// The `key=value` and `key="quoted value"` pairs of a message, in order.
///
/// ```text
/// date=2026-03-12 logid="0101039947" msg="SSL tunnel established" reason="a \"b\""
/// ```
///
/// Words without `=` (a `[wallix]` tag, free text) are skipped. Inside quotes `\"` and
/// `\\` are unescaped; an unterminated quote runs to the end of the message. Keys are
/// compared exactly.
#[derive(Debug, Default)]
pub(crate) struct Pairs<'a> {
    pairs: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> Pairs<'a> {
    pub(crate) fn parse(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        // No more pairs than `=` signs: one allocation where growing by doubling took four
        // or five for a FortiGate line (about 25 pairs).
        let equals = memchr::memchr_iter(b'=', bytes).count();
        let mut pairs = Vec::with_capacity(equals.min(MAX_PAIRS));
        let mut i = 0;
        while i < bytes.len() && pairs.len() < MAX_PAIRS {
            while i < bytes.len() && is_space(bytes[i]) {
                i += 1;
            }
            let key_start = i;
            while i < bytes.len() && !is_space(bytes[i]) && bytes[i] != b'=' {
                i += 1;
            }
            let key = &text[key_start..i];
            if i >= bytes.len() || bytes[i] != b'=' {
                // A bare word: skip it.
                continue;
            }
            i += 1; // '='
            let value = if i < bytes.len() && bytes[i] == b'"' {
                i += 1;
                let start = i;
                let mut owned: Option<String> = None;
                let mut seg = start;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\'
                        && i + 1 < bytes.len()
                        && matches!(bytes[i + 1], b'"' | b'\\')
                    {
                        let buf = owned.get_or_insert_with(String::new);
                        buf.push_str(&text[seg..i]);
                        buf.push(char::from(bytes[i + 1]));
                        i += 2;
                        seg = i;
                    } else {
                        i += 1;
                    }
                }
                let value = match owned {
                    Some(mut buf) => {
                        buf.push_str(&text[seg..i]);
                        Cow::Owned(buf)
                    }
                    None => Cow::Borrowed(&text[start..i]),
                };
                if i < bytes.len() {
                    i += 1; // closing quote
                }
                value
            } else {
                let start = i;
                while i < bytes.len() && !is_space(bytes[i]) {
                    i += 1;
                }
                Cow::Borrowed(&text[start..i])
            };
            if !key.is_empty() && !key.contains('"') {
                pairs.push((key, value));
            }
        }
        Pairs { pairs }
    }

    /// The first value of `key`, as the message holds it.
    fn first(&self, key: &str) -> Option<&Cow<'a, str>> {
        self.pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The first value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.first(key).map(Cow::as_ref)
    }

    /// The first value of `key`, unless empty or a placeholder (`N/A`, `-`).
    pub(crate) fn value(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(present)
    }

    /// Like [`Pairs::value`], borrowed from the message unless the value had escapes.
    pub(crate) fn text(&self, key: &str) -> Option<Cow<'a, str>> {
        self.first(key).and_then(present_cow)
    }
}

/// A fixed text the profiles look for in every message, with memchr's searcher prepared
/// once. `str::contains` and `split_once` prepare their pattern at every call, which on a
/// message of a few hundred bytes costs more than the search itself; every message goes
/// through several profiles that do not claim it, so these searches are the hot path.
pub(crate) struct Pattern {
    text: &'static str,
    finder: OnceLock<memmem::Finder<'static>>,
    finder_rev: OnceLock<memmem::FinderRev<'static>>,
}

impl Pattern {
    pub(crate) const fn new(text: &'static str) -> Pattern {
        Pattern {
            text,
            finder: OnceLock::new(),
            finder_rev: OnceLock::new(),
        }
    }

    /// Where the pattern first occurs in `haystack`.
    pub(crate) fn find(&self, haystack: &str) -> Option<usize> {
        self.finder
            .get_or_init(|| memmem::Finder::new(self.text))
            .find(haystack.as_bytes())
    }

    /// Whether `haystack` contains the pattern.
    pub(crate) fn is_in(&self, haystack: &str) -> bool {
        self.find(haystack).is_some()
    }

    /// As `haystack.split_once(pattern)`.
    pub(crate) fn split_once<'h>(&self, haystack: &'h str) -> Option<(&'h str, &'h str)> {
        self.split_at(haystack, self.find(haystack)?)
    }

    /// `haystack` before and after the match at `at`.
    fn split_at<'h>(&self, haystack: &'h str, at: usize) -> Option<(&'h str, &'h str)> {
        // A match of a whole UTF-8 pattern starts and ends on character boundaries.
        Some((haystack.get(..at)?, haystack.get(at + self.text.len()..)?))
    }

    /// Where the pattern last occurs in `haystack`.
    pub(crate) fn rfind(&self, haystack: &str) -> Option<usize> {
        self.finder_rev
            .get_or_init(|| memmem::FinderRev::new(self.text))
            .rfind(haystack.as_bytes())
    }

    /// As `haystack.rsplit_once(pattern)`.
    pub(crate) fn rsplit_once<'h>(&self, haystack: &'h str) -> Option<(&'h str, &'h str)> {
        self.split_at(haystack, self.rfind(haystack)?)
    }

    /// The splits of `haystack` around each occurrence of the pattern, the last first (as
    /// `haystack.rmatch_indices(pattern)`, split there).
    pub(crate) fn rsplits<'h>(
        &'h self,
        haystack: &'h str,
    ) -> impl Iterator<Item = (&'h str, &'h str)> {
        let mut end = haystack.len();
        std::iter::from_fn(move || {
            let at = self.rfind(haystack.get(..end)?)?;
            end = at;
            self.split_at(haystack, at)
        })
    }
}

/// Whether `text` contains `needle` (ASCII, lowercase), ignoring ASCII case, without
/// allocating a lowercase copy.
pub(crate) fn contains_ignore_ascii_case(text: &str, needle: &str) -> bool {
    let (text, needle) = (text.as_bytes(), needle.as_bytes());
    needle.is_empty()
        || text
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Whether `text` starts with `prefix` (ASCII), ignoring ASCII case.
pub(crate) fn starts_with_ignore_ascii_case(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `Some(text)` unless it is empty or a placeholder sources write for "none".
pub(crate) fn present(text: &str) -> Option<&str> {
    let text = text.trim();
    match text {
        "" | "-" | "N/A" | "n/a" | "none" | "null" => None,
        _ => Some(text),
    }
}

/// Like [`present`], owned (for text that does not outlive its parser).
pub(crate) fn owned(text: &str) -> Option<Cow<'static, str>> {
    present(text).map(|t| Cow::Owned(t.to_owned()))
}

/// Like [`present`], borrowed where `text` is (text of the message), owned where it is.
pub(crate) fn present_cow<'a>(text: &Cow<'a, str>) -> Option<Cow<'a, str>> {
    match text {
        Cow::Borrowed(t) => field(t),
        Cow::Owned(t) => owned(t),
    }
}

/// `text` in lowercase, borrowed when it already is.
pub(crate) fn lowercase(text: Cow<'_, str>) -> Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(text.to_ascii_lowercase())
    } else {
        text
    }
}

/// Like [`present`], borrowed (for text of the message itself).
pub(crate) fn field(text: &str) -> Option<Cow<'_, str>> {
    present(text).map(Cow::Borrowed)
}

/// An IP address, IPv4-mapped IPv6 reported as IPv4.
pub(crate) fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Some(v4) = dotted_quad(text.as_bytes()) {
        return Some(IpAddr::V4(v4));
    }
    text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// `a.b.c.d` (four decimal octets, no leading zeros), in one pass over the bytes; `None`
/// for anything else, which the standard parser then reads (IPv6) or refuses. It accepts
/// nothing [`Ipv4Addr`]'s parser refuses, and is several times cheaper.
fn dotted_quad(text: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut index = 0;
    let mut value: u16 = 0;
    let mut digits = 0;
    for &b in text {
        match b {
            b'0'..=b'9' => {
                // A digit after a leading zero, or a fourth digit (over 255 is refused at
                // the dot or the end).
                if (digits == 1 && value == 0) || digits == 3 {
                    return None;
                }
                value = value * 10 + u16::from(b - b'0');
                digits += 1;
            }
            b'.' if digits > 0 && index < 3 => {
                octets[index] = u8::try_from(value).ok()?;
                index += 1;
                value = 0;
                digits = 0;
            }
            _ => return None,
        }
    }
    if digits == 0 || index != 3 {
        return None;
    }
    octets[3] = u8::try_from(value).ok()?;
    Some(Ipv4Addr::from(octets))
}

/// A client endpoint as sources print it: `IP`, `IP:PORT`, `[IPv6]:PORT`, optionally
/// behind `[AF_INET]`/`[AF_INET6]` or a `udp6:`-style protocol tag. A bare IP is preferred:
/// `2001:db8::7:1194` is read as an address without a port (see [`parse_socket`]).
pub(crate) fn parse_endpoint(text: &str) -> Option<(IpAddr, Option<u16>)> {
    let text = strip_endpoint_tags(text);
    if text.starts_with('[') {
        return bracketed(text);
    }
    // A bare address has no colon (IPv4) or at least two (IPv6): with exactly one, only
    // `IP:PORT` is left to try.
    let mut colons = memchr::memchr_iter(b':', text.as_bytes());
    let one_colon = colons.next().is_some() && colons.next().is_none();
    if !one_colon && let Some(ip) = parse_ip(text) {
        return Some((ip, None));
    }
    let (ip, port) = text.rsplit_once(':')?;
    Some((parse_ip(ip)?, Some(port.parse().ok()?)))
}

/// A client endpoint whose port is known to be present: like [`parse_endpoint`], but
/// `2001:db8::7:1194` is address `2001:db8::7`, port 1194 (OpenVPN's notation).
pub(crate) fn parse_socket(text: &str) -> Option<(IpAddr, u16)> {
    let text = strip_endpoint_tags(text);
    if text.starts_with('[') {
        return match bracketed(text)? {
            (ip, Some(port)) => Some((ip, port)),
            (_, None) => None,
        };
    }
    let (ip, port) = text.rsplit_once(':')?;
    Some((parse_ip(ip)?, port.parse().ok()?))
}

/// Strips `[AF_INET]`, `[AF_INET6]` and a protocol tag such as `udp4:` or `tcp6-server:`
/// (not hexadecimal, so never the first group of an IPv6 address).
fn strip_endpoint_tags(text: &str) -> &str {
    let mut text = text.trim();
    for tag in ["[AF_INET]", "[AF_INET6]"] {
        if let Some(rest) = text.strip_prefix(tag) {
            text = rest;
        }
    }
    let is_tag = |head: &str| {
        !head.is_empty()
            && head.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !head.bytes().all(|b| b.is_ascii_hexdigit())
    };
    match text.split_once(':') {
        Some((head, rest)) if is_tag(head) => rest,
        _ => text,
    }
}

/// `[IP]` or `[IP]:PORT`.
fn bracketed(text: &str) -> Option<(IpAddr, Option<u16>)> {
    let (ip, after) = text.strip_prefix('[')?.split_once(']')?;
    let ip = parse_ip(ip)?;
    match after.strip_prefix(':') {
        Some(port) => Some((ip, Some(port.parse().ok()?))),
        None if after.is_empty() => Some((ip, None)),
        None => None,
    }
}

/// `ADDR:PORT` in socket-address notation (`[v6]:port` for IPv6): the session id of
/// sources that have none.
pub(crate) fn endpoint_id(ip: IpAddr, port: u16) -> String {
    use crate::framing::decimal;
    match ip {
        // Written digit by digit: the formatter's machinery cost more than the rest of
        // mapping an OpenVPN or Guacamole line.
        IpAddr::V4(v4) => {
            let mut id = String::with_capacity(21);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    id.push('.');
                }
                id.push_str(decimal(octet.into(), &mut [0; 20]));
            }
            id.push(':');
            id.push_str(decimal(port.into(), &mut [0; 20]));
            id
        }
        IpAddr::V6(_) => SocketAddr::new(ip, port).to_string(),
    }
}

/// An instant: RFC 3339, or a Unix time in seconds, milliseconds, microseconds or
/// nanoseconds (told apart by the number of digits).
pub(crate) fn parse_time(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i128 = text.parse().ok()?;
    let nanos = match text.len() {
        0..=11 => n.checked_mul(1_000_000_000)?,
        12..=14 => n.checked_mul(1_000_000)?,
        15..=17 => n.checked_mul(1_000)?,
        _ => n,
    };
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// The value at a dotted path in a JSON document: `user.name`, `participants.0`.
///
/// At each level a key containing dots (Teleport's `addr.remote`) is preferred over
/// descending: the longest key present wins.
pub(crate) fn json_path<'v>(
    value: &'v serde_json::Value,
    segments: &[String],
) -> Option<&'v serde_json::Value> {
    if segments.is_empty() {
        return Some(value);
    }
    match value {
        serde_json::Value::Object(map) => (1..=segments.len()).rev().find_map(|n| {
            let key = segments[..n].join(".");
            map.get(&key).and_then(|v| json_path(v, &segments[n..]))
        }),
        serde_json::Value::Array(items) => {
            let index: usize = segments[0].parse().ok()?;
            json_path(items.get(index)?, &segments[1..])
        }
        _ => None,
    }
}

/// A scalar JSON value as text (strings as is, numbers and booleans printed); `None` for
/// null, empty strings, arrays and objects.
pub(crate) fn json_text(value: &serde_json::Value) -> Option<Cow<'_, str>> {
    match value {
        serde_json::Value::String(s) => present(s).map(Cow::Borrowed),
        serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
        serde_json::Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

/// The message as JSON: `input_json` when the collector parsed it, else `msg` parsed
/// when it looks like an object.
pub(crate) fn json_of<'a>(
    input_json: Option<&'a serde_json::Value>,
    msg: &str,
) -> Option<Cow<'a, serde_json::Value>> {
    if let Some(v) = input_json {
        return Some(Cow::Borrowed(v));
    }
    let msg = msg.trim();
    if !msg.starts_with('{') {
        return None;
    }
    serde_json::from_str(msg).ok().map(Cow::Owned)
}

/// A factor from the name a source uses for a method (`password`, `totp`, `webauthn`…),
/// case-insensitive; unknown names are kept as [`AuthFactor::Other`].
pub(crate) fn factor_from_source_name(name: &str) -> Option<AuthFactor> {
    let name = name.trim().to_ascii_lowercase();
    let factor = match name.as_str() {
        "" | "none" => return None,
        "password" | "passwd" | "pwd" | "pin" | "local" | "ldap" => AuthFactor::Password,
        "publickey" | "public_key" | "pubkey" | "ssh_key" | "sshkey" | "key" => {
            AuthFactor::PublicKey
        }
        "certificate" | "cert" | "x509" | "x.509" | "client_certificate" => AuthFactor::Certificate,
        "otp" | "totp" | "hotp" | "sms" | "one_time_password" | "token" => AuthFactor::Otp,
        "push" | "mobile_push" => AuthFactor::Push,
        "fido2" | "fido" | "webauthn" | "u2f" | "hardware_key" | "yubikey" | "smartcard"
        | "smart_card" | "piv" => AuthFactor::HardwareKey,
        "kerberos" | "sso" | "saml" | "oidc" | "spnego" => AuthFactor::Kerberos,
        _ => AuthFactor::Other(name),
    };
    Some(factor)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use time::macros::datetime;

    use super::*;

    #[test]
    fn endpoint_ids_are_socket_address_notation() {
        let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        for (ip, port) in [
            (v4(0, 0, 0, 0), 0),
            (v4(203, 0, 113, 7), 51120),
            (v4(255, 255, 255, 255), 65535),
            (v4(10, 9, 100, 1), 9),
            (IpAddr::V6(Ipv6Addr::LOCALHOST), 443),
        ] {
            assert_eq!(endpoint_id(ip, port), SocketAddr::new(ip, port).to_string());
        }
    }

    #[test]
    fn patterns_split_as_str_does() {
        static PEER: Pattern = Pattern::new(" Peer Connection Initiated with ");
        static QUOTE: Pattern = Pattern::new("é \"");
        for text in [
            "a/1.2.3.4:5 [x] Peer Connection Initiated with [AF_INET]1.2.3.4:5",
            " Peer Connection Initiated with ",
            "Peer Connection Initiated with x",
            "x Peer Connection Initiated with y Peer Connection Initiated with z",
            "",
            "né \"é \"ü",
        ] {
            assert_eq!(
                PEER.split_once(text),
                text.split_once(" Peer Connection Initiated with "),
                "{text:?}"
            );
            assert_eq!(QUOTE.split_once(text), text.split_once("é \""), "{text:?}");
            assert_eq!(
                PEER.is_in(text),
                text.contains(" Peer Connection Initiated with ")
            );
            assert_eq!(
                PEER.rsplit_once(text),
                text.rsplit_once(" Peer Connection Initiated with "),
                "{text:?}"
            );
            assert_eq!(
                QUOTE.rsplit_once(text),
                text.rsplit_once("é \""),
                "{text:?}"
            );
        }
    }

    #[test]
    fn pattern_rsplits_are_rmatch_indices_split() {
        static FROM: Pattern = Pattern::new(" from ");
        for text in [
            "alice from 1.2.3.4 port 22",
            "eve from bob from 10.0.0.1 port 22 from x",
            " from  from  from ",
            " from from ",
            "from",
            "",
            "é from ü from é",
        ] {
            let expected: Vec<(&str, &str)> = text
                .rmatch_indices(" from ")
                .map(|(at, sep)| (&text[..at], &text[at + sep.len()..]))
                .collect();
            assert_eq!(FROM.rsplits(text).collect::<Vec<_>>(), expected, "{text:?}");
        }
    }

    #[test]
    fn ascii_case_insensitive_checks() {
        assert!(contains_ignore_ascii_case("OpenVPN-server", "openvpn"));
        assert!(contains_ignore_ascii_case("my-ovpn", "ovpn"));
        assert!(!contains_ignore_ascii_case("opnvpn", "openvpn"));
        assert!(!contains_ignore_ascii_case("vpn", "openvpn"));
        assert!(contains_ignore_ascii_case("x", ""));
        assert!(starts_with_ignore_ascii_case("SSHD-session", "sshd"));
        assert!(!starts_with_ignore_ascii_case("ssh", "sshd"));
        assert!(!starts_with_ignore_ascii_case("éssh", "sshd"));
    }

    #[test]
    fn pairs_read_quoted_and_bare_values() {
        let p = Pairs::parse(
            r#"[wallix] date=2026-03-12 msg="SSL tunnel established" e="a \"b\" \\" x="" n=N/A tail"#,
        );
        assert_eq!(p.get("date"), Some("2026-03-12"));
        assert_eq!(p.get("msg"), Some("SSL tunnel established"));
        assert_eq!(p.get("e"), Some(r#"a "b" \"#));
        assert_eq!(p.get("x"), Some(""));
        assert_eq!(p.value("x"), None);
        assert_eq!(p.value("n"), None);
        assert_eq!(p.get("tail"), None);
        assert_eq!(p.get("[wallix]"), None);
    }

    #[test]
    fn pairs_survive_unterminated_quotes_and_odd_bytes() {
        let p = Pairs::parse("a=\"é\\");
        assert_eq!(p.get("a"), Some("é\\"));
        let p = Pairs::parse("=x ==y \"k\"=v é=ü");
        assert_eq!(p.get("é"), Some("ü"));
        assert_eq!(p.get("\"k\""), None);
    }

    #[test]
    fn endpoints_in_every_notation() {
        let v4 = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
        let v6: IpAddr = "2001:db8::7".parse().expect("v6");
        assert_eq!(parse_endpoint("203.0.113.7"), Some((v4, None)));
        assert_eq!(parse_endpoint("203.0.113.7:51234"), Some((v4, Some(51234))));
        assert_eq!(
            parse_endpoint("[AF_INET]203.0.113.7:51234"),
            Some((v4, Some(51234)))
        );
        assert_eq!(
            parse_endpoint("[AF_INET6]::ffff:203.0.113.7:51234"),
            Some((v4, Some(51234)))
        );
        assert_eq!(parse_endpoint("2001:db8::7"), Some((v6, None)));
        assert_eq!(parse_endpoint("[2001:db8::7]:443"), Some((v6, Some(443))));
        assert_eq!(
            parse_endpoint("udp6:[2001:db8::7]:1194"),
            Some((v6, Some(1194)))
        );
        assert_eq!(parse_endpoint("2001:db8::7:1194").map(|e| e.1), Some(None));
        assert_eq!(parse_socket("2001:db8::7:1194"), Some((v6, 1194)));
        assert_eq!(
            parse_socket("[AF_INET6]::ffff:203.0.113.7:1194"),
            Some((v4, 1194))
        );
        assert_eq!(parse_socket("203.0.113.7"), None);
        assert_eq!(parse_endpoint("[::1"), None);
        assert_eq!(parse_endpoint("host:22"), None);
        assert_eq!(
            endpoint_id(IpAddr::V6(Ipv6Addr::LOCALHOST), 22),
            "[::1]:22".to_owned()
        );
    }

    /// What `parse_ip` gave before its IPv4 fast path: the standard parser alone.
    fn std_ip(text: &str) -> Option<IpAddr> {
        let text = text.trim();
        let text = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
    }

    #[test]
    fn addresses_read_as_the_standard_parser_reads_them() {
        for text in [
            "",
            ".",
            "1.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..3.4",
            "1.2.3.4.",
            "999.1.1.1",
            "1.2.3.0004",
            " 10.0.0.1 ",
            "[10.0.0.1]",
            "::ffff:10.0.0.1",
            "1.2.3.4:80",
            "2001:db8::7",
        ] {
            assert_eq!(parse_ip(text), std_ip(text), "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn dotted_text_reads_as_the_standard_parser_reads_it(text in "[0-9.]{0,18}") {
            proptest::prop_assert_eq!(parse_ip(&text), std_ip(&text));
        }

        #[test]
        fn endpoints_with_one_colon_are_address_and_port(
            a in 0u8.., b in 0u8.., port in 0u16..,
            junk in "[0-9a-f:.]{0,12}",
        ) {
            let ip = IpAddr::V4(Ipv4Addr::new(a, b, 0, 7));
            proptest::prop_assert_eq!(parse_endpoint(&format!("{ip}:{port}")), Some((ip, Some(port))));
            // Whatever the text, the answer is the one the full parse gives.
            let full = match std_ip(&junk) {
                Some(ip) => Some((ip, None)),
                None => junk.rsplit_once(':').and_then(|(ip, port)| Some((std_ip(ip)?, Some(port.parse().ok()?)))),
            };
            proptest::prop_assert_eq!(parse_endpoint(&junk), full);
        }
    }

    #[test]
    fn times_in_rfc3339_and_unix_units() {
        let t = datetime!(2026-03-12 13:02:11 UTC);
        assert_eq!(parse_time("2026-03-12T14:02:11+01:00"), Some(t));
        assert_eq!(parse_time("1773320531"), Some(t));
        assert_eq!(parse_time("1773320531000"), Some(t));
        assert_eq!(parse_time("1773320531000000000"), Some(t));
        assert_eq!(parse_time("999999999999999999999"), None);
        assert_eq!(parse_time("12:00"), None);
    }

    #[test]
    fn json_paths_prefer_dotted_keys() {
        let v = serde_json::json!({"addr.remote": "1.2.3.4:5", "user": {"name": "a"}, "l": [1, {"x": true}]});
        let seg = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            json_path(&v, &seg("addr.remote"))
                .and_then(json_text)
                .as_deref(),
            Some("1.2.3.4:5")
        );
        assert_eq!(
            json_path(&v, &seg("user.name"))
                .and_then(json_text)
                .as_deref(),
            Some("a")
        );
        assert_eq!(
            json_path(&v, &seg("l.1.x")).and_then(json_text).as_deref(),
            Some("true")
        );
        assert_eq!(json_path(&v, &seg("l.9")), None);
        assert_eq!(json_path(&v, &seg("user")).and_then(json_text), None);
    }
}
