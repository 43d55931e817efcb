//! The session store's circuit breaker: after a few failures in a row the layer stops waiting
//! for the store (the store is not even asked), a probe finds it again, and the window works as
//! before. Told by what reaches the store, not by the clock.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tower_cognito::session::{
    MemoryStore, SessionConfig, SessionStore, SessionVerdict, StoreError, StoreErrorKind,
    StoreFuture, WindowLimits,
};
use tower_cognito::{AuthError, TokenUse, Verifier};

use crate::support::{self, key, JwksServer, SignIn};

/// A memory store that can be taken down: checks and pings fail (never answer, while `hang` is
/// set too) while `down` is set. Counts the checks and pings that reached it. Also the store of
/// `readiness`.
#[derive(Debug)]
pub(crate) struct Switchable {
    inner: MemoryStore,
    pub(crate) down: AtomicBool,
    pub(crate) hang: AtomicBool,
    /// Whether it implements `ping` (else the trait's default, `Unsupported`).
    pings: bool,
    pub(crate) checks: AtomicUsize,
    pub(crate) pinged: AtomicUsize,
}

impl Switchable {
    pub(crate) fn new(hang: bool, pings: bool) -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStore::new(1000),
            down: AtomicBool::new(false),
            hang: AtomicBool::new(hang),
            pings,
            checks: AtomicUsize::new(0),
            pinged: AtomicUsize::new(0),
        })
    }

    fn failure<'a, T: Send + 'a>(&self) -> StoreFuture<'a, T> {
        if self.hang.load(Ordering::SeqCst) {
            Box::pin(std::future::pending())
        } else {
            Box::pin(std::future::ready(Err(StoreError::from_kind(
                StoreErrorKind::Unavailable,
            ))))
        }
    }
}

