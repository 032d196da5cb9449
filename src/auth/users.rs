//! The auth file (spec/AUTH.md §4) and Basic credential decoding (§3). Owns parsing and password
//! checks; knows nothing of HTTP, caches or ACLs. Lines are parsed one by one (Q33 fixed).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::LazyLock;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use regex::Regex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::warn;

/// dlrepo's group syntax, kept as its regex (Unicode `\w`) so the accepted set stays the same.
static GROUPS_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\w\s-]+$").expect("static regex is valid"));

/// The parsed auth file: login → one entry per line naming that login.
pub struct Users {
    by_login: HashMap<String, Vec<Entry>>,
    entries: usize,
}

/// One valid line: what proves the password, and the groups it grants.
struct Entry {
    secret: Secret,
    groups: Vec<String>,
}

/// How a line's password is checked. Plain passwords are kept only as their sha256 so that the
/// comparison runs on equal-length values (`ct_eq` would leak a length mismatch otherwise).
enum Secret {
    Plain([u8; 32]),
    /// A PHC string, validated at load time; re-parsed on use because `PasswordHash` borrows.
    Argon2(String),
    /// A 60-byte `$2a$`/`$2b$`/`$2y$` hash, validated at load time.
    Bcrypt(String),
}

impl Secret {
    /// A password that looks like a hash must be a valid one: falling back to plain text would
    /// let anyone who reads the file log in with the hash string itself.
    fn parse(password: &str) -> Result<Secret, &'static str> {
        if password.starts_with("$argon2") {
            let hash = PasswordHash::new(password).map_err(|_| "malformed argon2 hash")?;
            argon2::Algorithm::try_from(hash.algorithm).map_err(|_| "unknown argon2 variant")?;
            argon2::Params::try_from(&hash).map_err(|_| "invalid argon2 parameters")?;
            if hash.salt.is_none() || hash.hash.is_none() {
                return Err("argon2 hash without salt or output");
            }
            Ok(Secret::Argon2(password.to_owned()))
        } else if ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|p| password.starts_with(p))
        {
            let parts =
                bcrypt::HashParts::from_str(password).map_err(|_| "malformed bcrypt hash")?;
            if !(4..=31).contains(&parts.get_cost()) {
                return Err("bcrypt cost out of range");
            }
            Ok(Secret::Bcrypt(password.to_owned()))
        } else {
            Ok(Secret::Plain(Sha256::digest(password.as_bytes()).into()))
        }
    }

    fn matches(&self, password: &str) -> bool {
        match self {
            Secret::Plain(digest) => {
                let given: [u8; 32] = Sha256::digest(password.as_bytes()).into();
                given.ct_eq(digest).into()
            }
            Secret::Argon2(phc) => PasswordHash::new(phc).is_ok_and(|hash| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok()
            }),
            // `verify` truncates at 72 bytes like htpasswd and most bcrypt tools that made the hash.
            Secret::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
        }
    }
}

impl Users {
    /// No users: everyone is anonymous (or 401 when credentials are sent).
    pub fn empty() -> Users {
        Users {
            by_login: HashMap::new(),
            entries: 0,
        }
    }

    /// Reads and parses the auth file. A missing or unreadable file is an error for the caller to
    /// log (spec/AUTH.md §4); malformed lines are skipped with a warning naming file and line.
    pub fn load(path: &Path) -> std::io::Result<Users> {
        let text = std::fs::read_to_string(path)?;
        Ok(Users::parse_from(&text, &path.display().to_string()))
    }

    /// Parses auth-file text (`LOGIN:PASSWORD:GROUP1 GROUP2 ...` per line).
    pub fn parse(text: &str) -> Users {
        Users::parse_from(text, "<text>")
    }

    fn parse_from(text: &str, source: &str) -> Users {
        let mut users = Users::empty();
        // An editor-added BOM would otherwise become part of the first login.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, line) in text.lines().enumerate() {
            match parse_line(line) {
                Ok(None) => {}
                Ok(Some((login, entry))) => {
                    users.by_login.entry(login).or_default().push(entry);
                    users.entries += 1;
                }
                // `reason` is always a static string: the line (and its password) is never logged.
                Err(reason) => warn!(
                    file = source,
                    line = index + 1,
                    "auth file: skipping line: {reason}"
                ),
            }
        }
        users
    }

    /// Groups of `login` when `password` matches one of its lines (union over matching lines);
    /// with `ignore_passwords` (DLREPO_IGNORE_PASSWORDS=1) the password is not checked and the
    /// groups of every line of that login are returned. Empty Vec = unknown user or bad password.
    pub fn authenticate(&self, login: &str, password: &str, ignore_passwords: bool) -> Vec<String> {
        let mut groups: Vec<String> = Vec::new();
        let Some(entries) = self.by_login.get(login) else {
            return groups;
        };
        // Every line is checked, even after a match: each password has its own groups.
        for entry in entries {
            if ignore_passwords || entry.secret.matches(password) {
                for group in &entry.groups {
                    if !groups.contains(group) {
                        groups.push(group.clone());
                    }
                }
            }
        }
        groups
    }

    /// Number of valid lines (a login with two passwords counts twice).
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
}

