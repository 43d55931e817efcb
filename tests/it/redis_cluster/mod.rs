#![cfg(feature = "redis")]
//! The Redis stores on a real Redis Cluster that the tests start themselves ([`harness`]):
//!
//! - one cluster shared by this binary ([`shared`]: three primaries with one replica each) for
//!   the behavioural suites (`session_behaviour::redis_cluster`, `refresh_store::redis_cluster`)
//!   and the tests here that do not disturb it;
//! - a cluster of their own for the tests that move slots or kill nodes.
//!
//! Loads are bounded in count; the only waits are for the cluster to form or heal, bounded by
//! the harness. Nothing asserts how long anything took.

pub mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tower_cognito::refresh::RedisRefreshStore;
use tower_cognito::session::{
    RedisStore, SessionStore, SessionVerdict, StoreErrorKind, WindowLimits,
};

use crate::support::stores::redis_url;
use crate::support::{now, unique};
use harness::{command, slot, OwnCluster};
use SessionVerdict::{Accepted, Superseded};

/// The cluster this test binary shares: three primaries, one replica each. Started at the first
/// call; its servers end with the binary (see [`harness`]).
pub async fn shared() -> &'static OwnCluster {
    static SHARED: OnceLock<OwnCluster> = OnceLock::new();
    tokio::task::spawn_blocking(|| SHARED.get_or_init(|| OwnCluster::start(3, 1, 5000)))
        .await
        .expect("start the shared cluster")
}

/// A key prefix for the namespace `ns`, without braces (so the keys spread over the slots).
pub fn prefix(ns: &str) -> String {
    format!("tower-cognito-cluster-test:{ns}:")
}

/// The URL of one node of the shared cluster, chosen by `ns` (primaries and replicas alike: any
/// node is a good seed).
pub async fn some_node(ns: &str) -> String {
    let ports = shared().await.ports();
    let pick = ns.bytes().map(usize::from).sum::<usize>() % ports.len();
    OwnCluster::url(ports[pick])
}

/// A [`RedisStore`] on the shared cluster, connected through one node's URL (cluster mode
/// detected), with the keys of `ns`.
pub async fn cluster_store(ns: &str) -> RedisStore {
    let url = some_node(ns).await;
    RedisStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connect to the cluster node {url}: {e}"))
        .with_prefix(prefix(ns))
}

/// A [`RedisRefreshStore`] on the shared cluster: through one node's URL when `seeds` is false,
/// else through every node as seeds.
pub async fn cluster_refresh_store(ns: &str, seeds: bool) -> RedisRefreshStore {
    let cluster = shared().await;
    let store = if seeds {
        RedisRefreshStore::connect_cluster(cluster.urls()).await
    } else {
        RedisRefreshStore::connect(&some_node(ns).await).await
    };
    store
        .unwrap_or_else(|e| panic!("connect to the cluster: {e}"))
        .with_prefix(prefix(ns))
        .expect("prefix")
}

const L2: WindowLimits = WindowLimits::new(2, 600);

