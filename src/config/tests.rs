//! Unit tests of the configuration and its validation.

use super::*;

fn config() -> CognitoConfig {
    CognitoConfig::new(
        UserPool::parse("eu-west-1_AbC123").unwrap(),
        TokenUse::Access,
        ClientIds::one("client1"),
    )
}

#[test]
fn emulator_pool_ids_need_both_overrides() {
    let pool = || UserPool::parse("local_6e1bGJFg").unwrap();
    let base = || CognitoConfig::new(pool(), TokenUse::Access, ClientIds::one("c"));
    let issuer = "http://127.0.0.1:9229/local_6e1bGJFg";
    let jwks = "http://127.0.0.1:9229/local_6e1bGJFg/.well-known/jwks.json";
    for refused in [
        base(),
        base().issuer_override(issuer),
        base().jwks_url(jwks).allow_http_on_loopback(true),
    ] {
        assert!(
            matches!(
                refused.validate(),
                Err(ConfigError::EmulatorPoolNeedsOverrides(_))
            ),
            "{refused:?}"
        );
    }
    let both = base()
        .issuer_override(issuer)
        .jwks_url(jwks)
        .allow_http_on_loopback(true);
    assert_eq!(both.validate(), Ok(()));
    assert_eq!(both.accepted_issuers(), vec![issuer.to_owned()]);
}

#[test]
fn both_issuer_forms_by_default_and_one_on_request() {
    assert_eq!(
        config().accepted_issuers(),
        [
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123",
            "https://issuer-cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
        ]
    );
    assert_eq!(
        config()
            .issuers(Issuers::Only(IssuerForm::Updated))
            .accepted_issuers(),
        ["https://issuer-cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"]
    );
}

#[test]
fn plain_http_needs_opt_in_and_loopback() {
    let http = config().jwks_url("http://127.0.0.1:9229/x/.well-known/jwks.json");
    assert!(matches!(
        http.validate(),
        Err(ConfigError::InvalidUrl { .. })
    ));
    assert!(http.clone().allow_http_on_loopback(true).validate().is_ok());
    let remote = config()
        .jwks_url("http://cognito.example.com/jwks.json")
        .allow_http_on_loopback(true);
    assert!(matches!(
        remote.validate(),
        Err(ConfigError::InvalidUrl { .. })
    ));
    let localhost = config()
        .jwks_url("http://localhost:1/jwks.json")
        .allow_http_on_loopback(true);
    assert!(localhost.validate().is_ok());
}

#[test]
fn client_ids_must_be_explicit() {
    let none = CognitoConfig::new(
        UserPool::parse("eu-west-1_AbC123").unwrap(),
        TokenUse::Access,
        ClientIds::new(Vec::<String>::new()),
    );
    assert_eq!(none.validate(), Err(ConfigError::NoClientIds));
    let bad = CognitoConfig::new(
        UserPool::parse("eu-west-1_AbC123").unwrap(),
        TokenUse::Access,
        ClientIds::one("a\"b"),
    );
    assert!(matches!(
        bad.validate(),
        Err(ConfigError::InvalidClientId(_))
    ));
    assert!(ClientIds::unchecked().allows("anything"));
}

#[test]
fn rules_and_ranges_are_checked() {
    assert!(matches!(
        config().require_scopes(["a b"]).validate(),
        Err(ConfigError::InvalidRule(_))
    ));
    assert!(matches!(
        config().leeway(Duration::from_secs(3600)).validate(),
        Err(ConfigError::InvalidSetting {
            setting: "leeway",
            ..
        })
    ));
    assert!(matches!(
        config().fetch_keys(false).validate(),
        Err(ConfigError::InvalidSetting { .. })
    ));
}
