//! Access-control reloads while the server runs: SIGHUP always reloads; a change to the auth
//! file or to an ACL file reloads once its burst of events has settled, and only when what a
//! load reads is not what the last load read. Owns the watcher and that comparison; the
//! loading itself is `AppState::reload_auth`.
// The fingerprint reads the same files `Auth::load` reads, outside `storage/` like it.
#![allow(clippy::disallowed_methods)]

use crate::auth::acl;
use crate::config::Config;
use crate::state::AppState;
use notify::event::{AccessKind, AccessMode, EventKind};
use sha2::{Digest as _, Sha256};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::signal::unix::Signal;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// An editor's save is several events (write a temporary file, rename it over, change its
/// mode): wait until none has come for this long before looking.
const QUIET: Duration = Duration::from_millis(200);

/// ...but look after this long even if events keep coming, so that a file rewritten in a
/// loop still gets its changes applied within a second.
const MAX_WAIT: Duration = Duration::from_millis(600);

/// A hash of everything a load reads: the auth file and each ACL file, with their names.
pub type Fingerprint = [u8; 32];

/// The paths whose events matter. Events on anything else in the watched directories (a
/// pid file beside the auth file, the server's own reads) are dropped before they cost a
/// single read.
#[derive(Debug, Clone)]
struct Watched {
    /// The directory watched for the auth file, and the auth file's name in it.
    auth_dir: PathBuf,
    auth_name: OsString,
    /// When the auth file is a symlink, the entry of `auth_dir` its target goes through
    /// (Kubernetes swaps `..data` to update a mounted file, never touching the link itself).
    auth_hop: Option<OsString>,
    acls_dir: PathBuf,
}

impl Watched {
    fn new(config: &Config) -> Watched {
        let file = &config.auth_file;
        let auth_dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let auth_hop = std::fs::read_link(file)
            .ok()
            .filter(|target| target.is_relative())
            .and_then(|target| {
                target.components().next().and_then(|c| match c {
                    std::path::Component::Normal(name) => Some(name.to_os_string()),
                    _ => None,
                })
            });
        Watched {
            auth_dir: absolute(auth_dir),
            auth_name: file.file_name().unwrap_or_default().to_os_string(),
            auth_hop,
            acls_dir: absolute(config.acls_dir.clone()),
        }
    }

    /// Whether `path`, from an event of a watched directory, is the auth file, an entry of
    /// the ACL directory, or the ACL directory itself.
    fn covers(&self, path: &Path) -> bool {
        if path == self.acls_dir || path.parent() == Some(self.acls_dir.as_path()) {
            return true;
        }
        path.parent() == Some(self.auth_dir.as_path())
            && path.file_name().is_some_and(|name| {
                name == self.auth_name || self.auth_hop.as_deref() == Some(name)
            })
    }

    /// Whether `event` may have changed what a load reads. Opening or reading a file does
    /// not: reacting to those made every reload, which reads the files, trigger the next.
    fn wants(&self, event: &notify::Event) -> bool {
        let changes = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => false,
            EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Remove(_)
            | EventKind::Any
            | EventKind::Other => true,
        };
        // A rescan request names no path: the watcher lost events, so look.
        changes && (event.need_rescan() || event.paths.iter().any(|p| self.covers(p)))
    }
}

/// `path` as the watcher reports it: a relative path is joined to the working directory
/// (not canonicalized), as notify does with the paths it is given.
fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        return path;
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(&path))
        .unwrap_or(path)
}