/// Never prints passwords or hashes.
impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Users")
            .field("logins", &self.by_login.len())
            .field("entries", &self.entries)
            .finish()
    }
}

/// `Ok(None)` for blank and comment lines; `Err` carries a reason safe to log.
fn parse_line(line: &str) -> Result<Option<(String, Entry)>, &'static str> {
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let (login, rest) = line
        .split_once(':')
        .ok_or("expected LOGIN:PASSWORD:GROUPS")?;
    let (password, groups) = rest
        .rsplit_once(':')
        .ok_or("expected LOGIN:PASSWORD:GROUPS")?;
    if login.is_empty() {
        return Err("empty login");
    }
    if password.is_empty() {
        return Err("empty password");
    }
    if !GROUPS_RE.is_match(groups) {
        return Err("groups must be word characters, spaces or '-'");
    }
    let groups: Vec<String> = groups.split_whitespace().map(str::to_owned).collect();
    if groups.is_empty() {
        return Err("no group");
    }
    let secret = Secret::parse(password)?;
    Ok(Some((login.to_owned(), Entry { secret, groups })))
}

/// Decodes a Basic `Authorization` value (spec/AUTH.md §3) into (login, password): scheme
/// case-insensitive, strict base64, UTF-8, split at the first `:`. `None` (anonymous) for any
/// decoding error, another scheme, or an empty login.
pub fn decode_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (login, password) = decoded.split_once(':')?;
    if login.is_empty() {
        return None;
    }
    Some((login.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};
    use argon2::{Algorithm, Params, Version};

    fn groups(users: &Users, login: &str, password: &str) -> Vec<String> {
        users.authenticate(login, password, false)
    }

    /// Cheapest legal argon2id parameters: the test checks the format, not the strength.
    fn argon2_hash(password: &str) -> String {
        let params = Params::new(8, 1, 1, None).unwrap();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    #[test]
    fn parses_basic_lines_comments_and_blanks() {
        let users = Users::parse(
            "# admins\n\nalice:secret:admins devs\n   \n  # indented comment\nbob:pw:devs\n",
        );
        assert_eq!(users.len(), 2);
        assert_eq!(groups(&users, "alice", "secret"), ["admins", "devs"]);
        assert_eq!(groups(&users, "bob", "pw"), ["devs"]);
        assert!(groups(&users, "alice", "wrong").is_empty());
        assert!(groups(&users, "nobody", "secret").is_empty());
        // Q33: the comment right above a login does not break it.
        let users = Users::parse("# comment\nalice:a:devs");
        assert_eq!(groups(&users, "alice", "a"), ["devs"]);
    }

    #[test]
    fn password_runs_from_first_to_last_colon() {
        let users = Users::parse("carol:c:ol:on:devs\n");
        assert_eq!(groups(&users, "carol", "c:ol:on"), ["devs"]);
        assert!(groups(&users, "carol", "c").is_empty());
        assert!(groups(&users, "carol", "c:ol").is_empty());
    }

    #[test]
    fn skips_malformed_lines() {
        let text = "frank:x:   \n\
                    nocolon\n\
                    one:colon\n\
                    :pw:devs\n\
                    empty::devs\n\
                    bad:pw:dev$ops\n\
                    bad2:pw:devs,ops\n\
                    bad3:pw:\n\
                    ok:pw:devs\n";
        let users = Users::parse(text);
        assert_eq!(users.len(), 1);
        for login in [
            "frank", "nocolon", "one", "", "empty", "bad", "bad2", "bad3",
        ] {
            assert!(users.authenticate(login, "", true).is_empty(), "{login}");
        }
        assert_eq!(groups(&users, "ok", "pw"), ["devs"]);
    }

    #[test]
    fn group_syntax() {
        let users = Users::parse(
            "a:pw:  spaced \t out  \n\
             b:pw:with-dash under_score 42\n\
             c:pw:équipe café-crème 開発\n",
        );
        assert_eq!(groups(&users, "a", "pw"), ["spaced", "out"]);
        assert_eq!(
            groups(&users, "b", "pw"),
            ["with-dash", "under_score", "42"]
        );
        assert_eq!(groups(&users, "c", "pw"), ["équipe", "café-crème", "開発"]);
    }

    #[test]
    fn crlf_and_bom() {
        let users = Users::parse("\u{feff}alice:pw:devs\r\nbob:pw2:ops\r\n");
        assert_eq!(groups(&users, "alice", "pw"), ["devs"]);
        assert_eq!(groups(&users, "bob", "pw2"), ["ops"]);
    }

    #[test]
    fn duplicate_logins_each_valid() {
        let users = Users::parse("dave:one:devs\ndave:two:ops\ndave:one:qa devs\n");
        assert_eq!(users.len(), 3);
        assert_eq!(groups(&users, "dave", "one"), ["devs", "qa"]);
        assert_eq!(groups(&users, "dave", "two"), ["ops"]);
        assert!(groups(&users, "dave", "three").is_empty());
    }

    #[test]
    fn ignore_passwords_returns_every_line() {
        let users = Users::parse("dave:one:devs\ndave:two:ops devs\n");
        assert_eq!(
            users.authenticate("dave", "anything", true),
            ["devs", "ops"]
        );
        assert_eq!(users.authenticate("dave", "", true), ["devs", "ops"]);
        assert!(users.authenticate("eve", "", true).is_empty());
    }

    #[test]
    fn plain_passwords_are_exact() {
        let users = Users::parse("alice: spaced :devs\n");
        assert_eq!(groups(&users, "alice", " spaced "), ["devs"]);
        assert!(groups(&users, "alice", "spaced").is_empty());
        assert!(groups(&users, "alice", "").is_empty());
        assert!(groups(&users, "Alice", " spaced ").is_empty());
    }

    #[test]
    fn argon2_passwords() {
        let hash = argon2_hash("s3cret");
        assert!(hash.starts_with("$argon2id$"));
        let users = Users::parse(&format!("alice:{hash}:devs\n"));
        assert_eq!(groups(&users, "alice", "s3cret"), ["devs"]);
        assert!(groups(&users, "alice", "wrong").is_empty());
        // The hash string itself is not a password.
        assert!(groups(&users, "alice", &hash).is_empty());
    }

    #[test]
    fn bcrypt_passwords() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = Users::parse(&format!("bob:{hash}:devs\n"));
        assert_eq!(groups(&users, "bob", "s3cret"), ["devs"]);
        assert!(groups(&users, "bob", "wrong").is_empty());
        assert!(groups(&users, "bob", &hash).is_empty());
        for prefix in ["$2a$", "$2y$"] {
            let other = format!("{prefix}{}", &hash[4..]);
            let users = Users::parse(&format!("bob:{other}:devs\n"));
            assert_eq!(groups(&users, "bob", "s3cret"), ["devs"], "{prefix}");
        }
    }

    #[test]
    fn broken_hashes_skip_the_line() {
        let good = bcrypt::hash("pw", 4).unwrap();
        let bad_cost = good.replacen("$04$", "$99$", 1);
        let users = Users::parse(&format!(
            "a:$argon2id$garbage:devs\n\
             b:$2b$04$tooshort:devs\n\
             c:{bad_cost}:devs\n\
             d:{good}x:devs\n",
        ));
        assert!(users.is_empty());
        assert!(users.authenticate("a", "", true).is_empty());
    }

    #[test]
    fn mixed_hash_kinds_for_one_login() {
        let text = format!(
            "erin:plain:readers\nerin:{}:devs\nerin:{}:ops\n",
            argon2_hash("arg"),
            bcrypt::hash("bc", 4).unwrap()
        );
        let users = Users::parse(&text);
        assert_eq!(groups(&users, "erin", "plain"), ["readers"]);
        assert_eq!(groups(&users, "erin", "arg"), ["devs"]);
        assert_eq!(groups(&users, "erin", "bc"), ["ops"]);
    }

    #[test]
    fn load_reads_file_and_reports_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth");
        assert!(Users::load(&path).is_err());
        std::fs::write(&path, "alice:pw:devs\n").unwrap();
        let users = Users::load(&path).unwrap();
        assert_eq!(users.len(), 1);
        assert!(!users.is_empty());
        assert!(Users::empty().is_empty());
    }

    #[test]
    fn debug_hides_secrets() {
        let users = Users::parse("alice:topsecret:devs\n");
        let shown = format!("{users:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("alice"),
            "{shown}"
        );
    }

    fn basic(raw: &[u8]) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn decode_basic_cases() {
        let pair = |l: &str, p: &str| Some((l.to_owned(), p.to_owned()));
        assert_eq!(decode_basic(&basic(b"alice:pw")), pair("alice", "pw"));
        assert_eq!(
            decode_basic(&format!("basic {}", STANDARD.encode("alice:pw"))),
            pair("alice", "pw")
        );
        assert_eq!(
            decode_basic(&format!("BASIC {}", STANDARD.encode("alice:pw"))),
            pair("alice", "pw")
        );
        // Split at the FIRST colon: the password keeps the rest.
        assert_eq!(
            decode_basic(&basic(b"carol:c:ol:on")),
            pair("carol", "c:ol:on")
        );
        assert_eq!(decode_basic(&basic(b"alice:")), pair("alice", ""));
        assert_eq!(
            decode_basic(&basic("zoë:pässword".as_bytes())),
            pair("zoë", "pässword")
        );
        assert_eq!(decode_basic(&basic(b":pw")), None);
        assert_eq!(decode_basic(&basic(b"nocolon")), None);
        assert_eq!(decode_basic(&basic(b"\xff\xfe:pw")), None);
        assert_eq!(decode_basic("Basic !!!not-base64"), None);
        assert_eq!(decode_basic("Basic YWxpY2U6cHc"), None); // missing padding
        assert_eq!(decode_basic("Basic  YWxpY2U6cHc="), None); // extra space is not base64
        assert_eq!(decode_basic("Basic"), None);
        assert_eq!(decode_basic(""), None);
        assert_eq!(decode_basic("Bearer YWxpY2U6cHc="), None);
        assert_eq!(decode_basic("Basicx YWxpY2U6cHc="), None);
    }
}
