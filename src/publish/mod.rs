//! Publishing: pushes a released tag to every `DLREPO_PUBLISH_URL` server, and deletes it
//! from them when it is un-released, step by step as spec/CONFIG.md §5 describes. Runs in
//! the background on a blocking thread tracked by [`Background`]; progress and
//! errors go to the tag's `.publish-status`. Owns no files: the tree is read and flagged
//! through `Repo`. Its state lives in one [`Publisher`], never in globals.

mod busy;
mod client;
mod release;

use crate::background::Background;
use crate::config::Config;
use crate::model::TagRef;
use crate::storage::{Repo, StoreError};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use client::ATTEMPTS;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// `421 DLREPO_PUBLISH_URL is undefined` (spec/API.md §3.5).
    #[error("DLREPO_PUBLISH_URL is undefined")]
    UrlUndefined,
    /// `421 DLREPO_PUBLISH_AUTH is undefined`.
    #[error("DLREPO_PUBLISH_AUTH is undefined")]
    AuthUndefined,
    /// The tag is gone (404) or the tree cannot be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The publishing settings, checked: both the targets and the credentials file are set.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `DLREPO_PUBLISH_URL` verbatim: split at `,` for the targets, quoted whole in the
    /// `published to` status (spec/CONFIG.md Q43).
    pub urls: String,
    pub auth_file: PathBuf,
    pub filter_cmd: Option<PathBuf>,
    pub timeout: Duration,
    pub max_requests: usize,
}

impl Settings {
    pub fn from_config(config: &Config) -> Result<Settings, PublishError> {
        let urls = config
            .publish_url
            .clone()
            .ok_or(PublishError::UrlUndefined)?;
        let auth_file = config
            .publish_auth
            .clone()
            .ok_or(PublishError::AuthUndefined)?;
        Ok(Settings {
            urls,
            auth_file,
            filter_cmd: config.publish_filter_cmd.clone(),
            timeout: Duration::from_secs(config.publish_timeout),
            max_requests: config.publish_max_requests,
        })
    }
}

/// Publishing's state for the life of the process, made at start-up and owned by
/// `AppState` (or made for one `arbor gc`): which tags are being published, what their
/// requests share (the cap on requests in flight, the TLS roots), and where runs go.
pub struct Publisher {
    repo: Arc<Repo>,
    config: Arc<Config>,
    /// Where publish runs are tracked, so that a stop waits for them.
    background: Background,
    busy: busy::BusyTags,
    http: client::Shared,
}

impl Publisher {
    pub fn new(repo: Arc<Repo>, config: Arc<Config>, background: Background) -> Publisher {
        Publisher {
            http: client::Shared::new(config.publish_max_requests),
            busy: busy::BusyTags::default(),
            repo,
            config,
            background,
        }
    }

    /// `POST {tag}/ {"tag": {"released": ...}}`: checks the settings and the tag, then
    /// publishes (or un-publishes) in the background and returns at once. The HTTP layer
    /// answers 421 with the error text for [`PublishError::UrlUndefined`] and
    /// [`PublishError::AuthUndefined`].
    pub async fn start_release(
        self: &Arc<Self>,
        tag: TagRef,
        released: bool,
    ) -> Result<(), PublishError> {
        let settings = Settings::from_config(&self.config)?;
        let t = tag.clone();
        // The tag must exist now (404 otherwise), as in dlrepo; the run re-reads it.
        self.repo.run(move |r| r.publish_job_list(&t)).await?;
        let publisher = Arc::clone(self);
        // A blocking thread, as the HTTP client is synchronous; tracked, so that a stop
        // waits for it. Nothing awaits the result, which lands in `.publish-status`.
        self.background.spawn_blocking(move || {
            let _ = publisher.release_now(&settings, &tag, released);
        });
        Ok(())
    }

    /// Publishes (`released`) or un-publishes the tag now, on the calling (blocking) thread;
    /// the status file says how it went and so does the result. Runs for one tag at a time,
    /// in this process and every other one sharing the root: a second call for the same tag
    /// waits for the first (`Repo::claim_publishing`). Tag cleanup calls this with
    /// `released = false` before deleting a released tag (spec/LAYOUT.md §6.2).
    pub fn release_now(
        &self,
        settings: &Settings,
        tag: &TagRef,
        released: bool,
    ) -> Result<(), String> {
        let repo = &*self.repo;
        // Held across processes and hosts sharing the root: a release of the same tag
        // elsewhere waits here as one in this process does.
        let _shared = match repo.claim_publishing(tag) {
            Ok(claim) => claim,
            Err(e) => {
                tracing::error!(tag = %tag.url(), error = %e, "cannot claim the tag for publishing");
                return Err(e.to_string());
            }
        };
        let _claim = self.busy.claim(tag);
        let verb = if released { "publish" } else { "unpublish" };
        let result = release::do_release(repo, settings, &self.http, tag, released);
        let action = if released {
            crate::metrics::Action::publish
        } else {
            crate::metrics::Action::unpublish
        };
        crate::metrics::get().record_publish(action, result.is_ok());
        match result {
            Ok(()) => {
                tracing::info!(tag = %tag.url(), "{verb} done");
                Ok(())
            }
            Err(e) => {
                tracing::error!(tag = %tag.url(), error = %e, "{verb} failed");
                // The flags stay as they are; only the status changes (spec/CONFIG.md §5).
                if let Err(err) = repo.set_publish_status(tag, Some(&format!("error: {e}"))) {
                    tracing::error!(tag = %tag.url(), error = %err, "cannot write .publish-status");
                }
                Err(e.0)
            }
        }
    }

