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
    "SIGNING_KEY",
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
    /// `DLREPO_ZERO_COPY` (arbor only): to which clients file bodies go from the page cache
    /// to the socket with `sendfile(2)` (zerocopy.rs); to the others they are read
    /// and streamed through hyper.
    pub zero_copy: ZeroCopy,
    /// `DLREPO_SIGNING_KEY` (arbor only): an armored OpenPGP secret key, without passphrase,
    /// that signs package indexes; its public half is served at `/pubkey`.
    pub signing_key: Option<PathBuf>,
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
            zero_copy: ZeroCopy::Remote,
            signing_key: None,
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
        for (key, raw) in raw {
            c.set(key, &Setting { key, raw })?;
        }
        Ok(c)
    }

    /// Sets `key` from `v`. One arm per setting: a flat table reads better than the same
    /// table cut in pieces, whatever its length.
    fn set(&mut self, key: &'static str, v: &Setting) -> Result<(), ConfigError> {
        let c = self;
        match key {
            "ROOT_DIR" => c.root_dir = PathBuf::from(&v.raw.value),
            "LISTEN_ADDRESS" => c.listen_address = v.raw.value.clone(),
            "LISTEN_PORT" => {
                c.listen_port = u16::try_from(v.int()?)
                    .map_err(|_| v.invalid("expected a port number".into()))?
            }
            "LOG_LEVEL" => {
                c.log_level = parse_level(&v.raw.value).ok_or_else(|| {
                    v.invalid("expected DEBUG, INFO, WARNING, ERROR or CRITICAL".into())
                })?
            }
            "LOG_OUTPUT" => match v.raw.value.as_str() {
                "console" | "syslog" => c.log_output = Some(v.raw.value.clone()),
                _ => return Err(v.invalid("expected console or syslog".into())),
            },
            "CHUNK_SIZE" => {
                c.chunk_size = usize::try_from(v.int()?)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| v.invalid("expected a positive integer".into()))?
            }
            "X_SENDFILE_HEADER" => c.x_sendfile_header = v.opt(),
            "ORPHAN_BLOB_LIFETIME" => c.orphan_blob_lifetime = v.int()?,
            "TAG_CLEANUP_PERIOD" => c.tag_cleanup_period = v.int()?,
            "USER_QUOTA" => c.user_quota = v.int()?,
            "POST_PROCESS_CMD" => c.post_process_cmd = v.opt().map(PathBuf::from),
            "POST_PROCESS_FILTER" => c.post_process_filter = v.regex()?,
            "INTERNAL_FORMAT_FILTER" => c.internal_format_filter = v.regex()?,
            "PUBLIC_URL" => c.public_url = v.opt(),
            "CLI_PATH" => c.cli_path = v.opt().map(PathBuf::from),
            "SIGNING_KEY" => c.signing_key = v.opt().map(PathBuf::from),
            "LATEST_RELEASES" => c.latest_releases = v.raw.value != "0",
            "LATEST_RELEASES_USER" => c.latest_releases_user = v.raw.value != "0",
            "STATIC_DIR" => c.static_dir = v.opt().map(PathBuf::from),
            "TEMPLATES_DIR" => c.templates_dir = v.opt().map(PathBuf::from),
            "INLINE_ACTIVE_FILTER" => c.inline_active_filter = v.regex()?,
            "HEADER_TIMEOUT" => c.header_timeout = v.positive(v.int()?)?,
            "CLIENT_TIMEOUT" => c.client_timeout = v.positive(v.int()?)?,
            "MIN_FREE_SPACE" => c.min_free_space = v.int()?,
            "DRAIN_TIMEOUT" => c.drain_timeout = v.int()?,
            "ZERO_COPY" => {
                c.zero_copy = match v.raw.value.as_str() {
                    "0" => ZeroCopy::Off,
                    "1" => ZeroCopy::Remote,
                    "always" => ZeroCopy::Always,
                    _ => return Err(v.invalid("expected 0, 1 or always".into())),
                }
            }
            "MAX_CONNECTIONS" => {
                c.max_connections = usize::try_from(v.positive(v.int()?)?)
                    .map_err(|_| v.invalid("too large".into()))?
            }
            // Only the exact value `1` disables auth, as in dlrepo.
            "AUTH_DISABLED" => c.auth_disabled = v.raw.value == "1",
            "IGNORE_PASSWORDS" => c.ignore_passwords = v.raw.value == "1",
            "AUTH_FILE" => c.auth_file = PathBuf::from(&v.raw.value),
            "AUTH_HTTP_LOGIN_HEADER" => c.login_header = v.opt(),
            "AUTH_HTTP_GROUPS_HEADER" => c.groups_header = v.opt(),
            "AUTH_REALM" => c.auth_realm = v.raw.value.clone(),
            "AUTH_CACHE_SIZE" => {
                c.auth_cache_size =
                    usize::try_from(v.int()?).map_err(|_| v.invalid("too large".into()))?
            }
            "AUTH_CACHE_TTL" => c.auth_cache_ttl = v.int()?,
            "ACLS_DIR" => c.acls_dir = PathBuf::from(&v.raw.value),
            "PUBLISH_URL" => c.publish_url = v.opt(),
            "PUBLISH_AUTH" => c.publish_auth = v.opt().map(PathBuf::from),
            "PUBLISH_FILTER_CMD" => c.publish_filter_cmd = v.opt().map(PathBuf::from),
            "PUBLISH_TIMEOUT" => c.publish_timeout = v.int()?,
            // dlrepo's asyncio.Semaphore(0) would hang every publish: refuse it up front.
            "PUBLISH_MAX_REQUESTS" => {
                c.publish_max_requests = usize::try_from(v.int()?)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| v.invalid("expected a positive integer".into()))?
            }
            "LDAP_TIMEOUT" | "LDAP_MAX_CONNECTIONS" => {
                v.int()?;
                c.other.insert(key, v.raw.value.clone());
            }
            _ => {
                c.other.insert(key, v.raw.value.clone());
            }
        }
        Ok(())
    }

    /// Whether the active artifact at `url` (its canonical, decoded URL path, or that of the
    /// directory whose `index.html` it is) may render inline: only where the operator said so.
    pub fn serves_inline(&self, url: &str) -> bool {
        self.inline_active_filter
            .as_ref()
            .is_some_and(|re| re.is_match(url))
    }
}

