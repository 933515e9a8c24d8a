//! The ledger on disk and in PostgreSQL.
