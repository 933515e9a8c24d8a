//! Binary COPY of journal batches, with the replication position in the same transaction.
//!
//! ```text
//!  BEGIN
//!    INSERT INTO replication_positions … ON CONFLICT DO UPDATE … RETURNING next_seq, …
//!                                    (created at a chain's first batch; locked: one replicator)
//!    batch.first_seq == next_seq ?  else PositionMismatch, ROLLBACK
//!    create the month partitions the batch needs, if missing (only looked for when the
//!    batch reaches past the month of the chain's previous row)
//!    COPY entries FROM STDIN (FORMAT binary)   … BinaryCopyInWriter::finish()
//!    UPDATE replication_positions SET next_seq = last_seq + 1, …
//!  COMMIT
//! ```
//!
//! The position is read from PostgreSQL inside the transaction and moves only with the
//! rows it describes: a crash or a dropped connection anywhere before `COMMIT` leaves
//! neither (the next attempt starts again from the same seq), after it both (the next
//! attempt starts after the batch). If the client loses the connection while `COMMIT` is
//! in flight it cannot know which happened, and does not need to: it reads the position
//! again. The primary key `(chain_id, seq, tenant, part_at)` would refuse a duplicate
//! anyway, since a replayed entry carries the same values.

use std::collections::BTreeSet;
use std::pin::pin;

use postgres_types::ToSql;
use time::OffsetDateTime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::{Client, GenericClient, Transaction};

use super::PgError;
use super::error::ChainId;
use super::row::{COPY_ENTRIES, COPY_TYPES, EntryRow, seq_i64, seq_u64};
use super::schema::{self, YearMonth};
use crate::journal::JournalReader;

/// Creates the chain's position at its first batch, locks it and reads it, in one round
/// trip (`DO UPDATE` locks the row as `FOR UPDATE` would).
const LOCK_POSITION: &str = "INSERT INTO replication_positions (chain_id, next_seq) \
    VALUES ($1, 0) ON CONFLICT (chain_id) DO UPDATE SET chain_id = excluded.chain_id \
    RETURNING next_seq, last_part_at, last_seal_seq";
const UPDATE_POSITION: &str = "UPDATE replication_positions \
    SET next_seq = $2, last_part_at = $3, last_seal_seq = $4, updated_at = now() \
    WHERE chain_id = $1";
const SELECT_POSITION: &str = "SELECT chain_id, next_seq, last_part_at, last_seal_seq \
    FROM replication_positions WHERE chain_id = $1";
const SELECT_POSITIONS: &str = "SELECT chain_id, next_seq, last_part_at, last_seal_seq \
    FROM replication_positions ORDER BY chain_id";

/// Where a chain's replication stands in PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The chain.
    pub chain_id: [u8; 16],
    /// The first seq not yet in PostgreSQL.
    pub next_seq: u64,
    /// `part_at` of the last row (the floor of the next).
    pub last_part_at: Option<OffsetDateTime>,
    /// Seq of the last seal in PostgreSQL.
    pub last_seal_seq: Option<u64>,
}

impl Position {
    /// The position of a chain of which nothing is replicated.
    pub fn empty(chain_id: [u8; 16]) -> Self {
        Position {
            chain_id,
            next_seq: 0,
            last_part_at: None,
            last_seal_seq: None,
        }
    }
}

/// How much one batch may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most entries per batch (default 10,000: PostgreSQL commits are then negligible).
    pub max_rows: usize,
    /// Most bytes of canonical entries per batch (default 8 MiB).
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_rows: 10_000,
            max_bytes: 8 << 20,
        }
    }
}

/// The position of one chain, if PostgreSQL has any of it.
///
/// # Errors
/// [`PgError::Query`], [`PgError::BadRow`].
pub async fn position(
    client: &impl GenericClient,
    chain_id: [u8; 16],
) -> Result<Option<Position>, PgError> {
    let row = client
        .query_opt(SELECT_POSITION, &[&&chain_id[..]])
        .await
        .map_err(PgError::query("read", "replication_positions", None))?;
    row.map(|r| position_from_row(&r)).transpose()
}

/// The positions of every chain in PostgreSQL.
///
/// # Errors
/// [`PgError::Query`], [`PgError::BadRow`].
pub async fn positions(client: &impl GenericClient) -> Result<Vec<Position>, PgError> {
    let rows = client
        .query(SELECT_POSITIONS, &[])
        .await
        .map_err(PgError::query("read", "replication_positions", None))?;
    rows.iter().map(position_from_row).collect()
}

