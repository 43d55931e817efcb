//! The session window: `cargo run --example session_window`.
//!
//! Two tabs refresh at once and both get valid tokens; the window keeps the newest and the
//! previous `iat` of the sign-in, so both go on working, until a newer refresh supersedes the
//! older chain. Signing out revokes the whole session. One `MemoryStore` here; `RedisStore` or
//! `PostgresStore` share the window between servers.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tower_cognito::session::{MemoryStore, SessionConfig};
use tower_cognito::{ClientIds, CognitoConfig, TokenUse, UserPool, Verifier};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sessions = SessionConfig::new(Arc::new(MemoryStore::new(100_000)));
    let config = CognitoConfig::new(
        UserPool::parse("eu-west-1_AbCdEf123")?,
        TokenUse::Access,
        ClientIds::one("client1"),
    )
    .jwks_document(include_str!("../tests/fixtures/doc-test-jwks.json"))
    .fetch_keys(false)
    .session_window(sessions);
    let verifier = Verifier::new(config)?;

    // One sign-in (`origin_jti` "sign-in-1"), refreshed: every refresh mints a newer `iat`.
    let t = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() - 100;
    let signed_in = token(t)?;
    let tab_a = token(t + 1)?;
    let tab_b = token(t + 2)?;
    let tab_b_later = token(t + 3)?;
    for (what, token) in [
        ("sign-in (iat T)", &signed_in),
        ("tab A refreshed (T+1)", &tab_a),
        ("tab B refreshed (T+2)", &tab_b),
        ("tab A again", &tab_a),
        ("tab B refreshed again (T+3)", &tab_b_later),
        ("tab A, now superseded", &tab_a),
    ] {
        match verifier.verify(token).await {
            Ok(_) => println!("{what:<28} accepted"),
            Err(error) => println!("{what:<28} refused: {error}"),
        }
    }

    let key = verifier
        .verify(&tab_b_later)
        .await?
        .session_key()
        .unwrap_or_default()
        .to_owned();
    verifier.revoke_session(&key).await?;
    let answer = verifier
        .verify(&tab_b_later)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    println!("{:<28} {answer:?}", "after sign-out");
    Ok(())
}

/// A stand-in for Cognito: an access token of the sign-in, issued at `iat`.
fn token(iat: u64) -> Result<String, Box<dyn std::error::Error>> {
    let claims = serde_json::json!({
        "sub": "7d8ca528", "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123",
        "client_id": "client1", "token_use": "access", "username": "alice",
        "origin_jti": "sign-in-1", "iat": iat, "exp": iat + 3600,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("doc-key".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!(
        "../tests/fixtures/doc-test-key.pem"
    ))?;
    Ok(jsonwebtoken::encode(&header, &claims, &key)?)
}
