//! The HTTP side of publishing: one blocking client per target, the cap on requests in
//! flight that all of them share, and retries of transient failures. Runs on blocking
//! threads only.
//!
//! Blocking (ureq) on purpose, rather than an async client on the server's tokio/hyper stack
//! (hyper-util's legacy client with hyper-rustls, or reqwest): tag cleanup un-publishes from
//! inside the blocking GC pass (`Repo::run_gc` calls a plain `Fn` between choosing a tag and
//! deleting it), and `arbor gc` runs with no runtime at all, so async requests would need a
//! `block_on` on those threads; and each step around a request is synchronous tree work
//! through `Repo` (status file, flags, filter command, opening the file to send), which would
//! each need a `spawn_blocking` of their own. The one part async would make shorter, the
//! fan-out over a format's files, is a small tested helper (`release::try_for_each_on_threads`).
//! It would also add hyper-rustls or reqwest, where ureq shares rustls and ring with the
//! LDAP client. Worth revisiting if the GC pass becomes async.

use super::Settings;
use crate::model::{FormatRef, RelPath, escape};
use crate::storage::Repo;
use base64::Engine as _;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};

/// Tries per request before giving up (so up to 2 retries), and the pause before retry n.
pub const ATTEMPTS: u32 = 3;

/// A counting semaphore for blocking threads: `DLREPO_PUBLISH_MAX_REQUESTS` requests in
/// flight across every publish of the process.
struct Limiter {
    max: usize,
    used: Mutex<usize>,
    freed: Condvar,
}

struct Permit<'a>(&'a Limiter);

impl Limiter {
    fn acquire(&self) -> Permit<'_> {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        while *used >= self.max {
            used = self
                .freed
                .wait(used)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *used += 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.used.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
        self.0.freed.notify_one();
    }
}

/// What every publish request of the process shares, owned by the [`super::Publisher`].
pub(super) struct Shared {
    /// The cap is process-wide by definition (spec/CONFIG.md §1.4), like dlrepo's one
    /// `asyncio.Semaphore`.
    limiter: Limiter,
    /// Read at the first publish, not at start-up: most servers never publish, and reading
    /// the system store can log warnings.
    tls: OnceLock<ureq::tls::TlsConfig>,
    /// The `dlrepo-server/` prefix lets the target accept `PUT .../container/...`.
    user_agent: String,
}

impl Shared {
    pub fn new(max_requests: usize) -> Shared {
        Shared {
            limiter: Limiter {
                max: max_requests.max(1),
                used: Mutex::new(0),
                freed: Condvar::new(),
            },
            tls: OnceLock::new(),
            user_agent: format!("dlrepo-server/{}", hostname()),
        }
    }

    fn tls(&self) -> &ureq::tls::TlsConfig {
        self.tls.get_or_init(|| crate::net::tls_config("publish"))
    }
}

/// A request failed: the message goes to `.publish-status` after `error: `.
#[derive(Debug)]
pub(crate) struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the remote server answered to one request.
pub(crate) struct RemoteReply {
    pub status: u16,
    pub body: Vec<u8>,
    url: String,
}

impl RemoteReply {
    /// HTTP errors ≥ 400 raise, as dlrepo's `raise_for_status=True` does; the message
    /// follows aiohttp's `ClientResponseError`.
    pub fn check(self) -> Result<RemoteReply, Failure> {
        if self.status < 400 {
            return Ok(self);
        }
        let reason = ureq::http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        Err(Failure(format!(
            "{}, message='{reason}', url='{}'",
            self.status, self.url
        )))
    }

    /// Like [`RemoteReply::check`] but a 404 is fine too (deleting what is already gone).
    pub fn check_or_missing(self) -> Result<RemoteReply, Failure> {
        if self.status == 404 {
            Ok(self)
        } else {
            self.check()
        }
    }
}

/// What a request carries.
pub(crate) enum Body<'a> {
    None,
    /// `Content-Length: 0` (format PATCH, link PUT).
    Empty,
    Json(String),
    /// An artifact, reopened for each attempt and streamed with its `Content-Length`.
    File(&'a Repo, &'a FormatRef, &'a RelPath),
}

/// One publish target: base URL, credentials and a connection pool.
pub(crate) struct Target<'a> {
    pub url: String,
    base: String,
    agent: ureq::Agent,
    authorization: String,
    shared: &'a Shared,
}

