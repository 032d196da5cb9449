//! The `/search` query language (docs/search.md): words, `field:value` filters and
//! `key=value` metadata matches, parsed into a [`Query`]. Pure; no I/O.

use regex::Regex;

/// A case-insensitive shell glob (`*` any run of characters, `/` included; `?` one).
#[derive(Debug, Clone)]
pub struct Glob {
    re: Regex,
    pattern: String,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, String> {
        let mut re = String::from("(?is)^");
        for c in pattern.chars() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        Regex::new(&re)
            .map(|re| Glob {
                re,
                pattern: pattern.to_lowercase(),
            })
            .map_err(|e| format!("bad pattern {pattern:?}: {e}"))
    }

    pub fn matches(&self, s: &str) -> bool {
        self.re.is_match(s)
    }

    /// The pattern, lower-cased (it matches case-insensitively).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

/// What kind of entity a result is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Job,
    Format,
    File,
    Image,
    Product,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Job => "job",
            Kind::Format => "format",
            Kind::File => "file",
            Kind::Image => "image",
            Kind::Product => "product",
        }
    }
}

/// A parsed query: every part must hold (AND).
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Free words, lower-cased: each must be part of a name or metadata value on the way
    /// from the branch down to the result.
    pub words: Vec<String>,
    pub name: Option<Glob>,
    /// `algo:hex`, lower-cased.
    pub digest: Option<String>,
    pub branch: Option<Glob>,
    pub tag: Option<Glob>,
    pub job: Option<Glob>,
    pub format: Option<Glob>,
    pub metadata: Vec<(String, Glob)>,
    pub locked: Option<bool>,
    pub released: Option<bool>,
    pub stable: Option<bool>,
    /// Job timestamps, in nanoseconds since the epoch: `after` inclusive, `before` exclusive.
    pub after: Option<i64>,
    pub before: Option<i64>,
    pub kind: Option<Kind>,
}

impl Query {
    pub fn parse(q: &str) -> Result<Query, String> {
        let mut query = Query::default();
        for token in tokens(q) {
            query.add(&token)?;
        }
        Ok(query)
    }

    /// Whether something below formats must match: results are then files.
    pub fn wants_files(&self) -> bool {
        self.name.is_some() || self.digest.is_some()
    }

