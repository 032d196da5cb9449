//! One run of an expensive read, shared by the callers that wait for it together.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

/// Runs an expensive read (one that walks the whole tree) one at a time, and hands a caller
/// the result of a run that started after it asked, when there is one. Callers that pile up
/// while a run is under way share the next run, so a flood of requests costs two runs in a
/// row rather than one each at once (each holding a blocking thread), and every answer is
/// still as new as its request. Waiting callers hold no thread: the lock is async.
pub(crate) struct SharedRun<T> {
    /// How many runs have started.
    started: AtomicU64,
    /// The last run that finished, by its number, with its result.
    last: tokio::sync::Mutex<Option<(u64, T)>>,
}

impl<T: Clone> SharedRun<T> {
    pub fn new() -> Self {
        SharedRun {
            started: AtomicU64::new(0),
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The result of `run`, or of a run that started after this call did.
    pub async fn get<E, F, Fut>(&self, run: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let asked = self.started.load(Ordering::SeqCst);
        let mut last = self.last.lock().await;
        if let Some((id, value)) = last.as_ref()
            && *id > asked
        {
            return Ok(value.clone());
        }
        let id = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let value = run().await?;
        *last = Some((id, value.clone()));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::SharedRun;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_who_wait_together_share_one_run() {
        const CALLERS: usize = 10;
        let shared = Arc::new(SharedRun::<usize>::new());
        let (arrived, runs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut tasks = Vec::new();
        for _ in 0..CALLERS {
            let (shared, arrived, runs) = (shared.clone(), arrived.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                arrived.fetch_add(1, Ordering::SeqCst);
                shared
                    .get(|| async {
                        // The first run lasts until every caller has asked.
                        while arrived.load(Ordering::SeqCst) < CALLERS {
                            tokio::task::yield_now().await;
                        }
                        Ok::<_, ()>(runs.fetch_add(1, Ordering::SeqCst) + 1)
                    })
                    .await
            }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.expect("the task").expect("a result"));
        }
        // The first run, then one for everyone who asked while it ran.
        assert!(runs.load(Ordering::SeqCst) <= 2, "{got:?}");
        assert!(got.iter().all(|&n| n == 1 || n == 2), "{got:?}");
        // A later caller gets a run of its own: never an answer older than its request.
        let again = shared
            .get(|| async { Ok::<_, ()>(runs.fetch_add(1, Ordering::SeqCst) + 1) })
            .await;
        assert_eq!(again, Ok(runs.load(Ordering::SeqCst)));
        assert!(again.unwrap_or(0) > *got.iter().max().unwrap_or(&0));
    }

    #[tokio::test]
    async fn a_failed_run_is_not_kept() {
        let shared = SharedRun::<u8>::new();
        assert_eq!(shared.get(|| async { Err::<u8, _>("no") }).await, Err("no"));
        assert_eq!(shared.get(|| async { Ok::<_, &str>(7) }).await, Ok(7));
    }
}
