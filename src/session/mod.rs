//! The session window: tolerate the refresh-rotation race, refuse superseded chains, revoke
//! sessions.
//!
//! # The race
//!
//! With refresh-token rotation, a user with two tabs refreshes twice at once. Cognito honours the
//! old refresh token for a grace period, so both refreshes succeed and the user now holds two
//! valid token chains for one sign-in. A backend that trusts only "the latest" token logs one tab
//! out.
//!
//! # Semantics
//!
//! - **Session key**: the access token's `origin_jti` (constant across the refreshes of one
//!   sign-in); where a token has none, `sub` + client id (+ `device_key` when present). A
//!   user-supplied key function may replace this ([`SessionConfig::key_fn`]).
//! - **Machine-to-machine tokens** (`client_credentials`: no `origin_jti`, `sub` equal to the
//!   client id) have no session unless [`SessionConfig::window_machine_tokens`] says so: each
//!   worker holds tokens of its own, and one shared window would refuse the older ones.
//! - Per session the store keeps the **N newest distinct `iat` values** seen (N = 2 by default:
//!   "current and previous"). A token is accepted when the window holds fewer than N values or
//!   its `iat` is >= the oldest value kept; an accepted `iat` not yet in the window enters it and
//!   the oldest falls out. A token older than every value kept is **superseded**: 401
//!   `invalid_token` with a fixed description telling the client to refresh and retry, distinct
//!   from the expired or bad-signature answers.
//! - **Revocation**: [`SessionStore::revoke`] makes every token of that session fail (401) until
//!   the session's TTL ends, whatever their signature says (for example on sign-out). Cognito's
//!   own RevokeToken cannot do this for a JWT verifier.
//! - Each entry **expires** TTL after its last change (default 30 days, Cognito's default
//!   refresh-token lifetime); an expired entry is as if never seen.
//! - The check runs only after the signature and claims passed, so unauthenticated traffic
//!   never touches the store.
//! - The check is **one atomic check-and-advance** per request, never a read followed by a
//!   write: that two-step is exactly the race this crate exists to remove.
//! - Store unavailable or slower than its timeout: 503 (fail closed). With
//!   [`SessionConfig::fail_open`] the token is accepted on its signature alone and a warning is
//!   logged.
//!
//! # Backends
//!
//! | backend | feature | atomicity | survives restart | shared by servers |
//! | --- | --- | --- | --- | --- |
//! | [`MemoryStore`] | always | per-key compute in moka | no | no |
//! | `RedisStore` | `redis` | one Lua script (EVALSHA) per check, on one server or a Redis Cluster | with Redis persistence | yes |
//! | `PostgresStore` | `postgres` | one statement with a row lock (a refusal writes nothing, then one read says which) | yes | yes |

mod breaker;
mod gate;
mod key;
mod memory;
mod window;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
pub(crate) mod postgres_connection;
#[cfg(feature = "postgres")]
mod postgres_tls;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "redis")]
pub(crate) mod redis_connection;

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use breaker::{BreakerSettings, DEFAULT_BREAKER};
/// The deadpool-postgres this crate uses (and through it, `deadpool_postgres::tokio_postgres`),
/// for [`PostgresStore::from_pool`] and `PostgresRefreshStore::from_pool`: the one place where
/// its types are part of this crate's API (see `from_pool` for why).
#[cfg(feature = "postgres")]
pub use deadpool_postgres;
pub(crate) use gate::SessionGate;
use key::KeyFn;
pub use key::SessionKeyParts;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "postgres")]
pub use postgres_tls::PostgresTls;
#[cfg(feature = "redis")]
pub use redis::RedisStore;
pub use window::{SessionEntry, MAX_WINDOW};

/// The future a [`SessionStore`] returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The default number of `iat` values kept per session: current and previous.
pub const DEFAULT_WINDOW: usize = 2;

/// The default session TTL: 30 days, Cognito's default refresh-token lifetime.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The default time a store may take to answer before the request gets 503: 250 ms.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(250);

/// What the store decided about one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionVerdict {
    /// The token's `iat` is within the window (and now recorded).
    Accepted,
    /// The token's `iat` is older than every value kept: its chain was superseded.
    Superseded,
    /// The session was revoked.
    Revoked,
}

/// The window's shape, passed with every call so that every backend applies the same rules.
///
/// Like every time the store protocol passes (`iat`, `now`, `expires_at`), the TTL is in whole
/// seconds; [`SessionConfig::ttl`] converts the configured `Duration` once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowLimits {
    /// How many distinct `iat` values are kept (1 to [`MAX_WINDOW`]).
    pub size: usize,
    /// How long an entry lives after its last change, in seconds.
    pub ttl_secs: i64,
}

