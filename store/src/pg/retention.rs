//! Retention: whole monthly partitions expire, only after a retention seal.
//!
//! ```text
//!  months:   …  2025-04 │ 2025-05   2025-06  …  2026-11 (now)   2026-12 … (ahead)
//!               expired │ kept: the partition holding `now - months` and everything after
//!  chain C:  … 7 8 9 10 │ 11 12 …                       … 5000 (seal RetentionCut{cut_seq 11,
//!                       │                                  cut_prev_mac mac_10, cut_epoch e_11})
//! ```
//!
//! A partition may go when every row in it is older than the retention (at least
//! [`MIN_RETENTION_MONTHS`], refused below). Because `part_at` never decreases along a
//! chain, the expired rows of each chain are a prefix `..cut_seq` of it. Before anything
//! is dropped, each such chain must hold (replicated) a retention seal
//! `RetentionCut { cut_seq, cut_prev_mac, cut_epoch }` naming exactly that cut, so
//! verification starts at `cut_seq` and still checks its first link. [`plan`] is the dry
//! run: what would go, the cut of each chain, and which seals are still missing (the
//! chains' writers must write them: the collector asks its journal for the seal). [`apply`]
//! drops the partitions, in one transaction, only when every seal is there.
//!
//! The journal is the collector's buffer: [`journal_segments_to_drop`] says which of its
//! segments may go once PostgreSQL holds them and a seal after them.

use proto::model::{Entry, SealKind};
use time::{Date, OffsetDateTime, UtcOffset};
use tokio_postgres::{Client, GenericClient};

use super::PgError;
use super::copy_in::{Position, positions};
use super::error::ChainId;
use super::row::{seq_i64, seq_u64};
use super::schema::{self, YearMonth};

/// The charter's minimum (001 art. 41: at least 18 rolling months).
pub const MIN_RETENTION_MONTHS: u32 = 18;

const LOCK_KEY: i64 = 0x5649_4749_4500_0002;

const EXPIRED_RANGE: &str = "SELECT min(seq), max(seq) FROM entries \
    WHERE chain_id = $1 AND part_at < $2";
const FIRST_KEPT: &str = "SELECT min(seq) FROM entries WHERE chain_id = $1 AND part_at >= $2";
const ROW_AT: &str = "SELECT epoch, mac, entry_type FROM entries WHERE chain_id = $1 AND seq = $2";
const CUT_SEALS: &str = "SELECT seq, canonical FROM entries \
    WHERE chain_id = $1 AND seq >= $2 AND entry_type = 'seal' AND kind = 'retention_cut' \
    ORDER BY seq";
const RECORD_DROP: &str = "INSERT INTO retention_drops (partition_name, range_from, range_to) \
    VALUES ($1, $2, $3) ON CONFLICT (partition_name) DO UPDATE SET dropped_at = now()";

/// How long the ledger is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    months: u32,
}

impl RetentionPolicy {
    /// Keeps `months` rolling months.
    ///
    /// # Errors
    /// [`PgError::RetentionTooShort`] below [`MIN_RETENTION_MONTHS`]; the message cites
    /// the charter.
    pub fn new(months: u32) -> Result<Self, PgError> {
        if months < MIN_RETENTION_MONTHS {
            return Err(PgError::RetentionTooShort { months });
        }
        Ok(RetentionPolicy { months })
    }

    /// The months kept.
    pub fn months(self) -> u32 {
        self.months
    }

    /// `now` minus the retention, in calendar months (the day clamped to the month's
    /// length): everything received since must be kept.
    pub fn horizon(self, now: OffsetDateTime) -> OffsetDateTime {
        let now = now.to_offset(UtcOffset::UTC);
        let total = now.year() * 12 + i32::from(u8::from(now.month()))
            - 1
            - i32::try_from(self.months).unwrap_or(i32::MAX / 2);
        let (year, month0) = (total.div_euclid(12), total.rem_euclid(12));
        let month = u8::try_from(month0 + 1)
            .ok()
            .and_then(|m| time::Month::try_from(m).ok())
            .unwrap_or(time::Month::January);
        let day = now.day().min(month.length(year));
        Date::from_calendar_date(year, month, day).map_or(OffsetDateTime::UNIX_EPOCH, |d| {
            d.with_time(now.time()).assume_utc()
        })
    }
}

