//! Settings from the real command line (arbor(8), arbor-config(5)): unknown `DLREPO_*`
//! variables ignored with a warning.

// Black-box tests write configuration files and read the manual.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

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
