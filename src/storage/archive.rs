//! Tar bundles (spec/API.md §6): the [`TarPlan`] that decides every byte (member names,
//! sizes, modes, digests and the entity's timestamp, never a blob's mtime), its length and
//! strong validator computed without reading file data, and the stream of any byte range of
//! it, made one chunk at a time in constant memory.

use super::ByteRange;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{self, ErrorKind};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

const BLOCK: u64 = 512;
/// GNU tar and Python pad archives to 20 blocks; spec/API.md §6 asks the same (Q9).
const RECORD: u64 = 10240;
/// Largest value of an 11-digit octal header field; larger sizes also get a pax record.
const OCTAL11_MAX: u64 = 0o777_7777_7777;
/// Changes whenever the encoding below changes, so that no validator outlives the bytes
/// it was given for.
const ENCODING_VERSION: &str = "arbor-bundle-1";

/// One file of the archive, as it was when the bundle was planned.
#[derive(Debug, Clone)]
pub struct Member {
    /// member name relative to the archive prefix, e.g. "fmt/dir/f1.txt"
    pub name: String,
    /// absolute path of the file to read (may go through symlinks)
    pub path: PathBuf,
    /// digest string as stored in .digests, e.g. "sha256:abcd..." (any algo; only sha256 goes
    /// into SHA256SUMS.txt)
    pub digest: String,
    pub size: u64,
    /// `st_mode & 0o7777`
    pub mode: u32,
    /// (device, inode): the stream refuses a file replaced since planning, whose bytes the
    /// validator does not describe.
    pub(crate) inode: (u64, u64),
}

impl Member {
    /// Stats `path` now: its size, mode and identity go into the archive's layout.
    pub fn stat(name: String, path: PathBuf, digest: String) -> io::Result<Member> {
        let meta = super::stale::retry_stale(|| std::fs::metadata(&path))
            .map_err(|e| with_path(&path, e))?;
        if !meta.is_file() {
            let e = io::Error::new(ErrorKind::InvalidInput, "not a regular file");
            return Err(with_path(&path, e));
        }
        Ok(Member {
            name,
            path,
            digest,
            size: meta.len(),
            mode: meta.mode() & 0o7777,
            inode: (meta.dev(), meta.ino()),
        })
    }
}

impl Member {
    /// The member as the file is now (`meta`), under `digest`: after its entry was settled
    /// (`settle.rs`).
    pub(crate) fn reopened(self, meta: &std::fs::Metadata, digest: String) -> Member {
        Member {
            digest,
            size: meta.len(),
            mode: meta.mode() & 0o7777,
            inode: (meta.dev(), meta.ino()),
            ..self
        }
    }
}

/// Everything the bytes of a bundle depend on: what it holds and the entity's own timestamp
/// (the job's or version's `.stamp`, the format's `.digests`). Other encodings of the same
/// bundle take their members, sums and time from here too.
#[derive(Debug, Clone)]
pub struct TarPlan {
    pub prefix: String,
    /// Sorted by name (code points).
    pub members: Vec<Member>,
    /// The entity timestamp, as the JSON API shows it.
    pub sums_mtime: f64,
}

impl TarPlan {
    pub fn new(prefix: String, mut members: Vec<Member>, sums_mtime: f64) -> TarPlan {
        // String order is byte order of UTF-8, which is code point order.
        members.sort_by(|a, b| a.name.cmp(&b.name));
        TarPlan {
            prefix,
            members,
            sums_mtime,
        }
    }

    /// Every member's mtime, `SHA256SUMS.txt`'s included: the entity timestamp in whole
    /// seconds, so that no member needs a pax record for it and any transport of the time
    /// keeps it exact.
    pub fn mtime(&self) -> u64 {
        if self.sums_mtime.is_finite() && self.sums_mtime > 0.0 {
            // `as` saturates, which is the best a 12-byte field can do anyway.
            self.sums_mtime.floor() as u64
        } else {
            0
        }
    }

    /// `{hex}  {name}\n` per sha256 member (`sums_line`), in member order (spec/API.md §6); empty when
    /// none, and then the archive has no `SHA256SUMS.txt`.
    pub fn sha256sums(&self) -> String {
        let mut sums = String::new();
        for m in &self.members {
            if let Some(hex) = m.digest.strip_prefix("sha256:") {
                sums.push_str(&crate::model::sums_line(hex, &m.name));
            }
        }
        sums
    }

