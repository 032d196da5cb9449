//! The index on disk: `.search/index` under the root, a snapshot of every job record with
//! its signature, so that a start reads it and then walks only the stamps (re-reading what
//! changed meanwhile) instead of every file list. Derived data: a missing, old or broken
//! file is ignored and the tree walked in full; deleting `.search/` at any time is safe.
//!
//! Format (little-endian): the magic line, then the file-name and digest tables (`u32`
//! count, then `u32` length and bytes each), then the jobs (`u32` count), each: user
//! (empty for the root), branch, tag, job, `i64` stamp, `u64` signature, `i64` job
//! directory mtime, `u8` flags (locked, released, stable, linked to a product version,
//! tag locked),
//! the version's URL and `i64` stamp when linked, metadata pairs, and formats with their
//! `(name, digest)` table indexes.

use super::index::{Index, JobRec};
use super::walk::RawJob;
use crate::model::{BranchRef, JobRef, Name, Scope, TagRef};
use crate::storage::{Repo, StoreError};

const MAGIC: &[u8] = b"arbor search index 2\n";

impl Repo {
    pub(super) fn search_index_path(&self) -> std::path::PathBuf {
        self.root.join(".search").join("index")
    }

    /// Writes `idx` to `.search/index`, replacing it atomically.
    pub(crate) fn save_search_index(&self, idx: &Index) -> Result<(), StoreError> {
        let data = encode(idx);
        let path = self.search_index_path();
        if let Some(dir) = path.parent() {
            crate::storage::files::create_dirs(dir).map_err(|e| StoreError::at("mkdir", dir, e))?;
        }
        super::super::files::write_atomic(&self.uploads_dir(), &path, &data)
    }

    /// Hands each job of `.search/index` to `each`, one at a time (a broken file stops
    /// where it breaks: the walk that follows reads what is missing). `false` when there
    /// is no readable file, or it ended early.
    pub(crate) fn load_search_index(&self, each: &mut dyn FnMut(RawJob)) -> bool {
        let Ok(data) = std::fs::read(self.search_index_path()) else {
            return false;
        };
        decode(&data, each).is_some()
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn encode(idx: &Index) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for table in [&idx.names, &idx.digests] {
        put_u32(&mut out, table.len());
        for s in table.iter() {
            put_str(&mut out, s);
        }
    }
    let jobs: Vec<&JobRec> = idx.jobs.iter().flatten().collect();
    put_u32(&mut out, jobs.len());
    for j in jobs {
        let t = &j.job.tag;
        let user = match &t.branch.scope {
            Scope::Root => "",
            Scope::User(u) => u.as_str(),
        };
        for s in [
            user,
            t.branch.branch.as_str(),
            t.tag.as_str(),
            j.job.job.as_str(),
        ] {
            put_str(&mut out, s);
        }
        out.extend_from_slice(&j.ts.to_le_bytes());
        out.extend_from_slice(&j.sig.to_le_bytes());
        out.extend_from_slice(&j.dir_ns.to_le_bytes());
        out.push(
            u8::from(j.locked)
                | u8::from(j.released) << 1
                | u8::from(j.stable) << 2
                | u8::from(j.product.is_some()) << 3
                | u8::from(j.tag_locked) << 4,
        );
        if let Some(p) = &j.product {
            put_str(&mut out, &p.url);
            out.extend_from_slice(&p.ts.to_le_bytes());
        }
        put_u32(&mut out, j.metadata.len());
        for (k, v) in &j.metadata {
            put_str(&mut out, k);
            put_str(&mut out, v);
        }
        put_u32(&mut out, j.formats.len());
        for f in &j.formats {
            put_str(&mut out, &f.name);
            put_u32(&mut out, f.files.len());
            for file in &f.files {
                out.extend_from_slice(&file.name.to_le_bytes());
                out.extend_from_slice(&file.digest.to_le_bytes());
            }
        }
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }

    fn strs(&mut self) -> Option<Vec<String>> {
        let n = self.u32()? as usize;
        (0..n).map(|_| self.str()).collect()
    }

    fn name(&mut self) -> Option<Name> {
        Name::parse(&self.str()?).ok()
    }
}

fn decode(data: &[u8], each: &mut dyn FnMut(RawJob)) -> Option<()> {
    let mut r = Reader(data.strip_prefix(MAGIC)?);
    let (names, digests) = (r.strs()?, r.strs()?);
    for _ in 0..r.u32()? {
        each(job(&mut r, &names, &digests)?);
    }
    r.0.is_empty().then_some(())
}

/// A count, then that many items: in a vector of just that capacity, since the index keeps
/// these for as long as their job lives (a `collect` through `Option` reserves by doubling).
fn counted<T>(
    r: &mut Reader<'_>,
    mut item: impl FnMut(&mut Reader<'_>) -> Option<T>,
) -> Option<Vec<T>> {
    let n = r.u32()? as usize;
    // The count comes from a file, so it reserves no more than a few items up front.
    let mut out = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        out.push(item(r)?);
    }
    out.shrink_to_fit();
    Some(out)
}

fn job(r: &mut Reader<'_>, names: &[String], digests: &[String]) -> Option<RawJob> {
    let user = r.str()?;
    let scope = match user.as_str() {
        "" => Scope::Root,
        u => Scope::User(Name::parse(u).ok()?),
    };
    let (branch, tag, job) = (r.name()?, r.name()?, r.name()?);
    let job = JobRef {
        tag: TagRef {
            branch: BranchRef { scope, branch },
            tag,
        },
        job,
    };
    let ts = r.i64()?;
    let sig = r.u64()?;
    let dir_ns = r.i64()?;
    let flags = *r.take(1)?.first()?;
    let product = if flags & 8 != 0 {
        Some((r.str()?, r.i64()?))
    } else {
        None
    };
    let metadata = counted(r, |r| Some((r.str()?, r.str()?)))?;
    let formats = counted(r, |r| {
        let name = r.str()?;
        let files = counted(r, |r| {
            let (n, d) = (r.u32()? as usize, r.u32()? as usize);
            Some((names.get(n)?.clone(), digests.get(d)?.clone()))
        })?;
        Some((name, files))
    })?;
    Some(RawJob {
        url: job.url(),
        job,
        ts,
        sig,
        dir_ns,
        product,
        locked: flags & 1 != 0,
        tag_locked: flags & 16 != 0,
        released: flags & 2 != 0,
        stable: flags & 4 != 0,
        metadata,
        formats,
    })
}
