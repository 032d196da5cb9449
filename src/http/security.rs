//! Response headers that keep names chosen by uploaders in their place (spec/API.md Q52):
//! the one `Content-Disposition` encoder. Pure: no I/O, no configuration lookups.

use axum::http::HeaderValue;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// RFC 5987 `attr-char`: what `filename*` may hold unencoded.
const ATTR_CHAR: AsciiSet = NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="..."; filename*=UTF-8''...` (RFC 6266 §4.3, RFC 5987): the only way a
/// file name reaches a `Content-Disposition` header. `filename*` carries the exact name
/// (percent-encoded UTF-8); the quoted `filename` is an ASCII approximation for old clients,
/// where `"`, `\`, controls, non-ASCII and `%` (which some clients decode, RFC 6266 App. D)
/// become `_`, so nothing in it can end the string or add a parameter. Any name gives a
/// valid header value; an empty one gives a bare `attachment`.
pub fn attachment(name: &str) -> HeaderValue {
    if name.is_empty() {
        return HeaderValue::from_static("attachment");
    }
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if !matches!(c, '"' | '\\' | '%') => c,
            _ => '_',
        })
        .collect();
    let exact = utf8_percent_encode(name, &ATTR_CHAR);
    let value = format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}");
    // Visible ASCII and spaces only, by construction.
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cd(name: &str) -> String {
        attachment(name).to_str().expect("ASCII").to_owned()
    }

    #[test]
    fn plain_names_are_quoted_and_encoded() {
        assert_eq!(
            cd("a.txt"),
            "attachment; filename=\"a.txt\"; filename*=UTF-8''a.txt"
        );
        assert_eq!(
            cd("only file.bin"),
            "attachment; filename=\"only file.bin\"; filename*=UTF-8''only%20file.bin"
        );
        assert_eq!(cd(""), "attachment");
    }

    #[test]
    fn hostile_names_cannot_escape_the_quotes() {
        assert_eq!(
            cd("a\";b=c;\\.txt"),
            "attachment; filename=\"a_;b=c;_.txt\"; filename*=UTF-8''a%22%3Bb%3Dc%3B%5C.txt"
        );
        assert_eq!(
            cd("x\r\nSet-Cookie: a=b"),
            "attachment; filename=\"x__Set-Cookie: a=b\"; \
             filename*=UTF-8''x%0D%0ASet-Cookie%3A%20a%3Db"
        );
        assert_eq!(
            cd("résumé 100%.pdf"),
            "attachment; filename=\"r_sum_ 100_.pdf\"; \
             filename*=UTF-8''r%C3%A9sum%C3%A9%20100%25.pdf"
        );
        assert_eq!(
            cd("日本\u{7f}.txt"),
            "attachment; filename=\"___.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%7F.txt"
        );
        // attr-chars stay as they are.
        assert_eq!(
            cd("a!#$&+-.^_`|~z"),
            "attachment; filename=\"a!#$&+-.^_`|~z\"; filename*=UTF-8''a!#$&+-.^_`|~z"
        );
    }

    #[test]
    fn the_quoted_fallback_is_always_clean() {
        let nasty: String = (0u32..0x250).filter_map(char::from_u32).collect();
        let v = cd(&nasty);
        let quoted = v
            .strip_prefix("attachment; filename=\"")
            .and_then(|s| s.split_once("\"; filename*=UTF-8''"))
            .expect("shape");
        assert!(
            quoted
                .0
                .chars()
                .all(|c| (' '..='~').contains(&c) && !matches!(c, '"' | '\\' | '%')),
            "{:?}",
            quoted.0
        );
        assert!(
            quoted
                .1
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~%".contains(&b))
        );
    }
}
