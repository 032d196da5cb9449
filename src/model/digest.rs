//! Content digests as sent in `Digest:` headers and stored in `.digests` (spec/API.md §5.1).

use sha2::Digest as _;
use std::fmt;

/// A hash algorithm arbor can verify. sha256 is the one that matters; the others are cheap to
/// offer and dlrepo accepts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algo {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Algo {
    fn from_name(name: &str) -> Option<Algo> {
        Some(match name {
            "md5" => Algo::Md5,
            "sha1" => Algo::Sha1,
            "sha224" => Algo::Sha224,
            "sha256" => Algo::Sha256,
            "sha384" => Algo::Sha384,
            "sha512" => Algo::Sha512,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Algo::Md5 => "md5",
            Algo::Sha1 => "sha1",
            Algo::Sha224 => "sha224",
            Algo::Sha256 => "sha256",
            Algo::Sha384 => "sha384",
            Algo::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algo::Md5 => 32,
            Algo::Sha1 => 40,
            Algo::Sha224 => 56,
            Algo::Sha256 => 64,
            Algo::Sha384 => 96,
            Algo::Sha512 => 128,
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            Algo::Md5 => Hasher::Md5(md5::Md5::new()),
            Algo::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algo::Sha224 => Hasher::Sha224(sha2::Sha224::new()),
            Algo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algo::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            Algo::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

/// Incremental hashing for whichever algorithm the client named.
#[derive(Clone)]
pub enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha224(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    fn algo(&self) -> Algo {
        match self {
            Hasher::Md5(_) => Algo::Md5,
            Hasher::Sha1(_) => Algo::Sha1,
            Hasher::Sha224(_) => Algo::Sha224,
            Hasher::Sha256(_) => Algo::Sha256,
            Hasher::Sha384(_) => Algo::Sha384,
            Hasher::Sha512(_) => Algo::Sha512,
        }
    }

    pub fn finish_hex(self) -> String {
        match self {
            Hasher::Md5(h) => hex::encode(h.finalize()),
            Hasher::Sha1(h) => hex::encode(h.finalize()),
            Hasher::Sha224(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha384(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// The header is missing or not `{algo}:{hex}`; 422 quotes it (`None` when missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestError(pub String);

/// A parsed digest, lower-cased (spec/API.md Q19: dlrepo stored the header verbatim, which
/// made upper-case digests unusable by its own client).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    algo: Algo,
    hex: String,
}

impl Digest {
    pub fn parse(raw: Option<&str>) -> Result<Digest, DigestError> {
        let Some(raw) = raw else {
            return Err(DigestError("None".to_owned()));
        };
        let bad = || DigestError(raw.to_owned());
        let lower = raw.to_ascii_lowercase();
        let (algo, hex) = lower.split_once(':').ok_or_else(bad)?;
        let algo = Algo::from_name(algo).ok_or_else(bad)?;
        // dlrepo does not check the length; arbor does, so that a short value can never name
        // a blob path like `.blobs/sha256/a/a`.
        if hex.len() != algo.hex_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Digest {
            algo,
            hex: hex.to_owned(),
        })
    }

    pub fn sha256_of_hex(hex: String) -> Digest {
        Digest {
            algo: Algo::Sha256,
            hex,
        }
    }

    pub fn algo(&self) -> Algo {
        self.algo
    }

    /// The hasher for content that must match `expected`; content sent without a digest
    /// is named by its sha256 (spec/API.md Q21).
    pub fn hasher_for(expected: Option<&Digest>) -> Hasher {
        expected.map_or(Algo::Sha256, Digest::algo).hasher()
    }

    /// The digest of hashed content when it matches `expected` (always, without one);
    /// `Err` carries the expected digest for the 422.
    pub fn settle(expected: Option<&Digest>, hasher: Hasher) -> Result<Digest, String> {
        let found = Digest {
            algo: hasher.algo(),
            hex: hasher.finish_hex(),
        };
        match expected {
            Some(want) if *want != found => Err(want.to_string()),
            _ => Ok(found),
        }
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algo.name(), self.hex)
    }
}

/// One line of a `sha256sum` file, `{hex}  {name}\n`, with a name that holds a backslash, a
/// new line or a carriage return escaped as GNU coreutils (9) writes it and `sha256sum -c`
/// reads it: the line starts with `\`, and those characters are written `\\`, `\n` and
/// `\r`. Unescaped, a name could add a line of its own, giving another file a digest of
/// its choosing (or lose a trailing `\r`, which `-c` strips).
pub fn sums_line(hex: &str, name: &str) -> String {
    if !name.contains(['\\', '\n', '\r']) {
        return format!("{hex}  {name}\n");
    }
    let escaped = name
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r");
    format!("\\{hex}  {escaped}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    /// What `sha256sum -c` makes of the lines: a name with a new line is one file, checked
    /// against its own digest, and adds no line for another.
    #[test]
    // The files are sha256sum's to read, in a scratch directory: no tree is touched.
    #[allow(clippy::disallowed_methods)]
    fn sums_lines_name_every_file_as_sha256sum_reads_it() {
        use sha2::Digest as _;
        let dir = tempfile::tempdir().unwrap();
        let names = ["plain", "x\nba7816bf  plain", "back\\slash", "cr\r"];
        let mut sums = String::new();
        for (i, name) in names.iter().enumerate() {
            let data = format!("content {i}");
            std::fs::write(dir.path().join(name), &data).unwrap();
            sums.push_str(&sums_line(&hex::encode(sha2::Sha256::digest(&data)), name));
        }
        assert_eq!(sums.lines().count(), names.len(), "{sums}");
        assert!(sums.contains("\\") && sums.contains("x\\nba7816bf"));
        std::fs::write(dir.path().join("SUMS"), &sums).unwrap();
        let Ok(out) = std::process::Command::new("sha256sum")
            .args(["--strict", "-c", "SUMS"])
            .current_dir(dir.path())
            .output()
        else {
            return; // no coreutils here: the line count above still holds
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert_eq!(text.matches(": OK").count(), names.len(), "{text}");
    }

    #[test]
    fn parses_and_lower_cases() {
        let d = Digest::parse(Some(&format!("SHA256:{}", ABC.to_uppercase()))).unwrap();
        assert_eq!(d.to_string(), format!("sha256:{ABC}"));
    }

    #[test]
    fn rejects_malformed_headers() {
        assert_eq!(Digest::parse(None), Err(DigestError("None".into())));
        for bad in [
            "sha256",
            "sha256:xyz",
            "crc32:00",
            "sha256:abcd",
            "sha256: ab",
        ] {
            assert!(Digest::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashes_with_the_named_algorithm() {
        let mut h = Algo::Sha256.hasher();
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.finish_hex(), ABC);
        let mut h = Algo::Md5.hasher();
        h.update(b"abc");
        assert_eq!(h.finish_hex(), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn settles_with_or_without_an_expected_digest() {
        let hashed = |expected: Option<&Digest>| {
            let mut h = Digest::hasher_for(expected);
            h.update(b"abc");
            Digest::settle(expected, h)
        };
        let abc = Digest::sha256_of_hex(ABC.to_owned());
        assert_eq!(hashed(None), Ok(abc.clone()));
        assert_eq!(hashed(Some(&abc)), Ok(abc));
        let md5 = Digest::parse(Some("md5:900150983cd24fb0d6963f7d28e17f72")).unwrap();
        assert_eq!(hashed(Some(&md5)), Ok(md5));
        let other = Digest::sha256_of_hex("0".repeat(64));
        assert_eq!(hashed(Some(&other)), Err(other.to_string()));
    }
}
