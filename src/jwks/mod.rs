//! The key cache: lock-free reads, one fetch at a time, and a cooldown for unknown `kid`s.
//!
//! - Reads load an `Arc` snapshot ([`arc_swap`]): a refresh never blocks a request whose key is
//!   cached, and no lock is ever held across an `await`.
//! - A `kid` missing from the snapshot starts a fetch, or joins the one in flight (single-flight):
//!   a hundred concurrent misses cost one request to the JWKS endpoint.
//! - After any fetch, successful or not, unknown `kid`s start no new fetch for the cooldown, so a
//!   flood of tokens with random `kid`s cannot make us hammer Cognito or an endpoint that is down.
//! - Keys older than the max age are refreshed in the background while requests go on with the
//!   cached ones. A refresh replaces the whole set, so a key removed from the JWKS stops verifying.
//! - A failed fetch keeps the cached keys; with none at all, requests get 503 until a fetch works.

mod fetch;
mod keyset;
#[cfg(test)]
mod memory;
mod single_flight;
mod source;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use crate::config::{ConfigError, JwksOptions, KeySource, UserPool};
use crate::error::{AuthError, InvalidToken};
pub(crate) use keyset::{KeySet, VerifyingKey, MAX_KID_BYTES};
use single_flight::{FetchInFlight, SingleFlight};
use source::Source;

/// The cached keys and their refresh machinery. Cheap to clone.
#[derive(Clone)]
pub(crate) struct KeyCache {
    store: Arc<KeyStore>,
}

/// The current key set, and how it is replaced.
struct KeyStore {
    /// The pool id, for logs and metrics.
    pool: Box<str>,
    snapshot: ArcSwap<Snapshot>,
    /// Where fetches get the keys; `None` when fetching is off.
    source: Option<Source>,
    max_age: Duration,
    flight: SingleFlight,
}

struct Snapshot {
    keys: KeySet,
    /// When these keys were fetched or loaded.
    loaded_at: Instant,
    /// Bumped by every stored fetch, so a cached verification can tell cheaply whether the key
    /// set changed since.
    generation: u64,
}

impl KeyCache {
    /// The key cache of `pool`, whose keys come from `source`, fetched as `options` say.
    pub(crate) fn new(
        options: &JwksOptions,
        source: &KeySource,
        pool: &UserPool,
    ) -> Result<Self, ConfigError> {
        let keys = match &source.document {
            Some(doc) => KeySet::parse(doc.as_bytes())
                .map_err(|e| ConfigError::InvalidJwks(e.to_string()))?,
            None => KeySet::default(),
        };
        let fetched_from = if source.fetch {
            let url = options.checked_url(source, pool)?;
            Some(Source::new(url, options)?)
        } else {
            None
        };
        Ok(Self {
            store: Arc::new(KeyStore {
                pool: pool.id().into(),
                snapshot: ArcSwap::from_pointee(Snapshot {
                    keys,
                    loaded_at: Instant::now(),
                    generation: 0,
                }),
                source: fetched_from,
                max_age: options.max_age,
                flight: SingleFlight::new(options.cooldown),
            }),
        })
    }

    /// The key for `kid` when the cache has it, with its generation; never waits. Starts a
    /// background refresh when the keys are old.
    pub(crate) fn cached_key(&self, kid: &str) -> Option<(Arc<VerifyingKey>, u64)> {
        let snapshot = self.store.snapshot.load();
        let key = snapshot.keys.get(kid)?;
        self.refresh_if_stale(&snapshot);
        Some((Arc::clone(key), snapshot.generation))
    }

