//! In-process tests of `/v2/` through the real router (guard and observer layers included)
//! on a temporary data root: routing, method lists and error mapping, in milliseconds.

use crate::config::Config;
use crate::model::oci::OCI_MANIFEST;
use crate::model::{Algo, Digest};
use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde_json::{Value, json};
use tower_service::Service;

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn error_code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Auth disabled, as the black-box registry tests run it: the guard still parses the path.
fn app(root: &std::path::Path) -> AppState {
    AppState::new(Config {
        root_dir: root.to_path_buf(),
        auth_disabled: true,
        ..Config::default()
    })
    .expect("a state on a temp dir")
}

async fn call(app: &AppState, method: &str, uri: &str, body: &[u8]) -> Answer {
    let mut router = crate::http::router(app.clone());
    std::future::poll_fn(|cx| Service::<Request<Body>>::poll_ready(&mut router, cx))
        .await
        .expect("the router is always ready");
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body.to_vec()))
        .expect("a valid request");
    let res = router.call(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .expect("a readable body")
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

fn sha256(data: &[u8]) -> Digest {
    let mut h = Algo::Sha256.hasher();
    h.update(data);
    Digest::sha256_of_hex(h.finish_hex())
}

#[tokio::test]
async fn the_base_answers_with_the_api_version() {
    let tmp = tempfile::tempdir().unwrap();
    let res = call(&app(tmp.path()), "GET", "/v2/", b"").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, b"{}");
    assert_eq!(
        res.headers["docker-distribution-api-version"],
        "registry/2.0"
    );
}

#[tokio::test]
async fn methods_outside_the_route_get_a_plain_405() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path());
    for (method, uri, allow) in [
        ("POST", "/v2/_catalog", "GET,HEAD"),
        ("PUT", "/v2/p/v/b/manifests/t1", "GET,HEAD"),
        ("POST", "/v2/main/app/manifests/t1", "GET,HEAD,PUT,DELETE"),
        ("GET", "/v2/main/app/blobs/uploads/", "POST"),
    ] {
        let res = call(&app, method, uri, b"").await;
        assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_eq!(res.headers[header::ALLOW], allow, "{method} {uri}");
        assert_eq!(res.body, b"405: Method Not Allowed");
        assert!(!res.headers.contains_key("docker-distribution-api-version"));
    }
}

#[tokio::test]
async fn refusals_carry_their_oci_code() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path());
    let bad = call(&app, "GET", "/v2/main/app/blobs/sha256:zz", b"").await;
    assert_eq!(
        (bad.status, bad.error_code()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN".into())
    );
    assert_eq!(
        bad.json()["errors"][0]["message"],
        "invalid digest: sha256:zz"
    );
    let unknown = call(&app, "GET", "/v2/main/app/tags/list", b"").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error_code(), "NAME_UNKNOWN");
    let id = "0123456789abcdef0123456789abcdef";
    let lost = call(
        &app,
        "PATCH",
        &format!("/v2/main/app/blobs/uploads/{id}"),
        b"x",
    )
    .await;
    assert_eq!(lost.status, StatusCode::NOT_FOUND);
    assert_eq!(lost.error_code(), "BLOB_UPLOAD_UNKNOWN");
    let alias = call(&app, "PUT", "/v2/main/app/manifests/latest", b"{}").await;
    assert_eq!(
        (alias.status, alias.error_code()),
        (StatusCode::BAD_REQUEST, "UNSUPPORTED".into())
    );
}

/// A whole push (two monolithic blob uploads, a manifest by tag) and its pull.
#[tokio::test]
async fn a_pushed_image_is_listed_and_pulled() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path());
    let mut descriptors = vec![];
    for data in [&b"{}"[..], b"layer"] {
        let d = sha256(data);
        let res = call(
            &app,
            "POST",
            &format!("/v2/main/app/blobs/uploads/?digest={d}"),
            data,
        )
        .await;
        assert_eq!(res.status, StatusCode::CREATED);
        assert_eq!(
            res.headers[header::LOCATION],
            format!("/v2/main/app/blobs/{d}")
        );
        descriptors.push(json!({"digest": d.to_string(), "size": data.len()}));
    }
    let manifest = crate::pyjson::to_string(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptors[0],
        "layers": [descriptors[1]],
    }));
    let pushed = call(
        &app,
        "PUT",
        "/v2/main/app/manifests/t1",
        manifest.as_bytes(),
    )
    .await;
    assert_eq!(pushed.status, StatusCode::CREATED);
    let digest = sha256(manifest.as_bytes()).to_string();
    assert_eq!(pushed.headers["docker-content-digest"], digest.as_str());

    let tags = call(&app, "GET", "/v2/main/app/tags/list", b"").await;
    assert_eq!(tags.body, br#"{"name": "main/app", "tags": ["t1"]}"#);
    for reference in ["t1", "latest", digest.as_str()] {
        let pulled = call(
            &app,
            "GET",
            &format!("/v2/main/app/manifests/{reference}"),
            b"",
        )
        .await;
        assert_eq!(pulled.status, StatusCode::OK, "{reference}");
        assert_eq!(pulled.headers[header::CONTENT_TYPE], OCI_MANIFEST);
        assert_eq!(pulled.body, manifest.as_bytes());
    }
    let catalog = call(&app, "GET", "/v2/_catalog", b"").await;
    assert_eq!(catalog.json(), json!({"repositories": ["main/app"]}));
}

/// With auth on, an anonymous registry call gets the 401 in the OCI envelope, with the
/// challenge clients answer.
#[tokio::test]
async fn an_anonymous_call_gets_the_registry_401() {
    let tmp = tempfile::tempdir().unwrap();
    let app = AppState::new(Config {
        root_dir: tmp.path().to_path_buf(),
        ..Config::default()
    })
    .unwrap();
    let res = call(&app, "GET", "/v2/", b"").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.body,
        br#"{"errors": [{"code": "UNAUTHORIZED", "message": "Authentication is required."}]}"#
    );
    assert_eq!(res.headers[header::CONTENT_TYPE], "application/json");
    assert!(res.headers.contains_key(header::WWW_AUTHENTICATE));
}

/// Referrers keep the key order they were always sent in.
#[test]
fn a_referrer_is_an_index_descriptor() {
    let r = crate::model::oci::Referrer {
        media_type: OCI_MANIFEST.into(),
        digest: sha256(b"m"),
        size: 7,
        artifact_type: Some("application/x-sbom".into()),
        annotations: Some(json!({"k": "v"})),
    };
    let d = sha256(b"m");
    assert_eq!(
        crate::pyjson::to_string(&super::index_descriptor(r)),
        format!(
            r#"{{"mediaType": "{OCI_MANIFEST}", "digest": "{d}", "size": 7, "artifactType": "application/x-sbom", "annotations": {{"k": "v"}}}}"#
        )
    );
}
