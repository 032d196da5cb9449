//! Access control tried as an attacker would (issue 11, spec/API.md Q2, Q48-Q50): every
//! spelling of a URL the caller may not use, on the tree and on the registry, with every
//! method, is refused and changes nothing on disk; a refused entity and a missing one look
//! alike; link mode and the dedup `HEAD` only use content the caller can read; a writer of
//! one branch cannot change what another team's product aliases serve.

use crate::common;

use crate::shared::security::{self, SECRET};
use common::auth::Secured;
use common::{Client as _, Res, digest_of, nlink, snapshot};
use serde_json::json;

const METHODS: [&str; 7] = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"];

fn start() -> Secured {
    security::start()
}

/// Every spelling of every tree URL below a branch named `b`.
fn tree_urls(b: &str) -> Vec<String> {
    let upper = b.to_uppercase();
    let encoded: String = b.bytes().map(|c| format!("%{c:02X}")).collect();
    let mut out = Vec::new();
    for name in [
        b.to_owned(),
        upper,
        encoded,
        format!("{}{}", &b[..1].to_uppercase(), &b[1..]),
    ] {
        for rest in [
            "",
            "/",
            "/t",
            "/t/",
            "/T/",
            "/latest",
            "/latest/",
            "/t/j",
            "/t/j/",
            "/t/J",
            "/t/j.tar",
            "/latest/j.tar",
            // The other encodings of the bundles are guarded exactly as the .tar.
            "/t/j.tar.gz",
            "/latest/j.zip",
            "/t/j/f.tar.xz",
            "/T/J/F.zip",
            "/t/j/f",
            "/t/j/f/",
            "/t/j/F/",
            "/t/j/f.tar",
            "/t/j/f.sha256",
            "/t/j/f/secret.txt",
            "/T/J/F/secret.txt",
            "/latest/j/f/secret.txt",
            "/t/j/f/new.txt",
        ] {
            out.push(format!("/branches/{name}{rest}"));
        }
    }
    out
}

/// Every spelling of every product URL of product `p`.
fn product_urls(p: &str) -> Vec<String> {
    let encoded: String = p.bytes().map(|c| format!("%{c:02X}")).collect();
    let mut out = Vec::new();
    for name in [p.to_owned(), p.to_uppercase(), encoded] {
        for rest in [
            "",
            "/",
            "/x",
            "/X/",
            "/x/main",
            "/x/Main/",
            "/x/main/1.0",
            "/x/main/1.0/",
            "/x/main/latest",
            "/x/main/LATEST/",
            "/x/main/1.0.tar",
            "/x/main/latest.tar",
            "/x/main/1.0.tar.zst",
            "/x/main/latest.zip",
            "/x/main/1.0/f.tar.gz",
            "/x/main/1.0/f",
            "/x/main/1.0/f/",
            "/x/main/1.0/f.tar",
            "/x/main/1.0/F.sha256",
            "/x/main/1.0/f/secret.txt",
            "/x/main/stable/f/secret.txt",
        ] {
            out.push(format!("/products/{name}{rest}"));
        }
    }
    out
}

/// Every spelling of the registry URLs of repository `{b}/img`.
fn registry_urls(b: &str, layer: &str) -> Vec<String> {
    let upper = b.to_uppercase();
    let encoded: String = b.bytes().map(|c| format!("%{c:02x}")).collect();
    let mut out = Vec::new();
    for name in [
        format!("{b}/img"),
        format!("{upper}/img"),
        format!("{encoded}/IMG"),
    ] {
        for rest in [
            "/manifests/v1".to_owned(),
            "/manifests/V1".to_owned(),
            "/manifests/latest".to_owned(),
            format!("/blobs/{layer}"),
            format!("/blobs/{}", layer.to_uppercase()),
            "/tags/list".to_owned(),
            "/blobs/uploads/".to_owned(),
            format!("/blobs/uploads/?digest={}", digest_of(b"x")),
            "/blobs/uploads/0123456789abcdef0123456789abcdef".to_owned(),
            format!("/referrers/{layer}"),
        ] {
            out.push(format!("/v2/{name}{rest}"));
        }
    }
    out
}

