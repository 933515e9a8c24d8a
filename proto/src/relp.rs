//! RELP frames (rsyslog's Reliable Event Logging Protocol), with no I/O.
//!
//! The decoder has the same discipline as [`crate::framing`]: it looks at the unconsumed bytes
//! of the caller's buffer, answers `Ok(None)` while a frame is incomplete, and caps every frame.
//! The encoders write the server's answers (and the client's frames, for the load generator
//! and tests).
//!
//! ```text
//! frame    = TXNR SP COMMAND SP DATALEN [SP DATA] TRAILER
//! TXNR     = 1*9DIGIT        ; 1..=999,999,999, then wraps to 1; 0 only on hints (serverclose)
//! COMMAND  = 1*32ALPHA       ; open, syslog, close, rsp, serverclose; others kept by name
//! DATALEN  = 1*9DIGIT        ; octets of DATA; when 0 there is neither SP nor DATA
//! DATA     = DATALEN octets  ; at most max_frame_bytes here
//! TRAILER  = LF
//!
//! open data (offers) = offer *(LF offer)      offer = name ["=" value *("," value)]
//! rsp data           = [code SP text [LF offers]]   code = 3DIGIT; empty answers close
//!
//! client                                                server
//! 1 open 86 relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog\n
//!                                  ->
//!       <-  1 rsp 63 200 OK\nrelp_version=0\nrelp_software=vigie,0.1.0\ncommands=syslog\n
//! 2 syslog 68 <13>1 2026-03-01T10:00:01.123456+01:00 bastion sshd 812 - - Accepted\n
//!                                  ->
//!       <-  2 rsp 6 200 OK\n              (only once the message is durable)
//! 3 close 0\n                      ->
//!       <-  3 rsp 0\n
//!       <-  0 serverclose 0\n             (hint: the server is going away)
//! ```
//!
//! Every error is fatal to the session (RELP has no way to resynchronise): the server closes
//! the connection, and the client resends whatever was not acknowledged.

use std::ops::Range;

use crate::framing::push_decimal;

/// Longest TXNR or DATALEN, in digits.
const MAX_DIGITS: usize = 9;

/// Longest command name.
const MAX_COMMAND: usize = 32;

/// Largest DATALEN the wire format can carry.
pub const MAX_DATALEN: usize = 999_999_999;

/// Longest offer name.
const MAX_OFFER_NAME: usize = 32;

/// Longest error text written by [`encode_error`].
const MAX_ERROR_TEXT: usize = 255;

/// A transaction number: 0 (hints only) to 999,999,999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Txnr(u32);

impl Txnr {
    /// The transaction number of hints such as `serverclose`.
    pub const HINT: Txnr = Txnr(0);
    /// The first transaction number of a session.
    pub const FIRST: Txnr = Txnr(1);
    /// The largest transaction number.
    pub const MAX: Txnr = Txnr(999_999_999);

    /// A transaction number, if `n` is at most 999,999,999.
    pub fn new(n: u32) -> Option<Txnr> {
        (n <= Txnr::MAX.0).then_some(Txnr(n))
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The number that follows: 999,999,999 wraps to 1, as librelp does.
    pub fn next(self) -> Txnr {
        if self.0 >= Txnr::MAX.0 {
            Txnr::FIRST
        } else {
            Txnr(self.0 + 1)
        }
    }
}

/// A RELP command.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Command {
    /// `open`: starts a session, data are the client's offers.
    Open,
    /// `syslog`: data is one syslog message.
    Syslog,
    /// `close`: the client ends the session.
    Close,
    /// `rsp`: the answer to a command.
    Rsp,
    /// `serverclose`: hint that the server is going away.
    ServerClose,
    /// Any other name (1 to 32 ASCII letters); the server answers it with an error.
    Other(String),
}

