//! A tag: its jobs, filtered, and its state changes and delete (spec/API.md §3.5).

use super::{BRANCH_ALLOW, invalid};
use crate::http::context::Ctx;
use crate::http::reply::{ApiError, ApiResult, json_bytes, ok};
use crate::http::{shapes, views};
use crate::model::{Alias, BranchRef, Name, TagRef};
use crate::storage::TagUpdate;
use axum::http::{Method, StatusCode};
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;

/// Resolves the tag of a URL: aliases only for reads (spec/API.md §3.5 step 1–2).
async fn resolve_tag(
    ctx: &Ctx,
    b: &BranchRef,
    tag: &Name,
    alias_ok: bool,
) -> Result<TagRef, ApiError> {
    let (b, raw, acl) = (b.clone(), tag.as_str().to_owned(), ctx.acl.clone());
    Ok(ctx
        .app
        .repo
        .run(move |r| r.resolve_tag(&b, &raw, alias_ok, &acl))
        .await?)
}

pub async fn tag(ctx: &mut Ctx, b: BranchRef, tag: Name, _slash: bool) -> ApiResult {
    let alias = Alias::parse(tag.as_str()).is_some();
    if alias && !ctx.is_read() {
        return Err(ApiError::MethodNotAllowed("GET,HEAD"));
    }
    if ctx.is_read() {
        return tag_read(ctx, b, tag).await;
    }
    let t = resolve_tag(ctx, &b, &tag, false).await?;
    let repo = ctx.app.repo.clone();
    match ctx.method.clone() {
        // Writes act on the canonical tag instead of redirecting (spec/API.md Q6): clients
        // replay a redirected POST as a GET and the change would be lost.
        Method::POST | Method::PUT => {
            let body = ctx.json().await?;
            let (released, update) = parse_tag_update(&body)?;
            if let Some(released) = released {
                ctx.app
                    .publisher
                    .start_release(t.clone(), released)
                    .await
                    .map_err(|e| match e {
                        crate::publish::PublishError::Store(e) => ApiError::from(e),
                        e => ApiError::Status(StatusCode::MISDIRECTED_REQUEST, e.to_string()),
                    })?;
            }
            repo.run(move |r| r.update_tag(&t, update)).await?;
            ok()
        }
        Method::DELETE => {
            repo.run(move |r| r.delete_tag(&t)).await?;
            ok()
        }
        _ => Err(ApiError::MethodNotAllowed(BRANCH_ALLOW)),
    }
}

/// `GET {tag}/`, its jobs filtered by the query's `key=value` pairs (spec/API.md Q41).
async fn tag_read(ctx: &Ctx, b: BranchRef, tag: Name) -> ApiResult {
    let acl = ctx.acl.clone();
    // A kept answer costs a few stats: no hop to the blocking pool for it.
    let (t, mut info) = match ctx.app.repo.tag_info_kept(&b, tag.as_str(), &acl) {
        Some(kept) => kept?,
        None => {
            ctx.app
                .repo
                .run(move |r| r.tag_info_by_name(&b, tag.as_str(), &acl))
                .await?
        }
    };
    if let Some(r) = ctx.canonical(&t.url()) {
        return r;
    }
    // Filters compare against the job as the JSON shows it, fixed fields included.
    let filters = ctx.query_pairs();
    // The whole tag's JSON is made once per kept answer (see `TagInfo::rendered`).
    let memo = info
        .rendered
        .take()
        .filter(|_| filters.is_empty() && !ctx.page());
    if let Some(body) = memo.as_ref().and_then(|m| m.get()) {
        return Ok(json_bytes(body.clone()));
    }
    // The kept answer holds the entries too: they are copied only on this path.
    let (entries, jobs): (Vec<_>, Vec<_>) = Arc::unwrap_or_clone(std::mem::take(&mut info.jobs))
        .into_iter()
        .map(|entry| {
            let job = shapes::job_entry(&entry);
            (entry, job)
        })
        .filter(|(_, job)| {
            filters
                .iter()
                .all(|(k, v)| job.get(k).is_some_and(|x| python_str(x) == *v))
        })
        .unzip();
    info.jobs = Arc::new(entries);
    if ctx.page() {
        return views::tag_page(ctx.chrome(), &info);
    }
    let tag = shapes::tag(&info, jobs).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let body = Bytes::from(crate::pyjson::to_string(&serde_json::json!({ "tag": tag })));
    if let Some(memo) = memo {
        // Another request may have made it meanwhile: the same bytes either way.
        let _ = memo.set(body.clone());
    }
    Ok(json_bytes(body))
}

/// Python's `str()` of a job entry value, as the tag filter compares it (spec/API.md Q41).
fn python_str(v: &Value) -> String {
    match v {
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        other => crate::pyjson::python_str(other),
    }
}

fn parse_tag_update(body: &Value) -> Result<(Option<bool>, TagUpdate), ApiError> {
    let fields = body
        .as_object()
        .and_then(|o| o.get("tag"))
        .and_then(Value::as_object)
        .ok_or_else(invalid)?;
    let flag = |k: &str| match fields.get(k) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid()),
    };
    let description = match fields.get("description") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid()),
    };
    Ok((
        flag("released")?,
        TagUpdate {
            locked: flag("locked")?,
            stable: flag("stable")?,
            description,
        },
    ))
}
