//! [`Verifier`]: one token in, verified claims or an [`AuthError`] out. No HTTP, no tower.
//!
//! The checks run in this fixed order; the first that fails decides the answer:
//!
//! 1. **Size**: the raw token is at most `max_token_bytes` (before any decoding, so a token of
//!    ten thousand dots or a megabyte costs nothing).
//! 2. **Header**: three base64url parts; the header is JSON with `alg` exactly `RS256` (an
//!    allow-list: `none`, `HS256`, `RS384`, `ES256` and case tricks are refused), a `kid`, and no
//!    `crit` extension. `jku`, `x5u`, `jwk` and `x5c` are ignored: keys come only from the pool.
//! 3. **Key**: the `kid` is looked up in the cached JWKS (fetching it at most once per cooldown).
//! 4. **Signature**: RSASSA-PKCS1-v1_5 with SHA-256, against the key parsed when it was fetched.
//! 5. **Issuer**: `iss` is exactly one of the accepted issuers.
//! 6. **Token use**: `token_use` is the configured kind.
//! 7. **Client**: `client_id` for access tokens, `aud` for id tokens, is an allowed app client.
//!    The claim is required: Cognito access tokens have no `aud`, so a check that ran only "when
//!    `aud` is present" would let any client's token through.
//! 8. **Time**: `exp` is required and not passed; `nbf`, if present, has passed; `iat` is required
//!    and not in the future. Each with the configured leeway.
//! 9. **Rules**: every required scope, at least one required group, then the claims are read
//!    into the claims type and the custom check, if any, runs.
//! 10. **Session window** (when configured): one atomic check-and-advance in the session store;
//!     a superseded or revoked session is refused, and a store that fails or is slow gives 503
//!     (or, with fail-open, a warning). See [`session`](crate::session).

use std::any::{Any, TypeId};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use serde::de::DeserializeOwned;

use crate::cache::TokenCache;
use crate::claims::AccessClaims;
use crate::clock::Clock;
use crate::config::{ClientIds, CognitoConfig, ConfigError, TokenUse};
use crate::error::{AuthError, InvalidToken};
use crate::jwks::{KeyCache, VerifyingKey};
use crate::rules::Rules;
use crate::session::{SessionConfig, SessionKeyParts, SessionVerdict, StoreError, StoreErrorKind};
use crate::token::{
    decode_b64, decode_b64_into, parse_object, split_token, stack_buffer, with_decoded,
    AccessPayload, Header, Registered,
};

/// The largest RS256 signature: 8192 bits.
const MAX_SIGNATURE_BYTES: usize = 1024;

/// Headers up to this size are decoded on the stack (Cognito's are about 70 bytes).
const HEADER_STACK_BYTES: usize = 512;

/// Payloads up to this size are decoded on the stack (Cognito's are about 1 KB).
const PAYLOAD_STACK_BYTES: usize = 4096;

/// Verifies Cognito tokens. Cheap to clone: clones share the key cache.
///
/// `C` is the claims type handed to handlers: [`AccessClaims`] by default, [`IdClaims`] or
/// [`AnyClaims`] for the other token kinds, or any type of your own that implements
/// `serde::de::DeserializeOwned`.
///
/// [`IdClaims`]: crate::IdClaims
/// [`AnyClaims`]: crate::AnyClaims
pub struct Verifier<C = AccessClaims> {
    /// One `Arc`: the layer clones its verifier with every request (axum clones a route's
    /// service per call), and a clone or a drop is then one atomic operation.
    inner: Arc<Scoped<C>>,
}

/// One set of rules over the shared token checks and keys.
struct Scoped<C> {
    shared: Arc<Shared>,
    rules: Rules<C>,
    /// Per set of rules, not shared with verifiers of other rules: its entries passed them.
    cache: Option<TokenCache<C>>,
}

impl<C: Send + Sync + 'static> Scoped<C> {
    fn new(shared: Arc<Shared>, rules: Rules<C>) -> Self {
        let size = shared.token_cache_size;
        Self {
            shared,
            rules,
            cache: (size > 0).then(|| TokenCache::new(size)),
        }
    }
}

