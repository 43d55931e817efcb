//! Signing keys, the JWKS document and the JWT encoding (RS256, compact form).

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

/// An RSA-2048 signing key with its `kid`: what a [`LocalCognito`](crate::LocalCognito) signs
/// with, and what tests sign their own tokens with.
///
/// Cloning is cheap (the key pair is shared). `Debug` shows the `kid` only.
///
/// ```
/// use tower_cognito_testing::SigningKey;
///
/// let key = SigningKey::generate().with_kid("test-key-0");
/// let token = key.sign_jwt(&serde_json::json!({ "sub": "alice" }));
/// let header = tower_cognito_testing::decode_header(&token);
/// assert_eq!(header, serde_json::json!({ "alg": "RS256", "kid": "test-key-0" }));
/// assert_eq!(key.jwk()["kid"], "test-key-0");
/// ```
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    pair: Arc<KeyPair>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// [`SigningKey::from_pkcs8`] was given bytes that are not a PKCS#8 RSA private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidKey;

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a PKCS#8 RSA private key")
    }
}

impl std::error::Error for InvalidKey {}

impl SigningKey {
    /// A fresh key pair (a few hundred milliseconds of CPU: generate once, clone after). Its
    /// `kid` looks like Cognito's: standard base64 of 32 random bytes (so it carries `+`, `/`
    /// and `=`, which verifiers must treat as plain lookup-key bytes).
    pub fn generate() -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA-2048 key generation");
        let kid = STANDARD.encode(random_bytes::<32>());
        Self {
            kid,
            pair: Arc::new(pair),
        }
    }

    /// Loads an RSA private key from PKCS#8 DER (such as [`SigningKey::pkcs8_der`] of another).
    pub fn from_pkcs8(kid: impl Into<String>, pkcs8_der: &[u8]) -> Result<Self, InvalidKey> {
        let pair = KeyPair::from_pkcs8(pkcs8_der).map_err(|_| InvalidKey)?;
        Ok(Self {
            kid: kid.into(),
            pair: Arc::new(pair),
        })
    }

    /// The same key material under another `kid`.
    #[must_use]
    pub fn with_kid(&self, kid: impl Into<String>) -> Self {
        Self {
            kid: kid.into(),
            pair: Arc::clone(&self.pair),
        }
    }

    /// The key id, as published in the JWK and put in token headers.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK, shaped like Cognito's:
    /// `{"alg":"RS256","e":..,"kid":..,"kty":"RSA","n":..,"use":"sig"}`.
    pub fn jwk(&self) -> Value {
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

    /// The private key as PKCS#8 v1 DER.
    pub fn pkcs8_der(&self) -> Vec<u8> {
        self.pair
            .as_der()
            .expect("PKCS#8 export of an RSA key")
            .as_ref()
            .to_vec()
    }

    /// The public key as DER of a PKCS#1 `RSAPublicKey` (what an attacker who downloaded the
    /// JWKS can rebuild: the key of an HS256 key-confusion forgery).
    pub fn public_key_der(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// The RS256 (RSASSA-PKCS1-v1_5, SHA-256) signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .expect("RS256 signing");
        signature
    }

    /// `header.claims.signature`, header `{"alg":"RS256","kid":..}` (no `typ`, as Cognito).
    pub fn sign_jwt(&self, claims: &Value) -> String {
        let header = json!({ "kid": self.kid, "alg": "RS256" });
        self.sign_with_header(&header, claims)
    }

    /// Signs `header.claims` with this key (RS256) whatever the header says: for hostile
    /// tokens (a wrong `alg`, a `crit`, another `kid`...).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self.sign(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        token
    }
}

/// The keys in use plus the pair they replaced (kept once, so tokens in flight still verify).
#[derive(Debug)]
pub(crate) struct KeySet {
    pub(crate) access: SigningKey,
    pub(crate) id: SigningKey,
    previous: Option<(SigningKey, SigningKey)>,
}

impl KeySet {
    pub(crate) fn new(access: SigningKey, id: SigningKey) -> Self {
        Self {
            access,
            id,
            previous: None,
        }
    }

    /// New keys sign from now on; the current ones stay published; older ones are dropped.
    pub(crate) fn rotate(&mut self, access: SigningKey, id: SigningKey) {
        let old_access = std::mem::replace(&mut self.access, access);
        let old_id = std::mem::replace(&mut self.id, id);
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
