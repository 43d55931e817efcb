//! The client crate against the local Cognito (rotation on, grace 0) and a real tower-cognito
//! API with the session window: one refresh for 100 concurrent callers, one refresh for two
//! OS processes sharing a token file, refresh-and-replay after `superseded`, giving up after
//! `revoked`, the marker both crates agree on, and the failure answers (Cognito unreachable,
//! refresh token expired, reuse recovered from the store, a corrupt token file).

use std::error::Error as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tower::{ServiceBuilder, ServiceExt as _};
use tower_cognito::session::{MemoryStore, SessionConfig};
use tower_cognito::{
    ClientIds, CognitoAuthLayer, CognitoConfig, TokenUse, UserPool, Verified, Verifier,
};
use tower_cognito_client::{
    AuthReason, AuthorizeError, BearerAuthLayer, ClientCredentialsSource, FileTokenStore, Secret,
    SourceErrorKind, StoreError, StoreErrorKind, StoreFuture, StoreLock, StoredTokens, TokenClient,
    TokenSource, TokenStore, AUTH_REASON_HEADER,
};
use tower_cognito_testing::{decode_claims, LocalCognito};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
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

fn config(cognito: &LocalCognito) -> CognitoConfig {
    CognitoConfig::new(
        UserPool::parse(cognito.pool_id()).unwrap(),
        TokenUse::Access,
        ClientIds::one(cognito.client_id()),
    )
    .issuer_override(cognito.issuer())
    .jwks_url(cognito.jwks_url())
    .allow_http_on_loopback(true)
}

/// A sign-in at the local Cognito: its `origin_jti` and refresh token; access tokens of it
/// are minted with chosen `iat` and `exp`.
struct SignIn {
    origin_jti: String,
    refresh_token: String,
}

impl SignIn {
    fn new(cognito: &LocalCognito) -> Self {
        let tokens = cognito.sign_in("alice");
        let origin_jti = decode_claims(&tokens.access_token)["origin_jti"]
            .as_str()
            .unwrap()
            .to_owned();
        Self {
            origin_jti,
            refresh_token: tokens.refresh_token.unwrap(),
        }
    }

    /// The session window's key of this sign-in (tower-cognito's default key).
    fn session_key(&self) -> String {
        format!("o:{}", self.origin_jti)
    }

    /// An access token of this sign-in issued at `iat`, expiring at `exp`.
    fn access(&self, cognito: &LocalCognito, iat: u64, exp: u64) -> String {
        cognito.mint_access(
            "alice",
            &json!({ "origin_jti": self.origin_jti, "iat": iat, "exp": exp }),
        )
    }

    /// Tokens whose access token is valid for 10 s only: within the 60 s margin.
    fn expiring(&self, cognito: &LocalCognito) -> StoredTokens {
        let now = now();
        StoredTokens::new(
            self.access(cognito, now - 3590, now + 10),
            Some(Secret::new(self.refresh_token.clone())),
        )
    }
}