fn attempt(s: &Secured, method: &str, url: &str) -> Res {
    let d = digest_of(b"x");
    let body: Option<&[u8]> = match method {
        "PUT" | "POST" | "PATCH" => Some(br#"{"job": {"locked": true}}"#),
        _ => None,
    };
    s.send("mal", method, url, &[("Digest", &d)], body)
}

/// Every method on every URL is a 401 for mal, shows nothing of the vault, writes nothing.
fn all_refused(s: &Secured, urls: &[String]) {
    let before = snapshot(s.server.root.path());
    for url in urls {
        for method in METHODS {
            let r = attempt(s, method, url);
            assert_eq!(r.status, 401, "{method} {url}: {} {}", r.status, r.text());
            assert!(
                !r.text().contains("vault's own"),
                "{method} {url} leaked the content"
            );
        }
    }
    let after = snapshot(s.server.root.path());
    assert_eq!(before, after, "a refused request wrote");
}

#[test]
fn no_spelling_of_a_forbidden_tree_url_gets_through() {
    let s = start();
    let mut urls = tree_urls("vault");
    urls.extend(product_urls("vaultp"));
    urls.extend([
        "/~admin".into(),
        "/~admin/".into(),
        "/~Admin/branches".into(),
    ]);
    all_refused(&s, &urls);
    // The secret is still there for who may read it.
    let r = s.get("admin", "/branches/vault/t/j/f/secret.txt");
    assert_eq!(r.body, SECRET);
}

#[test]
fn no_spelling_of_a_forbidden_registry_url_gets_through() {
    let s = start();
    let layer = digest_of(b"layer of vault/img");
    all_refused(&s, &registry_urls("vault", &layer));
    // A push under another spelling of the name creates nothing either (checked above on
    // disk); the image is still there for who may read it.
    let r = s.get("admin", "/v2/vault/img/manifests/v1");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_forbidden_entity_and_a_missing_one_look_alike() {
    let s = start();
    let layer = digest_of(b"layer of vault/img");
    let pairs = tree_urls("vault")
        .into_iter()
        .zip(tree_urls("vaultnone"))
        .chain(
            product_urls("vaultp")
                .into_iter()
                .zip(product_urls("vaultpnone")),
        )
        .chain(
            registry_urls("vault", &layer)
                .into_iter()
                .zip(registry_urls("vaultnone", &layer)),
        );
    for (there, missing) in pairs {
        for method in ["GET", "HEAD", "DELETE", "POST"] {
            let (a, b) = (attempt(&s, method, &there), attempt(&s, method, &missing));
            assert_eq!(
                (a.status, a.headers.get("location"), a.text()),
                (b.status, b.headers.get("location"), b.text()),
                "{method} {there} vs {missing}"
            );
        }
    }
}

#[test]
fn an_alias_never_redirects_to_what_the_caller_cannot_read() {
    let s = start();
    assert_eq!(
        s.put("mal", "/branches/dev/t/j/f/visible.txt", b"v").status,
        201
    );
    assert_eq!(
        s.put("admin", "/branches/dev/t/j/f/hidden.txt", b"h")
            .status,
        201
    );
    let r = s.get("mal", "/branches/dev/latest/j/f/visible.txt");
    assert_eq!(
        r.header("location"),
        Some("/branches/dev/t/j/f/visible.txt")
    );
    // The alias resolves, but its target is unreadable: the 404 of a missing file.
    let hidden = s.get("mal", "/branches/dev/latest/j/f/hidden.txt");
    let missing = s.get("mal", "/branches/dev/latest/j/f/nothing.txt");
    assert_eq!(
        (hidden.status, hidden.text()),
        (missing.status, missing.text())
    );
    assert_eq!(hidden.status, 404);
    // A bundle is its job's content: no redirect to the bundle of a job the caller may not
    // read, though the `.tar` URL itself is not excluded.
    assert_eq!(
        s.put("admin", "/branches/dev/t/sealed/f/x", b"x").status,
        201
    );
    let sealed = s.get("mal", "/branches/dev/latest/sealed.tar");
    assert_eq!((sealed.status, sealed.header("location")), (404, None));
    let open = s.get("mal", "/branches/dev/latest/j.tar");
    assert_eq!(open.header("location"), Some("/branches/dev/t/j.tar"));
    for enc in [".tar.gz", ".tar.xz", ".tar.zst", ".zip"] {
        let sealed = s.get("mal", &format!("/branches/dev/latest/sealed{enc}"));
        assert_eq!((sealed.status, sealed.header("location")), (404, None));
        let open = s.get("mal", &format!("/branches/dev/latest/j{enc}"));
        let want = format!("/branches/dev/t/j{enc}");
        assert_eq!(open.header("location"), Some(want.as_str()));
    }
}

#[test]
fn link_mode_and_dedup_head_only_use_readable_content() {
    let s = start();
    let secret = digest_of(SECRET);
    let link = |who: &str, url: &str, d: &str| {
        s.send(
            who,
            "PUT",
            url,
            &[("Digest", d), ("X-Dlrepo-Link", d)],
            Some(b""),
        )
    };
    let head = |who: &str, url: &str, d: &str| s.send(who, "HEAD", url, &[("Digest", d)], None);
    let before = snapshot(s.server.root.path());
    // Content only the vault holds: unknown to mal, exactly like content nobody has.
    let unknown = digest_of(b"nobody has this");
    let (a, b) = (
        head("mal", "/branches/dev/t/j/f/x", &secret),
        head("mal", "/branches/dev/t/j/f/x", &unknown),
    );
    assert_eq!((a.status, b.status), (404, 404));
    let (a, b) = (
        link("mal", "/branches/dev/t/j/f/stolen.txt", &secret),
        link("mal", "/branches/dev/t/j/f/stolen.txt", &unknown),
    );
    assert_eq!((a.status, a.text()), (b.status, b.text()));
    assert_eq!(a.status, 404);
    assert_eq!(before, snapshot(s.server.root.path()));
    assert_eq!(s.get("mal", "/branches/dev/t/j/f/stolen.txt").status, 404);
    // The hidden file in a readable branch is no source either.
    assert_eq!(
        s.put("admin", "/branches/dev/t/j/f/hidden.txt", b"h!")
            .status,
        201
    );
    assert_eq!(
        head("mal", "/branches/dev/t/j/f/h", &digest_of(b"h!")).status,
        404
    );
    // Admin may read the vault: dedup works for them, as dlrepo-cli expects.
    assert_eq!(head("admin", "/branches/dev/t/j/f/x", &secret).status, 200);
    // Content mal can read elsewhere links, stored once.
    assert_eq!(
        s.put("admin", "/branches/pub/t/j/f/shared.txt", b"shared")
            .status,
        201
    );
    let shared = digest_of(b"shared");
    let r = head("mal", "/branches/dev/t/j/f/shared.txt", &shared);
    assert_eq!((r.status, r.header("content-length")), (200, Some("6")));
    let r = link("mal", "/branches/dev/t/j/f/shared.txt", &shared);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        s.get("mal", "/branches/dev/t/j/f/shared.txt").body,
        b"shared"
    );
    assert_eq!(nlink(&s.server.path("branches/pub/t/j/f/shared.txt")), 3);
}

fn product_meta(version: &str) -> serde_json::Value {
    json!({"job": {"product": "fw", "product_variant": "x86", "product_branch": "main",
                   "version": version}})
}

#[test]
fn a_branch_writer_cannot_take_over_a_product() {
    let s = start();
    // The release team publishes 1.0 from its own job.
    assert_eq!(
        s.put("rel", "/branches/dev/r1/j/bin/fw.bin", b"good")
            .status,
        201
    );
    s.send("rel", "PATCH", "/branches/dev/r1/j/bin/", &[], Some(b""));
    let r = s.json("rel", "PATCH", "/branches/dev/r1/j/", &product_meta("1.0"));
    assert_eq!(r.status, 200, "{}", r.text());
    let latest = "/products/fw/x86/main/latest/bin/fw.bin";
    let r = s.get("mal", latest);
    assert_eq!(
        r.header("location"),
        Some("/products/fw/x86/main/1.0/bin/fw.bin")
    );

    // mal may write dev, not the product: a newer version of their own is refused...
    assert_eq!(
        s.put("mal", "/branches/dev/evil/j/bin/fw.bin", b"evil")
            .status,
        201
    );
    s.send("mal", "PATCH", "/branches/dev/evil/j/bin/", &[], Some(b""));
    let before = snapshot(s.server.root.path());
    // ...and so are joining the existing version and creating a new job to do it.
    for (job, version) in [("evil", "1.1"), ("evil", "1.0"), ("fresh", "1.2")] {
        let url = format!("/branches/dev/{job}/j/");
        let r = s.json("mal", "PATCH", &url, &product_meta(version));
        assert_eq!(r.status, 401, "{url} {version}: {}", r.text());
    }
    assert_eq!(
        before,
        snapshot(s.server.root.path()),
        "a refused PATCH wrote"
    );
    let r = s.get("mal", latest);
    assert_eq!(
        r.header("location"),
        Some("/products/fw/x86/main/1.0/bin/fw.bin")
    );

    // Metadata that names no product stays open to branch writers.
    let r = s.json(
        "mal",
        "PATCH",
        "/branches/dev/evil/j/",
        &json!({"job": {"k": "v"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // Locking re-links a job's product: mal cannot slip a format in that way either.
    assert_eq!(s.put("mal", "/branches/dev/r1/j/evil/x", b"x").status, 201);
    s.send("mal", "PATCH", "/branches/dev/r1/j/evil/", &[], Some(b""));
    let r = s.json(
        "mal",
        "PUT",
        "/branches/dev/r1/j/",
        &json!({"job": {"locked": true}}),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(!s.server.path("products/fw/x86/main/1.0/evil").exists());
    assert!(!s.server.path("branches/dev/r1/j/.locked").exists());

    // Even the release team never silently replaces a format another job provides.
    assert_eq!(
        s.put("rel", "/branches/dev/r2/j/bin/fw.bin", b"other")
            .status,
        201
    );
    s.send("rel", "PATCH", "/branches/dev/r2/j/bin/", &[], Some(b""));
    let before = snapshot(s.server.root.path());
    let r = s.json("rel", "PATCH", "/branches/dev/r2/j/", &product_meta("1.0"));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("already provided by another job"),
        "{}",
        r.text()
    );
    assert_eq!(
        before,
        snapshot(s.server.root.path()),
        "a refused PATCH wrote"
    );
    let r = s.get("rel", "/products/fw/x86/main/1.0/bin/fw.bin");
    assert_eq!(r.body, b"good");
}
