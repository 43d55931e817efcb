//! One Cognito refresh per session at a time, across every server sharing the store.
//!
//! The flow is oauth2-proxy's (lock, reload, re-check, refresh, save), with the reload folded
//! into the lock and the release into the save, plus a fencing token:
//!
//! ```text
//!  load ──fresh──────────────────────────────────────────────► answer the stored token
//!   │ stale
//!   ▼
//!  local lock (one task per session per process goes on; the others queue and re-load)
//!   │
//!   ▼
//!  store.lock ─Busy──► wait: re-load until the record is fresh (the holder saved) or the
//!   │ Acquired           lease ends (then try the lock again); bounded by `wait`
//!   ▼
//!  record fresh now? ─yes─► unlock, answer it
//!   │ no
//!   ▼
//!  Cognito refresh ─ok──────────► save (unless a newer fence saved first) ─► answer
//!   │ reused / invalid ─► re-load: a newer refresh token stored by another server? use it
//!   │                     (answer it if fresh, else one more round); when we took over an
//!   │                     ended lease, wait up to a lease for that holder's save first;
//!   │                     none: the session ends
//!   │ unavailable ─────► unlock, 503, the session kept
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tower_cognito_client::{Secret, TokenClient, TokenError, Tokens};
use zeroize::Zeroize;

use super::seal::SealingKeys;
use super::store::{LockOutcome, RefreshStore, SaveOutcome, SessionRecord};
use crate::clock::Clock;
use crate::session::StoreError;

/// The tokens a session holds, as sealed into [`SessionRecord::sealed`].
#[derive(Serialize, Deserialize)]
pub(crate) struct Held {
    /// The refresh token.
    #[serde(rename = "r")]
    pub(crate) refresh: String,
    /// The access token.
    #[serde(rename = "a")]
    pub(crate) access: String,
    /// The id token.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    /// The session-window key of the access tokens, to revoke them on sign-out.
    #[serde(rename = "w", default, skip_serializing_if = "Option::is_none")]
    pub(crate) window_key: Option<String>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.refresh.zeroize();
        self.access.zeroize();
        if let Some(id) = &mut self.id {
            id.zeroize();
        }
    }
}

/// What `POST /auth/token` answers.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// An access token valid for at least the margin (or as long as Cognito gave it).
    Token { access: Secret, expires_at: i64 },
    /// No session, or it ended (refresh token expired, revoked or spent elsewhere): sign in.
    SignIn,
    /// Cognito or the store is unavailable: retry later. The session is kept.
    Unavailable,
}

/// How the refreshes of one session are serialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coordination {
    /// One refresh per session across servers (the default and only production setting).
    Locked,
    /// Every request that finds a stale token refreshes on its own, and a spent refresh token
    /// ends the session: a naive backend-for-frontend, kept to show the race in tests and the
    /// demo.
    Off,
}

#[derive(Debug)]
pub(crate) struct Coordinator {
    pub(crate) store: Arc<dyn RefreshStore>,
    pub(crate) client: TokenClient,
    pub(crate) keys: SealingKeys,
    pub(crate) clock: Arc<dyn Clock>,
    /// Refresh when the stored access token expires within this many seconds.
    pub(crate) margin: i64,
    pub(crate) lease: Duration,
    /// How long a request waits for another holder before answering 503.
    pub(crate) wait: Duration,
    pub(crate) poll: Duration,
    pub(crate) store_timeout: Duration,
    pub(crate) coordination: Coordination,
    local: LocalLocks,
}

/// What [`Coordinator::newer_than`] found.
enum Newer {
    Record(SessionRecord),
    None,
    Gone,
}

/// Why a step failed; every one of them is a 503 with the session kept. Logged through `Debug`.
#[derive(Debug)]
#[allow(dead_code)]
enum Failed {
    Store(StoreError),
    StoreTimeout,
    /// A record that does not open with our keys (another deployment's, or tampered with).
    Unreadable,
    Cognito(TokenError),
    WaitedTooLong,
}

