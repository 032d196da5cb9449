//! The manuals say what the server does. The roff pages in man/ are generated from their
//! scdoc sources and committed: the two must not drift apart (only the date scdoc stamps in
//! the `.TH` line may differ; Debian's scdoc comes from tests/deps/install). And the claims
//! that can drift from the code are checked against the real binary: its flags, the fixed
//! endpoints, and what `HEAD` on a file answers. Settings and defaults are checked by the
//! unit tests of src/config/documented.rs, exit statuses by tests/blackbox/config.rs.

// The test reads the repository's own files.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use common::Client as _;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

fn scd(page: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("man")
        .join(format!("{page}.scd"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The words scdoc sets in bold (`*word*`) in `text`.
fn bold(text: &str) -> Vec<String> {
    // `\*` is a literal asterisk (`DLREPO\_\*`), not a bold marker.
    let text = text.replace("\\*", "\u{0}");
    text.split('*')
        .skip(1)
        .step_by(2)
        .map(|s| s.replace('\u{0}', "*"))
        .collect()
}

/// The page without its `.TH` line, which carries the build date.
fn body(roff: &str) -> Vec<&str> {
    roff.lines().filter(|l| !l.starts_with(".TH ")).collect()
}

#[test]
fn committed_manuals_match_their_scdoc_sources() {
    let man = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let mut checked = 0;
    for entry in std::fs::read_dir(&man).expect("man/") {
        let src = entry.expect("entry").path();
        if src.extension().is_none_or(|e| e != "scd") {
            continue;
        }
        let page = src.with_extension("");
        let input = std::fs::File::open(&src).expect("source");
        let out = Command::new("scdoc")
            .stdin(Stdio::from(input))
            .output()
            .unwrap_or_else(|e| panic!("scdoc: {e}: run tests/deps/install, which installs it"));
        assert!(
            out.status.success(),
            "scdoc < {}: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let fresh = String::from_utf8(out.stdout).expect("roff is UTF-8");
        let committed =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            body(&fresh) == body(&committed),
            "{} is stale: run `make -C man`",
            page.display()
        );
        checked += 1;
    }
    assert_eq!(checked, 5, "man/ should hold five scdoc sources");
}

/// Every `--flag` of every command's `--help`, and every `*--flag*` of arbor(8).
#[test]
fn arbor_8_documents_every_flag_and_no_other() {
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["gc"],
        &["fsck"],
        &["reindex"],
        &["token", "create"],
        &["token", "list"],
        &["token", "revoke"],
        &["upload"],
        &["get"],
        &["lock"],
        &["tags"],
        &["release"],
        &["stable"],
        &["internal"],
        &["cleanup-policy"],
    ];
    let mut flags = BTreeSet::new();
    for args in commands {
        let out = Command::new(env!("CARGO_BIN_EXE_arbor"))
            .args(*args)
            .arg("--help")
            .output()
            .expect("arbor --help");
        assert!(out.status.success(), "arbor {args:?} --help");
        let help = String::from_utf8(out.stdout).expect("UTF-8 help");
        for line in help.lines() {
            // Option lines: `  -h, --help`, `      --root <DIR>  ...`.
            let Some(opt) = line.trim_start().split("  ").next() else {
                continue;
            };
            for word in opt.split([' ', ',']) {
                if word.starts_with("--") {
                    flags.insert(word.to_owned());
                }
            }
        }
    }
    assert!(flags.contains("--listen"), "{flags:?}");
    let page = scd("arbor.8");
    let documented: BTreeSet<String> = bold(&page)
        .into_iter()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split(' ').next().unwrap_or_default().to_owned())
        .collect();
    for flag in &flags {
        assert!(
            documented.contains(flag),
            "arbor(8) does not document {flag}"
        );
    }
    for flag in &documented {
        assert!(
            flags.contains(flag),
            "arbor(8) documents {flag}, which no command accepts"
        );
    }
}

/// What arbor-api(7) says a `HEAD` on a file answers (what `GET` does, without the
/// body), against what it answers.
#[test]
fn head_on_a_file_sends_the_headers_arbor_api_7_lists() {
    let page = scd("arbor-api.7");
    assert!(
        page.contains("*HEAD* on a file answers the status and headers *GET* would"),
        "arbor-api(7) DOWNLOADS says what HEAD on a file answers"
    );
    let s = common::TestServer::start();
    s.upload_format(
        "/branches/b/t/j/f/",
        &[("a.txt", b"text"), ("page.html", b"<p>active</p>")],
    );
    for file in ["a.txt", "page.html"] {
        for extra in [
            &[][..],
            &[("Range", "bytes=0-1")][..],
            &[("If-None-Match", "*")][..],
        ] {
            let url = format!("/branches/b/t/j/f/{file}");
            let head = s.request("HEAD", &url, extra, None);
            let get = s.request("GET", &url, extra, None);
            assert!(head.body.is_empty());
            let without_date = |r: &common::Res| {
                let mut h = r.headers.clone();
                h.remove("date");
                // hyper adds `Content-Length: 0` to a bodiless HEAD 304; a 304 has no body
                // to measure either way.
                if r.status == 304 {
                    h.remove("content-length");
                }
                (r.status, h.into_iter().collect::<BTreeSet<_>>())
            };
            assert_eq!(
                without_date(&head),
                without_date(&get),
                "HEAD {file} {extra:?}: arbor-api(7) DOWNLOADS"
            );
        }
    }
}

/// The endpoints arbor-api(7) lists by a fixed path are served, and the fixed routes the
/// server has are listed (the registry among them).
#[test]
fn arbor_api_7_lists_the_fixed_endpoints() {
    let page = scd("arbor-api.7");
    let endpoints = page
        .split("\n# ENDPOINTS\n")
        .nth(1)
        .and_then(|s| s.split("\n# ").next())
        .expect("arbor-api(7) has an ENDPOINTS section");
    // Terms such as `*GET /healthz* (arbor only, public)`; not `*GET /static/*_file_`.
    let listed: BTreeSet<&str> = endpoints
        .lines()
        .filter_map(|l| l.strip_prefix("*GET /"))
        .filter_map(|l| l.split_once('*'))
        .filter(|(_, after)| after.is_empty() || after.starts_with(' '))
        .map(|(path, _)| path)
        .collect();
    let script = tempfile::NamedTempFile::new().expect("temp file");
    let s = common::TestServer::start_with(&[(
        "DLREPO_CLI_PATH",
        script.path().to_str().expect("UTF-8 path"),
    )]);
    // `/pubkey` needs a signing key this server has not; tests/blackbox/pubkey.rs fetches it.
    for path in listed.iter().filter(|p| !p.starts_with("pubkey")) {
        let r = s.get(&format!("/{path}"));
        assert!(
            r.status < 300,
            "GET /{path}, listed in arbor-api(7): {}",
            r.status
        );
    }
    for served in ["healthz", "metrics", "cli", "search", "v2/", "branches/"] {
        assert!(
            s.get(&format!("/{served}")).status < 300,
            "GET /{served} is not served"
        );
        assert!(
            listed.contains(served),
            "arbor-api(7) ENDPOINTS does not list GET /{served}"
        );
    }
}

/// The series table of docs/operator.md against what `/metrics` serves: every series served
/// is in the table with its labels, and every series in the table is served (one with
/// labels may have no sample yet: publishes, before the first).
#[test]
fn the_operator_guide_lists_the_metrics_served() {
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operator.md"))
            .expect("docs/operator.md");
    let table = guide
        .split("| series | what |")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .expect("docs/operator.md has the series table");
    // name -> label names, as `arbor_x_total{a,b}`.
    let mut documented = std::collections::BTreeMap::new();
    for code in table.split('`').skip(1).step_by(2) {
        if let Some(series) = code.strip_prefix("arbor_") {
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}').split(',').collect()),
                None => (series, BTreeSet::new()),
            };
            documented.insert(format!("arbor_{name}"), labels);
        }
    }
    let s = common::TestServer::start();
    assert_eq!(s.get("/branches/").status, 200);
    let text = s.get("/metrics").text();
    let mut served = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (family, kind) = rest.split_once(' ').expect("# TYPE name kind");
        let name = match kind {
            "counter" => format!("{family}_total"),
            "info" => format!("{family}_info"),
            _ => family.to_owned(),
        };
        let mut labels = BTreeSet::new();
        for sample in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, rest)) = sample.split_once('{') else {
                continue;
            };
            let own = [name.clone(), format!("{name}_sum"), format!("{name}_count")];
            if own.contains(&series.to_owned()) {
                let body = rest.split('}').next().unwrap_or_default();
                labels.extend(
                    body.split(',')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, _)| k),
                );
            }
        }
        served.insert(name, labels);
    }
    assert!(served.len() >= 5, "{text}");
    for (name, labels) in &served {
        let doc = documented
            .get(name.as_str())
            .unwrap_or_else(|| panic!("docs/operator.md does not list {name}"));
        assert_eq!(doc, labels, "labels of {name} in docs/operator.md");
    }
    for (name, labels) in &documented {
        assert!(
            served.contains_key(name.as_str()) || !labels.is_empty(),
            "docs/operator.md lists {name}, which /metrics does not serve"
        );
    }
}
