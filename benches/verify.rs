//! The performance targets, each measured against its baseline in the same run:
//!
//! 1. `fresh`: a fresh token through `Verifier::verify` (token cache off, keys preloaded) vs
//!    aws-lc-rs `ParsedPublicKey::verify_sig` of the same signing input with the key parsed once
//!    (target <= 1.15x); jsonwebtoken 11 `decode` (aws-lc-rs, every `Validation` field set)
//!    reported beside them.
//!    `pools`: the same fresh verify with the token's pool last of 2 and of 20 pools vs one pool
//!    (issue 13: the cost does not grow with the number of pools; 2 vs 1 is the price of reading
//!    `iss` before the key, 20 vs 2 must be ~1.0).
//! 2. `router`: a repeat token (cache hit) through the layer in an axum 0.8 router, driven with
//!    `oneshot` on a clone per request, vs the same router with no auth (target: at most +1 us);
//!    the same hit with the token in a cookie (`TokenSource::bearer_or_cookie`) beside it.
//! 3. `session_memory`: a verify hit with a `MemoryStore` session window vs without (target: at
//!    most +0.5 us). `session_redis` (with `--features redis` and Redis at `REDIS_URL`, default
//!    `redis://127.0.0.1:6379`; skipped with a note otherwise): one `check_and_advance` vs one
//!    `PING` through a `ConnectionManager` on the same server (target <= 1.3x), with the
//!    server's own time per call.
//! 4. `refresh`: the hit path, and a fresh verify with the key cached, while a JWKS refresh hangs
//!    on a local server vs with none in flight (expect ~1.0).
//! 6. `metrics` (with `--features metrics`): the router hit with a Prometheus recorder
//!    (`metrics-exporter-prometheus`) installed vs the same router built before it, recording
//!    nothing (target: at most +100 ns). Runs last: the recorder is process-wide.
//! 5. Memory: bytes per cached verified token and per session window entry (a counting global
//!    allocator, N = 10 000), allocations per call on the hot paths, and a few sub-step timings
//!    (`DIAG`) that say where the time goes. `BENCH_MEMORY=0` skips the memory and allocation
//!    part.
//!
//! Each ratio is judged on an interleaved timing of the two routines right after their group
//! (alternating ~2 ms batches, medians), which a busy machine disturbs far less than two
//! criterion runs seconds apart; criterion's own medians are printed beside it. The lines are
//! printed after each group and again as one table at the end of a bench run.
//!
//! `cargo bench --bench verify` runs it all; a criterion filter (`-- router`) runs some groups.

mod common;

use std::hint::black_box;
#[cfg(feature = "redis")]
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use criterion::Criterion;
use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderValue, Request, Uri};
use tower::ServiceExt as _;
use tower_cognito::session::{MemoryStore, SessionConfig, SessionStore, WindowLimits};
use tower_cognito::{AccessClaims, CognitoAuthLayer, CsrfRule, TokenSource, Verifier};
use tower_cognito_testing::{Jwks, LocalCognito, Options};

use common::{batch_async, batch_sync, bench, ratio, report, Counted, Target};

#[global_allocator]
static ALLOC: common::CountingAlloc = common::CountingAlloc;

fn main() {
    let started = Instant::now();
    let measuring = common::is_bench_run();
    let mut c = common::criterion();
    let token = common::token();
    println!(
        "bench token: {} bytes (RS256, RSA-2048, kid {})",
        token.len(),
        common::KID
    );

    bench_fresh(&mut c, token);
    bench_pools(&mut c, token);
    bench_router(&mut c, token);
    bench_session_memory(&mut c, token);
    bench_session_redis(&mut c, token);
    bench_refresh(&mut c, token);
    bench_metrics(&mut c, token);
    c.final_summary();

    if std::env::var("BENCH_MEMORY").as_deref() != Ok("0") {
        memory(if measuring { 10_000 } else { 200 });
        allocations(token);
    }
    diagnostics(token);
    if measuring {
        common::print_report("verify: ratio table");
    }
    println!("verify bench: {:.1} s", started.elapsed().as_secs_f64());
}

fn verifier(config: tower_cognito::CognitoConfig) -> Verifier {
    Verifier::new(config).expect("bench verifier")
}

/// A request to `/` carrying `auth` (cheap to clone: the header value shares its bytes).
fn request(auth: &HeaderValue) -> Request<Body> {
    let mut request = Request::new(Body::empty());
    *request.uri_mut() = Uri::from_static("/");
    request.headers_mut().insert(AUTHORIZATION, auth.clone());
    request
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
}

