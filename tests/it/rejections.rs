//! End to end: every verification step, through the real layer, shows its rejection.
//!
//! Real components only: the local JWKS server of `tests/it/support`, real RSA-2048 signatures,
//! the real `CognitoAuthLayer` in front of a `tower::service_fn`. Each case asserts the status,
//! the exact `WWW-Authenticate` value and the `AuthError` in the response extensions.

use crate::support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, Response};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use support::{
    access_claims, b64, id_claims, key, local_config, local_config_with, mint, mint_json, mint_raw,
    JwksServer,
};
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt};
use tower_cognito::{
    AccessClaims, AnyClaims, AuthError, ClientIds, Clock, CognitoAuthLayer, CognitoConfig,
    Forbidden, IdClaims, InvalidRequest, InvalidToken, IssuerForm, Issuers, TokenUse, UserPool,
    Verified, Verifier,
};

const POOL: &str = "us-east-1_RejTest1";
const CLIENT: &str = "3n4b5urk1ft4fl3mg5e62d9ado";
const OTHER_CLIENT: &str = "6q7r8s9t0u1v2w3x4y5z6a7b8c";
/// What the handler answers when the layer let the request through without claims.
const NO_CLAIMS: &str = "NO CLAIMS";
/// The bare challenge (no `error` attribute) with the default realm.
const BARE: &str = "Bearer realm=\"cognito\"";

type App = BoxCloneService<Request<()>, Response<String>, Infallible>;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Access tokens of `CLIENT` from the local server.
fn config(server: &JwksServer) -> CognitoConfig {
    local_config(server, TokenUse::Access, CLIENT)
}

async fn start_server() -> JwksServer {
    JwksServer::start_with_keys(POOL, &[key(0)]).await
}

/// The real layer in front of a handler that describes the verified claims it sees.
fn app<C>(verifier: Verifier<C>, describe: fn(&C) -> String) -> App
where
    C: DeserializeOwned + Send + Sync + 'static,
{
    let svc = ServiceBuilder::new()
        .layer(CognitoAuthLayer::new(verifier))
        .service_fn(move |req: Request<()>| async move {
            let body = match req.extensions().get::<Verified<C>>() {
                Some(verified) => describe(verified.claims()),
                None => NO_CLAIMS.to_owned(),
            };
            Ok::<_, Infallible>(Response::new(body))
        });
    BoxCloneService::new(svc)
}

fn describe_access(c: &AccessClaims) -> String {
    format!(
        "access sub={} user={} client={}",
        c.sub, c.username, c.client_id
    )
}

fn describe_id(c: &IdClaims) -> String {
    format!("id sub={} user={} aud={}", c.sub, c.username, c.aud)
}

fn describe_any(c: &AnyClaims) -> String {
    match c {
        AnyClaims::Access(a) => format!("any/{}", describe_access(a)),
        AnyClaims::Id(i) => format!("any/{}", describe_id(i)),
        other => format!("any/{other:?}"),
    }
}

fn access_app(server: &JwksServer) -> App {
    app(Verifier::new(config(server)).unwrap(), describe_access)
}

/// Sends a request with these `Authorization` header values (none, one, or several).
async fn send(app: &App, authorization: &[&str]) -> Response<String> {
    let mut req = Request::builder().uri("/orders");
    for value in authorization {
        req = req.header(AUTHORIZATION, *value);
    }
    app.clone().oneshot(req.body(()).unwrap()).await.unwrap()
}

async fn send_token(app: &App, token: &str) -> Response<String> {
    send(app, &[&format!("Bearer {token}")]).await
}

fn www_authenticate(resp: &Response<String>) -> Option<&str> {
    let mut values = resp.headers().get_all(WWW_AUTHENTICATE).iter();
    let first = values.next().map(|v| v.to_str().unwrap());
    assert!(values.next().is_none(), "more than one WWW-Authenticate");
    first
}

/// Asserts a 200 that reached the handler with claims; returns the handler's body.
#[track_caller]
fn assert_ok(resp: &Response<String>) -> &str {
    assert_eq!(
        resp.status(),
        200,
        "expected 200, refused with {:?}",
        resp.extensions().get::<AuthError>()
    );
    assert_eq!(www_authenticate(resp), None);
    assert!(resp.extensions().get::<AuthError>().is_none());
    assert_ne!(resp.body(), NO_CLAIMS, "the handler saw no claims");
    resp.body()
}

/// Asserts a refusal: status, exact `WWW-Authenticate`, the `AuthError` in the extensions, and
/// that the handler never ran (the default rejection has an empty body).
#[track_caller]
fn assert_refused(resp: &Response<String>, status: u16, challenge: Option<&str>, error: AuthError) {
    assert_eq!(
        resp.extensions().get::<AuthError>(),
        Some(&error),
        "the AuthError in the response extensions"
    );
    assert_eq!(resp.status(), status, "status for {error:?}");
    assert_eq!(
        www_authenticate(resp),
        challenge,
        "WWW-Authenticate for {error:?}"
    );
    assert_eq!(resp.body(), "", "the handler must not run");
}

fn invalid_token_challenge(description: &str) -> String {
    format!(
        "Bearer realm=\"cognito\", error=\"invalid_token\", error_description=\"{description}\""
    )
}

/// Asserts 401 `invalid_token` with this reason and its exact description.
#[track_caller]
fn assert_invalid_token(resp: &Response<String>, reason: InvalidToken, description: &str) {
    assert_refused(
        resp,
        401,
        Some(&invalid_token_challenge(description)),
        AuthError::InvalidToken(reason),
    );
}

#[track_caller]
fn assert_invalid_request(resp: &Response<String>, reason: InvalidRequest, description: &str) {
    assert_refused(
        resp,
        400,
        Some(&format!(
            "Bearer realm=\"cognito\", error=\"invalid_request\", error_description=\"{description}\""
        )),
        AuthError::InvalidRequest(reason),
    );
}

#[track_caller]
fn assert_missing_token(resp: &Response<String>) {
    assert_refused(resp, 401, Some(BARE), AuthError::MissingToken);
}

/// A token with these claims, signed by test key 0 (whose kid the server serves).
fn token(claims: &Value) -> String {
    mint(key(0), claims)
}

