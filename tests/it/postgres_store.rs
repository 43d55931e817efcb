//! `PostgresStore` against a real PostgreSQL server (`DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`): what is PostgreSQL's own. Refusals that write no
//! row version, `cleanup_expired`, table names and schemas, rows this crate never writes,
//! connection errors, `Debug`. Every test uses its own table, dropped at the end. The session
//! semantics are written once for every backend: `session_behaviour.rs` (the shared suite) and
//! `session_model.rs` (against the model).
#![cfg(feature = "postgres")]

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};

use support::stores::{database_url, postgres_client, postgres_store, postgres_store_with_schema};
use tower_cognito::session::{
    PostgresStore, SessionStore, SessionVerdict, StoreErrorKind, WindowLimits,
};

use SessionVerdict::{Accepted, Revoked, Superseded};

/// Runs `sql` on a fresh connection in a thread of its own: usable from `Drop`, even while the
/// test's runtime is unwinding.
fn run_sql_blocking(sql: String) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            if let Ok(client) =
                tokio::time::timeout(std::time::Duration::from_secs(10), postgres_client()).await
            {
                let _ = client.batch_execute(&sql).await;
            }
        });
    })
    .join()
    .expect("cleanup thread");
}

/// A unique table (optionally in a unique schema), dropped when this guard goes out of scope,
/// also when the test fails.
struct TestTable {
    name: String,
    drop_sql: String,
}

static NEXT_TABLE: AtomicUsize = AtomicUsize::new(0);

impl TestTable {
    fn new() -> Self {
        let name = format!(
            "tc_test_{}_{}",
            std::process::id(),
            NEXT_TABLE.fetch_add(1, Ordering::Relaxed)
        );
        let drop_sql = format!("DROP TABLE IF EXISTS \"{name}\"");
        Self { name, drop_sql }
    }

    /// A table `tc_test_schema_{pid}_{n}.sessions`; the schema is created now.
    async fn in_new_schema() -> Self {
        let schema = format!(
            "tc_test_schema_{}_{}",
            std::process::id(),
            NEXT_TABLE.fetch_add(1, Ordering::Relaxed)
        );
        postgres_client()
            .await
            .batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
            .await
            .expect("create schema");
        Self {
            name: format!("{schema}.sessions"),
            drop_sql: format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
        }
    }

    /// The table name quoted for SQL.
    fn quoted(&self) -> String {
        self.name
            .split('.')
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(".")
    }
}

impl Drop for TestTable {
    fn drop(&mut self) {
        run_sql_blocking(std::mem::take(&mut self.drop_sql));
    }
}

/// A store on a new table, with its schema created.
async fn fresh_store() -> (PostgresStore, TestTable) {
    let table = TestTable::new();
    let store = postgres_store_with_schema(&table.name).await;
    (store, table)
}

fn limits(size: usize, ttl_secs: i64) -> WindowLimits {
    WindowLimits::new(size, ttl_secs)
}

async fn store_iats(store: &PostgresStore, key: &str) -> Vec<i64> {
    store.entry(key, 0).await.unwrap().expect("entry").iats
}

// ---------------------------------------------------------------------------
// Refusals write nothing
// ---------------------------------------------------------------------------

/// The row's version (`xmin`, the transaction that wrote it): it changes with every write.
async fn row_version(table: &TestTable, key: &str) -> String {
    let sql = format!("SELECT xmin::text FROM {} WHERE key = $1", table.quoted());
    postgres_client()
        .await
        .query_one(&sql, &[&key])
        .await
        .expect("the row")
        .get(0)
}

#[tokio::test]
async fn a_refused_check_writes_nothing() {
    let (store, table) = fresh_store().await;
    let lim = limits(2, 100);
    for iat in [50, 60] {
        assert_eq!(
            store.check_and_advance("k", iat, 0, lim).await.unwrap(),
            Accepted
        );
    }
    let before = row_version(&table, "k").await;
    // Superseded: refused, the row not even rewritten.
    assert_eq!(
        store.check_and_advance("k", 40, 1, lim).await.unwrap(),
        Superseded
    );
    assert_eq!(
        row_version(&table, "k").await,
        before,
        "a superseded check wrote"
    );
    // Revoked: every check refused, none of them a write.
    store.revoke("k", 2, lim).await.unwrap();
    let revoked = row_version(&table, "k").await;
    for iat in [40, 60, 70] {
        assert_eq!(
            store.check_and_advance("k", iat, 3, lim).await.unwrap(),
            Revoked
        );
    }
    assert_eq!(
        row_version(&table, "k").await,
        revoked,
        "a revoked check wrote"
    );
    // An accepted check still writes.
    assert_eq!(
        store.check_and_advance("k2", 10, 0, lim).await.unwrap(),
        Accepted
    );
    let first = row_version(&table, "k2").await;
    assert_eq!(
        store.check_and_advance("k2", 20, 0, lim).await.unwrap(),
        Accepted
    );
    assert_ne!(row_version(&table, "k2").await, first);
}

// ---------------------------------------------------------------------------
// Maintenance
// ---------------------------------------------------------------------------

