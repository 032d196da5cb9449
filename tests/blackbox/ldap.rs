//! LDAP logins (spec/AUTH.md §5) against a real OpenLDAP `slapd`, run as a child process
//! on a loopback port with a throw-away configuration and database: groups from the
//! directory, wrong and unknown logins, filter escaping, IGNORE_PASSWORDS, the cache, a
//! server that is down or hangs, StartTLS and ldaps://.

// The directory's configuration, seed and certificates are written by the test.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use base64::Engine as _;
use common::*;
use sha1::{Digest as _, Sha1};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOW_TO_INSTALL: &str = "run tests/deps/install, which installs Debian's slapd and \
     openssl (`apt-get install slapd openssl`), or set ARBOR_TEST_SLAPD_DIR to the directory \
     holding slapd and slapadd";

const BASE_DN: &str = "dc=example,dc=org";
const USER_FILTER: &str = "(&(uid={login})(objectClass=inetOrgPerson))";
/// Both placeholders: groupOfNames lists member DNs, posixGroup lists logins.
const GROUPS_FILTER: &str = "(|(&(objectClass=groupOfNames)(member={dn}))\
     (&(objectClass=posixGroup)(memberUid={login})))";
/// A DN that needs escaping inside a filter (`\`, parentheses).
const JSMITH_DN: &str = r"cn=Smith\, J (ext),ou=people,dc=example,dc=org";

// ---- the directory -------------------------------------------------------------------------

fn sbin(name: &str) -> PathBuf {
    let dir = std::env::var_os("ARBOR_TEST_SLAPD_DIR").unwrap_or_else(|| "/usr/sbin".into());
    let path = Path::new(&dir).join(name);
    assert!(
        path.is_file(),
        "{} is missing: {HOW_TO_INSTALL}",
        path.display()
    );
    path
}

/// `{SSHA}` as slappasswd makes it: base64(sha1(password ‖ salt) ‖ salt).
fn ssha(password: &str, salt: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(password.as_bytes());
    h.update(salt);
    let mut raw = h.finalize().to_vec();
    raw.extend_from_slice(salt);
    format!(
        "{{SSHA}}{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn person(dn: &str, uid: &str, password: &str) -> String {
    format!(
        "dn: {dn}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {}\n\n",
        ssha(password, uid.as_bytes())
    )
}

fn seed() -> String {
    let mut ldif = format!(
        "dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: ou=people,{BASE_DN}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=others,{BASE_DN}\nobjectClass: organizationalUnit\nou: others\n\n"
    );
    ldif += &person(
        &format!("uid=alice,ou=people,{BASE_DN}"),
        "alice",
        "alice-pw",
    );
    ldif += &person(&format!("uid=bob,ou=people,{BASE_DN}"), "bob", "bob-pw");
    ldif += &person(
        &format!("uid=carol,ou=people,{BASE_DN}"),
        "carol",
        "carol-pw",
    );
    ldif += &person(JSMITH_DN, "jsmith", "js-pw");
    // Two entries for one login: the lookup cannot tell which one is meant.
    ldif += &person(&format!("uid=twin,ou=people,{BASE_DN}"), "twin", "twin-pw");
    ldif += &person(&format!("uid=twin,ou=others,{BASE_DN}"), "twin", "twin-pw");
    ldif += &format!(
        "dn: cn=devs,{BASE_DN}\nobjectClass: groupOfNames\ncn: devs\n\
         member: uid=alice,ou=people,{BASE_DN}\nmember: {JSMITH_DN}\n\n\
         dn: cn=readers,{BASE_DN}\nobjectClass: posixGroup\ncn: readers\ngidNumber: 1000\n\
         memberUid: alice\nmemberUid: bob\n\n"
    );
    ldif
}

/// A `slapd` in the foreground; killed on drop.
struct Slapd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    /// With TLS: the ldaps:// port and the CA that signed the server's certificate.
    tls: Option<(u16, PathBuf)>,
}

