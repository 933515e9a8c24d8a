//! Umbrella package of the remote-maintenance connection journal.
//!
//! It owns the end-to-end tests in `tests/` and the benches in `benches/`; the product
//! itself lives in the workspace members `proto`, `store`, `collector` and `auditor`.
//! This library only re-exports them so tests and benches name one crate.

pub use proto;
pub use store;
