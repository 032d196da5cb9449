//! Network filesystems: a path looked up on one host while another renames over it can name
//! the replaced file for an instant (`ESTALE`); looking it up again finds the new one.

use std::io;

/// How many times an operation that failed with `ESTALE` is tried again.
const STALE_RETRIES: u32 = 5;

/// Runs `op`, and again after a short pause (1, 2, 4, 8, 16 ms) while it fails with `ESTALE`.
/// On a network filesystem, a path looked up on one host while another renames over it can
/// name the replaced file for an instant (GlusterFS: about one open in 2,000 under such a
/// race); looking it up again finds the new one. Anything else fails at once.
pub(crate) fn retry_stale<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut attempt = 0;
    loop {
        match op() {
            Err(e) if e.raw_os_error() == Some(nix::libc::ESTALE) && attempt < STALE_RETRIES => {
                std::thread::sleep(std::time::Duration::from_millis(1 << attempt));
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_handles_are_looked_up_again_a_few_times_only() {
        let stale = || io::Error::from_raw_os_error(nix::libc::ESTALE);
        let mut calls = 0;
        let r = retry_stale(|| {
            calls += 1;
            if calls < 3 { Err(stale()) } else { Ok(calls) }
        });
        assert_eq!(r.ok(), Some(3));
        calls = 0;
        let r: io::Result<()> = retry_stale(|| {
            calls += 1;
            Err(stale())
        });
        assert!(r.is_err());
        assert_eq!(calls, STALE_RETRIES + 1);
        calls = 0;
        let r: io::Result<()> = retry_stale(|| {
            calls += 1;
            Err(io::Error::from_raw_os_error(nix::libc::EIO))
        });
        assert!(r.is_err());
        assert_eq!(calls, 1, "other errors are not retried");
    }
}
