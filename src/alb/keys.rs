//! ALB signing keys, one URL per `kid`: fetched with one HTTP client (built as the main
//! verifier's: timeouts, no redirects, the proxy rule, extra roots) and a body cap, parsed from
//! PEM `SubjectPublicKeyInfo` as P-256 keys, cached per kid, one fetch per kid at a time, and a
//! cooldown for kids that failed plus a budget of fetches per cooldown so that a flood of
//! random kids cannot make the verifier hammer the key endpoint.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_FIXED};
use futures_util::future::{BoxFuture, FutureExt, Shared};
use moka::sync::Cache;

use super::AlbError;
use crate::config::{key_fetch_client, ConfigError, JwksProxy};
use crate::error::InvalidToken;

/// The key endpoint and kid of one key.
type KeyId = (usize, Arc<str>);

/// Why a kid has no key. `Unknown` is the token's fault (401), `Unavailable` ours (503).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Miss {
    Unknown,
    Unavailable,
}

impl From<Miss> for AlbError {
    fn from(miss: Miss) -> Self {
        match miss {
            Miss::Unknown => AlbError::InvalidToken(InvalidToken::UnknownKey),
            Miss::Unavailable => AlbError::KeysUnavailable,
        }
    }
}

type KeyFetch = Shared<BoxFuture<'static, Result<Arc<ParsedPublicKey>, Miss>>>;

/// The settings of the key store, from [`AlbConfig`](super::AlbConfig).
pub(super) struct KeyOptions {
    pub(super) endpoints: Vec<reqwest::Url>,
    pub(super) cooldown: Duration,
    pub(super) fetches_per_cooldown: u32,
    pub(super) max_cached_keys: u64,
    pub(super) max_key_bytes: usize,
    pub(super) connect_timeout: Duration,
    pub(super) request_timeout: Duration,
    pub(super) proxy: JwksProxy,
    /// Extra trusted roots, PEM bundles.
    pub(super) extra_roots: Vec<Vec<u8>>,
}

pub(super) struct KeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    endpoints: Vec<reqwest::Url>,
    max_key_bytes: usize,
    cooldown: Duration,
    fetches_per_cooldown: u32,
    keys: Cache<KeyId, Arc<ParsedPublicKey>>,
    /// Kids whose fetch failed, with when it ended and why: not asked again for the cooldown.
    failed: Cache<KeyId, (Instant, Miss)>,
    state: Mutex<FetchState>,
}

struct FetchState {
    in_flight: HashMap<KeyId, KeyFetch>,
    /// The start of the current budget window and the fetches started in it.
    window: Option<(Instant, u32)>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field(
                "endpoints",
                &self
                    .inner
                    .endpoints
                    .iter()
                    .map(reqwest::Url::as_str)
                    .collect::<Vec<_>>(),
            )
            .field("cached_keys", &self.inner.keys.entry_count())
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    pub(super) fn new(options: KeyOptions) -> Result<Self, ConfigError> {
        // The main verifier's client, with its proxy rule and extra roots.
        let client = key_fetch_client(
            "ALB key endpoint",
            options.connect_timeout,
            options.request_timeout,
            &options.proxy,
            &options.extra_roots,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                endpoints: options.endpoints,
                max_key_bytes: options.max_key_bytes,
                cooldown: options.cooldown,
                fetches_per_cooldown: options.fetches_per_cooldown,
                keys: Cache::new(options.max_cached_keys),
                failed: Cache::new(options.max_cached_keys.saturating_mul(16).max(1024)),
                state: Mutex::new(FetchState {
                    in_flight: HashMap::new(),
                    window: None,
                }),
            }),
        })
    }

    /// The key of `kid` at endpoint `endpoint`. `kid` must have passed
    /// [`valid_kid`](super::token::valid_kid).
    pub(super) async fn key(
        &self,
        endpoint: usize,
        kid: &str,
    ) -> Result<Arc<ParsedPublicKey>, Miss> {
        let id: KeyId = (endpoint, Arc::from(kid));
        if let Some(key) = self.inner.keys.get(&id) {
            return Ok(key);
        }
        let fetch = {
            let mut state = self
                .inner
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(fetch) = state.in_flight.get(&id) {
                fetch.clone()
            } else {
                // Checked under the lock, so a fetch that ends now cannot slip between.
                if let Some(key) = self.inner.keys.get(&id) {
                    return Ok(key);
                }
                if let Some((at, miss)) = self.inner.failed.get(&id) {
                    if at.elapsed() < self.inner.cooldown {
                        return Err(miss);
                    }
                }
                let now = Instant::now();
                let count = match state.window {
                    Some((start, count)) if now.duration_since(start) < self.inner.cooldown => {
                        count
                    }
                    _ => 0,
                };
                if count >= self.inner.fetches_per_cooldown {
                    tracing::debug!(
                        fetches = count,
                        "ALB key fetch budget spent for this cooldown; kid refused unfetched"
                    );
                    return Err(Miss::Unknown);
                }
                let start = match state.window {
                    Some((start, _)) if count > 0 => start,
                    _ => now,
                };
                state.window = Some((start, count + 1));
                let fetch = self.start(id.clone());
                state.in_flight.insert(id, fetch.clone());
                fetch
            }
        };
        fetch.await
    }

    /// Spawns the fetch of `id`, so it goes on even when the request that started it is
    /// dropped. Called with the state lock held; the task takes it only after its first await.
    fn start(&self, id: KeyId) -> KeyFetch {
        let inner = Arc::clone(&self.inner);
        let task = tokio::spawn(async move {
            // Leaves the in-flight map however the task ends (even by a panic or an abort), and
            // after the caches are written, so no request starts a second fetch in between.
            let _done = Done {
                inner: Arc::clone(&inner),
                id: id.clone(),
            };
            let result = inner.fetch(&id).await;
            match &result {
                Ok(key) => inner.keys.insert(id.clone(), Arc::clone(key)),
                Err(miss) => inner.failed.insert(id.clone(), (Instant::now(), *miss)),
            }
            result
        });
        async move { task.await.unwrap_or(Err(Miss::Unavailable)) }
            .boxed()
            .shared()
    }
}

