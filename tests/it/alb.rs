//! `AlbVerifier`: the `x-amzn-oidc-data` token of an Application Load Balancer, against a real
//! key endpoint of the test's own on 127.0.0.1 that serves PEM keys of P-256 key pairs made
//! here, and counts and records every request it gets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Router;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};
use tower_cognito::alb::{AlbConfig, AlbError, AlbVerifier};
use tower_cognito::{ConfigError, InvalidToken};

const ARN: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";
const OTHER_ARN: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:210987654321:loadbalancer/app/web/50dc6c495c0c9188";
const ISS: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123";
const CLIENT: &str = "1example23456789";
const KID: &str = "b3a1fc2e-0c7f-4d6c-9a64-1d0a2e3f4b5c";

/// What the key endpoint serves and what it was asked.
#[derive(Default)]
struct Endpoint {
    /// kid -> PEM body.
    keys: HashMap<String, String>,
    /// Answer this status to every request instead.
    fail_with: Option<u16>,
    /// Every request path, as received.
    paths: Vec<String>,
}

struct KeyServer {
    base: String,
    state: Arc<Mutex<Endpoint>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KeyServer {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(Endpoint::default()));
        let app = Router::new()
            .fallback(serve_key)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/keys/", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { base, state, task }
    }

    fn publish(&self, kid: &str, pair: &EcdsaKeyPair) {
        let der = pair.public_key().as_der().unwrap();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der.as_ref())
        );
        self.state
            .lock()
            .unwrap()
            .keys
            .insert(format!("/keys/{kid}"), pem);
    }

    fn fail_with(&self, status: u16) {
        self.state.lock().unwrap().fail_with = Some(status);
    }

    fn paths(&self) -> Vec<String> {
        self.state.lock().unwrap().paths.clone()
    }

    fn fetches(&self) -> usize {
        self.state.lock().unwrap().paths.len()
    }

    fn config(&self) -> AlbConfig {
        AlbConfig::new([ARN])
            .key_endpoint(self.base.clone())
            .allow_http_on_loopback(true)
    }
}

async fn serve_key(State(state): State<Arc<Mutex<Endpoint>>>, uri: Uri) -> (StatusCode, String) {
    let mut state = state.lock().unwrap();
    let path = uri.path().to_owned();
    state.paths.push(path.clone());
    if let Some(status) = state.fail_with {
        return (StatusCode::from_u16(status).unwrap(), String::new());
    }
    match state.keys.get(&path) {
        Some(pem) => (StatusCode::OK, pem.clone()),
        None => (StatusCode::NOT_FOUND, String::new()),
    }
}

/// A key endpoint with one key published under [`KID`], the key, and a verifier of `config`
/// applied to the endpoint's configuration.
async fn published(
    config: impl FnOnce(AlbConfig) -> AlbConfig,
) -> (KeyServer, EcdsaKeyPair, AlbVerifier) {
    let server = KeyServer::start().await;
    let key = pair();
    server.publish(KID, &key);
    let verifier = AlbVerifier::new(config(server.config())).unwrap();
    (server, key, verifier)
}

