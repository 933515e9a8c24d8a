//! The collector: the ingest server of the remote-maintenance connection journal.
//!
//! Bastions and VPN gateways send connection events over syslog/TLS (RFC 5425), RELP/TLS
//! or, for legacy appliances, syslog over plain TCP; each message is parsed, mapped by the
//! source's profiles, encoded canonically and submitted to the journal, which chains and
//! fsyncs it. RELP answers `200 OK` only once the message is durable.
//!
//! - [`config`]: the TOML configuration and its command-line overrides;
//! - [`tls`]: the rustls server configuration (ring only, mutual TLS) and certificate names;
//! - [`devcerts`]: a development PKI for first runs and tests;
//! - [`ingest`]: one message to one journal entry (tenant, profiles, unmapped events);
//! - `http`: JSON batches over HTTPS, answered once durable, idempotent by event id;
//! - [`pipeline`]: the bounded path to the journal and the durability answers;
//! - [`retention`]: `collector retention`, its dry run and its application;
//! - `replication`: the PostgreSQL replicator's task, metrics and shutdown;
//! - [`server`]: listeners, authentication, connection handlers, graceful shutdown;
//! - [`metrics`]: Prometheus metrics and their endpoint;
//! - [`shutdown`]: the SIGTERM/SIGINT future the binary passes to [`server::run`].

pub mod config;
mod conn;
pub mod devcerts;
mod http;
pub mod ingest;
pub mod metrics;
pub mod pipeline;
mod relp_conn;
mod replication;
pub mod retention;
pub mod server;
pub mod shutdown;
mod syslog_conn;
pub mod tls;

pub use conn::ConnError;
