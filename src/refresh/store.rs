//! [`RefreshStore`]: where server-held sessions live, with the per-session refresh lock.

use std::fmt;
use std::time::Duration;

use crate::session::StoreFuture;

/// One server-held session as a store keeps it.
///
/// Stores treat `sealed` as opaque bytes: it is the session's tokens (refresh, access and id
/// token) sealed with AES-256-GCM under a configured key, bound to the session's id. A dump of
/// the store therefore holds no usable token, and the id under which it is stored is the
/// SHA-256 of the cookie's value, never the value itself.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionRecord {
    /// The fence of the write that stored this record: 0 when the session was created, then the
    /// fence of each refresh that saved it. Waiters watch it change.
    pub version: u64,
    /// When the session ends (seconds since the Unix epoch): the refresh token's end of life.
    pub expires_at: i64,
    /// When the stored access token expires (seconds since the Unix epoch).
    pub access_expires_at: i64,
    /// The sealed tokens.
    pub sealed: Vec<u8>,
}

impl SessionRecord {
    /// A record of `version` holding `sealed`.
    pub fn new(version: u64, expires_at: i64, access_expires_at: i64, sealed: Vec<u8>) -> Self {
        Self {
            version,
            expires_at,
            access_expires_at,
            sealed,
        }
    }
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("version", &self.version)
            .field("expires_at", &self.expires_at)
            .field("access_expires_at", &self.access_expires_at)
            .field("sealed", &format_args!("<{} bytes>", self.sealed.len()))
            .finish()
    }
}

/// The answer to [`RefreshStore::lock`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockOutcome {
    /// The lock is ours under `fence` until the lease ends; `record` is the session as stored
    /// when the lock was taken (it may be newer than what the caller loaded before).
    Acquired {
        /// The fencing token: greater than every fence issued before for this session.
        fence: u64,
        /// The session as stored now.
        record: SessionRecord,
        /// Whether an earlier holder's lease ended without a save or an unlock: that holder may
        /// still be alive (paused, or waiting on Cognito) and may still save.
        took_over: bool,
    },
    /// Another holder's lease has not ended.
    Busy,
    /// No such session (never created, deleted, or expired).
    Missing,
}

/// The answer to [`RefreshStore::save`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SaveOutcome {
    /// Saved, and the lock released.
    Saved,
    /// Not saved: a holder under a newer fence (or this fence) already saved. The caller's
    /// tokens are not the session's any more.
    Fenced,
    /// Not saved: the session is gone (signed out meanwhile). It is not brought back.
    Missing,
}

/// Server-held sessions with one refresh lock per session, shared by every server that uses the
/// same backend.
///
/// The lock is a lease with a fencing token, so a holder that dies mid-refresh never blocks a
/// session for longer than the lease, and a holder that comes back after its lease ended cannot
/// overwrite what a newer holder saved:
///
/// 1. [`lock`](Self::lock) takes the lock if it is free or its lease has ended, issues a fence
///    greater than every earlier one, and answers the record as stored, in one atomic step;
/// 2. the holder refreshes at Cognito;
/// 3. [`save`](Self::save) stores the new record only if no holder under a newer fence saved
///    meanwhile, and releases the lock if it is still the caller's, again in one atomic step.
///
/// Why "no newer save" rather than "no newer fence": with rotation, whoever reached Cognito
/// first holds the one live refresh token. A holder whose lease ended while it waited on Cognito
/// and that got tokens must still be able to store them as long as the newer holder has not
/// saved (the newer holder's own refresh, made with the same spent token, then fails as reused,
/// finds the saved record and uses it). Once a newer holder saved, an older one's write is
/// refused: it cannot overwrite newer tokens.
///
/// Leases run on the store's own clock (Redis `PX`, PostgreSQL's `clock_timestamp()`, this
/// process's monotonic clock for memory), so servers with skewed clocks still agree on them.
/// Session expiry (`expires_at`) is decided against the `now` the caller passes, in seconds since
/// the Unix epoch, as for the session window.
///
/// Ids are the SHA-256 of the session cookie in lowercase hex (64 characters).
pub trait RefreshStore: fmt::Debug + Send + Sync + 'static {
    /// The session `id`, or `None` when absent or expired at `now`.
    fn load<'a>(&'a self, id: &'a str, now: i64) -> StoreFuture<'a, Option<SessionRecord>>;

    /// Stores a new session under `id` (replacing any record there), living until
    /// `record.expires_at`.
    fn create<'a>(
        &'a self,
        id: &'a str,
        record: &'a SessionRecord,
        now: i64,
    ) -> StoreFuture<'a, ()>;

    /// Takes the refresh lock of `id` for `lease`, if no other holder's lease is running.
    fn lock<'a>(&'a self, id: &'a str, lease: Duration, now: i64) -> StoreFuture<'a, LockOutcome>;

    /// Saves `record` (whose `version` the caller sets to `fence`) if the stored record's
    /// version is below `fence` (no holder under this or a newer fence saved), and releases the
    /// lock if it is held under `fence`.
    fn save<'a>(
        &'a self,
        id: &'a str,
        record: &'a SessionRecord,
        fence: u64,
        now: i64,
    ) -> StoreFuture<'a, SaveOutcome>;

    /// Releases the lock of `id` if it is still held under `fence`, saving nothing (the refresh
    /// failed).
    fn unlock<'a>(&'a self, id: &'a str, fence: u64) -> StoreFuture<'a, ()>;

    /// Deletes the session `id` (sign-out). Deleting an absent session is not an error.
    fn delete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()>;
}
