//! `xenstore`: the multi-call client tool (`xenstore-read`, `-write`, `-ls`,
//! ...); all logic is in [`xenstore::tool`].

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let code = xenstore::tool::run(
        &argv,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    std::process::exit(code);
}
