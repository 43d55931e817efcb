//! An in-memory JWKS endpoint for the key cache's unit tests: the test says what the next fetch
//! gets (a document, an HTTP status, nothing at all), how long it takes, or that it never ends,
//! and counts the fetches. No socket, so tokio's paused clock can drive the cooldown and the max
//! age (`#[tokio::test(start_paused = true)]` and `tokio::time::advance`).
//!
//! A verifier picks one up by its URL ([`MemoryJwks::url`], under the reserved `.invalid`
//! domain, so it could never be fetched for real): `CognitoConfig::jwks_url(memory.url())`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use super::fetch::FetchError;
use super::keyset::KeySet;

/// What a fetch gets.
#[derive(Clone)]
enum Answer {
    /// HTTP 200 with this body, parsed as the HTTP fetcher parses one.
    Document(Vec<u8>),
    /// Another HTTP status.
    Status(u16),
    /// No answer: the endpoint is down.
    Unreachable,
}

struct State {
    answer: Answer,
    delay: Duration,
    /// Fetches from now on never end.
    hanging: bool,
}

/// A scripted JWKS endpoint. Starts serving an empty key set.
pub(crate) struct MemoryJwks {
    url: String,
    state: Mutex<State>,
    /// Fetches started.
    fetches: AtomicUsize,
    /// Fetches answered (also those answered with an error).
    answered: AtomicUsize,
}

/// The endpoints alive, by URL: how [`Source::new`](super::source::Source::new) finds one.
static REGISTRY: Mutex<Vec<Weak<MemoryJwks>>> = Mutex::new(Vec::new());

impl MemoryJwks {
    pub(crate) fn new() -> Arc<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let jwks = Arc::new(Self {
            url: format!("https://jwks-{n}.memory.invalid/.well-known/jwks.json"),
            state: Mutex::new(State {
                answer: Answer::Document(br#"{"keys":[]}"#.to_vec()),
                delay: Duration::ZERO,
                hanging: false,
            }),
            fetches: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
        });
        let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        registry.retain(|weak| weak.strong_count() > 0);
        registry.push(Arc::downgrade(&jwks));
        jwks
    }

    /// The endpoint registered under `url`, if one is alive.
    pub(super) fn registered(url: &str) -> Option<Arc<Self>> {
        REGISTRY
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .find(|jwks| jwks.url == url)
    }

    /// The URL to configure as the JWKS URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    fn set(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Serves these JWKs as `{"keys": [..]}`.
    pub(crate) fn serve_jwks(&self, keys: &[serde_json::Value]) {
        self.serve_body(serde_json::json!({ "keys": keys }).to_string());
    }

    /// Serves `body` verbatim (HTML, truncated JSON, ...) with HTTP 200.
    pub(crate) fn serve_body(&self, body: impl Into<Vec<u8>>) {
        let body = body.into();
        self.set(|s| s.answer = Answer::Document(body));
    }

    /// Answers with this HTTP status.
    pub(crate) fn fail_with_status(&self, status: u16) {
        self.set(|s| s.answer = Answer::Status(status));
    }

    /// Answers nothing, at once: the endpoint is down.
    pub(crate) fn go_down(&self) {
        self.set(|s| s.answer = Answer::Unreachable);
    }

    /// Every fetch takes this long (on tokio's clock) before it is answered.
    pub(crate) fn set_delay(&self, delay: Duration) {
        self.set(|s| s.delay = delay);
    }

    /// Fetches started from now on never end.
    pub(crate) fn hang(&self) {
        self.set(|s| s.hanging = true);
    }

    /// Fetches started so far, answered or not.
    pub(crate) fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Lets the other tasks of this (current-thread) runtime run, without moving the clock,
    /// until `n` fetches have been answered and their outcome stored by the cache; fails the
    /// test if that never happens.
    pub(crate) async fn settled(&self, n: usize) {
        for _ in 0..10_000 {
            if self.answered.load(Ordering::SeqCst) >= n {
                // The cache stores an answer in the poll that receives it: one more turn and
                // that task has ended its poll.
                tokio::task::yield_now().await;
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!(
            "{} of {n} fetches answered: the others never ended",
            self.answered.load(Ordering::SeqCst)
        );
    }

    pub(super) async fn fetch(&self) -> Result<KeySet, FetchError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let (answer, delay, hanging) = {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            (state.answer.clone(), state.delay, state.hanging)
        };
        if hanging {
            std::future::pending::<()>().await;
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.answered.fetch_add(1, Ordering::SeqCst);
        match answer {
            Answer::Document(body) => KeySet::parse(&body).map_err(FetchError::Keys),
            Answer::Status(status) => Err(FetchError::Status(status)),
            Answer::Unreachable => Err(FetchError::Unreachable),
        }
    }
}
