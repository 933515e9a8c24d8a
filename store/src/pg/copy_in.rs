//! Binary COPY of journal batches, with the replication position in the same transaction.
//!
//! A batch is first planned ([`plan_batch`], no I/O): its rows checked contiguous from the
//! position it continues, `part_at` carried forward, the position after it computed, the
//! months it reaches beyond the previous row's listed. Then it is written in one of two
//! ways, through the same steps (one function writes the rows):
//!
//! ```text
//!  one session: copy_batch / replicate_rows / catch_up
//!  BEGIN
//!    INSERT INTO replication_positions … ON CONFLICT DO UPDATE … RETURNING …
//!                                    (created at a chain's first batch; locked: one replicator)
//!    plan: batch.first_seq == next_seq ?  else PositionMismatch, ROLLBACK
//!    create the month partitions the batch needs, if missing
//!    COPY entries FROM STDIN (FORMAT binary)   … BinaryCopyInWriter::finish()
//!    UPDATE replication_positions SET next_seq = last_seq + 1, … WHERE next_seq = first_seq
//!  COMMIT
//!
//!  parallel sessions, in turn: copy_in_turn (the Replicator's workers; batch k after k-1)
//!  BEGIN
//!    ⏳ k-1 began its COPY             COPY entries FROM STDIN (FORMAT binary) …
//!    ⏳ k-1 updated the position       SELECT … FROM replication_positions … FOR UPDATE
//!                                      ⏳ (PostgreSQL) until k-1 commits or rolls back
//!    next_seq == first_seq ?  else PositionMismatch, ROLLBACK
//!    UPDATE replication_positions SET next_seq = last_seq + 1, … WHERE next_seq = first_seq
//!    ─► k+1 may lock the position
//!  COMMIT                              (partitions: created beforehand by the caller)
//! ```
//!
//! The position moves only with the rows it describes: a crash or a dropped connection
//! anywhere before `COMMIT` leaves neither (the next attempt starts again from the same
//! seq), after it both (the next attempt starts after the batch). If the client loses the
//! connection while `COMMIT` is in flight it cannot know which happened, and does not need
//! to: it reads the position again. Batches in turn commit in seq order, each only after
//! the one before it (a reader never sees a hole): a batch whose predecessor rolled back
//! finds the position unmoved and rolls back too. The lock is `SELECT … FOR UPDATE`, not a
//! guarded `UPDATE … WHERE next_seq = first_seq` alone: PostgreSQL evaluates an UPDATE's
//! condition on the row version its snapshot sees (the predecessor's, not yet committed,
//! is not it) and skips the row without waiting, while `FOR UPDATE` waits and returns the
//! row as the predecessor left it. The primary key `(chain_id, seq, tenant, part_at)`
//! would refuse a duplicate anyway, since a replayed entry carries the same values.

use std::collections::BTreeSet;
use std::pin::pin;

use postgres_types::ToSql;
use time::OffsetDateTime;
use tokio::sync::oneshot;
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
    RETURNING chain_id, next_seq, last_part_at, last_seal_seq";
/// Creates the chain's position if missing, without locking it.
const CREATE_POSITION: &str = "INSERT INTO replication_positions (chain_id, next_seq) \
    VALUES ($1, 0) ON CONFLICT (chain_id) DO NOTHING";
/// Locks the position once it exists. `FOR UPDATE` waits for a transaction that updated it
/// and then returns the row as that transaction left it (committed or rolled back); an
/// `UPDATE … WHERE next_seq = $2` would not wait: it tests the row it sees at its start
/// and skips it.
const LOCK_POSITION_ROW: &str = "SELECT chain_id, next_seq, last_part_at, last_seal_seq \
    FROM replication_positions WHERE chain_id = $1 FOR UPDATE";
const UPDATE_POSITION: &str = "UPDATE replication_positions \
    SET next_seq = $3, last_part_at = $4, last_seal_seq = $5, updated_at = now() \
    WHERE chain_id = $1 AND next_seq = $2";
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

/// A batch ready to copy: its rows with their final `part_at`, where the chain's position
/// stands before it and where it will stand after, and the months whose partitions it may
/// need. [`plan_batch`] computes it in seq order, before any of it is copied, so that
/// batches can be copied in parallel and committed in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBatch {
    rows: Vec<EntryRow>,
    from: Position,
    to: Position,
    months: BTreeSet<YearMonth>,
}

impl PlannedBatch {
    /// The rows, `part_at` carried forward.
    pub fn rows(&self) -> &[EntryRow] {
        &self.rows
    }

    /// The position the batch continues (`from().next_seq` is its first seq).
    pub fn from(&self) -> Position {
        self.from
    }

    /// The position once the batch is in.
    pub fn to(&self) -> Position {
        self.to
    }

    /// The months of its rows other than the month of the chain's previous row: their
    /// partitions may be missing (usually none).
    pub fn months(&self) -> impl Iterator<Item = YearMonth> + '_ {
        self.months.iter().copied()
    }
}

