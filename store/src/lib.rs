//! The ledger on disk and in PostgreSQL.
//!
//! - [`journal`]: the local, append-only, fsync'ed journal every entry goes through first
//!   (segments, group commit, recovery, scans, keys).

pub mod journal;
pub mod pg;
