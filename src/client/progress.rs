//! What a transfer shows while it runs: on a terminal, one line per active file and a total
//! with bytes, files, rate and ETA, redrawn in place; otherwise one plain line per finished
//! file and a summary; with `--quiet`, nothing.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal as _, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bars,
    Lines,
    Quiet,
}

/// The progress of one command's transfers; clones share it.
#[derive(Clone)]
pub struct Progress(Arc<Shared>);

struct Shared {
    mode: Mode,
    multi: MultiProgress,
    total: ProgressBar,
    files: AtomicU64,
    done: AtomicU64,
    bytes: AtomicU64,
    started: Instant,
}

impl Progress {
    /// `files` and `bytes` are the totals when known (0 when not yet: see
    /// [`Progress::expect`]).
    pub fn new(quiet: bool, files: u64, bytes: u64) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        };
        let multi = MultiProgress::with_draw_target(match mode {
            Mode::Bars => ProgressDrawTarget::stderr(),
            _ => ProgressDrawTarget::hidden(),
        });
        let total = multi.add(ProgressBar::new(bytes));
        total.set_style(style(
            "{msg:>14} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        ));
        total.set_message(format!("0/{files} files"));
        Progress(Arc::new(Shared {
            mode,
            multi,
            total,
            files: AtomicU64::new(files),
            done: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            started: Instant::now(),
        }))
    }

    /// More files or bytes are to come than the totals said.
    pub fn expect(&self, files: u64, bytes: u64) {
        self.0.files.fetch_add(files, Ordering::Relaxed);
        self.0.total.inc_length(bytes);
        self.show_files();
    }

    /// A file's transfer begins; `size` when known.
    pub fn start(&self, name: &str, size: u64) -> Item {
        // Names come from the server: no escape sequence of theirs reaches the terminal.
        let name = super::printable(name).replace(['\n', '\t'], "?");
        let name = name.as_str();
        let s = &self.0;
        let bar = (s.mode == Mode::Bars).then(|| {
            let bar = s.multi.insert_before(&s.total, ProgressBar::new(size));
            bar.set_style(style(
                "{wide_msg} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12}",
            ));
            bar.set_message(name.to_owned());
            bar
        });
        Item(Arc::new(ItemShared {
            progress: self.clone(),
            bar,
            name: name.to_owned(),
            sent: AtomicU64::new(0),
        }))
    }

    /// The end: the bars go, a summary line stays (not with `--quiet`).
    pub fn finish(&self, verb: &str) {
        let s = &self.0;
        s.total.finish_and_clear();
        if s.mode == Mode::Quiet {
            return;
        }
        let secs = s.started.elapsed().as_secs_f64().max(1e-3);
        let bytes = s.bytes.load(Ordering::Relaxed);
        eprintln!(
            "{verb} {} files, {} in {secs:.1} s ({}/s)",
            s.done.load(Ordering::Relaxed),
            indicatif::BinaryBytes(bytes),
            indicatif::BinaryBytes((bytes as f64 / secs) as u64),
        );
    }

    fn show_files(&self) {
        let s = &self.0;
        s.total.set_message(format!(
            "{}/{} files",
            s.done.load(Ordering::Relaxed),
            s.files.load(Ordering::Relaxed)
        ));
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// One file's transfer; clones share it.
#[derive(Clone)]
pub struct Item(Arc<ItemShared>);

struct ItemShared {
    progress: Progress,
    bar: Option<ProgressBar>,
    name: String,
    sent: AtomicU64,
}

impl Item {
    /// `n` more bytes went through.
    pub fn add(&self, n: u64) {
        let (item, p) = (&self.0, &self.0.progress.0);
        item.sent.fetch_add(n, Ordering::Relaxed);
        p.bytes.fetch_add(n, Ordering::Relaxed);
        p.total.inc(n);
        if let Some(bar) = &item.bar {
            bar.inc(n);
        }
    }

    /// The transfer is now at byte `pos`: a new attempt starts again from 0, a download
    /// continues from what an earlier one kept.
    pub fn at(&self, pos: u64) {
        let (item, p) = (&self.0, &self.0.progress.0);
        let before = item.sent.swap(pos, Ordering::Relaxed);
        if pos >= before {
            p.bytes.fetch_add(pos - before, Ordering::Relaxed);
            p.total.inc(pos - before);
        } else {
            p.bytes.fetch_sub(before - pos, Ordering::Relaxed);
            p.total
                .set_position(p.total.position().saturating_sub(before - pos));
        }
        if let Some(bar) = &item.bar {
            bar.set_position(pos);
        }
    }

    /// The size became known.
    pub fn set_size(&self, size: u64) {
        if let Some(bar) = &self.0.bar {
            bar.set_length(size);
        }
    }

    /// The file is done; `note` says how (`""`, `" (deduplicated)"`, `" (unchanged)"`).
    pub fn done(&self, size: u64, note: &str) {
        let (item, progress) = (&self.0, &self.0.progress);
        progress.0.done.fetch_add(1, Ordering::Relaxed);
        progress.show_files();
        if let Some(bar) = &item.bar {
            bar.finish_and_clear();
        }
        if progress.0.mode == Mode::Lines {
            let size = indicatif::BinaryBytes(size).to_string();
            eprintln!("{size:>10} {}{note}", item.name);
        }
    }

    /// A warning about this file, on standard error whatever the mode (`-q` included):
    /// above the bars on a terminal, so that they are not broken.
    pub fn warn(&self, text: &str) {
        let line = format!("warning: {}: {text}", self.0.name);
        let shared = &self.0.progress.0;
        if shared.mode != Mode::Bars || shared.multi.println(&line).is_err() {
            eprintln!("{line}");
        }
    }

    /// A reader that reports what goes through it.
    pub fn reader<R: Read>(&self, inner: R) -> Counting<R> {
        Counting {
            inner,
            item: self.clone(),
        }
    }
}

/// See [`Item::reader`].
pub struct Counting<R> {
    inner: R,
    item: Item,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.item.add(n as u64);
        Ok(n)
    }
}
