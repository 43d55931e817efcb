//! What the crate's PostgreSQL-backed stores share (the session store here, the refresh store in
//! `crate::refresh`): the connection pool with its TLS and timeouts, table names, the schema
//! and cleanup statements' runners, and errors that carry their whole cause chain.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::tokio_postgres::config::Host;
use deadpool_postgres::tokio_postgres::types::Type;
use deadpool_postgres::tokio_postgres::{Config as PgConfig, NoTls};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use super::postgres_tls::{parse_config, PostgresTls, Transport};
use super::{StoreError, StoreErrorKind};

/// The longest identifier PostgreSQL keeps (`NAMEDATALEN - 1`).
const MAX_IDENT: usize = 63;

/// Appended to the table name to name the index on `expires_at`.
const INDEX_SUFFIX: &str = "_expires_at_idx";

/// How long creating one connection (or waiting for a free one) may take.
const POOL_TIMEOUT: Duration = Duration::from_secs(10);

/// The parameter types of a store's `DELETE ... WHERE expires_at <= $1`.
const CLEANUP_TYPES: &[Type] = &[Type::INT8];

/// `table` quoted for SQL (`"schema"."name"`), and its `expires_at` index's name quoted, once
/// `table` passed [`parse_table`]. Shared by every PostgreSQL-backed store of the crate.
pub(crate) fn quoted_table(table: &str) -> Result<(String, String), StoreError> {
    let parts = parse_table(table)?;
    let quoted = parts
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(".");
    let index = format!("\"{}{INDEX_SUFFIX}\"", parts[parts.len() - 1]);
    Ok((quoted, index))
}

/// Splits `table` into its schema (optional) and table name, accepting only plain identifiers:
/// ASCII letters, digits and `_`, not starting with a digit; at most 63 bytes for the schema and
/// 48 for the table (so that the index name fits PostgreSQL's 63).
fn parse_table(table: &str) -> Result<Vec<&str>, StoreError> {
    let parts: Vec<&str> = table.split('.').collect();
    let valid = |part: &str, max: usize| {
        !part.is_empty()
            && part.len() <= max
            && !part.starts_with(|c: char| c.is_ascii_digit())
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let ok = match parts.as_slice() {
        [name] => valid(name, MAX_IDENT - INDEX_SUFFIX.len()),
        [schema, name] => valid(schema, MAX_IDENT) && valid(name, MAX_IDENT - INDEX_SUFFIX.len()),
        _ => false,
    };
    if ok {
        Ok(parts)
    } else {
        Err(StoreError::new(
            StoreErrorKind::InvalidInput,
            format!(
                "invalid table name {table:?}: expected `name` or `schema.name` made of ASCII \
                 letters, digits and `_`, not starting with a digit (name at most 48 bytes, \
                 schema at most 63)"
            ),
        ))
    }
}

/// A pool of connections to `url` (a `postgres://` URL or a `key=value` string; an error of
/// kind `InvalidInput` otherwise), with TLS as `url`'s `sslmode` and `tls` say (see
/// [`PostgresTls`]), a 10 s connect timeout unless the string sets one, and
/// `user@host:port/dbname (transport)` for `Debug` (never the password). Connects to nothing
/// yet. Shared by every PostgreSQL-backed store of the crate.
pub(crate) fn connect_pool(
    url: &str,
    tls: Option<&PostgresTls>,
) -> Result<(Pool, Arc<str>), StoreError> {
    let mut config = parse_config(url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(POOL_TIMEOUT);
    }
    let transport = Transport::choose(&config, tls)?;
    let target = format!("{} ({})", describe(&config), transport.describe(&config));
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match transport {
        Transport::Plain => Manager::from_config(config, NoTls, manager_config),
        Transport::Tls(connector) => Manager::from_config(config, connector, manager_config),
    };
    let pool = Pool::builder(manager)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(POOL_TIMEOUT))
        .wait_timeout(Some(POOL_TIMEOUT))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .build()
        .map_err(unavailable)?;
    Ok((pool, Arc::from(target)))
}

/// What `Debug` shows of a pool the application made: its size, not where it connects (deadpool
/// does not say).
pub(crate) const ADOPTED_TARGET: &str = "(a pool given to from_pool)";

/// Checks out one connection of `pool`, to see that the server answers (and accepts the TLS
/// handshake and the login).
pub(crate) async fn check_pool(pool: &Pool) -> Result<(), StoreError> {
    drop(pool.get().await.map_err(unavailable)?);
    Ok(())
}

/// Runs a store's schema SQL in one transaction (rolled back on error, so the connection stays
/// clean). Shared by every PostgreSQL-backed store of the crate.
pub(crate) async fn run_schema(pool: &Pool, schema_sql: &str) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(unavailable)?;
    let transaction = client.transaction().await.map_err(unavailable)?;
    transaction
        .batch_execute(schema_sql)
        .await
        .map_err(unavailable)?;
    transaction.commit().await.map_err(unavailable)
}

/// Runs a store's `DELETE ... WHERE expires_at <= $1` at `now`: how many rows went.
pub(crate) async fn delete_expired(
    pool: &Pool,
    cleanup_sql: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let client = pool.get().await.map_err(unavailable)?;
    let statement = client
        .prepare_typed_cached(cleanup_sql, CLEANUP_TYPES)
        .await
        .map_err(unavailable)?;
    client
        .execute(&statement, &[&now])
        .await
        .map_err(unavailable)
}

/// `user@host:port/dbname`, without the password.
fn describe(config: &PgConfig) -> String {
    let hosts = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            };
            let port = config
                .get_ports()
                .get(i)
                .or_else(|| config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "{}@{}/{}",
        config.get_user().unwrap_or(""),
        hosts,
        config.get_dbname().unwrap_or("")
    )
}

pub(crate) fn unavailable(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, Detailed::new(e.into()))
}

pub(crate) fn corrupt(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, Detailed::new(e.into()))
}

/// An error whose message carries its whole chain of causes. tokio-postgres' own messages say
/// only `db error` or `error performing TLS handshake` and keep the reason (the server's
/// message, such as `no pg_hba.conf entry ... no encryption`, or the certificate check's
/// `invalid peer certificate: UnknownIssuer`) in their source, which a log line of the store
/// error would not show. The original error stays the source, for downcasting.
struct Detailed {
    message: String,
    error: Box<dyn std::error::Error + Send + Sync>,
}

impl Detailed {
    fn new(error: Box<dyn std::error::Error + Send + Sync>) -> Self {
        let mut message = error.to_string();
        let mut cause = error.source();
        while let Some(e) = cause {
            let text = e.to_string();
            // deadpool's messages already include their inner error's.
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            cause = e.source();
        }
        Self { message, error }
    }
}

impl fmt::Display for Detailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Detailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.error, f)
    }
}

impl std::error::Error for Detailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}
