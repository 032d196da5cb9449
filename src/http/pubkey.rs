//! `GET /pubkey` (armored) and `GET /pubkey.gpg` (binary, for apt's `signed-by=`): the public
//! half of `DLREPO_SIGNING_KEY`, read without credentials; 404 when no key is configured.

use super::reply::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;

/// The key changes only with a restart; an hour keeps a rotated key from lingering long.
const KEY_CACHE: &str = "public, max-age=3600";

/// `GET /pubkey`: `application/pgp-keys`, ASCII armor (for `gpg --import`, dnf's `gpgkey=`).
pub async fn armored(State(app): State<AppState>) -> ApiResult {
    key(
        &app,
        |s| s.public_armored().to_vec(),
        "application/pgp-keys",
    )
}

/// `GET /pubkey.gpg`: the binary key, as `/etc/apt/keyrings/*.gpg` holds it.
pub async fn binary(State(app): State<AppState>) -> ApiResult {
    key(
        &app,
        |s| s.public_binary().to_vec(),
        "application/octet-stream",
    )
}

fn key(
    app: &AppState,
    bytes: impl Fn(&crate::signing::Signer) -> Vec<u8>,
    ctype: &'static str,
) -> ApiResult {
    let Some(signer) = &app.signer else {
        return Err(ApiError::Status(
            StatusCode::NOT_FOUND,
            "no signing key: set DLREPO_SIGNING_KEY".into(),
        ));
    };
    let mut res = bytes(signer).into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(KEY_CACHE));
    Ok(res)
}
