//! The whole story in one process, with no AWS account: `cargo run --example demo`.
//!
//! It starts
//!
//! - a local Cognito: the `LocalCognito` of the `tower-cognito-testing` crate, with two
//!   RSA-2048 keys generated at start (one `kid` for access tokens, another for id tokens, as
//!   Cognito does), a JWKS endpoint on `127.0.0.1` that counts how often it is fetched, and
//!   Cognito-shaped RS256 tokens;
//! - an axum API protected by [`CognitoAuthLayer`], with the session window on
//!   ([`MemoryStore`]): `GET /me`, `POST /logout` (revokes the session), `GET /orders`
//!   (requires the scope `orders/read`) and `GET /admin` (requires the group `admins`);
//!
//! then plays scenarios against the API over real HTTP (valid tokens, forgeries, the two-tab
//! refresh race, sign-out) and prints one row per request. It exits 0 only when every answer is
//! the expected one, so it doubles as a smoke test.
//!
//! `RUST_LOG=tower_cognito=debug cargo run --example demo` also shows the crate's own logs.

use std::error::Error;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use axum::extract::State;
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower_cognito::session::{MemoryStore, SessionConfig};
use tower_cognito::{
    ClientIds, CognitoAuthLayer, CognitoConfig, TokenUse, UserPool, Verified, Verifier,
};
use tower_cognito_testing::{decode_claims, LocalCognito, Options};

type BoxError = Box<dyn Error + Send + Sync>;

#[cfg(feature = "refresh")]
mod refresh_race;

const POOL_ID: &str = "eu-west-1_DemoPool1";
const CLIENT_ID: &str = "4p1d8k3k9q2e5s7t0u6v1w3x4y";
/// The constant start of every challenge, left out of the table.
const CHALLENGE_PREFIX: &str = "Bearer realm=\"cognito\"";

// ---------------------------------------------------------------------------------------------
// The local Cognito
// ---------------------------------------------------------------------------------------------

/// The test kit's local Cognito, with the demo's pool and app client, and the tokens of its
/// user `alice` the scenarios need.
struct Issuer {
    cognito: LocalCognito,
}

impl Issuer {
    async fn start() -> Self {
        let options = Options::new().pool_id(POOL_ID).client_id(CLIENT_ID);
        Self {
            cognito: LocalCognito::start_with(options).await,
        }
    }

    /// Requests received at the JWKS endpoint.
    fn fetches(&self) -> usize {
        usize::try_from(self.cognito.counts().jwks_fetches).unwrap_or(usize::MAX)
    }

    /// An access token of alice's sign-in `origin_jti`, issued at `iat` for an hour, with the
    /// claims of `overrides` set on top (a `null` removes one).
    fn access_token(&self, origin_jti: &str, iat: i64, overrides: Value) -> String {
        let mut claims = sign_in_claims(origin_jti, iat);
        claims["scope"] = json!("aws.cognito.signin.user.admin");
        merge(&mut claims, overrides);
        self.cognito.mint_access("alice", &claims)
    }

    /// An id token of alice's sign-in `origin_jti`, issued at `iat`.
    fn id_token(&self, origin_jti: &str, iat: i64) -> String {
        self.cognito
            .mint_id("alice", &sign_in_claims(origin_jti, iat))
    }

    /// `claims` signed with the pool's access-token key, whatever `header` says.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        self.cognito.sign_raw(header, claims)
    }
}

/// The claims that tie a token to the sign-in `origin_jti`, issued at `iat` for an hour.
fn sign_in_claims(origin_jti: &str, iat: i64) -> Value {
    json!({ "origin_jti": origin_jti, "auth_time": iat, "iat": iat, "exp": iat + 3600 })
}

