//! The home pages of the root and of user repositories (spec/API.md §3.1).

use crate::http::context::Ctx;
use crate::http::reply::{ApiError, ApiResult, redirect};
use crate::http::views;
use crate::model::{Name, Scope};

pub async fn home(ctx: &Ctx, scope: Scope) -> ApiResult {
    if !ctx.is_read() {
        return Err(ApiError::MethodNotAllowed("GET"));
    }
    // Always HTML, whatever the Accept header (spec/API.md §1.3, §3.1).
    let config = &ctx.app.config;
    let user = match &scope {
        Scope::User(u) => Some(u.to_string()),
        Scope::Root => None,
    };
    let releases = match scope {
        Scope::Root => config.latest_releases,
        Scope::User(_) => config.latest_releases_user,
    };
    let (acl, static_dir) = (ctx.acl.clone(), config.static_dir.clone());
    let info = ctx
        .app
        .repo
        .run(move |r| r.home_info(&scope, &acl, releases, static_dir.as_deref()))
        .await?;
    let pubkey = ctx.app.signer.is_some();
    views::home_page(
        ctx.chrome(),
        user,
        &info,
        releases,
        config.user_quota,
        pubkey,
    )
}

pub async fn user_bare(ctx: &Ctx, user: Name) -> ApiResult {
    let scope = Scope::User(user);
    let s = scope.clone();
    if !ctx.app.repo.run(move |r| Ok(r.scope_exists(&s))).await? {
        return Err(ApiError::NotFound);
    }
    Ok(redirect(&format!("{}/", scope.url())))
}
