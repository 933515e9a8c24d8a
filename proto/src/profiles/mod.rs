//! Source profiles (being written).
