//! Session stores stopped and restarted UNDER LOAD, each on a server of the test's own.
//!
//! The shared servers on 6379 and 5432 are never touched. Each test starts its own server on a
//! spare loopback port (`support::stores::OwnRedis`, `support::stores::OwnPostgres`; both are
//! guards that kill the server and remove its directory on drop, also when the test fails):
//!
//! - Redis with persistence (`--appendonly yes --appendfsync always`, its own directory), killed
//!   with SIGKILL mid-run and started again on the same port and directory;
//! - a PostgreSQL cluster of its own (`initdb` as the `postgres` OS user), stopped with
//!   `pg_ctl stop -m immediate` mid-run and started again (crash recovery).
//!
//! Eight tasks loop through the real layer for the whole run, each on a session of its own: the
//! current token (refreshed every few requests), the previous one (still accepted) and the one
//! before (superseded). Witness sessions are written before the outage and left alone. The
//! tests assert:
//!
//! - while the store is down every answer is 503 without a challenge (`StoreUnavailable`), never
//!   a 401 and never a panic, and 503 only between the kill and the recovery;
//! - the layer recovers by itself after the restart, within seconds;
//! - no window written before the outage is lost: each witness's `entry()` is exactly what it
//!   was before the kill and its superseded token is still refused; each task's window, read
//!   right after its first answer from the restarted store and at the end, holds both of its
//!   newest acknowledged tokens.
//!
//! Run with `--nocapture` to see the figures (answers per phase, latencies, recovery time).
#![cfg(any(feature = "redis", feature = "postgres"))]

use crate::support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use support::{challenge, key, local_config, now, ApiServer, JwksServer, SignIn};
use tower_cognito::session::{SessionConfig, SessionEntry, SessionStore};
use tower_cognito::{AuthError, InvalidToken, TokenUse, Verified, Verifier};

const POOL: &str = "us-east-1_OutageTest1";
const CLIENT: &str = "outage0client0id0for0tests";
/// The store timeout of these tests.
const TIMEOUT: Duration = Duration::from_millis(300);
/// What a request may take beyond the store timeout (signature check, scheduling, debug build).
const SLACK: Duration = Duration::from_millis(700);
/// Concurrent sessions looping through the layer.
const TASKS: usize = 8;
/// Sessions written before the outage and left alone.
const WITNESSES: usize = 20;
/// Load before the kill, time down, load after every task has recovered.
const BEFORE: Duration = Duration::from_millis(1500);
const DOWN: Duration = Duration::from_millis(1500);
const AFTER: Duration = Duration::from_millis(1500);
/// The longest the layer may take to answer 200 again after the server is back.
const RECOVERY: Duration = Duration::from_secs(10);
/// Each task refreshes its token after this many accepted requests.
const REFRESH_EVERY: u32 = 3;

async fn handler(request: Request<String>) -> Result<Response<String>, Infallible> {
    let verified = request.extensions().get::<Verified>().expect("Verified");
    Ok(Response::new(
        verified.session_key().unwrap_or_default().to_owned(),
    ))
}

async fn api_server(jwks: &JwksServer, store: Arc<dyn SessionStore>) -> ApiServer {
    let config = local_config(jwks, TokenUse::Access, CLIENT)
        .session_window(SessionConfig::new(store).timeout(TIMEOUT));
    let verifier: Verifier = Verifier::new(config).expect("verifier");
    verifier.prefetch_keys().await.expect("prefetch keys");
    ApiServer::new(verifier, handler)
}

/// A sign-in whose original token was issued long enough ago that hundreds of refreshes
/// (`iat` T+n) are still in the past.
fn long_sign_in(jwks: &JwksServer) -> SignIn {
    let mut sign_in = SignIn::new(jwks, CLIENT);
    sign_in.t = now() - 1000;
    sign_in
}

/// The window of a session whose tokens 0..=n were accepted in order (window size 2).
fn expected_iats(sign_in: &SignIn, n: i64) -> Vec<i64> {
    if n >= 1 {
        vec![sign_in.t + n - 1, sign_in.t + n]
    } else {
        vec![sign_in.t]
    }
}

