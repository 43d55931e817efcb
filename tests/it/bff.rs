//! The backend-for-frontend against the local Cognito (rotation on, grace 0), over every store:
//! one refresh per session across two instances, a holder killed mid-refresh, reuse recovered
//! or ending the session, Cognito unavailable, sign-out, and each bad input refused with
//! nothing stored.
#![cfg(feature = "refresh")]

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{COOKIE, ORIGIN};
use http::{Request, StatusCode};
use tower_cognito::refresh::{Bff, MemoryRefreshStore, RefreshStore, SealingKeys, TokenClient};
use tower_cognito::session::{MemoryStore, SessionConfig};
use tower_cognito::{
    AccessClaims, AuthError, ClientIds, Clock, CognitoConfig, IdClaims, InvalidToken, TokenUse,
    UserPool, Verifier,
};
use tower_cognito_testing::{Browser, LocalCognito, Options, Page};

const APP: &str = "http://127.0.0.1:8080";
const REDIRECT: &str = "http://127.0.0.1:8080/auth/callback";

/// The system clock plus an offset the test moves, so a stored access token can be made stale
/// without sleeping.
#[derive(Debug, Clone, Default)]
struct ShiftedClock(Arc<AtomicI64>);

impl ShiftedClock {
    fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now_unix(&self) -> i64 {
        tower_cognito::SystemClock.now_unix() + self.0.load(Ordering::SeqCst)
    }
}

fn config(cognito: &LocalCognito, token_use: TokenUse) -> CognitoConfig {
    CognitoConfig::new(
        UserPool::parse(cognito.pool_id()).unwrap(),
        token_use,
        ClientIds::one(cognito.client_id()),
    )
    .issuer_override(cognito.issuer())
    .jwks_url(cognito.jwks_url())
    .allow_http_on_loopback(true)
}

fn token_client(cognito: &LocalCognito) -> TokenClient {
    TokenClient::builder(cognito.client_id())
        .domain(cognito.origin())
        .idp_endpoint(cognito.idp_url())
        .allow_http_on_loopback(true)
        .timeouts(Duration::from_secs(2), Duration::from_secs(10))
        .build()
        .unwrap()
}

fn keys() -> SealingKeys {
    SealingKeys::new("test-1", &[7; 32]).unwrap()
}

/// The local Cognito, the API's verifier (session window in memory) and a way to build BFF
/// instances over a given store.
struct Rig {
    cognito: Arc<LocalCognito>,
    api: Verifier<AccessClaims>,
    clock: ShiftedClock,
}

impl Rig {
    async fn start() -> Rig {
        Self::start_with(Options::new().access_ttl(Duration::from_secs(300))).await
    }

    async fn start_with(options: Options) -> Rig {
        let cognito = Arc::new(LocalCognito::start_with(options).await);
        let sessions = SessionConfig::new(Arc::new(MemoryStore::new(1000)));
        let api: Verifier<AccessClaims> =
            Verifier::new(config(&cognito, TokenUse::Access).session_window(sessions)).unwrap();
        Rig {
            cognito,
            api,
            clock: ShiftedClock::default(),
        }
    }

    fn builder(&self, store: Arc<dyn RefreshStore>) -> tower_cognito::refresh::BffBuilder {
        let id_verifier: Verifier<IdClaims> =
            Verifier::with_claims(config(&self.cognito, TokenUse::Id)).unwrap();
        Bff::builder(
            token_client(&self.cognito),
            store,
            keys(),
            id_verifier,
            REDIRECT,
        )
        .insecure_cookies_on_loopback(true)
        .revoke_in(self.api.clone())
        .clock(self.clock.clone())
        .lock_lease(Duration::from_millis(800))
    }

    fn bff(&self, store: Arc<dyn RefreshStore>) -> Bff {
        self.builder(store).build().unwrap()
    }

    /// Makes every stored access token (300 s) stale for the 60 s margin.
    fn age_tokens(&self) {
        self.clock.advance(250);
    }
}

/// A tab of a browser whose jar holds `session`: its `POST /auth/token`.
async fn token(bff: &Bff, session: &str) -> Page {
    let tab = Browser::new(bff.clone(), APP);
    tab.set_cookie("cognito_session", Some(session));
    tab.post("/auth/token").await
}