impl Slapd {
    fn start(tls: bool) -> Slapd {
        let (slapd, slapadd) = (sbin("slapd"), sbin("slapadd"));
        let mut dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().to_owned();
        let d = d.as_path();
        std::fs::create_dir(d.join("db")).expect("db dir");
        let ca = tls.then(|| make_certificates(d));
        let tls_lines = if tls {
            format!(
                "TLSCertificateFile {0}/server.pem\nTLSCertificateKeyFile {0}/server.key\n",
                d.display()
            )
        } else {
            String::new()
        };
        let conf = d.join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema\n\
                 include /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\n\
                 include /etc/ldap/schema/nis.schema\n\
                 modulepath /usr/lib/ldap\nmoduleload back_mdb\n\
                 pidfile {0}/slapd.pid\nargsfile {0}/slapd.args\n{tls_lines}\
                 database mdb\nmaxsize 10485760\nsuffix \"{BASE_DN}\"\ndirectory {0}/db\n\
                 access to attrs=userPassword by anonymous auth by * none\n\
                 access to * by * read\n",
                d.display()
            ),
        )
        .expect("slapd.conf");
        std::fs::write(d.join("seed.ldif"), seed()).expect("seed");
        let out = Command::new(&slapadd)
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(d.join("seed.ldif"))
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}: {HOW_TO_INSTALL}", slapadd.display()));
        assert!(
            out.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // slapd cannot report the port it got: pick free ones, retry on the rare clash.
        for _ in 0..5 {
            let port = free_port();
            let mut urls = format!("ldap://127.0.0.1:{port}/");
            let tls = ca.clone().map(|ca| (free_port(), ca));
            if let Some((ldaps, _)) = &tls {
                urls += &format!(" ldaps://127.0.0.1:{ldaps}/");
            }
            let log = std::fs::File::create(d.join("slapd.log")).expect("log");
            // Any -d keeps slapd in the foreground, a child we can kill.
            let child = Command::new(&slapd)
                .arg("-f")
                .arg(&conf)
                .args(["-h", &urls, "-d", "none"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("{}: {e}: {HOW_TO_INSTALL}", slapd.display()));
            let mut srv = Slapd {
                child,
                dir,
                port,
                tls,
            };
            if srv.wait_ready() {
                return srv;
            }
            let _ = srv.child.kill();
            let _ = srv.child.wait();
            dir = std::mem::replace(&mut srv.dir, tempfile::tempdir().expect("temp dir"));
        }
        panic!("slapd did not start: {}", slapd_log(&dir));
    }

    fn wait_ready(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false; // most likely a port was taken meanwhile
            }
            let ldaps = self.tls.as_ref().map(|(p, _)| *p);
            let up = |p: u16| TcpStream::connect(("127.0.0.1", p)).is_ok();
            if up(self.port) && ldaps.is_none_or(up) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    fn ldaps_url(&self) -> String {
        let (port, _) = self.tls.as_ref().expect("a TLS slapd");
        format!("ldaps://127.0.0.1:{port}")
    }

    fn ca(&self) -> &Path {
        &self.tls.as_ref().expect("a TLS slapd").1
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn slapd_log(dir: &tempfile::TempDir) -> String {
    std::fs::read_to_string(dir.path().join("slapd.log")).unwrap_or_default()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

// ---- arbor in front of it --------------------------------------------------------------------

const ACLS: &[(&str, &str)] = &[
    (
        "devs",
        "rw /branches/dev/**\nr /branches/\nr /branches/**\n",
    ),
    ("readers", "r /branches/\nr /branches/pub/**\n"),
    ("ANONYMOUS", "r /branches/\n"),
];

struct Setup {
    server: TestServer,
    _etc: tempfile::TempDir,
}

/// arbor in LDAP mode against `url`, plus `extra` settings. An auth file that would let
/// alice in with another password is there too: LDAP mode must ignore it.
fn arbor(url: &str, extra: &[(&str, &str)]) -> Setup {
    let etc = tempfile::tempdir().expect("temp dir");
    let acls = etc.path().join("acls");
    std::fs::create_dir(&acls).expect("acls");
    for (group, text) in ACLS {
        std::fs::write(acls.join(group), text).expect("acl");
    }
    let auth = etc.path().join("auth");
    std::fs::write(&auth, "alice:file-pw:devs\n").expect("auth file");
    let mut env = vec![
        ("DLREPO_AUTH_DISABLED", "0"),
        ("DLREPO_ACLS_DIR", acls.to_str().expect("utf-8")),
        ("DLREPO_AUTH_FILE", auth.to_str().expect("utf-8")),
        ("DLREPO_LDAP_URL", url),
        ("DLREPO_LDAP_START_TLS", "0"),
        ("DLREPO_LDAP_BASE_DN", BASE_DN),
        ("DLREPO_LDAP_USER_FILTER", USER_FILTER),
        ("DLREPO_LDAP_GROUPS_FILTER", GROUPS_FILTER),
        ("DLREPO_LDAP_TIMEOUT", "2"),
    ];
    // Later entries win: Command::env keeps the last value of a name.
    env.extend_from_slice(extra);
    Setup {
        server: TestServer::start_with(&env),
        _etc: etc,
    }
}

fn basic(login: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"))
    )
}

fn get_as(s: &TestServer, login: &str, password: &str, path: &str) -> Res {
    s.request(
        "GET",
        path,
        &[("Authorization", &basic(login, password))],
        None,
    )
}

fn put_as(s: &TestServer, login: &str, password: &str, path: &str) -> Res {
    let d = digest_of(b"x");
    let auth = basic(login, password);
    s.request(
        "PUT",
        path,
        &[("Authorization", &auth), ("Digest", &d)],
        Some(b"x"),
    )
}

/// Rows of login, password, method (GET or PUT), path and the status expected.
#[track_caller]
fn check(s: &TestServer, rows: &[(&str, &str, &str, &str, u16)]) {
    for &(login, password, method, path, status) in rows {
        let r = match method {
            "PUT" => put_as(s, login, password, path),
            _ => get_as(s, login, password, path),
        };
        assert_eq!(
            r.status,
            status,
            "{method} {path} as {login:?}: {}",
            r.text()
        );
    }
}

#[track_caller]
fn assert_status(r: &Res, status: u16) {
    assert_eq!(r.status, status, "{}", r.text());
}

#[track_caller]
fn assert_unavailable(r: &Res) {
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.text(), "503: LDAP server unavailable");
}

// ---- tests -------------------------------------------------------------------------------------

#[test]
fn logins_get_the_acls_of_their_ldap_groups() {
    let ldap = Slapd::start(false);
    let st = arbor(&ldap.url(), &[]);
    let s = &st.server;
    check(
        s,
        &[
            // alice: devs (groupOfNames, by DN) and readers (posixGroup, by login).
            ("alice", "alice-pw", "PUT", "/branches/dev/t/j/f/a", 201),
            ("alice", "alice-pw", "GET", "/branches/dev/t/j/f/a", 200),
            // bob: readers only.
            ("bob", "bob-pw", "GET", "/branches/", 200),
            ("bob", "bob-pw", "PUT", "/branches/dev/t/j/f/b", 401),
            ("bob", "bob-pw", "GET", "/branches/dev/", 401),
            // A DN with `,`, `\` and parentheses still finds its groupOfNames.
            ("jsmith", "js-pw", "PUT", "/branches/dev/t/j/f/c", 201),
            // Wrong password, empty password, unknown login, a login in no group.
            ("alice", "wrong", "GET", "/branches/", 401),
            ("alice", "", "GET", "/branches/", 401),
            ("mallory", "alice-pw", "GET", "/branches/", 401),
            ("carol", "carol-pw", "GET", "/branches/", 401),
            // The auth file is ignored in LDAP mode.
            ("alice", "file-pw", "GET", "/branches/", 401),
        ],
    );
    // No credentials: anonymous, as ever.
    assert_status(&s.get("/branches/"), 200);
    assert_status(&s.get("/branches/dev/"), 401);
}

#[test]
fn filter_metacharacters_in_logins_match_nobody() {
    let ldap = Slapd::start(false);
    let st = arbor(&ldap.url(), &[]);
    let s = &st.server;
    // Unescaped, each of these would find alice alone and her password would let them in.
    for login in ["al*", "alice)(objectClass=*", "*lice", "alice)(|(uid=x"] {
        assert_status(&get_as(s, login, "alice-pw", "/branches/"), 401);
    }
    // Unescaped, `*` would match every user: an error, not a plain "no".
    assert_status(&get_as(s, "*", "alice-pw", "/branches/"), 401);
    assert_status(&get_as(s, "alice\\", "alice-pw", "/branches/"), 401);
    assert_status(&get_as(s, "alice", "alice-pw", "/branches/"), 200);
}

#[test]
fn two_entries_for_one_login_is_a_server_error() {
    let ldap = Slapd::start(false);
    let st = arbor(&ldap.url(), &[]);
    assert_unavailable(&get_as(&st.server, "twin", "twin-pw", "/branches/"));
}

#[test]
fn ignore_passwords_trusts_the_login() {
    let ldap = Slapd::start(false);
    let st = arbor(&ldap.url(), &[("DLREPO_IGNORE_PASSWORDS", "1")]);
    let s = &st.server;
    check(
        s,
        &[
            ("alice", "anything", "PUT", "/branches/dev/t/j/f/a", 201),
            ("bob", "", "GET", "/branches/", 200),
            ("mallory", "x", "GET", "/branches/", 401),
            ("carol", "x", "GET", "/branches/", 401),
        ],
    );
}

#[test]
fn a_directory_that_is_down_answers_503_but_cached_logins_go_on() {
    let mut ldap = Slapd::start(false);
    let st = arbor(&ldap.url(), &[]);
    let s = &st.server;
    assert_status(&get_as(s, "alice", "alice-pw", "/branches/"), 200);
    ldap.stop();
    // spec/AUTH.md §3: successful logins are cached (DLREPO_AUTH_CACHE_TTL).
    assert_status(&get_as(s, "alice", "alice-pw", "/branches/"), 200);
    let started = Instant::now();
    assert_unavailable(&get_as(s, "bob", "bob-pw", "/branches/"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a refused connection fails at once"
    );
    // Nothing to check without credentials: anonymous access does not need the directory.
    assert_status(&s.get("/branches/"), 200);
}

#[test]
fn a_directory_that_hangs_times_out_with_503() {
    // Accepts connections (the kernel's backlog does) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ldap://{}", silent.local_addr().expect("addr"));
    let st = arbor(&url, &[("DLREPO_LDAP_TIMEOUT", "1")]);
    let started = Instant::now();
    assert_unavailable(&get_as(&st.server, "alice", "alice-pw", "/branches/"));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "took {took:?} with a 1 s timeout"
    );
}

#[test]
fn start_tls_is_the_default_and_ldaps_works() {
    let ldap = Slapd::start(true);
    let ca = ldap.ca().to_str().expect("utf-8").to_owned();
    let trust = ("SSL_CERT_FILE", ca.as_str());
    // StartTLS on ldap:// (`1` is the default, see the unit tests), the certificate checked.
    let st = arbor(&ldap.url(), &[("DLREPO_LDAP_START_TLS", "1"), trust]);
    assert_status(&get_as(&st.server, "alice", "alice-pw", "/branches/"), 200);
    drop(st);
    let st = arbor(&ldap.ldaps_url(), &[trust]);
    assert_status(&get_as(&st.server, "bob", "bob-pw", "/branches/"), 200);
    assert_status(&get_as(&st.server, "bob", "wrong", "/branches/"), 401);
    drop(st);
    // A certificate nobody vouches for is refused.
    let st = arbor(&ldap.url(), &[("DLREPO_LDAP_START_TLS", "1")]);
    assert_unavailable(&get_as(&st.server, "alice", "alice-pw", "/branches/"));
}
