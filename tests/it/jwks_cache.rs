//! End to end: the JWKS key cache behind the layer, against a real local JWKS endpoint, for
//! what is about HTTP: status codes, unusable bodies, the size cap, an endpoint that refuses
//! connections, static documents. Nothing here waits for a cooldown or a max age.
//!
//! The cache's timing (single-flight bursts, the cooldown, rotation and removal after a refresh,
//! recovery from an outage, refreshes that fail or hang) is tested in `src/jwks/tests.rs`, through
//! the same verifier and layer, on tokio's paused clock with an in-memory endpoint: no sleeping.

use crate::support;

use std::convert::Infallible;
use std::time::Duration;

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use serde_json::{json, Value};
use support::{access_claims, key, mint, JwksServer, TestKey};
use tokio::task::JoinSet;
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt};
use tower_cognito::{
    AccessClaims, AuthError, ClientIds, CognitoAuthLayer, CognitoConfig, ConfigError, InvalidToken,
    IssuerForm, TokenUse, UserPool, Verified, Verifier,
};

const POOL: &str = "eu-west-1_JwksTest1";
const CLIENT: &str = "3n4b5urk1ft4fl3mg5e62d9ado";

type App = BoxCloneService<Request<()>, Response<String>, Infallible>;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Access tokens of `CLIENT` from the local JWKS server.
fn config(server: &JwksServer) -> CognitoConfig {
    support::local_config(server, TokenUse::Access, CLIENT)
}

/// Access tokens of `CLIENT` of the pool itself: no local server (for static documents).
fn pool_config() -> CognitoConfig {
    CognitoConfig::new(
        UserPool::parse(POOL).unwrap(),
        TokenUse::Access,
        ClientIds::one(CLIENT),
    )
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

async fn send_token(app: &App, token: &str) -> Response<String> {
    app.clone().oneshot(request(token)).await.unwrap()
}

/// A valid access token for the server's issuer, signed by `key` under its own kid.
fn token_for(server: &JwksServer, key: &TestKey) -> String {
    mint(key, &access_claims(&server.issuer(), CLIENT))
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

/// Sends `n` requests at once (on the multi-thread runtime) and returns the responses.
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

fn jwks_body(keys: &[&TestKey]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }))
        .unwrap()
}

// ---------------------------------------------------------------------------
// Endpoints that fail
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_asked_once_per_cooldown() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    server.set_status(StatusCode::INTERNAL_SERVER_ERROR);
    let app = app(Verifier::new(config(&server)).unwrap());
    let tokens = (0..50).map(|_| token_for(&server, key(0))).collect();
    for resp in send_concurrently(&app, tokens).await {
        assert_keys_unavailable(&resp);
    }
    assert_eq!(server.fetch_count(), 1);
}

/// Nothing listens on the JWKS port (connection refused): 503 with no challenge, the endpoint
/// never reached, and prefetching says the keys are unavailable. Within the default cooldown (10
/// s) of that failed fetch, an endpoint back up is not asked again. Recovery once the cooldown
/// ends: `src/jwks/tests.rs` (`jwks_down_at_start_is_503_then_recovers_after_the_cooldown`).
#[tokio::test]
async fn an_endpoint_refusing_connections_is_503() {
    let server = JwksServer::start_stopped(POOL);
    server.set_keys(&[key(0)]);
    let verifier: Verifier = Verifier::new(config(&server)).unwrap();
    let app = app(verifier.clone());
    let token = token_for(&server, key(0));

    assert_keys_unavailable(&send_token(&app, &token).await);
    assert_eq!(server.fetch_count(), 0, "the endpoint is down");
    assert_eq!(
        verifier.prefetch_keys().await,
        Err(AuthError::KeysUnavailable)
    );

    server.start_again().await;
    assert_keys_unavailable(&send_token(&app, &token).await);
    assert_eq!(server.fetch_count(), 0, "asked again within the cooldown");
}

// ---------------------------------------------------------------------------
// Static documents
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_static_document_verifies_without_any_server() {
    let doc = String::from_utf8(jwks_body(&[key(0), key(1)])).unwrap();
    let issuer = UserPool::parse(POOL).unwrap().issuer(IssuerForm::Original);
    let verifier: Verifier =
        Verifier::new(pool_config().jwks_document(doc).fetch_keys(false)).unwrap();
    let app = app(verifier.clone());
    assert_eq!(verifier.prefetch_keys().await, Ok(2));
    for k in [key(0), key(1)] {
        let resp = send_token(&app, &mint(k, &access_claims(&issuer, CLIENT))).await;
        assert_ok(&resp);
    }
    let resp = send_token(&app, &mint(key(2), &access_claims(&issuer, CLIENT))).await;
    assert_unknown_key(&resp);
}