impl Coordinator {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        store: Arc<dyn RefreshStore>,
        client: TokenClient,
        keys: SealingKeys,
        clock: Arc<dyn Clock>,
        margin: Duration,
        lease: Duration,
        store_timeout: Duration,
        coordination: Coordination,
    ) -> Self {
        Self {
            store,
            client,
            keys,
            clock,
            margin: i64::try_from(margin.as_secs()).unwrap_or(i64::MAX),
            lease,
            wait: lease + Duration::from_secs(2),
            poll: Duration::from_millis(20),
            store_timeout,
            coordination,
            local: LocalLocks::default(),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_unix()
    }

    async fn timed<T>(
        &self,
        step: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, Failed> {
        match tokio::time::timeout(self.store_timeout, step).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(Failed::Store(error)),
            Err(_) => Err(Failed::StoreTimeout),
        }
    }

    pub(crate) fn seal(&self, id: &str, held: &Held) -> Vec<u8> {
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(held).expect("plain strings"));
        self.keys.seal(id.as_bytes(), &plain)
    }

    pub(crate) fn open(&self, id: &str, record: &SessionRecord) -> Option<Held> {
        let plain = self.keys.open(id.as_bytes(), &record.sealed)?;
        serde_json::from_slice(&plain).ok()
    }

    fn fresh(&self, record: &SessionRecord, now: i64) -> bool {
        record.access_expires_at.saturating_sub(now) > self.margin
    }

    fn answer(&self, id: &str, record: &SessionRecord) -> Result<Outcome, Failed> {
        let held = self.open(id, record).ok_or(Failed::Unreadable)?;
        Ok(Outcome::Token {
            access: Secret::new(held.access.as_str()),
            expires_at: record.access_expires_at,
        })
    }

    /// The session's stored record, for sign-out.
    pub(crate) async fn load(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let now = self.now();
        match tokio::time::timeout(self.store_timeout, self.store.load(id, now)).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::from_kind(
                crate::session::StoreErrorKind::Timeout,
            )),
        }
    }

    /// A record for a new sign-in's tokens.
    pub(crate) fn record_for(
        &self,
        id: &str,
        version: u64,
        expires_at: i64,
        held: &Held,
        expires_in: Duration,
    ) -> SessionRecord {
        let now = self.now();
        let access_expires_at =
            now.saturating_add(i64::try_from(expires_in.as_secs()).unwrap_or(i64::MAX));
        SessionRecord::new(version, expires_at, access_expires_at, self.seal(id, held))
    }

    /// An access token for the session `id` (the SHA-256 of its cookie), refreshing first when
    /// the stored one is within the margin of its `exp`.
    pub(crate) async fn access_token(&self, id: &str) -> Outcome {
        let result = match self.coordination {
            Coordination::Locked => self.locked(id).await,
            Coordination::Off => self.uncoordinated(id).await,
        };
        match result {
            Ok(outcome) => outcome,
            Err(failed) => {
                match &failed {
                    Failed::Cognito(error) => {
                        tracing::warn!(error = %error, "refresh failed; session kept")
                    }
                    other => {
                        tracing::warn!(failure = ?other, "refresh not possible now; session kept")
                    }
                }
                Outcome::Unavailable
            }
        }
    }

    async fn locked(&self, id: &str) -> Result<Outcome, Failed> {
        let now = self.now();
        let Some(record) = self.timed(self.store.load(id, now)).await? else {
            return Ok(Outcome::SignIn);
        };
        if self.fresh(&record, now) {
            return self.answer(id, &record);
        }
        // One task per session in this process goes on; the others queue here, and most of
        // them then find the winner's tokens with one load.
        let _local = self.local.lock(id).await;
        let deadline = tokio::time::Instant::now() + self.wait;
        let mut recovered_once = false;
        loop {
            let now = self.now();
            match self.timed(self.store.lock(id, self.lease, now)).await? {
                LockOutcome::Missing => return Ok(Outcome::SignIn),
                LockOutcome::Busy => {
                    // Another server refreshes: wait for its save or for its lease to end.
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Failed::WaitedTooLong);
                    }
                    tokio::time::sleep(self.poll).await;
                    let now = self.now();
                    match self.timed(self.store.load(id, now)).await? {
                        None => return Ok(Outcome::SignIn),
                        Some(record) if self.fresh(&record, now) => {
                            return self.answer(id, &record)
                        }
                        Some(_) => continue,
                    }
                }
                LockOutcome::Acquired {
                    fence,
                    record,
                    took_over,
                } => {
                    if self.fresh(&record, now) {
                        self.timed(self.store.unlock(id, fence)).await?;
                        return self.answer(id, &record);
                    }
                    let error = match self.refresh_holding(id, fence, &record).await {
                        Ok(Some(outcome)) => return Ok(outcome),
                        // Fenced: a newer holder saved; look again.
                        Ok(None) => continue,
                        Err(Failed::Cognito(error)) if error.needs_sign_in() => error,
                        Err(other) => {
                            // Unavailable: free the lock at once so the next request may try.
                            let _ = self.timed(self.store.unlock(id, fence)).await;
                            return Err(other);
                        }
                    };
                    // Spent or dead refresh token. Another holder may have stored a newer one:
                    // one whose lease overlapped ours, or (when we took over an ended lease)
                    // one still waiting on Cognito that may save within a lease. Use it, once.
                    let wait = if took_over {
                        self.lease
                    } else {
                        Duration::ZERO
                    };
                    let newer = self.newer_than(id, record.version, wait).await;
                    let _ = self.timed(self.store.unlock(id, fence)).await;
                    match newer? {
                        Newer::Record(newer) if self.fresh(&newer, self.now()) => {
                            return self.answer(id, &newer)
                        }
                        Newer::Record(_) if !recovered_once => {
                            recovered_once = true;
                            continue;
                        }
                        Newer::Record(_) | Newer::None => return self.end(id, &error).await,
                        Newer::Gone => return Ok(Outcome::SignIn),
                    }
                }
            }
        }
    }

    /// The session's record once its version differs from `version`, looking again every poll
    /// interval for up to `wait` (once when `wait` is zero).
    async fn newer_than(&self, id: &str, version: u64, wait: Duration) -> Result<Newer, Failed> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.timed(self.store.load(id, self.now())).await? {
                None => return Ok(Newer::Gone),
                Some(record) if record.version != version => return Ok(Newer::Record(record)),
                Some(_) if tokio::time::Instant::now() >= deadline => return Ok(Newer::None),
                Some(_) => tokio::time::sleep(self.poll).await,
            }
        }
    }

    /// Refreshes while holding the lock under `fence`; `Ok(None)` when the save was fenced.
    async fn refresh_holding(
        &self,
        id: &str,
        fence: u64,
        record: &SessionRecord,
    ) -> Result<Option<Outcome>, Failed> {
        let held = self.open(id, record).ok_or(Failed::Unreadable)?;
        let tokens = self
            .client
            .refresh(&Secret::new(held.refresh.as_str()), None)
            .await
            .map_err(Failed::Cognito)?;
        let (next, access) = self.next_record(id, fence, record, held, tokens);
        let now = self.now();
        match self.timed(self.store.save(id, &next, fence, now)).await? {
            SaveOutcome::Saved => {
                tracing::debug!(fence, "session refreshed");
                Ok(Some(Outcome::Token {
                    access,
                    expires_at: next.access_expires_at,
                }))
            }
            SaveOutcome::Fenced => {
                tracing::warn!(
                    fence,
                    "refresh outlived its lease; a newer holder's save wins"
                );
                Ok(None)
            }
            SaveOutcome::Missing => Ok(Some(Outcome::SignIn)),
        }
    }

    /// The record after a refresh: the new tokens, the old refresh token when none came back.
    fn next_record(
        &self,
        id: &str,
        version: u64,
        record: &SessionRecord,
        mut held: Held,
        tokens: Tokens,
    ) -> (SessionRecord, Secret) {
        if let Some(refresh) = &tokens.refresh_token {
            held.refresh = refresh.expose().to_owned();
        }
        held.access = tokens.access_token.expose().to_owned();
        if let Some(id_token) = &tokens.id_token {
            held.id = Some(id_token.expose().to_owned());
        }
        let next = self.record_for(id, version, record.expires_at, &held, tokens.expires_in);
        (next, tokens.access_token)
    }

    /// The refresh token is spent or dead and nothing newer is stored: the session ends.
    async fn end(&self, id: &str, error: &TokenError) -> Result<Outcome, Failed> {
        tracing::info!(error = %error, "refresh token no longer usable; session ended");
        self.timed(self.store.delete(id)).await?;
        Ok(Outcome::SignIn)
    }

    /// The naive flow: no lock, no reload.
    async fn uncoordinated(&self, id: &str) -> Result<Outcome, Failed> {
        let now = self.now();
        let Some(record) = self.timed(self.store.load(id, now)).await? else {
            return Ok(Outcome::SignIn);
        };
        if self.fresh(&record, now) {
            return self.answer(id, &record);
        }
        let held = self.open(id, &record).ok_or(Failed::Unreadable)?;
        match self
            .client
            .refresh(&Secret::new(held.refresh.as_str()), None)
            .await
        {
            Ok(tokens) => {
                let version = record.version + 1;
                let (next, access) = self.next_record(id, version, &record, held, tokens);
                self.timed(self.store.create(id, &next, self.now())).await?;
                Ok(Outcome::Token {
                    access,
                    expires_at: next.access_expires_at,
                })
            }
            Err(error) if error.needs_sign_in() => self.end(id, &error).await,
            Err(error) => Err(Failed::Cognito(error)),
        }
    }
}

/// Per-session async locks of this process, dropped when nobody holds or waits for them.
#[derive(Debug, Default)]
struct LocalLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

struct LocalGuard<'a> {
    locks: &'a LocalLocks,
    id: String,
    lock: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl LocalLocks {
    async fn lock(&self, id: &str) -> LocalGuard<'_> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            locks.entry(id.to_owned()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        LocalGuard {
            locks: self,
            id: id.to_owned(),
            lock: Some(guard),
        }
    }
}

impl Drop for LocalGuard<'_> {
    fn drop(&mut self) {
        drop(self.lock.take());
        let mut locks = self
            .locks
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map's own reference is the last one: nobody holds or waits for this lock.
        if locks
            .get(&self.id)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            locks.remove(&self.id);
        }
    }
}
