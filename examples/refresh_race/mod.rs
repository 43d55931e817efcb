//! The demo's last act (feature `refresh`): two tabs of one sign-in refresh at the same
//! instant against a local Cognito with rotation on and a 0 s grace period, first through a
//! naive backend-for-frontend, then through `tower_cognito::refresh::Bff`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;
use tower_cognito::refresh::{Bff, MemoryRefreshStore, SealingKeys, TokenClient};
use tower_cognito::{
    ClientIds, Clock, CognitoConfig, IdClaims, SystemClock, TokenUse, UserPool, Verifier,
};
use tower_cognito_testing::{LocalCognito, Options};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const APP: &str = "http://127.0.0.1:8080";

/// The system clock, moved forward to make a stored access token stale without waiting.
#[derive(Debug, Clone, Default)]
struct Later(Arc<AtomicI64>);

impl Clock for Later {
    fn now_unix(&self) -> i64 {
        SystemClock.now_unix() + self.0.load(Ordering::SeqCst)
    }
}

/// One tab's answer to `POST /auth/token`.
struct TabAnswer {
    status: StatusCode,
    body: Value,
}

impl TabAnswer {
    fn shown(&self) -> String {
        match self.body["error"].as_str() {
            Some(error) => format!("{} {error}", self.status.as_u16()),
            None => format!("{} new access token", self.status.as_u16()),
        }
    }
}

async fn call(
    bff: &Bff,
    request: Request<()>,
) -> Result<(StatusCode, axum::http::HeaderMap, Value), BoxError> {
    let response = bff.clone().oneshot(request).await?;
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await?.to_bytes();
    Ok((
        parts.status,
        parts.headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers.get_all(SET_COOKIE).iter().find_map(|h| {
        let value = h.to_str().ok()?.strip_prefix(name)?.strip_prefix('=')?;
        Some(value.split(';').next().unwrap_or("").to_owned())
    })
}

/// Signs in through the BFF and the local Cognito's hosted UI; answers the session cookie.
async fn sign_in(bff: &Bff) -> Result<String, BoxError> {
    let (_, headers, _) = call(bff, Request::get("/auth/login").body(())?).await?;
    let pre_login = cookie(&headers, "cognito_login").ok_or("no pre-login cookie")?;
    let hosted_ui = headers[LOCATION].to_str()?.to_owned();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let approved = http.get(hosted_ui).send().await?;
    let callback = approved.headers()["location"].to_str()?.to_owned();
    let path = callback
        .strip_prefix(APP)
        .ok_or("callback elsewhere")?
        .to_owned();
    let request = Request::get(path)
        .header(COOKIE, format!("cognito_login={pre_login}"))
        .body(())?;
    let (_, headers, _) = call(bff, request).await?;
    cookie(&headers, "cognito_session").ok_or_else(|| "no session cookie".into())
}

async fn tab(bff: &Bff, session: &str) -> Result<TabAnswer, BoxError> {
    let request = Request::post("/auth/token")
        .header(ORIGIN, APP)
        .header(COOKIE, format!("cognito_session={session}"))
        .body(())?;
    let (status, _, body) = call(bff, request).await?;
    Ok(TabAnswer { status, body })
}

/// One round: sign in, let the stored token age, and let two tabs refresh together. Answers
/// both tabs' answers and the refreshes Cognito saw.
async fn round(
    cognito: &LocalCognito,
    coordinated: bool,
) -> Result<(TabAnswer, TabAnswer, u64), BoxError> {
    let config = CognitoConfig::new(
        UserPool::parse(cognito.pool_id())?,
        TokenUse::Id,
        ClientIds::one(cognito.client_id()),
    )
    .issuer_override(cognito.issuer())
    .jwks_url(cognito.jwks_url())
    .allow_http_on_loopback(true);
    let id_tokens: Verifier<IdClaims> = Verifier::with_claims(config)?;
    let client = TokenClient::builder(cognito.client_id())
        .domain(cognito.origin())
        .idp_endpoint(cognito.idp_url())
        .allow_http_on_loopback(true)
        .build()?;
    let clock = Later::default();
    let mut builder = Bff::builder(
        client,
        Arc::new(MemoryRefreshStore::new(100)),
        SealingKeys::new("demo", &[42; 32])?,
        id_tokens,
        format!("{APP}/auth/callback"),
    )
    .insecure_cookies_on_loopback(true)
    .clock(clock.clone());
    if !coordinated {
        builder = builder.uncoordinated_for_tests();
    }
    let bff = builder.build()?;
    let session = sign_in(&bff).await?;
    // Five minutes later the stored access token is near its expiry: both tabs ask at once,
    // and both refreshes reach Cognito before either is answered.
    clock.0.store(250, Ordering::SeqCst);
    cognito.reset_counts();
    cognito.set_refresh_delay(Duration::from_millis(200));
    let (a, b) = tokio::join!(tab(&bff, &session), tab(&bff, &session));
    cognito.set_refresh_delay(Duration::ZERO);
    Ok((a?, b?, cognito.counts().refreshes))
}

/// Plays both rounds and prints them; `Ok(true)` when each showed what it should.
pub async fn play() -> Result<bool, BoxError> {
    let cognito =
        LocalCognito::start_with(Options::new().access_ttl(Duration::from_secs(300))).await;
    println!(
        "Two tabs, one sign-in, refreshing at the same instant: a local Cognito at {},",
        cognito.origin()
    );
    println!("refresh-token rotation on, RetryGracePeriodSeconds 0, 5-minute access tokens.");
    println!();
    let mut all_pass = true;
    for (coordinated, name) in [
        (false, "naive BFF (each request refreshes)"),
        (true, "tower_cognito::refresh::Bff"),
    ] {
        let (a, b, refreshes) = round(&cognito, coordinated).await?;
        let both_ok = a.status == StatusCode::OK && b.status == StatusCode::OK;
        let one_out = [a.status, b.status].contains(&StatusCode::UNAUTHORIZED);
        let same = a.body["access_token"] == b.body["access_token"];
        let pass = if coordinated {
            both_ok && same && refreshes == 1
        } else {
            one_out && refreshes == 2
        };
        all_pass &= pass;
        let verdict = match (coordinated, pass) {
            (false, true) => "one tab signed out: the race",
            (true, true) => "both tabs keep working, one token",
            (_, false) => "UNEXPECTED",
        };
        println!("  {name:<38} tab A: {:<22} tab B: {:<22} Cognito refreshes: {refreshes}   {} {verdict}",
            a.shown(), b.shown(), if pass { "ok" } else { "FAIL" });
    }
    println!();
    Ok(all_pass)
}
