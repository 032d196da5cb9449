//! The OCI error envelope (spec/CONTAINER.md §2) every `/v2/` refusal but a 405 or a route
//! miss is sent in, the guard's 401 included. Imports nothing else of `http`, so the guard
//! can use it without depending on the registry.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub(crate) static API_VERSION: HeaderName =
    HeaderName::from_static("docker-distribution-api-version");

/// `status` with the OCI error envelope.
pub(crate) fn oci_body(code: &str, status: StatusCode, message: String) -> Response {
    let body = json!({"errors": [{"code": code, "message": message}]});
    let mut res = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        crate::pyjson::to_string(&body),
    )
        .into_response();
    res.headers_mut().insert(
        API_VERSION.clone(),
        HeaderValue::from_static("registry/2.0"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes the guard's 401 sent when it wrote the envelope by hand.
    #[tokio::test]
    async fn the_envelope_is_written_as_python_would() {
        let res = oci_body(
            "UNAUTHORIZED",
            StatusCode::UNAUTHORIZED,
            "Authentication is required.".into(),
        );
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let h = res.headers();
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
        assert_eq!(h[&API_VERSION], "registry/2.0");
        let body = axum::body::to_bytes(res.into_body(), 1 << 10)
            .await
            .unwrap();
        assert_eq!(
            body,
            r#"{"errors": [{"code": "UNAUTHORIZED", "message": "Authentication is required."}]}"#
        );
    }
}
