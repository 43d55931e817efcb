//! `Verifier::ready`: keys loaded in every pool, and a session store that answers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

#[cfg(any(feature = "redis", feature = "postgres"))]
use tower_cognito::session::StoreErrorKind;
use tower_cognito::session::{SessionConfig, SessionStore};
use tower_cognito::{AuthError, ClientIds, PoolConfig, TokenUse, UserPool, Verifier};

use crate::circuit_breaker::Switchable;
use crate::support::{self, key, JwksServer};

#[tokio::test]
async fn ready_once_every_pool_has_keys_and_the_store_answers() {
    let a = JwksServer::start("eu-west-1_ReadyA").await;
    a.set_keys(&[key(0)]);
    let b = JwksServer::start("eu-west-1_ReadyB").await;
    b.set_status(hyper::StatusCode::SERVICE_UNAVAILABLE);
    let store = Switchable::new(false, true);
    let config = support::local_config(&a, TokenUse::Access, "client-a")
        .add_pool(
            PoolConfig::new(
                UserPool::parse(b.pool_id()).unwrap(),
                TokenUse::Access,
                ClientIds::one("client-b"),
            )
            .issuer_override(b.issuer())
            .jwks_url(b.url()),
        )
        .jwks_cooldown(Duration::ZERO)
        .session_window(
            SessionConfig::new(store.clone() as Arc<dyn SessionStore>)
                .timeout(Duration::from_millis(200)),
        );
    let verifier = Verifier::new(config).unwrap();

    // Nothing fetched yet: not ready, and asking fetched nothing.
    assert_eq!(verifier.ready().await, Err(AuthError::KeysUnavailable));
    assert_eq!((a.fetch_count(), b.fetch_count()), (0, 0));
    // Pool A has keys, pool B's endpoint is down: still not ready.
    assert_eq!(
        verifier.prefetch_keys().await,
        Err(AuthError::KeysUnavailable)
    );
    assert_eq!(verifier.ready().await, Err(AuthError::KeysUnavailable));
    // Pool B comes back.
    b.set_keys(&[key(1)]);
    b.set_status(hyper::StatusCode::OK);
    assert_eq!(verifier.prefetch_keys().await, Ok(2));
    assert_eq!(verifier.ready().await, Ok(()));

    // The store fails, then hangs past the store timeout: not ready either way.
    store.down.store(true, Ordering::SeqCst);
    assert_eq!(verifier.ready().await, Err(AuthError::StoreUnavailable));
    store.hang.store(true, Ordering::SeqCst);
    assert_eq!(verifier.ready().await, Err(AuthError::StoreUnavailable));
    store.down.store(false, Ordering::SeqCst);
    assert_eq!(verifier.ready().await, Ok(()));
}

/// PostgreSQL's ping is `SELECT 1`: it answers against the shared server, and fails once no
/// connection can be had (a server on a port nobody listens on).
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_pings_with_select_1() {
    use crate::support::stores;
    let table = stores::unique_postgres_table("ping");
    let store = stores::postgres_store(&table).await;
    store.ping().await.expect("the shared server answers");

    let port = stores::spare_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/test?connect_timeout=1");
    match tower_cognito::session::PostgresStore::connect(&url).await {
        // The pool may connect lazily: then the ping is what finds the server missing.
        Ok(store) => assert_eq!(
            store.ping().await.unwrap_err().kind(),
            StoreErrorKind::Unavailable
        ),
        Err(error) => assert_eq!(error.kind(), StoreErrorKind::Unavailable),
    }
}

/// Redis's ping is `PING`: it answers against the shared server, and fails against a server
/// that is gone.
#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_pings_with_ping() {
    use crate::support::stores;
    let store = stores::redis_store(&stores::unique_redis_prefix("ping")).await;
    store.ping().await.expect("the shared server answers");

    let mut own = stores::OwnRedis::start_volatile().await;
    let store = tower_cognito::session::RedisStore::connect(&own.url())
        .await
        .expect("own server up");
    store.ping().await.expect("own server answers");
    own.kill();
    let answer = tokio::time::timeout(std::time::Duration::from_secs(10), store.ping())
        .await
        .expect("a ping answers, if only with an error");
    assert_eq!(answer.unwrap_err().kind(), StoreErrorKind::Unavailable);
}
