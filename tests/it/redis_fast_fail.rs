//! A single Redis server that is down costs a request next to nothing (issue 16).
//!
//! Each test starts a `redis-server` of its own on a spare loopback port
//! (`support::stores::OwnRedis`) and kills it; the shared server on 6379 is never stopped.
//!
//! - With no circuit breaker and a store timeout of 30 s, hundreds of requests one after another
//!   against the killed server all answer 503 (`StoreUnavailable`), and the whole run ends
//!   before one store timeout has passed: no request waits for a reconnect loop. (Waiting for
//!   redis-rs's reconnect with its retries and backoff, 130 to 260 ms each, the same run took
//!   longer than the timeout.) Started again on the same port, the same store answers 200 by
//!   itself.
//! - The same with the default circuit breaker: the answers before it opens are as fast.
//! - No reconnect storm: a port that accepts connections and closes them at once sees one
//!   connection attempt per backoff step, however many requests come meanwhile.
//! - `revoke_session` tries the server: right after a restart it succeeds at once, without
//!   waiting for the background reconnect.
//! - A server that is up but slow (`DEBUG SLEEP`) is still cut at the store timeout, and is not
//!   taken for down: the first request after the pause is answered 200.
//! - The refresh store (feature `refresh`) fails as fast and recovers the same way.
//! - An operator detail: a URL naming a database the server does not have is refused as
//!   `InvalidInput` at connect, not taken for an outage (Valkey 9 cluster nodes answer so too).
//!
//! Run with `--nocapture` for the figures: time to 503 (first answers, median, p99), recovery
//! after the restart, connection attempts.
#![cfg(feature = "redis")]

use crate::support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use support::stores::OwnRedis;
use support::{key, local_config, Answer, ApiServer, JwksServer, SignIn};
use tower_cognito::session::{RedisStore, SessionConfig, SessionStore};
use tower_cognito::{AuthError, InvalidToken, TokenUse, Verified, Verifier};

const POOL: &str = "us-east-1_FastFail01";
const CLIENT: &str = "fastfail0client0id0tests";
/// A store timeout no machine comes near: an answer that waits for a reconnect loop fills a
/// good part of it, one that does not is far below.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Requests sent one after another against the dead server. At 130 ms or more each (the
/// reconnect loop this replaces) they took longer than [`TIMEOUT`].
const REQUESTS: usize = 300;
/// The longest the layer may take to answer 200 after the server is back (the requirement is
/// one second; this bound only keeps a stuck test from running forever).
const RECOVERY: Duration = Duration::from_secs(10);

async fn handler(request: Request<String>) -> Result<Response<String>, Infallible> {
    let verified = request.extensions().get::<Verified>().expect("Verified");
    Ok(Response::new(
        verified.session_key().unwrap_or_default().to_owned(),
    ))
}

async fn api(jwks: &JwksServer, sessions: SessionConfig) -> ApiServer {
    let config = local_config(jwks, TokenUse::Access, CLIENT).session_window(sessions);
    let verifier: Verifier = Verifier::new(config).expect("verifier");
    verifier.prefetch_keys().await.expect("prefetch keys");
    ApiServer::new(verifier, handler)
}

async fn store(redis: &OwnRedis) -> Arc<RedisStore> {
    let store = RedisStore::connect(&redis.url())
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", redis.url()));
    Arc::new(store)
}

/// Far above anything a dead server may cost: a request slower than this hangs.
const HANG_GUARD: Duration = Duration::from_secs(60);

async fn call(api: &ApiServer, token: &str) -> Answer {
    api.answer(token, HANG_GUARD).await
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// `first` answers one by one, then median, p99 and max of all.
fn figures(times: &[Duration], first: usize) -> String {
    let shown: Vec<String> = times
        .iter()
        .take(first)
        .map(|t| format!("{:.2}", t.as_secs_f64() * 1000.0))
        .collect();
    let mut sorted = times.to_vec();
    sorted.sort();
    format!(
        "first {} (ms): [{}]; all {}: median {:?}, p99 {:?}, max {:?}",
        shown.len(),
        shown.join(", "),
        times.len(),
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99),
        sorted.last().copied().unwrap_or_default()
    )
}

