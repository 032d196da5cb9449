//! What a caller may read, as a search asks it: each result by the rule of a `GET` of its
//! URL, and each branch, tag or job as a whole (whether anything below it could be
//! readable), so that a search skips the subtrees the caller cannot read anything in
//! without looking at their formats and files, or building a URL for each.

use crate::storage::Visibility;
use std::collections::HashMap;
use std::sync::Arc;

type Under = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What the caller of a search may read.
pub struct Access {
    read: Visibility,
    /// Whether anything whose URL starts with the prefix given may be readable; `None`
    /// when it is not known (every subtree is then looked into).
    under: Option<Under>,
}

impl Access {
    /// Everything (no access control).
    pub fn everything() -> Access {
        Access {
            read: Visibility::everything(),
            under: None,
        }
    }

    /// Reads what `read` allows; `under(prefix)` says whether anything whose URL starts
    /// with `prefix` may be readable (`false` only when nothing can be).
    pub fn new(read: Visibility, under: impl Fn(&str) -> bool + Send + Sync + 'static) -> Access {
        Access {
            read,
            under: Some(Arc::new(under)),
        }
    }

    /// Reads what `read` allows, with nothing known of whole subtrees.
    pub fn of(read: Visibility) -> Access {
        Access { read, under: None }
    }

    /// Whether the caller may read the entity at `url`.
    pub fn reads(&self, url: &str) -> bool {
        match &self.read {
            Visibility::Everything => true,
            Visibility::Only(f) => f(url),
        }
    }

    /// Whether the caller may read something whose URL starts with `prefix`.
    pub fn may_read_under(&self, prefix: &str) -> bool {
        self.under.as_ref().is_none_or(|f| f(prefix))
    }
}

/// The branches and tags one query found the caller can or cannot read anything in.
pub(crate) struct Subtrees<'a> {
    access: &'a Access,
    seen: HashMap<&'a str, bool>,
}

impl<'a> Subtrees<'a> {
    pub fn new(access: &'a Access) -> Subtrees<'a> {
        Subtrees {
            access,
            seen: HashMap::new(),
        }
    }

    /// Whether anything of the job at `url` (`[/~user]/branches/B/T/J/`) may be readable,
    /// as far as its branch and its tag tell: each is asked once per query. The job itself
    /// is asked later, of the jobs that match.
    pub fn may_show(&mut self, url: &'a str) -> bool {
        if self.access.under.is_none() {
            return true;
        }
        let parent = |u: &'a str| {
            let end = u.len().checked_sub(1)?;
            u.get(..end)?.rfind('/').and_then(|i| u.get(..=i))
        };
        let Some(tag) = parent(url) else {
            return true;
        };
        let Some(branch) = parent(tag) else {
            return true;
        };
        [branch, tag].into_iter().all(|prefix| {
            *self
                .seen
                .entry(prefix)
                .or_insert_with(|| self.access.may_read_under(prefix))
        })
    }
}

/// What one search looked at: tests and the slow-search log count work with it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    /// Candidate jobs taken in result order.
    pub jobs: usize,
    /// Jobs whose formats were looked at (or that were a result themselves).
    pub opened: usize,
    /// Formats and files looked at.
    pub entries: usize,
    /// URLs asked of the access rules.
    pub urls: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn each_branch_and_tag_is_asked_once() {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&asked);
        let access = Access::new(Visibility::new(|_| true), move |p| {
            log.lock().map(|mut l| l.push(p.to_owned())).ok();
            p.starts_with("/branches/public/")
        });
        let mut s = Subtrees::new(&access);
        assert!(!s.may_show("/branches/secret/t/a/"));
        assert!(!s.may_show("/branches/secret/u/b/"));
        assert!(s.may_show("/branches/public/t/c/"));
        assert!(s.may_show("/branches/public/t/d/"));
        assert!(!s.may_show("/~u/branches/public/t/e/"));
        let asked = asked.lock().map(|l| l.clone()).unwrap_or_default();
        assert_eq!(
            asked,
            [
                "/branches/secret/",
                "/branches/public/",
                "/branches/public/t/",
                "/~u/branches/public/"
            ]
        );
    }
}
