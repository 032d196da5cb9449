//! The index files of one repository, made together from its `Packages` text and its
//! time: `Packages`, `Packages.gz`, `Packages.xz` and the `Release` that lists their sums.
//! The same text and time always give the same bytes.

use super::cache::{Cache, Weigh};
use super::deb::Sums;
use bytes::Bytes;
use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Mutex;

/// Every index file of a repository, and the time `Release` carries (Unix seconds).
#[derive(Default)]
pub(crate) struct Indexes {
    // Shared with every answer that serves them (`Bytes` clones are a count, not a copy).
    pub packages: Bytes,
    pub gz: Bytes,
    pub xz: Bytes,
    pub release: Bytes,
    pub time: f64,
    /// Signed forms of `release`, by file name and key fingerprint: made once, since the
    /// same Release, key and time always give the same signature.
    pub signed: Mutex<HashMap<(&'static str, String), Vec<u8>>>,
}

impl Indexes {
    pub(crate) fn build(packages: String, time: f64) -> io::Result<Indexes> {
        let packages = packages.into_bytes();
        let gz = gzip(&packages)?;
        let xz = xz(&packages)?;
        let release = release(
            &[
                ("Packages", &packages),
                ("Packages.gz", &gz),
                ("Packages.xz", &xz),
            ],
            time,
        )?;
        Ok(Indexes {
            packages: packages.into(),
            gz: gz.into(),
            xz: xz.into(),
            release: release.into_bytes().into(),
            time,
            signed: Mutex::default(),
        })
    }

    /// The memory they take (signatures, a few KiB, aside).
    pub(crate) fn weight(&self) -> usize {
        self.packages.len() + self.gz.len() + self.xz.len() + self.release.len()
    }
}

impl Weigh for Indexes {
    fn weight(&self) -> usize {
        Indexes::weight(self)
    }
}

/// The cache of APT indexes.
pub(crate) type IndexCache = Cache<Indexes>;

impl Default for IndexCache {
    fn default() -> Self {
        Cache::with_budget(Self::BUDGET)
    }
}

impl IndexCache {
    /// What all the cached indexes may take together.
    pub(crate) const BUDGET: usize = 64 << 20;
}

fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    crate::storage::encodings::gzip_reproducible(data, flate2::Compression::best())
}

fn xz(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
    enc.write_all(data)?;
    enc.finish()
}

/// The `Release` file: `time` as `Date`, and the sums of the index files.
fn release(files: &[(&str, &[u8])], time: f64) -> io::Result<String> {
    let date = std::time::UNIX_EPOCH + std::time::Duration::from_secs(time.max(0.0) as u64);
    let date = httpdate::fmt_http_date(date).replace("GMT", "UTC");
    let mut sums = Vec::new();
    for (name, data) in files {
        sums.push((*name, Sums::of(&mut &data[..])?));
    }
    let mut out = format!("Date: {date}\n");
    for field in ["MD5Sum", "SHA1", "SHA256"] {
        out.push_str(&format!("{field}:\n"));
        for (name, s) in &sums {
            let sum = match field {
                "MD5Sum" => &s.md5,
                "SHA1" => &s.sha1,
                _ => &s.sha256,
            };
            out.push_str(&format!(" {sum} {:>8} {name}\n", s.size));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_is_deterministic_and_lists_the_indexes() {
        let a = Indexes::build("Package: x\n\n".into(), 1_700_000_000.5).unwrap();
        let b = Indexes::build("Package: x\n\n".into(), 1_700_000_000.5).unwrap();
        assert_eq!((&a.release, &a.gz, &a.xz), (&b.release, &b.gz, &b.xz));
        let text = String::from_utf8(a.release.to_vec()).unwrap();
        assert!(text.starts_with("Date: Tue, 14 Nov 2023 22:13:20 UTC\nMD5Sum:\n"));
        assert_eq!(text.matches(" Packages.xz\n").count(), 3);
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&a.xz));
        assert!(text.contains(&format!(" {sha} {:>8} Packages.xz\n", a.xz.len())));
    }
}