#[tokio::test]
async fn fetch_keys_false_never_touches_the_network() {
    // A reachable endpoint is configured, but fetching is off: it is never asked, not for an
    // unknown kid nor for keys older than the max age.
    let server = JwksServer::start_with_keys(POOL, &[key(0), key(1)]).await;
    let doc = String::from_utf8(jwks_body(&[key(0)])).unwrap();
    let verifier: Verifier = Verifier::new(
        config(&server)
            .jwks_document(doc)
            .fetch_keys(false)
            .jwks_cooldown(Duration::ZERO)
            .jwks_max_age(Duration::ZERO),
    )
    .unwrap();
    let app = app(verifier.clone());
    assert_ok(&send_token(&app, &token_for(&server, key(0))).await);
    assert_unknown_key(&send_token(&app, &token_for(&server, key(1))).await);
    assert_eq!(verifier.prefetch_keys().await, Ok(1));
    // With a max age of zero the keys are always old: no wait needed (an hour later on the
    // paused clock: `fetch_keys_false_never_fetches_whatever_the_time` in src/jwks/tests.rs).
    assert_ok(&send_token(&app, &token_for(&server, key(0))).await);
    assert_eq!(server.fetch_count(), 0);
}

#[tokio::test]
async fn a_static_document_is_used_first_and_refreshed_later() {
    // With fetching on, the document is the starting point: no fetch for its keys, a fetch for
    // an unknown kid.
    let server = JwksServer::start_with_keys(POOL, &[key(0), key(1)]).await;
    let doc = String::from_utf8(jwks_body(&[key(0)])).unwrap();
    let verifier: Verifier = Verifier::new(config(&server).jwks_document(doc)).unwrap();
    let app = app(verifier);
    assert_ok(&send_token(&app, &token_for(&server, key(0))).await);
    assert_eq!(server.fetch_count(), 0);
    assert_ok(&send_token(&app, &token_for(&server, key(1))).await);
    assert_eq!(server.fetch_count(), 1);
}