/// Which token of its session a request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Probe {
    /// The newest token (refresh n): accepted.
    Current,
    /// Refresh n-1: still in the window, accepted.
    Previous,
    /// Refresh n-2: superseded, refused with 401.
    Superseded,
}

/// One answer of the layer.
#[derive(Debug, Clone)]
struct Seen {
    task: usize,
    probe: Probe,
    n: i64,
    start: Instant,
    end: Instant,
    status: StatusCode,
    error: Option<AuthError>,
    challenge: Option<String>,
}

impl Seen {
    fn took(&self) -> Duration {
        self.end - self.start
    }
}

/// What one task did.
struct TaskReport {
    seen: Vec<Seen>,
    sign_in: SignIn,
    /// The last refresh accepted.
    acked: Option<i64>,
    /// `entry()` read right after the first 200 that followed a 503, and whether it was right.
    post_outage_entry: Option<(i64, Option<SessionEntry>, bool)>,
}

/// What a task shares with the test while it runs.
struct Shared {
    stop: AtomicBool,
    /// Set once the server is back: answers that start after it count as "after".
    restarted: Mutex<Option<Instant>>,
    /// Per task: whether it got a 200 for a request started after the restart.
    recovered: Vec<AtomicBool>,
}

async fn call(api: &ApiServer, task: usize, probe: Probe, n: i64, token: &str) -> Seen {
    let start = Instant::now();
    let response = api.get("/", token).await;
    Seen {
        task,
        probe,
        n,
        start,
        end: Instant::now(),
        status: response.status(),
        error: response.extensions().get::<AuthError>().cloned(),
        challenge: challenge(&response),
    }
}

