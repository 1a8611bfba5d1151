//! oxl, installed as `xl`: the toolstack CLI. The verbs are being wired up; until then the
//! binary only refuses to run.
#![allow(dead_code)] // the modules are used by the verbs, which land next

mod build;
mod cfg;
mod cmd;
mod dt;
#[cfg(test)]
mod fake;
mod fmt;
mod json;
mod sys;
mod xs;

fn main() {
    eprintln!("xl: not built yet");
    std::process::exit(1);
}
