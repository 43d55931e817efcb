//! Build-time configuration: the user pool, what tokens to accept, and where keys come from.

mod client;
mod error;
mod jwks;
mod pool;
mod pools;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::session::{SessionConfig, MAX_WINDOW};

pub use client::{ClientIds, TokenUse};
pub use error::ConfigError;
pub use jwks::JwksProxy;
pub(crate) use jwks::{key_fetch_client, JwksOptions};
pub use pool::{IssuerForm, Issuers, UserPool};
pub(crate) use pools::KeySource;
pub use pools::PoolConfig;

/// The default clock leeway applied to `exp`, `nbf` and `iat`: 5 seconds.
///
/// Cognito access tokens live 5 to 60 minutes, so the leeway must stay small. The official AWS
/// library uses 0; a few seconds absorbs ordinary NTP drift between Cognito and your servers.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

/// The default cap on the raw token size, checked before any decoding: 8 KiB.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The default pause after a JWKS fetch during which an unknown `kid` triggers no new fetch: 10 s.
pub const DEFAULT_JWKS_COOLDOWN: Duration = Duration::from_secs(10);

/// The default age after which cached keys are refreshed in the background: 1 hour.
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(3600);

/// The default cap on a JWKS response body: 64 KiB (Cognito's is about 1 KiB).
pub const DEFAULT_MAX_JWKS_BYTES: usize = 64 * 1024;

/// The default number of verified tokens cached: 10 000.
pub const DEFAULT_TOKEN_CACHE_SIZE: u64 = 10_000;

/// The default `realm` of the `WWW-Authenticate` challenge.
pub const DEFAULT_REALM: &str = "cognito";

/// Everything the verifier needs to know. Security-relevant settings are constructor arguments;
/// the rest have safe defaults, changed through the builder methods.
///
/// ```
/// use std::time::Duration;
/// use tower_cognito::{ClientIds, CognitoConfig, TokenUse, UserPool};
///
/// let config = CognitoConfig::new(
///     UserPool::parse("eu-west-1_AbCdEf123").unwrap(),
///     TokenUse::Access,
///     ClientIds::one("4p1d8k3k9q2e5s7t0u6v1w3x4y"),
/// )
/// .leeway(Duration::from_secs(2))
/// .require_scopes(["orders/read"]);
/// ```
#[derive(Clone)]
#[must_use]
pub struct CognitoConfig {
    /// The pools, the one given to [`new`](Self::new) first; never empty.
    pub(crate) pools: Vec<PoolConfig>,
    /// How keys are fetched, for every pool: what each pool's key cache takes, with the pool's
    /// [`KeySource`].
    pub(crate) jwks: JwksOptions,
    pub(crate) leeway: Duration,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) max_token_bytes: usize,
    pub(crate) required_scopes: Vec<String>,
    pub(crate) required_groups: Vec<String>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) realm: String,
    pub(crate) sessions: Option<SessionConfig>,
    pub(crate) token_cache_size: u64,
}

impl CognitoConfig {
    /// Accept tokens of `pool`, of kind `token_use`, issued to one of `client_ids`.
    ///
    /// More pools can be added with [`add_pool`](Self::add_pool).
    pub fn new(pool: UserPool, token_use: TokenUse, client_ids: ClientIds) -> Self {
        Self::from_pool(PoolConfig::new(pool, token_use, client_ids))
    }

    /// Accept the tokens `pool` describes: [`new`](Self::new) with the pool's settings made
    /// first, for configurations that build every pool alike.
    pub fn from_pool(pool: PoolConfig) -> Self {
        Self {
            pools: vec![pool],
            jwks: JwksOptions::default(),
            leeway: DEFAULT_LEEWAY,
            max_lifetime: None,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            required_scopes: Vec::new(),
            required_groups: Vec::new(),
            clock: Arc::new(SystemClock),
            realm: DEFAULT_REALM.to_owned(),
            sessions: None,
            token_cache_size: DEFAULT_TOKEN_CACHE_SIZE,
        }
    }

    /// The user pool given to [`new`](Self::new).
    pub fn pool(&self) -> &UserPool {
        &self.first().pool
    }

    /// Every configured pool, the one given to [`new`](Self::new) first.
    pub fn pools(&self) -> impl Iterator<Item = &UserPool> {
        self.pools.iter().map(|p| &p.pool)
    }

    /// Also accept the tokens of another user pool, with its own app clients, token use,
    /// issuers and key cache.
    ///
    /// A token's pool is chosen by its exact `iss` among the configured issuers only, before its
    /// key is looked up: a token naming an issuer no pool has is refused (`invalid_token`)
    /// without any key fetch, so an unverified `iss` never picks a URL. After the signature, the
    /// token is checked against that pool's issuers, token use and app clients: a client id
    /// listed for one pool is not accepted on another pool's token. Two pools may not share an
    /// issuer ([`ConfigError::DuplicateIssuer`]).
    ///
    /// Everything else (leeway, rules, the session window, the JWKS fetch settings) applies to
    /// every pool.
    pub fn add_pool(mut self, pool: PoolConfig) -> Self {
        self.pools.push(pool);
        self
    }

