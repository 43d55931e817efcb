//! [`JwksOptions`]: how signing keys are fetched, the same for every pool of a configuration;
//! each pool's [`KeySource`] says where its keys come from. A pool's key cache takes both.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use super::pools::KeySource;
use super::{
    ConfigError, UserPool, DEFAULT_JWKS_COOLDOWN, DEFAULT_JWKS_MAX_AGE, DEFAULT_MAX_JWKS_BYTES,
};

/// The JWKS fetch settings of a [`CognitoConfig`](super::CognitoConfig), for all its pools.
#[derive(Clone, Debug)]
pub(crate) struct JwksOptions {
    pub(crate) allow_http_loopback: bool,
    pub(crate) proxy: JwksProxy,
    /// Extra trusted root certificates, PEM (a bundle each).
    pub(crate) extra_roots: Vec<Vec<u8>>,
    pub(crate) cooldown: Duration,
    pub(crate) max_age: Duration,
    pub(crate) max_bytes: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            allow_http_loopback: false,
            proxy: JwksProxy::none(),
            extra_roots: Vec::new(),
            cooldown: DEFAULT_JWKS_COOLDOWN,
            max_age: DEFAULT_JWKS_MAX_AGE,
            max_bytes: DEFAULT_MAX_JWKS_BYTES,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
        }
    }
}

impl JwksOptions {
    /// The JWKS URL (the source's override, else `pool`'s), checked: `https`, or `http` on
    /// loopback when allowed.
    pub(crate) fn checked_url(
        &self,
        source: &KeySource,
        pool: &UserPool,
    ) -> Result<reqwest::Url, ConfigError> {
        let raw = source.url.clone().unwrap_or_else(|| pool.jwks_url());
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

    /// Keys can come from somewhere: a valid URL to fetch, or a document when fetching is off.
    pub(crate) fn validate_source(
        &self,
        source: &KeySource,
        pool: &UserPool,
    ) -> Result<(), ConfigError> {
        if source.fetch {
            self.checked_url(source, pool)?;
        } else if source.document.is_none() {
            return Err(ConfigError::InvalidSetting {
                setting: "fetch_keys",
                reason: "with fetch_keys(false) a jwks_document is required",
            });
        }
        Ok(())
    }
}

/// The HTTP client of key fetches, the JWKS's and the ALB keys' alike: the timeouts, no
/// redirects, the proxy rule and the extra trusted roots (PEM bundles, each with at least one
/// certificate). `setting` names the endpoint in a build error.
pub(crate) fn key_fetch_client(
    setting: &'static str,
    connect_timeout: Duration,
    request_timeout: Duration,
    proxy: &JwksProxy,
    extra_roots: &[Vec<u8>],
) -> Result<reqwest::Client, ConfigError> {
    let builder = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tower-cognito/", env!("CARGO_PKG_VERSION")));
    let mut builder = proxy.apply(builder)?;
    let mut roots = Vec::new();
    for pem in extra_roots {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| ConfigError::InvalidCertificate(e.to_string()))?;
        if certs.is_empty() {
            return Err(ConfigError::InvalidCertificate(
                "no certificate in the PEM".into(),
            ));
        }
        roots.extend(certs);
    }
    if !roots.is_empty() {
        builder = builder.tls_certs_merge(roots);
    }
    builder.build().map_err(|e| ConfigError::InvalidUrl {
        setting,
        reason: format!("could not build the HTTP client: {e}"),
    })
}

/// How JWKS fetches reach the JWKS endpoint: directly (the default), through the proxy the
/// environment names, or through a given proxy.
///
/// Off unless asked for: without [`CognitoConfig::jwks_proxy`](super::CognitoConfig::jwks_proxy)
/// the environment's `HTTPS_PROXY` is **not** followed, so that a variable meant for another
/// program never reroutes key fetches.
///
/// ```
/// use tower_cognito::JwksProxy;
///
/// // curl's rules: HTTPS_PROXY (or https_proxy), HTTP_PROXY for http URLs, ALL_PROXY, and
/// // NO_PROXY's comma-separated hosts, domains and IP ranges fetched directly.
/// let from_env = JwksProxy::from_env();
/// // One proxy for every JWKS URL, except those NO_PROXY-style `no_proxy` names.
/// let given = JwksProxy::url("http://proxy.internal:3128").no_proxy("localhost,.internal");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct JwksProxy(ProxyRule);

#[derive(Clone, PartialEq, Eq)]
enum ProxyRule {
    None,
    FromEnv,
    Url {
        url: String,
        no_proxy: Option<String>,
    },
}

impl JwksProxy {
    /// Fetch directly, whatever the environment says (the default).
    pub fn none() -> Self {
        Self(ProxyRule::None)
    }

    /// Follow the environment: `HTTPS_PROXY` / `https_proxy` for https URLs, `HTTP_PROXY` /
    /// `http_proxy` for http ones, `ALL_PROXY` for both, and `NO_PROXY` / `no_proxy` for the
    /// hosts fetched directly, read when the verifier is built.
    pub fn from_env() -> Self {
        Self(ProxyRule::FromEnv)
    }

    /// Fetch through the HTTP proxy at `url` (`http://host:port`, credentials allowed as
    /// `http://user:password@host:port`; https URLs go through it with `CONNECT`). The URL is
    /// checked when the verifier is built, and never logged or shown by `Debug`.
    pub fn url(url: impl Into<String>) -> Self {
        Self(ProxyRule::Url {
            url: url.into(),
            no_proxy: None,
        })
    }

    /// With [`url`](Self::url): hosts fetched directly, in `NO_PROXY`'s form (comma-separated
    /// host names, `.domain` suffixes, IP addresses and CIDR ranges, `*` for all).
    pub fn no_proxy(mut self, hosts: impl Into<String>) -> Self {
        if let ProxyRule::Url { no_proxy, .. } = &mut self.0 {
            *no_proxy = Some(hosts.into());
        }
        self
    }

    /// The proxy settings of a client builder.
    pub(crate) fn apply(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, ConfigError> {
        match &self.0 {
            ProxyRule::None => Ok(builder.no_proxy()),
            // reqwest reads the environment when no proxy is given and `no_proxy()` is not called.
            ProxyRule::FromEnv => Ok(builder),
            ProxyRule::Url { url, no_proxy } => {
                let invalid = |reason: &str| ConfigError::InvalidUrl {
                    setting: "JWKS proxy",
                    reason: reason.to_owned(),
                };
                let parsed = reqwest::Url::parse(url)
                    .map_err(|_| invalid("not a URL (it is not shown: it may hold a password)"))?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                    return Err(invalid("must be http:// or https:// with a host"));
                }
                let proxy = reqwest::Proxy::all(parsed)
                    .map_err(|_| invalid("refused by the HTTP client"))?
                    .no_proxy(no_proxy.as_deref().and_then(reqwest::NoProxy::from_string));
                Ok(builder.proxy(proxy))
            }
        }
    }
}

impl Default for JwksProxy {
    fn default() -> Self {
        Self::none()
    }
}

/// The proxy's host at most: its URL may carry a password.
impl fmt::Debug for JwksProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ProxyRule::None => f.write_str("JwksProxy::none()"),
            ProxyRule::FromEnv => f.write_str("JwksProxy::from_env()"),
            ProxyRule::Url { url, no_proxy } => {
                let host = reqwest::Url::parse(url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_else(|| "<invalid>".to_owned());
                f.debug_struct("JwksProxy")
                    .field("host", &host)
                    .field("no_proxy", no_proxy)
                    .finish()
            }
        }
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
