//! The contract of the remote-maintenance connection journal, with no I/O.
//!
//! - [`model`]: connection events, declarations and seals, the entries of the ledger;
//! - [`canonical`]: their deterministic, versioned binary encoding (what the chain signs);
//! - [`chain`]: digests, MACs, the forward-secure key ratchet and signed seals;
//! - [`verify`]: verification of a chain, whole or redacted, with a precise diagnosis;
//! - [`recurrence`], [`calendar`], [`ics`]: maintenance windows in a named time zone,
//!   French public holidays, iCalendar import;
//! - [`framing`], [`relp`]: splitting a byte stream into messages (octet counting, LF,
//!   RELP frames), with a cap on every frame;
//! - [`syslog`], [`cef`], [`kv`]: parsing a message (RFC 5424, RFC 3164, CEF, key=value);
//! - [`profiles`]: turning a parsed message from a known source into a connection event.
//!
//! Nothing here opens a socket or a file, starts a runtime or installs a logger, so every
//! function is deterministic and can be fuzzed.

pub mod calendar;
pub mod canonical;
pub mod cef;
pub mod chain;
pub mod framing;
pub mod ics;
pub mod kv;
pub mod model;
pub mod profiles;
pub mod recurrence;
pub mod relp;
pub mod syslog;
pub mod verify;
