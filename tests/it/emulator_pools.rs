//! Pool ids of local emulators (cognito-local's `local_6e1bGJFg`): accepted when the issuer and
//! the JWKS URL are both given, refused otherwise, and their tokens verified like any other.

use tower_cognito::{ClientIds, ConfigError, TokenUse, Verifier};

use crate::support::{self, JwksServer};

const POOL: &str = "local_6e1bGJFg";
const CLIENT: &str = "client-local-1";

#[tokio::test]
async fn an_emulator_pool_verifies_with_both_overrides() {
    let server = JwksServer::start_with_keys(POOL, &[support::key(0)]).await;
    assert_eq!(
        server.issuer(),
        format!("http://127.0.0.1:{}/{POOL}", server.port())
    );
    let verifier = Verifier::new(support::local_config(&server, TokenUse::Access, CLIENT))
        .expect("both overrides given");
    let token = support::mint(
        support::key(0),
        &support::access_claims(&server.issuer(), CLIENT),
    );
    let verified = verifier
        .verify(&token)
        .await
        .expect("a genuine emulator token");
    assert_eq!(verified.claims().client_id, CLIENT);

    // Another pool's issuer is refused as usual.
    let other = support::mint(
        support::key(0),
        &support::access_claims("http://127.0.0.1:9229/local_other", CLIENT),
    );
    assert!(verifier.verify(&other).await.is_err());
}

#[tokio::test]
async fn an_emulator_pool_without_both_overrides_is_a_config_error() {
    let server = JwksServer::start_with_keys(POOL, &[support::key(0)]).await;
    // The JWKS URL but the pool's (non-existent) Cognito issuer.
    let config = support::pool_issuer_config(&server, TokenUse::Access, ClientIds::one(CLIENT));
    let error = Verifier::new(config).unwrap_err();
    assert_eq!(
        error,
        ConfigError::EmulatorPoolNeedsOverrides(POOL.to_owned())
    );
    assert!(
        error.to_string().contains("the issuer and the JWKS URL"),
        "{error}"
    );
    assert_eq!(server.fetch_count(), 0, "nothing fetched");
}