fn position_from_row(r: &tokio_postgres::Row) -> Result<Position, PgError> {
    let bad = |what: String| PgError::BadRow {
        table: "replication_positions",
        seq: None,
        what,
    };
    let get = PgError::query("read", "replication_positions", None);
    let id: &[u8] = r.try_get(0).map_err(get)?;
    let chain_id: [u8; 16] = id
        .try_into()
        .map_err(|_| bad(format!("chain id of {} bytes", id.len())))?;
    let next_seq: i64 =
        r.try_get(1)
            .map_err(PgError::query("read", "replication_positions", None))?;
    let last_part_at: Option<OffsetDateTime> =
        r.try_get(2)
            .map_err(PgError::query("read", "replication_positions", None))?;
    let last_seal_seq: Option<i64> =
        r.try_get(3)
            .map_err(PgError::query("read", "replication_positions", None))?;
    Ok(Position {
        chain_id,
        next_seq: seq_u64("replication_positions", next_seq)?,
        last_part_at,
        last_seal_seq: last_seal_seq
            .map(|s| seq_u64("replication_positions", s))
            .transpose()?,
    })
}

/// Copies one batch inside the open transaction `tx`: locks the chain's position, checks
/// that the batch continues it, creates any missing month partition, COPYs the rows and
/// advances the position. It does **not** commit: the caller does, or drops `tx` to roll
/// everything back.
///
/// `rows` must be one chain's entries with contiguous seqs; their `part_at` is carried
/// forward from the position (see the schema).
///
/// # Errors
/// [`PgError::BadBatch`] for rows of several chains or with a hole,
/// [`PgError::PositionMismatch`] when the batch does not start at the position (another
/// replicator moved it: read the position again), [`PgError::Query`].
pub async fn copy_batch(tx: &Transaction<'_>, rows: &mut [EntryRow]) -> Result<Position, PgError> {
    let Some(first) = rows.first() else {
        return Err(PgError::BadBatch {
            seq: None,
            what: "empty batch",
        });
    };
    let (chain_id, first_seq) = (first.chain_id, first.seq);
    for (i, r) in rows.iter().enumerate() {
        if r.chain_id != chain_id {
            return Err(PgError::BadBatch {
                seq: Some(r.seq),
                what: "rows of several chains",
            });
        }
        if Some(r.seq) != first_seq.checked_add(i as u64) {
            return Err(PgError::BadBatch {
                seq: Some(r.seq),
                what: "seqs are not contiguous",
            });
        }
    }
    let id = &chain_id[..];
    let at = Some(first_seq);
    let locked = tx
        .query_one(LOCK_POSITION, &[&id])
        .await
        .map_err(PgError::query("lock", "replication_positions", at))?;
    let pg_next: i64 =
        locked
            .try_get(0)
            .map_err(PgError::query("read", "replication_positions", at))?;
    let mut floor: Option<OffsetDateTime> =
        locked
            .try_get(1)
            .map_err(PgError::query("read", "replication_positions", at))?;
    let mut last_seal: Option<i64> =
        locked
            .try_get(2)
            .map_err(PgError::query("read", "replication_positions", at))?;
    let pg_next_seq = seq_u64("replication_positions", pg_next)?;
    if pg_next_seq != first_seq {
        return Err(PgError::PositionMismatch {
            chain: ChainId(chain_id),
            pg_next_seq,
            batch_first_seq: first_seq,
        });
    }

    // The month of the chain's previous row has its partition (the row is in it): only a
    // batch reaching into another month looks for, and creates, partitions.
    let known = floor.map(YearMonth::of);
    let mut months = BTreeSet::new();
    for r in rows.iter_mut() {
        floor = Some(r.carry_part_at(floor));
        let month = YearMonth::of(r.part_at);
        if Some(month) != known {
            months.insert(month);
        }
        if r.is_seal() {
            last_seal = Some(seq_i64(r.seq)?);
        }
    }
    for month in months {
        schema::create_partition(tx, month).await?;
    }

    let sink =
        tx.copy_in(COPY_ENTRIES)
            .await
            .map_err(PgError::query("copy into", "entries", at))?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &COPY_TYPES));
    for r in rows.iter() {
        let seq = seq_i64(r.seq)?;
        let epoch = r.epoch_i64();
        let values: [&(dyn ToSql + Sync); 19] = [
            &id,
            &seq,
            &r.tenant,
            &r.part_at,
            &epoch,
            &&r.mac[..],
            &&r.digest[..],
            &r.entry_type,
            &r.kind,
            &r.source,
            &r.vendor,
            &r.person,
            &r.account,
            &r.target,
            &r.session_id,
            &r.source_addr,
            &r.occurred_at,
            &r.received_at,
            &&r.canonical[..],
        ];
        writer
            .as_mut()
            .write(&values)
            .await
            .map_err(PgError::query("copy into", "entries", Some(r.seq)))?;
    }
    writer
        .as_mut()
        .finish()
        .await
        .map_err(PgError::query("copy into", "entries", at))?;

    let next_seq = first_seq + rows.len() as u64;
    tx.execute(
        UPDATE_POSITION,
        &[&id, &seq_i64(next_seq)?, &floor, &last_seal],
    )
    .await
    .map_err(PgError::query("update", "replication_positions", at))?;
    Ok(Position {
        chain_id,
        next_seq,
        last_part_at: floor,
        last_seal_seq: last_seal
            .map(|s| seq_u64("replication_positions", s))
            .transpose()?,
    })
}

