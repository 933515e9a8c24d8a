//! Schema migrations and monthly partitions.
//!
//! Migrations are SQL files compiled into the binary, numbered from 1. [`migrate`] applies
//! the missing ones in **one transaction** under an advisory lock (two services starting
//! together do not race), recording each in `schema_migrations`; run again, it applies
//! nothing. A database whose schema is newer than the release is refused: an older binary
//! must not write into a layout it does not know.
//!
//! Partitions of `entries` are named `entries_pYYYY_MM` and hold `[first day of the month,
//! first day of the next)` in UTC. [`ensure_partitions`] creates the current month and
//! the months ahead (at least [`MIN_MONTHS_AHEAD`]); the replicator also creates, on
//! demand, the month of any row that falls outside them (a journal replayed after a long
//! outage). There is no default partition: a row with no partition is an error, never a
//! silent scan of a catch-all table when the next month is attached.

use time::{Date, Month, OffsetDateTime, UtcOffset};
use tokio_postgres::{Client, GenericClient};

use super::PgError;

/// One migration: its version, name and SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version it brings the schema to.
    pub version: i32,
    /// A short name.
    pub name: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// Every migration this release knows, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "ledger",
        sql: include_str!("migrations/0001_ledger.sql"),
    },
    Migration {
        version: 2,
        name: "byte order",
        sql: include_str!("migrations/0002_byte_order.sql"),
    },
];

/// The schema version this release writes and reads: the last migration's.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Fewest months of partitions kept ready after the current one.
pub const MIN_MONTHS_AHEAD: u32 = 3;

/// Arbitrary key of the advisory lock that serialises migrations and retention.
const LOCK_KEY: i64 = 0x5649_4749_4500_0001;

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";
const LOCK: &str = "SELECT pg_advisory_xact_lock($1)";
const CURRENT_VERSION: &str = "SELECT coalesce(max(version), 0) FROM schema_migrations";
const RECORD_MIGRATION: &str = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)";
const HAS_MIGRATIONS_TABLE: &str = "SELECT to_regclass('schema_migrations') IS NOT NULL";
const LIST_PARTITIONS: &str = "SELECT c.relname FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'entries'::regclass ORDER BY c.relname";

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The version found.
    pub from: i32,
    /// The version now.
    pub to: i32,
    /// The versions applied, in order (empty: the schema was current).
    pub applied: Vec<i32>,
}

/// Applies the missing migrations in one transaction.
///
/// # Errors
/// [`PgError::SchemaTooNew`] when the database is ahead of this release (nothing is
/// changed), [`PgError::Query`] when a statement fails (nothing is changed).
pub async fn migrate(client: &mut Client) -> Result<MigrationReport, PgError> {
    let tx = client.transaction().await.map_err(PgError::query(
        "begin a transaction on",
        "schema_migrations",
        None,
    ))?;
    tx.execute(LOCK, &[&LOCK_KEY])
        .await
        .map_err(PgError::query("lock", "schema_migrations", None))?;
    tx.batch_execute(CREATE_MIGRATIONS_TABLE)
        .await
        .map_err(PgError::query("create", "schema_migrations", None))?;
    let from: i32 = tx
        .query_one(CURRENT_VERSION, &[])
        .await
        .map_err(PgError::query("read", "schema_migrations", None))?
        .try_get(0)
        .map_err(PgError::query("read", "schema_migrations", None))?;
    if from > SCHEMA_VERSION {
        return Err(PgError::SchemaTooNew {
            found: from,
            known: SCHEMA_VERSION,
        });
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > from) {
        tx.batch_execute(m.sql).await.map_err(PgError::query(
            "apply migration to",
            m.name,
            None,
        ))?;
        tx.execute(RECORD_MIGRATION, &[&m.version, &m.name])
            .await
            .map_err(PgError::query(
                "record migration in",
                "schema_migrations",
                None,
            ))?;
        applied.push(m.version);
    }
    tx.commit().await.map_err(PgError::query(
        "commit migrations to",
        "schema_migrations",
        None,
    ))?;
    let to = applied.last().copied().unwrap_or(from);
    if !applied.is_empty() {
        tracing::info!(from, to, "database schema migrated");
    }
    Ok(MigrationReport { from, to, applied })
}

/// The schema version of the database (0 when it has none).
///
/// # Errors
/// [`PgError::Query`].
pub async fn schema_version(client: &impl GenericClient) -> Result<i32, PgError> {
    let exists: bool = client
        .query_one(HAS_MIGRATIONS_TABLE, &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(PgError::query("look up", "schema_migrations", None))?;
    if !exists {
        return Ok(0);
    }
    client
        .query_one(CURRENT_VERSION, &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(PgError::query("read", "schema_migrations", None))
}

/// Checks that the database holds exactly the schema this release knows (for readers
/// such as the auditor, which never migrate).
///
/// # Errors
/// [`PgError::SchemaTooNew`], [`PgError::SchemaBehind`], [`PgError::Query`].
pub async fn require_current(client: &impl GenericClient) -> Result<(), PgError> {
    let found = schema_version(client).await?;
    match found.cmp(&SCHEMA_VERSION) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => Err(PgError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        }),
        std::cmp::Ordering::Less => Err(PgError::SchemaBehind {
            found,
            known: SCHEMA_VERSION,
        }),
    }
}

