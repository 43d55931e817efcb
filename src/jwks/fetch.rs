//! Fetching the JWKS: one HTTP client, built once, with timeouts and a cap on the body.

use std::fmt;

use super::keyset::{KeySet, KeySetError};
use crate::config::{key_fetch_client, ConfigError, JwksOptions};

/// Fetches one JWKS URL. The `kid` of a token is never sent: the URL is fixed at build time.
pub(crate) struct Fetcher {
    client: reqwest::Client,
    url: reqwest::Url,
    max_bytes: usize,
}

/// Why a fetch gave no keys. Kept out of the public API; it reaches `tracing` only.
#[derive(Debug)]
pub(crate) enum FetchError {
    Http(reqwest::Error),
    Status(u16),
    TooLarge,
    Keys(KeySetError),
    /// Nothing answered: the unit tests' in-memory source playing an endpoint that is down.
    #[cfg(test)]
    Unreachable,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(e) if e.is_timeout() => write!(f, "timed out: {e}"),
            Self::Http(e) => write!(f, "request failed: {e}"),
            Self::Status(s) => write!(f, "answered HTTP {s}"),
            Self::TooLarge => f.write_str("body larger than the cap"),
            Self::Keys(e) => e.fmt(f),
            #[cfg(test)]
            Self::Unreachable => f.write_str("unreachable"),
        }
    }
}

impl Fetcher {
    /// One client for `url`, as `options` say (timeouts, body cap, proxy, extra roots).
    pub(crate) fn new(url: reqwest::Url, options: &JwksOptions) -> Result<Self, ConfigError> {
        let client = key_fetch_client(
            "JWKS URL",
            options.connect_timeout,
            options.request_timeout,
            &options.proxy,
            &options.extra_roots,
        )?;
        Ok(Self {
            client,
            url,
            max_bytes: options.max_bytes,
        })
    }

    pub(crate) fn url(&self) -> &str {
        self.url.as_str()
    }

    pub(crate) async fn fetch(&self) -> Result<KeySet, FetchError> {
        let mut response = self
            .client
            .get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(FetchError::Http)?;
        if response.status() != http::StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > self.max_bytes as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(FetchError::Http)? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::parse(&body).map_err(FetchError::Keys)
    }
}
