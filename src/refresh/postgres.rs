//! [`PostgresRefreshStore`]: server-held sessions in a PostgreSQL table, with the refresh lock as
//! a lease in the session's row under a fencing counter, one statement per operation.
//!
//! # Schema
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS tower_cognito_bff_sessions (
//!     id                text        PRIMARY KEY,  -- SHA-256 of the cookie, lowercase hex
//!     version           bigint      NOT NULL,     -- fence of the write that stored the record
//!     fence             bigint      NOT NULL,     -- the newest fence issued
//!     lock_until        timestamptz,              -- end of the holder's lease; NULL: free
//!     expires_at        bigint      NOT NULL,     -- seconds since the epoch; <= now: absent
//!     access_expires_at bigint      NOT NULL,
//!     sealed            bytea       NOT NULL
//! );
//! CREATE INDEX IF NOT EXISTS tower_cognito_bff_sessions_expires_at_idx
//!     ON tower_cognito_bff_sessions (expires_at);
//! ```
//!
//! # The lock
//!
//! [`lock`](RefreshStore::lock) is one `UPDATE` of the session's row: if the session is live and
//! `lock_until` is NULL or past (on the server's `clock_timestamp()`, so servers with skewed
//! clocks agree), it increments `fence`, sets `lock_until` to the end of the lease and returns
//! the record. [`save`](RefreshStore::save) is one `UPDATE` guarded by `version < $fence` (no
//! save under this or a newer fence came first), which also clears `lock_until` when the lease
//! is the caller's. Each is a single statement in its own implicit transaction; a CTE
//! in the same statement tells "busy" from "missing" (and "fenced" from "missing"), so every
//! operation is one round trip and no transaction stays open between them.
//!
//! Why not `SELECT ... FOR UPDATE` or an advisory lock, PostgreSQL's own locks? Both belong to
//! a session or transaction of the server, so:
//!
//! - the holder would keep a pooled connection, and with a row lock a transaction, open across
//!   the whole Cognito call: one stuck refresh per connection exhausts the pool, and a long open
//!   transaction holds back vacuum;
//! - a holder that dies (or is cut off) keeps its lock until PostgreSQL notices its TCP
//!   connection is dead, which with default keepalives takes hours, not a lease;
//! - neither gives a fence, so a holder that paused past any timeout and comes back could still
//!   overwrite what a newer holder saved. The counter in the row refuses that late write.
//!
//! A lease in the row with a fencing counter has none of these problems: a dead holder blocks
//! its session for at most the lease, and its late `save` answers [`SaveOutcome::Fenced`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::tokio_postgres::types::Type;
use deadpool_postgres::tokio_postgres::Row;
use deadpool_postgres::{Object, Pool};

use super::store::{LockOutcome, RefreshStore, SaveOutcome, SessionRecord};
use crate::session::postgres_connection::{
    check_pool, connect_pool, corrupt, delete_expired, quoted_table, run_schema, unavailable,
    ADOPTED_TARGET,
};
use crate::session::{PostgresTls, StoreError, StoreErrorKind, StoreFuture};

/// The table used unless [`PostgresRefreshStore::with_table`] names another.
const DEFAULT_TABLE: &str = "tower_cognito_bff_sessions";

/// The longest lease: a century, in microseconds. A longer one is cut to it.
const MAX_LEASE_MICROS: u128 = 100 * 365 * 24 * 3600 * 1_000_000;

/// `CREATE TABLE`, then `CREATE INDEX`, in one transaction after taking an advisory lock on the
/// table name: `IF NOT EXISTS` alone is not safe when several servers start at once on a fresh
/// database. (This advisory lock lives for the schema transaction only, not for a refresh.)
const SCHEMA_SQL: &str = "\
SELECT pg_advisory_xact_lock(hashtext('tower-cognito schema {name}'));
CREATE TABLE IF NOT EXISTS {table} (
    id text PRIMARY KEY,
    version bigint NOT NULL,
    fence bigint NOT NULL,
    lock_until timestamptz,
    expires_at bigint NOT NULL,
    access_expires_at bigint NOT NULL,
    sealed bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS {index} ON {table} (expires_at);";

/// `$1` id, `$2` now.
const LOAD_SQL: &str = "\
SELECT version, expires_at, access_expires_at, sealed FROM {table}
WHERE id = $1 AND expires_at > $2";

const LOAD_TYPES: &[Type] = &[Type::TEXT, Type::INT8];

/// `$1` id, `$2` version (also the first fence), `$3` expires_at, `$4` access_expires_at, `$5`
/// sealed. Replaces any row there, its lock included.
const CREATE_SQL: &str = "\
INSERT INTO {table} AS t (id, version, fence, lock_until, expires_at, access_expires_at, sealed)
VALUES ($1, $2, $2, NULL, $3, $4, $5)
ON CONFLICT (id) DO UPDATE SET
    version = EXCLUDED.version,
    fence = EXCLUDED.fence,
    lock_until = NULL,
    expires_at = EXCLUDED.expires_at,
    access_expires_at = EXCLUDED.access_expires_at,
    sealed = EXCLUDED.sealed";

const CREATE_TYPES: &[Type] = &[Type::TEXT, Type::INT8, Type::INT8, Type::INT8, Type::BYTEA];

/// `$1` id, `$2` now, `$3` the lease in microseconds. One row always: the new fence and the
/// record when the lock was taken (NULLs otherwise), whether the session is live (in the
/// statement's snapshot), which tells busy from missing, and whether an earlier holder's lease
/// had ended without a save or an unlock (its `lock_until` was still set; the subquery reads
/// the statement's snapshot, the row before this update).
///
/// Two lockers at once: the second `UPDATE` waits for the first's row lock (held for the few
/// microseconds of that statement only), then re-reads the row, finds the new lease running and
/// updates nothing; the row is live in its snapshot, so it answers busy.
const LOCK_SQL: &str = "\
WITH locked AS (
    UPDATE {table}
    SET fence = fence + 1,
        lock_until = clock_timestamp() + $3 * interval '1 microsecond'
    WHERE id = $1 AND expires_at > $2
      AND (lock_until IS NULL OR lock_until <= clock_timestamp())
    RETURNING fence, version, expires_at, access_expires_at, sealed,
        (SELECT o.lock_until IS NOT NULL FROM {table} AS o WHERE o.id = $1) AS took_over
)
SELECT l.fence, l.version, l.expires_at, l.access_expires_at, l.sealed,
       EXISTS (SELECT 1 FROM {table} WHERE id = $1 AND expires_at > $2) AS live,
       l.took_over
FROM (VALUES (1)) AS one (x) LEFT JOIN locked AS l ON true";

const LOCK_TYPES: &[Type] = &[Type::TEXT, Type::INT8, Type::INT8];

/// `$1` id, `$2` now, `$3` fence, `$4` version, `$5` expires_at, `$6` access_expires_at, `$7`
/// sealed. Answers whether the record was saved and whether the session is live (in the
/// statement's snapshot): not saved but live is fenced.
///
/// Saved only while no save under this or a newer fence came first (`version < $3`); the lease
/// is released only when it is this fence's (`fence = $3`: the newest fence holds the lock). A
/// save made meanwhile makes the `UPDATE` wait, re-read the row and find the newer version: not
/// saved, live: fenced. A session deleted meanwhile also answers fenced rather than missing;
/// either way nothing was saved and the caller's tokens are not the session's.
const SAVE_SQL: &str = "\
WITH saved AS (
    UPDATE {table}
    SET version = $4, expires_at = $5, access_expires_at = $6, sealed = $7,
        lock_until = CASE WHEN fence = $3 THEN NULL ELSE lock_until END
    WHERE id = $1 AND expires_at > $2 AND version < $3
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM saved) AS saved,
       EXISTS (SELECT 1 FROM {table} WHERE id = $1 AND expires_at > $2) AS live";

