//! [`SourceError`]: why a token source has no token to give, typed by what the caller should
//! do about it.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use crate::store::StoreError;
use crate::token_client::TokenError;

/// What a caller should do about a [`SourceError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceErrorKind {
    /// Cognito could not be reached, answered 5xx or throttled. The tokens are kept: retry
    /// later, and never sign the user out for this.
    Unavailable,
    /// The sign-in is over: the refresh token expired or was revoked, or it was spent by
    /// another refresh and no newer one is in the store. Sign in again.
    SignInRequired,
    /// Cognito refused the request itself (unknown app client, wrong secret, a scope the
    /// client may not ask for): a configuration error.
    Rejected,
    /// The token store failed (I/O, a corrupt file, the lock timed out). The tokens in the
    /// store are left as they are.
    Store,
}

/// Why a token source gave no token. Cheap to clone: every caller waiting on one refresh
/// gets the same error. Nothing in it shows a token; the underlying [`TokenError`] or
/// [`StoreError`] is behind `source()`.
#[derive(Debug, Clone)]
pub struct SourceError {
    kind: SourceErrorKind,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl SourceError {
    pub(crate) fn new(kind: SourceErrorKind) -> Self {
        Self { kind, source: None }
    }

    pub(crate) fn sign_in_required(cause: Option<TokenError>) -> Self {
        Self {
            kind: SourceErrorKind::SignInRequired,
            source: cause.map(|c| Arc::new(c) as Arc<dyn StdError + Send + Sync>),
        }
    }

    pub(crate) fn with_kind(mut self, kind: SourceErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// What to do about it.
    pub fn kind(&self) -> SourceErrorKind {
        self.kind
    }

    /// Whether the same call may succeed later (Cognito unavailable; the tokens were kept).
    pub fn is_retryable(&self) -> bool {
        self.kind == SourceErrorKind::Unavailable
    }

    /// Whether the user must sign in again.
    pub fn needs_sign_in(&self) -> bool {
        self.kind == SourceErrorKind::SignInRequired
    }
}

impl From<TokenError> for SourceError {
    fn from(error: TokenError) -> Self {
        let kind = match &error {
            TokenError::Reused | TokenError::Invalid => SourceErrorKind::SignInRequired,
            TokenError::Unavailable(_) => SourceErrorKind::Unavailable,
            _ => SourceErrorKind::Rejected,
        };
        Self {
            kind,
            source: Some(Arc::new(error)),
        }
    }
}

impl From<StoreError> for SourceError {
    fn from(error: StoreError) -> Self {
        Self {
            kind: SourceErrorKind::Store,
            source: Some(Arc::new(error)),
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            SourceErrorKind::Unavailable => "Cognito is unavailable; the tokens are kept",
            SourceErrorKind::SignInRequired => "the sign-in is over; sign in again",
            SourceErrorKind::Rejected => "Cognito refused the token request",
            SourceErrorKind::Store => "the token store failed",
        })
    }
}

impl StdError for SourceError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}
