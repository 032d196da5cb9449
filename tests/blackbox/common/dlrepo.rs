//! The real dlrepo 0.44 server, for tests that check arbor against it. Its `dlrepo` script
//! comes from `ARBOR_TEST_DLREPO_SERVER`, else `target/test-deps/dlrepo-server.path`
//! (written by `tests/deps/dlrepo-server`). Without either those tests fail, never pass.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOW_TO_INSTALL: &str = "run `tests/deps/dlrepo-server` (tests/deps/install runs it), which \
     installs dlrepo 0.44 from PyPI and writes target/test-deps/dlrepo-server.path, or set \
     ARBOR_TEST_DLREPO_SERVER to the venv's `dlrepo` script";

/// A dlrepo 0.44 server with auth disabled, killed on drop.
pub struct Dlrepo {
    pub child: Child,
    pub base: String,
    _root: Option<tempfile::TempDir>,
}

impl Drop for Dlrepo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn script() -> PathBuf {
    super::test_dep(
        "ARBOR_TEST_DLREPO_SERVER",
        "dlrepo-server.path",
        HOW_TO_INSTALL,
    )
}

/// `GET /branches/` answers 200, from aiohttp: not another test's server that got the port
/// meanwhile.
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let asked = s.write_all(
        b"GET /branches/ HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
    );
    let mut reply = Vec::new();
    if asked.is_err() || s.read_to_end(&mut reply).is_err() {
        return false;
    }
    let reply = String::from_utf8_lossy(&reply);
    reply.starts_with("HTTP/1.1 200") && reply.contains("aiohttp")
}

impl Dlrepo {
    /// On a temporary root of its own.
    pub fn start(env: &[(&str, &str)]) -> Dlrepo {
        let root = tempfile::tempdir().expect("temp dir");
        let mut srv = Dlrepo::start_on(root.path(), env);
        srv._root = Some(root);
        srv
    }

    /// On `root`, which the caller keeps.
    pub fn start_on(root: &Path, env: &[(&str, &str)]) -> Dlrepo {
        let script = script();
        // dlrepo cannot report the port it got: pick a free one (retry on the rare clash).
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let mut cmd = Command::new(&script);
            cmd.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", root)
                .env("DLREPO_ROOT_DIR", root)
                .env("DLREPO_AUTH_DISABLED", "1")
                .env("DLREPO_LISTEN_ADDRESS", "127.0.0.1")
                .env("DLREPO_LISTEN_PORT", port.to_string())
                .env("DLREPO_LOG_OUTPUT", "console")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            for (k, v) in env {
                cmd.env(k, v);
            }
            let mut srv = Dlrepo {
                child: cmd.spawn().expect("spawn dlrepo"),
                base: format!("http://127.0.0.1:{port}"),
                _root: None,
            };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(30) {
                if let Ok(Some(_)) = srv.child.try_wait() {
                    break; // most likely the port was taken meanwhile
                }
                if answers(port) {
                    return srv;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("dlrepo ({}) did not start", script.display());
    }
}
