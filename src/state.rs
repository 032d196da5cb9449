//! Shared application state handed to every request.

use crate::auth::Auth;
use crate::background::Background;
use crate::config::Config;
use crate::publish::Publisher;
use crate::signing::Signer;
use crate::storage::Repo;
use crate::storage::search::SearchIndex;
use std::sync::{Arc, PoisonError, RwLock};

/// Cloned for every request (and by every layer that takes the state): one reference count,
/// where the fields' own `Arc`s cost seven increments and decrements per clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    /// The data root; every filesystem access goes through it.
    pub repo: Arc<Repo>,
    pub config: Arc<Config>,
    /// Access control, swapped whole on reload; a request clones the inner `Arc` once.
    auth: Arc<RwLock<Arc<Auth>>>,
    /// Which tags are being published, and what publish requests share.
    pub publisher: Arc<Publisher>,
    /// Publishes and cleanup runs: a stop waits for them.
    pub background: Background,
    /// The `DLREPO_SIGNING_KEY` signer for package indexes and `/pubkey`; `None` when unset.
    pub signer: Option<Arc<Signer>>,
    /// The search index (derived data; built in the background, see docs/search.md).
    pub search: Arc<SearchIndex>,
}

impl AppState {
    /// Opens the data root and loads access control and the signing key (a broken ACL file
    /// or key stops start-up).
    pub fn new(config: Config) -> Result<AppState, Box<dyn std::error::Error + Send + Sync>> {
        let repo = Arc::new(Repo::for_server(&config)?);
        repo.recount_in_background();
        let auth = Auth::load(&config, repo.token_files())?;
        let signer = Signer::from_config(&config)?.map(Arc::new);
        let config = Arc::new(config);
        let background = Background::default();
        let publisher = Publisher::new(Arc::clone(&repo), Arc::clone(&config), background.clone());
        Ok(AppState(Arc::new(Shared {
            repo,
            config,
            auth: Arc::new(RwLock::new(Arc::new(auth))),
            publisher: Arc::new(publisher),
            background,
            signer,
            search: Arc::default(),
        })))
    }

    /// The search index, its build started on first use (the server starts it at once).
    pub fn search(&self) -> &Arc<SearchIndex> {
        self.search.start(&self.repo);
        &self.search
    }

    pub fn auth(&self) -> Arc<Auth> {
        Arc::clone(&self.auth.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Re-reads the auth file and ACL directory. On an error the old rules stay and the
    /// error (file and line) is logged.
    pub async fn reload_auth(&self) {
        let config = Arc::clone(&self.config);
        let dir = self.repo.token_files();
        let loaded = tokio::task::spawn_blocking(move || Auth::load(&config, dir)).await;
        match loaded {
            Ok(Ok(auth)) => {
                *self.auth.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(auth);
                tracing::info!("access control reloaded");
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "ACL reload failed, keeping the previous rules")
            }
            Err(e) => tracing::error!(error = %e, "ACL reload failed"),
        }
    }
}