async fn check(
    store: &dyn SessionStore,
    key: &str,
    iat: i64,
    t: i64,
    l: WindowLimits,
) -> SessionVerdict {
    store
        .check_and_advance(key, iat, t, l)
        .await
        .unwrap_or_else(|e| panic!("check_and_advance({key:?}, {iat}) failed: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------------------------

/// Pointed at any one node, primary or replica, the store finds the cluster and reaches every
/// slot: 300 sessions spread over all three primaries, every one accepted and read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_address_is_enough() {
    let cluster = shared().await;
    let topology = cluster.topology();
    assert_eq!(topology.primaries().len(), 3);
    assert_eq!(topology.replicas().len(), 3);
    let t = now();
    for port in cluster.ports() {
        let ns = unique("one_node");
        let store = RedisStore::connect(&OwnCluster::url(port))
            .await
            .unwrap_or_else(|e| panic!("connect to {port}: {e}"))
            .with_prefix(prefix(&ns));
        let debug = format!("{store:?}");
        assert!(
            debug.contains(&format!("cluster via 127.0.0.1:{port}")),
            "{debug}"
        );
        let mut owners = BTreeSet::new();
        for i in 0..300 {
            let key = format!("s{i}");
            owners.insert(topology.primary_of(slot(&format!("{}{key}", prefix(&ns)))));
            assert_eq!(
                check(&store, &key, t - 10, t, L2).await,
                Accepted,
                "{key} via {port}"
            );
            assert_eq!(check(&store, &key, t - 5, t, L2).await, Accepted);
            assert_eq!(check(&store, &key, t - 1, t, L2).await, Accepted);
            assert_eq!(check(&store, &key, t - 10, t, L2).await, Superseded);
            let entry = store.entry(&key, t).await.expect("entry").expect("present");
            assert_eq!(entry.iats, [t - 5, t - 1]);
        }
        assert_eq!(owners.len(), 3, "the keys reach every primary");
    }
}

/// `connect_cluster` takes several seeds and needs only one to answer; it refuses an empty
/// list, a database other than 0 and a server that is not a cluster node, with clear errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_nodes() {
    let cluster = shared().await;
    let live = cluster.urls()[1].clone();
    let dead = format!("redis://127.0.0.1:{}", harness_dead_port());
    let ns = unique("seeds");
    let store = RedisStore::connect_cluster([dead.as_str(), live.as_str()])
        .await
        .expect("one live seed is enough")
        .with_prefix(prefix(&ns));
    let t = now();
    for i in 0..50 {
        assert_eq!(check(&store, &format!("k{i}"), t, t, L2).await, Accepted);
    }

    let none: [&str; 0] = [];
    let err = RedisStore::connect_cluster(none).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::InvalidInput, "{err}");

    let db1 = format!("{live}/1");
    let err = RedisStore::connect_cluster([db1.as_str()])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("database 0"), "{err}");
    // Detected as a cluster node, the same refusal.
    let err = RedisStore::connect(&db1).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::InvalidInput, "{err}");

    // The shared single server is not a cluster node.
    let single = redis_url();
    let err = RedisStore::connect_cluster([single.as_str()])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::InvalidInput, "{err}");
    assert!(
        err.to_string().contains("not a Redis Cluster node"),
        "{err}"
    );
    let err = RedisRefreshStore::connect_cluster([dead.as_str()])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    // The password never shows in Debug.
    let with_password = live.replace("redis://", "redis://:hunter2@");
    if let Ok(store) = RedisStore::connect_cluster([with_password.as_str()]).await {
        assert!(!format!("{store:?}").contains("hunter2"));
    }
}

/// A port nothing listens on (bound, then released).
fn harness_dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Every node forgets the scripts (`SCRIPT FLUSH` on each): each node answers `NOSCRIPT` once
/// and the call runs as `EVAL` on the node owning the key, for both stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_flushed_on_every_node() {
    // An own cluster: flushing the shared one's scripts would change what other tests measure
    // (nothing would break, but they would take the fallback).
    let cluster = tokio::task::spawn_blocking(|| OwnCluster::start(3, 0, 5000))
        .await
        .expect("start");
    let ns = unique("flushed");
    let store = RedisStore::connect(&cluster.urls()[0])
        .await
        .expect("connect")
        .with_prefix(prefix(&ns));
    let refresh = RedisRefreshStore::connect(&cluster.urls()[2])
        .await
        .expect("connect")
        .with_prefix(prefix(&ns))
        .expect("prefix");
    let t = now();
    for round in 0..2 {
        for port in cluster.ports() {
            let () = command(port, &["SCRIPT", "FLUSH"]).expect("SCRIPT FLUSH");
        }
        for i in 0..60 {
            let key = format!("k{i}");
            assert_eq!(check(&store, &key, t - 10 + round, t, L2).await, Accepted);
        }
        let id = format!("{:064x}", round);
        let record = tower_cognito::refresh::SessionRecord::new(0, t + 60, t + 30, b"x".to_vec());
        tower_cognito::refresh::RefreshStore::create(&refresh, &id, &record, t)
            .await
            .expect("create after flush");
        let lock =
            tower_cognito::refresh::RefreshStore::lock(&refresh, &id, Duration::from_secs(5), t)
                .await
                .expect("lock after flush");
        assert!(matches!(
            lock,
            tower_cognito::refresh::LockOutcome::Acquired { .. }
        ));
    }
    // Every node ran the fallback: the scripts are cached everywhere again.
    for port in cluster.ports() {
        let stats: String = command(port, &["INFO", "errorstats"]).expect("INFO errorstats");
        assert!(stats.contains("errorstat_NOSCRIPT"), "{port}: {stats}");
    }
}

