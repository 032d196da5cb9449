//! Where the client commands find the server and the credentials (spec/CLI.md §1): flags,
//! then `DLREPO_URL`, `DLREPO_PREFIX`, `DLREPO_USER`, `DLREPO_PASSWORD`, then the INI file
//! `~/.config/dlrepo-cli`, then dlrepo-cli's defaults. Beyond dlrepo-cli: a token
//! (`ARBOR_TOKEN`, or the one `arbor login` saved), `user:password@` in the URL, and
//! `~/.netrc`. Pure: the caller reads the
//! environment and the files.

use base64::Engine as _;
use percent_encoding::percent_decode_str;

/// How requests authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    /// Pre-emptive Basic, as dlrepo-cli sends it (also with an empty password).
    Basic {
        user: String,
        password: String,
    },
    Bearer(String),
}

impl Auth {
    /// The `Authorization` header value, if any.
    pub fn header(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Basic { user, password } => {
                let pair = format!("{user}:{password}");
                let token = base64::engine::general_purpose::STANDARD.encode(pair);
                Some(format!("Basic {token}"))
            }
            Auth::Bearer(token) => Some(format!("Bearer {token}")),
        }
    }
}

/// The resolved settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `urljoin(url, prefix)` without credentials, e.g. `http://host:1337/~bob/`.
    pub base: String,
    /// The prefix as given: `flush` refuses one without `~`.
    pub prefix: String,
    pub auth: Auth,
}

/// What the settings are made from.
pub struct Sources<'a> {
    pub url_flag: Option<&'a str>,
    pub prefix_flag: Option<&'a str>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The text of `~/.config/dlrepo-cli`, if it exists.
    pub conf: Option<&'a str>,
    /// The text of `~/.netrc`, if it exists.
    pub netrc: Option<&'a str>,
    /// The text of the tokens file `arbor login` writes, if it exists.
    pub tokens: Option<&'a str>,
    /// The Unix login, dlrepo-cli's default user.
    pub login: &'a str,
}

pub fn resolve(src: &Sources<'_>) -> Result<Settings, String> {
    let conf = src.conf.map(ini_section).unwrap_or_default();
    let conf_get = |key: &str| conf.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let user = (src.env)("DLREPO_USER")
        .or_else(|| conf_get("user"))
        .unwrap_or_else(|| src.login.to_owned());
    let url = match src.url_flag {
        Some(u) => u.to_owned(),
        None => (src.env)("DLREPO_URL")
            .or_else(|| conf_get("url"))
            .unwrap_or_else(|| "http://127.0.0.1:1337".into()),
    };
    let prefix = match src.prefix_flag {
        Some(p) => p.to_owned(),
        None => match (src.env)("DLREPO_PREFIX") {
            Some(p) => p,
            // configparser interpolates the file's values and its defaults, not the
            // environment's.
            None => interpolate(
                &conf_get("prefix").unwrap_or_else(|| "/~%(user)s/".into()),
                &user,
            )?,
        },
    };
    let (url, userinfo) = split_userinfo(&url)?;
    let base = urljoin(&url, &prefix)?;
    let password = (src.env)("DLREPO_PASSWORD").or_else(|| conf_get("password"));
    let saved = src.tokens.and_then(|t| saved_token(t, &base));
    let auth = if let Some(token) = (src.env)("ARBOR_TOKEN").filter(|t| !t.is_empty()) {
        Auth::Bearer(token)
    } else if let Some((user, password)) = userinfo {
        Auth::Basic { user, password }
    } else if let Some(password) = password.filter(|p| !p.is_empty()) {
        Auth::Basic { user, password }
    } else if let Some(token) = saved {
        Auth::Bearer(token)
    } else if let Some((user, password)) = src.netrc.and_then(|n| netrc_entry(n, host(&base))) {
        Auth::Basic { user, password }
    } else if !user.is_empty() {
        Auth::Basic {
            user,
            password: String::new(),
        }
    } else {
        Auth::None
    };
    Ok(Settings { base, prefix, auth })
}

/// The `key = value` pairs of the `[dlrepo-cli]` section, keys lower-cased as configparser
/// does. Continuation lines and other sections are ignored.
fn ini_section(text: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            inside = name == "dlrepo-cli";
            continue;
        }
        if !inside || line.starts_with(char::is_whitespace) {
            continue;
        }
        let split = trimmed.find(['=', ':']);
        if let Some(at) = split {
            let key = trimmed[..at].trim().to_lowercase();
            out.push((key, trimmed[at + 1..].trim().to_owned()));
        }
    }
    out
}

/// The origin of a URL (`scheme://host:port`), which `arbor login` saves tokens under.
pub fn origin(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    &url[..end]
}

