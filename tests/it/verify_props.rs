//! Property tests: no input makes the verifier or the layer panic, and none but the genuine
//! token gets in.
//!
//! - any bytes as the token: `Verifier::verify` (when they are UTF-8) and the layer (whenever a
//!   `HeaderValue` can hold them) answer with a typed refusal;
//! - a genuine token with one byte flipped, deleted or inserted is refused, by both;
//! - the `Authorization` parser never panics, and `Bearer <b64token>` always hands over exactly
//!   that token: the layer's answer is the verifier's answer for it (a 401 `invalid_token`,
//!   never the 400 of malformed credentials).
//!
//! Keys come from a JWKS document (`fetch_keys(false)`): no network. The genuine token is minted
//! once. A few hundred cases per property keep the file within seconds in a debug build.

use crate::support;

use std::convert::Infallible;
use std::sync::OnceLock;

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response};
use proptest::prelude::*;
use serde_json::json;
use support::{access_claims, b64, key, mint};
use tokio::runtime::Runtime;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use tower_cognito::{
    AuthError, ClientIds, CognitoAuthLayer, CognitoConfig, InvalidRequest, IssuerForm, TokenUse,
    UserPool, Verified, Verifier,
};

const POOL: &str = "eu-west-1_PropTest1";
const CLIENT: &str = "pr0pt3stc113nt1d";
const CASES: u32 = 300;

type App = BoxCloneSyncService<Request<()>, Response<String>, Infallible>;

struct Fixture {
    runtime: Runtime,
    verifier: Verifier,
    app: App,
    /// A genuine token, valid for a day.
    token: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pool = UserPool::parse(POOL).expect("pool");
        let issuer = pool.issuer(IssuerForm::Original);
        let config = CognitoConfig::new(pool, TokenUse::Access, ClientIds::one(CLIENT))
            .jwks_document(json!({"keys": [key(0).jwk()]}).to_string())
            .fetch_keys(false);
        let verifier: Verifier = Verifier::new(config).expect("config");
        let app = ServiceBuilder::new()
            .layer(CognitoAuthLayer::new(verifier.clone()))
            .service_fn(|req: Request<()>| async move {
                let body = match req.extensions().get::<Verified>() {
                    Some(v) => format!("OK sub={}", v.sub),
                    None => "NO CLAIMS".to_owned(),
                };
                Ok::<_, Infallible>(Response::new(body))
            });
        let mut claims = access_claims(&issuer, CLIENT);
        claims["exp"] = json!(support::now() + 24 * 3600);
        let token = mint(key(0), &claims);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let fixture = Fixture {
            runtime,
            verifier,
            app: BoxCloneSyncService::new(app),
            token,
        };
        // The control: the genuine token gets in, both ways.
        assert!(fixture.verify(&fixture.token).is_ok(), "the genuine token");
        let response = fixture
            .send(&bearer(&fixture.token))
            .expect("a header value");
        assert_eq!(
            response.status(),
            200,
            "the genuine token through the layer"
        );
        fixture
    })
}

impl Fixture {
    fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        self.runtime.block_on(self.verifier.verify(token))
    }

    /// Sends one `Authorization` value; `None` when a `HeaderValue` cannot hold the bytes.
    fn send(&self, authorization: &[u8]) -> Option<Response<String>> {
        let value = HeaderValue::from_bytes(authorization).ok()?;
        let request = Request::builder()
            .header(AUTHORIZATION, value)
            .body(())
            .expect("request");
        let app = self.app.clone();
        Some(
            self.runtime
                .block_on(app.oneshot(request))
                .expect("infallible"),
        )
    }
}

fn bearer(token: impl AsRef<[u8]>) -> Vec<u8> {
    [b"Bearer ".as_slice(), token.as_ref()].concat()
}