/// Requests one after another until `count` were answered or `budget` has passed; every answer
/// must be a 503 for the store. Returns the time each took.
async fn requests_while_down(
    api: &ApiServer,
    token: &str,
    count: usize,
    budget: Duration,
) -> Vec<Duration> {
    let start = Instant::now();
    let mut times = Vec::with_capacity(count);
    while times.len() < count && start.elapsed() < budget {
        let answer = call(api, token).await;
        answer.assert_store_unavailable();
        times.push(answer.took);
    }
    times
}

/// Calls every 5 ms until the answer is 200; returns how long after `since` that answer came.
async fn wait_until_ok(api: &ApiServer, token: &str, since: Instant) -> Duration {
    loop {
        let answer = call(api, token).await;
        if answer.status == StatusCode::OK {
            return since.elapsed();
        }
        answer.assert_store_unavailable();
        assert!(
            since.elapsed() < RECOVERY,
            "no 200 within {RECOVERY:?} of the restart: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// No breaker, a 30 s store timeout: hundreds of requests against the killed server, one after
/// another, all 503, all of them together well within one store timeout. Then the server comes
/// back and the same layer (the same store) answers 200 again, and the window works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_server_answers_503_at_once_without_the_breaker() {
    let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let mut redis = OwnRedis::start_volatile().await;
    let sessions = SessionConfig::new(store(&redis).await)
        .timeout(TIMEOUT)
        .no_circuit_breaker();
    let api = api(&jwks, sessions).await;
    let sign_in = SignIn::new(&jwks, CLIENT);
    let token = sign_in.token(0);
    assert_eq!(call(&api, &token).await.status, StatusCode::OK);

    redis.kill();
    let start = Instant::now();
    let times = requests_while_down(&api, &token, REQUESTS, TIMEOUT).await;
    let all = start.elapsed();
    println!(
        "redis fast fail, no breaker: {} answers 503 in {all:?}; {}",
        times.len(),
        figures(&times, 20)
    );
    assert_eq!(
        times.len(),
        REQUESTS,
        "only {} of {REQUESTS} answers within one store timeout ({TIMEOUT:?}): requests wait \
         for the dead server; {}",
        times.len(),
        figures(&times, 20)
    );
    assert!(all < TIMEOUT, "{REQUESTS} answers took {all:?}");

    // Down long enough for the pauses between reconnect attempts to reach their longest.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart().await;
    let back = Instant::now();
    let took = wait_until_ok(&api, &token, back).await;
    println!("redis fast fail, no breaker: 200 again {took:?} after the server answered");
    // The window works again (an empty server: the scripts come back through NOSCRIPT).
    assert_eq!(call(&api, &sign_in.token(1)).await.status, StatusCode::OK);
    assert_eq!(call(&api, &sign_in.token(2)).await.status, StatusCode::OK);
    let refused = call(&api, &token).await;
    assert_eq!(
        refused.error,
        Some(AuthError::InvalidToken(InvalidToken::Superseded)),
        "{refused:?}"
    );
}

/// The default breaker (3 failures in a row): the answers before it opens are as fast as the
/// ones it gives itself; after the restart its probe closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_server_with_the_breaker() {
    let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let mut redis = OwnRedis::start_volatile().await;
    let api = api(
        &jwks,
        SessionConfig::new(store(&redis).await).timeout(TIMEOUT),
    )
    .await;
    let token = SignIn::new(&jwks, CLIENT).token(0);
    assert_eq!(call(&api, &token).await.status, StatusCode::OK);

    redis.kill();
    let start = Instant::now();
    let times = requests_while_down(&api, &token, 50, TIMEOUT).await;
    let all = start.elapsed();
    println!(
        "redis fast fail, breaker on: {} answers 503 in {all:?}; before it opened (the first \
         3): {}; {}",
        times.len(),
        figures(&times[..3.min(times.len())], 3),
        figures(&times, 20)
    );
    assert_eq!(times.len(), 50);
    assert!(all < TIMEOUT, "50 answers took {all:?}");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart().await;
    let back = Instant::now();
    let took = wait_until_ok(&api, &token, back).await;
    println!(
        "redis fast fail, breaker on: 200 again {took:?} after the server answered (the \
         breaker probes every 200 ms)"
    );
}

/// A port that accepts connections and closes them at once (a dead server behind a proxy, or
/// one at its client limit): however many requests come, the store makes one connection
/// attempt at a time with a growing pause between them, and every request is answered 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reconnect_storm() {
    let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let mut redis = OwnRedis::start_volatile().await;
    let sessions = SessionConfig::new(store(&redis).await)
        .timeout(TIMEOUT)
        .no_circuit_breaker();
    let api = api(&jwks, sessions).await;
    let token = SignIn::new(&jwks, CLIENT).token(0);
    assert_eq!(call(&api, &token).await.status, StatusCode::OK);

    redis.kill();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", redis.port()))
        .await
        .expect("bind the dead server's port");
    let accepted = Arc::new(AtomicUsize::new(0));
    let acceptor = {
        let accepted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        })
    };
    let start = Instant::now();
    let mut answers = 0;
    while start.elapsed() < Duration::from_secs(2) {
        let answer = call(&api, &token).await;
        answer.assert_store_unavailable();
        assert!(answer.took < TIMEOUT, "{answer:?}");
        answers += 1;
    }
    let window = start.elapsed();
    let attempts = accepted.load(Ordering::SeqCst);
    acceptor.abort();
    println!(
        "redis fast fail: {answers} requests in {window:?} against a port that closes every \
         connection: {attempts} connection attempts"
    );
    // Attempts are at least 20 ms apart (the first pause), later 250 ms: in two seconds a
    // dozen; one per request would be hundreds.
    let bound = 2 + (window.as_millis() / 20) as usize;
    assert!(
        attempts <= bound,
        "{attempts} connection attempts in {window:?} ({answers} requests): at most {bound}"
    );
    assert!(
        attempts < answers,
        "{attempts} attempts for {answers} requests: one per request"
    );
}

