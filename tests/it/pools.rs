//! Several user pools in one verifier: each token is checked against its own pool's issuers,
//! token use, app clients and keys, and an issuer no pool has is refused without any fetch.

use serde_json::json;
use tower_cognito::{
    AuthError, ClientIds, CognitoConfig, ConfigError, InvalidToken, IssuerForm, Issuers,
    PoolConfig, TokenUse, UserPool, Verifier,
};

use crate::support::{self, access_claims, id_claims, key, mint, JwksServer};

/// Pool A (key 0, app client `client-a`, access tokens) and pool B (key 1, app client
/// `client-b`, id tokens), each with a JWKS server of its own.
struct TwoPools {
    a: JwksServer,
    b: JwksServer,
    verifier: Verifier<tower_cognito::AnyClaims>,
}

async fn two_pools() -> TwoPools {
    let a = JwksServer::start("eu-west-1_PoolA").await;
    a.set_keys(&[key(0)]);
    let b = JwksServer::start("us-east-1_PoolB").await;
    b.set_keys(&[key(1)]);
    let verifier = two_pools_over(&a, &b);
    TwoPools { a, b, verifier }
}

fn invalid(result: Result<impl std::fmt::Debug, AuthError>) -> InvalidToken {
    match result {
        Err(AuthError::InvalidToken(reason)) => reason,
        other => panic!("expected invalid_token, got {other:?}"),
    }
}

#[tokio::test]
async fn each_pool_accepts_its_own_tokens() {
    let pools = two_pools().await;
    let a = mint(key(0), &access_claims(&pools.a.issuer(), "client-a"));
    let b = mint(key(1), &id_claims(&pools.b.issuer(), "client-b"));

    let verified = pools.verifier.verify(&a).await.expect("pool A's token");
    assert_eq!(verified.claim::<String>("iss"), Some(pools.a.issuer()));
    let verified = pools.verifier.verify(&b).await.expect("pool B's token");
    assert_eq!(verified.claim::<String>("aud").as_deref(), Some("client-b"));
    // Each pool fetched its own keys, once.
    assert_eq!((pools.a.fetch_count(), pools.b.fetch_count()), (1, 1));
}

#[tokio::test]
async fn a_client_or_token_use_of_one_pool_is_refused_on_the_other() {
    let pools = two_pools().await;
    // Pool B's issuer and key, pool A's client: refused.
    let mut claims = id_claims(&pools.b.issuer(), "client-a");
    let wrong_client = mint(key(1), &claims);
    assert_eq!(
        invalid(pools.verifier.verify(&wrong_client).await),
        InvalidToken::WrongClient
    );
    // Pool A's issuer with pool B's client: refused too.
    let a_with_b_client = mint(key(0), &access_claims(&pools.a.issuer(), "client-b"));
    assert_eq!(
        invalid(pools.verifier.verify(&a_with_b_client).await),
        InvalidToken::WrongClient
    );
    // Pool B accepts id tokens only, pool A access tokens only.
    claims = access_claims(&pools.b.issuer(), "client-b");
    assert_eq!(
        invalid(pools.verifier.verify(&mint(key(1), &claims)).await),
        InvalidToken::WrongTokenUse
    );
    claims = id_claims(&pools.a.issuer(), "client-a");
    assert_eq!(
        invalid(pools.verifier.verify(&mint(key(0), &claims)).await),
        InvalidToken::WrongTokenUse
    );
}

#[tokio::test]
async fn an_unknown_issuer_is_refused_without_any_fetch() {
    let pools = two_pools().await;
    for iss in [
        json!("https://evil.example.com/eu-west-1_PoolA"),
        json!(format!("{}/", pools.a.issuer())),
        json!(pools.a.issuer().to_uppercase()),
        json!(null),
        json!(42),
    ] {
        let mut claims = access_claims(&pools.a.issuer(), "client-a");
        claims["iss"] = iss.clone();
        let token = mint(key(0), &claims);
        let reason = invalid(pools.verifier.verify(&token).await);
        assert!(
            matches!(reason, InvalidToken::WrongIssuer | InvalidToken::Malformed),
            "{iss}: {reason:?}"
        );
    }
    let mut no_iss = access_claims(&pools.a.issuer(), "client-a");
    no_iss.as_object_mut().unwrap().remove("iss");
    assert_eq!(
        invalid(pools.verifier.verify(&mint(key(0), &no_iss)).await),
        InvalidToken::WrongIssuer
    );
    assert_eq!(
        (pools.a.fetch_count(), pools.b.fetch_count()),
        (0, 0),
        "no pool's keys were fetched for an issuer no pool has"
    );
}

