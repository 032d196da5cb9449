//! Black-box test harness: starts the real `arbor` binary on port 0 against a temporary
//! root and talks HTTP to it.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![allow(dead_code)]

pub mod auth;
pub mod dlrepo;

pub use crate::shared::*;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct TestServer {
    pub child: Child,
    pub root: tempfile::TempDir,
    pub base: String,
    pub addr: String,
    agent: ureq::Agent,
    env: Vec<(String, String)>,
    /// The TOML file passed with `--config`, if any (test hooks, say).
    config: Option<PathBuf>,
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(&[])
    }

    /// Starts the server with extra `DLREPO_*` variables.
    pub fn start_with(env: &[(&str, &str)]) -> TestServer {
        TestServer::start_in(tempfile::tempdir().expect("temp dir"), env)
    }

    /// Starts the server on an existing data root (one another server wrote, say).
    pub fn start_in(root: tempfile::TempDir, env: &[(&str, &str)]) -> TestServer {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TestServer::spawn(root, env, None)
    }

    /// Starts the server on an existing data root with the TOML file `config`.
    pub fn start_in_configured(root: tempfile::TempDir, config: &Path) -> TestServer {
        TestServer::spawn(root, Vec::new(), Some(config.to_path_buf()))
    }

    /// Starts the server with extra `DLREPO_*` variables and the TOML file `config` (one
    /// [`write_test_hooks`] wrote, say).
    pub fn start_configured(env: &[(&str, &str)], config: &Path) -> TestServer {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let root = tempfile::tempdir().expect("temp dir");
        TestServer::spawn(root, env, Some(config.to_path_buf()))
    }

    fn spawn(
        root: tempfile::TempDir,
        env: Vec<(String, String)>,
        config: Option<PathBuf>,
    ) -> TestServer {
        let (child, addr) = spawn_child(root.path(), &env, config.as_deref());
        TestServer {
            child,
            root,
            base: format!("http://{addr}"),
            addr,
            agent: new_agent(),
            env,
            config,
        }
    }

    /// Kills the server with SIGKILL, wherever it is, and starts a new one on the same root.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, addr) = spawn_child(self.root.path(), &self.env, self.config.as_deref());
        self.child = child;
        self.base = format!("http://{addr}");
        self.addr = addr;
    }

    /// Kills the server and hands its data root over (to another server, say).
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.root, tempfile::tempdir().expect("temp dir"))
    }

    /// A second server process on the same data root (several processes may share one).
    pub fn second_process(&self) -> (Child, String) {
        spawn_child(self.root.path(), &self.env, self.config.as_deref())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The status line as sent, read over a raw socket (ureq hides custom reasons).
    pub fn raw_status_line(&self, request: &str) -> String {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(&self.addr).expect("connect");
        s.write_all(request.as_bytes()).expect("write");
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).expect("read");
        line.trim_end().to_owned()
    }
}

/// The client settings every test uses.
pub fn new_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        // A fresh connection per request: ureq's pool sometimes reuses a connection the
        // server has just finished with and reports a spurious disconnect.
        .max_idle_connections_per_host(0)
        .build()
        .into()
}