/// An RS256 token with this header, signed by test key 0.
fn token_with_header(header: Value, claims: &Value) -> String {
    mint_json(&header, claims, key(0))
}

/// A clock the test moves by hand, for `exp`/`nbf`/`iat` boundaries without sleeping.
#[derive(Debug, Clone)]
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn at(now: i64) -> Self {
        Self(Arc::new(AtomicI64::new(now)))
    }

    fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_unix(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------
// The happy path
// ---------------------------------------------------------------------------

#[tokio::test]
async fn valid_access_token_reaches_the_handler_with_its_claims() {
    let server = start_server().await;
    let app = access_app(&server);
    let resp = send_token(&app, &token(&access_claims(&server.issuer(), CLIENT))).await;
    assert_eq!(
        assert_ok(&resp),
        format!("access sub={} user=alice client={CLIENT}", support::SUB)
    );
    // The scheme is case-insensitive and may be followed by several spaces.
    let t = token(&access_claims(&server.issuer(), CLIENT));
    assert_ok(&send(&app, &[&format!("bearer   {t}")]).await);
    assert_eq!(server.fetch_count(), 1, "one JWKS fetch for the cold cache");
}

#[tokio::test]
async fn the_realm_is_configurable() {
    let server = start_server().await;
    let verifier = Verifier::new(config(&server).realm("orders-api")).unwrap();
    let app = app(verifier, describe_access);
    let resp = send(&app, &[]).await;
    assert_refused(
        &resp,
        401,
        Some("Bearer realm=\"orders-api\""),
        AuthError::MissingToken,
    );
    let mut claims = access_claims(&server.issuer(), CLIENT);
    claims["exp"] = json!(support::now() - 3600);
    let resp = send_token(&app, &token(&claims)).await;
    assert_refused(
        &resp,
        401,
        Some("Bearer realm=\"orders-api\", error=\"invalid_token\", error_description=\"The token has expired\""),
        AuthError::InvalidToken(InvalidToken::Expired),
    );
}

// ---------------------------------------------------------------------------
// The Authorization header
// ---------------------------------------------------------------------------

#[tokio::test]
async fn no_authorization_header_is_a_bare_challenge() {
    let server = start_server().await;
    let app = access_app(&server);
    assert_missing_token(&send(&app, &[]).await);
    assert_eq!(server.fetch_count(), 0);
}

#[tokio::test]
async fn another_scheme_is_treated_as_no_token() {
    let server = start_server().await;
    let app = access_app(&server);
    let t = token(&access_claims(&server.issuer(), CLIENT));
    for value in [
        "Basic dXNlcjpwYXNzd29yZA==".to_owned(),
        format!("Token {t}"),
        format!("Bearerx {t}"),
        format!("DPoP {t}"),
    ] {
        let resp = send(&app, &[&value]).await;
        assert_missing_token(&resp);
    }
    assert_eq!(server.fetch_count(), 0);
}

#[tokio::test]
async fn two_authorization_headers_are_an_invalid_request() {
    let server = start_server().await;
    let app = access_app(&server);
    let t = token(&access_claims(&server.issuer(), CLIENT));
    let bearer = format!("Bearer {t}");
    for pair in [
        [bearer.as_str(), bearer.as_str()],
        [bearer.as_str(), "Basic dXNlcjpwYXNzd29yZA=="],
        ["Basic dXNlcjpwYXNzd29yZA==", bearer.as_str()],
    ] {
        let resp = send(&app, &pair).await;
        assert_invalid_request(
            &resp,
            InvalidRequest::MultipleCredentials,
            "More than one credential was presented",
        );
    }
    assert_eq!(server.fetch_count(), 0);
}

#[tokio::test]
async fn malformed_bearer_credentials_are_an_invalid_request() {
    let server = start_server().await;
    let app = access_app(&server);
    let t = token(&access_claims(&server.issuer(), CLIENT));
    for value in [
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer    ".to_owned(),
        format!("Bearer {t} {t}"),
        format!("Bearer {t},{t}"),
        "Bearer a.b.c d.e.f".to_owned(),
        "Bearer ==".to_owned(),
        format!("Bearer {}=.{}", &t[..10], &t[10..]),
        format!("Bearer \"{t}\""),
    ] {
        let resp = send(&app, &[&value]).await;
        assert_invalid_request(
            &resp,
            InvalidRequest::MalformedCredentials,
            "The bearer credentials are malformed",
        );
    }
    assert_eq!(server.fetch_count(), 0);
}

// ---------------------------------------------------------------------------
// 1. Size
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_token_over_the_size_cap_is_too_large_before_anything_else() {
    let server = start_server().await;
    let t = token(&access_claims(&server.issuer(), CLIENT));

    // Exactly at the cap: accepted.
    let at_cap = app(
        Verifier::new(config(&server).max_token_bytes(t.len())).unwrap(),
        describe_access,
    );
    assert_ok(&send_token(&at_cap, &t).await);

    // One byte over: refused, and (cold cache) without any JWKS fetch.
    let server = start_server().await;
    let over = app(
        Verifier::new(config(&server).max_token_bytes(t.len() - 1)).unwrap(),
        describe_access,
    );
    let resp = send_token(&over, &t).await;
    assert_invalid_token(&resp, InvalidToken::TooLarge, "The token is too large");

    // The default cap (8 KiB): a genuinely signed token padded past it.
    let default = access_app(&server);
    let mut claims = access_claims(&server.issuer(), CLIENT);
    claims["padding"] = json!("x".repeat(9000));
    let big = token(&claims);
    assert!(big.len() > tower_cognito::DEFAULT_MAX_TOKEN_BYTES);
    let resp = send_token(&default, &big).await;
    assert_invalid_token(&resp, InvalidToken::TooLarge, "The token is too large");

    // Garbage that is merely long is refused as too large, not parsed.
    let garbage = format!("{}.{}.{}", "a".repeat(5000), "b".repeat(5000), "c");
    let resp = send_token(&default, &garbage).await;
    assert_invalid_token(&resp, InvalidToken::TooLarge, "The token is too large");

    assert_eq!(server.fetch_count(), 0, "no fetch for a too-large token");
}

// ---------------------------------------------------------------------------
// 2. Header
// ---------------------------------------------------------------------------

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let server = start_server().await;
    let app = access_app(&server);
    let claims = access_claims(&server.issuer(), CLIENT);
    let good = token(&claims);
    let parts: Vec<&str> = good.split('.').collect();
    for bad in [
        "abc".to_owned(),
        "a.b".to_owned(),
        format!("{good}.{}", parts[2]),
        format!("{}..{}", parts[0], parts[2]),
        // Header not JSON.
        mint_raw("not json", &claims.to_string(), key(0)),
        // Duplicate members: which `alg` would win?
        mint_raw(
            &format!(r#"{{"alg":"RS256","kid":"{}","alg":"none"}}"#, key(0).kid),
            &claims.to_string(),
            key(0),
        ),
        mint_raw(
            &format!(r#"{{"alg":"RS256","kid":"{}","kid":"other"}}"#, key(0).kid),
            &claims.to_string(),
            key(0),
        ),
        // Payload not JSON, or JSON but not an object.
        mint_raw(
            &json!({"alg": "RS256", "kid": key(0).kid}).to_string(),
            "not json",
            key(0),
        ),
        mint_raw(
            &json!({"alg": "RS256", "kid": key(0).kid}).to_string(),
            "42",
            key(0),
        ),
        // Not base64url at all (a length of 5 cannot be base64).
        "abcde.abcd.abcd".to_owned(),
        format!("abcde.{}.{}", parts[1], parts[2]),
    ] {
        let resp = send_token(&app, &bad).await;
        assert_invalid_token(&resp, InvalidToken::Malformed, "The token is malformed");
    }
}

#[tokio::test]
async fn only_rs256_is_accepted() {
    let server = start_server().await;
    let app = access_app(&server);
    let claims = access_claims(&server.issuer(), CLIENT);
    let kid = key(0).kid.clone();

    // alg none, with an otherwise valid RS256 signature over the same input.
    let none_signed = token_with_header(json!({"alg": "none", "kid": kid}), &claims);
    // Case tricks.
    let lower = token_with_header(json!({"alg": "rs256", "kid": kid}), &claims);
    let spaced = token_with_header(json!({"alg": "RS256 ", "kid": kid}), &claims);
    let missing_alg = token_with_header(json!({"kid": kid}), &claims);

    // HS256 keyed with the public key bytes (the classic key-confusion attack).
    let modulus = URL_SAFE_NO_PAD.decode(&key(0).n).unwrap();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some(kid.clone());
    let hs256_modulus =
        jsonwebtoken::encode(&hs_header, &claims, &EncodingKey::from_secret(&modulus)).unwrap();
    let jwk_text = key(0).jwk().to_string();
    let hs256_jwk = jsonwebtoken::encode(
        &hs_header,
        &claims,
        &EncodingKey::from_secret(jwk_text.as_bytes()),
    )
    .unwrap();
    // The same by hand with aws-lc-rs HMAC.
    let signing_input = format!(
        "{}.{}",
        b64(json!({"alg": "HS256", "typ": "JWT", "kid": kid}).to_string()),
        b64(claims.to_string())
    );
    let hmac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &modulus);
    let tag = aws_lc_rs::hmac::sign(&hmac_key, signing_input.as_bytes());
    let hs256_manual = format!("{signing_input}.{}", b64(tag.as_ref()));

    // RS384 with the genuine RSA key.
    let mut rs384_header = Header::new(Algorithm::RS384);
    rs384_header.kid = Some(kid.clone());
    let rs384 = jsonwebtoken::encode(&rs384_header, &claims, &key(0).encoding_key).unwrap();

    // ES256 with a real P-256 key.
    let ec = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    )
    .unwrap();
    let es_input = format!(
        "{}.{}",
        b64(json!({"alg": "ES256", "kid": kid}).to_string()),
        b64(claims.to_string())
    );
    let es_sig = ec
        .sign(&aws_lc_rs::rand::SystemRandom::new(), es_input.as_bytes())
        .unwrap();
    let es256 = format!("{es_input}.{}", b64(es_sig.as_ref()));

    for (name, t) in [
        ("none (signed)", none_signed),
        ("rs256", lower),
        ("'RS256 '", spaced),
        ("no alg", missing_alg),
        ("HS256 keyed with the modulus", hs256_modulus),
        ("HS256 keyed with the JWK text", hs256_jwk),
        ("HS256 by hand", hs256_manual),
        ("RS384", rs384),
        ("ES256", es256),
    ] {
        let resp = send_token(&app, &t).await;
        let expected = if name == "no alg" {
            // A header without `alg` does not have the expected shape.
            (InvalidToken::Malformed, "The token is malformed")
        } else {
            (
                InvalidToken::UnsupportedAlgorithm,
                "The token algorithm is not supported",
            )
        };
        assert_eq!(
            resp.extensions().get::<AuthError>(),
            Some(&AuthError::InvalidToken(expected.0)),
            "{name}"
        );
        assert_invalid_token(&resp, expected.0, expected.1);
    }

    // The classic `alg: none` token has an empty signature part: refused as malformed before
    // its header is even read.
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "kid": kid}).to_string()),
        b64(claims.to_string())
    );
    let resp = send_token(&app, &unsigned).await;
    assert_invalid_token(&resp, InvalidToken::Malformed, "The token is malformed");

    assert_eq!(
        server.fetch_count(),
        0,
        "refused on the header, before any key lookup"
    );
}

