//! [`SealingKeys`]: AES-256-GCM for what server-held sessions keep at rest.

use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::ConfigError;

/// The format byte in front of every sealed value.
const FORMAT: u8 = 1;

/// The keys that seal server-held sessions' tokens (AES-256-GCM, a random 96-bit nonce per
/// value, the session's id as associated data so a sealed value cannot be moved to another
/// session).
///
/// One current key seals; older keys still open what they sealed, so keys rotate without
/// signing anyone out: add the new key as current, keep the old one with
/// [`with_old_key`](Self::with_old_key) for a session lifetime, then drop it. Each value names
/// its key's id. `Debug` shows the ids only.
///
/// ```
/// use tower_cognito::refresh::SealingKeys;
///
/// let keys = SealingKeys::from_base64("2026-12", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")?
///     .with_old_key_base64("2026-06", "Hx4dHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=")?;
/// # Ok::<(), tower_cognito::ConfigError>(())
/// ```
pub struct SealingKeys {
    current: Key,
    older: Vec<Key>,
    random: SystemRandom,
}

struct Key {
    id: String,
    key: LessSafeKey,
}

impl Key {
    fn new(id: &str, bytes: &[u8]) -> Result<Self, ConfigError> {
        if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::InvalidSetting {
                setting: "sealing key id",
                reason: "must be 1 to 32 printable ASCII characters",
            });
        }
        let unbound =
            UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| ConfigError::InvalidSetting {
                setting: "sealing key",
                reason: "must be 32 bytes (256 bits)",
            })?;
        Ok(Self {
            id: id.to_owned(),
            key: LessSafeKey::new(unbound),
        })
    }
}

fn decode(b64: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, ConfigError> {
    STANDARD
        .decode(b64.trim())
        .map(zeroize::Zeroizing::new)
        .map_err(|_| ConfigError::InvalidSetting {
            setting: "sealing key",
            reason: "must be standard base64 of 32 bytes",
        })
}

impl SealingKeys {
    /// Seal with the 32-byte key `key`, named `id`.
    pub fn new(id: &str, key: &[u8]) -> Result<Self, ConfigError> {
        Ok(Self {
            current: Key::new(id, key)?,
            older: Vec::new(),
            random: SystemRandom::new(),
        })
    }

    /// Seal with the key given as standard base64 of 32 bytes (`openssl rand -base64 32`).
    pub fn from_base64(id: &str, key: &str) -> Result<Self, ConfigError> {
        Self::new(id, &decode(key)?)
    }

    /// Also open values sealed by an older key (never seal with it).
    pub fn with_old_key(mut self, id: &str, key: &[u8]) -> Result<Self, ConfigError> {
        let key = Key::new(id, key)?;
        if key.id == self.current.id || self.older.iter().any(|k| k.id == key.id) {
            return Err(ConfigError::InvalidSetting {
                setting: "sealing key id",
                reason: "each key needs its own id",
            });
        }
        self.older.push(key);
        Ok(self)
    }

    /// [`with_old_key`](Self::with_old_key) with the key in standard base64.
    pub fn with_old_key_base64(self, id: &str, key: &str) -> Result<Self, ConfigError> {
        let bytes = decode(key)?;
        self.with_old_key(id, &bytes)
    }

    /// `FORMAT | id length | id | nonce | ciphertext and tag`.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let id = self.current.id.as_bytes();
        let mut nonce = [0u8; NONCE_LEN];
        // SystemRandom fails only when the OS has no randomness at all; sealing must not go on
        // with a fixed nonce then.
        self.random
            .fill(&mut nonce)
            .expect("the operating system's random number generator failed");
        let mut out = Vec::with_capacity(2 + id.len() + NONCE_LEN + plaintext.len() + 16);
        out.push(FORMAT);
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        let body = out.len();
        out.extend_from_slice(plaintext);
        let mut sealed = out.split_off(body);
        self.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut sealed,
            )
            .expect("AES-GCM sealing of an in-memory buffer cannot fail");
        out.extend_from_slice(&sealed);
        out
    }

    /// The plaintext, or `None` when the value is not ours, was sealed for another `aad`, was
    /// altered, or names a key we no longer hold.
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        let (&format, rest) = sealed.split_first()?;
        let (&id_len, rest) = rest.split_first()?;
        if format != FORMAT || rest.len() < id_len as usize + NONCE_LEN {
            return None;
        }
        let (id, rest) = rest.split_at(id_len as usize);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let key = std::iter::once(&self.current)
            .chain(&self.older)
            .find(|k| k.id.as_bytes() == id)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = zeroize::Zeroizing::new(ciphertext.to_vec());
        let plain_len = key
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buffer)
            .ok()?
            .len();
        buffer.truncate(plain_len);
        Some(buffer)
    }
}

impl fmt::Debug for SealingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKeys")
            .field("current", &self.current.id)
            .field(
                "older",
                &self.older.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::SealingKeys;

    fn keys(id: &str, byte: u8) -> SealingKeys {
        SealingKeys::new(id, &[byte; 32]).unwrap()
    }

    #[test]
    fn seals_and_opens_bound_to_the_aad() {
        let k = keys("k1", 7);
        let sealed = k.seal(b"session-a", b"refresh-token-value");
        assert!(!sealed
            .windows(b"refresh-token-value".len())
            .any(|w| w == b"refresh-token-value"));
        assert_eq!(
            k.open(b"session-a", &sealed).unwrap().as_slice(),
            b"refresh-token-value"
        );
        assert!(
            k.open(b"session-b", &sealed).is_none(),
            "moved to another session"
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(k.open(b"session-a", &altered).is_none());
        assert!(k.open(b"session-a", &sealed[..10]).is_none());
        assert!(k.open(b"session-a", b"").is_none());
        assert_ne!(
            k.seal(b"a", b"x"),
            k.seal(b"a", b"x"),
            "fresh nonce each time"
        );
    }

    #[test]
    fn old_keys_open_but_never_seal() {
        let old = keys("old", 1);
        let sealed_by_old = old.seal(b"s", b"v");
        let rotated = keys("new", 2).with_old_key("old", &[1; 32]).unwrap();
        assert_eq!(rotated.open(b"s", &sealed_by_old).unwrap().as_slice(), b"v");
        let sealed_now = rotated.seal(b"s", b"v");
        assert_eq!(&sealed_now[2..5], b"new");
        assert!(old.open(b"s", &sealed_now).is_none());
        assert!(
            keys("new", 2).open(b"s", &sealed_by_old).is_none(),
            "old key dropped"
        );
    }

    #[test]
    fn bad_keys_are_refused_and_debug_shows_ids_only() {
        assert!(SealingKeys::new("k", &[0; 16]).is_err());
        assert!(SealingKeys::new("", &[0; 32]).is_err());
        assert!(SealingKeys::from_base64("k", "not base64!").is_err());
        assert!(keys("k", 1).with_old_key("k", &[2; 32]).is_err());
        let shown = format!("{:?}", keys("k1", 0xab));
        assert_eq!(shown, r#"SealingKeys { current: "k1", older: [] }"#);
    }
}