/// The outcome of the stateless checks of one token.
struct Fresh<C> {
    /// With its session key, which step 10 still has to check, and its provenance.
    verified: Verified<C>,
    /// When the claims were checked: the request's one clock reading, also used for step 10.
    now: i64,
}

/// Where the key of a token's header stands after a look at the cache.
enum HeaderKey {
    /// Cached, with the generation of its key set.
    Cached(Arc<VerifyingKey>, u64),
    /// Not cached: this `kid` must be waited for.
    Fetch(String),
}

/// What every clone and every derived verifier shares: the token checks and the keys.
pub(crate) struct Shared {
    pub(crate) realm: Arc<str>,
    issuers: Vec<String>,
    token_use: TokenUse,
    client_ids: ClientIds,
    leeway: i64,
    max_token_bytes: usize,
    clock: Arc<dyn Clock>,
    keys: KeyCache,
    sessions: Option<SessionConfig>,
    token_cache_size: u64,
}

/// A verified token's claims. Cheap to clone (one reference count); dereferences to the claims.
///
/// The layer puts one in the request extensions; with the `axum` feature it is also an
/// extractor (and `Option<Verified<C>>` for routes where authentication is optional).
pub struct Verified<C = AccessClaims> {
    /// One `Arc` for all of it: a cache hit hands the cached value to the request as it is,
    /// and a clone or a drop is one atomic operation.
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    claims: C,
    iat: i64,
    exp: i64,
    session_key: Option<Box<str>>,
    /// The token itself: compared on every cache hit, and for [`Verified::claim`].
    token: Box<str>,
    provenance: Provenance,
}

/// Where a verification came from and how long it holds, for the verified-token cache.
pub(crate) struct Provenance {
    /// The key that verified the token (it knows its `kid`).
    pub(crate) key: Arc<VerifyingKey>,
    /// The generation of the key set `key` came from.
    pub(crate) generation: u64,
    /// `exp + leeway`: the first second at which the token is refused.
    pub(crate) refused_from: i64,
    /// How long it may stay cached: until the token is refused, as seen when it was verified.
    pub(crate) ttl: Duration,
}

impl Provenance {
    fn new(key: Arc<VerifyingKey>, generation: u64, refused_from: i64, now: i64) -> Self {
        let secs = refused_from.saturating_sub(now).clamp(1, 24 * 3600);
        Self {
            key,
            generation,
            refused_from,
            ttl: Duration::from_secs(secs.unsigned_abs()),
        }
    }
}

impl<C> Verified<C> {
    fn new(
        claims: C,
        (iat, exp): (i64, i64),
        session_key: Option<Box<str>>,
        token: &str,
        provenance: Provenance,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                claims,
                iat,
                exp,
                session_key,
                token: token.into(),
                provenance,
            }),
        }
    }

    /// The claims.
    pub fn claims(&self) -> &C {
        &self.inner.claims
    }

    /// When the token was issued (seconds since the epoch).
    pub fn issued_at(&self) -> i64 {
        self.inner.iat
    }

    /// When the token expires (seconds since the epoch).
    pub fn expires_at(&self) -> i64 {
        self.inner.exp
    }

    /// The session key, when the session window is on: pass it to
    /// [`Verifier::revoke_session`] on sign-out.
    pub fn session_key(&self) -> Option<&str> {
        self.inner.session_key.as_deref()
    }

    /// The `kid` of the key that verified the token.
    pub fn key_id(&self) -> &str {
        self.inner.provenance.key.kid()
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
        &self.inner.token
    }

    pub(crate) fn provenance(&self) -> &Provenance {
        &self.inner.provenance
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
            Provenance::new(key, 0, exp, 0),
        )
    }
}

impl<C> Deref for Verified<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.inner.claims
    }
}

impl<C> Clone for Verified<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for Verified<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("claims", &self.inner.claims)
            .field("iat", &self.inner.iat)
            .field("exp", &self.inner.exp)
            .field("session_key", &self.inner.session_key)
            .field("key_id", &self.key_id())
            .field("token", &"<redacted>")
            .finish()
    }
}

