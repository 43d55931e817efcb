//! Build-time configuration: the user pool, what tokens to accept, and where keys come from.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::session::SessionConfig;

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

/// An error in the configuration, found when the verifier is built. Never returned per request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The user pool id is not of the form `{region}_{id}`, such as `eu-west-1_AbCdEf123`.
    InvalidUserPoolId(String),
    /// The region is not an AWS region name such as `eu-west-1`.
    InvalidRegion(String),
    /// The region given does not match the one in the user pool id.
    RegionMismatch {
        /// The region in the pool id.
        pool: String,
        /// The region given.
        given: String,
    },
    /// No client id was given; use [`ClientIds::unchecked`] to skip the client check on purpose.
    NoClientIds,
    /// A client id is empty or holds characters Cognito never uses.
    InvalidClientId(String),
    /// A URL could not be parsed, or is not `https`.
    InvalidUrl {
        /// Which setting held the URL.
        setting: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// An issuer override is empty.
    InvalidIssuer(String),
    /// A required scope or group is empty or holds characters RFC 6749 does not allow in scopes.
    InvalidRule(String),
    /// A JWKS document given at build time could not be used.
    InvalidJwks(String),
    /// A numeric setting is out of range.
    InvalidSetting {
        /// Which setting.
        setting: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUserPoolId(id) => write!(
                f,
                "invalid user pool id {id:?}: expected {{region}}_{{id}}, such as eu-west-1_AbCdEf123"
            ),
            Self::InvalidRegion(r) => {
                write!(f, "invalid AWS region {r:?}: expected a name such as eu-west-1")
            }
            Self::RegionMismatch { pool, given } => write!(
                f,
                "region {given:?} does not match the user pool id's region {pool:?}"
            ),
            Self::NoClientIds => f.write_str(
                "no app client id given: name the allowed client ids, or call ClientIds::unchecked() to skip the check on purpose",
            ),
            Self::InvalidClientId(id) => write!(f, "invalid app client id {id:?}"),
            Self::InvalidUrl { setting, reason } => write!(f, "invalid {setting}: {reason}"),
            Self::InvalidIssuer(i) => write!(f, "invalid issuer {i:?}"),
            Self::InvalidRule(r) => write!(
                f,
                "invalid scope or group {r:?}: must be non-empty printable ASCII without spaces, quotes or backslashes"
            ),
            Self::InvalidJwks(reason) => write!(f, "invalid JWKS document: {reason}"),
            Self::InvalidSetting { setting, reason } => write!(f, "invalid {setting}: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A Cognito user pool, parsed from its id (`{region}_{id}`).
///
/// ```
/// use tower_cognito::UserPool;
///
/// let pool = UserPool::parse("eu-west-1_AbCdEf123").unwrap();
/// assert_eq!(pool.region(), "eu-west-1");
/// assert_eq!(
///     pool.jwks_url(),
///     "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123/.well-known/jwks.json"
/// );
/// assert!(UserPool::parse("not a pool").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserPool {
    id: String,
    region: String,
}

impl UserPool {
    /// Parses a user pool id such as `eu-west-1_AbCdEf123`; the region is taken from the id.
    pub fn parse(id: &str) -> Result<Self, ConfigError> {
        let (region, suffix) = id
            .split_once('_')
            .ok_or_else(|| ConfigError::InvalidUserPoolId(id.to_owned()))?;
        if suffix.is_empty()
            || suffix.len() > 40
            || !suffix.bytes().all(|b| b.is_ascii_alphanumeric())
            || !is_region(region)
        {
            return Err(ConfigError::InvalidUserPoolId(id.to_owned()));
        }
        Ok(Self {
            id: id.to_owned(),
            region: region.to_owned(),
        })
    }

    /// Like [`parse`](Self::parse), but with the region given separately; it must match the id's.
    pub fn with_region(id: &str, region: &str) -> Result<Self, ConfigError> {
        if !is_region(region) {
            return Err(ConfigError::InvalidRegion(region.to_owned()));
        }
        let pool = Self::parse(id)?;
        if pool.region != region {
            return Err(ConfigError::RegionMismatch {
                pool: pool.region,
                given: region.to_owned(),
            });
        }
        Ok(pool)
    }

    /// The pool id, such as `eu-west-1_AbCdEf123`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The AWS region, such as `eu-west-1`.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The JWKS URL on the original issuer host, which serves every pool.
    pub fn jwks_url(&self) -> String {
        format!(
            "{}/.well-known/jwks.json",
            self.issuer(IssuerForm::Original)
        )
    }

    /// The issuer string of the given form.
    pub fn issuer(&self, form: IssuerForm) -> String {
        let host = match form {
            IssuerForm::Original => "cognito-idp",
            IssuerForm::Updated => "issuer-cognito-idp",
        };
        format!("https://{host}.{}.amazonaws.com/{}", self.region, self.id)
    }
}

impl fmt::Display for UserPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl std::str::FromStr for UserPool {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// `xx-name-1`, `us-gov-west-1`, `ap-southeast-2`: two letters, one or more words, a number.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 5
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].len() <= 2
        && !parts[parts.len() - 1].is_empty()
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

/// The two issuer forms Cognito uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssuerForm {
    /// `https://cognito-idp.{region}.amazonaws.com/{poolId}`.
    Original,
    /// `https://issuer-cognito-idp.{region}.amazonaws.com/{poolId}`, used by pools switched to the
    /// updated issuer configuration.
    Updated,
}

/// Which issuers a token may name. Both Cognito forms are accepted by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Issuers {
    /// Accept both the original and the updated issuer form.
    #[default]
    Both,
    /// Accept only this form.
    Only(IssuerForm),
}

