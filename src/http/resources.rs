//! Branches, tags and jobs (spec/API.md §3.1–3.7): method rules, request validation and one
//! storage call each.

use super::context::Ctx;
use super::reply::{ApiError, ApiResult, json, json_of, ok, redirect};
use super::shapes;
use super::views;
use crate::model::{Alias, BranchRef, JobRef, Name, Scope, TagRef};
use crate::storage::{JobUpdate, TagUpdate};
use axum::http::{Method, StatusCode};
use serde_json::{Map, Value};

const BRANCH_ALLOW: &str = "DELETE,GET,POST";
const JOB_ALLOW: &str = "DELETE,GET,PATCH,POST,PUT";

fn invalid() -> ApiError {
    ApiError::BadRequest("invalid parameters".into())
}

/// Job endpoints spell it with a capital I (spec/API.md §3.6).
fn job_invalid() -> ApiError {
    ApiError::BadRequest("Invalid parameters".into())
}

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
    views::home_page(ctx.chrome(), user, &info, releases, config.user_quota)
}

pub async fn user_bare(ctx: &Ctx, user: Name) -> ApiResult {
    let scope = Scope::User(user);
    let s = scope.clone();
    if !ctx.app.repo.run(move |r| Ok(r.scope_exists(&s))).await? {
        return Err(ApiError::NotFound);
    }
    Ok(redirect(&format!("{}/", scope.url())))
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
                crate::publish::start_release(&ctx.app, t.clone(), released)
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
    let (t, mut info) = ctx
        .app
        .repo
        .run(move |r| r.tag_info_by_name(&b, tag.as_str(), &acl))
        .await?;
    if let Some(r) = ctx.canonical(&t.url()) {
        return r;
    }
    // Filters compare against the job as the JSON shows it, fixed fields included.
    let filters = ctx.query_pairs();
    let (entries, jobs): (Vec<_>, Vec<_>) = std::mem::take(&mut info.jobs)
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
    info.jobs = entries;
    if ctx.page() {
        return views::tag_page(ctx.chrome(), &info);
    }
    let tag = shapes::tag(&info, jobs).map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(json(&serde_json::json!({ "tag": tag })))
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
    let canonical = format!("{}.tar", bundle.at.url().trim_end_matches('/'));
    if let Some(r) = ctx.canonical(&canonical) {
        return r;
    }
    Ok(ctx.tar(bundle.plan?))
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
    let view = ctx
        .app
        .repo
        .run(move |r| r.job_view(&b, tag.as_str(), job, &acl, page))
        .await?;
    if let Some(r) = ctx.canonical(&view.job.url()) {
        return r;
    }
    if page {
        return views::job_page(ctx.chrome(), &view.job, &view.info, &view.formats);
    }
    let mut m = Map::new();
    m.insert("job".into(), Value::Object(shapes::job(&view.info)));
    Ok(json(&Value::Object(m)))
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
