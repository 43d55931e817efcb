//! `PostgresStore` against a real PostgreSQL server (`DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). Every test uses its own table, dropped at the end.
#![cfg(feature = "postgres")]

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use support::model::{Rng, WindowModel};
use support::stores::{database_url, postgres_client, postgres_store, postgres_store_with_schema};
use tower_cognito::session::{
    PostgresStore, SessionEntry, SessionStore, SessionVerdict, StoreErrorKind, WindowLimits,
    MAX_WINDOW,
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

async fn run(
    store: &PostgresStore,
    key: &str,
    ops: &[i64],
    lim: WindowLimits,
) -> Vec<SessionVerdict> {
    let mut verdicts = Vec::new();
    for &iat in ops {
        verdicts.push(store.check_and_advance(key, iat, 0, lim).await.unwrap());
    }
    verdicts
}

// ---------------------------------------------------------------------------
// The unit tests of window.rs, through PostgreSQL
// ---------------------------------------------------------------------------

#[tokio::test]
async fn keeps_current_and_previous() {
    let (store, _table) = fresh_store().await;
    let lim = limits(2, 100);
    let v = run(&store, "k", &[100, 200, 100, 300, 100, 200, 300], lim).await;
    assert_eq!(
        v,
        [Accepted, Accepted, Accepted, Accepted, Superseded, Accepted, Accepted]
    );
    let entry = store.entry("k", 0).await.unwrap().unwrap();
    assert_eq!(entry.iats, [200, 300]);
    assert!(!entry.revoked);
    assert_eq!(entry.expires_at, 100);
}

#[tokio::test]
async fn a_late_older_token_enters_a_window_that_is_not_full() {
    let (store, _table) = fresh_store().await;
    let v = run(&store, "k", &[200, 100], limits(2, 100)).await;
    assert_eq!(v, [Accepted; 2]);
    assert_eq!(store.entry("k", 0).await.unwrap().unwrap().iats, [100, 200]);
}

#[tokio::test]
async fn revoked_and_expired() {
    let (store, _table) = fresh_store().await;
    let lim = limits(2, 100);
    store.revoke("k", 0, lim).await.unwrap();
    assert_eq!(
        store.entry("k", 0).await.unwrap(),
        Some(SessionEntry::new(vec![], true, 100))
    );
    assert_eq!(
        store.check_and_advance("k", 5, 50, lim).await.unwrap(),
        Revoked
    );
    // A refused check changes nothing, not even the expiry.
    assert_eq!(store.entry("k", 99).await.unwrap().unwrap().expires_at, 100);
    // After the TTL the entry is as if never seen.
    assert_eq!(store.entry("k", 100).await.unwrap(), None);
    assert_eq!(
        store.check_and_advance("k", 5, 100, lim).await.unwrap(),
        Accepted
    );
    assert_eq!(
        store.entry("k", 100).await.unwrap(),
        Some(SessionEntry::new(vec![5], false, 200))
    );
}

#[tokio::test]
async fn larger_windows_keep_the_newest() {
    let (store, _table) = fresh_store().await;
    let lim = limits(3, 10);
    run(&store, "k", &[5, 1, 9, 7, 3], lim).await;
    assert_eq!(store.entry("k", 0).await.unwrap().unwrap().iats, [5, 7, 9]);
}

#[tokio::test]
async fn revoke_keeps_the_live_window_and_extends_it() {
    let (store, _table) = fresh_store().await;
    let lim = limits(2, 100);
    run(&store, "k", &[10, 20], lim).await;
    store.revoke("k", 30, lim).await.unwrap();
    let entry = store.entry("k", 30).await.unwrap().unwrap();
    assert_eq!(
        (entry.iats, entry.revoked, entry.expires_at),
        (vec![10, 20], true, 130)
    );
    // Revoking again extends the revocation.
    store.revoke("k", 120, lim).await.unwrap();
    assert_eq!(
        store.entry("k", 200).await.unwrap().unwrap().expires_at,
        220
    );
    // Revoking an expired entry starts from an empty window.
    store.check_and_advance("j", 10, 0, lim).await.unwrap();
    store.revoke("j", 100, lim).await.unwrap();
    assert_eq!(
        store.entry("j", 100).await.unwrap().unwrap().iats,
        Vec::<i64>::new()
    );
}

#[tokio::test]
async fn superseded_leaves_the_entry_unchanged() {
    let (store, _table) = fresh_store().await;
    let lim = limits(1, 100);
    assert_eq!(
        store.check_and_advance("k", 50, 0, lim).await.unwrap(),
        Accepted
    );
    assert_eq!(
        store.check_and_advance("k", 40, 60, lim).await.unwrap(),
        Superseded
    );
    let entry = store.entry("k", 60).await.unwrap().unwrap();
    assert_eq!((entry.iats, entry.expires_at), (vec![50], 100));
    // The same iat again is accepted and extends the entry.
    assert_eq!(
        store.check_and_advance("k", 50, 60, lim).await.unwrap(),
        Accepted
    );
    assert_eq!(store.entry("k", 60).await.unwrap().unwrap().expires_at, 160);
}

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

#[tokio::test]
async fn expiry_follows_the_now_passed_in() {
    let (store, _table) = fresh_store().await;
    let lim = limits(1, 10);
    store.check_and_advance("k", 100, 1_000, lim).await.unwrap();
    // Still live at 1_009: an older token is superseded.
    assert_eq!(
        store.check_and_advance("k", 50, 1_009, lim).await.unwrap(),
        Superseded
    );
    // Expired at 1_010: the same token starts a new window.
    assert_eq!(
        store.check_and_advance("k", 50, 1_010, lim).await.unwrap(),
        Accepted
    );
    assert_eq!(store.entry("k", 1_010).await.unwrap().unwrap().iats, [50]);
}

// ---------------------------------------------------------------------------
// Against the model
// ---------------------------------------------------------------------------

/// Random checks, revocations and clock jumps on a few keys; `size` picks the window size of
/// each operation.
async fn compare_with_model(
    store: &PostgresStore,
    seed: u64,
    ops: usize,
    size: impl Fn(&mut Rng) -> usize,
) {
    let mut rng = Rng(seed);
    let mut model = WindowModel::default();
    let keys = ["a", "b", "c"];
    let mut now = 1_000;
    for step in 0..ops {
        let lim = limits(size(&mut rng), 50);
        let key = keys[rng.below(keys.len() as u64) as usize];
        now += match rng.below(20) {
            0 => 60,
            n => n as i64 % 4,
        };
        if rng.below(40) == 0 {
            store.revoke(key, now, lim).await.unwrap();
            model.revoke(key, now, lim);
        } else {
            let iat = rng.below(24) as i64;
            let got = store.check_and_advance(key, iat, now, lim).await.unwrap();
            let want = model.check(key, iat, now, lim);
            assert_eq!(
                got, want,
                "step {step}: check {key} iat {iat} now {now} {lim:?}"
            );
        }
        for key in keys {
            assert_eq!(
                store.entry(key, now).await.unwrap(),
                model.live(key, now),
                "step {step}: entry {key} now {now}"
            );
        }
    }
}

#[tokio::test]
async fn window_sizes_1_to_8_match_the_model() {
    let (store, _table) = fresh_store().await;
    for size in 1..=MAX_WINDOW {
        store.cleanup_expired(i64::MAX).await.unwrap();
        compare_with_model(&store, 0x9E37_79B9 + size as u64, 300, |_| size).await;
    }
}

#[tokio::test]
async fn changing_window_sizes_match_the_model() {
    let (store, _table) = fresh_store().await;
    compare_with_model(&store, 0xC0FF_EE11, 600, |rng| {
        1 + rng.below(MAX_WINDOW as u64) as usize
    })
    .await;
}

#[tokio::test]
async fn extreme_times_and_iats() {
    let (store, _table) = fresh_store().await;
    let mut model = WindowModel::default();
    let lim = limits(2, i64::MAX);
    // The expiry saturates instead of overflowing.
    assert_eq!(
        store
            .check_and_advance("k", i64::MIN, 5, lim)
            .await
            .unwrap(),
        Accepted
    );
    assert_eq!(
        store
            .check_and_advance("k", i64::MAX, 5, lim)
            .await
            .unwrap(),
        Accepted
    );
    assert_eq!(
        store.check_and_advance("k", 0, 5, lim).await.unwrap(),
        Accepted
    );
    assert_eq!(
        store.check_and_advance("k", -1, 5, lim).await.unwrap(),
        Superseded
    );
    let entry = store.entry("k", 5).await.unwrap().unwrap();
    assert_eq!(
        (entry.iats, entry.expires_at),
        (vec![0, i64::MAX], i64::MAX)
    );
    for (iat, now) in [(3, -100), (1, -100), (2, -50), (7, i64::MIN + 1)] {
        let lim = limits(2, 10);
        assert_eq!(
            store.check_and_advance("neg", iat, now, lim).await.unwrap(),
            model.check("neg", iat, now, lim)
        );
        assert_eq!(
            store.entry("neg", now).await.unwrap(),
            model.live("neg", now)
        );
    }
}

// ---------------------------------------------------------------------------
// Persistence, concurrency, maintenance
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_new_instance_sees_what_another_wrote() {
    let table = TestTable::new();
    let lim = limits(2, 100);
    {
        let first = postgres_store(&table.name).await;
        first.create_schema().await.unwrap();
        run(&first, "k", &[100, 200, 300], lim).await;
        first.revoke("gone", 0, lim).await.unwrap();
    }
    let second = postgres_store(&table.name).await;
    // Running create_schema again is harmless and keeps the data.
    second.create_schema().await.unwrap();
    assert_eq!(store_iats(&second, "k").await, [200, 300]);
    assert_eq!(
        second.check_and_advance("k", 100, 0, lim).await.unwrap(),
        Superseded
    );
    assert_eq!(
        second.check_and_advance("k", 250, 0, lim).await.unwrap(),
        Accepted
    );
    assert_eq!(
        second.check_and_advance("gone", 1, 0, lim).await.unwrap(),
        Revoked
    );
    assert_eq!(store_iats(&second, "k").await, [250, 300]);
}

async fn store_iats(store: &PostgresStore, key: &str) -> Vec<i64> {
    store.entry(key, 0).await.unwrap().expect("entry").iats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_first_checks_of_a_new_key_are_all_accepted() {
    let (first, _table) = fresh_store().await;
    let second = first.clone().with_table(first.table()).unwrap();
    // A second pool, as another server would have.
    let other = postgres_store(first.table()).await;
    let stores = [Arc::new(first), Arc::new(other), Arc::new(second)];
    let lim = limits(2, 100);
    for round in 0..20 {
        let key = format!("new-{round}");
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..50 {
            let store = Arc::clone(&stores[i % 2 + usize::from(i % 7 == 0)]);
            let key = key.clone();
            let iat = if i % 2 == 0 { 100 } else { 200 };
            tasks.spawn(async move { store.check_and_advance(&key, iat, 0, lim).await.unwrap() });
        }
        let verdicts = tasks.join_all().await;
        assert!(
            verdicts.iter().all(|&v| v == Accepted),
            "round {round}: {verdicts:?}"
        );
        assert_eq!(
            store_iats(&stores[0], &key).await,
            [100, 200],
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_checks_keep_the_newest_values() {
    let (first, _table) = fresh_store().await;
    let other = postgres_store(first.table()).await;
    let stores = [Arc::new(first), Arc::new(other)];
    let lim = limits(MAX_WINDOW, 100);
    for round in 0..5 {
        let key = format!("top-{round}");
        let mut tasks = tokio::task::JoinSet::new();
        for iat in 1..=40_i64 {
            let store = Arc::clone(&stores[iat as usize % 2]);
            let key = key.clone();
            tasks.spawn(async move {
                (
                    iat,
                    store.check_and_advance(&key, iat, 0, lim).await.unwrap(),
                )
            });
        }
        let verdicts = tasks.join_all().await;
        // One of the 8 newest values can never be superseded, and never falls out.
        for (iat, verdict) in &verdicts {
            assert_ne!(*verdict, Revoked);
            if *iat > 32 {
                assert_eq!(*verdict, Accepted, "iat {iat}");
            }
        }
        assert_eq!(
            store_iats(&stores[0], &key).await,
            (33..=40).collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocation_wins_over_concurrent_checks() {
    let (store, _table) = fresh_store().await;
    let store = Arc::new(store);
    let lim = limits(2, 100);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            if i == 20 {
                store.revoke("k", 0, lim).await.unwrap();
                None
            } else {
                Some(
                    store
                        .check_and_advance("k", 100 + i % 2, 0, lim)
                        .await
                        .unwrap(),
                )
            }
        });
    }
    let verdicts = tasks.join_all().await;
    assert!(verdicts
        .iter()
        .flatten()
        .all(|&v| v == Accepted || v == Revoked));
    assert!(store.entry("k", 0).await.unwrap().unwrap().revoked);
    assert_eq!(
        store.check_and_advance("k", 101, 0, lim).await.unwrap(),
        Revoked
    );
}

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
async fn out_of_range_limits_are_refused() {
    let (store, _table) = fresh_store().await;
    for lim in [
        limits(0, 10),
        limits(MAX_WINDOW + 1, 10),
        limits(2, 0),
        limits(2, -5),
    ] {
        let err = store.check_and_advance("k", 1, 0, lim).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::InvalidInput, "{lim:?}");
        let err = store.revoke("k", 0, lim).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::InvalidInput, "{lim:?}");
    }
    assert_eq!(store.entry("k", 0).await.unwrap(), None);
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
