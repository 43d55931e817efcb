//! Property test: every session store behaves like a tiny reference model over random sequences
//! of operations (checks of a few sessions with random `iat`s, revocations, time moving on,
//! reads).
//!
//! The model below is written from the semantics in the `session` module docs, on its own: a
//! sorted `Vec` per session, nothing shared with the crate's code. Each backend runs the same
//! property; the network backends (Redis, a Redis Cluster, PostgreSQL; behind their features,
//! against real servers) use fewer cases so the run takes seconds. Each case uses session keys
//! of its own, and each run a key prefix or table of its own.
//!
//! Then seeded sequences, the same on every backend and compared with the model after every
//! step: every window size from 1 to 8 with time jumps past the TTL and revocations, window sizes
//! changing between calls, and integers at the edges (±(2^53 - 1), `i64::MIN` / `i64::MAX`,
//! negative clocks, a saturating expiry).

use crate::support;

use std::fmt;
use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use support::model::Rng;
use support::model::WindowModel;
use support::unique;
use tower_cognito::session::{
    MemoryStore, SessionEntry, SessionStore, SessionVerdict, StoreErrorKind, WindowLimits,
    MAX_WINDOW,
};

/// How many sessions a case plays with.
const KEYS: usize = 3;

// ---------------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------------

/// The shared reference model (`tests/it/support/model.rs`, written independently of `src/`), with
/// this file's window size and TTL and small integer keys.
#[derive(Debug)]
struct Model {
    size: usize,
    ttl: i64,
    window: WindowModel,
}

impl Model {
    fn new(size: usize, ttl: i64) -> Self {
        Self {
            size,
            ttl,
            window: WindowModel::default(),
        }
    }

    fn limits(&self, size: usize) -> WindowLimits {
        WindowLimits::new(size, self.ttl)
    }

    /// The session as of `now`, if it has not expired.
    fn get(&self, key: usize, now: i64) -> Option<SessionEntry> {
        self.window.live(&key.to_string(), now)
    }

    /// A check with the model's window size.
    fn check(&mut self, key: usize, iat: i64, now: i64) -> SessionVerdict {
        self.check_sized(key, iat, now, self.size)
    }

    /// A check with window size `size`, which may differ from the previous call's (servers
    /// configured differently, or a rolling deploy changing it).
    fn check_sized(&mut self, key: usize, iat: i64, now: i64, size: usize) -> SessionVerdict {
        let limits = self.limits(size);
        self.window.check(&key.to_string(), iat, now, limits)
    }

    fn revoke(&mut self, key: usize, now: i64) {
        let limits = self.limits(self.size);
        self.window.revoke(&key.to_string(), now, limits);
    }
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
enum Op {
    /// A token of session `key` with `iat` = base + `iat`, checked with window `size`.
    Check {
        key: usize,
        iat: i64,
        size: usize,
    },
    Revoke {
        key: usize,
    },
    /// Time moves on by this many seconds.
    Advance(i64),
    /// Read an entry.
    Entry {
        key: usize,
    },
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Check { key, iat, size } => write!(f, "check(k{key}, +{iat}, window {size})"),
            Op::Revoke { key } => write!(f, "revoke(k{key})"),
            Op::Advance(secs) => write!(f, "advance({secs})"),
            Op::Entry { key } => write!(f, "entry(k{key})"),
        }
    }
}

/// An operation; checks use window `size`, or a random size from 1 to 4 when `size` is `None`.
fn op(size: Option<usize>) -> impl Strategy<Value = Op> {
    let sizes = match size {
        Some(size) => Just(size).boxed(),
        None => (1usize..=4).boxed(),
    };
    prop_oneof![
        // Few distinct iats per session: repeats, late older tokens and supersession are common.
        10 => (0..KEYS, 0i64..12, sizes).prop_map(|(key, iat, size)| Op::Check { key, iat, size }),
        1 => (0..KEYS).prop_map(|key| Op::Revoke { key }),
        // Small steps, and some past the TTL (which is 10 or 60 s).
        3 => prop_oneof![Just(0i64), 1i64..15, 55i64..70, Just(200i64)].prop_map(Op::Advance),
        2 => (0..KEYS).prop_map(|key| Op::Entry { key }),
    ]
}

