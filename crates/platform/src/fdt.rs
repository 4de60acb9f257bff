//! Device tree generation (to be written).