/// Which kind of Cognito token is accepted, by its `token_use` claim.
///
/// Access tokens are what an API should accept; id tokens describe the user to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenUse {
    /// Only access tokens (`token_use: "access"`); the client is checked through `client_id`.
    Access,
    /// Only id tokens (`token_use: "id"`); the client is checked through `aud`.
    Id,
    /// Either kind; the client is checked through the claim that kind carries.
    Any,
}

impl TokenUse {
    pub(crate) fn accepts(self, token_use: &str) -> bool {
        match self {
            Self::Access => token_use == "access",
            Self::Id => token_use == "id",
            Self::Any => token_use == "access" || token_use == "id",
        }
    }
}

/// The app client ids whose tokens are accepted.
///
/// Cognito access tokens carry the client in `client_id` and have no `aud`; id tokens carry it in
/// `aud`. Both are checked against this list.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIds(ClientIdsInner);

#[derive(Clone, PartialEq, Eq)]
enum ClientIdsInner {
    /// ahash, not SipHash: every fresh token is looked up here.
    Allowed(HashSet<String, ahash::RandomState>),
    Unchecked,
}

impl ClientIds {
    /// Accept tokens of these app clients only. An empty list is a [`ConfigError::NoClientIds`]
    /// when the verifier is built.
    pub fn new<I, S>(ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(ClientIdsInner::Allowed(
            ids.into_iter().map(Into::into).collect(),
        ))
    }

    /// Accept tokens of this one app client.
    pub fn one(id: impl Into<String>) -> Self {
        Self::new([id])
    }

    /// Skip the client check: accept tokens of ANY app client of the pool.
    ///
    /// Only for a pool whose every client is trusted by this API. The name is loud on purpose.
    pub fn unchecked() -> Self {
        Self(ClientIdsInner::Unchecked)
    }