/// What a retention cut does to one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCut {
    /// The chain.
    pub chain_id: [u8; 16],
    /// First seq of the chain PostgreSQL holds.
    pub first_seq: u64,
    /// First seq kept: everything below goes.
    pub cut_seq: u64,
    /// MAC of entry `cut_seq - 1`.
    pub cut_prev_mac: [u8; 32],
    /// Epoch of entry `cut_seq`.
    pub cut_epoch: u32,
    /// Rows that would go (`cut_seq - first_seq`: the replicator keeps a chain's rows
    /// contiguous).
    pub rows: u64,
    /// Seq of the replicated retention seal naming this cut, if there is one.
    pub sealed_by: Option<u64>,
    /// Why the cut cannot be made at a partition boundary, if it cannot.
    pub blocked: Option<String>,
}

impl ChainCut {
    /// The seal the chain's writer must write before the cut.
    pub fn seal_kind(&self) -> SealKind {
        SealKind::RetentionCut {
            cut_seq: self.cut_seq,
            cut_prev_mac: self.cut_prev_mac,
            cut_epoch: self.cut_epoch,
        }
    }
}

/// What retention would do (dry run) or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Everything received after this is kept.
    pub horizon: OffsetDateTime,
    /// Partitions wholly before the horizon.
    pub expired: Vec<YearMonth>,
    /// The cut of each chain with rows in them.
    pub cuts: Vec<ChainCut>,
    /// The partitions dropped ([`apply`] only; empty for a dry run or when not ready).
    pub dropped: Vec<YearMonth>,
}

impl RetentionPlan {
    /// Whether the expired partitions may be dropped now: every cut sealed, none blocked.
    pub fn ready(&self) -> bool {
        !self.expired.is_empty()
            && self
                .cuts
                .iter()
                .all(|c| c.sealed_by.is_some() && c.blocked.is_none())
    }

    /// The cuts whose retention seal is still to be written.
    pub fn seals_needed(&self) -> impl Iterator<Item = &ChainCut> {
        self.cuts
            .iter()
            .filter(|c| c.sealed_by.is_none() && c.blocked.is_none())
    }
}

/// The dry run: which partitions are past the retention, and the cut and seal each chain
/// needs. Changes nothing.
///
/// # Errors
/// [`PgError::Query`], [`PgError::BadRow`].
pub async fn plan(
    client: &impl GenericClient,
    policy: RetentionPolicy,
    now: OffsetDateTime,
) -> Result<RetentionPlan, PgError> {
    let horizon = policy.horizon(now);
    let first_kept = YearMonth::of(horizon);
    let boundary = first_kept.start();
    let expired: Vec<YearMonth> = schema::partitions(client)
        .await?
        .into_iter()
        .filter(|m| *m < first_kept)
        .collect();
    let mut cuts = Vec::new();
    if !expired.is_empty() {
        // Every chain has a position; its expired rows are found through the primary key.
        for chain in positions(client).await? {
            let id = &chain.chain_id[..];
            let row = client
                .query_one(EXPIRED_RANGE, &[&id, &boundary])
                .await
                .map_err(PgError::query("plan retention of", "entries", None))?;
            let get = || PgError::query("plan retention of", "entries", None);
            let (first, last): (Option<i64>, Option<i64>) = (
                row.try_get(0).map_err(get())?,
                row.try_get(1).map_err(get())?,
            );
            let (Some(first), Some(last)) = (first, last) else {
                continue;
            };
            let (first, last) = (seq_u64("entries", first)?, seq_u64("entries", last)?);
            cuts.push(chain_cut(client, chain.chain_id, first, last, boundary).await?);
        }
    }
    Ok(RetentionPlan {
        horizon,
        expired,
        cuts,
        dropped: Vec::new(),
    })
}

