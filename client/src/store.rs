//! [`TokenStore`]: where a sign-in's tokens live between runs, and the lock that keeps two
//! processes from spending one refresh token.
//!
//! A [`TokenSource`](crate::TokenSource) with a store refreshes like this (oauth2-proxy's
//! `refreshSessionIfNeeded`, across processes):
//!
//! 1. take the store's [`lock`](TokenStore::lock) (across processes, for
//!    [`FileTokenStore`](crate::FileTokenStore) an OS file lock);
//! 2. [`load`](TokenStore::load) again: if the stored access token is not the one this source
//!    holds, someone else refreshed meanwhile: use theirs when it is still valid, or refresh
//!    with their (newer) refresh token;
//! 3. else refresh, and [`save`](TokenStore::save);
//! 4. drop the lock.
//!
//! When Cognito answers that the refresh token was already used (`reused`), the source reads
//! the store once more and retries once with a newer refresh token if one is there; only
//! when that fails must the user sign in again.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::stored::StoredTokens;

/// The future a [`TokenStore`] returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A place for one sign-in's tokens, shared by every source (and process) that uses it.
///
/// Object-safe: a [`TokenSource`](crate::TokenSource) holds an `Arc<dyn TokenStore>`.
pub trait TokenStore: fmt::Debug + Send + Sync + 'static {
    /// The stored tokens, `None` when nothing is stored. A store that holds something it
    /// cannot read answers [`StoreErrorKind::Corrupt`], never `None`.
    fn load(&self) -> StoreFuture<'_, Option<StoredTokens>>;

    /// Replaces the stored tokens, atomically: a reader sees the old tokens or the new ones,
    /// never a mix.
    fn save<'a>(&'a self, tokens: &'a StoredTokens) -> StoreFuture<'a, ()>;

    /// Removes the stored tokens (sign-out). Nothing stored is not an error.
    fn clear(&self) -> StoreFuture<'_, ()>;

    /// The store's exclusive refresh lock, held until the [`StoreLock`] is dropped. Every
    /// holder of the same store (threads, processes) waits for it: that is what keeps two of
    /// them from spending one refresh token.
    fn lock(&self) -> StoreFuture<'_, StoreLock>;
}

/// A held [`TokenStore::lock`]: dropping it releases the lock.
pub struct StoreLock {
    _guard: Box<dyn Send + Sync>,
}

impl StoreLock {
    /// Wraps whatever releases the lock when dropped (a locked file, a mutex guard...).
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Self {
            _guard: Box::new(guard),
        }
    }
}

impl fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreLock")
    }
}

/// What kind of failure a [`StoreError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// Reading or writing failed (permissions, disk full, a missing directory...).
    Io,
    /// The store holds something that is not tokens (a truncated or hand-edited file). It is
    /// left as it is: nothing is written over it until tokens are saved on purpose (a new
    /// sign-in).
    Corrupt,
    /// The lock was not had in time: another holder kept it too long.
    LockTimeout,
    /// Anything else (a custom store's own failure).
    Other,
}

/// A [`TokenStore`] failure. It says what and where (a path), never the tokens: the
/// underlying error is behind `source()`.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    what: Cow<'static, str>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl StoreError {
    /// An error of `kind`, described by `what` (which must not hold a token).
    pub fn new(kind: StoreErrorKind, what: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            what: what.into(),
            source: None,
        }
    }

    /// With the underlying error, for `source()`.
    #[must_use]
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub(crate) fn corrupt(what: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StoreErrorKind::Corrupt, what)
    }

    /// The kind of failure.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            StoreErrorKind::Io => "token store I/O failed",
            StoreErrorKind::Corrupt => "token store is corrupt",
            StoreErrorKind::LockTimeout => "token store lock timed out",
            StoreErrorKind::Other => "token store failed",
        };
        write!(f, "{kind}: {}", self.what)
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}