/// A case: window size, TTL, operations. With `varying`, every check picks its own window size.
fn case(max_ops: usize, varying: bool) -> impl Strategy<Value = (usize, i64, Vec<Op>)> {
    (
        prop_oneof![Just(1usize), Just(2), Just(2), Just(3), Just(MAX_WINDOW)],
        prop_oneof![Just(10i64), Just(60)],
    )
        .prop_flat_map(move |(size, ttl)| {
            let ops = vec(op((!varying).then_some(size)), 1..=max_ops);
            (Just(size), Just(ttl), ops)
        })
}

// ---------------------------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------------------------

fn expected_entry(model: &Model, key: usize, now: i64) -> Option<SessionEntry> {
    model.get(key, now)
}

/// Compares the store's entry with the model's. The `iat`s of a revoked session are not part of
/// the semantics (nothing can read them back through a verdict), so they are not compared.
fn same_entry(
    got: Option<SessionEntry>,
    want: Option<SessionEntry>,
    context: &dyn Fn() -> String,
) -> Result<(), TestCaseError> {
    match (got, want) {
        (None, None) => Ok(()),
        (Some(got), Some(want)) => {
            prop_assert_eq!(got.revoked, want.revoked, "revoked: {}", context());
            prop_assert_eq!(got.expires_at, want.expires_at, "expires_at: {}", context());
            if !want.revoked {
                prop_assert_eq!(&got.iats, &want.iats, "iats: {}", context());
            }
            Ok(())
        }
        (got, want) => Err(TestCaseError::fail(format!(
            "entry: store {got:?}, model {want:?}: {}",
            context()
        ))),
    }
}

/// Runs one case against `store`, comparing every answer with the model.
async fn run_case(
    store: &dyn SessionStore,
    (size, ttl, ops): (usize, i64, Vec<Op>),
) -> Result<(), TestCaseError> {
    let limits = WindowLimits::new(size, ttl);
    let case = unique("case");
    let keys: Vec<String> = (0..KEYS).map(|k| format!("{case}:k{k}")).collect();
    let mut model = Model::new(size, ttl);
    let start = support::now();
    let base = start - 3600;
    let mut now = start;
    for (i, op) in ops.iter().enumerate() {
        let at = now - start;
        let context = || format!("op #{i} {op:?} at +{at} (ttl {ttl})");
        let touched = match *op {
            Op::Check { key, iat, size } => {
                let limits = WindowLimits::new(size, limits.ttl_secs);
                let got = store
                    .check_and_advance(&keys[key], base + iat, now, limits)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{e}: {}", context())))?;
                let want = model.check_sized(key, base + iat, now, size);
                prop_assert_eq!(got, want, "verdict: {}", context());
                Some(key)
            }
            Op::Revoke { key } => {
                store
                    .revoke(&keys[key], now, limits)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{e}: {}", context())))?;
                model.revoke(key, now);
                Some(key)
            }
            Op::Advance(secs) => {
                now += secs;
                None
            }
            Op::Entry { key } => Some(key),
        };
        // The touched session after every operation; every session when time moved.
        let to_compare: Vec<usize> = match touched {
            Some(key) => vec![key],
            None => (0..KEYS).collect(),
        };
        for key in to_compare {
            let got = store
                .entry(&keys[key], now)
                .await
                .map_err(|e| TestCaseError::fail(format!("{e}: {}", context())))?;
            same_entry(got, expected_entry(&model, key, now), &|| {
                format!("k{key} after {}", context())
            })?;
        }
    }
    Ok(())
}

/// Runs `cases` cases of up to `max_ops` operations against the store `open` gives (one per
/// case, or one shared: every case uses keys of its own).
fn check_against_model<F>(cases: u32, max_ops: usize, varying: bool, open: F)
where
    F: Fn(&tokio::runtime::Runtime) -> Arc<dyn SessionStore>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    });
    let result = runner.run(&case(max_ops, varying), |case| {
        let store = open(&rt);
        rt.block_on(run_case(&*store, case))
    });
    if let Err(error) = result {
        panic!("the store differs from the model: {error}");
    }
}

