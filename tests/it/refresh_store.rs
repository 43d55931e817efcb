#![cfg(feature = "refresh")]
//! One behavioural suite for every `RefreshStore`, written once and run against each backend.
//!
//! Every check is an `async fn` taking an `Arc<dyn RefreshStore>` (the concurrent one takes two
//! handles on the same backend); the [`suite!`] macro turns each into a `#[tokio::test]` per
//! backend:
//!
//! - `memory`: [`MemoryRefreshStore`], always (its "two handles" are one store);
//! - `redis`: `RedisRefreshStore` on `REDIS_URL` (default `redis://127.0.0.1:6379`), with the
//!   `redis` feature; every test uses its own key prefix, deleted at the end;
//! - `redis_cluster`: `RedisRefreshStore` on a local Redis Cluster the tests start themselves,
//!   with the `redis` feature;
//! - `postgres`: `PostgresRefreshStore` on `DATABASE_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/test`), with the `postgres` feature; every test uses
//!   its own table, dropped at the end.
//!
//! Session expiry is decided from the `now` passed in, so it is moved by passing a later `now`.
//! Leases run on the store's own clock: those tests use a short lease (200 ms) and wait for it
//! to end, polling with a bound. Nothing asserts how long anything took.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{now, unique};
use tower_cognito::refresh::{
    LockOutcome, MemoryRefreshStore, RefreshStore, SaveOutcome, SessionRecord,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

type Store = Arc<dyn RefreshStore>;

/// A lease that ends during the test.
const SHORT: Duration = Duration::from_millis(200);

/// A lease that does not end during the test.
const LONG: Duration = Duration::from_secs(120);

/// How long a test waits for a short lease to end before it fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// A session id as the crate makes them: 64 lowercase hex digits, unique in this run.
fn id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:032x}{:032x}", u128::from(std::process::id()), n)
}

/// A record living an hour from `t`, its access token five minutes.
fn record(version: u64, t: i64, sealed: &[u8]) -> SessionRecord {
    SessionRecord::new(version, t + 3600, t + 300, sealed.to_vec())
}

/// Every byte value, then a few more: what a sealed blob may hold.
fn all_bytes() -> Vec<u8> {
    (0..=255u8).chain([0, 0, 255, b'|', b'{', b'}']).collect()
}

async fn load(store: &Store, id: &str, t: i64) -> Option<SessionRecord> {
    store
        .load(id, t)
        .await
        .unwrap_or_else(|e| panic!("load({id}, {t}): {e}"))
}

async fn create(store: &Store, id: &str, record: &SessionRecord, t: i64) {
    store
        .create(id, record, t)
        .await
        .unwrap_or_else(|e| panic!("create({id}, {record:?}): {e}"));
}

async fn lock(store: &Store, id: &str, lease: Duration, t: i64) -> LockOutcome {
    store
        .lock(id, lease, t)
        .await
        .unwrap_or_else(|e| panic!("lock({id}, {lease:?}, {t}): {e}"))
}

/// `lock`, which must be acquired: the fence and the record.
async fn acquire(store: &Store, id: &str, lease: Duration, t: i64) -> (u64, SessionRecord) {
    match lock(store, id, lease, t).await {
        LockOutcome::Acquired { fence, record, .. } => (fence, record),
        other => panic!("lock({id}) should be acquired, got {other:?}"),
    }
}

