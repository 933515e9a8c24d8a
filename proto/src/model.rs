//! The ledger's model: every fact an audit needs is an [`Entry`].
//!
//! An entry is a **connection event** reported by a bastion or VPN gateway, a
//! **declaration** filed by an RSSI or a vendor (staff lists, maintenance windows,
//! departures, emergencies, intervention reports), or a **seal** written by the chain's
//! writer (signed checkpoint of the chain head, or a retention cut).
//!
//! Instants are [`OffsetDateTime`]: the instant itself is compared in UTC, and the offset
//! the source gave is kept as received so the evidence shows what the source said. The
//! canonical binary form of these types (what the chain signs) is in [`crate::canonical`];
//! the serde derives are for interfaces (JSON APIs, exports) only.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    /// A connection event from a source.
    Event(ConnectionEvent),
    /// A declaration filed by a person with the right to do so.
    Declaration(Declaration),
    /// A seal written by the chain's writer.
    Seal(Seal),
}

impl Entry {
    /// The tenant (establishment) the entry belongs to, if it belongs to one.
    ///
    /// Seals belong to the chain, not to a tenant.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Entry::Event(e) => Some(&e.tenant),
            Entry::Declaration(d) => Some(&d.tenant),
            Entry::Seal(_) => None,
        }
    }

    /// The vendor the entry concerns, if any.
    pub fn vendor(&self) -> Option<&str> {
        match self {
            Entry::Event(e) => e.vendor.as_deref(),
            Entry::Declaration(d) => d.body.vendor(),
            Entry::Seal(_) => None,
        }
    }

    /// A short stable name of the entry's kind, as used in storage columns and logs.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Entry::Event(e) => e.kind.name(),
            Entry::Declaration(d) => d.body.name(),
            Entry::Seal(s) => match s.kind {
                SealKind::Checkpoint => "seal",
                SealKind::RetentionCut { .. } => "retention_cut",
            },
        }
    }
}

/// What happened in a connection event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// An interactive or tunnelled session began.
    SessionStart,
    /// A session ended.
    SessionEnd,
    /// Authentication succeeded.
    AuthSuccess,
    /// Authentication failed, with the reason the source gave.
    AuthFailure {
        /// The source's reason, e.g. `invalid password`.
        reason: String,
    },
    /// A VPN tunnel came up.
    TunnelUp,
    /// A VPN tunnel went down.
    TunnelDown,
    /// A message no source profile understood: kept as evidence with its raw text.
    Unmapped,
}

impl EventKind {
    /// A short stable name of the kind.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::SessionStart => "session_start",
            EventKind::SessionEnd => "session_end",
            EventKind::AuthSuccess => "auth_success",
            EventKind::AuthFailure { .. } => "auth_failure",
            EventKind::TunnelUp => "tunnel_up",
            EventKind::TunnelDown => "tunnel_down",
            EventKind::Unmapped => "unmapped",
        }
    }
}

/// An authentication factor a source reports as used.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthFactor {
    /// Something known: a password or PIN.
    Password,
    /// A private key held by the client (SSH public-key authentication).
    PublicKey,
    /// A client certificate (TLS, SSH certificates).
    Certificate,
    /// A one-time password (TOTP, HOTP, SMS code).
    Otp,
    /// A push approval on an enrolled device.
    Push,
    /// A hardware authenticator (FIDO2/WebAuthn, smart card).
    HardwareKey,
    /// Kerberos or another single-sign-on ticket.
    Kerberos,
    /// Any other factor, named as the source names it.
    Other(String),
}

impl AuthFactor {
    /// Whether the factor is a possession or inherence factor, i.e. counts as a second
    /// factor beside a password.
    pub fn is_possession(&self) -> bool {
        matches!(
            self,
            AuthFactor::Otp | AuthFactor::Push | AuthFactor::HardwareKey | AuthFactor::Certificate
        )
    }
}

/// A nominative, timestamped connection event as reported by a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionEvent {
    /// What happened.
    pub kind: EventKind,
    /// The establishment (tenant) the connection concerns.
    pub tenant: String,
    /// The authenticated source (bastion or gateway) that reported it.
    pub source: String,
    /// The vendor whose staff connected, when known.
    pub vendor: Option<String>,
    /// The nominative identity of the person, when known.
    pub person: Option<String>,
    /// The account used.
    pub account: Option<String>,
    /// The target resource reached.
    pub target: Option<String>,
    /// The protocol (ssh, rdp, vnc, https, ipsec, ssl-vpn…).
    pub protocol: Option<String>,
    /// The address the person connected from.
    pub source_addr: Option<IpAddr>,
    /// The source's session identifier, linking start and end.
    pub session_id: Option<String>,
    /// Authentication factors used, so MFA can be checked.
    pub factors: Vec<AuthFactor>,
    /// When it happened, by the source's clock, with the source's offset.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// When the collector received it, by the collector's clock.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// The original message, byte for byte, as evidence.
    #[serde(with = "raw_text")]
    pub raw: Vec<u8>,
}