impl<'a> Target<'a> {
    /// `credentials` come from `DLREPO_PUBLISH_AUTH`, read by the caller at each publish.
    pub fn new(
        url: &str,
        settings: &Settings,
        credentials: &(String, String),
        shared: &'a Shared,
    ) -> Target<'a> {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            // Statuses are ours to judge: some requests accept a 404 (spec/CONFIG.md §5).
            .http_status_as_error(false)
            .user_agent(&shared.user_agent)
            // So that the targets answer JSON, never an HTML page.
            .accept("*/*")
            .tls_config(shared.tls().clone())
            .build()
            .into();
        let (login, password) = credentials;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"));
        Target {
            url: url.to_owned(),
            // Paths are absolute (`/branches/...`); a base with a path prefix keeps it, so a
            // target behind a reverse proxy at `https://host/dlrepo` works.
            base: url.trim_end_matches('/').to_owned(),
            agent,
            authorization: format!("Basic {token}"),
            shared,
        }
    }

    /// The process-wide cap on requests in flight.
    pub fn max_requests(&self) -> usize {
        self.shared.limiter.max
    }

    /// Sends one request, retrying transient failures (no connection, timeouts, 502, 503,
    /// 504) up to [`ATTEMPTS`] times with a growing pause. Statuses are not checked.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<RemoteReply, Failure> {
        // The target's router decodes each name back to itself (spec/API.md §1.1).
        let url = format!("{}{}", self.base, escape::request_path(path));
        let mut attempt = 1;
        loop {
            let result = {
                let _permit = self.shared.limiter.acquire();
                self.once(method, &url, headers, &body)
            };
            let transient = match &result {
                Ok(r) => matches!(r.status, 502..=504),
                Err((_, transient)) => *transient,
            };
            if !transient || attempt >= ATTEMPTS {
                return result.map_err(|(e, _)| e);
            }
            let why = match &result {
                Ok(r) => format!("HTTP {}", r.status),
                Err((e, _)) => e.0.clone(),
            };
            tracing::warn!(%method, %url, attempt, error = %why, "publish request failed, retrying");
            std::thread::sleep(crate::net::backoff(attempt));
            attempt += 1;
        }
    }

    /// One attempt; an error says whether it is worth retrying.
    fn once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body<'_>,
    ) -> Result<RemoteReply, (Failure, bool)> {
        let fail = |e: ureq::Error| {
            let transient = crate::net::is_transient(&e);
            (Failure(format!("{method} {url}: {e}")), transient)
        };
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Authorization", &self.authorization);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut res = self.run(req, body).map_err(|e| match e {
            Attempt::Failed(e) => fail(e),
            Attempt::Invalid(e) => (Failure(format!("{method} {url}: {e}")), false),
            Attempt::Unreadable(why) => (Failure(why), false),
        })?;
        let status = res.status().as_u16();
        let body = if method == "HEAD" {
            Vec::new()
        } else {
            // Read to the end so the connection goes back to the pool.
            res.body_mut()
                .with_config()
                .limit(MAX_REPLY)
                .read_to_vec()
                .map_err(fail)?
        };
        Ok(RemoteReply {
            status,
            body,
            url: url.to_owned(),
        })
    }

    /// Sends the request with `body` and its headers.
    fn run(
        &self,
        req: ureq::http::request::Builder,
        body: &Body<'_>,
    ) -> Result<ureq::http::Response<ureq::Body>, Attempt> {
        let built = Attempt::Invalid;
        let res = match body {
            Body::None => self.agent.run(req.body(()).map_err(built)?),
            Body::Empty => {
                let req = req.header("Content-Length", "0");
                self.agent.run(req.body(&b""[..]).map_err(built)?)
            }
            Body::Json(text) => {
                let req = req.header("Content-Type", "application/json");
                self.agent.run(req.body(text.as_bytes()).map_err(built)?)
            }
            Body::File(repo, format, rel) => {
                let file = repo
                    .open_publish_file(format, rel)
                    .map_err(|e| Attempt::Unreadable(format!("{}{rel}: {e}", format.url())))?;
                let req = req
                    .header("Content-Type", "application/octet-stream")
                    // An explicit length: ureq then streams the reader as is, never chunked.
                    .header("Content-Length", file.len.to_string())
                    .body(ureq::SendBody::from_owned_reader(file))
                    .map_err(built)?;
                self.agent.run(req)
            }
        };
        res.map_err(Attempt::Failed)
    }
}

/// Why an attempt got no reply.
enum Attempt {
    /// The request could not be built (a bad header value): final.
    Invalid(ureq::http::Error),
    /// The local file to upload could not be opened: final.
    Unreadable(String),
    /// Sending it failed.
    Failed(ureq::Error),
}

/// Replies are small JSON documents; a tag listing of thousands of jobs stays far below.
const MAX_REPLY: u64 = 64 << 20;

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into())
}
