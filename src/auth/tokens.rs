//! API tokens for CI (beyond dlrepo): `arbor_{id}_{secret}`, shown once; only the sha256 of the
//! secret is stored, one JSON file per token (`storage::TokenFiles` keeps the files).

use crate::storage::TokenFiles;
use std::fmt;
use std::io;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::{info, warn};

const TOKEN_PREFIX: &str = "arbor_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// What a token may do: `Read` never grants PUT/PATCH/POST/DELETE, whatever the user's ACLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    Read,
    Write,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Write => "write",
        }
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenScope {
    type Err = String;

    fn from_str(s: &str) -> Result<TokenScope, String> {
        match s {
            "read" => Ok(TokenScope::Read),
            "write" => Ok(TokenScope::Write),
            other => Err(format!(
                "unknown token scope {other:?} (expected read or write)"
            )),
        }
    }
}

/// A token as stored, minus its hash: safe to list and log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// 16 lowercase hex chars; also the file name.
    pub id: String,
    /// The login the token acts as.
    pub user: String,
    pub scope: TokenScope,
    /// When set, the token only works under this path (starts and ends with `/`).
    pub prefix: Option<String>,
    /// Unix seconds; the token is valid while `now < expires`.
    pub expires: Option<u64>,
    /// Unix seconds.
    pub created: u64,
}

/// On-disk form: `TokenInfo` plus `hash` = sha256 hex of the secret's hex text.
#[derive(Serialize, Deserialize)]
struct Record {
    id: String,
    user: String,
    scope: TokenScope,
    prefix: Option<String>,
    expires: Option<u64>,
    created: u64,
    hash: String,
}

impl Record {
    fn into_info(self) -> TokenInfo {
        TokenInfo {
            id: self.id,
            user: self.user,
            scope: self.scope,
            prefix: self.prefix,
            expires: self.expires,
            created: self.created,
        }
    }
}

/// The tokens, `{id}.json` per token.
#[derive(Debug, Clone)]
pub struct TokenStore {
    files: TokenFiles,
}

impl TokenStore {
    pub fn new(files: TokenFiles) -> TokenStore {
        TokenStore { files }
    }

    /// Creates a token and returns it in full (the only time the secret exists outside the
    /// caller) with its info. `prefix` must start and end with `/` (else `InvalidInput`).
    pub fn create(
        &self,
        user: &str,
        scope: TokenScope,
        prefix: Option<&str>,
        expires_in: Option<Duration>,
    ) -> io::Result<(String, TokenInfo)> {
        if user.is_empty() {
            return Err(invalid("token user must not be empty"));
        }
        if let Some(prefix) = prefix
            && !valid_prefix(prefix)
        {
            return Err(invalid("token prefix must start and end with '/'"));
        }
        let created = unix_now()?;
        // 64 random bits make a clash practically impossible, but a clash would silently replace
        // (and so revoke) another token: pick again rather than overwrite.
        let mut id = random_hex(ID_BYTES)?;
        while self.files.exists(&file_name(&id))? {
            id = random_hex(ID_BYTES)?;
        }
        let secret = random_hex(SECRET_BYTES)?;
        let record = Record {
            id: id.clone(),
            user: user.to_owned(),
            scope,
            prefix: prefix.map(str::to_owned),
            expires: expires_in.map(|d| created.saturating_add(d.as_secs())),
            created,
            hash: hex::encode(Sha256::digest(secret.as_bytes())),
        };
        let json = serde_json::to_vec_pretty(&record).map_err(io::Error::other)?;
        self.files.write(&file_name(&id), &json)?;
        let info = record.into_info();
        info!(id = %info.id, user = %info.user, scope = %info.scope, "api token created");
        Ok((format!("{TOKEN_PREFIX}{id}_{secret}"), info))
    }

