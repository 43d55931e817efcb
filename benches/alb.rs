//! The ALB path (`alb::AlbVerifier`), each figure against its baseline in the same run:
//!
//! - `alb/alb_verify_cached`: a valid `x-amzn-oidc-data` token (padded base64url parts, as ALB
//!   writes them) through `AlbVerifier::verify`, its key already cached, vs
//!   `alb/es256_verify_preparsed`: aws-lc-rs `ParsedPublicKey::verify_sig` of the same signing
//!   input with the same P-256 key, parsed once. `RATIO alb_verify_cached / es256_verify_preparsed`
//!   is the figure: what the header parse, the signer and kid checks, the cache lookup, `exp` and
//!   the claims parse add to the signature check.
//! - `alb/alb_refuse_unknown_signer`: a token whose `signer` is another load balancer's, refused
//!   before any key lookup (and so before any fetch), vs the same baseline.
//!
//! The key is served once, as PEM, by a key endpoint of the bench's own on 127.0.0.1 (an axum
//! server on the bench's runtime), as the integration tests do; the verifier fetches it before
//! the timing starts and asserts that it was fetched exactly once.
//!
//! `cargo bench --bench alb`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, ParsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine as _;
use serde_json::{json, Value};
use tower_cognito::alb::{AlbConfig, AlbError, AlbVerifier};

use common::{batch_async, batch_sync, bench, ratio, Target};

const ARN: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";
const OTHER_ARN: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:210987654321:loadbalancer/app/web/50dc6c495c0c9188";
const ISS: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123";
const CLIENT: &str = "1example23456789";
/// ALB key ids are UUIDs.
const KID: &str = "b3a1fc2e-0c7f-4d6c-9a64-1d0a2e3f4b5c";

fn main() {
    let mut c = common::criterion();
    let rt = common::runtime();
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256 key");
    let spki = pair.public_key().as_der().expect("SPKI of the key");
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(spki.as_ref())
    );
    let (base, fetches) = rt.block_on(key_endpoint(pem));
    let verifier = AlbVerifier::new(
        AlbConfig::new([ARN])
            .issuer(ISS)
            .client_id(CLIENT)
            .key_endpoint(base)
            .allow_http_on_loopback(true),
    )
    .expect("bench ALB verifier");

    let token = sign(&pair, &header(ARN));
    let foreign = sign(&pair, &header(OTHER_ARN));
    println!(
        "bench ALB token: {} bytes (ES256, P-256, kid {KID})",
        token.len()
    );
    let claims = rt
        .block_on(verifier.verify(&token))
        .expect("the bench token verifies");
    assert_eq!(claims.username(), Some("alice"));
    assert_eq!(
        rt.block_on(verifier.verify(&foreign)),
        Err(AlbError::WrongSigner)
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the key is fetched once");

    let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, spki.as_ref()).expect("parse key");
    let (input, signature) = signed_parts(&token);
    assert!(key.verify_sig(input, &signature).is_ok());

    let mut es256 = batch_sync(|| key.verify_sig(input, &signature).is_ok());
    let mut ours = batch_async(&rt, || verifier.verify(&token));
    let mut refused = batch_async(&rt, || verifier.verify(&foreign));

    let mut g = c.benchmark_group("alb");
    bench(&mut g, "alb", "es256_verify_preparsed", &mut es256);
    bench(&mut g, "alb", "alb_verify_cached", &mut ours);
    bench(&mut g, "alb", "alb_refuse_unknown_signer", &mut refused);
    g.finish();

    ratio(
        "alb/alb_verify_cached",
        &mut ours,
        "alb/es256_verify_preparsed",
        &mut es256,
        Target::None,
    );
    ratio(
        "alb/alb_refuse_unknown_signer",
        &mut refused,
        "alb/es256_verify_preparsed",
        &mut es256,
        Target::None,
    );
    c.final_summary();
    // Nothing more was fetched while timing: every verify found the key cached, and no refusal
    // reached the key store.
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "no fetch while timing");
    if common::is_bench_run() {
        common::print_report("alb: ratio table");
    }
}

/// A key endpoint on 127.0.0.1 serving `pem` at `/keys/{KID}` (404 elsewhere): its base URL
/// and a count of the requests it answered.
async fn key_endpoint(pem: String) -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let state = (Arc::new(pem), Arc::clone(&fetches));
    let app = Router::new().fallback(serve_key).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the key endpoint");
    let base = format!("http://{}/keys/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, fetches)
}

async fn serve_key(
    State((pem, fetches)): State<(Arc<String>, Arc<AtomicUsize>)>,
    uri: Uri,
) -> (StatusCode, String) {
    fetches.fetch_add(1, Ordering::SeqCst);
    if uri.path() == format!("/keys/{KID}") {
        (StatusCode::OK, pem.as_str().to_owned())
    } else {
        (StatusCode::NOT_FOUND, String::new())
    }
}

/// The header an ALB writes, for `signer`.
fn header(signer: &str) -> Value {
    json!({
        "typ": "JWT",
        "kid": KID,
        "alg": "ES256",
        "iss": ISS,
        "client": CLIENT,
        "signer": signer,
        "exp": common::now() + 24 * 3600,
    })
}

/// A token as ALB writes it: padded base64url parts, the user's claims from Cognito's userinfo.
fn sign(pair: &EcdsaKeyPair, header: &Value) -> String {
    let payload = json!({
        "sub": "6a2b3c4d-0000-4000-8000-000000000001",
        "email_verified": "true",
        "email": "alice@example.com",
        "username": "alice",
        "exp": common::now() + 24 * 3600,
        "iss": ISS,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE.encode(serde_json::to_vec(&payload).unwrap())
    );
    let signature = pair
        .sign(&SystemRandom::new(), input.as_bytes())
        .expect("sign");
    format!("{input}.{}", URL_SAFE.encode(signature.as_ref()))
}

/// The signing input and the decoded `r || s` signature of `token`.
fn signed_parts(token: &str) -> (&[u8], Vec<u8>) {
    let dot = token.rfind('.').expect("three parts");
    let signature = URL_SAFE
        .decode(&token[dot + 1..])
        .expect("base64url signature");
    (&token.as_bytes()[..dot], signature)
}
