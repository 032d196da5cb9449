//! One canonical identity per request (spec/API.md Q2, Q48): the guard parses the path once
//! into an [`Addressed`], authorizes exactly the paths it names, and leaves it in the
//! request's extensions. The tree and registry dispatchers act on that same value and never
//! look at the raw URI again, so no spelling of a URL (case, `%XX`, slash form) can be
//! checked as one thing and executed as another.

use super::registry::path::{self as v2, Target};
use super::route::Route;
use crate::auth::acl::{Want, want_for};
use crate::model::too_long;
use axum::http::Method;
use percent_encoding::percent_decode_str;
use std::borrow::Cow;

/// What a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressed {
    Tree(Route),
    Registry(Target),
    /// `/static/{file}`, `/favicon.ico`, `/healthz`, `/pubkey{,.gpg}`: read without
    /// credentials.
    Public(String),
    /// Anything else (`/cli`, `/metrics`, a path that names nothing): authorized on the
    /// decoded path, then answered by its fixed route or with a 404.
    Other(String),
    /// `/search`: any caller with a login, or an anonymous one who may read `/` or
    /// `/search`; each result is then checked on its own URL (docs/search.md).
    Search,
    /// A segment no filesystem here can hold (over `NAME_MAX` bytes): authorized on the
    /// decoded path like [`Addressed::Other`], then a 400 that says why.
    TooLong(String),
}

/// One ACL question: may the caller do `want` on `path`?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub path: String,
    pub want: Want,
}

impl Addressed {
    /// Parses the raw (percent-encoded) request path.
    pub fn parse(raw: &str) -> Addressed {
        if has_long_name(raw) {
            return Addressed::TooLong(decoded(raw));
        }
        if raw.starts_with("/v2/") {
            return match v2::parse(raw) {
                Some(t) => Addressed::Registry(t),
                None => Addressed::Other(decoded(raw)),
            };
        }
        let is_static = decoded(raw)
            .strip_prefix("/static/")
            .is_some_and(|f| !f.is_empty() && !f.contains('/') && f != "..");
        let public = ["/favicon.ico", "/healthz", "/pubkey", "/pubkey.gpg"];
        if is_static || public.contains(&raw) {
            return Addressed::Public(decoded(raw));
        }
        if raw == "/search" {
            return Addressed::Search;
        }
        if raw == "/cli" || raw == "/metrics" {
            return Addressed::Other(raw.to_owned());
        }
        match Route::parse(raw) {
            Ok(route) => Addressed::Tree(route),
            Err(_) => Addressed::Other(decoded(raw)),
        }
    }

    /// The path a denial names (the 401 page, the registry's error shape).
    pub fn path(&self) -> String {
        match self {
            Addressed::Tree(r) => r.canonical_path(),
            Addressed::Registry(t) => t.canonical_path(),
            Addressed::Public(p) | Addressed::Other(p) | Addressed::TooLong(p) => p.clone(),
            Addressed::Search => "/search".to_owned(),
        }
    }

    /// Everything the caller must be granted for `method` on this target; empty for the
    /// public paths read without credentials.
    pub fn checks(&self, method: &Method) -> Vec<Check> {
        let path = self.path();
        let mut want = want_for(method.as_str(), &path);
        if let Addressed::Public(_) = self
            && want == Want::default()
        {
            return Vec::new();
        }
        // The v0.30 PUT spellings of tag and policy updates are updates (spec/API.md §8).
        if method == Method::PUT
            && matches!(
                self,
                Addressed::Tree(Route::Branch { .. } | Route::Tag { .. })
            )
        {
            want = Want {
                update: true,
                ..Want::default()
            };
        }
        let mut checks = vec![Check { path, want }];
        if let Addressed::Tree(route) = self
            && let Some(entity) = route.also_reads()
        {
            checks.push(Check {
                path: entity,
                want: Want::default(),
            });
        }
        checks
    }
}

/// The path a GET or HEAD is parsed and authorized on: `.` segments (also spelled `%2e`)
/// dropped, so that apt's `deb URL ./` asks for `{format}/./Packages` and gets
/// `{format}/Packages` (issue 15). Writes keep the path as sent (and `RelPath` refuses it).
/// The guard parses the result once, so the ACL checks the path that is served.
pub fn read_path<'a>(raw: &'a str, method: &Method) -> Cow<'a, str> {
    let is_dot = |s: &str| s == "." || s.eq_ignore_ascii_case("%2e");
    let read = method == Method::GET || method == Method::HEAD;
    // Tree paths only: fixed routes and the registry match the raw path, so a path they
    // serve must be checked as sent.
    let tree = ["/branches/", "/products/", "/~"]
        .iter()
        .any(|p| raw.starts_with(p));
    if !read || !tree || !raw.split('/').any(is_dot) {
        return Cow::Borrowed(raw);
    }
    let segs: Vec<&str> = raw.split('/').collect();
    let mut out: Vec<&str> = segs.iter().copied().filter(|s| !is_dot(s)).collect();
    // `{format}/.` is the directory itself: keep its trailing slash.
    if segs.last().is_some_and(|s| is_dot(s)) {
        out.push("");
    }
    Cow::Owned(out.join("/"))
}

