//! Logging set-up (spec/CONFIG.md §1.1): `DLREPO_LOG_LEVEL`, and `DLREPO_LOG_OUTPUT`:
//! `console` writes `LEVEL: message` lines on stderr; `syslog` sends `dlrepo: message`
//! datagrams to `/dev/log` (journald reads it too). Unset: console when stdin is a terminal,
//! syslog otherwise, as dlrepo does; without a `/dev/log` it falls back to stderr.
//! `RUST_LOG` overrides the level for developers.

use crate::config::Config;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// dlrepo's line format: `WARNING: message field=value` on the console, the bare message
/// (the syslog writer adds `dlrepo: ` and the priority) in syslog.
struct DlrepoFormat {
    with_level: bool,
}

impl<S, N> FormatEvent<S, N> for DlrepoFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if self.with_level {
            let level = match *event.metadata().level() {
                Level::ERROR => "ERROR",
                Level::WARN => "WARNING",
                Level::INFO => "INFO",
                Level::DEBUG | Level::TRACE => "DEBUG",
            };
            write!(writer, "{level}: ")?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Sends each log line as one datagram to the local syslog socket.
#[derive(Clone)]
struct Syslog(Arc<UnixDatagram>);

/// One line being written; sent when dropped.
struct SyslogLine {
    socket: Arc<UnixDatagram>,
    priority: u8,
    buf: Vec<u8>,
}

impl Write for SyslogLine {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let text = text.trim_end();
        if !text.is_empty() {
            // Facility daemon (3); a lost log line is better than a blocked server.
            let msg = format!("<{}>dlrepo: {text}", 3 * 8 + self.priority);
            let _ = self.socket.send(msg.as_bytes());
        }
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogLine;

    fn make_writer(&'a self) -> SyslogLine {
        self.line(6)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> SyslogLine {
        self.line(priority(meta.level()))
    }
}

/// syslog severity of a tracing level.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

impl Syslog {
    fn connect() -> std::io::Result<Syslog> {
        let socket = UnixDatagram::unbound()?;
        socket.connect("/dev/log")?;
        socket.set_nonblocking(true)?;
        Ok(Syslog(Arc::new(socket)))
    }

    fn line(&self, priority: u8) -> SyslogLine {
        SyslogLine {
            socket: Arc::clone(&self.0),
            priority,
            buf: Vec::new(),
        }
    }
}

/// Events no filter may let through, `RUST_LOG=trace` included: ureq-proto's TRACE events
/// hex-dump whole requests, publishing's `Authorization` header with them. Secrets never
/// reach a log, at any level.
fn leaks_secrets(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::TRACE && meta.target().starts_with("ureq_proto")
}

pub fn init(config: &Config) {
    let guard = || filter_fn(|meta| !leaks_secrets(meta));
    let filter = || {
        EnvFilter::try_from_env("RUST_LOG")
            .unwrap_or_else(|_| EnvFilter::new(config.log_level.as_str().to_lowercase()))
    };
    let want_syslog = match config.log_output.as_deref() {
        Some("syslog") => true,
        Some(_) => false,
        None => !std::io::stdin().is_terminal(),
    };
    if want_syslog {
        match Syslog::connect() {
            Ok(syslog) => {
                let _ = tracing_subscriber::fmt()
                    .with_env_filter(filter())
                    .with_writer(syslog)
                    .with_ansi(false)
                    .event_format(DlrepoFormat { with_level: false })
                    .finish()
                    .with(guard())
                    .try_init();
                return;
            }
            Err(e) if config.log_output.is_some() => {
                eprintln!("arbor: cannot log to /dev/log ({e}); logging to stderr");
            }
            Err(_) => {}
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .event_format(DlrepoFormat { with_level: true })
        .finish()
        .with(guard())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_lines_carry_priority_and_tag() {
        let (ours, theirs) = UnixDatagram::pair().unwrap();
        let syslog = Syslog(Arc::new(ours));
        {
            let mut line = syslog.line(priority(&Level::WARN));
            line.write_all(b"disk almost full\n").unwrap();
        }
        let mut buf = [0u8; 128];
        let n = theirs.recv(&mut buf).unwrap();
        // daemon (3) * 8 + warning (4) = 28
        assert_eq!(&buf[..n], b"<28>dlrepo: disk almost full");
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::DEBUG), 7);
    }

    #[test]
    fn request_dumps_are_never_logged() {
        use tracing::callsite::Identifier;
        use tracing::field::FieldSet;
        use tracing::metadata::Kind;
        struct Site;
        impl tracing::Callsite for Site {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                unreachable!("not registered")
            }
        }
        static SITE: Site = Site;
        let meta = |target: &'static str, level: Level| {
            Metadata::new(
                "event",
                target,
                level,
                None,
                None,
                None,
                FieldSet::new(&[], Identifier(&SITE)),
                Kind::EVENT,
            )
        };
        assert!(leaks_secrets(&meta("ureq_proto::util", Level::TRACE)));
        assert!(!leaks_secrets(&meta("ureq_proto::util", Level::DEBUG)));
        assert!(!leaks_secrets(&meta("ureq::run", Level::DEBUG)));
        assert!(!leaks_secrets(&meta("arbor::http::observe", Level::TRACE)));
    }
}
