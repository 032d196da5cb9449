//! The nginx site in examples/config/, run by the real nginx in front of arbor: TLS, the
//! redirect from plain HTTP, a large upload streamed through, and downloads that arbor hands
//! to nginx with `X-Accel-Redirect` (`DLREPO_X_SENDFILE_HEADER`), with their `Digest` and
//! safety headers given back and Range requests served by nginx. Debian's nginx comes from tests/deps/install.

// Black-box tests check what the servers left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;

use common::*;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const HOW_TO_INSTALL: &str = "run tests/deps/install, which installs Debian's nginx";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// nginx with the example site, killed on drop.
struct Nginx {
    child: Child,
    https: u16,
    http: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// The example site, with only what names this machine changed: the upstream, the
    /// ports, the certificate and the data root (arbor's `root`). Free ports are picked by
    /// binding and releasing them, so a parallel test may take one first: then try again.
    fn start(dir: &Path, upstream: &str, root: &Path) -> Nginx {
        for _ in 0..5 {
            if let Some(srv) = Nginx::try_start(dir, upstream, root) {
                return srv;
            }
        }
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        panic!("nginx did not start: {log}");
    }

    fn try_start(dir: &Path, upstream: &str, root: &Path) -> Option<Nginx> {
        let site = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config/nginx-arbor.conf"),
        )
        .expect("examples/config/nginx-arbor.conf");
        let (https, http) = (free_port(), free_port());
        let root = format!("{}/", root.display());
        let replace = |site: String, from: &str, to: &str| {
            assert!(
                site.contains(from),
                "the example site no longer has {from:?}"
            );
            site.replace(from, to)
        };
        let mut site = replace(site, "unix:/run/arbor.sock", upstream);
        site = replace(
            site,
            "listen 443 ssl",
            &format!("listen 127.0.0.1:{https} ssl"),
        );
        site = replace(site, "listen [::]:443 ssl http2;", "");
        site = replace(site, "listen 80;", &format!("listen 127.0.0.1:{http};"));
        site = replace(site, "listen [::]:80;", "");
        let cert = dir.join("server.pem");
        let key = dir.join("server.key");
        site = replace(
            site,
            "/etc/ssl/certs/artifacts.example.com.pem",
            &cert.display().to_string(),
        );
        site = replace(
            site,
            "/etc/ssl/private/artifacts.example.com.key",
            &key.display().to_string(),
        );
        site = replace(site, "/var/lib/dlrepo/", &root);
        std::fs::write(dir.join("site.conf"), site).expect("site.conf");
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).expect("tmp");
        let t = tmp.display();
        let pid = dir.join("nginx.pid");
        let _ = std::fs::remove_file(&pid);
        // One process: no worker to outlive a killed master, and no switch to `nobody`, who
        // could not read the test's private temporary directories.
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {p};\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {t}/body;\n\
             proxy_temp_path {t}/proxy;\n  fastcgi_temp_path {t}/fastcgi;\n\
             uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n\
             include {d}/site.conf;\n}}\n",
            d = dir.display(),
            p = pid.display()
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let nginx = ["/usr/sbin/nginx", "nginx"]
            .into_iter()
            .find(|n| Command::new(n).arg("-v").output().is_ok())
            .unwrap_or_else(|| panic!("nginx is missing: {HOW_TO_INSTALL}"));
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut srv = Nginx { child, https, http };
        // Up once it has written its pid file (after binding) and answers on the port, not
        // before: another server may answer on a port nginx failed to get.
        let ours = srv.child.id().to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(_)) = srv.child.try_wait() {
                return None; // most likely a port was taken meanwhile
            }
            let written = std::fs::read_to_string(&pid).is_ok_and(|p| p.trim() == ours);
            if written && TcpStream::connect(("127.0.0.1", https)).is_ok() {
                return Some(srv);
            }
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// curl against nginx, trusting the test CA; `-i` so headers come with the body.
fn curl(ca: &Path, args: &[&str]) -> Output {
    run_ok(
        Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(ca)
            .args(args),
        &format!("curl {args:?} (tests/deps/install installs curl)"),
    )
}

