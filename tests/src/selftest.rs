//! Tests of the harness itself against a fake QEMU: a generated shell script that prints
//! lines, sleeps and exits, so expectations, timeouts, forbidden lines, exit codes and
//! cleanup are checked without QEMU. (The script is run by `/bin/sh` rather than exec'd,
//! which avoids `ETXTBSY` races with other test threads forking while it is written.)

use crate::{ErrorKind, Pattern, Qemu, re};
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

/// A machine whose "QEMU" is `script` (POSIX sh; QEMU's arguments are passed as `$@`).
fn fake(name: &str, script: &str) -> Qemu {
    let dir = crate::target_dir().join("qemu-tmp");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("fake-{name}.sh"));
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    Qemu::new()
        .program("/bin/sh")
        .program_args([path.to_string_lossy().into_owned()])
        .name(&format!("harness-selftest-{name}"))
}

fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": the state follows the last ')'.
    stat.rsplit(')').next()?.trim_start().chars().next()
}

#[test]
fn expect_returns_matching_lines_in_order_with_timestamps() {
    let mut r = fake(
        "order",
        "echo 'one'; printf 'two\\r\\n'; sleep 0.2; echo 'three 3'; printf 'x\\r\\r\\n'; printf 'tail'",
    )
    .spawn()
    .unwrap();
    let two = r.expect("two", T).unwrap();
    assert_eq!(two.text, "two", "\\r must be stripped");
    let three = r.expect(re(r"^three \d$"), T).unwrap();
    assert_eq!(
        r.expect("x", T).unwrap().text,
        "x",
        "\\r\\r must be stripped"
    );
    assert!(
        three.at >= two.at + Duration::from_millis(150),
        "{two:?} {three:?}"
    );
    // A last line without newline is flushed when the console closes.
    assert_eq!(r.expect("tail", T).unwrap().text, "tail");
    // "one" was passed over: it is consumed.
    let e = r.expect("one", T).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Exited { .. }), "{e}");
    let texts: Vec<String> = r.lines().into_iter().map(|l| l.text).collect();
    assert_eq!(texts, ["one", "two", "three 3", "x", "tail"]);
}

#[test]
fn qemu_arguments_reach_the_program() {
    let mut r = fake("args", "echo \"args: $*\"")
        .gic_version(2)
        .smp(1)
        .append("a b")
        .spawn()
        .unwrap();
    let l = r.expect("args:", T).unwrap();
    assert!(
        l.text
            .contains("-machine virt,virtualization=on,gic-version=2 ")
            && l.text.contains("-smp 1 ")
            && l.text.contains("-nographic -no-reboot -nic none")
            && l.text.contains("-append a b"),
        "{l:?}"
    );
}

#[test]
fn timeout_fails_fast_with_report_and_log() {
    let q = fake("timeout", "echo 'booting'; sleep 30");
    let mut r = q.spawn().unwrap();
    let start = Instant::now();
    let e = r
        .expect("never printed", Duration::from_millis(300))
        .unwrap_err();
    assert!(start.elapsed() < crate::scaled(Duration::from_millis(300)) + Duration::from_secs(10));
    assert!(matches!(e.kind(), ErrorKind::Timeout { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.starts_with("timed out after"), "{msg}");
    assert!(msg.contains("waiting for \"never printed\""), "{msg}");
    assert!(msg.contains(&q.command_line()), "{msg}");
    assert!(msg.contains("] booting"), "{msg}");
    let log = e.report().unwrap().log.clone().unwrap();
    assert_eq!(log, r.log_path());
    assert!(log.ends_with("qemu-logs/harness-selftest-timeout.log"));
    let saved = std::fs::read_to_string(&log).unwrap();
    assert!(
        saved.starts_with(&format!("# {}\n", q.command_line())),
        "{saved}"
    );
    assert!(saved.contains("] booting\n"), "{saved}");
}

#[test]
fn report_shows_only_the_last_60_lines() {
    let mut r = fake(
        "tail",
        "i=0; while [ $i -lt 100 ]; do echo \"line $i\"; i=$((i+1)); done",
    )
    .spawn()
    .unwrap();
    let e = r.expect("absent", T).unwrap_err();
    let rep = e.report().unwrap();
    assert_eq!(rep.tail.len(), 60);
    assert_eq!(rep.omitted, 40);
    assert_eq!(rep.tail[0].text, "line 40");
    let saved = std::fs::read_to_string(rep.log.as_ref().unwrap()).unwrap();
    assert!(saved.contains("] line 0\n") && saved.contains("] line 99\n"));
}

#[test]
fn forbidden_lines_fail_unless_allowed_or_expected() {
    let script = "echo '(oxen) WARNING: dom0_mem ignored'; echo 'done'";
    let e = fake("forbid", script)
        .spawn()
        .unwrap()
        .expect("done", T)
        .unwrap_err();
    match e.kind() {
        ErrorKind::Forbidden { line, pattern } => {
            assert_eq!(line.text, "(oxen) WARNING: dom0_mem ignored");
            assert_eq!(pattern, "\"WARNING\"");
        }
        k => panic!("unexpected {k:?}"),
    }
    // Allowed explicitly.
    let mut r = fake("forbid-allowed", script)
        .allow("WARNING: dom0_mem")
        .spawn()
        .unwrap();
    r.expect("done", T).unwrap();
    // Expected explicitly: the matching line itself is exempt.
    let mut r = fake("forbid-expected", script).spawn().unwrap();
    r.expect("WARNING: dom0_mem", T).unwrap();
    r.expect("done", T).unwrap();
}

#[test]
fn default_forbidden_list() {
    for bad in [
        "(oxen) ERROR: out of memory",
        "panicked at src/main.rs:1",
        "(oxen) PANIC on CPU0",
        "(oxen) d2v0: data abort at IPA 0x44000000 (x): domain d2 crashed",
    ] {
        let mut r = fake("default-forbid", &format!("echo '{bad}'; echo end"))
            .spawn()
            .unwrap();
        let e = r.expect("end", T).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Forbidden { .. }),
            "{bad}: {e}"
        );
    }
}

