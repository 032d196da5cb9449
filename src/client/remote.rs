//! Requests to the server, as dlrepo-cli sends them (spec/CLI.md §1, §3): paths encoded with
//! `quote_plus`, pre-emptive credentials, JSON in and out, HTTP errors as `remote:` errors.
//! Beyond dlrepo-cli: transient failures (no connection, timeouts, 5xx) are tried again
//! with a growing pause, and one agent keeps connections open across requests and threads.

use super::ClientError;
use super::settings::Auth;
use serde_json::Value;
use std::io::Read;
use std::time::Duration;

/// How many times a request is sent before a transient failure is final.
const ATTEMPTS: u32 = 4;

/// As many as urllib follows.
const MAX_REDIRECTS: usize = 10;

/// What an answer's body may be when it is read whole (JSON listings, error texts). A
/// listing of a million files of 60-byte names fits; parsed, JSON takes many times its
/// size in memory, so a hostile server is not let much further.
const MAX_REPLY: u64 = 64 << 20;

/// The size of each connection's send and receive buffers.
const BUFFER: usize = 1 << 20;
/// Idle connections kept for reuse: more than any sensible `-J`.
const IDLE_CONNECTIONS: usize = 64;

/// The server, its base URL and the credentials; cheap to share between threads.
pub struct Remote {
    agent: ureq::Agent,
    base: String,
    auth: std::sync::Mutex<Auth>,
    /// The password prompt happens at most once per run, as in dlrepo-cli.
    prompted: std::sync::atomic::AtomicBool,
    /// Whether the server said it is arbor (`Server: arbor`), from its first answer.
    arbor: std::sync::OnceLock<bool>,
}