/// Splits `curl -i` output into the last response's head and its body.
fn head_and_body(out: &[u8]) -> (String, &[u8]) {
    let at = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    (
        String::from_utf8_lossy(&out[..at]).into_owned(),
        &out[at + 4..],
    )
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn the_example_nginx_site_fronts_arbor() {
    let arbor = TestServer::start_with(&[
        ("DLREPO_AUTH_DISABLED", "1"),
        ("DLREPO_X_SENDFILE_HEADER", "X-Accel-Redirect"),
    ]);
    // nginx reads the files itself, as another user in real life: the data root must let it.
    std::fs::set_permissions(arbor.root.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod root");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = make_certificates(dir.path());
    let nginx = Nginx::start(dir.path(), &arbor.addr, arbor.root.path());
    let site = format!("https://127.0.0.1:{}", nginx.https);

    // Plain HTTP is sent to HTTPS.
    let out = curl(
        &ca,
        &["-i", &format!("http://127.0.0.1:{}/branches/", nginx.http)],
    );
    let (head, _) = head_and_body(&out.stdout);
    assert!(head.starts_with("HTTP/1.1 301"), "{head}");
    assert!(
        header(&head, "location").is_some_and(|l| l.starts_with("https://")),
        "{head}"
    );

    // 24 MiB through TLS and the proxy, over nginx's default body limit of 1 MiB.
    let data: Vec<u8> = (0..24u32 << 20).map(|i| (i % 251) as u8).collect();
    let file = dir.path().join("big.bin");
    std::fs::write(&file, &data).expect("big.bin");
    let digest = digest_of(&data);
    let url = format!("{site}/branches/b/t/j/f/big.bin");
    let out = curl(
        &ca,
        &[
            "-i",
            "-T",
            file.to_str().expect("utf-8 path"),
            "-H",
            &format!("Digest: {digest}"),
            &url,
        ],
    );
    let (head, _) = head_and_body(&out.stdout);
    assert!(head.contains(" 201"), "{head}");
    // The arbor client sends large files while hashing them to a server that says it is
    // arbor: the site passes the name through.
    assert_eq!(header(&head, "server"), Some("arbor"), "{head}");
    assert_eq!(
        std::fs::read(arbor.path("branches/b/t/j/f/big.bin")).expect("stored"),
        data
    );

    // arbor itself answers with the path and no body ...
    let direct = arbor.get("/branches/b/t/j/f/big.bin");
    let path = arbor.path("branches/b/t/j/f/big.bin");
    assert_eq!(
        direct.header("x-accel-redirect"),
        Some(path.to_str().expect("utf-8 path"))
    );
    assert!(direct.body.is_empty());
    // ... and nginx sends the file, with the digest arbor gave.
    let out = curl(&ca, &["-i", &url]);
    let (head, body) = head_and_body(&out.stdout);
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert_eq!(header(&head, "digest"), Some(digest.as_str()), "{head}");
    assert!(
        body == data.as_slice(),
        "the download differs from the upload"
    );
    // Range requests are nginx's job now.
    let out = curl(&ca, &["-i", "-r", "1000-1999", &url]);
    let (head, body) = head_and_body(&out.stdout);
    assert!(head.starts_with("HTTP/2 206"), "{head}");
    assert_eq!(body, &data[1000..2000]);

    // The safety headers of an active artifact survive the hand-off (spec/API.md Q51): nginx
    // drops the headers it does not know unless the site adds them back.
    assert_eq!(
        arbor
            .put_file("/branches/b/t/j/web/evil.html", b"<script>1</script>")
            .status,
        201
    );
    let out = curl(
        &ca,
        &["-i", &format!("{site}/branches/b/t/j/web/evil.html")],
    );
    let (head, body) = head_and_body(&out.stdout);
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert_eq!(body, b"<script>1</script>");
    assert_eq!(
        header(&head, "x-content-type-options"),
        Some("nosniff"),
        "{head}"
    );
    assert_eq!(
        header(&head, "content-security-policy"),
        Some("sandbox"),
        "{head}"
    );
    assert_eq!(
        header(&head, "content-disposition"),
        Some("attachment; filename=\"evil.html\"; filename*=UTF-8''evil.html"),
        "{head}"
    );
    assert_eq!(head.matches("content-disposition").count(), 1, "{head}");
    // A passive one gets nosniff and nothing else.
    let out = curl(&ca, &["-i", &url, "-r", "0-0"]);
    let (head, _) = head_and_body(&out.stdout);
    assert_eq!(
        header(&head, "x-content-type-options"),
        Some("nosniff"),
        "{head}"
    );
    assert_eq!(header(&head, "content-security-policy"), None, "{head}");

    // JSON still comes from arbor, through the proxy.
    let out = curl(
        &ca,
        &[
            "-H",
            "Accept: application/json",
            &format!("{site}/branches/b/t/j/f/"),
        ],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        json["artifact_format"]["files"],
        serde_json::json!(["big.bin"])
    );
}
