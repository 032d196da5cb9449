//! The in-process harness: the real router (`arbor::http::router`) on the real `AppState`
//! over a temporary data root, driven with `tower::ServiceExt::oneshot`. No socket, no
//! process: a request costs what its handler costs. What needs the process (its flags,
//! signals, the GC worker, connection limits, real clients) stays in tests/blackbox.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![allow(dead_code)]

pub mod auth;

pub use crate::shared::*;
use arbor::config::Config;
use arbor::state::AppState;
use axum::body::Body;
use std::path::Path;
use tower::ServiceExt as _;

/// The application on a temporary data root, and the runtime its handlers run on.
pub struct App {
    pub root: tempfile::TempDir,
    pub state: AppState,
    router: axum::Router,
    runtime: tokio::runtime::Runtime,
}

impl App {
    /// The application with `config`'s settings but the root, which is a new temporary one.
    pub fn start_config(config: Config) -> App {
        let root = tempfile::tempdir().expect("temp dir");
        let config = Config {
            root_dir: root.path().to_path_buf(),
            ..config
        };
        // Several workers, as in the server: a handler that waits on another request's
        // lock must not hold up the one that releases it.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let state = runtime.block_on(async { AppState::new(config) });
        let state = state.unwrap_or_else(|e| panic!("AppState::new: {e}"));
        let router = arbor::http::router(state.clone());
        App {
            root,
            state,
            router,
            runtime,
        }
    }

    /// Re-reads the auth file and the ACLs, as `SIGHUP` makes the server do.
    pub fn reload_auth(&self) {
        self.runtime.block_on(self.state.reload_auth());
    }

    /// The status, reason and body of one request, as a client reads them.
    fn call(&self, req: axum::http::Request<Body>) -> Res {
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let res = router.oneshot(req).await.expect("the router never fails");
            let status = res.status();
            // The custom reasons arbor sends (`422 Received data does not match ...`).
            let reason = res
                .extensions()
                .get::<hyper::ext::ReasonPhrase>()
                .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
                .or_else(|| status.canonical_reason().map(str::to_owned))
                .unwrap_or_default();
            let headers = res
                .headers()
                .iter()
                .map(|(k, v)| {
                    let v = v.to_str().unwrap_or_default().to_owned();
                    (k.as_str().to_owned(), v)
                })
                .collect();
            let body = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .expect("response body");
            Res {
                status: status.as_u16(),
                reason,
                headers,
                body: body.to_vec(),
            }
        })
    }
}

impl Client for App {
    /// The application with auth disabled unless `env` says otherwise, as the black-box
    /// harness starts its servers.
    fn start_with(env: &[(&str, &str)]) -> App {
        let env = [("DLREPO_AUTH_DISABLED", "1")]
            .iter()
            .chain(env)
            .map(|(k, v)| (k.to_string(), v.to_string()));
        let config = Config::from_sources(None, env).unwrap_or_else(|e| panic!("{e}"));
        App::start_config(config)
    }

    fn root(&self) -> &Path {
        self.root.path()
    }

    /// Sends what a client would: a `Host`, and a `Content-Length` with any body.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Res {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "arbor.test");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-length", b.len());
                Body::from(b.to_vec())
            }
            None => Body::empty(),
        };
        let req = req
            .body(body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        self.call(req)
    }
}