/// Hashes what `Auth::load` reads for `config`: the auth file's bytes and every ACL file's
/// name and bytes, in the order a load reads them. A file that cannot be read hashes as
/// its error, so that it becoming readable counts as a change.
pub fn fingerprint(config: &Config) -> Fingerprint {
    let mut h = Sha256::new();
    let mut file = |tag: &[u8], path: &Path| {
        h.update(tag);
        h.update((tag.len() as u64).to_le_bytes());
        match std::fs::read(path) {
            Ok(bytes) => {
                h.update(b"ok");
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
            Err(e) => {
                h.update(b"err");
                h.update(e.to_string().as_bytes());
            }
        }
    };
    file(b"auth", &config.auth_file);
    match acl::group_files(&config.acls_dir) {
        Ok(Some(files)) => {
            for (group, path) in files {
                file(group.as_bytes(), &path);
            }
        }
        Ok(None) => h.update(b"no ACL directory"),
        Err(e) => h.update(format!("ACL directory: {e}").as_bytes()),
    }
    h.finalize().into()
}

/// The running watcher and what it saw before the first load. Start it before loading
/// access control, so that a change made during the load is seen.
pub struct Watch {
    /// Kept alive for as long as the server runs; `None` when nothing can be watched.
    _watcher: Option<notify::RecommendedWatcher>,
    changed: mpsc::Receiver<()>,
    seen: Fingerprint,
}

impl Watch {
    /// Watches the auth file's directory and the ACL directory (non-recursively: that is
    /// where the files are, and editors replace a file by renaming another over it, which a
    /// watch on the file itself would lose). Does nothing when access control is off.
    pub fn start(config: &Config) -> Watch {
        let (tx, changed) = mpsc::channel::<()>(1);
        let watched = Watched::new(config);
        let watcher = (!config.auth_disabled)
            .then(|| watch(&watched, tx))
            .flatten();
        Watch {
            _watcher: watcher,
            changed,
            seen: fingerprint(config),
        }
    }

    /// Reloads `state`'s access control on every SIGHUP, and after a change once it has
    /// settled and only when the content differs, until the process ends.
    pub fn spawn(self, state: AppState, mut hup: Signal) {
        let Watch {
            _watcher: watcher,
            mut changed,
            mut seen,
        } = self;
        tokio::spawn(async move {
            // Owned by the task: dropping the watcher ends the watch.
            let _watcher = watcher;
            loop {
                let forced = tokio::select! {
                    _ = hup.recv() => true,
                    Some(()) = changed.recv() => {
                        settle(&mut changed).await;
                        false
                    }
                };
                let config = std::sync::Arc::clone(&state.config);
                let Ok(now) = tokio::task::spawn_blocking(move || fingerprint(&config)).await
                else {
                    continue;
                };
                if !forced && now == seen {
                    tracing::debug!("auth and ACL files unchanged: not reloading");
                    continue;
                }
                seen = now;
                state.reload_auth().await;
            }
        });
    }
}

fn watch(watched: &Watched, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let filter = watched.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // A full channel already holds a wake-up; errors say nothing about the files.
        if event.is_ok_and(|e| filter.wants(&e)) {
            let _ = tx.try_send(());
        }
    })
    .map_err(
        |e| tracing::warn!(error = %e, "cannot watch the auth and ACL files; SIGHUP still reloads"),
    )
    .ok()?;
    let mut dirs = vec![&watched.acls_dir];
    if watched.auth_dir != watched.acls_dir {
        dirs.push(&watched.auth_dir);
    }
    for dir in dirs {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch for ACL changes; SIGHUP still reloads");
        }
    }
    Some(watcher)
}

