//! [`MemoryRefreshStore`]: server-held sessions in this process.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::store::{LockOutcome, RefreshStore, SaveOutcome, SessionRecord};
use crate::session::{StoreError, StoreErrorKind, StoreFuture};

/// Server-held sessions in this process's memory, for one server (or tests).
///
/// Bounded: at most `max_sessions` sessions; creating one more first drops the expired ones and
/// then, if still full, fails with [`StoreErrorKind::Unavailable`] rather than signing someone
/// else out. Every operation is one short critical section without an `await`, so the lock and
/// the fence behave exactly as in the shared backends. Nothing survives a restart.
#[derive(Debug)]
pub struct MemoryRefreshStore {
    max_sessions: usize,
    sessions: Mutex<HashMap<String, Slot>>,
}

#[derive(Debug)]
struct Slot {
    record: SessionRecord,
    /// The newest fence issued.
    fence: u64,
    /// The holder's fence and the end of its lease.
    lock: Option<(u64, Instant)>,
}

impl MemoryRefreshStore {
    /// A store holding at most `max_sessions` sessions.
    pub fn new(max_sessions: usize) -> Self {
        Self {
            max_sessions,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// How many sessions are held, expired ones included until they are dropped.
    pub fn len(&self) -> usize {
        self.slots().len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        // No code path panics while holding the lock; a poisoned map is still consistent.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn ready<'a, T: Send + 'a>(value: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl RefreshStore for MemoryRefreshStore {
    fn load<'a>(&'a self, id: &'a str, now: i64) -> StoreFuture<'a, Option<SessionRecord>> {
        let slots = self.slots();
        let record = slots
            .get(id)
            .filter(|slot| slot.record.expires_at > now)
            .map(|slot| slot.record.clone());
        ready(Ok(record))
    }

    fn create<'a>(
        &'a self,
        id: &'a str,
        record: &'a SessionRecord,
        now: i64,
    ) -> StoreFuture<'a, ()> {
        let mut slots = self.slots();
        if slots.len() >= self.max_sessions && !slots.contains_key(id) {
            slots.retain(|_, slot| slot.record.expires_at > now);
            if slots.len() >= self.max_sessions {
                return ready(Err(StoreError::from_kind(StoreErrorKind::Unavailable)));
            }
        }
        slots.insert(
            id.to_owned(),
            Slot {
                record: record.clone(),
                fence: record.version,
                lock: None,
            },
        );
        ready(Ok(()))
    }

    fn lock<'a>(&'a self, id: &'a str, lease: Duration, now: i64) -> StoreFuture<'a, LockOutcome> {
        let mut slots = self.slots();
        let Some(slot) = slots.get_mut(id).filter(|s| s.record.expires_at > now) else {
            return ready(Ok(LockOutcome::Missing));
        };
        let at = Instant::now();
        if matches!(slot.lock, Some((_, until)) if until > at) {
            return ready(Ok(LockOutcome::Busy));
        }
        let Some(fence) = slot.fence.checked_add(1) else {
            return ready(Err(StoreError::from_kind(StoreErrorKind::Corrupt)));
        };
        let took_over = slot.lock.is_some();
        slot.fence = fence;
        slot.lock = Some((fence, at + lease));
        ready(Ok(LockOutcome::Acquired {
            fence,
            record: slot.record.clone(),
            took_over,
        }))
    }

    fn save<'a>(
        &'a self,
        id: &'a str,
        record: &'a SessionRecord,
        fence: u64,
        now: i64,
    ) -> StoreFuture<'a, SaveOutcome> {
        let mut slots = self.slots();
        let Some(slot) = slots.get_mut(id).filter(|s| s.record.expires_at > now) else {
            return ready(Ok(SaveOutcome::Missing));
        };
        if slot.record.version >= fence {
            return ready(Ok(SaveOutcome::Fenced));
        }
        slot.record = record.clone();
        if matches!(slot.lock, Some((held, _)) if held == fence) {
            slot.lock = None;
        }
        ready(Ok(SaveOutcome::Saved))
    }

    fn unlock<'a>(&'a self, id: &'a str, fence: u64) -> StoreFuture<'a, ()> {
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(id) {
            if matches!(slot.lock, Some((held, _)) if held == fence) {
                slot.lock = None;
            }
        }
        ready(Ok(()))
    }

    fn delete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        self.slots().remove(id);
        ready(Ok(()))
    }
}
