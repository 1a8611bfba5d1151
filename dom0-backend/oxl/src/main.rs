fn main() {
    eprintln!("oxl: not built yet");
    std::process::exit(1);
}