// ---------------------------------------------------------------------------------------------
// The model itself, on the examples of the module docs
// ---------------------------------------------------------------------------------------------

#[test]
fn the_model_follows_the_documented_examples() {
    use SessionVerdict::*;
    let mut m = Model::new(2, 100);
    let verdicts: Vec<_> = [100, 200, 100, 300, 100, 200, 300]
        .iter()
        .map(|&iat| m.check(0, iat, 0))
        .collect();
    assert_eq!(
        verdicts,
        [Accepted, Accepted, Accepted, Accepted, Superseded, Accepted, Accepted]
    );
    assert_eq!(m.get(0, 0).unwrap().iats, [200, 300]);
    assert_eq!(m.get(0, 100), None);
    assert_eq!(m.check(0, 100, 100), Accepted);
    m.revoke(1, 0);
    assert_eq!(m.check(1, 1, 99), Revoked);
    assert_eq!(m.check(1, 1, 100), Accepted);
}

// ---------------------------------------------------------------------------------------------
// Seeded sequences, compared with the model step by step
// ---------------------------------------------------------------------------------------------

/// One step of a seeded sequence, on session `key` (`0..KEYS`).
#[derive(Debug, Clone, Copy)]
enum Step {
    Check {
        key: usize,
        iat: i64,
        now: i64,
        limits: WindowLimits,
    },
    Revoke {
        key: usize,
        now: i64,
        limits: WindowLimits,
    },
}

/// The largest integer every double neighbour can tell apart: within ±`EXACT` every backend
/// must compare exactly (the Redis scripts use Lua numbers, which are doubles).
const EXACT: i64 = (1 << 53) - 1;

/// Applies `steps` to `store` (sessions of a namespace of their own) and to the model. After
/// every step the verdict and the entry of every session used, as of that step's `now`, must
/// agree.
/// A step whose `iat` or `now` lies beyond ±[`EXACT`] may instead be refused as invalid input
/// (then it changes nothing), and an entry read at such a `now` may be refused likewise.
async fn replay(store: &dyn SessionStore, what: &str, steps: &[Step]) {
    let ns = unique(what);
    let keys: Vec<String> = (0..KEYS).map(|k| format!("{ns}:k{k}")).collect();
    let exact = |v: i64| v.unsigned_abs() <= EXACT as u64;
    let mut model = support::model::WindowModel::default();
    // The sessions the sequence uses: the others stay absent.
    let used: std::collections::BTreeSet<usize> = steps
        .iter()
        .map(|step| match *step {
            Step::Check { key, .. } | Step::Revoke { key, .. } => key,
        })
        .collect();
    for (i, &step) in steps.iter().enumerate() {
        let context = || format!("{what}: step {i}: {step:?}");
        let (now, within) = match step {
            Step::Check { iat, now, .. } => (now, exact(iat) && exact(now)),
            Step::Revoke { now, .. } => (now, exact(now)),
        };
        let result = match step {
            Step::Check {
                key,
                iat,
                now,
                limits,
            } => store
                .check_and_advance(&keys[key], iat, now, limits)
                .await
                .map(Some),
            Step::Revoke { key, now, limits } => {
                store.revoke(&keys[key], now, limits).await.map(|()| None)
            }
        };
        match result {
            Ok(got) => {
                let want = match step {
                    Step::Check {
                        key,
                        iat,
                        now,
                        limits,
                    } => Some(model.check(&keys[key], iat, now, limits)),
                    Step::Revoke { key, now, limits } => {
                        model.revoke(&keys[key], now, limits);
                        None
                    }
                };
                assert_eq!(got, want, "verdict: {}", context());
            }
            Err(e) if !within && e.kind() == StoreErrorKind::InvalidInput => {}
            Err(e) => panic!("{}: {e}", context()),
        }
        for (k, key) in keys.iter().enumerate().filter(|(k, _)| used.contains(k)) {
            match store.entry(key, now).await {
                Ok(got) => assert_eq!(got, model.live(key, now), "k{k} after {}", context()),
                Err(e) if !exact(now) && e.kind() == StoreErrorKind::InvalidInput => {}
                Err(e) => panic!("entry k{k} after {}: {e}", context()),
            }
        }
    }
}