/// A body to send.
pub enum Body<'a> {
    None,
    /// `Content-Length: 0`, no Content-Type (dlrepo-cli's PATCH and link PUT).
    Empty,
    Json(&'a Value),
    /// A local file, reopened for each attempt.
    File(&'a dyn Fn() -> std::io::Result<(Box<dyn Read + Send>, u64)>),
}

/// An answer whose status is below 400.
pub struct Reply {
    /// The URL that answered, after redirects.
    pub url: String,
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: ureq::Body,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Reads the rest of a short answer (a write's status text) and drops it, so that the
    /// connection goes back to the pool: ureq closes one whose answer was dropped unread,
    /// and a new connection per small file cost a third of an upload's time. The request
    /// has succeeded already: a failure here only loses the connection.
    pub fn finish(mut self) {
        let _ = read_all(&mut self.body);
    }

    /// The whole body as JSON; an error when it is not JSON (a proxy's login page, say,
    /// which would otherwise read as an empty list and exit 0).
    pub fn json(self) -> Result<Value, ClientError> {
        self.json_as("JSON")
    }

    /// The whole body parsed as `T`, which is `what` to the server's answer: an error
    /// naming it when the answer is not JSON or not that.
    pub fn json_as<T: serde::de::DeserializeOwned>(mut self, what: &str) -> Result<T, ClientError> {
        let kind = self.header("content-type").unwrap_or("none").to_owned();
        let bytes = read_all(&mut self.body)?;
        let not = |why: String| {
            let url = &self.url;
            ClientError::Local(format!("{url}: the server's answer is not {what}: {why}"))
        };
        if !kind.contains("json") {
            return Err(not(format!("Content-Type: {kind}")));
        }
        serde_json::from_slice(&bytes).map_err(|e| not(e.to_string()))
    }
}

fn read_all(body: &mut ureq::Body) -> Result<Vec<u8>, ClientError> {
    body.with_config()
        .limit(MAX_REPLY)
        .read_to_vec()
        .map_err(|e| ClientError::Local(e.to_string()))
}

impl Remote {
    pub fn new(base: &str, auth: Auth) -> Remote {
        let tls = base
            .starts_with("https://")
            .then(|| crate::net::tls_config("client"));
        let mut config = ureq::Agent::config_builder()
            // Statuses are ours to judge: HEAD's 404 means "upload it".
            .http_status_as_error(false)
            .user_agent(concat!("arbor/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(30)))
            // A server that accepts and then says nothing is not waited for forever. (ureq
            // has no idle timeout for bodies: a stalled body is left to TCP keepalive.)
            .timeout_recv_response(Some(Duration::from_secs(300)))
            // Redirects are followed here, for GET and HEAD only (spec/CLI.md §1), with the
            // credentials: ureq would drop them on a plain-http redirect.
            .max_redirects(0)
            // Larger than ureq's 128 KiB: fewer system calls per GiB moved.
            .input_buffer_size(BUFFER)
            .output_buffer_size(BUFFER)
            // ureq keeps 3 idle connections per host: with `-J 4` one was closed and opened
            // again for every few files, each new one zeroing its 2 MiB of buffers.
            .max_idle_connections(IDLE_CONNECTIONS)
            .max_idle_connections_per_host(IDLE_CONNECTIONS);
        if let Some(tls) = tls {
            config = config.tls_config(tls);
        }
        Remote {
            agent: config.build().into(),
            base: base.to_owned(),
            auth: std::sync::Mutex::new(auth),
            prompted: std::sync::atomic::AtomicBool::new(false),
            arbor: std::sync::OnceLock::new(),
        }
    }

    /// Whether the server is arbor, once any request has been answered.
    pub fn is_arbor(&self) -> Option<bool> {
        self.arbor.get().copied()
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// dlrepo-cli's `make_url`: `path` relative to the base, encoded with
    /// `quote_plus(path, safe="/")`, then `?` and the parameters when there are any (an
    /// empty list still gives the `?`).
    pub fn url(&self, path: &str, params: Option<&[(String, String)]>) -> String {
        let mut url = format!(
            "{}{}",
            self.base,
            quote_plus(path.trim_start_matches('/'), "/")
        );
        if let Some(params) = params {
            url.push('?');
            let pairs: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{}={}", quote_plus(k, ""), quote_plus(v, "")))
                .collect();
            url.push_str(&pairs.join("&"));
        }
        url
    }

    /// `path` (not yet encoded) under `dir`, a full URL ending in `/`.
    pub fn url_under(dir: &str, path: &str) -> String {
        format!("{dir}{}", quote_plus(path, "/"))
    }

    /// GET `path` and its JSON.
    pub fn get_json(
        &self,
        path: &str,
        params: Option<&[(String, String)]>,
    ) -> Result<Value, ClientError> {
        self.send("GET", &self.url(path, params), &[], Body::None)?
            .json()
    }

    /// A request with a JSON body (or none), its answer read and dropped.
    pub fn call(&self, method: &str, path: &str, body: Body<'_>) -> Result<(), ClientError> {
        let mut reply = self.send(method, &self.url(path, None), &[], body)?;
        read_all(&mut reply.body).map(drop)
    }

    /// Sends one request, tries transient failures again, and turns a status of 400 or more
    /// into [`ClientError::Remote`]. A 401 with a challenge asks for the password once when
    /// there is a terminal, as dlrepo-cli does.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Reply, ClientError> {
        let mut url = url.to_owned();
        for _ in 0..MAX_REDIRECTS {
            let reply = self.send_once(method, &url, headers, &body)?;
            if !(300..400).contains(&reply.status) {
                return Ok(reply);
            }
            // A redirect not followed would be taken for the answer (its page saved as a
            // file, say): anything but a usable one is an error.
            let location = match reply.status {
                301 | 302 | 303 | 307 | 308 => reply
                    .headers
                    .get("location")
                    .map(|v| quote_location(v.as_bytes())),
                _ => None,
            };
            let Some(location) = location else {
                return Err(ClientError::Local(format!(
                    "{method} {url}: the server answered {} without a redirect to follow",
                    reply.status
                )));
            };
            if method != "GET" && method != "HEAD" {
                return Err(ClientError::Local(format!(
                    "{method} {url}: redirected to {location}; the server should act on the URL it was sent"
                )));
            }
            let next = super::settings::urljoin(&url, &location)
                .map_err(|e| ClientError::Local(format!("{url}: {e}")))?;
            if url.starts_with("https://") && !next.starts_with("https://") {
                return Err(ClientError::Local(format!(
                    "{url}: redirected to {next}, which is not https: refused"
                )));
            }
            url = next;
        }
        Err(ClientError::Local(format!("{url}: too many redirects")))
    }

    /// [`Remote::send`] without following redirects.
    fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body<'_>,
    ) -> Result<Reply, ClientError> {
        let mut attempt = 1;
        loop {
            let result = self.once(method, url, headers, body);
            let retry = match &result {
                Ok(res) if res.status().as_u16() == 401 => {
                    // Only the server the credentials are for may ask for the password.
                    let challenged =
                        res.headers().contains_key("www-authenticate") && self.is_ours(url);
                    if challenged && self.prompt_password(url) {
                        continue;
                    }
                    false
                }
                Ok(res) => res.status().is_server_error(),
                Err(e) => crate::net::is_transient(e),
            };
            if retry && attempt < ATTEMPTS {
                std::thread::sleep(crate::net::backoff(attempt));
                attempt += 1;
                continue;
            }
            let mut res = result.map_err(|e| ClientError::Local(format!("{url}: {e}")))?;
            let server = res.headers().get("server").map(|v| v.as_bytes());
            let _ = self.arbor.set(server == Some(b"arbor"));
            let status = res.status();
            if status.as_u16() >= 400 {
                let text = read_all(res.body_mut()).unwrap_or_default();
                let text = String::from_utf8_lossy(&text).trim().to_owned();
                return Err(ClientError::Remote {
                    status: status.as_u16(),
                    message: if text.is_empty() {
                        // Python's str(HTTPError).
                        let reason = status.canonical_reason().unwrap_or("");
                        format!("HTTP Error {}: {reason}", status.as_u16())
                    } else {
                        text
                    },
                });
            }
            let (parts, body) = res.into_parts();
            return Ok(Reply {
                url: url.to_owned(),
                status: status.as_u16(),
                headers: parts.headers,
                body,
            });
        }
    }

    fn once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body<'_>,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Accept", "application/json,application/octet-stream");
        // Credentials go to the server they are for, never to another origin a redirect
        // points at (urllib, under dlrepo-cli, sends them anywhere).
        let auth = self.auth.lock().map(|a| a.header()).unwrap_or_default();
        if let Some(auth) = auth.filter(|_| self.is_ours(url)) {
            req = req.header("Authorization", auth);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        match body {
            Body::None => self.agent.run(req.body(())?),
            Body::Empty => self
                .agent
                .run(req.header("Content-Length", "0").body(&b""[..])?),
            Body::Json(v) => {
                let text = crate::pyjson::to_string(v);
                let req = req.header("Content-Type", "application/json");
                self.agent.run(req.body(text.as_bytes())?)
            }
            Body::File(open) => {
                let (file, len) = open()?;
                let req = req
                    .header("Content-Type", "application/octet-stream")
                    // An explicit length: ureq streams the reader as is, never chunked.
                    .header("Content-Length", len.to_string())
                    .body(ureq::SendBody::from_owned_reader(file))?;
                self.agent.run(req)
            }
        }
    }

    /// Whether `url` is on the server the credentials are for (same scheme, host, port).
    fn is_ours(&self, url: &str) -> bool {
        super::settings::origin(url) == super::settings::origin(&self.base)
    }

    /// Asks for the password on the terminal, once per run; whether to send again.
    fn prompt_password(&self, url: &str) -> bool {
        use std::io::IsTerminal as _;
        use std::sync::atomic::Ordering;
        if self.prompted.swap(true, Ordering::SeqCst) || !std::io::stdin().is_terminal() {
            return false;
        }
        let Ok(mut auth) = self.auth.lock() else {
            return false;
        };
        let Auth::Basic { user, password } = &mut *auth else {
            return false;
        };
        let host = url.split('/').nth(2).unwrap_or(url);
        eprintln!();
        match rpassword::prompt_password(format!("{user}@{host}'s password: ")) {
            Ok(typed) => {
                *password = typed;
                true
            }
            Err(_) => false,
        }
    }
}

/// A `Location` as urllib follows it: its bytes kept, but spaces, controls and bytes
/// outside ASCII percent-encoded.
fn quote_location(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw {
        match b {
            0x21..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Python's `quote_plus(s, safe)`: letters, digits, `_.-~` and `safe` stay, a space becomes
/// `+`, every other byte of the UTF-8 is `%XX`.
pub fn quote_plus(s: &str, safe: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ if b.is_ascii() && safe.as_bytes().contains(&b) => out.push(char::from(b)),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_as_dlrepo_cli_encodes_them() {
        assert_eq!(quote_plus("a b+c/é.txt", "/"), "a+b%2Bc/%C3%A9.txt");
        assert_eq!(quote_plus("a/b", ""), "a%2Fb");
        let r = Remote::new("http://h/~me/", Auth::None);
        assert_eq!(r.url("/branches/", None), "http://h/~me/branches/");
        assert_eq!(r.url("branches/b/", Some(&[])), "http://h/~me/branches/b/?");
        let params = [("released".to_owned(), "1".to_owned())];
        assert_eq!(
            r.url("branches/b/", Some(&params)),
            "http://h/~me/branches/b/?released=1"
        );
    }
}