/// A refusal of the layer: 400 or 401 with a challenge, the `AuthError` attached, and the
/// handler never ran. Returns the error.
fn refused(response: &Response<String>) -> Result<AuthError, TestCaseError> {
    let error = response.extensions().get::<AuthError>().cloned();
    prop_assert!(
        matches!(response.status().as_u16(), 400 | 401),
        "status {} ({error:?})",
        response.status()
    );
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().expect("ASCII"));
    prop_assert!(
        challenge.is_some_and(|c| c.starts_with("Bearer realm=\"cognito\"")),
        "challenge {challenge:?}"
    );
    prop_assert_eq!(response.body(), "", "the handler ran");
    error.ok_or_else(|| TestCaseError::fail("no AuthError in the extensions"))
}

/// Both ways in refuse `bytes` as a token: `verify` (when UTF-8) with a typed `invalid_token`,
/// and the layer (when a header value can hold `Bearer <bytes>`).
fn both_refuse(bytes: &[u8]) -> Result<(), TestCaseError> {
    let f = fixture();
    if let Ok(token) = std::str::from_utf8(bytes) {
        match f.verify(token) {
            Ok(_) => return Err(TestCaseError::fail(format!("accepted {token:?}"))),
            Err(e) => prop_assert!(
                matches!(e, AuthError::InvalidToken(_)),
                "not invalid_token: {e:?}"
            ),
        }
    }
    if let Some(response) = f.send(&bearer(bytes)) {
        refused(&response)?;
    }
    Ok(())
}

