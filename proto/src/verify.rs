//! Chain verification (being written).