#[test]
fn custom_forbidden_pattern_and_check_after_expect() {
    let mut r = fake("check", "echo a; echo 'Oops: x'; echo b; sleep 0.2")
        .forbid(re("^Oops"))
        .spawn()
        .unwrap();
    r.expect("a", T).unwrap();
    // Lines after the last expectation are vetted by check()/finish()/expect_exit().
    r.expect_exit(T).unwrap_err();
    let mut r = fake("check2", "echo a; echo 'Oops: x'")
        .forbid(re("^Oops"))
        .spawn()
        .unwrap();
    r.expect("a", T).unwrap();
    r.expect_exit(T).map(|_| ()).unwrap_err();
    let r = fake("check3", "echo a; echo 'Oops: x'; sleep 30")
        .forbid(re("^Oops"))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let e = r.finish().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Forbidden { .. }), "{e}");
}

#[test]
fn expect_all_accepts_any_order() {
    let mut r = fake(
        "all",
        "echo '(d2) tick 1'; echo x; echo '(d1) tick 1'; echo after",
    )
    .spawn()
    .unwrap();
    let got = r
        .expect_all(&[re(r"^\(d1\) tick 1$"), re(r"^\(d2\) tick 1$")], T)
        .unwrap();
    assert_eq!(got[0].text, "(d1) tick 1");
    assert_eq!(got[1].text, "(d2) tick 1");
    assert_eq!(r.expect("", T).unwrap().text, "after");
    let mut r = fake("all-missing", "echo a").spawn().unwrap();
    let e = r
        .expect_all(&[Pattern::from("a"), Pattern::from("b")], T)
        .unwrap_err();
    assert!(e.to_string().contains("all of \"a\" and \"b\""), "{e}");
}

#[test]
fn exit_status_is_reported() {
    let mut r = fake("exit0", "echo bye").spawn().unwrap();
    assert_eq!(r.expect_exit(T).unwrap().code(), Some(0));
    let mut r = fake("exit3", "echo bye; exit 3").spawn().unwrap();
    let e = r.expect_exit_code(0, T).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::ExitCode { expected: 0, .. }),
        "{e}"
    );
    let mut r = fake("exit3b", "exit 3").spawn().unwrap();
    r.expect_exit_code(3, T).unwrap();
}

#[test]
fn expect_fails_at_once_when_qemu_exits() {
    let mut r = fake("early-exit", "echo 'only line'; exit 1")
        .spawn()
        .unwrap();
    let start = Instant::now();
    let e = r.expect("never", Duration::from_secs(100)).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(20));
    match e.kind() {
        ErrorKind::Exited { status, .. } => assert_eq!(status.and_then(|s| s.code()), Some(1)),
        k => panic!("unexpected {k:?}"),
    }
}

#[test]
fn expect_exit_times_out_on_a_hung_qemu() {
    let mut r = fake("hung", "sleep 30").spawn().unwrap();
    let e = r.expect_exit(Duration::from_millis(300)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Timeout { .. }), "{e}");
}

#[test]
fn send_types_into_the_console() {
    let mut r = fake("send", "echo ready; read x; echo \"got <$x>\"")
        .spawn()
        .unwrap();
    r.expect("ready", T).unwrap();
    r.send("hello oxen\n").unwrap();
    assert_eq!(r.expect("got", T).unwrap().text, "got <hello oxen>");
}

