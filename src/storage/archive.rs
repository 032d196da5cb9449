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
fn sha256sums(members: &[Member]) -> String {
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
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    const SHA_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const SHA_C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
    const SHA_D: &str = "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";

    fn write_file(root: &Path, name: &str, data: &[u8], mode: u32) -> PathBuf {
        let path = root.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, data).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn member(root: &Path, name: &str, digest: &str) -> Member {
        Member {
            name: name.to_owned(),
            path: root.join(name),
            digest: digest.to_owned(),
        }
    }

    async fn collect(
        prefix: &str,
        members: Vec<Member>,
        sums_mtime: f64,
        chunk_size: usize,
    ) -> Vec<io::Result<Bytes>> {
        tar_stream(prefix.to_owned(), members, sums_mtime, chunk_size)
            .collect()
            .await
    }

    fn concat(items: Vec<io::Result<Bytes>>) -> Vec<u8> {
        let mut all = Vec::new();
        for item in items {
            all.extend_from_slice(&item.unwrap());
        }
        all
    }

    struct Got {
        mode: u32,
        mtime: u64,
        uid: u64,
        gid: u64,
        uname: Vec<u8>,
        data: Vec<u8>,
        pax_mtime: Option<String>,
    }

    fn read_back(tar_bytes: &[u8]) -> Vec<(String, Got)> {
        let mut archive = tar::Archive::new(tar_bytes);
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            assert_eq!(entry.header().entry_type(), EntryType::Regular);
            let name = entry.path().unwrap().to_str().unwrap().to_owned();
            let pax_mtime = entry.pax_extensions().unwrap().and_then(|exts| {
                exts.map(|e| e.unwrap())
                    .find(|e| e.key() == Ok("mtime"))
                    .map(|e| e.value().unwrap().to_owned())
            });
            let h = entry.header().clone();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            assert_eq!(entry.size(), data.len() as u64);
            out.push((
                name,
                Got {
                    mode: h.mode().unwrap(),
                    mtime: h.mtime().unwrap(),
                    uid: h.uid().unwrap(),
                    gid: h.gid().unwrap(),
                    uname: h.username_bytes().unwrap_or_default().to_vec(),
                    data,
                    pax_mtime,
                },
            ));
        }
        out
    }

    #[tokio::test]
    async fn streams_sorted_members_and_sums() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let long = format!("fmt/{}", "l".repeat(146)); // 150 bytes
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let mut files = BTreeMap::new();
        files.insert(
            "fmt/dir/f1.txt".to_owned(),
            (b"one\n".to_vec(), 0o644, SHA_A),
        );
        files.insert("fmt/b.bin".to_owned(), (big, 0o755, SHA_B));
        files.insert(long.clone(), (b"long name".to_vec(), 0o600, SHA_C));
        files.insert(
            "fmt/éte ünï.txt".to_owned(),
            (b"accents".to_vec(), 0o640, SHA_D),
        );
        files.insert("fmt/empty".to_owned(), (Vec::new(), 0o644, SHA_A));
        files.insert(
            "fmt/md5.txt".to_owned(),
            (b"md5".to_vec(), 0o644, "md5:0123"),
        );
        let mut members = Vec::new();
        for (name, (data, mode, digest)) in &files {
            write_file(root, name, data, *mode);
            members.push(member(root, name, digest));
        }
        members.reverse(); // the stream must sort them itself
        let f1 = root.join("fmt/dir/f1.txt");
        let f1_mtime = fs::metadata(&f1).unwrap().mtime();
        let f1_nsec = fs::metadata(&f1).unwrap().mtime_nsec();

        // 1000 is not a multiple of the block size, so chunks split headers and data.
        let items = collect("job-tag", members, 1_700_000_000.25, 1000).await;
        assert!(
            items
                .iter()
                .all(|i| i.as_ref().is_ok_and(|c| c.len() <= 1000))
        );
        let all = concat(items);
        assert_eq!(all.len() % 10240, 0);

        let entries = read_back(&all);
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        let mut expected: Vec<String> = files.keys().map(|k| format!("job-tag/{k}")).collect();
        expected.push("job-tag/SHA256SUMS.txt".to_owned());
        assert_eq!(names, expected);
        assert!(names.contains(&format!("job-tag/{long}").as_str()));

        for ((name, got), (key, (data, mode, _))) in entries.iter().zip(&files) {
            assert_eq!(name, &format!("job-tag/{key}"));
            assert_eq!(&got.data, data, "{name}");
            assert_eq!(got.mode, *mode, "{name}");
            assert_eq!((got.uid, got.gid), (0, 0));
            assert!(got.uname.is_empty());
        }
        let (_, f1_read) = &entries[1];
        assert_eq!(f1_read.mtime, f1_mtime as u64);
        if f1_nsec != 0 {
            let exact = f1_read.pax_mtime.as_deref().unwrap();
            let parsed: f64 = exact.parse().unwrap();
            assert!((parsed - (f1_mtime as f64 + f1_nsec as f64 / 1e9)).abs() < 1e-6);
        }

        let (_, sums) = entries.last().unwrap();
        let hex = |d: &str| d.strip_prefix("sha256:").unwrap().to_owned();
        let want = format!(
            "{b}  fmt/b.bin\n{a}  fmt/dir/f1.txt\n{a}  fmt/empty\n{c}  {long}\n{d}  fmt/éte ünï.txt\n",
            a = hex(SHA_A),
            b = hex(SHA_B),
            c = hex(SHA_C),
            d = hex(SHA_D),
        );
        assert_eq!(String::from_utf8(sums.data.clone()).unwrap(), want);
        assert_eq!(sums.mode, 0o644);
        assert_eq!(sums.mtime, 1_700_000_000);
        assert_eq!(sums.pax_mtime.as_deref(), Some("1700000000.25"));
    }

    #[tokio::test]
    async fn no_sha256_digest_means_no_sums_file() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "f.txt", b"x", 0o644);
        let members = vec![member(dir.path(), "f.txt", "sha512:00")];
        let all = concat(collect("p", members, 0.0, 4096).await);
        let entries = read_back(&all);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, "p/f.txt");
    }

    #[tokio::test]
    async fn empty_archive_is_one_zero_record() {
        let all = concat(collect("p", Vec::new(), 0.0, 4096).await);
        assert_eq!(all, vec![0u8; 10240]);
    }

    #[tokio::test]
    async fn missing_file_ends_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "a.txt", b"present", 0o644);
        let members = vec![
            member(dir.path(), "a.txt", SHA_A),
            member(dir.path(), "b.txt", SHA_B),
        ];
        let items = collect("p", members, 0.0, 64).await;
        let (last, before) = items.split_last().unwrap();
        assert!(before.iter().all(|i| i.is_ok()));
        let err = last.as_ref().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains("b.txt"), "{err}");
    }

    #[tokio::test]
    async fn directory_member_ends_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        let items = collect("p", vec![member(dir.path(), "d", SHA_A)], 0.0, 4096).await;
        assert!(items.last().unwrap().is_err());
    }

    #[test]
    fn chunks_are_made_one_at_a_time_and_full_but_the_last() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "big", &vec![7u8; 100_000], 0o644);
        let mut cursor = Cursor {
            prefix: "p".to_owned(),
            members: vec![member(dir.path(), "big", SHA_A)],
            sums_mtime: 0.0,
            next: 0,
            open: None,
            ended: false,
            out: Sink::new(4096),
        };
        let mut sizes = Vec::new();
        while let Some(chunk) = cursor.next_chunk().unwrap() {
            // No file data is read beyond the chunk asked for; only header or padding
            // bytes (at most a record and a header) may wait for the next one.
            assert!(
                cursor.out.buf.len() <= (RECORD + 2 * BLOCK) as usize,
                "read ahead"
            );
            sizes.push(chunk.len());
        }
        let total: usize = sizes.iter().sum();
        assert_eq!(total as u64 % RECORD, 0);
        assert!(
            sizes[..sizes.len() - 1].iter().all(|n| *n == 4096),
            "{sizes:?}"
        );
        assert!(cursor.next_chunk().unwrap().is_none());
    }

    #[test]
    fn pax_record_length_counts_itself() {
        for value in ["", "x", &"y".repeat(90), &"z".repeat(995)] {
            let mut rec = Vec::new();
            pax_record(&mut rec, "path", value);
            let text = String::from_utf8(rec).unwrap();
            let (len, _) = text.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), text.len());
        }
    }

    #[test]
    fn mtime_records() {
        assert_eq!(Mtime::from_parts(10, 0).pax, None);
        assert_eq!(
            Mtime::from_parts(10, 500_000_000).pax.as_deref(),
            Some("10.5")
        );
        assert_eq!(
            Mtime::from_parts(10, 1).pax.as_deref(),
            Some("10.000000001")
        );
        assert_eq!(
            Mtime::from_parts(-2, 500_000_000).pax.as_deref(),
            Some("-1.5")
        );
        assert_eq!(Mtime::from_parts(-2, 0).pax.as_deref(), Some("-2"));
        assert_eq!(Mtime::from_parts(-2, 0).secs, 0);
        assert_eq!(Mtime::from_float(12.0).pax, None);
        assert_eq!(Mtime::from_float(12.75).pax.as_deref(), Some("12.75"));
        assert_eq!(Mtime::from_float(12.75).secs, 12);
    }

    #[test]
    fn huge_size_gets_a_pax_record() {
        let size = 9 << 30;
        let mut out = Sink::new(1 << 16);
        write_header(&mut out, "p/huge", 0o644, size, &Mtime::from_parts(1, 0));
        let bytes = out.take_chunk().unwrap();
        assert_eq!(bytes.len(), 3 * 512);
        let records = String::from_utf8_lossy(&bytes[512..1024]);
        assert!(records.contains(&format!(" size={size}\n")), "{records}");
        let header = Header::from_byte_slice(&bytes[1024..]);
        assert_eq!(header.size().unwrap(), size);
    }
}