impl<C> Verifier<C>
where
    C: DeserializeOwned + Send + Sync + 'static,
{
    /// Builds a verifier. Fails on a configuration error; never touches the network.
    pub fn new(config: CognitoConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let keys = KeyCache::new(&config)?;
        let shared = Arc::new(Shared {
            realm: config.realm.as_str().into(),
            issuers: config.accepted_issuers(),
            token_use: config.token_use,
            client_ids: config.client_ids,
            leeway: i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX),
            max_token_bytes: config.max_token_bytes,
            clock: config.clock,
            keys,
            sessions: config.sessions,
            token_cache_size: config.token_cache_size,
        });
        let rules = Rules::new(config.required_scopes, config.required_groups);
        Ok(Self {
            inner: Arc::new(Scoped::new(shared, rules)),
        })
    }

    /// Adds a check on the typed claims, run last. When it returns `false` the request gets
    /// 403 `insufficient_scope`. Checks added earlier keep running: all must pass.
    ///
    /// The new verifier shares the keys of this one (no extra JWKS fetch) but not its cache of
    /// verified tokens, since those did not pass the check.
    #[must_use]
    pub fn with_check<F>(self, check: F) -> Self
    where
        F: Fn(&C) -> bool + Send + Sync + 'static,
    {
        let rules = self.inner.rules.with_check(Arc::new(check));
        self.with_rules(rules)
    }

    /// A verifier that also requires every one of these scopes (403 with `scope="..."`
    /// otherwise): for one route, sharing this verifier's keys.
    ///
    /// ```
    /// # use tower_cognito::{ClientIds, CognitoConfig, TokenUse, UserPool, Verifier};
    /// # let config = CognitoConfig::new(UserPool::parse("eu-west-1_AbC").unwrap(), TokenUse::Access, ClientIds::one("c"));
    /// let verifier: Verifier = Verifier::new(config).unwrap();
    /// let orders = verifier.clone().require_scopes(["orders/read"]).unwrap();
    /// let admin = verifier.clone().require_any_group(["admins"]).unwrap();
    /// ```
    pub fn require_scopes<I, S>(self, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let rules = self.inner.rules.with_scopes(scopes)?;
        Ok(self.with_rules(rules))
    }

    /// A verifier that also requires at least one of these groups (403 otherwise): for one
    /// route, sharing this verifier's keys.
    pub fn require_any_group<I, S>(self, groups: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let rules = self.inner.rules.with_groups(groups)?;
        Ok(self.with_rules(rules))
    }

    /// Same keys and token checks, other rules, and so a cache of its own.
    fn with_rules(self, rules: Rules<C>) -> Self {
        let shared = Arc::clone(&self.inner.shared);
        Self {
            inner: Arc::new(Scoped::new(shared, rules)),
        }
    }

    /// How many verified tokens are cached (after pending cache maintenance). For tests and
    /// metrics.
    pub fn cached_tokens(&self) -> u64 {
        self.inner.cache.as_ref().map_or(0, |c| c.len())
    }

    /// Fetches the signing keys now, to start serving with a warm cache. Returns how many
    /// keys are cached, or [`AuthError::KeysUnavailable`].
    pub async fn prefetch_keys(&self) -> Result<usize, AuthError> {
        self.inner.shared.keys.refresh().await
    }

    /// Verifies a token: every check of the [module docs](self), in order.
    ///
    /// A token verified before is answered from the verified-token cache (see
    /// [`CognitoConfig::token_cache_size`]): its `exp` and its signing key are checked again, and
    /// the session window still runs.
    pub async fn verify(&self, token: &str) -> Result<Verified<C>, AuthError> {
        match self.cached(token.as_bytes()) {
            Some((verified, now)) => self.finish_hit(verified, now).await,
            None => self.verify_miss(token).await,
        }
    }

    /// The cached outcome of `token`, with its `exp` and its key checked again, and the `now`
    /// it was checked at (the request's one clock reading); an entry that fails either check is
    /// dropped, so the token is verified afresh for the precise answer.
    ///
    /// Bytes, not text: a token equal to a cached one is the ASCII that verified, so a hit needs
    /// no UTF-8 check.
    pub(crate) fn cached(&self, token: &[u8]) -> Option<(Verified<C>, i64)> {
        let s = &*self.inner.shared;
        let cache = self.inner.cache.as_ref()?;
        if token.len() > s.max_token_bytes {
            return None;
        }
        let verified = cache.get(token)?;
        let now = s.clock.now_unix();
        let provenance = verified.provenance();
        if now < provenance.refused_from
            && s.keys.still_current(&provenance.key, provenance.generation)
        {
            return Some((verified, now));
        }
        cache.remove(token);
        None
    }

    /// Whether a cache hit is the whole answer: with no session window there is nothing left to
    /// await, and the layer answers without a boxed future.
    pub(crate) fn hit_is_final(&self) -> bool {
        self.inner.shared.sessions.is_none()
    }

    /// A cache hit checked at `now`: only the session window (step 10) is left.
    pub(crate) async fn finish_hit(
        &self,
        verified: Verified<C>,
        now: i64,
    ) -> Result<Verified<C>, AuthError> {
        self.inner.shared.check_session(&verified, now).await?;
        Ok(verified)
    }

    /// A token not in the cache: every step, then into the cache.
    pub(crate) async fn verify_miss(&self, token: &str) -> Result<Verified<C>, AuthError> {
        let s = &*self.inner.shared;
        // 1. Size, before anything else.
        if token.len() > s.max_token_bytes {
            return Err(InvalidToken::TooLarge.into());
        }
        let Fresh { verified, now } = self.verify_stateless(token).await?;
        if let Some(cache) = &self.inner.cache {
            cache.insert(verified.clone());
        }
        // 10. Session window.
        s.check_session(&verified, now).await?;
        Ok(verified)
    }

    /// Steps 2 to 9, and the session key for step 10.
    async fn verify_stateless(&self, token: &str) -> Result<Fresh<C>, AuthError> {
        let s = &*self.inner.shared;
        let (header_b64, payload_b64, signature_b64) =
            split_token(token).ok_or(InvalidToken::Malformed)?;

        // 2-3. Header and key: the key from the cache without waiting, or the `kid` to fetch.
        let (key, generation) = match self.header_key(header_b64)? {
            HeaderKey::Cached(key, generation) => (key, generation),
            HeaderKey::Fetch(kid) => s.keys.key(&kid).await?,
        };

        self.check_signed(
            token,
            header_b64.len(),
            payload_b64,
            signature_b64,
            (key, generation),
        )
    }

    /// Steps 2 and 3 as far as they go without waiting: the cached key of the header's `kid`,
    /// or the `kid` to wait for. Synchronous, so that the decoded header stays on the stack.
    fn header_key(&self, header_b64: &str) -> Result<HeaderKey, AuthError> {
        with_decoded::<HEADER_STACK_BYTES, _>(header_b64, |json| {
            let header: Header<'_> = parse_object(json)?;
            if &*header.alg != "RS256" {
                return Err(InvalidToken::UnsupportedAlgorithm.into());
            }
            if header.crit.is_some() {
                return Err(InvalidToken::UnsupportedCritical.into());
            }
            let kid = header.kid.ok_or(InvalidToken::MissingKeyId)?;
            Ok(match self.inner.shared.keys.cached_key(&kid) {
                Some((key, generation)) => HeaderKey::Cached(key, generation),
                None => HeaderKey::Fetch(kid.into()),
            })
        })
    }

    /// Steps 4 to 9, after the key is had. Synchronous, so that its buffers live on the stack
    /// rather than in the future.
    fn check_signed(
        &self,
        token: &str,
        header_len: usize,
        payload_b64: &str,
        signature_b64: &str,
        (key, generation): (Arc<VerifyingKey>, u64),
    ) -> Result<Fresh<C>, AuthError> {
        // 4. Signature.
        let mut signature = stack_buffer::<MAX_SIGNATURE_BYTES>();
        let signature = decode_b64_into(signature_b64, &mut signature)
            .map_err(|_| InvalidToken::BadSignature)?;
        let signing_input = &token.as_bytes()[..header_len + 1 + payload_b64.len()];
        if !key.verify(signing_input, signature) {
            tracing::debug!(kid = key.kid(), "bad signature");
            return Err(InvalidToken::BadSignature.into());
        }

        // 5-9. Claims, as of now: after the key, which may have been waited for.
        let now = self.inner.shared.clock.now_unix();
        let verified = with_decoded::<PAYLOAD_STACK_BYTES, _>(payload_b64, |payload| {
            self.read_claims(token, payload, now, (key, generation))
        })?;
        Ok(Fresh { verified, now })
    }

    /// Steps 5 to 9 on the decoded payload of `token`, with the session key for step 10 and the
    /// provenance of the verification (`key` is the one that verified the signature).
    fn read_claims(
        &self,
        token: &str,
        payload: &[u8],
        now: i64,
        (key, generation): (Arc<VerifyingKey>, u64),
    ) -> Result<Verified<C>, AuthError> {
        let s = &*self.inner.shared;
        // The crate's own access claims come from the same single pass as the checked claims.
        // A payload that pass refuses takes the general path (two passes) for the precise error.
        let one_pass = (TypeId::of::<C>() == TypeId::of::<AccessClaims>())
            .then(|| parse_object::<AccessPayload<'_>>(payload).ok())
            .flatten();
        let (claims, rest) = match one_pass {
            Some(one_pass) => {
                let (claims, rest) = one_pass.into_parts();
                (claims, Some(rest))
            }
            None => (parse_object::<Registered<'_>>(payload)?, None),
        };
        let (iat, exp) = s.check_registered(&claims, now)?;
        self.inner
            .rules
            .check_claims(claims.scope.as_deref(), claims.groups.as_deref())?;
        // Its error, if any, comes after those of the claims type and the custom check.
        let session_key = s.session_key(&claims);
        let typed: C = match rest {
            Some(rest) => rest
                .into_claims(claims)
                .and_then(downcast::<AccessClaims, C>)
                .ok_or_else(|| {
                    tracing::debug!("claims do not fit the claims type");
                    InvalidToken::Malformed
                })?,
            None => serde_json::from_slice(payload).map_err(|e| {
                tracing::debug!(error = %e, "claims do not fit the claims type");
                InvalidToken::Malformed
            })?,
        };
        self.inner.rules.check_typed(&typed)?;
        let provenance = Provenance::new(key, generation, exp.saturating_add(s.leeway), now);
        Ok(Verified::new(
            typed,
            (iat, exp),
            session_key?,
            token,
            provenance,
        ))
    }

    /// Revokes a session: every token of it is refused until the session's TTL ends, whatever
    /// its signature says. `key` is [`Verified::session_key`].
    ///
    /// Fails with [`AuthError::StoreUnavailable`] when no session window is configured or the
    /// store fails.
    pub async fn revoke_session(&self, key: &str) -> Result<(), AuthError> {
        let s = &*self.inner.shared;
        let Some(sessions) = &s.sessions else {
            tracing::error!("revoke_session called without a session window configured");
            return Err(AuthError::StoreUnavailable);
        };
        let now = s.clock.now_unix();
        let revoke = sessions.store.revoke(key, now, sessions.limits);
        match tokio::time::timeout(sessions.timeout, revoke).await {
            Ok(Ok(())) => {
                tracing::info!("session revoked");
                Ok(())
            }
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "session revocation failed");
                Err(AuthError::StoreUnavailable)
            }
            Err(_) => {
                tracing::warn!("session revocation timed out");
                Err(AuthError::StoreUnavailable)
            }
        }
    }

    pub(crate) fn realm(&self) -> &Arc<str> {
        &self.inner.shared.realm
    }
}

