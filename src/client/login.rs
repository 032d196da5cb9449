//! `arbor login` and `arbor logout`: a token kept in `~/.config/arbor/tokens` (mode 0600)
//! for one server, so that commands authenticate without it in the environment or a
//! password on disk.
// The client writes the user's own configuration file, never the repository tree.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use super::remote::Remote;
use super::settings::{Auth, origin, with_token};
use super::{ClientError, TOKENS_FILE};
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

pub fn login(r: &Remote) -> Result<(), ClientError> {
    let token = read_token(r.base())?;
    // Checked before it is saved: a token the server refuses is a typo, not a login.
    let check = Remote::new(r.base(), Auth::Bearer(token.clone()));
    check.get_json("branches/", None)?;
    save(r.base(), Some(&token))?;
    eprintln!("Token saved for {} in ~/{TOKENS_FILE}", origin(r.base()));
    Ok(())
}

pub fn logout(r: &Remote) -> Result<(), ClientError> {
    save(r.base(), None)?;
    eprintln!("No token saved for {} any more", origin(r.base()));
    Ok(())
}

fn read_token(base: &str) -> Result<String, ClientError> {
    let token = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Token for {}: ", origin(base)))
            .map_err(|e| ClientError::Local(e.to_string()))?
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| ClientError::Local(e.to_string()))?;
        text
    };
    let token = token.trim().to_owned();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(ClientError::Usage("no token given".into()));
    }
    Ok(token)
}

/// Rewrites the tokens file with `token` for `base`'s server (or without it), through a
/// temporary file renamed over it, never readable by others.
fn save(base: &str, token: Option<&str>) -> Result<(), ClientError> {
    let local = |e: std::io::Error| ClientError::Local(format!("~/{TOKENS_FILE}: {e}"));
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or_else(|| ClientError::Local("HOME is not set".into()))?;
    let path = home.join(TOKENS_FILE);
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let text = with_token(&old, base, token);
    if let Some(dir) = path.parent() {
        // The directory of a secret is the user's alone, whatever the umask.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(dir)
            .map_err(local)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    // A left-over temporary file would keep its old mode: start afresh.
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(local)?;
    file.write_all(text.as_bytes()).map_err(local)?;
    file.sync_all().map_err(local)?;
    std::fs::rename(&tmp, &path).map_err(local)
}