fn pair() -> EcdsaKeyPair {
    EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn header(kid: &str) -> Value {
    json!({
        "typ": "JWT",
        "kid": kid,
        "alg": "ES256",
        "iss": ISS,
        "client": CLIENT,
        "signer": ARN,
        "exp": now() + 120,
    })
}

fn payload() -> Value {
    json!({
        "sub": "6a2b3c4d-0000-4000-8000-000000000001",
        "email": "alice@example.com",
        "username": "alice",
        "exp": now() + 120,
        "iss": ISS,
    })
}

/// A token as ALB writes it; `padded` keeps the `=` padding of each part.
fn sign_with(pair: &EcdsaKeyPair, header: &Value, payload: &Value, padded: bool) -> String {
    let engine = if padded { &URL_SAFE } else { &URL_SAFE_NO_PAD };
    let input = format!(
        "{}.{}",
        engine.encode(serde_json::to_vec(header).unwrap()),
        engine.encode(serde_json::to_vec(payload).unwrap())
    );
    let signature = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", engine.encode(signature.as_ref()))
}

fn sign(pair: &EcdsaKeyPair, header: &Value) -> String {
    sign_with(pair, header, &payload(), false)
}

fn invalid(reason: InvalidToken) -> AlbError {
    AlbError::InvalidToken(reason)
}

#[tokio::test]
async fn a_genuine_token_is_accepted_and_its_key_fetched_once() {
    let (server, key, verifier) = published(|c| c.issuer(ISS).client_id(CLIENT)).await;

    let token = sign(&key, &header(KID));
    let claims = verifier.verify(&token).await.unwrap();
    assert_eq!(claims.signer(), ARN);
    assert_eq!(claims.issuer(), Some(ISS));
    assert_eq!(claims.client(), Some(CLIENT));
    assert_eq!(claims.sub(), Some("6a2b3c4d-0000-4000-8000-000000000001"));
    assert_eq!(claims.email(), Some("alice@example.com"));
    assert_eq!(claims.username(), Some("alice"));
    assert_eq!(claims.claims()["iss"], ISS);

    verifier.verify(&token).await.unwrap();
    assert_eq!(server.paths(), vec![format!("/keys/{KID}")]);
}

#[tokio::test]
async fn padded_base64_parts_are_accepted() {
    let (_server, key, verifier) = published(|c| c).await;
    let token = sign_with(&key, &header(KID), &payload(), true);
    assert!(token.contains('='), "the test token must carry padding");
    assert_eq!(
        verifier.verify(&token).await.unwrap().username(),
        Some("alice")
    );
}

#[tokio::test]
async fn a_token_of_another_load_balancer_is_refused_without_fetch() {
    let (server, key, verifier) = published(|c| c).await;

    for signer in [json!(OTHER_ARN), json!(format!("{ARN} ")), json!(null)] {
        let mut h = header(KID);
        h["signer"] = signer;
        assert_eq!(
            verifier.verify(&sign(&key, &h)).await,
            Err(AlbError::WrongSigner)
        );
    }
    let mut h = header(KID);
    h.as_object_mut().unwrap().remove("signer");
    assert_eq!(
        verifier.verify(&sign(&key, &h)).await,
        Err(AlbError::WrongSigner)
    );
    assert_eq!(server.fetches(), 0);
}

#[tokio::test]
async fn only_es256_is_accepted() {
    let (server, key, verifier) = published(|c| c).await;

    for alg in [
        "none", "HS256", "RS256", "ES384", "es256", "ES256 ", "Es256",
    ] {
        let mut h = header(KID);
        h["alg"] = json!(alg);
        assert_eq!(
            verifier.verify(&sign(&key, &h)).await,
            Err(invalid(InvalidToken::UnsupportedAlgorithm)),
            "{alg}"
        );
    }
    // `none` with an empty signature part, as an attacker would send it.
    let mut h = header(KID);
    h["alg"] = json!("none");
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&h).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload()).unwrap())
    );
    assert!(verifier.verify(&unsigned).await.is_err());
    assert_eq!(server.fetches(), 0);
}