/// A declaration, with who filed it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declaration {
    /// The establishment the declaration applies to.
    pub tenant: String,
    /// Who filed it (a user name of the auditor, or a vendor contact).
    pub filed_by: String,
    /// When it was filed.
    #[serde(with = "time::serde::rfc3339")]
    pub filed_at: OffsetDateTime,
    /// What is declared.
    pub body: DeclarationBody,
}

/// What a declaration declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "declaration", rename_all = "snake_case")]
pub enum DeclarationBody {
    /// A vendor is registered with the establishment.
    VendorRegistered {
        /// The vendor's identifier, as sources report it.
        vendor: String,
        /// The vendor's legal name.
        name: String,
    },
    /// The vendor's whole staff list, replacing any earlier one.
    StaffList {
        /// The vendor.
        vendor: String,
        /// The persons allowed to connect.
        persons: Vec<StaffMember>,
    },
    /// A person left: their accounts must be disabled from `effective_at`.
    Departure {
        /// The vendor.
        vendor: String,
        /// The person's identifier.
        person: String,
        /// From when the person may no longer connect.
        #[serde(with = "time::serde::rfc3339")]
        effective_at: OffsetDateTime,
    },
    /// A maintenance window is granted.
    WindowGranted(Window),
    /// A window is cancelled.
    WindowCancelled {
        /// The vendor.
        vendor: String,
        /// The window's identifier.
        window_id: String,
        /// Why.
        reason: String,
    },
    /// An emergency intervention outside any window.
    Emergency {
        /// The vendor.
        vendor: String,
        /// The person intervening, when known.
        person: Option<String>,
        /// The target concerned, when known.
        target: Option<String>,
        /// Start of the emergency.
        #[serde(with = "time::serde::rfc3339")]
        starts_at: OffsetDateTime,
        /// End of the emergency.
        #[serde(with = "time::serde::rfc3339")]
        ends_at: OffsetDateTime,
        /// Why.
        reason: String,
        /// Ticket reference.
        ticket: Option<String>,
    },
    /// A report of an intervention (date, nature of the operations, names).
    InterventionReport {
        /// The vendor.
        vendor: String,
        /// The window the report covers, when one did.
        window_id: Option<String>,
        /// Start of the intervention.
        #[serde(with = "time::serde::rfc3339")]
        started_at: OffsetDateTime,
        /// End of the intervention.
        #[serde(with = "time::serde::rfc3339")]
        ended_at: OffsetDateTime,
        /// Nature of the operations.
        nature: String,
        /// Persons who intervened.
        persons: Vec<String>,
    },
    /// Someone read or exported part of the ledger (journals, reports): recorded as evidence.
    AccessRecorded {
        /// What was done (`journal_export`, `report`, …).
        action: String,
        /// The scope, e.g. vendor and period.
        scope: String,
    },
}

impl DeclarationBody {
    /// The vendor the declaration concerns, if any.
    pub fn vendor(&self) -> Option<&str> {
        match self {
            DeclarationBody::VendorRegistered { vendor, .. }
            | DeclarationBody::StaffList { vendor, .. }
            | DeclarationBody::Departure { vendor, .. }
            | DeclarationBody::WindowCancelled { vendor, .. }
            | DeclarationBody::Emergency { vendor, .. }
            | DeclarationBody::InterventionReport { vendor, .. } => Some(vendor),
            DeclarationBody::WindowGranted(w) => Some(&w.vendor),
            DeclarationBody::AccessRecorded { .. } => None,
        }
    }

    /// A short stable name of the declaration's kind.
    pub fn name(&self) -> &'static str {
        match self {
            DeclarationBody::VendorRegistered { .. } => "vendor_registered",
            DeclarationBody::StaffList { .. } => "staff_list",
            DeclarationBody::Departure { .. } => "departure",
            DeclarationBody::WindowGranted(_) => "window_granted",
            DeclarationBody::WindowCancelled { .. } => "window_cancelled",
            DeclarationBody::Emergency { .. } => "emergency",
            DeclarationBody::InterventionReport { .. } => "intervention_report",
            DeclarationBody::AccessRecorded { .. } => "access_recorded",
        }
    }
}