fn error(page: &Page) -> String {
    page.json()["error"].as_str().unwrap_or("").to_owned()
}

fn access_token(page: &Page) -> String {
    page.json()["access_token"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// `request` as it is (no cookies from a jar, no `Origin` unless it has one).
async fn raw(bff: &Bff, request: http::request::Builder) -> Page {
    Browser::new(bff.clone(), APP).send(request).await
}

/// A sign-in through the local Cognito with `tamper` applied to the hosted-UI URL: the
/// callback's answer, the pre-login cookie and the callback path used.
async fn login_flow(bff: &Bff, tamper: impl Fn(String) -> String) -> (Page, String, String) {
    let browser = Browser::new(bff.clone(), APP);
    let path = browser
        .start_sign_in("/auth/login?return_to=/app", tamper)
        .await;
    let pre_login = browser.cookie("cognito_login").expect("pre-login cookie");
    (browser.get(&path).await, pre_login, path)
}

/// A signed-in session's cookie value.
async fn sign_in(bff: &Bff) -> String {
    let browser = Browser::new(bff.clone(), APP);
    let callback = browser.sign_in("/auth/login?return_to=/app").await;
    assert_eq!(
        callback.status,
        StatusCode::SEE_OTHER,
        "{:?}",
        callback.json()
    );
    assert_eq!(callback.location(), Some("/app"));
    browser.cookie("cognito_session").expect("session cookie")
}

/// 50 concurrent `POST /auth/token` of one stale session over two instances: one refresh at
/// Cognito, 50 answers with the same new token, which the API accepts.
async fn fifty_over_two_instances(rig: &Rig, one: Bff, two: Bff) {
    let session = sign_in(&one).await;
    let first = token(&one, &session).await;
    assert_eq!(first.status, StatusCode::OK);
    rig.age_tokens();
    rig.cognito.reset_counts();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let bff = if i % 2 == 0 { one.clone() } else { two.clone() };
        let session = session.clone();
        tasks.spawn(async move { token(&bff, &session).await });
    }
    let mut tokens = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json());
        tokens.push(access_token(&answer).to_owned());
    }
    let counts = rig.cognito.counts();
    assert_eq!(
        counts.refreshes, 1,
        "exactly one refresh reached Cognito: {counts:?}"
    );
    assert_eq!(counts.refresh_ok, 1);
    assert!(
        tokens.iter().all(|t| t == &tokens[0]),
        "all 50 got the same token"
    );
    assert_ne!(tokens[0], access_token(&first), "and it is the new one");
    let verified = rig
        .api
        .verify(&tokens[0])
        .await
        .expect("the layer accepts it");
    assert_eq!(verified.claims().username, "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_requests_one_refresh_memory() {
    let rig = Rig::start().await;
    let store: Arc<dyn RefreshStore> = Arc::new(MemoryRefreshStore::new(100));
    let (one, two) = (rig.bff(store.clone()), rig.bff(store));
    fifty_over_two_instances(&rig, one, two).await;
}

#[cfg(feature = "redis")]
async fn redis_store(prefix: &str) -> Arc<dyn RefreshStore> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store = tower_cognito::refresh::RedisRefreshStore::connect(&url)
        .await
        .expect("Redis at REDIS_URL")
        .with_prefix(prefix)
        .expect("prefix");
    Arc::new(store)
}

#[cfg(feature = "postgres")]
async fn postgres_stores(table: &str) -> (Arc<dyn RefreshStore>, Arc<dyn RefreshStore>) {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let connect = || async {
        tower_cognito::refresh::PostgresRefreshStore::connect(&url)
            .await
            .expect("PostgreSQL at DATABASE_URL")
            .with_table(table)
            .unwrap()
    };
    let one = connect().await;
    one.create_schema().await.unwrap();
    (Arc::new(one), Arc::new(connect().await))
}