    pub(crate) fn allows(&self, client: &str) -> bool {
        match &self.0 {
            ClientIdsInner::Allowed(ids) => ids.contains(client),
            ClientIdsInner::Unchecked => true,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match &self.0 {
            ClientIdsInner::Unchecked => Ok(()),
            ClientIdsInner::Allowed(ids) if ids.is_empty() => Err(ConfigError::NoClientIds),
            ClientIdsInner::Allowed(ids) => ids.iter().try_for_each(|id| {
                let ok = !id.is_empty()
                    && id.len() <= 128
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                ok.then_some(())
                    .ok_or_else(|| ConfigError::InvalidClientId(id.clone()))
            }),
        }
    }
}

impl fmt::Debug for ClientIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ClientIdsInner::Allowed(ids) => {
                let mut ids: Vec<&String> = ids.iter().collect();
                ids.sort();
                f.debug_tuple("ClientIds").field(&ids).finish()
            }
            ClientIdsInner::Unchecked => f.write_str("ClientIds::unchecked()"),
        }
    }
}

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
    pub(crate) pool: UserPool,
    pub(crate) token_use: TokenUse,
    pub(crate) client_ids: ClientIds,
    pub(crate) issuers: Issuers,
    pub(crate) issuer_override: Option<String>,
    pub(crate) jwks_url: Option<String>,
    pub(crate) allow_http_loopback: bool,
    pub(crate) jwks_document: Option<String>,
    pub(crate) fetch_keys: bool,
    pub(crate) leeway: Duration,
    pub(crate) max_token_bytes: usize,
    pub(crate) required_scopes: Vec<String>,
    pub(crate) required_groups: Vec<String>,
    pub(crate) jwks_cooldown: Duration,
    pub(crate) jwks_max_age: Duration,
    pub(crate) max_jwks_bytes: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) realm: String,
    pub(crate) sessions: Option<SessionConfig>,
    pub(crate) token_cache_size: u64,
}

impl CognitoConfig {
    /// Accept tokens of `pool`, of kind `token_use`, issued to one of `client_ids`.
    pub fn new(pool: UserPool, token_use: TokenUse, client_ids: ClientIds) -> Self {
        Self {
            pool,
            token_use,
            client_ids,
            issuers: Issuers::Both,
            issuer_override: None,
            jwks_url: None,
            allow_http_loopback: false,
            jwks_document: None,
            fetch_keys: true,
            leeway: DEFAULT_LEEWAY,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            required_scopes: Vec::new(),
            required_groups: Vec::new(),
            jwks_cooldown: DEFAULT_JWKS_COOLDOWN,
            jwks_max_age: DEFAULT_JWKS_MAX_AGE,
            max_jwks_bytes: DEFAULT_MAX_JWKS_BYTES,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            clock: Arc::new(SystemClock),
            realm: DEFAULT_REALM.to_owned(),
            sessions: None,
            token_cache_size: DEFAULT_TOKEN_CACHE_SIZE,
        }
    }

    /// The user pool.
    pub fn pool(&self) -> &UserPool {
        &self.pool
    }

    /// Restrict the accepted issuer forms (both are accepted by default).
    pub fn issuers(mut self, issuers: Issuers) -> Self {
        self.issuers = issuers;
        self
    }

    /// Accept exactly this issuer instead of the Cognito ones: for local emulators and tests.
    pub fn issuer_override(mut self, issuer: impl Into<String>) -> Self {
        self.issuer_override = Some(issuer.into());
        self
    }

    /// Fetch keys from this URL instead of the pool's: for local emulators and tests.
    ///
    /// It must be `https`, unless [`allow_http_on_loopback`](Self::allow_http_on_loopback) is set
    /// and the host is a loopback address.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Allow a plain `http://` JWKS URL whose host is `localhost` or a loopback address.
    ///
    /// Off by default, so a typo can never send production key fetches over plain HTTP.
    pub fn allow_http_on_loopback(mut self, allow: bool) -> Self {
        self.allow_http_loopback = allow;
        self
    }

    /// Start with the keys of this JWKS document (`{"keys": [...]}`), for an offline start or
    /// tests. Keys are still fetched for an unknown `kid` and when they grow old, unless
    /// [`fetch_keys(false)`](Self::fetch_keys) is set.
    pub fn jwks_document(mut self, json: impl Into<String>) -> Self {
        self.jwks_document = Some(json.into());
        self
    }