#[tokio::test]
async fn a_header_without_kid_is_refused() {
    let server = start_server().await;
    let app = access_app(&server);
    let claims = access_claims(&server.issuer(), CLIENT);
    for header in [
        json!({"alg": "RS256"}),
        json!({"alg": "RS256", "typ": "JWT"}),
        json!({"alg": "RS256", "kid": null}),
    ] {
        let resp = send_token(&app, &token_with_header(header, &claims)).await;
        assert_invalid_token(&resp, InvalidToken::MissingKeyId, "The token has no key id");
    }
    assert_eq!(server.fetch_count(), 0);
}

#[tokio::test]
async fn a_crit_header_is_refused() {
    let server = start_server().await;
    let app = access_app(&server);
    let claims = access_claims(&server.issuer(), CLIENT);
    for header in [
        json!({"alg": "RS256", "kid": key(0).kid, "crit": ["exp"], "exp": 1}),
        json!({"alg": "RS256", "kid": key(0).kid, "crit": ["b64"], "b64": false}),
        json!({"alg": "RS256", "kid": key(0).kid, "crit": []}),
    ] {
        let resp = send_token(&app, &token_with_header(header, &claims)).await;
        assert_invalid_token(
            &resp,
            InvalidToken::UnsupportedCritical,
            "The token requires an unsupported extension",
        );
    }
    assert_eq!(server.fetch_count(), 0);
}

