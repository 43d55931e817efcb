//! The key cache's timing, through the real verifier and layer, on tokio's paused clock.
//!
//! The JWKS endpoint is a [`MemoryJwks`] (no socket), so `#[tokio::test(start_paused = true)]`
//! and `tokio::time::advance` drive the cooldown, the max age and fetches that take a while or
//! never end: nothing here sleeps, and every "within the cooldown" is exact. What is about HTTP
//! (status codes, bodies, size caps, the timeouts of a real socket) stays in
//! `tests/it/jwks_cache.rs`, against a real local endpoint.
//!
//! A paused clock needs the current-thread runtime: "concurrent" requests are tasks spawned on
//! it, which interleave at every await, and a fetch in flight is one that has not been answered.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt};
use tower_cognito_testing::SigningKey;

use super::memory::MemoryJwks;
use crate::{
    AccessClaims, AuthError, ClientIds, CognitoAuthLayer, CognitoConfig, InvalidToken, IssuerForm,
    TokenUse, UserPool, Verified, Verifier,
};

const POOL: &str = "eu-west-1_JwksUnit1";
const CLIENT: &str = "3n4b5urk1ft4fl3mg5e62d9ado";
/// A short cooldown.
const COOLDOWN: Duration = Duration::from_millis(300);
/// A short max age.
const MAX_AGE: Duration = Duration::from_secs(1);
/// How long (on the paused clock) a request may wait before the test calls it held up.
const DEADLINE: Duration = Duration::from_secs(10);

type App = BoxCloneService<Request<()>, Response<String>, Infallible>;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Three RSA-2048 keys (kids `unit-key-0` .. `unit-key-2`), generated once, in parallel.
fn key(i: usize) -> &'static SigningKey {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|i| s.spawn(move || SigningKey::generate().with_kid(format!("unit-key-{i}"))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("key generation"))
                .collect()
        })
    })[i]
}

fn jwks_of(keys: &[&SigningKey]) -> Vec<Value> {
    keys.iter().map(|k| k.jwk()).collect()
}

/// An endpoint serving `keys`.
fn endpoint(keys: &[&SigningKey]) -> Arc<MemoryJwks> {
    let jwks = MemoryJwks::new();
    jwks.serve_jwks(&jwks_of(keys));
    jwks
}

/// Access tokens of `CLIENT` of the pool, keys from `jwks`.
fn config(jwks: &MemoryJwks) -> CognitoConfig {
    CognitoConfig::new(
        UserPool::parse(POOL).unwrap(),
        TokenUse::Access,
        ClientIds::one(CLIENT),
    )
    .jwks_url(jwks.url())
}

/// [`config`] with a short cooldown and max age.
fn fast_config(jwks: &MemoryJwks) -> CognitoConfig {
    config(jwks).jwks_cooldown(COOLDOWN).jwks_max_age(MAX_AGE)
}

fn verifier(config: CognitoConfig) -> Verifier {
    Verifier::new(config).unwrap()
}

/// Cognito-like access-token claims, issued now (by the wall clock: the verifier's own clock
/// is not tokio's), a fresh `jti` each.
fn claims() -> Value {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    json!({
        "sub": "7d8ca528-4931-4254-9273-ea5ee853f271",
        "iss": UserPool::parse(POOL).unwrap().issuer(IssuerForm::Original),
        "client_id": CLIENT,
        "origin_jti": format!("00000000-0000-4000-8000-{n:012x}"),
        "event_id": format!("00000000-0000-4000-9000-{n:012x}"),
        "token_use": "access",
        "scope": "openid profile",
        "auth_time": now,
        "exp": now + 3600,
        "iat": now,
        "jti": format!("00000000-0000-4000-a000-{n:012x}"),
        "username": "alice",
        "version": 2,
    })
}

/// A valid token signed by `key` under its own kid.
fn token(key: &SigningKey) -> String {
    key.sign_jwt(&claims())
}

/// A valid signature by key 0, under another `kid`.
fn token_with_kid(kid: &str) -> String {
    key(0).sign_with_header(&json!({"alg": "RS256", "kid": kid}), &claims())
}

