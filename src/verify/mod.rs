//! [`Verifier`]: one token in, verified claims or an [`AuthError`] out. No HTTP, no tower.
//!
//! The checks run in this fixed order; the first that fails decides the answer:
//!
//! 1. **Size**: the raw token is at most `max_token_bytes` (before any decoding, so a token of
//!    ten thousand dots or a megabyte costs nothing).
//! 2. **Header**: three base64url parts; the header is JSON with `alg` exactly `RS256` (an
//!    allow-list: `none`, `HS256`, `RS384`, `ES256` and case tricks are refused), a `kid`, and no
//!    `crit` extension. `jku`, `x5u`, `jwk` and `x5c` are ignored: keys come only from the pool.
//!    With [several pools](crate::CognitoConfig::add_pool), the pool is selected here, by the
//!    payload's `iss` matched exactly against the configured issuers: an issuer no pool has is
//!    refused without any fetch. The unverified `iss` only selects among configured pools; step 5
//!    checks it again after the signature.
//! 3. **Key**: the `kid` is looked up in the pool's cached JWKS (fetching it at most once per
//!    cooldown).
//! 4. **Signature**: RSASSA-PKCS1-v1_5 with SHA-256, against the key parsed when it was fetched.
//! 5. **Issuer**: `iss` is exactly one of the pool's accepted issuers.
//! 6. **Token use**: `token_use` is the pool's configured kind.
//! 7. **Client**: `client_id` for access tokens, `aud` for id tokens, is an app client allowed
//!    for the pool.
//!    The claim is required: Cognito access tokens have no `aud`, so a check that ran only "when
//!    `aud` is present" would let any client's token through.
//! 8. **Time**: `exp` is required and not passed; `nbf`, if present, has passed; `iat` is required
//!    and not in the future. Each with the configured leeway.
//! 9. **Rules**: every required scope, at least one required group, then the claims are read
//!    into the claims type and the custom check, if any, runs.
//! 10. **Session window** (when configured): one atomic check-and-advance in the session store;
//!     a superseded or revoked session is refused, and a store that fails or is slow gives 503
//!     (or, with fail-open, a warning). See [`session`](crate::session).

mod checks;
mod pools;
mod rules;
mod steps;
mod token_cache;
mod verified;

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::claims::AccessClaims;
use crate::clock::Clock;
use crate::config::{CognitoConfig, ConfigError};
use crate::error::AuthError;
use crate::jwks::KeyCache;
use crate::session::SessionGate;
use checks::ClaimChecks;
use pools::{Pool, Pools};
use rules::Rules;
use token_cache::TokenCache;
pub use verified::Verified;

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
    state: Arc<WithRules<C>>,
}

/// One set of rules over the configuration's checks, with the cache of the tokens that passed
/// them.
struct WithRules<C> {
    checks: Arc<Checks>,
    rules: Rules<C>,
    /// Per set of rules, not shared with verifiers of other rules: its entries passed them.
    cache: Option<TokenCache<C>>,
}

impl<C: Send + Sync + 'static> WithRules<C> {
    fn new(checks: Arc<Checks>, rules: Rules<C>) -> Self {
        let size = checks.token_cache_size;
        Self {
            checks,
            rules,
            cache: (size > 0).then(|| TokenCache::new(size)),
        }
    }
}

/// What every clone and every derived verifier shares: the pools (each with its claim checks
/// and its keys) and the session gate of one configuration.
struct Checks {
    /// Carried for the layer's challenge (see [`Verifier::realm`]); no check reads it.
    realm: Arc<str>,
    pools: Pools,
    max_token_bytes: usize,
    clock: Arc<dyn Clock>,
    sessions: Option<SessionGate>,
    token_cache_size: u64,
    /// The hot-path counters (feature `metrics`; empty otherwise).
    metrics: crate::metrics::Hot,
}

impl Checks {
    /// Step 10: one atomic check-and-advance in the session store, when the window is on.
    async fn check_session<C>(&self, verified: &Verified<C>, now: i64) -> Result<(), AuthError> {
        let (Some(sessions), Some(key)) = (&self.sessions, verified.session_key()) else {
            return Ok(());
        };
        sessions.check(key, verified.issued_at(), now).await
    }
}

/// The answer to a request's token, as far as it goes without waiting: see
/// [`Verifier::lookup`].
pub(crate) enum Lookup<C> {
    /// Verified: nothing is left to wait for.
    Ready(Verified<C>),
    /// Refused by the caller's syntax check, before any waiting.
    Refused(AuthError),
    /// The rest of the verification, for [`Verifier::finish`].
    Pending(Pending<C>),
}

/// What is left of a verification after [`Verifier::lookup`].
pub(crate) struct Pending<C> {
    /// Verified before, at the request's one clock reading, with only the session window left;
    /// `None`: every step is left.
    known: Option<(Verified<C>, i64)>,
}