/// The token saved for `base`'s origin: lines of `ORIGIN TOKEN`, the last one wins.
fn saved_token(text: &str, base: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(o, _)| *o == origin(base))
        .map(|(_, t)| t.trim().to_owned())
        .next_back()
        .filter(|t| !t.is_empty())
}

/// The tokens file with `token` saved for `base`'s origin (`None`: removed), other
/// servers' lines kept.
pub fn with_token(text: &str, base: &str, token: Option<&str>) -> String {
    let mut out: String = text
        .lines()
        .filter(|l| l.split_once(' ').is_none_or(|(o, _)| o != origin(base)))
        .map(|l| format!("{l}\n"))
        .collect();
    if let Some(token) = token {
        out.push_str(&format!("{} {token}\n", origin(base)));
    }
    out
}

/// configparser's `%(user)s` and `%%`; the prefix is the only value that uses them.
fn interpolate(value: &str, user: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("%%") {
            out.push('%');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("%(user)s") {
            out.push_str(user);
            rest = after;
        } else {
            return Err(format!("bad interpolation in prefix {value:?}"));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `http://u:p@host/` -> (`http://host/`, (u, p)), percent-decoded.
fn split_userinfo(url: &str) -> Result<(String, Option<(String, String)>), String> {
    // The URL may hold a password: the error names the scheme only.
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "the server URL does not start with http:// or https://".to_owned())?;
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "the server URL is {scheme}://, not http:// or https://"
        ));
    }
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((info, host)) = authority.rsplit_once('@') else {
        return Ok((url.to_owned(), None));
    };
    let (user, password) = info.split_once(':').unwrap_or((info, ""));
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    Ok((
        format!("{scheme}://{host}{path}"),
        Some((decode(user), decode(password))),
    ))
}

/// Python's `urljoin(url, prefix)` for the prefixes (and redirect locations) met in practice:
/// absolute (`/~bob/`), a full URL, or relative to the URL's directory.
pub(super) fn urljoin(url: &str, prefix: &str) -> Result<String, String> {
    if prefix.contains("://") {
        return Ok(prefix.to_owned());
    }
    // Scheme-relative (`//host/x`): another host, same scheme.
    if let Some(rest) = prefix.strip_prefix("//") {
        let scheme = url.split_once("://").map_or("http", |(s, _)| s);
        return Ok(format!("{scheme}://{rest}"));
    }
    let origin_end = url
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| url[start..].find('/').map(|i| start + i))
        .unwrap_or(url.len());
    let origin = &url[..origin_end];
    if prefix.starts_with('/') {
        return Ok(format!("{origin}{prefix}"));
    }
    let path = &url[origin_end..];
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    Ok(format!("{origin}{dir}{prefix}"))
}

