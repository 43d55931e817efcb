//! The optional maximum token lifetime (`exp - iat`): refused with its own description when
//! longer, accepted up to the limit, and off by default.

use std::time::Duration;

use serde_json::json;
use tower_cognito::{AuthError, ConfigError, InvalidToken, TokenUse, Verifier};

use crate::support::{self, JwksServer};

const POOL: &str = "us-east-1_LifePool1";
const CLIENT: &str = "client-life";

fn token(server: &JwksServer, lifetime: i64) -> String {
    let mut claims = support::access_claims(&server.issuer(), CLIENT);
    let iat = support::now() - 10;
    claims["iat"] = json!(iat);
    claims["exp"] = json!(iat + lifetime);
    support::mint(support::key(0), &claims)
}

#[tokio::test]
async fn a_token_living_longer_than_the_maximum_is_refused() {
    let server = JwksServer::start_with_keys(POOL, &[support::key(0)]).await;
    let config = support::local_config(&server, TokenUse::Access, CLIENT)
        .max_lifetime(Duration::from_secs(900));
    let verifier = Verifier::new(config).unwrap();
    for ok in [300, 899, 900] {
        verifier.verify(&token(&server, ok)).await.unwrap();
    }
    for long in [901, 3600, 86_400] {
        let error = verifier.verify(&token(&server, long)).await.unwrap_err();
        assert_eq!(
            error,
            AuthError::InvalidToken(InvalidToken::LifetimeTooLong)
        );
        assert_eq!(error.reason(), "lifetime_too_long");
        assert_eq!(
            error.www_authenticate("cognito").unwrap(),
            "Bearer realm=\"cognito\", error=\"invalid_token\", \
             error_description=\"The token lifetime is longer than accepted\""
        );
    }
    // Off by default: a day-long token passes.
    let open = Verifier::new(support::local_config(&server, TokenUse::Access, CLIENT)).unwrap();
    open.verify(&token(&server, 86_400)).await.unwrap();
}

#[test]
fn a_zero_maximum_is_a_config_error() {
    let config = tower_cognito::CognitoConfig::new(
        tower_cognito::UserPool::parse(POOL).unwrap(),
        TokenUse::Access,
        tower_cognito::ClientIds::one(CLIENT),
    )
    .max_lifetime(Duration::ZERO);
    assert!(matches!(
        Verifier::new(config),
        Err(ConfigError::InvalidSetting {
            setting: "max_lifetime",
            ..
        })
    ));
}
