//! Reading the ledger back from PostgreSQL: a chain in seq order for verification, and the
//! auditor's queries (each served by an index named beside it; the plans are in
//! `deploy/postgresql/EXPLAIN.md`).

use std::net::IpAddr;
use std::pin::pin;

use futures_util::TryStreamExt as _;
use proto::chain::Link;
use proto::verify::{Body, Record, Report, Verifier, VerifyKeys};
use time::OffsetDateTime;
use tokio_postgres::{GenericClient, Row};

use super::PgError;
use super::row::{seq_i64, seq_u64};
use crate::journal::StoredEntry;

/// The first page of a chain in seq order, as the journal stores it. A chain is read page
/// after page, each an ordered merge of the partitions' primary keys that stops at `LIMIT`;
/// one query over a whole chain is planned as a parallel sequential scan and an external
/// sort of every row instead (seen on 10 M rows: 21.7 s and 3.9 GB of temporary files
/// before the first row, against 40-70 ms a page of 65,536).
///
/// Pages follow the whole primary key `(seq, tenant, part_at)` ([`CHAIN_NEXT_PAGE`]), not
/// the seq alone: two rows with one seq (a duplicate someone inserted) are both read, and
/// verification reports them.
///
/// `part_at` never decreases along a chain and is never before `received_at`, so
/// `part_at >= $3` loses nothing and skips the months before the range; `part_at < $4`
/// (the end of the range plus [`PART_AT_SLACK`]) stops the reading after it.
const CHAIN_FIRST_PAGE: &str = "SELECT seq, epoch, mac, received_at, canonical, tenant, part_at \
    FROM entries WHERE chain_id = $1 AND seq >= $2 AND part_at >= $3 AND part_at < $4 \
    AND received_at >= $3 AND received_at < $5 ORDER BY seq, tenant, part_at LIMIT $6";

/// The page after the row `($6, $7, $8)` (its seq, tenant and part_at).
const CHAIN_NEXT_PAGE: &str = "SELECT seq, epoch, mac, received_at, canonical, tenant, part_at \
    FROM entries WHERE chain_id = $1 AND (seq, tenant, part_at) > ($6, $7, $8) \
    AND part_at >= $2 AND part_at < $3 AND received_at >= $2 AND received_at < $4 \
    ORDER BY seq, tenant, part_at LIMIT $5";

/// Rows per page of a chain.
const PAGE_ROWS: u32 = 65_536;

/// How far past the end of a range `part_at` is read: an entry received before the end
/// whose `part_at` is later than this would need the collector's clock to have gone back by
/// more than this along the chain.
const PART_AT_SLACK: time::Duration = time::Duration::days(1);

/// A chain's entries in a range, narrowed to one vendor in some tenants: the rows that
/// name the vendor, and the events that name none (the auditor attributes some of them to
/// the vendor's staff by their account). Index `entries_vendor_time` (one range for the
/// vendor, one for `NULL`), then a sort by seq of those rows only.
const CHAIN_VENDOR: &str = "SELECT seq, epoch, mac, received_at, canonical FROM entries \
    WHERE chain_id = $1 AND seq >= $2 AND part_at >= $3 AND received_at >= $3 \
    AND received_at < $4 AND tenant = ANY($6) \
    AND (vendor = $5 OR (vendor IS NULL AND entry_type = 'event')) ORDER BY seq";

/// The distinct tenants of `entries`, one index probe each (a loose scan of
/// `entries_vendor_time`, which PostgreSQL does not do by itself).
const TENANTS: &str = "WITH RECURSIVE t(tenant) AS ( \
        (SELECT tenant FROM entries ORDER BY tenant LIMIT 1) \
        UNION ALL \
        SELECT (SELECT e.tenant FROM entries e WHERE e.tenant > t.tenant \
                ORDER BY e.tenant LIMIT 1) FROM t WHERE t.tenant IS NOT NULL) \
    SELECT tenant FROM t WHERE tenant IS NOT NULL";

/// The chains PostgreSQL holds: those the replicator has a position for.
const CHAINS: &str = "SELECT chain_id FROM replication_positions ORDER BY chain_id";

const COLUMNS: &str = "chain_id, seq, tenant, entry_type, kind, source, vendor, person, \
    account, target, session_id, source_addr, occurred_at, received_at, canonical";

/// Index `entries_vendor_time`.
const VENDOR_JOURNAL: &str = "WHERE tenant = $1 AND vendor = $2 \
    AND occurred_at >= $3 AND occurred_at < $4 ORDER BY occurred_at, chain_id, seq";
