//! Signing keys, the JWKS document and the JWT encoding (RS256, compact form).

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

/// One RSA-2048 key pair with its `kid`.
pub(crate) struct SigningKey {
    kid: String,
    pair: KeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key pair. Its `kid` looks like Cognito's: standard base64 of 32 random bytes
    /// (so it carries `+`, `/` and `=`, which verifiers must treat as plain lookup-key bytes).
    pub(crate) fn generate() -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA-2048 key generation");
        let kid = STANDARD.encode(random_bytes::<32>());
        Self { kid, pair }
    }

    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK, shaped like Cognito's.
    pub(crate) fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "alg": "RS256",
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            "kid": self.kid,
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "use": "sig",
        })
    }

    /// `header.claims.signature`, header `{"kid":..,"alg":"RS256"}` (no `typ`, as Cognito).
    pub(crate) fn sign_jwt(&self, claims: &Value) -> String {
        let header = json!({ "kid": self.kid, "alg": "RS256" });
        self.sign_with_header(&header, claims)
    }

    /// Signs `header.claims` with this key whatever the header says (for hostile-token tests).
    pub(crate) fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                token.as_bytes(),
                &mut signature,
            )
            .expect("RS256 signing");
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        token
    }
}

/// The keys in use plus the pair they replaced (kept once, so tokens in flight still verify).
#[derive(Debug)]
pub(crate) struct KeySet {
    pub(crate) access: Arc<SigningKey>,
    pub(crate) id: Arc<SigningKey>,
    previous: Option<(Arc<SigningKey>, Arc<SigningKey>)>,
}

impl KeySet {
    pub(crate) fn new(access: SigningKey, id: SigningKey) -> Self {
        Self {
            access: Arc::new(access),
            id: Arc::new(id),
            previous: None,
        }
    }

    /// New keys sign from now on; the current ones stay published; older ones are dropped.
    pub(crate) fn rotate(&mut self, access: SigningKey, id: SigningKey) {
        let old_access = std::mem::replace(&mut self.access, Arc::new(access));
        let old_id = std::mem::replace(&mut self.id, Arc::new(id));
        self.previous = Some((old_access, old_id));
    }

    /// `{"keys":[...]}`: current access key, current id key, then the previous pair.
    pub(crate) fn jwks(&self) -> Value {
        let mut keys = vec![self.access.jwk(), self.id.jwk()];
        if let Some((access, id)) = &self.previous {
            keys.push(access.jwk());
            keys.push(id.jwk());
        }
        json!({ "keys": keys })
    }
}

/// `N` bytes from the system's secure random source.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("system random source");
    bytes
}

/// A random version-4 UUID in its usual text form.
pub(crate) fn uuid() -> String {
    uuid_from(random_bytes::<16>())
}

/// Formats 16 bytes as a version-4, RFC 4122 variant UUID.
pub(crate) fn uuid_from(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