impl Command {
    /// The command's name on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Command::Open => "open",
            Command::Syslog => "syslog",
            Command::Close => "close",
            Command::Rsp => "rsp",
            Command::ServerClose => "serverclose",
            Command::Other(name) => name,
        }
    }

    fn from_name(name: &[u8]) -> Command {
        match name {
            b"open" => Command::Open,
            b"syslog" => Command::Syslog,
            b"close" => Command::Close,
            b"rsp" => Command::Rsp,
            b"serverclose" => Command::ServerClose,
            // The decoder only lets ASCII letters through.
            other => Command::Other(String::from_utf8_lossy(other).into_owned()),
        }
    }

    fn is_valid_name(name: &str) -> bool {
        (1..=MAX_COMMAND).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphabetic())
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelpFrame {
    /// The transaction number.
    pub txnr: Txnr,
    /// The command.
    pub command: Command,
    /// Where DATA is in the buffer given to [`RelpDecoder::decode`].
    pub data: Range<usize>,
    /// How many bytes the caller drops from the front of its buffer before the next call.
    pub consumed: usize,
}

/// Why bytes are not RELP, or a value cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelpError {
    /// A frame header or trailer that breaks the grammar.
    #[error("relp {field} malformed at stream byte {offset}: {reason}")]
    Malformed {
        /// Stream offset of the offending byte.
        offset: u64,
        /// `txnr`, `command`, `datalen` or `trailer`.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// DATALEN over the cap.
    #[error(
        "relp frame at stream byte {offset} announces {len} bytes of data, over the cap of {max}"
    )]
    TooLarge {
        /// Stream offset of the frame.
        offset: u64,
        /// The announced length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Offers of an `open` command or response that break the grammar.
    #[error("relp offers malformed at data byte {offset}: {reason}")]
    Offers {
        /// Offset in the data.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// `rsp` data that do not start with a status code.
    #[error("relp response malformed at data byte {offset}: {reason}")]
    Response {
        /// Offset in the data.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A value that cannot be written as RELP.
    #[error("cannot encode relp {field}: {reason}")]
    Encode {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

impl RelpError {
    /// Whether the session may go on: never, RELP cannot resynchronise.
    pub fn can_continue(&self) -> bool {
        false
    }
}

/// Splits a RELP stream into frames; one per connection.
#[derive(Debug, Clone)]
pub struct RelpDecoder {
    max_frame_bytes: usize,
    position: u64,
}

/// Outcome of reading a number or a name.
enum Field<T> {
    NeedMore,
    Done(T, usize),
}

impl RelpDecoder {
    /// A decoder at the start of a session, accepting DATA of at most `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        RelpDecoder {
            max_frame_bytes: max_frame_bytes.min(MAX_DATALEN),
            position: 0,
        }
    }

    /// Stream offset of the first byte the caller has not dropped.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Finds the frame at the start of `buf`, the bytes of the session not yet dropped.
    ///
    /// `Ok(None)` means more bytes are needed; it is only answered while `buf` holds at most
    /// `max_frame_bytes + 55` bytes. After `Ok(Some(frame))` the caller drops
    /// `frame.consumed` bytes.
    ///
    /// # Errors
    ///
    /// [`RelpError::Malformed`] when the bytes break the grammar, [`RelpError::TooLarge`] when
    /// DATALEN is over the cap; both end the session.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<RelpFrame>, RelpError> {
        let Field::Done(txnr, at) = self.number(buf, 0, "txnr")? else {
            return Ok(None);
        };
        let at = match self.space(buf, at, "txnr")? {
            Some(at) => at,
            None => return Ok(None),
        };
        let Field::Done(name, at) = self.command(buf, at)? else {
            return Ok(None);
        };
        let Field::Done(len, at) = self.number(buf, at, "datalen")? else {
            return Ok(None);
        };
        let len = len as usize;
        let data = if len == 0 {
            at..at
        } else {
            if len > self.max_frame_bytes {
                return Err(RelpError::TooLarge {
                    offset: self.position,
                    len,
                    max: self.max_frame_bytes,
                });
            }
            let at = match self.space(buf, at, "datalen")? {
                Some(at) => at,
                None => return Ok(None),
            };
            at..at + len
        };
        let Some(&trailer) = buf.get(data.end) else {
            return Ok(None);
        };
        if trailer != b'\n' {
            return Err(self.malformed(data.end, "trailer", "expected LF after the data"));
        }
        let consumed = data.end + 1;
        let frame = RelpFrame {
            // number() read at most 9 digits.
            txnr: Txnr(txnr),
            command: Command::from_name(&buf[name]),
            data,
            consumed,
        };
        self.position += consumed as u64;
        Ok(Some(frame))
    }

    fn malformed(&self, at: usize, field: &'static str, reason: &'static str) -> RelpError {
        RelpError::Malformed {
            offset: self.position + at as u64,
            field,
            reason,
        }
    }

    /// 1 to 9 digits at `at`, ending at the byte after them.
    fn number(&self, buf: &[u8], at: usize, field: &'static str) -> Result<Field<u32>, RelpError> {
        let mut n = 0u32;
        let mut i = at;
        loop {
            match buf.get(i) {
                None => return Ok(Field::NeedMore),
                Some(b) if b.is_ascii_digit() => {
                    if i - at == MAX_DIGITS {
                        return Err(self.malformed(i, field, "more than 9 digits"));
                    }
                    n = n * 10 + u32::from(b - b'0');
                    i += 1;
                }
                Some(_) if i == at => return Err(self.malformed(i, field, "expected a digit")),
                Some(_) => return Ok(Field::Done(n, i)),
            }
        }
    }

    /// A space at `at`; the offset after it.
    fn space(
        &self,
        buf: &[u8],
        at: usize,
        after: &'static str,
    ) -> Result<Option<usize>, RelpError> {
        match buf.get(at) {
            None => Ok(None),
            Some(b' ') => Ok(Some(at + 1)),
            Some(_) => Err(self.malformed(at, after, "expected a space")),
        }
    }

    /// 1 to 32 letters then a space; the name's range and the offset after the space.
    fn command(&self, buf: &[u8], at: usize) -> Result<Field<Range<usize>>, RelpError> {
        let mut i = at;
        loop {
            match buf.get(i) {
                None => return Ok(Field::NeedMore),
                Some(b) if b.is_ascii_alphabetic() => {
                    if i - at == MAX_COMMAND {
                        return Err(self.malformed(i, "command", "more than 32 letters"));
                    }
                    i += 1;
                }
                Some(b' ') if i > at => return Ok(Field::Done(at..i, i + 1)),
                Some(_) => return Err(self.malformed(i, "command", "expected a letter")),
            }
        }
    }
}

/// Appends one frame.
///
/// # Errors
///
/// [`RelpError::Encode`] when the command name is not 1 to 32 ASCII letters or the data is
/// longer than [`MAX_DATALEN`].
pub fn encode_frame(
    txnr: Txnr,
    command: &Command,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), RelpError> {
    let name = command.as_str();
    if !Command::is_valid_name(name) {
        return Err(RelpError::Encode {
            field: "command",
            reason: "not 1 to 32 ASCII letters",
        });
    }
    if data.len() > MAX_DATALEN {
        return Err(RelpError::Encode {
            field: "data",
            reason: "longer than 999,999,999 bytes",
        });
    }
    write_frame(txnr, name, data, out);
    Ok(())
}

fn write_frame(txnr: Txnr, name: &str, data: &[u8], out: &mut Vec<u8>) {
    push_decimal(out, u64::from(txnr.0));
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    push_decimal(out, data.len() as u64);
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

/// Appends `TXNR rsp 6 200 OK\n`: the command succeeded (for `syslog`: the message is
/// durable).
pub fn encode_ok(txnr: Txnr, out: &mut Vec<u8>) {
    write_frame(txnr, "rsp", b"200 OK", out);
}

/// Appends `TXNR rsp N 500 text\n`: the command failed. `text` is cut to 255 bytes and its
/// line feeds are replaced by spaces.
pub fn encode_error(txnr: Txnr, text: &str, out: &mut Vec<u8>) {
    let mut cut = text.len().min(MAX_ERROR_TEXT);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut data = Vec::with_capacity(4 + cut);
    data.extend_from_slice(b"500 ");
    data.extend(
        text[..cut]
            .bytes()
            .map(|b| if b == b'\n' { b' ' } else { b }),
    );
    write_frame(txnr, "rsp", &data, out);
}

/// Appends the answer to `open`: `TXNR rsp N 200 OK\n` followed by the server's offers.
///
/// # Errors
///
/// [`RelpError::Encode`] when an offer cannot be written (see [`Offers::encode`]).
pub fn encode_open_response(
    txnr: Txnr,
    offers: &Offers,
    out: &mut Vec<u8>,
) -> Result<(), RelpError> {
    let mut data = b"200 OK\n".to_vec();
    offers.encode(&mut data)?;
    encode_frame(txnr, &Command::Rsp, &data, out)
}

/// Appends the `0 serverclose 0\n` hint.
pub fn encode_serverclose(out: &mut Vec<u8>) {
    write_frame(Txnr::HINT, "serverclose", b"", out);
}

/// The offers exchanged by `open` and its response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offers {
    /// `relp_version`: 0 for every librelp so far.
    pub relp_version: Option<u32>,
    /// `relp_software`, as sent (e.g. `librelp,1.11.0,http://librelp.adiscon.com`).
    pub relp_software: Option<String>,
    /// `commands`: the commands the peer supports beyond the core ones (e.g. `syslog`).
    pub commands: Vec<String>,
    /// Any other offer, name and value as sent.
    pub other: Vec<(String, String)>,
}

impl Offers {
    /// The offers this server makes: version 0, the given software name, `syslog`.
    pub fn server(software: &str) -> Offers {
        Offers {
            relp_version: Some(0),
            relp_software: Some(software.to_owned()),
            commands: vec!["syslog".to_owned()],
            other: Vec::new(),
        }
    }

    /// Parses the data of an `open` command (or of its response, after the status line).
    ///
    /// Empty lines are skipped; a name without `=` has an empty value.
    ///
    /// # Errors
    ///
    /// [`RelpError::Offers`] naming the offset of an empty or over-long (33+ bytes) offer
    /// name, or of a `relp_version` that is not a number.
    pub fn parse(data: &[u8]) -> Result<Offers, RelpError> {
        let mut offers = Offers::default();
        let mut at = 0;
        for line in data.split(|&b| b == b'\n') {
            let start = at;
            at += line.len() + 1;
            if line.is_empty() {
                continue;
            }
            let (name, value) = match line.iter().position(|&b| b == b'=') {
                Some(eq) => (&line[..eq], &line[eq + 1..]),
                None => (line, &b""[..]),
            };
            if name.is_empty() || name.len() > MAX_OFFER_NAME {
                return Err(RelpError::Offers {
                    offset: start,
                    reason: "offer name is not 1 to 32 bytes",
                });
            }
            let value_at = start + name.len() + 1;
            match name {
                b"relp_version" => {
                    let version = std::str::from_utf8(value)
                        .ok()
                        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|v| v.parse().ok())
                        .ok_or(RelpError::Offers {
                            offset: value_at,
                            reason: "relp_version is not a number",
                        })?;
                    offers.relp_version = Some(version);
                }
                b"relp_software" => offers.relp_software = Some(lossy(value)),
                b"commands" => {
                    offers.commands = value
                        .split(|&b| b == b',')
                        .filter(|c| !c.is_empty())
                        .map(lossy)
                        .collect();
                }
                _ => offers.other.push((lossy(name), lossy(value))),
            }
        }
        Ok(offers)
    }

    /// Appends the offers, one per line, no final LF (as librelp writes them).
    ///
    /// # Errors
    ///
    /// [`RelpError::Encode`] when a name is empty, over 32 bytes or holds `=`, `\n`; when a
    /// value holds `\n`; when a command is empty or holds `,`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), RelpError> {
        let mut lines: Vec<(&str, String)> = Vec::new();
        if let Some(version) = self.relp_version {
            lines.push(("relp_version", version.to_string()));
        }
        if let Some(software) = &self.relp_software {
            lines.push(("relp_software", software.clone()));
        }
        if !self.commands.is_empty() {
            if self
                .commands
                .iter()
                .any(|c| c.is_empty() || c.contains(','))
            {
                return Err(RelpError::Encode {
                    field: "offer",
                    reason: "a command is empty or holds a comma",
                });
            }
            lines.push(("commands", self.commands.join(",")));
        }
        for (name, value) in &self.other {
            if name.is_empty()
                || name.len() > MAX_OFFER_NAME
                || name.contains(['=', '\n'])
                || matches!(name.as_str(), "relp_version" | "relp_software" | "commands")
            {
                return Err(RelpError::Encode {
                    field: "offer",
                    reason: "name is not 1 to 32 bytes without '=' or LF, or is a known offer",
                });
            }
            lines.push((name, value.clone()));
        }
        for (i, (name, value)) in lines.iter().enumerate() {
            if value.contains('\n') {
                return Err(RelpError::Encode {
                    field: "offer",
                    reason: "value holds a line feed",
                });
            }
            if i > 0 {
                out.push(b'\n');
            }
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            out.extend_from_slice(value.as_bytes());
        }
        Ok(())
    }
}