/// One session, requests one after another: refresh n, then n-1 and n-2. A refresh that gets
/// 503 is retried as it is (the store may or may not have recorded it before it died; either
/// way, once accepted, the window is {n-1, n}).
async fn session_task(
    task: usize,
    api: ApiServer,
    store: Arc<dyn SessionStore>,
    sign_in: SignIn,
    shared: Arc<Shared>,
) -> TaskReport {
    let mut tokens: HashMap<i64, String> = HashMap::new();
    let mut report = TaskReport {
        seen: Vec::new(),
        sign_in,
        acked: None,
        post_outage_entry: None,
    };
    let (mut n, mut accepted, mut saw_503) = (0i64, 0u32, false);
    while !shared.stop.load(Ordering::SeqCst) {
        let mut round = Vec::new();
        let token = tokens
            .entry(n)
            .or_insert_with(|| report.sign_in.token(n))
            .clone();
        let current = call(&api, task, Probe::Current, n, &token).await;
        let ok = current.status == StatusCode::OK;
        round.push(current);
        if ok {
            report.acked = Some(n);
            if saw_503 && report.post_outage_entry.is_none() {
                // The first answer of the restarted store: the window must hold n-1 and n,
                // though n-1 was written before the outage.
                let entry = store
                    .entry(&report.sign_in.session_key(), now())
                    .await
                    .ok()
                    .flatten();
                let right = entry
                    .as_ref()
                    .is_some_and(|e| !e.revoked && e.iats == expected_iats(&report.sign_in, n));
                report.post_outage_entry = Some((n, entry, right));
            }
            let restarted = *shared.restarted.lock().unwrap();
            if restarted.is_some_and(|at| round[0].start >= at) {
                shared.recovered[task].store(true, Ordering::SeqCst);
            }
            for (probe, back) in [(Probe::Previous, 1), (Probe::Superseded, 2)] {
                if n >= back {
                    let token = tokens
                        .entry(n - back)
                        .or_insert_with(|| report.sign_in.token(n - back))
                        .clone();
                    round.push(call(&api, task, probe, n - back, &token).await);
                }
            }
            accepted += 1;
            if accepted % REFRESH_EVERY == 0 && n < 900 {
                n += 1;
            }
        }
        if round
            .iter()
            .any(|s| s.status == StatusCode::SERVICE_UNAVAILABLE)
        {
            saw_503 = true;
            // Do not spin while the store is down.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        report.seen.extend(round);
    }
    report
}

/// What the outage does to the server.
trait Outage {
    fn name(&self) -> &'static str;
    /// Takes the server down at once (no clean shutdown).
    async fn kill(&mut self);
    /// Brings it back on the same port with the same data, answering.
    async fn restart(&mut self);
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Failures in a row that open the default circuit breaker (the layer of these tests has it).
const BREAKER_FAILURES: usize = 3;

/// The time to 503 of the answers that reached the store before the circuit breaker opened, and
/// of those the open breaker gave. The breaker opens as its third failure in a row is recorded,
/// just before that answer ends: the 503s that started before the third one ended (by end
/// time) were sent to the store. (Reconstructed from the answers, to a few microseconds.)
fn before_the_breaker_opened(seen: &[&Seen]) -> String {
    let mut unavailable: Vec<&Seen> = seen
        .iter()
        .copied()
        .filter(|s| s.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    unavailable.sort_by_key(|s| s.end);
    let Some(opened) = unavailable.get(BREAKER_FAILURES - 1).map(|s| s.end) else {
        return format!("fewer than {BREAKER_FAILURES} answers 503: the breaker never opened");
    };
    let (mut store, mut breaker): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
    for s in &unavailable {
        if s.start < opened {
            store.push(s.took());
        } else {
            breaker.push(s.took());
        }
    }
    store.sort();
    breaker.sort();
    let row = |times: &[Duration]| {
        format!(
            "{} answers, p50 {:?} p99 {:?} max {:?}",
            times.len(),
            percentile(times, 0.5),
            percentile(times, 0.99),
            times.last().copied().unwrap_or_default()
        )
    };
    format!(
        "time to 503 before the breaker opened (sent to the store): {}; once open: {}",
        row(&store),
        row(&breaker)
    )
}

/// The scenario, for any store: witnesses, load, kill, restart, recovery, checks.
async fn killed_under_load<O: Outage>(outage: &mut O, store: Arc<dyn SessionStore>) {
    let name = outage.name();
    let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let api = api_server(&jwks, store.clone()).await;

    // Witness sessions: three refreshes each (window {T+1, T+2}), the first token superseded.
    let mut witnesses = Vec::new();
    for _ in 0..WITNESSES {
        let sign_in = long_sign_in(&jwks);
        for n in 0..3 {
            let response = api.get("/", &sign_in.token(n)).await;
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "{name}: witness token {n}"
            );
        }
        let response = api.get("/", &sign_in.token(0)).await;
        assert_eq!(
            response.extensions().get::<AuthError>(),
            Some(&AuthError::InvalidToken(InvalidToken::Superseded)),
            "{name}: witness token 0 before the outage"
        );
        let entry = store
            .entry(&sign_in.session_key(), now())
            .await
            .expect("entry")
            .expect("witness entry");
        assert_eq!(entry.iats, expected_iats(&sign_in, 2), "{name}: witness");
        witnesses.push((sign_in, entry));
    }

    // The load.
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        restarted: Mutex::new(None),
        recovered: (0..TASKS).map(|_| AtomicBool::new(false)).collect(),
    });
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            tokio::spawn(session_task(
                task,
                api.clone(),
                store.clone(),
                long_sign_in(&jwks),
                shared.clone(),
            ))
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(BEFORE).await;

    let killed = Instant::now();
    outage.kill().await;
    tokio::time::sleep(DOWN).await;
    let restarting = Instant::now();
    outage.restart().await;
    let restarted = Instant::now();
    *shared.restarted.lock().unwrap() = Some(restarted);

    // Every task must get a 200 again, by itself.
    while !shared.recovered.iter().all(|r| r.load(Ordering::SeqCst)) {
        if restarted.elapsed() > RECOVERY {
            shared.stop.store(true, Ordering::SeqCst);
            panic!("{name}: not every session recovered within {RECOVERY:?} of the restart");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_recovered = restarted.elapsed();
    tokio::time::sleep(AFTER).await;
    shared.stop.store(true, Ordering::SeqCst);
    let mut reports = Vec::new();
    for task in tasks {
        reports.push(task.await.expect("no panic in a session task"));
    }
    let ended = Instant::now();

    // When the layer recovered: the end of the first 200 of a request started after the
    // restart.
    let seen: Vec<&Seen> = reports.iter().flat_map(|r| &r.seen).collect();
    let recovered = seen
        .iter()
        .filter(|s| s.status == StatusCode::OK && s.start >= restarted)
        .map(|s| s.end)
        .min()
        .expect("a 200 after the restart");

    // Every answer, judged.
    let mut violations = Vec::new();
    let mut counts: HashMap<(&str, Probe, u16), usize> = HashMap::new();
    let mut latencies: HashMap<&str, Vec<Duration>> = HashMap::new();
    for s in &seen {
        let phase = if s.end < killed {
            "before"
        } else if s.start <= recovered {
            "outage"
        } else {
            "after"
        };
        *counts
            .entry((phase, s.probe, s.status.as_u16()))
            .or_default() += 1;
        latencies.entry(phase).or_default().push(s.took());
        let fine = match (s.status, s.probe) {
            (StatusCode::OK, Probe::Current | Probe::Previous) => true,
            (StatusCode::UNAUTHORIZED, Probe::Superseded) => {
                s.error == Some(AuthError::InvalidToken(InvalidToken::Superseded))
            }
            (StatusCode::SERVICE_UNAVAILABLE, _) => {
                s.error == Some(AuthError::StoreUnavailable)
                    && s.challenge.is_none()
                    && s.end >= killed
                    && s.start <= recovered
                    && s.took() <= TIMEOUT + SLACK
            }
            _ => false,
        };
        if !fine {
            violations.push(format!(
                "task {} {:?} refresh {}: {} {:?} challenge {:?}, {:?} after the start, took {:?}",
                s.task,
                s.probe,
                s.n,
                s.status,
                s.error,
                s.challenge,
                s.start - started,
                s.took()
            ));
        }
    }

    // Report.
    println!(
        "{name}: {} answers from {TASKS} sessions in {:?}; killed at {:?}, restarted at {:?} \
         (back up {:?} later), layer answering 200 again {:?} after the restart, every session \
         by {all_recovered:?}",
        seen.len(),
        ended - started,
        killed - started,
        restarting - started,
        restarted - restarting,
        recovered - restarted,
    );
    for phase in ["before", "outage", "after"] {
        let mut row = Vec::new();
        for probe in [Probe::Current, Probe::Previous, Probe::Superseded] {
            for status in [200, 401, 503] {
                if let Some(n) = counts.get(&(phase, probe, status)) {
                    row.push(format!("{probe:?} {status}: {n}"));
                }
            }
        }
        let mut lat = latencies
            .get_mut(phase)
            .map(std::mem::take)
            .unwrap_or_default();
        lat.sort();
        println!(
            "{name}:   {phase:>6}: {} | p50 {:?} p99 {:?} max {:?}",
            row.join(", "),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or_default()
        );
    }
    println!("{name}: {}", before_the_breaker_opened(&seen));
    let unavailable = seen
        .iter()
        .filter(|s| s.status == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert!(
        violations.is_empty(),
        "{name}: {} unexpected answers, first ones: {:#?}",
        violations.len(),
        &violations[..violations.len().min(10)]
    );
    assert!(unavailable > 0, "{name}: no request saw the store down");
    assert!(
        recovered - restarted <= RECOVERY,
        "{name}: recovered {:?} after the restart",
        recovered - restarted
    );

    // Nothing written before the outage was lost: the witnesses, exactly.
    let mut witness_entries_equal = 0;
    for (sign_in, before) in &witnesses {
        let after = store
            .entry(&sign_in.session_key(), now())
            .await
            .expect("entry after the restart");
        assert_eq!(
            after.as_ref(),
            Some(before),
            "{name}: a witness window written before the outage changed"
        );
        witness_entries_equal += 1;
        let response = api.get("/", &sign_in.token(0)).await;
        assert_eq!(
            response.extensions().get::<AuthError>(),
            Some(&AuthError::InvalidToken(InvalidToken::Superseded)),
            "{name}: a token superseded before the outage is accepted after it"
        );
        for n in [1, 2] {
            let response = api.get("/", &sign_in.token(n)).await;
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "{name}: witness token {n}"
            );
        }
    }
    // ...and the sessions under load: right after their first answer from the restarted server,
    // and now.
    let mut post_outage_checks = 0;
    for (task, report) in reports.iter().enumerate() {
        let acked = report.acked.expect("the task got at least one 200");
        let (n, entry, right) = report
            .post_outage_entry
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: task {task} saw no outage"));
        assert!(
            right,
            "{name}: task {task}: after the outage, refresh {n} accepted but the window is \
             {entry:?}, expected iats {:?}",
            expected_iats(&report.sign_in, *n)
        );
        post_outage_checks += 1;
        let entry = store
            .entry(&report.sign_in.session_key(), now())
            .await
            .expect("entry")
            .expect("the task's session");
        assert_eq!(
            entry.iats,
            expected_iats(&report.sign_in, acked),
            "{name}: task {task} final window"
        );
    }
    let refreshes: Vec<i64> = reports.iter().map(|r| r.acked.unwrap_or(-1)).collect();
    println!(
        "{name}: {unavailable} answers 503 (all without a challenge, between the kill and the \
         recovery), 0 answers 401 for a current or previous token; windows: \
         {witness_entries_equal}/{WITNESSES} witnesses identical after the restart and their \
         superseded token still refused, {post_outage_checks}/{TASKS} sessions under load \
         holding both newest refreshes right after the restart; refreshes per session {refreshes:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "redis")]
mod redis_outage {
    use super::*;
    use support::stores::OwnRedis;
    use tower_cognito::session::RedisStore;

    impl Outage for OwnRedis {
        fn name(&self) -> &'static str {
            "redis"
        }
        async fn kill(&mut self) {
            OwnRedis::kill(self);
        }
        async fn restart(&mut self) {
            OwnRedis::restart(self).await;
        }
    }

    /// Redis (own server, appendonly + appendfsync always) killed with SIGKILL while eight
    /// sessions loop through the layer, restarted on the same port and directory.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_killed_under_load_recovers_and_loses_no_window() {
        let mut redis = OwnRedis::start_persistent().await;
        let store = RedisStore::connect(&redis.url())
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", redis.url()))
            .with_prefix("outage:");
        killed_under_load(&mut redis, Arc::new(store)).await;
        println!(
            "redis: port {}, append-only files {} bytes in {}",
            redis.port(),
            redis.aof_bytes(),
            redis.dir().display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "postgres")]
mod postgres_outage {
    use super::*;
    use support::stores::OwnPostgres;
    use tower_cognito::session::PostgresStore;

    impl Outage for OwnPostgres {
        fn name(&self) -> &'static str {
            "postgres"
        }
        async fn kill(&mut self) {
            self.stop_immediate().await;
        }
        async fn restart(&mut self) {
            self.start_again().await;
        }
    }

    /// A PostgreSQL cluster of the test's own, stopped with `-m immediate` while eight sessions
    /// loop through the layer, started again (crash recovery) on the same port.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_stopped_under_load_recovers_and_loses_no_window() {
        let mut pg = OwnPostgres::start().await;
        let store = PostgresStore::connect(&pg.url())
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", pg.url()));
        store.create_schema().await.expect("create schema");
        killed_under_load(&mut pg, Arc::new(store)).await;
        println!("postgres: port {}", pg.port());
    }
}
