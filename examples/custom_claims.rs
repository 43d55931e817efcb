//! A claims type of your own, and a check on it: `cargo run --example custom_claims`.
//!
//! Any `serde::Deserialize` type can be the claims handed to handlers; the verifier still checks
//! the registered claims (issuer, token use, client, time) itself. Here id tokens carry a
//! `custom:tenant` attribute, and a check admits one tenant only (403 for the others).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tower_cognito::{ClientIds, CognitoConfig, TokenUse, UserPool, Verifier};

#[derive(Debug, Deserialize)]
struct TenantClaims {
    sub: String,
    email: Option<String>,
    #[serde(rename = "custom:tenant")]
    tenant: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = CognitoConfig::new(
        UserPool::parse("eu-west-1_AbCdEf123")?,
        TokenUse::Id,
        ClientIds::one("client1"),
    )
    .jwks_document(include_str!("../tests/fixtures/doc-test-jwks.json"))
    .fetch_keys(false);
    let verifier =
        Verifier::<TenantClaims>::with_claims(config)?.with_check(|claims| claims.tenant == "acme");

    for tenant in ["acme", "globex"] {
        match verifier.verify(&id_token(tenant)?).await {
            Ok(claims) => println!(
                "{tenant:<7} accepted: sub {}, email {:?}, tenant {}",
                claims.sub, claims.email, claims.tenant
            ),
            Err(error) => println!("{tenant:<7} refused: {} {error}", error.status()),
        }
    }
    Ok(())
}

/// A stand-in for Cognito: an id token of a user of `tenant`.
fn id_token(tenant: &str) -> Result<String, Box<dyn std::error::Error>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = serde_json::json!({
        "sub": "7d8ca528", "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123",
        "aud": "client1", "token_use": "id", "email": "alice@example.com",
        "custom:tenant": tenant, "iat": now, "exp": now + 3600,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("doc-key".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!(
        "../tests/fixtures/doc-test-key.pem"
    ))?;
    Ok(jsonwebtoken::encode(&header, &claims, &key)?)
}
