//! cef (being written).