/// Plans `rows` as the batch that continues `from`: checks that they are one chain's
/// entries with contiguous seqs from `from.next_seq`, carries `part_at` forward from
/// `from.last_part_at` (see the schema) and computes the position after them. No I/O.
///
/// # Errors
/// [`PgError::BadBatch`] for an empty batch, rows of several chains (or not of `from`'s)
/// or with a hole; [`PgError::PositionMismatch`] when the batch does not start at
/// `from.next_seq`.
pub fn plan_batch(from: Position, mut rows: Vec<EntryRow>) -> Result<PlannedBatch, PgError> {
    let (to, months) = plan(from, &mut rows)?;
    Ok(PlannedBatch {
        rows,
        from,
        to,
        months,
    })
}

/// [`plan_batch`] on rows in place: the position after them and the months to look for.
fn plan(from: Position, rows: &mut [EntryRow]) -> Result<(Position, BTreeSet<YearMonth>), PgError> {
    let Some(first) = rows.first() else {
        return Err(PgError::BadBatch {
            seq: None,
            what: "empty batch",
        });
    };
    let (chain_id, first_seq) = (first.chain_id, first.seq);
    for (i, r) in rows.iter().enumerate() {
        if r.chain_id != chain_id || r.chain_id != from.chain_id {
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
    if first_seq != from.next_seq {
        return Err(PgError::PositionMismatch {
            chain: ChainId(chain_id),
            pg_next_seq: from.next_seq,
            batch_first_seq: first_seq,
        });
    }
    // The month of the chain's previous row has its partition (the row is in it): only a
    // batch reaching into another month looks for, and creates, partitions.
    let known = from.last_part_at.map(YearMonth::of);
    let mut floor = from.last_part_at;
    let mut last_seal_seq = from.last_seal_seq;
    let mut months = BTreeSet::new();
    for r in rows.iter_mut() {
        floor = Some(r.carry_part_at(floor));
        let month = YearMonth::of(r.part_at);
        if Some(month) != known {
            months.insert(month);
        }
        if r.is_seal() {
            last_seal_seq = Some(r.seq);
        }
    }
    let to = Position {
        chain_id,
        next_seq: first_seq + rows.len() as u64,
        last_part_at: floor,
        last_seal_seq,
    };
    Ok((to, months))
}

/// Copies one batch inside the open transaction `tx`: locks the chain's position (creating
/// it at the chain's first batch), checks that the batch continues it, creates any missing
/// month partition, COPYs the rows and advances the position. It does **not** commit: the
/// caller does, or drops `tx` to roll everything back. This is the one-session path
/// ([`replicate_rows`], [`catch_up`]); the [`Replicator`](super::Replicator)'s sessions
/// copy [`PlannedBatch`]es with [`copy_in_turn`] instead, through the same steps.
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
    let at = Some(first.seq);
    let locked = tx
        .query_one(LOCK_POSITION, &[&&first.chain_id[..]])
        .await
        .map_err(PgError::query("lock", "replication_positions", at))?;
    let from = position_from_row(&locked)?;
    let (to, months) = plan(from, rows)?;
    for month in months {
        schema::create_partition(tx, month).await?;
    }
    write_rows(tx, rows, None).await?;
    update_position(tx, from.next_seq, &to).await?;
    Ok(to)
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

/// A batch's place in the order of batches copied in parallel: what it waits for from the
/// batch before it (nothing for the first of a session) and tells the batch after it.
/// [`Turns::turn`] makes them in seq order.
#[derive(Debug)]
pub struct Turn {
    /// The batch before holds its lock on `entries` (its COPY began).
    previous_copying: Option<oneshot::Receiver<()>>,
    /// The batch before advanced the position: it holds the position's row lock until it
    /// commits.
    previous_updated: Option<oneshot::Receiver<()>>,
    /// Sent once this batch's COPY began.
    copying: oneshot::Sender<()>,
    /// Sent once this batch advanced the position.
    updated: oneshot::Sender<()>,
}

/// The turns of a session's batches, in seq order.
#[derive(Debug, Default)]
pub struct Turns {
    copying: Option<oneshot::Receiver<()>>,
    updated: Option<oneshot::Receiver<()>>,
}

impl Turns {
    /// The turn of the batch after the last one given (the first: waits for nothing).
    pub fn turn(&mut self) -> Turn {
        let (copying, copying_rx) = oneshot::channel();
        let (updated, updated_rx) = oneshot::channel();
        Turn {
            previous_copying: self.copying.replace(copying_rx),
            previous_updated: self.updated.replace(updated_rx),
            copying,
            updated,
        }
    }
}

/// Copies a planned batch in its own transaction, in its `turn`, and commits it:
///
/// 1. BEGIN; once the batch before began its COPY, COPY the rows (in parallel with it);
/// 2. once the batch before advanced the position, lock the position (`FOR UPDATE`:
///    PostgreSQL makes this wait until that batch commits or rolls back), check it stands
///    at this batch's first seq, advance it, and tell the batch after;
/// 3. COMMIT.
///
/// Commits are therefore in seq order, each with its position; a batch only ever waits for
/// batches before it. Month partitions are not created here: the caller creates those in
/// `batch.months` first, with no batch in flight.
///
/// # Errors
/// [`PgError::PositionMismatch`] when the position does not stand at the batch's first
/// seq (the batch before failed, or another replicator moved it), with nothing of the
/// batch committed; [`PgError::Query`].
pub async fn copy_in_turn(
    client: &mut Client,
    batch: &PlannedBatch,
    turn: Turn,
) -> Result<Position, PgError> {
    let Turn {
        previous_copying,
        previous_updated,
        copying,
        updated,
    } = turn;
    let (chain_id, first) = (batch.from.chain_id, batch.from.next_seq);
    let at = Some(first);
    let tx = client.transaction().await.map_err(PgError::query(
        "begin a transaction on",
        "entries",
        at,
    ))?;
    // A sender dropped unsent: the batch before failed and never commits.
    if let Some(previous) = previous_copying
        && previous.await.is_err()
    {
        return Err(mismatch(&tx, chain_id, first).await);
    }
    write_rows(&tx, &batch.rows, Some(copying)).await?;
    if let Some(previous) = previous_updated
        && previous.await.is_err()
    {
        return Err(mismatch(&tx, chain_id, first).await);
    }
    let locked = tx
        .query_opt(LOCK_POSITION_ROW, &[&&chain_id[..]])
        .await
        .map_err(PgError::query("lock", "replication_positions", at))?;
    let pg_next_seq = match locked {
        Some(row) => position_from_row(&row)?.next_seq,
        None => 0,
    };
    if pg_next_seq != first {
        return Err(PgError::PositionMismatch {
            chain: ChainId(chain_id),
            pg_next_seq,
            batch_first_seq: first,
        });
    }
    update_position(&tx, first, &batch.to).await?;
    let _ = updated.send(());
    tx.commit()
        .await
        .map_err(PgError::query("commit a batch into", "entries", at))?;
    Ok(batch.to)
}

/// Creates the chain's position, at seq 0, if PostgreSQL has none.
///
/// # Errors
/// [`PgError::Query`].
pub(crate) async fn create_position(
    client: &impl GenericClient,
    chain_id: [u8; 16],
) -> Result<(), PgError> {
    client
        .execute(CREATE_POSITION, &[&&chain_id[..]])
        .await
        .map_err(PgError::query("create", "replication_positions", None))?;
    Ok(())
}

/// Writes `rows` by binary COPY in `tx`: the one place rows are written. `copying` is told
/// once PostgreSQL accepted the COPY (it then holds its lock on `entries`).
async fn write_rows(
    tx: &Transaction<'_>,
    rows: &[EntryRow],
    copying: Option<oneshot::Sender<()>>,
) -> Result<(), PgError> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let (id, at) = (&first.chain_id[..], Some(first.seq));
    let sink =
        tx.copy_in(COPY_ENTRIES)
            .await
            .map_err(PgError::query("copy into", "entries", at))?;
    if let Some(copying) = copying {
        let _ = copying.send(());
    }
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &COPY_TYPES));
    for r in rows {
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
    Ok(())
}

