//! `GET /search` (issue 17, docs/search.md): the query runs over the search index in
//! storage, each result checked against what the caller may read; JSON for API clients,
//! a results page for browsers.

use super::guard::Caller;
use super::query::{Plus, value};
use super::registry::path::Target;
use super::reply::{ApiError, ApiResult, json};
use super::route::{FormatParent, Route};
use super::views::{Chrome, encode_segment, iso_time, pretty_time, render, size_label, wants_html};
use crate::model::{BranchRef, JobRef, TagRef};
use crate::state::AppState;
use crate::storage::Visibility;
use crate::storage::registry::ImageRepo;
use crate::storage::search::{Access, Hit, Kind, Page, Query, SortKey, Subtree, Work};
use askama::Template;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// Results per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// The part of the tree a write to `route` may have changed.
pub(crate) fn written(route: &Route) -> Option<Subtree> {
    let job = |branch: &BranchRef, tag: &crate::model::Name, job: &crate::model::Name| {
        Subtree::Job(JobRef {
            tag: TagRef {
                branch: branch.clone(),
                tag: tag.clone(),
            },
            job: job.clone(),
        })
    };
    match route {
        Route::Branch { branch, .. } => Some(Subtree::Branch(branch.clone())),
        Route::Tag { branch, tag, .. } => Some(Subtree::Tag(TagRef {
            branch: branch.clone(),
            tag: tag.clone(),
        })),
        Route::Job {
            branch,
            tag,
            job: j,
            ..
        } => Some(job(branch, tag, j)),
        Route::Format {
            parent:
                FormatParent::Job {
                    branch,
                    tag,
                    job: j,
                },
            ..
        } => Some(job(branch, tag, j)),
        _ => None,
    }
}

/// The job a registry manifest write may have changed (`PUT`/`DELETE` of
/// `/v2/{branch}/{job}/manifests/{tag}`).
pub(crate) fn pushed(target: &Target, method: &axum::http::Method) -> Option<Subtree> {
    use axum::http::Method;
    let Target::Manifest(ImageRepo::Job { branch, job }, reference) = target else {
        return None;
    };
    if method != Method::PUT && method != Method::DELETE {
        return None;
    }
    let sub = match crate::model::Name::parse(&reference.to_lowercase()) {
        Ok(tag) if !reference.contains(':') => Subtree::Job(JobRef {
            tag: TagRef {
                branch: branch.clone(),
                tag,
            },
            job: job.clone(),
        }),
        _ => Subtree::Branch(branch.clone()),
    };
    Some(sub)
}

struct Params {
    q: String,
    limit: usize,
    cursor: Option<SortKey>,
}

fn params(query: Option<&str>) -> Result<Params, ApiError> {
    let get = |k: &str| query.and_then(|q| value(q, k, Plus::Space));
    let limit = match get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => match l.trim().parse::<usize>() {
            Ok(n) if n >= 1 => n.min(MAX_LIMIT),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "limit: a number from 1 to {MAX_LIMIT}"
                )));
            }
        },
    };
    let cursor = match get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            Some(SortKey::decode(&c).ok_or_else(|| ApiError::BadRequest("bad cursor".into()))?)
        }
    };
    Ok(Params {
        q: get("q").unwrap_or_default(),
        limit,
        cursor,
    })
}

/// `GET /search?q=...&limit=N&cursor=...`
pub async fn search(State(app): State<AppState>, req: Request) -> Response {
    let html = wants_html(req.headers());
    let caller = req.extensions().get::<Caller>().cloned();
    let login = caller.as_ref().and_then(|c| c.id.login.clone());
    let answer = run(&app, req.uri().query(), caller, html, login.clone()).await;
    match answer {
        Ok(mut res) => {
            // What a search shows depends on who asks, and changes with every upload.
            res.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("private, no-store"),
            );
            res
        }
        Err(e) if html => super::views::error_page(e.into_response(), "/search", login),
        Err(e) => e.into_response(),
    }
}

