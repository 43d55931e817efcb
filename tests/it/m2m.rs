//! Machine-to-machine tokens (`client_credentials`) with the session window on: a fleet of five
//! workers of one app client, each with tokens of its own, is never refused as superseded by
//! default, while user sign-ins keep their window.

use std::sync::Arc;

use serde_json::{json, Value};
use tower_cognito::session::{MemoryStore, SessionConfig};
use tower_cognito::{AuthError, InvalidToken, TokenUse, Verifier};

use crate::support::{self, JwksServer};

const POOL: &str = "us-east-1_M2mPool1";
const CLIENT: &str = "m2mclient0000000000000001";

/// A `client_credentials` access token as Cognito mints it: `sub` is the client id, no
/// `origin_jti`, no `username`, resource-server scopes.
fn m2m_claims(issuer: &str, iat: i64) -> Value {
    json!({
        "sub": CLIENT,
        "client_id": CLIENT,
        "iss": issuer,
        "token_use": "access",
        "scope": "orders/read orders/write",
        "auth_time": iat,
        "iat": iat,
        "exp": iat + 3600,
        "jti": support::uuid(),
        "version": 2,
    })
}

fn verifier(server: &JwksServer, sessions: SessionConfig) -> Verifier {
    Verifier::new(support::local_config(server, TokenUse::Access, CLIENT).session_window(sessions))
        .unwrap()
}

#[tokio::test]
async fn a_fleet_of_five_workers_keeps_working_with_the_window_on() {
    let server = JwksServer::start_with_keys(POOL, &[support::key(0)]).await;
    let store = Arc::new(MemoryStore::new(100));
    let verifier = verifier(&server, SessionConfig::new(store.clone()));
    let now = support::now();
    // Five workers fetched their tokens 40, 30, 20, 10 and 0 s ago; newest first, then all
    // again in any order: every one is accepted, every time.
    let tokens: Vec<String> = (0..5)
        .map(|i| {
            support::mint(
                support::key(0),
                &m2m_claims(&server.issuer(), now - 40 + 10 * i),
            )
        })
        .collect();
    for round in 0..3 {
        for token in tokens.iter().rev().chain(tokens.iter()) {
            let verified = verifier
                .verify(token)
                .await
                .unwrap_or_else(|e| panic!("round {round}: a worker's valid token refused: {e:?}"));
            assert_eq!(verified.session_key(), None, "no session for an M2M token");
        }
    }
    assert!(store.is_empty(), "M2M tokens never reach the store");

    // A user's sign-in through the same verifier still has its window.
    let mut user = support::access_claims(&server.issuer(), CLIENT);
    let origin = user["origin_jti"].clone();
    let mint_at = |claims: &mut Value, iat: i64| {
        claims["iat"] = json!(iat);
        claims["origin_jti"] = origin.clone();
        support::mint(support::key(0), claims)
    };
    let old = mint_at(&mut user, now - 30);
    let mid = mint_at(&mut user, now - 20);
    let new = mint_at(&mut user, now - 10);
    for token in [&old, &mid, &new] {
        verifier.verify(token).await.unwrap();
    }
    assert_eq!(
        verifier.verify(&old).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::Superseded)
    );
}

#[tokio::test]
async fn windowing_machine_tokens_on_purpose_shows_why_it_is_off() {
    let server = JwksServer::start_with_keys(POOL, &[support::key(0)]).await;
    let sessions = SessionConfig::new(Arc::new(MemoryStore::new(100))).window_machine_tokens(true);
    let verifier = verifier(&server, sessions);
    let now = support::now();
    let tokens: Vec<String> = (0..3)
        .map(|i| {
            support::mint(
                support::key(0),
                &m2m_claims(&server.issuer(), now - 30 + 10 * i),
            )
        })
        .collect();
    for token in &tokens {
        let verified = verifier.verify(token).await.unwrap();
        assert_eq!(
            verified.session_key(),
            Some(format!("s:{CLIENT}:{CLIENT}").as_str())
        );
    }
    // The first worker's token, still valid, now falls outside the one shared window.
    assert_eq!(
        verifier.verify(&tokens[0]).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::Superseded)
    );
}

#[tokio::test]
async fn a_token_without_origin_jti_whose_sub_is_not_its_client_keeps_a_window() {
    let server = JwksServer::start_with_keys(POOL, &[support::key(0)]).await;
    let verifier = verifier(&server, SessionConfig::new(Arc::new(MemoryStore::new(100))));
    let mut claims = support::access_claims(&server.issuer(), CLIENT);
    claims.as_object_mut().unwrap().remove("origin_jti");
    let token = support::mint(support::key(0), &claims);
    let verified = verifier.verify(&token).await.unwrap();
    let expected = format!("s:{}:{CLIENT}", claims["sub"].as_str().unwrap());
    assert_eq!(verified.session_key(), Some(expected.as_str()));
}