/// Routers are finalized with `with_state(())`, as `axum::serve` does (through
/// `into_make_service`): an unfinalized router turns its handler, with every route layer, into a
/// service anew on each request, which no server pays.
fn plain_router() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .with_state(())
}

fn cognito_router(verifier: Verifier) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route_layer(CognitoAuthLayer::new(verifier))
        .with_state(())
}

/// Target 1: fresh verification vs the bare RSA verify.
fn bench_fresh(c: &mut Criterion, token: &str) {
    let rt = common::runtime();
    let key = common::key().parsed();
    let (input, signature) = common::split_signed(token);
    let fresh = verifier(common::offline_config().token_cache_size(0));
    rt.block_on(fresh.verify(token))
        .expect("the bench token verifies");
    let decoding =
        jsonwebtoken::DecodingKey::from_rsa_components(&common::key().n, &common::key().e)
            .expect("decoding key");
    let validation = common::jsonwebtoken_validation();
    jsonwebtoken::decode::<AccessClaims>(token, &decoding, &validation)
        .expect("jsonwebtoken accepts the bench token");

    let mut rsa = batch_sync(|| key.verify_sig(input, &signature).is_ok());
    let mut ours = batch_async(&rt, || fresh.verify(token));
    let mut jwt =
        batch_sync(|| jsonwebtoken::decode::<AccessClaims>(token, &decoding, &validation));

    let mut g = c.benchmark_group("fresh");
    bench(&mut g, "fresh", "rsa_verify_preparsed", &mut rsa);
    bench(&mut g, "fresh", "cognito_verify_fresh", &mut ours);
    bench(&mut g, "fresh", "jsonwebtoken_decode", &mut jwt);
    g.finish();

    ratio(
        "fresh/cognito_verify_fresh",
        &mut ours,
        "fresh/rsa_verify_preparsed",
        &mut rsa,
        Target::RatioAtMost(1.15),
    );
    ratio(
        "fresh/jsonwebtoken_decode",
        &mut jwt,
        "fresh/rsa_verify_preparsed",
        &mut rsa,
        Target::None,
    );
    ratio(
        "fresh/cognito_verify_fresh",
        &mut ours,
        "fresh/jsonwebtoken_decode",
        &mut jwt,
        Target::None,
    );
}

/// Target 1b: a fresh verify among 2 and 20 pools vs one pool.
fn bench_pools(c: &mut Criterion, token: &str) {
    let rt = common::runtime();
    let one = verifier(common::offline_config().token_cache_size(0));
    let two = verifier(common::offline_config_among(1).token_cache_size(0));
    let twenty = verifier(common::offline_config_among(19).token_cache_size(0));
    for v in [&one, &two, &twenty] {
        rt.block_on(v.verify(token))
            .expect("the bench token verifies");
    }
    let mut one_pool = batch_async(&rt, || one.verify(token));
    let mut two_pools = batch_async(&rt, || two.verify(token));
    let mut twenty_pools = batch_async(&rt, || twenty.verify(token));

    let mut g = c.benchmark_group("pools");
    bench(&mut g, "pools", "verify_fresh_1_pool", &mut one_pool);
    bench(&mut g, "pools", "verify_fresh_2_pools", &mut two_pools);
    bench(&mut g, "pools", "verify_fresh_20_pools", &mut twenty_pools);
    g.finish();

    ratio(
        "pools/verify_fresh_2_pools",
        &mut two_pools,
        "pools/verify_fresh_1_pool",
        &mut one_pool,
        Target::RatioAtMost(1.05),
    );
    ratio(
        "pools/verify_fresh_20_pools",
        &mut twenty_pools,
        "pools/verify_fresh_2_pools",
        &mut two_pools,
        Target::RatioAtMost(1.02),
    );
}

