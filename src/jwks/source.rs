//! Where a pool's JWKS document comes from: its URL, over HTTP, in production.
//!
//! The key cache asks a [`Source`] for the keys and knows nothing of sockets. The HTTP
//! [`Fetcher`] is the one source a user can configure; this crate's unit tests add an in-memory
//! document (`MemoryJwks`, `src/jwks/memory.rs`) that they script, so that the cache's
//! cooldown, max age and single flight run on tokio's paused clock: a socket would let the
//! paused clock jump ahead while a test waits on it, firing the HTTP client's timeouts.

use super::fetch::{FetchError, Fetcher};
use super::keyset::KeySet;
use crate::config::{ConfigError, JwksOptions};

/// A pool's JWKS document, wherever it comes from.
pub(crate) enum Source {
    /// Fetched from its URL.
    Http(Fetcher),
    /// A document a unit test holds in memory and scripts.
    #[cfg(test)]
    Memory(std::sync::Arc<super::memory::MemoryJwks>),
}

impl Source {
    /// The source for `url`, fetched as `options` say.
    ///
    /// In unit tests, a URL made by `MemoryJwks::new` names that in-memory document instead:
    /// nothing is ever fetched from it.
    pub(crate) fn new(url: reqwest::Url, options: &JwksOptions) -> Result<Self, ConfigError> {
        #[cfg(test)]
        if let Some(memory) = super::memory::MemoryJwks::registered(url.as_str()) {
            return Ok(Self::Memory(memory));
        }
        Fetcher::new(url, options).map(Self::Http)
    }

    /// Where the keys come from, for logs and `Debug`.
    pub(crate) fn url(&self) -> &str {
        match self {
            Self::Http(fetcher) => fetcher.url(),
            #[cfg(test)]
            Self::Memory(memory) => memory.url(),
        }
    }

    /// The current key set, or why there is none.
    pub(crate) async fn fetch(&self) -> Result<KeySet, FetchError> {
        match self {
            Self::Http(fetcher) => fetcher.fetch().await,
            #[cfg(test)]
            Self::Memory(memory) => memory.fetch().await,
        }
    }
}
