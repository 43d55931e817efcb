//! The layer when its dependencies fail: the JWKS endpoint, and the clock at its boundaries.
//!
//! `tests/it/jwks_cache.rs` already covers: the endpoint down at start (503, then recovery after
//! the cooldown), down after a successful fetch (cached keys keep working), HTTP 500 (one fetch
//! per cooldown), HTML, truncated JSON and other unusable bodies at start, a 100 KiB body over
//! the default cap, an EC-only refresh, and a refresh hanging for less than the request timeout.
//! This file adds what those leave out, each test printing what it saw (`--nocapture`):
//!
//! - an endpoint that hangs for longer than the configured `jwks_timeouts`: the timeout fires,
//!   at start (503 after the timeout) and on a refresh (requests whose key is cached are not
//!   delayed; a request for an unknown `kid` waits only until the timeout);
//! - refreshes to truncated JSON and to keys of the wrong type (EC, `oct`, and an `oct` key under
//!   the cached `kid`) keep the cached keys; EC/`oct`-only at start is 503;
//! - a 10 MiB body, with a `Content-Length` and streamed without one (chunked): the fetch stops
//!   at the cap, having read a small fraction of it; the cached keys remain (that it does so in
//!   under a second is a wall-clock budget: a `timing_` test, run by the timing step of
//!   `.ci/run`);
//! - a `kid` that now maps to a different key: after the refresh, tokens of the old key are
//!   refused (also those in the verified-token cache) and tokens of the new key accepted;
//! - `exp`, `nbf` and `iat` at the exact second before, at and after each boundary, for leeway 0
//!   and 5, with and without the verified-token cache.

use crate::support;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use serde_json::{json, Value};
use support::{access_claims, key, local_config, mint, ApiServer, JwksServer, TestKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tower_cognito::{
    AuthError, ClientIds, Clock, CognitoConfig, InvalidToken, TokenUse, UserPool, Verified,
    Verifier,
};

const POOL: &str = "eu-west-1_FailDeps1";
const CLIENT: &str = "faildeps0client0id0000000";
/// How long any polling loop may run before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);
/// 10 MiB.
const TEN_MIB: usize = 10 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

async fn handler(request: Request<String>) -> Result<Response<String>, std::convert::Infallible> {
    let verified = request.extensions().get::<Verified>().expect("Verified");
    Ok(Response::new(verified.username.clone()))
}

fn config(server: &JwksServer) -> CognitoConfig {
    local_config(server, TokenUse::Access, CLIENT)
}

fn api(verifier: &Verifier) -> ApiServer {
    ApiServer::new(verifier.clone(), handler)
}

/// A valid access token for the server's issuer, signed by `key` under its kid.
fn token_for(server: &JwksServer, key: &TestKey) -> String {
    mint(key, &access_claims(&server.issuer(), CLIENT))
}

/// What the layer answered, and how long it took.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    error: Option<AuthError>,
    took: Duration,
}

impl Answer {
    fn ok(&self) -> bool {
        self.status == StatusCode::OK && self.error.is_none()
    }
}

async fn call(api: &ApiServer, token: &str) -> Answer {
    let start = Instant::now();
    let response = api.get("/", token).await;
    Answer {
        status: response.status(),
        error: response.extensions().get::<AuthError>().cloned(),
        took: start.elapsed(),
    }
}

#[track_caller]
fn assert_ok(answer: &Answer) {
    assert!(answer.ok(), "refused: {answer:?}");
}

#[track_caller]
fn assert_refused(answer: &Answer, reason: InvalidToken) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    assert_eq!(
        answer.error,
        Some(AuthError::InvalidToken(reason)),
        "{answer:?}"
    );
}

#[track_caller]
fn assert_keys_unavailable(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
    assert_eq!(answer.error, Some(AuthError::KeysUnavailable), "{answer:?}");
}

/// Sends every token at once and returns the answers.
async fn call_concurrently(api: &ApiServer, tokens: Vec<String>) -> Vec<Answer> {
    let mut set = JoinSet::new();
    for token in tokens {
        let api = api.clone();
        set.spawn(async move { call(&api, &token).await });
    }
    let mut answers = Vec::new();
    while let Some(answer) = set.join_next().await {
        answers.push(answer.expect("no panic"));
    }
    answers
}

fn jwks_doc(keys: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "keys": keys })).unwrap()
}

/// An EC P-256 public key (RFC 7517 appendix A.1) under `kid`.
fn ec_jwk(kid: &str) -> Value {
    json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
        "y": "4Etl6SRW2YilurN5bL4-4D4hEoWKYCYe9ZmPsLTiaSY",
    })
}

/// The HMAC secret of [`oct_jwk`].
const OCT_SECRET: &[u8] = b"a shared secret an attacker would love to sign with";

