//! One Redis server: the connection manager, failing fast while the server is down, and its
//! background reconnect task (the module docs of the parent say why).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, Value};

use super::*;

/// The pause before the first background reconnect attempt to a single server that is down;
/// it doubles after each failed attempt, up to [`LAST_RETRY`].
pub(super) const FIRST_RETRY: Duration = Duration::from_millis(20);

/// The longest pause between two reconnect attempts: a server that comes back is found within
/// this (plus one connection).
pub(super) const LAST_RETRY: Duration = Duration::from_millis(250);

/// How long one reconnect attempt (a connection and a `PING`) may take.
pub(super) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Connection attempts at connect time, with [`FIRST_RETRY`] doubling between them.
pub(super) const CONNECT_ATTEMPTS: u32 = 3;

/// One Redis server: redis-rs's connection manager, and whether the server is down.
///
/// The manager is made with no retries of its own: after a connection failure it makes ONE new
/// attempt, which the requests that come meanwhile wait for. A failure that points at the
/// connection ([`Single::answered`]) starts the reconnect task ([`reconnect`]), which first
/// waits for that attempt; when it fails, the server is down: requests are answered at once
/// ([`RedisConnection::ready`]) and only the task connects, one attempt at a time with a
/// growing pause, each with a new manager, until one answers `PING`.
pub(super) struct Single {
    pub(super) client: Client,
    pub(super) config: ConnectionManagerConfig,
    /// The manager requests use; replaced by the one that reconnected.
    pub(super) manager: ArcSwap<ConnectionManager>,
    /// An attempt to reach the server failed and none succeeded since. Only the reconnect
    /// task sets it, and it runs as long as this is set.
    pub(super) down: AtomicBool,
    /// The reconnect task runs (there is one at most).
    pub(super) reconnecting: AtomicBool,
    /// The reconnect task's attempts, started and finished (what [`Single::reach`] waits on).
    pub(super) attempts: tokio::sync::watch::Sender<Attempts>,
    /// Asks the reconnect task for an attempt now instead of after its pause.
    pub(super) wake: tokio::sync::Notify,
    /// Why the last attempt failed (redis-rs's message: never a password).
    pub(super) last_error: ArcSwapOption<String>,
    /// `host:port/db`.
    pub(super) server: Arc<str>,
}

/// How many reconnect attempts were started and finished.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Attempts {
    pub(super) started: u64,
    pub(super) finished: u64,
}

impl Single {
    /// A server reached through `manager`, made from `client` with `config`.
    pub(super) fn new(
        client: Client,
        config: ConnectionManagerConfig,
        manager: ConnectionManager,
        server: Arc<str>,
    ) -> Self {
        Self {
            client,
            config,
            manager: ArcSwap::from_pointee(manager),
            down: AtomicBool::new(false),
            reconnecting: AtomicBool::new(false),
            attempts: tokio::sync::watch::Sender::new(Attempts::default()),
            wake: tokio::sync::Notify::new(),
            last_error: ArcSwapOption::empty(),
            server,
        }
    }

    pub(super) fn manager(&self) -> ConnectionManager {
        ConnectionManager::clone(&self.manager.load())
    }

    /// The error of a request made while the server is down.
    pub(super) fn down_error(&self) -> StoreError {
        let last = self.last_error.load_full();
        let last = last.as_deref().map_or("", String::as_str);
        StoreError::new(
            StoreErrorKind::Unavailable,
            format!(
                "{}: not reachable ({last}); reconnecting in the background",
                self.server
            ),
        )
    }

