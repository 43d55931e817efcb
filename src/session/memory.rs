//! [`MemoryStore`]: a bounded, TTL-aware, per-key atomic store in this process (moka).

use std::time::{Duration, Instant};

use moka::ops::compute::Op;
use moka::sync::Cache;
use moka::Expiry;

use super::window::Window;
use super::{check_limits, SessionEntry, SessionStore, SessionVerdict, StoreFuture, WindowLimits};

/// Session windows in this process's memory.
///
/// Bounded: at most `max_sessions` entries (least recently used go first). Each check is one
/// atomic per-key compute, so concurrent requests of one session are applied one after another.
/// Nothing survives a restart and nothing is shared between servers: use Redis or PostgreSQL for
/// that.
#[derive(Clone)]
pub struct MemoryStore {
    cache: Cache<String, Window>,
}

/// Evicts an entry when its logical expiry passes (measured from the write).
struct WindowExpiry;

impl Expiry<String, Window> for WindowExpiry {
    fn expire_after_create(&self, _: &String, w: &Window, _: Instant) -> Option<Duration> {
        Some(w.ttl_hint())
    }
    fn expire_after_update(
        &self,
        _: &String,
        w: &Window,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(w.ttl_hint())
    }
}

impl MemoryStore {
    /// A store holding at most `max_sessions` sessions.
    pub fn new(max_sessions: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(max_sessions)
                .expire_after(WindowExpiry)
                .build(),
        }
    }

    /// How many sessions are held (approximate until pending maintenance runs).
    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn apply(&self, key: &str, f: impl FnOnce(Window) -> Option<Window>) {
        self.cache.entry_by_ref(key).and_compute_with(|current| {
            let window = current.map_or(Window::EMPTY, |e| e.into_value());
            match f(window) {
                Some(next) => Op::Put(next),
                None => Op::Nop,
            }
        });
    }
}

impl SessionStore for MemoryStore {
    fn check_and_advance<'a>(
        &'a self,
        key: &'a str,
        iat: i64,
        now: i64,
        limits: WindowLimits,
    ) -> StoreFuture<'a, SessionVerdict> {
        let result = check_limits(limits).map(|()| {
            let mut verdict = SessionVerdict::Accepted;
            self.apply(key, |window| {
                let (v, next) = window.advance(iat, now, limits);
                verdict = v;
                next
            });
            verdict
        });
        Box::pin(std::future::ready(result))
    }

    fn revoke<'a>(&'a self, key: &'a str, now: i64, limits: WindowLimits) -> StoreFuture<'a, ()> {
        let result = check_limits(limits).map(|()| {
            self.apply(key, |window| Some(window.revoke(now, limits)));
        });
        Box::pin(std::future::ready(result))
    }

    fn entry<'a>(&'a self, key: &'a str, now: i64) -> StoreFuture<'a, Option<SessionEntry>> {
        let entry = self.cache.get(key).and_then(|w| w.to_entry(now));
        Box::pin(std::future::ready(Ok(entry)))
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("sessions", &self.cache.entry_count())
            .finish()
    }
}