// ---------------------------------------------------------------------------------------------
// Two servers
// ---------------------------------------------------------------------------------------------

/// Two stores, as two servers would hold them (one through a node's URL, one through the
/// seeds), race on 100 sessions: 8 new tokens per session, 4 through each, all at once. Every
/// check is accepted and every window ends with all 8: no update lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_race_100_sessions() {
    let cluster = shared().await;
    let ns = unique("race");
    let a: Arc<dyn SessionStore> = Arc::new(cluster_store(&ns).await);
    let b: Arc<dyn SessionStore> = Arc::new(
        RedisStore::connect_cluster(cluster.urls())
            .await
            .expect("connect with seeds")
            .with_prefix(prefix(&ns)),
    );
    let (t, limits) = (now(), WindowLimits::new(8, 600));
    let mut tasks = tokio::task::JoinSet::new();
    for session in 0..100 {
        for n in 0..8i64 {
            let store = if n % 2 == 0 { a.clone() } else { b.clone() };
            let key = format!("race{session}");
            tasks.spawn(async move {
                let verdict = store.check_and_advance(&key, t - 100 + n, t, limits).await;
                (key, n, verdict)
            });
        }
    }
    let mut wrong = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (key, n, verdict) = joined.expect("task");
        match verdict {
            Ok(Accepted) => {}
            other => wrong.push(format!("{key} iat -{}: {other:?}", 100 - n)),
        }
    }
    assert!(wrong.is_empty(), "{} of 800 checks: {wrong:?}", wrong.len());
    let mut lost = Vec::new();
    for session in 0..100 {
        let key = format!("race{session}");
        let expected: Vec<i64> = (0..8).map(|n| t - 100 + n).collect();
        for store in [&a, &b] {
            let entry = store.entry(&key, t).await.expect("entry").expect("present");
            if entry.iats != expected {
                lost.push(format!("{key}: {:?}", entry.iats));
            }
        }
    }
    assert!(lost.is_empty(), "lost updates: {lost:?}");
}

// ---------------------------------------------------------------------------------------------
// WAIT
// ---------------------------------------------------------------------------------------------

/// With `wait_for_replicas(1, ..)`, an accepted check is already on the replica of the key's
/// primary when it is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_writes_are_on_a_replica_when_answered() {
    let cluster = shared().await;
    let topology = cluster.topology();
    let ns = unique("wait");
    let store = cluster_store(&ns)
        .await
        .wait_for_replicas(1, Duration::from_secs(2));
    let t = now();
    for i in 0..60 {
        let key = format!("w{i}");
        assert_eq!(check(&store, &key, t - 3, t, L2).await, Accepted);
        assert_eq!(check(&store, &key, t - 2, t, L2).await, Accepted);
        let full = format!("{}{key}", prefix(&ns));
        let replica = topology.replicas_of(topology.primary_of(slot(&full)))[0];
        let value = read_on_replica(replica, &full);
        assert_eq!(
            value.as_deref(),
            Some(format!("{}|0|{},{}", t + 600, t - 3, t - 2).as_str()),
            "{key} on replica {replica}"
        );
        // A refusal writes nothing and needs no replica.
        assert_eq!(check(&store, &key, t - 9, t, L2).await, Superseded);
    }
}

/// `GET key` on a replica (`READONLY` first), on one connection.
fn read_on_replica(port: u16, key: &str) -> Option<String> {
    let client = redis::Client::open(OwnCluster::url(port)).expect("client");
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .expect("connect to the replica");
    let () = redis::cmd("READONLY").query(&mut conn).expect("READONLY");
    redis::cmd("GET").arg(key).query(&mut conn).expect("GET")
}

