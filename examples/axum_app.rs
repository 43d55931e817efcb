//! The layer in an axum router: `cargo run --example axum_app`.
//!
//! `Verified` in a handler is the verified claims; `route_layer` keeps unknown paths 404; an
//! optional layer lets anonymous users through as `None`. The requests go through the router
//! with `oneshot` here; `axum::serve(listener, app)` serves the same router over HTTP.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, Request};
use axum::routing::get;
use axum::Router;
use tower::ServiceExt;
use tower_cognito::{
    ClientIds, CognitoAuthLayer, CognitoConfig, TokenUse, UserPool, Verified, Verifier,
};

async fn me(claims: Verified) -> String {
    format!("hello {}, scopes {:?}", claims.username, claims.scope)
}

async fn welcome(claims: Option<Verified>) -> String {
    match claims {
        Some(claims) => format!("welcome back, {}", claims.username),
        None => "welcome, stranger".to_owned(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = CognitoConfig::new(
        UserPool::parse("eu-west-1_AbCdEf123")?,
        TokenUse::Access,
        ClientIds::one("client1"),
    )
    .jwks_document(include_str!("../tests/fixtures/doc-test-jwks.json"))
    .fetch_keys(false);
    let verifier = Verifier::new(config)?;

    let app = Router::new()
        .route("/me", get(me))
        .route_layer(CognitoAuthLayer::new(verifier.clone()))
        .merge(
            Router::new()
                .route("/", get(welcome))
                .route_layer(CognitoAuthLayer::new(verifier).optional()),
        );

    let token = token()?;
    for (path, token) in [
        ("/me", Some(&token)),
        ("/me", None),
        ("/", Some(&token)),
        ("/", None),
        ("/nowhere", None),
    ] {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = app.clone().oneshot(request.body(Body::empty())?).await?;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1024).await?;
        let with = if token.is_some() {
            "with a token"
        } else {
            "no token"
        };
        println!(
            "GET {path:<9} {with:<13} {status}  {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// A stand-in for Cognito: an access token signed with the key of the JWKS document.
fn token() -> Result<String, Box<dyn std::error::Error>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = serde_json::json!({
        "sub": "7d8ca528", "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123",
        "client_id": "client1", "token_use": "access", "username": "alice",
        "scope": "orders/read", "iat": now, "exp": now + 3600,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("doc-key".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!(
        "../tests/fixtures/doc-test-key.pem"
    ))?;
    Ok(jsonwebtoken::encode(&header, &claims, &key)?)
}
