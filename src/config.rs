//! Every setting arbor reads, parsed once into a typed [`Config`]. Sources are layered:
//! built-in defaults < TOML file (`--config`) < `DLREPO_*` environment (spec/CONFIG.md) <
//! command-line flags. A TOML key is the variable name without `DLREPO_`, lower-cased
//! (`listen_port = 8080`).

use regex::Regex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod testing;
pub use testing::TestHooks;

/// Variables that only `dlrepo-cli` reads; a shared environment may hold them.
const CLIENT_ONLY: &[&str] = &["URL", "PREFIX", "USER", "PASSWORD"];

/// Every server setting, by its name without the `DLREPO_` prefix.
const KEYS: &[&str] = &[
    "ROOT_DIR",
    "LISTEN_ADDRESS",
    "LISTEN_PORT",
    "LOG_LEVEL",
    "LOG_OUTPUT",
    "CHUNK_SIZE",
    "X_SENDFILE_HEADER",
    "ORPHAN_BLOB_LIFETIME",
    "TAG_CLEANUP_PERIOD",
    "USER_QUOTA",
    "POST_PROCESS_CMD",
    "POST_PROCESS_FILTER",
    "INTERNAL_FORMAT_FILTER",
    "PUBLIC_URL",
    "CLI_PATH",
    "LATEST_RELEASES",
    "LATEST_RELEASES_USER",
    "STATIC_DIR",
    "TEMPLATES_DIR",
    "INLINE_ACTIVE_FILTER",
    "AUTH_DISABLED",
    "IGNORE_PASSWORDS",
    "AUTH_FILE",
    "AUTH_HTTP_LOGIN_HEADER",
    "AUTH_HTTP_GROUPS_HEADER",
    "AUTH_REALM",
    "AUTH_CACHE_SIZE",
    "AUTH_CACHE_TTL",
    "ACLS_DIR",
    "LDAP_URL",
    "LDAP_START_TLS",
    "LDAP_USER_FILTER",
    "LDAP_BASE_DN",
    "LDAP_GROUPS_FILTER",
    "LDAP_TIMEOUT",
    "LDAP_MAX_CONNECTIONS",
    "PUBLISH_URL",
    "PUBLISH_AUTH",
    "PUBLISH_FILTER_CMD",
    "PUBLISH_TIMEOUT",
    "PUBLISH_MAX_REQUESTS",
    "HEADER_TIMEOUT",
    "CLIENT_TIMEOUT",
    "MAX_CONNECTIONS",
    "MIN_FREE_SPACE",
    "DRAIN_TIMEOUT",
    "ZERO_COPY",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{source_name}: unknown setting {key} (the closest known one is {closest})")]
    Unknown {
        source_name: String,
        key: String,
        closest: String,
    },
    #[error("{source_name}: invalid value {value:?} for {key}: {why}")]
    Invalid {
        source_name: String,
        key: String,
        value: String,
        why: String,
    },
    #[error("cannot read {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("{path}: {err}")]
    Toml { path: String, err: toml::de::Error },
}

