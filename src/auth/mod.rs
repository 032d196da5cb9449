//! Who is asking and what they may do (spec/AUTH.md): the modes (disabled, trusted proxy
//! headers, Basic against the auth file or an LDAP directory), API tokens, and the ACL
//! check. Decisions over loaded data; reading the auth file, ACL directory and token files
//! happens in `load`, and the only network I/O is the LDAP lookup behind [`Authenticator`].

pub mod acl;
pub mod ldap;
pub mod tokens;
pub mod users;

use crate::config::Config;
use crate::storage::TokenFiles;
use acl::{Acls, Want};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokens::{TokenScope, TokenStore};
use users::Users;

/// Where logins and passwords are checked: the auth file ([`Users`]) or an LDAP directory
/// ([`ldap::Directory`]). Blocking: call it off the async workers (`spawn_blocking`).
pub trait Authenticator: Send + Sync {
    /// The groups of `login` when `password` is right (or not checked); empty = refused.
    fn authenticate(
        &self,
        login: &str,
        password: &str,
        ignore_passwords: bool,
    ) -> Result<Vec<String>, Unavailable>;
}

impl Authenticator for Users {
    fn authenticate(
        &self,
        login: &str,
        password: &str,
        ignore_passwords: bool,
    ) -> Result<Vec<String>, Unavailable> {
        Ok(Users::authenticate(self, login, password, ignore_passwords))
    }
}

/// The credentials could not be checked because the LDAP server failed (unreachable, timed
/// out, refused the search, several entries for one login). Not a 401: the credentials may
/// be right, so the client should retry rather than ask for another password. The cause
/// is logged where it happened.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the LDAP server could not check the credentials")]
pub struct Unavailable;

/// Why access control could not be (re)loaded; a reload keeps the previous rules.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Acl(#[from] acl::AclError),
    #[error("{0}")]
    Ldap(String),
}

/// The group of unauthenticated requests.
pub const ANONYMOUS: &str = "ANONYMOUS";

/// Limits a token puts on its user's rights: tokens can only narrow them.
#[derive(Debug, Clone)]
pub struct TokenLimits {
    pub read_only: bool,
    pub prefix: Option<String>,
}

/// The caller of one request.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub login: Option<String>,
    pub groups: Vec<String>,
    pub token: Option<TokenLimits>,
}

/// What the request carries that may identify the caller.
#[derive(Default)]
pub struct Credentials<'a> {
    pub authorization: Option<&'a str>,
    pub login_header: Option<&'a str>,
    pub groups_header: Option<&'a str>,
    /// `?token=` for clients that cannot set headers.
    pub query_token: Option<&'a str>,
}

struct CacheEntry {
    at: Instant,
    login: String,
    groups: Vec<String>,
}

/// Everything access control needs, loaded at start and on each reload (SIGHUP, or a change
/// in the ACL directory or auth file). A reload builds a new `Auth` and swaps it whole.
pub struct Auth {
    disabled: bool,
    header_mode: bool,
    ignore_passwords: bool,
    users: Box<dyn Authenticator>,
    acls: Acls,
    tokens: TokenStore,
    realm: String,
    cache: Mutex<HashMap<[u8; 32], CacheEntry>>,
    cache_size: usize,
    cache_ttl: Duration,
    /// Per-process secret mixed into cache keys, so the cache never holds raw credentials.
    seed: [u8; 32],
}

impl Auth {
    /// Reads the auth file (or the LDAP settings) and the ACL directory named by `config`.
    /// The mode follows spec/AUTH.md §1: header mode, else LDAP when `DLREPO_LDAP_URL` is
    /// set (the auth file is then ignored), else the auth file. A missing auth file only
    /// logs (everyone is then anonymous); a broken ACL file or LDAP setting is an error, so
    /// that start-up stops and a reload keeps the previous rules.
    pub fn load(config: &Config, token_files: TokenFiles) -> Result<Auth, LoadError> {
        let header_mode = config.login_header.is_some() && config.groups_header.is_some();
        let (users, acls): (Box<dyn Authenticator>, Acls) = if config.auth_disabled {
            (Box::new(Users::empty()), Acls::empty())
        } else {
            let users: Box<dyn Authenticator> = if header_mode {
                Box::new(Users::empty())
            } else if let Some(directory) =
                ldap::Directory::from_config(config).map_err(LoadError::Ldap)?
            {
                tracing::info!(url = directory.url(), "logins are checked against LDAP");
                Box::new(directory)
            } else {
                Box::new(Users::load(&config.auth_file).unwrap_or_else(|e| {
                    tracing::error!(file = %config.auth_file.display(), error = %e, "cannot read the auth file");
                    Users::empty()
                }))
            };
            (users, Acls::load_dir(&config.acls_dir)?)
        };
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the OS random source is available");
        Ok(Auth {
            disabled: config.auth_disabled,
            header_mode,
            ignore_passwords: config.ignore_passwords,
            users,
            acls,
            tokens: TokenStore::new(token_files),
            realm: config.auth_realm.clone(),
            cache: Mutex::new(HashMap::new()),
            cache_size: config.auth_cache_size,
            cache_ttl: Duration::from_secs(config.auth_cache_ttl),
            seed,
        })
    }