fn app(verifier: Verifier) -> App {
    let svc = ServiceBuilder::new()
        .layer(CognitoAuthLayer::new(verifier))
        .service_fn(|req: Request<()>| async move {
            let body = match req.extensions().get::<Verified<AccessClaims>>() {
                Some(v) => format!("user={}", v.username),
                None => "NO CLAIMS".to_owned(),
            };
            Ok::<_, Infallible>(Response::new(body))
        });
    BoxCloneService::new(svc)
}

fn request(token: &str) -> Request<()> {
    Request::builder()
        .uri("/orders")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(())
        .unwrap()
}

async fn send(app: &App, token: &str) -> Response<String> {
    app.clone().oneshot(request(token)).await.unwrap()
}

/// `tokens` as requests all at once, each a task of its own; the responses.
async fn send_concurrently(app: &App, tokens: Vec<String>) -> Vec<Response<String>> {
    let mut set = JoinSet::new();
    for token in tokens {
        let call = app.clone().oneshot(request(&token));
        set.spawn(async move { call.await.unwrap() });
    }
    let mut responses = Vec::new();
    while let Some(resp) = set.join_next().await {
        responses.push(resp.unwrap());
    }
    responses
}

/// `answer`, which must complete while a fetch that never ends is in flight. On the paused
/// clock, a request held up by that fetch leaves the runtime idle: the clock jumps to
/// [`DEADLINE`] and the test fails instead of hanging.
async fn answered<F: std::future::Future>(what: &str, answer: F) -> F::Output {
    tokio::time::timeout(DEADLINE, answer)
        .await
        .unwrap_or_else(|_| panic!("{what} waited for the hanging refresh"))
}

/// Lets the spawned fetches run, without moving the clock, until `n` have started.
async fn started(jwks: &MemoryJwks, n: usize) {
    for _ in 0..10_000 {
        if jwks.fetches() >= n {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("{} of {n} fetches started", jwks.fetches());
}

fn error_of(resp: &Response<String>) -> Option<&AuthError> {
    resp.extensions().get::<AuthError>()
}

#[track_caller]
fn assert_ok(resp: &Response<String>) {
    assert_eq!(resp.status(), 200, "refused with {:?}", error_of(resp));
    assert_eq!(resp.body(), "user=alice");
}

#[track_caller]
fn assert_unknown_key(resp: &Response<String>) {
    assert_eq!(
        error_of(resp),
        Some(&AuthError::InvalidToken(InvalidToken::UnknownKey))
    );
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers().get(WWW_AUTHENTICATE).unwrap(),
        "Bearer realm=\"cognito\", error=\"invalid_token\", \
         error_description=\"The token signing key is unknown\""
    );
}

/// 503 with no challenge: our outage is not the client's fault.
#[track_caller]
fn assert_keys_unavailable(resp: &Response<String>) {
    assert_eq!(error_of(resp), Some(&AuthError::KeysUnavailable));
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        resp.headers().get(WWW_AUTHENTICATE).is_none(),
        "no WWW-Authenticate on 503"
    );
    assert_eq!(resp.body(), "");
}

/// A JWK under `kid` whose modulus has only `bytes * 8` bits (not a real key: the components
/// parse, which is all the key set checks).
fn undersized_jwk(kid: &str, bytes: usize) -> Value {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut n = engine.decode(key(0).jwk()["n"].as_str().unwrap()).unwrap();
    n.truncate(bytes);
    n[0] |= 0x80;
    n[bytes - 1] |= 1;
    json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": engine.encode(&n), "e": "AQAB"})
}

// ---------------------------------------------------------------------------------------------
// Single flight and cooldown
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn concurrent_misses_on_a_cold_cache_share_one_fetch() {
    let jwks = endpoint(&[key(0)]);
    // A slow endpoint, so the requests really overlap the fetch in flight.
    jwks.set_delay(Duration::from_millis(300));
    let app = app(verifier(config(&jwks)));

    let tokens = (0..100).map(|_| token(key(0))).collect();
    let responses = send_concurrently(&app, tokens).await;
    assert_eq!(responses.len(), 100);
    for resp in &responses {
        assert_ok(resp);
    }
    assert_eq!(jwks.fetches(), 1, "100 concurrent misses, one fetch");
}

