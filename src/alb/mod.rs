//! Verifying the `x-amzn-oidc-data` header of an Application Load Balancer that authenticates
//! users with Cognito (or another OIDC provider) in front of the service.
//!
//! The ALB signs its own token, not Cognito's: ES256 over a header that names the load balancer
//! (`signer`), the identity provider (`iss`), the app client (`client`) and the expiry (`exp`),
//! and a payload of the user's claims (`sub`, `email`, `username`, ...). Its key is not in a
//! JWKS: each `kid` is one PEM file at the region's key endpoint,
//! `https://public-keys.auth.elb.{region}.amazonaws.com/{kid}` (GovCloud:
//! `https://s3-{region}.amazonaws.com/aws-elb-public-keys-prod-{region}/{kid}`).
//!
//! ```no_run
//! use tower_cognito::alb::{AlbConfig, AlbVerifier};
//!
//! # async fn run(header_value: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = AlbVerifier::new(
//!     AlbConfig::new(["arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188"])
//!         .issuer("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123")
//!         .client_id("1example23456789"),
//! )?;
//! match verifier.verify(header_value).await {
//!     Ok(claims) => println!("hello {:?}", claims.sub()),
//!     // 401 for a bad token, 503 when the key endpoint is down.
//!     Err(e) => println!("{} {}", e.status(), e.description()),
//! }
//! # Ok(()) }
//! ```
//!
//! # The order of checks
//!
//! 1. Size cap; three base64url parts (`=` padding tolerated here only: ALB pads), a JSON
//!    header with no duplicate members and no `crit`.
//! 2. `alg` is exactly `ES256` (no `none`, no `HS256`/`RS256`, no `es256`).
//! 3. `kid` is present and only hexadecimal digits and `-`, at most 64 characters: anything else
//!    is refused before any fetch, so a kid never shapes a URL beyond one path segment.
//! 4. `signer` is exactly one of the configured load balancer ARNs. It selects the key
//!    endpoint (the ARN's region, or the override): an unknown signer is refused without fetch.
//!    A signature part that is not 64 bytes is refused here too.
//! 5. The key of `kid`: from the cache, or fetched (one fetch per kid at a time; a failed kid is
//!    not asked again for the cooldown; at most a budget of fetches per cooldown in all).
//! 6. The signature (64 bytes, `r || s`) over the parts as sent.
//! 7. After the signature: header `exp` (required) with the leeway, payload `exp` if present,
//!    then `iss` and `client` when configured.
//!
//! # Deployment
//!
//! The header proves what the ALB saw only if nobody else can send it: let the service be
//! reached through the load balancer alone (security groups), as AWS advises. The signer check
//! stops tokens of other load balancers, including other accounts'.

mod keys;
mod layer;
mod token;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, JwksProxy, DEFAULT_LEEWAY};
use crate::error::{AuthError, InvalidToken};

use keys::{KeyOptions, KeyStore};
pub use layer::{AlbAuth, AlbAuthLayer};

/// The header an ALB puts its signed token in.
pub const ALB_DATA_HEADER: &str = "x-amzn-oidc-data";

/// How long a kid whose fetch failed is not asked for again, and the window of the fetch
/// budget: 30 seconds.
pub const DEFAULT_ALB_KEY_COOLDOWN: Duration = Duration::from_secs(30);

/// Key fetches of uncached kids allowed per cooldown window, across all kids: 8.
pub const DEFAULT_ALB_FETCHES_PER_COOLDOWN: u32 = 8;

/// The longest `x-amzn-oidc-data` value accepted: 32 KiB (ALB caps user claims at 11 KiB).
pub const DEFAULT_ALB_MAX_TOKEN_BYTES: usize = 32 * 1024;

const MAX_KEY_BYTES: usize = 4 * 1024;