/// Sets every member of `overrides` in `claims`.
fn merge(claims: &mut Value, overrides: Value) {
    if let (Value::Object(claims), Value::Object(overrides)) = (claims, overrides) {
        claims.extend(overrides);
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A fresh uuid-like id.
fn unique_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "00000000-0000-4000-8000-{:012x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------------------------------------
// The API under test
// ---------------------------------------------------------------------------------------------

async fn me(claims: Verified) -> Json<Value> {
    Json(json!({
        "sub": claims.sub,
        "username": claims.username,
        "issued_at": claims.issued_at(),
    }))
}

async fn orders(claims: Verified) -> String {
    format!("the orders of {}", claims.username)
}

async fn admin(claims: Verified) -> String {
    format!("welcome to the admin area, {}", claims.username)
}

/// Sign-out: revoke the session, so that none of its tokens works any more.
async fn logout(State(verifier): State<Verifier>, claims: Verified) -> StatusCode {
    let Some(key) = claims.session_key() else {
        return StatusCode::INTERNAL_SERVER_ERROR; // the session window is off
    };
    match verifier.revoke_session(key).await {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(error) => error.status(),
    }
}

/// Starts the API on `127.0.0.1:0`; returns its base URL.
async fn start_api(issuer: &Issuer) -> Result<String, BoxError> {
    // One store for every route: a revoked session is revoked everywhere.
    let sessions = SessionConfig::new(Arc::new(MemoryStore::new(10_000)));
    let config = || -> Result<CognitoConfig, BoxError> {
        Ok(CognitoConfig::new(
            UserPool::parse(POOL_ID)?,
            TokenUse::Access,
            ClientIds::one(CLIENT_ID),
        )
        // The local issuer stands in for Cognito, as an emulator would.
        .issuer_override(issuer.cognito.issuer())
        .jwks_url(issuer.cognito.jwks_url())
        .allow_http_on_loopback(true)
        // Warm start from the pool's current keys: no fetch until a `kid` is unknown.
        .jwks_document(issuer.cognito.signing_jwks().to_string())
        .session_window(sessions.clone()))
    };
    let verifier = Verifier::new(config()?)?;
    // Per-route rules: derived verifiers share the key cache (one JWKS fetch for all routes).
    let orders_verifier = verifier.clone().require_scopes(["orders/read"])?;
    let admin_verifier = verifier.clone().require_any_group(["admins"])?;

    // `route_layer`: unknown paths stay 404 instead of becoming 401.
    let app = Router::new()
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route_layer(CognitoAuthLayer::new(verifier.clone()))
        .with_state(verifier)
        .merge(
            Router::new()
                .route("/orders", get(orders))
                .route_layer(CognitoAuthLayer::new(orders_verifier)),
        )
        .merge(
            Router::new()
                .route("/admin", get(admin))
                .route_layer(CognitoAuthLayer::new(admin_verifier)),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}"))
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// What a scenario must get back.
struct Expect {
    status: u16,
    /// The exact `WWW-Authenticate` value, or `None` for no header.
    challenge: Option<String>,
    /// How many JWKS fetches the request may cause.
    fetches: usize,
}

impl Expect {
    fn status(status: u16) -> Self {
        Self {
            status,
            challenge: None,
            fetches: 0,
        }
    }

    fn ok() -> Self {
        Self::status(200)
    }

    fn challenge(status: u16, rest: &str) -> Self {
        Self {
            status,
            challenge: Some(format!("{CHALLENGE_PREFIX}{rest}")),
            fetches: 0,
        }
    }

    /// 401 `invalid_token` with this description.
    fn invalid_token(description: &str) -> Self {
        Self::challenge(
            401,
            &format!(", error=\"invalid_token\", error_description=\"{description}\""),
        )
    }

    /// 403 `insufficient_scope` with this description (and `scope`, if given).
    fn forbidden(description: &str, scope: Option<&str>) -> Self {
        let mut rest =
            format!(", error=\"insufficient_scope\", error_description=\"{description}\"");
        if let Some(scope) = scope {
            let _ = write!(rest, ", scope=\"{scope}\"");
        }
        Self::challenge(403, &rest)
    }

    fn fetching(mut self, fetches: usize) -> Self {
        self.fetches = fetches;
        self
    }
}

struct Row {
    scenario: String,
    request: String,
    status: String,
    fetches: String,
    challenge: String,
    pass: bool,
    expected: String,
}

struct Demo<'a> {
    issuer: &'a Issuer,
    base: String,
    http: reqwest::Client,
    rows: Vec<Row>,
}

impl Demo<'_> {
    /// Sends one request and records whether the answer is the expected one.
    async fn check(
        &mut self,
        scenario: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        token_note: &str,
        expect: Expect,
    ) {
        let fetches_before = self.issuer.fetches();
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let request_text = if token_note.is_empty() {
            format!("{method} {path}")
        } else {
            format!("{method} {path}  {token_note}")
        };
        let (status, challenge) = match request.send().await {
            Ok(response) => (
                Some(response.status().as_u16()),
                response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            ),
            Err(error) => {
                eprintln!("request failed: {error}");
                (None, None)
            }
        };
        let fetched = self.issuer.fetches() - fetches_before;
        let pass = status == Some(expect.status)
            && challenge == expect.challenge
            && fetched == expect.fetches;
        self.rows.push(Row {
            scenario: scenario.to_owned(),
            request: request_text,
            status: status.map_or("error".into(), |s| s.to_string()),
            fetches: format!("+{fetched}"),
            challenge: short_challenge(challenge.as_deref()),
            pass,
            expected: format!(
                "{} +{} {}",
                expect.status,
                expect.fetches,
                short_challenge(expect.challenge.as_deref())
            ),
        });
    }

    fn print(&self) -> bool {
        let headers = [
            "#",
            "scenario",
            "request",
            "status",
            "jwks",
            "WWW-Authenticate",
            "verdict",
        ];
        let cells: Vec<[String; 7]> = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                [
                    (i + 1).to_string(),
                    r.scenario.clone(),
                    r.request.clone(),
                    r.status.clone(),
                    r.fetches.clone(),
                    r.challenge.clone(),
                    if r.pass { "PASS" } else { "FAIL" }.to_owned(),
                ]
            })
            .collect();
        let mut widths = headers.map(|h| h.chars().count());
        for row in &cells {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i > 0 {
                    out.push_str(" | ");
                }
                let _ = write!(out, "{cell:<w$}");
            }
            println!("{}", out.trim_end());
        };
        line(&headers.map(String::from));
        println!(
            "{}",
            widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("-|-")
        );
        for row in &cells {
            line(row);
        }
        let failures: Vec<(usize, &Row)> = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.pass)
            .collect();
        println!();
        for (i, row) in &failures {
            println!(
                "FAIL #{}: {}: expected {}",
                i + 1,
                row.scenario,
                row.expected
            );
        }
        failures.is_empty()
    }
}

