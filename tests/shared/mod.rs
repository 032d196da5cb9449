//! What both test crates share: a response read whole, the requests every test makes (the
//! [`Client`] trait, over a socket in tests/blackbox, in process in tests/router), digests,
//! and looks at the data root. Each crate includes this directory as its module `shared`.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![allow(dead_code)]

pub mod access;
pub mod auth;
pub mod debs;
pub mod html_pages;
pub mod oci_requests;
pub mod oci_workflows;
pub mod rpms;
pub mod safe_serving;
pub mod search;
pub mod security;

use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// A response, fully read.
pub struct Res {
    pub status: u16,
    pub reason: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Res {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// A server on a temporary data root, and the requests tests make of it.
pub trait Client: Sized {
    /// A server with auth disabled unless `env` (`DLREPO_*` settings) says otherwise.
    fn start_with(env: &[(&str, &str)]) -> Self;

    /// The data root.
    fn root(&self) -> &Path;

    /// Sends any request; `body` None sends no body.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Res;

    fn start() -> Self {
        Self::start_with(&[])
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    fn get(&self, path: &str) -> Res {
        self.request("GET", path, &[], None)
    }

    fn head(&self, path: &str) -> Res {
        self.request("HEAD", path, &[], None)
    }

    fn delete(&self, path: &str) -> Res {
        self.request("DELETE", path, &[], None)
    }

    fn send_json(&self, method: &str, path: &str, body: &serde_json::Value) -> Res {
        let data = serde_json::to_vec(body).expect("json");
        self.request(
            method,
            path,
            &[("Content-Type", "application/json")],
            Some(&data),
        )
    }

    /// Uploads `data` with its correct digest.
    fn put_file(&self, path: &str, data: &[u8]) -> Res {
        let d = digest_of(data);
        self.request("PUT", path, &[("Digest", &d)], Some(data))
    }

    /// Uploads every file then clears the dirty flag, as dlrepo-cli does.
    fn upload_format(&self, format_url: &str, files: &[(&str, &[u8])]) {
        for (rel, data) in files {
            let r = self.put_file(&format!("{format_url}{rel}"), data);
            assert_eq!(r.status, 201, "{rel}: {}", r.text());
        }
        let r = self.request("PATCH", format_url, &[], Some(b""));
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

/// Files and link counts under a directory, for "nothing changed on disk" checks.
pub fn snapshot(root: &Path) -> Vec<(String, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out: Vec<_> = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        // Work areas, not content: staged uploads, and the lock files (one per directory
        // ever locked, made by refused writes too).
        .filter(|e| !e.path().starts_with(root.join(".uploads")))
        .filter(|e| !e.path().starts_with(root.join(".locks")))
        .map(|e| {
            let m = e.path().symlink_metadata().expect("stat");
            (
                e.path().strip_prefix(root).unwrap().display().to_string(),
                if m.is_file() { m.len() } else { 0 },
                m.nlink(),
            )
        })
        .collect();
    out.sort();
    out
}

/// `users/{user}/.disk_usage` as a number (0 when missing).
pub fn disk_usage(root: &Path, user: &str) -> u64 {
    std::fs::read_to_string(root.join("users").join(user).join(".disk_usage"))
        .map(|s| s.trim().parse().expect("a decimal count"))
        .unwrap_or(0)
}

/// What a recount finds for a user repository (spec/LAYOUT.md §6.4): every regular file
/// under `users/{user}/`, dot-files and `.disk_usage` included, symlinks not followed.
pub fn recount(root: &Path, user: &str) -> u64 {
    walkdir::WalkDir::new(root.join("users").join(user))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().expect("stat").len())
        .sum()
}

pub fn nlink(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("stat").nlink()
}

/// Regular files left in `.uploads/` (must be none after any finished request).
pub fn uploads_left(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join(".uploads"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
