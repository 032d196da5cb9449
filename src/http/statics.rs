//! Routes outside the tree: `/cli`, `/static/{file}` and `/healthz`.

use super::reply::{ApiError, ApiResult, json, plain_status, text};
use crate::state::AppState;
use crate::storage::{StoreError, assets};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;

/// What `/cli` answers when no dlrepo-cli is configured or on `PATH` (issue 16): how to
/// upload with curl and where to get dlrepo-cli. A Python script whose docstring is the
/// text, so that `curl /cli > dlrepo-cli; python3 dlrepo-cli ...` prints it and fails,
/// instead of a syntax error.
const CLI_HELP: &str = include_str!("cli_help.txt");

/// `GET /cli`: the dlrepo-cli script with `DLREPO_PUBLIC_URL` substituted, or how to get a
/// client when there is none to serve.
pub async fn cli(State(app): State<AppState>, headers: HeaderMap) -> ApiResult {
    let config = app.config.clone();
    let script = app
        .repo
        .run(move |_| {
            let Some(path) = assets::find_cli(config.cli_path.as_deref()) else {
                return Ok(None);
            };
            assets::read_cli(&path).map(Some)
        })
        .await;
    let script = match script {
        Ok(Some(s)) => s,
        // Nothing configured and nothing on PATH: not an error, just no script.
        Ok(None) => {
            return text(CLI_HELP.replace("{url}", &super::context::public_base(&app, &headers)));
        }
        Err(StoreError::NotFound) => {
            // spec/API.md Q32: DLREPO_CLI_PATH names a missing file; say how to fix it.
            return Err(ApiError::Status(
                StatusCode::NOT_FOUND,
                "dlrepo-cli not found: set DLREPO_CLI_PATH or put dlrepo-cli on PATH".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let script = match &app.config.public_url {
        Some(url) => script.replace("http://127.0.0.1:1337", url),
        None => script,
    };
    text(script)
}

/// How long browsers and proxies may keep a static file without asking again. Short enough
/// that a new `DLREPO_STATIC_DIR` stylesheet or an upgrade shows within the hour; long
/// enough that browsing the tree does not re-fetch the stylesheet and icons on every page.
const STATIC_CACHE: &str = "public, max-age=3600";

/// `GET /static/{file}`: public, never X-Sendfile.
pub async fn file(State(app): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let dir = app.config.static_dir.clone();
    let lookup = name.clone();
    let bytes = app
        .repo
        .run(move |_| assets::static_file(dir.as_deref(), &lookup))
        .await?;
    let ctype = mime_guess::from_path(&name).first_or_octet_stream();
    let mut res = bytes.into_response();
    if let Ok(v) = HeaderValue::from_str(ctype.as_ref()) {
        res.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(STATIC_CACHE),
    );
    Ok(res)
}

/// `GET /healthz`: 200 when the data root is writable.
pub async fn healthz(State(app): State<AppState>) -> axum::response::Response {
    let min_free = app.config.min_free_space;
    match app.repo.run(move |r| r.check_health(min_free)).await {
        Ok(None) => json(&serde_json::json!({"status": "ok"})),
        Ok(Some(reason)) => {
            tracing::warn!(%reason, "health check: degraded");
            let mut res = json(&serde_json::json!({"status": "degraded", "reason": reason}));
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            plain_status(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
        }
    }
}
