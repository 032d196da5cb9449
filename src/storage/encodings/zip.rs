//! A bundle as a zip (APPNOTE 6.3.9), streamed in constant memory: each entry is deflated
//! as it is read, its CRC and sizes follow in a data descriptor, and the central directory
//! (one small record per entry) comes last. Entries use zip64 fields when their sizes or
//! offsets need them; the archive gets the zip64 end records when it does.

use crate::storage::TarPlan;
use crate::storage::archive::Member;
use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress, Status};
use futures_util::Stream;
use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::path::PathBuf;

/// `zip -6`, the default of Info-ZIP's `zip` and of deflate.
const LEVEL: u32 = 6;
/// How much of a member is read and deflated at a time: always this much but for the
/// member's last piece, so that the deflater sees the same calls whatever the chunk size.
const READ_SIZE: usize = 128 << 10;
/// The deflater's output room per call (see [`deflate_into`]).
const DEFLATE_ROOM: usize = 64 << 10;
const U32_MAX: u64 = 0xFFFF_FFFF;
/// Flags: sizes in a data descriptor (bit 3), names in UTF-8 (bit 11).
const FLAGS: u16 = 0x0808;
const DEFLATE: u16 = 8;
/// Made by: Unix (3), so readers take the mode from the external attributes.
const MADE_BY_UNIX: u16 = 3 << 8;

/// Streams the plan's members (sorted by name, as in the tar) and `SHA256SUMS.txt` under
/// its prefix, every entry dated with the entity timestamp. Same chunking, pool and error
/// rules as `archive::tar_stream`.
pub fn zip_stream(
    plan: TarPlan,
    chunk_size: usize,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let cursor = Cursor::new(plan, chunk_size);
    super::super::pool::pooled_stream(cursor, "zip stream")
}

/// What the central directory needs of an entry written.
struct Entry {
    name: String,
    mode: u32,
    crc: u32,
    csize: u64,
    usize: u64,
    offset: u64,
    /// The local header carries a zip64 field, so the data descriptor has 8-byte sizes.
    zip64: bool,
}

/// An entry whose data is being deflated.
struct Open {
    source: Source,
    left: u64,
    crc: crc32fast::Hasher,
    entry: Entry,
}

enum Source {
    File(File, PathBuf),
    Memory(io::Cursor<Vec<u8>>),
}

enum Phase {
    Members,
    Sums,
    Central(usize),
    End,
    Done,
}

struct Cursor {
    prefix: String,
    members: Vec<Member>,
    sums: String,
    next: usize,
    time: ZipTime,
    open: Option<Open>,
    phase: Phase,
    entries: Vec<Entry>,
    deflate: Compress,
    input: Vec<u8>,
    room: Vec<u8>,
    out: Vec<u8>,
    chunk_size: usize,
    /// Bytes of archive produced so far: the next local header's offset.
    written: u64,
    central_start: u64,
}

fn with_path(path: &std::path::Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl crate::storage::pool::ChunkSource for Cursor {
    fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        self.read_chunk()
    }
}

impl Cursor {
    fn new(plan: TarPlan, chunk_size: usize) -> Cursor {
        let chunk_size = chunk_size.max(1);
        let (sums, mtime) = (plan.sha256sums(), plan.sums_mtime);
        Cursor {
            prefix: plan.prefix,
            members: plan.members,
            sums,
            next: 0,
            time: ZipTime::new(mtime),
            open: None,
            phase: Phase::Members,
            entries: Vec::new(),
            deflate: Compress::new(Compression::new(LEVEL), false),
            input: vec![0; READ_SIZE],
            room: vec![0; DEFLATE_ROOM],
            out: Vec::with_capacity(chunk_size),
            chunk_size,
            written: 0,
            central_start: 0,
        }
    }