/// Target 2: the layer's whole added cost on a cache hit, in an axum router.
fn bench_router(c: &mut Criterion, token: &str) {
    let rt = common::runtime();
    let auth = bearer(token);
    let plain = plain_router();
    let cognito = cognito_router(verifier(common::offline_config()));
    rt.block_on(async {
        for router in [&plain, &cognito] {
            let response = router.clone().oneshot(request(&auth)).await.unwrap();
            assert_eq!(response.status(), 200);
        }
    });

    // The same hit with the token in a cookie (`bearer_or_cookie`: the header is looked at
    // too), among two other cookies, as a browser sends it.
    let cookie =
        HeaderValue::from_str(&format!("theme=dark; access_token={token}; lang=en")).unwrap();
    let csrf = CsrfRule::require_header(http::HeaderName::from_static("x-csrf")).unwrap();
    let source = TokenSource::bearer_or_cookie("access_token", csrf).unwrap();
    let cookie_router = Router::new()
        .route("/", get(|| async { "ok" }))
        .route_layer(CognitoAuthLayer::new(verifier(common::offline_config())).token_source(source))
        .with_state(());
    let cookie_request = || {
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = Uri::from_static("/");
        request.headers_mut().insert(COOKIE, cookie.clone());
        request
    };
    rt.block_on(async {
        let response = cookie_router
            .clone()
            .oneshot(cookie_request())
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    });

    let mut no_auth = batch_async(&rt, || plain.clone().oneshot(request(&auth)));
    let mut hit = batch_async(&rt, || cognito.clone().oneshot(request(&auth)));
    let mut cookie_hit = batch_async(&rt, || cookie_router.clone().oneshot(cookie_request()));

    let mut g = c.benchmark_group("router");
    bench(&mut g, "router", "no_auth", &mut no_auth);
    bench(&mut g, "router", "cognito_hit", &mut hit);
    bench(&mut g, "router", "cognito_hit_cookie", &mut cookie_hit);
    g.finish();

    ratio(
        "router/cognito_hit",
        &mut hit,
        "router/no_auth",
        &mut no_auth,
        Target::DiffAtMostNs(1000.0),
    );
    ratio(
        "router/cognito_hit_cookie",
        &mut cookie_hit,
        "router/cognito_hit",
        &mut hit,
        Target::None,
    );
}

/// Target 6: what the metrics cost a cache hit through the router, with a recorder installed.
#[cfg(feature = "metrics")]
fn bench_metrics(c: &mut Criterion, token: &str) {
    let rt = common::runtime();
    let auth = bearer(token);
    // Built while no recorder is installed: its counters are no-ops.
    let silent = cognito_router(verifier(common::offline_config()));
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("no recorder installed before");
    let counted = cognito_router(verifier(common::offline_config()));
    rt.block_on(async {
        for router in [&silent, &counted] {
            let response = router.clone().oneshot(request(&auth)).await.unwrap();
            assert_eq!(response.status(), 200);
        }
    });
    assert!(
        handle
            .render()
            .contains("tower_cognito_requests_total{outcome=\"accepted\"} 1"),
        "the recorder counts: {}",
        handle.render()
    );

    let mut off = batch_async(&rt, || silent.clone().oneshot(request(&auth)));
    let mut on = batch_async(&rt, || counted.clone().oneshot(request(&auth)));

    let mut g = c.benchmark_group("metrics");
    bench(&mut g, "metrics", "hit_no_recorder", &mut off);
    bench(&mut g, "metrics", "hit_prometheus", &mut on);
    g.finish();

    ratio(
        "metrics/hit_prometheus",
        &mut on,
        "metrics/hit_no_recorder",
        &mut off,
        Target::DiffAtMostNs(100.0),
    );
}

#[cfg(not(feature = "metrics"))]
fn bench_metrics(_c: &mut Criterion, _token: &str) {
    println!("metrics: skipped (run with --features metrics)");
}

/// Target 3, memory store: the session window's added cost on a verify hit.
fn bench_session_memory(c: &mut Criterion, token: &str) {
    let rt = common::runtime();
    let without = verifier(common::offline_config());
    let store = Arc::new(MemoryStore::new(100_000));
    let with = verifier(common::offline_config().session_window(SessionConfig::new(store)));
    rt.block_on(async {
        without.verify(token).await.unwrap();
        let verified = with.verify(token).await.unwrap();
        assert!(verified.session_key().is_some());
        with.verify(token).await.unwrap();
    });

    let mut hit = batch_async(&rt, || without.verify(token));
    let mut hit_session = batch_async(&rt, || with.verify(token));

    let mut g = c.benchmark_group("session_memory");
    bench(&mut g, "session_memory", "verify_hit", &mut hit);
    bench(
        &mut g,
        "session_memory",
        "verify_hit_memory_session",
        &mut hit_session,
    );
    g.finish();

    ratio(
        "session_memory/verify_hit_memory_session",
        &mut hit_session,
        "session_memory/verify_hit",
        &mut hit,
        Target::DiffAtMostNs(500.0),
    );
}