async fn run(
    app: &AppState,
    query: Option<&str>,
    caller: Option<Caller>,
    html: bool,
    login: Option<String>,
) -> ApiResult {
    let p = params(query)?;
    let access = match caller {
        Some(c) => {
            let under = c.clone();
            Access::new(Visibility::new(move |url| c.can_read(url)), move |prefix| {
                under.auth.may_read_under(&under.id, prefix)
            })
        }
        None => Access::everything(),
    };
    // An empty query on a page is the search form; for the API it matches everything.
    let parsed = Query::parse(&p.q).map_err(ApiError::BadRequest)?;
    let index = std::sync::Arc::clone(app.search());
    let (limit, cursor) = (p.limit, p.cursor.clone());
    let page = if html && p.q.trim().is_empty() {
        None
    } else {
        Some(
            app.repo
                .run(move |repo| Ok(index.search(repo, &parsed, &access, cursor.as_ref(), limit)))
                .await?,
        )
    };
    if html {
        return results_page(&p, page.as_ref(), app.search.is_complete(), login);
    }
    let page = page.unwrap_or_else(|| Page {
        hits: Vec::new(),
        next: None,
        complete: app.search.is_complete(),
        work: Work::default(),
    });
    Ok(json(&page_json(&p.q, &page)))
}

/// A URL path with each segment percent-encoded where needed.
fn href(url: &str) -> String {
    url.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

fn hit_json(h: &Hit) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), h.kind.as_str().into());
    m.insert("url".into(), href(&h.url).into());
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    put("job", h.job.as_ref().map(|j| href(&j.url()).into()));
    put("format", h.format.clone().map(Value::from));
    put("path", h.path.clone().map(Value::from));
    put("digest", h.digest.clone().map(Value::from));
    put("size", h.size.map(Value::from));
    put("image", h.image.clone().map(Value::from));
    put(
        "product_version",
        h.version.as_deref().map(|v| href(v).into()),
    );
    if !h.metadata.is_empty() {
        let meta: Map<String, Value> = h
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        m.insert("metadata".into(), Value::Object(meta));
    }
    if h.kind == Kind::Product {
        let jobs: Vec<Value> = h.jobs.iter().map(|j| href(j).into()).collect();
        m.insert("jobs".into(), jobs.into());
    }
    m.insert("locked".into(), h.locked.into());
    m.insert("released".into(), h.released.into());
    if let Some(stable) = h.stable {
        m.insert("stable".into(), stable.into());
    }
    let secs = h.ts as f64 / 1e9;
    m.insert("timestamp".into(), json!(secs));
    m.insert("time".into(), iso_time(secs).into());
    Value::Object(m)
}

fn page_json(q: &str, page: &Page) -> Value {
    json!({
        "query": q,
        "complete": page.complete,
        "results": page.hits.iter().map(hit_json).collect::<Vec<_>>(),
        "next": page.next.as_ref().map(SortKey::encode),
    })
}

struct Row {
    kind: &'static str,
    label: String,
    href: String,
    detail: String,
    time: String,
    iso: String,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    chrome: Chrome,
    q: String,
    searched: bool,
    complete: bool,
    rows: Vec<Row>,
    next: Option<String>,
    limit: usize,
}

fn row(h: &Hit) -> Row {
    let detail = match (&h.digest, h.size, &h.image) {
        (Some(d), Some(s), _) => format!("{} · {d}", size_label(s)),
        (Some(d), None, _) => d.clone(),
        (None, _, Some(image)) => image.clone(),
        _ => h
            .metadata
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let secs = h.ts as f64 / 1e9;
    Row {
        kind: match h.kind {
            Kind::Product => "product version",
            k => k.as_str(),
        },
        label: h.url.clone(),
        href: href(&h.url),
        detail,
        time: pretty_time(secs),
        iso: iso_time(secs),
    }
}

fn results_page(
    p: &Params,
    page: Option<&Page>,
    complete: bool,
    login: Option<String>,
) -> ApiResult {
    let mut chrome = Chrome::for_path("/search", login);
    chrome.title = match p.q.trim() {
        "" => "search — dlrepo".to_owned(),
        q => format!("{q} — search — dlrepo"),
    };
    let next = page.and_then(|pg| pg.next.as_ref()).map(|k| {
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        format!(
            "/search?q={}&limit={}&cursor={}",
            enc(&p.q),
            p.limit,
            enc(&k.encode())
        )
    });
    render(&SearchPage {
        chrome,
        q: p.q.clone(),
        searched: page.is_some(),
        complete: page.map_or(complete, |pg| pg.complete),
        rows: page
            .map(|pg| pg.hits.iter().map(row).collect())
            .unwrap_or_default(),
        next,
        limit: p.limit,
    })
}