#[tokio::test]
async fn hundred_concurrent_callers_make_one_refresh() {
    let cognito = LocalCognito::start().await;
    let sign_in = SignIn::new(&cognito);
    let expiring = sign_in.expiring(&cognito);
    let source = TokenSource::new(token_client(&cognito), expiring.clone());
    // A slow refresh, so that every caller arrives while it is at Cognito.
    cognito.set_refresh_delay(Duration::from_millis(200));

    let callers: Vec<_> = (0..100)
        .map(|_| {
            let source = source.clone();
            tokio::spawn(async move { source.access_token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for caller in callers {
        tokens.push(caller.await.unwrap().expect("every caller gets a token"));
    }

    let counts = cognito.counts();
    assert_eq!(counts.refreshes, 1, "{counts:?}");
    assert_eq!(counts.refresh_ok, 1, "{counts:?}");
    assert!(tokens.iter().all(|t| t == &tokens[0]), "one token for all");
    assert_ne!(&tokens[0], expiring.access_token());
    // The new token is valid for an hour: the next call needs no refresh.
    assert_eq!(source.access_token().await.unwrap(), tokens[0]);
    assert_eq!(cognito.counts().refreshes, 1);
}

const CHILD_STORE: &str = "TOWER_COGNITO_CLIENT_TEST_CHILD_STORE";

/// The child half of `two_processes_share_one_refresh`: load the tokens from the shared file,
/// say "ready", wait for "go", force a refresh, write the access token it ends with.
async fn child(store_path: &str) {
    let var = |name: &str| std::env::var(name).unwrap();
    let client = TokenClient::builder(var("CHILD_CLIENT_ID"))
        .domain(var("CHILD_ORIGIN"))
        .idp_endpoint(var("CHILD_IDP"))
        .allow_http_on_loopback(true)
        .build()
        .unwrap();
    let source = TokenSource::builder(client)
        .store(FileTokenStore::new(store_path))
        .build();
    let loaded = source.access_token().await.expect("tokens from the file");
    std::fs::write(var("CHILD_READY"), b"").unwrap();
    let go = var("CHILD_GO");
    let start = Instant::now();
    while !Path::new(&go).exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "no go");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let out = match source.force_refresh().await {
        Ok(token) => {
            assert_ne!(token, loaded);
            // And it stays: no second refresh.
            assert_eq!(source.access_token().await.unwrap(), token);
            token.expose().to_owned()
        }
        Err(error) => format!("ERROR {:?}: {error}", error.kind()),
    };
    std::fs::write(var("CHILD_OUT"), out).unwrap();
}

#[tokio::test]
async fn two_processes_share_one_refresh() {
    if let Ok(store) = std::env::var(CHILD_STORE) {
        return child(&store).await;
    }
    let cognito = LocalCognito::start().await;
    let sign_in = SignIn::new(&cognito);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let now = now();
    let tokens = StoredTokens::new(
        sign_in.access(&cognito, now, now + 3600),
        Some(Secret::new(sign_in.refresh_token.clone())),
    );
    FileTokenStore::new(&path).save(&tokens).await.unwrap();
    cognito.set_refresh_delay(Duration::from_millis(300));

    let exe = std::env::current_exe().unwrap();
    let go = dir.path().join("go");
    let mut children = Vec::new();
    for n in 0..2 {
        let ready = dir.path().join(format!("ready-{n}"));
        let out = dir.path().join(format!("out-{n}"));
        let child = tokio::process::Command::new(&exe)
            .args(["two_processes_share_one_refresh", "--exact", "--nocapture"])
            .env(CHILD_STORE, &path)
            .env("CHILD_CLIENT_ID", cognito.client_id())
            .env("CHILD_ORIGIN", cognito.origin())
            .env("CHILD_IDP", cognito.idp_url())
            .env("CHILD_READY", &ready)
            .env("CHILD_GO", &go)
            .env("CHILD_OUT", &out)
            .kill_on_drop(true)
            .output();
        children.push((tokio::spawn(child), ready, out));
    }
    let start = Instant::now();
    while !children.iter().all(|(_, ready, _)| ready.exists()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "children not ready"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(cognito.counts().refreshes, 0, "loading needs no refresh");
    std::fs::write(&go, b"").unwrap();

    let mut finals = Vec::new();
    for (child, _, out) in children {
        let output = child.await.unwrap().unwrap();
        assert!(
            output.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        finals.push(std::fs::read_to_string(out).unwrap());
    }
    let counts = cognito.counts();
    assert_eq!(
        counts.refreshes, 1,
        "one refresh for both processes: {counts:?}"
    );
    assert_eq!(counts.reused, 0, "{counts:?}");
    assert_eq!(finals[0], finals[1], "both hold the refreshed token");

    // Both tokens work at the API, and they are what the file holds.
    let verifier: Verifier = Verifier::new(config(&cognito)).unwrap();
    verifier.verify(&finals[0]).await.expect("a working token");
    let stored = FileTokenStore::new(&path).load().await.unwrap().unwrap();
    assert_eq!(stored.access_token().expose(), finals[0]);
    assert_ne!(
        stored.refresh_token().unwrap().expose(),
        sign_in.refresh_token,
        "the rotated refresh token was saved"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// A protected API on 127.0.0.1: `/me` and `POST /echo` behind the session window, `/admin`
/// requiring a scope nobody has.
struct Api {
    cognito: Arc<LocalCognito>,
    verifier: Verifier,
    url: String,
}

async fn me(claims: Verified) -> String {
    format!("hello {}", claims.username)
}

async fn echo(_claims: Verified, body: String) -> String {
    body
}

impl Api {
    async fn start() -> Api {
        let cognito = Arc::new(LocalCognito::start().await);
        let sessions = SessionConfig::new(Arc::new(MemoryStore::new(1000)));
        let verifier: Verifier = Verifier::new(config(&cognito).session_window(sessions)).unwrap();
        let admin: Verifier = Verifier::new(config(&cognito).require_scopes(["admin"])).unwrap();
        let router = Router::new()
            .route("/me", get(me))
            .route("/echo", post(echo))
            .route_layer(CognitoAuthLayer::new(verifier.clone()))
            .merge(
                Router::new()
                    .route("/admin", get(me))
                    .route_layer(CognitoAuthLayer::new(admin)),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Api {
            cognito,
            verifier,
            url,
        }
    }

    /// Another device of the same sign-in refreshed twice and used both tokens here, so the
    /// window holds two newer `iat`s than `stale`'s: returns the stale-chain tokens.
    async fn supersede(&self, sign_in: &SignIn) -> StoredTokens {
        let now = now();
        for iat in [now - 20, now - 10] {
            let newer = sign_in.access(&self.cognito, iat, now + 3600);
            assert_eq!(self.status(&newer, "/me").await, StatusCode::OK);
        }
        StoredTokens::new(
            sign_in.access(&self.cognito, now - 30, now + 3600),
            Some(Secret::new(sign_in.refresh_token.clone())),
        )
    }

    /// A plain request (no retry layer): the status.
    async fn status(&self, token: &str, path: &str) -> StatusCode {
        self.raw(token, path).await.0
    }

    /// A plain request: the status and the marker header.
    async fn raw(&self, token: &str, path: &str) -> (StatusCode, Option<String>) {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let marker = response
            .headers()
            .get(AUTH_REASON_HEADER)
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status(), marker)
    }
}

fn hyper_client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

#[tokio::test]
async fn server_and_client_agree_on_the_marker() {
    let api = Api::start().await;
    let cognito = &api.cognito;
    let sign_in = SignIn::new(cognito);
    let stale = api.supersede(&sign_in).await;
    let now = now();
    let expired = sign_in.access(cognito, now - 4000, now - 400);
    let forged = {
        let token = sign_in.access(cognito, now, now + 3600);
        format!("{}x", &token[..token.len() - 1])
    };
    let fine = sign_in.access(cognito, now, now + 3600);

    let cases = [
        (
            stale.access_token().expose(),
            "/me",
            401,
            Some(AuthReason::Superseded),
        ),
        (expired.as_str(), "/me", 401, Some(AuthReason::Expired)),
        (forged.as_str(), "/me", 401, None),
        (fine.as_str(), "/admin", 403, None),
    ];
    for (token, path, status, retried) in cases {
        let (got, marker) = api.raw(token, path).await;
        assert_eq!(got.as_u16(), status, "{path} {marker:?}");
        let mut headers = http::HeaderMap::new();
        if let Some(marker) = &marker {
            headers.insert(AUTH_REASON_HEADER, marker.parse().unwrap());
        }
        assert_eq!(
            AuthReason::retry_reason(got, &headers),
            retried,
            "{marker:?}"
        );
    }
    let (_, marker) = api.raw(&forged, "/me").await;
    assert_eq!(marker.as_deref(), Some("bad_signature"));
    let (_, marker) = api.raw(&fine, "/admin").await;
    assert_eq!(marker.as_deref(), Some("missing_scope"));
    let response = reqwest::get(format!("{}/me", api.url)).await.unwrap();
    let marker = AuthReason::from_headers(response.headers());
    assert_eq!(marker, Some(AuthReason::MissingToken));

    api.verifier
        .revoke_session(&sign_in.session_key())
        .await
        .unwrap();
    let (status, marker) = api.raw(&fine, "/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        marker.map(|m| AuthReason::parse(&m)),
        Some(AuthReason::Revoked)
    );
}

#[tokio::test]
async fn superseded_chain_refreshes_and_replays_once() {
    let api = Api::start().await;
    let sign_in = SignIn::new(&api.cognito);
    let stale = api.supersede(&sign_in).await;
    assert_eq!(
        api.raw(stale.access_token().expose(), "/me").await,
        (StatusCode::UNAUTHORIZED, Some("superseded".to_owned()))
    );
    api.cognito.reset_counts();

    let source = TokenSource::new(token_client(&api.cognito), stale.clone());
    let service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(source.clone()))
        .service(hyper_client());
    let request = Request::post(format!("{}/echo", api.url))
        .body(Full::new(Bytes::from_static(b"the body, sent twice")))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"the body, sent twice");
    assert_eq!(api.cognito.counts().refreshes, 1);
    assert_ne!(&source.access_token().await.unwrap(), stale.access_token());

    // The next request carries the new token at once: no refresh.
    let request = Request::get(format!("{}/me", api.url))
        .body(Full::default())
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(api.cognito.counts().refreshes, 1);

    // A 403 is never retried: returned as it is, no refresh.
    let request = Request::get(format!("{}/admin", api.url))
        .body(Full::default())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(api.cognito.counts().refreshes, 1);
}

#[tokio::test]
async fn a_body_that_cannot_be_replayed_gets_the_first_answer() {
    use http_body_util::combinators::BoxBody;
    let api = Api::start().await;
    let sign_in = SignIn::new(&api.cognito);
    let stale = api.supersede(&sign_in).await;
    api.cognito.reset_counts();
    let source = TokenSource::new(token_client(&api.cognito), stale.clone());
    let client: Client<_, BoxBody<Bytes, std::convert::Infallible>> =
        Client::builder(TokioExecutor::new()).build_http();
    let service = tower::Layer::layer(&BearerAuthLayer::new(source.clone()), client);
    let body = BoxBody::new(Full::new(Bytes::from_static(b"a stream")));
    let request = Request::post(format!("{}/echo", api.url))
        .body(body)
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[AUTH_REASON_HEADER], "superseded");
    // Not replayed, but the token was refreshed for the next request.
    assert_eq!(api.cognito.counts().refreshes, 1);
    assert_ne!(&source.access_token().await.unwrap(), stale.access_token());
}

#[tokio::test]
async fn revoked_session_gives_up_after_one_retry() {
    let api = Api::start().await;
    let sign_in = SignIn::new(&api.cognito);
    let now = now();
    let tokens = StoredTokens::new(
        sign_in.access(&api.cognito, now, now + 3600),
        Some(Secret::new(sign_in.refresh_token.clone())),
    );
    api.verifier
        .revoke_session(&sign_in.session_key())
        .await
        .unwrap();

    let source = TokenSource::new(token_client(&api.cognito), tokens);
    let service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(source))
        .service(hyper_client());
    let request = Request::get(format!("{}/me", api.url))
        .body(Full::default())
        .unwrap();
    let error = service.oneshot(request).await.unwrap_err();
    let error = error
        .downcast_ref::<AuthorizeError>()
        .expect("a typed error");
    assert!(
        matches!(error, AuthorizeError::Refused(AuthReason::Revoked)),
        "{error:?}"
    );
    assert!(error.needs_sign_in());
    assert_eq!(api.cognito.counts().refreshes, 1, "one retry only");
}

#[cfg(feature = "reqwest-middleware")]
#[tokio::test]
async fn reqwest_middleware_refreshes_and_replays_once() {
    let api = Api::start().await;
    let sign_in = SignIn::new(&api.cognito);
    let stale = api.supersede(&sign_in).await;
    api.cognito.reset_counts();
    let source = TokenSource::new(token_client(&api.cognito), stale);
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(tower_cognito_client::BearerMiddleware::new(source))
        .build();
    let response = client
        .post(format!("{}/echo", api.url))
        .body("sent twice")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "sent twice");
    assert_eq!(api.cognito.counts().refreshes, 1);

    // Revoked: one retry, then a typed error.
    api.verifier
        .revoke_session(&sign_in.session_key())
        .await
        .unwrap();
    let error = client
        .get(format!("{}/me", api.url))
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(error) = error else {
        panic!("not the middleware's error: {error:?}");
    };
    assert!(matches!(
        error.downcast_ref::<AuthorizeError>(),
        Some(AuthorizeError::Refused(AuthReason::Revoked))
    ));
    assert_eq!(api.cognito.counts().refreshes, 2);
}

#[tokio::test]
async fn cognito_unreachable_is_retryable_and_keeps_the_tokens() {
    let cognito = LocalCognito::start().await;
    let sign_in = SignIn::new(&cognito);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = FileTokenStore::new(&path);
    let expiring = sign_in.expiring(&cognito);
    store.save(&expiring).await.unwrap();
    let source = TokenSource::builder(token_client(&cognito))
        .store(store.clone())
        .build();
    let before = std::fs::read(&path).unwrap();

    for outage in ["503", "stopped"] {
        if outage == "503" {
            cognito.set_unavailable(Some(503));
        } else {
            cognito.stop().await;
        }
        let error = source.access_token().await.unwrap_err();
        assert_eq!(
            error.kind(),
            SourceErrorKind::Unavailable,
            "{outage}: {error}"
        );
        assert!(error.is_retryable() && !error.needs_sign_in());
        assert_eq!(std::fs::read(&path).unwrap(), before, "{outage}: file kept");
        if outage == "503" {
            cognito.set_unavailable(None);
        } else {
            cognito.start_again().await;
        }
    }
    // Nothing shows a token: not the source, not the error.
    let error = {
        cognito.set_unavailable(Some(500));
        let error = source.access_token().await.unwrap_err();
        cognito.set_unavailable(None);
        error
    };
    let shown = format!("{source:?} {error:?} {error} {expiring:?}");
    for secret in [expiring.access_token().expose(), &sign_in.refresh_token] {
        assert!(!shown.contains(secret), "{shown}");
    }

    // The kept refresh token still works once Cognito is back.
    let token = source.access_token().await.unwrap();
    assert_ne!(&token, expiring.access_token());
    assert_eq!(cognito.counts().refresh_ok, 1);
    let stored = store.load().await.unwrap().unwrap();
    assert_eq!(stored.access_token(), &token);
}

#[tokio::test]
async fn an_expired_refresh_token_requires_a_sign_in() {
    let cognito = LocalCognito::start().await;
    let sign_in = SignIn::new(&cognito);
    let source = TokenSource::new(token_client(&cognito), sign_in.expiring(&cognito));
    cognito.expire_refresh_tokens();
    let error = source.access_token().await.unwrap_err();
    assert_eq!(error.kind(), SourceErrorKind::SignInRequired, "{error}");
    assert!(error.needs_sign_in() && !error.is_retryable());
    assert_eq!(cognito.counts().invalid, 1);
}

/// A file store that says when it was read.
#[derive(Debug)]
struct Signalling {
    inner: FileTokenStore,
    loaded: Arc<tokio::sync::Notify>,
}

impl TokenStore for Signalling {
    fn load(&self) -> StoreFuture<'_, Option<StoredTokens>> {
        Box::pin(async move {
            let tokens = self.inner.load().await;
            self.loaded.notify_one();
            tokens
        })
    }

    fn save<'a>(&'a self, tokens: &'a StoredTokens) -> StoreFuture<'a, ()> {
        self.inner.save(tokens)
    }

    fn clear(&self) -> StoreFuture<'_, ()> {
        self.inner.clear()
    }

    fn lock(&self) -> StoreFuture<'_, StoreLock> {
        self.inner.lock()
    }
}