/// The host of a URL, without port or credentials.
fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// The login and password `~/.netrc` gives for `host` (or its `default` entry).
fn netrc_entry(text: &str, host: &str) -> Option<(String, String)> {
    let mut tokens = text.split_whitespace();
    let mut found: Option<(String, String)> = None;
    let mut default: Option<(String, String)> = None;
    // Which entry the login/password tokens belong to: 1 = ours, 2 = default, 0 = other.
    let mut current = 0;
    while let Some(token) = tokens.next() {
        let slot = match current {
            1 => &mut found,
            2 => &mut default,
            _ => &mut None,
        };
        match token {
            "machine" => {
                current = if tokens.next() == Some(host) { 1 } else { 0 };
                if current == 1 {
                    found.get_or_insert_default();
                }
            }
            "default" => {
                current = 2;
                default.get_or_insert_default();
            }
            "login" => {
                if let (Some(entry), Some(v)) = (slot.as_mut(), tokens.next()) {
                    entry.0 = v.to_owned();
                }
            }
            "password" => {
                if let (Some(entry), Some(v)) = (slot.as_mut(), tokens.next()) {
                    entry.1 = v.to_owned();
                }
            }
            "account" => {
                tokens.next();
            }
            _ => {}
        }
    }
    found.or(default).filter(|(login, _)| !login.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(
        url: Option<&str>,
        prefix: Option<&str>,
        env: &[(&str, &str)],
        conf: Option<&str>,
        netrc: Option<&str>,
    ) -> Settings {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        resolve(&Sources {
            url_flag: url,
            prefix_flag: prefix,
            env: &lookup,
            conf,
            netrc,
            tokens: None,
            login: "me",
        })
        .unwrap()
    }

    fn basic(user: &str, password: &str) -> Auth {
        Auth::Basic {
            user: user.into(),
            password: password.into(),
        }
    }

    #[test]
    fn dlrepo_cli_defaults() {
        let s = settings(None, None, &[], None, None);
        assert_eq!(s.base, "http://127.0.0.1:1337/~me/");
        assert_eq!(s.auth, basic("me", ""));
        assert_eq!(s.auth.header().unwrap(), "Basic bWU6");
    }

    #[test]
    fn flags_then_environment_then_file() {
        let conf = "[other]\nurl = http://no/\n[dlrepo-cli]\nurl = http://file:1/\nuser: fu\n\
                    password = fp\nprefix = /x/%(user)s/%%/\n";
        let s = settings(None, None, &[], Some(conf), None);
        assert_eq!(s.base, "http://file:1/x/fu/%/");
        assert_eq!(s.auth, basic("fu", "fp"));
        let env = [
            ("DLREPO_URL", "http://env:2"),
            ("DLREPO_USER", "eu"),
            ("DLREPO_PASSWORD", "ep"),
            ("DLREPO_PREFIX", "/"),
        ];
        let s = settings(None, None, &env, Some(conf), None);
        assert_eq!(
            (s.base.as_str(), s.auth),
            ("http://env:2/", basic("eu", "ep"))
        );
        let s = settings(Some("http://flag/a/b"), Some("c/"), &env, Some(conf), None);
        assert_eq!(s.base, "http://flag/a/c/");
    }

    #[test]
    fn credentials_in_the_url_a_token_or_netrc() {
        let s = settings(Some("http://u%40x:p%3A@h:5/"), Some("/"), &[], None, None);
        assert_eq!(
            (s.base.as_str(), s.auth),
            ("http://h:5/", basic("u@x", "p:"))
        );
        let netrc = "machine other login o password op\nmachine h login n password np\n\
                     default login d password dp";
        let s = settings(Some("http://h:5/"), Some("/"), &[], None, Some(netrc));
        assert_eq!(s.auth, basic("n", "np"));
        let s = settings(Some("http://z/"), Some("/"), &[], None, Some(netrc));
        assert_eq!(s.auth, basic("d", "dp"));
        // A password given explicitly beats netrc; a token beats everything.
        let env = [("DLREPO_PASSWORD", "ep"), ("ARBOR_TOKEN", "t0k")];
        let s = settings(Some("http://h/"), None, &env[..1], None, Some(netrc));
        assert_eq!(s.auth, basic("me", "ep"));
        let s = settings(Some("http://u:p@h/"), None, &env, None, Some(netrc));
        assert_eq!(s.auth, Auth::Bearer("t0k".into()));
        assert_eq!(s.auth.header().unwrap(), "Bearer t0k");
        // No user at all: no Authorization.
        let s = settings(
            Some("http://h/"),
            Some("/"),
            &[("DLREPO_USER", "")],
            None,
            None,
        );
        assert_eq!(s.auth, Auth::None);
    }

    #[test]
    fn login_saves_one_token_per_server() {
        let text = with_token("", "http://a:1/~me/", Some("t1"));
        let text = with_token(&text, "https://b/", Some("t2"));
        let text = with_token(&text, "http://a:1/other/", Some("t3"));
        assert_eq!(text, "https://b t2\nhttp://a:1 t3\n");
        assert_eq!(saved_token(&text, "http://a:1/x/").as_deref(), Some("t3"));
        assert_eq!(saved_token(&text, "http://a:2/"), None);
        assert_eq!(with_token(&text, "https://b/x", None), "http://a:1 t3\n");
        // What a command at https://b/ sends, with the tokens file `text`.
        let auth_with = |text: &str| {
            let env = |_: &str| None;
            let src = Sources {
                url_flag: Some("https://b/"),
                prefix_flag: Some("/"),
                env: &env,
                conf: None,
                netrc: None,
                tokens: Some(text),
                login: "me",
            };
            resolve(&src).unwrap().auth
        };
        let text = with_token(&text, "https://b/x", None);
        assert_eq!(auth_with(&text), basic("me", ""));
        let text = with_token(&text, "https://b/", Some("t2"));
        assert_eq!(auth_with(&text), Auth::Bearer("t2".into()));
    }

    #[test]
    fn bad_urls_are_errors() {
        let env = |_: &str| None;
        for url in ["ftp://h/", "h:1337"] {
            let src = Sources {
                url_flag: Some(url),
                prefix_flag: None,
                env: &env,
                conf: None,
                netrc: None,
                tokens: None,
                login: "me",
            };
            assert!(resolve(&src).is_err(), "{url}");
        }
        assert_eq!(host("http://u:p@[::1]:80/x"), "::1");
        let src = Sources {
            url_flag: Some("ftp://user:hunter2@h/"),
            prefix_flag: None,
            env: &env,
            conf: None,
            netrc: None,
            tokens: None,
            login: "me",
        };
        assert!(!resolve(&src).unwrap_err().contains("hunter2"));
        assert_eq!(urljoin("https://a/x/", "//b/y").unwrap(), "https://b/y");
    }
}