#[tokio::test]
async fn cleanup_expired_removes_exactly_the_expired_rows() {
    let (store, _table) = fresh_store().await;
    for i in 0..10_i64 {
        let lim = limits(2, 10 * (i + 1));
        if i % 3 == 0 {
            store.revoke(&format!("k{i}"), 0, lim).await.unwrap();
        } else {
            store
                .check_and_advance(&format!("k{i}"), 1, 0, lim)
                .await
                .unwrap();
        }
    }
    // Expiries are 10, 20, ..., 100: those <= 50 go.
    assert_eq!(store.cleanup_expired(50).await.unwrap(), 5);
    for i in 0..10 {
        // Read at time 0, when every entry was live: only a deleted one is missing.
        let present = store.entry(&format!("k{i}"), 0).await.unwrap().is_some();
        assert_eq!(present, i >= 5, "k{i}");
    }
    assert_eq!(store.cleanup_expired(50).await.unwrap(), 0);
    assert_eq!(store.cleanup_expired(100).await.unwrap(), 5);
    assert_eq!(store.cleanup_expired(i64::MAX).await.unwrap(), 0);
}

// ---------------------------------------------------------------------------
// Configuration and errors
// ---------------------------------------------------------------------------

#[tokio::test]
async fn invalid_table_names_are_refused() {
    let store = PostgresStore::connect(&database_url()).await.unwrap();
    assert_eq!(store.table(), "tower_cognito_sessions");
    let too_long = "t".repeat(49);
    let long_schema = format!("{}.t", "s".repeat(64));
    for bad in [
        "",
        "sessions; DROP TABLE users",
        "a\"b",
        "1sessions",
        "a.b.c",
        ".sessions",
        "public.",
        "my-sessions",
        "my sessions",
        "séances",
        "x'y",
        too_long.as_str(),
        long_schema.as_str(),
    ] {
        let err = store.clone().with_table(bad).expect_err(bad);
        assert_eq!(err.kind(), StoreErrorKind::InvalidInput, "{bad:?}");
    }
    let longest = "t".repeat(48);
    for good in [
        "sessions",
        "_s1",
        "public.tower_cognito_sessions",
        "Mixed_Case",
        longest.as_str(),
    ] {
        assert_eq!(store.clone().with_table(good).expect(good).table(), good);
    }
}

#[tokio::test]
async fn schema_qualified_and_mixed_case_tables_work() {
    let table = TestTable::in_new_schema().await;
    let store = postgres_store(&table.name).await;
    store.create_schema().await.unwrap();
    store.create_schema().await.unwrap();
    assert_eq!(
        store
            .check_and_advance("k", 1, 0, limits(2, 10))
            .await
            .unwrap(),
        Accepted
    );
    assert_eq!(store_iats(&store, "k").await, [1]);

    let mut mixed = TestTable::new();
    mixed.name = format!("TC_Mixed_{}", mixed.name);
    mixed.drop_sql = format!("DROP TABLE IF EXISTS \"{}\"", mixed.name);
    let store = postgres_store(&mixed.name).await;
    store.create_schema().await.unwrap();
    assert_eq!(
        store
            .check_and_advance("k", 2, 0, limits(2, 10))
            .await
            .unwrap(),
        Accepted
    );
    let count: i64 = postgres_client()
        .await
        .query_one(&format!("SELECT count(*) FROM {}", mixed.quoted()), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_closed_port_is_unavailable() {
    let err = PostgresStore::connect("postgres://postgres@127.0.0.1:1/test")
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
}

#[tokio::test]
async fn a_malformed_url_is_invalid_input() {
    let err = PostgresStore::connect("postgres://postgres@127.0.0.1:notaport/test")
        .await
        .expect_err("malformed");
    assert_eq!(err.kind(), StoreErrorKind::InvalidInput);
}

#[tokio::test]
async fn a_missing_table_is_unavailable() {
    let table = TestTable::new();
    let store = postgres_store(&table.name).await;
    let err = store
        .check_and_advance("k", 1, 0, limits(2, 10))
        .await
        .expect_err("no table");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
}

#[tokio::test]
async fn rows_this_crate_never_writes_are_corrupt() {
    let (store, table) = fresh_store().await;
    postgres_client()
        .await
        .batch_execute(&format!(
            "INSERT INTO {t} VALUES ('unsorted', '{{3,1}}', false, 100), \
             ('null', '{{1,NULL}}', false, 100), ('nine', '{{1,2,3,4,5,6,7,8,9}}', false, 100)",
            t = table.quoted()
        ))
        .await
        .unwrap();
    for key in ["unsorted", "null", "nine"] {
        let err = store.entry(key, 0).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{key}");
    }
    let err = store
        .check_and_advance("null", 5, 0, limits(2, 10))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt);
}

#[tokio::test]
async fn debug_does_not_show_the_password() {
    let mut url = match url::Url::parse(&database_url()) {
        Ok(url) => url,
        Err(_) => return, // a key=value DATABASE_URL: nothing to rewrite
    };
    url.set_password(Some("hunter2-secret")).unwrap();
    // With trust authentication the password is not checked.
    let Ok(store) = PostgresStore::connect(url.as_str()).await else {
        return;
    };
    let debug = format!("{store:?}");
    assert!(debug.contains("PostgresStore"), "{debug}");
    assert!(debug.contains("tower_cognito_sessions"), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");
    let err = PostgresStore::connect("postgres://postgres:hunter2-secret@127.0.0.1:1/test")
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
}