#[tokio::test(start_paused = true)]
async fn an_unknown_kid_flood_causes_one_fetch_per_cooldown() {
    let jwks = endpoint(&[key(0)]);
    jwks.set_delay(Duration::from_millis(300));
    // The default 10 s cooldown: nothing in this test may fetch twice.
    let app = app(verifier(config(&jwks)));

    // 100 concurrent requests with the same kid the endpoint does not serve.
    let tokens = (0..100)
        .map(|_| token_with_kid("same-unknown-kid"))
        .collect();
    for resp in send_concurrently(&app, tokens).await {
        assert_unknown_key(&resp);
    }
    assert_eq!(jwks.fetches(), 1, "one fetch for 100 identical misses");

    // Right after, 100 requests with 100 different random kids: all within the cooldown.
    let tokens = (0..100)
        .map(|i| token_with_kid(&format!("random-kid-{i}-{}", claims()["jti"])))
        .collect();
    for resp in send_concurrently(&app, tokens).await {
        assert_unknown_key(&resp);
    }
    assert_eq!(
        jwks.fetches(),
        1,
        "random kids within the cooldown must not fetch"
    );

    // Very long kids are not even looked up.
    assert_unknown_key(&send(&app, &token_with_kid(&"k".repeat(1000))).await);

    // The known key still verifies from the cache.
    assert_ok(&send(&app, &token(key(0))).await);
    assert_eq!(jwks.fetches(), 1);
}