const SAVE_TYPES: &[Type] = &[
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::BYTEA,
];

/// `$1` id, `$2` fence: frees the lock if `fence` is still the newest (then the lease is its).
const UNLOCK_SQL: &str = "\
UPDATE {table} SET lock_until = NULL
WHERE id = $1 AND fence = $2 AND lock_until IS NOT NULL";

const UNLOCK_TYPES: &[Type] = &[Type::TEXT, Type::INT8];

/// `$1` id.
const DELETE_SQL: &str = "DELETE FROM {table} WHERE id = $1";

const DELETE_TYPES: &[Type] = &[Type::TEXT];

/// Removes the sessions expired at `$1`.
const CLEANUP_SQL: &str = "DELETE FROM {table} WHERE expires_at <= $1";

/// Server-held sessions in a PostgreSQL table, shared by every server using the same table and
/// kept across restarts, with one refresh lock per session.
///
/// The lock is a lease in the session's row (`lock_until`, on the server's clock) with a fencing
/// counter (`fence`), taken and released by one statement each. Not `SELECT ... FOR UPDATE` and
/// not an advisory lock: either would hold a pooled connection (and a row lock a transaction)
/// open across the Cognito call, would outlive a dead holder until PostgreSQL notices its TCP
/// connection is gone, and gives no fence to refuse the late write of a holder whose lease
/// ended. Create the table once with [`create_schema`](Self::create_schema) (or with your
/// migrations, using the SQL shown there), and remove ended sessions now and then with
/// [`cleanup_expired`](Self::cleanup_expired).
///
/// ```no_run
/// # async fn run() -> Result<(), tower_cognito::session::StoreError> {
/// use std::sync::Arc;
/// use tower_cognito::refresh::{PostgresRefreshStore, RefreshStore};
///
/// let store = PostgresRefreshStore::connect("postgres://app@db.internal/app")
///     .await?
///     .with_table("auth.bff_sessions")?;
/// store.create_schema().await?;
/// let store: Arc<dyn RefreshStore> = Arc::new(store);
/// # Ok(()) }
/// ```
///
/// Cloning is cheap: clones share the pool.
#[derive(Clone)]
pub struct PostgresRefreshStore {
    pool: Pool,
    sql: Arc<Statements>,
    /// Where the pool connects, for `Debug`: never includes the password.
    target: Arc<str>,
}

