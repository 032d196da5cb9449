//! Basic logins checked against an LDAP directory (spec/AUTH.md §5): the [`Authenticator`]
//! used when `DLREPO_LDAP_URL` is set. Owns the directory settings and the limit on
//! concurrent lookups; knows nothing of HTTP.

use super::{Authenticator, Unavailable};
use crate::config::Config;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, ldap_escape};
use std::future::Future;
use std::time::Duration;
use tokio::sync::Semaphore;

/// RFC 4511 `invalidCredentials`: a wrong password (or a locked account), i.e. a 401, not
/// a broken directory.
const INVALID_CREDENTIALS: u32 = 49;

/// The directory and how to ask it, from the `DLREPO_LDAP_*` settings.
#[derive(Debug)]
pub struct Directory {
    url: String,
    /// StartTLS on an `ldap://` URL; `ldaps://` is TLS from the first byte.
    start_tls: bool,
    base_dn: String,
    user_filter: String,
    groups_filter: String,
    /// For the connection (TCP, StartTLS, TLS handshake), for each operation, and for
    /// waiting for one of the `slots`.
    timeout: Duration,
    /// At most `DLREPO_LDAP_MAX_CONNECTIONS` lookups talk to the server at once.
    slots: Semaphore,
}

/// Why a lookup could not say yes or no.
#[derive(Debug, thiserror::Error)]
enum LookupError {
    #[error(transparent)]
    Ldap(#[from] LdapError),
    #[error("{0} entries match the user filter")]
    Ambiguous(usize),
    #[error("every LDAP connection stayed busy for the whole timeout")]
    Busy,
    #[error("{0}")]
    Filter(String),
    #[error("cannot start a runtime for the lookup: {0}")]
    Runtime(std::io::Error),
}

impl Directory {
    /// `Ok(None)` when `DLREPO_LDAP_URL` is unset or empty: the auth file applies. Errors
    /// name the setting, so that a bad configuration stops start-up instead of failing
    /// each login.
    pub fn from_config(config: &Config) -> Result<Option<Directory>, String> {
        let get = |key: &str| config.other.get(key).map(String::as_str).unwrap_or("");
        let url = get("LDAP_URL");
        if url.is_empty() {
            return Ok(None);
        }
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("ldap" | "ldaps")) {
            return Err(format!(
                "DLREPO_LDAP_URL: {url:?} is not an ldap:// or ldaps:// URL"
            ));
        }
        let number = |key: &str, default: u64| -> Result<u64, String> {
            match get(key).trim() {
                "" => Ok(default),
                raw => raw
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("DLREPO_{key}: {raw:?} is not a positive integer")),
            }
        };
        let timeout = Duration::from_secs(number("LDAP_TIMEOUT", 10)?);
        let max = usize::try_from(number("LDAP_MAX_CONNECTIONS", 4)?)
            .map_err(|_| "DLREPO_LDAP_MAX_CONNECTIONS: too large".to_owned())?
            .min(Semaphore::MAX_PERMITS);
        let user_filter = get("LDAP_USER_FILTER").to_owned();
        let groups_filter = get("LDAP_GROUPS_FILTER").to_owned();
        check_filter("DLREPO_LDAP_USER_FILTER", &user_filter, &[("login", "x")])?;
        check_filter(
            "DLREPO_LDAP_GROUPS_FILTER",
            &groups_filter,
            &[("login", "x"), ("dn", "cn=x")],
        )?;
        Ok(Some(Directory {
            url: url.to_owned(),
            start_tls: get("LDAP_START_TLS") != "0",
            base_dn: get("LDAP_BASE_DN").to_owned(),
            user_filter,
            groups_filter,
            timeout,
            slots: Semaphore::new(max),
        }))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// One lookup: wait for a slot, connect, then [`Directory::ask`].
    async fn lookup(
        &self,
        login: &str,
        password: &str,
        ignore_passwords: bool,
    ) -> Result<Vec<String>, LookupError> {
        // Unbounded waiting would pile up requests (and threads) behind a slow server.
        let _slot = tokio::time::timeout(self.timeout, self.slots.acquire())
            .await
            .map_err(|_| LookupError::Busy)?
            .map_err(|_| LookupError::Busy)?;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout)
            .set_starttls(self.start_tls);
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.url).await?;
        // The connection task ends when `ldap`, its only handle, is dropped below.
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection closed with an error");
            }
        });
        let groups = self.ask(&mut ldap, login, password, ignore_passwords).await;
        // Courtesy only: the answer is already known.
        let _ = ldap.with_timeout(self.timeout).unbind().await;
        groups
    }

    /// The two steps of spec/AUTH.md §5 on one connection: find the login's DN anonymously,
    /// bind as that DN (unless passwords are ignored), then search its groups as that DN.
    async fn ask(
        &self,
        ldap: &mut Ldap,
        login: &str,
        password: &str,
        ignore_passwords: bool,
    ) -> Result<Vec<String>, LookupError> {
        let t = self.timeout;
        ldap.with_timeout(t).simple_bind("", "").await?.success()?;
        let login = ldap_escape(login);
        let filter = fill(&self.user_filter, &[("login", &login)]).map_err(LookupError::Filter)?;
        let (mut users, _) = ldap
            .with_timeout(t)
            .search(&self.base_dn, Scope::Subtree, &filter, vec!["dn"])
            .await?
            .success()?;
        let dn = match users.len() {
            0 => return Ok(Vec::new()),
            1 => SearchEntry::construct(users.remove(0)).dn,
            n => return Err(LookupError::Ambiguous(n)),
        };
        if !ignore_passwords {
            match ldap
                .with_timeout(t)
                .simple_bind(&dn, password)
                .await?
                .success()
            {
                Ok(_) => {}
                Err(LdapError::LdapResult { result }) if result.rc == INVALID_CREDENTIALS => {
                    return Ok(Vec::new());
                }
                Err(e) => return Err(e.into()),
            }
        }
        // dlrepo 0.44 inserts the DN raw; escaped, a DN holding `\`, `*` or parentheses
        // still makes a valid filter that means what it says.
        let filter = fill(
            &self.groups_filter,
            &[("login", &login), ("dn", &ldap_escape(&dn))],
        )
        .map_err(LookupError::Filter)?;
        let (groups, _) = ldap
            .with_timeout(t)
            .search(&self.base_dn, Scope::Subtree, &filter, vec!["cn"])
            .await?
            .success()?;
        Ok(groups
            .into_iter()
            .filter_map(|entry| {
                let attrs = SearchEntry::construct(entry).attrs;
                let (_, cns) = attrs
                    .into_iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("cn"))?;
                cns.into_iter().next()
            })
            .collect())
    }
}

