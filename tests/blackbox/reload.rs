//! Access-control reloads (arbor(8) SIGNALS, arbor-acls(5) RELOADING): only a change of the
//! auth file or an ACL file reloads, once per burst of writes, soon; nothing else does, and
//! a reload never triggers the next. Counted by the INFO line each reload logs.

// Black-box tests write the auth and ACL files and read the server's log.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use base64::Engine as _;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

const RELOADED: &str = "access control reloaded";

/// Longer than the server's settling time (at most 600 ms after the first event) plus a
/// reload, with room for a loaded machine.
const SETTLED: Duration = Duration::from_millis(1500);

struct Setup {
    child: Child,
    base: String,
    /// The auth file's directory; the ACL directory is `acls/` inside it, as in /etc/dlrepo.
    etc: tempfile::TempDir,
    _root: tempfile::TempDir,
    log: PathBuf,
}

impl Setup {
    fn start() -> Setup {
        let etc = tempfile::tempdir().unwrap();
        let acls = etc.path().join("acls");
        std::fs::create_dir(&acls).unwrap();
        std::fs::write(etc.path().join("auth"), "ann:pw:devs\n").unwrap();
        std::fs::write(acls.join("devs"), "r /branches/\n").unwrap();
        let root = tempfile::tempdir().unwrap();
        let log = etc.path().join("arbor.log");
        let auth = etc.path().join("auth");
        let (child, addr) = spawn_logged(
            root.path(),
            &[
                ("DLREPO_LOG_LEVEL", "INFO"),
                ("DLREPO_AUTH_DISABLED", "0"),
                ("DLREPO_AUTH_FILE", auth.to_str().unwrap()),
                ("DLREPO_ACLS_DIR", acls.to_str().unwrap()),
            ],
            &log,
        );
        Setup {
            child,
            base: format!("http://{addr}"),
            etc,
            _root: root,
            log,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.etc.path().join(rel)
    }

    fn reloads(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches(RELOADED)
            .count()
    }

    /// Status of `GET path` as ann.
    fn ann_gets(&self, path: &str) -> u16 {
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ann:pw")
        );
        send(
            &new_agent(),
            &self.base,
            "GET",
            path,
            &[("Authorization", &auth)],
            None,
        )
        .status
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replaces `path` the way editors save: a temporary file renamed over it.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("swp-tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn neighbours_reads_and_identical_rewrites_do_not_reload() {
    let s = Setup::start();
    assert_eq!(s.ann_gets("/branches/"), 200);
    for i in 0..5 {
        // A pid file and a log next to the auth file.
        std::fs::write(s.path("arbor.pid"), format!("{i}\n")).unwrap();
        std::fs::write(s.path("other.log"), "x".repeat(i)).unwrap();
        // The files themselves, read, touched and rewritten with the same bytes.
        std::fs::read(s.path("auth")).unwrap();
        std::fs::read(s.path("acls/devs")).unwrap();
        std::fs::File::options()
            .append(true)
            .open(s.path("auth"))
            .unwrap()
            .set_modified(std::time::SystemTime::now())
            .unwrap();
        std::fs::write(s.path("acls/devs"), "r /branches/\n").unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(SETTLED);
    assert_eq!(s.reloads(), 0, "{}", s.log_text());
    assert_eq!(s.ann_gets("/branches/"), 200);
}

#[test]
fn a_burst_of_saves_reloads_once_and_the_reload_does_not_reload_again() {
    let s = Setup::start();
    assert_eq!(s.ann_gets("/products/"), 401);
    let start = Instant::now();
    // The server looks once no event has come for 200 ms, or 600 ms after the first: a
    // burst written within those windows is one reload. A stalled test process (a loaded CI
    // machine) can split the burst; then each piece may reload once, and no more.
    let mut last = start;
    let mut longest_gap = Duration::ZERO;
    let saves = 11;
    for i in 0..saves {
        let text = if i + 1 == saves {
            "r /branches/\nr /products/\n".to_string()
        } else {
            format!("r /branches/\n# draft {i}\n")
        };
        save(&s.path("acls/devs"), &text);
        longest_gap = longest_gap.max(last.elapsed());
        last = Instant::now();
        if i + 1 < saves {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let burst = start.elapsed();
    // The last state applies, and soon after the last write.
    while s.ann_gets("/products/") != 200 {
        assert!(start.elapsed() < Duration::from_secs(5), "{}", s.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(SETTLED);
    let reloads = s.reloads();
    if burst < Duration::from_millis(400) && longest_gap < Duration::from_millis(100) {
        assert_eq!(reloads, 1, "{}", s.log_text());
    } else {
        eprintln!("burst took {burst:?}, longest gap {longest_gap:?}: {reloads} reloads");
        assert!((1..=saves).contains(&reloads), "{}", s.log_text());
    }
    // dlrepo-style storms re-read the files forever: the count must stay where it is.
    std::thread::sleep(SETTLED);
    assert_eq!(s.reloads(), reloads, "{}", s.log_text());
}

#[test]
fn a_change_reloads_within_a_second_and_sighup_always_reloads() {
    let s = Setup::start();
    assert_eq!(s.ann_gets("/products/"), 401);
    std::fs::write(s.path("acls/ops"), "r /products/\n").unwrap();
    std::thread::sleep(SETTLED);
    assert_eq!(s.reloads(), 1, "a new ACL file is a change");
    // The auth file changes: ann joins the new group.
    let start = Instant::now();
    std::fs::write(s.path("auth"), "ann:pw:devs ops\n").unwrap();
    loop {
        if s.ann_gets("/products/") == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "no reload within a second: {}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(SETTLED);
    assert_eq!(s.reloads(), 2, "{}", s.log_text());
    // SIGHUP reloads although nothing changed.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(s.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let start = Instant::now();
    while s.reloads() < 3 {
        assert!(start.elapsed() < Duration::from_secs(5), "{}", s.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}
