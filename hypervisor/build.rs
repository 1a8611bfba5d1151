//! Applies the hypervisor's linker script when building for the bare-metal target.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../linker/oxen-qemu-virt.ld");
    println!("cargo::rerun-if-changed={script}");
    if target.contains("-none") {
        println!("cargo::rustc-link-arg-bins=-T{script}");
        println!("cargo::rustc-link-arg-bins=--no-pie");
    }
}