/// A symmetric (`oct`) key under `kid`.
fn oct_jwk(kid: &str) -> Value {
    json!({"kty": "oct", "kid": kid, "alg": "HS256", "k": support::b64(OCT_SECRET)})
}

/// An HS256 token under `kid`, signed with [`OCT_SECRET`].
fn hs256_token(issuer: &str, kid: &str) -> String {
    let header = json!({"alg": "HS256", "kid": kid}).to_string();
    let payload = access_claims(issuer, CLIENT).to_string();
    let input = format!("{}.{}", support::b64(header), support::b64(payload));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, OCT_SECRET);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", support::b64(tag.as_ref()))
}

/// This process's resident and peak memory in KiB, from `/proc/self/status` (Linux).
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

// ---------------------------------------------------------------------------------------------
// A hanging endpoint: the configured timeout fires
// ---------------------------------------------------------------------------------------------

/// The request timeout of these tests (the connect timeout is shorter).
const HANG_TIMEOUT: Duration = Duration::from_millis(1000);

fn hanging_config(server: &JwksServer) -> CognitoConfig {
    config(server)
        .jwks_timeouts(Duration::from_millis(300), HANG_TIMEOUT)
        .jwks_cooldown(Duration::from_millis(300))
        .jwks_max_age(Duration::from_secs(1))
}

/// `answer`, which only the configured JWKS timeout can bring: the endpoint never answers.
/// [`DEADLINE`] only turns a timeout that never fires into a failure instead of a hung test.
async fn after_the_timeout<F: std::future::Future>(what: &str, answer: F) -> F::Output {
    tokio::time::timeout(DEADLINE, answer)
        .await
        .unwrap_or_else(|_| panic!("{what}: the JWKS timeout never fired"))
}

/// Cold cache, endpoint accepting connections but never answering: every waiting request gets
/// 503 once the configured timeout fires (the hang never ends), from one shared fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_endpoint_at_start_is_503_after_the_timeout() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    server.set_delay(Duration::MAX);
    let verifier: Verifier = Verifier::new(hanging_config(&server)).unwrap();
    let api = api(&verifier);
    let token = token_for(&server, key(0));

    let started = Instant::now();
    let answers = after_the_timeout(
        "20 concurrent requests",
        call_concurrently(&api, vec![token.clone(); 20]),
    )
    .await;
    let all = started.elapsed();
    for answer in &answers {
        assert_keys_unavailable(answer);
        assert!(
            answer.took >= HANG_TIMEOUT - Duration::from_millis(100),
            "answered before the timeout: {answer:?}"
        );
    }
    let slowest = answers.iter().map(|a| a.took).max().unwrap();
    println!(
        "hanging at start: 20 concurrent requests -> {} x 503 keys_unavailable, slowest {slowest:?} \
         (timeout {HANG_TIMEOUT:?}, the endpoint never answers), all done in {all:?}, JWKS \
         requests {}",
        answers.len(),
        server.fetch_count()
    );
    assert_eq!(server.fetch_count(), 1, "one shared fetch");
    assert_eq!(
        verifier.prefetch_keys().await,
        Err(AuthError::KeysUnavailable)
    );
}