#[tokio::test]
async fn expiry_is_required_and_checked_with_the_leeway() {
    let (_server, key, verifier) = published(|c| c.leeway(Duration::from_secs(30))).await;

    let mut h = header(KID);
    h["exp"] = json!(now() - 60);
    assert_eq!(
        verifier.verify(&sign(&key, &h)).await,
        Err(invalid(InvalidToken::Expired))
    );
    // Within the leeway.
    h["exp"] = json!(now() - 10);
    assert!(verifier.verify(&sign(&key, &h)).await.is_ok());
    // No header `exp` at all.
    h.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        verifier.verify(&sign(&key, &h)).await,
        Err(invalid(InvalidToken::MissingClaim))
    );
    // A fractional `exp` is not seconds.
    h["exp"] = json!(1.5e10);
    assert_eq!(
        verifier.verify(&sign(&key, &h)).await,
        Err(invalid(InvalidToken::Malformed))
    );
    // A payload `exp` that has passed, under a header that has not.
    let mut p = payload();
    p["exp"] = json!(now() - 60);
    assert_eq!(
        verifier
            .verify(&sign_with(&key, &header(KID), &p, false))
            .await,
        Err(invalid(InvalidToken::Expired))
    );
}

#[tokio::test]
async fn a_bad_signature_is_refused() {
    let (_server, key, verifier) = published(|c| c).await;

    // Signed by another key under the published kid.
    assert_eq!(
        verifier.verify(&sign(&pair(), &header(KID))).await,
        Err(invalid(InvalidToken::BadSignature))
    );
    // A claim changed after signing.
    let token = sign(&key, &header(KID));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut p = payload();
    p["sub"] = json!("mallory");
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&p).unwrap());
    assert_eq!(
        verifier.verify(&parts.join(".")).await,
        Err(invalid(InvalidToken::BadSignature))
    );
    // A signature of the wrong length (DER instead of r || s, or cut).
    let sig = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(2).unwrap())
        .unwrap();
    let (h, rest) = token.split_once('.').unwrap();
    let p = rest.split_once('.').unwrap().0;
    let cut = format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(&sig[..63]));
    assert_eq!(
        verifier.verify(&cut).await,
        Err(invalid(InvalidToken::BadSignature))
    );
    // The genuine one still passes.
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn a_kid_with_path_characters_is_refused_without_any_fetch() {
    let (server, key, verifier) = published(|c| c).await;

    for kid in [
        "../x",
        "%2F",
        "..%2F..%2Fadmin",
        "a/b",
        "x?y=1",
        "x#y",
        "..",
        "",
        "b3a1fc2e-0c7f-4d6c-9a64-1d0a2e3f4b5c/../../x",
        "g",
    ] {
        assert_eq!(
            verifier.verify(&sign(&key, &header(kid))).await,
            Err(invalid(InvalidToken::MissingKeyId)),
            "{kid:?}"
        );
    }
    let mut h = header(KID);
    h.as_object_mut().unwrap().remove("kid");
    assert_eq!(
        verifier.verify(&sign(&key, &h)).await,
        Err(invalid(InvalidToken::MissingKeyId))
    );
    assert_eq!(server.fetches(), 0);
}

#[tokio::test]
async fn wrong_issuer_and_client_are_refused() {
    let (_server, key, verifier) = published(|c| c.issuer(ISS).client_id(CLIENT)).await;

    let mut h = header(KID);
    h["iss"] = json!("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other");
    assert_eq!(
        verifier.verify(&sign(&key, &h)).await,
        Err(invalid(InvalidToken::WrongIssuer))
    );
    let mut h = header(KID);
    h["client"] = json!("another-client");
    assert_eq!(
        verifier.verify(&sign(&key, &h)).await,
        Err(invalid(InvalidToken::WrongClient))
    );
    let mut h = header(KID);
    h.as_object_mut().unwrap().remove("client");
    assert_eq!(
        verifier.verify(&sign(&key, &h)).await,
        Err(invalid(InvalidToken::WrongClient))
    );
}