/// Locks `id` as soon as the running lease ends: every answer before is `Busy`.
async fn acquire_when_free(
    store: &Store,
    id: &str,
    lease: Duration,
    t: i64,
) -> (u64, SessionRecord) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match lock(store, id, lease, t).await {
            LockOutcome::Acquired { fence, record, .. } => return (fence, record),
            LockOutcome::Busy => {}
            other => panic!("lock({id}) while waiting for the lease: {other:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease of {id} did not end within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn save(store: &Store, id: &str, record: &SessionRecord, fence: u64, t: i64) -> SaveOutcome {
    store
        .save(id, record, fence, t)
        .await
        .unwrap_or_else(|e| panic!("save({id}, {record:?}, {fence}, {t}): {e}"))
}

async fn unlock(store: &Store, id: &str, fence: u64) {
    store
        .unlock(id, fence)
        .await
        .unwrap_or_else(|e| panic!("unlock({id}, {fence}): {e}"));
}

async fn delete(store: &Store, id: &str) {
    store
        .delete(id)
        .await
        .unwrap_or_else(|e| panic!("delete({id}): {e}"));
}

// ---------------------------------------------------------------------------------------------
// The checks, written once
// ---------------------------------------------------------------------------------------------

mod checks {
    use super::*;

    use LockOutcome::{Busy, Missing};

    /// A session never created, one past its `expires_at`, and one created already ended all
    /// load as `None`.
    pub async fn load_absent_and_expired(store: Store) {
        let t = now();
        assert_eq!(load(&store, &id(), t).await, None);

        let id = id();
        let rec = SessionRecord::new(0, t + 100, t + 50, b"sealed".to_vec());
        create(&store, &id, &rec, t).await;
        assert_eq!(load(&store, &id, t + 99).await, Some(rec.clone()));
        assert_eq!(load(&store, &id, t + 100).await, None, "expires_at <= now");
        assert_eq!(load(&store, &id, t + 10_000).await, None);
        // Still there for a caller whose clock has not reached the end.
        assert_eq!(load(&store, &id, t).await, Some(rec));

        let ended = super::id();
        let rec = SessionRecord::new(0, t - 1, t - 1, b"old".to_vec());
        create(&store, &ended, &rec, t).await;
        assert_eq!(load(&store, &ended, t).await, None);
    }

    /// What `create` stored is what `load` answers, byte for byte, for any bytes.
    pub async fn create_then_load_round_trip(store: Store) {
        let t = now();
        let big: Vec<u8> = (0..70_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for (version, sealed) in [(0, all_bytes()), (7, Vec::new()), (0, big), (3, vec![0; 5])] {
            let id = id();
            let rec = SessionRecord::new(version, t + 3600, t - 5, sealed);
            create(&store, &id, &rec, t).await;
            assert_eq!(load(&store, &id, t).await, Some(rec));
        }
    }

    /// `create` over an existing session replaces it, and frees its lock.
    pub async fn create_replaces_record_and_lock(store: Store) {
        let (t, id) = (now(), id());
        create(&store, &id, &record(0, t, b"first"), t).await;
        acquire(&store, &id, LONG, t).await;
        let second = SessionRecord::new(0, t + 7200, t + 600, b"second".to_vec());
        create(&store, &id, &second, t).await;
        assert_eq!(load(&store, &id, t).await, Some(second.clone()));
        let (fence, stored) = acquire(&store, &id, LONG, t).await;
        assert_eq!(stored, second);
        assert!(fence > second.version);
    }

    /// The first lock is acquired, with the stored record and a fence above its version; the
    /// next is busy; neither changes the record.
    pub async fn lock_acquired_then_busy(store: Store) {
        let t = now();
        for version in [0, 41] {
            let id = id();
            let rec = record(version, t, &all_bytes());
            create(&store, &id, &rec, t).await;
            let (fence, stored) = acquire(&store, &id, LONG, t).await;
            assert_eq!(stored, rec);
            assert!(fence > rec.version, "fence {fence} after version {version}");
            assert_eq!(lock(&store, &id, LONG, t).await, Busy);
            assert_eq!(lock(&store, &id, SHORT, t).await, Busy);
            assert_eq!(load(&store, &id, t).await, Some(rec));
        }
    }

    /// Once the lease has ended, the lock is acquired again, under a greater fence.
    pub async fn lock_after_lease_ends(store: Store) {
        let (t, id) = (now(), id());
        let rec = record(0, t, b"sealed");
        create(&store, &id, &rec, t).await;
        let (first, _) = acquire(&store, &id, SHORT, t).await;
        let (second, stored) = acquire_when_free(&store, &id, SHORT, t).await;
        assert!(second > first, "fence {second} after {first}");
        assert_eq!(stored, rec, "nothing was saved in between");
    }

    /// A save under the current fence replaces the record and frees the lock at once.
    pub async fn save_with_current_fence(store: Store) {
        let (t, id) = (now(), id());
        create(&store, &id, &record(0, t, b"before"), t).await;
        let (fence, _) = acquire(&store, &id, LONG, t).await;
        let after = SessionRecord::new(fence, t + 7200, t + 900, all_bytes());
        assert_eq!(
            save(&store, &id, &after, fence, t).await,
            SaveOutcome::Saved
        );
        assert_eq!(load(&store, &id, t).await, Some(after.clone()));
        let (next, stored) = acquire(&store, &id, LONG, t).await;
        assert_eq!(stored, after);
        assert!(next > fence);
    }

    /// A holder whose lease ended while another took the lock may still save what it got from
    /// Cognito until the newer holder saves (with rotation, the first to reach Cognito holds the
    /// one live refresh token), without freeing the newer holder's lock; once the newer holder
    /// saved, the late write is fenced and the newer record stays as it was.
    pub async fn late_write_is_fenced_once_a_newer_holder_saved(store: Store) {
        let (t, id) = (now(), id());
        let original = record(0, t, b"original");
        create(&store, &id, &original, t).await;
        let (dead, _) = acquire(&store, &id, SHORT, t).await;
        let (alive, stored) = acquire_when_free(&store, &id, LONG, t).await;
        assert!(alive > dead);
        assert_eq!(stored, original);

        let late = SessionRecord::new(dead, t + 3600, t + 300, b"late".to_vec());
        assert_eq!(save(&store, &id, &late, dead, t).await, SaveOutcome::Saved);
        assert_eq!(load(&store, &id, t).await, Some(late.clone()));
        assert_eq!(
            lock(&store, &id, LONG, t).await,
            Busy,
            "the late save did not free the newer holder's lock"
        );
        assert_eq!(
            save(&store, &id, &late, dead, t).await,
            SaveOutcome::Fenced,
            "a fence saves once"
        );

        let newer = SessionRecord::new(alive, t + 3600, t + 600, b"newer".to_vec());
        assert_eq!(
            save(&store, &id, &newer, alive, t).await,
            SaveOutcome::Saved
        );
        assert_eq!(save(&store, &id, &late, dead, t).await, SaveOutcome::Fenced);
        assert_eq!(load(&store, &id, t).await, Some(newer.clone()));
        // A save repeated under a fence already used does not resurrect the older one either.
        let (third, stored) = acquire(&store, &id, LONG, t).await;
        assert_eq!(stored, newer);
        assert!(third > alive);
        assert_eq!(
            save(&store, &id, &late, alive, t).await,
            SaveOutcome::Fenced
        );
        assert_eq!(load(&store, &id, t).await, Some(newer));
    }

    /// `took_over` says whether an earlier holder's lease ended without a save or an unlock.
    pub async fn lock_says_when_it_took_over_an_ended_lease(store: Store) {
        let took_over = |outcome: LockOutcome| match outcome {
            LockOutcome::Acquired { took_over, .. } => took_over,
            other => panic!("not acquired: {other:?}"),
        };
        let (t, id) = (now(), id());
        create(&store, &id, &record(0, t, b"sealed"), t).await;
        assert!(
            !took_over(lock(&store, &id, SHORT, t).await),
            "a fresh session"
        );
        // That holder vanishes: the next lock takes over its ended lease.
        let (fence, _) = acquire_when_free(&store, &id, LONG, t).await;
        let (t2, id2) = (now(), super::id());
        create(&store, &id2, &record(0, t2, b"sealed"), t2).await;
        let (first, _) = acquire(&store, &id2, SHORT, t2).await;
        let mut next = lock(&store, &id2, SHORT, t2).await;
        while next == Busy {
            tokio::time::sleep(Duration::from_millis(20)).await;
            next = lock(&store, &id2, SHORT, t2).await;
        }
        assert!(took_over(next), "after fence {first} ended unreleased");
        // After an unlock or a save, the next lock takes over nothing.
        unlock(&store, &id, fence).await;
        let (fence, _) = match lock(&store, &id, LONG, t).await {
            LockOutcome::Acquired {
                fence,
                record,
                took_over,
            } => {
                assert!(!took_over, "after an unlock");
                (fence, record)
            }
            other => panic!("not acquired: {other:?}"),
        };
        let saved = record(fence, t, b"saved");
        assert_eq!(
            save(&store, &id, &saved, fence, t).await,
            SaveOutcome::Saved
        );
        assert!(!took_over(lock(&store, &id, LONG, t).await), "after a save");
    }

    /// A save after sign-out (or after the session ended) is `Missing` and brings nothing back.
    pub async fn save_after_delete_is_missing(store: Store) {
        let (t, id) = (now(), id());
        create(&store, &id, &record(0, t, b"sealed"), t).await;
        let (fence, _) = acquire(&store, &id, LONG, t).await;
        delete(&store, &id).await;
        let rec = record(fence, t, b"refreshed");
        assert_eq!(
            save(&store, &id, &rec, fence, t).await,
            SaveOutcome::Missing
        );
        assert_eq!(load(&store, &id, t).await, None);
        assert_eq!(lock(&store, &id, LONG, t).await, Missing);

        let (t, id) = (now(), super::id());
        let ending = SessionRecord::new(0, t + 100, t + 50, b"ending".to_vec());
        create(&store, &id, &ending, t).await;
        let (fence, _) = acquire(&store, &id, LONG, t).await;
        let rec = record(fence, t + 100, b"refreshed");
        assert_eq!(
            save(&store, &id, &rec, fence, t + 100).await,
            SaveOutcome::Missing,
            "ended at the caller's now"
        );
        assert_eq!(load(&store, &id, t).await, Some(ending), "nothing saved");
    }

    /// `unlock` under another fence leaves the lock held; under the holder's it frees it.
    pub async fn unlock_needs_the_holders_fence(store: Store) {
        let (t, id) = (now(), id());
        let rec = record(0, t, b"sealed");
        create(&store, &id, &rec, t).await;
        let (fence, _) = acquire(&store, &id, LONG, t).await;
        for wrong in [fence + 1, fence - 1, u64::MAX] {
            unlock(&store, &id, wrong).await;
            assert_eq!(
                lock(&store, &id, LONG, t).await,
                Busy,
                "after unlock({wrong})"
            );
        }
        unlock(&store, &id, fence).await;
        let (next, stored) = acquire(&store, &id, LONG, t).await;
        assert!(next > fence);
        assert_eq!(stored, rec, "unlock saves nothing");
        unlock(&store, &super::id(), 1).await;
    }

    /// Locking a session never created, ended at `now`, or deleted is `Missing`.
    pub async fn lock_of_missing_or_expired(store: Store) {
        let t = now();
        assert_eq!(lock(&store, &id(), LONG, t).await, Missing);

        let id = id();
        let rec = SessionRecord::new(0, t + 100, t + 50, b"sealed".to_vec());
        create(&store, &id, &rec, t).await;
        assert_eq!(lock(&store, &id, LONG, t + 100).await, Missing);
        assert_eq!(lock(&store, &id, LONG, t + 5000).await, Missing);
        acquire(&store, &id, SHORT, t).await;
        delete(&store, &id).await;
        assert_eq!(lock(&store, &id, LONG, t).await, Missing);
    }

    /// Deleting an absent session is fine, and so is deleting twice.
    pub async fn delete_absent_is_ok(store: Store) {
        let (t, id) = (now(), id());
        delete(&store, &id).await;
        create(&store, &id, &record(0, t, b"sealed"), t).await;
        acquire(&store, &id, LONG, t).await;
        delete(&store, &id).await;
        delete(&store, &id).await;
        assert_eq!(load(&store, &id, t).await, None);
    }

    /// Fifty lockers at once, through two handles on the backend: exactly one acquires.
    pub async fn many_lockers_one_wins(stores: [Store; 2]) {
        const LOCKERS: usize = 50;
        let (t, id) = (now(), id());
        create(&stores[0], &id, &record(0, t, b"sealed"), t).await;
        let start = Arc::new(tokio::sync::Barrier::new(LOCKERS));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..LOCKERS {
            let (store, id, start) = (stores[i % 2].clone(), id.clone(), start.clone());
            tasks.spawn(async move {
                start.wait().await;
                lock(&store, &id, LONG, t).await
            });
        }
        let mut fences = Vec::new();
        let mut busy = 0;
        while let Some(answer) = tasks.join_next().await {
            match answer.expect("locker task") {
                LockOutcome::Acquired { fence, .. } => fences.push(fence),
                Busy => busy += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(fences.len(), 1, "exactly one holder, got fences {fences:?}");
        assert_eq!(busy, LOCKERS - 1);
        assert!(fences[0] > 0);
    }

    /// Twenty lock/save cycles: each fence is greater than the last, and each lock answers
    /// what the previous cycle saved.
    pub async fn fence_increases_across_cycles(store: Store) {
        let (t, id) = (now(), id());
        create(&store, &id, &record(0, t, b"cycle 0"), t).await;
        let mut last = 0;
        for cycle in 1..=20 {
            let (fence, stored) = acquire(&store, &id, LONG, t).await;
            assert!(fence > last, "cycle {cycle}: fence {fence} after {last}");
            assert_eq!(stored.version, last);
            assert_eq!(stored.sealed, format!("cycle {}", cycle - 1).into_bytes());
            let next = record(fence, t, format!("cycle {cycle}").as_bytes());
            assert_eq!(save(&store, &id, &next, fence, t).await, SaveOutcome::Saved);
            last = fence;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The suite over each backend
// ---------------------------------------------------------------------------------------------

/// Two handles on one backend, and what to clean up when the test ends.
struct Backend {
    stores: [Store; 2],
    _cleanup: Option<Cleanup>,
}

type Opened = Pin<Box<dyn Future<Output = Backend> + Send>>;

/// A cleanup job: what a test leaves on a shared server.
type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// Runs its job on a runtime of its own when dropped: also when the test panics.
struct Cleanup(Option<Job>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(job) = self.0.take() {
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    let _ = tokio::time::timeout(Duration::from_secs(10), job()).await;
                });
            })
            .join()
            .expect("cleanup thread");
        }
    }
}

macro_rules! suite {
    ($open:path) => {
        suite!(@one $open, [
            load_absent_and_expired,
            create_then_load_round_trip,
            create_replaces_record_and_lock,
            lock_acquired_then_busy,
            lock_after_lease_ends,
            save_with_current_fence,
            late_write_is_fenced_once_a_newer_holder_saved,
            lock_says_when_it_took_over_an_ended_lease,
            save_after_delete_is_missing,
            unlock_needs_the_holders_fence,
            lock_of_missing_or_expired,
            delete_absent_is_ok,
            fence_increases_across_cycles,
        ]);

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn many_lockers_one_wins() {
            let backend = $open(unique("lockers")).await;
            checks::many_lockers_one_wins(backend.stores.clone()).await;
        }
    };
    (@one $open:path, [$($check:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let backend = $open(unique(stringify!($check))).await;
                checks::$check(backend.stores[0].clone()).await;
            }
        )*
    };
}

mod memory {
    use super::*;

    /// A fresh memory store; its two handles are the same store.
    fn open(_ns: String) -> Opened {
        Box::pin(async {
            let store: Store = Arc::new(MemoryRefreshStore::new(10_000));
            Backend {
                stores: [store.clone(), store],
                _cleanup: None,
            }
        })
    }

    suite!(open);
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;

    use crate::support::stores::{
        delete_redis_keys, redis_connection, redis_url, unique_redis_prefix, OwnRedis,
    };
    use tower_cognito::refresh::RedisRefreshStore;
    use tower_cognito::session::StoreErrorKind;

    async fn connect(url: &str, prefix: &str) -> RedisRefreshStore {
        RedisRefreshStore::connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect to {url} (REDIS_URL): {e}"))
            .with_prefix(prefix)
            .expect("prefix")
    }

    /// Two connections with one prefix of the test's own, deleted at the end.
    fn open(ns: String) -> Opened {
        Box::pin(async move {
            let prefix = unique_redis_prefix(&ns);
            let url = redis_url();
            let (a, b) = (connect(&url, &prefix).await, connect(&url, &prefix).await);
            Backend {
                stores: [Arc::new(a), Arc::new(b)],
                _cleanup: Some(delete_on_drop(prefix)),
            }
        })
    }

    fn delete_on_drop(prefix: String) -> Cleanup {
        Cleanup(Some(Box::new(move || {
            Box::pin(async move { delete_redis_keys(&prefix).await })
        })))
    }

    suite!(open);

    use crate::redis_cluster::harness::slot;

    async fn keys_under(prefix: &str) -> Vec<String> {
        let pattern = format!("{}*", prefix.replace('{', "\\{").replace('}', "\\}"));
        let mut keys: Vec<String> = ::redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut redis_connection().await)
            .await
            .expect("KEYS");
        keys.sort();
        keys
    }

    /// The record and the lock of a session share one hash tag, hence one cluster slot, for
    /// the default-like prefix and for prefixes holding braces; the record's native expiry is
    /// its `expires_at`, the lock's the lease.
    #[tokio::test]
    async fn keys_share_a_slot() {
        assert_eq!(slot("123456789"), 12739, "CRC16/XMODEM check value");
        let (t, id) = (now(), id());
        let base = unique_redis_prefix("slot");
        let _cleanup = delete_on_drop(base.clone());
        for prefix in [
            base.clone(),
            format!("{base}{{app}}:"),
            format!("{base}{{x:"),
        ] {
            let store: Store = Arc::new(connect(&redis_url(), &prefix).await);
            let rec = record(0, t, b"sealed");
            create(&store, &id, &rec, t).await;
            acquire(&store, &id, LONG, t).await;
            let record_key = format!("{prefix}{{{id}}}");
            let lock_key = format!("{record_key}:lock");
            let keys = keys_under(&prefix).await;
            assert_eq!(keys, [record_key.clone(), lock_key.clone()]);
            assert_eq!(slot(&record_key), slot(&lock_key), "{keys:?}");
            if prefix == base {
                assert_eq!(slot(&record_key), slot(&id), "the tag is the id");
            }
            let mut conn = redis_connection().await;
            let expire_time: i64 = ::redis::cmd("EXPIRETIME")
                .arg(&record_key)
                .query_async(&mut conn)
                .await
                .expect("EXPIRETIME");
            assert_eq!(expire_time, rec.expires_at);
            let pttl: i64 = ::redis::cmd("PTTL")
                .arg(&lock_key)
                .query_async(&mut conn)
                .await
                .expect("PTTL");
            assert!(pttl > 0 && pttl <= LONG.as_millis() as i64, "PTTL {pttl}");
            delete(&store, &id).await;
            assert!(keys_under(&prefix).await.is_empty());
        }
    }

    async fn dump(key: &str) -> Option<Vec<u8>> {
        ::redis::cmd("DUMP")
            .arg(key)
            .query_async(&mut redis_connection().await)
            .await
            .expect("DUMP")
    }

    /// A record hash with a field missing or garbled, or a key of another type, is `Corrupt`
    /// for `load`, `lock` and `save`, and left exactly as it was, with no lock taken.
    #[tokio::test]
    async fn corrupt_records_are_reported_and_untouched() {
        let t = now();
        let prefix = unique_redis_prefix("corrupt");
        let _cleanup = delete_on_drop(prefix.clone());
        let store: Store = Arc::new(connect(&redis_url(), &prefix).await);
        let exp = (t + 3600).to_string();
        let good: [(&str, &str); 5] = [
            ("version", "0"),
            ("expires_at", &exp),
            ("access_expires_at", &exp),
            ("sealed", "x"),
            ("fence", "0"),
        ];
        let mut cases: Vec<Vec<(&str, &str)>> = Vec::new();
        for (field, bad) in [
            ("version", "x"),
            ("version", "01"),
            ("version", "-1"),
            ("expires_at", "1e12"),
            ("expires_at", " 1"),
            ("expires_at", "9007199254740993"),
            ("access_expires_at", ""),
            ("fence", "-1"),
            ("fence", "1.5"),
        ] {
            cases.push(
                good.iter()
                    .map(|&(f, v)| if f == field { (f, bad) } else { (f, v) })
                    .collect(),
            );
        }
        for missing in ["version", "sealed", "fence"] {
            cases.push(
                good.iter()
                    .copied()
                    .filter(|&(f, _)| f != missing)
                    .collect(),
            );
        }
        let mut conn = redis_connection().await;
        for (n, fields) in cases.iter().enumerate() {
            let id = id();
            let key = format!("{prefix}{{{id}}}");
            let () = ::redis::cmd("HSET")
                .arg(&key)
                .arg(fields)
                .query_async(&mut conn)
                .await
                .expect("HSET");
            expect_corrupt(&store, &id, &key, &format!("case {n}: {fields:?}")).await;
        }
        let id = id();
        let key = format!("{prefix}{{{id}}}");
        let () = ::redis::cmd("SET")
            .arg(&key)
            .arg("not a hash")
            .query_async(&mut conn)
            .await
            .expect("SET");
        expect_corrupt(&store, &id, &key, "a string").await;
        // Sign-out still works on it.
        delete(&store, &id).await;
        assert_eq!(dump(&key).await, None);
    }

    async fn expect_corrupt(store: &Store, id: &str, key: &str, case: &str) {
        let t = now();
        let before = dump(key).await.expect("the key exists");
        let kind = |e: tower_cognito::session::StoreError| e.kind();
        assert_eq!(
            store.load(id, t).await.map_err(kind),
            Err(StoreErrorKind::Corrupt),
            "load, {case}"
        );
        assert_eq!(
            store.lock(id, LONG, t).await.map_err(kind),
            Err(StoreErrorKind::Corrupt),
            "lock, {case}"
        );
        let rec = record(1, t, b"new");
        assert_eq!(
            store.save(id, &rec, 0, t).await.map_err(kind),
            Err(StoreErrorKind::Corrupt),
            "save, {case}"
        );
        unlock(store, id, 0).await;
        assert_eq!(dump(key).await, Some(before), "untouched, {case}");
        assert_eq!(dump(&format!("{key}:lock")).await, None, "no lock, {case}");
    }

    /// After `SCRIPT FLUSH` (on a server of the test's own, so that other tests keep their
    /// scripts), every scripted operation loads its script again and works.
    #[tokio::test]
    async fn scripts_flushed_are_loaded_again() {
        let server = OwnRedis::start_volatile().await;
        let client = ::redis::Client::open(server.url()).expect("client");
        let mut admin = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to own redis");
        let store: Store = Arc::new(connect(&server.url(), "flush:").await);
        let (t, id) = (now(), id());
        let flush = || {
            let mut admin = admin.clone();
            async move {
                let () = ::redis::cmd("SCRIPT")
                    .arg("FLUSH")
                    .query_async(&mut admin)
                    .await
                    .expect("SCRIPT FLUSH");
            }
        };
        flush().await;
        create(&store, &id, &record(0, t, b"sealed"), t).await;
        flush().await;
        let (fence, _) = acquire(&store, &id, LONG, t).await;
        flush().await;
        unlock(&store, &id, fence).await;
        let (fence, _) = acquire(&store, &id, LONG, t).await;
        flush().await;
        let rec = record(fence, t, b"saved");
        assert_eq!(save(&store, &id, &rec, fence, t).await, SaveOutcome::Saved);
        assert_eq!(load(&store, &id, t).await, Some(rec));
        let () = ::redis::cmd("PING")
            .query_async(&mut admin)
            .await
            .expect("PING");
    }

    /// A TCP proxy in front of `REDIS_URL` that records the name of every command sent
    /// through it, in order.
    async fn counting_proxy() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let mut url = url::Url::parse(&redis_url()).expect("REDIS_URL");
        let upstream = format!(
            "{}:{}",
            url.host_str().expect("REDIS_URL must be a TCP address"),
            url.port().unwrap_or(6379)
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        url.set_host(Some("127.0.0.1")).expect("host");
        url.set_port(Some(listener.local_addr().expect("addr").port()))
            .expect("port");
        let commands = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = commands.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let (mut pending, mut buf) = (Vec::new(), vec![0; 64 * 1024]);
                    while let Ok(n @ 1..) = client_read.read(&mut buf).await {
                        pending.extend_from_slice(&buf[..n]);
                        while let Some((used, name)) = resp_command(&pending) {
                            seen.lock().unwrap().push(name);
                            pending.drain(..used);
                        }
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
            }
        });
        (url.to_string(), commands)
    }

    /// One complete RESP command at the start of `buf`: its length and its name.
    fn resp_command(buf: &[u8]) -> Option<(usize, String)> {
        fn header(buf: &[u8], at: usize, tag: u8) -> Option<(usize, usize)> {
            assert_eq!(*buf.get(at)?, tag, "unexpected RESP from the client");
            let rest = &buf[at + 1..];
            let end = rest.windows(2).position(|w| w == b"\r\n")?;
            let n = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
            Some((n, at + 1 + end + 2))
        }
        let (count, mut at) = header(buf, 0, b'*')?;
        let mut name = String::new();
        for i in 0..count {
            let (len, start) = header(buf, at, b'$')?;
            if buf.len() < start + len + 2 {
                return None;
            }
            if i == 0 {
                name = String::from_utf8_lossy(&buf[start..start + len]).to_ascii_uppercase();
            }
            at = start + len + 2;
        }
        Some((at, name))
    }

    /// Every operation is one command, hence one round trip: scripts for the atomic steps,
    /// `HMGET` to load, `DEL` to delete.
    #[tokio::test]
    async fn each_operation_is_one_round_trip() {
        let (url, commands) = counting_proxy().await;
        let prefix = unique_redis_prefix("round-trips");
        let _cleanup = delete_on_drop(prefix.clone());
        let store: Store = Arc::new(connect(&url, &prefix).await);
        let take = || std::mem::take(&mut *commands.lock().unwrap());
        take();
        let (t, id) = (now(), id());
        create(&store, &id, &record(0, t, b"sealed"), t).await;
        assert_eq!(take(), ["EVALSHA"], "create");
        load(&store, &id, t).await.expect("created");
        assert_eq!(take(), ["HMGET"], "load");
        let (fence, _) = acquire(&store, &id, LONG, t).await;
        assert_eq!(take(), ["EVALSHA"], "lock");
        assert_eq!(lock(&store, &id, LONG, t).await, LockOutcome::Busy);
        assert_eq!(take(), ["EVALSHA"], "busy lock");
        unlock(&store, &id, fence).await;
        assert_eq!(take(), ["EVALSHA"], "unlock");
        let (fence, _) = acquire(&store, &id, LONG, t).await;
        take();
        let rec = record(fence, t, b"saved");
        assert_eq!(save(&store, &id, &rec, fence, t).await, SaveOutcome::Saved);
        assert_eq!(take(), ["EVALSHA"], "save");
        delete(&store, &id).await;
        assert_eq!(take(), ["DEL"], "delete");
    }

    /// `Debug` shows where and which prefix, nothing else.
    #[tokio::test]
    async fn debug_shows_server_and_prefix() {
        let store = connect(&redis_url(), "debug-prefix:").await;
        let debug = format!("{store:?}");
        assert!(debug.starts_with("RedisRefreshStore"), "{debug}");
        assert!(debug.contains("debug-prefix:"), "{debug}");
        assert_eq!(store.prefix(), "debug-prefix:");
        let default = connect(&redis_url(), RedisRefreshStore::DEFAULT_PREFIX).await;
        assert_eq!(default.prefix(), "tower-cognito:bff:");
    }
}