/// `revoke_session` is an explicit call: while the server is down it answers 503 at once, and
/// right after the server is back it reaches it without waiting for the background reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_tries_the_server() {
    let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let mut redis = OwnRedis::start_volatile().await;
    let sessions = SessionConfig::new(store(&redis).await)
        .timeout(TIMEOUT)
        .no_circuit_breaker();
    let api = api(&jwks, sessions).await;
    let sign_in = SignIn::new(&jwks, CLIENT);
    let token = sign_in.token(0);
    assert_eq!(call(&api, &token).await.status, StatusCode::OK);

    redis.kill();
    call(&api, &token).await.assert_store_unavailable();
    // Long enough for the reconnect pauses to reach their longest.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let start = Instant::now();
    assert_eq!(
        api.verifier.revoke_session(&sign_in.session_key()).await,
        Err(AuthError::StoreUnavailable)
    );
    let down = start.elapsed();
    assert!(down < TIMEOUT, "revocation while down took {down:?}");

    redis.restart().await;
    let start = Instant::now();
    api.verifier
        .revoke_session(&sign_in.session_key())
        .await
        .expect("revocation right after the restart");
    let up = start.elapsed();
    println!("redis fast fail: revocation while down answered in {down:?}, right after the restart done in {up:?}");
    let refused = call(&api, &token).await;
    assert_eq!(
        refused.error,
        Some(AuthError::InvalidToken(InvalidToken::Revoked)),
        "{refused:?}"
    );
}

/// Up but slow: a request is cut at the store timeout as before, and the store is not taken for
/// down: the first request after the pause is answered 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_server_is_cut_at_the_timeout_not_taken_for_down() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SHORT: Duration = Duration::from_millis(200);
    let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let redis = OwnRedis::start_volatile().await;
    let sessions = SessionConfig::new(store(&redis).await)
        .timeout(SHORT)
        .no_circuit_breaker();
    let api = api(&jwks, sessions).await;
    let token = SignIn::new(&jwks, CLIENT).token(0);
    assert_eq!(call(&api, &token).await.status, StatusCode::OK);

    let mut pause = tokio::net::TcpStream::connect(("127.0.0.1", redis.port()))
        .await
        .expect("connect for DEBUG SLEEP");
    pause
        .write_all(b"*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$3\r\n1.5\r\n")
        .await
        .expect("send DEBUG SLEEP");
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..3 {
        let answer = call(&api, &token).await;
        answer.assert_store_unavailable();
        assert!(
            answer.took >= SHORT && answer.took < SHORT + Duration::from_secs(1),
            "cut at the store timeout: {answer:?}"
        );
    }
    let mut ok = [0u8; 5];
    pause.read_exact(&mut ok).await.expect("DEBUG SLEEP answer");
    assert_eq!(&ok, b"+OK\r\n");
    let answer = call(&api, &token).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "right after the pause: {answer:?}"
    );
}