async fn chain_cut(
    client: &impl GenericClient,
    chain_id: [u8; 16],
    first_seq: u64,
    last_expired: u64,
    boundary: OffsetDateTime,
) -> Result<ChainCut, PgError> {
    let id = &chain_id[..];
    let cut_seq = last_expired + 1;
    let mut blocked = None;
    let kept: Option<i64> = client
        .query_one(FIRST_KEPT, &[&id, &boundary])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(PgError::query(
            "plan retention of",
            "entries",
            Some(cut_seq),
        ))?;
    let kept = kept.map(|s| seq_u64("entries", s)).transpose()?;
    if let Some(k) = kept.filter(|&k| k != cut_seq) {
        blocked = Some(format!(
            "seq {k} is kept but seq {last_expired} expires: the chain does not cut at the partition boundary"
        ));
    }
    let (prev_epoch, prev_mac, prev_is_seal) = row_at(client, chain_id, last_expired)
        .await?
        .ok_or_else(|| PgError::BadRow {
            table: "entries",
            seq: Some(last_expired),
            what: "row vanished while planning retention".into(),
        })?;
    let cut_epoch = match kept {
        Some(k) => match row_at(client, chain_id, k).await? {
            Some((epoch, _, _)) => epoch,
            None => prev_epoch + u32::from(prev_is_seal),
        },
        None => prev_epoch + u32::from(prev_is_seal),
    };
    let mut cut = ChainCut {
        chain_id,
        first_seq,
        cut_seq,
        cut_prev_mac: prev_mac,
        cut_epoch,
        rows: cut_seq - first_seq,
        sealed_by: None,
        blocked,
    };
    let seals = client
        .query(CUT_SEALS, &[&id, &seq_i64(cut_seq)?])
        .await
        .map_err(PgError::query(
            "read retention seals in",
            "entries",
            Some(cut_seq),
        ))?;
    for row in seals {
        let get = || PgError::query("read retention seals in", "entries", Some(cut_seq));
        let seq = seq_u64("entries", row.try_get(0).map_err(get())?)?;
        let bytes: &[u8] = row.try_get(1).map_err(get())?;
        let entry =
            proto::canonical::decode(bytes).map_err(|source| PgError::Decode { seq, source })?;
        if let Entry::Seal(seal) = entry
            && seal.chain_id == chain_id
            && seal.kind == cut.seal_kind()
        {
            cut.sealed_by = Some(seq);
            break;
        }
    }
    Ok(cut)
}

async fn row_at(
    client: &impl GenericClient,
    chain_id: [u8; 16],
    seq: u64,
) -> Result<Option<(u32, [u8; 32], bool)>, PgError> {
    let row = client
        .query_opt(ROW_AT, &[&&chain_id[..], &seq_i64(seq)?])
        .await
        .map_err(PgError::query("read", "entries", Some(seq)))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let get = || PgError::query("read", "entries", Some(seq));
    let bad = |what: String| PgError::BadRow {
        table: "entries",
        seq: Some(seq),
        what,
    };
    let epoch: i64 = row.try_get(0).map_err(get())?;
    let epoch = u32::try_from(epoch).map_err(|_| bad(format!("epoch {epoch} out of range")))?;
    let mac: &[u8] = row.try_get(1).map_err(get())?;
    let mac = mac
        .try_into()
        .map_err(|_| bad(format!("MAC of {} bytes", mac.len())))?;
    let entry_type: &str = row.try_get(2).map_err(get())?;
    Ok(Some((epoch, mac, entry_type == "seal")))
}