/// The same suite on the local Redis Cluster the tests start themselves
/// (`redis_cluster::shared`): one handle through a node's URL (cluster mode detected), the other
/// through every node as seeds. Nothing to clean up: the cluster ends with the test binary.
#[cfg(feature = "redis")]
mod redis_cluster {
    use super::*;
    use crate::redis_cluster::cluster_refresh_store;

    fn open(ns: String) -> Opened {
        Box::pin(async move {
            let a = cluster_refresh_store(&ns, false).await;
            let b = cluster_refresh_store(&ns, true).await;
            Backend {
                stores: [Arc::new(a), Arc::new(b)],
                _cleanup: None,
            }
        })
    }

    suite!(open);
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    use crate::support::stores::{database_url, postgres_client, unique_postgres_table};
    use tower_cognito::refresh::PostgresRefreshStore;
    use tower_cognito::session::StoreErrorKind;

    async fn connect(table: &str) -> PostgresRefreshStore {
        let url = database_url();
        PostgresRefreshStore::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connect to {url} (DATABASE_URL): {e}"))
            .with_table(table)
            .expect("table name")
    }

    /// Two pools on one table of the test's own, dropped at the end.
    fn open(ns: String) -> Opened {
        Box::pin(async move {
            let table = unique_postgres_table(&ns);
            let cleanup = drop_on_drop(table.clone());
            let a = connect(&table).await;
            a.create_schema().await.expect("create schema");
            let b = connect(&table).await;
            b.create_schema().await.expect("create schema again");
            Backend {
                stores: [Arc::new(a), Arc::new(b)],
                _cleanup: Some(cleanup),
            }
        })
    }