/// Returns once no event has come for [`QUIET`], or [`MAX_WAIT`] after the call.
async fn settle(changed: &mut mpsc::Receiver<()>) {
    let deadline = Instant::now() + MAX_WAIT;
    loop {
        let until = (Instant::now() + QUIET).min(deadline);
        match tokio::time::timeout_at(until, changed.recv()).await {
            Ok(Some(())) if Instant::now() < deadline => {}
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, MetadataKind, ModifyKind, RenameMode};

    fn watched() -> Watched {
        Watched {
            auth_dir: PathBuf::from("/etc/dlrepo"),
            auth_name: "auth".into(),
            auth_hop: None,
            acls_dir: PathBuf::from("/etc/dlrepo/acls"),
        }
    }

    fn event(kind: EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_the_auth_file_and_the_acl_files_count() {
        let w = watched();
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(w.wants(&event(write, "/etc/dlrepo/auth")));
        assert!(w.wants(&event(write, "/etc/dlrepo/acls/devs")));
        assert!(w.wants(&event(
            EventKind::Remove(notify::event::RemoveKind::Folder),
            "/etc/dlrepo/acls"
        )));
        // Neighbours of the auth file, and deeper entries, are not read by a load.
        assert!(!w.wants(&event(write, "/etc/dlrepo/arbor.pid")));
        assert!(!w.wants(&event(write, "/etc/dlrepo/auth.swp")));
        assert!(!w.wants(&event(write, "/etc/dlrepo/acls/sub/x")));
        assert!(!w.wants(&event(write, "/etc/auth")));
    }

    #[test]
    fn relative_paths_match_the_events_of_their_watch() {
        let w = Watched::new(&Config {
            auth_file: PathBuf::from("auth"),
            acls_dir: PathBuf::from("./acls"),
            ..Config::default()
        });
        let cwd = std::env::current_dir().unwrap();
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let at = |rel: &str| event(write, cwd.join(rel).to_str().unwrap());
        assert!(w.wants(&at("auth")));
        assert!(w.wants(&at("./acls/devs")));
        assert!(w.wants(&at("acls/devs")));
        assert!(!w.wants(&at("other")));
    }

    #[test]
    fn reads_are_not_changes() {
        let w = watched();
        let acl = "/etc/dlrepo/acls/devs";
        for kind in [
            EventKind::Access(AccessKind::Open(notify::event::AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
        ] {
            assert!(!w.wants(&event(kind, acl)), "{kind:?}");
        }
        for kind in [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions)),
        ] {
            assert!(w.wants(&event(kind, acl)), "{kind:?}");
        }
    }

    #[test]
    fn a_symlinked_auth_file_follows_its_first_hop() {
        let w = Watched {
            auth_hop: Some("..data".into()),
            ..watched()
        };
        let swap = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert!(w.wants(&event(swap, "/etc/dlrepo/..data")));
        assert!(!watched().wants(&event(swap, "/etc/dlrepo/..data")));
    }

    #[test]
    fn the_fingerprint_follows_content_not_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let acls = dir.path().join("acls");
        std::fs::create_dir(&acls).unwrap();
        std::fs::write(dir.path().join("auth"), "a:b:devs\n").unwrap();
        std::fs::write(acls.join("devs"), "r /**\n").unwrap();
        let config = Config {
            auth_file: dir.path().join("auth"),
            acls_dir: acls.clone(),
            ..Config::default()
        };
        let first = fingerprint(&config);
        // Rewritten with the same bytes, and a file that is no ACL file: no change.
        std::fs::write(acls.join("devs"), "r /**\n").unwrap();
        std::fs::create_dir(acls.join("sub")).unwrap();
        std::fs::write(dir.path().join("arbor.pid"), "42\n").unwrap();
        assert_eq!(fingerprint(&config), first);
        std::fs::write(acls.join("devs"), "rw /**\n").unwrap();
        let second = fingerprint(&config);
        assert_ne!(second, first);
        // The same bytes under another group name are other rules.
        std::fs::rename(acls.join("devs"), acls.join("ops")).unwrap();
        assert_ne!(fingerprint(&config), second);
        std::fs::remove_file(dir.path().join("auth")).unwrap();
        assert_ne!(fingerprint(&config), second);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_settles_into_one_look() {
        let (tx, mut rx) = mpsc::channel(1);
        let start = Instant::now();
        // Events every 100 ms for 2 s: never quiet, so the cap decides.
        tokio::spawn(async move {
            for _ in 0..20 {
                let _ = tx.try_send(());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        settle(&mut rx).await;
        assert_eq!(start.elapsed(), MAX_WAIT);
        // A single event: QUIET after it.
        let (tx, mut rx) = mpsc::channel(1);
        let start = Instant::now();
        tx.try_send(()).unwrap();
        rx.recv().await;
        settle(&mut rx).await;
        assert_eq!(start.elapsed(), QUIET);
    }
}