/// Index `entries_person_time`.
const PERSON_SESSIONS: &str = "WHERE tenant = $1 AND person = $2 \
    AND occurred_at >= $3 AND occurred_at < $4 AND entry_type = 'event' \
    ORDER BY occurred_at, chain_id, seq";
/// Index `entries_vendor_time`.
const WINDOW_SESSIONS: &str = "WHERE tenant = $1 AND vendor = $2 \
    AND occurred_at >= $3 AND occurred_at < $4 \
    AND kind IN ('session_start', 'session_end', 'tunnel_up', 'tunnel_down') \
    ORDER BY occurred_at, chain_id, seq";
/// Index `entries_session`.
const SESSION_EVENTS: &str = "WHERE tenant = $1 AND session_id = $2 \
    ORDER BY occurred_at, chain_id, seq";
/// Index `entries_declarations`.
const DECLARATIONS: &str = "WHERE tenant = $1 AND entry_type = 'declaration' \
    AND occurred_at < $2 ORDER BY occurred_at, chain_id, seq";

/// The auditor's queries, as run by [`query`] (for `EXPLAIN` and for the auditor's own
/// tooling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerQuery {
    /// `(tenant, vendor, from, to)`: everything concerning a vendor over a period.
    VendorJournal,
    /// `(tenant, person, from, to)`: a person's connection events.
    PersonSessions,
    /// `(tenant, vendor, from, to)`: session and tunnel starts and ends of a vendor in a
    /// window.
    WindowSessions,
    /// `(tenant, session_id)`: the events of one session.
    SessionEvents,
    /// `(tenant, until)`: the declarations filed before an instant, in filing order.
    Declarations,
}

impl LedgerQuery {
    /// The full SQL.
    pub fn sql(self) -> String {
        let filter = match self {
            LedgerQuery::VendorJournal => VENDOR_JOURNAL,
            LedgerQuery::PersonSessions => PERSON_SESSIONS,
            LedgerQuery::WindowSessions => WINDOW_SESSIONS,
            LedgerQuery::SessionEvents => SESSION_EVENTS,
            LedgerQuery::Declarations => DECLARATIONS,
        };
        format!("SELECT {COLUMNS} FROM entries {filter}")
    }
}

/// One ledger row as the auditor reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// The chain.
    pub chain_id: [u8; 16],
    /// Position in the chain.
    pub seq: u64,
    /// The establishment (`''` for seals).
    pub tenant: String,
    /// `event`, `declaration` or `seal`.
    pub entry_type: String,
    /// The kind name.
    pub kind: String,
    /// Source (events) or filer (declarations).
    pub source: Option<String>,
    /// Vendor.
    pub vendor: Option<String>,
    /// Person.
    pub person: Option<String>,
    /// Account.
    pub account: Option<String>,
    /// Target.
    pub target: Option<String>,
    /// Session id.
    pub session_id: Option<String>,
    /// Address connected from.
    pub source_addr: Option<IpAddr>,
    /// When it happened / was filed / was sealed.
    pub occurred_at: OffsetDateTime,
    /// When the collector received it.
    pub received_at: OffsetDateTime,
    /// The canonical entry ([`proto::canonical::decode`] gives the whole entry).
    pub canonical: Vec<u8>,
}

/// Runs one of the auditor's queries.
///
/// # Errors
/// [`PgError::Query`], [`PgError::BadRow`].
pub async fn query(
    client: &impl GenericClient,
    which: LedgerQuery,
    params: &[&(dyn postgres_types::ToSql + Sync)],
) -> Result<Vec<LedgerRow>, PgError> {
    let rows = client
        .query(&which.sql(), params)
        .await
        .map_err(PgError::query("query", "entries", None))?;
    rows.iter().map(ledger_row).collect()
}

fn ledger_row(r: &Row) -> Result<LedgerRow, PgError> {
    let get = || PgError::query("read", "entries", None);
    let id: &[u8] = r.try_get(0).map_err(get())?;
    let seq = seq_u64("entries", r.try_get(1).map_err(get())?)?;
    let chain_id = id.try_into().map_err(|_| PgError::BadRow {
        table: "entries",
        seq: Some(seq),
        what: format!("chain id of {} bytes", id.len()),
    })?;
    Ok(LedgerRow {
        chain_id,
        seq,
        tenant: r.try_get(2).map_err(get())?,
        entry_type: r.try_get(3).map_err(get())?,
        kind: r.try_get(4).map_err(get())?,
        source: r.try_get(5).map_err(get())?,
        vendor: r.try_get(6).map_err(get())?,
        person: r.try_get(7).map_err(get())?,
        account: r.try_get(8).map_err(get())?,
        target: r.try_get(9).map_err(get())?,
        session_id: r.try_get(10).map_err(get())?,
        source_addr: r.try_get(11).map_err(get())?,
        occurred_at: r.try_get(12).map_err(get())?,
        received_at: r.try_get(13).map_err(get())?,
        canonical: r.try_get(14).map_err(get())?,
    })
}