/// The challenge without its constant `Bearer realm="cognito"` start; `-` for none.
fn short_challenge(challenge: Option<&str>) -> String {
    match challenge {
        None => "-".into(),
        Some(c) if c == CHALLENGE_PREFIX => c.into(),
        Some(c) => c
            .strip_prefix(CHALLENGE_PREFIX)
            .and_then(|rest| rest.strip_prefix(", "))
            .unwrap_or(c)
            .into(),
    }
}

/// Changes one bit of the signature.
fn tamper_signature(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').expect("three parts");
    let mut signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    signature[0] ^= 0x01;
    format!("{input}.{}", b64(signature))
}

/// Rewrites the payload (adding the user to `admins`), keeping the original signature.
fn tamper_payload(token: &str) -> String {
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next(), parts.next(), parts.next());
    let payload = URL_SAFE_NO_PAD
        .decode(payload.expect("payload"))
        .expect("base64url");
    let mut claims: Value = serde_json::from_slice(&payload).expect("JSON claims");
    claims["cognito:groups"] = json!(["admins"]);
    format!(
        "{}.{}.{}",
        header.expect("header"),
        b64(claims.to_string()),
        signature.expect("signature")
    )
}

/// One row of the demo: scenario, request (method, path, bearer token, what the token is), and
/// the answer it must get.
type Scenario<'a> = (&'a str, Method, &'a str, Option<&'a str>, &'a str, Expect);

