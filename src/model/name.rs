//! Entity names and artifact paths, validated once at the edge (spec/API.md §1.2).

use std::fmt;

/// The longest file name component Linux filesystems take (`NAME_MAX`), in bytes.
pub const NAME_MAX: usize = 255;

/// Whether a decoded path segment can never be a file name here, as sent or lower-cased
/// (lower-casing may lengthen UTF-8). Such a request gets a 400 saying so instead of the
/// filesystem's `ENAMETOOLONG` surfacing as a 500.
pub fn too_long(segment: &str) -> bool {
    segment.len() > NAME_MAX || segment.to_lowercase().len() > NAME_MAX
}

/// The name does not denote an entity: the answer is 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotFound;

/// A branch, tag, job, format, product, variant, product branch, version or user name:
/// lower-cased, never empty, never starting with `.` and never holding `/` or NUL, so it is
/// always exactly one path component and never a reserved dot entry (`.blobs`, `..`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    pub fn parse(raw: &str) -> Result<Name, NotFound> {
        if raw.is_empty() || raw.starts_with('.') || raw.contains(['/', '\0']) || too_long(raw) {
            return Err(NotFound);
        }
        Ok(Name(raw.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<std::path::Path> for Name {
    fn as_ref(&self) -> &std::path::Path {
        self.0.as_ref()
    }
}

/// The artifact path is not acceptable; the 400 body quotes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelPathError(pub String);

/// A file path below a format directory. Case is kept. It is relative, has no empty, `.` or
/// `..` segment, and is not one of the format's own dot-files.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    pub fn parse(raw: &str) -> Result<RelPath, RelPathError> {
        let bad = raw.is_empty()
            || raw.starts_with('/')
            || raw.contains('\0')
            || raw == ".digests"
            || raw == ".dirty"
            // spec/API.md Q20: empty segments (`a//b`, `x/`) are refused instead of stored.
            || raw.split('/').any(|s| s.is_empty() || s == "." || s == "..");
        if bad {
            return Err(RelPathError(raw.to_owned()));
        }
        if raw.split('/').any(|s| s.len() > NAME_MAX) {
            return Err(RelPathError("File name too long".to_owned()));
        }
        Ok(RelPath(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Last segment: what `.sha256` lines and `Content-Disposition` show.
    pub fn basename(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_cased_and_single_components() {
        assert_eq!(Name::parse("MaIn").unwrap().as_str(), "main");
        assert_eq!(Name::parse("j\u{c9}b sp").unwrap().as_str(), "j\u{e9}b sp");
        for bad in ["", ".", "..", ".blobs", "a/b", "x\0"] {
            assert_eq!(Name::parse(bad), Err(NotFound), "{bad:?}");
        }
        assert!(Name::parse(&"n".repeat(NAME_MAX)).is_ok());
        assert_eq!(Name::parse(&"n".repeat(NAME_MAX + 1)), Err(NotFound));
        // "İ" is two bytes, its lower case three: 128 of them fit as sent, not on disk.
        assert!(too_long(&"\u{130}".repeat(128)));
    }

    #[test]
    fn relpaths_follow_the_artifact_rules() {
        for good in ["f", "Dir/F.txt", ".hidden", "sub/.digests", "a+b c"] {
            assert_eq!(RelPath::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "", "/abs", "..", "a/../b", "./a", "a/.", ".digests", ".dirty", "a//b", "x/",
        ] {
            assert!(RelPath::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(RelPath::parse("d/e/f.txt").unwrap().basename(), "f.txt");
        let long = "a".repeat(NAME_MAX + 1);
        assert_eq!(
            RelPath::parse(&format!("d/{long}")),
            Err(RelPathError("File name too long".into()))
        );
        assert!(RelPath::parse(&format!("{}/x", "a".repeat(NAME_MAX))).is_ok());
    }
}