/// The statements, with the table name filled in.
struct Statements {
    table: String,
    schema: String,
    load: String,
    create: String,
    lock: String,
    save: String,
    unlock: String,
    delete: String,
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
            load: fill(LOAD_SQL),
            create: fill(CREATE_SQL),
            lock: fill(LOCK_SQL),
            save: fill(SAVE_SQL),
            unlock: fill(UNLOCK_SQL),
            delete: fill(DELETE_SQL),
            cleanup: fill(CLEANUP_SQL),
        })
    }
}

impl PostgresRefreshStore {
    /// Connects to the PostgreSQL server at `url` (a `postgres://` URL or a `key=value`
    /// connection string, as understood by tokio-postgres), using the table
    /// `tower_cognito_bff_sessions`.
    ///
    /// TLS as `url`'s `sslmode` says, with the system's trusted roots: `sslmode=require` is TLS
    /// with the certificate and host name verified, `disable`, `prefer` or none is plaintext
    /// (see [`PostgresTls`] for the table, and [`connect_with_tls`](Self::connect_with_tls) to
    /// trust another CA). Connections go through a pool; one is opened right away to check
    /// that the server answers. A malformed `url` is an error of kind
    /// [`InvalidInput`](StoreErrorKind::InvalidInput); a server that cannot be reached, fails
    /// the TLS check or refuses the login one of kind
    /// [`Unavailable`](StoreErrorKind::Unavailable). Unless the connection string sets
    /// `connect_timeout`, connecting gives up after 10 seconds. Neither the error nor `Debug`
    /// ever shows the password.
    pub async fn connect(url: &str) -> Result<PostgresRefreshStore, StoreError> {
        Self::connect_to(url, None).await
    }

    /// [`connect`](Self::connect), with TLS settings: TLS with `tls`'s roots when `url` says
    /// `sslmode=require`, and also with `prefer` or no `sslmode` when the server offers TLS;
    /// plaintext only with `sslmode=disable`, or `prefer` against a server without TLS. The
    /// certificate and host name are always verified. See [`PostgresTls`].
    pub async fn connect_with_tls(
        url: &str,
        tls: &PostgresTls,
    ) -> Result<PostgresRefreshStore, StoreError> {
        Self::connect_to(url, Some(tls)).await
    }

    async fn connect_to(
        url: &str,
        tls: Option<&PostgresTls>,
    ) -> Result<PostgresRefreshStore, StoreError> {
        let (pool, target) = connect_pool(url, tls)?;
        Self::on_pool(pool, target).await
    }

    /// Uses a pool the application already has, using the table `tower_cognito_bff_sessions`;
    /// one connection is checked out right away (an error of kind
    /// [`Unavailable`](StoreErrorKind::Unavailable) when the server does not answer).
    /// deadpool-postgres is a public dependency here, as in
    /// [`PostgresStore::from_pool`](crate::session::PostgresStore::from_pool), which says why
    /// and what the pool should be like.
    pub async fn from_pool(pool: Pool) -> Result<PostgresRefreshStore, StoreError> {
        Self::on_pool(pool, Arc::from(ADOPTED_TARGET)).await
    }