/// The data of an `rsp` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status: 200 for success, 500 for an error.
    pub code: u16,
    /// The text after the code (`OK`, or the error).
    pub text: String,
    /// What follows the first line (the offers of an `open` response).
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the code is 200.
    pub fn is_ok(&self) -> bool {
        self.code == 200
    }

    /// Parses `rsp` data: `code SP text [LF body]`.
    ///
    /// librelp answers `close` with empty data, which is an error here: the caller knows it
    /// sent `close`.
    ///
    /// # Errors
    ///
    /// [`RelpError::Response`] when the data do not start with three digits and a space (or
    /// end after the digits).
    pub fn parse(data: &[u8]) -> Result<Response, RelpError> {
        let digits = data.get(..3).ok_or(RelpError::Response {
            offset: data.len(),
            reason: "expected a 3-digit status code",
        })?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(RelpError::Response {
                offset: 0,
                reason: "expected a 3-digit status code",
            });
        }
        let code = digits
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        let rest = match data.get(3) {
            None => &b""[..],
            Some(b' ') => &data[4..],
            Some(_) => {
                return Err(RelpError::Response {
                    offset: 3,
                    reason: "expected a space after the status code",
                });
            }
        };
        let (text, body) = match rest.iter().position(|&b| b == b'\n') {
            Some(lf) => (&rest[..lf], &rest[lf + 1..]),
            None => (rest, &b""[..]),
        };
        Ok(Response {
            code,
            text: lossy(text),
            body: body.to_vec(),
        })
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A frame as (txnr, command, data).
    type Seen = (u32, Command, Vec<u8>);

    /// Feeds `chunks` like a server would; the frames, then the error if any.
    fn run(max: usize, chunks: &[&[u8]]) -> (Vec<Seen>, Option<RelpError>) {
        let mut dec = RelpDecoder::new(max);
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            loop {
                match dec.decode(&buf) {
                    Ok(None) => break,
                    Ok(Some(f)) => {
                        frames.push((f.txnr.get(), f.command, buf[f.data].to_vec()));
                        buf.drain(..f.consumed);
                    }
                    Err(e) => return (frames, Some(e)),
                }
            }
            assert!(buf.len() <= max + 55);
        }
        (frames, None)
    }

    const OPEN: &[u8] = b"1 open 86 relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog\n";

    #[test]
    fn a_librelp_session() {
        let msg = b"<13>1 2026-03-01T10:00:01.123456+01:00 bastion sshd 812 - - Accepted\n";
        let mut stream = OPEN.to_vec();
        encode_frame(Txnr(2), &Command::Syslog, msg, &mut stream).unwrap();
        stream.extend_from_slice(b"3 close 0\n");
        let (frames, err) = run(1024, &[&stream]);
        assert_eq!(err, None);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].1, Command::Open);
        assert_eq!(frames[1], (2, Command::Syslog, msg.to_vec()));
        assert_eq!(frames[2], (3, Command::Close, Vec::new()));
        let offers = Offers::parse(&frames[0].2).unwrap();
        assert_eq!(
            offers,
            Offers {
                relp_version: Some(0),
                relp_software: Some("librelp,1.11.0,http://librelp.adiscon.com".into()),
                commands: vec!["syslog".into()],
                other: vec![],
            }
        );
    }

    #[test]
    fn responses() {
        let mut out = Vec::new();
        encode_ok(Txnr(2), &mut out);
        assert_eq!(out, b"2 rsp 6 200 OK\n");
        out.clear();
        encode_error(Txnr(7), "unknown command\nfoo", &mut out);
        assert_eq!(out, b"7 rsp 23 500 unknown command foo\n");
        out.clear();
        encode_serverclose(&mut out);
        assert_eq!(out, b"0 serverclose 0\n");
        out.clear();
        encode_open_response(Txnr(1), &Offers::server("vigie,0.1.0"), &mut out).unwrap();
        assert_eq!(
            out,
            b"1 rsp 63 200 OK\nrelp_version=0\nrelp_software=vigie,0.1.0\ncommands=syslog\n"
        );
        let (frames, _) = run(1024, &[&out]);
        let rsp = Response::parse(&frames[0].2).unwrap();
        assert!(rsp.is_ok());
        assert_eq!(rsp.text, "OK");
        assert_eq!(
            Offers::parse(&rsp.body).unwrap(),
            Offers::server("vigie,0.1.0")
        );
        let long = "é".repeat(200);
        out.clear();
        encode_error(Txnr(1), &long, &mut out);
        assert_eq!(out.len(), "1 rsp 258 500 ".len() + 254 + 1);
        assert!(Response::parse(b"").is_err());
        assert_eq!(
            Response::parse(b"500").unwrap(),
            Response {
                code: 500,
                text: String::new(),
                body: vec![]
            }
        );
        assert_eq!(
            Response::parse(b"20x OK").unwrap_err().to_string(),
            "relp response malformed at data byte 0: expected a 3-digit status code"
        );
    }

    #[test]
    fn unknown_commands_are_values() {
        let (frames, err) = run(100, &[b"4 starttls 0\n"]);
        assert_eq!(err, None);
        assert_eq!(frames, vec![(4, Command::Other("starttls".into()), vec![])]);
    }

    #[test]
    fn errors_name_field_and_offset() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"x open 0\n",
                "relp txnr malformed at stream byte 0: expected a digit",
            ),
            (
                b"1234567890 open 0\n",
                "relp txnr malformed at stream byte 9: more than 9 digits",
            ),
            (
                b"1\topen 0\n",
                "relp txnr malformed at stream byte 1: expected a space",
            ),
            (
                b"1 op3n 0\n",
                "relp command malformed at stream byte 4: expected a letter",
            ),
            (
                b"1  open 0\n",
                "relp command malformed at stream byte 2: expected a letter",
            ),
            (
                b"1 open x\n",
                "relp datalen malformed at stream byte 7: expected a digit",
            ),
            (
                b"1 open 0 \n",
                "relp trailer malformed at stream byte 8: expected LF after the data",
            ),
            (
                b"1 open 3 abcd\n",
                "relp trailer malformed at stream byte 12: expected LF after the data",
            ),
            (
                b"1 open 3\tabc\n",
                "relp datalen malformed at stream byte 8: expected a space",
            ),
            (
                b"1 syslog 101 x",
                "relp frame at stream byte 0 announces 101 bytes of data, over the cap of 100",
            ),
        ];
        for (input, message) in cases {
            let (_, err) = run(100, &[input]);
            assert_eq!(
                err.map(|e| e.to_string()).as_deref(),
                Some(*message),
                "{input:?}"
            );
        }
        let long_command = format!("1 {} 0\n", "a".repeat(33));
        let (_, err) = run(100, &[long_command.as_bytes()]);
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("relp command malformed at stream byte 34: more than 32 letters")
        );
        // Offsets are stream offsets: the second frame starts at byte 10.
        let (frames, err) = run(100, &[b"3 close 0\nx"]);
        assert_eq!(frames.len(), 1);
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("relp txnr malformed at stream byte 10: expected a digit")
        );
    }

    #[test]
    fn incomplete_frames_are_none() {
        let mut dec = RelpDecoder::new(1024);
        for n in 0..OPEN.len() {
            assert_eq!(dec.decode(&OPEN[..n]), Ok(None), "{n}");
        }
    }

    #[test]
    fn offers_errors_and_encoding() {
        assert_eq!(
            Offers::parse(b"relp_version=x").unwrap_err().to_string(),
            "relp offers malformed at data byte 13: relp_version is not a number"
        );
        assert!(Offers::parse(b"=1").is_err());
        let parsed = Offers::parse(b"\ncommands=syslog,,foo\nflag\nx=a=b\n").unwrap();
        assert_eq!(parsed.commands, vec!["syslog", "foo"]);
        assert_eq!(
            parsed.other,
            vec![("flag".into(), "".into()), ("x".into(), "a=b".into())]
        );
        let bad = Offers {
            other: vec![("a=b".into(), "c".into())],
            ..Offers::default()
        };
        assert!(bad.encode(&mut Vec::new()).is_err());
        assert!(encode_frame(Txnr(1), &Command::Other("x1".into()), b"", &mut Vec::new()).is_err());
    }

    #[test]
    fn txnr_wraps_to_one() {
        assert_eq!(Txnr::MAX.next(), Txnr::FIRST);
        assert_eq!(Txnr::new(5).map(Txnr::next), Txnr::new(6));
        assert_eq!(Txnr::new(1_000_000_000), None);
    }

    fn command() -> impl Strategy<Value = Command> {
        prop_oneof![
            Just(Command::Open),
            Just(Command::Syslog),
            Just(Command::Close),
            Just(Command::Rsp),
            Just(Command::ServerClose),
            "[a-zA-Z]{1,32}".prop_map(|s| Command::from_name(s.as_bytes())),
        ]
    }

    fn frames() -> impl Strategy<Value = Vec<Seen>> {
        proptest::collection::vec(
            (
                0u32..=999_999_999,
                command(),
                proptest::collection::vec(any::<u8>(), 0..300),
            ),
            0..12,
        )
    }

    proptest! {
        #[test]
        fn encode_then_decode_any_split(
            frames in frames(),
            cuts in proptest::collection::vec(any::<usize>(), 0..30),
        ) {
            let mut stream = Vec::new();
            for (txnr, command, data) in &frames {
                encode_frame(Txnr(*txnr), command, data, &mut stream).unwrap();
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut from = 0;
            for c in cuts {
                chunks.push(&stream[from..c]);
                from = c;
            }
            chunks.push(&stream[from..]);
            prop_assert_eq!(run(300, &[&stream]), (frames.clone(), None));
            prop_assert_eq!(run(300, &chunks), (frames, None));
        }

        #[test]
        fn random_bytes_never_panic_and_split_the_same(
            stream in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b' '), b'0'..=b'9', b'a'..=b'z', any::<u8>()],
                0..400),
            cut in any::<usize>(),
            max in 0usize..64,
        ) {
            let cut = cut % (stream.len() + 1);
            prop_assert_eq!(
                run(max, &[&stream]),
                run(max, &[&stream[..cut], &stream[cut..]])
            );
        }

        #[test]
        fn offers_round_trip(
            version in proptest::option::of(any::<u32>()),
            software in proptest::option::of("[^\n]{0,40}"),
            commands in proptest::collection::vec("[a-z]{1,10}", 0..4),
            other in proptest::collection::vec(("x[a-z_]{0,20}", "[^\n]{0,40}"), 0..4),
        ) {
            let offers = Offers { relp_version: version, relp_software: software, commands, other };
            let mut out = Vec::new();
            offers.encode(&mut out).unwrap();
            prop_assert_eq!(Offers::parse(&out).unwrap(), offers);
        }

        #[test]
        fn offers_and_responses_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Offers::parse(&data);
            let _ = Response::parse(&data);
        }
    }
}
