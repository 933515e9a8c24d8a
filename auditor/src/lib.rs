//! The auditor: what RSSIs and compliance auditors run against the ledger.
//!
//! - [`declare`], [`staff_csv`]: filing declarations (vendors, staff lists imported from a
//!   CSV, departures, windows, from an `.ics` too, cancellations, emergencies, reports)
//!   into the auditor's own chain, validated first so nothing is half-filed;
//! - [`ledger`]: the chains the ledger is read from, merged by time;
//! - [`decls`]: the declarations indexed per tenant and vendor, and what is in force when;
//! - [`rules`]: the streaming rule engine; [`audit`]: one run, with chain integrity and
//!   retention coverage; [`finding`]: findings and their explanations (French, English);
//! - [`report`]: conformance reports (JSON, CSV, self-contained HTML with an SVG timeline);
//! - [`export`]: a vendor's connection journal and the redacted bundle that verifies
//!   offline; [`verify`]: verification of a journal or a bundle;
//! - [`http`]: the HTTP API (JSON) and the [`pages`], with access by role ([`access`]),
//!   configured by [`config`] (`auditor serve`);
//! - [`progress`], [`time_fmt`]: progress on a terminal, Paris local time.

pub mod access;
pub mod audit;
pub mod config;
pub mod declare;
pub mod decls;
pub mod error;
pub mod export;
pub mod finding;
pub mod http;
pub mod ledger;
pub mod pages;
pub mod progress;
pub mod report;
pub mod rules;
pub mod staff_csv;
pub mod time_fmt;
pub mod verify;

pub use error::AuditError;