/// Target 3, Redis: one `check_and_advance` vs one `PING` on the same server.
///
/// `check_and_advance` passes the real `now`, so most checks fall in the second of the last
/// write and write nothing; `check_and_advance_writing` moves `now` on by a second per call, so
/// that every check writes. Also times a check that only reads (a superseded token: the script
/// returns before its `SET`), and reads the server's own time per command from
/// `INFO commandstats` (deltas over this group; other clients of the same server would add to
/// them).
#[cfg(feature = "redis")]
fn bench_session_redis(c: &mut Criterion, _token: &str) {
    use std::sync::atomic::AtomicI64;
    use tower_cognito::session::{RedisStore, SessionVerdict, StoreError, StoreErrorKind};

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let rt = common::runtime();
    let prefix = format!("tower-cognito-bench:{}:", std::process::id());
    let setup = rt.block_on(async {
        let store = RedisStore::connect(&url).await?.with_prefix(prefix.clone());
        let unavailable = |e| StoreError::new(StoreErrorKind::Unavailable, e);
        let client = redis::Client::open(url.as_str()).map_err(unavailable)?;
        let conn = redis::aio::ConnectionManager::new(client)
            .await
            .map_err(unavailable)?;
        Ok::<_, StoreError>((store, conn))
    });
    let (store, conn) = match setup {
        Ok(setup) => setup,
        Err(error) => {
            report(format!(
                "NOTE session_redis skipped: Redis at {url} is not reachable ({error})"
            ));
            return;
        }
    };
    let (key, full) = (
        format!("o:{}", common::uuid(1, 0)),
        format!("o:{}", common::uuid(1, 1)),
    );
    let (iat, limits) = (common::now(), WindowLimits::default());
    rt.block_on(async {
        let check = |key, iat| store.check_and_advance(key, iat, common::now(), limits);
        assert_eq!(check(&key, iat).await.unwrap(), SessionVerdict::Accepted);
        // A full window (two newer values): an older token is superseded, and nothing is written.
        check(&full, iat - 20).await.unwrap();
        check(&full, iat - 10).await.unwrap();
        assert_eq!(
            check(&full, iat - 30).await.unwrap(),
            SessionVerdict::Superseded
        );
    });

    // The floor of any script: EVALSHA of `return 0`.
    let trivial = redis::Script::new("return 0");
    let mut ping = batch_async(&rt, || {
        let mut conn = conn.clone();
        async move {
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .expect("PING")
        }
    });
    let mut check = batch_async(&rt, || {
        store.check_and_advance(&key, iat, common::now(), limits)
    });
    let mut superseded = batch_async(&rt, || {
        store.check_and_advance(&full, iat - 30, common::now(), limits)
    });
    // A check in the same second as the last write of its session writes nothing; with `now`
    // one second further on each call, every check writes (SET with EX).
    let later = AtomicI64::new(common::now());
    let mut writing = batch_async(&rt, || {
        let now = later.fetch_add(1, Ordering::Relaxed);
        store.check_and_advance(&key, iat, now, limits)
    });

    let mut evalsha = batch_async(&rt, || {
        let mut conn = conn.clone();
        let trivial = &trivial;
        async move {
            let answer: i64 = trivial.invoke_async(&mut conn).await.expect("EVALSHA");
            answer
        }
    });

    // The server's own time per call, from `INFO commandstats` around each bench.
    let mut stats = vec![rt.block_on(command_stats(conn.clone()))];
    let mut g = c.benchmark_group("session_redis");
    for (name, batch) in [
        ("ping", &mut ping),
        ("check_and_advance", &mut check),
        ("check_superseded_read_only", &mut superseded),
        ("evalsha_return_0", &mut evalsha),
        ("check_and_advance_writing", &mut writing),
    ] {
        bench(&mut g, "session_redis", name, batch);
        stats.push(rt.block_on(command_stats(conn.clone())));
    }
    g.finish();

    ratio(
        "session_redis/check_and_advance",
        &mut check,
        "session_redis/ping",
        &mut ping,
        Target::RatioAtMost(1.3),
    );
    ratio(
        "session_redis/check_and_advance_writing",
        &mut writing,
        "session_redis/ping",
        &mut ping,
        Target::None,
    );
    ratio(
        "session_redis/check_superseded_read_only",
        &mut superseded,
        "session_redis/ping",
        &mut ping,
        Target::None,
    );
    ratio(
        "session_redis/evalsha_return_0",
        &mut evalsha,
        "session_redis/ping",
        &mut ping,
        Target::None,
    );
    let server_us = |phase: usize, cmd: &str| {
        let (calls0, usec0) = stats[phase].get(cmd).copied().unwrap_or_default();
        let (calls1, usec1) = stats[phase + 1].get(cmd).copied().unwrap_or_default();
        (calls1 > calls0).then(|| format!("{:.2} us", (usec1 - usec0) / (calls1 - calls0) as f64))
    };
    let na = || "n/a".to_owned();
    report(format!(
        "NOTE redis server-side time per call (INFO commandstats deltas during each bench): \
         PING {}, check_and_advance {}, superseded check {}, `return 0` script {}, \
         check_and_advance writing {}",
        server_us(0, "ping").unwrap_or_else(na),
        server_us(1, "evalsha").unwrap_or_else(na),
        server_us(2, "evalsha").unwrap_or_else(na),
        server_us(3, "evalsha").unwrap_or_else(na),
        server_us(4, "evalsha").unwrap_or_else(na),
    ));
    drop((check, superseded, evalsha, writing, ping));
    rt.block_on(async {
        let mut conn = conn.clone();
        let _: Result<i64, _> = redis::cmd("DEL")
            .arg(format!("{prefix}{key}"))
            .arg(format!("{prefix}{full}"))
            .query_async(&mut conn)
            .await;
    });
}