/// Whether a segment of the path is longer than a file name can be (the `~` of a user
/// prefix is not part of the user's name).
fn has_long_name(raw: &str) -> bool {
    raw.split('/').enumerate().any(|(i, seg)| {
        let seg = decoded(seg);
        let name = match i {
            1 => seg.strip_prefix('~').unwrap_or(&seg),
            _ => &seg,
        };
        too_long(name)
    })
}

fn decoded(raw: &str) -> String {
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(raw: &str, method: Method) -> Vec<(String, Want)> {
        Addressed::parse(raw)
            .checks(&method)
            .into_iter()
            .map(|c| (c.path, c.want))
            .collect()
    }

    fn delete() -> Want {
        Want {
            delete: true,
            ..Want::default()
        }
    }

    #[test]
    fn every_spelling_of_an_entity_is_one_check() {
        let want = vec![("/branches/vault/".to_owned(), delete())];
        for raw in [
            "/branches/vault",
            "/branches/vault/",
            "/branches/VAULT",
            "/branches/%56ault/",
            "/branches/Vault",
        ] {
            assert_eq!(paths(raw, Method::DELETE), want, "{raw}");
        }
    }

    #[test]
    fn registry_names_are_canonical() {
        let get = |raw: &str| paths(raw, Method::GET)[0].0.clone();
        assert_eq!(
            get("/v2/%53ecret/img/manifests/v1"),
            "/v2/secret/img/manifests/v1"
        );
        assert_eq!(
            paths("/v2/SECRET/img/blobs/uploads/", Method::POST),
            vec![(
                "/v2/secret/img/blobs/uploads/".to_owned(),
                Want {
                    add: true,
                    ..Want::default()
                }
            )]
        );
        // A name the registry cannot map is checked as sent, then answered 404.
        assert_eq!(
            Addressed::parse("/v2/a/manifests/t"),
            Addressed::Other("/v2/a/manifests/t".into())
        );
    }

    #[test]
    fn only_exact_public_paths_skip_credentials() {
        assert!(paths("/static/dlrepo.css", Method::GET).is_empty());
        assert!(paths("/healthz", Method::GET).is_empty());
        assert!(paths("/pubkey", Method::GET).is_empty());
        assert!(paths("/pubkey.gpg", Method::GET).is_empty());
        assert_eq!(paths("/static/dlrepo.css", Method::PUT).len(), 1);
        // Decoding must not turn a tree path into a public one.
        for raw in [
            "/static/%2e%2e%2fbranches%2fsecret%2f",
            "/static/../branches/secret/",
            "/static/",
        ] {
            assert!(!paths(raw, Method::GET).is_empty(), "{raw}");
        }
    }

    #[test]
    fn over_long_segments_are_told_apart() {
        let long = "b".repeat(crate::model::NAME_MAX + 1);
        for raw in [
            format!("/branches/{long}/"),
            format!("/~{long}/branches/"),
            format!("/v2/{long}/j/manifests/t"),
            format!("/branches/b/t/j/f/{long}"),
        ] {
            assert!(
                matches!(Addressed::parse(&raw), Addressed::TooLong(_)),
                "{raw}"
            );
        }
        let max = "b".repeat(crate::model::NAME_MAX);
        assert!(matches!(
            Addressed::parse(&format!("/branches/{max}/")),
            Addressed::Tree(_)
        ));
    }

    #[test]
    fn reads_drop_dot_segments_and_check_what_they_serve() {
        let get = |raw: &str| read_path(raw, &Method::GET).into_owned();
        assert_eq!(
            get("/branches/b/t/j/deb/./Packages"),
            "/branches/b/t/j/deb/Packages"
        );
        assert_eq!(
            get("/branches/b/t/j/deb/%2E/./x.deb"),
            "/branches/b/t/j/deb/x.deb"
        );
        assert_eq!(get("/branches/b/t/j/deb/."), "/branches/b/t/j/deb/");
        assert_eq!(get("/branches/b/t/j/deb/a..b"), "/branches/b/t/j/deb/a..b");
        // `..` is never resolved: it stays and is refused as before.
        assert_eq!(get("/branches/b/t/j/deb/../x"), "/branches/b/t/j/deb/../x");
        for m in [Method::PUT, Method::DELETE, Method::PATCH, Method::POST] {
            assert_eq!(
                read_path("/branches/b/t/j/f/./x", &m),
                "/branches/b/t/j/f/./x"
            );
        }
        for raw in ["/./v2/a/b/manifests/t", "/static/./x.css", "/./metrics"] {
            assert_eq!(get(raw), raw);
        }
        assert_eq!(get("/~bob/./branches/"), "/~bob/branches/");
        let checked = Addressed::parse(&get("/branches/SECRET/t/j/deb/./Packages"));
        assert_eq!(checked.path(), "/branches/secret/t/j/deb/Packages");
    }

    #[test]
    fn bundles_need_their_entity_too() {
        assert_eq!(
            paths("/branches/b/t/J.tar", Method::GET),
            vec![
                ("/branches/b/t/j.tar".to_owned(), Want::default()),
                ("/branches/b/t/j/".to_owned(), Want::default()),
            ]
        );
    }
}