/// Drops the expired partitions if every chain's cut is sealed (see [`RetentionPlan::ready`]),
/// in one transaction, and records each in `retention_drops`. Returns the plan with
/// `dropped` filled; when not ready, drops nothing and the plan says what is missing.
///
/// # Errors
/// [`PgError::Query`], [`PgError::BadRow`].
pub async fn apply(
    client: &mut Client,
    policy: RetentionPolicy,
    now: OffsetDateTime,
) -> Result<RetentionPlan, PgError> {
    let tx = client.transaction().await.map_err(PgError::query(
        "begin a transaction on",
        "entries",
        None,
    ))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(PgError::query("lock retention of", "entries", None))?;
    let mut plan = plan(&tx, policy, now).await?;
    if !plan.ready() {
        for cut in plan.seals_needed() {
            tracing::info!(chain = %ChainId(cut.chain_id), cut_seq = cut.cut_seq, "retention waits for a retention seal");
        }
        for cut in plan.cuts.iter().filter(|c| c.blocked.is_some()) {
            tracing::warn!(chain = %ChainId(cut.chain_id), reason = cut.blocked.as_deref().unwrap_or(""), "retention blocked");
        }
        return Ok(plan);
    }
    for month in plan.expired.clone() {
        let name = month.partition_name();
        // Our own name (digits only): no user text reaches this statement.
        tx.batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
            .await
            .map_err(PgError::query("drop partition", name.clone(), None))?;
        tx.execute(RECORD_DROP, &[&name, &month.start(), &month.next().start()])
            .await
            .map_err(PgError::query(
                "record the drop in",
                "retention_drops",
                None,
            ))?;
        plan.dropped.push(month);
    }
    tx.commit()
        .await
        .map_err(PgError::query("commit retention of", "entries", None))?;
    for month in &plan.dropped {
        tracing::info!(partition = %month.partition_name(), "partition dropped by retention");
    }
    Ok(plan)
}

/// How many of the journal's leading segments the collector may delete: those whose
/// every entry PostgreSQL holds **and** a replicated seal follows. The last segment (the
/// one being written) never goes.
///
/// `segment_first_seqs` are the first seqs of the journal's segments, in order.
pub fn journal_segments_to_drop(segment_first_seqs: &[u64], replicated: &Position) -> usize {
    let Some(sealed_below) = replicated.last_seal_seq else {
        return 0;
    };
    // The seal itself is replicated (it is below next_seq); it covers the seqs below it.
    let safe_end = sealed_below.min(replicated.next_seq);
    segment_first_seqs
        .windows(2)
        .take_while(|pair| pair[1] <= safe_end)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn retention_below_the_charter_is_refused() {
        let err = RetentionPolicy::new(17).unwrap_err();
        assert!(
            err.to_string()
                .contains("charter 001 art. 41: at least 18 rolling months"),
            "{err}"
        );
        assert_eq!(RetentionPolicy::new(18).map(|p| p.months()).ok(), Some(18));
    }

    #[test]
    fn horizon_counts_calendar_months() {
        let p = RetentionPolicy::new(18).unwrap();
        assert_eq!(
            p.horizon(datetime!(2026-11-24 05:00 UTC)),
            datetime!(2025-05-24 05:00 UTC)
        );
        assert_eq!(
            p.horizon(datetime!(2026-08-31 00:00 UTC)),
            datetime!(2025-02-28 00:00 UTC)
        );
        let p = RetentionPolicy::new(24).unwrap();
        assert_eq!(
            p.horizon(datetime!(2026-01-15 12:00 UTC)),
            datetime!(2024-01-15 12:00 UTC)
        );
    }

    #[test]
    fn segments_go_only_when_replicated_and_sealed() {
        let segs = [0, 100, 200, 300];
        let at = |next_seq, last_seal_seq| Position {
            chain_id: [0; 16],
            next_seq,
            last_part_at: None,
            last_seal_seq,
        };
        assert_eq!(journal_segments_to_drop(&segs, &at(1000, None)), 0);
        assert_eq!(journal_segments_to_drop(&segs, &at(1000, Some(99))), 0);
        assert_eq!(journal_segments_to_drop(&segs, &at(1000, Some(100))), 1);
        assert_eq!(journal_segments_to_drop(&segs, &at(1000, Some(250))), 2);
        // The open segment never goes, whatever the position.
        assert_eq!(journal_segments_to_drop(&segs, &at(1000, Some(999))), 3);
        // Not replicated yet: stays, sealed or not.
        assert_eq!(journal_segments_to_drop(&segs, &at(150, Some(140))), 1);
        assert_eq!(journal_segments_to_drop(&[0], &at(10, Some(9))), 0);
    }
}