/// `INFO commandstats` as `command -> (calls, usec)`; empty when it cannot be read.
#[cfg(feature = "redis")]
async fn command_stats(
    mut conn: redis::aio::ConnectionManager,
) -> std::collections::HashMap<String, (u64, f64)> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |wanted: &str| {
                fields
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(wanted)?.strip_prefix('='))
            };
            Some((
                name.to_owned(),
                (field("calls")?.parse().ok()?, field("usec")?.parse().ok()?),
            ))
        })
        .collect()
}

#[cfg(not(feature = "redis"))]
fn bench_session_redis(_c: &mut Criterion, _token: &str) {
    report("NOTE session_redis skipped: built without `--features redis`");
}

/// The local Cognito, publishing the bench key, its JWKS endpoint hanging (counting the
/// requests it received, answering none).
async fn hanging_jwks() -> LocalCognito {
    let key = &common::key().signing;
    let options = Options::new()
        .pool_id(common::POOL)
        .signing_keys(key.clone(), key.clone())
        .jwks(Jwks::of([key]));
    let cognito = LocalCognito::start_with(options).await;
    cognito.set_jwks_delay(Duration::MAX);
    cognito
}

/// Target 4: the hit path (and a fresh verify with the key cached) while a JWKS refresh hangs,
/// vs with no refresh in flight.
fn bench_refresh(c: &mut Criterion, token: &str) {
    // The refresh must really be in flight: a worker drives it while the bench thread measures.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let hang = Duration::from_secs(3600);
    let server = rt.block_on(hanging_jwks());
    let received = || server.counts().jwks_fetches;
    let online = |max_age: Duration, cache: u64| {
        verifier(
            common::offline_config()
                .fetch_keys(true)
                .jwks_url(server.jwks_url())
                .allow_http_on_loopback(true)
                .jwks_cooldown(Duration::ZERO)
                .jwks_max_age(max_age)
                .jwks_timeouts(Duration::from_secs(1), hang)
                .token_cache_size(cache),
        )
    };
    let stale_after = Duration::from_millis(20);
    let hit_idle = online(Duration::from_secs(3600), 10_000);
    let hit_busy = online(stale_after, 10_000);
    let fresh_idle = online(Duration::from_secs(3600), 0);
    let fresh_busy = online(stale_after, 0);
    rt.block_on(async {
        for v in [&hit_idle, &hit_busy, &fresh_idle, &fresh_busy] {
            v.verify(token)
                .await
                .expect("verifies with the preloaded keys");
        }
        tokio::time::sleep(stale_after * 2).await;
        // The keys are now old: these start the background refreshes, which hang.
        hit_busy.verify(token).await.unwrap();
        fresh_busy.verify(token).await.unwrap();
        server
            .wait_for_jwks_fetches(2, Duration::from_secs(10))
            .await
    });
    let in_flight = received();
    if in_flight < 2 {
        report(format!(
            "NOTE refresh: only {in_flight} of 2 JWKS refreshes reached the server"
        ));
    }

    let mut hit_idle = batch_async(&rt, || hit_idle.verify(token));
    let mut hit_busy = batch_async(&rt, || hit_busy.verify(token));
    let mut fresh_idle = batch_async(&rt, || fresh_idle.verify(token));
    let mut fresh_busy = batch_async(&rt, || fresh_busy.verify(token));

    let mut g = c.benchmark_group("refresh");
    bench(&mut g, "refresh", "hit_idle", &mut hit_idle);
    bench(&mut g, "refresh", "hit_refresh_in_flight", &mut hit_busy);
    bench(&mut g, "refresh", "fresh_idle", &mut fresh_idle);
    bench(
        &mut g,
        "refresh",
        "fresh_refresh_in_flight",
        &mut fresh_busy,
    );
    g.finish();

    ratio(
        "refresh/hit_refresh_in_flight",
        &mut hit_busy,
        "refresh/hit_idle",
        &mut hit_idle,
        Target::None,
    );
    ratio(
        "refresh/fresh_refresh_in_flight",
        &mut fresh_busy,
        "refresh/fresh_idle",
        &mut fresh_idle,
        Target::None,
    );
    report(format!(
        "NOTE refresh: JWKS requests received {} (2: both refreshes in flight, single-flight, \
         through the whole measurement; the endpoint answers none)",
        received()
    ));
    drop((hit_idle, hit_busy, fresh_idle, fresh_busy));
    rt.shutdown_background();
}

