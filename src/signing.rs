//! OpenPGP signing of repository indexes, in process (issue 15): the key named by
//! `DLREPO_SIGNING_KEY` signs `InRelease` (clearsigned), `Release.gpg` and `repomd.xml.asc`
//! (armored detached signatures), and its public half is served at `/pubkey` and
//! `/pubkey.gpg`. The key text is read by the caller (storage); this module only parses it.

use crate::config::Config;
use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, Deserializable, DetachedSignature, SignedSecretKey,
};
use pgp::packet::{SignatureConfig, SignatureType, Subpacket, SubpacketData};
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, KeyVersion, Password, SecretParams, SigningKey, Timestamp};
use std::time::{SystemTime, UNIX_EPOCH};

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
    /// The secret subkey that signs, when the primary key may not (see [`signing_subkey`]).
    subkey: Option<usize>,
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
        let encrypted = |p: &SecretParams| matches!(p, SecretParams::Encrypted(_));
        let protected = match signing_subkey(&key) {
            Some(i) => encrypted(key.secret_subkeys[i].key.secret_params()),
            None => encrypted(key.primary_key.secret_params()),
        };
        if protected {
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
            subkey: signing_subkey(&key),
            key,
            public_armored,
            public_binary,
        };
        signer
            .try_detached(b"probe", SystemTime::now())
            .map_err(unusable)?;
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

    /// `text` clearsigned, as apt reads `InRelease`, signed now.
    pub fn clearsign(&self, text: &[u8]) -> Vec<u8> {
        self.clearsign_at(text, SystemTime::now())
    }

    /// An armored detached signature of `data` (`Release.gpg`, `repomd.xml.asc`), signed now.
    pub fn detached(&self, data: &[u8]) -> Vec<u8> {
        self.detached_at(data, SystemTime::now())
    }

    /// [`Signer::clearsign`] with the signature's creation time `at` (say, the format's
    /// timestamp): with an Ed25519 or RSA key the same text gives the same bytes, so a
    /// cached index and its signature stay byte-identical across restarts. Bytes that are
    /// not UTF-8 are replaced (indexes are UTF-8 by construction).
    pub fn clearsign_at(&self, text: &[u8], at: SystemTime) -> Vec<u8> {
        let text = String::from_utf8_lossy(text);
        let signed = self
            .config(SignatureType::Text, at)
            .and_then(|c| CleartextSignedMessage::new(&text, c, &self.signing_key(), &no_pw()))
            .and_then(|m| m.to_armored_bytes(ArmorOptions::default()));
        // The key signed a probe at start-up; signing only fails on a broken RNG.
        signed.unwrap_or_else(|e| panic!("clearsigning failed with a checked key: {e}"))
    }

    /// [`Signer::detached`] with the signature's creation time `at`; see
    /// [`Signer::clearsign_at`].
    pub fn detached_at(&self, data: &[u8], at: SystemTime) -> Vec<u8> {
        self.try_detached(data, at)
            .unwrap_or_else(|e| panic!("signing failed with a checked key: {e}"))
    }

    fn try_detached(&self, data: &[u8], at: SystemTime) -> pgp::errors::Result<Vec<u8>> {
        let sig =
            self.config(SignatureType::Binary, at)?
                .sign(&self.signing_key(), &no_pw(), data)?;
        DetachedSignature::new(sig).to_armored_bytes(ArmorOptions::default())
    }

    /// The primary key, or the signing subkey when it has one.
    // rpgp implements `SigningKey` for `Box<&dyn SigningKey>`, not for `&dyn SigningKey`.
    #[allow(clippy::redundant_allocation)]
    fn signing_key(&self) -> Box<&dyn SigningKey> {
        match self.subkey.and_then(|i| self.key.secret_subkeys.get(i)) {
            Some(sub) => Box::new(&sub.key),
            None => Box::new(&self.key.primary_key),
        }
    }

    /// What `gpg` writes: creation time and issuer fingerprint hashed, the key id unhashed
    /// (v4). A time before the key's creation, which verifiers refuse, becomes the latter.
    fn config(&self, typ: SignatureType, at: SystemTime) -> pgp::errors::Result<SignatureConfig> {
        let key = &self.signing_key();
        let secs = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        let created = Timestamp::from_secs(secs.max(key.created_at().as_secs()));
        let mut config = SignatureConfig::from_key(rand::rngs::OsRng, key, typ)?;
        config.hashed_subpackets = vec![
            Subpacket::regular(SubpacketData::SignatureCreationTime(created))?,
            Subpacket::regular(SubpacketData::IssuerFingerprint(key.fingerprint()))?,
        ];
        if key.version() <= KeyVersion::V4 {
            config.unhashed_subpackets = vec![Subpacket::regular(SubpacketData::IssuerKeyId(
                key.legacy_key_id(),
            ))?];
        }
        Ok(config)
    }
}

/// As gpg chooses: the newest secret subkey flagged for signing when the primary key's
/// self-signatures do not flag it for signing (a certify-only primary); else the primary
/// key (which also covers old keys without flags).
fn signing_subkey(key: &SignedSecretKey) -> Option<usize> {
    let primary_signs = key
        .details
        .users
        .iter()
        .flat_map(|u| &u.signatures)
        .chain(&key.details.direct_signatures)
        .any(|sig| sig.key_flags().sign());
    if primary_signs {
        return None;
    }
    let signs = |sub: &pgp::composed::SignedSecretSubKey| {
        sub.signatures.iter().any(|sig| sig.key_flags().sign())
    };
    key.secret_subkeys
        .iter()
        .enumerate()
        .filter(|(_, sub)| signs(sub))
        .max_by_key(|(_, sub)| sub.key.created_at())
        .map(|(i, _)| i)
}

fn no_pw() -> Password {
    Password::empty()
}

#[cfg(test)]
#[path = "signing_tests.rs"]
mod tests;