    /// Whether keys may be fetched over the network (default `true`). With `false`, only the keys
    /// of [`jwks_document`](Self::jwks_document) are used and the crate never touches the network.
    pub fn fetch_keys(mut self, fetch: bool) -> Self {
        self.fetch_keys = fetch;
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
        self.jwks_cooldown = cooldown;
        self
    }

    /// Cached keys older than this are refreshed in the background (default
    /// [`DEFAULT_JWKS_MAX_AGE`]).
    pub fn jwks_max_age(mut self, max_age: Duration) -> Self {
        self.jwks_max_age = max_age;
        self
    }

    /// The cap on a JWKS response body (default [`DEFAULT_MAX_JWKS_BYTES`]).
    pub fn max_jwks_bytes(mut self, bytes: usize) -> Self {
        self.max_jwks_bytes = bytes;
        self
    }

    /// Connect and total timeouts of a JWKS fetch (default 3 s and 5 s).
    pub fn jwks_timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.connect_timeout = connect;
        self.request_timeout = total;
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

    /// The issuers a token may name.
    pub(crate) fn accepted_issuers(&self) -> Vec<String> {
        if let Some(issuer) = &self.issuer_override {
            return vec![issuer.clone()];
        }
        match self.issuers {
            Issuers::Both => vec![
                self.pool.issuer(IssuerForm::Original),
                self.pool.issuer(IssuerForm::Updated),
            ],
            Issuers::Only(form) => vec![self.pool.issuer(form)],
        }
    }