/// Reads a chain from `from_seq` in seq order and hands each record to `each`, streaming
/// (memory stays bounded whatever the chain's length).
///
/// # Errors
/// [`PgError::Query`], [`PgError::BadRow`] for a value out of range.
pub async fn for_each_record(
    client: &impl GenericClient,
    chain_id: [u8; 16],
    from_seq: u64,
    mut each: impl FnMut(Record),
) -> Result<u64, PgError> {
    let range = StoredRange {
        from_seq,
        ..StoredRange::whole()
    };
    for_each_stored(client, chain_id, range, |stored| {
        each(Record {
            link: stored.link,
            body: Body::Full(stored.canonical),
        });
        true
    })
    .await
}

/// The chains replicated into this database, by id.
///
/// # Errors
/// [`PgError::Query`], [`PgError::BadRow`] for an id that is not 16 bytes.
pub async fn chains(client: &impl GenericClient) -> Result<Vec<[u8; 16]>, PgError> {
    let rows = client.query(CHAINS, &[]).await.map_err(PgError::query(
        "read",
        "replication_positions",
        None,
    ))?;
    rows.iter()
        .map(|r| {
            let id: &[u8] =
                r.try_get(0)
                    .map_err(PgError::query("read", "replication_positions", None))?;
            id.try_into().map_err(|_| PgError::BadRow {
                table: "replication_positions",
                seq: None,
                what: format!("chain id of {} bytes", id.len()),
            })
        })
        .collect()
}

/// The tenants that have entries (seals' [`super::CHAIN_TENANT`] among them).
///
/// # Errors
/// [`PgError::Query`].
pub async fn tenants(client: &impl GenericClient) -> Result<Vec<String>, PgError> {
    let rows = client
        .query(TENANTS, &[])
        .await
        .map_err(PgError::query("read", "entries", None))?;
    rows.iter()
        .map(|r| {
            r.try_get(0)
                .map_err(PgError::query("read", "entries", None))
        })
        .collect()
}

/// Which entries of a chain [`for_each_stored`] reads.
#[derive(Debug, Clone, Copy)]
pub struct StoredRange<'a> {
    /// From this seq…
    pub from_seq: u64,
    /// …those received from this instant…
    pub from: OffsetDateTime,
    /// …up to this one (excluded).
    pub to: OffsetDateTime,
    /// Only the entries of this vendor in these tenants, and their events that name no
    /// vendor: a vendor's journal reads these rows through the vendor index instead of
    /// the whole chain. The chain is then not whole: never verify what such a read gives.
    pub vendor: Option<(&'a str, &'a [String])>,
    /// Rows asked for at once (a reader that wants one row asks for one).
    pub page_rows: u32,
}

impl StoredRange<'_> {
    /// The whole chain.
    pub fn whole() -> Self {
        StoredRange {
            from_seq: 0,
            from: OffsetDateTime::UNIX_EPOCH,
            to: time::PrimitiveDateTime::MAX.assume_utc(),
            vendor: None,
            page_rows: PAGE_ROWS,
        }
    }
}

