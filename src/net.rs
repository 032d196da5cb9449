//! What arbor's outgoing HTTP clients share (publishing to another server, and the `arbor`
//! client commands): the system's TLS roots, which failures are worth another attempt, and
//! how long to wait before it.

use std::time::Duration;

/// The pause before attempt `attempt + 1`: 1 s, 2 s, 4 s, then 8 s at most.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500 << attempt.min(4))
}

/// Whether trying again may succeed.
pub fn is_transient(e: &ureq::Error) -> bool {
    match e {
        // rustls reports a refused certificate or handshake as InvalidData: trying again
        // cannot change the answer.
        ureq::Error::Io(io) => io.kind() != std::io::ErrorKind::InvalidData,
        ureq::Error::Timeout(_)
        | ureq::Error::ConnectionFailed
        | ureq::Error::HostNotFound
        | ureq::Error::Protocol(_) => true,
        _ => false,
    }
}

/// TLS for `https://`, verified against the system CA store (`/etc/ssl/certs`, or
/// `SSL_CERT_FILE`/`SSL_CERT_DIR` when set), as dlrepo's aiohttp does through OpenSSL. When no
/// store can be read at all, Mozilla's roots (compiled in) stand in, so public servers still
/// work. `who` names the client in the warnings.
pub fn tls_config(who: &str) -> ureq::tls::TlsConfig {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "{who}: reading the system CA store");
    }
    let certs: Vec<_> = found
        .certs
        .iter()
        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    let roots = if certs.is_empty() {
        tracing::warn!("{who}: no system CA certificates; using the built-in Mozilla roots");
        ureq::tls::RootCerts::WebPki
    } else {
        ureq::tls::RootCerts::new_with_certs(&certs)
    };
    ureq::tls::TlsConfig::builder().root_certs(roots).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows() {
        assert!(backoff(1) < backoff(2));
        assert!(backoff(100) <= Duration::from_secs(8));
    }
}
