//! The access-control layer (spec/AUTH.md §2): runs before routing, on every request, and
//! answers 401 with the Basic challenge for every denial, as dlrepo does (spec/API.md Q3).

use super::canonical::Addressed;
use crate::auth::acl::Want;
use crate::auth::{Auth, Credentials, Identity};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// Identifications running at once. An argon2 or bcrypt check takes tens of milliseconds
/// of CPU: more at once than a few per core only makes each one slower.
static IDENTIFY_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(16);

/// The caller of a request that passed the check, for filtering what listings show.
#[derive(Clone)]
pub(crate) struct Caller {
    pub auth: Arc<Auth>,
    pub id: Arc<Identity>,
}

impl Caller {
    pub fn can_read(&self, url: &str) -> bool {
        self.auth.allows(&self.id, url, Want::default())
    }

    pub fn can_add(&self, url: &str) -> bool {
        let add = Want {
            add: true,
            ..Want::default()
        };
        self.auth.allows(&self.id, url, add)
    }
}

pub(crate) fn unauthorized(auth: &Auth, path: &str, html: bool, login: Option<String>) -> Response {
    let challenge = format!("Basic realm=\"{}\", charset=\"utf-8\"", auth.realm());
    let mut res = if path.starts_with("/v2/") {
        super::registry::envelope::oci_body(
            "UNAUTHORIZED",
            StatusCode::UNAUTHORIZED,
            "Authentication is required.".into(),
        )
    } else {
        super::reply::plain_status(StatusCode::UNAUTHORIZED, "Unauthorized")
    };
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    if html && !path.starts_with("/v2/") {
        return super::views::error_page(res, path, login);
    }
    res
}

fn query_token(query: Option<&str>) -> Option<String> {
    super::query::value(query?, "token", super::query::Plus::Literal)
}

/// The request's credentials, copied: the request is not `Sync`, so nothing may borrow it
/// across the await of [`identify`].
struct OwnedCredentials {
    authorization: Option<String>,
    login: Option<String>,
    groups: Option<String>,
    token: Option<String>,
}

impl OwnedCredentials {
    fn of(app: &AppState, req: &Request) -> OwnedCredentials {
        let header = |name: Option<&str>| {
            name.and_then(|n| req.headers().get(n))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        OwnedCredentials {
            authorization: header(Some(header::AUTHORIZATION.as_str())),
            login: header(app.config.login_header.as_deref()),
            groups: header(app.config.groups_header.as_deref()),
            token: query_token(req.uri().query()),
        }
    }
}

/// Who `creds` say the caller is, or the answer refusing them (401 at `path`, or 503).
async fn identify(
    auth: &Arc<Auth>,
    creds: OwnedCredentials,
    path: &str,
    html: bool,
) -> Result<Identity, Response> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let who = Arc::clone(auth);
    // Password hashes and token files make this slow or blocking: off the runtime, and a
    // few at a time, so a flood of logins waits here (costing no thread) instead of taking
    // the blocking pool from storage work.
    let Ok(_slot) = IDENTIFY_SLOTS.acquire().await else {
        return Err(super::reply::plain_status(
            StatusCode::SERVICE_UNAVAILABLE,
            "Shutting down",
        ));
    };
    let identity = tokio::task::spawn_blocking(move || {
        who.try_identify(
            &Credentials {
                authorization: creds.authorization.as_deref(),
                login_header: creds.login.as_deref(),
                groups_header: creds.groups.as_deref(),
                query_token: creds.token.as_deref(),
            },
            now,
        )
    })
    .await;
    match identity {
        Ok(Ok(Some(id))) => Ok(id),
        // The LDAP server failed (logged there): not the client's fault, so no 401.
        Ok(Err(_)) => Err(super::reply::plain_status(
            StatusCode::SERVICE_UNAVAILABLE,
            "LDAP server unavailable",
        )),
        _ => Err(unauthorized(auth, path, html, None)),
    }
}

pub async fn check(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    // Parsed once, here; the dispatchers act on this value (see canonical.rs).
    let addressed = Addressed::parse(&super::canonical::read_path(req.uri().path(), req.method()));
    let checks = addressed.checks(req.method());
    let path = addressed.path();
    let search = addressed == Addressed::Search;
    req.extensions_mut().insert(addressed);
    let auth = app.auth();
    if auth.is_disabled() || checks.is_empty() {
        let mut res = next.run(req).await;
        super::caching::finish(&mut res, || true);
        return res;
    }
    // Browsers get the 401 as a page, with the same challenge header.
    let html = super::views::wants_html(req.headers());
    let creds = OwnedCredentials::of(&app, &req);
    let id = match identify(&auth, creds, &path, html).await {
        Ok(id) => id,
        Err(refusal) => return refusal,
    };
    let searcher = || id.login.is_some() || auth.allows(&id, "/", Want::default());
    let granted = checks.iter().all(|c| auth.allows(&id, &c.path, c.want));
    if !(granted || search && searcher()) {
        return unauthorized(&auth, &path, html, id.login.clone());
    }
    req.extensions_mut().insert(Caller {
        auth: Arc::clone(&auth),
        id: Arc::new(id),
    });
    let mut res = next.run(req).await;
    // Shared caches may keep only what anyone could have fetched.
    super::caching::finish(&mut res, || {
        let anyone = crate::auth::anonymous();
        // What a search shows depends on who asks.
        if search {
            return false;
        }
        checks.iter().all(|c| auth.allows(&anyone, &c.path, c.want))
    });
    res
}
