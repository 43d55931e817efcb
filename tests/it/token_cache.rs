//! The verified-token cache: hits re-check `exp` and the key, stay bounded, and never bypass the
//! session window or a custom check. Time comes from an injected [`Clock`]; that a key removed
//! from the JWKS invalidates the cached tokens it signed needs the key cache's max age, so it is
//! tested on tokio's paused clock in `src/jwks/tests.rs`
//! (`a_key_removed_from_the_jwks_invalidates_the_tokens_it_signed`).

use crate::support;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{access_claims, key, local_config, mint, now, JwksServer};
use tower_cognito::session::{MemoryStore, SessionConfig};
use tower_cognito::{AuthError, Clock, CognitoConfig, Forbidden, InvalidToken, TokenUse, Verifier};

const POOL: &str = "eu-west-1_CacheTest";
const CLIENT: &str = "cacheclient";

#[derive(Debug, Clone)]
struct TestClock(Arc<AtomicI64>);

impl Clock for TestClock {
    fn now_unix(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn config(server: &JwksServer) -> CognitoConfig {
    local_config(server, TokenUse::Access, CLIENT).leeway(Duration::ZERO)
}

#[tokio::test]
async fn a_cached_token_is_refused_once_it_expires() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let mut claims = access_claims(&server.issuer(), CLIENT);
    // The test clock starts at the token's `iat`: read from the clock before the claims were
    // made, a second that ticked in between made the token "issued in the future" (a flake).
    let issued = claims["iat"].as_i64().unwrap();
    claims["exp"] = (issued + 60).into();
    let clock = TestClock(Arc::new(AtomicI64::new(issued)));
    let verifier: Verifier = Verifier::new(config(&server).clock(clock.clone())).unwrap();
    let token = mint(key(0), &claims);

    verifier.verify(&token).await.unwrap();
    verifier.verify(&token).await.unwrap();
    assert_eq!(verifier.cached_tokens(), 1);

    clock.0.store(issued + 60, Ordering::SeqCst);
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::Expired)
    );
}

#[tokio::test]
async fn the_cache_never_grows_past_its_bound() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let verifier: Verifier = Verifier::new(config(&server).token_cache_size(20)).unwrap();
    for _ in 0..200 {
        let token = mint(key(0), &access_claims(&server.issuer(), CLIENT));
        verifier.verify(&token).await.unwrap();
    }
    let cached = verifier.cached_tokens();
    assert!(
        cached <= 20,
        "{cached} tokens cached with a bound of 20 after 200 inserts"
    );
    assert!(cached > 0);
}

#[tokio::test]
async fn a_size_of_zero_disables_the_cache() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let verifier: Verifier = Verifier::new(config(&server).token_cache_size(0)).unwrap();
    let token = mint(key(0), &access_claims(&server.issuer(), CLIENT));
    verifier.verify(&token).await.unwrap();
    verifier.verify(&token).await.unwrap();
    assert_eq!(verifier.cached_tokens(), 0);
}

#[tokio::test]
async fn a_check_added_later_is_not_bypassed_by_the_cache() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let open: Verifier = Verifier::new(config(&server)).unwrap();
    let token = mint(key(0), &access_claims(&server.issuer(), CLIENT));
    open.verify(&token).await.unwrap();

    let strict = open.clone().with_check(|_| false);
    assert_eq!(
        strict.verify(&token).await.unwrap_err(),
        AuthError::InsufficientScope {
            reason: Forbidden::CheckFailed,
            scope: None
        }
    );
    open.verify(&token).await.unwrap();
}

#[tokio::test]
async fn the_session_window_and_revocation_run_on_cache_hits() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let sessions = SessionConfig::new(Arc::new(MemoryStore::new(1000)));
    let verifier: Verifier = Verifier::new(config(&server).session_window(sessions)).unwrap();
    let mut claims = access_claims(&server.issuer(), CLIENT);
    let t = now() - 100;
    let mint_at = |claims: &mut serde_json::Value, iat: i64| {
        claims["iat"] = iat.into();
        claims["jti"] = support::uuid().into();
        mint(key(0), claims)
    };
    let oldest = mint_at(&mut claims, t);
    let previous = mint_at(&mut claims, t + 1);
    let current = mint_at(&mut claims, t + 2);

    // The oldest token is accepted (and cached) while the window is not full...
    let session = verifier.verify(&oldest).await.unwrap();
    verifier.verify(&previous).await.unwrap();
    verifier.verify(&current).await.unwrap();
    // ...and refused from the cache once two newer refreshes were seen.
    assert_eq!(
        verifier.verify(&oldest).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::Superseded)
    );
    verifier.verify(&current).await.unwrap();

    verifier
        .revoke_session(session.session_key().unwrap())
        .await
        .unwrap();
    assert_eq!(
        verifier.verify(&current).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::Revoked)
    );
}

