//! Embeds every `boards/*.board` file (sorted by name) as `BUILTIN`.
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("../../../boards");
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("boards/ directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "board"))
        .collect();
    files.sort();
    let mut out = String::from(
        "/// `(file stem, contents)` of every `boards/*.board`.\npub const BUILTIN: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        println!("cargo::rerun-if-changed={}", f.display());
        let stem = f.file_stem().and_then(|s| s.to_str()).expect("utf-8 name");
        let path = f.canonicalize().expect("board file");
        out += &format!(
            "    ({stem:?}, include_str!({:?})),\n",
            path.display().to_string()
        );
    }
    out += "];\n";
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("boards.rs");
    std::fs::write(dest, out).expect("write boards.rs");
}