impl WindowLimits {
    /// A window of `size` distinct `iat` values whose entries live `ttl_secs` seconds after
    /// their last change. Not checked here: stores refuse limits out of range
    /// ([`StoreErrorKind::InvalidInput`]), and [`SessionConfig`] is checked when the verifier is
    /// built.
    pub const fn new(size: usize, ttl_secs: i64) -> Self {
        Self { size, ttl_secs }
    }

    /// When an entry changed at `now` expires: `now + ttl_secs`, saturating.
    pub const fn expires_at(&self, now: i64) -> i64 {
        now.saturating_add(self.ttl_secs)
    }
}

impl Default for WindowLimits {
    fn default() -> Self {
        Self {
            size: DEFAULT_WINDOW,
            ttl_secs: DEFAULT_SESSION_TTL.as_secs() as i64,
        }
    }
}

/// A session store: one atomic check-and-advance per request, and revocation.
///
/// Object-safe: the verifier holds an `Arc<dyn SessionStore>`, so the backend can be chosen at
/// run time. Times are seconds since the Unix epoch, passed in by the verifier (from its
/// [`Clock`](crate::Clock)) so that every backend agrees on when an entry has expired; backends
/// may also use their native expiry to reclaim space.
///
/// Methods added in later versions come with default bodies (or in traits of their own, as the
/// refresh lock does), so a store written against this version goes on compiling.
pub trait SessionStore: fmt::Debug + Send + Sync + 'static {
    /// Atomically: if `key` is revoked, [`SessionVerdict::Revoked`]; else if the window holds at
    /// least `limits.size` values and `iat` is older than the `limits.size`-th newest of them
    /// (with an unchanged size: older than every value kept), [`SessionVerdict::Superseded`];
    /// else record `iat` (keeping the `limits.size` newest values), extend the entry's life to
    /// `now + limits.ttl_secs`, and answer [`SessionVerdict::Accepted`]. Refusals change nothing.
    /// An entry whose expiry is `<= now` counts as absent.
    fn check_and_advance<'a>(
        &'a self,
        key: &'a str,
        iat: i64,
        now: i64,
        limits: WindowLimits,
    ) -> StoreFuture<'a, SessionVerdict>;

    /// Revokes the session `key` until `now + limits.ttl_secs`: every token of it is refused.
    fn revoke<'a>(&'a self, key: &'a str, now: i64, limits: WindowLimits) -> StoreFuture<'a, ()>;

    /// Whether the store answers, for readiness checks
    /// ([`Verifier::ready`](crate::Verifier::ready)): one cheap round trip that changes nothing
    /// (Redis `PING`, PostgreSQL `SELECT 1`). The default answers
    /// [`StoreErrorKind::Unsupported`], which readiness takes as "answers": a store that can
    /// fail should implement it.
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Err(StoreError::from_kind(
            StoreErrorKind::Unsupported,
        ))))
    }

    /// **Test hook**, not part of the stable API: the entry of `key` as it is now, or `None` if
    /// absent or expired. For tests and tools; never called on the request path. Stores need
    /// not implement it: the default answers [`StoreErrorKind::Unsupported`].
    #[doc(hidden)]
    fn entry<'a>(&'a self, key: &'a str, now: i64) -> StoreFuture<'a, Option<SessionEntry>> {
        let _ = (key, now);
        Box::pin(std::future::ready(Err(StoreError::from_kind(
            StoreErrorKind::Unsupported,
        ))))
    }
}

/// A store failure. The backend's own error is kept behind [`source`](StdError::source).
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

/// What kind of failure a [`StoreError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store could not be reached or failed to answer.
    Unavailable,
    /// The store did not answer within the timeout.
    Timeout,
    /// The store answered with data this crate did not write.
    Corrupt,
    /// The arguments were refused (for example a window size out of range).
    InvalidInput,
    /// The store does not implement this optional operation.
    Unsupported,
}