    /// Every readable token, sorted by creation time then id; a missing directory is an empty
    /// list. Unreadable or corrupt files are skipped with a warning rather than failing the list.
    pub fn list(&self) -> io::Result<Vec<TokenInfo>> {
        let mut tokens = Vec::new();
        for name in self.files.names()? {
            // Strangers fail this test.
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            if !valid_id(id) {
                continue;
            }
            if let Some(record) = self.read(id) {
                tokens.push(record.into_info());
            }
        }
        tokens.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        Ok(tokens)
    }

    /// Deletes a token; `false` when no such token (including ids that cannot be one).
    pub fn revoke(&self, id: &str) -> io::Result<bool> {
        if !valid_id(id) {
            return Ok(false);
        }
        let removed = self.files.remove(&file_name(id))?;
        if removed {
            info!(id, "api token revoked");
        }
        Ok(removed)
    }

    /// The token's info when it is well-formed, known, unexpired (now < expires) and its secret
    /// matches (constant-time). None otherwise.
    pub fn verify(&self, token: &str, now_unix: u64) -> Option<TokenInfo> {
        let (id, secret) = split_token(token)?;
        let record = self.read(id)?;
        let Ok(stored) = <[u8; 32]>::try_from(hex::decode(&record.hash).unwrap_or_default()) else {
            warn!(id, "api token file has a malformed hash; ignoring it");
            return None;
        };
        let given: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        if !bool::from(given.ct_eq(&stored)) {
            return None;
        }
        if record.expires.is_some_and(|expires| now_unix >= expires) {
            return None;
        }
        Some(record.into_info())
    }

    /// Reads `{id}.json`; `None` when absent or invalid (the latter logged: someone edited it).
    fn read(&self, id: &str) -> Option<Record> {
        if !valid_id(id) {
            return None;
        }
        let bytes = match self.files.read(&file_name(id)) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(e) => {
                warn!(id, error = %e, "cannot read api token file");
                return None;
            }
        };
        let record: Record = match serde_json::from_slice(&bytes) {
            Ok(record) => record,
            Err(e) => {
                warn!(id, error = %e, "corrupt api token file; ignoring it");
                return None;
            }
        };
        // The file name is what was validated; a mismatching or odd body must not widen access.
        if record.id != id || record.prefix.as_deref().is_some_and(|p| !valid_prefix(p)) {
            warn!(
                id,
                "api token file does not match its name or has a bad prefix; ignoring it"
            );
            return None;
        }
        Some(record)
    }
}

/// Parses durations like "30d", "12h", "15m", "3600s", "3600" (seconds) for `--expires`.
/// Zero, signs, spaces, other units and overflow are rejected.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (digits, unit) = match s.as_bytes().last()? {
        b'd' => (&s[..s.len() - 1], 86_400),
        b'h' => (&s[..s.len() - 1], 3_600),
        b'm' => (&s[..s.len() - 1], 60),
        b's' => (&s[..s.len() - 1], 1),
        _ => (s, 1),
    };
    // `u64::from_str` would accept a leading '+'.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = digits.parse::<u64>().ok()?.checked_mul(unit)?;
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// `arbor_{16 hex}_{64 hex}` → (id, secret). Checked before any path is built, so a crafted
/// token (`arbor_../../x_...`) never reaches the filesystem.
fn split_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.strip_prefix(TOKEN_PREFIX)?.split_once('_')?;
    (valid_id(id) && is_lower_hex(secret, SECRET_BYTES * 2)).then_some((id, secret))
}

fn valid_id(id: &str) -> bool {
    is_lower_hex(id, ID_BYTES * 2)
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn valid_prefix(prefix: &str) -> bool {
    prefix.starts_with('/') && prefix.ends_with('/')
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

fn unix_now() -> io::Result<u64> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| io::Error::other("system clock is before 1970"))
}

fn random_hex(len: usize) -> io::Result<String> {
    let mut buf = vec![0u8; len];
    getrandom::fill(&mut buf).map_err(|e| io::Error::other(format!("no randomness: {e}")))?;
    Ok(hex::encode(buf))
}

/// The file of token `id`, which callers validated with [`valid_id`].
fn file_name(id: &str) -> String {
    debug_assert!(valid_id(id), "ids are validated before naming files");
    format!("{id}.json")
}