#[cfg(any(feature = "redis", feature = "postgres"))]
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}_{}_{nanos}", std::process::id())
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_requests_one_refresh_redis() {
    let rig = Rig::start().await;
    let prefix = unique("bff-test") + ":";
    // Two instances, two connections: as two servers would have.
    let one = rig.bff(redis_store(&prefix).await);
    let two = rig.bff(redis_store(&prefix).await);
    fifty_over_two_instances(&rig, one, two).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_requests_one_refresh_postgres() {
    let rig = Rig::start().await;
    let table = unique("bff_test");
    let (a, b) = postgres_stores(&table).await;
    fifty_over_two_instances(&rig, rig.bff(a), rig.bff(b)).await;
}

/// The first instance's refresh hangs at Cognito and the instance is dropped: the session
/// survives, and one refresh happens after the lease ends.
async fn holder_killed_mid_refresh(rig: &Rig, one: Bff, two: Bff) {
    let session = sign_in(&one).await;
    rig.age_tokens();
    rig.cognito.reset_counts();
    rig.cognito.set_refresh_delay(Duration::from_secs(30));
    let hanging = {
        let session = session.clone();
        tokio::spawn(async move { token(&one, &session).await })
    };
    // Let it take the lock and send its refresh, then kill it (and its instance with it).
    assert_eq!(
        rig.cognito
            .wait_for_received_refreshes(1, Duration::from_secs(10))
            .await,
        1
    );
    hanging.abort();
    assert!(hanging.await.unwrap_err().is_cancelled());
    rig.cognito.set_refresh_delay(Duration::ZERO);
    let started = std::time::Instant::now();
    let answer = token(&two, &session).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json());
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the second instance waited for the dead holder's lease"
    );
    let counts = rig.cognito.counts();
    assert_eq!(
        counts.refreshes, 1,
        "the dead call rotated nothing: {counts:?}"
    );
    rig.api.verify(&access_token(&answer)).await.unwrap();
    // And the session goes on: the stored refresh token is the new one.
    rig.age_tokens();
    let again = token(&two, &session).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.json());
    assert_eq!(rig.cognito.counts().refresh_ok, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_killed_mid_refresh_blocks_only_for_its_lease_memory() {
    let rig = Rig::start().await;
    let store: Arc<dyn RefreshStore> = Arc::new(MemoryRefreshStore::new(100));
    holder_killed_mid_refresh(&rig, rig.bff(store.clone()), rig.bff(store)).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_killed_mid_refresh_blocks_only_for_its_lease_redis() {
    let rig = Rig::start().await;
    let prefix = unique("bff-test") + ":";
    let one = rig.bff(redis_store(&prefix).await);
    let two = rig.bff(redis_store(&prefix).await);
    holder_killed_mid_refresh(&rig, one, two).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_killed_mid_refresh_blocks_only_for_its_lease_postgres() {
    let rig = Rig::start().await;
    let (a, b) = postgres_stores(&unique("bff_test")).await;
    holder_killed_mid_refresh(&rig, rig.bff(a), rig.bff(b)).await;
}

/// A holder whose Cognito call outlives its lease: the second instance refreshes meanwhile and
/// saves; the first then gets `RefreshTokenReuseException`, reloads, and answers the newer
/// token instead of signing the user out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reused_with_a_newer_token_stored_elsewhere_is_recovered() {
    let rig = Rig::start().await;
    let store: Arc<dyn RefreshStore> = Arc::new(MemoryRefreshStore::new(100));
    let slow = rig
        .builder(store.clone())
        .lock_lease(Duration::from_millis(300))
        .build()
        .unwrap();
    let other = rig.bff(store);
    let session = sign_in(&slow).await;
    rig.age_tokens();
    rig.cognito.reset_counts();
    rig.cognito.set_refresh_delay(Duration::from_millis(1500));
    let first = {
        let session = session.clone();
        tokio::spawn(async move { token(&slow, &session).await })
    };
    // Its refresh is at Cognito; let its lease (300 ms) end, then the other instance goes.
    assert_eq!(
        rig.cognito
            .wait_for_received_refreshes(1, Duration::from_secs(10))
            .await,
        1
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    rig.cognito.set_refresh_delay(Duration::ZERO);
    let second = token(&other, &session).await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.json());
    let first = first.await.unwrap();
    assert_eq!(
        first.status,
        StatusCode::OK,
        "recovered: {:?}",
        first.json()
    );
    assert_eq!(access_token(&first), access_token(&second));
    let counts = rig.cognito.counts();
    assert_eq!((counts.refresh_ok, counts.reused), (1, 1), "{counts:?}");
}

/// A holder whose Cognito call outlives its lease but reached Cognito first: the second
/// instance takes over the lease, its own refresh (same refresh token) is refused as reused,
/// and it answers the first holder's tokens, saved meanwhile. Nobody is signed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_outliving_its_lease_still_saves_and_the_taker_uses_it() {
    let rig = Rig::start().await;
    let store: Arc<dyn RefreshStore> = Arc::new(MemoryRefreshStore::new(100));
    let short = |store| {
        rig.builder(store)
            .lock_lease(Duration::from_millis(300))
            .build()
            .unwrap()
    };
    let (slow, taker) = (short(store.clone()), short(store));
    let session = sign_in(&slow).await;
    rig.age_tokens();
    rig.cognito.reset_counts();
    // Every refresh waits 1 s at Cognito: the first holder's lease (300 ms) ends meanwhile.
    rig.cognito.set_refresh_delay(Duration::from_secs(1));
    let first = {
        let session = session.clone();
        tokio::spawn(async move { token(&slow, &session).await })
    };
    assert_eq!(
        rig.cognito
            .wait_for_received_refreshes(1, Duration::from_secs(10))
            .await,
        1
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let second = token(&taker, &session).await;
    let first = first.await.unwrap();
    rig.cognito.set_refresh_delay(Duration::ZERO);
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.json());
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.json());
    assert_eq!(access_token(&first), access_token(&second));
    let counts = rig.cognito.counts();
    assert_eq!((counts.refresh_ok, counts.reused), (1, 1), "{counts:?}");
    // And the session goes on with the saved refresh token.
    rig.age_tokens();
    assert_eq!(token(&taker, &session).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_dead_refresh_token_ends_the_session_cleanly() {
    let rig = Rig::start().await;
    let store = Arc::new(MemoryRefreshStore::new(100));
    let bff = rig.bff(store.clone());
    let session = sign_in(&bff).await;
    rig.age_tokens();
    rig.cognito.revoke_all("alice");
    let answer = token(&bff, &session).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error(&answer), "login_required");
    assert_eq!(
        answer.set_cookie("cognito_session").as_deref(),
        Some(""),
        "cookie cleared"
    );
    assert!(store.is_empty(), "the session is gone");
    let again = token(&bff, &session).await;
    assert_eq!(error(&again), "login_required");
    assert_eq!(
        rig.cognito.counts().refreshes,
        1,
        "no second try at Cognito"
    );
}

#[tokio::test]
async fn cognito_unavailable_is_503_and_keeps_the_session() {
    let rig = Rig::start().await;
    let store = Arc::new(MemoryRefreshStore::new(100));
    let bff = rig.bff(store.clone());
    let session = sign_in(&bff).await;
    rig.age_tokens();
    for status in [500, 503, 429] {
        rig.cognito.set_unavailable(Some(status));
        let answer = token(&bff, &session).await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "Cognito {status}"
        );
        assert_eq!(error(&answer), "temporarily_unavailable");
        assert_eq!(answer.headers["retry-after"], "1");
        assert_eq!(answer.set_cookie("cognito_session"), None, "cookie kept");
    }
    assert_eq!(store.len(), 1);
    rig.cognito.set_unavailable(None);
    let answer = token(&bff, &session).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json());
}

