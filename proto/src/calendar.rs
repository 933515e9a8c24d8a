//! calendar (being written).
