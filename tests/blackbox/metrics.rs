//! `GET /metrics`: request, byte and cleanup counters in the OpenMetrics text format, behind
//! the same access control as everything else.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use common::*;
use std::time::{Duration, Instant};

/// The value of the series whose line starts with `series` (name and labels), if any.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split(' ').next()?.parse().ok())
}

fn metrics(s: &TestServer) -> String {
    let r = s.get("/metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    r.text()
}

#[test]
fn requests_bytes_and_cleanups_are_counted() {
    let s = TestServer::start_with(&[("DLREPO_ORPHAN_BLOB_LIFETIME", "0")]);
    let big = vec![7u8; 3 << 20];
    assert_eq!(s.put_file("/branches/b/t/j/f/big", &big).status, 201);
    assert_eq!(s.put_file("/branches/b/t/j/f/small", b"abc").status, 201);
    // Sent with sendfile: the counter must still see every byte.
    assert_eq!(s.get("/branches/b/t/j/f/big").body.len(), big.len());
    assert_eq!(s.get("/branches/nope/").status, 404);

    let text = metrics(&s);
    let put = r#"arbor_http_requests_total{method="PUT",code="201"}"#;
    assert_eq!(value(&text, put), Some(2.0), "{text}");
    let not_found = r#"arbor_http_requests_total{method="GET",code="404"}"#;
    assert_eq!(value(&text, not_found), Some(1.0), "{text}");
    let received = value(&text, "arbor_http_received_bytes_total").unwrap();
    assert!(received >= (big.len() + 3) as f64, "{text}");
    let sent = value(&text, "arbor_http_sent_bytes_total").unwrap();
    assert!(sent >= big.len() as f64, "{text}");
    // The scrape itself is the one request in flight.
    assert_eq!(value(&text, "arbor_http_requests_in_flight"), Some(1.0));
    let timed = r#"arbor_http_request_duration_seconds_count{method="PUT"}"#;
    assert_eq!(value(&text, timed), Some(2.0), "{text}");
    assert!(text.contains("arbor_build_info{version="), "{text}");
    assert_eq!(value(&text, "arbor_gc_runs_total"), Some(0.0), "{text}");

    // Deleting the tag orphans both blobs; the collector run it schedules is counted.
    assert_eq!(s.delete("/branches/b/t/").status, 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = metrics(&s);
        if value(&text, "arbor_gc_runs_total") >= Some(1.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "no cleanup run counted: {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let freed = value(&text, "arbor_gc_freed_bytes_total").unwrap();
    assert!(freed >= (big.len() + 3) as f64, "{text}");
    assert!(
        value(&text, "arbor_gc_deleted_blobs_total") >= Some(2.0),
        "{text}"
    );
}

#[test]
fn metrics_follow_the_acls() {
    let etc = tempfile::tempdir().unwrap();
    let acls = etc.path().join("acls");
    std::fs::create_dir_all(&acls).unwrap();
    let auth = etc.path().join("auth");
    std::fs::write(&auth, "prom:secret:monitoring\n").unwrap();
    std::fs::write(acls.join("monitoring"), "r /metrics\n").unwrap();
    let s = TestServer::start_with(&[
        ("DLREPO_AUTH_DISABLED", "0"),
        ("DLREPO_AUTH_FILE", auth.to_str().unwrap()),
        ("DLREPO_ACLS_DIR", acls.to_str().unwrap()),
    ]);
    assert_eq!(s.get("/metrics").status, 401);
    let r = s.request(
        "GET",
        "/metrics",
        &[("Authorization", "Basic cHJvbTpzZWNyZXQ=")],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("arbor_http_requests_total"));
}

#[test]
fn free_space_is_exported_and_low_space_degrades_healthz() {
    let s = TestServer::start();
    let text = metrics(&s);
    let free = value(&text, "arbor_disk_free_bytes").expect("arbor_disk_free_bytes");
    let real = nix::sys::statvfs::statvfs(s.root.path()).unwrap();
    let avail = real.blocks_available() as f64 * real.fragment_size() as f64;
    // Within 1 GiB of what statvfs says now (other tests write meanwhile).
    assert!(
        (free - avail).abs() < f64::from(1 << 30),
        "{free} vs {avail}"
    );
    assert!(value(&text, "arbor_disk_free_inodes").is_some(), "{text}");
    assert_eq!(s.get("/healthz").status, 200);

    // Ask for more room than any disk here has: the server works, and says it is short.
    let low = TestServer::start_with(&[("DLREPO_MIN_FREE_SPACE", "1000000000000000000")]);
    let r = low.get("/healthz");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["status"], "degraded");
    let reason = r.json()["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("DLREPO_MIN_FREE_SPACE"), "{reason}");
    assert_eq!(low.put_file("/branches/b/t/j/f/x", b"x").status, 201);
}