#[tokio::test]
async fn route_verifiers_share_the_keys_and_keep_earlier_checks() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let base: Verifier = Verifier::new(config(&server))
        .unwrap()
        .with_check(|c: &tower_cognito::AccessClaims| c.username != "mallory");
    let admin = base.clone().require_any_group(["admins"]).unwrap();
    let orders = base.clone().require_scopes(["orders/read"]).unwrap();

    let mut claims = access_claims(&server.issuer(), CLIENT);
    claims["cognito:groups"] = serde_json::json!(["admins"]);
    claims["scope"] = "openid orders/read".into();
    let alice = mint(key(0), &claims);
    claims["username"] = "mallory".into();
    let mallory = mint(key(0), &claims);

    base.verify(&alice).await.unwrap();
    admin.verify(&alice).await.unwrap();
    orders.verify(&alice).await.unwrap();
    // The base check still runs on the derived verifiers.
    for verifier in [&base, &admin, &orders] {
        assert!(matches!(
            verifier.verify(&mallory).await,
            Err(AuthError::InsufficientScope {
                reason: Forbidden::CheckFailed,
                ..
            })
        ));
    }
    let plain = mint(key(0), &access_claims(&server.issuer(), CLIENT));
    assert!(matches!(
        admin.verify(&plain).await,
        Err(AuthError::InsufficientScope {
            reason: Forbidden::MissingGroup,
            ..
        })
    ));
    assert_eq!(
        orders.verify(&plain).await.unwrap_err(),
        AuthError::InsufficientScope {
            reason: Forbidden::MissingScope,
            scope: Some("orders/read".into())
        }
    );
    // Three verifiers, one key cache: one fetch.
    assert_eq!(server.fetch_count(), 1);
    assert!(base.clone().require_scopes(["a b"]).is_err());
}

#[tokio::test]
async fn claims_without_a_field_are_read_on_demand_fresh_and_cached() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let verifier: Verifier = Verifier::new(config(&server)).unwrap();
    let mut claims = access_claims(&server.issuer(), CLIENT);
    claims["tenant"] = "acme".into();
    let token = mint(key(0), &claims);
    for _ in 0..2 {
        let verified = verifier.verify(&token).await.unwrap();
        assert_eq!(verified.claim::<String>("tenant").as_deref(), Some("acme"));
        assert_eq!(verified.claim::<i64>("version"), Some(2));
        assert_eq!(verified.claim::<i64>("tenant"), None, "not an i64");
        assert_eq!(verified.claim::<String>("absent"), None);
        assert_eq!(verified.claims_json()["client_id"], CLIENT);
        assert_eq!(verified.token(), token);
    }
    assert_eq!(verifier.cached_tokens(), 1);
}

#[tokio::test]
async fn the_memory_store_never_grows_past_its_bound() {
    use tower_cognito::session::{SessionStore, WindowLimits};
    let store = MemoryStore::new(100);
    let limits = WindowLimits::default();
    for i in 0..1000 {
        store
            .check_and_advance(&format!("session-{i}"), 1, now(), limits)
            .await
            .unwrap();
    }
    let held = store.len();
    assert!(
        held <= 100,
        "{held} sessions held with a bound of 100 after 1000"
    );
    assert!(held > 0);
}

/// Through the layer, a repeat token is answered without awaiting (no session window): the
/// claims still reach the handler, and an expired or de-keyed token still gets its answer.
#[tokio::test]
async fn the_layer_answers_cached_tokens_on_its_synchronous_path() {
    use http::{Response, StatusCode};
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let mut claims = access_claims(&server.issuer(), CLIENT);
    let issued = claims["iat"].as_i64().unwrap();
    claims["exp"] = (issued + 60).into();
    let clock = TestClock(Arc::new(AtomicI64::new(issued)));
    let verifier: Verifier = Verifier::new(config(&server).clock(clock.clone())).unwrap();
    let api = support::ApiServer::new(
        verifier.clone(),
        |request: http::Request<String>| async move {
            let claims = request
                .extensions()
                .get::<tower_cognito::Verified>()
                .cloned();
            Ok(Response::new(
                claims.map(|c| c.username.clone()).unwrap_or_default(),
            ))
        },
    );
    let token = mint(key(0), &claims);
    for _ in 0..3 {
        let response = api.get("/", &token).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body(), claims["username"].as_str().unwrap());
    }
    assert_eq!(verifier.cached_tokens(), 1);
    clock.0.store(issued + 60, Ordering::SeqCst);
    let response = api.get("/", &token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        support::challenge(&response).as_deref(),
        Some(
            r#"Bearer realm="cognito", error="invalid_token", error_description="The token has expired""#
        )
    );
}
