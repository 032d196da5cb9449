//! Query strings: split into `key=value` pairs and percent-decoded, in one place for the
//! tree, the guard and the registry. Whether `+` means a space differs by caller, so it is
//! a parameter, not a guess.

use percent_encoding::percent_decode_str;

/// What a `+` in a query string stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plus {
    /// HTML form encoding: job filters typed into a browser (spec/API.md Q41).
    Space,
    /// RFC 3986: a literal plus, as in media types such as `application/spdx+json`.
    Literal,
}

/// The raw pairs of `query`, in order: the key, and the value when the pair has a `=`.
/// Empty pairs (`a=1&&b=2`) are skipped.
pub(crate) fn raw_pairs(query: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        })
}

/// `raw` percent-decoded (invalid UTF-8 replaced), with `+` read as `plus` says.
pub(crate) fn decode(raw: &str, plus: Plus) -> String {
    match plus {
        Plus::Space => percent_decode_str(&raw.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned(),
        Plus::Literal => percent_decode_str(raw).decode_utf8_lossy().into_owned(),
    }
}

/// The decoded value of the first `key=value` pair whose raw key is `key`; pairs without
/// a `=` are not values.
pub(crate) fn value(query: &str, key: &str, plus: Plus) -> Option<String> {
    raw_pairs(query).find_map(|(k, v)| (k == key).then_some(v).flatten().map(|v| decode(v, plus)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_split_raw_and_decode_as_asked() {
        let got: Vec<_> = raw_pairs("a=1&&b&c%20d=x+y").collect();
        assert_eq!(got, [("a", Some("1")), ("b", None), ("c%20d", Some("x+y"))]);
        assert_eq!(decode("c%20d+e", Plus::Space), "c d e");
        assert_eq!(decode("a+b%2B", Plus::Literal), "a+b+");
    }

    #[test]
    fn a_value_needs_its_equals_sign() {
        assert_eq!(
            value("token&token=ab%2Fc", "token", Plus::Literal).as_deref(),
            Some("ab/c")
        );
        assert_eq!(value("token", "token", Plus::Literal), None);
        assert_eq!(value("tokens=1", "token", Plus::Literal), None);
    }
}
