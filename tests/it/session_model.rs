//! Property test: every session store behaves like a tiny reference model over random sequences
//! of operations (checks of a few sessions with random `iat`s, revocations, time moving on,
//! reads).
//!
//! The model below is written from the semantics in the `session` module docs, on its own: a
//! sorted `Vec` per session, nothing shared with the crate's code. Each backend runs the same
//! property; the network backends (Redis, PostgreSQL; behind their features, against real
//! servers) use fewer cases so the run takes seconds. Each case uses session keys of its own,
//! and each run a key prefix or table of its own.

use crate::support;

use std::fmt;
use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use support::model::WindowModel;
use support::unique;
use tower_cognito::session::{
    MemoryStore, SessionEntry, SessionStore, SessionVerdict, WindowLimits, MAX_WINDOW,
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
}
