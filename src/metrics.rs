//! Metrics (feature `metrics`), through the [`metrics`](https://docs.rs/metrics) facade: install
//! any recorder (`metrics-exporter-prometheus` for a `/metrics` endpoint, for example) **before
//! building the [`Verifier`](crate::Verifier)**, which takes the handles of its hot-path counters
//! when it is built. Without the feature, nothing is recorded and nothing is paid.
//!
//! Names and labels follow the Prometheus conventions (`_total` counters, `_seconds`
//! histograms, base units). No label carries anything of a token or a user: every label value
//! comes from a fixed set or from the configuration (the pool id), so cardinality stays
//! bounded.
//!
//! | name | type | labels | what |
//! | --- | --- | --- | --- |
//! | `tower_cognito_requests_total` | counter | `outcome`: `accepted`, `anonymous`, `refused`, `unavailable` | requests through the layer: let through with a verified token, let through without a token (optional layer), refused with 400/401/403, refused with 503 |
//! | `tower_cognito_refusals_total` | counter | `reason`: [`AuthError::reason`](crate::AuthError::reason) (`missing_token`, `expired`, `bad_signature`, `superseded`, `missing_scope`, `keys_unavailable`, `store_unavailable`, ...) | the layer's refusals, by reason |
//! | `tower_cognito_token_cache_lookups_total` | counter | `result`: `hit`, `miss` | lookups in the verified-token cache (a hit skips decoding and the signature) |
//! | `tower_cognito_jwks_fetches_total` | counter | `pool`, `result`: `ok`, `error` | JWKS fetches |
//! | `tower_cognito_jwks_fetch_duration_seconds` | histogram | `pool`, `result` | how long each JWKS fetch took |
//! | `tower_cognito_session_store_duration_seconds` | histogram | `operation`: `check`, `revoke`; `result`: `accepted`, `superseded`, `revoked`, `ok`, `error`, `timeout`, `circuit_open` | each session-window store call, timeout included; `circuit_open`: answered without the store while the circuit breaker is open |
//!
//! A request refused before the layer could read a token (two `Authorization` headers, say)
//! counts as `refused` with its reason like any other. With fail-open, a store failure is
//! `result="error"` in the store histogram while the request counts as `accepted`.
//!
//! Cost, measured by `cargo bench --bench verify --features metrics` (`metrics` group): a cache
//! hit through the layer with a Prometheus recorder installed pays two counter increments.

use std::time::Duration;

#[cfg(feature = "metrics")]
use ::metrics::{counter, histogram, Counter};

use crate::error::AuthError;

/// `tower_cognito_requests_total`.
pub const REQUESTS: &str = "tower_cognito_requests_total";
/// `tower_cognito_refusals_total`.
pub const REFUSALS: &str = "tower_cognito_refusals_total";
/// `tower_cognito_token_cache_lookups_total`.
pub const TOKEN_CACHE_LOOKUPS: &str = "tower_cognito_token_cache_lookups_total";
/// `tower_cognito_jwks_fetches_total`.
pub const JWKS_FETCHES: &str = "tower_cognito_jwks_fetches_total";
/// `tower_cognito_jwks_fetch_duration_seconds`.
pub const JWKS_FETCH_DURATION: &str = "tower_cognito_jwks_fetch_duration_seconds";
/// `tower_cognito_session_store_duration_seconds`.
pub const SESSION_STORE_DURATION: &str = "tower_cognito_session_store_duration_seconds";

/// The hot-path counters of one verifier, registered when it is built; empty without the
/// feature.
pub(crate) struct Hot {
    #[cfg(feature = "metrics")]
    accepted: Counter,
    #[cfg(feature = "metrics")]
    hits: Counter,
    #[cfg(feature = "metrics")]
    misses: Counter,
}

impl Hot {
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            accepted: counter!(REQUESTS, "outcome" => "accepted"),
            #[cfg(feature = "metrics")]
            hits: counter!(TOKEN_CACHE_LOOKUPS, "result" => "hit"),
            #[cfg(feature = "metrics")]
            misses: counter!(TOKEN_CACHE_LOOKUPS, "result" => "miss"),
        }
    }

    /// A request let through with a verified token.
    #[inline]
    pub(crate) fn accepted(&self) {
        #[cfg(feature = "metrics")]
        self.accepted.increment(1);
    }

    /// A lookup in the verified-token cache.
    #[inline]
    pub(crate) fn cache_lookup(&self, hit: bool) {
        #[cfg(feature = "metrics")]
        if hit {
            self.hits.increment(1);
        } else {
            self.misses.increment(1);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = hit;
    }
}

/// A request let through without a token, by an optional layer.
#[inline]
pub(crate) fn anonymous() {
    #[cfg(feature = "metrics")]
    counter!(REQUESTS, "outcome" => "anonymous").increment(1);
}

/// A request refused with `error`.
#[inline]
pub(crate) fn refused(error: &AuthError) {
    #[cfg(feature = "metrics")]
    {
        let outcome = if error.status().as_u16() == 503 {
            "unavailable"
        } else {
            "refused"
        };
        counter!(REQUESTS, "outcome" => outcome).increment(1);
        counter!(REFUSALS, "reason" => error.reason()).increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = error;
}

/// A clock for a duration histogram: reads the time only with the feature. The std clock, not
/// tokio's: half the cost, and a paused test clock has nothing to say about store latency.
pub(crate) struct Timer {
    #[cfg(feature = "metrics")]
    started: std::time::Instant,
}

impl Timer {
    #[inline]
    pub(crate) fn start() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            started: std::time::Instant::now(),
        }
    }

    #[cfg(feature = "metrics")]
    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// A JWKS fetch of `pool`'s keys that took `elapsed` (the key cache times its fetches for its
/// logs already).
#[inline]
pub(crate) fn jwks_fetch(pool: &str, ok: bool, elapsed: Duration) {
    #[cfg(feature = "metrics")]
    {
        let result = if ok { "ok" } else { "error" };
        let pool = pool.to_owned();
        counter!(JWKS_FETCHES, "pool" => pool.clone(), "result" => result).increment(1);
        histogram!(JWKS_FETCH_DURATION, "pool" => pool, "result" => result).record(elapsed);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (pool, ok, elapsed);
}

/// A session store call (`check` or `revoke`) that ended with `result`, started at `timer`.
#[inline]
pub(crate) fn store_call(operation: &'static str, result: &'static str, timer: &Timer) {
    #[cfg(feature = "metrics")]
    histogram!(SESSION_STORE_DURATION, "operation" => operation, "result" => result)
        .record(timer.elapsed());
    #[cfg(not(feature = "metrics"))]
    let _ = (operation, result, timer);
}