impl Authenticator for Directory {
    fn authenticate(
        &self,
        login: &str,
        password: &str,
        ignore_passwords: bool,
    ) -> Result<Vec<String>, Unavailable> {
        // An empty password would be an unauthenticated bind, which servers accept.
        if !ignore_passwords && (login.is_empty() || password.is_empty()) {
            return Ok(Vec::new());
        }
        let lookup = self.lookup(login, password, ignore_passwords);
        block_on(lookup).and_then(|r| r).map_err(|error| {
            tracing::error!(url = %self.url, %login, %error, "LDAP lookup failed");
            Unavailable
        })
    }
}

/// Runs `fut` to completion from synchronous code. `Auth::identify` is called on the
/// blocking pool (it also hashes passwords and reads token files), so the lookup borrows
/// the server's runtime for its I/O; it must never be called on an async worker thread.
fn block_on<F: Future>(fut: F) -> Result<F::Output, LookupError> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => Ok(handle.block_on(fut)),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(fut))
            .map_err(LookupError::Runtime),
    }
}

fn check_filter(setting: &str, template: &str, fields: &[(&str, &str)]) -> Result<(), String> {
    if template.is_empty() {
        return Err(format!("{setting} must be set when DLREPO_LDAP_URL is"));
    }
    let sample = fill(template, fields).map_err(|why| format!("{setting}: {why}"))?;
    ldap3::parse_filter(&sample)
        .map(|_| ())
        .map_err(|()| format!("{setting}: {template:?} is not a valid LDAP filter"))
}