#[tokio::test]
async fn key_urls_in_the_header_are_ignored() {
    // `jku`/`x5u`/`jwk` never bring keys in: a token signed by an attacker's key that the
    // header points to is refused, and the pool's key still decides.
    let server = start_server().await;
    let app = access_app(&server);
    let claims = access_claims(&server.issuer(), CLIENT);
    let attacker = key(3).with_kid(key(0).kid.clone());
    let header = json!({
        "alg": "RS256",
        "kid": key(0).kid,
        "jku": "https://attacker.example/jwks.json",
        "jwk": key(3).jwk(),
    });
    let t = mint_json(&header, &claims, &attacker);
    let resp = send_token(&app, &t).await;
    assert_invalid_token(
        &resp,
        InvalidToken::BadSignature,
        "The token signature is invalid",
    );
    // With the genuine key the same header is fine.
    assert_ok(&send_token(&app, &token_with_header(header, &claims)).await);
}

// ---------------------------------------------------------------------------
// 3-4. Key and signature
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_kid_is_refused_after_one_fetch() {
    let server = start_server().await;
    let app = access_app(&server);
    let claims = access_claims(&server.issuer(), CLIENT);

    let resp = send_token(&app, &mint(key(1), &claims)).await;
    assert_invalid_token(
        &resp,
        InvalidToken::UnknownKey,
        "The token signing key is unknown",
    );
    assert_eq!(server.fetch_count(), 1, "exactly one fetch for the miss");

    // A second unknown kid within the (default, 10 s) cooldown: no new fetch.
    let t = token_with_header(json!({"alg": "RS256", "kid": "nope"}), &claims);
    assert_invalid_token(
        &send_token(&app, &t).await,
        InvalidToken::UnknownKey,
        "The token signing key is unknown",
    );
    assert_eq!(server.fetch_count(), 1);

    // The known key still works, from the cache.
    assert_ok(&send_token(&app, &token(&claims)).await);
    assert_eq!(server.fetch_count(), 1);
}

