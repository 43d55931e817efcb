//! Session stores on the shared test servers (`support::stores`, with the `redis` or `postgres`
//! feature).
//!
//! - Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`): every test uses a key prefix of
//!   its own ([`redis_prefix`], [`unique_redis_prefix`]) and deletes its keys at the end
//!   ([`delete_redis_keys`]).
//! - PostgreSQL at `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`): every
//!   test uses a table of its own ([`postgres_table`], [`unique_postgres_table`]) and drops it
//!   at the end ([`drop_table`]).

#[cfg(feature = "postgres")]
use tower_cognito::session::PostgresStore;
#[cfg(feature = "redis")]
use tower_cognito::session::RedisStore;

use super::unique;

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

/// `REDIS_URL`, default `redis://127.0.0.1:6379`.
#[cfg(feature = "redis")]
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The key prefix of the test namespace `ns`: `tower-cognito-test:{ns}:`.
#[cfg(feature = "redis")]
pub fn redis_prefix(ns: &str) -> String {
    format!("tower-cognito-test:{ns}:")
}

/// A key prefix no other test (of this run, a parallel run or an earlier one) uses.
#[cfg(feature = "redis")]
pub fn unique_redis_prefix(what: &str) -> String {
    redis_prefix(&unique(what))
}

/// A [`RedisStore`] on `REDIS_URL` whose keys all start with `prefix`.
#[cfg(feature = "redis")]
pub async fn redis_store(prefix: &str) -> RedisStore {
    let url = redis_url();
    RedisStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url} (REDIS_URL): {e}"))
        .with_prefix(prefix)
}

/// A plain connection to `REDIS_URL`, for what the store does not do.
#[cfg(feature = "redis")]
pub async fn redis_connection() -> ::redis::aio::MultiplexedConnection {
    let url = redis_url();
    ::redis::Client::open(url.as_str())
        .unwrap_or_else(|e| panic!("redis client for {url}: {e}"))
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connect to {url} (REDIS_URL): {e}"))
}

/// Deletes every key under `prefix` (some tests use TTLs of a century or more).
#[cfg(feature = "redis")]
pub async fn delete_redis_keys(prefix: &str) {
    let mut conn = redis_connection().await;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        if !keys.is_empty() {
            let () = ::redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .expect("DEL");
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

/// `DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`.
#[cfg(feature = "postgres")]
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The table of the test namespace `ns`: `tc_{ns}` in lower case, at most 48 bytes.
#[cfg(feature = "postgres")]
pub fn postgres_table(ns: &str) -> String {
    let mut name = format!("tc_{}", ns.to_ascii_lowercase());
    name.truncate(48);
    name
}

/// A table no other test (of this run, a parallel run or an earlier one) uses.
#[cfg(feature = "postgres")]
pub fn unique_postgres_table(what: &str) -> String {
    postgres_table(&unique(what))
}

/// A [`PostgresStore`] on `DATABASE_URL` using `table` (its schema is not created).
#[cfg(feature = "postgres")]
pub async fn postgres_store(table: &str) -> PostgresStore {
    let url = database_url();
    PostgresStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url} (DATABASE_URL): {e}"))
        .with_table(table)
        .expect("table name")
}

/// [`postgres_store`] with its schema created.
#[cfg(feature = "postgres")]
pub async fn postgres_store_with_schema(table: &str) -> PostgresStore {
    let store = postgres_store(table).await;
    store.create_schema().await.expect("create schema");
    store
}

/// A plain connection to `DATABASE_URL`, for what the store does not do (dropping tables,
/// locking them, writing bad rows). Needs a tokio runtime: the connection runs in a task.
#[cfg(feature = "postgres")]
pub async fn postgres_client() -> tokio_postgres::Client {
    let url = database_url();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url} (DATABASE_URL): {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Drops `table` if it exists.
#[cfg(feature = "postgres")]
pub async fn drop_table(table: &str) {
    postgres_client()
        .await
        .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
        .await
        .expect("drop table");
}
