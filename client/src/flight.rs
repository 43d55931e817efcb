//! [`Flight`]: a cached value with single-flight refreshes, shared by the token sources.
//!
//! Readers take the cached value when it is usable, without waiting. Otherwise they queue on
//! one gate; the first refreshes, and every caller that was waiting meanwhile takes the
//! outcome of that refresh (the new value or the same error) instead of starting another.
//! The refresh runs as a task of its own that holds the gate, so a caller that gives up
//! (a timeout drops its future) neither loses a rotated refresh token's successor nor lets
//! a second refresh start while the first is still at Cognito.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{SourceError, SourceErrorKind};

pub(crate) struct Flight<T> {
    slot: Mutex<Slot<T>>,
    gate: Arc<tokio::sync::Mutex<()>>,
}

struct Slot<T> {
    value: Option<T>,
    /// Completed refreshes (or replacements), so a waiter can tell one happened meanwhile.
    attempts: u64,
    last_error: Option<SourceError>,
}

impl<T: Clone + Send + 'static> Flight<T> {
    pub(crate) fn new(value: Option<T>) -> Self {
        Self {
            slot: Mutex::new(Slot {
                value,
                attempts: 0,
                last_error: None,
            }),
            gate: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached value, usable or not.
    pub(crate) fn current(&self) -> Option<T> {
        self.slot().value.clone()
    }

    /// Replaces the value by `replace(current)` under the gate, as a refresh would.
    pub(crate) async fn replace<Fut>(&self, replace: impl FnOnce() -> Fut) -> Result<T, SourceError>
    where
        Fut: Future<Output = Result<T, SourceError>>,
    {
        let _gate = self.gate.lock().await;
        let result = replace().await;
        self.record(&result);
        result
    }

    /// Forgets the value under the gate (callers waiting meanwhile learn that a sign-in is
    /// needed), then runs `f` with what was held.
    pub(crate) async fn clear<Fut>(
        &self,
        f: impl FnOnce(Option<T>) -> Fut,
    ) -> Result<(), SourceError>
    where
        Fut: Future<Output = Result<(), SourceError>>,
    {
        let _gate = self.gate.lock().await;
        let held = {
            let mut slot = self.slot();
            slot.attempts += 1;
            slot.last_error = Some(SourceError::new(SourceErrorKind::SignInRequired));
            slot.value.take()
        };
        f(held).await
    }

    fn record(&self, result: &Result<T, SourceError>) {
        let mut slot = self.slot();
        slot.attempts += 1;
        match result {
            Ok(value) => {
                slot.value = Some(value.clone());
                slot.last_error = None;
            }
            Err(error) => slot.last_error = Some(error.clone()),
        }
    }

    /// The cached value if `usable`, else the outcome of one refresh shared with every caller
    /// waiting for it. `refresh` gets the cached value (usable or not) and runs on a task of
    /// its own.
    pub(crate) async fn get<R, Fut>(
        self: &Arc<Self>,
        usable: impl Fn(&T) -> bool,
        refresh: R,
    ) -> Result<T, SourceError>
    where
        R: FnOnce(Option<T>) -> Fut,
        Fut: Future<Output = Result<T, SourceError>> + Send + 'static,
    {
        let seen = {
            let slot = self.slot();
            if let Some(value) = slot.value.as_ref().filter(|v| usable(v)) {
                return Ok(value.clone());
            }
            slot.attempts
        };
        let gate = Arc::clone(&self.gate).lock_owned().await;
        let current = {
            let slot = self.slot();
            if slot.attempts != seen {
                // A refresh finished while we waited: its outcome is ours.
                return match (&slot.last_error, &slot.value) {
                    (Some(error), _) => Err(error.clone()),
                    (None, Some(value)) => Ok(value.clone()),
                    (None, None) => Err(SourceError::new(SourceErrorKind::SignInRequired)),
                };
            }
            if let Some(value) = slot.value.as_ref().filter(|v| usable(v)) {
                return Ok(value.clone());
            }
            slot.value.clone()
        };
        let refresh = refresh(current);
        let this = Arc::clone(self);
        let task = tokio::spawn(async move {
            let result = refresh.await;
            this.record(&result);
            drop(gate);
            result
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down.
            Err(_) => Err(SourceError::new(SourceErrorKind::Unavailable)),
        }
    }
}