impl StoreError {
    /// A new error of `kind`, caused by `source`.
    pub fn new(kind: StoreErrorKind, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// A new error of `kind` with no underlying cause.
    pub fn from_kind(kind: StoreErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            StoreErrorKind::Unavailable => "session store unavailable",
            StoreErrorKind::Timeout => "session store timed out",
            StoreErrorKind::Corrupt => "session store returned unexpected data",
            StoreErrorKind::InvalidInput => "session store refused the arguments",
            StoreErrorKind::Unsupported => "session store does not support this operation",
        };
        match &self.source {
            Some(source) => write!(f, "{what}: {source}"),
            None => f.write_str(what),
        }
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// How the verifier uses a session store.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tower_cognito::session::{MemoryStore, SessionConfig};
///
/// let sessions = SessionConfig::new(Arc::new(MemoryStore::new(100_000)))
///     .window(2)
///     .ttl(Duration::from_secs(30 * 24 * 3600));
/// ```
#[derive(Clone)]
#[must_use]
pub struct SessionConfig {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) limits: WindowLimits,
    pub(crate) timeout: Duration,
    pub(crate) fail_open: bool,
    pub(crate) key_fn: Option<KeyFn>,
    pub(crate) window_machine_tokens: bool,
    pub(crate) breaker: Option<BreakerSettings>,
}

impl SessionConfig {
    /// Use `store` with the default window (2), TTL (30 days) and timeout (250 ms), failing
    /// closed.
    pub fn new(store: Arc<dyn SessionStore>) -> Self {
        Self {
            store,
            limits: WindowLimits::default(),
            timeout: DEFAULT_STORE_TIMEOUT,
            fail_open: false,
            key_fn: None,
            window_machine_tokens: false,
            breaker: Some(DEFAULT_BREAKER),
        }
    }

    /// The circuit breaker in front of the store: after `failures` store failures or timeouts
    /// in a row, checks stop waiting for the store and are answered at once (503, or accepted
    /// with [`fail_open`](Self::fail_open)), while one background task pings the store
    /// ([`SessionStore::ping`]) every `probe_every` and closes the breaker at its first answer.
    /// On by default: 3 failures, a probe every 200 ms, so requests stop paying the store
    /// timeout during an outage, and the window is back within about a probe interval of the
    /// store. A store without a ping is tried again by requests after one interval instead.
    /// `failures` is at least 1 and `probe_every` at least 10 ms (checked when the verifier is
    /// built).
    pub fn circuit_breaker(mut self, failures: u32, probe_every: Duration) -> Self {
        self.breaker = Some(BreakerSettings {
            failures,
            probe_every,
        });
        self
    }

    /// No circuit breaker: every check waits for the store, up to the timeout, however long the
    /// store has been failing.
    pub fn no_circuit_breaker(mut self) -> Self {
        self.breaker = None;
        self
    }

    /// How many distinct `iat` values are kept per session (1 to [`MAX_WINDOW`], default 2).
    pub fn window(mut self, size: usize) -> Self {
        self.limits.size = size;
        self
    }

    /// How long a session entry lives after its last change (default 30 days).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.limits.ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        self
    }

    /// How long the store may take before the request gets 503 (default 250 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// When the store fails or times out, accept the token on its signature alone and log a
    /// warning, instead of answering 503. Off by default: this gives up revocation and the
    /// superseded-chain check while the store is down.
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// Whether machine-to-machine tokens (`client_credentials`: no `origin_jti`, `sub` equal to
    /// the client id, see [`SessionKeyParts::is_client_credentials`]) go through the window too.
    /// Off by default: every worker of one M2M app client holds tokens of its own, which the
    /// default key would put into ONE window (`s:{client}:{client}`), so a fleet of more than
    /// two workers would refuse its own older, valid tokens as superseded. M2M tokens have no
    /// refresh token and so no rotation race to tolerate; they are verified on their signature,
    /// claims and rules alone, and stop at their `exp` (revoke an M2M client by rotating its
    /// secret or deleting it). With a [`key_fn`](Self::key_fn), that function decides for every
    /// token, M2M ones included.
    pub fn window_machine_tokens(mut self, on: bool) -> Self {
        self.window_machine_tokens = on;
        self
    }

    /// Derive the session key with `key_fn` instead of the default
    /// ([`SessionKeyParts::default_key`]). Returning `None` refuses the token.
    pub fn key_fn<F>(mut self, key_fn: F) -> Self
    where
        F: Fn(&SessionKeyParts<'_>) -> Option<String> + Send + Sync + 'static,
    {
        self.key_fn = Some(Arc::new(key_fn));
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// The window limits in force.
    pub fn limits(&self) -> WindowLimits {
        self.limits
    }
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("store", &self.store)
            .field("limits", &self.limits)
            .field("timeout", &self.timeout)
            .field("fail_open", &self.fail_open)
            .field("key_fn", &self.key_fn.is_some())
            .field("window_machine_tokens", &self.window_machine_tokens)
            .field("circuit_breaker", &self.breaker)
            .finish()
    }
}

pub(crate) fn check_limits(limits: WindowLimits) -> Result<(), StoreError> {
    if (1..=MAX_WINDOW).contains(&limits.size) && limits.ttl_secs > 0 {
        Ok(())
    } else {
        Err(StoreError::from_kind(StoreErrorKind::InvalidInput))
    }
}
