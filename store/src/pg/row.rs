//! A journal entry as a row of `entries`: the columns the auditor filters on, split out of
//! the canonical entry, beside the bytes, digest and MAC that verification needs.

use std::net::IpAddr;

use postgres_types::Type;
use proto::model::{DeclarationBody, Entry};
use time::OffsetDateTime;

use super::PgError;
use crate::journal::StoredEntry;

/// The tenant value of rows that belong to a chain rather than a tenant (seals).
pub const CHAIN_TENANT: &str = "";

/// The columns written by COPY, in order.
pub const COPY_ENTRIES: &str = "COPY entries (chain_id, seq, tenant, part_at, epoch, mac, \
    digest, entry_type, kind, source, vendor, person, account, target, session_id, \
    source_addr, occurred_at, received_at, canonical) FROM STDIN (FORMAT binary)";

/// The types of [`COPY_ENTRIES`]'s columns.
pub const COPY_TYPES: [Type; 19] = [
    Type::BYTEA,
    Type::INT8,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::INT8,
    Type::BYTEA,
    Type::BYTEA,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INET,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::BYTEA,
];

/// One row of `entries`, ready for COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRow {
    /// The chain.
    pub chain_id: [u8; 16],
    /// Position in the chain.
    pub seq: u64,
    /// The establishment ([`CHAIN_TENANT`] for seals).
    pub tenant: String,
    /// The partition key (see the schema): set by [`EntryRow::carry_part_at`].
    pub part_at: OffsetDateTime,
    /// The epoch whose key made `mac`.
    pub epoch: u32,
    /// The chain MAC.
    pub mac: [u8; 32],
    /// SHA-256 of `canonical`.
    pub digest: [u8; 32],
    /// `event`, `declaration` or `seal`.
    pub entry_type: &'static str,
    /// [`Entry::kind_name`].
    pub kind: &'static str,
    /// The reporting source (events) or who filed it (declarations).
    pub source: Option<String>,
    /// The vendor concerned.
    pub vendor: Option<String>,
    /// The person concerned.
    pub person: Option<String>,
    /// The account used.
    pub account: Option<String>,
    /// The target reached or concerned.
    pub target: Option<String>,
    /// The source's session id.
    pub session_id: Option<String>,
    /// The address connected from.
    pub source_addr: Option<IpAddr>,
    /// When it happened (events), was filed (declarations) or sealed (seals).
    pub occurred_at: OffsetDateTime,
    /// When the collector received it.
    pub received_at: OffsetDateTime,
    /// The canonical entry.
    pub canonical: Vec<u8>,
}

impl EntryRow {
    /// Splits a stored entry into columns; `part_at` is its journal `received_at` until
    /// [`EntryRow::carry_part_at`] is applied.
    ///
    /// # Errors
    /// [`PgError::Decode`] if the entry is not canonical.
    pub fn from_stored(chain_id: [u8; 16], stored: StoredEntry) -> Result<Self, PgError> {
        let seq = stored.link.seq;
        let entry = proto::canonical::decode(&stored.canonical)
            .map_err(|source| PgError::Decode { seq, source })?;
        let mut row = EntryRow {
            chain_id,
            seq,
            tenant: entry.tenant().unwrap_or(CHAIN_TENANT).to_owned(),
            part_at: stored.received_at,
            epoch: stored.link.epoch,
            mac: stored.link.mac,
            digest: proto::chain::digest(&stored.canonical),
            entry_type: "seal",
            kind: entry.kind_name(),
            source: None,
            vendor: entry.vendor().map(str::to_owned),
            person: None,
            account: None,
            target: None,
            session_id: None,
            source_addr: None,
            occurred_at: stored.received_at,
            received_at: stored.received_at,
            canonical: Vec::new(),
        };
        match entry {
            Entry::Event(e) => {
                row.entry_type = "event";
                row.source = Some(e.source);
                row.person = e.person;
                row.account = e.account;
                row.target = e.target;
                row.session_id = e.session_id;
                row.source_addr = e.source_addr;
                row.occurred_at = e.occurred_at;
                row.received_at = e.received_at;
            }
            Entry::Declaration(d) => {
                row.entry_type = "declaration";
                row.source = Some(d.filed_by);
                row.occurred_at = d.filed_at;
                match d.body {
                    DeclarationBody::Departure { person, .. } => row.person = Some(person),
                    DeclarationBody::Emergency { person, target, .. } => {
                        row.person = person;
                        row.target = target;
                    }
                    _ => {}
                }
            }
            Entry::Seal(s) => row.occurred_at = s.sealed_at,
        }
        row.canonical = stored.canonical;
        Ok(row)
    }

    /// Makes `part_at` never lower than the previous row's of the chain, and returns it
    /// (the next row's floor).
    pub fn carry_part_at(&mut self, floor: Option<OffsetDateTime>) -> OffsetDateTime {
        if let Some(floor) = floor
            && floor > self.part_at
        {
            self.part_at = floor;
        }
        self.part_at
    }

    /// Whether the row is a seal.
    pub fn is_seal(&self) -> bool {
        self.entry_type == "seal"
    }

    /// The epoch as stored (`bigint`).
    pub(crate) fn epoch_i64(&self) -> i64 {
        i64::from(self.epoch)
    }
}

/// A seq as stored (`bigint`).
///
/// # Errors
/// [`PgError::BadBatch`] for a seq over `i64::MAX` (no chain reaches it).
pub(crate) fn seq_i64(seq: u64) -> Result<i64, PgError> {
    i64::try_from(seq).map_err(|_| PgError::BadBatch {
        seq: Some(seq),
        what: "seq does not fit a bigint",
    })
}

/// A seq read back from a `bigint`.
pub(crate) fn seq_u64(table: &'static str, seq: i64) -> Result<u64, PgError> {
    u64::try_from(seq).map_err(|_| PgError::BadRow {
        table,
        seq: None,
        what: format!("negative seq {seq}"),
    })
}