/// A calendar month (UTC), the unit of partitioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    /// The year.
    pub year: i32,
    /// The month.
    pub month: Month,
}

impl YearMonth {
    /// The month holding `at` (in UTC).
    pub fn of(at: OffsetDateTime) -> Self {
        let utc = at.to_offset(UtcOffset::UTC);
        YearMonth {
            year: utc.year(),
            month: utc.month(),
        }
    }

    /// The month after.
    pub fn next(self) -> Self {
        match self.month {
            Month::December => YearMonth {
                year: self.year + 1,
                month: Month::January,
            },
            m => YearMonth {
                year: self.year,
                month: m.next(),
            },
        }
    }

    /// The month before.
    pub fn previous(self) -> Self {
        match self.month {
            Month::January => YearMonth {
                year: self.year - 1,
                month: Month::December,
            },
            m => YearMonth {
                year: self.year,
                month: m.previous(),
            },
        }
    }

    /// Midnight UTC on the first day of the month (the Unix epoch for a year outside
    /// [`time::Date`]'s range, which no partition reaches).
    pub fn start(self) -> OffsetDateTime {
        Date::from_calendar_date(self.year, self.month, 1)
            .map_or(OffsetDateTime::UNIX_EPOCH, |d| d.midnight().assume_utc())
    }

    /// The partition's name, `entries_pYYYY_MM`.
    pub fn partition_name(self) -> String {
        format!("entries_p{:04}_{:02}", self.year, u8::from(self.month))
    }

    /// The month a partition name stands for.
    pub fn from_partition_name(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("entries_p")?;
        let (y, m) = rest.split_once('_')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
        Some(YearMonth {
            year: y.parse().ok()?,
            month,
        })
    }
}

/// The monthly partitions of `entries` that exist, in month order.
///
/// # Errors
/// [`PgError::Query`]; [`PgError::BadRow`] for a partition not named by this release.
pub async fn partitions(client: &impl GenericClient) -> Result<Vec<YearMonth>, PgError> {
    let rows = client
        .query(LIST_PARTITIONS, &[])
        .await
        .map_err(PgError::query("list partitions of", "entries", None))?;
    let mut months = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String =
            row.try_get(0)
                .map_err(PgError::query("list partitions of", "entries", None))?;
        let month = YearMonth::from_partition_name(&name).ok_or_else(|| PgError::BadRow {
            table: "entries",
            seq: None,
            what: format!("partition {name} is not named entries_pYYYY_MM"),
        })?;
        months.push(month);
    }
    months.sort();
    Ok(months)
}

/// Creates the partition of `month` if it does not exist; returns whether it created it.
///
/// # Errors
/// [`PgError::Query`].
pub async fn create_partition(
    client: &impl GenericClient,
    month: YearMonth,
) -> Result<bool, PgError> {
    let name = month.partition_name();
    let existed = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .and_then(|r| r.try_get::<_, bool>(0))
        .map_err(PgError::query("look up", name.clone(), None))?;
    if existed {
        return Ok(false);
    }
    let (from, to) = (month.start(), month.next().start());
    // Names and bounds are ours (digits only): no user text reaches this statement.
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {name} PARTITION OF entries \
         FOR VALUES FROM ('{}') TO ('{}')",
        timestamp_literal(from),
        timestamp_literal(to)
    );
    client.batch_execute(&sql).await.map_err(PgError::query(
        "create partition",
        name.clone(),
        None,
    ))?;
    tracing::info!(partition = %name, "partition created");
    Ok(true)
}

/// Creates the partitions of the month of `now` and of `months_ahead` months after it
/// (at least [`MIN_MONTHS_AHEAD`]); returns the months it created.
///
/// # Errors
/// [`PgError::Query`].
pub async fn ensure_partitions(
    client: &impl GenericClient,
    now: OffsetDateTime,
    months_ahead: u32,
) -> Result<Vec<YearMonth>, PgError> {
    let mut month = YearMonth::of(now);
    let mut created = Vec::new();
    for _ in 0..=months_ahead.max(MIN_MONTHS_AHEAD) {
        if create_partition(client, month).await? {
            created.push(month);
        }
        month = month.next();
    }
    Ok(created)
}

/// `YYYY-MM-DD HH:MM:SS+00`, for partition bounds.
fn timestamp_literal(at: OffsetDateTime) -> String {
    let utc = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} 00:00:00+00",
        utc.year(),
        u8::from(utc.month()),
        utc.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn months_roll_over_years() {
        let dec = YearMonth::of(datetime!(2025-12-31 23:59:59 -01:00));
        assert_eq!(dec.partition_name(), "entries_p2026_01");
        assert_eq!(dec.previous().partition_name(), "entries_p2025_12");
        assert_eq!(dec.next().start(), datetime!(2026-02-01 0:00 UTC));
        assert_eq!(
            YearMonth::from_partition_name("entries_p2026_01"),
            Some(dec)
        );
        assert_eq!(YearMonth::from_partition_name("entries_p2026_13"), None);
        assert_eq!(YearMonth::from_partition_name("entries_default"), None);
    }
}