/// Bytes that look more or less like tokens, and plain noise.
fn token_like() -> impl Strategy<Value = Vec<u8>> {
    let genuine = fixture().token.clone();
    let parts: Vec<String> = genuine.split('.').map(str::to_owned).collect();
    prop_oneof![
        // Noise.
        prop::collection::vec(any::<u8>(), 0..600),
        // base64url characters and dots.
        "[A-Za-z0-9_.-]{0,900}".prop_map(String::into_bytes),
        // b64token characters, dots and padding.
        "[A-Za-z0-9_.~+/=-]{0,300}".prop_map(String::into_bytes),
        // The genuine header and payload, another signature.
        "[A-Za-z0-9_-]{0,400}".prop_map({
            let parts = parts.clone();
            move |sig| format!("{}.{}.{sig}", parts[0], parts[1]).into_bytes()
        }),
        // The genuine header, any JSON-ish payload, the genuine signature.
        "\\{[ -~]{0,200}\\}".prop_map({
            let parts = parts.clone();
            move |json| format!("{}.{}.{}", parts[0], b64(json), parts[2]).into_bytes()
        }),
        // Any header, the genuine payload and signature.
        "\\{[ -~]{0,100}\\}".prop_map(move |json| format!(
            "{}.{}.{}",
            b64(json),
            parts[1],
            parts[2]
        )
        .into_bytes()),
        // A slice of the genuine token.
        (0..genuine.len(), 0..genuine.len()).prop_map(move |(a, b)| {
            let (a, b) = (a.min(b), a.max(b));
            genuine.as_bytes()[a..b].to_vec()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Any bytes: a typed refusal from `verify` and from the layer, never a panic or an `Ok`.
    #[test]
    fn any_bytes_as_the_token_are_refused(bytes in token_like()) {
        both_refuse(&bytes)?;
    }

    /// Any bytes as the whole `Authorization` value: the layer refuses, never panics.
    #[test]
    fn any_authorization_value_is_refused(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        "(?i:bearer)[ \t]{0,3}[ -~\t]{0,300}".prop_map(String::into_bytes),
    ]) {
        if let Some(response) = fixture().send(&bytes) {
            refused(&response)?;
        }
    }

    /// The genuine token with one byte xor-ed with anything but zero, anywhere.
    #[test]
    fn a_flipped_byte_is_refused(at in any::<prop::sample::Index>(), xor in 1..=255u8) {
        let mut bytes = fixture().token.clone().into_bytes();
        let at = at.index(bytes.len());
        bytes[at] ^= xor;
        both_refuse(&bytes)?;
    }

    /// The genuine token with one byte deleted, anywhere.
    #[test]
    fn a_deleted_byte_is_refused(at in any::<prop::sample::Index>()) {
        let mut bytes = fixture().token.clone().into_bytes();
        bytes.remove(at.index(bytes.len()));
        both_refuse(&bytes)?;
    }

    /// The genuine token with one byte inserted, anywhere (the end included).
    #[test]
    fn an_inserted_byte_is_refused(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = fixture().token.clone().into_bytes();
        let at = at.index(bytes.len() + 1);
        bytes.insert(at, byte);
        both_refuse(&bytes)?;
    }

    /// `Bearer <b64token>`, any scheme case and number of spaces: the layer hands exactly that
    /// token to the verifier, so its answer is the verifier's (401 `invalid_token`), never the
    /// 400 of malformed credentials.
    #[test]
    fn bearer_and_a_b64token_hands_over_exactly_that_token(
        scheme in "[bB][eE][aA][rR][eE][rR]",
        spaces in " {1,4}",
        token in "[A-Za-z0-9._~+/-]{1,300}={0,3}",
    ) {
        let f = fixture();
        let response = f.send(format!("{scheme}{spaces}{token}").as_bytes()).expect("ASCII");
        let error = refused(&response)?;
        prop_assert_eq!(response.status(), 401);
        let direct = f.verify(&token).expect_err("a random token");
        prop_assert_eq!(error, direct);
    }

    /// The same with the genuine token: it gets in, whatever the case and spacing.
    #[test]
    fn bearer_and_the_genuine_token_gets_in(
        scheme in "[bB][eE][aA][rR][eE][rR]",
        spaces in " {1,4}",
    ) {
        let f = fixture();
        let response = f.send(format!("{scheme}{spaces}{}", f.token).as_bytes()).expect("ASCII");
        prop_assert_eq!(response.status(), 200);
        prop_assert!(response.body().starts_with("OK sub="));
    }

    /// One byte outside `b64token` (and not `=`) anywhere in the token: 400 malformed
    /// credentials, before any verification.
    #[test]
    fn a_byte_outside_b64token_is_malformed_credentials(
        at in any::<prop::sample::Index>(),
        byte in any::<u8>().prop_filter("outside b64token", |&b| {
            !(b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b))
                && HeaderValue::from_bytes(&[b'x', b, b'x']).is_ok()
        }),
    ) {
        let f = fixture();
        let mut bytes = f.token.clone().into_bytes();
        bytes.insert(at.index(bytes.len() + 1), byte);
        let response = f.send(&bearer(&bytes)).expect("a header value");
        let error = refused(&response)?;
        prop_assert_eq!(
            error,
            AuthError::InvalidRequest(InvalidRequest::MalformedCredentials)
        );
    }
}

/// Exhaustive over positions: every flip of bit 0, 5 and 7 and every deletion of the genuine
/// token, through `verify` and the layer (flips of bit 7 are not UTF-8: the layer only).
#[test]
fn every_bit_flip_and_deletion_is_refused() {
    let token = fixture().token.as_bytes();
    let mut tried = 0;
    for at in 0..token.len() {
        for xor in [0x01, 0x20, 0x80] {
            let mut bytes = token.to_vec();
            bytes[at] ^= xor;
            both_refuse(&bytes).unwrap_or_else(|e| panic!("flip {xor:#x} at {at}: {e}"));
            tried += 1;
        }
        let mut bytes = token.to_vec();
        bytes.remove(at);
        both_refuse(&bytes).unwrap_or_else(|e| panic!("deletion at {at}: {e}"));
        tried += 1;
    }
    assert_eq!(tried, 4 * token.len());
}

/// The fuzz seeds (`fuzz/seeds.sh`) hold a genuine token of the crate docs' pool: it must stay
/// one, or the fuzzers never reach the claims checks.
#[test]
fn the_fuzz_seed_token_is_genuine() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/verify/seed-valid");
    let token = std::fs::read_to_string(path).expect("fuzz/corpus/verify/seed-valid");
    let config = CognitoConfig::new(
        UserPool::parse("eu-west-1_AbCdEf123").expect("pool"),
        TokenUse::Access,
        ClientIds::one("client1"),
    )
    .jwks_document(include_str!("../fixtures/doc-test-jwks.json"))
    .fetch_keys(false);
    let verifier: Verifier = Verifier::new(config).expect("config");
    let verified = fixture()
        .runtime
        .block_on(verifier.verify(&token))
        .expect("the seed token is accepted");
    assert_eq!(verified.username, "alice");
}
