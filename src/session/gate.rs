//! [`SessionGate`]: step 10 of verification around the store. One check-and-advance under a
//! timeout, a store failure answered fail-closed (503) or fail-open, and revocation.

use std::fmt;
use std::sync::Arc;

use futures_util::FutureExt as _;

use super::breaker::Breaker;
use super::{SessionConfig, SessionVerdict, StoreError, StoreErrorKind};
use crate::error::{AuthError, InvalidToken};

/// A [`SessionConfig`] in use by a verifier.
pub(crate) struct SessionGate {
    config: SessionConfig,
    /// Shared with its probe task, when one runs.
    breaker: Option<Arc<Breaker>>,
}

impl SessionGate {
    pub(crate) fn new(config: SessionConfig) -> Self {
        let breaker = config
            .breaker
            .map(|settings| Arc::new(Breaker::new(settings)));
        Self { config, breaker }
    }

    /// How the session key of a token is derived.
    pub(crate) fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// One atomic check-and-advance of `iat` in the session `key`, at `now`.
    pub(crate) async fn check(&self, key: &str, iat: i64, now: i64) -> Result<(), AuthError> {
        let sessions = &self.config;
        let timer = crate::metrics::Timer::start();
        if self.breaker.as_ref().is_some_and(|b| b.is_open()) {
            crate::metrics::store_call("check", "circuit_open", &timer);
            return self.failed(StoreError::from_kind(StoreErrorKind::Unavailable), true);
        }
        let mut check = sessions
            .store
            .check_and_advance(key, iat, now, sessions.limits);
        // A store that answers at once (the memory store always does) needs no timer.
        let answer = match (&mut check).now_or_never() {
            Some(answer) => Ok(answer),
            None => tokio::time::timeout(sessions.timeout, check).await,
        };
        let (result, failure) = match answer {
            Ok(Ok(verdict)) => {
                let (result, answer) = match verdict {
                    SessionVerdict::Accepted => ("accepted", Ok(())),
                    SessionVerdict::Superseded => ("superseded", Err(InvalidToken::Superseded)),
                    SessionVerdict::Revoked => ("revoked", Err(InvalidToken::Revoked)),
                };
                crate::metrics::store_call("check", result, &timer);
                if let Some(breaker) = &self.breaker {
                    breaker.success();
                }
                return answer.map_err(Into::into);
            }
            Ok(Err(error)) => ("error", error),
            Err(_) => ("timeout", StoreError::from_kind(StoreErrorKind::Timeout)),
        };
        crate::metrics::store_call("check", result, &timer);
        if let Some(breaker) = &self.breaker {
            breaker.failure(&sessions.store, sessions.timeout);
        }
        self.failed(failure, false)
    }

    /// A check the store could not answer (`circuit_open`: not asked, the breaker is open):
    /// 503, or accepted with fail-open.
    fn failed(&self, failure: StoreError, circuit_open: bool) -> Result<(), AuthError> {
        // While the circuit is open every request comes here: log at debug, the breaker
        // logged the opening.
        match (self.config.fail_open, circuit_open) {
            (true, false) => {
                tracing::warn!(error = %failure, "session store failed; accepting on signature alone (fail-open)")
            }
            (false, false) => {
                tracing::warn!(error = %failure, "session store failed; refusing with 503")
            }
            (true, true) => tracing::debug!(
                "session store circuit open; accepting on signature alone (fail-open)"
            ),
            (false, true) => tracing::debug!("session store circuit open; refusing with 503"),
        }
        if self.config.fail_open {
            Ok(())
        } else {
            Err(AuthError::StoreUnavailable)
        }
    }

    /// Whether the store answers a ping within the store timeout; a store without a ping counts
    /// as answering.
    pub(crate) async fn ping(&self) -> Result<(), AuthError> {
        let sessions = &self.config;
        match tokio::time::timeout(sessions.timeout, sessions.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) if error.kind() == StoreErrorKind::Unsupported => Ok(()),
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "session store ping failed");
                Err(AuthError::StoreUnavailable)
            }
            Err(_) => {
                tracing::warn!("session store ping timed out");
                Err(AuthError::StoreUnavailable)
            }
        }
    }

    /// Revokes the session `key` at `now`, under the store timeout.
    pub(crate) async fn revoke(&self, key: &str, now: i64) -> Result<(), AuthError> {
        let sessions = &self.config;
        let timer = crate::metrics::Timer::start();
        let revoke = sessions.store.revoke(key, now, sessions.limits);
        match tokio::time::timeout(sessions.timeout, revoke).await {
            Ok(Ok(())) => {
                crate::metrics::store_call("revoke", "ok", &timer);
                tracing::info!("session revoked");
                Ok(())
            }
            Ok(Err(error)) => {
                crate::metrics::store_call("revoke", "error", &timer);
                tracing::warn!(error = %error, "session revocation failed");
                Err(AuthError::StoreUnavailable)
            }
            Err(_) => {
                crate::metrics::store_call("revoke", "timeout", &timer);
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
