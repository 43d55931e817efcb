//! [`Verified`]: the outcome of a verification, handed to the request as it is.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::claims::AccessClaims;
use crate::jwks::VerifyingKey;
use crate::jws::{decode_b64, split_token};

/// A verified token's claims. Cheap to clone (one reference count); dereferences to the claims.
///
/// The layer puts one in the request extensions; with the `axum` feature it is also an
/// extractor (and `Option<Verified<C>>` for routes where authentication is optional).
pub struct Verified<C = AccessClaims> {
    /// One `Arc` for all of it: a cache hit hands the cached value to the request as it is,
    /// and a clone or a drop is one atomic operation.
    token: Arc<VerifiedToken<C>>,
}

/// Everything about one verified token, behind the one `Arc` of [`Verified`].
struct VerifiedToken<C> {
    claims: C,
    iat: i64,
    exp: i64,
    session_key: Option<Box<str>>,
    /// The token itself: compared on every cache hit, and for [`Verified::claim`].
    token: Box<str>,
    validity: Validity,
}

/// What a verification still depends on, and how long it holds: read on every later use of it
/// (the verified-token cache).
pub(crate) struct Validity {
    /// The index of the pool the token belongs to, whose keys `key` is of.
    pub(crate) pool: usize,
    /// The key that verified the token (it knows its `kid`).
    pub(crate) key: Arc<VerifyingKey>,
    /// The generation of the key set `key` came from.
    pub(crate) generation: u64,
    /// `exp + leeway`: the first second at which the token is refused.
    pub(crate) refused_from: i64,
    /// How long it may stay cached: until the token is refused, as seen when it was verified.
    pub(crate) ttl: Duration,
}

impl Validity {
    pub(super) fn new(
        pool: usize,
        key: Arc<VerifyingKey>,
        generation: u64,
        refused_from: i64,
        now: i64,
    ) -> Self {
        let secs = refused_from.saturating_sub(now).clamp(1, 24 * 3600);
        Self {
            pool,
            key,
            generation,
            refused_from,
            ttl: Duration::from_secs(secs.unsigned_abs()),
        }
    }
}

impl<C> Verified<C> {
    pub(super) fn new(
        claims: C,
        (iat, exp): (i64, i64),
        session_key: Option<Box<str>>,
        token: &str,
        validity: Validity,
    ) -> Self {
        Self {
            token: Arc::new(VerifiedToken {
                claims,
                iat,
                exp,
                session_key,
                token: token.into(),
                validity,
            }),
        }
    }

    /// The claims.
    pub fn claims(&self) -> &C {
        &self.token.claims
    }

    /// When the token was issued (seconds since the epoch).
    pub fn issued_at(&self) -> i64 {
        self.token.iat
    }

    /// When the token expires (seconds since the epoch).
    pub fn expires_at(&self) -> i64 {
        self.token.exp
    }

    /// The session key, when the session window is on: pass it to
    /// [`Verifier::revoke_session`](super::Verifier::revoke_session) on sign-out.
    pub fn session_key(&self) -> Option<&str> {
        self.token.session_key.as_deref()
    }

    /// The `kid` of the key that verified the token.
    pub fn key_id(&self) -> &str {
        self.token.validity.key.kid()
    }

    /// Any claim of the verified token, by name, read into `T`: for claims the claims type has
    /// no field for. `None` when the token has no such claim or it is not a `T`.
    ///
    /// This decodes the token's payload again: read what the handler needs once.
    pub fn claim<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let mut claims = self.claims_json();
        let value = claims.as_object_mut()?.remove(name)?;
        serde_json::from_value(value).ok()
    }

    /// Every claim of the verified token, as a JSON object.
    pub fn claims_json(&self) -> serde_json::Value {
        split_token(self.token())
            .and_then(|(_, payload, _)| decode_b64(payload).ok())
            .and_then(|json| serde_json::from_slice(&json).ok())
            .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()))
    }

    /// The verified token as it was presented. Treat it as a secret: never log it.
    pub fn token(&self) -> &str {
        &self.token.token
    }

    pub(crate) fn validity(&self) -> &Validity {
        &self.token.validity
    }
}

#[cfg(test)]
impl<C> Verified<C> {
    pub(crate) fn for_tests(claims: C, token: &str, key: Arc<VerifyingKey>, exp: i64) -> Self {
        Self::new(
            claims,
            (0, exp),
            None,
            token,
            Validity::new(0, key, 0, exp, 0),
        )
    }
}

impl<C> Deref for Verified<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.token.claims
    }
}

impl<C> Clone for Verified<C> {
    fn clone(&self) -> Self {
        Self {
            token: Arc::clone(&self.token),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for Verified<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("claims", &self.token.claims)
            .field("iat", &self.token.iat)
            .field("exp", &self.token.exp)
            .field("session_key", &self.token.session_key)
            .field("key_id", &self.key_id())
            .field("token", &"<redacted>")
            .finish()
    }
}