#[tokio::test]
async fn a_key_endpoint_that_is_down_is_a_503_never_a_401() {
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let verifier = AlbVerifier::new(
        AlbConfig::new([ARN])
            .key_endpoint(format!("http://{closed}/"))
            .allow_http_on_loopback(true),
    )
    .unwrap();
    let err = verifier
        .verify(&sign(&pair(), &header(KID)))
        .await
        .unwrap_err();
    assert_eq!(err, AlbError::KeysUnavailable);
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        tower_cognito::AuthError::from(err).status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    // An endpoint that answers 500 or a body that is no key: also ours.
    let server = KeyServer::start().await;
    server.fail_with(500);
    let verifier = AlbVerifier::new(server.config()).unwrap();
    assert_eq!(
        verifier.verify(&sign(&pair(), &header(KID))).await,
        Err(AlbError::KeysUnavailable)
    );
    let server = KeyServer::start().await;
    server
        .state
        .lock()
        .unwrap()
        .keys
        .insert(format!("/keys/{KID}"), "<html>maintenance</html>".into());
    let verifier = AlbVerifier::new(server.config()).unwrap();
    assert_eq!(
        verifier.verify(&sign(&pair(), &header(KID))).await,
        Err(AlbError::KeysUnavailable)
    );
    // While a kid that the endpoint does not hold is the token's fault.
    let server = KeyServer::start().await;
    let verifier = AlbVerifier::new(server.config()).unwrap();
    let err = verifier
        .verify(&sign(&pair(), &header(KID)))
        .await
        .unwrap_err();
    assert_eq!(err, invalid(InvalidToken::UnknownKey));
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn key_fetches_go_through_the_proxy_only_when_asked_for() {
    let server = KeyServer::start().await;
    let key = pair();
    server.publish(KID, &key);
    let token = sign(&key, &header(KID));
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let proxy = tower_cognito::JwksProxy::url(format!("http://{closed}"));
    // Through a proxy that is down: our outage, and the endpoint never asked.
    let via_proxy = AlbVerifier::new(server.config().key_proxy(proxy.clone())).unwrap();
    assert_eq!(
        via_proxy.verify(&token).await,
        Err(AlbError::KeysUnavailable)
    );
    assert_eq!(server.fetches(), 0);
    // The endpoint's host in `no_proxy`: fetched directly.
    let direct = AlbVerifier::new(server.config().key_proxy(proxy.no_proxy("127.0.0.1"))).unwrap();
    assert!(direct.verify(&token).await.is_ok());
    assert_eq!(server.fetches(), 1);
}

fn random_kid() -> String {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_a_bounded_number_of_times() {
    let server = KeyServer::start().await;
    let verifier = AlbVerifier::new(
        server
            .config()
            .fetches_per_cooldown(5)
            .key_cooldown(Duration::from_secs(3600)),
    )
    .unwrap();
    let key = pair();
    for _ in 0..200 {
        assert_eq!(
            verifier.verify(&sign(&key, &header(&random_kid()))).await,
            Err(invalid(InvalidToken::UnknownKey))
        );
    }
    assert_eq!(server.fetches(), 5);

    // A kid that failed is not asked again in its cooldown either.
    let server = KeyServer::start().await;
    let verifier = AlbVerifier::new(server.config()).unwrap();
    let token = sign(&key, &header(KID));
    for _ in 0..20 {
        assert_eq!(
            verifier.verify(&token).await,
            Err(invalid(InvalidToken::UnknownKey))
        );
    }
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn a_failed_kid_is_fetched_again_after_the_cooldown() {
    let server = KeyServer::start().await;
    let verifier =
        AlbVerifier::new(server.config().key_cooldown(Duration::from_millis(50))).unwrap();
    let key = pair();
    let token = sign(&key, &header(KID));
    assert_eq!(
        verifier.verify(&token).await,
        Err(invalid(InvalidToken::UnknownKey))
    );
    server.publish(KID, &key);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(server.fetches(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_a_new_kid_share_one_fetch() {
    let (server, key, verifier) = published(|c| c).await;
    let token = sign(&key, &header(KID));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let verifier = verifier.clone();
            let token = token.clone();
            tokio::spawn(async move { verifier.verify(&token).await.map(|_| ()) })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Ok(()));
    }
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let server = KeyServer::start().await;
    let verifier = AlbVerifier::new(server.config().max_token_bytes(4096)).unwrap();
    let key = pair();
    let good = sign(&key, &header(KID));
    for bad in [
        String::new(),
        "a.b".to_owned(),
        format!("{good}.x"),
        good.replacen('.', "..", 1),
        // The standard alphabet is not base64url: a `+` in the signature part.
        format!(
            "{}+{}",
            &good[..good.rfind('.').unwrap() + 1],
            &good[good.rfind('.').unwrap() + 2..]
        ),
    ] {
        let err = verifier.verify(&bad).await.unwrap_err();
        assert!(matches!(err, AlbError::InvalidToken(_)), "{bad:?}: {err:?}");
    }
    assert_eq!(
        verifier.verify(&"a".repeat(4097)).await,
        Err(invalid(InvalidToken::TooLarge))
    );
    let mut h = header(KID);
    h["crit"] = json!(["exp"]);
    assert_eq!(
        verifier.verify(&sign(&key, &h)).await,
        Err(invalid(InvalidToken::UnsupportedCritical))
    );
    assert_eq!(server.fetches(), 0);
}

#[test]
fn configuration_is_checked() {
    // Plain http only to loopback, and only when allowed.
    for (url, allow) in [
        ("http://127.0.0.1:9/", false),
        ("http://keys.example/", true),
        ("ftp://keys.example/", true),
    ] {
        assert!(matches!(
            AlbVerifier::new(
                AlbConfig::new([ARN])
                    .key_endpoint(url)
                    .allow_http_on_loopback(allow)
            ),
            Err(ConfigError::InvalidUrl { .. })
        ));
    }
    assert!(matches!(
        AlbVerifier::new(AlbConfig::new(["not-an-arn"])),
        Err(ConfigError::InvalidSetting { .. })
    ));
    assert!(matches!(
        AlbVerifier::new(AlbConfig::new([ARN]).region("eu-west-1/../x")),
        Err(ConfigError::InvalidRegion(_))
    ));
    // China has no known endpoint: an override is needed there.
    let cn = "arn:aws-cn:elasticloadbalancing:cn-north-1:123456789012:loadbalancer/app/web/1";
    assert!(AlbVerifier::new(AlbConfig::new([cn])).is_err());
    assert!(AlbVerifier::new(AlbConfig::new([cn]).key_endpoint("https://keys.example/")).is_ok());
    assert!(AlbVerifier::new(AlbConfig::new([ARN])).is_ok());
}

mod layer {
    //! `AlbAuthLayer` in front of a service: the claims reach it, refusals are answered here.

    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::{service_fn, ServiceBuilder, ServiceExt as _};
    use tower_cognito::alb::{AlbAuthLayer, AlbClaims, ALB_DATA_HEADER};

    async fn call(
        verifier: &AlbVerifier,
        headers: &[&str],
    ) -> (StatusCode, Option<String>, Option<AlbError>) {
        let service = ServiceBuilder::new()
            .layer(AlbAuthLayer::new(verifier.clone()))
            .service(service_fn(|request: Request<Body>| async move {
                let sub = request
                    .extensions()
                    .get::<AlbClaims>()
                    .and_then(|c| c.sub().map(str::to_owned))
                    .unwrap_or_default();
                Ok::<_, std::convert::Infallible>(axum::http::Response::new(Body::from(sub)))
            }));
        let mut request = Request::builder().uri("/");
        for value in headers {
            request = request.header(ALB_DATA_HEADER, *value);
        }
        let response = service
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let error = response.extensions().get::<AlbError>().copied();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body = (!body.is_empty()).then(|| String::from_utf8(body.to_vec()).unwrap());
        (status, body, error)
    }

    #[tokio::test]
    async fn the_layer_passes_claims_and_answers_refusals() {
        let server = KeyServer::start().await;
        let key = pair();
        server.publish(KID, &key);
        let verifier = AlbVerifier::new(server.config()).unwrap();
        let token = sign(&key, &header(KID));

        let (status, body, error) = call(&verifier, &[&token]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body.as_deref(),
            Some("6a2b3c4d-0000-4000-8000-000000000001")
        );
        assert_eq!(error, None);

        assert_eq!(
            call(&verifier, &[]).await,
            (StatusCode::UNAUTHORIZED, None, Some(AlbError::MissingToken))
        );
        assert_eq!(
            call(&verifier, &[&token, &token]).await,
            (
                StatusCode::UNAUTHORIZED,
                None,
                Some(invalid(InvalidToken::Malformed))
            )
        );
        let forged = sign(&pair(), &header(KID));
        assert_eq!(
            call(&verifier, &[&forged]).await,
            (
                StatusCode::UNAUTHORIZED,
                None,
                Some(invalid(InvalidToken::BadSignature))
            )
        );

        let down = KeyServer::start().await;
        down.fail_with(502);
        let verifier = AlbVerifier::new(down.config()).unwrap();
        assert_eq!(
            call(&verifier, &[&token]).await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                Some(AlbError::KeysUnavailable)
            )
        );
    }
}

#[test]
fn key_root_certificates_that_are_not_pem_certificates_are_refused_at_build() {
    for pem in [
        &b"not a certificate"[..],
        b"",
        b"-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n",
    ] {
        let error = AlbVerifier::new(
            AlbConfig::new([ARN])
                .key_endpoint("https://keys.example/")
                .key_root_certificates_pem(pem),
        )
        .unwrap_err();
        assert!(
            matches!(error, ConfigError::InvalidCertificate(_)),
            "{:?}: {error:?}",
            String::from_utf8_lossy(pem)
        );
    }
}

#[cfg(feature = "postgres")]
mod tls {
    //! An https key endpoint whose certificate comes from a CA this test makes (not one the
    //! platform trusts): the key is fetched only with that CA given as an extra root.
    //!
    //! The endpoint speaks TLS through rustls (a dependency of the `postgres` feature, with the
    //! test CA of `support::certs`, both also used by the PostgreSQL TLS tests), one blocking
    //! connection at a time on a thread of its own, and records every request it read.

    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread::JoinHandle;

    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    use super::*;
    use crate::support::certs::TestCa;

    struct HttpsKeyServer {
        addr: SocketAddr,
        /// The request paths read, after a completed handshake.
        paths: Arc<Mutex<Vec<String>>>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl HttpsKeyServer {
        /// Serves `pem` at `/keys/{KID}` (404 elsewhere) on 127.0.0.1 with a certificate for
        /// `127.0.0.1` signed by `ca`.
        fn start(ca: &TestCa, pem: String) -> Self {
            let cert = ca.server_cert(&["127.0.0.1"]);
            let chain = vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap()];
            let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
            let config = Arc::new(
                rustls::ServerConfig::builder_with_provider(Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap(),
            );
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let paths = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let thread = {
                let (paths, stop) = (Arc::clone(&paths), Arc::clone(&stop));
                std::thread::spawn(move || {
                    for tcp in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let Ok(tcp) = tcp else { continue };
                        // A refused handshake is an error here, and nothing is recorded.
                        let _ = serve(tcp, Arc::clone(&config), &pem, &paths);
                    }
                })
            };
            Self {
                addr,
                paths,
                stop,
                thread: Some(thread),
            }
        }

        fn base(&self) -> String {
            format!("https://{}/keys/", self.addr)
        }

        fn paths(&self) -> Vec<String> {
            self.paths.lock().unwrap().clone()
        }
    }

    impl Drop for HttpsKeyServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            // Wakes the blocking accept, which then sees the flag.
            let _ = TcpStream::connect(self.addr);
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    /// One HTTP/1.1 request over TLS, answered and closed.
    fn serve(
        tcp: TcpStream,
        config: Arc<rustls::ServerConfig>,
        pem: &str,
        paths: &Mutex<Vec<String>>,
    ) -> std::io::Result<()> {
        tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(5)))?;
        let connection = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
        let mut tls = BufReader::new(rustls::StreamOwned::new(connection, tcp));
        let mut request_line = String::new();
        tls.read_line(&mut request_line)?;
        loop {
            let mut line = String::new();
            if tls.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        paths.lock().unwrap().push(path.clone());
        let (status, body) = if path == format!("/keys/{KID}") {
            ("200 OK", pem)
        } else {
            ("404 Not Found", "")
        };
        let tls = tls.get_mut();
        write!(
            tls,
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )?;
        tls.flush()?;
        tls.conn.send_close_notify();
        tls.flush()
    }

    fn pem_of(pair: &EcdsaKeyPair) -> String {
        let der = pair.public_key().as_der().unwrap();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der.as_ref())
        )
    }

    #[tokio::test]
    async fn an_https_key_endpoint_of_a_private_ca_is_trusted_only_with_that_ca_given() {
        let ca = TestCa::new("tower-cognito test ALB key CA");
        let key = pair();
        let server = HttpsKeyServer::start(&ca, pem_of(&key));
        let token = sign(&key, &header(KID));
        let config = || AlbConfig::new([ARN]).key_endpoint(server.base());

        // Without the CA: the platform's roots do not know it, the handshake fails, and that
        // is our outage (503), not the caller's 401. No request got through.
        let untrusting = AlbVerifier::new(config()).unwrap();
        let err = untrusting.verify(&token).await.unwrap_err();
        assert_eq!(err, AlbError::KeysUnavailable);
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        // Another CA of the test's own is not enough either.
        let other_ca = TestCa::new("tower-cognito test other CA");
        let wrong_ca =
            AlbVerifier::new(config().key_root_certificates_pem(other_ca.pem().as_bytes()))
                .unwrap();
        assert_eq!(
            wrong_ca.verify(&token).await,
            Err(AlbError::KeysUnavailable)
        );
        assert_eq!(server.paths(), Vec::<String>::new());

        // With it (in a bundle beside the other CA): fetched once over https, then cached.
        let bundle = format!("{}{}", other_ca.pem(), ca.pem());
        let trusting =
            AlbVerifier::new(config().key_root_certificates_pem(bundle.into_bytes())).unwrap();
        let claims = trusting.verify(&token).await.unwrap();
        assert_eq!(claims.username(), Some("alice"));
        assert!(trusting.verify(&token).await.is_ok());
        assert_eq!(server.paths(), vec![format!("/keys/{KID}")]);
    }
}

