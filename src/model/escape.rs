//! Percent-encoding of tree paths in URLs. Three uses need three sets, all built on one list
//! of what may never appear raw in a URL path (controls, space, `"`, `#`, `%`, `<`, `>`, `?`,
//! `` ` ``, `{`, `}`, `\`, `^`, `|`):
//! - request paths sent to other servers (publishing): that list only, so `/` separates and
//!   the target's router decodes every name back to itself;
//! - `Location` headers: also `[` and `]`, which some clients take for an IPv6 literal;
//! - one segment of an HTML link: also `/`, so a name stays one segment.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

const UNSAFE: AsciiSet = CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');
const LOCATION: AsciiSet = UNSAFE.add(b'[').add(b']');
const SEGMENT: AsciiSet = LOCATION.add(b'/');

/// A path for a request line: `/` and the sub-delimiters stay.
pub fn request_path(path: &str) -> String {
    utf8_percent_encode(path, &UNSAFE).to_string()
}

/// A path for a `Location` header.
pub fn location(path: &str) -> String {
    utf8_percent_encode(path, &LOCATION).to_string()
}

/// A name as one path segment.
pub fn segment(name: &str) -> String {
    utf8_percent_encode(name, &SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_use_escapes_what_it_must() {
        let p = "/branches/b/t/j/f/a b#1?x%[2].txt";
        assert_eq!(request_path(p), "/branches/b/t/j/f/a%20b%231%3Fx%25[2].txt");
        assert_eq!(location(p), "/branches/b/t/j/f/a%20b%231%3Fx%25%5B2%5D.txt");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(request_path("/~u/branches/é"), "/~u/branches/%C3%A9");
    }
}
