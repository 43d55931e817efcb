//! What `RedisStore::wait_for_replicas` costs, on a local Redis Cluster this bench starts itself
//! (three primaries, one replica each, on spare loopback ports; stopped at the end):
//!
//! - `cluster_check/no_wait`: an accepting `check_and_advance` that writes (a new `iat` every
//!   call, over 100 sessions spread across the slots);
//! - `cluster_check/wait_1`: the same with `wait_for_replicas(1, 1 s)`: the script and `WAIT 1`
//!   in one pipeline, answered once the replica acknowledged;
//! - `cluster_check/single_server`: the same without WAIT on the single server at `REDIS_URL`
//!   (default `redis://127.0.0.1:6379`), for the cluster client's own cost (skipped with a note
//!   when unreachable).
//!
//! The keys written on the shared server expire by themselves (the window's TTL, 600 s).
//!
//! `RATIO wait_1 / no_wait` is the price of the acknowledgement (reported, no target).
//!
//! `cargo bench --bench redis_cluster --features redis`.

mod common;

#[allow(unreachable_pub)]
#[path = "../tests/it/redis_cluster/harness.rs"]
mod harness;

use std::cell::Cell;
use std::time::Duration;

use tower_cognito::session::{RedisStore, SessionStore, SessionVerdict, WindowLimits};

use common::{batch_async, bench, ratio, Target};
use harness::OwnCluster;

const LIMITS: WindowLimits = WindowLimits::new(2, 600);

fn main() {
    let mut c = common::criterion();
    let rt = common::runtime();
    let cluster = OwnCluster::start(3, 1, 5000);
    let seed = cluster.urls()[0].clone();
    let prefix = format!("tower-cognito-bench:{}:", std::process::id());
    let plain = rt
        .block_on(RedisStore::connect(&seed))
        .expect("connect to the cluster")
        .with_prefix(&prefix);
    let waiting = plain.clone().wait_for_replicas(1, Duration::from_secs(1));
    let single_url =
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let single = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), RedisStore::connect(&single_url))
            .await
            .ok()
            .and_then(Result::ok)
    });

    let now = common::now();
    let next = Cell::new(0i64);
    let keys: Vec<String> = (0..100).map(|i| format!("s{i}")).collect();
    // A new iat on every call, so that every check writes.
    let step = || {
        let n = next.get();
        next.set(n + 1);
        (&keys[(n % 100) as usize], now - 10_000_000 + n)
    };
    let accept = |store: &RedisStore, key: &str, iat: i64| {
        let store = store.clone();
        let key = key.to_owned();
        async move {
            let verdict = store
                .check_and_advance(&key, iat, now, LIMITS)
                .await
                .expect("check");
            assert_eq!(verdict, SessionVerdict::Accepted);
        }
    };
    let mut no_wait = batch_async(&rt, || {
        let (key, iat) = step();
        accept(&plain, key, iat)
    });
    let mut wait_1 = batch_async(&rt, || {
        let (key, iat) = step();
        accept(&waiting, key, iat)
    });
    let group = "cluster_check";
    let mut g = c.benchmark_group(group);
    bench(&mut g, group, "no_wait", &mut no_wait);
    bench(&mut g, group, "wait_1", &mut wait_1);
    let mut single_batch = single.as_ref().map(|single| {
        let single = single.clone().with_prefix(&prefix);
        batch_async(&rt, move || {
            let (key, iat) = step();
            accept(&single, key, iat)
        })
    });
    match single_batch.as_mut() {
        Some(batch) => bench(&mut g, group, "single_server", batch),
        None => println!("single_server: skipped, no Redis at {single_url} (REDIS_URL)"),
    }
    g.finish();
    ratio(
        &format!("{group}/wait_1"),
        &mut wait_1,
        &format!("{group}/no_wait"),
        &mut no_wait,
        Target::None,
    );
    if let Some(batch) = single_batch.as_mut() {
        ratio(
            &format!("{group}/no_wait"),
            &mut no_wait,
            &format!("{group}/single_server"),
            batch,
            Target::None,
        );
    }
    common::print_report("redis_cluster");
    drop(cluster);
}