    async fn on_pool(pool: Pool, target: Arc<str>) -> Result<PostgresRefreshStore, StoreError> {
        let store = Self {
            pool,
            sql: Arc::new(Statements::new(DEFAULT_TABLE)?),
            target,
        };
        check_pool(&store.pool).await?;
        Ok(store)
    }

    /// Uses the table `table` instead of `tower_cognito_bff_sessions`: a plain identifier,
    /// optionally qualified by a schema (`schema.name`), made of ASCII letters, digits and `_` and
    /// not starting with a digit; the name at most 48 bytes, the schema at most 63. The name is
    /// quoted in the SQL, so it is used exactly as given (case included). Anything else is an
    /// error of kind [`InvalidInput`](StoreErrorKind::InvalidInput).
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
    ///     id text PRIMARY KEY,
    ///     version bigint NOT NULL,
    ///     fence bigint NOT NULL,
    ///     lock_until timestamptz,
    ///     expires_at bigint NOT NULL,
    ///     access_expires_at bigint NOT NULL,
    ///     sealed bytea NOT NULL
    /// );
    /// CREATE INDEX IF NOT EXISTS {table}_expires_at_idx ON {table} (expires_at);
    /// ```
    ///
    /// Safe to run at every start (the schema of the table must already exist). An existing
    /// table is left as it is, even if its columns differ.
    pub async fn create_schema(&self) -> Result<(), StoreError> {
        run_schema(&self.pool, &self.sql.schema).await
    }

    /// Deletes the sessions expired at `now` (seconds since the epoch: those with
    /// `expires_at <= now`, which already count as absent) and returns how many were deleted.
    ///
    /// Expired rows are never read as live, so this only reclaims space: run it periodically
    /// (for example hourly) from one server.
    pub async fn cleanup_expired(&self, now: i64) -> Result<u64, StoreError> {
        delete_expired(&self.pool, &self.sql.cleanup, now).await
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(unavailable)
    }

    async fn load_record(&self, id: &str, now: i64) -> Result<Option<SessionRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_typed_cached(&self.sql.load, LOAD_TYPES)
            .await
            .map_err(unavailable)?;
        let row = client
            .query_opt(&statement, &[&id, &now])
            .await
            .map_err(unavailable)?;
        row.as_ref().map(|row| read_record(row, 0)).transpose()
    }

    async fn create_record(&self, id: &str, record: &SessionRecord) -> Result<(), StoreError> {
        let version = to_bigint(record.version)?;
        let client = self.client().await?;
        let statement = client
            .prepare_typed_cached(&self.sql.create, CREATE_TYPES)
            .await
            .map_err(unavailable)?;
        client
            .execute(
                &statement,
                &[
                    &id,
                    &version,
                    &record.expires_at,
                    &record.access_expires_at,
                    &record.sealed,
                ],
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn lock_record(
        &self,
        id: &str,
        lease: Duration,
        now: i64,
    ) -> Result<LockOutcome, StoreError> {
        // At most a century: fits an i64.
        let lease_micros = lease.as_micros().min(MAX_LEASE_MICROS) as i64;
        let client = self.client().await?;
        let statement = client
            .prepare_typed_cached(&self.sql.lock, LOCK_TYPES)
            .await
            .map_err(unavailable)?;
        let row = client
            .query_one(&statement, &[&id, &now, &lease_micros])
            .await
            .map_err(unavailable)?;
        let fence: Option<i64> = row.try_get(0).map_err(corrupt)?;
        let live: bool = row.try_get(5).map_err(corrupt)?;
        match fence {
            Some(fence) => Ok(LockOutcome::Acquired {
                fence: from_bigint(fence)?,
                record: read_record(&row, 1)?,
                took_over: row.try_get::<_, Option<bool>>(6).map_err(corrupt)? == Some(true),
            }),
            None if live => Ok(LockOutcome::Busy),
            None => Ok(LockOutcome::Missing),
        }
    }

    async fn save_record(
        &self,
        id: &str,
        record: &SessionRecord,
        fence: u64,
        now: i64,
    ) -> Result<SaveOutcome, StoreError> {
        let version = to_bigint(record.version)?;
        // No fence this large was ever issued: the row cannot hold one.
        let Ok(fence) = i64::try_from(fence) else {
            return Ok(SaveOutcome::Fenced);
        };
        let client = self.client().await?;
        let statement = client
            .prepare_typed_cached(&self.sql.save, SAVE_TYPES)
            .await
            .map_err(unavailable)?;
        let row = client
            .query_one(
                &statement,
                &[
                    &id,
                    &now,
                    &fence,
                    &version,
                    &record.expires_at,
                    &record.access_expires_at,
                    &record.sealed,
                ],
            )
            .await
            .map_err(unavailable)?;
        let saved: bool = row.try_get(0).map_err(corrupt)?;
        let live: bool = row.try_get(1).map_err(corrupt)?;
        Ok(match (saved, live) {
            (true, _) => SaveOutcome::Saved,
            (false, true) => SaveOutcome::Fenced,
            (false, false) => SaveOutcome::Missing,
        })
    }

    async fn unlock_record(&self, id: &str, fence: u64) -> Result<(), StoreError> {
        let Ok(fence) = i64::try_from(fence) else {
            return Ok(());
        };
        let client = self.client().await?;
        let statement = client
            .prepare_typed_cached(&self.sql.unlock, UNLOCK_TYPES)
            .await
            .map_err(unavailable)?;
        client
            .execute(&statement, &[&id, &fence])
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn delete_record(&self, id: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_typed_cached(&self.sql.delete, DELETE_TYPES)
            .await
            .map_err(unavailable)?;
        client
            .execute(&statement, &[&id])
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

impl RefreshStore for PostgresRefreshStore {
    fn load<'a>(&'a self, id: &'a str, now: i64) -> StoreFuture<'a, Option<SessionRecord>> {
        Box::pin(self.load_record(id, now))
    }

    fn create<'a>(
        &'a self,
        id: &'a str,
        record: &'a SessionRecord,
        _now: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.create_record(id, record))
    }

    fn lock<'a>(&'a self, id: &'a str, lease: Duration, now: i64) -> StoreFuture<'a, LockOutcome> {
        Box::pin(self.lock_record(id, lease, now))
    }

    fn save<'a>(
        &'a self,
        id: &'a str,
        record: &'a SessionRecord,
        fence: u64,
        now: i64,
    ) -> StoreFuture<'a, SaveOutcome> {
        Box::pin(self.save_record(id, record, fence, now))
    }

    fn unlock<'a>(&'a self, id: &'a str, fence: u64) -> StoreFuture<'a, ()> {
        Box::pin(self.unlock_record(id, fence))
    }

    fn delete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(self.delete_record(id))
    }
}

