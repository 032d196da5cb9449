//! A tar stream compressed with gzip, xz or zstd, one tar chunk at a time.

use super::Encoding;
use bytes::{Bytes, BytesMut};
use flate2::write::GzEncoder;
use futures_util::{Stream, StreamExt};
use liblzma::write::XzEncoder;
use std::io::{self, Write};
use std::pin::Pin;
use tokio::sync::{Semaphore, SemaphorePermit};

/// `gzip -6`, `xz -6` and `zstd -3`: the command-line tools' defaults, so that the
/// archives are what users would have made themselves.
const GZIP_LEVEL: u32 = 6;
const XZ_PRESET: u32 = 6;
const ZSTD_LEVEL: i32 = 3;
/// Worker threads of the zstd encoder. A constant rather than the machine's core count:
/// the output of a multi-threaded encoder may depend on how it splits its input, and every
/// replica must produce the same bytes.
const ZSTD_THREADS: u32 = 2;

/// xz encoders alive at once. Each holds about 94 MiB (`xz -6`'s match finder) for as long
/// as its response lasts; more `.tar.xz` downloads wait for their turn before sending
/// anything, rather than the server's memory growing with their number.
static XZ_ENCODERS: Semaphore = Semaphore::const_new(4);

/// `data` gzipped whole, with no name and a zero mtime in the header, so that the same
/// input always gives the same bytes (package indexes are signed and compared by sum).
pub(crate) fn gzip_reproducible(data: &[u8], level: flate2::Compression) -> io::Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new().mtime(0).write(Vec::new(), level);
    enc.write_all(data)?;
    enc.finish()
}

/// One of the compressors, writing into a buffer drained after every tar chunk.
enum Compressor {
    Gz(GzEncoder<Vec<u8>>),
    Xz(XzEncoder<Vec<u8>>),
    Zst(zstd::Encoder<'static, Vec<u8>>),
}

impl Compressor {
    /// `mtime` goes in the gzip header, the only format of the three that has a time.
    fn new(enc: Encoding, mtime: f64) -> io::Result<Compressor> {
        Ok(match enc {
            // One thread, as `xz -6` (before xz 5.6): liblzma's threaded encoder holds a
            // 94 MiB encoder per thread and sends nothing until a 24 MiB block is done,
            // which a streamed response cannot afford per request. The CRC64 check is xz's
            // default too.
            Encoding::TarXz => Compressor::Xz(XzEncoder::new(Vec::new(), XZ_PRESET)),
            Encoding::TarZst => {
                let mut z = zstd::Encoder::new(Vec::new(), ZSTD_LEVEL)?;
                z.multithread(ZSTD_THREADS)?;
                // `zstd` writes a checksum by default; so do we, for `zstd -t`.
                z.include_checksum(true)?;
                Compressor::Zst(z)
            }
            _ => {
                let gz = flate2::GzBuilder::new()
                    .mtime(gzip_mtime(mtime))
                    .write(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
                Compressor::Gz(gz)
            }
        })
    }

    /// Compresses `data`; what came out so far is returned. Blocking.
    /// Compresses `data` in pieces of exactly [`PIECE`] bytes (the last one may be shorter
    /// only when `data` is the end of the tar); what came out so far is returned. Blocking.
    fn push(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        for piece in data.chunks(PIECE) {
            self.write_piece(piece)?;
        }
        Ok(std::mem::take(self.output()))
    }

    fn write_piece(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Compressor::Gz(e) => e.write_all(data),
            Compressor::Xz(e) => e.write_all(data),
            Compressor::Zst(e) => e.write_all(data),
        }
    }

    fn output(&mut self) -> &mut Vec<u8> {
        match self {
            Compressor::Gz(e) => e.get_mut(),
            Compressor::Xz(e) => e.get_mut(),
            Compressor::Zst(e) => e.get_mut(),
        }
    }

    /// The end of the compressed stream. Blocking.
    fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Compressor::Gz(e) => e.finish(),
            Compressor::Xz(e) => e.finish(),
            Compressor::Zst(e) => e.finish(),
        }
    }
}

/// What the compressors are fed at a time. Fixed, rather than the tar's chunk size: some
/// implementations (zlib-rs's deflate among them) emit other, equally valid bytes when the
/// same input comes in other pieces, and the archive must not depend on `DLREPO_CHUNK_SIZE`.
const PIECE: usize = 128 << 10;

/// The gzip header's MTIME: the entity timestamp, whole seconds; 0 ("none") when it does
/// not fit the 32-bit field.
fn gzip_mtime(t: f64) -> u32 {
    if t.is_finite() && t >= 1.0 && t < f64::from(u32::MAX) {
        t as u32
    } else {
        0
    }
}

type TarStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Where a compressed stream stands between two chunks.
struct State {
    tar: TarStream,
    enc: Encoding,
    mtime: f64,
    codec: Option<Compressor>,
    /// Tar bytes not yet given to the compressor: less than a [`PIECE`] between polls.
    pending: BytesMut,
    started: bool,
    /// An xz stream's place among [`XZ_ENCODERS`], held to its end.
    _turn: Option<SemaphorePermit<'static>>,
}

impl State {
    /// Makes the compressor on the first poll, once an xz stream has its turn.
    async fn start(&mut self) -> io::Result<()> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        if self.enc == Encoding::TarXz {
            self._turn = XZ_ENCODERS.acquire().await.ok();
        }
        self.codec = Some(Compressor::new(self.enc, self.mtime)?);
        Ok(())
    }
}

/// `tar` compressed as `enc` (a compressed tar encoding). Each tar chunk is compressed by
/// one short blocking task holding a read slot; an error of the tar ends the stream with
/// that error, so the response is cut rather than ending as a valid but wrong archive.
pub fn compress_stream(
    tar: impl Stream<Item = io::Result<Bytes>> + Send + 'static,
    enc: Encoding,
    mtime: f64,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let state = State {
        tar: Box::pin(tar),
        enc,
        mtime,
        codec: None,
        pending: BytesMut::new(),
        started: false,
        _turn: None,
    };
    let span = tracing::Span::current();
    futures_util::stream::unfold(Some(state), move |state| {
        let span = span.clone();
        async move {
            let mut state = state?;
            match state.next_output(&span).await? {
                Ok(out) => {
                    let next = state.codec.is_some().then_some(state);
                    Some((Ok(out), next))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    })
}

impl State {
    /// The next non-empty piece of compressed output, or `None` once all of it was sent.
    async fn next_output(&mut self, span: &tracing::Span) -> Option<io::Result<Bytes>> {
        if let Err(e) = self.start().await {
            return Some(Err(e));
        }
        loop {
            let input = self.tar.next().await;
            let last = input.is_none();
            match input {
                Some(Ok(data)) => self.pending.extend_from_slice(&data),
                Some(Err(e)) => return Some(Err(e)),
                None => {}
            }
            // Whole pieces only, so the bytes never depend on how the tar was chunked.
            let whole = match last {
                true => self.pending.len(),
                false => self.pending.len() / PIECE * PIECE,
            };
            if whole == 0 && !last {
                continue;
            }
            let data = self.pending.split_to(whole).freeze();
            let codec = self.codec.take()?;
            match compress(codec, data, last, span.clone()).await {
                Ok((codec, out)) => {
                    self.codec = codec;
                    if !out.is_empty() {
                        return Some(Ok(Bytes::from(out)));
                    }
                    if last {
                        return None;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "compressed bundle aborted");
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Compresses `data` in one short blocking task holding a read slot; with `last`, also
/// finishes the stream (and gives no codec back).
async fn compress(
    mut codec: Compressor,
    data: Bytes,
    last: bool,
    span: tracing::Span,
) -> io::Result<(Option<Compressor>, Vec<u8>)> {
    let slot = super::super::pool::read_slot().await;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        span.in_scope(|| match last {
            true => {
                // Not `push`: what it would take out must stay for `finish`.
                for piece in data.chunks(PIECE) {
                    codec.write_piece(piece)?;
                }
                codec.finish().map(|out| (None, out))
            }
            false => codec.push(&data).map(|out| (Some(codec), out)),
        })
    })
    .await
    .map_err(io::Error::other)
    .and_then(|r| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut x = 0x9e37_79b9_u32;
        (0..900_000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if i % 5 == 0 {
                    x as u8
                } else {
                    b"tar data "[x as usize % 9]
                }
            })
            .collect()
    }

    async fn compressed(enc: Encoding, data: &[u8], chunk: usize) -> Vec<u8> {
        let chunks: Vec<io::Result<Bytes>> = data
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut out = Vec::new();
        let mut s = Box::pin(compress_stream(
            futures_util::stream::iter(chunks),
            enc,
            1e9,
        ));
        while let Some(b) = s.next().await {
            out.extend_from_slice(&b.unwrap());
        }
        out
    }

    /// The bytes depend on the tar, not on how it was cut into chunks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chunking_does_not_change_the_bytes() {
        let data = sample();
        for enc in [Encoding::TarGz, Encoding::TarXz, Encoding::TarZst] {
            let a = compressed(enc, &data, 1 << 20).await;
            assert_eq!(compressed(enc, &data, 4096).await, a, "{enc:?}");
            assert_eq!(compressed(enc, &data, 100_003).await, a, "{enc:?}");
        }
        // And they decode: gzip through flate2 as a check of the whole path.
        let gz = compressed(Encoding::TarGz, &data, 4096).await;
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut back).unwrap();
        assert!(back == data);
    }
}