impl SessionStore for Switchable {
    fn check_and_advance<'a>(
        &'a self,
        key: &'a str,
        iat: i64,
        now: i64,
        limits: WindowLimits,
    ) -> StoreFuture<'a, SessionVerdict> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return self.failure();
        }
        self.inner.check_and_advance(key, iat, now, limits)
    }

    fn revoke<'a>(&'a self, key: &'a str, now: i64, limits: WindowLimits) -> StoreFuture<'a, ()> {
        self.inner.revoke(key, now, limits)
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        if !self.pings {
            return Box::pin(std::future::ready(Err(StoreError::from_kind(
                StoreErrorKind::Unsupported,
            ))));
        }
        self.pinged.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return self.failure();
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

struct Setup {
    store: Arc<Switchable>,
    verifier: Verifier,
    sign_in: SignIn,
    _jwks: JwksServer,
}

async fn setup(store: Arc<Switchable>, sessions: impl Fn(SessionConfig) -> SessionConfig) -> Setup {
    let jwks = JwksServer::start("eu-west-1_Breaker").await;
    jwks.set_keys(&[key(0)]);
    let config = SessionConfig::new(store.clone() as Arc<dyn SessionStore>)
        .timeout(Duration::from_millis(100));
    let verifier = Verifier::new(
        support::local_config(&jwks, TokenUse::Access, "client-b").session_window(sessions(config)),
    )
    .unwrap();
    let sign_in = SignIn::new(&jwks, "client-b");
    Setup {
        store,
        verifier,
        sign_in,
        _jwks: jwks,
    }
}

/// Verifies until the window accepts again (the store answered, the breaker closed), at most
/// for `deadline`; how long that took.
async fn until_accepted(setup: &Setup, token: &str, deadline: Duration) -> Duration {
    let started = Instant::now();
    loop {
        match setup.verifier.verify(token).await {
            Ok(_) => return started.elapsed(),
            Err(AuthError::StoreUnavailable) if started.elapsed() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => panic!("expected recovery within {deadline:?}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn after_three_failures_the_store_is_not_asked_until_a_probe_finds_it() {
    let setup = setup(Switchable::new(true, true), |c| c).await;
    let token = setup.sign_in.token(0);
    setup.verifier.verify(&token).await.expect("store up");
    assert_eq!(setup.store.checks.load(Ordering::SeqCst), 1);

    setup.store.down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(
            setup.verifier.verify(&token).await.unwrap_err(),
            AuthError::StoreUnavailable
        );
    }
    assert_eq!(
        setup.store.checks.load(Ordering::SeqCst),
        4,
        "three timed out"
    );
    // Open: answered without the store.
    for _ in 0..50 {
        assert_eq!(
            setup.verifier.verify(&token).await.unwrap_err(),
            AuthError::StoreUnavailable
        );
    }
    assert_eq!(
        setup.store.checks.load(Ordering::SeqCst),
        4,
        "no check reached the store while the circuit is open"
    );

    // The probe keeps asking while the store is down; the circuit stays open.
    let pinged = setup.store.pinged.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(setup.store.pinged.load(Ordering::SeqCst) > pinged);
    assert_eq!(
        setup.verifier.verify(&token).await.unwrap_err(),
        AuthError::StoreUnavailable
    );

    setup.store.down.store(false, Ordering::SeqCst);
    let took = until_accepted(&setup, &token, Duration::from_secs(10)).await;
    println!("circuit breaker: accepted again {took:?} after the store came back");
    // The window is intact: the next token moves it, the one before stays, older is refused.
    let (t1, t2) = (setup.sign_in.token(1), setup.sign_in.token(2));
    setup.verifier.verify(&t1).await.unwrap();
    setup.verifier.verify(&t2).await.unwrap();
    assert!(matches!(
        setup.verifier.verify(&token).await,
        Err(AuthError::InvalidToken(
            tower_cognito::InvalidToken::Superseded
        ))
    ));
}

#[tokio::test]
async fn with_fail_open_an_open_circuit_accepts_on_the_signature_at_once() {
    let setup = setup(Switchable::new(false, true), |c| c.fail_open(true)).await;
    let token = setup.sign_in.token(0);
    setup.store.down.store(true, Ordering::SeqCst);
    for _ in 0..10 {
        setup.verifier.verify(&token).await.expect("fail-open");
    }
    assert_eq!(setup.store.checks.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn without_the_breaker_every_check_waits_for_the_store() {
    let setup = setup(
        Switchable::new(false, true),
        SessionConfig::no_circuit_breaker,
    )
    .await;
    let token = setup.sign_in.token(0);
    setup.store.down.store(true, Ordering::SeqCst);
    for _ in 0..10 {
        assert_eq!(
            setup.verifier.verify(&token).await.unwrap_err(),
            AuthError::StoreUnavailable
        );
    }
    assert_eq!(setup.store.checks.load(Ordering::SeqCst), 10);
    assert_eq!(setup.store.pinged.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_store_without_a_ping_is_tried_again_after_one_interval() {
    let setup = setup(Switchable::new(false, false), |c| {
        c.circuit_breaker(2, Duration::from_millis(50))
    })
    .await;
    let token = setup.sign_in.token(0);
    setup.store.down.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        assert!(setup.verifier.verify(&token).await.is_err());
    }
    assert_eq!(setup.store.checks.load(Ordering::SeqCst), 2);
    // Half-open while still down: one more check reaches it and opens the circuit again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        assert!(setup.verifier.verify(&token).await.is_err());
    }
    assert_eq!(setup.store.checks.load(Ordering::SeqCst), 3);
    setup.store.down.store(false, Ordering::SeqCst);
    until_accepted(&setup, &token, Duration::from_secs(10)).await;
}

#[test]
fn breaker_settings_are_checked() {
    let config = |sessions: SessionConfig| {
        tower_cognito::CognitoConfig::new(
            tower_cognito::UserPool::parse("eu-west-1_Offline").unwrap(),
            TokenUse::Access,
            tower_cognito::ClientIds::one("c"),
        )
        .jwks_document(r#"{"keys":[]}"#)
        .fetch_keys(false)
        .session_window(sessions)
    };
    let store = || Arc::new(MemoryStore::new(10)) as Arc<dyn SessionStore>;
    for bad in [
        SessionConfig::new(store()).circuit_breaker(0, Duration::from_millis(100)),
        SessionConfig::new(store()).circuit_breaker(3, Duration::from_millis(1)),
    ] {
        assert!(matches!(
            Verifier::new(config(bad)).unwrap_err(),
            tower_cognito::ConfigError::InvalidSetting {
                setting: "circuit_breaker",
                ..
            }
        ));
    }
}
