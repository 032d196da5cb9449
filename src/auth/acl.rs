//! ACL files (spec/AUTH.md §6): owns parsing `DLREPO_ACLS_DIR` into per-group rules compiled once
//! at load, and the grant decision for one path. Reading that directory is its only I/O; it knows
//! nothing of HTTP beyond the method → flags table (§6.3).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use regex::Regex;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use tracing::warn;

/// Stands for the login in any pattern (spec/AUTH.md §6.1).
const USER: &str = "$user";

/// Past this many compiled `(regex, login)` pairs the cache starts over: a crude bound, but
/// logins per process are few and a miss only costs one compilation.
const CACHE_MAX: usize = 1024;

/// The flags of a request (AUTH.md §6.3): all false = read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Want {
    pub add: bool,
    pub delete: bool,
    pub update: bool,
}

/// The flags a request needs on its path (spec/AUTH.md §2 step 2, §6.3). `path` is the decoded
/// request path; methods compare case-sensitively, as HTTP defines them.
pub fn want_for(method: &str, path: &str) -> Want {
    let none = Want::default();
    match method {
        "PUT" | "PATCH" => Want { add: true, ..none },
        // The registry creates blobs and upload sessions with POST.
        "POST" if path.starts_with("/v2/") => Want { add: true, ..none },
        "POST" => Want {
            update: true,
            ..none
        },
        "DELETE" => Want {
            delete: true,
            ..none
        },
        _ => none,
    }
}

/// A problem in one ACL file: reported with file and line, and the whole reload is refused
/// (the caller keeps the previous rules). `line` is 1-based; 0 means the file (or directory) as
/// a whole could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct AclError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Every group's ACLs, compiled once at load.
///
/// `$user` never triggers a compilation per request:
/// * a glob with `$user` is split at each `$user` into parts compiled at load (each anchored at
///   both ends); a path matches when it can be cut as `part0 login part1 login … partN` with
///   every part matching its piece. All cut points are tried (overlapping occurrences too), so
///   this is exact, not a heuristic. The anonymous login `""` uses one more regex, compiled at
///   load from the pattern with `$user` removed (which is what dlrepo matches, §6.1).
/// * a `~regex` with `$user` needs the escaped login inside the regex, so it is compiled once
///   per (pattern, login) into a bounded cache; the anonymous variant is compiled at load.
#[derive(Debug, Default)]
pub struct Acls {
    groups: HashMap<String, Group>,
    /// Ids for the `~regex` patterns holding `$user`, the cache's first key.
    next_user_regex: usize,
    cache: Mutex<RegexCache>,
}

#[derive(Debug, Default)]
struct Group {
    acls: Vec<Acl>,
    /// §6: a group's ACLs form a set; a repeated line (or one with the same patterns in another
    /// order) adds nothing.
    keys: HashSet<AclKey>,
}

/// An ACL as written: flags and its sorted, deduplicated `(exclusion, pattern)` pairs.
type AclKey = (bool, bool, bool, Vec<(bool, String)>);

#[derive(Debug)]
struct Acl {
    add: bool,
    delete: bool,
    update: bool,
    include: Vec<Matcher>,
    exclude: Vec<Matcher>,
}

#[derive(Debug)]
enum Matcher {
    /// No `$user`: one regex for everybody, and the glob's steps when it is a glob.
    Fixed(Regex, Option<Vec<Tok>>),
    /// A glob with `$user` (see [`Acls`]): `parts` are the pieces between the `$user`s;
    /// `steps` the same pieces' steps, `anonymous_steps` those of `anonymous`.
    UserGlob {
        parts: Vec<Regex>,
        anonymous: Regex,
        steps: Vec<Vec<Tok>>,
        anonymous_steps: Vec<Tok>,
    },
    /// A `~regex` with `$user`; `anonymous` is `None` when the regex does not compile once
    /// `$user` is removed.
    UserRegex {
        id: usize,
        body: String,
        anonymous: Option<Arc<Regex>>,
    },
}

/// Compiled `~regex` patterns per pattern id, then per login. `None` remembers a login for which
/// the regex does not compile, so it is not retried on every request.
#[derive(Debug, Default)]
struct RegexCache {
    by_pattern: HashMap<usize, HashMap<String, Option<Arc<Regex>>>>,
    len: usize,
}

impl Acls {
    /// Empty: nothing is granted.
    pub fn empty() -> Acls {
        Acls::default()
    }