    /// The next chunk of the archive, `None` after the last one. Blocking (file reads).
    fn read_chunk(&mut self) -> io::Result<Option<Bytes>> {
        while self.out.len() < self.chunk_size {
            if self.open.is_some() {
                self.copy_some()?;
                continue;
            }
            match self.phase {
                Phase::Members => match self.members.get(self.next) {
                    Some(m) => {
                        self.next += 1;
                        let name = format!("{}/{}", self.prefix, m.name);
                        let (path, size, mode) = (m.path.clone(), m.size, m.mode);
                        self.open_file(path, name, size, mode)?;
                    }
                    None => self.phase = Phase::Sums,
                },
                Phase::Sums => {
                    self.phase = Phase::Central(0);
                    let sums = std::mem::take(&mut self.sums);
                    if !sums.is_empty() {
                        let name = format!("{}/SHA256SUMS.txt", self.prefix);
                        let len = sums.len() as u64;
                        let source = Source::Memory(io::Cursor::new(sums.into_bytes()));
                        self.open_entry(source, name, 0o644, len);
                    }
                }
                Phase::Central(i) => {
                    if i == 0 {
                        self.central_start = self.written;
                    }
                    match self.entries.get(i) {
                        Some(e) => {
                            let record = central_record(e, &self.time);
                            self.push(&record);
                            self.phase = Phase::Central(i + 1);
                        }
                        None => self.phase = Phase::End,
                    }
                }
                Phase::End => {
                    let end = end_records(
                        self.entries.len() as u64,
                        self.central_start,
                        self.written - self.central_start,
                    );
                    self.push(&end);
                    self.phase = Phase::Done;
                }
                Phase::Done => break,
            }
        }
        if self.out.is_empty() {
            return Ok(None);
        }
        let n = self.out.len().min(self.chunk_size);
        let rest = self.out.split_off(n);
        let chunk = std::mem::replace(&mut self.out, rest);
        self.out.reserve(self.chunk_size);
        Ok(Some(Bytes::from(chunk)))
    }

    fn push(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
        self.written += bytes.len() as u64;
    }

    /// Opens a member with its planned size and mode: the data must be that many bytes.
    fn open_file(&mut self, path: PathBuf, name: String, size: u64, mode: u32) -> io::Result<()> {
        let fail = |e: io::Error| with_path(&path, e);
        let file = crate::storage::stale::retry_stale(|| File::open(&path)).map_err(fail)?;
        // fstat on the open file: the entry must describe the very file we stream.
        let meta = file.metadata().map_err(fail)?;
        if !meta.is_file() {
            let e = io::Error::new(ErrorKind::InvalidInput, "not a regular file");
            return Err(fail(e));
        }
        self.open_entry(Source::File(file, path), name, mode, size);
        Ok(())
    }

    fn open_entry(&mut self, source: Source, name: String, mode: u32, size: u64) {
        // Deflate may grow incompressible data a little; Python's zipfile allows 5%.
        let zip64 = u128::from(size) * 21 / 20 > u128::from(U32_MAX);
        let entry = Entry {
            name,
            mode,
            crc: 0,
            csize: 0,
            usize: size,
            offset: self.written,
            zip64,
        };
        let header = local_header(&entry, &self.time);
        self.push(&header);
        self.deflate.reset();
        self.open = Some(Open {
            source,
            left: size,
            crc: crc32fast::Hasher::new(),
            entry,
        });
    }

    /// Reads and deflates the next piece of the open entry, or ends it.
    fn copy_some(&mut self) -> io::Result<()> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        if open.left == 0 {
            return self.close_entry();
        }
        let want = usize::try_from(open.left).map_or(READ_SIZE, |l| l.min(READ_SIZE));
        let n = read_full(&mut open.source, &mut self.input[..want])?;
        if n == 0 {
            let shrank = io::Error::new(ErrorKind::UnexpectedEof, "file shrank while archived");
            return Err(source_error(&open.source, shrank));
        }
        open.left -= n as u64;
        open.crc.update(&self.input[..n]);
        let before = self.out.len();
        let (input, room) = (&self.input[..n], &mut self.room);
        deflate_into(&mut self.deflate, room, input, &mut self.out, false)?;
        self.written += (self.out.len() - before) as u64;
        Ok(())
    }

    fn close_entry(&mut self) -> io::Result<()> {
        let Some(mut open) = self.open.take() else {
            return Ok(());
        };
        // A file that grew would silently lose its tail; its digest would no longer match.
        if read_source(&mut open.source, &mut [0u8; 1])? != 0 {
            let grew = io::Error::other("file grew while archived");
            return Err(source_error(&open.source, grew));
        }
        let before = self.out.len();
        deflate_into(&mut self.deflate, &mut self.room, &[], &mut self.out, true)?;
        self.written += (self.out.len() - before) as u64;
        let mut entry = open.entry;
        entry.crc = open.crc.finalize();
        entry.csize = self.deflate.total_out();
        let descriptor = data_descriptor(&entry);
        self.push(&descriptor);
        self.entries.push(entry);
        Ok(())
    }
}

