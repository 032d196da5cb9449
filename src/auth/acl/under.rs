//! Whether a glob pattern can match some path below a prefix, or matches every one: what
//! lets a search skip a whole branch, tag or job the caller cannot read anything in, without
//! asking about each entity below it. The glob is taken as `compile_glob` translates it
//! (spec/AUTH.md §6.1): `**` any run of characters, `*` any run without `/`, `?` one
//! character but `/`, anything else itself.

/// One step of a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    Char(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `**`
    Any,
}

/// The steps of `glob`, as `compile_glob` reads it.
pub(super) fn tokens(glob: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' if chars.next_if_eq(&'*').is_some() => Tok::Any,
            '*' => Tok::Star,
            '?' => Tok::One,
            c => Tok::Char(c),
        });
    }
    out
}

/// `s` as plain characters (a login put in place of `$user`).
pub(super) fn literal(s: &str) -> Vec<Tok> {
    s.chars().map(Tok::Char).collect()
}

/// The steps of the glob that could be at once after reading `prefix` (`at[i]`: before
/// step `i`; `at[len]`: at the end). Empty when no path starting with `prefix` matches.
fn after(toks: &[Tok], prefix: &str) -> Vec<bool> {
    let mut at = vec![false; toks.len() + 1];
    at[0] = true;
    close(toks, &mut at);
    let mut next = vec![false; toks.len() + 1];
    for c in prefix.chars() {
        next.fill(false);
        for (i, t) in toks.iter().enumerate() {
            if !at[i] {
                continue;
            }
            match t {
                Tok::Char(x) if *x == c => next[i + 1] = true,
                Tok::One if c != '/' => next[i + 1] = true,
                Tok::Star if c != '/' => next[i] = true,
                Tok::Any => next[i] = true,
                _ => {}
            }
        }
        close(toks, &mut next);
        if !next.contains(&true) {
            return Vec::new();
        }
        std::mem::swap(&mut at, &mut next);
    }
    at
}

/// Adds the steps reached by letting a `*` or `**` match nothing.
fn close(toks: &[Tok], at: &mut [bool]) {
    for (i, t) in toks.iter().enumerate() {
        if at[i] && matches!(t, Tok::Star | Tok::Any) {
            at[i + 1] = true;
        }
    }
}

/// Whether some path starting with `prefix` matches the glob. Whatever is left of a glob
/// after the prefix matches some rest (a character for a character or `?`, nothing for a
/// star), so reading the prefix without getting stuck is enough.
pub(super) fn may_match_under(toks: &[Tok], prefix: &str) -> bool {
    after(toks, prefix).contains(&true)
}

/// Whether every path starting with `prefix` (itself included) matches the glob: after the
/// prefix, the glob may be at a rest made of `**` only.
pub(super) fn matches_all_under(toks: &[Tok], prefix: &str) -> bool {
    let at = after(toks, prefix);
    // Empty when the prefix got the glob stuck.
    (0..toks.len()).any(|i| at.get(i) == Some(&true) && toks[i..].iter().all(|t| *t == Tok::Any))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_that_a_glob_can_and_must_match() {
        let may = |g: &str, p: &str| may_match_under(&tokens(g), p);
        let all = |g: &str, p: &str| matches_all_under(&tokens(g), p);
        assert!(may("/branches/public/**", "/branches/public/"));
        assert!(may("/branches/public/**", "/branches/"));
        assert!(may("/branches/public/**", "/"));
        assert!(!may("/branches/public/**", "/branches/secret/"));
        assert!(!may("/branches/public/**", "/~u/branches/public/"));
        assert!(may("/branches/*/t1/**", "/branches/x/t1/j/"));
        assert!(may("/branches/*/t1/**", "/branches/x/"));
        assert!(!may("/branches/*/t1/**", "/branches/x/t2/"));
        assert!(may("/branches/*/t1", "/branches/x/t1"));
        assert!(!may("/branches/*/t1", "/branches/x/t1/"));
        assert!(may("/**.deb", "/branches/x/"));
        assert!(may("/branches/a?c/**", "/branches/abc/t/"));
        assert!(!may("/branches/a?c/**", "/branches/a/c/"));
        assert!(all("/branches/secret/**", "/branches/secret/"));
        assert!(all("/branches/secret/**", "/branches/secret/t/j/"));
        assert!(!all("/branches/secret/**", "/branches/"));
        assert!(all("/**", "/"));
        assert!(all("/*/**", "/branches/"));
        assert!(!all("/**.deb", "/branches/"));
        assert!(!all("/branches/*", "/branches/x/"));
        assert!(all("/branches/x*/**", "/branches/xy/"));
    }
}