impl Shared {
    /// Steps 5 to 8 at `now`; returns `(iat, exp)`.
    fn check_registered(
        &self,
        claims: &Registered<'_>,
        now: i64,
    ) -> Result<(i64, i64), InvalidToken> {
        // 5. Issuer.
        let iss = claims.iss.as_deref().ok_or(InvalidToken::WrongIssuer)?;
        if !self.issuers.iter().any(|accepted| accepted == iss) {
            return Err(InvalidToken::WrongIssuer);
        }
        // 6. Token use.
        let token_use = claims
            .token_use
            .as_deref()
            .ok_or(InvalidToken::WrongTokenUse)?;
        if !self.token_use.accepts(token_use) {
            return Err(InvalidToken::WrongTokenUse);
        }
        // 7. Client: the claim that this kind of token carries, required.
        let client = if token_use == "access" {
            claims.client_id.as_deref()
        } else {
            claims.aud.as_deref()
        };
        if !client.is_some_and(|c| self.client_ids.allows(c)) {
            return Err(InvalidToken::WrongClient);
        }
        // 8. Time.
        let exp = claims.exp.ok_or(InvalidToken::MissingClaim)?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(InvalidToken::Expired);
        }
        if let Some(nbf) = claims.nbf {
            if now.saturating_add(self.leeway) < nbf {
                return Err(InvalidToken::NotYetValid);
            }
        }
        let iat = claims.iat.ok_or(InvalidToken::MissingClaim)?;
        if iat > now.saturating_add(self.leeway) {
            return Err(InvalidToken::IssuedInFuture);
        }
        Ok((iat, exp))
    }

    /// The session key of a token, when the session window is on.
    fn session_key(&self, claims: &Registered<'_>) -> Result<Option<Box<str>>, InvalidToken> {
        let Some(sessions) = &self.sessions else {
            return Ok(None);
        };
        let token_use = claims.token_use.as_deref().unwrap_or_default();
        let parts = SessionKeyParts {
            sub: claims.sub.as_deref(),
            client: if token_use == "access" {
                claims.client_id.as_deref()
            } else {
                claims.aud.as_deref()
            },
            origin_jti: claims.origin_jti.as_deref(),
            device_key: claims.device_key.as_deref(),
            token_use,
        };
        let key = sessions.key(&parts).ok_or(InvalidToken::MissingClaim)?;
        Ok(Some(key.into()))
    }

    /// Step 10: one atomic check-and-advance in the session store, when the window is on.
    async fn check_session<C>(&self, verified: &Verified<C>, now: i64) -> Result<(), AuthError> {
        let (Some(sessions), Some(key)) = (&self.sessions, verified.session_key()) else {
            return Ok(());
        };
        let iat = verified.issued_at();
        let mut check = sessions
            .store
            .check_and_advance(key, iat, now, sessions.limits);
        // A store that answers at once (the memory store always does) needs no timer.
        let answer = match (&mut check).now_or_never() {
            Some(answer) => Ok(answer),
            None => tokio::time::timeout(sessions.timeout, check).await,
        };
        let failure = match answer {
            Ok(Ok(SessionVerdict::Accepted)) => return Ok(()),
            Ok(Ok(SessionVerdict::Superseded)) => return Err(InvalidToken::Superseded.into()),
            Ok(Ok(SessionVerdict::Revoked)) => return Err(InvalidToken::Revoked.into()),
            Ok(Err(error)) => error,
            Err(_) => StoreError::from_kind(StoreErrorKind::Timeout),
        };
        if sessions.fail_open {
            tracing::warn!(error = %failure, "session store failed; accepting on signature alone (fail-open)");
            Ok(())
        } else {
            tracing::warn!(error = %failure, "session store failed; refusing with 503");
            Err(AuthError::StoreUnavailable)
        }
    }
}