    fn first(&self) -> &PoolConfig {
        &self.pools[0]
    }

    fn first_mut(&mut self) -> &mut PoolConfig {
        &mut self.pools[0]
    }

    /// Restrict the accepted issuer forms of the pool given to [`new`](Self::new) (both are
    /// accepted by default). Added pools carry their own: [`PoolConfig::issuers`].
    pub fn issuers(mut self, issuers: Issuers) -> Self {
        self.first_mut().issuers = issuers;
        self
    }

    /// Accept exactly this issuer instead of the Cognito ones, for the pool given to
    /// [`new`](Self::new): for local emulators and tests.
    pub fn issuer_override(mut self, issuer: impl Into<String>) -> Self {
        self.first_mut().issuer_override = Some(issuer.into());
        self
    }

    /// The pool given to [`new`](Self::new) is replicated to `region` (Multi-Region
    /// Replication): see [`PoolConfig::replica_region`].
    pub fn replica_region(mut self, region: impl Into<String>) -> Self {
        self.first_mut().replica_regions.push(region.into());
        self
    }

    /// Fetch the keys of the pool given to [`new`](Self::new) from this URL instead of the
    /// pool's: for local emulators and tests.
    ///
    /// It must be `https`, unless [`allow_http_on_loopback`](Self::allow_http_on_loopback) is set
    /// and the host is a loopback address.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.first_mut().keys.url = Some(url.into());
        self
    }

    /// Allow plain `http://` JWKS URLs whose host is `localhost` or a loopback address (for
    /// every pool).
    ///
    /// Off by default, so a typo can never send production key fetches over plain HTTP.
    pub fn allow_http_on_loopback(mut self, allow: bool) -> Self {
        self.jwks.allow_http_loopback = allow;
        self
    }

    /// Start the pool given to [`new`](Self::new) with the keys of this JWKS document
    /// (`{"keys": [...]}`), for an offline start or tests. Keys are still fetched for an unknown
    /// `kid` and when they grow old, unless [`fetch_keys(false)`](Self::fetch_keys) is set.
    pub fn jwks_document(mut self, json: impl Into<String>) -> Self {
        self.first_mut().keys.document = Some(json.into());
        self
    }

    /// Whether the keys of the pool given to [`new`](Self::new) may be fetched over the network
    /// (default `true`). With `false`, only the keys of [`jwks_document`](Self::jwks_document)
    /// are used and the crate never touches the network for that pool.
    pub fn fetch_keys(mut self, fetch: bool) -> Self {
        self.first_mut().keys.fetch = fetch;
        self
    }

    /// Refuse tokens whose lifetime (`exp - iat`) is longer than `max` (off by default; Envoy's
    /// `max_lifetime`). Cognito's access and id tokens live 5 minutes to 1 day as the app client
    /// sets them; the common advice is 5 to 15 minutes for access tokens, and this setting
    /// enforces it on the API side whatever an app client was set to. A longer-lived token is
    /// 401 `invalid_token` with its own description ("The token lifetime is longer than
    /// accepted", reason `lifetime_too_long`). At least one second.
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = Some(max);
        self
    }

    /// The clock leeway for `exp`, `nbf` and `iat` (default [`DEFAULT_LEEWAY`], at most 5 minutes).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The cap on the raw token size, checked before decoding (default [`DEFAULT_MAX_TOKEN_BYTES`]).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Require every one of these scopes in the access token's `scope` claim (403 otherwise).
    pub fn require_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_scopes
            .extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Require at least one of these groups in `cognito:groups` (403 otherwise).
    pub fn require_any_group<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_groups
            .extend(groups.into_iter().map(Into::into));
        self
    }

    /// After a JWKS fetch, unknown `kid`s trigger no new fetch for this long (default
    /// [`DEFAULT_JWKS_COOLDOWN`]). Failed fetches start the cooldown too.
    pub fn jwks_cooldown(mut self, cooldown: Duration) -> Self {
        self.jwks.cooldown = cooldown;
        self
    }

    /// Cached keys older than this are refreshed in the background (default
    /// [`DEFAULT_JWKS_MAX_AGE`]).
    pub fn jwks_max_age(mut self, max_age: Duration) -> Self {
        self.jwks.max_age = max_age;
        self
    }

    /// The cap on a JWKS response body (default [`DEFAULT_MAX_JWKS_BYTES`]).
    pub fn max_jwks_bytes(mut self, bytes: usize) -> Self {
        self.jwks.max_bytes = bytes;
        self
    }

    /// How JWKS fetches reach the endpoint (default [`JwksProxy::none`]: directly, even when
    /// `HTTPS_PROXY` is set).
    pub fn jwks_proxy(mut self, proxy: JwksProxy) -> Self {
        self.jwks.proxy = proxy;
        self
    }

    /// Also trust these root certificates (PEM, one or more) for https JWKS URLs, beside the
    /// platform's: for a TLS-inspecting proxy or a private mirror of the keys. A bundle that
    /// holds no certificate is a [`ConfigError::InvalidCertificate`].
    pub fn jwks_root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.jwks.extra_roots.push(pem.into());
        self
    }

    /// Connect and total timeouts of a JWKS fetch (default 3 s and 5 s).
    pub fn jwks_timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.jwks.connect_timeout = connect;
        self.jwks.request_timeout = total;
        self
    }

    /// The clock used for `exp`, `nbf` and `iat` (default: the system clock). For tests.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Check every verified token against a per-session `iat` window in a session store: see
    /// [`session`](crate::session) for the semantics. Off by default.
    pub fn session_window(mut self, sessions: SessionConfig) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// How many verified tokens are cached (default [`DEFAULT_TOKEN_CACHE_SIZE`]; 0 disables).
    ///
    /// A token seen again skips decoding and the signature check; its `exp` and its key are
    /// checked again on every hit, and the session window still runs.
    pub fn token_cache_size(mut self, tokens: u64) -> Self {
        self.token_cache_size = tokens;
        self
    }

    /// The `realm` of the `WWW-Authenticate` challenge (default [`DEFAULT_REALM`]).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// The issuers a token of the first pool may name.
    #[cfg(test)]
    pub(crate) fn accepted_issuers(&self) -> Vec<String> {
        self.first().accepted_issuers()
    }

    /// Checks everything that can be checked without the network.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let mut issuers = std::collections::HashSet::new();
        for pool in &self.pools {
            pool.validate()?;
            self.jwks.validate_source(&pool.keys, &pool.pool)?;
            for issuer in pool.accepted_issuers() {
                if !issuers.insert(issuer.clone()) {
                    return Err(ConfigError::DuplicateIssuer(issuer));
                }
            }
        }
        if let Some(sessions) = &self.sessions {
            validate_sessions(sessions)?;
        }
        if self.realm.is_empty()
            || !self
                .realm
                .bytes()
                .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
        {
            return Err(ConfigError::InvalidSetting {
                setting: "realm",
                reason: "must be non-empty printable ASCII without quotes or backslashes",
            });
        }
        for rule in self.required_scopes.iter().chain(&self.required_groups) {
            validate_rule(rule)?;
        }
        let checks: [(&'static str, bool, &'static str); 6] = [
            (
                "max_lifetime",
                self.max_lifetime.is_none_or(|max| max.as_secs() >= 1),
                "must be at least one second",
            ),
            (
                "leeway",
                self.leeway <= Duration::from_secs(300),
                "must be at most 5 minutes",
            ),
            (
                "max_token_bytes",
                (256..=1024 * 1024).contains(&self.max_token_bytes),
                "must be between 256 bytes and 1 MiB",
            ),
            (
                "max_jwks_bytes",
                (1024..=16 * 1024 * 1024).contains(&self.jwks.max_bytes),
                "must be between 1 KiB and 16 MiB",
            ),
            (
                "jwks_timeouts",
                !self.jwks.connect_timeout.is_zero() && !self.jwks.request_timeout.is_zero(),
                "must be greater than zero",
            ),
            (
                "jwks_max_age",
                self.jwks.max_age >= self.jwks.cooldown,
                "must not be shorter than the cooldown",
            ),
        ];
        for (setting, ok, reason) in checks {
            if !ok {
                return Err(ConfigError::InvalidSetting { setting, reason });
            }
        }
        Ok(())
    }
}