/// One person of a vendor's staff list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffMember {
    /// The identifier sources use for the person (often the e-mail address).
    pub person: String,
    /// Family name.
    pub last_name: String,
    /// Given name.
    pub first_name: String,
    /// E-mail address.
    pub email: String,
    /// Accounts the person uses.
    pub accounts: Vec<String>,
    /// Declared access level (e.g. `read`, `admin`).
    pub access_level: String,
    /// Declared resources the person may reach.
    pub resources: Vec<String>,
    /// From when the person may connect.
    pub start_date: time::Date,
}

/// A granted maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// The window's identifier, unique per tenant.
    pub id: String,
    /// The vendor.
    pub vendor: String,
    /// Why the window is granted.
    pub reason: String,
    /// Ticket reference.
    pub ticket: Option<String>,
    /// Who approved it.
    pub approver: String,
    /// If not empty, only these persons are covered.
    pub persons: Vec<String>,
    /// If not empty, only these targets are covered.
    pub targets: Vec<String>,
    /// When the window is open.
    pub schedule: Schedule,
}

/// When a window is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "schedule", rename_all = "snake_case")]
pub enum Schedule {
    /// Open once, between two instants.
    OneOff {
        /// Opening instant.
        #[serde(with = "time::serde::rfc3339")]
        starts_at: OffsetDateTime,
        /// Closing instant.
        #[serde(with = "time::serde::rfc3339")]
        ends_at: OffsetDateTime,
    },
    /// Open repeatedly, by an iCalendar RRULE in a named time zone.
    Recurring {
        /// IANA zone name, e.g. `Europe/Paris`.
        zone: String,
        /// Local civil date-time of the first occurrence, `YYYY-MM-DDTHH:MM[:SS]`.
        first_start_local: String,
        /// Length of each occurrence, in seconds.
        duration_seconds: u32,
        /// The RRULE value, e.g. `FREQ=WEEKLY;BYDAY=TU`.
        rrule: String,
    },
}

/// A seal: written by the chain's writer, signed with Ed25519.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// Checkpoint or retention cut.
    pub kind: SealKind,
    /// The chain sealed.
    #[serde(with = "hex_bytes")]
    pub chain_id: [u8; 16],
    /// The epoch whose key MACed the entries this seal covers (and the seal itself).
    pub epoch: u32,
    /// The seal covers every entry with a seq lower than this (the seal's own seq).
    pub through_seq: u64,
    /// The MAC of entry `through_seq - 1`, the chain head the seal vouches for
    /// (all zeroes when the seal is the first entry).
    #[serde(with = "hex_bytes")]
    pub head_mac: [u8; 32],
    /// When the seal was made.
    #[serde(with = "time::serde::rfc3339")]
    pub sealed_at: OffsetDateTime,
    /// Ed25519 signature over [`crate::chain::seal_message`].
    #[serde(with = "hex_bytes")]
    pub signature: [u8; 64],
}

/// The kind of a seal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "seal", rename_all = "snake_case")]
pub enum SealKind {
    /// A periodic checkpoint of the chain head.
    Checkpoint,
    /// Entries with seq lower than `cut_seq` were removed by retention; `cut_prev_mac` is
    /// the MAC of entry `cut_seq - 1` and `cut_epoch` the epoch of entry `cut_seq`, so
    /// verification continues from the cut.
    RetentionCut {
        /// First seq kept.
        cut_seq: u64,
        /// MAC of the last entry removed.
        #[serde(with = "hex_bytes")]
        cut_prev_mac: [u8; 32],
        /// Epoch of the first entry kept.
        cut_epoch: u32,
    },
}

mod raw_text {
    //! Raw messages as text when they are UTF-8, as `base64:`-free hex otherwise.
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(raw: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(raw) {
            Ok(text) => s.serialize_str(text),
            Err(_) => s.serialize_str(&format!("hex:{}", super::hex_bytes::encode(raw))),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        match text.strip_prefix("hex:") {
            Some(hex) => super::hex_bytes::decode(hex).map_err(serde::de::Error::custom),
            None => Ok(text.into_bytes()),
        }
    }
}

pub(crate) mod hex_bytes {
    //! Fixed-size byte arrays as lowercase hex strings in JSON.
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn encode(bytes: &[u8]) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            out.push(DIGITS[usize::from(b >> 4)] as char);
            out.push(DIGITS[usize::from(b & 0xf)] as char);
        }
        out
    }

    pub fn decode(text: &str) -> Result<Vec<u8>, String> {
        if !text.len().is_multiple_of(2) {
            return Err(format!("hex string of odd length {}", text.len()));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| format!("invalid hex at character {i}"))
            })
            .collect()
    }

    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = decode(&text).map_err(serde::de::Error::custom)?;
        bytes.try_into().map_err(|v: Vec<u8>| {
            serde::de::Error::custom(format!("expected {N} bytes, got {}", v.len()))
        })
    }
}
