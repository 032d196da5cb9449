//! Streams tar bundles (spec/API.md §6) in constant memory: the tar encoding, produced one
//! chunk at a time as the response asks for it. Which files belong in a bundle is decided by
//! the caller.

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use tar::{EntryType, Header};

const BLOCK: u64 = 512;
/// GNU tar and Python pad archives to 20 blocks; spec/API.md §6 asks the same (Q9).
const RECORD: u64 = 10240;
/// Largest value of an 11-digit octal header field; larger sizes also get a pax record.
const OCTAL11_MAX: u64 = 0o777_7777_7777;

/// One file of the archive.
#[derive(Debug, Clone)]
pub struct Member {
    /// member name relative to the archive prefix, e.g. "fmt/dir/f1.txt"
    pub name: String,
    /// absolute path of the file to read (may go through symlinks)
    pub path: PathBuf,
    /// digest string as stored in .digests, e.g. "sha256:abcd..." (any algo; only sha256 goes
    /// into SHA256SUMS.txt)
    pub digest: String,
}

/// Stream the tar: members sorted by name (code points), each stored as `{prefix}/{name}`,
/// then `{prefix}/SHA256SUMS.txt` when at least one digest is sha256, then the end blocks
/// and padding to a multiple of 10240 bytes (spec/API.md §6).
///
/// Each chunk (`chunk_size` bytes, the last one shorter) is made by one short blocking task
/// when the response polls for it, so files are read once, memory stays at one chunk, and a
/// client that stops reading holds no thread. A missing or unreadable member, or one whose
/// size changes while it is read, ends the stream with an `Err` item, so the response is cut
/// instead of ending as a valid but wrong tar.
pub fn tar_stream(
    prefix: String,
    mut members: Vec<Member>,
    sums_mtime: f64,
    chunk_size: usize,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    // String order is byte order of UTF-8, which is code point order.
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let cursor = Cursor {
        prefix,
        members,
        sums_mtime,
        next: 0,
        open: None,
        ended: false,
        out: Sink::new(chunk_size),
    };
    let span = tracing::Span::current();
    futures_util::stream::unfold(Some(Box::new(cursor)), move |cursor| {
        let span = span.clone();
        async move {
            let mut cursor = cursor?;
            let slot = super::pool::read_slot().await;
            let made = tokio::task::spawn_blocking(move || {
                let _slot = slot;
                let chunk = span.in_scope(|| cursor.next_chunk());
                (cursor, chunk)
            })
            .await;
            match made {
                Ok((cursor, Ok(Some(chunk)))) => Some((Ok(chunk), Some(cursor))),
                Ok((_, Ok(None))) => None,
                Ok((_, Err(e))) => {
                    tracing::warn!(error = %e, "tar stream aborted");
                    Some((Err(e), None))
                }
                Err(e) => Some((Err(io::Error::other(e)), None)),
            }
        }
    })
}

/// Where a tar stream stands between two chunks.
struct Cursor {
    prefix: String,
    members: Vec<Member>,
    sums_mtime: f64,
    /// The next member to open.
    next: usize,
    /// The member whose data is being copied.
    open: Option<OpenMember>,
    /// The sums, end blocks and padding are written.
    ended: bool,
    out: Sink,
}

struct OpenMember {
    file: File,
    left: u64,
    path: PathBuf,
}

fn with_path(path: &std::path::Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl Cursor {
    /// The next chunk of the archive, `None` after the last one. Blocking (file reads).
    fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        while !self.out.full() {
            if let Some(m) = &mut self.open {
                if m.left > 0 {
                    let n = self
                        .out
                        .read_from(&mut m.file, m.left)
                        .map_err(|e| with_path(&m.path, e))?;
                    if n == 0 {
                        let shrank =
                            io::Error::new(ErrorKind::UnexpectedEof, "file shrank while archived");
                        return Err(with_path(&m.path, shrank));
                    }
                    m.left -= n as u64;
                    continue;
                }
                // A file that grew would silently lose its tail; its digest would no
                // longer match.
                if read_some(&mut m.file, &mut [0u8; 1]).map_err(|e| with_path(&m.path, e))? != 0 {
                    return Err(with_path(
                        &m.path,
                        io::Error::other("file grew while archived"),
                    ));
                }
                self.out.pad_block();
                self.open = None;
            } else if let Some(m) = self.members.get(self.next) {
                self.next += 1;
                self.open = Some(open_member(&mut self.out, &self.prefix, m)?);
            } else if !self.ended {
                self.ended = true;
                self.write_end();
            } else {
                break;
            }
        }
        Ok(self.out.take_chunk())
    }

    fn write_end(&mut self) {
        let sums = sha256sums(&self.members);
        if !sums.is_empty() {
            let path = format!("{}/SHA256SUMS.txt", self.prefix);
            let mtime = Mtime::from_float(self.sums_mtime);
            write_header(&mut self.out, &path, 0o644, sums.len() as u64, &mtime);
            self.out.push(sums.as_bytes());
            self.out.pad_block();
        }
        self.out.zeros(2 * BLOCK);
        let tail = self.out.written % RECORD;
        if tail != 0 {
            self.out.zeros(RECORD - tail);
        }
    }
}

/// `{hex}  {name}\n` per sha256 member, in member order (spec/API.md §6); empty when none.
pub(crate) fn sha256sums(members: &[Member]) -> String {
    let mut sums = String::new();
    for m in members {
        if let Some(hex) = m.digest.strip_prefix("sha256:") {
            sums.push_str(hex);
            sums.push_str("  ");
            sums.push_str(&m.name);
            sums.push('\n');
        }
    }
    sums
}