/// Why an `x-amzn-oidc-data` token was refused: the same 401 / 503 split as [`AuthError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlbError {
    /// No `x-amzn-oidc-data` header (401; [`AlbAuthLayer`] only: the request did not come
    /// through an authenticating load balancer).
    MissingToken,
    /// The token is not a valid token of the configured load balancers (401). The reasons are
    /// the main verifier's: `Malformed`, `UnsupportedAlgorithm`, `MissingKeyId` (also for a kid
    /// of characters an ALB never uses), `UnknownKey`, `BadSignature`, `MissingClaim`,
    /// `Expired`, `WrongIssuer`, `WrongClient`, `TooLarge`, `UnsupportedCritical`.
    InvalidToken(InvalidToken),
    /// `signer` is not one of the configured load balancer ARNs (401).
    WrongSigner,
    /// The key endpoint did not answer, or answered something that is not a key (503): our
    /// outage, never the client's 401.
    KeysUnavailable,
}

impl AlbError {
    /// 401 for the token's fault, 503 for the key endpoint's.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken(_) | Self::WrongSigner => {
                StatusCode::UNAUTHORIZED
            }
            Self::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A fixed description: nothing from the token.
    pub fn description(&self) -> &'static str {
        match self {
            Self::MissingToken => "No load balancer token was presented",
            Self::InvalidToken(reason) => reason.description(),
            Self::WrongSigner => "The token was not signed by an accepted load balancer",
            Self::KeysUnavailable => "The signing keys are unavailable",
        }
    }

    /// A short stable name for logs and metrics, such as `wrong_signer`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidToken(reason) => reason.as_str(),
            Self::WrongSigner => "wrong_signer",
            Self::KeysUnavailable => "keys_unavailable",
        }
    }
}

impl fmt::Display for AlbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for AlbError {}

/// For answering with the crate's rejections: a wrong signer is a wrong issuer there.
impl From<AlbError> for AuthError {
    fn from(e: AlbError) -> Self {
        match e {
            AlbError::MissingToken => AuthError::MissingToken,
            AlbError::InvalidToken(reason) => AuthError::InvalidToken(reason),
            AlbError::WrongSigner => AuthError::InvalidToken(InvalidToken::WrongIssuer),
            AlbError::KeysUnavailable => AuthError::KeysUnavailable,
        }
    }
}