    /// Tag cleanup's un-publish step, run before a released tag is deleted: `None` when
    /// `DLREPO_PUBLISH_URL` is unset, as there is nothing to retract. With the URL set but
    /// the credentials missing it fails, so cleanup keeps the tag instead of stranding its
    /// copies.
    pub fn cleanup_unpublisher(&self) -> Option<impl Fn(&TagRef) -> Result<(), String> + Sync> {
        self.config.publish_url.as_ref()?;
        let settings = Settings::from_config(&self.config).map_err(|e| e.to_string());
        Some(move |tag: &TagRef| {
            let settings = settings.as_ref().map_err(Clone::clone)?;
            self.release_now(settings, tag, false)
        })
    }

    /// At a server stop, once the drain window is over: marks the tags still being published
    /// as interrupted, so that their status does not say `in progress` forever. Their
    /// threads die with the process; a new release picks up where they were, as publishing
    /// skips what the target already holds.
    pub fn mark_interrupted(&self) {
        let repo = &*self.repo;
        for tag in self.busy.current() {
            tracing::warn!(tag = %tag.url(), "publish interrupted by the stop");
            let status = "error: interrupted by a server stop; release the tag again to finish";
            if let Err(e) = repo.set_publish_status(&tag, Some(status)) {
                tracing::error!(tag = %tag.url(), error = %e, "cannot write .publish-status");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    // The tests lay out a tag by hand; only storage/ does so in production code.
    #![allow(clippy::disallowed_methods)]

    use super::*;
    use crate::model::{BranchRef, Name, Scope};
    use std::sync::mpsc;

    /// The tag `b/{name}` of the root scope.
    pub(super) fn tag(name: &str) -> TagRef {
        TagRef {
            branch: BranchRef {
                scope: Scope::Root,
                branch: Name::parse("b").expect("valid name"),
            },
            tag: Name::parse(name).expect("valid name"),
        }
    }

    /// A publisher on a data root holding the empty tags `b/t` and `b/u`.
    fn publisher() -> (tempfile::TempDir, Arc<Publisher>) {
        let dir = tempfile::tempdir().expect("temp dir");
        for t in ["t", "u"] {
            std::fs::create_dir_all(dir.path().join("branches/b").join(t)).expect("tag dir");
        }
        let config = Config {
            root_dir: dir.path().to_owned(),
            ..Config::default()
        };
        let repo = Arc::new(Repo::new(&config).expect("repo"));
        let publisher = Publisher::new(repo, Arc::new(config), Background::default());
        (dir, Arc::new(publisher))
    }

    fn status(dir: &tempfile::TempDir, tag: &str) -> Option<String> {
        std::fs::read_to_string(
            dir.path()
                .join("branches/b")
                .join(tag)
                .join(".publish-status"),
        )
        .ok()
    }

    #[test]
    fn a_stop_marks_the_tags_still_being_published() {
        let (dir, publisher) = publisher();
        let claim = publisher.busy.claim(&tag("t"));
        publisher.mark_interrupted();
        assert_eq!(
            status(&dir, "t").as_deref(),
            Some("error: interrupted by a server stop; release the tag again to finish\n")
        );
        assert_eq!(
            status(&dir, "u"),
            None,
            "a tag nobody publishes keeps its status"
        );
        drop(claim);
    }

    /// Releases `b/t` while `first` holds it: the run waits until `first` is dropped, then
    /// runs in full.
    fn second_release_waits<T>(dir: &tempfile::TempDir, publisher: &Arc<Publisher>, first: T) {
        // The filter skips the only target: the run makes no request, then finds nothing
        // published and clears the release.
        let settings = Settings {
            urls: "http://127.0.0.1:9/".into(),
            auth_file: dir.path().join("no-credentials"),
            filter_cmd: Some("false".into()),
            timeout: Duration::from_secs(1),
            max_requests: 1,
        };
        let (done, second_done) = mpsc::channel();
        std::thread::scope(|s| {
            let (publisher, settings) = (&publisher, &settings);
            s.spawn(move || {
                let result = publisher.release_now(settings, &tag("t"), true);
                done.send(result).expect("the test waits");
            });
            let waited = second_done.recv_timeout(Duration::from_millis(200));
            assert!(
                waited.is_err(),
                "the second run started while the first held the tag"
            );
            assert_eq!(status(dir, "t"), None, "the waiting run wrote its status");
            assert!(
                publisher.busy.current().len() <= 1,
                "a waiting run is not marked as running"
            );
            drop(first);
            let result = second_done
                .recv_timeout(Duration::from_secs(10))
                .expect("the second run starts once the first is done");
            assert_eq!(result, Ok(()));
        });
        assert_eq!(status(dir, "t"), None, "an empty release leaves no status");
        assert!(publisher.busy.current().is_empty());
    }

    #[test]
    fn a_second_release_of_a_tag_waits_for_the_first_then_runs_in_full() {
        let (dir, publisher) = publisher();
        let first = publisher.busy.claim(&tag("t"));
        second_release_waits(&dir, &publisher, first);
    }

    /// Another arbor process or host sharing the root holds the tag: its claim is a `flock`
    /// of its own open file, as this one is.
    #[test]
    fn a_release_waits_for_a_run_of_another_process_on_the_root() {
        let (dir, publisher) = publisher();
        let elsewhere = publisher.repo.claim_publishing(&tag("t")).expect("claim");
        assert!(publisher.busy.current().is_empty());
        second_release_waits(&dir, &publisher, elsewhere);
    }
}