    /// Reads every regular file of `dir` (group name = file name, exactly). A missing dir gives
    /// Ok(empty) plus a warning log. An invalid `~regex` pattern or an unreadable file is an
    /// AclError naming file and line. Lines with bad access letters are skipped with a warning
    /// naming file and line (dlrepo skips them silently).
    pub fn load_dir(dir: &Path) -> Result<Acls, AclError> {
        let Some(files) = group_files(dir)? else {
            warn!(dir = %dir.display(), "ACL directory not found: no ACLs, so nothing is granted");
            return Ok(Acls::empty());
        };
        let mut acls = Acls::empty();
        for (group, path) in files {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(&path)
                .map_err(|err| unreadable("file", shown.clone(), err))?;
            acls.parse_group(&group, &shown, &text)?;
        }
        Ok(acls)
    }

    /// Parses one group's file content (used by load_dir and by tests). On error nothing of
    /// `text` is kept.
    pub fn parse_group(
        &mut self,
        group: &str,
        file_name_for_errors: &str,
        text: &str,
    ) -> Result<(), AclError> {
        let mut new_keys = HashSet::new();
        let mut new_acls = Vec::new();
        let mut next_user_regex = self.next_user_regex;
        let known = self.groups.get(group).map(|g| &g.keys);
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let Some(key) = line_key(raw, file_name_for_errors, line) else {
                continue;
            };
            if known.is_some_and(|k| k.contains(&key)) || new_keys.contains(&key) {
                continue;
            }
            let acl = compile_acl(&key, &mut next_user_regex).map_err(|message| AclError {
                file: file_name_for_errors.to_owned(),
                line,
                message,
            })?;
            new_keys.insert(key);
            new_acls.push(acl);
        }
        self.next_user_regex = next_user_regex;
        if !new_acls.is_empty() {
            let entry = self.groups.entry(group.to_owned()).or_default();
            entry.acls.extend(new_acls);
            entry.keys.extend(new_keys);
        }
        Ok(())
    }

    /// Whether any ACL of any of `groups` grants `want` on `path` for `login` (None = anonymous,
    /// `$user` then stands for ""). `path` is already canonical (the caller lower-cases names).
    pub fn grants(&self, groups: &[String], login: Option<&str>, path: &str, want: Want) -> bool {
        let login = login.unwrap_or("");
        groups
            .iter()
            .filter_map(|name| self.groups.get(name))
            .flat_map(|group| &group.acls)
            .any(|acl| acl.grants(want, path, login, &self.cache))
    }

    /// Whether some path starting with `prefix` might be readable by `login` (None =
    /// anonymous) through `groups`: `false` only when no ACL can grant read on any of them,
    /// because an include glob cannot match below `prefix` or an exclusion glob matches all
    /// of it. A `~regex` pattern is taken to match anything and exclude nothing.
    pub fn may_read_under(&self, groups: &[String], login: Option<&str>, prefix: &str) -> bool {
        let login = login.unwrap_or("");
        groups
            .iter()
            .filter_map(|name| self.groups.get(name))
            .flat_map(|group| &group.acls)
            .any(|acl| {
                acl.include.iter().all(|m| {
                    m.steps(login)
                        .is_none_or(|t| under::may_match_under(&t, prefix))
                }) && !acl.exclude.iter().any(|m| {
                    m.steps(login)
                        .is_some_and(|t| under::matches_all_under(&t, prefix))
                })
            })
    }

    /// Group names that have at least one ACL (for logs/tests), sorted.
    pub fn groups(&self) -> Vec<String> {
        let mut names: Vec<String> = self.groups.keys().cloned().collect();
        names.sort();
        names
    }
}

/// The ACL files of `dir` as (group, path), sorted, or `None` when `dir` does not exist:
/// every regular file, symlinks followed (as dlrepo's `Path.is_file()`: mounted configs such
/// as Kubernetes ConfigMaps are symlinks to regular files), names that are not UTF-8 skipped.
/// The reload watcher hashes the same list, so that what it compares is what a load reads.
pub fn group_files(dir: &Path) -> Result<Option<Vec<(String, PathBuf)>>, AclError> {
    let shown_dir = dir.display().to_string();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(unreadable("ACL directory", shown_dir, err)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| unreadable("ACL directory", shown_dir.clone(), err))?;
        let path = entry.path();
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => continue,
            Err(err) => {
                warn!(file = %path.display(), error = %err, "ACL entry skipped");
                continue;
            }
        }
        let Some(group) = entry.file_name().to_str().map(str::to_owned) else {
            warn!(file = %path.display(), "ACL file skipped: its name is not UTF-8");
            continue;
        };
        files.push((group, path));
    }
    // A stable order makes the reported error the same on every reload.
    files.sort();
    Ok(Some(files))
}

