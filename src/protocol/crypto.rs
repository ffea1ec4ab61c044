//! Authenticated encryption of datagrams (AES-256-GCM) and the keyring.
//!
//! ```text
//! sealed datagram = version:u8  kind=1:u8  nonce:12  AES-GCM(stamp:u64be envelope) (+16-byte tag)
//! associated data = the cluster name
//! ```
//!
//! A fresh random nonce per datagram (96 bits: a collision is negligible at
//! any realistic rate). The first key of the ring encrypts; every key decrypts,
//! so a new key can be installed everywhere, made primary, and the old one
//! removed, with no datagram refused on the way (as `serf keys` does). Using
//! the cluster name as associated data means a datagram sealed for another
//! cluster fails authentication even under the same key. The stamp inside
//! lets the receiver refuse a replayed datagram (see `replay.rs`).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;

use super::wire::{DecodeError, KIND_SEALED, PROTOCOL_VERSION};

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
pub const STAMP_LEN: usize = 8;
/// Bytes a sealed datagram carries beyond its plaintext envelope.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + STAMP_LEN + TAG_LEN;

pub type Key = [u8; KEY_LEN];

/// Parses a key given as base64 of 32 bytes.
pub fn parse_key(b64: &str) -> Result<Key, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("not valid base64: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("must be 32 bytes, got {}", b.len()))
}

pub fn encode_key(k: &Key) -> String {
    base64::engine::general_purpose::STANDARD.encode(k)
}

pub fn generate_key() -> Key {
    let mut k = [0u8; KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut k);
    k
}

/// The keys of one node: `keys[0]` encrypts, all decrypt. Empty: plaintext.
#[derive(Clone, Default)]
pub struct Keyring {
    keys: Vec<(Key, Aes256Gcm)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({} keys)", self.keys.len())
    }
}

impl Keyring {
    pub fn new(keys: &[Key]) -> Self {
        let mut ring = Keyring::default();
        for k in keys {
            ring.install(*k);
        }
        ring
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> Vec<Key> {
        self.keys.iter().map(|(k, _)| *k).collect()
    }

    /// Adds a key (as a secondary one; the first key installed is primary).
    pub fn install(&mut self, k: Key) {
        if !self.keys.iter().any(|(x, _)| *x == k) {
            self.keys.push((k, Aes256Gcm::new(&k.into())));
        }
    }

    /// Makes an installed key the primary (encrypting) one.
    pub fn use_key(&mut self, k: &Key) -> Result<(), String> {
        let i = self
            .keys
            .iter()
            .position(|(x, _)| x == k)
            .ok_or("key is not installed")?;
        let entry = self.keys.remove(i);
        self.keys.insert(0, entry);
        Ok(())
    }

    /// Removes a secondary key; the primary cannot be removed.
    pub fn remove(&mut self, k: &Key) -> Result<(), String> {
        match self.keys.iter().position(|(x, _)| x == k) {
            None => Err("key is not installed".into()),
            Some(0) => {
                Err("the primary key cannot be removed; make another key primary first".into())
            }
            Some(i) => {
                self.keys.remove(i);
                Ok(())
            }
        }
    }

    /// Seals a stamped envelope into a complete datagram with the primary key.
    pub fn seal(&self, envelope: &[u8], cluster: &str, stamp: u64) -> Option<Vec<u8>> {
        let (_, cipher) = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut plain = Vec::with_capacity(STAMP_LEN + envelope.len());
        plain.extend_from_slice(&stamp.to_be_bytes());
        plain.extend_from_slice(envelope);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: cluster.as_bytes(),
                },
            )
            .ok()?;
        let mut d = Vec::with_capacity(2 + NONCE_LEN + ct.len());
        d.push(PROTOCOL_VERSION);
        d.push(KIND_SEALED);
        d.extend_from_slice(&nonce);
        d.extend_from_slice(&ct);
        Some(d)
    }

    /// Opens a sealed body (after the 2-byte frame prefix) with any key:
    /// its stamp and its envelope.
    pub fn open(&self, body: &[u8], cluster: &str) -> Result<(u64, Vec<u8>), DecodeError> {
        if body.len() < NONCE_LEN + STAMP_LEN + TAG_LEN {
            return Err(DecodeError::Auth);
        }
        let (nonce, ct) = body.split_at(NONCE_LEN);
        for (_, cipher) in &self.keys {
            if let Ok(pt) = cipher.decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: cluster.as_bytes(),
                },
            ) {
                let mut stamp = [0u8; STAMP_LEN];
                stamp.copy_from_slice(&pt[..STAMP_LEN]);
                return Ok((u64::from_be_bytes(stamp), pt[STAMP_LEN..].to_vec()));
            }
        }
        Err(DecodeError::Auth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::wire::unframe;

    #[test]
    fn seal_then_open_with_any_installed_key() {
        let (k1, k2) = (generate_key(), generate_key());
        let sender = Keyring::new(&[k2]);
        let receiver = Keyring::new(&[k1, k2]);
        let d = sender.seal(b"hello", "default", 42).unwrap();
        let (kind, body) = unframe(&d).unwrap();
        assert_eq!(kind, KIND_SEALED);
        assert_eq!(d.len(), 2 + 5 + SEAL_OVERHEAD);
        assert_eq!(
            receiver.open(body, "default").unwrap(),
            (42, b"hello".to_vec())
        );
    }

    #[test]
    fn wrong_key_wrong_cluster_or_tampering_fail_authentication() {
        let k = generate_key();
        let ring = Keyring::new(&[k]);
        let d = ring.seal(b"hello", "default", 1).unwrap();
        let body = &d[2..];
        assert_eq!(
            Keyring::new(&[generate_key()]).open(body, "default"),
            Err(DecodeError::Auth)
        );
        assert_eq!(ring.open(body, "other"), Err(DecodeError::Auth));
        let mut bad = body.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(ring.open(&bad, "default"), Err(DecodeError::Auth));
        assert_eq!(ring.open(&body[..10], "default"), Err(DecodeError::Auth));
    }

    #[test]
    fn nonces_are_fresh() {
        let ring = Keyring::new(&[generate_key()]);
        let a = ring.seal(b"same", "c", 1).unwrap();
        let b = ring.seal(b"same", "c", 1).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn rotation_rules() {
        let (k1, k2) = (generate_key(), generate_key());
        let mut ring = Keyring::new(&[k1]);
        ring.install(k2);
        ring.install(k2);
        assert_eq!(ring.keys(), vec![k1, k2]);
        assert!(ring.remove(&k1).is_err(), "primary");
        ring.use_key(&k2).unwrap();
        ring.remove(&k1).unwrap();
        assert_eq!(ring.keys(), vec![k2]);
        assert!(ring.use_key(&k1).is_err());
    }

    #[test]
    fn key_parsing_says_what_is_wrong() {
        let k = generate_key();
        assert_eq!(parse_key(&encode_key(&k)).unwrap(), k);
        assert!(parse_key("not base64!").unwrap_err().contains("base64"));
        assert!(parse_key("aGVsbG8=").unwrap_err().contains("32 bytes"));
    }
}