#[tokio::test]
async fn a_fresh_token_needs_no_refresh_and_the_answer_is_not_cached() {
    let rig = Rig::start().await;
    let bff = rig.bff(Arc::new(MemoryRefreshStore::new(100)));
    let session = sign_in(&bff).await;
    rig.cognito.reset_counts();
    let answer = token(&bff, &session).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["token_type"], "Bearer");
    let expires_in = answer.json()["expires_in"].as_i64().unwrap();
    assert!((290..=300).contains(&expires_in), "{expires_in}");
    assert_eq!(answer.headers["cache-control"], "no-store");
    assert_eq!(rig.cognito.counts().refreshes, 0);
    rig.api.verify(&access_token(&answer)).await.unwrap();
}

#[tokio::test]
async fn sign_out_revokes_at_cognito_and_in_the_session_window() {
    let rig = Rig::start().await;
    let store = Arc::new(MemoryRefreshStore::new(100));
    let bff = rig.bff(store.clone());
    let session = sign_in(&bff).await;
    let access = access_token(&token(&bff, &session).await).to_owned();
    rig.api.verify(&access).await.unwrap();
    let tab = Browser::new(bff.clone(), APP);
    tab.set_cookie("cognito_session", Some(&session));
    let out = tab.post("/auth/logout").await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(out.set_cookie("cognito_session").as_deref(), Some(""));
    assert_eq!(rig.cognito.counts().revocations, 1);
    assert!(store.is_empty());
    let refused = rig.api.verify(&access).await.unwrap_err();
    assert_eq!(refused, AuthError::InvalidToken(InvalidToken::Revoked));
    assert_eq!(error(&token(&bff, &session).await), "login_required");
}

