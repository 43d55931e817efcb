//! A parsed JWKS: RSA signing keys by `kid`, each parsed once into a ready verifier.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use serde::Deserialize;

/// The most keys one JWKS may contribute; Cognito serves two.
const MAX_KEYS: usize = 64;
/// The longest `kid` kept; Cognito's are 44 characters.
pub(crate) const MAX_KID_BYTES: usize = 256;

/// JWK members are base64url; tolerate padding there (some emulators add it).
const JWK_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One RSA public key, parsed when fetched and used for RS256 only.
pub(crate) struct VerifyingKey {
    kid: Box<str>,
    key: ParsedPublicKey,
    /// The length of `n`, `n`, then `e`: to tell whether a refreshed JWKS still maps this `kid`
    /// to the same key.
    components: Box<[u8]>,
}

impl VerifyingKey {
    /// Verifies an RSASSA-PKCS1-v1_5 SHA-256 signature over `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }

    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The keys of one JWKS document.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    /// ahash, not SipHash: the lookup by `kid` is on every fresh token's path.
    keys: HashMap<Box<str>, Arc<VerifyingKey>, ahash::RandomState>,
}

/// Why a JWKS document gave no keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeySetError {
    NotJson(String),
    NoUsableKeys { skipped: usize },
}

impl fmt::Display for KeySetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotJson(e) => write!(f, "not a JWKS document: {e}"),
            Self::NoUsableKeys { skipped } => write!(
                f,
                "no usable RSA signing key ({skipped} keys skipped: only kty RSA, use sig, alg RS256, 2048 to 8192 bits)"
            ),
        }
    }
}

#[derive(Deserialize)]
struct Document {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl KeySet {
    /// Parses a JWKS document, keeping only RSA signing keys usable for RS256.
    ///
    /// A key is skipped, not fatal, when it is of another type or malformed; a `kid` that appears
    /// twice is dropped altogether, since a lookup could not tell the two keys apart. A document
    /// with no usable key at all is an error, so a broken answer never empties the cache.
    pub(crate) fn parse(json: &[u8]) -> Result<Self, KeySetError> {
        let doc: Document =
            serde_json::from_slice(json).map_err(|e| KeySetError::NotJson(e.to_string()))?;
        let mut keys: HashMap<Box<str>, Arc<VerifyingKey>, ahash::RandomState> = HashMap::default();
        let mut ambiguous: Vec<Box<str>> = Vec::new();
        let mut skipped = 0;
        for value in doc.keys {
            match parse_key(value) {
                Some(key) if keys.len() < MAX_KEYS => {
                    if keys.contains_key(&key.kid) {
                        ambiguous.push(key.kid.clone());
                    } else {
                        keys.insert(key.kid.clone(), Arc::new(key));
                    }
                }
                _ => skipped += 1,
            }
        }
        for kid in &ambiguous {
            skipped += 1;
            if keys.remove(kid).is_some() {
                skipped += 1;
            }
        }
        if keys.is_empty() {
            return Err(KeySetError::NoUsableKeys { skipped });
        }
        if skipped > 0 {
            tracing::debug!(skipped, kept = keys.len(), "skipped unusable JWKS keys");
        }
        Ok(Self { keys })
    }

    /// Keeps the `Arc` of every key that `previous` already held with the same `kid` and the
    /// same key material, so that tokens cached under it stay valid across a refresh.
    pub(crate) fn reuse_unchanged(&mut self, previous: &KeySet) {
        for (kid, key) in &mut self.keys {
            if let Some(old) = previous.keys.get(kid) {
                if old.components == key.components {
                    *key = Arc::clone(old);
                }
            }
        }
    }

    pub(crate) fn get(&self, kid: &str) -> Option<&Arc<VerifyingKey>> {
        self.keys.get(kid)
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The size of a big-endian modulus in bits, ignoring leading zero bytes.
fn modulus_bits(n: &[u8]) -> usize {
    match n.iter().position(|&b| b != 0) {
        Some(i) => (n.len() - i) * 8 - n[i].leading_zeros() as usize,
        None => 0,
    }
}

fn parse_key(value: serde_json::Value) -> Option<VerifyingKey> {
    let jwk: RawJwk = serde_json::from_value(value).ok()?;
    if jwk.kty != "RSA"
        || jwk.use_.as_deref().is_some_and(|u| u != "sig")
        || jwk.alg.as_deref().is_some_and(|a| a != "RS256")
    {
        return None;
    }
    let kid = jwk
        .kid
        .filter(|k| !k.is_empty() && k.len() <= MAX_KID_BYTES)?;
    let n = JWK_B64.decode(jwk.n?).ok()?;
    let e = JWK_B64.decode(jwk.e?).ok()?;
    // aws-lc-rs checks the modulus size only when verifying: refuse small keys here, so that a
    // JWKS of only weak keys is a failed fetch that keeps the cached keys.
    if !(2048..=8192).contains(&modulus_bits(&n)) {
        return None;
    }
    let key = RsaPublicKeyComponents { n: &n, e: &e }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .ok()?;
    // Length-prefixed: `n ‖ e` alone would let two different keys join into the same bytes.
    let mut components = Vec::with_capacity(4 + n.len() + e.len());
    components.extend_from_slice(&(n.len() as u32).to_be_bytes());
    components.extend_from_slice(&n);
    components.extend_from_slice(&e);
    Some(VerifyingKey {
        kid: kid.into_boxed_str(),
        key,
        components: components.into_boxed_slice(),
    })
}

#[cfg(test)]
mod tests {
    use super::modulus_bits;

    #[test]
    fn counts_modulus_bits() {
        assert_eq!(modulus_bits(&[]), 0);
        assert_eq!(modulus_bits(&[0, 0, 1]), 1);
        assert_eq!(modulus_bits(&[0x80; 256]), 2048);
        let mut n = vec![0u8];
        n.extend([0x7f; 256]);
        assert_eq!(modulus_bits(&n), 2047);
    }
}