/// Copies one batch in its own transaction and commits it.
///
/// # Errors
/// As [`copy_batch`]; [`PgError::Query`] if the commit fails (the batch may or may not be
/// in: read the [`position`] again).
pub async fn replicate_rows(
    client: &mut Client,
    mut rows: Vec<EntryRow>,
) -> Result<Position, PgError> {
    let first = rows.first().map(|r| r.seq);
    let tx = client.transaction().await.map_err(PgError::query(
        "begin a transaction on",
        "entries",
        first,
    ))?;
    let position = copy_batch(&tx, &mut rows).await?;
    tx.commit()
        .await
        .map_err(PgError::query("commit a batch into", "entries", first))?;
    Ok(position)
}

/// Reads up to `limits` entries of the journal from `from_seq` and splits them into rows
/// (blocking: call it from a blocking thread).
///
/// # Errors
/// [`PgError::Journal`], [`PgError::Decode`], [`PgError::JournalMissing`] when the journal
/// resumes after `from_seq`.
pub fn read_batch(
    reader: &JournalReader,
    from_seq: u64,
    limits: BatchLimits,
) -> Result<Vec<EntryRow>, PgError> {
    let chain_id = reader.chain_id();
    let last = from_seq.saturating_add(limits.max_rows.max(1) as u64 - 1);
    let mut rows = Vec::with_capacity(limits.max_rows.min(16_384));
    let mut bytes = 0usize;
    for entry in reader.scan_seq(from_seq..=last) {
        let entry = entry.map_err(|source| PgError::Journal {
            seq: from_seq,
            source,
        })?;
        if rows.is_empty() && entry.link.seq != from_seq {
            return Err(PgError::JournalMissing {
                chain: ChainId(chain_id),
                expected: from_seq,
                found: entry.link.seq,
            });
        }
        bytes += entry.canonical.len();
        rows.push(EntryRow::from_stored(chain_id, entry)?);
        if bytes >= limits.max_bytes {
            break;
        }
    }
    Ok(rows)
}

/// What [`catch_up`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// Rows copied.
    pub rows: u64,
    /// Transactions committed.
    pub batches: u64,
    /// The position reached.
    pub position: Position,
}

/// Copies everything the journal holds past PostgreSQL's position, batch after batch,
/// reading the next batch from the journal while the current one is copied. Returns when
/// the journal has nothing more.
///
/// # Errors
/// As [`replicate_rows`] and [`read_batch`]. Whatever was committed stays committed: call
/// it again to go on.
pub async fn catch_up(
    client: &mut Client,
    reader: &JournalReader,
    limits: BatchLimits,
) -> Result<CatchUp, PgError> {
    let chain_id = reader.chain_id();
    let mut pos = position(&*client, chain_id)
        .await?
        .unwrap_or(Position::empty(chain_id));
    let mut done = CatchUp {
        rows: 0,
        batches: 0,
        position: pos,
    };
    let mut pending = Some(spawn_read(reader, pos.next_seq, limits));
    while let Some(handle) = pending.take() {
        let rows = handle.await.map_err(PgError::Task)??;
        let Some(last) = rows.last().map(|r| r.seq) else {
            break;
        };
        let n = rows.len() as u64;
        pending = Some(spawn_read(reader, last + 1, limits));
        pos = replicate_rows(client, rows).await?;
        done.rows += n;
        done.batches += 1;
        done.position = pos;
    }
    Ok(done)
}

/// Reads a batch on a blocking thread.
pub(crate) fn spawn_read(
    reader: &JournalReader,
    from_seq: u64,
    limits: BatchLimits,
) -> tokio::task::JoinHandle<Result<Vec<EntryRow>, PgError>> {
    let reader = reader.clone();
    tokio::task::spawn_blocking(move || read_batch(&reader, from_seq, limits))
}
