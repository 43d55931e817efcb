//! [`MemoryStore`]: a bounded, TTL-aware, per-key atomic store in this process (moka).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

use super::window::Window;
use super::{check_limits, SessionEntry, SessionStore, SessionVerdict, StoreFuture, WindowLimits};

/// Session windows in this process's memory.
///
/// Bounded: at most `max_sessions` entries (least recently used go first). Each session is a slot
/// behind its own short lock, taken without an `await`, so concurrent requests of one session are
/// applied one after another, while a request reads the cache without writing to it. Nothing
/// survives a restart and nothing is shared between servers: use Redis or PostgreSQL for that.
#[derive(Clone)]
pub struct MemoryStore {
    /// ahash rather than SipHash: session keys come from verified claims only.
    cache: Cache<String, Arc<Slot>, ahash::RandomState>,
}

/// One session: its window, and the TTL of its last write for the cache's own eviction.
struct Slot {
    window: Mutex<Window>,
    ttl_secs: AtomicI64,
}

impl Slot {
    fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs.load(Ordering::Relaxed).max(1) as u64)
    }
}

/// Evicts a session its TTL after it was last used; its logical expiry (`expires_at`, against
/// the verifier's clock) is decided by the window itself.
struct SlotExpiry;

impl Expiry<String, Arc<Slot>> for SlotExpiry {
    fn expire_after_create(&self, _: &String, slot: &Arc<Slot>, _: Instant) -> Option<Duration> {
        Some(slot.ttl())
    }

    fn expire_after_read(
        &self,
        _: &String,
        slot: &Arc<Slot>,
        _: Instant,
        _: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        Some(slot.ttl())
    }
}

impl MemoryStore {
    /// A store holding at most `max_sessions` sessions.
    pub fn new(max_sessions: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(max_sessions)
                .expire_after(SlotExpiry)
                .build_with_hasher(ahash::RandomState::new()),
        }
    }

    /// How many sessions are held (after pending maintenance runs).
    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `f` on the session's window under its lock; a new session starts empty. `moka`
    /// creates a missing slot once even when several requests race for it.
    fn apply<T>(&self, key: &str, limits: WindowLimits, f: impl FnOnce(&mut Window) -> T) -> T {
        let slot = self.cache.get_with_by_ref(key, || {
            Arc::new(Slot {
                window: Mutex::new(Window::EMPTY),
                ttl_secs: AtomicI64::new(limits.ttl_secs),
            })
        });
        let result = {
            let mut window = slot.window.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut window)
        };
        slot.ttl_secs.store(limits.ttl_secs, Ordering::Relaxed);
        result
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
            self.apply(key, limits, |window| {
                let (verdict, next) = window.advance(iat, now, limits);
                if let Some(next) = next {
                    *window = next;
                }
                verdict
            })
        });
        Box::pin(std::future::ready(result))
    }

    fn revoke<'a>(&'a self, key: &'a str, now: i64, limits: WindowLimits) -> StoreFuture<'a, ()> {
        let result = check_limits(limits).map(|()| {
            self.apply(key, limits, |window| *window = window.revoke(now, limits));
        });
        Box::pin(std::future::ready(result))
    }

    /// Always answers: the store is in this process.
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn entry<'a>(&'a self, key: &'a str, now: i64) -> StoreFuture<'a, Option<SessionEntry>> {
        let entry = self.cache.get(key).and_then(|slot| {
            let window = *slot.window.lock().unwrap_or_else(PoisonError::into_inner);
            window.to_entry(now)
        });
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