/// Removes a fetch from the in-flight map when its task ends.
struct Done {
    inner: Arc<Inner>,
    id: KeyId,
}

impl Drop for Done {
    fn drop(&mut self) {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .in_flight
            .remove(&self.id);
    }
}

impl Inner {
    async fn fetch(&self, (endpoint, kid): &KeyId) -> Result<Arc<ParsedPublicKey>, Miss> {
        let mut url = self.endpoints[*endpoint].clone();
        // One path segment, escaped by `url`; the kid was checked to be hex digits and `-`.
        url.path_segments_mut()
            .map_err(|()| Miss::Unavailable)?
            .pop_if_empty()
            .push(kid);
        let body = self.get(url).await?;
        parse_pem_p256(&body).map(Arc::new).ok_or_else(|| {
            tracing::warn!(kid = %kid, "the ALB key endpoint answered something that is not a P-256 public key");
            Miss::Unavailable
        })
    }

    async fn get(&self, url: reqwest::Url) -> Result<Vec<u8>, Miss> {
        let mut response = match self.client.get(url.clone()).send().await {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(url = %url, error = %e, "ALB key fetch failed");
                return Err(Miss::Unavailable);
            }
        };
        let status = response.status();
        if status == http::StatusCode::NOT_FOUND || status == http::StatusCode::FORBIDDEN {
            // S3 (the GovCloud endpoint) answers 403 for a key it does not hold.
            tracing::info!(url = %url, status = status.as_u16(), "no ALB key with this kid");
            return Err(Miss::Unknown);
        }
        if status != http::StatusCode::OK {
            tracing::warn!(url = %url, status = status.as_u16(), "ALB key endpoint refused");
            return Err(Miss::Unavailable);
        }
        if response
            .content_length()
            .is_some_and(|len| len > self.max_key_bytes as u64)
        {
            tracing::warn!(url = %url, "ALB key larger than the cap");
            return Err(Miss::Unavailable);
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.max_key_bytes {
                        tracing::warn!(url = %url, "ALB key larger than the cap");
                        return Err(Miss::Unavailable);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) => {
                    tracing::warn!(url = %url, error = %e, "ALB key fetch failed");
                    return Err(Miss::Unavailable);
                }
            }
        }
    }
}

/// One PEM `PUBLIC KEY` block holding an EC P-256 `SubjectPublicKeyInfo`.
fn parse_pem_p256(body: &[u8]) -> Option<ParsedPublicKey> {
    let text = std::str::from_utf8(body).ok()?;
    let block = pem::parse(text.trim()).ok()?;
    if block.tag() != "PUBLIC KEY" {
        return None;
    }
    // An SPKI of P-256 is 91 bytes; a raw point would be accepted by aws-lc-rs too, which a PEM
    // "PUBLIC KEY" never holds.
    if block.contents().first() != Some(&0x30) {
        return None;
    }
    ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, block.contents()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};

    fn pem_of(der: &[u8]) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", der.to_vec()))
    }

    #[test]
    fn pem_p256_parses_and_other_shapes_do_not() {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = pair.public_key().as_der().unwrap();
        assert!(parse_pem_p256(pem_of(der.as_ref()).as_bytes()).is_some());
        // The raw point in a PEM block, a P-384 key, another tag, no PEM at all.
        assert!(parse_pem_p256(pem_of(pair.public_key().as_ref()).as_bytes()).is_none());
        let p384 =
            EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let der384 = p384.public_key().as_der().unwrap();
        assert!(parse_pem_p256(pem_of(der384.as_ref()).as_bytes()).is_none());
        let other = pem::encode(&pem::Pem::new("CERTIFICATE", der.as_ref().to_vec()));
        assert!(parse_pem_p256(other.as_bytes()).is_none());
        assert!(parse_pem_p256(b"not a key").is_none());
    }
}
