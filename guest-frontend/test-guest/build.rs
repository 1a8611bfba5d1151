//! Link the bare-metal build as a static PIE at address 0 with
//! `linker/test-guest.ld`. Host builds (the `fn main` stub and unit tests)
//! get no extra arguments.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let script = manifest.join("../../linker/test-guest.ld");
    println!("cargo::rerun-if-changed={}", script.display());
    println!("cargo::rerun-if-changed=build.rs");

    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo::rustc-link-arg-bins=-T{}", script.display());
        // Static PIE: no interpreter, R_AARCH64_RELATIVE relocations in
        // .rela.dyn that the entry code applies; allow them in read-only
        // sections too (the MMU is off, so nothing is read-only at run time).
        for arg in ["-pie", "--no-dynamic-linker", "-znotext", "-znorelro"] {
            println!("cargo::rustc-link-arg-bins={arg}");
        }
    }
}