/// The typed settings. Field docs give the variable each comes from.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DLREPO_ROOT_DIR`. arbor's embedded default is `./arbor-data` so that a first run needs
    /// no privileges; dlrepo's `/var/lib/dlrepo` is set by the shipped service file.
    pub root_dir: PathBuf,
    /// `DLREPO_LISTEN_ADDRESS`, `DLREPO_LISTEN_PORT` (0 picks a free port).
    pub listen_address: String,
    pub listen_port: u16,
    /// `DLREPO_LOG_LEVEL`: a `tracing` level name.
    pub log_level: tracing::Level,
    /// `DLREPO_LOG_OUTPUT`: `console` (stderr) or `syslog`; `None` = decide by TTY.
    pub log_output: Option<String>,
    /// `DLREPO_CHUNK_SIZE`: read size for streams and hashing.
    pub chunk_size: usize,
    /// `DLREPO_X_SENDFILE_HEADER`: hand file bodies to the reverse proxy.
    pub x_sendfile_header: Option<String>,
    /// `DLREPO_ORPHAN_BLOB_LIFETIME` seconds.
    pub orphan_blob_lifetime: u64,
    /// `DLREPO_TAG_CLEANUP_PERIOD` seconds, 0 = never.
    pub tag_cleanup_period: u64,
    /// `DLREPO_USER_QUOTA` bytes per user repository.
    pub user_quota: u64,
    /// `DLREPO_POST_PROCESS_CMD` and its `DLREPO_POST_PROCESS_FILTER`.
    pub post_process_cmd: Option<PathBuf>,
    pub post_process_filter: Option<Regex>,
    /// `DLREPO_INTERNAL_FORMAT_FILTER`: formats never published nor part of the job digest.
    pub internal_format_filter: Option<Regex>,
    /// `DLREPO_PUBLIC_URL`: replaces `http://127.0.0.1:1337` in the `/cli` script.
    pub public_url: Option<String>,
    /// `DLREPO_CLI_PATH`: the `dlrepo-cli` script to serve; `None` = search `PATH`.
    pub cli_path: Option<PathBuf>,
    pub latest_releases: bool,
    pub latest_releases_user: bool,
    pub static_dir: Option<PathBuf>,
    pub templates_dir: Option<PathBuf>,
    /// `DLREPO_INLINE_ACTIVE_FILTER` (arbor only): artifact URLs whose HTML, SVG, XML or
    /// JavaScript is shown inline, still sandboxed, instead of downloaded (spec/API.md Q51).
    pub inline_active_filter: Option<Regex>,
    /// `DLREPO_AUTH_DISABLED=1` (or `serve --no-auth`): no checks at all.
    pub auth_disabled: bool,
    /// `DLREPO_IGNORE_PASSWORDS=1`: trust the Basic login without checking the password.
    pub ignore_passwords: bool,
    /// `DLREPO_AUTH_FILE`: `login:password:groups` lines.
    pub auth_file: PathBuf,
    /// `DLREPO_AUTH_HTTP_LOGIN_HEADER` and `DLREPO_AUTH_HTTP_GROUPS_HEADER`: both set means a
    /// trusted proxy authenticates.
    pub login_header: Option<String>,
    pub groups_header: Option<String>,
    /// `DLREPO_AUTH_REALM` for the Basic challenge.
    pub auth_realm: String,
    /// `DLREPO_AUTH_CACHE_SIZE` entries and `DLREPO_AUTH_CACHE_TTL` seconds.
    pub auth_cache_size: usize,
    pub auth_cache_ttl: u64,
    /// `DLREPO_ACLS_DIR`: one file per group.
    pub acls_dir: PathBuf,
    /// `DLREPO_PUBLISH_URL`: comma-separated base URLs of the servers released tags are
    /// pushed to, kept verbatim (no space trimming, as dlrepo; the status quotes it whole).
    /// Empty counts as unset.
    pub publish_url: Option<String>,
    /// `DLREPO_PUBLISH_AUTH`: a file holding `login:password`, read at each publish.
    pub publish_auth: Option<PathBuf>,
    /// `DLREPO_PUBLISH_FILTER_CMD`: run as `CMD {target_url}` in the tag dir; exit 0 = publish.
    pub publish_filter_cmd: Option<PathBuf>,
    /// `DLREPO_PUBLISH_TIMEOUT`: total seconds per publish request.
    pub publish_timeout: u64,
    /// `DLREPO_PUBLISH_MAX_REQUESTS`: publish requests in flight across the process (≥ 1).
    pub publish_max_requests: usize,
    /// `DLREPO_HEADER_TIMEOUT` seconds (arbor only): how long a connection may take to send
    /// a request's headers, and how long it may sit idle between requests.
    pub header_timeout: u64,
    /// `DLREPO_CLIENT_TIMEOUT` seconds (arbor only): how long a client may leave a request
    /// body unsent, or a response unread, before the connection is dropped.
    pub client_timeout: u64,
    /// `DLREPO_MAX_CONNECTIONS` (arbor only): connections served at once; more are answered
    /// `503` with `Retry-After` and closed.
    pub max_connections: usize,
    /// `DLREPO_MIN_FREE_SPACE` bytes (arbor only): below this much free space under the data
    /// root, `/healthz` answers 503 so that load balancers and monitoring notice in time.
    pub min_free_space: u64,
    /// `DLREPO_DRAIN_TIMEOUT` seconds (arbor only): how long a stop waits for requests and
    /// background work (publishes, a cleanup run) before the process exits anyway.
    pub drain_timeout: u64,
    /// `DLREPO_ZERO_COPY` (arbor only): file bodies go from the page cache to the socket
    /// with `sendfile(2)` (`crate::zerocopy`); off, they are read and streamed through hyper.
    pub zero_copy: bool,
    /// The LDAP settings, kept verbatim as known keys: `auth/ldap.rs` parses and checks
    /// them itself, so that a bad one is reported with the LDAP context.
    pub other: BTreeMap<&'static str, String>,
    /// The `[testing]` table of the file: arbor's own test hooks, never for production.
    pub testing: TestHooks,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root_dir: PathBuf::from("arbor-data"),
            listen_address: "127.0.0.1".into(),
            listen_port: 1337,
            log_level: tracing::Level::WARN,
            log_output: None,
            chunk_size: 262_144,
            x_sendfile_header: None,
            orphan_blob_lifetime: 600,
            tag_cleanup_period: 86_400,
            user_quota: 10_737_418_240,
            post_process_cmd: None,
            post_process_filter: None,
            internal_format_filter: None,
            public_url: None,
            cli_path: None,
            latest_releases: true,
            latest_releases_user: true,
            static_dir: None,
            templates_dir: None,
            inline_active_filter: None,
            auth_disabled: false,
            ignore_passwords: false,
            auth_file: PathBuf::from("/etc/dlrepo/auth"),
            login_header: None,
            groups_header: None,
            auth_realm: "dlrepo".into(),
            auth_cache_size: 4096,
            auth_cache_ttl: 600,
            acls_dir: PathBuf::from("/etc/dlrepo/acls"),
            publish_url: None,
            publish_auth: None,
            publish_filter_cmd: None,
            publish_timeout: 300,
            publish_max_requests: 1,
            header_timeout: 30,
            client_timeout: 60,
            max_connections: 1024,
            min_free_space: 64 << 20,
            drain_timeout: 30,
            zero_copy: true,
            other: BTreeMap::new(),
            testing: TestHooks::default(),
        }
    }
}