/// Per window size 1 to 8, on one session: time mostly still, sometimes a jump past the TTL,
/// one step in 30 a revocation (the sequences of the Redis store's former model test).
fn sizes_on_one_session() -> Vec<(usize, Vec<Step>)> {
    (1..=MAX_WINDOW)
        .map(|size| {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ size as u64);
            let limits = WindowLimits::new(size, 1000);
            let mut now = 1_700_000_000;
            let steps = (0..250)
                .map(|_| {
                    now += match rng.below(20) {
                        0 => 1000, // the entry expires
                        1..=4 => rng.below(300) as i64,
                        _ => 0,
                    };
                    if rng.below(30) == 0 {
                        Step::Revoke {
                            key: 0,
                            now,
                            limits,
                        }
                    } else {
                        Step::Check {
                            key: 0,
                            iat: now - 500 + rng.below(3 * size as u64 + 3) as i64,
                            now,
                            limits,
                        }
                    }
                })
                .collect();
            (size, steps)
        })
        .collect()
}

/// Random checks, revocations and clock steps over three sessions, TTL 50 s; `size` picks each
/// step's window size (the sequences of the PostgreSQL store's former model tests).
fn steps_on_three_sessions(seed: u64, n: usize, size: impl Fn(&mut Rng) -> usize) -> Vec<Step> {
    let mut rng = Rng(seed);
    let mut now = 1_000;
    (0..n)
        .map(|_| {
            let limits = WindowLimits::new(size(&mut rng), 50);
            let key = rng.below(KEYS as u64) as usize;
            now += match rng.below(20) {
                0 => 60,
                n => n as i64 % 4,
            };
            if rng.below(40) == 0 {
                Step::Revoke { key, now, limits }
            } else {
                Step::Check {
                    key,
                    iat: rng.below(24) as i64,
                    now,
                    limits,
                }
            }
        })
        .collect()
}

/// Every window size from 1 to 8 agrees with the model.
async fn every_window_size(store: &dyn SessionStore) {
    for (size, steps) in sizes_on_one_session() {
        replay(store, &format!("one_session_size{size}"), &steps).await;
    }
    for size in 1..=MAX_WINDOW {
        let steps = steps_on_three_sessions(0x9E37_79B9 + size as u64, 300, |_| size);
        replay(store, &format!("three_sessions_size{size}"), &steps).await;
    }
}

/// A window size changed between calls (servers configured differently, a rolling deploy)
/// gives the model's answers.
async fn changing_window_sizes(store: &dyn SessionStore) {
    let mut rng = Rng(42);
    let steps: Vec<Step> = (0..300)
        .map(|i| Step::Check {
            key: 0,
            iat: rng.below(16) as i64,
            now: i / 50,
            limits: WindowLimits::new(1 + rng.below(8) as usize, 100),
        })
        .collect();
    replay(store, "sizes_one_session", &steps).await;
    let steps = steps_on_three_sessions(0xC0FF_EE11, 600, |rng| {
        1 + rng.below(MAX_WINDOW as u64) as usize
    });
    replay(store, "sizes_three_sessions", &steps).await;
}

