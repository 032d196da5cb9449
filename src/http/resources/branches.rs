//! Branch listings, one branch's tags and its cleanup policy (spec/API.md §3.3–3.4).

use super::{BRANCH_ALLOW, invalid};
use crate::http::context::Ctx;
use crate::http::reply::{ApiError, ApiResult, json_of, ok, redirect};
use crate::http::views;
use crate::model::{BranchRef, Scope};
use crate::storage::{BranchInfo, BranchView};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// What `json_of("branch", info)` answers, written one tag at a time: the whole answer
/// as one `Value` took about 1 KiB per tag while it was being written (hundreds of MiB for
/// a branch of 100,000 tags), which the allocator then kept.
fn rendered(info: &BranchInfo) -> Result<bytes::Bytes, ApiError> {
    let internal = |e: serde_json::Error| ApiError::Internal(Box::new(e));
    let mut head = serde_json::Map::new();
    head.insert("name".into(), Value::from(info.name.clone()));
    head.insert(
        "cleanup_policy".into(),
        Value::Object(info.cleanup_policy.clone()),
    );
    let head = crate::pyjson::to_string(&Value::Object(head));
    let mut out = String::with_capacity(head.len() + 160 * info.tags.len() + 32);
    out.push_str("{\"branch\": ");
    // The head object without its closing brace, then the tags as its last key.
    out.push_str(head.strip_suffix('}').unwrap_or(&head));
    out.push_str(", \"tags\": [");
    for (i, tag) in info.tags.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&crate::pyjson::to_string(
            &serde_json::to_value(tag).map_err(internal)?,
        ));
    }
    out.push_str("]}}");
    Ok(out.into())
}

/// A JSON answer already rendered.
fn json_bytes(body: bytes::Bytes) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

pub async fn branches(ctx: &Ctx, scope: Scope, slash: bool) -> ApiResult {
    if !ctx.is_read() {
        return Err(ApiError::MethodNotAllowed("GET"));
    }
    if !slash {
        return Ok(redirect(&format!("{}/branches/", scope.url())));
    }
    let acl = ctx.acl.clone();
    let list = ctx
        .app
        .repo
        .run(move |r| r.list_branches(&scope, &acl))
        .await?;
    if ctx.page() {
        return views::branches_page(ctx.chrome(), &list);
    }
    json_of("branches", &list)
}

pub async fn branch(ctx: &mut Ctx, b: BranchRef, slash: bool) -> ApiResult {
    let repo = ctx.app.repo.clone();
    match ctx.method.clone() {
        m if m == Method::GET || m == Method::HEAD => {
            // spec/API.md Q4: any `released` parameter filters (dlrepo-cli sends `=1`).
            let released_only = ctx.query_pairs().iter().any(|(k, _)| k == "released");
            let acl = ctx.acl.clone();
            let url = b.url();
            // A missing branch is a 404 before the slash redirect.
            let view = repo
                .run(move |r| r.branch_view(&b, released_only, &acl))
                .await?;
            if !slash {
                return Ok(redirect(&url));
            }
            match (view, ctx.page()) {
                (BranchView::All(all), true) => views::branch_page(ctx.chrome(), &all.info),
                (BranchView::Some(info), true) => views::branch_page(ctx.chrome(), &info),
                // The whole branch: its answer is rendered once and kept with the tags.
                (BranchView::All(all), false) => {
                    let body = match all.rendered.get() {
                        Some(body) => body.clone(),
                        None => {
                            let made = rendered(&all.info)?;
                            all.rendered.get_or_init(|| made).clone()
                        }
                    };
                    Ok(json_bytes(body))
                }
                (BranchView::Some(info), false) => Ok(json_bytes(rendered(&info)?)),
            }
        }
        // PUT is the v0.30 spelling of the policy update (spec/API.md §8).
        Method::POST | Method::PUT => {
            let body = ctx.json().await?;
            let updates = parse_policy(&body)?;
            repo.run(move |r| r.set_cleanup_policy(&b, updates)).await?;
            ok()
        }
        Method::DELETE => {
            repo.run(move |r| r.delete_branch(&b)).await?;
            ok()
        }
        _ => {
            let exists = repo.run(move |r| Ok(r.branch_exists(&b))).await?;
            Err(if exists {
                ApiError::MethodNotAllowed(BRANCH_ALLOW)
            } else {
                ApiError::NotFound
            })
        }
    }
}

/// `{"branch": {...}}`, or the keys at the top level as the manuals show (spec/API.md Q47).
fn parse_policy(body: &Value) -> Result<Vec<(&'static str, u64)>, ApiError> {
    let top = body.as_object().ok_or_else(invalid)?;
    let policy = match top.get("branch") {
        Some(inner) => inner.as_object().ok_or_else(invalid)?,
        None => top,
    };
    let mut updates = Vec::new();
    for (k, v) in policy {
        let key = match k.as_str() {
            "max_daily_tags" => "max_daily_tags",
            "max_released_tags" => "max_released_tags",
            _ => return Err(invalid()),
        };
        // JSON booleans are not integers here (spec/API.md Q35).
        let n = v.as_u64().ok_or_else(invalid)?;
        updates.push((key, n));
    }
    Ok(updates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::TagSummary;

    #[tokio::test]
    async fn a_branch_is_rendered_as_its_json_of() {
        let tag = |name: &str, released: bool| TagSummary {
            name: name.into(),
            timestamp: serde_json::json!(1795315711.1205125),
            released,
            locked: false,
            stable: true,
            publish_status: Some("in progress \u{e9}".into()),
            description: None,
        };
        for tags in [
            vec![],
            vec![tag("a", true)],
            vec![tag("a", false), tag("b\"", true)],
        ] {
            let mut policy = serde_json::Map::new();
            policy.insert("max_daily_tags".into(), 3.into());
            policy.insert("max_released_tags".into(), 0.into());
            let info = BranchInfo {
                name: "main".into(),
                cleanup_policy: policy,
                tags,
            };
            let expected = match json_of("branch", &info) {
                Ok(res) => res.into_body(),
                Err(_) => panic!("json_of failed"),
            };
            let expected = axum::body::to_bytes(expected, 1 << 20).await.expect("body");
            assert_eq!(rendered(&info).ok(), Some(expected));
        }
    }
}
