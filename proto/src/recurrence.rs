//! Recurring maintenance windows (being written).