#[tokio::test]
async fn a_reused_refresh_token_is_recovered_from_the_store_once() {
    let cognito = LocalCognito::start().await;
    let sign_in = SignIn::new(&cognito);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = FileTokenStore::new(&path);
    let expiring = sign_in.expiring(&cognito);
    store.save(&expiring).await.unwrap();
    let loaded = Arc::new(tokio::sync::Notify::new());
    let source = TokenSource::builder(token_client(&cognito))
        .store(Signalling {
            inner: store.clone(),
            loaded: Arc::clone(&loaded),
        })
        .build();

    // Once our refresh has read the store (under the lock) and while it waits at Cognito, a
    // program that ignores the lock spends the same refresh token and writes its successor
    // (with a stale access token) to the file.
    cognito.set_refresh_delay(Duration::from_millis(300));
    let refreshing = tokio::spawn({
        let source = source.clone();
        async move { source.access_token().await }
    });
    loaded.notified().await;
    let theirs = cognito
        .spend_refresh_token(&sign_in.refresh_token)
        .expect("the other program's refresh");
    let now = now();
    let newer = StoredTokens::new(
        sign_in.access(&cognito, now - 3590, now + 10),
        theirs.refresh_token.clone().map(Secret::new),
    );
    store.save(&newer).await.unwrap();
    cognito.set_refresh_delay(Duration::ZERO);

    let token = refreshing
        .await
        .unwrap()
        .expect("recovered with the newer token");
    let counts = cognito.counts();
    assert_eq!(counts.reused, 1, "{counts:?}");
    assert_eq!(counts.refresh_ok, 2, "theirs and our retry: {counts:?}");
    assert_eq!(store.load().await.unwrap().unwrap().access_token(), &token);

    // Without a store there is nothing newer to find: sign in again.
    let alone = SignIn::new(&cognito);
    let source = TokenSource::new(token_client(&cognito), alone.expiring(&cognito));
    cognito.spend_refresh_token(&alone.refresh_token).unwrap();
    let error = source.access_token().await.unwrap_err();
    assert_eq!(error.kind(), SourceErrorKind::SignInRequired, "{error}");
}