#[tokio::test]
async fn the_session_cookie_is_opaque_http_only_and_scoped() {
    let rig = Rig::start().await;
    let bff = rig.bff(Arc::new(MemoryRefreshStore::new(100)));
    let (callback, _, _) = login_flow(&bff, |url| url).await;
    let header = callback.set_cookie_header("cognito_session").unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/auth"] {
        assert!(header.contains(attribute), "{header}");
    }
    let value = callback.set_cookie("cognito_session").unwrap();
    assert_eq!(value.len(), 43, "256 random bits, base64url");
    assert!(!value.contains('.'), "not a JWT");
    // Secure whenever the callback is https.
    let secure = rig
        .builder(Arc::new(MemoryRefreshStore::new(10)))
        .insecure_cookies_on_loopback(false)
        .build();
    assert!(
        secure.is_err(),
        "plain http callback refused without the loopback switch"
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_stored() {
    let rig = Rig::start().await;
    let store = Arc::new(MemoryRefreshStore::new(100));
    let bff = rig.bff(store.clone());

    // Forged, unknown and malformed session cookies.
    for cookie in [
        "cognito_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "cognito_session=not-ours",
        "cognito_session=",
        "other=1",
    ] {
        let answer = raw(
            &bff,
            Request::post("/auth/token")
                .header(ORIGIN, APP)
                .header(COOKIE, cookie),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{cookie}");
        assert_eq!(error(&answer), "login_required");
    }

    // Cross-site POSTs: a foreign Origin, none, a doubled one.
    let session = sign_in(&bff).await;
    let cookie = format!("cognito_session={session}");
    for origin in [Some("https://evil.example"), None, Some("null")] {
        let mut request = Request::post("/auth/token").header(COOKIE, &cookie);
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        let answer = raw(&bff, request).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{origin:?}");
        assert_eq!(error(&answer), "cross_site_request");
        let logout = Request::post("/auth/logout").header(COOKIE, &cookie);
        let logout = match origin {
            Some(origin) => logout.header(ORIGIN, origin),
            None => logout,
        };
        assert_eq!(raw(&bff, logout).await.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(store.len(), 1, "the cross-site logout did nothing");

    // Open redirects in the return path.
    for target in [
        "//evil.example",
        "https://evil.example/",
        "/\\evil.example",
        "evil",
    ] {
        let uri = format!("/auth/login?return_to={}", urlencode(target));
        let answer = raw(&bff, Request::get(uri)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{target}");
        assert_eq!(error(&answer), "invalid_return_path");
    }

    // A replayed callback: the code is single-use and the pre-login cookie is cleared.
    let before = store.len();
    let (first, pre_login, path) = login_flow(&bff, |url| url).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    assert_eq!(first.set_cookie("cognito_login").as_deref(), Some(""));
    let replay = Request::get(&path).header(COOKIE, format!("cognito_login={pre_login}"));
    let replayed = raw(&bff, replay).await;
    assert_eq!(replayed.status, StatusCode::BAD_REQUEST);
    assert_eq!(error(&replayed), "invalid_callback");
    assert_eq!(
        store.len(),
        before + 1,
        "only the first callback stored a session"
    );

    // A state that does not match the pre-login cookie's, a callback without the cookie.
    let (answer, _, _) = login_flow(&bff, |url| replace_param(&url, "state", "forged")).await;
    assert_eq!(error(&answer), "invalid_callback");
    let login = raw(&bff, Request::get("/auth/login")).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    let bare = raw(&bff, Request::get("/auth/callback?code=x&state=y")).await;
    assert_eq!(error(&bare), "invalid_callback");

    // A mismatched nonce, and none at all, in the id token.
    let (answer, _, _) = login_flow(&bff, |url| replace_param(&url, "nonce", "other")).await;
    assert_eq!(error(&answer), "invalid_callback");
    let (answer, _, _) = login_flow(&bff, |url| remove_param(&url, "nonce")).await;
    assert_eq!(error(&answer), "invalid_callback");

    assert_eq!(
        store.len(),
        before + 1,
        "no refused sign-in stored anything"
    );

    // Unknown routes and wrong methods.
    let answer = raw(&bff, Request::get("/auth/elsewhere")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = raw(&bff, Request::get("/auth/token")).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn replace_param(url: &str, name: &str, value: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.into()
}

fn remove_param(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.into()
}

/// The control: with the coordination off, two tabs refreshing at once with rotation on and
/// grace 0 lose one tab. With it on (every test above), neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_coordination_one_of_two_tabs_is_signed_out() {
    let rig = Rig::start().await;
    let store: Arc<dyn RefreshStore> = Arc::new(MemoryRefreshStore::new(100));
    let naive = rig
        .builder(store)
        .uncoordinated_for_tests()
        .build()
        .unwrap();
    let session = sign_in(&naive).await;
    rig.age_tokens();
    rig.cognito.reset_counts();
    // Both tabs' refreshes reach Cognito before either is answered.
    rig.cognito.set_refresh_delay(Duration::from_millis(200));
    let (a, b) = tokio::join!(token(&naive, &session), token(&naive, &session));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::UNAUTHORIZED],
        "one tab signed out"
    );
    let counts = rig.cognito.counts();
    assert_eq!((counts.refreshes, counts.reused), (2, 1), "{counts:?}");
}

#[tokio::test]
async fn a_store_dump_holds_no_usable_token() {
    // Redis and PostgreSQL hold exactly what the memory store holds: sealed bytes under the
    // cookie's hash. Look at what the memory store was given.
    #[derive(Debug)]
    struct Spy(MemoryRefreshStore, std::sync::Mutex<Vec<(String, Vec<u8>)>>);
    impl RefreshStore for Spy {
        fn load<'a>(
            &'a self,
            id: &'a str,
            now: i64,
        ) -> tower_cognito::session::StoreFuture<'a, Option<tower_cognito::refresh::SessionRecord>>
        {
            self.0.load(id, now)
        }
        fn create<'a>(
            &'a self,
            id: &'a str,
            record: &'a tower_cognito::refresh::SessionRecord,
            now: i64,
        ) -> tower_cognito::session::StoreFuture<'a, ()> {
            self.1
                .lock()
                .unwrap()
                .push((id.to_owned(), record.sealed.clone()));
            self.0.create(id, record, now)
        }
        fn lock<'a>(
            &'a self,
            id: &'a str,
            lease: Duration,
            now: i64,
        ) -> tower_cognito::session::StoreFuture<'a, tower_cognito::refresh::LockOutcome> {
            self.0.lock(id, lease, now)
        }
        fn save<'a>(
            &'a self,
            id: &'a str,
            record: &'a tower_cognito::refresh::SessionRecord,
            fence: u64,
            now: i64,
        ) -> tower_cognito::session::StoreFuture<'a, tower_cognito::refresh::SaveOutcome> {
            self.1
                .lock()
                .unwrap()
                .push((id.to_owned(), record.sealed.clone()));
            self.0.save(id, record, fence, now)
        }
        fn unlock<'a>(
            &'a self,
            id: &'a str,
            fence: u64,
        ) -> tower_cognito::session::StoreFuture<'a, ()> {
            self.0.unlock(id, fence)
        }
        fn delete<'a>(&'a self, id: &'a str) -> tower_cognito::session::StoreFuture<'a, ()> {
            self.0.delete(id)
        }
    }
    let rig = Rig::start().await;
    let spy = Arc::new(Spy(MemoryRefreshStore::new(10), Default::default()));
    let bff = rig.bff(spy.clone());
    let session = sign_in(&bff).await;
    rig.age_tokens();
    let access = access_token(&token(&bff, &session).await).to_owned();
    let written = spy.1.lock().unwrap().clone();
    assert_eq!(written.len(), 2, "created, then saved after the refresh");
    for (id, sealed) in &written {
        assert_eq!(id.len(), 64);
        assert_ne!(id, &session, "the id is the cookie's hash, not the cookie");
        let text = String::from_utf8_lossy(sealed);
        assert!(!text.contains("eyJ"), "no JWT in the clear");
        assert!(!text.contains(&access[..40]));
    }
}

