//! Settings from the real command line (arbor(8), arbor-config(5)): flags over environment
//! over TOML file over defaults, unknown `DLREPO_*` variables ignored with a warning, and
//! every exit status arbor(8) documents, checked against the manual's own words.

// Black-box tests write configuration files and read the manual.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `arbor` with nothing from the test's environment but `PATH`, logging to stderr.
fn arbor(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_arbor"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DLREPO_LOG_OUTPUT", "console")
        .env("DLREPO_AUTH_DISABLED", "1")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs a command expected to stop by itself, killing it after 20 s (a server that started
/// when it should have refused to).
fn finish(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn arbor");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// A server that must start: its address from the banner; stderr goes to `log`.
struct Running {
    child: Child,
    addr: String,
}

impl Running {
    fn start(mut cmd: Command, log: &Path) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log"))
            .spawn()
            .expect("spawn arbor");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("banner");
        let addr = line
            .trim()
            .strip_prefix("======== Running on http://")
            .and_then(|s| s.strip_suffix(" ========"))
            .unwrap_or_else(|| {
                panic!(
                    "no banner ({line:?}): {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            })
            .to_owned();
        Running { child, addr }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn unknown_variables_are_a_warning_naming_the_closest_setting() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let log = dir.path().join("log");
    let s = Running::start(
        arbor(
            &["serve"],
            &[
                ("DLREPO_ROOT_DIR", root.to_str().unwrap()),
                ("DLREPO_LISTEN_PORT", "0"),
                // A deployment tool's variable, and a typo.
                ("DLREPO_VERSION", "1.2.3"),
                ("DLREPO_ORPHAN_BLOB_LIFTIME", "5"),
            ],
        ),
        &log,
    );
    let r = common::send(
        &common::new_agent(),
        &format!("http://{}", s.addr),
        "GET",
        "/healthz",
        &[],
        None,
    );
    assert_eq!(r.status, 200);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("WARNING: ignoring DLREPO_VERSION: not a setting arbor knows"),
        "{text}"
    );
    assert!(
        text.contains(
            "WARNING: ignoring DLREPO_ORPHAN_BLOB_LIFTIME: not a setting arbor knows \
             (the closest one is DLREPO_ORPHAN_BLOB_LIFETIME)"
        ),
        "{text}"
    );
}

#[test]
fn flags_override_the_environment_which_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let [from_file, from_env, from_flag] = ["file", "env", "flag"].map(|n| dir.path().join(n));
    let toml = dir.path().join("arbor.toml");
    // Addresses no interface holds: binding either fails, so only the flag can win.
    std::fs::write(
        &toml,
        format!(
            "root_dir = {:?}\nlisten_address = \"192.0.2.1\"\nlisten_port = 9\nlog_level = \"ERROR\"\n",
            from_file.to_str().unwrap()
        ),
    )
    .unwrap();
    let env = [
        ("DLREPO_ROOT_DIR", from_env.to_str().unwrap()),
        ("DLREPO_LISTEN_ADDRESS", "198.51.100.1"),
        ("DLREPO_LOG_LEVEL", "WARNING"),
    ];
    let log = dir.path().join("log");
    let s = Running::start(
        arbor(
            &[
                "--config",
                toml.to_str().unwrap(),
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--root",
                from_flag.to_str().unwrap(),
                "--log-level",
                "debug",
            ],
            &env,
        ),
        &log,
    );
    assert!(s.addr.starts_with("127.0.0.1:"), "{}", s.addr);
    assert!(from_flag.is_dir());
    assert!(!from_env.exists() && !from_file.exists());
    let r = common::send(
        &common::new_agent(),
        &format!("http://{}", s.addr),
        "GET",
        "/healthz",
        &[],
        None,
    );
    assert_eq!(r.status, 200);
    drop(s);
    // DEBUG (the flag) logs every request; WARNING and ERROR would not.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("DEBUG: "), "{text}");

    // --address and --port are the two halves of --listen.
    let s = Running::start(
        arbor(
            &["serve", "--address", "127.0.0.1", "--port", "0"],
            &[
                ("DLREPO_ROOT_DIR", from_flag.to_str().unwrap()),
                ("DLREPO_LISTEN_ADDRESS", "198.51.100.1"),
                ("DLREPO_LISTEN_PORT", "9"),
            ],
        ),
        &log,
    );
    assert!(s.addr.starts_with("127.0.0.1:"), "{}", s.addr);
    drop(s);

    // Without flags the environment wins over the file (here: which root gc cleans).
    std::fs::create_dir(&from_env).unwrap();
    let out = finish(arbor(
        &["--config", toml.to_str().unwrap(), "gc"],
        &env[..1],
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And --root wins over both for every command.
    let out = finish(arbor(
        &[
            "--config",
            toml.to_str().unwrap(),
            "fsck",
            "--root",
            "/nonexistent",
        ],
        &env[..1],
    ));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The entry for `code` in arbor(8)'s EXIT STATUS, blanks folded.
fn documented(code: i32) -> String {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/arbor.8.scd");
    let text = std::fs::read_to_string(page).unwrap();
    let section = text
        .split("\n# EXIT STATUS\n")
        .nth(1)
        .expect("arbor(8) has an EXIT STATUS section")
        .split("\n# ")
        .next()
        .unwrap_or_default();
    let mut entry = None;
    let mut out = String::new();
    for line in section.lines() {
        if let Some(c) = line.strip_prefix('*').and_then(|l| l.strip_suffix('*')) {
            entry = c.parse::<i32>().ok();
        } else if entry == Some(code) {
            out.push(' ');
            out.push_str(line.trim());
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn exit_statuses_are_the_documented_ones() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let root = p("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(p("unknown.toml"), "listen_prot = 8080\n").unwrap();
    std::fs::write(p("malformed.toml"), "listen_port = \n").unwrap();
    std::fs::create_dir(p("acls")).unwrap();
    std::fs::write(p("acls/devs"), "r ~/products/(\n").unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    let sick = p("sick");
    std::fs::create_dir_all(format!("{sick}/.blobs/sha256/ab")).unwrap();
    std::fs::write(format!("{sick}/.blobs/sha256/ab/not-a-digest"), "x").unwrap();
    let serve = |extra: &[(&'static str, &str)]| {
        let mut env = vec![
            ("DLREPO_ROOT_DIR", root.as_str()),
            ("DLREPO_LISTEN_PORT", "0"),
        ];
        env.extend_from_slice(extra);
        arbor(&["serve"], &env)
    };
    let acls = p("acls");
    let unknown = p("unknown.toml");
    let malformed = p("malformed.toml");
    let missing = p("missing.toml");
    // A variable holding bytes that are not UTF-8.
    let raw = |mut cmd: Command, name: &str, value: &[u8]| {
        use std::os::unix::ffi::OsStrExt;
        cmd.env(name, std::ffi::OsStr::from_bytes(value));
        cmd
    };
    // (what arbor(8) says, in its words; the status it gives; a command that does it)
    let cases: Vec<(&str, i32, Command)> = vec![
        (
            "an unknown setting in the TOML file",
            2,
            arbor(&["--config", &unknown, "gc", "--root", &root], &[]),
        ),
        ("a bad value", 2, serve(&[("DLREPO_LISTEN_PORT", "http")])),
        (
            "an unreadable or malformed TOML file",
            2,
            arbor(&["--config", &missing, "gc", "--root", &root], &[]),
        ),
        (
            "an unreadable or malformed TOML file",
            2,
            arbor(&["--config", &malformed, "gc", "--root", &root], &[]),
        ),
        (
            "LDAP settings that cannot work",
            2,
            serve(&[
                ("DLREPO_AUTH_DISABLED", "0"),
                ("DLREPO_LDAP_URL", "http://ldap.example.com"),
            ]),
        ),
        (
            "an ACL file that cannot be used",
            2,
            serve(&[("DLREPO_AUTH_DISABLED", "0"), ("DLREPO_ACLS_DIR", &acls)]),
        ),
        (
            "a signing key that cannot sign",
            2,
            serve(&[("DLREPO_SIGNING_KEY", &unknown)]),
        ),
        (
            "a signing key that cannot sign",
            2,
            serve(&[("DLREPO_SIGNING_KEY", &missing)]),
        ),
        (
            "a bad command line",
            2,
            arbor(&["serve", "--port", "http"], &[]),
        ),
        (
            "*serve* failing to bind",
            1,
            arbor(&["serve", "--root", &root, "--listen", &busy], &[]),
        ),
        (
            "*fsck* finding problems it did not repair",
            1,
            arbor(&["fsck", "--root", &sick], &[]),
        ),
        (
            "a data root that does not exist",
            1,
            arbor(&["gc", "--root", &p("absent")], &[]),
        ),
        (
            "a data root that does not exist",
            1,
            arbor(&["token", "list", "--root", &p("absent")], &[]),
        ),
        (
            "a bad value",
            2,
            raw(arbor(&["fsck"], &[]), "DLREPO_ROOT_DIR", b"/tmp/\xff"),
        ),
        ("Success", 0, arbor(&["fsck", "--root", &root], &[])),
        // A variable that is not UTF-8 but not arbor's either is no concern of arbor's.
        (
            "Success",
            0,
            raw(arbor(&["fsck", "--root", &root], &[]), "OTHER", b"\xff"),
        ),
    ];
    for (words, code, cmd) in cases {
        let shown = format!("{cmd:?}");
        let out = finish(cmd);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{words}: {shown}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc = documented(code);
        assert!(
            doc.contains(words),
            "arbor(8) EXIT STATUS {code} does not say {words:?}: {doc:?}"
        );
    }
}