/// Asking for more replicas than there are: an acceptance or a revocation is not confirmed
/// (Unavailable, a 503, naming how many acknowledged), a refusal is answered as it is; the
/// same for the refresh store's writes; and on the single shared server (no replica at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_replicas_is_unavailable() {
    let ns = unique("wait_short");
    let plain = cluster_store(&ns).await;
    let store = plain
        .clone()
        .wait_for_replicas(2, Duration::from_millis(50));
    let t = now();
    let err = store
        .check_and_advance("k", t - 1, t, L2)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("1 of the 2 replicas"), "{err}");
    // The write is on the primary all the same (WAIT does not undo it).
    check(&plain, "k", t, t, L2).await;
    assert_eq!(check(&plain, "k", t + 1, t, L2).await, Accepted);
    assert_eq!(check(&store, "k", t - 1, t, L2).await, Superseded);
    let err = store.revoke("k", t, L2).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    // Off again with zero replicas.
    let off = plain
        .clone()
        .wait_for_replicas(0, Duration::from_millis(50));
    assert_eq!(check(&off, "k2", t, t, L2).await, Accepted);

    let refresh = cluster_refresh_store(&ns, true)
        .await
        .wait_for_replicas(2, Duration::from_millis(50));
    let record = tower_cognito::refresh::SessionRecord::new(0, t + 60, t + 30, b"x".to_vec());
    let id = format!("{:064x}", 7);
    let err = tower_cognito::refresh::RefreshStore::create(&refresh, &id, &record, t)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    let refresh = refresh.wait_for_replicas(1, Duration::from_secs(2));
    tower_cognito::refresh::RefreshStore::create(&refresh, &id, &record, t)
        .await
        .expect("one replica acknowledges");

    let single = RedisStore::connect(&redis_url())
        .await
        .expect("connect to REDIS_URL")
        .with_prefix(crate::support::stores::unique_redis_prefix("wait_single"))
        .wait_for_replicas(1, Duration::from_millis(20));
    let err = single.check_and_advance("k", t, t, L2).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("0 of the 1 replicas"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Under load: a slot migration, a failover
// ---------------------------------------------------------------------------------------------

/// The load: one task per session, each walking its session forward (window of two): a new
/// token (accepted), the one before it (accepted: still in the window), the one two back
/// (superseded). A step that fails is retried until it answers: every step is idempotent, so
/// the expected verdict stays the same. Answers other than the expected one are wrong answers.
struct Load {
    stop: Arc<AtomicBool>,
    steps: Arc<AtomicUsize>,
    /// Sessions whose task ended.
    ended: Arc<AtomicUsize>,
    sessions: usize,
    tasks: tokio::task::JoinSet<Tally>,
}

#[derive(Default, Debug)]
struct Tally {
    wrong: Vec<String>,
    /// Errors by kind (or "timeout" for the store timeout of 2 s passing).
    errors: BTreeMap<String, usize>,
    /// The session's step when it stopped.
    steps: i64,
}

impl Load {
    fn start(store: Arc<dyn SessionStore>, keys: Vec<String>, t: i64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let steps = Arc::new(AtomicUsize::new(0));
        let ended = Arc::new(AtomicUsize::new(0));
        let sessions = keys.len();
        let mut tasks = tokio::task::JoinSet::new();
        for key in keys {
            let (store, stop, steps) = (store.clone(), stop.clone(), steps.clone());
            let ended = ended.clone();
            tasks.spawn(async move {
                let tally = Self::walk(&*store, &key, t, &stop, &steps).await;
                ended.fetch_add(1, Ordering::Relaxed);
                tally
            });
        }
        Load {
            stop,
            steps,
            ended,
            sessions,
            tasks,
        }
    }

    /// One session's walk.
    async fn walk(
        store: &dyn SessionStore,
        key: &str,
        t: i64,
        stop: &AtomicBool,
        steps: &AtomicUsize,
    ) -> Tally {
        {
            {
                let mut tally = Tally::default();
                let base = t - 100_000;
                // At most 5000 steps a session: the load is bounded even if stop never comes.
                for step in 0..5000i64 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut ops = vec![(base + step, Accepted)];
                    if step >= 1 {
                        ops.push((base + step - 1, Accepted));
                    }
                    if step >= 2 {
                        ops.push((base + step - 2, Superseded));
                    }
                    for (iat, expected) in ops {
                        // At most 500 tries (about 10 s of errors) for one step.
                        let mut last = String::new();
                        let mut answered = None;
                        for _ in 0..500 {
                            let answer = tokio::time::timeout(
                                Duration::from_secs(2),
                                store.check_and_advance(key, iat, t, L2),
                            )
                            .await;
                            match answer {
                                Ok(Ok(verdict)) => {
                                    answered = Some(verdict);
                                    break;
                                }
                                Ok(Err(e)) => {
                                    *tally.errors.entry(format!("{:?}", e.kind())).or_default() +=
                                        1;
                                    last = e.to_string();
                                }
                                Err(_) => {
                                    *tally.errors.entry("timeout".to_owned()).or_default() += 1;
                                    last = "store timeout".to_owned();
                                }
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        let Some(verdict) = answered else {
                            tally
                                .wrong
                                .push(format!("{key} step {step}: no answer, last: {last}"));
                            return tally;
                        };
                        if verdict != expected {
                            tally.wrong.push(format!(
                                "{key} step {step}: iat {iat} {verdict:?}, expected {expected:?}"
                            ));
                        }
                    }
                    tally.steps = step;
                    steps.fetch_add(1, Ordering::Relaxed);
                }
                tally
            }
        }
    }

    /// Steps done so far, by every session together.
    fn steps(&self) -> usize {
        self.steps.load(Ordering::Relaxed)
    }

    /// Waits until `more` further steps are done.
    /// Waits until `more` further steps are done, or every session stopped (gave up).
    async fn run_for(&self, more: usize) {
        let target = self.steps() + more;
        while self.steps() < target && self.ended.load(Ordering::Relaxed) < self.sessions {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn finish(mut self) -> Vec<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        let mut tallies = Vec::new();
        while let Some(t) = self.tasks.join_next().await {
            tallies.push(t.expect("load task"));
        }
        tallies
    }
}

/// The errors of every session, by kind.
fn sum_errors(tallies: &[Tally]) -> BTreeMap<String, usize> {
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for tally in tallies {
        for (kind, n) in &tally.errors {
            *errors.entry(kind.clone()).or_default() += n;
        }
    }
    errors
}

/// `errorstat_<code>` counts summed over `ports`.
fn error_count(ports: &[u16], code: &str) -> u64 {
    ports
        .iter()
        .map(|&port| {
            let stats: String = command(port, &["INFO", "errorstats"]).unwrap_or_default();
            stats
                .lines()
                .find_map(|l| l.strip_prefix(&format!("errorstat_{code}:count=")))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// Four slots move from primary to primary, twice, key by key (`SETSLOT MIGRATING/IMPORTING`
/// and `MIGRATE`, 200 filler keys a slot so the move lasts), while 60 sessions in those slots
/// are checked without pause: the clients meet `ASK` and `MOVED` all along, and every answer
/// is the right one; the only errors are 503s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_migration_under_load() {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| OwnCluster::start(3, 0, 5000))
            .await
            .expect("start"),
    );
    let ns = unique("migrate");
    let store = RedisStore::connect(&cluster.urls()[0])
        .await
        .expect("connect")
        .with_prefix(prefix(&ns));
    // Sessions whose keys carry a hash tag: fifteen in each of four slots.
    let tags = ["a", "b", "c", "d"];
    let keys: Vec<String> = tags
        .iter()
        .flat_map(|tag| (0..15).map(move |i| format!("{{{tag}}}:s{i}")))
        .collect();
    let slots: BTreeSet<u16> = tags.iter().map(|tag| slot(tag)).collect();
    assert_eq!(slots.len(), 4);
    // Filler keys so each slot takes a while to move.
    let fill = cluster.clone();
    let tags_owned: Vec<String> = tags.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let topology = fill.topology();
        for tag in &tags_owned {
            let owner = topology.primary_of(slot(tag));
            for i in 0..200 {
                let key = format!("{{{tag}}}:fill{i}");
                let () = command(owner, &["SET", &key, "x"]).expect("SET filler");
            }
        }
    })
    .await
    .expect("fill");

    let t = now();
    let store: Arc<dyn SessionStore> = Arc::new(store);
    let load = Load::start(store, keys, t);
    load.run_for(200).await;
    let ports = cluster.ports();
    let (ask_before, moved_before) = (error_count(&ports, "ASK"), error_count(&ports, "MOVED"));
    let steps_before = load.steps();
    for _round in 0..2 {
        for &s in &slots {
            let c = cluster.clone();
            let moved = tokio::task::spawn_blocking(move || {
                let topology = c.topology();
                let from = topology.primary_of(s);
                let primaries = topology.primaries();
                let to = primaries
                    [(primaries.iter().position(|&p| p == from).unwrap() + 1) % primaries.len()];
                c.migrate_slot(s, from, to, Duration::from_millis(2))
            })
            .await
            .expect("migrate");
            assert!(moved >= 200, "slot {s}: {moved} keys moved");
        }
    }
    let steps_during = load.steps() - steps_before;
    load.run_for(200).await;
    let tallies = load.finish().await;
    let (ask, moved) = (
        error_count(&ports, "ASK") - ask_before,
        error_count(&ports, "MOVED") - moved_before,
    );
    eprintln!(
        "slot migration: {steps_during} steps during 8 slot moves, {ask} ASK and {moved} MOVED redirections"
    );
    let wrong: Vec<&String> = tallies.iter().flat_map(|t| &t.wrong).collect();
    assert!(wrong.is_empty(), "wrong answers: {wrong:?}");
    // redis-rs's cluster client can stall after the slot map changes under load (its slot
    // refresh waits forever); the store then replaces the connection, and the requests caught in
    // between time out: 503s, never a wrong answer.
    let errors = sum_errors(&tallies);
    eprintln!("slot migration: errors {errors:?}");
    assert!(
        errors
            .keys()
            .all(|k| k == "Unavailable" || k == "Timeout" || k == "timeout"),
        "only 503s during the migration: {errors:?}"
    );
    assert!(
        steps_during > 0 && ask > 0 && moved > 0,
        "the load met the migration"
    );
}

/// A primary is killed (SIGKILL) under load and its replica takes over (cluster-node-timeout
/// 1 s). The store waits for one replica's acknowledgement, so nothing it answered is lost:
/// during the failover the sessions of the dead primary's slots get only 503s (Unavailable, or
/// the 2 s store timeout), never a wrong answer. The new primary has no replica until the
/// killed node comes back as one (its writes are not confirmed until then: 503s again); then
/// every session answers correctly, at the first try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_killed_replica_takes_over() {
    let cluster = tokio::task::spawn_blocking(|| OwnCluster::start(3, 1, 1000))
        .await
        .expect("start");
    let ns = unique("failover");
    let topology = cluster.topology();
    let victim = topology.primaries()[0];
    let heir = topology.replicas_of(victim)[0];
    // Connected through another primary: the seed survives.
    let seed = OwnCluster::url(topology.primaries()[1]);
    let store = RedisStore::connect(&seed)
        .await
        .expect("connect")
        .with_prefix(prefix(&ns))
        .wait_for_replicas(1, Duration::from_millis(500));
    let keys: Vec<String> = (0..60).map(|i| format!("f{i}")).collect();
    let on_victim = keys
        .iter()
        .filter(|k| topology.primary_of(slot(&format!("{}{k}", prefix(&ns)))) == victim)
        .count();
    assert!(on_victim > 0);
    let t = now();
    let store: Arc<dyn SessionStore> = Arc::new(store);
    let load = Load::start(store.clone(), keys.clone(), t);
    load.run_for(300).await;

    let mut cluster = cluster;
    cluster.kill(victim);
    load.run_for(100).await;
    let cluster = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        let healed = cluster.wait_failed_over();
        assert!(healed.primaries().contains(&heir), "{healed:?}");
        cluster.restart(victim);
        let rejoined = cluster.topology();
        assert_eq!(rejoined.replicas_of(heir), [victim], "{rejoined:?}");
        cluster
    })
    .await
    .expect("failover");
    // Every session moves on after the failover.
    load.run_for(300).await;
    let tallies = load.finish().await;
    let wrong: Vec<&String> = tallies.iter().flat_map(|t| &t.wrong).collect();
    assert!(wrong.is_empty(), "wrong answers: {wrong:?}");
    let errors = sum_errors(&tallies);
    eprintln!("failover: {on_victim} of 60 sessions on the killed primary; errors: {errors:?}");
    assert!(
        errors
            .keys()
            .all(|k| k == "Unavailable" || k == "Timeout" || k == "timeout"),
        "only 503s during the failover: {errors:?}"
    );

    // Afterwards: the next step of every session answers at the first try, correctly.
    let mut late = Vec::new();
    for key in &keys {
        let entry = store.entry(key, t).await.expect("entry after the failover");
        let newest = *entry.expect("present").iats.last().expect("an iat");
        match store.check_and_advance(key, newest + 1, t, L2).await {
            Ok(Accepted) => {}
            other => late.push(format!("{key}: {other:?}")),
        }
        match store.check_and_advance(key, newest - 1, t, L2).await {
            Ok(Superseded) => {}
            other => late.push(format!("{key} (old): {other:?}")),
        }
    }
    assert!(late.is_empty(), "after the failover: {late:?}");
    drop(cluster);
}