    /// No checks at all (`DLREPO_AUTH_DISABLED=1`).
    pub fn disabled() -> Auth {
        let config = Config {
            auth_disabled: true,
            ..Config::default()
        };
        // Disabled auth never looks a token up, so where their files would be is moot.
        let tokens = TokenFiles::in_root(std::path::Path::new(""));
        Auth::load(&config, tokens).expect("an empty ACL set always loads")
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Identifies the caller (spec/AUTH.md §2 steps 4–5, §3). `None`: the credentials are
    /// wrong, or could not be checked, and the request is refused. Blocking (password
    /// hashes, token files, LDAP): call it from `spawn_blocking`.
    pub fn identify(&self, creds: &Credentials<'_>, now_unix: u64) -> Option<Identity> {
        self.try_identify(creds, now_unix).ok().flatten()
    }

    /// [`Auth::identify`] telling a refusal (`Ok(None)`: 401) from credentials that could
    /// not be checked (`Err`: the LDAP server failed, 503).
    pub fn try_identify(
        &self,
        creds: &Credentials<'_>,
        now_unix: u64,
    ) -> Result<Option<Identity>, Unavailable> {
        if self.header_mode {
            let Some(login) = creds.login_header.filter(|l| !l.is_empty()) else {
                return Ok(Some(anonymous()));
            };
            // spec/API.md Q34: items are trimmed.
            let groups = creds
                .groups_header
                .unwrap_or_default()
                .split(',')
                .map(|g| g.trim().to_owned())
                .filter(|g| !g.is_empty())
                .collect();
            return Ok(Some(Identity {
                login: Some(login.to_owned()),
                groups,
                token: None,
            }));
        }
        let header = creds.authorization.unwrap_or_default().trim();
        if let Some(token) = bearer(header).or(creds.query_token) {
            return self.token_identity(token, now_unix);
        }
        if header.is_empty() {
            return Ok(Some(anonymous()));
        }
        let key = self.cache_key(header.as_bytes());
        if let Some(id) = self.cached(&key) {
            return Ok(Some(id));
        }
        // Undecodable credentials or another scheme: anonymous, not refused (AUTH.md §3).
        let Some((login, password)) = users::decode_basic(header) else {
            return Ok(Some(anonymous()));
        };
        if password.starts_with("arbor_")
            && let Some(id) = self.token_identity(&password, now_unix)?
        {
            return Ok(Some(id));
        }
        let groups = self
            .users
            .authenticate(&login, &password, self.ignore_passwords)?;
        if groups.is_empty() {
            tracing::info!(%login, "user does not exist, has a wrong password or no group");
            return Ok(None);
        }
        self.remember(key, &login, &groups);
        Ok(Some(Identity {
            login: Some(login),
            groups,
            token: None,
        }))
    }

    fn token_identity(&self, token: &str, now_unix: u64) -> Result<Option<Identity>, Unavailable> {
        let Some(info) = self.tokens.verify(token, now_unix) else {
            return Ok(None);
        };
        // The token's user keeps the groups the auth file or directory gives them, nothing
        // more. Cached like Basic logins, so that LDAP is not asked on every request. The
        // NUL keeps these keys apart from headers' (a header value cannot hold one).
        let key = self.cache_key(format!("\0token user\0{}", info.user).as_bytes());
        let groups = match self.cached(&key) {
            Some(id) => id.groups,
            None => {
                let groups = self.users.authenticate(&info.user, "", true)?;
                if !groups.is_empty() {
                    self.remember(key, &info.user, &groups);
                }
                groups
            }
        };
        Ok(Some(Identity {
            login: Some(info.user),
            groups,
            token: Some(TokenLimits {
                read_only: matches!(info.scope, TokenScope::Read),
                prefix: info.prefix,
            }),
        }))
    }

    /// Whether `id` may do `want` on the canonical `path` (spec/AUTH.md §2 steps 6–8).
    pub fn allows(&self, id: &Identity, path: &str, want: Want) -> bool {
        if self.disabled {
            return true;
        }
        let writes = want.add || want.delete || want.update;
        if id.login.is_none() && (writes || path == "/v2/") {
            return false;
        }
        if let Some(limits) = &id.token {
            if limits.read_only && writes {
                return false;
            }
            if let Some(prefix) = &limits.prefix
                && !path.starts_with(prefix.as_str())
            {
                return false;
            }
        }
        // Paths are canonical (user names lower-cased), so `$user` must be too.
        let login = id.login.as_deref().map(str::to_lowercase);
        self.acls.grants(&id.groups, login.as_deref(), path, want)
    }

    /// Whether `id` might read some path starting with `prefix` ([`Auth::allows`] for a
    /// read, asked of a whole subtree at once): `false` only when it surely reads none.
    pub fn may_read_under(&self, id: &Identity, prefix: &str) -> bool {
        if self.disabled {
            return true;
        }
        if let Some(p) = id.token.as_ref().and_then(|l| l.prefix.as_deref())
            && !prefix.starts_with(p)
            && !p.starts_with(prefix)
        {
            return false;
        }
        let login = id.login.as_deref().map(str::to_lowercase);
        self.acls
            .may_read_under(&id.groups, login.as_deref(), prefix)
    }

    fn cache_key(&self, header: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.seed);
        h.update(header);
        h.finalize().into()
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Identity> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = cache.get(key)?;
        (entry.at.elapsed() < self.cache_ttl).then(|| Identity {
            login: Some(entry.login.clone()),
            groups: entry.groups.clone(),
            token: None,
        })
    }

    fn remember(&self, key: [u8; 32], login: &str, groups: &[String]) {
        if self.cache_size == 0 {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= self.cache_size {
            // Bounded by size: drop expired entries, and everything if that is not enough.
            let ttl = self.cache_ttl;
            cache.retain(|_, e| e.at.elapsed() < ttl);
            if cache.len() >= self.cache_size {
                cache.clear();
            }
        }
        cache.insert(
            key,
            CacheEntry {
                at: Instant::now(),
                login: login.to_owned(),
                groups: groups.to_vec(),
            },
        );
    }
}

/// The caller without credentials.
pub fn anonymous() -> Identity {
    Identity {
        login: None,
        groups: vec![ANONYMOUS.to_owned()],
        token: None,
    }
}

fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}
