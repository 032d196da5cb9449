//! The encodings a bundle is served in besides its plain `.tar` (spec/API.md §6): the tar
//! compressed with gzip, xz or zstd, and a zip of the same members. Each is deterministic:
//! fixed levels and settings, no name in any header, and the only time written is the
//! entity timestamp the bundle's `SHA256SUMS.txt` already carries.
//!
//! Compressing happens in the same short blocking tasks, under the same read slots, as the
//! tar itself (see `pool.rs`), so a slow codec holds no more of the blocking pool than a
//! plain download does.

mod compress;
mod zip;

pub use compress::compress_stream;
pub(crate) use compress::gzip_reproducible;
pub use zip::zip_stream;

/// How a bundle is packaged, from the suffix of its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Tar,
    TarGz,
    TarXz,
    TarZst,
    Zip,
}

impl Encoding {
    /// Longest suffixes first: `.tar.gz` must not be read as a `.gz` of something else,
    /// and every compressed tar ends with `.tar` only after its own suffix is taken.
    const ALL: [Encoding; 5] = [
        Encoding::TarGz,
        Encoding::TarXz,
        Encoding::TarZst,
        Encoding::Zip,
        Encoding::Tar,
    ];

    /// What ends the bundle's URL and its file name.
    pub fn suffix(self) -> &'static str {
        match self {
            Encoding::Tar => ".tar",
            Encoding::TarGz => ".tar.gz",
            Encoding::TarXz => ".tar.xz",
            Encoding::TarZst => ".tar.zst",
            Encoding::Zip => ".zip",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Tar => "application/x-tar",
            Encoding::TarGz => "application/gzip",
            Encoding::TarXz => "application/x-xz",
            Encoding::TarZst => "application/zstd",
            Encoding::Zip => "application/zip",
        }
    }

    /// Splits a bundle suffix off a URL segment: `("j", TarGz)` for `j.tar.gz`. The stem
    /// is not validated here (an empty one is the caller's 404, as for `.tar`).
    pub fn split(segment: &str) -> Option<(&str, Encoding)> {
        Encoding::ALL
            .into_iter()
            .find_map(|e| segment.strip_suffix(e.suffix()).map(|stem| (stem, e)))
    }

    /// Every encoding, in the order pages list them.
    pub fn offered() -> [Encoding; 5] {
        [
            Encoding::Tar,
            Encoding::TarGz,
            Encoding::TarXz,
            Encoding::TarZst,
            Encoding::Zip,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::Encoding;

    #[test]
    fn longest_suffix_wins() {
        assert_eq!(Encoding::split("j.tar.gz"), Some(("j", Encoding::TarGz)));
        assert_eq!(Encoding::split("j.tar.xz"), Some(("j", Encoding::TarXz)));
        assert_eq!(Encoding::split("j.tar.zst"), Some(("j", Encoding::TarZst)));
        assert_eq!(Encoding::split("j.zip"), Some(("j", Encoding::Zip)));
        assert_eq!(Encoding::split("j.tar"), Some(("j", Encoding::Tar)));
        assert_eq!(
            Encoding::split("a.tar.tar.gz"),
            Some(("a.tar", Encoding::TarGz))
        );
        assert_eq!(Encoding::split("j.gz"), None);
        assert_eq!(Encoding::split("j.tgz"), None);
        assert_eq!(Encoding::split(".zip"), Some(("", Encoding::Zip)));
        assert_eq!(Encoding::split("j"), None);
    }
}