    /// The key for `kid`: from the cache, or after joining or starting a fetch.
    /// Also returns the generation of the key set the key came from.
    pub(crate) async fn key(&self, kid: &str) -> Result<(Arc<VerifyingKey>, u64), AuthError> {
        if let Some(found) = self.cached_key(kid) {
            return Ok(found);
        }
        if kid.len() > MAX_KID_BYTES {
            // No key can have such a kid, whatever the cache holds: never our outage (503).
            return Err(AuthError::InvalidToken(InvalidToken::UnknownKey));
        }
        if let Some(fetch) = self.start_or_join_fetch() {
            fetch.await;
        }
        let snapshot = self.store.snapshot.load();
        match snapshot.keys.get(kid) {
            Some(key) => Ok((Arc::clone(key), snapshot.generation)),
            None => {
                tracing::debug!(kid_len = kid.len(), "no key for the token's kid");
                Err(self.miss_error())
            }
        }
    }

    /// Whether `key` still verifies, for a verification cached at `generation`: true when the
    /// key set has not changed since, or the new set still maps the key's `kid` to it.
    /// Starts a background refresh when the keys are old, like [`key`](Self::key).
    pub(crate) fn still_current(&self, key: &Arc<VerifyingKey>, generation: u64) -> bool {
        let snapshot = self.store.snapshot.load();
        self.refresh_if_stale(&snapshot);
        snapshot.generation == generation
            || snapshot
                .keys
                .get(key.kid())
                .is_some_and(|current| Arc::ptr_eq(current, key))
    }

    /// Whether any key is cached; never fetches.
    pub(crate) fn has_keys(&self) -> bool {
        !self.store.snapshot.load().keys.is_empty()
    }

    /// Fetches the keys now, unless a fetch is in flight (then waits for it) or the cooldown runs.
    /// For warming the cache at start-up.
    pub(crate) async fn refresh(&self) -> Result<usize, AuthError> {
        if let Some(fetch) = self.start_or_join_fetch() {
            fetch.await;
        }
        match self.store.snapshot.load().keys.len() {
            0 => Err(AuthError::KeysUnavailable),
            n => Ok(n),
        }
    }

    /// Keys older than the max age are refreshed in the background; the request that noticed
    /// goes on with the cached key.
    fn refresh_if_stale(&self, snapshot: &Snapshot) {
        if snapshot.loaded_at.elapsed() >= self.store.max_age {
            drop(self.start_or_join_fetch());
        }
    }

    fn miss_error(&self) -> AuthError {
        if self.store.snapshot.load().keys.is_empty() {
            AuthError::KeysUnavailable
        } else {
            AuthError::InvalidToken(InvalidToken::UnknownKey)
        }
    }

    /// Joins the fetch in flight, or starts one unless the cooldown since the last one runs.
    fn start_or_join_fetch(&self) -> Option<FetchInFlight> {
        self.store.source.as_ref()?;
        let store = Arc::clone(&self.store);
        self.store
            .flight
            .join_or_start(move || async move { store.fetch_and_store().await })
    }
}

impl KeyStore {
    async fn fetch_and_store(&self) {
        let Some(source) = &self.source else { return };
        let started = Instant::now();
        let result = source.fetch().await;
        let elapsed = started.elapsed();
        let elapsed_ms = elapsed.as_millis() as u64;
        crate::metrics::jwks_fetch(&self.pool, result.is_ok(), elapsed);
        match result {
            Ok(mut keys) => {
                let previous = self.snapshot.load();
                keys.reuse_unchanged(&previous.keys);
                tracing::info!(
                    url = source.url(),
                    keys = keys.len(),
                    elapsed_ms,
                    "fetched JWKS"
                );
                let generation = previous.generation + 1;
                self.snapshot.store(Arc::new(Snapshot {
                    keys,
                    loaded_at: Instant::now(),
                    generation,
                }));
            }
            Err(error) => {
                tracing::warn!(
                    url = source.url(),
                    error = %error,
                    elapsed_ms,
                    cached_keys = self.snapshot.load().keys.len(),
                    "JWKS fetch failed; keeping the cached keys"
                );
            }
        }
        self.flight.finished();
    }
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snapshot = self.store.snapshot.load();
        f.debug_struct("KeyCache")
            .field("keys", &snapshot.keys.len())
            .field("url", &self.store.source.as_ref().map(Source::url))
            .finish_non_exhaustive()
    }
}