    fn add(&mut self, token: &str) -> Result<(), String> {
        if let Some((field, value)) = token.split_once(':')
            && self.filter(&field.to_ascii_lowercase(), value)?
        {
            return Ok(());
        }
        if let Some((key, value)) = token.split_once('=')
            && is_key(key)
        {
            self.metadata
                .push((key.to_ascii_lowercase(), Glob::new(value)?));
            return Ok(());
        }
        if token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.digest = Some(format!("sha256:{}", token.to_ascii_lowercase()));
            return Ok(());
        }
        self.words.push(token.to_lowercase());
        Ok(())
    }

    /// Applies `field:value`; `false` when `field` is no filter (the token is then a word).
    fn filter(&mut self, field: &str, value: &str) -> Result<bool, String> {
        let glob = || Glob::new(value).map(Some);
        match field {
            "name" => self.name = glob()?,
            "branch" => self.branch = glob()?,
            "tag" => self.tag = glob()?,
            "job" => self.job = glob()?,
            "format" => self.format = glob()?,
            "locked" => self.locked = Some(flag(field, value)?),
            "released" => self.released = Some(flag(field, value)?),
            "stable" => self.stable = Some(flag(field, value)?),
            "after" => self.after = Some(date(value)?),
            "before" => self.before = Some(date(value)?),
            "digest" => self.digest = Some(digest(value)?),
            "kind" => self.kind = Some(kind(value)?),
            // A digest pasted without its `digest:`.
            "sha256" | "sha512" | "sha384" | "sha1" | "md5" if is_hex(value) => {
                self.digest = Some(format!("{field}:{}", value.to_ascii_lowercase()));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Whitespace-separated tokens; `"..."` keeps spaces (and may sit inside a token:
/// `name:"a b*"`).
fn tokens(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in q.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn flag(field: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Ok(true),
        "no" | "false" | "0" => Ok(false),
        _ => Err(format!(
            "{field}: takes yes, no, true or false, not {value:?}"
        )),
    }
}

fn kind(value: &str) -> Result<Kind, String> {
    match value.to_ascii_lowercase().as_str() {
        "job" => Ok(Kind::Job),
        "format" => Ok(Kind::Format),
        "file" => Ok(Kind::File),
        "image" => Ok(Kind::Image),
        "product" => Ok(Kind::Product),
        _ => Err(format!(
            "kind: takes job, format, file, image or product, not {value:?}"
        )),
    }
}

fn digest(value: &str) -> Result<String, String> {
    let value = value.to_ascii_lowercase();
    match value.split_once(':') {
        Some((algo, hex)) if !algo.is_empty() && is_hex(hex) => Ok(value),
        None if value.len() == 64 && is_hex(&value) => Ok(format!("sha256:{value}")),
        _ => Err(format!("digest: takes algo:hex, not {value:?}")),
    }
}

/// `YYYY-MM-DD` (midnight UTC) or RFC 3339 (`2026-01-31T12:00:00Z`, `+02:00`, fractions),
/// in nanoseconds since the epoch.
pub fn date(value: &str) -> Result<i64, String> {
    let bad = || format!("bad date {value:?}: use YYYY-MM-DD or RFC 3339");
    let b = value.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let s = value.get(r).ok_or_else(bad)?;
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<i64>().map_err(|_| bad())
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    let mut nanos = 0i64;
    if b.len() > 10 {
        if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
            return Err(bad());
        }
        secs += num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?;
        let mut rest = &value[19..];
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            let f = &frac[..digits];
            nanos = format!("{f:0<9}")[..9].parse::<i64>().map_err(|_| bad())?;
            rest = &frac[digits..];
        }
        secs -= offset(rest).ok_or_else(bad)?;
    }
    Ok(secs * 1_000_000_000 + nanos)
}

/// A zone suffix in seconds east of UTC.
fn offset(zone: &str) -> Option<i64> {
    if zone.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = zone[1..].split_once(':')?;
    Some(sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Query {
        Query::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    #[test]
    fn words_filters_and_metadata() {
        let q = parse(r#"LibFoo name:*.deb branch:2.* product=foo version=1.* "two words""#);
        assert_eq!(q.words, ["libfoo", "two words"]);
        assert!(q.name.as_ref().is_some_and(|g| g.matches("pool/X.DEB")));
        assert!(q.branch.as_ref().is_some_and(|g| g.matches("2.x")));
        assert_eq!(q.metadata.len(), 2);
        assert!(q.metadata[1].1.matches("1.2.3"));
        assert!(!q.metadata[1].1.matches("2.1"));
        assert!(q.wants_files());
    }

    #[test]
    fn digests_in_every_spelling() {
        let hex = "AB".repeat(32);
        let want = Some(format!("sha256:{}", hex.to_lowercase()));
        for q in [
            format!("digest:sha256:{hex}"),
            format!("digest:{hex}"),
            format!("sha256:{hex}"),
            hex.clone(),
        ] {
            assert_eq!(parse(&q).digest, want, "{q}");
        }
        assert!(Query::parse("digest:nothex").is_err());
    }

    #[test]
    fn flags_and_kinds() {
        let q = parse("locked:yes released:false stable:TRUE kind:image");
        assert_eq!(
            (q.locked, q.released, q.stable),
            (Some(true), Some(false), Some(true))
        );
        assert_eq!(q.kind, Some(Kind::Image));
        assert!(Query::parse("locked:maybe").is_err());
        assert!(Query::parse("kind:tag").is_err());
        // An unknown field is a word.
        assert_eq!(parse("foo:bar").words, ["foo:bar"]);
    }

    #[test]
    fn dates() {
        assert_eq!(date("1970-01-02"), Ok(86_400_000_000_000));
        assert_eq!(date("2026-12-05"), Ok(1_796_428_800 * 1_000_000_000));
        assert_eq!(
            date("1970-01-01T01:00:00+01:00"),
            Ok(0),
            "offsets count east of UTC"
        );
        assert_eq!(date("1970-01-01T00:00:01.5Z"), Ok(1_500_000_000));
        for bad in [
            "2026-13-01",
            "yesterday",
            "2026-01-01T10",
            "2026-01-01T10:00:00",
        ] {
            assert!(date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs_escape_regex_syntax() {
        let g = Glob::new("a+b(1)?.*").unwrap_or_else(|e| panic!("{e}"));
        assert!(g.matches("A+B(1)x.tar"));
        assert!(!g.matches("aab(1)x.tar"));
    }
}
