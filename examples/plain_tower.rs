//! The layer on a plain tower service, no framework: `cargo run --example plain_tower`.
//!
//! One accepted and two refused requests through a `ServiceBuilder`. The keys come from a JWKS
//! document and the token is signed here, so nothing touches the network; in production, leave
//! out `jwks_document` and `fetch_keys` and the keys are fetched from the pool.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{header, Request, Response, StatusCode};
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_cognito::{
    ClientIds, CognitoAuthLayer, CognitoConfig, TokenUse, UserPool, Verified, Verifier,
};

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

    let service = ServiceBuilder::new()
        .layer(CognitoAuthLayer::new(verifier))
        .service(service_fn(|request: Request<String>| async move {
            let claims = request
                .extensions()
                .get::<Verified>()
                .expect("set by the layer");
            Ok::<_, Infallible>(Response::new(format!("hello {}", claims.username)))
        }));

    for (what, authorization) in [
        ("a genuine token", Some(format!("Bearer {}", token()?))),
        ("no token", None),
        ("a token of garbage", Some("Bearer not.a.token".to_owned())),
    ] {
        let mut request = Request::get("/");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = service
            .clone()
            .oneshot(request.body(String::new())?)
            .await?;
        let challenge = response.headers().get(header::WWW_AUTHENTICATE).cloned();
        println!("{what:>18}: {}", response.status());
        match response.status() {
            StatusCode::OK => println!("{:>18}  {}", "", response.into_body()),
            _ => println!(
                "{:>18}  WWW-Authenticate: {}",
                "",
                challenge.expect("a challenge").to_str()?
            ),
        }
    }
    Ok(())
}

/// A stand-in for Cognito: an access token signed with the key of the JWKS document.
fn token() -> Result<String, Box<dyn std::error::Error>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = serde_json::json!({
        "sub": "7d8ca528", "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123",
        "client_id": "client1", "token_use": "access", "username": "alice",
        "iat": now, "exp": now + 3600,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("doc-key".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!(
        "../tests/fixtures/doc-test-key.pem"
    ))?;
    Ok(jsonwebtoken::encode(&header, &claims, &key)?)
}