impl fmt::Debug for PostgresRefreshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresRefreshStore")
            .field("target", &self.target)
            .field("table", &self.sql.table)
            .field("connections", &status.size)
            .field("max_connections", &status.max_size)
            .finish()
    }
}

/// A version as a `bigint`; one beyond `i64::MAX` cannot be stored.
fn to_bigint(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| {
        StoreError::new(
            StoreErrorKind::InvalidInput,
            "versions beyond i64::MAX cannot be stored in PostgreSQL",
        )
    })
}

/// A stored version or fence, which this crate never writes negative.
fn from_bigint(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(format!("negative version or fence {value}")))
}

/// Reads `version, expires_at, access_expires_at, sealed` from the columns at `first`.
fn read_record(row: &Row, first: usize) -> Result<SessionRecord, StoreError> {
    let version: i64 = row.try_get(first).map_err(corrupt)?;
    let expires_at: i64 = row.try_get(first + 1).map_err(corrupt)?;
    let access_expires_at: i64 = row.try_get(first + 2).map_err(corrupt)?;
    let sealed: Vec<u8> = row.try_get(first + 3).map_err(corrupt)?;
    Ok(SessionRecord::new(
        from_bigint(version)?,
        expires_at,
        access_expires_at,
        sealed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        for ok in ["sessions", "auth.sessions", "_t1", &"a".repeat(48)] {
            assert!(quoted_table(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "a.b.c",
            "a-b",
            "a\"b",
            "a; DROP TABLE x",
            ".a",
            "a.",
            &"a".repeat(49),
        ] {
            assert_eq!(
                quoted_table(bad).unwrap_err().kind(),
                StoreErrorKind::InvalidInput,
                "{bad}"
            );
        }
    }

    #[test]
    fn statements_quote_the_table() {
        let sql = Statements::new("auth.bff").unwrap();
        assert!(sql.lock.contains("UPDATE \"auth\".\"bff\""));
        assert!(sql
            .schema
            .contains("\"bff_expires_at_idx\" ON \"auth\".\"bff\""));
    }
}
