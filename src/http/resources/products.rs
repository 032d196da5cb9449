//! The read-only products view (spec/API.md §3.10).

use crate::http::context::Ctx;
use crate::http::reply::{ApiError, ApiResult, json, json_of, redirect};
use crate::http::views;
use crate::model::{Name, Scope};
use crate::storage::apt::{AptIndex, BranchIndex};
use crate::storage::{ProductLevel, product_level_url};
use serde_json::{Value, json};

fn names(list: Vec<String>) -> Vec<Value> {
    list.into_iter().map(|n| json!({ "name": n })).collect()
}

/// `/products/` down to `{product_branch}/`.
pub async fn level(ctx: &Ctx, scope: Scope, path: Vec<Name>, slash: bool) -> ApiResult {
    if !ctx.is_read() {
        return Err(ApiError::MethodNotAllowed("GET"));
    }
    let acl = ctx.acl.clone();
    let url = product_level_url(&scope, &path);
    let p = path.clone();
    // Listing checks existence first: a missing level is a 404 before any redirect.
    let level = ctx
        .app
        .repo
        .run(move |r| r.product_level_view(&scope, &p, &acl))
        .await?;
    if !slash {
        return Ok(redirect(&url));
    }
    let last = path.last().map(|n| n.to_string()).unwrap_or_default();
    let children = match level {
        ProductLevel::Names(children) => children,
        ProductLevel::Versions(versions) => {
            if ctx.page() {
                let deb = crate::storage::page_info::Repos {
                    deb: true,
                    rpm: false,
                };
                let signed = ctx.app.signer.is_some();
                let snippets = views::repo_snippets(deb, &ctx.public_base(), &url, signed);
                return views::product_branch_page(ctx.chrome(), last, &versions, snippets);
            }
            let mut inner = serde_json::Map::new();
            inner.insert("name".into(), last.into());
            inner.insert(
                "versions".into(),
                serde_json::to_value(versions).map_err(|e| ApiError::Internal(Box::new(e)))?,
            );
            return json_of("product_branch", &inner);
        }
    };
    if ctx.page() {
        return views::level_page(ctx.chrome(), path.len(), last, &children);
    }
    Ok(match path.len() {
        0 => json(&json!({ "products": names(children) })),
        1 => json(&json!({ "product": { "name": last, "product_variants": names(children) } })),
        _ => json(
            &json!({ "product_variant": { "name": last, "product_branches": names(children) } }),
        ),
    })
}

pub async fn version(
    ctx: &Ctx,
    scope: Scope,
    path: [Name; 3],
    version: Name,
    _slash: bool,
) -> ApiResult {
    if !ctx.is_read() {
        return Err(ApiError::MethodNotAllowed("GET"));
    }
    let (acl, page) = (ctx.acl.clone(), ctx.page());
    let view = ctx
        .app
        .repo
        .run(move |r| r.version_view(&scope, &path, version.as_str(), &acl, page))
        .await?;
    if let Some(r) = ctx.canonical(&view.version.url()) {
        return r;
    }
    let name = view.version.version.to_string();
    if page {
        let base = ctx.public_base();
        return views::version_page(ctx.chrome(), &view.version, &view.summaries, &base);
    }
    Ok(json(
        &json!({ "version": { "name": name, "artifact_formats": view.formats } }),
    ))
}

pub async fn version_tar(ctx: &Ctx, scope: Scope, path: [Name; 3], version: Name) -> ApiResult {
    if !ctx.is_read() {
        return Err(ApiError::MethodNotAllowed("GET"));
    }
    let acl = ctx.acl.clone();
    let bundle = ctx
        .app
        .repo
        .run(move |r| r.version_bundle(&scope, &path, version.as_str(), &acl))
        .await?;
    ctx.bundle(&bundle.at.url(), bundle.plan)
}

/// `{product_branch}/Packages` and the other index names: the branch as one APT archive of
/// the locked versions the caller may read (issue 15). A version of that name (that the
/// caller may read) wins: the request is then that version's, as before.
pub async fn branch_index(ctx: &Ctx, scope: Scope, path: [Name; 3], index: AptIndex) -> ApiResult {
    if !ctx.is_read() {
        return Err(ApiError::MethodNotAllowed("GET"));
    }
    let url = format!("{}{}", product_level_url(&scope, &path), index.name());
    let acl = ctx.acl.clone();
    let (s, p) = (scope.clone(), path.clone());
    let found = ctx
        .app
        .repo
        .run(move |r| r.apt_branch_index(&s, &p, index, &acl))
        .await?;
    match found {
        BranchIndex::Version(v) => version(ctx, scope, path, v.version, false).await,
        BranchIndex::File(file) => super::apt::respond_at(ctx, &url, index, file),
    }
}