// ---------------------------------------------------------------------------------------------
// Rotation and removal
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_rotated_key_is_picked_up_after_the_cooldown() {
    let jwks = endpoint(&[key(0)]);
    let cooldown = Duration::from_millis(500);
    let verifier = verifier(config(&jwks).jwks_cooldown(cooldown));
    let app = app(verifier.clone());
    assert_eq!(verifier.prefetch_keys().await, Ok(1));
    assert_ok(&send(&app, &token(key(0))).await);

    // Cognito starts signing with a new key.
    jwks.serve_jwks(&jwks_of(&[key(0), key(1)]));
    let rotated = token(key(1));
    // Within the cooldown of the warm-up fetch: no new fetch yet, to its last millisecond.
    assert_unknown_key(&send(&app, &rotated).await);
    assert_eq!(jwks.fetches(), 1);
    tokio::time::advance(cooldown - Duration::from_millis(1)).await;
    assert_unknown_key(&send(&app, &rotated).await);
    assert_eq!(jwks.fetches(), 1);

    // Once the cooldown ends the same layer, without a restart, fetches and accepts the new key.
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_ok(&send(&app, &rotated).await);
    assert_eq!(jwks.fetches(), 2, "the new kid caused a fetch");
    // Both keys now verify from the cache.
    assert_ok(&send(&app, &token(key(0))).await);
    assert_ok(&send(&app, &rotated).await);
    assert_eq!(jwks.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_removed_key_stops_verifying_after_a_refresh() {
    let jwks = endpoint(&[key(0), key(1)]);
    let verifier = verifier(fast_config(&jwks));
    let app = app(verifier.clone());
    let start = Instant::now();
    assert_eq!(verifier.prefetch_keys().await, Ok(2));
    let retiring = token(key(1));
    assert_ok(&send(&app, &retiring).await);

    // Cognito drops key 1.
    jwks.serve_jwks(&jwks_of(&[key(0)]));
    // The cached key serves until the keys are older than the max age...
    tokio::time::advance(MAX_AGE - Duration::from_millis(1)).await;
    assert_ok(&send(&app, &retiring).await);
    assert_eq!(jwks.fetches(), 1);
    // ...and so does the request that finds them old: it starts the refresh in the background.
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_ok(&send(&app, &retiring).await);
    jwks.settled(2).await;
    // Refreshed: the retired key is refused.
    let refused_at = start.elapsed();
    assert_unknown_key(&send(&app, &retiring).await);
    assert!(
        refused_at >= MAX_AGE,
        "refused after {refused_at:?}, before the max age: the cached key must serve until then"
    );
    assert_eq!(jwks.fetches(), 2);
    // The remaining key still verifies.
    assert_ok(&send(&app, &token(key(0))).await);
}

/// Moved from `tests/it/token_cache.rs`: the verified-token cache honours a hit only while the
/// JWKS still maps the token's kid to the key that verified it.
#[tokio::test(start_paused = true)]
async fn a_key_removed_from_the_jwks_invalidates_the_tokens_it_signed() {
    let jwks = endpoint(&[key(0), key(1)]);
    let verifier = verifier(
        config(&jwks)
            .leeway(Duration::ZERO)
            .jwks_cooldown(Duration::from_millis(100))
            .jwks_max_age(Duration::from_millis(200)),
    );
    let claims = claims();
    let removed = key(0).sign_jwt(&claims);
    let kept = key(1).sign_jwt(&claims);
    // Each verification names the key that made it, fresh and from the cache alike.
    for _ in 0..2 {
        assert_eq!(
            verifier.verify(&removed).await.unwrap().key_id(),
            key(0).kid()
        );
        assert_eq!(verifier.verify(&kept).await.unwrap().key_id(), key(1).kid());
    }
    assert_eq!(verifier.cached_tokens(), 2);

    jwks.serve_jwks(&jwks_of(&[key(1)]));
    let fetches = jwks.fetches();
    // Keys now older than the max age: the next verification refreshes them in the background
    // (and is still answered from the cache); once the refresh is stored, the token is refused.
    tokio::time::advance(Duration::from_millis(300)).await;
    let mut answers = 0;
    loop {
        match verifier.verify(&removed).await {
            Err(AuthError::InvalidToken(InvalidToken::UnknownKey)) => break,
            Ok(_) if answers < 10 => {
                answers += 1;
                jwks.settled(fetches + 1).await;
            }
            other => panic!("expected the removed key's token to be refused, got {other:?}"),
        }
    }
    assert!(jwks.fetches() > fetches);
    // The unchanged key keeps its cached tokens valid across the refresh.
    verifier.verify(&kept).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Outages
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn jwks_down_at_start_is_503_then_recovers_after_the_cooldown() {
    let jwks = endpoint(&[key(0)]);
    jwks.go_down();
    let verifier = verifier(fast_config(&jwks));
    let app = app(verifier.clone());
    let token = token(key(0));

    assert_keys_unavailable(&send(&app, &token).await);
    assert_eq!(jwks.fetches(), 1, "one attempt, unanswered");

    // The endpoint comes back; within the cooldown of the failed fetch it is not asked again.
    jwks.serve_jwks(&jwks_of(&[key(0)]));
    assert_keys_unavailable(&send(&app, &token).await);
    tokio::time::advance(COOLDOWN - Duration::from_millis(1)).await;
    assert_keys_unavailable(&send(&app, &token).await);
    assert_eq!(jwks.fetches(), 1);

    tokio::time::advance(Duration::from_millis(1)).await;
    assert_ok(&send(&app, &token).await);
    assert_eq!(jwks.fetches(), 2);
    assert_eq!(verifier.prefetch_keys().await, Ok(1));
}

#[tokio::test(start_paused = true)]
async fn prefetch_reports_unavailable_keys() {
    let jwks = MemoryJwks::new();
    jwks.go_down();
    let verifier = verifier(fast_config(&jwks));
    assert_eq!(
        verifier.prefetch_keys().await,
        Err(AuthError::KeysUnavailable)
    );
    jwks.serve_jwks(&jwks_of(&[key(0), key(2)]));
    tokio::time::advance(COOLDOWN).await;
    assert_eq!(verifier.prefetch_keys().await, Ok(2));
    assert_eq!(jwks.fetches(), 2, "the failed attempt, then one fetch");
}

#[tokio::test(start_paused = true)]
async fn cached_keys_keep_working_when_refreshes_fail() {
    let jwks = endpoint(&[key(0)]);
    let verifier = verifier(fast_config(&jwks));
    let app = app(verifier.clone());
    assert_eq!(verifier.prefetch_keys().await, Ok(1));
    let token = token(key(0));

    // Each outage in turn: after the keys age past the max age, requests trigger background
    // refreshes that fail, and the cached keys keep verifying.
    for outage in ["HTTP 500", "HTML", "bad keys"] {
        match outage {
            "HTTP 500" => jwks.fail_with_status(500),
            "HTML" => jwks.serve_body("<html><body>Bad gateway</body></html>"),
            _ => jwks.serve_jwks(&[json!({"kty": "EC", "kid": "x"})]),
        }
        // Counted after the switch: the next fetch sees this outage.
        let fetches = jwks.fetches();
        let start = Instant::now();
        while jwks.fetches() == fetches {
            assert_ok(&send(&app, &token).await);
            assert!(
                start.elapsed() < DEADLINE,
                "no refresh attempt during {outage}"
            );
            tokio::time::advance(Duration::from_millis(50)).await;
        }
        // Once the failed refresh is over, check again.
        jwks.settled(fetches + 1).await;
        assert_ok(&send(&app, &token).await);
        // An unknown kid with keys cached is an unknown key, not an outage.
        assert_unknown_key(&send(&app, &token_with_kid("ghost")).await);
    }

    // The endpoint goes away altogether.
    jwks.go_down();
    let start = Instant::now();
    let fetches = jwks.fetches();
    while start.elapsed() < 3 * COOLDOWN {
        assert_ok(&send(&app, &token).await);
        tokio::time::advance(Duration::from_millis(50)).await;
    }
    assert!(
        jwks.fetches() > fetches,
        "refreshes were attempted meanwhile"
    );
    assert_eq!(
        verifier.prefetch_keys().await,
        Ok(1),
        "the cached key is still there"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_refresh_does_not_delay_requests_with_cached_keys() {
    let jwks = endpoint(&[key(0)]);
    let verifier = verifier(fast_config(&jwks));
    let app = app(verifier.clone());
    assert_eq!(verifier.prefetch_keys().await, Ok(1));
    let token = token(key(0));

    // The endpoint starts hanging (the refresh below never ends), and the keys grow old.
    jwks.hang();
    tokio::time::advance(MAX_AGE + Duration::from_millis(100)).await;

    // This request starts the background refresh and is not held up by it.
    assert_ok(&answered("the request that triggered the refresh", send(&app, &token)).await);
    // The refresh has reached the endpoint and hangs there...
    started(&jwks, 2).await;
    // ...while requests with the cached key go straight through, one by one and concurrently.
    for _ in 0..5 {
        assert_ok(&answered("a cached-key request", send(&app, &token)).await);
    }
    let tokens = (0..20).map(|_| token.clone()).collect();
    for resp in answered(
        "20 concurrent cached-key requests",
        send_concurrently(&app, tokens),
    )
    .await
    {
        assert_ok(&resp);
    }
    assert_eq!(jwks.fetches(), 2, "still just the one refresh in flight");
}

/// Only keys of 2048 to 8192 bits are kept: when the endpoint starts serving only a 1024-bit
/// key, the refresh fails and keeps the cached 2048-bit key, instead of replacing it and
/// refusing every genuine token.
#[tokio::test(start_paused = true)]
async fn a_refresh_to_only_undersized_keys_keeps_the_cached_keys() {
    let jwks = endpoint(&[key(0)]);
    let verifier = verifier(fast_config(&jwks));
    let app = app(verifier.clone());
    assert_eq!(verifier.prefetch_keys().await, Ok(1));
    let token = token(key(0));
    assert_ok(&send(&app, &token).await);

    jwks.serve_jwks(&[undersized_jwk(key(0).kid(), 128)]);
    tokio::time::advance(MAX_AGE).await;
    // This request finds the keys old and starts the background refresh.
    assert_ok(&send(&app, &token).await);
    jwks.settled(2).await;

    let resp = send(&app, &token).await;
    assert_eq!(error_of(&resp), None, "the cached key was replaced");
    assert_ok(&resp);
}

// ---------------------------------------------------------------------------------------------
// No fetching at all
// ---------------------------------------------------------------------------------------------

/// With fetching off, the configured endpoint is never asked: not for an unknown kid, nor for
/// keys an hour older than a max age of zero.
#[tokio::test(start_paused = true)]
async fn fetch_keys_false_never_fetches_whatever_the_time() {
    let jwks = endpoint(&[key(0), key(1)]);
    let doc = json!({ "keys": jwks_of(&[key(0)]) }).to_string();
    let verifier = verifier(
        config(&jwks)
            .jwks_document(doc)
            .fetch_keys(false)
            .jwks_cooldown(Duration::ZERO)
            .jwks_max_age(Duration::ZERO),
    );
    let app = app(verifier.clone());
    assert_ok(&send(&app, &token(key(0))).await);
    assert_unknown_key(&send(&app, &token(key(1))).await);
    assert_eq!(verifier.prefetch_keys().await, Ok(1));
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_ok(&send(&app, &token(key(0))).await);
    assert_unknown_key(&send(&app, &token(key(1))).await);
    assert_eq!(jwks.fetches(), 0);
}