mod extractor {
    //! The `AlbClaims` and `Option<AlbClaims>` extractors in a real axum `Router`, behind a
    //! required layer, an optional one and none at all.

    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt as _;
    use tower_cognito::alb::{AlbAuthLayer, AlbClaims, AlbClaimsRejection, ALB_DATA_HEADER};

    async fn me(claims: AlbClaims) -> String {
        claims.sub().unwrap_or_default().to_owned()
    }

    async fn maybe(claims: Option<AlbClaims>) -> String {
        match claims {
            Some(claims) => claims.sub().unwrap_or_default().to_owned(),
            None => "anonymous".to_owned(),
        }
    }

    async fn why(claims: Result<AlbClaims, AlbClaimsRejection>) -> String {
        match claims {
            Ok(_) => "verified".to_owned(),
            Err(rejection) => format!("missing layer: {}", rejection.is_missing_layer()),
        }
    }

    fn routes() -> Router {
        Router::new()
            .route("/me", get(me))
            .route("/maybe", get(maybe))
            .route("/why", get(why))
    }

    struct Answer {
        status: StatusCode,
        body: String,
        error: Option<AlbError>,
    }

    async fn get_with(router: &Router, path: &str, token: Option<&str>) -> Answer {
        let mut request = Request::builder().uri(path);
        if let Some(token) = token {
            request = request.header(ALB_DATA_HEADER, token);
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let error = response.extensions().get::<AlbError>().copied();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        Answer {
            status,
            body: String::from_utf8(body.to_vec()).unwrap(),
            error,
        }
    }

    const SUB: &str = "6a2b3c4d-0000-4000-8000-000000000001";

    #[tokio::test]
    async fn behind_the_layer_handlers_get_the_verified_claims() {
        let server = KeyServer::start().await;
        let key = pair();
        server.publish(KID, &key);
        let verifier = AlbVerifier::new(server.config()).unwrap();
        let router = routes().route_layer(AlbAuthLayer::new(verifier));
        let token = sign(&key, &header(KID));

        for path in ["/me", "/maybe"] {
            let answer = get_with(&router, path, Some(&token)).await;
            assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, SUB));
        }
        assert_eq!(
            get_with(&router, "/why", Some(&token)).await.body,
            "verified"
        );
        // A required layer answers a missing header itself: the handlers never run.
        for path in ["/me", "/maybe", "/why"] {
            let answer = get_with(&router, path, None).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(answer.body, "", "{path}");
            assert_eq!(answer.error, Some(AlbError::MissingToken), "{path}");
        }
        // A forged token, the same.
        let answer = get_with(&router, "/maybe", Some(&sign(&pair(), &header(KID)))).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.error, Some(invalid(InvalidToken::BadSignature)));
        // route_layer: an unknown path is 404, not 401.
        assert_eq!(
            get_with(&router, "/nowhere", None).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(server.fetches(), 1);
    }

    #[tokio::test]
    async fn behind_an_optional_layer_anonymous_requests_get_the_401_or_none() {
        let server = KeyServer::start().await;
        let key = pair();
        server.publish(KID, &key);
        let verifier = AlbVerifier::new(server.config()).unwrap();
        let router = routes().route_layer(AlbAuthLayer::new(verifier).optional());

        // No header: `Option<AlbClaims>` is None; `AlbClaims` answers what a required layer
        // answers (401, empty body, MissingToken), never a 500.
        let answer = get_with(&router, "/maybe", None).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::OK, "anonymous")
        );
        let answer = get_with(&router, "/me", None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.body, "");
        assert_eq!(answer.error, Some(AlbError::MissingToken));
        assert_eq!(
            get_with(&router, "/why", None).await.body,
            "missing layer: false"
        );

        // A valid token: the claims, on both.
        let token = sign(&key, &header(KID));
        for path in ["/me", "/maybe"] {
            let answer = get_with(&router, path, Some(&token)).await;
            assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, SUB));
        }
        // A bad token is still refused by the layer, also where anonymous users are welcome.
        let forged = sign(&pair(), &header(KID));
        for path in ["/me", "/maybe"] {
            let answer = get_with(&router, path, Some(&forged)).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(
                answer.error,
                Some(invalid(InvalidToken::BadSignature)),
                "{path}"
            );
        }
        let mut h = header(KID);
        h["signer"] = json!(OTHER_ARN);
        let answer = get_with(&router, "/maybe", Some(&sign(&key, &h))).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.error, Some(AlbError::WrongSigner));
    }

    #[tokio::test]
    async fn without_the_layer_both_extractors_are_a_500_that_says_so() {
        let router = routes();
        let key = pair();
        // Even with a genuine-looking header: nothing verified it.
        for token in [None, Some(sign(&key, &header(KID)))] {
            for path in ["/me", "/maybe"] {
                let answer = get_with(&router, path, token.as_deref()).await;
                assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
                assert!(
                    answer.body.contains("no AlbAuthLayer"),
                    "{path}: {}",
                    answer.body
                );
                assert_eq!(answer.error, None);
            }
        }
        assert_eq!(
            get_with(&router, "/why", None).await.body,
            "missing layer: true"
        );
    }
}