/// Cached keys, then the endpoint hangs (it never answers): the background refresh times out
/// after the configured timeout; meanwhile requests whose key is cached go straight through (they
/// are answered while a request for an unknown `kid`, which joined the hanging fetch, still
/// waits), and that request is answered when the timeout fires. Once the endpoint answers
/// again, the next refresh brings the new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_refresh_times_out_and_does_not_delay_cached_keys() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let verifier: Verifier = Verifier::new(hanging_config(&server)).unwrap();
    let api = api(&verifier);
    assert_eq!(verifier.prefetch_keys().await, Ok(1));
    let token = token_for(&server, key(0));
    assert_ok(&call(&api, &token).await);

    // Fresh tokens for the requests made while the refresh hangs, so each one is verified
    // afresh and looks its key up; signed now, so that window holds verifications only.
    let sequential_tokens: Vec<String> = (0..10).map(|_| token_for(&server, key(0))).collect();
    let concurrent_tokens: Vec<String> = (0..50).map(|_| token_for(&server, key(0))).collect();
    let new_key_token = token_for(&server, key(1));
    server.set_delay(Duration::MAX);
    server.set_keys(&[key(0), key(1)]);
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the max age

    // This request finds the keys old and starts the refresh, without waiting for it: the
    // refresh is still in flight after it returned (the unknown kid below joins it).
    let refresh_started = Instant::now();
    let first = call(&api, &token).await;
    assert_ok(&first);
    server.wait_for_fetches(2, DEADLINE).await;

    // A token of the new key: its kid is unknown, so it waits for the fetch in flight, which
    // ends when the timeout fires. The keys are cached, so the answer is "unknown key", not 503.
    let unknown = tokio::spawn({
        let api = api.clone();
        async move {
            let answer = call(&api, &new_key_token).await;
            (answer, refresh_started.elapsed())
        }
    });

    // While the refresh hangs: cached-key requests, one by one and 50 at once.
    let mut sequential = Vec::new();
    for token in &sequential_tokens {
        let answer = call(&api, token).await;
        assert_ok(&answer);
        sequential.push(answer.took);
    }
    let concurrent = call_concurrently(&api, concurrent_tokens).await;
    for answer in &concurrent {
        assert_ok(answer);
    }
    let max_sequential = sequential.iter().max().copied().unwrap();
    let max_concurrent = concurrent.iter().map(|a| a.took).max().unwrap();
    let during = refresh_started.elapsed();
    assert!(
        !unknown.is_finished(),
        "the refresh ended before the cached-key requests were answered ({during:?} after it \
         started): they may have waited for it"
    );

    let (unknown, ended_after) = after_the_timeout("the unknown kid", unknown)
        .await
        .expect("the unknown-kid request");
    assert_refused(&unknown, InvalidToken::UnknownKey);
    assert!(
        ended_after >= HANG_TIMEOUT - Duration::from_millis(100),
        "the refresh ended {ended_after:?} after it started, before the timeout {HANG_TIMEOUT:?}"
    );
    assert_eq!(server.fetch_count(), 2, "the unknown kid joined the fetch");
    // The cached key still works after the failed refresh.
    assert_ok(&call(&api, &token).await);
    println!(
        "hanging refresh: 10 sequential cached-key requests, slowest {max_sequential:?}; 50 \
         concurrent, slowest {max_concurrent:?} (all within {during:?} of the refresh start); an \
         unknown kid waited {:?} and got 401 unknown_kid when the refresh timed out {ended_after:?} \
         after it started (timeout {HANG_TIMEOUT:?}, the endpoint never answers); JWKS requests {}",
        unknown.took,
        server.fetch_count()
    );

    // The endpoint answers again: after the cooldown, the new key is fetched and accepted.
    server.set_delay(Duration::ZERO);
    let start = Instant::now();
    let recovered = loop {
        let answer = call(&api, &token_for(&server, key(1))).await;
        if answer.ok() {
            break start.elapsed();
        }
        assert_refused(&answer, InvalidToken::UnknownKey);
        assert!(start.elapsed() < DEADLINE, "the new key never came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "hanging refresh: endpoint back, new key accepted {recovered:?} later; JWKS requests {}",
        server.fetch_count()
    );
}

// ---------------------------------------------------------------------------------------------
// Unusable refreshes: truncated JSON, keys of the wrong type
// ---------------------------------------------------------------------------------------------

/// With keys cached, refreshes (started by a token of an unknown kid) that get truncated JSON
/// or only EC / `oct` keys fail and keep the cached keys: the cached key verifies fresh tokens,
/// the unknown kid is a 401 (not a 503), and an HS256 token under the cached kid, signed with the
/// secret of an `oct` key served under that very kid, is refused.
#[tokio::test]
async fn refreshes_to_truncated_json_or_wrong_key_types_keep_the_cached_keys() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let cooldown = Duration::from_millis(200);
    let verifier: Verifier = Verifier::new(config(&server).jwks_cooldown(cooldown)).unwrap();
    let api = api(&verifier);
    assert_eq!(verifier.prefetch_keys().await, Ok(1));
    let (kid0, kid1) = (key(0).kid.as_str(), key(1).kid.as_str());

    let full = jwks_doc(&[key(0).jwk(), key(1).jwk()]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated JSON", full[..full.len() / 2].to_vec()),
        ("truncated to one byte", full[..1].to_vec()),
        ("EC key only", jwks_doc(&[ec_jwk(kid1)])),
        ("oct key only", jwks_doc(&[oct_jwk(kid1)])),
        (
            "EC and oct keys",
            jwks_doc(&[ec_jwk("ec-1"), oct_jwk(kid1)]),
        ),
        (
            "oct key under the cached kid, EC under the new one",
            jwks_doc(&[oct_jwk(kid0), ec_jwk(kid1)]),
        ),
        (
            "RSA key typed as oct",
            jwks_doc(&[{
                let mut jwk = key(1).jwk();
                jwk["kty"] = json!("oct");
                jwk
            }]),
        ),
    ];
    for (name, body) in cases {
        server.set_raw_body(body, "application/json");
        tokio::time::sleep(cooldown + Duration::from_millis(50)).await;
        let before = server.fetch_count();
        let new_kid = call(&api, &token_for(&server, key(1))).await;
        let fetched = server.fetch_count() - before;
        assert_refused(&new_kid, InvalidToken::UnknownKey);
        assert_eq!(fetched, 1, "{name}: the unknown kid caused one fetch");
        let cached = call(&api, &token_for(&server, key(0))).await;
        assert_ok(&cached);
        let hs256 = call(&api, &hs256_token(&server.issuer(), kid0)).await;
        assert_refused(&hs256, InvalidToken::UnsupportedAlgorithm);
        let rs256_oct_kid = call(&api, &token_for(&server, &key(2).with_kid("oct-kid"))).await;
        assert_refused(&rs256_oct_kid, InvalidToken::UnknownKey);
        println!(
            "refresh to {name}: fetches +{fetched}; unknown kid {} {:?}; cached kid {}; HS256 \
             under the cached kid {} {:?}",
            new_kid.status,
            new_kid.error.as_ref().map(AuthError::reason),
            cached.status,
            hs256.status,
            hs256.error.as_ref().map(AuthError::reason),
        );
    }
    assert_eq!(
        verifier.prefetch_keys().await,
        Ok(1),
        "still the cached key"
    );
}

