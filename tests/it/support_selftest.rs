//! Tests of the test issuer in `tests/it/support` itself.

use crate::support;

use std::time::{Duration, Instant};

use hyper::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use support::{JwksServer, TestKey};

const POOL: &str = "us-east-1_SelfTest1";
const CLIENT: &str = "3n4b5urk1ft4fl3mg5e62d9ado";

/// Validation with every field that matters set explicitly.
fn validation(issuer: &str, audience: Option<&str>) -> Validation {
    let mut v = Validation::new(Algorithm::RS256);
    v.algorithms = vec![Algorithm::RS256];
    v.leeway = 0;
    v.reject_tokens_expiring_in_less_than = 0;
    v.validate_exp = true;
    v.validate_nbf = false;
    v.set_issuer(&[issuer]);
    v.sub = None;
    match audience {
        Some(aud) => {
            v.validate_aud = true;
            v.set_audience(&[aud]);
        }
        None => {
            v.validate_aud = false;
            v.aud = None;
        }
    }
    v.set_required_spec_claims(&["exp", "iss", "sub"]);
    v
}

fn decoding_key(key: &TestKey) -> DecodingKey {
    DecodingKey::from_rsa_components(&key.n, &key.e).expect("rsa components")
}

fn segment_json(token: &str, i: usize) -> Value {
    use base64::Engine as _;
    let seg = token.split('.').nth(i).expect("segment");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(seg)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json segment")
}

#[test]
fn cached_keys_are_distinct_rsa_2048() {
    let keys = support::keys();
    assert_eq!(keys.len(), support::KEY_COUNT);
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(k.kid, format!("test-key-{i}"));
        assert_eq!(k.e, "AQAB");
        assert!(!k.n.contains('=') && !k.n.contains('+') && !k.n.contains('/'));
        assert_eq!(
            k.n.len(),
            342,
            "2048-bit modulus is 256 bytes = 342 b64url chars"
        );
        let jwk = k.jwk();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], k.kid.as_str());
        assert_eq!(jwk["n"], k.n.as_str());
    }
    let mut ns: Vec<_> = keys.iter().map(|k| &k.n).collect();
    ns.sort();
    ns.dedup();
    assert_eq!(ns.len(), keys.len());
    // Same pointer on every call: generated once.
    assert!(std::ptr::eq(support::keys(), keys));

    let renamed = support::key(1).with_kid("other");
    assert_eq!(renamed.kid, "other");
    assert_eq!(renamed.n, support::key(1).n);
}

#[tokio::test]
async fn serves_the_set_keys() {
    let server = JwksServer::start(POOL).await;
    assert_eq!(
        server.issuer(),
        format!("http://127.0.0.1:{}/{POOL}", server.port())
    );
    assert_eq!(
        server.url(),
        format!("{}/.well-known/jwks.json", server.issuer())
    );

    let res = support::http_get(&server.url()).await.unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(res.json(), json!({ "keys": [] }));

    server.set_keys(&[support::key(0), support::key(2)]);
    let res = support::http_get(&server.url()).await.unwrap();
    assert_eq!(
        res.json(),
        json!({ "keys": [support::key(0).jwk(), support::key(2).jwk()] })
    );

    // Other paths are 404 and not counted as JWKS fetches.
    let before = server.fetch_count();
    let res = support::http_get(&format!("{}/other", server.issuer()))
        .await
        .unwrap();
    assert_eq!(res.status, 404);
    assert_eq!(server.fetch_count(), before);
}

#[tokio::test]
async fn fetch_count_increments() {
    let server = JwksServer::start_with_keys(POOL, &[support::key(0)]).await;
    assert_eq!(server.fetch_count(), 0);
    for expected in 1..=3 {
        support::http_get(&server.url()).await.unwrap();
        assert_eq!(server.fetch_count(), expected);
    }
    server.reset_fetch_count();
    assert_eq!(server.fetch_count(), 0);
}