impl Verifier {
    /// Builds a verifier of access tokens that hands handlers [`AccessClaims`]. Fails on a
    /// configuration error; never touches the network.
    ///
    /// For another claims type, use [`with_claims`](Verifier::with_claims).
    pub fn new(config: CognitoConfig) -> Result<Self, ConfigError> {
        Self::with_claims(config)
    }
}

impl<C> Verifier<C>
where
    C: DeserializeOwned + Send + Sync + 'static,
{
    /// Builds a verifier that hands handlers claims of type `C`: [`IdClaims`](crate::IdClaims),
    /// [`AnyClaims`](crate::AnyClaims) or a type of your own. Fails on a configuration error;
    /// never touches the network.
    ///
    /// ```
    /// # use tower_cognito::{ClientIds, CognitoConfig, IdClaims, TokenUse, UserPool, Verifier};
    /// # let config = CognitoConfig::new(UserPool::parse("eu-west-1_AbC").unwrap(), TokenUse::Id, ClientIds::one("c"));
    /// let verifier = Verifier::<IdClaims>::with_claims(config).unwrap();
    /// ```
    pub fn with_claims(config: CognitoConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let leeway = i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX);
        let max_lifetime = config
            .max_lifetime
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let pools = config
            .pools
            .into_iter()
            .map(|pool| {
                Ok(Pool {
                    keys: KeyCache::new(&config.jwks, &pool.keys, &pool.pool)?,
                    claims: ClaimChecks {
                        issuers: pool.accepted_issuers(),
                        token_use: pool.token_use,
                        client_ids: pool.client_ids,
                        leeway,
                        max_lifetime,
                    },
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let checks = Arc::new(Checks {
            realm: config.realm.as_str().into(),
            pools: Pools::new(pools),
            max_token_bytes: config.max_token_bytes,
            clock: config.clock,
            sessions: config.sessions.map(SessionGate::new),
            token_cache_size: config.token_cache_size,
            metrics: crate::metrics::Hot::new(),
        });
        let rules = Rules::new(config.required_scopes, config.required_groups);
        Ok(Self {
            state: Arc::new(WithRules::new(checks, rules)),
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
        let rules = self.state.rules.with_check(Arc::new(check));
        self.with_rules(rules)
    }

    /// A verifier that also requires every one of these scopes (403 with `scope="..."`
    /// otherwise): for one route, sharing this verifier's keys.
    ///
    /// ```
    /// # use tower_cognito::{ClientIds, CognitoConfig, TokenUse, UserPool, Verifier};
    /// # let config = CognitoConfig::new(UserPool::parse("eu-west-1_AbC").unwrap(), TokenUse::Access, ClientIds::one("c"));
    /// let verifier = Verifier::new(config).unwrap();
    /// let orders = verifier.clone().require_scopes(["orders/read"]).unwrap();
    /// let admin = verifier.clone().require_any_group(["admins"]).unwrap();
    /// ```
    pub fn require_scopes<I, S>(self, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let rules = self.state.rules.with_scopes(scopes)?;
        Ok(self.with_rules(rules))
    }

    /// A verifier that also requires at least one of these groups (403 otherwise): for one
    /// route, sharing this verifier's keys.
    pub fn require_any_group<I, S>(self, groups: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let rules = self.state.rules.with_groups(groups)?;
        Ok(self.with_rules(rules))
    }

    /// Same keys and token checks, other rules, and so a cache of its own.
    fn with_rules(self, rules: Rules<C>) -> Self {
        let checks = Arc::clone(&self.state.checks);
        Self {
            state: Arc::new(WithRules::new(checks, rules)),
        }
    }

    /// **Test hook**, not part of the stable API: how many verified tokens are cached (after
    /// pending cache maintenance).
    #[doc(hidden)]
    pub fn cached_tokens(&self) -> u64 {
        self.state.cache.as_ref().map_or(0, |c| c.len())
    }

    /// Fetches the signing keys of every pool now (the pools at once), to start serving with a
    /// warm cache. Returns how many keys are cached in all, or [`AuthError::KeysUnavailable`]
    /// when a pool has none.
    pub async fn prefetch_keys(&self) -> Result<usize, AuthError> {
        self.state.checks.pools.refresh_all().await
    }

    /// Whether this verifier can serve: every pool has signing keys cached, and the session
    /// store (when a window is configured) answers a [ping](crate::session::SessionStore::ping)
    /// within the store timeout. For a readiness endpoint (`/ready`): never fetches keys (a
    /// cooldown or an outage stays as it is), so it is cheap to call often.
    ///
    /// Fails with [`AuthError::KeysUnavailable`] or [`AuthError::StoreUnavailable`].
    pub async fn ready(&self) -> Result<(), AuthError> {
        let checks = &*self.state.checks;
        if !checks.pools.all_have_keys() {
            return Err(AuthError::KeysUnavailable);
        }
        match &checks.sessions {
            Some(sessions) => sessions.ping().await,
            None => Ok(()),
        }
    }

    /// Verifies a token: every check of the [module docs](self), in order.
    ///
    /// A token verified before is answered from the verified-token cache (see
    /// [`CognitoConfig::token_cache_size`]): its `exp` and its signing key are checked again, and
    /// the session window still runs.
    pub async fn verify(&self, token: &str) -> Result<Verified<C>, AuthError> {
        match self.known(token.as_bytes()) {
            Some((verified, now)) => self.check_session(verified, now).await,
            None => self.verify_all_steps(token).await,
        }
    }

    /// As much of the verification of `token` as needs no waiting: the whole answer when the
    /// token was verified before and no session window is configured, so that the layer
    /// answers without a boxed future; else what is left, for [`finish`](Self::finish).
    ///
    /// `syntax` is the caller's check of the token's characters (the layer's RFC 6750
    /// `b64token`), run only when the token has to be verified: a token verified before passed
    /// it already, and its answer costs no scan.
    ///
    /// Bytes, not text: a token verified before is known by its bytes, and its answer needs no
    /// UTF-8 check.
    pub(crate) fn lookup(
        &self,
        token: &[u8],
        syntax: impl FnOnce(&[u8]) -> Result<(), AuthError>,
    ) -> Lookup<C> {
        match self.known(token) {
            Some((verified, _)) if self.state.checks.sessions.is_none() => Lookup::Ready(verified),
            Some(known) => Lookup::Pending(Pending { known: Some(known) }),
            None => match syntax(token) {
                Ok(()) => Lookup::Pending(Pending { known: None }),
                Err(error) => Lookup::Refused(error),
            },
        }
    }

    /// The rest of a verification that [`lookup`](Self::lookup) left pending. `token` gives the
    /// token `lookup` was given, as text; it is asked for only when every step is left.
    pub(crate) async fn finish<'t>(
        &self,
        pending: Pending<C>,
        token: impl FnOnce() -> &'t str,
    ) -> Result<Verified<C>, AuthError> {
        match pending.known {
            Some((verified, now)) => self.check_session(verified, now).await,
            None => self.verify_all_steps(token()).await,
        }
    }

    /// A token verified before, at `now`: only the session window (step 10) is left.
    async fn check_session(
        &self,
        verified: Verified<C>,
        now: i64,
    ) -> Result<Verified<C>, AuthError> {
        self.state.checks.check_session(&verified, now).await?;
        Ok(verified)
    }

    /// The earlier verification of `token`, with its `exp` and its key checked again, and the
    /// `now` it was checked at (the request's one clock reading); one that fails either check is
    /// forgotten, so the token is verified afresh for the precise answer.
    fn known(&self, token: &[u8]) -> Option<(Verified<C>, i64)> {
        let checks = &*self.state.checks;
        let cache = self.state.cache.as_ref()?;
        if token.len() > checks.max_token_bytes {
            return None;
        }
        let Some(verified) = cache.get(token) else {
            checks.metrics.cache_lookup(false);
            return None;
        };
        let now = checks.clock.now_unix();
        let validity = verified.validity();
        if now < validity.refused_from
            && checks
                .pools
                .get(validity.pool)
                .keys
                .still_current(&validity.key, validity.generation)
        {
            checks.metrics.cache_lookup(true);
            return Some((verified, now));
        }
        cache.remove(token);
        checks.metrics.cache_lookup(false);
        None
    }

    /// Revokes a session: every token of it is refused until the session's TTL ends, whatever
    /// its signature says. `key` is [`Verified::session_key`].
    ///
    /// Fails with [`AuthError::StoreUnavailable`] when no session window is configured or the
    /// store fails.
    pub async fn revoke_session(&self, key: &str) -> Result<(), AuthError> {
        let checks = &*self.state.checks;
        let Some(sessions) = &checks.sessions else {
            tracing::error!("revoke_session called without a session window configured");
            return Err(AuthError::StoreUnavailable);
        };
        sessions.revoke(key, checks.clock.now_unix()).await
    }
}

impl<C> Verifier<C> {
    /// The `realm` of the challenge, set with [`CognitoConfig::realm`]: carried here only
    /// because the layer is built from a verifier; the challenge is built in `http`.
    pub(crate) fn realm(&self) -> &Arc<str> {
        &self.state.checks.realm
    }

    /// The verifier's hot-path counters, which the layer counts its requests with.
    pub(crate) fn metrics(&self) -> &crate::metrics::Hot {
        &self.state.checks.metrics
    }
}

impl<C> Clone for Verifier<C> {
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
        }
    }
}

impl<C> fmt::Debug for Verifier<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let checks = &self.state.checks;
        f.debug_struct("Verifier")
            .field("pools", &checks.pools)
            .field("rules", &self.state.rules)
            .field("sessions", &checks.sessions)
            .field("token_cache", &self.state.cache.is_some())
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
