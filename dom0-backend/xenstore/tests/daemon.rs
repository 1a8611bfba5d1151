//! End-to-end on the host: the real `xenstored` binary (socket only, no
//! hypervisor) driven by the `xenstore-*` tools and the client library.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use xenstore::{Client, Error, Perm, XsError};

struct Daemon {
    child: Option<Child>,
    pid: Option<u32>,
    dir: PathBuf,
}

impl Daemon {
    fn sock(&self) -> String {
        self.dir.join("socket").to_string_lossy().into_owned()
    }

    fn start(name: &str) -> Daemon {
        let dir =
            std::env::temp_dir().join(format!("xenstored-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_xenstored"))
            .args(["-N", "-D", "--socket"])
            .arg(dir.join("socket"))
            .arg("-T")
            .arg(dir.join("trace"))
            .spawn()
            .unwrap();
        let d = Daemon {
            child: Some(child),
            pid: None,
            dir,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&self) {
        let t = Instant::now();
        while Client::open_socket(&self.sock()).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "xenstored did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn client(&self) -> Client {
        Client::open_socket(&self.sock()).unwrap()
    }

    /// Runs the tool as `xenstore-<mode>` (argv[0] selects the mode).
    fn tool(&self, mode: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_xenstore"))
            .arg0(format!("/usr/bin/xenstore-{mode}"))
            .args(args)
            .env("XENSTORED_PATH", self.sock())
            .output()
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(p) = self.pid {
            let _ = Command::new("kill").arg(p.to_string()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn tools_against_the_daemon() {
    let d = Daemon::start("tools");
    let o = d.tool(
        "write",
        &[
            "/local/domain/0/name",
            "Domain-0",
            "/local/domain/0/domid",
            "0",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    let o = d.tool("read", &["/local/domain/0/name", "domid"]);
    assert_eq!(out(&o), "Domain-0\n0\n");
    let o = d.tool("read", &["/nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(err(&o), "xenstore-read: couldn't read path /nope\n");
    // Escapes both ways.
    assert!(d.tool("write", &["/v", "a\\tb\\x01"]).status.success());
    assert_eq!(out(&d.tool("read", &["/v"])), "a\\tb\\001\n");
    assert_eq!(d.tool("read", &["-R", "/v"]).stdout, b"a\tb\x01");
    // ls (not a terminal: width 80), -f -p as in Xen's sample.
    let o = d.tool("ls", &["/local"]);
    assert_eq!(
        out(&o),
        "domain = \"\"\n 0 = \"\"\n  domid = \"0\"\n  name = \"Domain-0\"\n"
    );
    assert!(
        d.tool("chmod", &["/local/domain/0/name", "n0", "r1"])
            .status
            .success()
    );
    let o = d.tool("ls", &["-f", "-p", "/local/domain/0"]);
    assert_eq!(
        out(&o),
        "/local/domain/0/domid = \"0\"   (n0)\n/local/domain/0/name = \"Domain-0\"   (n0,r1)\n"
    );
    let o = d.tool("ls", &["/nope"]);
    assert_eq!(
        (o.status.code(), err(&o).as_str()),
        (
            Some(1),
            "xenstore-ls: xs_directory (/nope): No such file or directory\n"
        )
    );
    assert_eq!(out(&d.tool("list", &["/local/domain/0"])), "domid\nname\n");
    assert_eq!(
        out(&d.tool("list", &["-p", "/local/domain/0"])),
        "/local/domain/0/domid\n/local/domain/0/name\n"
    );
    assert!(d.tool("exists", &["/local/domain/0/name"]).status.success());
    assert_eq!(d.tool("exists", &["/nothing"]).status.code(), Some(1));
    // rm -t prunes empty parents.
    assert!(d.tool("write", &["/p/q/r", "x"]).status.success());
    assert!(d.tool("rm", &["-t", "/p/q/r"]).status.success());
    assert_eq!(d.tool("exists", &["/p"]).status.code(), Some(1));
    // chmod -r recurses.
    assert!(d.tool("write", &["/c/d/e", ""]).status.success());
    assert!(d.tool("chmod", &["-r", "/c", "b0"]).status.success());
    assert_eq!(
        out(&d.tool("ls", &["-f", "-p", "/c"])),
        "/c/d = \"\"   (b0)\n/c/d/e = \"\"   (b0)\n"
    );
    assert_eq!(d.tool("chmod", &["/c", "x1"]).status.code(), Some(1));
    // xenstore <mode> form.
    let o = Command::new(env!("CARGO_BIN_EXE_xenstore"))
        .args(["read", "/local/domain/0/name"])
        .env("XENSTORED_PATH", d.sock())
        .output()
        .unwrap();
    assert_eq!(out(&o), "Domain-0\n");
    // watch -n: the initial event and two changes.
    let w = Command::new(env!("CARGO_BIN_EXE_xenstore"))
        .arg0("xenstore-watch")
        .args(["-n", "3", "/w"])
        .env("XENSTORED_PATH", d.sock())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(d.tool("write", &["/w/x", "1"]).status.success());
    assert!(d.tool("write", &["/w", "2"]).status.success());
    let o = w.wait_with_output().unwrap();
    assert_eq!(out(&o), "/w\n/w/x\n/w\n");
    // The trace file records messages.
    let trace = std::fs::read_to_string(d.dir.join("trace")).unwrap();
    assert!(
        trace.contains("IN  A") && trace.contains("WRITE (/w/x 1)"),
        "{trace}"
    );
}

#[test]
fn client_library_against_the_daemon() {
    let d = Daemon::start("client");
    let mut a = d.client();
    let mut b = d.client();
    a.write(0, "/x/y", b"1").unwrap();
    assert_eq!(a.read(0, "/x/y").unwrap(), b"1");
    assert_eq!(a.directory(0, "/x").unwrap(), vec!["y"]);
    assert!(matches!(a.read(0, "/x/z"), Err(Error::Xs(XsError::ENOENT))));
    a.set_perms(
        0,
        "/x",
        &[Perm::parse("n0").unwrap(), Perm::parse("r5").unwrap()],
    )
    .unwrap();
    assert_eq!(
        a.get_perms(0, "/x").unwrap(),
        vec![Perm::parse("n0").unwrap(), Perm::parse("r5").unwrap()]
    );
    assert_eq!(a.get_domain_path(7).unwrap(), "/local/domain/7");
    assert!(!a.is_domain_introduced(7).unwrap());
    // No hypervisor here: introduce fails cleanly.
    assert!(a.introduce(7, 0x39001, 1).is_err());
    // Watch events arriving while waiting for a reply are kept.
    b.watch("/x", "tok").unwrap();
    a.write(0, "/x/y", b"2").unwrap();
    assert_eq!(b.read(0, "/x/y").unwrap(), b"2");
    assert_eq!(b.read_watch().unwrap(), ("/x".into(), "tok".into()));
    assert_eq!(b.read_watch().unwrap(), ("/x/y".into(), "tok".into()));
    assert_eq!(
        b.read_watch_timeout(Some(Duration::from_millis(50)))
            .unwrap(),
        None
    );
    // Transactions: conflict → Again, retry succeeds.
    let t = a.transaction_start().unwrap();
    a.read(t, "/x/y").unwrap();
    b.write(0, "/x/y", b"3").unwrap();
    a.write(t, "/x/w", b"tx").unwrap();
    assert!(matches!(a.transaction_end(t, true), Err(Error::Again)));
    let t = a.transaction_start().unwrap();
    a.read(t, "/x/y").unwrap();
    a.write(t, "/x/w", b"tx").unwrap();
    a.transaction_end(t, true).unwrap();
    assert_eq!(b.read(0, "/x/w").unwrap(), b"tx");
    // A directory too big for one message comes back through DIRECTORY_PART.
    let t = a.transaction_start().unwrap();
    for i in 0..300 {
        a.write(t, &format!("/big/a-rather-long-child-name-{i:04}"), b"")
            .unwrap();
    }
    a.transaction_end(t, true).unwrap();
    let list = a.directory(0, "/big").unwrap();
    assert_eq!(list.len(), 300);
    assert_eq!(list[299], "a-rather-long-child-name-0299");
    a.rm(0, "/big").unwrap();
    b.unwatch("/x", "tok").unwrap();
}

#[test]
fn hostile_socket_client_is_dropped_others_continue() {
    use std::io::{Read, Write};
    let d = Daemon::start("hostile");
    let mut good = d.client();
    let mut bad = std::os::unix::net::UnixStream::connect(d.sock()).unwrap();
    // 16-byte header announcing 1 MiB.
    let mut h = vec![2u8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
    h.extend_from_slice(&(1u32 << 20).to_le_bytes());
    bad.write_all(&h).unwrap();
    let mut buf = [0u8; 16];
    bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(bad.read(&mut buf).unwrap(), 0, "connection closed");
    good.write(0, "/still", b"ok").unwrap();
    assert_eq!(good.read(0, "/still").unwrap(), b"ok");
}

#[test]
fn daemonizes_once_ready_and_writes_pid_file() {
    let dir = std::env::temp_dir().join(format!("xenstored-test-{}-fork", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pid_file = dir.join("xenstored.pid");
    let st = Command::new(env!("CARGO_BIN_EXE_xenstored"))
        .args(["-D", "--socket"])
        .arg(dir.join("socket"))
        .arg("--pid-file")
        .arg(&pid_file)
        .status()
        .unwrap();
    assert!(st.success());
    // The socket answers as soon as the parent has returned.
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let d = Daemon {
        child: None,
        pid: Some(pid),
        dir: dir.clone(),
    };
    let mut c = d.client();
    c.write(0, "/alive", b"1").unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    // A bad socket path fails with one line, exit 1.
    let o = Command::new(env!("CARGO_BIN_EXE_xenstored"))
        .args(["-D", "-N", "--socket", "/proc/forbidden/socket"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.starts_with("xenstored: cannot listen on /proc/forbidden/socket"),
        "{e}"
    );
}