/// A refresh store on `redis`.
#[cfg(feature = "refresh")]
async fn refresh_store(redis: &OwnRedis) -> tower_cognito::refresh::RedisRefreshStore {
    tower_cognito::refresh::RedisRefreshStore::connect(&redis.url())
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", redis.url()))
}

/// The refresh store shares the connection: it fails as fast and comes back by itself.
#[cfg(feature = "refresh")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_store_fails_fast_and_recovers() {
    use tower_cognito::refresh::RefreshStore;
    use tower_cognito::session::StoreErrorKind;

    let mut redis = OwnRedis::start_volatile().await;
    let store = refresh_store(&redis).await;
    let now = support::now();
    assert_eq!(store.load("ab12", now).await.expect("load"), None);

    redis.kill();
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < REQUESTS && start.elapsed() < TIMEOUT {
        let t = Instant::now();
        let error = tokio::time::timeout(TIMEOUT, store.load("ab12", now))
            .await
            .expect("an answer within the timeout")
            .expect_err("the server is down");
        assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
        times.push(t.elapsed());
    }
    let all = start.elapsed();
    println!(
        "redis fast fail, refresh store: {} loads failed in {all:?}; {}",
        times.len(),
        figures(&times, 20)
    );
    assert_eq!(times.len(), REQUESTS, "{}", figures(&times, 20));

    redis.restart().await;
    let back = Instant::now();
    loop {
        if let Ok(None) = store.load("ab12", now).await {
            break;
        }
        assert!(back.elapsed() < RECOVERY, "no recovery within {RECOVERY:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "redis fast fail, refresh store: answering again {:?} after the server answered",
        back.elapsed()
    );
}

/// A sign-out (`RefreshStore::delete`) is an explicit call, as a revocation is: while the
/// server is taken for down it fails without waiting out the store timeout, and right after the
/// restart it reaches the server at once instead of waiting for the reconnect task's next try.
#[cfg(feature = "refresh")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_tries_the_server() {
    use tower_cognito::refresh::RefreshStore;
    use tower_cognito::session::StoreErrorKind;

    let mut redis = OwnRedis::start_volatile().await;
    let store = refresh_store(&redis).await;
    let now = support::now();
    assert_eq!(store.load("cd34", now).await.expect("load"), None);

    redis.kill();
    let error = store
        .load("cd34", now)
        .await
        .expect_err("the server is down");
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    // Long enough for the reconnect pauses to reach their longest.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let start = Instant::now();
    let error = tokio::time::timeout(TIMEOUT, store.delete("cd34"))
        .await
        .expect("an answer within the timeout")
        .expect_err("the server is down");
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    let down = start.elapsed();

    redis.restart().await;
    let start = Instant::now();
    store
        .delete("cd34")
        .await
        .expect("a sign-out right after the restart");
    println!(
        "redis fast fail, refresh store: sign-out while down answered in {down:?}, right after \
         the restart done in {:?}",
        start.elapsed()
    );
}

/// The store's own `ping` (readiness, the breaker's probe) fails as fast while the server is
/// down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_fails_fast_while_down() {
    let mut redis = OwnRedis::start_volatile().await;
    let store = store(&redis).await;
    store.ping().await.expect("ping while up");
    redis.kill();
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < 50 && start.elapsed() < TIMEOUT {
        let t = Instant::now();
        let error = tokio::time::timeout(TIMEOUT, store.ping())
            .await
            .expect("an answer within the timeout")
            .expect_err("the server is down");
        assert_eq!(
            error.kind(),
            tower_cognito::session::StoreErrorKind::Unavailable,
            "{error}"
        );
        times.push(t.elapsed());
    }
    println!("redis fast fail, ping: {}", figures(&times, 10));
    assert_eq!(times.len(), 50);
}

/// A database the server does not have (the shared server has 16) is a configuration error at
/// connect, `InvalidInput` with the reason, not an outage.
#[tokio::test]
async fn a_database_the_server_lacks_is_invalid_input() {
    use tower_cognito::session::StoreErrorKind;
    let url = format!("{}/4000", support::stores::redis_url());
    let error = RedisStore::connect(&url)
        .await
        .expect_err("no database 4000");
    assert_eq!(error.kind(), StoreErrorKind::InvalidInput, "{error}");
    assert!(error.to_string().contains("no database 4000"), "{error}");
}