#[test]
fn stderr_is_kept_apart_and_in_the_transcript() {
    let mut r = fake("stderr", "echo 'qemu: warning: x' >&2; sleep 0.1; echo out")
        .spawn()
        .unwrap();
    r.expect_exit(T).unwrap();
    assert_eq!(r.stderr_lines()[0].text, "qemu: warning: x");
    assert!(r.lines().iter().all(|l| l.text == "out"));
    let path = r.log_path();
    drop(r);
    let saved = std::fs::read_to_string(path).unwrap();
    assert!(
        saved.contains("[qemu stderr] qemu: warning: x\n"),
        "{saved}"
    );
    assert!(saved.ends_with("# QEMU exit status: 0\n"), "{saved}");
}

#[test]
fn drop_kills_the_whole_process_group_and_reaps_qemu() {
    let mut r = fake(
        "kill",
        "sleep 1000 & echo \"child $!\"; echo \"self $$\"; wait",
    )
    .spawn()
    .unwrap();
    let child: u32 = r.expect("child ", T).unwrap().text[6..].parse().unwrap();
    let me: u32 = r.expect("self ", T).unwrap().text[5..].parse().unwrap();
    assert_eq!(me, r.pid());
    assert!(proc_state(child).is_some_and(|s| s != 'Z'));
    drop(r);
    // QEMU itself is reaped by us: gone, not a zombie.
    assert_eq!(proc_state(me), None, "fake QEMU {me} left behind");
    // Its child was killed (it may linger as a zombie until init reaps it).
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc_state(child).is_some_and(|s| s != 'Z') {
        assert!(Instant::now() < deadline, "grandchild {child} still alive");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn missing_fake_script_reports_exit_not_hang() {
    let mut r = Qemu::new()
        .program("/bin/sh")
        .program_args(["/nonexistent/script.sh"])
        .name("harness-selftest-missing-script")
        .spawn()
        .unwrap();
    let e = r.expect("x", T).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Exited { .. }), "{e}");
    assert!(!r.stderr_lines().is_empty());
    assert!(Path::new(&r.log_path()).exists());
}

#[test]
fn expect_prompt_sees_an_unterminated_line() {
    let mut r = fake(
        "prompt",
        "echo 'booting'; sleep 0.2; printf '\\033[6ndom0:/# '; read x; echo \"got <$x>\"; sleep 30",
    )
    .spawn()
    .unwrap();
    let p = r.expect_prompt(re(r"dom0:\S*# $"), T).unwrap();
    assert_eq!(p, "\x1b[6ndom0:/# ");
    // The complete line before the prompt was consumed.
    let e = r.expect("booting", Duration::from_millis(300)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Timeout { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("--- unterminated last line: \"\\u{1b}[6ndom0:/# \""),
        "{e}"
    );
    r.send("typed\n").unwrap();
    // The prompt's line is completed by what the script prints next.
    assert_eq!(
        r.expect("got", T).unwrap().text,
        "\x1b[6ndom0:/# got <typed>"
    );
}

#[test]
fn expect_prompt_sees_a_prompt_that_hypervisor_lines_completed() {
    // oxen starts its line on a new line after the prompt (console.rs): the prompt is no
    // longer the unterminated last line, but it is still the shell waiting for input.
    let mut r = fake(
        "prompt-cut",
        "echo 'booting'; printf 'dom0:/# \\033[6n'; sleep 0.2; printf '\n(oxen) debug: d0: domctl 5 on d3: -ESRCH\n(oxen) d2: freed\n'; read x; echo \"got <$x>\"; sleep 30",
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let p = r.expect_prompt(re(r"dom0:\S*# (\x1b\[6n)?$"), T).unwrap();
    assert_eq!(p, "dom0:/# \x1b[6n");
    r.send("typed\n").unwrap();
    assert_eq!(r.expect("got", T).unwrap().text, "got <typed>");
    // Not a prompt: a guest line after the hypervisor lines, or no hypervisor line at all.
    let e = fake(
        "prompt-cut-not",
        // One write, so that no poll sees the prompt and the (oxen) line without the rest.
        "printf 'dom0:/# \n(oxen) d2: freed\nmore output\nx:/# \n'; sleep 30",
    )
    .spawn()
    .unwrap()
    .expect_prompt(re(r"# $"), Duration::from_millis(800))
    .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Timeout { .. }), "{e}");
}

#[test]
fn expect_prompt_vets_lines_and_reports_exit_and_timeout() {
    let e = fake(
        "prompt-forbid",
        "echo '(oxen) ERROR: x'; printf '# '; sleep 30",
    )
    .spawn()
    .unwrap()
    .expect_prompt("# ", T)
    .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Forbidden { .. }), "{e}");
    let e = fake("prompt-exit", "printf 'login: '")
        .spawn()
        .unwrap()
        .expect_prompt("# ", T)
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Exited { .. }), "{e}");
    let e = fake("prompt-timeout", "printf 'login: '; sleep 30")
        .spawn()
        .unwrap()
        .expect_prompt("# ", Duration::from_millis(300))
        .unwrap_err();
    assert!(e.to_string().starts_with("timed out after"), "{e}");
    assert!(e.to_string().contains("a prompt matching \"# \""), "{e}");
}
