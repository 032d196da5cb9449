//! Branch listings, one branch's tags and its cleanup policy (spec/API.md §3.3–3.4).

use super::{BRANCH_ALLOW, invalid};
use crate::http::context::Ctx;
use crate::http::reply::{ApiError, ApiResult, json_of, ok, redirect};
use crate::http::views;
use crate::model::{BranchRef, Scope};
use axum::http::Method;
use serde_json::Value;

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
            let info = repo
                .run(move |r| r.branch_info(&b, released_only, &acl))
                .await?;
            if !slash {
                return Ok(redirect(&url));
            }
            if ctx.page() {
                return views::branch_page(ctx.chrome(), &info);
            }
            json_of("branch", &info)
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