/// A server on loopback that answers every request with `status` and a body of `size` bytes
/// (chunked when `chunked`, so no length warns the client beforehand).
async fn huge_answer_server(size: usize, chunked: bool) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = socket.read(&mut buf).await;
                let body = format!(
                    "{{\"AuthenticationResult\":{{\"AccessToken\":\"{}\"}}}}",
                    "a".repeat(size)
                );
                let head = if chunked {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_owned()
                } else {
                    format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len())
                };
                let _ = socket.write_all(head.as_bytes()).await;
                if chunked {
                    for piece in body.as_bytes().chunks(4096) {
                        let frame = format!("{:x}\r\n", piece.len());
                        let _ = socket.write_all(frame.as_bytes()).await;
                        let _ = socket.write_all(piece).await;
                        let _ = socket.write_all(b"\r\n").await;
                    }
                    let _ = socket.write_all(b"0\r\n\r\n").await;
                } else {
                    let _ = socket.write_all(body.as_bytes()).await;
                }
            });
        }
    });
    format!("http://{addr}/")
}

#[tokio::test]
async fn oversized_answers_from_cognito_are_refused_and_nothing_is_stored() {
    use tower_cognito::refresh::{Secret, TokenError};
    for chunked in [false, true] {
        let url = huge_answer_server(1024 * 1024, chunked).await;
        let client = TokenClient::builder("client")
            .idp_endpoint(&url)
            .domain(url.trim_end_matches('/'))
            .allow_http_on_loopback(true)
            .build()
            .unwrap();
        let refreshed = client.refresh(&Secret::new("rt"), None).await;
        assert!(
            matches!(refreshed, Err(TokenError::Unavailable(_))),
            "{refreshed:?}"
        );
        let exchanged = client
            .exchange_code("code", &Secret::new("v"), REDIRECT)
            .await;
        assert!(
            matches!(exchanged, Err(TokenError::Unavailable(_))),
            "{exchanged:?}"
        );
        // A small answer of the same server is fine: the cap, not the server, refused it.
        let small = huge_answer_server(100, chunked).await;
        let client = TokenClient::builder("client")
            .idp_endpoint(&small)
            .allow_http_on_loopback(true)
            .build()
            .unwrap();
        let tokens = client.refresh(&Secret::new("rt"), None).await.unwrap();
        assert_eq!(tokens.access_token.expose().len(), 100);
        assert!(
            tokens.refresh_token.is_none(),
            "none came back: keep the old one"
        );
    }

    // Through the BFF: the code exchange meets the huge answer; the sign-in is refused with
    // 503 and no session is stored.
    let rig = Rig::start().await;
    let huge = huge_answer_server(1024 * 1024, true).await;
    let client = TokenClient::builder(rig.cognito.client_id())
        .domain(rig.cognito.origin())
        .token_endpoint(format!("{huge}oauth2/token"))
        .idp_endpoint(rig.cognito.idp_url())
        .allow_http_on_loopback(true)
        .build()
        .unwrap();
    let store = Arc::new(MemoryRefreshStore::new(10));
    let id_verifier: Verifier<IdClaims> =
        Verifier::with_claims(config(&rig.cognito, TokenUse::Id)).unwrap();
    let bff = Bff::builder(client, store.clone(), keys(), id_verifier, REDIRECT)
        .insecure_cookies_on_loopback(true)
        .build()
        .unwrap();
    let (callback, _, _) = login_flow(&bff, |url| url).await;
    assert_eq!(callback.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(store.is_empty());
}

#[tokio::test]
async fn cognito_unreachable_is_unavailable_not_a_sign_out() {
    use tower_cognito::refresh::{Secret, TokenError};
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = TokenClient::builder("client")
        .idp_endpoint(format!("http://127.0.0.1:{port}/"))
        .allow_http_on_loopback(true)
        .build()
        .unwrap();
    let error = client.refresh(&Secret::new("rt"), None).await.unwrap_err();
    assert!(
        matches!(error, TokenError::Unavailable(_))
            && error.is_retryable()
            && !error.needs_sign_in()
    );
}
