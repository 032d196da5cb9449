//! A server with access control on: an auth file and an ACL directory written by the test.

use super::{Client, Res, digest_of};
use base64::Engine as _;
use std::path::{Path, PathBuf};

/// A running server, the directory its auth file and ACLs live in, and the passwords.
pub struct Secured<S> {
    pub server: S,
    pub etc: tempfile::TempDir,
    users: Vec<(String, String)>,
}

impl<S: Client> Secured<S> {
    /// `users`: `(login, password, groups)`; `acls`: `(group, file content)`.
    pub fn start(users: &[(&str, &str, &str)], acls: &[(&str, &str)]) -> Self {
        let etc = tempfile::tempdir().expect("temp dir");
        let dir = etc.path().join("acls");
        std::fs::create_dir_all(&dir).expect("acl dir");
        for (group, text) in acls {
            std::fs::write(dir.join(group), text).expect("acl file");
        }
        let auth: String = users
            .iter()
            .map(|(login, pw, groups)| format!("{login}:{pw}:{groups}\n"))
            .collect();
        std::fs::write(etc.path().join("auth"), auth).expect("auth file");
        let server = S::start_with(&[
            ("DLREPO_AUTH_DISABLED", "0"),
            ("DLREPO_AUTH_FILE", path_str(&etc.path().join("auth"))),
            ("DLREPO_ACLS_DIR", path_str(&dir)),
        ]);
        Secured {
            server,
            etc,
            users: users
                .iter()
                .map(|(l, p, _)| (l.to_string(), p.to_string()))
                .collect(),
        }
    }

    pub fn acls_dir(&self) -> PathBuf {
        self.etc.path().join("acls")
    }

    /// `Authorization` for `login`.
    pub fn basic(&self, login: &str) -> String {
        let pw = self
            .users
            .iter()
            .find(|(l, _)| l == login)
            .map_or("", |(_, p)| p.as_str());
        basic(login, pw)
    }

    /// Any request as `login`, with extra headers.
    pub fn send(
        &self,
        login: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Res {
        let auth = self.basic(login);
        let mut all = vec![("Authorization", auth.as_str())];
        all.extend_from_slice(headers);
        self.server.request(method, path, &all, body)
    }

    pub fn get(&self, login: &str, path: &str) -> Res {
        self.send(login, "GET", path, &[], None)
    }

    /// Uploads `data` as `login` with its digest.
    pub fn put(&self, login: &str, path: &str, data: &[u8]) -> Res {
        let d = digest_of(data);
        self.send(login, "PUT", path, &[("Digest", &d)], Some(data))
    }

    pub fn json(&self, login: &str, method: &str, path: &str, body: &serde_json::Value) -> Res {
        let data = serde_json::to_vec(body).expect("json");
        self.send(
            login,
            method,
            path,
            &[("Content-Type", "application/json")],
            Some(&data),
        )
    }
}

pub fn basic(login: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"))
    )
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}
