//! Which tags this process is publishing or un-publishing right now. Two runs for one tag
//! would interleave their status lines and flags, so the second one waits for the first,
//! then runs in full: it re-reads the tag, and what the targets already hold is not sent
//! again. Between processes and hosts sharing the root the wait is a `flock`
//! (`Repo::claim_publishing`), taken before this claim; this set is what a stop marks as
//! interrupted, so it holds only the tags whose run has started here.

use crate::model::TagRef;
use std::collections::HashSet;
use std::sync::{Condvar, Mutex, PoisonError};

#[derive(Default)]
pub(super) struct BusyTags {
    tags: Mutex<HashSet<TagRef>>,
    freed: Condvar,
}

/// A tag held by one run; dropping it lets the next run for the tag start.
pub(super) struct Claim<'a> {
    busy: &'a BusyTags,
    tag: TagRef,
}

impl BusyTags {
    /// Claims `tag`, waiting while another run holds it. Blocks the calling thread: publish
    /// threads only, never a runtime worker.
    pub fn claim(&self, tag: &TagRef) -> Claim<'_> {
        let mut tags = self.tags.lock().unwrap_or_else(PoisonError::into_inner);
        while tags.contains(tag) {
            tags = self
                .freed
                .wait(tags)
                .unwrap_or_else(PoisonError::into_inner);
        }
        tags.insert(tag.clone());
        Claim {
            busy: self,
            tag: tag.clone(),
        }
    }

    /// The tags held now, in no particular order.
    pub fn current(&self) -> Vec<TagRef> {
        let tags = self.tags.lock().unwrap_or_else(PoisonError::into_inner);
        tags.iter().cloned().collect()
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.busy
            .tags
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.tag);
        self.busy.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::tests::tag;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn different_tags_do_not_wait_for_each_other() {
        let busy = BusyTags::default();
        let _a = busy.claim(&tag("a"));
        let _b = busy.claim(&tag("b"));
        let mut now = busy.current();
        now.sort_by(|x, y| x.tag.as_str().cmp(y.tag.as_str()));
        assert_eq!(now, [tag("a"), tag("b")]);
    }

    #[test]
    fn a_second_run_of_the_same_tag_waits_for_the_first_then_runs() {
        let busy = BusyTags::default();
        let first = busy.claim(&tag("t"));
        let (started, second_started) = mpsc::channel();
        let (finish, second_may_finish) = mpsc::channel::<()>();
        std::thread::scope(|s| {
            let busy = &busy;
            s.spawn(move || {
                let _second = busy.claim(&tag("t"));
                started.send(()).expect("the test waits");
                let _ = second_may_finish.recv();
            });
            // Held by the first run: the second does not start.
            let waited = second_started.recv_timeout(Duration::from_millis(200));
            assert!(
                waited.is_err(),
                "the second run started while the first held the tag"
            );
            assert_eq!(busy.current(), [tag("t")]);
            drop(first);
            second_started
                .recv_timeout(Duration::from_secs(10))
                .expect("the second run starts once the first is done");
            // The tag is held again, by the second run alone.
            assert_eq!(busy.current(), [tag("t")]);
            finish.send(()).expect("the second run waits");
        });
        assert!(busy.current().is_empty());
    }
}
