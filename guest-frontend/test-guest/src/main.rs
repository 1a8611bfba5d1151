//! Bare-metal EL1 test guest for oxen
fn main() {}
