//! Work the server does besides answering requests: publishes and cleanup runs. All of it
//! is tracked, so that a stop waits for it (within `DLREPO_DRAIN_TIMEOUT`) instead of
//! leaving it at whatever point the process happened to exit.

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

/// The tracked background tasks of one server.
#[derive(Clone, Default)]
pub struct Background(TaskTracker);

impl Background {
    /// Runs `f` on the blocking pool as tracked work, in the caller's tracing span.
    pub fn spawn_blocking<T, F>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let span = tracing::Span::current();
        self.0.spawn_blocking(move || span.in_scope(f))
    }

    /// Waits for the tracked work until `deadline`: `false` when some still runs then.
    /// Work started meanwhile is waited for too.
    pub async fn wait_until(&self, deadline: Instant) -> bool {
        self.0.close();
        tokio::time::timeout_at(deadline, self.0.wait())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn a_stop_waits_for_background_work_within_its_window() {
        let background = Background::default();
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        background.spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(200));
            flag.store(true, Ordering::SeqCst);
        });
        let finished = background
            .wait_until(Instant::now() + Duration::from_secs(10))
            .await;
        assert!(finished && done.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn work_outlasting_the_window_does_not_hold_the_stop() {
        let background = Background::default();
        let (release, held) = std::sync::mpsc::channel::<()>();
        background.spawn_blocking(move || {
            let _ = held.recv();
        });
        let start = Instant::now();
        let finished = background
            .wait_until(start + Duration::from_millis(100))
            .await;
        assert!(!finished);
        assert!(start.elapsed() < Duration::from_secs(5));
        drop(release);
    }
}