fn unreadable(what: &str, file: String, err: std::io::Error) -> AclError {
    AclError {
        file,
        line: 0,
        message: format!("cannot read {what}: {err}"),
    }
}

/// `(add, delete, update)` for valid access letters (spec/AUTH.md §6 step 3), else `None`.
/// The rule on one line of an ACL file, as the key that spots its duplicates; `None` for a
/// blank or comment line, and for one whose access letters are wrong (logged and skipped).
fn line_key(raw: &str, file_name_for_errors: &str, line: usize) -> Option<AclKey> {
    // §6 step 1: a `#` starts a comment even inside a pattern.
    let content = raw.find('#').map_or(raw, |at| &raw[..at]);
    let tokens: Vec<&str> = content.split_whitespace().collect();
    let [access, patterns @ ..] = tokens.as_slice() else {
        return None;
    };
    if patterns.is_empty() {
        return None;
    }
    let Some((add, delete, update)) = parse_access(access) else {
        warn!(
            file = file_name_for_errors,
            line,
            access,
            "ACL line skipped: access letters must include r and be among r, o, w, a, d, u"
        );
        return None;
    };
    let mut pairs: Vec<(bool, String)> = patterns
        .iter()
        .map(|token| match token.strip_prefix('!') {
            Some(pattern) => (true, pattern.to_owned()),
            None => (false, (*token).to_owned()),
        })
        .collect();
    pairs.sort();
    pairs.dedup();
    Some((add, delete, update, pairs))
}

/// The rule `key` with its patterns compiled; the error says which pattern is wrong.
fn compile_acl(key: &AclKey, next_user_regex: &mut usize) -> Result<Acl, String> {
    let (add, delete, update, pairs) = key;
    let mut acl = Acl {
        add: *add,
        delete: *delete,
        update: *update,
        include: Vec::new(),
        exclude: Vec::new(),
    };
    for (exclusion, pattern) in pairs {
        let matcher = Matcher::compile(pattern, next_user_regex)?;
        if *exclusion {
            acl.exclude.push(matcher);
        } else {
            acl.include.push(matcher);
        }
    }
    Ok(acl)
}

fn parse_access(access: &str) -> Option<(bool, bool, bool)> {
    if !access.contains('r') || !access.chars().all(|c| "rowadu".contains(c)) {
        return None;
    }
    let has = |letter| access.contains('w') || access.contains(letter);
    Some((has('a'), has('d'), has('u')))
}

impl Acl {
    fn grants(&self, want: Want, path: &str, login: &str, cache: &Mutex<RegexCache>) -> bool {
        if (want.add && !self.add) || (want.delete && !self.delete) || (want.update && !self.update)
        {
            return false;
        }
        // A pattern that cannot be evaluated for this login voids the ACL: treating it as "no
        // match" would turn a failed exclusion into a grant.
        self.include
            .iter()
            .all(|m| m.is_match(path, login, cache) == Some(true))
            && self
                .exclude
                .iter()
                .all(|m| m.is_match(path, login, cache) == Some(false))
    }
}

impl Matcher {
    /// Compiles one pattern (without its `!`); the error is the message for [`AclError`].
    fn compile(pattern: &str, next_user_regex: &mut usize) -> Result<Matcher, String> {
        let has_user = pattern.contains(USER);
        let Some(body) = pattern.strip_prefix('~') else {
            if !has_user {
                return Ok(Matcher::Fixed(
                    compile_glob(pattern)?,
                    Some(under::tokens(pattern)),
                ));
            }
            let parts = pattern
                .split(USER)
                .map(compile_glob)
                .collect::<Result<_, _>>()?;
            let anonymous = compile_glob(&pattern.replace(USER, ""))?;
            return Ok(Matcher::UserGlob {
                parts,
                anonymous,
                steps: pattern.split(USER).map(under::tokens).collect(),
                anonymous_steps: under::tokens(&pattern.replace(USER, "")),
            });
        };
        if !has_user {
            let re = compile_regex(body)
                .map_err(|err| format!("invalid regex pattern {pattern:?}: {err}"))?;
            return Ok(Matcher::Fixed(re, None));
        }
        // Any escaped login is plain text, so a sample one tells whether the regex is valid.
        compile_regex(&body.replace(USER, "x"))
            .map_err(|err| format!("invalid regex pattern {pattern:?}: {err}"))?;
        let anonymous = compile_regex(&body.replace(USER, "")).ok().map(Arc::new);
        let id = *next_user_regex;
        *next_user_regex += 1;
        Ok(Matcher::UserRegex {
            id,
            body: body.to_owned(),
            anonymous,
        })
    }