/// A raw value and where it came from, for error messages.
struct Raw {
    value: String,
    source_name: String,
}

impl Config {
    /// Reads the optional TOML file, then the process environment, then `flags` (setting
    /// name without `DLREPO_`, value), each overriding the one before. Also returns the
    /// warnings to log once logging is set up.
    pub fn load(
        file: Option<&Path>,
        flags: &[(&'static str, String)],
    ) -> Result<(Config, Vec<String>), ConfigError> {
        // The configuration file is read before any storage exists.
        #[allow(clippy::disallowed_methods)]
        let text = match file {
            Some(path) => Some((
                path.display().to_string(),
                std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
                    path: path.display().to_string(),
                    err,
                })?,
            )),
            None => None,
        };
        // `std::env::vars()` panics on a variable that is not UTF-8, even one that is none
        // of arbor's business; only ours must be readable.
        let mut env = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str().filter(|n| n.starts_with("DLREPO_")) else {
                continue;
            };
            let value = value.into_string().map_err(|v| ConfigError::Invalid {
                source_name: "environment".into(),
                key: name.to_owned(),
                value: v.to_string_lossy().into_owned(),
                why: "not UTF-8".into(),
            })?;
            env.push((name.to_owned(), value));
        }
        Config::layered(
            text.as_ref().map(|(p, t)| (p.as_str(), t.as_str())),
            env,
            flags,
        )
    }

    /// Layers `file` (name, TOML text) and `env` (name, value) over the defaults. Tests call
    /// this with a map instead of touching the process environment.
    pub fn from_sources(
        file: Option<(&str, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Config::layered(file, env, &[]).map(|(config, _)| config)
    }

    /// [`Config::from_sources`] with command-line `flags` on top, and the warnings.
    pub fn layered(
        file: Option<(&str, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &[(&'static str, String)],
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let mut raw: BTreeMap<&'static str, Raw> = BTreeMap::new();
        let testing = match file {
            Some((path, text)) => file_layer(path, text, &mut raw)?,
            None => TestHooks::default(),
        };
        let warnings = env_layer(env, &mut raw);
        for (key, value) in flags {
            let known = find_key(key).expect("flags name known settings");
            raw.insert(
                known,
                Raw {
                    value: value.clone(),
                    source_name: "command line".into(),
                },
            );
        }
        let config = Config {
            testing,
            ..Config::from_raw(raw)?
        };
        Ok((config, warnings))
    }

    fn from_raw(raw: BTreeMap<&'static str, Raw>) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        for (key, Raw { value, source_name }) in raw {
            let invalid = |why: String| ConfigError::Invalid {
                source_name: source_name.clone(),
                key: format!("DLREPO_{key}"),
                value: value.clone(),
                why,
            };
            let int = || {
                value
                    .trim()
                    .parse::<u64>()
                    .map_err(|e| invalid(format!("expected a non-negative integer ({e})")))
            };
            // Empty is unset, as for the other optional settings: compiled, it would match
            // every name (every format internal, every page inline).
            let regex = || match value.as_str() {
                "" => Ok(None),
                _ => Regex::new(&format!("^(?:{value})"))
                    .map(Some)
                    .map_err(|e| invalid(e.to_string())),
            };
            let opt = || (!value.is_empty()).then(|| value.clone());
            // A zero limit would refuse every client, or time out every request at once.
            let positive = |n: u64| {
                (n > 0)
                    .then_some(n)
                    .ok_or_else(|| invalid("expected a positive integer".into()))
            };
            match key {
                "ROOT_DIR" => c.root_dir = PathBuf::from(&value),
                "LISTEN_ADDRESS" => c.listen_address = value.clone(),
                "LISTEN_PORT" => {
                    c.listen_port = u16::try_from(int()?)
                        .map_err(|_| invalid("expected a port number".into()))?
                }
                "LOG_LEVEL" => {
                    c.log_level = parse_level(&value).ok_or_else(|| {
                        invalid("expected DEBUG, INFO, WARNING, ERROR or CRITICAL".into())
                    })?
                }
                "LOG_OUTPUT" => match value.as_str() {
                    "console" | "syslog" => c.log_output = Some(value.clone()),
                    _ => return Err(invalid("expected console or syslog".into())),
                },
                "CHUNK_SIZE" => {
                    c.chunk_size = usize::try_from(int()?)
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| invalid("expected a positive integer".into()))?
                }
                "X_SENDFILE_HEADER" => c.x_sendfile_header = opt(),
                "ORPHAN_BLOB_LIFETIME" => c.orphan_blob_lifetime = int()?,
                "TAG_CLEANUP_PERIOD" => c.tag_cleanup_period = int()?,
                "USER_QUOTA" => c.user_quota = int()?,
                "POST_PROCESS_CMD" => c.post_process_cmd = opt().map(PathBuf::from),
                "POST_PROCESS_FILTER" => c.post_process_filter = regex()?,
                "INTERNAL_FORMAT_FILTER" => c.internal_format_filter = regex()?,
                "PUBLIC_URL" => c.public_url = opt(),
                "CLI_PATH" => c.cli_path = opt().map(PathBuf::from),
                "LATEST_RELEASES" => c.latest_releases = value != "0",
                "LATEST_RELEASES_USER" => c.latest_releases_user = value != "0",
                "STATIC_DIR" => c.static_dir = opt().map(PathBuf::from),
                "TEMPLATES_DIR" => c.templates_dir = opt().map(PathBuf::from),
                "INLINE_ACTIVE_FILTER" => c.inline_active_filter = regex()?,
                "HEADER_TIMEOUT" => c.header_timeout = positive(int()?)?,
                "CLIENT_TIMEOUT" => c.client_timeout = positive(int()?)?,
                "MIN_FREE_SPACE" => c.min_free_space = int()?,
                "DRAIN_TIMEOUT" => c.drain_timeout = int()?,
                "ZERO_COPY" => {
                    c.zero_copy = on_off(&value).ok_or_else(|| invalid(ON_OFF.into()))?
                }
                "MAX_CONNECTIONS" => {
                    c.max_connections = usize::try_from(positive(int()?)?)
                        .map_err(|_| invalid("too large".into()))?
                }
                // Only the exact value `1` disables auth, as in dlrepo.
                "AUTH_DISABLED" => c.auth_disabled = value == "1",
                "IGNORE_PASSWORDS" => c.ignore_passwords = value == "1",
                "AUTH_FILE" => c.auth_file = PathBuf::from(&value),
                "AUTH_HTTP_LOGIN_HEADER" => c.login_header = opt(),
                "AUTH_HTTP_GROUPS_HEADER" => c.groups_header = opt(),
                "AUTH_REALM" => c.auth_realm = value.clone(),
                "AUTH_CACHE_SIZE" => {
                    c.auth_cache_size =
                        usize::try_from(int()?).map_err(|_| invalid("too large".into()))?
                }
                "AUTH_CACHE_TTL" => c.auth_cache_ttl = int()?,
                "ACLS_DIR" => c.acls_dir = PathBuf::from(&value),
                "PUBLISH_URL" => c.publish_url = opt(),
                "PUBLISH_AUTH" => c.publish_auth = opt().map(PathBuf::from),
                "PUBLISH_FILTER_CMD" => c.publish_filter_cmd = opt().map(PathBuf::from),
                "PUBLISH_TIMEOUT" => c.publish_timeout = int()?,
                // dlrepo's asyncio.Semaphore(0) would hang every publish: refuse it up front.
                "PUBLISH_MAX_REQUESTS" => {
                    c.publish_max_requests = usize::try_from(int()?)
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| invalid("expected a positive integer".into()))?
                }
                "LDAP_TIMEOUT" | "LDAP_MAX_CONNECTIONS" => {
                    int()?;
                    c.other.insert(key, value.clone());
                }
                _ => {
                    c.other.insert(key, value.clone());
                }
            }
        }
        Ok(c)
    }

    /// Whether the active artifact at `url` (its canonical, decoded URL path, or that of the
    /// directory whose `index.html` it is) may render inline: only where the operator said so.
    pub fn serves_inline(&self, url: &str) -> bool {
        self.inline_active_filter
            .as_ref()
            .is_some_and(|re| re.is_match(url))
    }
}