    /// The JWKS URL, checked: `https`, or `http` on loopback when allowed.
    pub(crate) fn checked_jwks_url(&self) -> Result<reqwest::Url, ConfigError> {
        let raw = self
            .jwks_url
            .clone()
            .unwrap_or_else(|| self.pool.jwks_url());
        let invalid = |reason: String| ConfigError::InvalidUrl {
            setting: "JWKS URL",
            reason,
        };
        let url = reqwest::Url::parse(&raw).map_err(|e| invalid(format!("{raw:?}: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("credentials in the URL are not allowed".into()));
        }
        match url.scheme() {
            "https" => Ok(url),
            "http" if self.allow_http_loopback && is_loopback(&url) => Ok(url),
            "http" if self.allow_http_loopback => Err(invalid(format!(
                "{raw:?}: plain http is allowed only to localhost or a loopback address"
            ))),
            "http" => Err(invalid(format!(
                "{raw:?}: plain http is refused; use https, or allow_http_on_loopback(true) for a local emulator"
            ))),
            other => Err(invalid(format!("{raw:?}: unsupported scheme {other:?}"))),
        }
    }

    /// Checks everything that can be checked without the network.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.client_ids.validate()?;
        if let Some(sessions) = &self.sessions {
            sessions.validate()?;
        }
        if let Some(issuer) = &self.issuer_override {
            if issuer.trim().is_empty() || issuer.trim() != issuer {
                return Err(ConfigError::InvalidIssuer(issuer.clone()));
            }
        }
        if self.fetch_keys {
            self.checked_jwks_url()?;
        } else if self.jwks_document.is_none() {
            return Err(ConfigError::InvalidSetting {
                setting: "fetch_keys",
                reason: "with fetch_keys(false) a jwks_document is required",
            });
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
        let checks: [(&'static str, bool, &'static str); 5] = [
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
                (1024..=16 * 1024 * 1024).contains(&self.max_jwks_bytes),
                "must be between 1 KiB and 16 MiB",
            ),
            (
                "jwks_timeouts",
                !self.connect_timeout.is_zero() && !self.request_timeout.is_zero(),
                "must be greater than zero",
            ),
            (
                "jwks_max_age",
                self.jwks_max_age >= self.jwks_cooldown,
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

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

impl fmt::Debug for CognitoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CognitoConfig")
            .field("pool", &self.pool.id)
            .field("token_use", &self.token_use)
            .field("client_ids", &self.client_ids)
            .field("issuers", &self.accepted_issuers())
            .field("jwks_url", &self.jwks_url)
            .field("fetch_keys", &self.fetch_keys)
            .field("leeway", &self.leeway)
            .field("max_token_bytes", &self.max_token_bytes)
            .field("required_scopes", &self.required_scopes)
            .field("required_groups", &self.required_groups)
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CognitoConfig {
        CognitoConfig::new(
            UserPool::parse("eu-west-1_AbC123").unwrap(),
            TokenUse::Access,
            ClientIds::one("client1"),
        )
    }

    #[test]
    fn parses_pool_ids() {
        for ok in [
            "eu-west-1_AbC123",
            "us-gov-west-1_x9",
            "ap-southeast-2_Z",
            "il-central-1_q",
        ] {
            assert!(UserPool::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "_",
            "eu-west-1_",
            "eu-west-1",
            "EU-west-1_abc",
            "eu-west_abc",
            "eu-west-1_ab-c",
            "e-west-1_abc",
            "eu-west-1_abc/../x",
        ] {
            assert!(
                matches!(UserPool::parse(bad), Err(ConfigError::InvalidUserPoolId(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn region_must_match_the_id() {
        assert!(UserPool::with_region("eu-west-1_abc", "eu-west-1").is_ok());
        assert_eq!(
            UserPool::with_region("eu-west-1_abc", "us-east-1"),
            Err(ConfigError::RegionMismatch {
                pool: "eu-west-1".into(),
                given: "us-east-1".into()
            })
        );
        assert_eq!(
            UserPool::with_region("eu-west-1_abc", "nowhere"),
            Err(ConfigError::InvalidRegion("nowhere".into()))
        );
    }

    #[test]
    fn both_issuer_forms_by_default_and_one_on_request() {
        assert_eq!(
            config().accepted_issuers(),
            [
                "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123",
                "https://issuer-cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
            ]
        );
        assert_eq!(
            config()
                .issuers(Issuers::Only(IssuerForm::Updated))
                .accepted_issuers(),
            ["https://issuer-cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"]
        );
    }

    #[test]
    fn plain_http_needs_opt_in_and_loopback() {
        let http = config().jwks_url("http://127.0.0.1:9229/x/.well-known/jwks.json");
        assert!(matches!(
            http.validate(),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(http.clone().allow_http_on_loopback(true).validate().is_ok());
        let remote = config()
            .jwks_url("http://cognito.example.com/jwks.json")
            .allow_http_on_loopback(true);
        assert!(matches!(
            remote.validate(),
            Err(ConfigError::InvalidUrl { .. })
        ));
        let localhost = config()
            .jwks_url("http://localhost:1/jwks.json")
            .allow_http_on_loopback(true);
        assert!(localhost.validate().is_ok());
    }

    #[test]
    fn client_ids_must_be_explicit() {
        let none = CognitoConfig::new(
            UserPool::parse("eu-west-1_AbC123").unwrap(),
            TokenUse::Access,
            ClientIds::new(Vec::<String>::new()),
        );
        assert_eq!(none.validate(), Err(ConfigError::NoClientIds));
        let bad = CognitoConfig::new(
            UserPool::parse("eu-west-1_AbC123").unwrap(),
            TokenUse::Access,
            ClientIds::one("a\"b"),
        );
        assert!(matches!(
            bad.validate(),
            Err(ConfigError::InvalidClientId(_))
        ));
        assert!(ClientIds::unchecked().allows("anything"));
    }

    #[test]
    fn rules_and_ranges_are_checked() {
        assert!(matches!(
            config().require_scopes(["a b"]).validate(),
            Err(ConfigError::InvalidRule(_))
        ));
        assert!(matches!(
            config().leeway(Duration::from_secs(3600)).validate(),
            Err(ConfigError::InvalidSetting {
                setting: "leeway",
                ..
            })
        ));
        assert!(matches!(
            config().fetch_keys(false).validate(),
            Err(ConfigError::InvalidSetting { .. })
        ));
    }
}