#[tokio::test]
async fn a_tampered_token_has_a_bad_signature() {
    let server = start_server().await;
    let app = access_app(&server);
    let claims = access_claims(&server.issuer(), CLIENT);
    let good = token(&claims);
    let parts: Vec<&str> = good.split('.').collect();

    let mut elevated = claims.clone();
    elevated["username"] = json!("admin");
    elevated["scope"] = json!("admin/all");
    let tampered_payload = format!("{}.{}.{}", parts[0], b64(elevated.to_string()), parts[2]);

    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[10] ^= 1;
    let flipped_bit = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));

    let truncated_sig = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..100]);

    // The header swapped for an equivalent one (other member order and spacing): the
    // signature covers the header bytes too.
    let other_header = format!(
        "{}.{}.{}",
        b64(format!(r#"{{ "kid": "{}", "alg": "RS256" }}"#, key(0).kid)),
        parts[1],
        parts[2]
    );

    // Another key's signature under the served kid.
    let wrong_key = mint(&key(1).with_kid(key(0).kid.clone()), &claims);

    // Padding on the signature: JWS uses base64url without padding.
    let padded_sig = format!("{good}==");

    // An absurdly long signature part.
    let long_sig = format!("{}.{}.{}", parts[0], parts[1], "A".repeat(2000));

    for (name, t) in [
        ("tampered payload", tampered_payload),
        ("flipped bit", flipped_bit),
        ("truncated signature", truncated_sig),
        ("re-encoded header", other_header),
        ("another key", wrong_key),
        ("long signature", long_sig),
        ("padded signature", padded_sig),
    ] {
        let resp = send_token(&app, &t).await;
        assert_eq!(
            resp.extensions().get::<AuthError>(),
            Some(&AuthError::InvalidToken(InvalidToken::BadSignature)),
            "{name}"
        );
        assert_invalid_token(
            &resp,
            InvalidToken::BadSignature,
            "The token signature is invalid",
        );
    }
    assert_ok(&send_token(&app, &good).await);
}

// ---------------------------------------------------------------------------
// 5. Issuer
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_wrong_issuer_is_refused() {
    let server = start_server().await;
    let app = access_app(&server);
    let issuer = server.issuer();
    let pool = UserPool::parse(POOL).unwrap();
    for iss in [
        json!(format!("{issuer}/")),
        json!(issuer.replace(POOL, "us-east-1_Other")),
        json!(issuer.to_uppercase()),
        json!(issuer.replace("http://", "https://")),
        // The real Cognito issuers are not accepted when an override is set.
        json!(pool.issuer(IssuerForm::Original)),
        json!(""),
        Value::Null,
    ] {
        let mut claims = access_claims(&issuer, CLIENT);
        claims["iss"] = iss.clone();
        let resp = send_token(&app, &token(&claims)).await;
        assert_eq!(
            resp.extensions().get::<AuthError>(),
            Some(&AuthError::InvalidToken(InvalidToken::WrongIssuer)),
            "iss {iss}"
        );
        assert_invalid_token(
            &resp,
            InvalidToken::WrongIssuer,
            "The token issuer is not accepted",
        );
    }
    let mut claims = access_claims(&issuer, CLIENT);
    claims.as_object_mut().unwrap().remove("iss");
    assert_invalid_token(
        &send_token(&app, &token(&claims)).await,
        InvalidToken::WrongIssuer,
        "The token issuer is not accepted",
    );
}

/// A config WITHOUT `issuer_override`: the pool's own issuers, keys from the local server.
fn pool_issuer_config(server: &JwksServer) -> CognitoConfig {
    support::pool_issuer_config(server, TokenUse::Access, ClientIds::one(CLIENT))
}

#[tokio::test]
async fn both_cognito_issuer_forms_are_accepted_by_default() {
    let server = start_server().await;
    let app = app(
        Verifier::new(pool_issuer_config(&server)).unwrap(),
        describe_access,
    );
    let original = format!("https://cognito-idp.us-east-1.amazonaws.com/{POOL}");
    let updated = format!("https://issuer-cognito-idp.us-east-1.amazonaws.com/{POOL}");
    for iss in [&original, &updated] {
        let resp = send_token(&app, &token(&access_claims(iss, CLIENT))).await;
        assert_ok(&resp);
    }
    // Neither the local server's issuer nor another region or pool.
    for iss in [
        server.issuer(),
        format!("https://cognito-idp.eu-west-1.amazonaws.com/{POOL}"),
        "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other".to_owned(),
        format!("https://cognito-idp.us-east-1.amazonaws.com/{POOL}/"),
        format!("http://cognito-idp.us-east-1.amazonaws.com/{POOL}"),
    ] {
        let resp = send_token(&app, &token(&access_claims(&iss, CLIENT))).await;
        assert_invalid_token(
            &resp,
            InvalidToken::WrongIssuer,
            "The token issuer is not accepted",
        );
    }
}

#[tokio::test]
async fn one_issuer_form_only_refuses_the_other() {
    let server = start_server().await;
    let original = format!("https://cognito-idp.us-east-1.amazonaws.com/{POOL}");
    let updated = format!("https://issuer-cognito-idp.us-east-1.amazonaws.com/{POOL}");

    let only_updated = app(
        Verifier::new(pool_issuer_config(&server).issuers(Issuers::Only(IssuerForm::Updated)))
            .unwrap(),
        describe_access,
    );
    assert_ok(&send_token(&only_updated, &token(&access_claims(&updated, CLIENT))).await);
    assert_invalid_token(
        &send_token(&only_updated, &token(&access_claims(&original, CLIENT))).await,
        InvalidToken::WrongIssuer,
        "The token issuer is not accepted",
    );

    let only_original = app(
        Verifier::new(pool_issuer_config(&server).issuers(Issuers::Only(IssuerForm::Original)))
            .unwrap(),
        describe_access,
    );
    assert_ok(&send_token(&only_original, &token(&access_claims(&original, CLIENT))).await);
    assert_invalid_token(
        &send_token(&only_original, &token(&access_claims(&updated, CLIENT))).await,
        InvalidToken::WrongIssuer,
        "The token issuer is not accepted",
    );
}

// ---------------------------------------------------------------------------
// 6. Token use
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_id_token_is_refused_where_access_is_required() {
    let server = start_server().await;
    let app = access_app(&server);
    let resp = send_token(&app, &token(&id_claims(&server.issuer(), CLIENT))).await;
    assert_invalid_token(
        &resp,
        InvalidToken::WrongTokenUse,
        "The token use is not accepted",
    );
    for token_use in [json!("refresh"), json!("Access"), json!(""), Value::Null] {
        let mut claims = access_claims(&server.issuer(), CLIENT);
        claims["token_use"] = token_use;
        assert_invalid_token(
            &send_token(&app, &token(&claims)).await,
            InvalidToken::WrongTokenUse,
            "The token use is not accepted",
        );
    }
}

#[tokio::test]
async fn an_access_token_is_refused_where_id_is_required() {
    let server = start_server().await;
    let verifier: Verifier<IdClaims> =
        Verifier::with_claims(local_config(&server, TokenUse::Id, CLIENT)).unwrap();
    let app = app(verifier, describe_id);
    assert_eq!(
        assert_ok(&send_token(&app, &token(&id_claims(&server.issuer(), CLIENT))).await),
        format!("id sub={} user=alice aud={CLIENT}", support::SUB)
    );
    let resp = send_token(&app, &token(&access_claims(&server.issuer(), CLIENT))).await;
    assert_invalid_token(
        &resp,
        InvalidToken::WrongTokenUse,
        "The token use is not accepted",
    );
}

// ---------------------------------------------------------------------------
// 7. Client
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_access_token_of_another_client_is_refused() {
    let server = start_server().await;
    let app = access_app(&server);
    for client_id in [json!(OTHER_CLIENT), json!(""), json!(CLIENT.to_uppercase())] {
        let mut claims = access_claims(&server.issuer(), CLIENT);
        claims["client_id"] = client_id;
        assert_invalid_token(
            &send_token(&app, &token(&claims)).await,
            InvalidToken::WrongClient,
            "The token client is not accepted",
        );
    }
    // Several allowed clients: each is accepted, others still refused.
    let both = app_for_clients(&server, ClientIds::new([CLIENT, OTHER_CLIENT]));
    for client in [CLIENT, OTHER_CLIENT] {
        assert_ok(&send_token(&both, &token(&access_claims(&server.issuer(), client))).await);
    }
    assert_invalid_token(
        &send_token(
            &both,
            &token(&access_claims(&server.issuer(), "1third2client3")),
        )
        .await,
        InvalidToken::WrongClient,
        "The token client is not accepted",
    );
}

fn app_for_clients(server: &JwksServer, clients: ClientIds) -> App {
    app(
        Verifier::new(local_config_with(server, TokenUse::Access, clients)).unwrap(),
        describe_access,
    )
}

#[tokio::test]
async fn an_id_token_for_another_audience_is_refused() {
    let server = start_server().await;
    let verifier: Verifier<IdClaims> =
        Verifier::with_claims(local_config(&server, TokenUse::Id, CLIENT)).unwrap();
    let app = app(verifier, describe_id);

    let mut claims = id_claims(&server.issuer(), OTHER_CLIENT);
    // Even with the allowed client in `client_id`: id tokens are checked through `aud`.
    claims["client_id"] = json!(CLIENT);
    assert_invalid_token(
        &send_token(&app, &token(&claims)).await,
        InvalidToken::WrongClient,
        "The token client is not accepted",
    );
    let mut no_aud = id_claims(&server.issuer(), CLIENT);
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_invalid_token(
        &send_token(&app, &token(&no_aud)).await,
        InvalidToken::WrongClient,
        "The token client is not accepted",
    );
}

/// The "aud only when present" bug: Cognito access tokens have no `aud`, so the client must be
/// checked through `client_id`, and an access token must never pass on `aud` alone.
#[tokio::test]
async fn an_access_token_without_client_id_is_refused_even_with_an_allowed_aud() {
    let server = start_server().await;
    let app = access_app(&server);

    let mut claims = access_claims(&server.issuer(), CLIENT);
    claims.as_object_mut().unwrap().remove("client_id");
    claims["aud"] = json!(CLIENT);
    assert_invalid_token(
        &send_token(&app, &token(&claims)).await,
        InvalidToken::WrongClient,
        "The token client is not accepted",
    );

    // Nor does an allowed `aud` rescue a wrong `client_id`.
    let mut claims = access_claims(&server.issuer(), OTHER_CLIENT);
    claims["aud"] = json!(CLIENT);
    assert_invalid_token(
        &send_token(&app, &token(&claims)).await,
        InvalidToken::WrongClient,
        "The token client is not accepted",
    );

    // And a null client_id is no client_id.
    let mut claims = access_claims(&server.issuer(), CLIENT);
    claims["client_id"] = Value::Null;
    claims["aud"] = json!(CLIENT);
    assert_invalid_token(
        &send_token(&app, &token(&claims)).await,
        InvalidToken::WrongClient,
        "The token client is not accepted",
    );
}

#[tokio::test]
async fn unchecked_client_ids_accept_any_client() {
    let server = start_server().await;
    let any_client = app_for_clients(&server, ClientIds::unchecked());
    for client in [CLIENT, OTHER_CLIENT, "anything"] {
        let t = token(&access_claims(&server.issuer(), client));
        assert_ok(&send_token(&any_client, &t).await);
    }
    let ids: Verifier<IdClaims> = Verifier::with_claims(local_config_with(
        &server,
        TokenUse::Id,
        ClientIds::unchecked(),
    ))
    .unwrap();
    let ids = app(ids, describe_id);
    assert_ok(&send_token(&ids, &token(&id_claims(&server.issuer(), OTHER_CLIENT))).await);
    // Unchecked is not "anything goes": the other checks still run.
    let resp = send_token(&ids, &token(&access_claims(&server.issuer(), CLIENT))).await;
    assert_invalid_token(
        &resp,
        InvalidToken::WrongTokenUse,
        "The token use is not accepted",
    );
}

// ---------------------------------------------------------------------------
// 8. Time
// ---------------------------------------------------------------------------

/// A fixed instant far from the real "now", to prove the configured clock is the one used.
const T: i64 = 1_700_000_000;

fn clocked_app(server: &JwksServer, clock: &TestClock, leeway: u64) -> App {
    clocked_app_with_cache(
        server,
        clock,
        leeway,
        tower_cognito::DEFAULT_TOKEN_CACHE_SIZE,
    )
}

/// `token_cache_size` 0 turns the verified-token cache off, so every request is verified afresh.
fn clocked_app_with_cache(
    server: &JwksServer,
    clock: &TestClock,
    leeway: u64,
    token_cache_size: u64,
) -> App {
    app(
        Verifier::new(
            config(server)
                .clock(clock.clone())
                .leeway(Duration::from_secs(leeway))
                .token_cache_size(token_cache_size),
        )
        .unwrap(),
        describe_access,
    )
}

fn timed_claims(server: &JwksServer, iat: i64, exp: i64) -> Value {
    let mut claims = access_claims(&server.issuer(), CLIENT);
    claims["iat"] = json!(iat);
    claims["auth_time"] = json!(iat);
    claims["exp"] = json!(exp);
    claims
}

#[tokio::test]
async fn exp_and_iat_are_required() {
    let server = start_server().await;
    let app = access_app(&server);
    for claim in ["exp", "iat"] {
        let mut claims = access_claims(&server.issuer(), CLIENT);
        claims.as_object_mut().unwrap().remove(claim);
        assert_invalid_token(
            &send_token(&app, &token(&claims)).await,
            InvalidToken::MissingClaim,
            "The token lacks a required claim",
        );
    }
}

#[tokio::test]
async fn expiry_honours_the_leeway_up_to_exactly_exp_plus_leeway() {
    // With the verified-token cache (the same token is answered from it after the first
    // request: exp must be re-checked on every hit) and without it.
    for cache_size in [tower_cognito::DEFAULT_TOKEN_CACHE_SIZE, 0] {
        expiry_boundaries(cache_size).await;
    }
}

async fn expiry_boundaries(cache_size: u64) {
    let server = start_server().await;
    let clock = TestClock::at(T);
    let app = clocked_app_with_cache(&server, &clock, 5, cache_size);
    let exp = T + 100;
    let t = token(&timed_claims(&server, T - 600, exp));

    for now in [T, exp - 1, exp, exp + 1, exp + 4] {
        clock.set(now);
        let resp = send_token(&app, &t).await;
        assert_eq!(
            resp.status(),
            200,
            "cache {cache_size}, now = exp{:+}: {:?}",
            now - exp,
            resp.extensions().get::<AuthError>()
        );
        assert_ok(&resp);
    }
    for now in [exp + 5, exp + 6, exp + 3600] {
        clock.set(now);
        let resp = send_token(&app, &t).await;
        assert_invalid_token(&resp, InvalidToken::Expired, "The token has expired");
    }

    // With no leeway, exp itself is already too late.
    let strict = clocked_app_with_cache(&server, &clock, 0, cache_size);
    clock.set(exp - 1);
    assert_ok(&send_token(&strict, &t).await);
    clock.set(exp);
    assert_invalid_token(
        &send_token(&strict, &t).await,
        InvalidToken::Expired,
        "The token has expired",
    );

    // The real clock is not used: against it this token expired long ago.
    let real_time = access_app(&server);
    assert_invalid_token(
        &send_token(&real_time, &t).await,
        InvalidToken::Expired,
        "The token has expired",
    );
}

#[tokio::test]
async fn nbf_in_the_future_is_refused_beyond_the_leeway() {
    let server = start_server().await;
    let clock = TestClock::at(T);
    let app = clocked_app(&server, &clock, 5);

    let mut claims = timed_claims(&server, T - 10, T + 3600);
    claims["nbf"] = json!(T + 5);
    assert_ok(&send_token(&app, &token(&claims)).await);

    claims["nbf"] = json!(T + 6);
    let t = token(&claims);
    assert_invalid_token(
        &send_token(&app, &t).await,
        InvalidToken::NotYetValid,
        "The token is not valid yet",
    );
    // The same token becomes valid once the clock reaches nbf - leeway.
    clock.set(T + 1);
    assert_ok(&send_token(&app, &t).await);
}

#[tokio::test]
async fn iat_in_the_future_is_refused_beyond_the_leeway() {
    let server = start_server().await;
    let clock = TestClock::at(T);
    let app = clocked_app(&server, &clock, 5);

    assert_ok(&send_token(&app, &token(&timed_claims(&server, T + 5, T + 3600))).await);
    let t = token(&timed_claims(&server, T + 6, T + 3600));
    assert_invalid_token(
        &send_token(&app, &t).await,
        InvalidToken::IssuedInFuture,
        "The token is issued in the future",
    );
    clock.set(T + 1);
    assert_ok(&send_token(&app, &t).await);
}

// ---------------------------------------------------------------------------
// 9. Rules: scopes, groups, custom checks
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_missing_required_scope_is_forbidden_with_the_scope_attribute() {
    let server = start_server().await;
    let verifier =
        Verifier::new(config(&server).require_scopes(["orders/read", "orders/write"])).unwrap();
    let app = app(verifier, describe_access);
    let challenge = "Bearer realm=\"cognito\", error=\"insufficient_scope\", \
                     error_description=\"The token lacks a required scope\", \
                     scope=\"orders/read orders/write\"";
    let forbidden = AuthError::InsufficientScope {
        reason: Forbidden::MissingScope,
        scope: Some("orders/read orders/write".into()),
    };

    for scope in [
        json!("openid orders/read"),
        json!("orders/read/orders/write"),
        json!("orders/readorders/write"),
        json!(""),
        Value::Null,
    ] {
        let mut claims = access_claims(&server.issuer(), CLIENT);
        claims["scope"] = scope;
        let resp = send_token(&app, &token(&claims)).await;
        assert_refused(&resp, 403, Some(challenge), forbidden.clone());
    }
    let mut claims = access_claims(&server.issuer(), CLIENT);
    claims.as_object_mut().unwrap().remove("scope");
    assert_refused(
        &send_token(&app, &token(&claims)).await,
        403,
        Some(challenge),
        forbidden,
    );

    for scope in [
        "orders/write orders/read",
        "openid orders/read profile orders/write",
    ] {
        let mut claims = access_claims(&server.issuer(), CLIENT);
        claims["scope"] = json!(scope);
        assert_ok(&send_token(&app, &token(&claims)).await);
    }
}

#[tokio::test]
async fn not_being_in_a_required_group_is_forbidden() {
    let server = start_server().await;
    let verifier = Verifier::new(config(&server).require_any_group(["admins", "ops"])).unwrap();
    let app = app(verifier, describe_access);
    let challenge = "Bearer realm=\"cognito\", error=\"insufficient_scope\", \
                     error_description=\"The user is not in a required group\"";
    let forbidden = AuthError::InsufficientScope {
        reason: Forbidden::MissingGroup,
        scope: None,
    };
    for groups in [json!(["users"]), json!([]), json!(["Admins"]), Value::Null] {
        let mut claims = access_claims(&server.issuer(), CLIENT);
        claims["cognito:groups"] = groups;
        let resp = send_token(&app, &token(&claims)).await;
        assert_refused(&resp, 403, Some(challenge), forbidden.clone());
    }
    let no_groups = access_claims(&server.issuer(), CLIENT);
    assert_refused(
        &send_token(&app, &token(&no_groups)).await,
        403,
        Some(challenge),
        forbidden,
    );
    for groups in [json!(["ops"]), json!(["users", "admins"])] {
        let mut claims = access_claims(&server.issuer(), CLIENT);
        claims["cognito:groups"] = groups;
        assert_ok(&send_token(&app, &token(&claims)).await);
    }
}

#[tokio::test]
async fn a_failing_custom_check_is_forbidden() {
    let server = start_server().await;
    let verifier = Verifier::<AccessClaims>::new(config(&server))
        .unwrap()
        .with_check(|c: &AccessClaims| c.username == "alice");
    let app = app(verifier, describe_access);
    assert_ok(&send_token(&app, &token(&access_claims(&server.issuer(), CLIENT))).await);
    let mut claims = access_claims(&server.issuer(), CLIENT);
    claims["username"] = json!("mallory");
    let resp = send_token(&app, &token(&claims)).await;
    assert_refused(
        &resp,
        403,
        Some(
            "Bearer realm=\"cognito\", error=\"insufficient_scope\", \
             error_description=\"The token is not allowed to access this resource\"",
        ),
        AuthError::InsufficientScope {
            reason: Forbidden::CheckFailed,
            scope: None,
        },
    );
}

// ---------------------------------------------------------------------------
// Claims types
// ---------------------------------------------------------------------------

#[tokio::test]
async fn token_use_any_with_any_claims_accepts_both_kinds() {
    let server = start_server().await;
    let verifier: Verifier<AnyClaims> =
        Verifier::with_claims(local_config(&server, TokenUse::Any, CLIENT)).unwrap();
    let app = app(verifier, describe_any);
    assert_eq!(
        assert_ok(&send_token(&app, &token(&access_claims(&server.issuer(), CLIENT))).await),
        format!("any/access sub={} user=alice client={CLIENT}", support::SUB)
    );
    assert_eq!(
        assert_ok(&send_token(&app, &token(&id_claims(&server.issuer(), CLIENT))).await),
        format!("any/id sub={} user=alice aud={CLIENT}", support::SUB)
    );

    // Each kind is still checked through its own client claim.
    let mut id = id_claims(&server.issuer(), OTHER_CLIENT);
    id["client_id"] = json!(CLIENT);
    assert_invalid_token(
        &send_token(&app, &token(&id)).await,
        InvalidToken::WrongClient,
        "The token client is not accepted",
    );
    let mut access = access_claims(&server.issuer(), CLIENT);
    access.as_object_mut().unwrap().remove("client_id");
    access["aud"] = json!(CLIENT);
    assert_invalid_token(
        &send_token(&app, &token(&access)).await,
        InvalidToken::WrongClient,
        "The token client is not accepted",
    );
    // Other token uses are still refused.
    let mut refresh = access_claims(&server.issuer(), CLIENT);
    refresh["token_use"] = json!("refresh");
    assert_invalid_token(
        &send_token(&app, &token(&refresh)).await,
        InvalidToken::WrongTokenUse,
        "The token use is not accepted",
    );
}

/// Claims of the application's own shape, e.g. added by a pre-token-generation trigger.
#[derive(Debug, Deserialize)]
struct TenantClaims {
    sub: String,
    username: String,
    tenant: String,
    #[serde(default)]
    seats: u32,
}

fn describe_tenant(c: &TenantClaims) -> String {
    format!(
        "tenant={} user={} sub={} seats={}",
        c.tenant, c.username, c.sub, c.seats
    )
}

#[tokio::test]
async fn a_user_defined_claims_type_works() {
    let server = start_server().await;
    let verifier: Verifier<TenantClaims> = Verifier::with_claims(config(&server)).unwrap();
    let app = app(verifier, describe_tenant);
    let mut claims = access_claims(&server.issuer(), CLIENT);
    claims["tenant"] = json!("acme");
    claims["seats"] = json!(12);
    assert_eq!(
        assert_ok(&send_token(&app, &token(&claims)).await),
        format!("tenant=acme user=alice sub={} seats=12", support::SUB)
    );
    // The registered claims are still checked whatever the type.
    claims["client_id"] = json!(OTHER_CLIENT);
    assert_invalid_token(
        &send_token(&app, &token(&claims)).await,
        InvalidToken::WrongClient,
        "The token client is not accepted",
    );
}

#[tokio::test]
async fn claims_that_do_not_fit_the_claims_type_are_refused() {
    let server = start_server().await;
    let tenant_app = app(
        Verifier::<TenantClaims>::with_claims(config(&server)).unwrap(),
        describe_tenant,
    );
    // No `tenant`.
    let claims = access_claims(&server.issuer(), CLIENT);
    assert_invalid_token(
        &send_token(&tenant_app, &token(&claims)).await,
        InvalidToken::Malformed,
        "The token is malformed",
    );
    // `seats` of the wrong type.
    let mut claims = access_claims(&server.issuer(), CLIENT);
    claims["tenant"] = json!("acme");
    claims["seats"] = json!("twelve");
    assert_invalid_token(
        &send_token(&tenant_app, &token(&claims)).await,
        InvalidToken::Malformed,
        "The token is malformed",
    );

    // The built-in AccessClaims: no `sub`, or a `username` that is not a string.
    let access = access_app(&server);
    let mut no_sub = access_claims(&server.issuer(), CLIENT);
    no_sub.as_object_mut().unwrap().remove("sub");
    let mut numeric_username = access_claims(&server.issuer(), CLIENT);
    numeric_username["username"] = json!(42);
    for claims in [no_sub, numeric_username] {
        assert_invalid_token(
            &send_token(&access, &token(&claims)).await,
            InvalidToken::Malformed,
            "The token is malformed",
        );
    }
}

// ---------------------------------------------------------------------------
// Verifier::verify directly
// ---------------------------------------------------------------------------

#[tokio::test]
async fn verify_returns_typed_errors_and_claims() {
    let server = start_server().await;
    let verifier: Verifier = Verifier::new(config(&server).require_scopes(["openid"])).unwrap();
    assert_eq!(verifier.prefetch_keys().await, Ok(1));

    let claims = access_claims(&server.issuer(), CLIENT);
    let verified = verifier.verify(&token(&claims)).await.unwrap();
    assert_eq!(verified.username, "alice");
    assert_eq!(verified.client_id, CLIENT);
    assert_eq!(verified.issued_at(), claims["iat"].as_i64().unwrap());
    assert_eq!(verified.expires_at(), claims["exp"].as_i64().unwrap());
    assert_eq!(verified.session_key(), None);

    let mut expired = claims.clone();
    expired["exp"] = json!(support::now() - 3600);
    let mut wrong_client = claims.clone();
    wrong_client["client_id"] = json!(OTHER_CLIENT);
    let mut no_scope = claims.clone();
    no_scope["scope"] = json!("profile");
    let cases = [
        (
            verifier.verify(&token(&expired)).await,
            AuthError::InvalidToken(InvalidToken::Expired),
        ),
        (
            verifier.verify(&token(&wrong_client)).await,
            AuthError::InvalidToken(InvalidToken::WrongClient),
        ),
        (
            verifier.verify(&mint(key(2), &claims)).await,
            AuthError::InvalidToken(InvalidToken::UnknownKey),
        ),
        (
            verifier.verify("not-a-token").await,
            AuthError::InvalidToken(InvalidToken::Malformed),
        ),
        (
            verifier.verify(&"x".repeat(9000)).await,
            AuthError::InvalidToken(InvalidToken::TooLarge),
        ),
        (
            verifier.verify(&token(&no_scope)).await,
            AuthError::InsufficientScope {
                reason: Forbidden::MissingScope,
                scope: Some("openid".into()),
            },
        ),
    ];
    for (result, expected) in cases {
        assert_eq!(result.unwrap_err(), expected);
    }
}

// ---------------------------------------------------------------------------
// Regressions
// ---------------------------------------------------------------------------

/// A JOSE header must be a JSON object (RFC 7515 section 4). A derived serde struct also
/// accepts the sequence form, so a header of `["RS256","<kid>"]` signed by the pool's key was
/// once read as `alg` + `kid` and accepted.
#[tokio::test]
async fn a_json_array_header_is_refused_as_malformed() {
    let server = start_server().await;
    let app = access_app(&server);
    let claims = access_claims(&server.issuer(), CLIENT);
    for header in [
        format!(r#"["RS256","{}"]"#, key(0).kid),
        format!(r#"["RS256","{}",null]"#, key(0).kid),
        r#"["RS256"]"#.to_owned(),
    ] {
        let t = mint_raw(&header, &claims.to_string(), key(0));
        let resp = send_token(&app, &t).await;
        assert_eq!(
            resp.extensions().get::<AuthError>(),
            Some(&AuthError::InvalidToken(InvalidToken::Malformed)),
            "header {header}: status {}",
            resp.status()
        );
        assert_invalid_token(&resp, InvalidToken::Malformed, "The token is malformed");
    }
}