/// Sends any request to the server at `base`; `body` None sends no body.
pub fn send(
    agent: &ureq::Agent,
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Res {
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let result = match body {
        Some(b) => agent.run(req.body(b.to_vec()).expect("request")),
        None => agent.run(req.body(()).expect("request")),
    };
    let mut res = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = res.status().as_u16();
    let reason = res
        .status()
        .canonical_reason()
        .unwrap_or_default()
        .to_owned();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    if method != "HEAD" {
        res.body_mut()
            .as_reader()
            .read_to_end(&mut body)
            .expect("read body");
    }
    Res {
        status,
        reason,
        headers,
        body,
    }
}

fn spawn_child(root: &Path, env: &[(String, String)], config: Option<&Path>) -> (Child, String) {
    spawn_with_stderr(root, env, config, Stdio::null())
}

/// Writes `dir/arbor.toml` with the `[testing]` table `hooks` (arbor-config(5), TEST HOOKS),
/// for `--config`. Returns its path.
pub fn write_test_hooks(dir: &Path, hooks: &str) -> PathBuf {
    let path = dir.join("arbor.toml");
    std::fs::write(&path, format!("[testing]\n{hooks}\n")).expect("write arbor.toml");
    path
}

/// A server whose log (stderr) goes to `log`, at `DLREPO_LOG_LEVEL=DEBUG` unless `env`
/// says otherwise. Returns the child and its address.
pub fn spawn_logged(root: &Path, env: &[(&str, &str)], log: &Path) -> (Child, String) {
    spawn_logged_configured(root, env, None, log)
}

/// [`spawn_logged`] with the TOML file `config`, if any.
pub fn spawn_logged_configured(
    root: &Path,
    env: &[(&str, &str)],
    config: Option<&Path>,
    log: &Path,
) -> (Child, String) {
    let mut all = vec![("DLREPO_LOG_LEVEL".to_owned(), "DEBUG".to_owned())];
    all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let file = std::fs::File::create(log).expect("log file");
    spawn_with_stderr(root, &all, config, Stdio::from(file))
}

fn spawn_with_stderr(
    root: &Path,
    env: &[(String, String)],
    config: Option<&Path>,
    stderr: Stdio,
) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_arbor"));
    cmd.arg("serve");
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DLREPO_ROOT_DIR", root)
        .env("DLREPO_LISTEN_PORT", "0")
        .env("DLREPO_AUTH_DISABLED", "1")
        .stdout(Stdio::piped())
        .stderr(stderr);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn arbor");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read banner");
    let addr = line
        .trim()
        .strip_prefix("======== Running on http://")
        .and_then(|s| s.strip_suffix(" ========"))
        .unwrap_or_else(|| panic!("unexpected banner {line:?}"))
        .to_owned();
    (child, addr)
}

impl Client for TestServer {
    fn start_with(env: &[(&str, &str)]) -> TestServer {
        TestServer::start_with(env)
    }

    fn root(&self) -> &Path {
        self.root.path()
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Res {
        send(&self.agent, &self.base, method, path, headers, body)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it (a self-signed CA used as
/// the server's own certificate is refused by rustls): `ca.pem`, `server.pem` and
/// `server.key` in `dir`. Returns the CA's path.
pub fn make_certificates(dir: &Path) -> PathBuf {
    // One self-signed P-256 certificate named `name`, plus `extra` arguments.
    let req = |name: &str, subject: &str, extra: &[&str]| {
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        let out = Command::new("openssl")
            .args(["req", "-x509", "-nodes", "-days", "2", "-subj", subject])
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-keyout", &key, "-out", &pem])
            .args(extra)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("openssl: {e}: run tests/deps/install, which installs it"));
        assert!(
            out.status.success(),
            "openssl req {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    req("ca", "/CN=arbor test CA", &[]);
    req(
        "server",
        "/CN=127.0.0.1",
        &[
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ],
    );
    dir.join("ca.pem")
}

/// `arbor fsck [--repair]` on `root`: whether it found the tree healthy, and what it printed.
pub fn fsck(root: &Path, repair: bool) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_arbor"));
    cmd.arg("fsck").env("DLREPO_ROOT_DIR", root);
    if repair {
        cmd.arg("--repair");
    }
    let out = cmd.output().expect("arbor fsck");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A tool a test drives: `$var` when set, else the path tests/deps/install wrote to
/// `target/test-deps/{pathfile}`. Fails the test, saying `how` to install it, otherwise.
pub fn test_dep(var: &str, pathfile: &str, how: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{var}={} is not a file: {how}", p.display());
        return p;
    }
    let pathfile = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-deps")
        .join(pathfile);
    let text = std::fs::read_to_string(&pathfile)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}: {how}", pathfile.display()));
    let p = PathBuf::from(text.trim());
    assert!(
        p.is_file(),
        "{} names {}, which is not a file: {how}",
        pathfile.display(),
        p.display()
    );
    p
}

/// Runs `cmd` to the end and fails the test, with its stderr, unless it succeeds. `what`
/// names it in the messages (and says where it comes from when it cannot start).
pub fn run_ok(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