    /// A strong validator of the bundle in `encoding` ("tar", or another encoding's name),
    /// quoted: a hash of everything the bytes depend on, computed without reading a file.
    pub fn etag(&self, encoding: &str) -> String {
        let mut h = Sha256::new();
        for part in [ENCODING_VERSION, encoding, &self.prefix] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.update(self.mtime().to_be_bytes());
        for m in &self.members {
            h.update(m.name.as_bytes());
            h.update([0]);
            h.update(m.digest.as_bytes());
            h.update([0]);
            h.update(m.size.to_be_bytes());
            h.update(m.mode.to_be_bytes());
        }
        format!("\"{}\"", hex::encode(h.finalize()))
    }

    /// The tar's layout: where each member starts, and the total length.
    pub fn tar_layout(&self) -> TarLayout {
        let mut starts = Vec::with_capacity(self.members.len() + 1);
        let mut at = 0u64;
        for m in &self.members {
            starts.push(at);
            at += header_len(&self.member_path(&m.name), m.size) + padded(m.size);
        }
        starts.push(at);
        let sums_block = match self.sha256sums().len() as u64 {
            0 => 0,
            n => header_len(&self.member_path("SHA256SUMS.txt"), n) + padded(n),
        };
        let trailer_start = at + sums_block;
        let mut len = trailer_start + 2 * BLOCK;
        len += (RECORD - len % RECORD) % RECORD;
        TarLayout {
            starts,
            trailer_start,
            len,
        }
    }

    fn member_path(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    /// Streams the tar, or the `range` of it: members in order, each stored as
    /// `{prefix}/{name}`, then `{prefix}/SHA256SUMS.txt` when at least one digest is
    /// sha256, then the end blocks and padding to a multiple of 10240 bytes.
    ///
    /// Each chunk (`chunk_size` bytes, the last one shorter) is made by one short blocking
    /// task when the response polls for it, so files are read once, memory stays at one
    /// chunk, and a client that stops reading holds no thread. A member that is gone, was
    /// replaced, or whose size differs from the plan ends the stream with an `Err` item, so
    /// the response is cut instead of ending as a valid but wrong tar.
    pub fn tar_stream(
        self,
        range: Option<ByteRange>,
        chunk_size: usize,
    ) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        let layout = self.tar_layout();
        let (pos, end) = match range {
            Some(r) => (r.start, r.end.saturating_add(1).min(layout.len)),
            None => (0, layout.len),
        };
        let cursor = Cursor {
            plan: self,
            layout,
            pos,
            end,
            open: None,
            sums: None,
            out: Sink::new(chunk_size),
        };
        super::pool::pooled_stream(cursor, "tar stream")
    }
}

/// Where the parts of a tar start.
#[derive(Debug, Clone)]
pub struct TarLayout {
    /// Offset of each member's header, then of the sums file's (or the trailer's).
    starts: Vec<u64>,
    trailer_start: u64,
    /// The whole archive's length in bytes.
    pub len: u64,
}

/// `n` rounded up to whole blocks.
fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

/// Bytes of the headers of a member: its pax header and records when it needs them, then
/// its ustar header.
fn header_len(path: &str, size: u64) -> u64 {
    let records = pax_records(path, size).len() as u64;
    match records {
        0 => BLOCK,
        n => 2 * BLOCK + padded(n),
    }
}

/// What the tar holds at some offset.
enum Part {
    /// A member (index), and the offset within its header, data and padding.
    Member(usize, u64),
    Sums(u64),
    Trailer,
}

/// Where a tar stream stands between two chunks.
struct Cursor {
    plan: TarPlan,
    layout: TarLayout,
    /// The next byte to send, and the end (exclusive) of what is asked for.
    pos: u64,
    end: u64,
    /// The member whose data is being copied.
    open: Option<(usize, File)>,
    /// The sums file's header and data, made when reached.
    sums: Option<Vec<u8>>,
    out: Sink,
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl super::pool::ChunkSource for Cursor {
    fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        self.read_chunk()
    }
}