/// The session window's settings are in range.
fn validate_sessions(sessions: &SessionConfig) -> Result<(), ConfigError> {
    if !(1..=MAX_WINDOW).contains(&sessions.limits.size) {
        return Err(ConfigError::InvalidSetting {
            setting: "session window",
            reason: "must be between 1 and 8",
        });
    }
    if sessions.limits.ttl_secs < 1 || sessions.timeout.is_zero() {
        return Err(ConfigError::InvalidSetting {
            setting: "session ttl or timeout",
            reason: "must be greater than zero",
        });
    }
    if let Some(breaker) = sessions.breaker {
        if breaker.failures < 1 || breaker.probe_every < Duration::from_millis(10) {
            return Err(ConfigError::InvalidSetting {
                setting: "circuit_breaker",
                reason: "needs at least 1 failure and a probe interval of at least 10 ms",
            });
        }
    }
    Ok(())
}

/// A scope or group: non-empty printable ASCII without spaces, quotes or backslashes, so that
/// scopes can go into the `scope` attribute of a challenge as they are.
pub(crate) fn validate_rule(rule: &str) -> Result<(), ConfigError> {
    let ok = !rule.is_empty()
        && rule
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::InvalidRule(rule.to_owned()))
    }
}

impl fmt::Debug for CognitoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CognitoConfig")
            .field("pools", &self.pools)
            .field("leeway", &self.leeway)
            .field("max_lifetime", &self.max_lifetime)
            .field("max_token_bytes", &self.max_token_bytes)
            .field("required_scopes", &self.required_scopes)
            .field("required_groups", &self.required_groups)
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