/// What an [`AlbVerifier`] accepts. The signer ARNs are required; the rest has defaults.
#[derive(Clone)]
#[must_use]
pub struct AlbConfig {
    signers: Vec<String>,
    region: Option<String>,
    key_endpoint: Option<String>,
    issuer: Option<String>,
    client_ids: Option<Vec<String>>,
    leeway: Duration,
    allow_http_loopback: bool,
    cooldown: Duration,
    fetches_per_cooldown: u32,
    max_cached_keys: u64,
    max_token_bytes: usize,
    connect_timeout: Duration,
    request_timeout: Duration,
    proxy: JwksProxy,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for AlbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlbConfig")
            .field("signers", &self.signers)
            .field("region", &self.region)
            .field("key_endpoint", &self.key_endpoint)
            .field("issuer", &self.issuer)
            .field("client_ids", &self.client_ids)
            .field("leeway", &self.leeway)
            .field("allow_http_loopback", &self.allow_http_loopback)
            .field("cooldown", &self.cooldown)
            .field("fetches_per_cooldown", &self.fetches_per_cooldown)
            .field("max_cached_keys", &self.max_cached_keys)
            .field("max_token_bytes", &self.max_token_bytes)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl AlbConfig {
    /// Tokens signed by these load balancers (their full ARNs, matched exactly against the
    /// header's `signer`), such as
    /// `arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188`.
    /// Each ARN's region picks its key endpoint.
    pub fn new<I, S>(signer_arns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            signers: signer_arns.into_iter().map(Into::into).collect(),
            region: None,
            key_endpoint: None,
            issuer: None,
            client_ids: None,
            leeway: DEFAULT_LEEWAY,
            allow_http_loopback: false,
            cooldown: DEFAULT_ALB_KEY_COOLDOWN,
            fetches_per_cooldown: DEFAULT_ALB_FETCHES_PER_COOLDOWN,
            max_cached_keys: 64,
            max_token_bytes: DEFAULT_ALB_MAX_TOKEN_BYTES,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            proxy: JwksProxy::none(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The region of the key endpoint, instead of each ARN's own (for every signer).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The base URL keys are fetched from instead of the region's (for every signer): the kid
    /// is appended as one path segment, so `https://keys.example/alb/` fetches
    /// `https://keys.example/alb/{kid}`. `https` only, unless
    /// [`allow_http_on_loopback`](Self::allow_http_on_loopback).
    pub fn key_endpoint(mut self, url: impl Into<String>) -> Self {
        self.key_endpoint = Some(url.into());
        self
    }

    /// Require the header's `iss` (the identity provider, for Cognito
    /// `https://cognito-idp.{region}.amazonaws.com/{pool id}`) to be exactly this.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Require the header's `client` (the app client id) to be this one (added to any others).
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_ids
            .get_or_insert_with(Vec::new)
            .push(client_id.into());
        self
    }

    /// Clock skew tolerated on `exp` (default [`DEFAULT_LEEWAY`], 5 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Allow a plain `http://` key endpoint whose host is `localhost` or a loopback address
    /// (tests, local emulators). Off by default.
    pub fn allow_http_on_loopback(mut self, allow: bool) -> Self {
        self.allow_http_loopback = allow;
        self
    }

    /// How long a kid whose fetch failed is refused without a new fetch, and the window of the
    /// fetch budget (default [`DEFAULT_ALB_KEY_COOLDOWN`]).
    pub fn key_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Fetches of uncached kids allowed per cooldown window, in all (default
    /// [`DEFAULT_ALB_FETCHES_PER_COOLDOWN`]). Past it, an uncached kid is refused as unknown
    /// without a fetch until the window ends.
    pub fn fetches_per_cooldown(mut self, fetches: u32) -> Self {
        self.fetches_per_cooldown = fetches;
        self
    }

    /// How many keys are kept (default 64; an ALB region rotates among a few).
    pub fn max_cached_keys(mut self, keys: u64) -> Self {
        self.max_cached_keys = keys;
        self
    }

    /// The longest token accepted (default [`DEFAULT_ALB_MAX_TOKEN_BYTES`]).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Timeouts of a key fetch: to connect (default 3 s) and in all (default 5 s).
    pub fn key_fetch_timeouts(mut self, connect: Duration, request: Duration) -> Self {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    /// How key fetches reach the key endpoint (default [`JwksProxy::none`]: directly, whatever
    /// `HTTPS_PROXY` says), with the same rules as the JWKS proxy of the main verifier.
    pub fn key_proxy(mut self, proxy: JwksProxy) -> Self {
        self.proxy = proxy;
        self
    }

    /// The time source for `exp` (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// One configured load balancer: its ARN and the index of its key endpoint.
#[derive(Debug)]
struct Signer {
    arn: String,
    endpoint: usize,
}

/// Verifies `x-amzn-oidc-data` tokens. Cheap to clone (one `Arc`); build it once.
///
/// See the [module docs](self) for the order of checks.
#[derive(Clone, Debug)]
pub struct AlbVerifier {
    inner: Arc<VerifierInner>,
}

#[derive(Debug)]
struct VerifierInner {
    signers: Vec<Signer>,
    issuer: Option<String>,
    client_ids: Option<Vec<String>>,
    leeway: i64,
    max_token_bytes: usize,
    clock: Arc<dyn Clock>,
    keys: KeyStore,
}

impl AlbVerifier {
    /// Checks `config` and builds the verifier (and its one HTTP client).
    ///
    /// Refused: no signer, a signer that is not an Application Load Balancer ARN, a region of
    /// other characters than `a-z`, `0-9` and `-`, a partition with no known key endpoint (`aws-cn`, ...) without
    /// [`key_endpoint`](AlbConfig::key_endpoint), a key endpoint that is not `https` (or `http`
    /// on loopback when allowed), an empty issuer or client id, zero budgets.
    pub fn new(config: AlbConfig) -> Result<Self, ConfigError> {
        if config.signers.is_empty() {
            return Err(ConfigError::InvalidSetting {
                setting: "ALB signer ARNs",
                reason: "at least one load balancer ARN is required",
            });
        }
        if config.issuer.as_deref() == Some("") {
            return Err(ConfigError::InvalidIssuer(String::new()));
        }
        if let Some(ids) = &config.client_ids {
            if let Some(bad) = ids.iter().find(|id| id.is_empty() || !id.is_ascii()) {
                return Err(ConfigError::InvalidClientId(bad.clone()));
            }
        }
        if config.fetches_per_cooldown == 0 || config.max_cached_keys == 0 {
            return Err(ConfigError::InvalidSetting {
                setting: "ALB key cache",
                reason: "fetches_per_cooldown and max_cached_keys must be at least 1",
            });
        }
        if let Some(region) = &config.region {
            check_region(region)?;
        }
        let override_url = config
            .key_endpoint
            .as_deref()
            .map(|raw| checked_endpoint(raw, config.allow_http_loopback))
            .transpose()?;

        let mut endpoints: Vec<reqwest::Url> = Vec::new();
        let mut signers = Vec::with_capacity(config.signers.len());
        for arn in &config.signers {
            let parsed = parse_arn(arn)?;
            let url = match &override_url {
                Some(url) => url.clone(),
                None => {
                    let region = config.region.as_deref().unwrap_or(parsed.region);
                    region_endpoint(parsed.partition, region)?
                }
            };
            let endpoint = match endpoints.iter().position(|u| *u == url) {
                Some(i) => i,
                None => {
                    endpoints.push(url);
                    endpoints.len() - 1
                }
            };
            if !signers.iter().any(|s: &Signer| s.arn == *arn) {
                signers.push(Signer {
                    arn: arn.clone(),
                    endpoint,
                });
            }
        }
        let keys = KeyStore::new(KeyOptions {
            endpoints,
            cooldown: config.cooldown,
            fetches_per_cooldown: config.fetches_per_cooldown,
            max_cached_keys: config.max_cached_keys,
            max_key_bytes: MAX_KEY_BYTES,
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            proxy: config.proxy,
        })?;
        Ok(Self {
            inner: Arc::new(VerifierInner {
                signers,
                issuer: config.issuer,
                client_ids: config.client_ids,
                leeway: i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX),
                max_token_bytes: config.max_token_bytes,
                clock: config.clock,
                keys,
            }),
        })
    }

    /// Verifies one `x-amzn-oidc-data` value and answers its claims.
    pub async fn verify(&self, token: &str) -> Result<AlbClaims, AlbError> {
        let inner = &*self.inner;
        let invalid = AlbError::InvalidToken;
        if token.len() > inner.max_token_bytes {
            return Err(invalid(InvalidToken::TooLarge));
        }
        let parts = token::split(token)?;
        let header = &parts.header;
        if header.crit.is_some() {
            return Err(invalid(InvalidToken::UnsupportedCritical));
        }
        if header.alg != "ES256" {
            return Err(invalid(InvalidToken::UnsupportedAlgorithm));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or(invalid(InvalidToken::MissingKeyId))?;
        if !token::valid_kid(kid) {
            tracing::debug!("ALB token kid of characters no ALB uses; refused unfetched");
            return Err(invalid(InvalidToken::MissingKeyId));
        }
        let signer = header
            .signer
            .as_deref()
            .and_then(|s| inner.signers.iter().find(|c| c.arn == s))
            .ok_or(AlbError::WrongSigner)?;
        // An ES256 JWS signature is r || s, 32 bytes each: anything else (DER, cut) is refused
        // before a key is looked up.
        if parts.signature.len() != 64 {
            return Err(invalid(InvalidToken::BadSignature));
        }
        let key = inner.keys.key(signer.endpoint, kid).await?;
        if key
            .verify_sig(parts.signing_input, &parts.signature)
            .is_err()
        {
            return Err(invalid(InvalidToken::BadSignature));
        }

        let now = inner.clock.now_unix();
        let exp = header
            .exp
            .as_ref()
            .ok_or(invalid(InvalidToken::MissingClaim))?;
        let exp = token::seconds(exp).ok_or(invalid(InvalidToken::Malformed))?;
        if now > exp.saturating_add(inner.leeway) {
            return Err(invalid(InvalidToken::Expired));
        }
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&parts.payload).map_err(|_| invalid(InvalidToken::Malformed))?;
        if let Some(payload_exp) = claims.get("exp") {
            let payload_exp = payload_exp
                .as_i64()
                .ok_or(invalid(InvalidToken::Malformed))?;
            if now > payload_exp.saturating_add(inner.leeway) {
                return Err(invalid(InvalidToken::Expired));
            }
        }
        if let Some(expected) = &inner.issuer {
            if header.iss.as_deref() != Some(expected.as_str()) {
                return Err(invalid(InvalidToken::WrongIssuer));
            }
        }
        if let Some(ids) = &inner.client_ids {
            if !header
                .client
                .as_deref()
                .is_some_and(|c| ids.iter().any(|id| id == c))
            {
                return Err(invalid(InvalidToken::WrongClient));
            }
        }
        let header = parts.header;
        Ok(AlbClaims {
            signer: signer.arn.clone(),
            issuer: header.iss,
            client: header.client,
            exp,
            claims,
        })
    }
}

/// The claims of a verified ALB token: the header's `signer`, `iss`, `client` and `exp`, and
/// the payload (the identity provider's user claims) as JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct AlbClaims {
    signer: String,
    issuer: Option<String>,
    client: Option<String>,
    exp: i64,
    claims: serde_json::Map<String, serde_json::Value>,
}

impl AlbClaims {
    /// The load balancer ARN that signed the token (one of the configured ones).
    pub fn signer(&self) -> &str {
        &self.signer
    }

    /// The header's `iss`: the identity provider.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The header's `client`: the app client id.
    pub fn client(&self) -> Option<&str> {
        self.client.as_deref()
    }

    /// The header's `exp`, seconds since the Unix epoch.
    pub fn exp(&self) -> i64 {
        self.exp
    }

    /// The payload's `sub`.
    pub fn sub(&self) -> Option<&str> {
        self.str_claim("sub")
    }

    /// The payload's `email`.
    pub fn email(&self) -> Option<&str> {
        self.str_claim("email")
    }

    /// The payload's `username`.
    pub fn username(&self) -> Option<&str> {
        self.str_claim("username")
    }

    /// A string claim of the payload.
    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(serde_json::Value::as_str)
    }

    /// The whole payload, exactly as signed (every number representable, or the token was
    /// refused as malformed).
    pub fn claims(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.claims
    }
}

struct Arn<'a> {
    partition: &'a str,
    region: &'a str,
}

/// `arn:{partition}:elasticloadbalancing:{region}:{account}:loadbalancer/app/{name}/{id}`.
fn parse_arn(arn: &str) -> Result<Arn<'_>, ConfigError> {
    let bad = ConfigError::InvalidSetting {
        setting: "ALB signer ARN",
        reason: "expected arn:<partition>:elasticloadbalancing:<region>:<account>:loadbalancer/app/<name>/<id>",
    };
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = fields[..] else {
        return Err(bad);
    };
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let resource_ok = resource.strip_prefix("loadbalancer/app/").is_some_and(|rest| {
        let mut it = rest.split('/');
        matches!((it.next(), it.next(), it.next()), (Some(n), Some(i), None) if !n.is_empty() && !i.is_empty())
    });
    if prefix != "arn"
        || !partition.starts_with("aws")
        || service != "elasticloadbalancing"
        || !account_ok
        || !resource_ok
        || !arn.is_ascii()
    {
        return Err(bad);
    }
    check_region(region)?;
    Ok(Arn { partition, region })
}