#[test]
fn a_bad_static_document_is_a_config_error() {
    let config = pool_config;
    let mut jwk_rs384 = key(0).jwk();
    jwk_rs384["alg"] = json!("RS384");
    let mut jwk_enc = key(0).jwk();
    jwk_enc["use"] = json!("enc");
    let mut jwk_no_kid = key(0).jwk();
    jwk_no_kid.as_object_mut().unwrap().remove("kid");
    let mut jwk_bad_n = key(0).jwk();
    jwk_bad_n["n"] = json!("not*base64");
    let bad: Vec<(&str, String)> = vec![
        ("not JSON", "not json".to_owned()),
        ("HTML", "<html></html>".to_owned()),
        ("truncated", {
            let full = String::from_utf8(jwks_body(&[key(0)])).unwrap();
            full[..full.len() / 2].to_owned()
        }),
        ("no keys member", "{}".to_owned()),
        ("empty keys", r#"{"keys":[]}"#.to_owned()),
        (
            "EC key only",
            json!({"keys": [{"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"}]})
                .to_string(),
        ),
        ("RS384 key only", json!({"keys": [jwk_rs384]}).to_string()),
        (
            "encryption key only",
            json!({"keys": [jwk_enc]}).to_string(),
        ),
        ("key without kid", json!({"keys": [jwk_no_kid]}).to_string()),
        (
            "modulus not base64url",
            json!({"keys": [jwk_bad_n]}).to_string(),
        ),
        (
            "the same kid twice",
            json!({"keys": [key(0).jwk(), key(1).with_kid(key(0).kid.clone()).jwk()]}).to_string(),
        ),
    ];
    for (name, doc) in bad {
        let err = match Verifier::<AccessClaims>::new(config().jwks_document(doc).fetch_keys(false))
        {
            Ok(verifier) => panic!("{name}: accepted as {verifier:?}"),
            Err(err) => err,
        };
        assert!(
            matches!(err, ConfigError::InvalidJwks(_)),
            "{name}: {err:?}"
        );
        assert!(
            err.to_string().starts_with("invalid JWKS document"),
            "{name}: {err}"
        );
    }

    // Unusable keys next to a good one are skipped, not fatal.
    let mixed = json!({"keys": [
        {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
        key(0).jwk(),
    ]})
    .to_string();
    assert!(Verifier::<AccessClaims>::new(config().jwks_document(mixed).fetch_keys(false)).is_ok());

    // fetch_keys(false) needs a document.
    let err = Verifier::<AccessClaims>::new(config().fetch_keys(false)).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::InvalidSetting {
                setting: "fetch_keys",
                ..
            }
        ),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------
// Unusable responses
// ---------------------------------------------------------------------------

/// Puts the JWKS server into some state.
type Setup = Box<dyn Fn(&JwksServer)>;

#[tokio::test]
async fn unusable_jwks_responses_give_no_keys() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let token = token_for(&server, key(0));
    let full = jwks_body(&[key(0)]);

    let cases: Vec<(&str, Setup)> = vec![
        (
            "HTML",
            Box::new(|s| {
                s.set_raw_body(
                    "<!DOCTYPE html><html><body>Service Unavailable</body></html>",
                    "text/html",
                )
            }),
        ),
        (
            "HTML claiming to be JSON",
            Box::new(|s| s.set_raw_body("<html></html>", "application/json")),
        ),
        (
            "truncated JSON",
            Box::new(move |s| s.set_raw_body(full[..full.len() / 2].to_vec(), "application/json")),
        ),
        (
            "empty body",
            Box::new(|s| s.set_raw_body(Vec::new(), "application/json")),
        ),
        (
            "empty key set",
            Box::new(|s| s.set_jwks(Vec::<Value>::new())),
        ),
        (
            "not a key set",
            Box::new(|s| s.set_raw_body(r#"{"keys": "none"}"#, "application/json")),
        ),
        (
            "HTTP 404 with a good body",
            Box::new(|s| s.set_status(StatusCode::NOT_FOUND)),
        ),
        (
            "HTTP 302 with a good body",
            Box::new(|s| s.set_status(StatusCode::FOUND)),
        ),
    ];
    for (name, setup) in cases {
        server.set_status(StatusCode::OK);
        server.set_keys(&[key(0)]);
        setup(&server);
        let before = server.fetch_count();
        let app = app(Verifier::new(config(&server)).unwrap());
        let resp = send_token(&app, &token).await;
        assert_eq!(error_of(&resp), Some(&AuthError::KeysUnavailable), "{name}");
        assert_keys_unavailable(&resp);
        assert_eq!(server.fetch_count(), before + 1, "{name}: one fetch");
    }
}

#[tokio::test]
async fn a_jwks_response_over_the_size_cap_gives_no_keys() {
    let keys = [key(0), key(1), key(2), key(3)];
    let server = JwksServer::start_with_keys(POOL, &keys).await;
    let size = jwks_body(&keys).len();
    assert!(size > 1024, "the document must exceed the smallest cap");
    let token = token_for(&server, key(0));

    // Exactly at the cap: fine.
    let app_at = app(Verifier::new(config(&server).max_jwks_bytes(size)).unwrap());
    assert_ok(&send_token(&app_at, &token).await);

    // One byte over: no keys.
    let app_over = app(Verifier::new(config(&server).max_jwks_bytes(size - 1)).unwrap());
    assert_keys_unavailable(&send_token(&app_over, &token).await);

    // The smallest cap.
    let app_small = app(Verifier::new(config(&server).max_jwks_bytes(1024)).unwrap());
    assert_keys_unavailable(&send_token(&app_small, &token).await);

    // A huge body under the default cap of 64 KiB.
    server.set_raw_body(
        format!(
            "{{\"keys\":[{}],\"pad\":\"{}\"}}",
            key(0).jwk(),
            "x".repeat(100 * 1024)
        ),
        "application/json",
    );
    let app_default = app(Verifier::new(config(&server)).unwrap());
    assert_keys_unavailable(&send_token(&app_default, &token).await);
}

// ---------------------------------------------------------------------------
// Undersized keys (a regression: they once counted as usable)
// ---------------------------------------------------------------------------

/// A JWK under `kid` whose modulus has only `bytes * 8` bits (not a real key: the components
/// parse, which is all the key set checks).
fn undersized_jwk(kid: &str, bytes: usize) -> Value {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut n = engine.decode(&key(0).n).unwrap();
    n.truncate(bytes);
    n[0] |= 0x80;
    n[bytes - 1] |= 1;
    json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": engine.encode(&n), "e": "AQAB"})
}

/// Only keys of 2048 to 8192 bits are kept. aws-lc-rs's `to_parsed_public_key` does not check
/// the size (only `verify_sig` does), so 1024-bit and even 17-bit keys once counted as usable.
/// A document of only such keys is `ConfigError::InvalidJwks`. (The same cause through a
/// refresh: `a_refresh_to_only_undersized_keys_keeps_the_cached_keys` in src/jwks/tests.rs.)
#[test]
fn a_document_of_only_undersized_keys_is_a_config_error() {
    for (name, jwk) in [
        ("1024-bit modulus", undersized_jwk("weak", 128)),
        (
            "17-bit modulus",
            json!({"kty": "RSA", "kid": "tiny", "n": "AQAB", "e": "AQAB"}),
        ),
    ] {
        let doc = json!({ "keys": [jwk] }).to_string();
        let result =
            Verifier::<AccessClaims>::new(pool_config().jwks_document(doc).fetch_keys(false));
        assert!(
            matches!(result, Err(ConfigError::InvalidJwks(_))),
            "{name}: {result:?}"
        );
    }
}