/// The steps of [`extreme_integers`]: within ±(2^53 - 1), then beyond.
fn extreme_steps() -> [Vec<Step>; 5] {
    let max = EXACT;
    let check = |key, iat, now, limits| Step::Check {
        key,
        iat,
        now,
        limits,
    };
    let (l1, l2, l8) = (
        WindowLimits::new(1, 100),
        WindowLimits::new(2, 100),
        WindowLimits::new(8, 100),
    );
    let forever = WindowLimits::new(2, i64::MAX);
    let edge = vec![
        check(0, max, 0, l1),
        check(0, max - 1, 0, l1),
        check(1, max, 0, l2),
        check(1, max - 1, 0, l2),
    ];
    let extremes = [
        max,
        -max,
        -1,
        0,
        1,
        -10,
        -9,
        max - 1,
        -max + 1,
        9,
        10,
        99,
        100,
    ]
    .iter()
    .map(|&iat| check(0, iat, 0, l8))
    .collect();
    // Negative and large clocks; an expiry that saturates at i64::MAX.
    let clocks = vec![
        check(0, 5, -1000, l2),
        check(0, 4, -901, l2),
        check(0, 3, -900, l2),
        check(0, 3, max - 10, l2),
        Step::Revoke {
            key: 0,
            now: max - 5,
            limits: l2,
        },
        check(0, 3, max - 1, l2),
        check(0, 3, max, l2),
        check(0, 1, max, forever),
        check(0, 2, -max, forever),
    ];
    // Beyond: the extreme i64 values, and a clock near i64::MIN.
    let beyond = vec![
        check(0, i64::MIN, 5, forever),
        check(0, i64::MAX, 5, forever),
        check(0, 0, 5, forever),
        check(0, -1, 5, forever),
    ];
    let ten = WindowLimits::new(2, 10);
    let negative = vec![
        check(1, 3, -100, ten),
        check(1, 1, -100, ten),
        check(1, 2, -50, ten),
        check(1, 7, i64::MIN + 1, ten),
    ];
    [edge, extremes, clocks, beyond, negative]
}

/// Integers at the edges: exact within ±(2^53 - 1) on every backend; beyond, the model's
/// answer or a refusal that writes nothing.
async fn extreme_integers(store: &dyn SessionStore) {
    for (i, steps) in extreme_steps().iter().enumerate() {
        replay(store, &format!("extremes{i}"), steps).await;
    }
}

/// The model's answers to some of the sequences above, written out: the stores agree with the
/// model, and the model with these.
#[test]
fn the_model_answers_the_edge_sequences_as_written() {
    use SessionVerdict::*;
    let [edge, _, _, beyond, _] = extreme_steps();
    let run = |steps: &[Step]| {
        let mut model = support::model::WindowModel::default();
        let verdicts: Vec<_> = steps
            .iter()
            .map(|step| match *step {
                Step::Check {
                    key,
                    iat,
                    now,
                    limits,
                } => model.check(&key.to_string(), iat, now, limits),
                Step::Revoke { .. } => unreachable!("no revocation here"),
            })
            .collect();
        (verdicts, model)
    };
    let (verdicts, model) = run(&edge);
    assert_eq!(verdicts, [Accepted, Superseded, Accepted, Accepted]);
    assert_eq!(model.live("1", 0).unwrap().iats, [EXACT - 1, EXACT]);
    let (verdicts, model) = run(&beyond);
    assert_eq!(verdicts, [Accepted, Accepted, Accepted, Superseded]);
    assert_eq!(
        model.live("0", 5),
        Some(SessionEntry::new(vec![0, i64::MAX], false, i64::MAX))
    );
}

/// The seeded sequences as `#[tokio::test]`s of a backend module that has `open(ns)` and
/// `cleanup(ns)`.
macro_rules! seeded {
    ($($name:ident => $sequences:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let ns = unique(stringify!($name));
                let store = open(&ns).await;
                $sequences(&*store).await;
                cleanup(&ns).await;
            }
        )*
    };
}

macro_rules! all_seeded {
    () => {
        seeded!(
            every_window_size_agrees_with_the_model => every_window_size,
            changing_window_sizes_agree_with_the_model => changing_window_sizes,
            extreme_integers_agree_with_the_model => extreme_integers,
        );
    };
}

// ---------------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------------

#[test]
fn memory_store_matches_the_model() {
    check_against_model(256, 60, false, |_| Arc::new(MemoryStore::new(1_000)));
}

#[test]
fn memory_store_matches_the_model_when_the_window_size_changes() {
    check_against_model(256, 60, true, |_| Arc::new(MemoryStore::new(1_000)));
}