/// A switch of arbor's own: exactly `1` or `0`, where dlrepo's loose forms (`AUTH_DISABLED`'s
/// "only `1`", `LATEST_RELEASES`'s "all but `0`") are kept for its settings alone.
fn on_off(value: &str) -> Option<bool> {
    match value {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

const ON_OFF: &str = "expected 0 or 1";

/// The settings of the TOML file `path` (its text), into `raw`, and its test hooks.
fn file_layer(
    path: &str,
    text: &str,
    raw: &mut BTreeMap<&'static str, Raw>,
) -> Result<TestHooks, ConfigError> {
    let table: toml::Table = toml::from_str(text).map_err(|err| ConfigError::Toml {
        path: path.to_owned(),
        err,
    })?;
    let mut testing = TestHooks::default();
    for (key, value) in table {
        let value = match (key.as_str(), value) {
            ("testing", toml::Value::Table(t)) => {
                testing = TestHooks::from_table(path, t)?;
                continue;
            }
            (_, value) => value,
        };
        // The file is arbor's own: a typo there is an error, never a silent default.
        let known = find_key(&key.to_ascii_uppercase()).ok_or_else(|| ConfigError::Unknown {
            source_name: path.to_owned(),
            closest: closest_key(&key.to_ascii_uppercase()).to_ascii_lowercase(),
            key: key.clone(),
        })?;
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => if b { "1" } else { "0" }.to_owned(),
            other => {
                return Err(ConfigError::Invalid {
                    source_name: path.to_owned(),
                    key,
                    value: other.to_string(),
                    why: "expected a string, an integer or a boolean".into(),
                });
            }
        };
        let source_name = path.to_owned();
        raw.insert(known, Raw { value, source_name });
    }
    Ok(testing)
}

/// The `DLREPO_*` environment into `raw`; returns the warnings for names it does not know.
fn env_layer(
    env: impl IntoIterator<Item = (String, String)>,
    raw: &mut BTreeMap<&'static str, Raw>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for (name, value) in env {
        let Some(key) = name.strip_prefix("DLREPO_") else {
            continue;
        };
        if CLIENT_ONLY.contains(&key) {
            continue;
        }
        // dlrepo ignores names it does not know, and deployment tools export their own
        // (DLREPO_VERSION, say): refusing to start would break such shells.
        let Some(known) = find_key(key) else {
            warnings.push(format!(
                "ignoring {name}: not a setting arbor knows (the closest one is DLREPO_{})",
                closest_key(key)
            ));
            continue;
        };
        let source_name = "environment".into();
        raw.insert(known, Raw { value, source_name });
    }
    warnings
}