#[tokio::test]
async fn status_raw_body_and_delay() {
    let server = JwksServer::start_with_keys(POOL, &[support::key(0)]).await;

    server.set_status(StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(support::http_get(&server.url()).await.unwrap().status, 500);
    server.set_status(StatusCode::OK);
    assert_eq!(support::http_get(&server.url()).await.unwrap().status, 200);

    server.set_raw_body(b"<html>nope</html>".to_vec(), "text/html");
    let res = support::http_get(&server.url()).await.unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("text/html"));
    assert_eq!(res.body, b"<html>nope</html>");
    server.clear_raw_body();
    assert_eq!(
        support::http_get(&server.url()).await.unwrap().json(),
        json!({ "keys": [support::key(0).jwk()] })
    );

    server.set_delay(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(support::http_get(&server.url()).await.unwrap().status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(server.fetch_count(), 5);
}

#[tokio::test]
async fn stop_and_start_again_on_the_same_port() {
    let server = JwksServer::start_with_keys(POOL, &[support::key(0)]).await;
    let port = server.port();
    assert!(support::http_get(&server.url()).await.is_ok());

    server.stop().await;
    assert!(!server.is_running());
    let err = support::http_get(&server.url()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    server.stop().await; // idempotent

    server.start_again().await;
    assert!(server.is_running());
    assert_eq!(server.port(), port);
    let res = support::http_get(&server.url()).await.unwrap();
    assert_eq!(res.json(), json!({ "keys": [support::key(0).jwk()] }));
    assert_eq!(server.fetch_count(), 2);
}

#[tokio::test]
async fn start_stopped_then_bring_up() {
    let server = JwksServer::start_stopped(POOL);
    server.set_keys(&[support::key(3)]);
    let err = support::http_get(&server.url()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(server.fetch_count(), 0);

    server.start_again().await;
    let res = support::http_get(&server.url()).await.unwrap();
    assert_eq!(res.json(), json!({ "keys": [support::key(3).jwk()] }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_aborts_in_flight_requests() {
    let server = JwksServer::start_with_keys(POOL, &[support::key(0)]).await;
    server.set_delay(Duration::from_secs(30));
    let url = server.url();
    let pending = tokio::spawn(async move { support::http_get(&url).await });
    while server.fetch_count() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let res = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .unwrap()
        .unwrap();
    assert!(res.is_err(), "in-flight request should be cut off: {res:?}");
}

#[test]
fn minted_access_token_verifies() {
    let issuer = format!("http://127.0.0.1:1/{POOL}");
    let key = support::key(0);
    let claims = support::access_claims(&issuer, CLIENT);
    for field in [
        "sub",
        "iss",
        "client_id",
        "token_use",
        "scope",
        "auth_time",
        "iat",
        "exp",
        "jti",
        "origin_jti",
        "event_id",
        "username",
        "version",
    ] {
        assert!(claims.get(field).is_some(), "missing {field}");
    }
    assert_eq!(claims["token_use"], "access");
    assert_eq!(claims["version"], 2);
    assert!(claims.get("aud").is_none());

    let token = support::mint(key, &claims);
    assert_eq!(
        segment_json(&token, 0),
        json!({ "alg": "RS256", "kid": key.kid })
    );

    let data =
        jsonwebtoken::decode::<Value>(&token, &decoding_key(key), &validation(&issuer, None))
            .expect("valid token");
    assert_eq!(data.claims, claims);
    assert_eq!(data.header.kid.as_deref(), Some(key.kid.as_str()));
    assert_eq!(data.header.typ, None);

    // Another key's public part does not verify it.
    let other = jsonwebtoken::decode::<Value>(
        &token,
        &decoding_key(support::key(1)),
        &validation(&issuer, None),
    );
    assert!(other.is_err());

    // Expired tokens are rejected by the same validation.
    let mut expired = claims.clone();
    expired["exp"] = json!(support::now() - 10);
    let token = support::mint(key, &expired);
    assert!(
        jsonwebtoken::decode::<Value>(&token, &decoding_key(key), &validation(&issuer, None))
            .is_err()
    );
}

#[test]
fn minted_id_token_verifies() {
    let issuer = format!("http://127.0.0.1:1/{POOL}");
    let key = support::key(1);
    let claims = support::id_claims(&issuer, CLIENT);
    assert_eq!(claims["token_use"], "id");
    assert_eq!(claims["aud"], CLIENT);
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["custom:tenant"], "acme");
    assert!(claims.get("cognito:username").is_some());
    assert_ne!(claims["jti"], claims["origin_jti"]);

    let token = support::mint(key, &claims);
    let data = jsonwebtoken::decode::<Value>(
        &token,
        &key.decoding_key(),
        &validation(&issuer, Some(CLIENT)),
    )
    .expect("valid id token");
    assert_eq!(data.claims, claims);
    assert!(jsonwebtoken::decode::<Value>(
        &token,
        &key.decoding_key(),
        &validation(&issuer, Some("someone-else")),
    )
    .is_err());
}

#[test]
fn mint_raw_signature_verifies() {
    let issuer = format!("http://127.0.0.1:1/{POOL}");
    let key = support::key(2);
    let claims = support::access_claims(&issuer, CLIENT);
    let header = format!(r#"{{"alg":"RS256","kid":"{}"}}"#, key.kid);
    let token = support::mint_raw(&header, &claims.to_string(), key);
    assert_eq!(token.split('.').next().unwrap(), support::b64(&header));

    let data =
        jsonwebtoken::decode::<Value>(&token, &decoding_key(key), &validation(&issuer, None))
            .expect("mint_raw token verifies");
    assert_eq!(data.claims, claims);

    // Same payload through mint_json, and a tampered payload fails.
    let token2 = support::mint_json(&json!({ "alg": "RS256", "kid": key.kid }), &claims, key);
    assert!(
        jsonwebtoken::decode::<Value>(&token2, &decoding_key(key), &validation(&issuer, None))
            .is_ok()
    );
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut tampered = claims.clone();
    tampered["username"] = json!("mallory");
    parts[1] = support::b64(tampered.to_string());
    let forged = parts.join(".");
    assert!(
        jsonwebtoken::decode::<Value>(&forged, &decoding_key(key), &validation(&issuer, None))
            .is_err()
    );

    assert_eq!(support::b64([0xfb, 0xff]), "-_8");
}
