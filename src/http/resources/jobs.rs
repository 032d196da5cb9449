//! A job: its listing, tar, flags, metadata and delete (spec/API.md §3.6–3.7).

use crate::http::context::Ctx;
use crate::http::reply::{ApiError, ApiResult, json_bytes, ok};
use crate::http::{shapes, views};
use crate::model::{Alias, BranchRef, JobRef, Name, TagRef};
use crate::storage::JobUpdate;
use axum::http::Method;
use bytes::Bytes;
use serde_json::{Map, Value};

const JOB_ALLOW: &str = "DELETE,GET,PATCH,POST,PUT";

/// Job endpoints spell it with a capital I (spec/API.md §3.6).
fn job_invalid() -> ApiError {
    ApiError::BadRequest("Invalid parameters".into())
}

pub async fn job_tar(ctx: &Ctx, b: BranchRef, tag: Name, job: Name) -> ApiResult {
    if !ctx.is_read() {
        return Err(ApiError::MethodNotAllowed("GET"));
    }
    let acl = ctx.acl.clone();
    let bundle = ctx
        .app
        .repo
        .run(move |r| r.job_bundle(&b, tag.as_str(), job, &acl))
        .await?;
    ctx.bundle(&bundle.at.url(), bundle.plan)
}

pub async fn job(ctx: &mut Ctx, b: BranchRef, tag: Name, job: Name, _slash: bool) -> ApiResult {
    let alias = Alias::parse(tag.as_str()).is_some();
    if alias && ctx.method != Method::GET && ctx.method != Method::HEAD {
        return Err(ApiError::MethodNotAllowed("GET"));
    }
    if ctx.is_read() {
        return job_read(ctx, b, tag, job).await;
    }
    // Writes never redirect; they act on the lower-cased names (spec/API.md §3.6).
    let j = JobRef {
        tag: TagRef { branch: b, tag },
        job,
    };
    let repo = ctx.app.repo.clone();
    match ctx.method.clone() {
        Method::PUT => {
            let update = parse_job_update(&ctx.json().await?)?;
            let adds = ctx.adds.clone();
            repo.run(move |r| r.update_job(&j, update, &adds)).await?;
            ok()
        }
        Method::POST => {
            let body = ctx.json().await?;
            match job_fields(&body)?.get("locked") {
                Some(Value::Bool(false)) => {}
                _ => return Err(job_invalid()),
            }
            repo.run(move |r| r.unlock_job(&j)).await?;
            ok()
        }
        Method::PATCH => {
            let body = ctx.json().await?;
            let meta = job_fields(&body)?.clone();
            let adds = ctx.adds.clone();
            repo.run(move |r| r.patch_metadata(&j, &meta, &adds))
                .await?;
            ok()
        }
        Method::DELETE => {
            repo.run(move |r| r.delete_job(&j)).await?;
            ok()
        }
        _ => Err(ApiError::MethodNotAllowed(JOB_ALLOW)),
    }
}

/// `GET {job}/`: the JSON names the formats, the page also says what each holds.
async fn job_read(ctx: &Ctx, b: BranchRef, tag: Name, job: Name) -> ApiResult {
    let (acl, page) = (ctx.acl.clone(), ctx.page());
    // A kept answer costs a few stats: no hop to the blocking pool for it (the page also
    // reads what each format holds).
    let kept = match page {
        true => None,
        false => ctx
            .app
            .repo
            .job_view_kept(&b, tag.as_str(), job.clone(), &acl),
    };
    let view = match kept {
        Some(kept) => kept?,
        None => {
            ctx.app
                .repo
                .run(move |r| r.job_view(&b, tag.as_str(), job, &acl, page))
                .await?
        }
    };
    if let Some(r) = ctx.canonical(&view.job.url()) {
        return r;
    }
    if page {
        let base = ctx.public_base();
        return views::job_page(ctx.chrome(), &view.job, &view.info, &view.formats, &base);
    }
    // The whole job's JSON is made once per kept answer (see `JobInfo::rendered`).
    let memo = view.info.rendered.as_ref();
    if let Some(body) = memo.and_then(|m| m.get()) {
        return Ok(json_bytes(body.clone()));
    }
    let mut m = Map::new();
    m.insert("job".into(), Value::Object(shapes::job(&view.info)));
    let body = Bytes::from(crate::pyjson::to_string(&Value::Object(m)));
    if let Some(memo) = memo {
        // Another request may have made it meanwhile: the same bytes either way.
        let _ = memo.set(body.clone());
    }
    Ok(json_bytes(body))
}

/// `{"job": {"internal": bool, "locked": bool}}`, both optional.
fn parse_job_update(body: &Value) -> Result<JobUpdate, ApiError> {
    let fields = job_fields(body)?;
    let flag = |k: &str| match fields.get(k) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(job_invalid()),
    };
    Ok(JobUpdate {
        internal: flag("internal")?,
        locked: flag("locked")?,
    })
}

fn job_fields(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object()
        .and_then(|o| o.get("job"))
        .and_then(Value::as_object)
        .ok_or_else(job_invalid)
}
