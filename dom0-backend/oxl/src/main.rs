//! oxl, installed as `xl`: the toolstack CLI. The verbs are being wired up; until then the
//! binary only refuses to run.
#![allow(dead_code)] // the modules are used by the verbs, which land next

mod cfg;
mod dt;

fn main() {
    eprintln!("xl: not built yet");
    std::process::exit(1);
}