#[cfg(test)]
// The tests look at the files behind the store.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::Path;

    fn store() -> (tempfile::TempDir, TokenStore) {
        let tmp = tempfile::tempdir().unwrap();
        let store = TokenStore::new(TokenFiles::in_root(tmp.path()));
        (tmp, store)
    }

    fn now() -> u64 {
        unix_now().unwrap()
    }

    #[test]
    fn create_then_verify() {
        let (_tmp, store) = store();
        let (token, info) = store
            .create("alice", TokenScope::Write, Some("/branches/x/"), None)
            .unwrap();
        let (id, secret) = split_token(&token).unwrap();
        assert_eq!(id, info.id);
        assert_eq!(secret.len(), 64);
        assert_eq!(info.user, "alice");
        assert_eq!(info.scope, TokenScope::Write);
        assert_eq!(info.prefix.as_deref(), Some("/branches/x/"));
        assert_eq!(info.expires, None);
        assert!(info.created <= now());
        assert_eq!(store.verify(&token, now()), Some(info));
    }

    #[test]
    fn stored_file_has_hash_not_secret() {
        let (tmp, store) = store();
        let (token, info) = store.create("bob", TokenScope::Read, None, None).unwrap();
        let (_, secret) = split_token(&token).unwrap();
        let dir = tmp.path().join(".tokens");
        let path = dir.join(format!("{}.json", info.id));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(secret));
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["scope"], "read");
        assert_eq!(json["prefix"], serde_json::Value::Null);
        assert_eq!(json["expires"], serde_json::Value::Null);
        assert_eq!(json["hash"], hex::encode(Sha256::digest(secret.as_bytes())));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir), 0o700);
        // No temp file left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn list_and_revoke() {
        let (_tmp, store) = store();
        assert!(store.list().unwrap().is_empty()); // no directory yet
        let (t1, a) = store.create("alice", TokenScope::Read, None, None).unwrap();
        let (t2, b) = store.create("bob", TokenScope::Write, None, None).unwrap();
        let mut expected = vec![a.clone(), b.clone()];
        expected.sort_by(|x, y| x.created.cmp(&y.created).then_with(|| x.id.cmp(&y.id)));
        assert_eq!(store.list().unwrap(), expected);

        assert!(store.revoke(&a.id).unwrap());
        assert!(!store.revoke(&a.id).unwrap());
        assert_eq!(store.verify(&t1, now()), None);
        assert_eq!(store.verify(&t2, now()), Some(b.clone()));
        assert_eq!(store.list().unwrap(), vec![b]);
        assert!(!store.revoke("../../etc/passwd").unwrap());
        assert!(!store.revoke("0123456789ABCDEF").unwrap());
    }

    #[test]
    fn list_skips_corrupt_and_foreign_files() {
        let (tmp, store) = store();
        let (_, info) = store.create("alice", TokenScope::Read, None, None).unwrap();
        let dir = tmp.path().join(".tokens");
        std::fs::write(dir.join("0123456789abcdef.json"), b"{not json").unwrap();
        std::fs::write(dir.join("notes.txt"), b"hello").unwrap();
        std::fs::write(dir.join(".x.json.1.tmp"), b"{}").unwrap();
        assert_eq!(store.list().unwrap(), vec![info]);
    }

    #[test]
    fn expiry_is_exclusive() {
        let (_tmp, store) = store();
        let (token, info) = store
            .create(
                "alice",
                TokenScope::Read,
                None,
                Some(Duration::from_secs(60)),
            )
            .unwrap();
        let expires = info.expires.unwrap();
        assert_eq!(expires, info.created + 60);
        assert!(store.verify(&token, expires - 1).is_some());
        assert!(store.verify(&token, expires).is_none());
        assert!(store.verify(&token, expires + 1000).is_none());
    }

    #[test]
    fn wrong_secret_and_malformed_tokens() {
        let (_tmp, store) = store();
        let (token, info) = store
            .create("alice", TokenScope::Write, None, None)
            .unwrap();
        let mut wrong = token.clone();
        let last = if wrong.ends_with('0') { "1" } else { "0" };
        wrong.replace_range(wrong.len() - 1.., last);
        assert!(store.verify(&wrong, now()).is_none());

        let secret = &token[TOKEN_PREFIX.len() + 17..];
        let unknown = format!("{TOKEN_PREFIX}ffffffffffffffff_{secret}");
        let cases = [
            String::new(),
            "arbor_".to_owned(),
            token.to_uppercase(),
            token.replacen("arbor_", "other_", 1),
            format!("{token}0"),
            token[..token.len() - 1].to_owned(),
            format!("{TOKEN_PREFIX}{}", info.id),
            format!("{TOKEN_PREFIX}{}_{}", info.id, secret.to_uppercase()),
            format!(" {token}"),
            unknown,
        ];
        for case in cases {
            assert!(store.verify(&case, now()).is_none(), "{case:?}");
        }
    }

    #[test]
    fn crafted_ids_never_reach_the_filesystem() {
        let (tmp, store) = store();
        // A file outside the store that a traversal would find.
        let secret = "a".repeat(64);
        let outside = Record {
            id: "../../x".to_owned(),
            user: "root".to_owned(),
            scope: TokenScope::Write,
            prefix: None,
            expires: None,
            created: 0,
            hash: hex::encode(Sha256::digest(secret.as_bytes())),
        };
        std::fs::write(
            tmp.path().join("x.json"),
            serde_json::to_vec(&outside).unwrap(),
        )
        .unwrap();
        for token in [
            format!("arbor_../../x_{secret}"),
            format!("arbor_../x_{secret}"),
            format!("arbor_/etc/passwd_{secret}"),
            format!("arbor_..%2F..%2Fx_{secret}"),
        ] {
            assert!(split_token(&token).is_none(), "{token}");
            assert!(store.verify(&token, now()).is_none(), "{token}");
        }
    }

    #[test]
    fn edited_files_do_not_widen_access() {
        let (tmp, store) = store();
        let (token, info) = store
            .create("alice", TokenScope::Read, Some("/branches/x/"), None)
            .unwrap();
        let path = tmp.path().join(".tokens").join(format!("{}.json", info.id));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("/branches/x/", "branches")).unwrap();
        assert!(store.verify(&token, now()).is_none());
        std::fs::write(&path, text.replace(&info.id, "ffffffffffffffff")).unwrap();
        assert!(store.verify(&token, now()).is_none());
    }

    #[test]
    fn create_validates_input() {
        let (_tmp, store) = store();
        for prefix in ["branches/x/", "/branches/x", "", "x"] {
            let err = store
                .create("alice", TokenScope::Read, Some(prefix), None)
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{prefix}");
        }
        let err = store.create("", TokenScope::Read, None, None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(
            store
                .create("alice", TokenScope::Read, Some("/"), None)
                .is_ok()
        );
    }

    #[test]
    fn scope_strings() {
        assert_eq!("read".parse::<TokenScope>(), Ok(TokenScope::Read));
        assert_eq!("write".parse::<TokenScope>(), Ok(TokenScope::Write));
        assert!("admin".parse::<TokenScope>().is_err());
        assert_eq!(TokenScope::Write.to_string(), "write");
    }

    #[test]
    fn durations() {
        let secs = |n| Some(Duration::from_secs(n));
        assert_eq!(parse_duration("30d"), secs(30 * 86_400));
        assert_eq!(parse_duration("12h"), secs(12 * 3_600));
        assert_eq!(parse_duration("15m"), secs(15 * 60));
        assert_eq!(parse_duration("3600s"), secs(3600));
        assert_eq!(parse_duration("3600"), secs(3600));
        for bad in [
            "",
            "d",
            "s",
            "0",
            "0d",
            "-5m",
            "+5m",
            "5 m",
            " 5m",
            "5w",
            "5D",
            "1.5h",
            "5ms",
            "99999999999999999999d",
            "999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