mod memory_backend {
    use super::*;

    async fn open(_ns: &str) -> Arc<dyn SessionStore> {
        Arc::new(MemoryStore::new(10_000))
    }

    async fn cleanup(_ns: &str) {}

    all_seeded!();
}

/// One store for the whole run, made on the run's runtime at the first case.
#[cfg(any(feature = "redis", feature = "postgres"))]
fn once<F>(make: F) -> impl Fn(&tokio::runtime::Runtime) -> Arc<dyn SessionStore>
where
    F: Fn(&tokio::runtime::Runtime) -> Arc<dyn SessionStore>,
{
    let store = std::sync::OnceLock::new();
    move |rt| store.get_or_init(|| make(rt)).clone()
}

#[cfg(feature = "redis")]
mod redis_backend {
    use super::*;
    use support::stores::{redis_store, unique_redis_prefix};

    /// A Redis store under a prefix of its own.
    fn open(rt: &tokio::runtime::Runtime) -> Arc<dyn SessionStore> {
        Arc::new(rt.block_on(redis_store(&unique_redis_prefix("model"))))
    }

    #[test]
    fn redis_store_matches_the_model() {
        check_against_model(32, 40, false, once(open));
    }

    #[test]
    fn redis_store_matches_the_model_when_the_window_size_changes() {
        check_against_model(32, 40, true, once(open));
    }

    mod seeded {
        use super::*;
        use support::stores::{delete_redis_keys, redis_prefix};

        async fn open(ns: &str) -> Arc<dyn SessionStore> {
            Arc::new(redis_store(&redis_prefix(ns)).await)
        }

        /// Some sequences use TTLs of `i64::MAX` (no native expiry): delete what they wrote.
        async fn cleanup(ns: &str) {
            delete_redis_keys(&redis_prefix(ns)).await;
        }

        all_seeded!();
    }
}

/// The same on a Redis Cluster the tests start themselves (`redis_cluster::shared`), keys spread
/// over every slot; nothing to clean up (the cluster ends with the test binary).
#[cfg(feature = "redis")]
mod redis_cluster_backend {
    use super::*;
    use crate::redis_cluster::cluster_store;

    /// A store on the cluster under a prefix of its own.
    fn open_once(rt: &tokio::runtime::Runtime) -> Arc<dyn SessionStore> {
        Arc::new(rt.block_on(cluster_store(&unique("model"))))
    }

    #[test]
    fn redis_cluster_store_matches_the_model() {
        check_against_model(32, 40, false, once(open_once));
    }

    #[test]
    fn redis_cluster_store_matches_the_model_when_the_window_size_changes() {
        check_against_model(32, 40, true, once(open_once));
    }

    async fn open(ns: &str) -> Arc<dyn SessionStore> {
        Arc::new(cluster_store(ns).await)
    }

    async fn cleanup(_ns: &str) {}

    all_seeded!();
}

#[cfg(feature = "postgres")]
mod postgres_backend {
    use super::*;
    use support::stores::{drop_table, postgres_store_with_schema, unique_postgres_table};

    /// Runs the property on a table of its own, dropped when it passed.
    fn run(varying: bool) {
        let table = unique_postgres_table("model");
        let open = |rt: &tokio::runtime::Runtime| -> Arc<dyn SessionStore> {
            Arc::new(rt.block_on(postgres_store_with_schema(&table)))
        };
        check_against_model(32, 40, varying, once(open));
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(drop_table(&table));
    }

    #[test]
    fn postgres_store_matches_the_model() {
        run(false);
    }

    #[test]
    fn postgres_store_matches_the_model_when_the_window_size_changes() {
        run(true);
    }

    mod seeded {
        use super::*;
        use support::stores::postgres_table;

        async fn open(ns: &str) -> Arc<dyn SessionStore> {
            Arc::new(postgres_store_with_schema(&postgres_table(ns)).await)
        }

        async fn cleanup(ns: &str) {
            drop_table(&postgres_table(ns)).await;
        }

        all_seeded!();
    }
}