/// With nothing cached, an endpoint serving only EC and `oct` keys gives no keys: 503.
#[tokio::test]
async fn only_ec_and_oct_keys_at_start_is_503() {
    let server = JwksServer::start(POOL).await;
    for (name, keys) in [
        ("EC only", vec![ec_jwk(&key(0).kid)]),
        ("oct only", vec![oct_jwk(&key(0).kid)]),
        ("EC and oct", vec![ec_jwk("ec-1"), oct_jwk(&key(0).kid)]),
    ] {
        server.set_jwks(keys);
        let before = server.fetch_count();
        let verifier: Verifier = Verifier::new(config(&server)).unwrap();
        let answer = call(&api(&verifier), &token_for(&server, key(0))).await;
        assert_keys_unavailable(&answer);
        let hs256 = call(&api(&verifier), &hs256_token(&server.issuer(), &key(0).kid)).await;
        assert_refused(&hs256, InvalidToken::UnsupportedAlgorithm);
        println!(
            "{name} at start: RS256 token {} {:?}, HS256 token {} {:?}, fetches +{}",
            answer.status,
            answer.error.as_ref().map(AuthError::reason),
            hs256.status,
            hs256.error.as_ref().map(AuthError::reason),
            server.fetch_count() - before
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A 10 MiB body
// ---------------------------------------------------------------------------------------------

/// A JWKS document of exactly `size` bytes serving `jwk`, padded with an extra member: valid
/// JSON, so that if the cap did not hold, the fetch would succeed and `jwk` be accepted.
fn padded_doc(jwk: &Value, size: usize) -> Vec<u8> {
    let prefix = format!("{{\"keys\":[{jwk}],\"pad\":\"");
    let mut doc = prefix.into_bytes();
    doc.resize(size - 2, b'x');
    doc.extend_from_slice(b"\"}");
    doc
}

/// A 10 MiB body announced by `Content-Length`: refused before reading it; the cached key
/// remains, and the key in the oversized document is not taken. No answer may hang ([`DEADLINE`]
/// is a hang guard); how quickly it comes is the `timing_` twin's to check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_mib_body_with_content_length_is_refused() {
    ten_mib_with_content_length(None).await;
}

/// [`a_ten_mib_body_with_content_length_is_refused`], each refusal also in under a second: a
/// wall-clock budget, run by the timing step of `.ci/run`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "wall-clock budget: run by the timing step of .ci/run"]
async fn timing_a_ten_mib_body_with_content_length_is_refused_quickly() {
    ten_mib_with_content_length(Some(Duration::from_secs(1))).await;
}

/// `call`, failing the test instead of hanging after [`DEADLINE`].
async fn call_guarded(api: &ApiServer, token: &str) -> Answer {
    tokio::time::timeout(DEADLINE, call(api, token))
        .await
        .unwrap_or_else(|_| panic!("no answer after {DEADLINE:?}"))
}

/// With `budget`, every refusal also comes within it.
async fn ten_mib_with_content_length(budget: Option<Duration>) {
    let in_time = |answer: &Answer| {
        if let Some(budget) = budget {
            assert!(answer.took < budget, "{answer:?}");
        }
    };
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let cooldown = Duration::from_millis(200);
    let verifier: Verifier = Verifier::new(config(&server).jwks_cooldown(cooldown)).unwrap();
    let api = api(&verifier);
    assert_eq!(verifier.prefetch_keys().await, Ok(1));
    let doc = padded_doc(&key(1).jwk(), TEN_MIB);
    assert!(serde_json::from_slice::<Value>(&doc).is_ok(), "valid JSON");
    server.set_raw_body(doc, "application/json");
    tokio::time::sleep(cooldown + Duration::from_millis(50)).await;

    let (rss_before, _) = memory_kib();
    let answer = call_guarded(&api, &token_for(&server, key(1))).await;
    let (rss_after, peak) = memory_kib();
    assert_refused(&answer, InvalidToken::UnknownKey);
    in_time(&answer);
    assert_ok(&call(&api, &token_for(&server, key(0))).await);
    assert_eq!(server.fetch_count(), 2);
    println!(
        "10 MiB with Content-Length: the fetch for an unknown kid failed in {:?} (401 \
         unknown_kid), cached key still accepted; RSS {rss_before} -> {rss_after} KiB (peak {peak} \
         KiB, whole test process, which includes the test server's own copies of the body)",
        answer.took
    );

    // And with nothing cached: 503, just as quickly.
    let cold: Verifier = Verifier::new(config(&server)).unwrap();
    let answer = call_guarded(&self::api(&cold), &token_for(&server, key(0))).await;
    assert_keys_unavailable(&answer);
    in_time(&answer);
    println!(
        "10 MiB with Content-Length at start: 503 in {:?}",
        answer.took
    );
}

/// A JWKS endpoint of raw TCP: serves `good` with a `Content-Length` until [`huge`] is set,
/// then a valid 10 MiB JWKS (`key(1)` plus padding) with `Transfer-Encoding: chunked` and no
/// length, in chunks of `chunk` bytes with `pause` between them, recording for each such response
/// how many body bytes it managed to write before the client hung up.
struct StreamingJwks {
    addr: std::net::SocketAddr,
    huge: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    /// Per huge response: (body bytes written, time spent, whether the whole body went out).
    outcomes: Arc<Mutex<Vec<(usize, Duration, bool)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StreamingJwks {
    async fn start(good: Vec<u8>, chunk: usize, pause: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let huge = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let (h, r, o) = (huge.clone(), requests.clone(), outcomes.clone());
        let good = Arc::new(good);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (h, r, o, good) = (h.clone(), r.clone(), o.clone(), good.clone());
                tokio::spawn(async move {
                    let _ = serve_streaming(stream, h, r, o, good, chunk, pause).await;
                });
            }
        });
        Self {
            addr,
            huge,
            requests,
            outcomes,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/{POOL}/.well-known/jwks.json", self.addr)
    }

    /// Waits until `n` huge responses have ended.
    async fn outcomes(&self, n: usize) -> Vec<(usize, Duration, bool)> {
        let start = Instant::now();
        loop {
            let outcomes = self.outcomes.lock().unwrap().clone();
            if outcomes.len() >= n {
                return outcomes;
            }
            assert!(start.elapsed() < DEADLINE, "the huge response never ended");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for StreamingJwks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_streaming(
    mut stream: TcpStream,
    huge: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    outcomes: Arc<Mutex<Vec<(usize, Duration, bool)>>>,
    good: Arc<Vec<u8>>,
    chunk: usize,
    pause: Duration,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        // One request head (GET: no body).
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut read = [0u8; 4096];
            let n = stream.read(&mut read).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&read[..n]);
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        buf.drain(..end);
        requests.fetch_add(1, Ordering::SeqCst);
        if !huge.load(Ordering::SeqCst) {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                good.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&good).await?;
            continue;
        }
        let started = Instant::now();
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        let prefix = format!("{{\"keys\":[{}],\"pad\":\"", key(1).jwk());
        let padding = vec![b'x'; chunk];
        let mut written = 0usize;
        let mut result: std::io::Result<()> = stream.write_all(head.as_bytes()).await;
        let mut pieces: Vec<&[u8]> = vec![prefix.as_bytes()];
        let pad_total = TEN_MIB - prefix.len() - 2;
        let mut pad_left = pad_total;
        while result.is_ok() && (!pieces.is_empty() || pad_left > 0) {
            let piece: &[u8] = if let Some(p) = pieces.pop() {
                p
            } else {
                let n = pad_left.min(chunk);
                pad_left -= n;
                if pad_left == 0 {
                    pieces.push(b"\"}");
                }
                &padding[..n]
            };
            let framed = [
                format!("{:x}\r\n", piece.len()).into_bytes(),
                piece.to_vec(),
                b"\r\n".to_vec(),
            ]
            .concat();
            result = stream.write_all(&framed).await;
            if result.is_ok() {
                written += piece.len();
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
        }
        if result.is_ok() {
            result = stream.write_all(b"0\r\n\r\n").await;
        }
        let complete = result.is_ok();
        outcomes
            .lock()
            .unwrap()
            .push((written, started.elapsed(), complete));
        result?;
    }
}

/// A 10 MiB body streamed without a length: the fetcher stops reading at the 64 KiB cap. Paced
/// at 32 KiB every 10 ms, reading it all would take over 3 s (within the 5 s request timeout,
/// and the document is valid, so the new key would be taken): instead the client hangs up
/// before the server has written it all, and the server managed to write well under 1 MiB by
/// then, which bounds what the client can have buffered. Unpaced, the client hangs up too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_mib_streamed_body_is_cut_at_the_cap() {
    for (pace, chunk, pause) in [
        ("paced", 32 * 1024, Duration::from_millis(10)),
        ("unpaced", 64 * 1024, Duration::ZERO),
    ] {
        let endpoint = StreamingJwks::start(jwks_doc(&[key(0).jwk()]), chunk, pause).await;
        let issuer = format!("http://{}/{POOL}", endpoint.addr);
        let cooldown = Duration::from_millis(200);
        let config = CognitoConfig::new(
            UserPool::parse(POOL).unwrap(),
            TokenUse::Access,
            ClientIds::one(CLIENT),
        )
        .jwks_url(endpoint.url())
        .allow_http_on_loopback(true)
        .issuer_override(&issuer)
        .jwks_cooldown(cooldown);
        let verifier: Verifier = Verifier::new(config).unwrap();
        let api = api(&verifier);
        assert_eq!(verifier.prefetch_keys().await, Ok(1));
        let old_key = mint(key(0), &access_claims(&issuer, CLIENT));
        let new_key = mint(key(1), &access_claims(&issuer, CLIENT));
        assert_ok(&call(&api, &old_key).await);

        endpoint.huge.store(true, Ordering::SeqCst);
        tokio::time::sleep(cooldown + Duration::from_millis(50)).await;
        let (rss_before, _) = memory_kib();
        let answer = call(&api, &new_key).await;
        let (rss_after, peak) = memory_kib();
        assert_refused(&answer, InvalidToken::UnknownKey);
        let outcomes = endpoint.outcomes(1).await;
        let (written, spent, complete) = outcomes[0];
        // The client hung up before the server could write it all: it stopped reading at the
        // cap (no time budget needed to say so).
        assert!(!complete, "{pace}: the client read the whole 10 MiB");
        if !pause.is_zero() {
            assert!(
                written < 1024 * 1024,
                "{pace}: the server wrote {written} bytes before the client hung up"
            );
        }
        assert_ok(&call(&api, &old_key).await);
        assert_eq!(endpoint.requests.load(Ordering::SeqCst), 2);
        println!(
            "10 MiB chunked, {pace} ({} KiB per write{}): fetch failed after {:?} (401 \
             unknown_kid), the server wrote {} KiB of 10240 KiB in {spent:?} before the client \
             hung up; cached key still accepted; RSS {rss_before} -> {rss_after} KiB (peak {peak} \
             KiB, whole test process)",
            chunk / 1024,
            if pause.is_zero() {
                String::new()
            } else {
                format!(", then {pause:?}")
            },
            answer.took,
            written / 1024,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A kid that now maps to a different key
// ---------------------------------------------------------------------------------------------

/// The endpoint starts serving a different key under the cached kid, next to a new kid. A
/// token of the new kid causes a fetch; from then on the old key's tokens are refused (bad
/// signature), including the one the verified-token cache held, and the new key's accepted.
#[tokio::test]
async fn a_kid_remapped_to_another_key_refuses_the_old_key_after_a_kid_miss_refresh() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let cooldown = Duration::from_millis(200);
    let verifier: Verifier = Verifier::new(config(&server).jwks_cooldown(cooldown)).unwrap();
    let api = api(&verifier);
    assert_eq!(verifier.prefetch_keys().await, Ok(1));
    let old = token_for(&server, key(0));
    assert_ok(&call(&api, &old).await);
    assert_ok(&call(&api, &old).await);
    assert_eq!(verifier.cached_tokens(), 1, "the old-key token is cached");

    let replacement = key(1).with_kid(key(0).kid.clone());
    server.set_keys(&[&replacement, key(2)]);
    let new = token_for(&server, &replacement);
    // Before any refresh: the cached key still serves; a bad signature under a known kid
    // starts no fetch.
    let before_old = call(&api, &old).await;
    let before_new = call(&api, &new).await;
    assert_ok(&before_old);
    assert_refused(&before_new, InvalidToken::BadSignature);
    assert_eq!(server.fetch_count(), 1);

    tokio::time::sleep(cooldown + Duration::from_millis(50)).await;
    assert_ok(&call(&api, &token_for(&server, key(2))).await);
    assert_eq!(server.fetch_count(), 2, "the new kid caused the refresh");

    let mut old_answers = Vec::new();
    for _ in 0..5 {
        let answer = call(&api, &old).await;
        assert_refused(&answer, InvalidToken::BadSignature);
        old_answers.push(answer.status.as_u16());
    }
    assert_eq!(
        verifier.verify(&old).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::BadSignature)
    );
    let fresh_old = call(&api, &token_for(&server, key(0))).await;
    assert_refused(&fresh_old, InvalidToken::BadSignature);
    let after_new = call(&api, &new).await;
    assert_ok(&after_new);
    println!(
        "kid remapped (refresh on a kid miss): before the refresh old key {} new key {} {:?}; \
         after: cached old-key token {old_answers:?}, fresh old-key token {} {:?}, new key {}; \
         JWKS requests {}",
        before_old.status,
        before_new.status,
        before_new.error.as_ref().map(AuthError::reason),
        fresh_old.status,
        fresh_old.error.as_ref().map(AuthError::reason),
        after_new.status,
        server.fetch_count()
    );
}

/// The same through the background refresh (keys older than the max age), with the old-key
/// token answered from the verified-token cache until then: once the refresh is in, it is
/// refused, and never accepted again.
#[tokio::test]
async fn a_kid_remapped_to_another_key_refuses_the_old_key_after_a_background_refresh() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let max_age = Duration::from_millis(500);
    let verifier: Verifier = Verifier::new(
        config(&server)
            .jwks_cooldown(Duration::from_millis(200))
            .jwks_max_age(max_age),
    )
    .unwrap();
    let api = api(&verifier);
    let start = Instant::now();
    assert_eq!(verifier.prefetch_keys().await, Ok(1));
    let old = token_for(&server, key(0));
    assert_ok(&call(&api, &old).await);

    let replacement = key(1).with_kid(key(0).kid.clone());
    server.set_keys(&[&replacement]);
    let new = token_for(&server, &replacement);
    let mut accepted_before = 0;
    let refused_after = loop {
        let answer = call(&api, &old).await;
        if answer.ok() {
            accepted_before += 1;
        } else {
            assert_refused(&answer, InvalidToken::BadSignature);
            break start.elapsed();
        }
        assert!(start.elapsed() < DEADLINE, "the old key is never refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(refused_after >= max_age, "refused after {refused_after:?}");
    for _ in 0..20 {
        assert_refused(&call(&api, &old).await, InvalidToken::BadSignature);
    }
    assert_ok(&call(&api, &new).await);
    println!(
        "kid remapped (background refresh, max age {max_age:?}): the cached old-key token was \
         accepted {accepted_before} times, then refused from {refused_after:?} on (20 more \
         refusals), new key accepted; JWKS requests {}",
        server.fetch_count()
    );
}

// ---------------------------------------------------------------------------------------------
// The clock: the exact second before, at and after each boundary
// ---------------------------------------------------------------------------------------------

/// A clock the test sets by hand.
#[derive(Debug, Clone)]
struct TestClock(Arc<AtomicI64>);

impl Clock for TestClock {
    fn now_unix(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A fixed instant far from the real "now", so only the injected clock can make tokens valid.
const T: i64 = 1_700_000_000;

/// `exp`, `nbf` and `iat`, each at `T`, for leeway 0 and 5, with the verified-token cache (the
/// seconds walked forward on one verifier: hits must re-check `exp`) and without it (a fresh
/// verifier per second). The rules: refused from `exp + leeway` on; valid from `nbf - leeway`
/// on; `iat` valid from `iat - leeway` on.
#[tokio::test]
async fn time_claims_at_the_exact_second_around_each_boundary() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let claims = |iat: i64, exp: i64, nbf: Option<i64>| {
        let mut c = access_claims(&server.issuer(), CLIENT);
        c["iat"] = json!(iat);
        c["auth_time"] = json!(iat);
        c["exp"] = json!(exp);
        if let Some(nbf) = nbf {
            c["nbf"] = json!(nbf);
        }
        mint(key(0), &c)
    };
    // claim, token, boundary second (the first valid or the first refused), refusal.
    let cases = [
        ("exp", claims(T - 600, T, None), InvalidToken::Expired),
        (
            "nbf",
            claims(T - 600, T + 3600, Some(T)),
            InvalidToken::NotYetValid,
        ),
        (
            "iat",
            claims(T, T + 3600, None),
            InvalidToken::IssuedInFuture,
        ),
    ];
    let mut checked = 0;
    for leeway in [0i64, 5] {
        for cached in [true, false] {
            let clock = TestClock(Arc::new(AtomicI64::new(T)));
            let make = || {
                let config = config(&server)
                    .clock(clock.clone())
                    .leeway(Duration::from_secs(leeway as u64))
                    .token_cache_size(if cached { 100 } else { 0 });
                api(&Verifier::new(config).unwrap())
            };
            for (claim, token, refusal) in &cases {
                let one = make();
                let mut row = Vec::new();
                for offset in [-1i64, 0, 1] {
                    let (now, valid) = match *claim {
                        // Valid while now < exp + leeway.
                        "exp" => (T + leeway + offset, offset < 0),
                        // Valid once now + leeway >= nbf (or iat).
                        _ => (T - leeway + offset, offset >= 0),
                    };
                    clock.0.store(now, Ordering::SeqCst);
                    let app = if cached { one.clone() } else { make() };
                    let answer = call(&app, token).await;
                    if valid {
                        assert!(
                            answer.ok(),
                            "{claim} leeway {leeway} cache {cached} now {claim}{:+}: {answer:?}",
                            now - T
                        );
                    } else {
                        assert_eq!(
                            answer.error,
                            Some(AuthError::InvalidToken(*refusal)),
                            "{claim} leeway {leeway} cache {cached} now {claim}{:+}",
                            now - T
                        );
                    }
                    checked += 1;
                    row.push(format!(
                        "now={claim}{:+}: {}",
                        now - T,
                        answer.error.as_ref().map_or("200", AuthError::reason)
                    ));
                }
                println!(
                    "clock: {claim} leeway {leeway}s cache {}: {}",
                    if cached { "on " } else { "off" },
                    row.join(", ")
                );
            }
        }
    }
    assert_eq!(checked, 36);
    // An expired token first seen past the boundary is never cached.
    let clock = TestClock(Arc::new(AtomicI64::new(T + 5)));
    let verifier: Verifier = Verifier::new(config(&server).clock(clock)).unwrap();
    assert_eq!(
        verifier.verify(&cases[0].1).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::Expired)
    );
    assert_eq!(verifier.cached_tokens(), 0);
}

// ---------------------------------------------------------------------------------------------
// Regressions
// ---------------------------------------------------------------------------------------------

/// A refresh keeps the parsed key of a kid only when the key is the same. That was once decided
/// on `n ‖ e` with no separator, so two different keys whose bytes join the same way were taken
/// for one and the OLD key kept verifying. Here a 3072-bit key is replaced under its kid by
/// `n' = n[..len-1]`, `e' = n[len-1] ‖ 01 00 01`: after the refresh, tokens of the old key are
/// refused like those of any key replaced under its kid.
#[tokio::test]
async fn a_kid_remapped_to_a_key_with_the_same_n_e_bytes_drops_the_old_key() {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // A 3072-bit key whose modulus without its last byte is odd (a valid modulus).
    let (old_key, n) = loop {
        let pair = KeyPair::generate(KeySize::Rsa3072).expect("generate RSA-3072");
        let der = pair.as_der().expect("PKCS#8");
        let key = TestKey::from_pkcs8("big-kid", der.as_ref());
        let n = engine.decode(&key.n).unwrap();
        if n[n.len() - 2] & 1 == 1 {
            break (key, n);
        }
    };
    assert_eq!(engine.decode(&old_key.e).unwrap(), [1, 0, 1]);
    let last = n[n.len() - 1];
    let colliding = json!({
        "kty": "RSA", "kid": "big-kid", "alg": "RS256", "use": "sig",
        "n": engine.encode(&n[..n.len() - 1]),
        "e": engine.encode([last, 1, 0, 1]),
    });

    let server = JwksServer::start(POOL).await;
    server.set_jwks(vec![old_key.jwk()]);
    let cooldown = Duration::from_millis(200);
    let verifier: Verifier = Verifier::new(config(&server).jwks_cooldown(cooldown)).unwrap();
    let api = api(&verifier);
    assert_eq!(verifier.prefetch_keys().await, Ok(1));
    assert_ok(&call(&api, &token_for(&server, &old_key)).await);

    // The old key leaves the JWKS; its kid now names another key.
    server.set_jwks(vec![colliding, key(2).jwk()]);
    tokio::time::sleep(cooldown + Duration::from_millis(50)).await;
    assert_ok(&call(&api, &token_for(&server, key(2))).await);
    assert_eq!(server.fetch_count(), 2);
    assert_eq!(
        verifier.prefetch_keys().await,
        Ok(2),
        "the replacement key is a usable key"
    );

    // A fresh token of the old key (not from the verified-token cache).
    let answer = call(&api, &token_for(&server, &old_key)).await;
    println!(
        "kid remapped to a key with the same n||e bytes: old-key token {} {:?} (expected 401 \
         bad_signature)",
        answer.status,
        answer.error.as_ref().map(AuthError::reason)
    );
    assert_refused(&answer, InvalidToken::BadSignature);
}
