//! Files served outside the tree: the built-in static assets (compiled in), the
//! `DLREPO_STATIC_DIR` overrides, the `dlrepo-cli` script for `/cli`, and the
//! `DLREPO_SIGNING_KEY` file whose public half `/pubkey` serves.

use super::StoreError;
use std::path::{Path, PathBuf};

const BUILTIN: &[(&str, &[u8])] = &[
    ("dlrepo.css", include_bytes!("../../static/dlrepo.css")),
    ("logo.svg", include_bytes!("../../static/logo.svg")),
    ("favicon.svg", include_bytes!("../../static/favicon.svg")),
    ("locked.svg", include_bytes!("../../static/locked.svg")),
    ("released.svg", include_bytes!("../../static/released.svg")),
    (
        "published.svg",
        include_bytes!("../../static/published.svg"),
    ),
];

/// A static asset's bytes, from the override dir first, then the built-ins.
pub fn static_file(override_dir: Option<&Path>, name: &str) -> Result<Vec<u8>, StoreError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(StoreError::NotFound);
    }
    if let Some(dir) = override_dir {
        match std::fs::read(dir.join(name)) {
            Ok(bytes) => return Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| bytes.to_vec())
        .ok_or(StoreError::NotFound)
}

/// Where the `dlrepo-cli` script is: `DLREPO_CLI_PATH`, else the first one on `PATH`.
/// arbor does not ship the script; it belongs to the dlrepo project.
pub fn find_cli(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = configured {
        return Some(p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("dlrepo-cli"))
        .find(|p| p.is_file())
}

pub fn read_cli(path: &Path) -> Result<String, StoreError> {
    std::fs::read_to_string(path).map_err(super::not_found_if_missing)
}

/// The armored secret key `DLREPO_SIGNING_KEY` names, read once at start-up.
pub fn read_signing_key(path: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}