/// Reads the entries of a chain in `range` in seq order, as the journal stores them, and
/// hands each to `each` until it returns `false`; streaming, so memory stays bounded
/// whatever the range. Returns how many were handed over.
///
/// # Errors
/// [`PgError::Query`], [`PgError::BadRow`] for a value out of range.
pub async fn for_each_stored(
    client: &impl GenericClient,
    chain_id: [u8; 16],
    range: StoredRange<'_>,
    mut each: impl FnMut(StoredEntry) -> bool,
) -> Result<u64, PgError> {
    let id = &chain_id[..];
    let (from, to) = (range.from, range.to);
    let mut n = 0;
    if let Some((vendor, tenants)) = range.vendor {
        let from_seq = seq_i64(range.from_seq)?;
        let params: [&(dyn postgres_types::ToSql + Sync); 6] =
            [&id, &from_seq, &from, &to, &vendor, &tenants];
        let stream = client
            .query_raw(CHAIN_VENDOR, params)
            .await
            .map_err(PgError::query("read", "entries", None))?;
        stream_rows(stream, &mut n, &mut each).await?;
        return Ok(n);
    }
    let part_to = to
        .checked_add(PART_AT_SLACK)
        .unwrap_or(StoredRange::whole().to);
    let from_seq = seq_i64(range.from_seq)?;
    let page = i64::from(range.page_rows.max(1));
    let mut after: Option<(i64, String, OffsetDateTime)> = None;
    loop {
        let stream = match &after {
            None => {
                let params: [&(dyn postgres_types::ToSql + Sync); 6] =
                    [&id, &from_seq, &from, &part_to, &to, &page];
                client.query_raw(CHAIN_FIRST_PAGE, params).await
            }
            Some((seq, tenant, part_at)) => {
                let params: [&(dyn postgres_types::ToSql + Sync); 8] =
                    [&id, &from, &part_to, &to, &page, seq, tenant, part_at];
                client.query_raw(CHAIN_NEXT_PAGE, params).await
            }
        }
        .map_err(PgError::query("read", "entries", Some(range.from_seq)))?;
        let before = n;
        match stream_rows(stream, &mut n, &mut each).await? {
            // A full page: there may be more.
            Page::Ended(Some(last)) if n - before == page.unsigned_abs() => {
                after = Some(last);
            }
            Page::Ended(_) | Page::Stopped => return Ok(n),
        }
    }
}

/// How reading a page ended.
enum Page {
    /// `each` asked to stop.
    Stopped,
    /// Every row was read; the last row's primary key (seq, tenant, part_at), when the
    /// query returns them.
    Ended(Option<(i64, String, OffsetDateTime)>),
}

async fn stream_rows(
    stream: tokio_postgres::RowStream,
    n: &mut u64,
    each: &mut impl FnMut(StoredEntry) -> bool,
) -> Result<Page, PgError> {
    let mut stream = pin!(stream);
    let mut last = None;
    let mut last_seq = None;
    while let Some(row) = stream
        .try_next()
        .await
        .map_err(PgError::query("read", "entries", last_seq))?
    {
        let (link, received_at, canonical) = stored_parts(&row)?;
        *n += 1;
        last_seq = Some(link.seq);
        if row.len() > 6 {
            let get = || PgError::query("read", "entries", last_seq);
            last = Some((
                seq_i64(link.seq)?,
                row.try_get(5).map_err(get())?,
                row.try_get(6).map_err(get())?,
            ));
        }
        if !each(StoredEntry {
            link,
            received_at,
            canonical,
        }) {
            return Ok(Page::Stopped);
        }
    }
    Ok(Page::Ended(last))
}

/// The link, `received_at` and canonical bytes of a chain row.
fn stored_parts(row: &Row) -> Result<(Link, OffsetDateTime, Vec<u8>), PgError> {
    let get = || PgError::query("read", "entries", None);
    let link = link(row)?;
    let received_at = row.try_get(3).map_err(get())?;
    let canonical = row.try_get(4).map_err(get())?;
    Ok((link, received_at, canonical))
}

/// The link of a row whose first columns are `seq, epoch, mac`.
fn link(row: &Row) -> Result<Link, PgError> {
    let get = || PgError::query("read", "entries", None);
    let seq = seq_u64("entries", row.try_get(0).map_err(get())?)?;
    let bad = |what: String| PgError::BadRow {
        table: "entries",
        seq: Some(seq),
        what,
    };
    let epoch: i64 = row.try_get(1).map_err(get())?;
    let epoch = u32::try_from(epoch).map_err(|_| bad(format!("epoch {epoch} out of range")))?;
    let mac: &[u8] = row.try_get(2).map_err(get())?;
    let mac = mac
        .try_into()
        .map_err(|_| bad(format!("MAC of {} bytes", mac.len())))?;
    Ok(Link { seq, epoch, mac })
}

/// Verifies a chain as PostgreSQL holds it: every row in seq order through
/// [`proto::verify::Verifier`].
///
/// # Errors
/// [`PgError::Query`], [`PgError::BadRow`]; a damaged chain is not an error but a report
/// with problems.
pub async fn verify_chain(
    client: &impl GenericClient,
    chain_id: [u8; 16],
    keys: VerifyKeys,
) -> Result<Report, PgError> {
    let mut verifier = Verifier::new(keys);
    for_each_record(client, chain_id, 0, |r| verifier.push(r)).await?;
    Ok(verifier.finish())
}
