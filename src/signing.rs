//! OpenPGP signing of repository indexes, in process (issue 15): the key named by
//! `DLREPO_SIGNING_KEY` signs `InRelease` (clearsigned), `Release.gpg` and `repomd.xml.asc`
//! (armored detached signatures), and its public half is served at `/pubkey` and
//! `/pubkey.gpg`. The key text is read by the caller (storage); this module only parses it.

use crate::config::Config;
use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, Deserializable, DetachedSignature, SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Password, SecretParams};

/// Why a configured key cannot sign; each stops the server at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("DLREPO_SIGNING_KEY {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("DLREPO_SIGNING_KEY {path}: not an armored OpenPGP secret key ({why})")]
    NotSecretKey { path: String, why: String },
    #[error(
        "DLREPO_SIGNING_KEY {path}: the secret key is protected by a passphrase; export it without one"
    )]
    Protected { path: String },
    #[error("DLREPO_SIGNING_KEY {path}: the key cannot sign: {why}")]
    Unusable { path: String, why: String },
}

/// A loaded secret key and its public half, ready to serve.
pub struct Signer {
    key: SignedSecretKey,
    public_armored: Vec<u8>,
    public_binary: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl Signer {
    /// The signer `DLREPO_SIGNING_KEY` names, if set; any problem stops start-up.
    pub fn from_config(config: &Config) -> Result<Option<Signer>, SigningError> {
        let Some(path) = &config.signing_key else {
            return Ok(None);
        };
        let shown = path.display().to_string();
        let text =
            crate::storage::assets::read_signing_key(path).map_err(|err| SigningError::Read {
                path: shown.clone(),
                err,
            })?;
        Signer::from_armored(&text, &shown).map(Some)
    }

    /// Parses an armored secret key (`path` only names it in errors) and proves it can sign
    /// without a passphrase, so a bad key stops start-up instead of the first index request.
    pub fn from_armored(text: &str, path: &str) -> Result<Signer, SigningError> {
        let not_secret = |why: String| SigningError::NotSecretKey {
            path: path.to_owned(),
            why,
        };
        let (key, _) = SignedSecretKey::from_string(text).map_err(|e| not_secret(e.to_string()))?;
        if matches!(key.primary_key.secret_params(), SecretParams::Encrypted(_)) {
            return Err(SigningError::Protected {
                path: path.to_owned(),
            });
        }
        let unusable = |e: pgp::errors::Error| SigningError::Unusable {
            path: path.to_owned(),
            why: e.to_string(),
        };
        let public = key.to_public_key();
        let public_armored = public
            .to_armored_bytes(ArmorOptions::default())
            .map_err(unusable)?;
        let public_binary = public.to_bytes().map_err(unusable)?;
        let signer = Signer {
            key,
            public_armored,
            public_binary,
        };
        signer.try_detached(b"probe").map_err(unusable)?;
        Ok(signer)
    }

    /// The primary key's fingerprint, upper-case hex as `gpg --with-colons` prints it.
    pub fn fingerprint(&self) -> String {
        hex::encode_upper(self.key.primary_key.fingerprint().as_bytes())
    }

    /// The public key, armored (`GET /pubkey`).
    pub fn public_armored(&self) -> &[u8] {
        &self.public_armored
    }

    /// The public key, binary (`GET /pubkey.gpg`, for apt's `signed-by`).
    pub fn public_binary(&self) -> &[u8] {
        &self.public_binary
    }

    /// `text` clearsigned, as apt reads `InRelease`. Bytes that are not UTF-8 are replaced
    /// (indexes are ASCII/UTF-8 by construction).
    pub fn clearsign(&self, text: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(text);
        let signed =
            CleartextSignedMessage::sign(rand::rngs::OsRng, &text, &self.key.primary_key, &no_pw())
                .and_then(|m| m.to_armored_bytes(ArmorOptions::default()));
        // The key signed a probe at start-up; signing only fails on a broken RNG.
        signed.unwrap_or_else(|e| panic!("clearsigning failed with a checked key: {e}"))
    }

    /// An armored detached signature of `data` (`Release.gpg`, `repomd.xml.asc`).
    pub fn detached(&self, data: &[u8]) -> Vec<u8> {
        self.try_detached(data)
            .unwrap_or_else(|e| panic!("signing failed with a checked key: {e}"))
    }

    fn try_detached(&self, data: &[u8]) -> pgp::errors::Result<Vec<u8>> {
        DetachedSignature::sign_binary_data(
            rand::rngs::OsRng,
            &self.key.primary_key,
            &no_pw(),
            HashAlgorithm::Sha256,
            data,
        )?
        .to_armored_bytes(ArmorOptions::default())
    }
}

fn no_pw() -> Password {
    Password::empty()
}

#[cfg(test)]
#[path = "signing_tests.rs"]
mod tests;
