//! Links the bare-metal build as a static PIE with
//! `linker/oxen.ld`; the entry code applies the `R_AARCH64_RELATIVE`
//! relocations itself, so one image runs wherever it is loaded.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../linker/oxen.ld");
    println!("cargo::rerun-if-changed={script}");
    if target.contains("-none") {
        println!("cargo::rustc-link-arg-bins=-T{script}");
        // No interpreter; dynamic relocations allowed in read-only sections
        // (the MMU is off while the entry code applies them).
        for arg in ["-pie", "--no-dynamic-linker", "-znotext", "-znorelro"] {
            println!("cargo::rustc-link-arg-bins={arg}");
        }
    }
}