impl Cursor {
    /// The next chunk of the archive, `None` after the last one. Blocking (file reads).
    fn read_chunk(&mut self) -> io::Result<Option<Bytes>> {
        while !self.out.full() && self.pos < self.end {
            let want = (self.end - self.pos).min(self.out.room() as u64);
            let n = match self.locate() {
                Part::Member(i, off) => self.member_bytes(i, off, want)?,
                Part::Sums(off) => {
                    let plan = &self.plan;
                    let sums = self.sums.get_or_insert_with(|| sums_block(plan));
                    let from = usize::try_from(off).unwrap_or(usize::MAX).min(sums.len());
                    let part = &sums[from..];
                    let n = part.len().min(usize::try_from(want).unwrap_or(usize::MAX));
                    self.out.push(&part[..n]);
                    n as u64
                }
                Part::Trailer => {
                    self.out.zeros(want);
                    want
                }
            };
            self.pos += n;
        }
        Ok(self.out.take_chunk())
    }

    fn locate(&self) -> Part {
        let starts = &self.layout.starts;
        let members = self.plan.members.len();
        if self.pos >= self.layout.trailer_start {
            return Part::Trailer;
        }
        if self.pos >= starts[members] {
            return Part::Sums(self.pos - starts[members]);
        }
        // The last member whose start is at or before `pos`.
        let i = starts[..members].partition_point(|s| *s <= self.pos) - 1;
        Part::Member(i, self.pos - starts[i])
    }

    /// Copies at most `want` bytes of member `i` from `off` within its block; returns how
    /// many (at least one).
    fn member_bytes(&mut self, i: usize, off: u64, want: u64) -> io::Result<u64> {
        let m = &self.plan.members[i];
        let path = self.plan.member_path(&m.name);
        let hlen = header_len(&path, m.size);
        if off < hlen {
            let header = header_bytes(&path, m.mode, m.size, self.plan.mtime());
            let from = usize::try_from(off).unwrap_or(usize::MAX).min(header.len());
            let part = &header[from..];
            let n = part.len().min(usize::try_from(want).unwrap_or(usize::MAX));
            self.out.push(&part[..n]);
            return Ok(n as u64);
        }
        let data_off = off - hlen;
        if data_off >= m.size {
            let n = (padded(m.size) - data_off).min(want);
            self.out.zeros(n);
            return Ok(n);
        }
        if self.open.as_ref().is_none_or(|(at, _)| *at != i) {
            self.open = Some((i, open_member(m)?));
        }
        let Some((_, file)) = &self.open else {
            return Err(io::Error::other("member not open"));
        };
        let max = want.min(m.size - data_off);
        let n = self
            .out
            .read_at(file, data_off, max)
            .map_err(|e| with_path(&m.path, e))?;
        if n == 0 {
            let shrank = io::Error::new(ErrorKind::UnexpectedEof, "file shrank while archived");
            return Err(with_path(&m.path, shrank));
        }
        if data_off + n as u64 == m.size {
            // A file that grew would silently lose its tail; its digest would no longer
            // match.
            if read_at(file, &mut [0u8; 1], m.size).map_err(|e| with_path(&m.path, e))? != 0 {
                let grew = io::Error::other("file grew while archived");
                return Err(with_path(&m.path, grew));
            }
            self.open = None;
        }
        Ok(n as u64)
    }
}