/// Opens a member and writes its header; its data follows chunk by chunk.
fn open_member(out: &mut Sink, prefix: &str, m: &Member) -> io::Result<OpenMember> {
    let fail = |e: io::Error| with_path(&m.path, e);
    let file = File::open(&m.path).map_err(fail)?;
    // fstat on the open file: the header must describe the very file we stream.
    let meta = file.metadata().map_err(fail)?;
    if !meta.is_file() {
        return Err(fail(io::Error::new(
            ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let size = meta.len();
    let mtime = Mtime::from_parts(meta.mtime(), meta.mtime_nsec());
    let path = format!("{prefix}/{}", m.name);
    write_header(out, &path, meta.mode() & 0o7777, size, &mtime);
    Ok(OpenMember {
        file,
        left: size,
        path: m.path.clone(),
    })
}

/// A member mtime: whole seconds for the header field, plus the exact value as a pax record
/// when the header cannot hold it (fractional or before 1970).
struct Mtime {
    secs: u64,
    pax: Option<String>,
}

impl Mtime {
    fn from_parts(secs: i64, nsec: i64) -> Mtime {
        if nsec == 0 && secs >= 0 {
            return Mtime {
                secs: secs.unsigned_abs(),
                pax: None,
            };
        }
        // Integer arithmetic keeps the digits exact; an f64 would round nanoseconds.
        let total = i128::from(secs) * 1_000_000_000 + i128::from(nsec);
        let sign = if total < 0 { "-" } else { "" };
        let (whole, frac) = (total.abs() / 1_000_000_000, total.abs() % 1_000_000_000);
        let mut text = format!("{sign}{whole}.{frac:09}");
        while text.ends_with('0') {
            text.pop();
        }
        if text.ends_with('.') {
            text.pop();
        }
        Mtime {
            secs: u64::try_from(secs).unwrap_or(0),
            pax: Some(text),
        }
    }

    fn from_float(t: f64) -> Mtime {
        if !t.is_finite() {
            return Mtime { secs: 0, pax: None };
        }
        let whole = t.floor();
        let exact = whole == t && whole >= 0.0;
        Mtime {
            // `as` saturates, which is the best a 12-byte field can do anyway.
            secs: whole.max(0.0) as u64,
            // f64's Display never uses an exponent and round-trips, like Python's str().
            pax: (!exact).then(|| format!("{t}")),
        }
    }
}

/// Writes the pax extended header (when needed) and the ustar header of a regular file.
fn write_header(out: &mut Sink, path: &str, mode: u32, size: u64, mtime: &Mtime) {
    let mut records = Vec::new();
    let name_fits = path.is_ascii() && path.len() <= 100;
    if !name_fits {
        pax_record(&mut records, "path", path);
    }
    if size > OCTAL11_MAX {
        pax_record(&mut records, "size", &size.to_string());
    }
    if let Some(exact) = &mtime.pax {
        pax_record(&mut records, "mtime", exact);
    }
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
        out.push(pax.as_bytes());
        out.push(&records);
        out.pad_block();
    }

    let mut h = Header::new_ustar();
    if name_fits {
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
    h.set_mtime(mtime.secs);
    h.set_cksum();
    out.push(h.as_bytes());
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

fn read_some(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Archive bytes waiting to be sent, cut into chunks of `chunk_size` (the last one shorter).
struct Sink {
    buf: BytesMut,
    chunk_size: usize,
    /// Bytes of archive produced so far, for block and record padding.
    written: u64,
}

impl Sink {
    fn new(chunk_size: usize) -> Sink {
        // A zero chunk size would leave no room to read into.
        let chunk_size = chunk_size.max(1);
        Sink {
            buf: BytesMut::with_capacity(chunk_size),
            chunk_size,
            written: 0,
        }
    }

    fn full(&self) -> bool {
        self.buf.len() >= self.chunk_size
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.written += bytes.len() as u64;
    }

    fn zeros(&mut self, n: u64) {
        // Callers pass at most one record (10 KiB).
        let n = usize::try_from(n).unwrap_or(0);
        self.buf.resize(self.buf.len() + n, 0);
        self.written += n as u64;
    }

    fn pad_block(&mut self) {
        let tail = self.written % BLOCK;
        if tail != 0 {
            self.zeros(BLOCK - tail);
        }
    }

    /// Reads at most `max` bytes of `file` straight into the pending chunk, so file data is
    /// copied once on its way to the socket. Returns 0 at end of file.
    fn read_from(&mut self, file: &mut File, max: u64) -> io::Result<usize> {
        let start = self.buf.len();
        let room = self.chunk_size.saturating_sub(start);
        let room = usize::try_from(max).map_or(room, |max| room.min(max));
        self.buf.resize(start + room, 0);
        let n = match read_some(file, &mut self.buf[start..]) {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(start);
                return Err(e);
            }
        };
        self.buf.truncate(start + n);
        self.written += n as u64;
        Ok(n)
    }

    /// The next chunk, `None` when nothing is pending.
    fn take_chunk(&mut self) -> Option<Bytes> {
        if self.buf.is_empty() {
            return None;
        }
        let n = self.buf.len().min(self.chunk_size);
        let chunk = self.buf.split_to(n).freeze();
        // The chunk keeps its allocation; take a fresh one now rather than growing piecemeal.
        self.buf.reserve(self.chunk_size);
        Some(chunk)
    }
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