#[tokio::test]
async fn a_corrupt_token_file_is_a_clear_error_and_left_alone() {
    let cognito = LocalCognito::start().await;
    let sign_in = SignIn::new(&cognito);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let good = sign_in.expiring(&cognito).to_json();
    let truncated = &good[..good.len() / 2];
    for (name, content) in [
        ("truncated", truncated),
        ("empty", &b""[..]),
        ("garbage", &b"\x00\xffnot json"[..]),
    ] {
        std::fs::write(&path, content).unwrap();
        // With no tokens in memory, and with expiring ones that need the store to refresh.
        for memory in [None, Some(sign_in.expiring(&cognito))] {
            let mut builder =
                TokenSource::builder(token_client(&cognito)).store(FileTokenStore::new(&path));
            if let Some(tokens) = memory {
                builder = builder.tokens(tokens);
            }
            let error = builder.build().access_token().await.unwrap_err();
            assert_eq!(error.kind(), SourceErrorKind::Store, "{name}: {error}");
            let store_error = error
                .source()
                .and_then(|e| e.downcast_ref::<StoreError>())
                .expect("the store error behind source()");
            assert_eq!(store_error.kind(), StoreErrorKind::Corrupt, "{name}");
            let shown = format!("{error} {store_error} {error:?}");
            assert!(!shown.contains(&sign_in.refresh_token), "{name}: {shown}");
            assert_eq!(std::fs::read(&path).unwrap(), content, "{name}: untouched");
        }
    }
    assert_eq!(cognito.counts().refreshes, 0, "nothing spent");

    // A new sign-in replaces the corrupt file on purpose.
    let source = TokenSource::builder(token_client(&cognito))
        .store(FileTokenStore::new(&path))
        .build();
    let now = now();
    let fresh = StoredTokens::new(
        sign_in.access(&cognito, now, now + 3600),
        Some(Secret::new(sign_in.refresh_token.clone())),
    );
    source.set_tokens(fresh.clone()).await.unwrap();
    assert_eq!(
        FileTokenStore::new(&path).load().await.unwrap(),
        Some(fresh)
    );
}

