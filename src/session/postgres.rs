//! [`PostgresStore`]: session windows in a PostgreSQL table, one atomic statement per check (a
//! refused check writes nothing; one read then says whether it was superseded or revoked).
//!
//! # Schema
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS tower_cognito_sessions (
//!     key        text    PRIMARY KEY,
//!     iats       bigint[] NOT NULL,  -- distinct iat values kept, oldest first
//!     revoked    boolean NOT NULL,
//!     expires_at bigint  NOT NULL    -- seconds since the epoch; <= now counts as absent
//! );
//! CREATE INDEX IF NOT EXISTS tower_cognito_sessions_expires_at_idx
//!     ON tower_cognito_sessions (expires_at);
//! ```
//!
//! # The check
//!
//! Each check is a single `INSERT ... ON CONFLICT (key) DO UPDATE ... RETURNING` statement
//! (`CHECK_SQL`). A new key is inserted with the window `[iat]`; for an existing key
//! PostgreSQL locks the row (its latest committed version, also when two first checks of one new
//! key race: the loser of the insert takes the `DO UPDATE` path on the winner's row) and the
//! `SET` computes the next state from it with the rules of `window.rs`. When the check is refused
//! (revoked or superseded) the row is written back unchanged, so that `RETURNING` always yields
//! the row as the check left it; the verdict is then read off that row, because applying a
//! check to its own result gives the same verdict (see `verdict_of`).

use std::fmt;
use std::sync::Arc;

use deadpool_postgres::tokio_postgres::types::Type;
use deadpool_postgres::tokio_postgres::Row;
use deadpool_postgres::{Object, Pool};

use super::postgres_connection::{
    check_pool, connect_pool, corrupt, delete_expired, quoted_table, run_schema, unavailable,
    ADOPTED_TARGET,
};
use super::postgres_tls::PostgresTls;
use super::{
    check_limits, SessionEntry, SessionStore, SessionVerdict, StoreError, StoreFuture,
    WindowLimits, MAX_WINDOW,
};

/// The table used unless [`PostgresStore::with_table`] names another.
const DEFAULT_TABLE: &str = "tower_cognito_sessions";

/// `CREATE TABLE`, then `CREATE INDEX`, run in one transaction after taking an advisory lock
/// on the table name: `IF NOT EXISTS` alone is not safe when several servers start at once on a
/// fresh database (the losers fail on `pg_type_typname_nsp_index`).
const SCHEMA_SQL: &str = "\
SELECT pg_advisory_xact_lock(hashtext('tower-cognito schema {name}'));
CREATE TABLE IF NOT EXISTS {table} (
    key text PRIMARY KEY,
    iats bigint[] NOT NULL,
    revoked boolean NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS {index} ON {table} (expires_at);";

/// The atomic check-and-advance.
///
/// `$1` key, `$2` iat, `$3` the new expiry (`now + ttl`, saturating), `$4` now, `$5` the window
/// size. A new key is inserted with `iat` as its window. On an existing key, `t` is the locked
/// row; `w` is its live window (empty when expired). The `WHERE` of `DO UPDATE` refuses the
/// check when the live row is revoked, or when the window is full and its oldest kept value is
/// newer than `iat`: then nothing is written and nothing returned (the caller then reads the
/// row to say which refusal it was). Otherwise `iat` enters the window if absent (keeping the
/// `$5` newest values, in ascending order), the revoked mark of an expired row is dropped, and
/// the expiry becomes `$3`; the row is returned.
const CHECK_SQL: &str = "\
INSERT INTO {table} AS t (key, iats, revoked, expires_at)
VALUES ($1, ARRAY[$2]::bigint[], false, $3)
ON CONFLICT (key) DO UPDATE SET (iats, revoked, expires_at) = (
    SELECT CASE
               WHEN $2 = ANY (l.w) THEN l.w
               ELSE ARRAY(
                   SELECT k.v FROM (
                       SELECT u.v FROM unnest(l.w || $2) AS u(v) ORDER BY u.v DESC LIMIT $5
                   ) AS k
                   ORDER BY k.v)
           END,
           false,
           $3::bigint
    FROM (SELECT CASE WHEN t.expires_at > $4 THEN t.iats ELSE '{}'::bigint[] END AS w) AS l
)
WHERE NOT (
    (t.expires_at > $4 AND t.revoked)
    OR (t.expires_at > $4
        AND cardinality(t.iats) >= $5
        AND $2 < t.iats[array_lower(t.iats, 1) + cardinality(t.iats) - $5])
)
RETURNING iats, revoked, expires_at";

const CHECK_TYPES: &[Type] = &[Type::TEXT, Type::INT8, Type::INT8, Type::INT8, Type::INT4];

/// Revocation: keep the live window (or none), mark revoked, expire at `$2` (`now + ttl`).
/// `$3` is now.
const REVOKE_SQL: &str = "\
INSERT INTO {table} AS t (key, iats, revoked, expires_at)
VALUES ($1, '{}'::bigint[], true, $2)
ON CONFLICT (key) DO UPDATE SET
    iats = CASE WHEN t.expires_at > $3 THEN t.iats ELSE '{}'::bigint[] END,
    revoked = true,
    expires_at = $2";

const REVOKE_TYPES: &[Type] = &[Type::TEXT, Type::INT8, Type::INT8];

/// The live entry of `$1` at `$2`.
const ENTRY_SQL: &str =
    "SELECT iats, revoked, expires_at FROM {table} WHERE key = $1 AND expires_at > $2";

const ENTRY_TYPES: &[Type] = &[Type::TEXT, Type::INT8];

/// Removes the entries expired at `$1`.
const CLEANUP_SQL: &str = "DELETE FROM {table} WHERE expires_at <= $1";

/// Session windows in a PostgreSQL table, shared by every server using the same table and kept
/// across restarts.
///
/// Each check is one atomic `INSERT ... ON CONFLICT DO UPDATE` statement on the session's row,
/// run through a connection pool (deadpool-postgres; TLS with rustls when the connection string
/// asks for it, see [`PostgresTls`]). Create the table once with
/// [`create_schema`](Self::create_schema) (or with your migrations, using the SQL shown there),
/// and remove expired rows now and then with [`cleanup_expired`](Self::cleanup_expired):
/// expired rows are ignored, but PostgreSQL does not delete them by itself.
///
/// ```no_run
/// # async fn run() -> Result<(), tower_cognito::session::StoreError> {
/// use std::sync::Arc;
/// use tower_cognito::session::{PostgresStore, SessionConfig};
///
/// let store = PostgresStore::connect("postgres://app@db.internal/app")
///     .await?
///     .with_table("auth.cognito_sessions")?;
/// store.create_schema().await?;
/// let sessions = SessionConfig::new(Arc::new(store));
/// # Ok(()) }
/// ```
///
/// Cloning is cheap: clones share the pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    sql: Arc<Statements>,
    /// Where the pool connects, for `Debug`: never includes the password.
    target: Arc<str>,
}

/// The statements, with the table name filled in.
struct Statements {
    table: String,
    schema: String,
    check: String,
    revoke: String,
    entry: String,
    cleanup: String,
}

impl Statements {
    fn new(table: &str) -> Result<Self, StoreError> {
        let (quoted, index) = quoted_table(table)?;
        let fill = |sql: &str| sql.replace("{table}", &quoted);
        Ok(Self {
            table: table.to_owned(),
            // `table` is a validated identifier: no quote can reach the literal.
            schema: fill(SCHEMA_SQL)
                .replace("{index}", &index)
                .replace("{name}", table),
            check: fill(CHECK_SQL),
            revoke: fill(REVOKE_SQL),
            entry: fill(ENTRY_SQL),
            cleanup: fill(CLEANUP_SQL),
        })
    }
}

impl PostgresStore {
    /// Connects to the PostgreSQL server at `url` (a `postgres://` URL or a `key=value`
    /// connection string, as understood by tokio-postgres), using the table
    /// `tower_cognito_sessions`.
    ///
    /// TLS as `url`'s `sslmode` says, with the system's trusted roots: `sslmode=require` is TLS
    /// with the certificate and host name verified, `disable`, `prefer` or none is plaintext
    /// (see [`PostgresTls`] for the table, and [`connect_with_tls`](Self::connect_with_tls) to
    /// trust another CA). Connections go through a pool; one is opened right away to check
    /// that the server answers. A malformed `url` is an error of kind
    /// [`InvalidInput`](super::StoreErrorKind::InvalidInput); a server that cannot be reached, fails
    /// the TLS check or refuses the login one of kind
    /// [`Unavailable`](super::StoreErrorKind::Unavailable). Unless the connection string sets
    /// `connect_timeout`, connecting gives up after 10 seconds. Neither the error nor `Debug`
    /// ever shows the password.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        Self::connect_to(url, None).await
    }

    /// [`connect`](Self::connect), with TLS settings: TLS with `tls`'s roots when `url` says
    /// `sslmode=require`, and also with `prefer` or no `sslmode` when the server offers TLS;
    /// plaintext only with `sslmode=disable`, or `prefer` against a server without TLS. The
    /// certificate and host name are always verified. See [`PostgresTls`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_cognito::session::{PostgresStore, PostgresTls};
    ///
    /// let tls = PostgresTls::new().add_root_certificates_pem(&std::fs::read("/etc/db-ca.pem")?)?;
    /// let store =
    ///     PostgresStore::connect_with_tls("postgres://app@db.internal/app?sslmode=require", &tls)
    ///         .await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with_tls(
        url: &str,
        tls: &PostgresTls,
    ) -> Result<PostgresStore, StoreError> {
        Self::connect_to(url, Some(tls)).await
    }

    async fn connect_to(url: &str, tls: Option<&PostgresTls>) -> Result<PostgresStore, StoreError> {
        let (pool, target) = connect_pool(url, tls)?;
        Self::on_pool(pool, target).await
    }

    /// Uses a pool the application already has (shared with its own queries, built with its own
    /// TLS connector, or with a connect function that fetches a fresh password each time, as
    /// Amazon RDS IAM authentication needs), using the table `tower_cognito_sessions`. One
    /// connection is checked out right away to check that the server answers: an error of kind
    /// [`Unavailable`](super::StoreErrorKind::Unavailable) otherwise.
    ///
    /// **deadpool-postgres is a public dependency here**, and only here: the pool is what
    /// applications already hold, and a wrapper of ours would have to mirror its builder and
    /// connect hooks. A deadpool-postgres release that breaks its API (0.15) will therefore be
    /// a breaking release of this crate, said in the changelog. Name the version this crate uses
    /// through the re-export [`deadpool_postgres`](crate::session::deadpool_postgres) (with
    /// tokio-postgres as `deadpool_postgres::tokio_postgres`). `connect` and `connect_with_tls`
    /// expose neither crate.
    ///
    /// Give the pool create and wait timeouts: without them a request waits for a connection
    /// until the session configuration's store timeout answers 503. Statements are prepared
    /// once per connection and cached on it; any recycling method works.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_cognito::session::deadpool_postgres::{tokio_postgres, Manager, Pool};
    /// use tower_cognito::session::PostgresStore;
    ///
    /// let mut config = tokio_postgres::Config::new();
    /// config.host("db.internal").user("app").dbname("app").password("from the vault");
    /// let manager = Manager::new(config, tokio_postgres::NoTls);
    /// let pool = Pool::builder(manager).max_size(16).build()?;
    /// let store = PostgresStore::from_pool(pool.clone()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn from_pool(pool: Pool) -> Result<PostgresStore, StoreError> {
        Self::on_pool(pool, Arc::from(ADOPTED_TARGET)).await
    }

    async fn on_pool(pool: Pool, target: Arc<str>) -> Result<PostgresStore, StoreError> {
        let store = Self {
            pool,
            sql: Arc::new(Statements::new(DEFAULT_TABLE)?),
            target,
        };
        check_pool(&store.pool).await?;
        Ok(store)
    }

    /// Uses the table `table` instead of `tower_cognito_sessions`: a plain identifier, optionally
    /// qualified by a schema (`schema.name`), made of ASCII letters, digits and `_` and not
    /// starting with a digit; the name at most 48 bytes, the schema at most 63. The name is
    /// quoted in the SQL, so it is used exactly as given (case included). Anything else is an
    /// error of kind [`InvalidInput`](super::StoreErrorKind::InvalidInput).
    pub fn with_table(mut self, table: &str) -> Result<Self, StoreError> {
        self.sql = Arc::new(Statements::new(table)?);
        Ok(self)
    }

    /// The table this store uses, as given.
    pub fn table(&self) -> &str {
        &self.sql.table
    }

    /// Creates the table and its index on `expires_at` if they do not exist yet:
    ///
    /// ```sql
    /// CREATE TABLE IF NOT EXISTS {table} (
    ///     key text PRIMARY KEY,
    ///     iats bigint[] NOT NULL,
    ///     revoked boolean NOT NULL,
    ///     expires_at bigint NOT NULL
    /// );
    /// CREATE INDEX IF NOT EXISTS {table}_expires_at_idx ON {table} (expires_at);
    /// ```
    ///
    /// Safe to run at every start (the schema of the table must already exist). An existing
    /// table is left as it is, even if its columns differ.
    pub async fn create_schema(&self) -> Result<(), StoreError> {
        run_schema(&self.pool, &self.sql.schema).await
    }

    /// Deletes the entries expired at `now` (seconds since the epoch: those with
    /// `expires_at <= now`, which already count as absent) and returns how many were deleted.
    ///
    /// Expired rows are never read as live, so this only reclaims space: run it periodically
    /// (for example hourly) from one server, with the verifier's clock.
    pub async fn cleanup_expired(&self, now: i64) -> Result<u64, StoreError> {
        delete_expired(&self.pool, &self.sql.cleanup, now).await
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(unavailable)
    }

    async fn check(
        &self,
        key: &str,
        iat: i64,
        now: i64,
        limits: WindowLimits,
    ) -> Result<SessionVerdict, StoreError> {
        check_limits(limits)?;
        // `check_limits` bounds the size to 1..=MAX_WINDOW.
        let size = limits.size as i32;
        let expires_at = limits.expires_at(now);
        let client = self.client().await?;
        let statement = client
            .prepare_typed_cached(&self.sql.check, CHECK_TYPES)
            .await
            .map_err(unavailable)?;
        let row = client
            .query_opt(&statement, &[&key, &iat, &expires_at, &now, &size])
            .await
            .map_err(unavailable)?;
        drop(client);
        match row {
            Some(row) => verdict_of(&read_entry(&row)?, iat, limits.size),
            // Refused, and nothing written: say which refusal. A revoked session stays revoked
            // until it expires, so a read after the check classifies it safely; a row gone
            // meanwhile (expired, cleaned up) was refused all the same.
            None => Ok(match self.read(key, now).await? {
                Some(entry) if entry.revoked => SessionVerdict::Revoked,
                _ => SessionVerdict::Superseded,
            }),
        }
    }

    async fn revoke_key(
        &self,
        key: &str,
        now: i64,
        limits: WindowLimits,
    ) -> Result<(), StoreError> {
        check_limits(limits)?;
        let expires_at = limits.expires_at(now);
        let client = self.client().await?;
        let statement = client
            .prepare_typed_cached(&self.sql.revoke, REVOKE_TYPES)
            .await
            .map_err(unavailable)?;
        client
            .execute(&statement, &[&key, &expires_at, &now])
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn read(&self, key: &str, now: i64) -> Result<Option<SessionEntry>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_typed_cached(&self.sql.entry, ENTRY_TYPES)
            .await
            .map_err(unavailable)?;
        let row = client
            .query_opt(&statement, &[&key, &now])
            .await
            .map_err(unavailable)?;
        row.as_ref().map(read_entry).transpose()
    }
}