async fn play(demo: &mut Demo<'_>) {
    let issuer = demo.issuer;
    let t = now();

    // --- The tokens: built first, none of them depends on an answer ----------------------------
    // An access token of a sign-in of its own, issued a minute ago, with `overrides` set.
    let access = |overrides: Value| issuer.access_token(&unique_id(), t - 60, overrides);
    let valid = access(json!({}));
    let expired = issuer.access_token(&unique_id(), t - 7200, json!({ "exp": t - 60 }));
    let other_client = access(json!({ "client_id": "someothercl1ent" }));
    let other_pool =
        access(json!({ "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_OtherPool" }));
    let id_token = issuer.id_token(&unique_id(), t - 60);
    let (bad_signature, bad_payload) = (tamper_signature(&valid), tamper_payload(&valid));

    // The parts of a genuine token, under other headers.
    let genuine = access(json!({}));
    let claims = decode_claims(&genuine);
    let (signed, signature) = genuine.rsplit_once('.').expect("three parts");
    let payload = signed.split_once('.').expect("three parts").1;
    let access_kid = issuer.cognito.signing_kids().0;
    let unsigned = format!("{}.{payload}.", b64(r#"{"alg":"none"}"#));
    let none_header = json!({ "kid": access_kid, "alg": "none" });
    let alg_none = format!("{}.{payload}.{signature}", b64(none_header.to_string()));
    // Key confusion: HS256 keyed with the public RSA key, which anyone can download.
    let hs_header = json!({ "kid": access_kid, "alg": "HS256" });
    let hs_input = format!("{}.{payload}", b64(hs_header.to_string()));
    let public_key = issuer.cognito.signing_keys().0.public_key_der();
    let hs_key = hmac::Key::new(hmac::HMAC_SHA256, &public_key);
    let hs256 = format!(
        "{hs_input}.{}",
        b64(hmac::sign(&hs_key, hs_input.as_bytes()))
    );

    let unknown_kid = |kid: &str| issuer.sign(&json!({ "kid": kid, "alg": "RS256" }), &claims);
    let (unknown_1, unknown_2) = (
        unknown_kid("never-published-1"),
        unknown_kid("never-published-2"),
    );

    let orders_reader = access(json!({ "scope": "openid orders/read" }));
    let admin = access(json!({ "cognito:groups": ["admins"] }));

    // The two-tab refresh race: one sign-in (one origin_jti), T = now-40s, every refresh 10 s
    // after the previous one (explicit iat, no sleeping).
    let session = unique_id();
    let at = |step: i64| issuer.access_token(&session, t - 40 + 10 * step, json!({}));
    let (sign_in, tab_a, tab_b, tab_b2, tab_a2) = (at(0), at(1), at(2), at(3), at(4));

    // Sign-out: session S, before and after a refresh, and the user's other sign-in.
    let session = unique_id();
    let signed_in =
        |iat: i64| issuer.access_token(&session, iat, json!({ "scope": "openid orders/read" }));
    let (before, refreshed) = (signed_in(t - 20), signed_in(t - 10));
    let other_device = issuer.access_token(&unique_id(), t - 10, json!({}));

    // --- The scenarios, in order ---------------------------------------------------------------
    let invalid = Expect::invalid_token;
    let superseded = "The token belongs to a superseded session; refresh the tokens and retry";
    let revoked = "The session has been revoked";
    let (get, post) = (Method::GET, Method::POST);
    #[rustfmt::skip]
    let scenarios: Vec<Scenario<'_>> = vec![
        // One valid token, then forgeries and mistakes.
        ("no token", get.clone(), "/me", None, "", Expect::challenge(401, "")),
        ("valid access token", get.clone(), "/me", Some(&valid), "", Expect::ok()),
        ("unknown path stays 404 (route_layer)", get.clone(), "/nowhere", None, "", Expect::status(404)),
        ("expired token", get.clone(), "/me", Some(&expired), "exp=now-60s", invalid("The token has expired")),
        ("another app client's token", get.clone(), "/me", Some(&other_client), "client_id=someothercl1ent", invalid("The token client is not accepted")),
        ("another pool's issuer", get.clone(), "/me", Some(&other_pool), "iss=.../eu-west-1_OtherPool", invalid("The token issuer is not accepted")),
        ("id token where an access token is required", get.clone(), "/me", Some(&id_token), "token_use=id", invalid("The token use is not accepted")),
        ("tampered signature (one bit)", get.clone(), "/me", Some(&bad_signature), "", invalid("The token signature is invalid")),
        ("tampered payload (adds group admins)", get.clone(), "/admin", Some(&bad_payload), "", invalid("The token signature is invalid")),
        ("alg none, no signature", get.clone(), "/me", Some(&unsigned), "", invalid("The token is malformed")),
        ("alg none, signature kept", get.clone(), "/me", Some(&alg_none), "", invalid("The token algorithm is not supported")),
        ("alg HS256 keyed with the public key", get.clone(), "/me", Some(&hs256), "", invalid("The token algorithm is not supported")),
        // Unknown kid: one JWKS fetch, then the cooldown.
        ("unknown kid: exactly one JWKS fetch", get.clone(), "/me", Some(&unknown_1), "kid=never-published-1", invalid("The token signing key is unknown").fetching(1)),
        ("2nd unknown kid within cooldown: no fetch", get.clone(), "/me", Some(&unknown_2), "kid=never-published-2", invalid("The token signing key is unknown")),
        // Scopes and groups: 403.
        ("missing scope orders/read", get.clone(), "/orders", Some(&valid), "", Expect::forbidden("The token lacks a required scope", Some("orders/read"))),
        ("scope orders/read granted", get.clone(), "/orders", Some(&orders_reader), "scope=openid orders/read", Expect::ok()),
        ("not in group admins", get.clone(), "/admin", Some(&valid), "", Expect::forbidden("The user is not in a required group", None)),
        ("in group admins", get.clone(), "/admin", Some(&admin), "cognito:groups=[admins]", Expect::ok()),
        // The two-tab refresh race.
        ("race: sign-in", get.clone(), "/me", Some(&sign_in), "iat T", Expect::ok()),
        ("race: tab A refreshed", get.clone(), "/me", Some(&tab_a), "tab A, iat T+1", Expect::ok()),
        ("race: tab B refreshed at once", get.clone(), "/me", Some(&tab_b), "tab B, iat T+2", Expect::ok()),
        ("race: tab A goes on", get.clone(), "/me", Some(&tab_a), "tab A, iat T+1", Expect::ok()),
        ("race: tab B goes on", get.clone(), "/me", Some(&tab_b), "tab B, iat T+2", Expect::ok()),
        ("race: tab A again", get.clone(), "/me", Some(&tab_a), "tab A, iat T+1", Expect::ok()),
        ("race: tab B refreshes again", get.clone(), "/me", Some(&tab_b2), "tab B, iat T+3", Expect::ok()),
        ("race: tab A's chain is superseded", get.clone(), "/me", Some(&tab_a), "tab A, iat T+1", invalid(superseded)),
        ("race: tab A refreshes and retries", get.clone(), "/me", Some(&tab_a2), "tab A, iat T+4", Expect::ok()),
        // Sign-out revokes the session.
        ("session: signed in", get.clone(), "/me", Some(&before), "session S", Expect::ok()),
        ("session: sign-out revokes it", post, "/logout", Some(&before), "session S", Expect::status(204)),
        ("session: same token after sign-out", get.clone(), "/me", Some(&before), "session S", invalid(revoked)),
        ("session: a later refresh of it", get.clone(), "/me", Some(&refreshed), "session S, newer iat", invalid(revoked)),
        ("session: revoked on every route", get.clone(), "/orders", Some(&before), "session S", invalid(revoked)),
        ("session: the user's other sign-in", get, "/me", Some(&other_device), "session S2", Expect::ok()),
    ];
    for (scenario, method, path, token, note, expect) in scenarios {
        demo.check(scenario, method, path, token, note, expect)
            .await;
    }
}

async fn run() -> Result<bool, BoxError> {
    let started = Instant::now();
    println!("tower-cognito demo: everything below runs in this process, no AWS account needed.");
    println!();
    let issuer = Issuer::start().await;
    let base = start_api(&issuer).await?;
    let (access_kid, id_kid) = issuer.cognito.signing_kids();
    println!(
        "  issuer  {}  (tower-cognito-testing's LocalCognito, pool {POOL_ID})",
        issuer.cognito.issuer()
    );
    println!(
        "          JWKS at {} with kids {access_kid} (access) and {id_kid} (id), RSA-2048",
        issuer.cognito.jwks_url()
    );
    println!("  API     {base}  CognitoAuthLayer, access tokens of client {CLIENT_ID},");
    println!("          session window on (MemoryStore, 2 iat values per sign-in)");
    println!("          /me and POST /logout; /orders needs scope orders/read; /admin needs group admins");
    println!();
    println!("  status and WWW-Authenticate are the API's real answers; jwks = fetches the request caused");
    println!("  at the JWKS endpoint; challenges are shown without their constant `{CHALLENGE_PREFIX}, `.");
    println!("  Race rows: one sign-in (one origin_jti), T = now-40s, each refresh 10 s later.");
    println!();

    let mut demo = Demo {
        issuer: &issuer,
        base,
        http: reqwest::Client::builder().build()?,
        rows: Vec::new(),
    };
    play(&mut demo).await;
    #[cfg_attr(not(feature = "refresh"), allow(unused_mut))]
    let mut all_pass = demo.print();
    let passed = demo.rows.iter().filter(|r| r.pass).count();
    println!(
        "{passed}/{} scenarios as expected; {} JWKS fetch(es) in all; {:.1} s.",
        demo.rows.len(),
        issuer.fetches(),
        started.elapsed().as_secs_f64()
    );
    println!();
    #[cfg(feature = "refresh")]
    {
        all_pass &= refresh_race::play().await?;
    }
    #[cfg(not(feature = "refresh"))]
    println!(
        "The refresh side of the race (two tabs, rotation on, grace 0) needs the `refresh` feature: \
         cargo run --example demo --features refresh"
    );
    Ok(all_pass)
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("demo: could not start: {error}");
            ExitCode::FAILURE
        }
    }
}
