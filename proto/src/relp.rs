//! relp (being written).
