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
    #[cfg(test)]
    let mut fake = fake::stale_first();
    loop {
        #[cfg(test)]
        if std::mem::take(&mut fake) {
            std::thread::sleep(std::time::Duration::from_millis(1));
            attempt += 1;
            continue;
        }
        match op() {
            Err(e) if e.raw_os_error() == Some(nix::libc::ESTALE) && attempt < STALE_RETRIES => {
                std::thread::sleep(std::time::Duration::from_millis(1 << attempt));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Tests of the paths that retry: [`fake::stale_once_each`] makes every operation run
/// through [`retry_stale`] on this thread fail with `ESTALE` once before it is tried for real.
#[cfg(test)]
pub(crate) mod fake {
    use std::cell::Cell;

    thread_local! {
        static COUNT: Cell<Option<u32>> = const { Cell::new(None) };
    }

    /// Whether this operation is to fail once first (and counts it).
    pub(super) fn stale_first() -> bool {
        COUNT.with(|c| match c.get() {
            Some(n) => {
                c.set(Some(n + 1));
                true
            }
            None => false,
        })
    }

    /// Runs `f` with every retried operation failing once first; returns its result and how
    /// many operations were retried.
    pub(crate) fn stale_once_each<T>(f: impl FnOnce() -> T) -> (T, u32) {
        COUNT.with(|c| c.set(Some(0)));
        let out = f();
        let n = COUNT.with(|c| c.take()).unwrap_or(0);
        (out, n)
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