/// Target 5: bytes per cached verified token and per session window entry.
fn memory(n: u64) {
    let rt = common::runtime();
    let signing = Instant::now();
    let tokens = common::tokens(n);
    let mean_len = tokens.iter().map(String::len).sum::<usize>() as f64 / n as f64;
    println!(
        "memory: signed {n} tokens (mean {mean_len:.0} bytes) in {:.1} s",
        signing.elapsed().as_secs_f64()
    );

    // Verified tokens, at the default cache size (10 000).
    let v = verifier(common::offline_config());
    rt.block_on(v.verify(common::token())).unwrap();
    let before = v.cached_tokens();
    let half = tokens.len() / 2;
    Counted::start();
    rt.block_on(async {
        for t in &tokens[..half] {
            black_box(v.verify(t).await.unwrap());
        }
    });
    let first_cached = v.cached_tokens();
    let first = Counted::stop();
    Counted::start();
    rt.block_on(async {
        for t in &tokens[half..] {
            black_box(v.verify(t).await.unwrap());
        }
    });
    let cached = v.cached_tokens();
    let second = Counted::stop();
    let added = cached - before;
    let bytes = first.live_bytes + second.live_bytes;
    let blocks = first.live_blocks + second.live_blocks;
    report(format!(
        "MEMORY token cache: {:.0} bytes per cached verified token ({:.1} live allocations each; \
         {added} tokens of ~{mean_len:.0} bytes added, {} bytes in all; second half alone: {:.0} \
         bytes per token)",
        bytes as f64 / added as f64,
        blocks as f64 / added as f64,
        bytes,
        second.live_bytes as f64 / (cached - first_cached) as f64,
    ));
    if added != n {
        report(format!(
            "NOTE the token cache (capacity 10 000, 1 warm-up token) kept {added} of the {n} \
             tokens verified"
        ));
    }
    drop(v);

    // Session windows, keyed as the verifier keys them (`o:{origin_jti}`).
    let store = MemoryStore::new(n);
    let keys: Vec<String> = (0..n)
        .map(|i| format!("o:{}", common::uuid(1, i + 1)))
        .collect();
    let (iat, limits) = (common::now(), WindowLimits::default());
    let before = store.len();
    Counted::start();
    rt.block_on(async {
        for key in &keys {
            store
                .check_and_advance(key, iat, common::now(), limits)
                .await
                .unwrap();
        }
    });
    let held = store.len() - before;
    let counted = Counted::stop();
    report(format!(
        "MEMORY session window (MemoryStore): {:.0} bytes per session entry ({:.1} live \
         allocations each; {held} sessions, keys of {} bytes)",
        counted.live_bytes as f64 / held as f64,
        counted.live_blocks as f64 / held as f64,
        keys[0].len(),
    ));
    report(
        "NOTE bytes are the sizes requested from the allocator; malloc adds ~8-16 bytes per \
         live allocation",
    );
}