#[tokio::test]
async fn client_credentials_are_cached_and_fetched_once() {
    let cognito = LocalCognito::start().await;
    cognito.add_m2m_client("m2m-worker", "m2m-secret", &["orders/read", "orders/write"]);
    let client = TokenClient::builder("m2m-worker")
        .client_secret("m2m-secret")
        .domain(cognito.origin())
        .idp_endpoint(cognito.idp_url())
        .allow_http_on_loopback(true)
        .build()
        .unwrap();
    let source = ClientCredentialsSource::new(client.clone(), &["orders/read"]);
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let source = source.clone();
            tokio::spawn(async move { source.access_token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for caller in callers {
        tokens.push(caller.await.unwrap().unwrap());
    }
    assert!(tokens.iter().all(|t| t == &tokens[0]));
    assert_eq!(cognito.counts().client_credentials, 1);
    let claims: Value = decode_claims(tokens[0].expose());
    assert_eq!(claims["scope"], "orders/read");
    assert_eq!(source.access_token().await.unwrap(), tokens[0]);
    assert_eq!(cognito.counts().client_credentials, 1, "cached");
    let newer = source.force_refresh().await.unwrap();
    assert_eq!(cognito.counts().client_credentials, 2);
    assert_eq!(source.refresh_rejected(&tokens[0]).await.unwrap(), newer);
    assert_eq!(cognito.counts().client_credentials, 2, "already replaced");

    let wrong = ClientCredentialsSource::new(client, &["admin"]);
    let error = wrong.access_token().await.unwrap_err();
    assert_eq!(error.kind(), SourceErrorKind::Rejected, "{error}");
    assert!(!format!("{error:?}").contains("m2m-secret"));
}

#[tokio::test]
async fn a_lock_held_too_long_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let holder = FileTokenStore::new(&path);
    let held = holder.lock().await.unwrap();
    let waiter = FileTokenStore::new(&path).lock_timeout(Duration::from_millis(50));
    let error = waiter.lock().await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::LockTimeout, "{error}");
    drop(held);
    waiter.lock().await.expect("free again");
}