/// Opens a member and checks that it is still the file that was planned.
fn open_member(m: &Member) -> io::Result<File> {
    let fail = |e: io::Error| with_path(&m.path, e);
    let file = super::stale::retry_stale(|| File::open(&m.path)).map_err(fail)?;
    // fstat on the open file: the data must be that of the file the headers describe.
    let meta = file.metadata().map_err(fail)?;
    if !meta.is_file() {
        return Err(fail(io::Error::new(
            ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    if meta.len() != m.size || (meta.dev(), meta.ino()) != m.inode {
        return Err(fail(io::Error::other(
            "file changed since the bundle began",
        )));
    }
    Ok(file)
}

/// The sums file: its headers, its data and its padding.
fn sums_block(plan: &TarPlan) -> Vec<u8> {
    let sums = plan.sha256sums();
    let path = plan.member_path("SHA256SUMS.txt");
    let mut out = header_bytes(&path, 0o644, sums.len() as u64, plan.mtime());
    out.extend_from_slice(sums.as_bytes());
    out.resize(out.len().next_multiple_of(BLOCK as usize), 0);
    out
}

/// The pax records a member needs: `path` for names a ustar header cannot hold, `size`
/// above 8 GiB.
fn pax_records(path: &str, size: u64) -> Vec<u8> {
    let mut records = Vec::new();
    if !(path.is_ascii() && path.len() <= 100) {
        pax_record(&mut records, "path", path);
    }
    if size > OCTAL11_MAX {
        pax_record(&mut records, "size", &size.to_string());
    }
    records
}

/// The pax extended header (when needed) and the ustar header of a regular file:
/// [`header_len`] bytes.
fn header_bytes(path: &str, mode: u32, size: u64, mtime: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let records = pax_records(path, size);
    if !records.is_empty() {
        let mut pax = Header::new_ustar();
        // Python's tarfile name for these headers; readers without pax support would
        // extract it as a plain file, which is the POSIX-specified fallback.
        set_name(&mut pax, "././@PaxHeader");
        pax.set_entry_type(EntryType::XHeader);
        pax.set_mode(0o644);
        pax.set_uid(0);
        pax.set_gid(0);
        pax.set_size(records.len() as u64);
        pax.set_cksum();
        out.extend_from_slice(pax.as_bytes());
        out.extend_from_slice(&records);
        out.resize(out.len().next_multiple_of(BLOCK as usize), 0);
    }
    let mut h = Header::new_ustar();
    if path.is_ascii() && path.len() <= 100 {
        set_name(&mut h, path);
    } else {
        // Pax readers take the "path" record; this stand-in only serves readers without
        // pax support, the way Python fills it (ASCII, '?' for the rest, cut at 100).
        let ascii: String = path
            .chars()
            .map(|c| if c.is_ascii() { c } else { '?' })
            .take(100)
            .collect();
        set_name(&mut h, &ascii);
    }
    h.set_entry_type(EntryType::Regular);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    // Above 8 GiB the tar crate switches to GNU base-256, which both readers also accept.
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out
}

/// Writes `name` into the 100-byte name field as-is: `Header::set_path` would split long
/// names into the ustar prefix and reject some names that pax carries fine.
fn set_name(h: &mut Header, name: &str) {
    let field = &mut h.as_old_mut().name;
    let n = name.len().min(field.len());
    field[..n].copy_from_slice(&name.as_bytes()[..n]);
}

/// Appends `"{len} {key}={value}\n"`, where `len` counts the whole record, its own digits
/// included.
fn pax_record(records: &mut Vec<u8>, key: &str, value: &str) {
    let body = key.len() + value.len() + 3; // ' ', '=' and '\n'
    let mut len = body;
    loop {
        let with_digits = body + len.to_string().len();
        if with_digits == len {
            break;
        }
        len = with_digits;
    }
    records.extend_from_slice(format!("{len} {key}={value}\n").as_bytes());
}

fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, at) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Archive bytes waiting to be sent, cut into chunks of `chunk_size` (the last one shorter).
struct Sink {
    buf: BytesMut,
    chunk_size: usize,
}

impl Sink {
    fn new(chunk_size: usize) -> Sink {
        // A zero chunk size would leave no room to read into.
        let chunk_size = chunk_size.max(1);
        Sink {
            buf: BytesMut::with_capacity(chunk_size),
            chunk_size,
        }
    }

    fn full(&self) -> bool {
        self.buf.len() >= self.chunk_size
    }

    fn room(&self) -> usize {
        self.chunk_size.saturating_sub(self.buf.len())
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn zeros(&mut self, n: u64) {
        // Callers pass at most the room left in the chunk.
        let n = usize::try_from(n).unwrap_or(0);
        self.buf.resize(self.buf.len() + n, 0);
    }

    /// Reads at most `max` bytes of `file` from `at` straight into the pending chunk, so
    /// file data is copied once on its way to the socket. Returns 0 at end of file.
    fn read_at(&mut self, file: &File, at: u64, max: u64) -> io::Result<usize> {
        let start = self.buf.len();
        let room = usize::try_from(max).map_or(self.room(), |max| self.room().min(max));
        self.buf.resize(start + room, 0);
        let n = match read_at(file, &mut self.buf[start..], at) {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(start);
                return Err(e);
            }
        };
        self.buf.truncate(start + n);
        Ok(n)
    }

    /// The pending bytes as the next chunk, `None` when nothing is pending.
    fn take_chunk(&mut self) -> Option<Bytes> {
        if self.buf.is_empty() {
            return None;
        }
        let chunk = self.buf.split().freeze();
        // The chunk keeps its allocation; take a fresh one now rather than growing piecemeal.
        self.buf.reserve(self.chunk_size);
        Some(chunk)
    }
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