    fn drop_on_drop(table: String) -> Cleanup {
        Cleanup(Some(Box::new(move || {
            Box::pin(async move {
                let _ = postgres_client()
                    .await
                    .batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\""))
                    .await;
            })
        })))
    }

    suite!(open);

    /// `cleanup_expired(now)` deletes exactly the sessions with `expires_at <= now`.
    #[tokio::test]
    async fn cleanup_removes_only_expired() {
        let table = unique_postgres_table("cleanup");
        let _cleanup = drop_on_drop(table.clone());
        let pg = connect(&table).await;
        pg.create_schema().await.expect("create schema");
        let store: Store = Arc::new(pg.clone());
        let t = now();
        let mut live = Vec::new();
        for (n, expires_at) in [t - 100, t, t + 1, t + 100].into_iter().enumerate() {
            let id = format!("{n:064}");
            create(
                &store,
                &id,
                &SessionRecord::new(0, expires_at, t, vec![n as u8]),
                t,
            )
            .await;
            if expires_at > t {
                live.push(id);
            }
        }
        assert_eq!(pg.cleanup_expired(t).await.expect("cleanup"), 2);
        assert_eq!(pg.cleanup_expired(t).await.expect("cleanup again"), 0);
        for id in &live {
            assert!(load(&store, id, t).await.is_some(), "{id} kept");
        }
        let rows: i64 = postgres_client()
            .await
            .query_one(&format!("SELECT count(*) FROM \"{table}\""), &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(rows, 2);
    }

    /// Table names that are not plain identifiers are refused before any SQL is sent.
    #[tokio::test]
    async fn bad_table_names_are_refused() {
        let table = unique_postgres_table("names");
        let pg = connect(&table).await;
        assert_eq!(pg.table(), table);
        for bad in [
            "",
            "1abc",
            "a.b.c",
            "bad-name",
            "x\"; DROP TABLE users; --",
            "name with space",
            &"n".repeat(49),
        ] {
            let error = pg.clone().with_table(bad).expect_err(bad);
            assert_eq!(error.kind(), StoreErrorKind::InvalidInput, "{bad}");
        }
        let default = PostgresRefreshStore::connect(&database_url())
            .await
            .expect("connect");
        assert_eq!(default.table(), "tower_cognito_bff_sessions");
    }

    /// `Debug` names the server and table, never the password.
    #[tokio::test]
    async fn debug_hides_the_password() {
        let url = database_url();
        // Trust authentication ignores the password, so the login still succeeds.
        let Some(with_password) = url
            .strip_prefix("postgres://")
            .and_then(|rest| rest.split_once('@'))
            .map(|(user, host)| format!("postgres://{user}:hunter2secret@{host}"))
        else {
            return;
        };
        let pg = PostgresRefreshStore::connect(&with_password)
            .await
            .expect("connect with a password");
        let debug = format!("{pg:?}");
        assert!(debug.contains("tower_cognito_bff_sessions"), "{debug}");
        assert!(!debug.contains("hunter2secret"), "{debug}");
    }
}
