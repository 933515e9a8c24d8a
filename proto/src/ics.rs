//! ics (being written).
