//! Identity-card numbers, encrypted at rest with AES-256-GCM.
//!
//! A stored number reads `v1:<key id>:<base64 of nonce ‖ ciphertext>`; the
//! key id picks the key from the configured key ring, so keys rotate: add a
//! new key, make it current, run `seedling reseal-id-numbers` (every number
//! re-encrypted under the current key), then drop the old key. The column
//! name is bound into each ciphertext as associated data, so a sealed value
//! copied into another column does not open.
//!
//! The key ring is installed once per process (the database layer converts
//! values without access to the application state); installing a different
//! ring later is refused.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

const VERSION: &str = "v1";
const AAD: &[u8] = b"children.id_number";

/// Why a key ring could not be installed or a value opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("identity-number key `{0}` is not 32 bytes of base64")]
    BadKey(String),
    #[error("the current identity-number key `{0}` is not in the key ring")]
    NoCurrentKey(String),
    #[error("a different identity-number key ring is already in use by this process")]
    AlreadyInstalled,
    #[error("no identity-number key ring is installed")]
    NotInstalled,
    #[error("a stored identity number was sealed with key `{0}`, which is not configured")]
    UnknownKey(String),
    #[error("a stored identity number does not open: it was altered, or the key is wrong")]
    Corrupt,
}

/// The keys by id and which one seals new values.
pub struct KeyRing {
    current: String,
    keys: BTreeMap<String, Aes256Gcm>,
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current)
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Keys as `id → base64 of 32 bytes`.
    pub fn new<'a>(
        current: &str,
        keys: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, CryptoError> {
        let mut ring = BTreeMap::new();
        let mut fingerprint = Sha256::new();
        fingerprint.update(current.as_bytes());
        for (id, encoded) in keys {
            let bytes = STANDARD
                .decode(encoded.trim())
                .ok()
                .filter(|bytes| bytes.len() == 32)
                .ok_or_else(|| CryptoError::BadKey(id.to_owned()))?;
            fingerprint.update(id.as_bytes());
            fingerprint.update(&bytes);
            ring.insert(
                id.to_owned(),
                Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
            );
        }
        if !ring.contains_key(current) {
            return Err(CryptoError::NoCurrentKey(current.to_owned()));
        }
        Ok(Self {
            current: current.to_owned(),
            keys: ring,
            fingerprint: fingerprint.finalize().into(),
        })
    }

    /// A new random key, base64.
    pub fn generate_key() -> String {
        STANDARD.encode(Aes256Gcm::generate_key(OsRng))
    }

    pub fn seal(&self, plain: &str) -> String {
        let cipher = &self.keys[&self.current];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: AAD,
                },
            )
            .unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        format!("{VERSION}:{}:{}", self.current, STANDARD.encode(bytes))
    }

    pub fn open(&self, stored: &str) -> Result<String, CryptoError> {
        let Some(rest) = stored.strip_prefix("v1:") else {
            // Written before encryption existed; `reseal-id-numbers` seals it.
            return Ok(stored.to_owned());
        };
        let (id, body) = rest.split_once(':').ok_or(CryptoError::Corrupt)?;
        let cipher = self
            .keys
            .get(id)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_owned()))?;
        let bytes = STANDARD.decode(body).map_err(|_| CryptoError::Corrupt)?;
        if bytes.len() < 12 {
            return Err(CryptoError::Corrupt);
        }
        let (nonce, sealed) = bytes.split_at(12);
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: AAD,
                },
            )
            .map_err(|_| CryptoError::Corrupt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Corrupt)
    }

    /// The id of the key new values are sealed with.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// True when `stored` is sealed under the current key.
    pub fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix("v1:")
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(id, _)| id == self.current)
    }
}

static RING: OnceLock<KeyRing> = OnceLock::new();

/// Installs the process's key ring; a second install must be the same ring.
pub fn install(ring: KeyRing) -> Result<(), CryptoError> {
    let fingerprint = ring.fingerprint;
    let installed = RING.get_or_init(|| ring);
    if installed.fingerprint == fingerprint {
        Ok(())
    } else {
        Err(CryptoError::AlreadyInstalled)
    }
}

/// The installed key ring.
pub fn ring() -> Result<&'static KeyRing, CryptoError> {
    RING.get().ok_or(CryptoError::NotInstalled)
}

/// An identity-card number as the number shows to a role that does not need
/// all of it: the last four characters, the rest starred.
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    let keep = chars.len().saturating_sub(4);
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < keep { '*' } else { *c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(current: &str, keys: &[(&str, &str)]) -> KeyRing {
        KeyRing::new(current, keys.iter().copied()).unwrap()
    }

    #[test]
    fn seals_open_and_rotate() {
        let (k1, k2) = (KeyRing::generate_key(), KeyRing::generate_key());
        let old = ring("k1", &[("k1", &k1)]);
        let sealed = old.seal("330283201503021234");
        assert!(sealed.starts_with("v1:k1:"));
        assert!(!sealed.contains("1234"));
        assert_ne!(
            old.seal("330283201503021234"),
            sealed,
            "a fresh nonce each time"
        );
        assert_eq!(old.open(&sealed).unwrap(), "330283201503021234");

        let both = ring("k2", &[("k1", &k1), ("k2", &k2)]);
        assert_eq!(both.open(&sealed).unwrap(), "330283201503021234");
        assert!(!both.is_current(&sealed));
        let resealed = both.seal(&both.open(&sealed).unwrap());
        assert!(both.is_current(&resealed));

        let new = ring("k2", &[("k2", &k2)]);
        assert_eq!(new.open(&resealed).unwrap(), "330283201503021234");
        assert!(matches!(new.open(&sealed), Err(CryptoError::UnknownKey(id)) if id == "k1"));
    }

    #[test]
    fn an_altered_value_does_not_open() {
        let key = KeyRing::generate_key();
        let ring = ring("k1", &[("k1", &key)]);
        let sealed = ring.seal("330283201503021234");
        let mut bytes = STANDARD.decode(&sealed["v1:k1:".len()..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = format!("v1:k1:{}", STANDARD.encode(bytes));
        assert!(matches!(ring.open(&altered), Err(CryptoError::Corrupt)));
        assert!(matches!(ring.open("v1:k1:!!"), Err(CryptoError::Corrupt)));
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(matches!(
            KeyRing::new("k1", [("k1", "c2hvcnQ=")]),
            Err(CryptoError::BadKey(_))
        ));
        let key = KeyRing::generate_key();
        assert!(matches!(
            KeyRing::new("k9", [("k1", key.as_str())]),
            Err(CryptoError::NoCurrentKey(_))
        ));
    }

    #[test]
    fn masking_keeps_the_last_four() {
        assert_eq!(mask("33028320150302123X"), "**************123X");
        assert_eq!(mask("123"), "123");
    }
}
