//! The auditor library's errors: one enum, with the file, line and field a reader needs.

use std::path::PathBuf;

use store::journal::JournalError;

/// Why an auditor operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A journal (the auditor's ledger or a collector's) could not be read or written.
    #[error("journal {}: {source}", dir.display())]
    Journal {
        /// The journal's directory.
        dir: PathBuf,
        /// What the store said.
        #[source]
        source: JournalError,
    },
    /// A verifier key file could not be read.
    #[error("verifier key {}: {source}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What the store said.
        #[source]
        source: JournalError,
    },
    /// PostgreSQL could not be reached or read.
    #[error("PostgreSQL: cannot {what}: {}", store::pg::error_chain(error))]
    Postgres {
        /// What was being done.
        what: String,
        /// What the store said (its causes are in the message).
        error: store::pg::PgError,
    },
    /// An entry of a ledger cannot be decoded.
    #[error("ledger {ledger}: seq {seq}: undecodable entry: {reason}")]
    Decode {
        /// The ledger's label.
        ledger: String,
        /// The entry's seq.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// Input refused: names the file (or `-` for the command line), line and field.
    #[error("{file}:{line}: {field}: {reason}")]
    Input {
        /// The file, or `command line`.
        file: String,
        /// The line (1-based; 0 for the command line).
        line: usize,
        /// The field at fault.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// An export bundle is malformed.
    #[error("bundle {}: line {line}: {reason}", path.display())]
    Bundle {
        /// The bundle file.
        path: PathBuf,
        /// The line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Writing output failed.
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
}

impl AuditError {
    /// Input refused on the command line.
    pub fn arg(field: &str, reason: impl Into<String>) -> Self {
        AuditError::Input {
            file: "command line".into(),
            line: 0,
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AuditError {
        let path = path.into();
        move |source| AuditError::Io { path, source }
    }

    pub(crate) fn postgres(
        what: impl Into<String>,
    ) -> impl FnOnce(store::pg::PgError) -> AuditError {
        let what = what.into();
        move |error| AuditError::Postgres { what, error }
    }

    pub(crate) fn journal(dir: impl Into<PathBuf>) -> impl FnOnce(JournalError) -> AuditError {
        let dir = dir.into();
        move |source| AuditError::Journal { dir, source }
    }

    pub(crate) fn key(path: impl Into<PathBuf>) -> impl FnOnce(JournalError) -> AuditError {
        let path = path.into();
        move |source| AuditError::Key { path, source }
    }
}