#[tokio::test]
async fn without_rotation_the_old_refresh_token_is_kept() {
    let cognito =
        LocalCognito::start_with(tower_cognito_testing::Options::new().rotation(false)).await;
    let sign_in = SignIn::new(&cognito);
    let dir = tempfile::tempdir().unwrap();
    let store = FileTokenStore::new(dir.path().join("tokens.json"));
    let source = TokenSource::builder(token_client(&cognito))
        .store(store.clone())
        .tokens(sign_in.expiring(&cognito))
        .build();
    let first = source.access_token().await.unwrap();
    let second = source.force_refresh().await.unwrap();
    assert_ne!(first, second);
    let counts = cognito.counts();
    assert_eq!((counts.refreshes, counts.refresh_ok), (2, 2), "{counts:?}");
    let stored = store.load().await.unwrap().unwrap();
    assert_eq!(stored.access_token(), &second);
    assert_eq!(
        stored.refresh_token().map(Secret::expose),
        Some(sign_in.refresh_token.as_str()),
        "no refresh token came back: the old one is kept"
    );
}

#[tokio::test]
async fn sign_out_forgets_removes_and_revokes() {
    let cognito = LocalCognito::start().await;
    let sign_in = SignIn::new(&cognito);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = FileTokenStore::new(&path);
    store.save(&sign_in.expiring(&cognito)).await.unwrap();
    let source = TokenSource::builder(token_client(&cognito))
        .store(store)
        .build();
    source.access_token().await.unwrap();
    let refreshed = FileTokenStore::new(&path).load().await.unwrap().unwrap();
    let refresh_token = refreshed.refresh_token().unwrap().expose().to_owned();

    source.sign_out().await.unwrap();
    assert!(!path.exists(), "the file is removed");
    assert_eq!(cognito.counts().revocations, 1);
    assert!(
        cognito.spend_refresh_token(&refresh_token).is_none(),
        "Cognito refuses the revoked refresh token"
    );
    let error = source.access_token().await.unwrap_err();
    assert_eq!(error.kind(), SourceErrorKind::SignInRequired, "{error}");
}