/// Allocations per request on the hot paths (counting allocator, 1 000 calls each).
fn allocations(token: &str) {
    const CALLS: u64 = 1_000;
    let rt = common::runtime();
    let per_call = |what: &str, f: &mut dyn FnMut()| {
        f();
        Counted::start();
        for _ in 0..CALLS {
            f();
        }
        let counted = Counted::stop();
        report(format!(
            "ALLOCS {what}: {:.1} allocations per call",
            counted.allocations as f64 / CALLS as f64
        ));
    };
    let hit = verifier(common::offline_config());
    let fresh = verifier(common::offline_config().token_cache_size(0));
    let store = Arc::new(MemoryStore::new(100_000));
    let session = verifier(common::offline_config().session_window(SessionConfig::new(store)));
    let auth = bearer(token);
    let plain = plain_router();
    let cognito = cognito_router(hit.clone());
    per_call(
        "rt.block_on(ready future) (harness overhead in the lines below)",
        &mut || {
            black_box(rt.block_on(async { black_box(1) }));
        },
    );
    per_call("verify, cache hit", &mut || {
        black_box(rt.block_on(hit.verify(token)).unwrap());
    });
    per_call("verify, fresh (cache off)", &mut || {
        black_box(rt.block_on(fresh.verify(token)).unwrap());
    });
    per_call("verify, cache hit + MemoryStore session", &mut || {
        black_box(rt.block_on(session.verify(token)).unwrap());
    });
    per_call("router request, no auth", &mut || {
        black_box(rt.block_on(plain.clone().oneshot(request(&auth))).unwrap());
    });
    per_call("router request, cognito layer, cache hit", &mut || {
        black_box(
            rt.block_on(cognito.clone().oneshot(request(&auth)))
                .unwrap(),
        );
    });
    let key = common::key().parsed();
    let (input, signature) = common::split_signed(token);
    per_call("aws-lc-rs verify_sig (baseline)", &mut || {
        black_box(key.verify_sig(input, &signature).is_ok());
    });
}

/// Where the time of the hot paths goes: sub-steps timed interleaved, for the report.
fn diagnostics(token: &str) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    let payload_b64 = token.split('.').nth(1).unwrap();
    let payload = URL_SAFE_NO_PAD.decode(payload_b64).unwrap();
    // Allocations of one parse, and the bytes the parsed value keeps.
    fn parse_cost<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Counted {
        drop(serde_json::from_slice::<T>(payload).unwrap());
        Counted::start();
        let value = serde_json::from_slice::<T>(payload).unwrap();
        let counted = Counted::stop();
        drop(value);
        counted
    }
    let counted = parse_cost::<AccessClaims>(&payload);
    report(format!(
        "DIAG one payload -> AccessClaims parse: {} allocations; the value keeps {} bytes in {} \
         allocations",
        counted.allocations, counted.live_bytes, counted.live_blocks
    ));
    let rt = common::runtime();
    let rows: [(&str, common::Batch<'_>); 5] = [
        (
            "base64url decode of the payload",
            batch_sync(|| URL_SAFE_NO_PAD.decode(payload_b64)),
        ),
        (
            "serde_json: payload -> AccessClaims",
            batch_sync(|| serde_json::from_slice::<AccessClaims>(&payload).unwrap()),
        ),
        (
            "serde_json: payload -> IgnoredAny (scan only)",
            batch_sync(|| serde_json::from_slice::<serde::de::IgnoredAny>(&payload).unwrap()),
        ),
        (
            "tokio::time::Instant::now() (test-util on in bench builds)",
            batch_async(&rt, || async { tokio::time::Instant::now() }),
        ),
        (
            "std::time::Instant::now()",
            batch_sync(std::time::Instant::now),
        ),
    ];
    let (names, mut batches): (Vec<&str>, Vec<common::Batch<'_>>) = rows.into_iter().unzip();
    let mut refs: Vec<&mut dyn FnMut(u64) -> Duration> = batches
        .iter_mut()
        .map(|b| b as &mut dyn FnMut(u64) -> Duration)
        .collect();
    let Some(ns) = common::interleaved(&mut refs) else {
        return;
    };
    for (name, ns) in names.iter().zip(ns) {
        report(format!("DIAG {name}: {ns:.0} ns"));
    }
}
