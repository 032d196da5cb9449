//! The tree dispatcher: every URL that is not a fixed route lands here, is parsed into a
//! [`Route`], and goes to the resource function for its method.

use super::context::Ctx;
use super::reply::{ApiError, ApiResult};
use super::resources;
use super::route::Route;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

pub async fn dispatch(State(app): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    // The guard parsed and authorized this very value.
    let route = match parts.extensions.get::<super::Addressed>() {
        Some(super::Addressed::Tree(r)) => r.clone(),
        Some(super::Addressed::TooLong(_)) => {
            return ApiError::BadRequest(super::reply::TOO_LONG.into()).into_response();
        }
        _ if super::views::wants_html(&parts.headers) => {
            let path = percent_decode_str(parts.uri.path()).decode_utf8_lossy();
            return super::views::error_page(ApiError::NotFound.into_response(), &path, None);
        }
        _ => return ApiError::NotFound.into_response(),
    };
    let mut ctx = Ctx::new(app, parts, body);
    let written = (!ctx.is_read())
        .then(|| super::search::written(&route))
        .flatten();
    let result = handle(&mut ctx, route).await;
    if let Some(sub) = written {
        // Whatever the answer, the subtree may have changed: the next search reads it.
        ctx.app.search.touch(sub);
    }
    if result.is_err() {
        drain(ctx.take_body()).await;
    }
    answer(ctx, result)
}

/// The resource function of `route`.
async fn handle(ctx: &mut Ctx, route: Route) -> ApiResult {
    match route {
        Route::Home(scope) => resources::home(ctx, scope).await,
        Route::UserBare(user) => resources::user_bare(ctx, user).await,
        Route::Branches { scope, slash } => resources::branches(ctx, scope, slash).await,
        Route::Branch { branch, slash } => resources::branch(ctx, branch, slash).await,
        Route::Tag { branch, tag, slash } => resources::tag(ctx, branch, tag, slash).await,
        Route::JobTar {
            branch,
            tag,
            job,
            enc,
        } => {
            ctx.encoding = enc;
            resources::job_tar(ctx, branch, tag, job).await
        }
        Route::Job {
            branch,
            tag,
            job,
            slash,
        } => resources::job(ctx, branch, tag, job, slash).await,
        Route::Format {
            parent,
            format,
            part,
        } => {
            if let super::route::FormatPart::Tar(enc) = part {
                ctx.encoding = enc;
            }
            resources::format(ctx, parent, format, part).await
        }
        Route::Products { scope, path, slash } => resources::level(ctx, scope, path, slash).await,
        Route::Version {
            scope,
            path,
            version,
            slash,
        } => resources::version(ctx, scope, path, version, slash).await,
        Route::VersionTar {
            scope,
            path,
            version,
            enc,
        } => {
            ctx.encoding = enc;
            resources::version_tar(ctx, scope, path, version).await
        }
        Route::BranchIndex { scope, path, index } => {
            resources::branch_index(ctx, scope, path, index).await
        }
    }
}

/// The response to a handled request: denials and errors as the caller wants them.
fn answer(ctx: Ctx, result: ApiResult) -> Response {
    match result {
        Ok(res) => res,
        Err(ApiError::Unauthorized) => {
            let auth = ctx.app.auth();
            let path = ctx.path.clone();
            super::guard::unauthorized(&auth, &path, ctx.html, ctx.login)
        }
        // Browsers get error pages; API clients keep the plain-text answers.
        Err(e) if ctx.html => super::views::error_page(e.into_response(), &ctx.path, ctx.login),
        Err(e) => e.into_response(),
    }
}

/// Reads and drops what is left of a refused request's body before answering (see
/// [`super::body::drain`]).
async fn drain(body: Body) {
    super::body::drain(body.into_data_stream()).await;
}
