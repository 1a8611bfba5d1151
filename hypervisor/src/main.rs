//! oxen EL2 binary (placeholder until the core lands).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("oxen is a bare-metal binary: build it with `make build`");
}