/// One setting's value and where it came from, with the parsers its arm may use.
struct Setting {
    key: &'static str,
    raw: Raw,
}

impl Setting {
    fn invalid(&self, why: String) -> ConfigError {
        ConfigError::Invalid {
            source_name: self.raw.source_name.clone(),
            key: format!("DLREPO_{}", self.key),
            value: self.raw.value.clone(),
            why,
        }
    }

    fn int(&self) -> Result<u64, ConfigError> {
        self.raw
            .value
            .trim()
            .parse::<u64>()
            .map_err(|e| self.invalid(format!("expected a non-negative integer ({e})")))
    }

    /// Empty is unset, as for the other optional settings: compiled, it would match every
    /// name (every format internal, every page inline).
    fn regex(&self) -> Result<Option<Regex>, ConfigError> {
        match self.raw.value.as_str() {
            "" => Ok(None),
            value => Regex::new(&format!("^(?:{value})"))
                .map(Some)
                .map_err(|e| self.invalid(e.to_string())),
        }
    }

    fn opt(&self) -> Option<String> {
        (!self.raw.value.is_empty()).then(|| self.raw.value.clone())
    }

    /// A zero limit would refuse every client, or time out every request at once.
    fn positive(&self, n: u64) -> Result<u64, ConfigError> {
        (n > 0)
            .then_some(n)
            .ok_or_else(|| self.invalid("expected a positive integer".into()))
    }
}

/// To which clients file bodies are sent with `sendfile(2)` (`DLREPO_ZERO_COPY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroCopy {
    /// `0`: to none; every body is read and streamed in chunks (`BlobReader::into_stream`).
    Off,
    /// `1`, the default: to clients on other hosts. A client on this host (a loopback
    /// address, or a proxy on the Unix socket) receives on the same cores, and its kernel
    /// takes in `sendfile`'s packets, made of the file's 4 KiB pages, at more cost than
    /// copied ones: a 1 GiB `curl` over loopback ran at 0.7-0.8x nginx's rate with
    /// `sendfile` and at 1.0x with copies (bench/README.md, "Downloads to this host").
    Remote,
    /// `always`: to every client, this host's too (the tests use it to cover `sendfile`
    /// over loopback).
    Always,
}

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
mod tests;
