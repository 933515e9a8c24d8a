//! The PostgreSQL side's errors: each names the operation, the table and, for entries,
//! the chain seq.

use std::fmt;

use proto::canonical::DecodeError;

use crate::journal::JournalError;

/// A chain id, printed as hex in messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainId(pub [u8; 16]);

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainId({self})")
    }
}

/// The seq an error is placed at, if any, for messages.
fn at_seq(seq: &Option<u64>) -> String {
    seq.map(|s| format!(" at seq {s}")).unwrap_or_default()
}

fn humanize(d: &std::time::Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// Why something against PostgreSQL failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The server cannot be reached or refused the session. The URL is not repeated: it
    /// may hold a password.
    #[error("cannot connect to PostgreSQL")]
    Connect(#[source] tokio_postgres::Error),
    /// A statement failed.
    #[error("cannot {op} {table}{}", at_seq(seq))]
    Query {
        /// What was being done (`copy into`, `read`, `lock`, `create partition of`, …).
        op: &'static str,
        /// The table (or partition) concerned.
        table: String,
        /// The first seq of the batch concerned, if any.
        seq: Option<u64>,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database's schema is newer than this release knows: refuse to touch it.
    #[error(
        "database schema version {found} is newer than this release knows ({known}): upgrade vigie before running it against this database"
    )]
    SchemaTooNew {
        /// The version found in `schema_migrations`.
        found: i32,
        /// The latest version this release knows.
        known: i32,
    },
    /// The database's schema is older than this release needs.
    #[error(
        "database schema version {found} is older than this release needs ({known}): run `collector migrate`"
    )]
    SchemaBehind {
        /// The version found (0: no schema).
        found: i32,
        /// The version this release needs.
        known: i32,
    },
    /// A retention shorter than the charter allows.
    #[error(
        "retention of {months} months refused: charter 001 art. 41: at least 18 rolling months"
    )]
    RetentionTooShort {
        /// The months asked for.
        months: u32,
    },
    /// The client's runtime (or its thread) could not be started.
    #[error("cannot start the PostgreSQL client")]
    Runtime(#[source] std::io::Error),
    /// A value read from PostgreSQL is not what the schema promises.
    #[error("bad row in {table}{}: {what}", at_seq(seq))]
    BadRow {
        /// The table read.
        table: &'static str,
        /// The row's seq, if known.
        seq: Option<u64>,
        /// What is wrong.
        what: String,
    },
    /// An entry of the journal is not canonical: it cannot be split into columns.
    #[error("journal entry at seq {seq} is not a canonical entry")]
    Decode {
        /// Its seq.
        seq: u64,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// Reading the local journal failed.
    #[error("cannot read the journal from seq {seq}")]
    Journal {
        /// Where the read started.
        seq: u64,
        /// The journal's error.
        #[source]
        source: JournalError,
    },
    /// A batch does not start where PostgreSQL's position of its chain stands.
    #[error(
        "replication position of chain {chain} is seq {pg_next_seq} but the batch starts at seq {batch_first_seq}"
    )]
    PositionMismatch {
        /// The chain.
        chain: ChainId,
        /// The next seq PostgreSQL expects.
        pg_next_seq: u64,
        /// The batch's first seq.
        batch_first_seq: u64,
    },
    /// PostgreSQL holds more of the chain than the journal: the journal was replaced or
    /// restored from an older copy, and replicating would fork the ledger.
    #[error(
        "PostgreSQL holds chain {chain} up to seq {pg_next_seq} but the journal ends before seq {journal_next_seq}"
    )]
    PositionAhead {
        /// The chain.
        chain: ChainId,
        /// The next seq PostgreSQL expects.
        pg_next_seq: u64,
        /// The journal's next seq.
        journal_next_seq: u64,
    },
    /// The journal no longer holds the entries PostgreSQL needs next (its segments were
    /// deleted, or PostgreSQL was restored from an older copy): replicating would leave a
    /// hole.
    #[error(
        "the journal of chain {chain} has no entry at seq {expected}, the next PostgreSQL needs (it resumes at seq {found})"
    )]
    JournalMissing {
        /// The chain.
        chain: ChainId,
        /// The seq PostgreSQL needs.
        expected: u64,
        /// The first seq the journal has from there.
        found: u64,
    },
    /// A batch of entries of several chains, or not contiguous.
    #[error("batch is not contiguous in one chain{}: {what}", at_seq(seq))]
    BadBatch {
        /// Where it breaks.
        seq: Option<u64>,
        /// How.
        what: &'static str,
    },
    /// An operation took longer than its timeout (a server or network that hangs rather
    /// than fails): the session is dropped and a new one started.
    #[error("{op} took longer than {}", humanize(after))]
    Timeout {
        /// What timed out (`connect`, `copy a batch`).
        op: &'static str,
        /// The timeout.
        after: std::time::Duration,
    },
    /// A blocking task (journal read) panicked or was cancelled.
    #[error("journal reader task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl PgError {
    /// A failed statement on `table`.
    pub(crate) fn query(
        op: &'static str,
        table: impl Into<String>,
        seq: Option<u64>,
    ) -> impl FnOnce(tokio_postgres::Error) -> PgError {
        let table = table.into();
        move |source| PgError::Query {
            op,
            table,
            seq,
            source,
        }
    }

    /// Whether retrying later (after reconnecting) may succeed: the server was unreachable,
    /// the connection dropped, or a transaction was aborted by a conflict. Schema, data
    /// and configuration errors are not transient.
    pub fn is_transient(&self) -> bool {
        let pg = match self {
            PgError::Connect(_) | PgError::Timeout { .. } => return true,
            PgError::Query { op, source, .. } => {
                // Two replicators creating the same new partition at once: one loses the
                // race, its batch rolls back and is retried.
                let race = matches!(source.code().map(|c| c.code()), Some("23505" | "42P07"));
                if *op == "create partition" && race {
                    return true;
                }
                source
            }
            PgError::PositionMismatch { .. } => return true,
            _ => return false,
        };
        if pg.is_closed() {
            return true;
        }
        match pg.code() {
            None => true,
            Some(code) => {
                let c = code.code();
                // Connection exceptions, insufficient resources, operator intervention
                // (admin shutdown, terminated backend), serialization and deadlock.
                c.starts_with("08")
                    || c.starts_with("53")
                    || c.starts_with("57")
                    || c == "40001"
                    || c == "40P01"
            }
        }
    }
}