    /// `None` when the pattern cannot be compiled for this login.
    fn is_match(&self, path: &str, login: &str, cache: &Mutex<RegexCache>) -> Option<bool> {
        match self {
            Matcher::Fixed(re, _) => Some(re.is_match(path)),
            Matcher::UserGlob { anonymous, .. } if login.is_empty() => {
                Some(anonymous.is_match(path))
            }
            Matcher::UserGlob { parts, .. } => Some(parts_match(parts, path, login)),
            Matcher::UserRegex { anonymous, .. } if login.is_empty() => {
                anonymous.as_ref().map(|re| re.is_match(path))
            }
            Matcher::UserRegex { id, body, .. } => {
                user_regex(cache, *id, body, login).map(|re| re.is_match(path))
            }
        }
    }

    /// The glob's steps for `login` (`""` anonymous); `None` for a `~regex`.
    fn steps(&self, login: &str) -> Option<Cow<'_, [Tok]>> {
        match self {
            Matcher::Fixed(_, steps) => steps.as_deref().map(Cow::Borrowed),
            Matcher::UserGlob {
                anonymous_steps, ..
            } if login.is_empty() => Some(Cow::Borrowed(anonymous_steps)),
            Matcher::UserGlob { steps, .. } => {
                let user = under::literal(login);
                let mut all = Vec::new();
                for (i, part) in steps.iter().enumerate() {
                    if i > 0 {
                        all.extend_from_slice(&user);
                    }
                    all.extend_from_slice(part);
                }
                Some(Cow::Owned(all))
            }
            Matcher::UserRegex { .. } => None,
        }
    }
}

/// Whether `path` = `parts[0]` login `parts[1]` login … for some cut (`login` non-empty).
fn parts_match(parts: &[Regex], path: &str, login: &str) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return first.is_match(path);
    }
    let mut from = 0;
    while let Some(found) = path[from..].find(login) {
        let at = from + found;
        if first.is_match(&path[..at]) && parts_match(rest, &path[at + login.len()..], login) {
            return true;
        }
        // Occurrences may overlap ("aa" in "/aaa"), so step one char, not past the login.
        from = at + path[at..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// The compiled `~regex` for a login, from the cache or compiled now (outside the lock).
fn user_regex(cache: &Mutex<RegexCache>, id: usize, body: &str, login: &str) -> Option<Arc<Regex>> {
    let lock = || cache.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(hit) = lock().by_pattern.get(&id).and_then(|by| by.get(login)) {
        return hit.clone();
    }
    // §6.1: dlrepo pastes the login in raw; escaping it is the safe fix ("a.b" must not
    // match "axb").
    let compiled = match compile_regex(&body.replace(USER, &regex::escape(login))) {
        Ok(re) => Some(Arc::new(re)),
        Err(err) => {
            warn!(pattern = body, login, error = %err, "ACL regex unusable for this login: its ACL grants nothing");
            None
        }
    };
    let mut cache = lock();
    if cache.len >= CACHE_MAX {
        cache.by_pattern.clear();
        cache.len = 0;
    }
    let by_login = cache.by_pattern.entry(id).or_default();
    if by_login
        .insert(login.to_owned(), compiled.clone())
        .is_none()
    {
        cache.len += 1;
    }
    compiled
}

/// A `~regex` as Python's `re.match` runs it: anchored at the start only (spec/AUTH.md §6.1).
fn compile_regex(body: &str) -> Result<Regex, regex::Error> {
    // Checked alone first: wrapped, an unbalanced body such as `a)|(b` would compile into
    // something broader than what the admin wrote (Python rejects it).
    Regex::new(body)?;
    Regex::new(&format!("^(?:{body})"))
}

/// A glob translated as in spec/AUTH.md §6.1, anchored at both ends.
fn compile_glob(glob: &str) -> Result<Regex, String> {
    // `(?s)`: `**` also crosses a `\n` (a decoded `%0A`). dlrepo's `.` does not, which lets such
    // a path slip past an exclusion like `r !/secret/**`; matching it is the safe fix.
    let mut re = String::from("(?s)^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.next_if_eq(&'*').is_some() => re.push_str(".*"),
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            _ => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|err| format!("pattern {glob:?} too large: {err}"))
}

#[cfg(test)]
mod tests;
mod under;
use under::Tok;