    /// Looks at a request's answer: an error that says the connection is lost, or could not be
    /// made, starts the reconnect task (unless it runs). A timeout does not: a slow server is
    /// not a lost one, and the caller's timeout deals with it.
    pub(super) fn answered<T>(self: &Arc<Self>, answer: &Result<T, RedisError>) {
        let Err(error) = answer else {
            return;
        };
        if error.is_timeout() || !(error.is_unrecoverable_error() || error.is_io_error()) {
            return;
        }
        if self.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(reconnect(Arc::downgrade(self)));
            }
            Err(_) => self.reconnecting.store(false, Ordering::Release),
        }
    }

    /// For an explicit call: when the server is down, asks the reconnect task for an attempt
    /// now, and waits until an attempt started after this call ended. `Ok` once the server
    /// answers again.
    pub(super) async fn reach(&self) -> Result<(), StoreError> {
        if !self.down.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut attempts = self.attempts.subscribe();
        let target = attempts.borrow_and_update().started + 1;
        self.wake.notify_one();
        loop {
            if !self.down.load(Ordering::Acquire) {
                return Ok(());
            }
            if attempts.borrow_and_update().finished >= target {
                return Err(self.down_error());
            }
            if attempts.changed().await.is_err() {
                return Err(self.down_error());
            }
        }
    }

    /// The first attempt: `PING` through the current manager, which waits for the connection
    /// attempt that the failure started.
    pub(super) async fn ping_current(&self) -> Result<(), String> {
        ping(&mut self.manager()).await
    }

    /// A later attempt: a new manager (one connection attempt), used from now on if it
    /// answers `PING`.
    pub(super) async fn replace(&self) -> Result<(), String> {
        let attempt = async {
            let mut manager =
                ConnectionManager::new_with_config(self.client.clone(), self.config.clone())
                    .await
                    .map_err(|e| e.to_string())?;
            ping(&mut manager).await?;
            Ok::<_, String>(manager)
        };
        let manager = tokio::time::timeout(ATTEMPT_TIMEOUT, attempt)
            .await
            .map_err(|_| "connection attempt timed out".to_owned())??;
        self.manager.store(Arc::new(manager));
        Ok(())
    }
}

/// `PING` within [`ATTEMPT_TIMEOUT`].
pub(super) async fn ping(manager: &mut ConnectionManager) -> Result<(), String> {
    match tokio::time::timeout(
        ATTEMPT_TIMEOUT,
        redis::cmd("PING").query_async::<Value>(manager),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("PING timed out".to_owned()),
    }
}

/// The reconnect task of a single server: runs until an attempt succeeds (or the store is
/// dropped). The first attempt waits for the manager's own; each failed one marks the server
/// down and pauses ([`FIRST_RETRY`], doubling up to [`LAST_RETRY`]) unless woken.
pub(super) async fn reconnect(single: Weak<Single>) {
    /// Should the task end without an answer (its runtime shut down), requests go back to the
    /// manager, and the next failure starts a new task.
    struct Reset(Option<Weak<Single>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            if let Some(single) = self.0.take().and_then(|s| s.upgrade()) {
                single.reconnecting.store(false, Ordering::Release);
                single.down.store(false, Ordering::Release);
            }
        }
    }
    let mut reset = Reset(Some(single.clone()));
    let mut pause = FIRST_RETRY;
    let mut first = true;
    loop {
        let Some(single) = single.upgrade() else {
            return;
        };
        single.attempts.send_modify(|a| a.started += 1);
        let result = if first {
            single.ping_current().await
        } else {
            single.replace().await
        };
        first = false;
        match result {
            Ok(()) => {
                single.reconnecting.store(false, Ordering::Release);
                let was_down = single.down.swap(false, Ordering::AcqRel);
                single.attempts.send_modify(|a| a.finished += 1);
                if was_down {
                    tracing::info!(server = %single.server, "Redis answers again: reconnected");
                }
                reset.0 = None;
                return;
            }
            Err(error) => {
                single.last_error.store(Some(Arc::new(error.clone())));
                if single.down.swap(true, Ordering::AcqRel) {
                    tracing::debug!(server = %single.server, %error, "Redis reconnect attempt failed");
                } else {
                    tracing::warn!(
                        server = %single.server,
                        %error,
                        "Redis unreachable: requests fail at once while it reconnects in the background"
                    );
                }
                single.attempts.send_modify(|a| a.finished += 1);
            }
        }
        let _ = tokio::time::timeout(pause, single.wake.notified()).await;
        pause = (pause * 2).min(LAST_RETRY);
    }
}