impl SessionStore for PostgresStore {
    fn check_and_advance<'a>(
        &'a self,
        key: &'a str,
        iat: i64,
        now: i64,
        limits: WindowLimits,
    ) -> StoreFuture<'a, SessionVerdict> {
        Box::pin(self.check(key, iat, now, limits))
    }

    fn revoke<'a>(&'a self, key: &'a str, now: i64, limits: WindowLimits) -> StoreFuture<'a, ()> {
        Box::pin(self.revoke_key(key, now, limits))
    }

    /// `SELECT 1` on a pooled connection: the server answers, and a connection can be had.
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let client = self.client().await?;
            client.simple_query("SELECT 1").await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn entry<'a>(&'a self, key: &'a str, now: i64) -> StoreFuture<'a, Option<SessionEntry>> {
        Box::pin(self.read(key, now))
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .field("table", &self.sql.table)
            .field("connections", &status.size)
            .field("max_connections", &status.max_size)
            .finish()
    }
}

/// Reads `iats, revoked, expires_at`, refusing what this crate never writes: NULL or
/// multi-dimensional arrays, windows that are not strictly ascending or longer than
/// [`MAX_WINDOW`].
fn read_entry(row: &Row) -> Result<SessionEntry, StoreError> {
    let iats: Vec<i64> = row.try_get(0).map_err(corrupt)?;
    let revoked: bool = row.try_get(1).map_err(corrupt)?;
    let expires_at: i64 = row.try_get(2).map_err(corrupt)?;
    if iats.len() > MAX_WINDOW || iats.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(corrupt(format!(
            "session window {iats:?} is not a strictly ascending list of at most {MAX_WINDOW} values"
        )));
    }
    Ok(SessionEntry {
        iats,
        revoked,
        expires_at,
    })
}

/// The verdict of a check, read off the row the check left.
///
/// A refused check leaves the row as it was, and the rule (revoked, or a full window whose
/// oldest kept value is newer than `iat`) holds of that row. An accepted check leaves a live,
/// unrevoked row whose window holds `iat`, and either the window did not change (so the rule
/// still does not hold) or `iat` entered it among the `size` newest values (so it is not older
/// than the oldest one kept). Hence applying the rule to the row gives the verdict. The row is
/// live in every case, so its expiry need not be looked at.
fn verdict_of(row: &SessionEntry, iat: i64, size: usize) -> Result<SessionVerdict, StoreError> {
    let len = row.iats.len();
    if row.revoked {
        Ok(SessionVerdict::Revoked)
    } else if len >= size && iat < row.iats[len - size] {
        Ok(SessionVerdict::Superseded)
    } else if row.iats.binary_search(&iat).is_ok() {
        Ok(SessionVerdict::Accepted)
    } else {
        Err(corrupt(format!(
            "an accepted iat {iat} is missing from the session window {:?}",
            row.iats
        )))
    }
}