#[tokio::test]
async fn a_token_is_verified_with_its_own_pools_keys_only() {
    let pools = two_pools().await;
    // Signed with pool A's key, naming pool B: B's keys do not have A's kid.
    let token = mint(key(0), &id_claims(&pools.b.issuer(), "client-b"));
    assert_eq!(
        invalid(pools.verifier.verify(&token).await),
        InvalidToken::UnknownKey
    );
    assert_eq!((pools.a.fetch_count(), pools.b.fetch_count()), (0, 1));

    // Both pools publish the kid `shared`, with different keys: a token of pool B signed with
    // pool A's `shared` key has a bad signature.
    let a_shared = key(0).with_kid("shared");
    let b_shared = key(1).with_kid("shared");
    pools.a.set_keys(&[&a_shared]);
    pools.b.set_keys(&[&b_shared]);
    let forged = mint(&a_shared, &id_claims(&pools.b.issuer(), "client-b"));
    // Pool B's cache was just filled without `shared`; its cooldown has to pass first, so use
    // a fresh verifier over the same two servers.
    let fresh = two_pools_over(&pools.a, &pools.b);
    assert_eq!(
        invalid(fresh.verify(&forged).await),
        InvalidToken::BadSignature
    );
    let genuine = mint(&b_shared, &id_claims(&pools.b.issuer(), "client-b"));
    fresh.verify(&genuine).await.expect("pool B's own key");
}

fn two_pools_over(a: &JwksServer, b: &JwksServer) -> Verifier<tower_cognito::AnyClaims> {
    let config = support::local_config(a, TokenUse::Access, "client-a").add_pool(
        PoolConfig::new(
            UserPool::parse(b.pool_id()).unwrap(),
            TokenUse::Id,
            ClientIds::one("client-b"),
        )
        .issuer_override(b.issuer())
        .jwks_url(b.url()),
    );
    Verifier::with_claims(config).unwrap()
}

#[tokio::test]
async fn prefetch_warms_every_pool_and_fails_when_one_has_no_keys() {
    let pools = two_pools().await;
    assert_eq!(pools.verifier.prefetch_keys().await, Ok(2));
    assert_eq!((pools.a.fetch_count(), pools.b.fetch_count()), (1, 1));

    let c = JwksServer::start("eu-central-1_PoolC").await;
    c.set_status(hyper::StatusCode::SERVICE_UNAVAILABLE);
    let config = support::local_config(&pools.a, TokenUse::Access, "client-a").add_pool(
        PoolConfig::new(
            UserPool::parse(c.pool_id()).unwrap(),
            TokenUse::Access,
            ClientIds::one("client-c"),
        )
        .issuer_override(c.issuer())
        .jwks_url(c.url()),
    );
    let verifier = Verifier::new(config).unwrap();
    assert_eq!(
        verifier.prefetch_keys().await,
        Err(AuthError::KeysUnavailable)
    );
    // Pool A still serves while pool C is down.
    let a = mint(key(0), &access_claims(&pools.a.issuer(), "client-a"));
    verifier.verify(&a).await.expect("pool A unaffected");
}

#[tokio::test]
async fn a_replicated_pool_accepts_its_replica_regions_issuers_with_its_keys() {
    let server = JwksServer::start("eu-west-1_Replicated").await;
    server.set_keys(&[key(2)]);
    let config = support::pool_issuer_config(&server, TokenUse::Access, ClientIds::one("client-r"))
        .issuers(Issuers::Only(IssuerForm::Updated))
        .replica_region("us-east-1");
    let verifier = Verifier::new(config).unwrap();
    let issuer = |region: &str| {
        format!("https://issuer-cognito-idp.{region}.amazonaws.com/eu-west-1_Replicated")
    };
    for region in ["eu-west-1", "us-east-1"] {
        let token = mint(key(2), &access_claims(&issuer(region), "client-r"));
        verifier
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{region}: {e:?}"));
    }
    for refused in [
        issuer("ap-south-1"),
        "https://cognito-idp.us-east-1.amazonaws.com/eu-west-1_Replicated".to_owned(),
    ] {
        let token = mint(key(2), &access_claims(&refused, "client-r"));
        assert_eq!(
            invalid(verifier.verify(&token).await),
            InvalidToken::WrongIssuer,
            "{refused}"
        );
    }
}

#[test]
fn two_pools_may_not_share_an_issuer() {
    let pool = || UserPool::parse("eu-west-1_Same").unwrap();
    let config = CognitoConfig::new(pool(), TokenUse::Access, ClientIds::one("a")).add_pool(
        PoolConfig::new(pool(), TokenUse::Id, ClientIds::one("b"))
            .issuers(Issuers::Only(IssuerForm::Updated)),
    );
    assert_eq!(
        Verifier::new(config).unwrap_err(),
        ConfigError::DuplicateIssuer(
            "https://issuer-cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Same".into()
        )
    );
    // An added pool is checked like the first one.
    let config = CognitoConfig::new(pool(), TokenUse::Access, ClientIds::one("a")).add_pool(
        PoolConfig::new(
            UserPool::parse("us-east-1_Other").unwrap(),
            TokenUse::Access,
            ClientIds::new(Vec::<String>::new()),
        ),
    );
    assert_eq!(Verifier::new(config).unwrap_err(), ConfigError::NoClientIds);
    let config = CognitoConfig::new(pool(), TokenUse::Access, ClientIds::one("a")).add_pool(
        PoolConfig::new(
            UserPool::parse("us-east-1_Other").unwrap(),
            TokenUse::Access,
            ClientIds::one("b"),
        )
        .jwks_url("http://127.0.0.1:1/jwks.json"),
    );
    assert!(matches!(
        Verifier::new(config).unwrap_err(),
        ConfigError::InvalidUrl { .. }
    ));
}
