//! Settings from the real command line (arbor(8), arbor-config(5)): flags over environment
//! over TOML file over defaults, and unknown `DLREPO_*` variables ignored with a warning.

// Black-box tests write configuration files.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;
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