fn check_region(region: &str) -> Result<(), ConfigError> {
    let ok = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::InvalidRegion(region.to_owned()))
    }
}

/// The region's ALB key endpoint, as a base URL the kid is pushed onto.
fn region_endpoint(partition: &str, region: &str) -> Result<reqwest::Url, ConfigError> {
    let raw = match partition {
        "aws" => format!("https://public-keys.auth.elb.{region}.amazonaws.com/"),
        "aws-us-gov" => {
            format!("https://s3-{region}.amazonaws.com/aws-elb-public-keys-prod-{region}/")
        }
        _ => {
            return Err(ConfigError::InvalidSetting {
                setting: "ALB key endpoint",
                reason: "no known key endpoint for this partition: give key_endpoint",
            })
        }
    };
    reqwest::Url::parse(&raw).map_err(|e| ConfigError::InvalidUrl {
        setting: "ALB key endpoint",
        reason: format!("{raw:?}: {e}"),
    })
}

fn checked_endpoint(raw: &str, allow_http_loopback: bool) -> Result<reqwest::Url, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidUrl {
        setting: "ALB key endpoint",
        reason,
    };
    let url = reqwest::Url::parse(raw).map_err(|e| invalid(format!("{raw:?}: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials in the URL are not allowed".into()));
    }
    if url.query().is_some() || url.fragment().is_some() || url.cannot_be_a_base() {
        return Err(invalid(format!(
            "{raw:?}: a base URL without query or fragment is required"
        )));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_http_loopback && is_loopback(&url) => Ok(url),
        "http" if allow_http_loopback => Err(invalid(format!(
            "{raw:?}: plain http is allowed only to localhost or a loopback address"
        ))),
        "http" => Err(invalid(format!(
            "{raw:?}: plain http is refused; use https, or allow_http_on_loopback(true) for a local endpoint"
        ))),
        other => Err(invalid(format!("{raw:?}: unsupported scheme {other:?}"))),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str =
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";

    #[test]
    fn region_endpoints() {
        let a = parse_arn(ARN).unwrap();
        assert_eq!(
            region_endpoint(a.partition, a.region).unwrap().as_str(),
            "https://public-keys.auth.elb.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            region_endpoint("aws-us-gov", "us-gov-west-1")
                .unwrap()
                .as_str(),
            "https://s3-us-gov-west-1.amazonaws.com/aws-elb-public-keys-prod-us-gov-west-1/"
        );
        assert!(region_endpoint("aws-cn", "cn-north-1").is_err());
    }

    #[test]
    fn arns_are_checked() {
        for bad in [
            "",
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/web/1",
            "arn:aws:elasticloadbalancing:eu-west-1:12345:loadbalancer/app/web/1",
            "arn:aws:s3:eu-west-1:123456789012:loadbalancer/app/web/1",
            "arn:aws:elasticloadbalancing:eu-west-1/x:123456789012:loadbalancer/app/web/1",
            "arn:aws:elasticloadbalancing:EU-WEST-1:123456789012:loadbalancer/app/web/1",
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/1/x",
        ] {
            assert!(parse_arn(bad).is_err(), "{bad:?}");
        }
        assert!(AlbVerifier::new(AlbConfig::new(Vec::<String>::new())).is_err());
    }

    #[test]
    fn endpoint_override_is_checked() {
        assert!(checked_endpoint("http://127.0.0.1:1/", false).is_err());
        assert!(checked_endpoint("http://127.0.0.1:1/", true).is_ok());
        assert!(checked_endpoint("http://example.com/", true).is_err());
        assert!(checked_endpoint("https://u:p@example.com/", false).is_err());
        assert!(checked_endpoint("https://example.com/?a=b", false).is_err());
        assert!(checked_endpoint("https://example.com/keys/", false).is_ok());
    }

    #[test]
    fn errors_split_401_and_503() {
        assert_eq!(AlbError::WrongSigner.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            AlbError::KeysUnavailable.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            AuthError::from(AlbError::KeysUnavailable),
            AuthError::KeysUnavailable
        );
    }
}
