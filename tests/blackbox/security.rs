//! Access control tried as an attacker would (issue 11, spec/API.md Q2, Q48-Q50): every
//! spelling of a URL the caller may not use, on the tree and on the registry, with every
//! method, is refused and changes nothing on disk; a refused entity and a missing one look
//! alike; link mode and the dedup `HEAD` only use content the caller can read; a writer of
//! one branch cannot change what another team's product aliases serve. Every case runs in
//! process in tests/router/security.rs; this one also goes through a real socket.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;

use common::auth::Secured;
use common::{Res, digest_of, snapshot};
use serde_json::json;

const SECRET: &[u8] = b"the vault's own bytes";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const METHODS: [&str; 7] = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"];

/// `mal` may write and read every branch but the `vault*` branches, `dev`'s hidden file,
/// and the `vault*` registry repositories; `admin` may do anything; `rel` writes `dev` and
/// may publish the `fw` product.
fn start() -> Secured {
    let s = Secured::start(
        &[
            ("admin", "a", "admins"),
            ("mal", "m", "devs"),
            ("rel", "r", "devs releasers"),
        ],
        &[
            ("admins", "rw /**\n"),
            (
                "devs",
                "r /\n\
                 r /branches/\n\
                 r /branches/** !/branches/vault*/** !/branches/dev/t/j/f/hidden.txt !/branches/dev/t/sealed/**\n\
                 rw /branches/** !/branches/vault*/** !/branches/dev/t/j/f/hidden.txt !/branches/dev/t/sealed/**\n\
                 r /products/** !/products/vaultp*/**\n\
                 r /v2/\n\
                 r /v2/** !/v2/vault*/**\n\
                 rw /v2/dev/**\n",
            ),
            ("releasers", "rw /products/fw/**\n"),
        ],
    );
    let admin = |m: &str, p: &str, b: Option<&[u8]>| s.send("admin", m, p, &[], b);
    assert_eq!(
        s.put("admin", "/branches/vault/t/j/f/secret.txt", SECRET)
            .status,
        201
    );
    assert_eq!(
        admin("PATCH", "/branches/vault/t/j/f/", Some(b"")).status,
        200
    );
    let meta = json!({"job": {"product": "vaultp", "product_variant": "x",
                              "product_branch": "main", "version": "1.0"}});
    assert_eq!(
        s.json("admin", "PATCH", "/branches/vault/t/j/", &meta)
            .status,
        200
    );
    push_image(&s, "admin", "vault/img", "v1");
    s
}

/// A one-layer image pushed over plain HTTP; returns the layer's digest.
fn push_image(s: &Secured, who: &str, repo: &str, tag: &str) -> String {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","repo":"{repo}"}}"#);
    let layer = format!("layer of {repo}").into_bytes();
    for blob in [config.as_bytes(), &layer] {
        let url = format!("/v2/{repo}/blobs/uploads/?digest={}", digest_of(blob));
        let r = s.send(who, "POST", &url, &[], Some(blob));
        assert_eq!(r.status, 201, "{url}: {}", r.text());
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest_of(config.as_bytes()), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest_of(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let url = format!("/v2/{repo}/manifests/{tag}");
    let r = s.send(
        who,
        "PUT",
        &url,
        &[("Content-Type", OCI_MANIFEST)],
        Some(&manifest),
    );
    assert_eq!(r.status, 201, "{url}: {}", r.text());
    digest_of(&layer)
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
