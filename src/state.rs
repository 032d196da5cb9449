//! Shared application state handed to every request.

use crate::config::Config;
use crate::storage::Repo;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    /// The data root; every filesystem access goes through it.
    pub repo: Arc<Repo>,
    pub config: Arc<Config>,
}

impl AppState {
    pub fn new(config: Config) -> std::io::Result<AppState> {
        Ok(AppState {
            repo: Arc::new(Repo::new(&config)?),
            config: Arc::new(config),
        })
    }
}