/// `value` as a `U`, when `T` and `U` are the same type.
fn downcast<T: 'static, U: 'static>(value: T) -> Option<U> {
    let mut value = Some(value);
    (&mut value as &mut dyn Any)
        .downcast_mut::<Option<U>>()
        .and_then(Option::take)
}

impl<C> Clone for Verifier<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C> fmt::Debug for Verifier<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.inner.shared;
        f.debug_struct("Verifier")
            .field("issuers", &s.issuers)
            .field("token_use", &s.token_use)
            .field("client_ids", &s.client_ids)
            .field("leeway", &s.leeway)
            .field("rules", &self.inner.rules)
            .field("keys", &s.keys)
            .field("sessions", &s.sessions)
            .field("token_cache", &self.inner.cache.is_some())
            .finish()
    }
}

#[cfg(test)]
mod clone_tests {
    use crate::{CognitoAuth, CognitoAuthLayer, Verifier};

    /// A claims type that is not `Clone`: the layer, the service and the verifier still are.
    #[derive(serde::Deserialize)]
    struct NotClone {}

    #[allow(dead_code)]
    fn assert_clone<T: Clone>() {}

    #[allow(dead_code)]
    fn layer_types_are_clone_without_clone_claims() {
        assert_clone::<Verifier<NotClone>>();
        assert_clone::<CognitoAuthLayer<NotClone>>();
        assert_clone::<CognitoAuth<tower_layer::Identity, NotClone>>();
    }
}
