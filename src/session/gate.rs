//! [`SessionGate`]: step 10 of verification around the store. One check-and-advance under a
//! timeout, a store failure answered fail-closed (503) or fail-open, and revocation.

use std::fmt;

use futures_util::FutureExt as _;

use super::{SessionConfig, SessionVerdict, StoreError, StoreErrorKind};
use crate::error::{AuthError, InvalidToken};

/// A [`SessionConfig`] in use by a verifier.
pub(crate) struct SessionGate {
    config: SessionConfig,
}

impl SessionGate {
    pub(crate) fn new(config: SessionConfig) -> Self {
        Self { config }
    }

    /// How the session key of a token is derived.
    pub(crate) fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// One atomic check-and-advance of `iat` in the session `key`, at `now`.
    pub(crate) async fn check(&self, key: &str, iat: i64, now: i64) -> Result<(), AuthError> {
        let sessions = &self.config;
        let mut check = sessions
            .store
            .check_and_advance(key, iat, now, sessions.limits);
        // A store that answers at once (the memory store always does) needs no timer.
        let answer = match (&mut check).now_or_never() {
            Some(answer) => Ok(answer),
            None => tokio::time::timeout(sessions.timeout, check).await,
        };
        let failure = match answer {
            Ok(Ok(SessionVerdict::Accepted)) => return Ok(()),
            Ok(Ok(SessionVerdict::Superseded)) => return Err(InvalidToken::Superseded.into()),
            Ok(Ok(SessionVerdict::Revoked)) => return Err(InvalidToken::Revoked.into()),
            Ok(Err(error)) => error,
            Err(_) => StoreError::from_kind(StoreErrorKind::Timeout),
        };
        if sessions.fail_open {
            tracing::warn!(error = %failure, "session store failed; accepting on signature alone (fail-open)");
            Ok(())
        } else {
            tracing::warn!(error = %failure, "session store failed; refusing with 503");
            Err(AuthError::StoreUnavailable)
        }
    }

    /// Revokes the session `key` at `now`, under the store timeout.
    pub(crate) async fn revoke(&self, key: &str, now: i64) -> Result<(), AuthError> {
        let sessions = &self.config;
        let revoke = sessions.store.revoke(key, now, sessions.limits);
        match tokio::time::timeout(sessions.timeout, revoke).await {
            Ok(Ok(())) => {
                tracing::info!("session revoked");
                Ok(())
            }
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "session revocation failed");
                Err(AuthError::StoreUnavailable)
            }
            Err(_) => {
                tracing::warn!("session revocation timed out");
                Err(AuthError::StoreUnavailable)
            }
        }
    }
}

/// As the [`SessionConfig`] it holds.
impl fmt::Debug for SessionGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}
