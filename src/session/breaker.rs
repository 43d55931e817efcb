//! The circuit breaker in front of a session store: after a few failures in a row, requests stop
//! waiting for a store that is down, and a background probe finds out when it is back.
//!
//! - Closed (normal): every check goes to the store. A success resets the count of failures in
//!   a row; a failure or a timeout adds one.
//! - Open: after [`BreakerSettings::failures`] in a row, checks do not touch the store: they are
//!   answered at once as a store failure (503, or accepted on the signature with fail-open). One
//!   probe task pings the store ([`SessionStore::ping`]) every
//!   [`BreakerSettings::probe_every`], under the store timeout, and closes the breaker at the
//!   first answer.
//! - A store without a ping (the default `Unsupported`), or no Tokio runtime to run the probe
//!   on: after one probe interval the breaker half-opens instead: checks go to the store again,
//!   and the first failure opens it again.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{SessionStore, StoreErrorKind};

/// When the breaker opens and how often its probe asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BreakerSettings {
    /// Failures (errors or timeouts) in a row that open the breaker.
    pub(crate) failures: u32,
    /// How often the probe pings the store while the breaker is open.
    pub(crate) probe_every: Duration,
}

/// The default: open after 3 failures in a row, probe every 200 ms.
pub(crate) const DEFAULT_BREAKER: BreakerSettings = BreakerSettings {
    failures: 3,
    probe_every: Duration::from_millis(200),
};

/// The breaker's state, shared by the gate and its probe.
#[derive(Debug)]
pub(crate) struct Breaker {
    settings: BreakerSettings,
    /// Failures in a row; reset by a success.
    failures: AtomicU32,
    open: AtomicBool,
}

impl Breaker {
    pub(crate) fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            failures: AtomicU32::new(0),
            open: AtomicBool::new(false),
        }
    }

    /// Whether checks must be answered without the store. One relaxed load: the hot path.
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// The store answered.
    #[inline]
    pub(crate) fn success(&self) {
        // A load first: in the common case nothing is written, so no cache line bounces
        // between cores.
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// The store failed or timed out: opens the breaker at the threshold, and starts the probe.
    pub(crate) fn failure(self: &Arc<Self>, store: &Arc<dyn SessionStore>, timeout: Duration) {
        let failures = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if failures < self.settings.failures || self.open.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(
            failures,
            probe_every_ms = self.settings.probe_every.as_millis() as u64,
            "session store failing: circuit open, answering without it until a probe succeeds"
        );
        let breaker = Arc::clone(self);
        let store = Arc::clone(store);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { breaker.probe(store, timeout).await });
            }
            Err(_) => {
                // No runtime to probe on: half-open after one interval, on a thread.
                std::thread::spawn(move || {
                    std::thread::sleep(breaker.settings.probe_every);
                    breaker.half_open();
                });
            }
        }
    }

    /// Pings the store every interval until it answers, then closes the breaker.
    async fn probe(&self, store: Arc<dyn SessionStore>, timeout: Duration) {
        let mut attempts: u32 = 0;
        loop {
            tokio::time::sleep(self.settings.probe_every).await;
            attempts = attempts.saturating_add(1);
            match tokio::time::timeout(timeout, store.ping()).await {
                Ok(Ok(())) => {
                    self.failures.store(0, Ordering::Relaxed);
                    self.open.store(false, Ordering::Release);
                    tracing::info!(attempts, "session store answers again: circuit closed");
                    return;
                }
                Ok(Err(error)) if error.kind() == StoreErrorKind::Unsupported => {
                    self.half_open();
                    return;
                }
                Ok(Err(error)) => {
                    tracing::debug!(attempts, %error, "session store probe failed");
                }
                Err(_) => tracing::debug!(attempts, "session store probe timed out"),
            }
        }
    }

    /// Lets checks reach the store again; the next failure opens the breaker at once.
    fn half_open(&self) {
        self.failures
            .store(self.settings.failures.saturating_sub(1), Ordering::Relaxed);
        self.open.store(false, Ordering::Release);
        tracing::info!("session store: circuit half-open, trying it again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::MemoryStore;

    #[tokio::test]
    async fn opens_at_the_threshold_and_a_success_resets_the_count() {
        let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(10));
        let breaker = Arc::new(Breaker::new(BreakerSettings {
            failures: 3,
            probe_every: Duration::from_secs(3600),
        }));
        let timeout = Duration::from_millis(10);
        breaker.failure(&store, timeout);
        breaker.failure(&store, timeout);
        breaker.success();
        breaker.failure(&store, timeout);
        breaker.failure(&store, timeout);
        assert!(!breaker.is_open(), "two in a row since the success");
        breaker.failure(&store, timeout);
        assert!(breaker.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn the_probe_closes_it_when_the_store_answers() {
        // The memory store's ping always answers.
        let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(10));
        let breaker = Arc::new(Breaker::new(BreakerSettings {
            failures: 1,
            probe_every: Duration::from_millis(200),
        }));
        breaker.failure(&store, Duration::from_millis(50));
        assert!(breaker.is_open());
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(breaker.is_open(), "no probe yet");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!breaker.is_open(), "closed by the first probe");
    }
}
