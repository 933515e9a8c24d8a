//! PostgreSQL, the system of record when one is configured: schema and migrations, binary
//! COPY replication from the journal, reads for verification and audits, retention.
//!
//! The journal stays the collector's durable buffer: every entry is acknowledged once it
//! is fsynced there, and the [`Replicator`] copies it here afterwards, in batches, with its
//! position in the same transaction. The auditor reads from here.
//!
//! # Schema (migration 1)
//!
//! ```text
//! entries  PARTITION BY RANGE (part_at): entries_p2026_11, entries_p2026_12, … (UTC months)
//! ┌─────────────┬─────────────┬──────────────────────────────────────────────────────────┐
//! │ chain_id    │ bytea(16)   │ PK (chain_id, seq, tenant, part_at)                      │
//! │ seq         │ bigint      │   serves verification (a chain in seq order), refuses    │
//! │ tenant      │ text        │   a replayed row; '' for seals (chain-level rows)        │
//! │ part_at     │ timestamptz │ partition key: journal received_at, never decreasing     │
//! │             │             │   along a chain (carried forward by the replicator)      │
//! │ epoch       │ bigint      │ ┐                                                        │
//! │ mac         │ bytea(32)   │ ├ the link: verify runs on what PostgreSQL holds         │
//! │ digest      │ bytea(32)   │ ┘ (digest: redacted exports straight from here)          │
//! │ entry_type  │ text        │ event | declaration | seal                               │
//! │ kind        │ text        │ session_start, …, staff_list, …, seal, retention_cut     │
//! │ source      │ text        │ bastion/gateway (events), filer (declarations)           │
//! │ vendor      │ text        │ idx entries_vendor_time (tenant, vendor, occurred_at)    │
//! │ person      │ text        │ idx entries_person_time (tenant, person, occurred_at)    │
//! │ account     │ text        │                                                          │
//! │ target      │ text        │                                                          │
//! │ session_id  │ text        │ idx entries_session (tenant, session_id)                 │
//! │ source_addr │ inet        │                                                          │
//! │ occurred_at │ timestamptz │ source clock / filed_at / sealed_at                      │
//! │ received_at │ timestamptz │ collector clock                                          │
//! │ canonical   │ bytea       │ the entry as the chain signed it                         │
//! └─────────────┴─────────────┴──────────────────────────────────────────────────────────┘
//!   + idx entries_declarations (tenant, occurred_at) WHERE entry_type = 'declaration'
//!   + idx entries_seals (chain_id, seq, tenant) WHERE entry_type = 'seal'
//!
//! replication_positions (chain_id PK, next_seq, last_part_at, last_seal_seq, updated_at)
//! retention_drops       (partition_name PK, range_from, range_to, dropped_at)
//! schema_migrations     (version PK, name, applied_at)
//! ```
//!
//! Citus: `entries` is distributed by `tenant` (in its primary key, its only unique
//! index); the three small tables are reference tables. Seals have no tenant: they are
//! stored under the chain-level tenant [`CHAIN_TENANT`] (`''`), so a chain's seals sit on
//! one shard and reading a chain in seq order is a merge of per-shard index scans. See
//! `deploy/postgresql/CITUS.md`.
//!
//! # Modules
//! - [`schema`]: migrations, schema version checks, monthly partitions.
//! - [`copy_in`]: a batch by binary COPY with its position, in one transaction; batches
//!   copied in parallel sessions and committed in seq order.
//! - [`replicator`]: the long-running replicator with retries and lag.
//! - [`read`]: a chain for verification, the auditor's queries.
//! - [`retention`]: the retention policy, dry run, partition drops, journal segments.

pub mod copy_in;
mod error;
pub mod read;
pub mod replicator;
pub mod retention;
mod row;
pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;

pub use crate::error_chain;
pub use copy_in::{
    BatchLimits, CatchUp, PlannedBatch, Position, Turn, Turns, catch_up, copy_batch, copy_in_turn,
    plan_batch, position, positions, read_batch, replicate_rows,
};
pub use error::{ChainId, PgError};
pub use read::{
    LedgerQuery, LedgerRow, StoredRange, chains, for_each_record, for_each_stored, query, tenants,
    verify_chain,
};
pub use replicator::{ReplicationStatus, Replicator, ReplicatorConfig};
pub use retention::{
    ChainCut, MIN_RETENTION_MONTHS, RetentionPlan, RetentionPolicy, journal_segments_to_drop,
};
pub use row::{CHAIN_TENANT, COPY_ENTRIES, COPY_TYPES, EntryRow};
pub use schema::{
    MIGRATIONS, MigrationReport, SCHEMA_VERSION, YearMonth, ensure_partitions, migrate,
    require_current, schema_version,
};

use tokio_postgres::{Client, NoTls};

/// Connects without TLS (loopback or a trusted network; see `deploy/postgresql/README.md`)
/// and spawns the connection's task, which ends when the [`Client`] is dropped: await the
/// handle after dropping the client to be sure it is gone.
///
/// # Errors
/// [`PgError::Connect`].
pub async fn connect(url: &str) -> Result<(Client, tokio::task::JoinHandle<()>), PgError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(PgError::Connect)?;
    let task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok((client, task))
}
