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