/// Moves the position from `from_seq` to `to`, if it stands at `from_seq`.
///
/// # Errors
/// [`PgError::PositionMismatch`] when it does not, [`PgError::Query`].
async fn update_position(
    tx: &Transaction<'_>,
    from_seq: u64,
    to: &Position,
) -> Result<(), PgError> {
    let last_seal_seq = to.last_seal_seq.map(seq_i64).transpose()?;
    let updated = tx
        .execute(
            UPDATE_POSITION,
            &[
                &&to.chain_id[..],
                &seq_i64(from_seq)?,
                &seq_i64(to.next_seq)?,
                &to.last_part_at,
                &last_seal_seq,
            ],
        )
        .await
        .map_err(PgError::query(
            "update",
            "replication_positions",
            Some(from_seq),
        ))?;
    if updated == 1 {
        Ok(())
    } else {
        Err(mismatch(tx, to.chain_id, from_seq).await)
    }
}

/// The error of a batch from `first_seq` that does not continue the chain's position,
/// naming where the position stands.
async fn mismatch(client: &impl GenericClient, chain_id: [u8; 16], first_seq: u64) -> PgError {
    match position(client, chain_id).await {
        Ok(pos) => PgError::PositionMismatch {
            chain: ChainId(chain_id),
            pg_next_seq: pos.map_or(0, |p| p.next_seq),
            batch_first_seq: first_seq,
        },
        Err(e) => e,
    }
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