fn find_key(key: &str) -> Option<&'static str> {
    KEYS.iter().copied().find(|k| *k == key)
}

/// The known setting nearest to `key` by edit distance (the first of equals), for messages.
fn closest_key(key: &str) -> &'static str {
    KEYS.iter()
        .copied()
        .min_by_key(|k| edit_distance(key, k))
        .expect("KEYS is not empty")
}

/// Levenshtein distance over bytes (setting names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

fn parse_level(s: &str) -> Option<tracing::Level> {
    Some(match s.to_ascii_uppercase().as_str() {
        "DEBUG" => tracing::Level::DEBUG,
        "INFO" => tracing::Level::INFO,
        "WARNING" | "WARN" => tracing::Level::WARN,
        "ERROR" | "CRITICAL" => tracing::Level::ERROR,
        _ => return None,
    })
}

#[cfg(test)]
mod documented;

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_dlrepo() {
        let c = Config::from_sources(None, env(&[])).unwrap();
        assert_eq!(c.listen_port, 1337);
        assert_eq!(c.chunk_size, 262_144);
        assert_eq!(c.orphan_blob_lifetime, 600);
        assert!(!c.auth_disabled);
    }

    #[test]
    fn environment_overrides_file() {
        let file = "listen_port = 8080\nroot_dir = \"/srv/a\"\nauth_disabled = true\n";
        let c = Config::from_sources(
            Some(("arbor.toml", file)),
            env(&[("DLREPO_LISTEN_PORT", "9090"), ("DLREPO_URL", "http://x")]),
        )
        .unwrap();
        assert_eq!(c.listen_port, 9090);
        assert_eq!(c.root_dir, PathBuf::from("/srv/a"));
        assert!(c.auth_disabled);
    }

    #[test]
    fn auth_settings_are_typed() {
        let c = Config::from_sources(
            None,
            env(&[
                ("DLREPO_AUTH_FILE", "/srv/auth"),
                ("DLREPO_ACLS_DIR", "/srv/acls"),
                ("DLREPO_AUTH_HTTP_LOGIN_HEADER", "X-User"),
                ("DLREPO_AUTH_REALM", "corp"),
                ("DLREPO_AUTH_CACHE_TTL", "5"),
                ("DLREPO_IGNORE_PASSWORDS", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.auth_file, PathBuf::from("/srv/auth"));
        assert_eq!(c.acls_dir, PathBuf::from("/srv/acls"));
        assert_eq!(c.login_header.as_deref(), Some("X-User"));
        assert_eq!(c.groups_header, None);
        assert_eq!((c.auth_realm.as_str(), c.auth_cache_ttl), ("corp", 5));
        assert!(c.ignore_passwords);
        let e = Config::from_sources(None, env(&[("DLREPO_AUTH_CACHE_SIZE", "-1")])).unwrap_err();
        assert!(e.to_string().contains("DLREPO_AUTH_CACHE_SIZE"), "{e}");
    }

    #[test]
    fn publish_settings_are_typed() {
        let c = Config::from_sources(None, env(&[])).unwrap();
        assert_eq!((c.publish_timeout, c.publish_max_requests), (300, 1));
        assert_eq!(c.publish_url, None);
        let c = Config::from_sources(
            None,
            env(&[
                ("DLREPO_PUBLISH_URL", "http://a, http://b"),
                ("DLREPO_PUBLISH_AUTH", "/etc/dlrepo/publish"),
                ("DLREPO_PUBLISH_TIMEOUT", "5"),
                ("DLREPO_PUBLISH_MAX_REQUESTS", "4"),
            ]),
        )
        .unwrap();
        assert_eq!(c.publish_url.as_deref(), Some("http://a, http://b"));
        assert_eq!(c.publish_auth, Some(PathBuf::from("/etc/dlrepo/publish")));
        assert_eq!((c.publish_timeout, c.publish_max_requests), (5, 4));
        let e =
            Config::from_sources(None, env(&[("DLREPO_PUBLISH_MAX_REQUESTS", "0")])).unwrap_err();
        assert!(e.to_string().contains("DLREPO_PUBLISH_MAX_REQUESTS"), "{e}");
    }

    #[test]
    fn drain_and_zero_copy_settings() {
        let c = Config::from_sources(None, env(&[])).unwrap();
        assert_eq!((c.drain_timeout, c.zero_copy), (30, true));
        let set = [("DLREPO_DRAIN_TIMEOUT", "0"), ("DLREPO_ZERO_COPY", "0")];
        let c = Config::from_sources(None, env(&set)).unwrap();
        assert_eq!((c.drain_timeout, c.zero_copy), (0, false));
        for bad in ["yes", "true", ""] {
            let e = Config::from_sources(None, env(&[("DLREPO_ZERO_COPY", bad)])).unwrap_err();
            assert!(e.to_string().contains("expected 0 or 1"), "{e}");
        }
    }

    #[test]
    fn inline_serving_is_opt_in_by_url_prefix() {
        let c = Config::from_sources(None, env(&[])).unwrap();
        assert!(!c.serves_inline("/branches/docs/t/j/html/index.html"));
        let c = Config::from_sources(
            Some((
                "a.toml",
                "inline_active_filter = '/branches/docs/|/~[^/]+/branches/docs/'",
            )),
            env(&[]),
        )
        .unwrap();
        assert!(c.serves_inline("/branches/docs/t/j/html/index.html"));
        assert!(c.serves_inline("/~bob/branches/docs/t/j/html/"));
        // Anchored at the start, as the other filters.
        assert!(!c.serves_inline("/branches/main/t/j/branches/docs/x.html"));
        assert!(!c.serves_inline("/branches/docsx/t/j/f/x.html"));
        let e =
            Config::from_sources(None, env(&[("DLREPO_INLINE_ACTIVE_FILTER", "(")])).unwrap_err();
        assert!(e.to_string().contains("DLREPO_INLINE_ACTIVE_FILTER"), "{e}");
        // Empty is unset, as in dlrepo (`if FILTER:`), not a pattern matching everything.
        let c = Config::from_sources(
            None,
            env(&[
                ("DLREPO_INLINE_ACTIVE_FILTER", ""),
                ("DLREPO_INTERNAL_FORMAT_FILTER", ""),
                ("DLREPO_POST_PROCESS_FILTER", ""),
            ]),
        )
        .unwrap();
        assert!(!c.serves_inline("/branches/docs/t/j/html/index.html"));
        assert!(c.internal_format_filter.is_none() && c.post_process_filter.is_none());
    }

    #[test]
    fn errors_name_the_setting() {
        let e = Config::from_sources(None, env(&[("DLREPO_LISTEN_PORT", "x")])).unwrap_err();
        assert!(e.to_string().contains("DLREPO_LISTEN_PORT"), "{e}");
        let e = Config::from_sources(Some(("a.toml", "bogus = 1")), env(&[])).unwrap_err();
        assert!(
            e.to_string().contains("a.toml: unknown setting bogus"),
            "{e}"
        );
        let e = Config::from_sources(Some(("a.toml", "listen_prot = 1")), env(&[])).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("(the closest known one is listen_port)"),
            "{e}"
        );
        let e =
            Config::from_sources(None, env(&[("DLREPO_POST_PROCESS_FILTER", "(")])).unwrap_err();
        assert!(e.to_string().contains("DLREPO_POST_PROCESS_FILTER"), "{e}");
    }

    #[test]
    fn unknown_variables_warn_with_the_closest_setting() {
        let (c, warnings) = Config::layered(
            None,
            env(&[
                ("DLREPO_VERSION", "1.2.3"),
                ("DLREPO_LISTEN_PROT", "8080"),
                ("DLREPO_LISTEN_PORT", "9090"),
                ("DLREPO_USER", "client-only, not warned about"),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(c.listen_port, 9090);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with("ignoring DLREPO_VERSION: "),
            "{warnings:?}"
        );
        assert!(
            warnings[1].ends_with("(the closest one is DLREPO_LISTEN_PORT)"),
            "{warnings:?}"
        );
    }

    #[test]
    fn flags_override_the_environment_which_overrides_the_file() {
        let file = "listen_port = 8080\nroot_dir = \"/srv/file\"\nlog_level = \"ERROR\"\n";
        let env = env(&[
            ("DLREPO_ROOT_DIR", "/srv/env"),
            ("DLREPO_LOG_LEVEL", "INFO"),
        ]);
        let flags = [("LOG_LEVEL", "DEBUG".to_owned())];
        let (c, _) = Config::layered(Some(("a.toml", file)), env, &flags).unwrap();
        assert_eq!(c.listen_port, 8080);
        assert_eq!(c.root_dir, PathBuf::from("/srv/env"));
        assert_eq!(c.log_level, tracing::Level::DEBUG);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", "ABC"), 3);
        assert_eq!(edit_distance("ROOT_DIR", "ROOT_DIR"), 0);
        assert_eq!(edit_distance("ROOTDIR", "ROOT_DIR"), 1);
        assert_eq!(edit_distance("LISTEN_PROT", "LISTEN_PORT"), 2);
        assert_eq!(closest_key("ACL_DIR"), "ACLS_DIR");
        assert_eq!(closest_key("AUTH_FLE"), "AUTH_FILE");
    }
}
