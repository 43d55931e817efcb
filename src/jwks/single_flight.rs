//! One JWKS fetch at a time: concurrent misses join the fetch in flight, and after any fetch,
//! successful or not, no new one starts for the cooldown.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt, Shared};
use tokio::time::Instant;

/// A fetch that every request needing it awaits together.
pub(super) type FetchInFlight = Shared<BoxFuture<'static, ()>>;

/// The fetch in flight, if any, and when the last one ended.
pub(super) struct SingleFlight {
    cooldown: Duration,
    state: Mutex<FetchState>,
}

#[derive(Default)]
struct FetchState {
    in_flight: Option<FetchInFlight>,
    last_attempt: Option<Instant>,
}

impl SingleFlight {
    pub(super) fn new(cooldown: Duration) -> Self {
        Self {
            cooldown,
            state: Mutex::new(FetchState::default()),
        }
    }

    /// Joins the fetch in flight, or starts the one `fetch` makes unless the cooldown since the
    /// last one runs. The fetch must call [`finished`](Self::finished) when it ends.
    ///
    /// The lock is held only to read and set the state, never across an `await`.
    pub(super) fn join_or_start<F, Fut>(&self, fetch: F) -> Option<FetchInFlight>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(fetch) = &state.in_flight {
            return Some(fetch.clone());
        }
        if state
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.cooldown)
        {
            return None;
        }
        // Spawned, so a fetch goes on even when the request that started it is dropped.
        let task = tokio::spawn(fetch());
        let in_flight = async move {
            let _ = task.await;
        }
        .boxed()
        .shared();
        state.in_flight = Some(in_flight.clone());
        state.last_attempt = Some(Instant::now());
        Some(in_flight)
    }

    /// The fetch in flight has ended: the next one may start after the cooldown.
    pub(super) fn finished(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.in_flight = None;
        // The cooldown counts from the end of the fetch, so a slow endpoint is not asked again
        // the moment it answers.
        state.last_attempt = Some(Instant::now());
    }
}
