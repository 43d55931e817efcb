//! [`AlbConfig`]: what an [`AlbVerifier`](super::AlbVerifier) accepts, and how it fetches keys.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{
    DEFAULT_ALB_FETCHES_PER_COOLDOWN, DEFAULT_ALB_KEY_COOLDOWN, DEFAULT_ALB_MAX_TOKEN_BYTES,
};
use crate::clock::{Clock, SystemClock};
#[cfg(doc)]
use crate::config::ConfigError;
use crate::config::{JwksProxy, DEFAULT_LEEWAY};

/// What an [`AlbVerifier`](super::AlbVerifier) accepts. The signer ARNs are required; the rest has defaults.
#[derive(Clone)]
#[must_use]
pub struct AlbConfig {
    pub(super) signers: Vec<String>,
    pub(super) region: Option<String>,
    pub(super) key_endpoint: Option<String>,
    pub(super) issuer: Option<String>,
    pub(super) client_ids: Option<Vec<String>>,
    pub(super) leeway: Duration,
    pub(super) allow_http_loopback: bool,
    pub(super) cooldown: Duration,
    pub(super) fetches_per_cooldown: u32,
    pub(super) max_cached_keys: u64,
    pub(super) max_token_bytes: usize,
    pub(super) connect_timeout: Duration,
    pub(super) request_timeout: Duration,
    pub(super) proxy: JwksProxy,
    /// Extra trusted root certificates for the key endpoint, PEM (a bundle each).
    pub(super) extra_roots: Vec<Vec<u8>>,
    pub(super) clock: Arc<dyn Clock>,
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
            .field("key_root_certificates", &self.extra_roots.len())
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
            extra_roots: Vec::new(),
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

    /// Also trust these root certificates (PEM, one or more) for an https key endpoint, beside
    /// the platform's: for a TLS-inspecting proxy or a private mirror of the keys
    /// ([`key_endpoint`](Self::key_endpoint)). The same as the main verifier's
    /// [`jwks_root_certificates_pem`](crate::CognitoConfig::jwks_root_certificates_pem): a
    /// bundle that holds no certificate is a [`ConfigError::InvalidCertificate`] from
    /// [`AlbVerifier::new`](super::AlbVerifier::new).
    pub fn key_root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_roots.push(pem.into());
        self
    }

    /// The time source for `exp` (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}