fn read_source(source: &mut Source, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let got = match source {
            Source::File(f, path) => f.read(buf).map_err(|e| with_path(path, e)),
            Source::Memory(m) => m.read(buf),
        };
        match got {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Fills `buf` unless the source ends first (a short read is not the end of a file).
fn read_full(source: &mut Source, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match read_source(source, &mut buf[n..])? {
            0 => break,
            got => n += got,
        }
    }
    Ok(n)
}

fn source_error(source: &Source, e: io::Error) -> io::Error {
    match source {
        Source::File(_, path) => with_path(path, e),
        Source::Memory(_) => e,
    }
}

/// Deflates all of `input` into `out`, and the stream's end when `finish`. The deflater
/// always gets the same room (one `DEFLATE_ROOM` buffer) whatever `out` holds: some
/// deflate implementations emit other (valid) bytes when given another amount of output
/// space, and the archive must not depend on the chunk size.
fn deflate_into(
    c: &mut Compress,
    room: &mut [u8],
    input: &[u8],
    out: &mut Vec<u8>,
    finish: bool,
) -> io::Result<()> {
    let flush = if finish {
        FlushCompress::Finish
    } else {
        FlushCompress::None
    };
    let mut rest = input;
    loop {
        let (in_before, out_before) = (c.total_in(), c.total_out());
        let status = c.compress(rest, room, flush).map_err(io::Error::other)?;
        let used = usize::try_from(c.total_in() - in_before).unwrap_or(rest.len());
        let made = usize::try_from(c.total_out() - out_before).unwrap_or(0);
        out.extend_from_slice(&room[..made.min(room.len())]);
        rest = &rest[used.min(rest.len())..];
        let done = match finish {
            true => status == Status::StreamEnd,
            false => rest.is_empty(),
        };
        if done {
            return Ok(());
        }
    }
}

/// The entity timestamp as zip stores it: DOS date and time (UTC, since the archive has no
/// time zone to give), and the exact seconds in an extended-timestamp field when they fit.
struct ZipTime {
    date: u16,
    time: u16,
    unix: Option<u32>,
}

impl ZipTime {
    fn new(t: f64) -> ZipTime {
        let secs = if t.is_finite() { t.floor() as i64 } else { 0 };
        let unix = u32::try_from(secs)
            .ok()
            .filter(|s| i32::try_from(*s).is_ok());
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        // DOS dates cover 1980..=2107; outside, the nearest end.
        let (date, time) = if y < 1980 {
            ((1 << 5) | 1, 0)
        } else if y > 2107 {
            ((127 << 9) | (12 << 5) | 31, (23 << 11) | (59 << 5) | 29)
        } else {
            let date = ((y - 1980) << 9) | (m << 5) | d;
            let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
            (date, (h << 11) | (mi << 5) | (s / 2))
        };
        ZipTime {
            date: u16::try_from(date).unwrap_or(0),
            time: u16::try_from(time).unwrap_or(0),
            unix,
        }
    }

    /// The "UT" extra field: flags (mtime only) and the mtime.
    fn extra(&self, out: &mut Vec<u8>) {
        if let Some(unix) = self.unix {
            put16(out, 0x5455);
            put16(out, 5);
            out.push(1);
            put32(out, unix);
        }
    }
}

/// Year, month, day of a day count from 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A 32-bit size or offset field: the value, or the marker that the zip64 field has it.
fn field32(v: u64) -> u32 {
    u32::try_from(v)
        .ok()
        .filter(|v| *v != u32::MAX)
        .unwrap_or(u32::MAX)
}

fn version_needed(zip64: bool) -> u16 {
    if zip64 { 45 } else { 20 }
}

fn local_header(e: &Entry, t: &ZipTime) -> Vec<u8> {
    let mut extra = Vec::new();
    if e.zip64 {
        // Sizes are in the data descriptor; the field says they are 8 bytes there.
        put16(&mut extra, 0x0001);
        put16(&mut extra, 16);
        put64(&mut extra, 0);
        put64(&mut extra, 0);
    }
    t.extra(&mut extra);
    let sizes = if e.zip64 { u32::MAX } else { 0 };
    let name = &e.name.as_bytes()[..usize::from(name_len(&e.name))];
    let mut h = Vec::with_capacity(30 + name.len() + extra.len());
    put32(&mut h, 0x0403_4b50);
    put16(&mut h, version_needed(e.zip64));
    put16(&mut h, FLAGS);
    put16(&mut h, DEFLATE);
    put16(&mut h, t.time);
    put16(&mut h, t.date);
    put32(&mut h, 0);
    put32(&mut h, sizes);
    put32(&mut h, sizes);
    put16(&mut h, name.len() as u16);
    put16(&mut h, extra.len() as u16);
    h.extend_from_slice(name);
    h.extend_from_slice(&extra);
    h
}

/// Names are capped at the 16-bit length field; the header carries that many bytes.
fn name_len(name: &str) -> u16 {
    u16::try_from(name.len()).unwrap_or(u16::MAX)
}

fn data_descriptor(e: &Entry) -> Vec<u8> {
    let mut d = Vec::with_capacity(24);
    put32(&mut d, 0x0807_4b50);
    put32(&mut d, e.crc);
    if e.zip64 {
        put64(&mut d, e.csize);
        put64(&mut d, e.usize);
    } else {
        put32(&mut d, field32(e.csize));
        put32(&mut d, field32(e.usize));
    }
    d
}

fn central_record(e: &Entry, t: &ZipTime) -> Vec<u8> {
    let mut extra = Vec::new();
    let big: Vec<u64> = [e.usize, e.csize, e.offset]
        .into_iter()
        .filter(|v| *v >= U32_MAX)
        .collect();
    if !big.is_empty() {
        put16(&mut extra, 0x0001);
        put16(&mut extra, (8 * big.len()) as u16);
        for v in &big {
            put64(&mut extra, *v);
        }
    }
    t.extra(&mut extra);
    let zip64 = e.zip64 || !big.is_empty();
    let name = &e.name.as_bytes()[..usize::from(name_len(&e.name))];
    let mut h = Vec::with_capacity(46 + name.len() + extra.len());
    put32(&mut h, 0x0201_4b50);
    put16(&mut h, MADE_BY_UNIX | version_needed(zip64));
    put16(&mut h, version_needed(zip64));
    put16(&mut h, FLAGS);
    put16(&mut h, DEFLATE);
    put16(&mut h, t.time);
    put16(&mut h, t.date);
    put32(&mut h, e.crc);
    put32(&mut h, field32(e.csize));
    put32(&mut h, field32(e.usize));
    put16(&mut h, name.len() as u16);
    put16(&mut h, extra.len() as u16);
    put16(&mut h, 0); // comment
    put16(&mut h, 0); // disk
    put16(&mut h, 0); // internal attributes
    put32(&mut h, (0o100_000 | e.mode) << 16);
    put32(&mut h, field32(e.offset));
    h.extend_from_slice(name);
    h.extend_from_slice(&extra);
    h
}

/// The end of central directory record, preceded by the zip64 record and its locator
/// when a count, size or offset overflows its field.
fn end_records(count: u64, cd_start: u64, cd_size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let zip64 = count >= 0xFFFF || cd_start >= U32_MAX || cd_size >= U32_MAX;
    if zip64 {
        let record_at = cd_start + cd_size;
        put32(&mut out, 0x0606_4b50);
        put64(&mut out, 44);
        put16(&mut out, MADE_BY_UNIX | 45);
        put16(&mut out, 45);
        put32(&mut out, 0);
        put32(&mut out, 0);
        put64(&mut out, count);
        put64(&mut out, count);
        put64(&mut out, cd_size);
        put64(&mut out, cd_start);
        put32(&mut out, 0x0706_4b50);
        put32(&mut out, 0);
        put64(&mut out, record_at);
        put32(&mut out, 1);
    }
    let count16 = u16::try_from(count).unwrap_or(u16::MAX);
    put32(&mut out, 0x0605_4b50);
    put16(&mut out, 0);
    put16(&mut out, 0);
    put16(&mut out, count16);
    put16(&mut out, count16);
    put32(&mut out, field32(cd_size));
    put32(&mut out, field32(cd_start));
    put16(&mut out, 0);
    out
}

#[cfg(test)]
#[path = "zip_tests.rs"]
mod tests;