/// Python's `str.format` with the named fields dlrepo passes (`{login}`, and `{dn}` for
/// the groups filter), `{{` and `}}` standing for braces. Anything else is refused when
/// the settings load (dlrepo would fail every login with a `KeyError`).
fn fill(template: &str, fields: &[(&str, &str)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find(['{', '}']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push('}');
            rest = after;
        } else if tail.starts_with('}') {
            return Err("a single '}' (write '}}' for a brace)".into());
        } else {
            let end = tail.find('}').ok_or("an unclosed '{'")?;
            let name = &tail[1..end];
            let (_, value) = fields
                .iter()
                .find(|(field, _)| *field == name)
                .ok_or_else(|| format!("unknown placeholder {{{name}}}"))?;
            out.push_str(value);
            rest = &tail[end + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&'static str, &str)]) -> Config {
        let mut c = Config::default();
        for (k, v) in pairs {
            c.other.insert(k, (*v).to_owned());
        }
        c
    }

    const FILTERS: [(&str, &str); 2] = [
        ("LDAP_USER_FILTER", "(uid={login})"),
        (
            "LDAP_GROUPS_FILTER",
            "(&(objectClass=groupOfNames)(member={dn}))",
        ),
    ];

    #[test]
    fn fill_replaces_named_fields_and_doubled_braces() {
        let f = [("login", "bob"), ("dn", "uid=bob")];
        assert_eq!(
            fill("(&(uid={login})(member={dn}))", &f).as_deref(),
            Ok("(&(uid=bob)(member=uid=bob))")
        );
        assert_eq!(fill("{{x}}{login}", &f).as_deref(), Ok("{x}bob"));
        assert!(fill("(uid={user})", &f).is_err());
        assert!(fill("(uid={login)", &f).is_err());
        assert!(fill("(uid=})", &f).is_err());
    }

    #[test]
    fn escaped_logins_cannot_change_the_filter() {
        let login = ldap_escape("*)(uid=*");
        let filter = fill("(uid={login})", &[("login", &login)]).unwrap();
        assert_eq!(filter, r"(uid=\2a\29\28uid=\2a)");
        assert!(ldap3::parse_filter(&filter).is_ok());
    }

    #[test]
    fn no_url_means_no_directory() {
        assert!(Directory::from_config(&config(&[])).unwrap().is_none());
        assert!(
            Directory::from_config(&config(&[("LDAP_URL", "")]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn settings_are_checked_at_load() {
        let with = |extra: &[(&'static str, &str)]| {
            let mut pairs = vec![("LDAP_URL", "ldap://127.0.0.1:389")];
            pairs.extend_from_slice(&FILTERS);
            pairs.extend_from_slice(extra);
            Directory::from_config(&config(&pairs))
        };
        let d = with(&[]).unwrap().unwrap();
        assert!(d.start_tls, "StartTLS is on unless DLREPO_LDAP_START_TLS=0");
        assert_eq!(d.timeout, Duration::from_secs(10));
        assert_eq!(d.slots.available_permits(), 4);
        assert!(!with(&[("LDAP_START_TLS", "0")]).unwrap().unwrap().start_tls);
        let err = |extra| with(extra).err().unwrap_or_default();
        assert!(err(&[("LDAP_URL", "http://x")]).contains("DLREPO_LDAP_URL"));
        assert!(err(&[("LDAP_USER_FILTER", "")]).contains("DLREPO_LDAP_USER_FILTER"));
        assert!(err(&[("LDAP_USER_FILTER", "(uid={dn})")]).contains("{dn}"));
        assert!(err(&[("LDAP_GROUPS_FILTER", "(cn=x")]).contains("not a valid LDAP filter"));
        assert!(err(&[("LDAP_MAX_CONNECTIONS", "0")]).contains("MAX_CONNECTIONS"));
        assert!(err(&[("LDAP_TIMEOUT", "0")]).contains("DLREPO_LDAP_TIMEOUT"));
    }

    #[test]
    fn empty_credentials_never_reach_the_server() {
        // Nothing listens on port 9 here: a lookup would fail with an error, not Ok(empty).
        let mut pairs = vec![("LDAP_URL", "ldap://127.0.0.1:9"), ("LDAP_TIMEOUT", "1")];
        pairs.extend_from_slice(&FILTERS);
        let d = Directory::from_config(&config(&pairs)).unwrap().unwrap();
        assert_eq!(
            d.authenticate("bob", "", false).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            d.authenticate("", "pw", false).unwrap(),
            Vec::<String>::new()
        );
        assert!(d.authenticate("bob", "pw", false).is_err());
    }
}
