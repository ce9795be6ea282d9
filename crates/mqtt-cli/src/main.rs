//! The `mqtt` command.
fn main() {}
