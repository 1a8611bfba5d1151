//! Runs the built binary: usage errors and a missing device give one line and exit 1.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_evtchn-ping"))
        .args(args)
        .output()
        .expect("spawn evtchn-ping");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn missing_device_fails_with_one_helpful_line() {
    let (code, stdout, stderr) = run(&["10", "--device", "/nonexistent/evtchn"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("evtchn-ping: error: open /nonexistent/evtchn: "),
        "{stderr}"
    );
    assert!(stderr.contains("is xen-evtchn loaded?"), "{stderr}");
}

#[test]
fn bad_argument_fails_with_usage() {
    let (code, _, stderr) = run(&["--frobnicate"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown option --frobnicate"), "{stderr}");
    assert!(stderr.contains("usage: evtchn-ping"), "{stderr}");
}

#[test]
fn help_exits_zero() {
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("usage: evtchn-ping"), "{stdout}");
}
