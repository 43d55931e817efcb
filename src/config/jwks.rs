//! [`JwksOptions`]: how signing keys are fetched, the same for every pool of a configuration;
//! each pool's [`KeySource`] says where its keys come from. A pool's key cache takes both.

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

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}
