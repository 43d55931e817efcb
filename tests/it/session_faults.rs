//! Session store faults, through the layer, with real servers.
//!
//! Redis (feature `redis`): every test starts its OWN `redis-server` on a spare loopback port as
//! a child process (killed when the test ends) and never touches the shared server on 6379.
//! The server is killed mid-run (503 without a challenge, never 401, within the store timeout),
//! started again on the same port (the layer recovers by itself), paused with `DEBUG SLEEP` (a
//! slow store: 503 within the timeout), and all of it again with fail-open (200).
//!
//! PostgreSQL (feature `postgres`): the shared cluster is never stopped. An unreachable server
//! fails at connect; a server reached through a TCP relay of this test is cut off by stopping the
//! relay (503) and reached again by restarting it (recovery); a table locked by another session
//! makes the store slow (503 within the timeout).
//!
//! Each scenario runs twice. As a correctness test it checks what the answers were (503 without
//! a challenge, never 401, 200 with fail-open, recovery) and that none hangs; its `timing_` twin,
//! ignored by default and run by the timing step of `.ci/run`, also holds every answer to the
//! store timeout plus [`SLACK`]: a wall-clock budget, which a loaded machine can miss.
#![cfg(any(feature = "redis", feature = "postgres"))]

use crate::support;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use support::stores::spare_port;
use support::{key, local_config, Answer, ApiServer, JwksServer, SignIn};
use tower_cognito::session::{SessionConfig, SessionStore};
use tower_cognito::{AuthError, TokenUse, Verified, Verifier};

const POOL: &str = "us-east-1_FaultTest1";
const CLIENT: &str = "fault0client0id0for0tests";
/// The store timeout of these tests.
const TIMEOUT: Duration = Duration::from_millis(300);
/// What a request may take beyond the store timeout (signature check, scheduling, debug build).
const SLACK: Duration = Duration::from_millis(700);
/// A request not answered by then hangs: a hang guard, no time budget.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// What a run checks of the answers' times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timing {
    /// What they were, and that none hangs (the correctness tests).
    Outcomes,
    /// Also that each came within the store timeout plus [`SLACK`] (the `timing_` tests).
    Budgets,
}

impl Timing {
    /// With [`Timing::Budgets`]: `answer` came within the store timeout plus [`SLACK`].
    #[track_caller]
    fn in_time(self, answer: &Answer) {
        if self == Timing::Budgets {
            assert!(
                answer.took <= TIMEOUT + SLACK,
                "answered after {:?}, store timeout {TIMEOUT:?}",
                answer.took
            );
        }
    }
}

async fn handler(request: Request<String>) -> Result<Response<String>, Infallible> {
    let verified = request.extensions().get::<Verified>().expect("Verified");
    Ok(Response::new(
        verified.session_key().unwrap_or_default().to_owned(),
    ))
}

async fn server(jwks: &JwksServer, store: Arc<dyn SessionStore>, fail_open: bool) -> ApiServer {
    let config = local_config(jwks, TokenUse::Access, CLIENT).session_window(
        SessionConfig::new(store)
            .timeout(TIMEOUT)
            .fail_open(fail_open),
    );
    let verifier: Verifier = Verifier::new(config).expect("verifier");
    verifier.prefetch_keys().await.expect("prefetch keys");
    ApiServer::new(verifier, handler)
}

async fn call(server: &ApiServer, token: &str) -> Answer {
    server.answer(token, HANG_GUARD).await
}

/// 503 because of the store: no challenge (our outage is not the client's fault); in time, when
/// `timing` says so.
#[track_caller]
fn assert_store_unavailable(answer: &Answer, timing: Timing) {
    answer.assert_store_unavailable();
    timing.in_time(answer);
}

#[track_caller]
fn assert_ok(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.challenge, None, "{answer:?}");
}

/// Calls until the answer is 200 or `deadline` passes; returns how long it took.
async fn wait_until_ok(
    server: &ApiServer,
    token: &str,
    deadline: Duration,
    timing: Timing,
) -> Duration {
    let start = Instant::now();
    loop {
        let answer = call(server, token).await;
        if answer.status == StatusCode::OK {
            return start.elapsed();
        }
        // While it recovers: 503 from the store, nothing else.
        assert_store_unavailable(&answer, timing);
        assert!(
            start.elapsed() < deadline,
            "no recovery within {deadline:?}: last answer {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "redis")]
mod redis_faults {
    use super::*;
    use crate::support::stores::OwnRedis;
    use crate::support::{access_claims, mint};
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower_cognito::session::RedisStore;

    /// Sends `DEBUG SLEEP secs` on a connection of its own: the server answers nothing to
    /// anyone for that long. Returns once the command was sent (the sleep is then under way).
    async fn pause(port: u16, secs: f64) -> tokio::task::JoinHandle<()> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect for DEBUG SLEEP");
        let secs = secs.to_string();
        let command = format!(
            "*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n${}\r\n{secs}\r\n",
            secs.len()
        );
        stream
            .write_all(command.as_bytes())
            .await
            .expect("send DEBUG SLEEP");
        // Give the server a moment to start sleeping.
        tokio::time::sleep(Duration::from_millis(100)).await;
        tokio::spawn(async move {
            let mut buf = [0u8; 5];
            stream
                .read_exact(&mut buf)
                .await
                .expect("DEBUG SLEEP answer");
            assert_eq!(&buf, b"+OK\r\n", "DEBUG SLEEP refused");
        })
    }

    async fn store(redis: &OwnRedis) -> Arc<RedisStore> {
        let store = RedisStore::connect(&redis.url())
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", redis.url()))
            .with_prefix("faults:");
        Arc::new(store)
    }

    /// Killed mid-run: 503 (no challenge, never 401, no panic) within the store timeout; started
    /// again on the same port: the layer recovers by itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_killed_then_restarted() {
        killed_then_restarted(Timing::Outcomes).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "wall-clock budget: run by the timing step of .ci/run"]
    async fn timing_redis_killed_then_restarted() {
        killed_then_restarted(Timing::Budgets).await;
    }

    async fn killed_then_restarted(timing: Timing) {
        let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
        let mut redis = OwnRedis::start_volatile().await;
        let store = store(&redis).await;
        let api = server(&jwks, store.clone(), false).await;
        let sign_in = SignIn::new(&jwks, CLIENT);
        let (old, current) = (sign_in.token(0), sign_in.token(1));
        for _ in 0..5 {
            assert_ok(&call(&api, &current).await);
        }

        // Requests keep coming while the server dies.
        let background = {
            let (api, current) = (api.clone(), current.clone());
            tokio::spawn(async move {
                let (mut answers, start) = (Vec::new(), Instant::now());
                while start.elapsed() < Duration::from_millis(1500) {
                    answers.push(call(&api, &current).await);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                answers
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        redis.kill();
        let answers = background.await.expect("no panic in the request path");
        let mut down = 0;
        for answer in &answers {
            if answer.status == StatusCode::OK {
                assert_ok(answer);
            } else {
                assert_store_unavailable(answer, timing);
                down += 1;
            }
        }
        assert!(down > 0, "no request saw the store down");
        let slowest = answers.iter().map(|a| a.took).max().unwrap_or_default();
        eprintln!(
            "redis: {} requests while it died, {down} answered 503, slowest {slowest:?}",
            answers.len()
        );

        // Down: every request 503 in time, whatever the token; a superseded-looking token
        // cannot be told apart either. Revocation fails too.
        for token in [&current, &old, &sign_in.token(2)] {
            assert_store_unavailable(&call(&api, token).await, timing);
        }
        assert_eq!(
            api.verifier.revoke_session(&sign_in.session_key()).await,
            Err(AuthError::StoreUnavailable)
        );
        let direct = store
            .check_and_advance("k", 1, support::now(), Default::default())
            .await
            .expect_err("the store is down");
        assert_eq!(
            direct.kind(),
            tower_cognito::session::StoreErrorKind::Unavailable,
            "{direct}"
        );

        // Up again (empty: no persistence); the connection comes back by itself.
        redis.restart().await;
        let took = wait_until_ok(&api, &current, Duration::from_secs(20), timing).await;
        eprintln!("redis: recovered {took:?} after the restart");
        // And the window works again (the scripts were reloaded: NOSCRIPT handled).
        assert_ok(&call(&api, &sign_in.token(2)).await);
        assert_ok(&call(&api, &sign_in.token(3)).await);
        let refused = call(&api, &current).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
        api.verifier
            .revoke_session(&sign_in.session_key())
            .await
            .expect("revoke once up");
        assert_eq!(
            call(&api, &sign_in.token(3)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }

    /// Killed several times in a row: the layer recovers every time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_recovers_from_repeated_restarts() {
        repeated_restarts(Timing::Outcomes).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "wall-clock budget: run by the timing step of .ci/run"]
    async fn timing_redis_recovers_from_repeated_restarts() {
        repeated_restarts(Timing::Budgets).await;
    }

    async fn repeated_restarts(timing: Timing) {
        let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
        let mut redis = OwnRedis::start_volatile().await;
        let api = server(&jwks, store(&redis).await, false).await;
        let token = SignIn::new(&jwks, CLIENT).token(0);
        for round in 0..3 {
            assert_ok(&call(&api, &token).await);
            redis.kill();
            assert_store_unavailable(&call(&api, &token).await, timing);
            // Stay down a while: reconnection attempts fail meanwhile.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert_store_unavailable(&call(&api, &token).await, timing);
            redis.restart().await;
            let took = wait_until_ok(&api, &token, Duration::from_secs(20), timing).await;
            eprintln!("redis: round {round}: recovered {took:?} after the restart");
        }
    }

    /// Fail-open: with the store down, tokens are accepted on their signature alone; with the
    /// store up, the window applies as usual.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_down_with_fail_open() {
        down_with_fail_open(Timing::Outcomes).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "wall-clock budget: run by the timing step of .ci/run"]
    async fn timing_redis_down_with_fail_open() {
        down_with_fail_open(Timing::Budgets).await;
    }

    async fn down_with_fail_open(timing: Timing) {
        let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
        let mut redis = OwnRedis::start_volatile().await;
        let api = server(&jwks, store(&redis).await, true).await;
        let sign_in = SignIn::new(&jwks, CLIENT);
        for n in 0..3 {
            assert_ok(&call(&api, &sign_in.token(n)).await);
        }
        // Up: superseded is still refused.
        let refused = call(&api, &sign_in.token(0)).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");

        redis.kill();
        for n in 0..3 {
            let answer = call(&api, &sign_in.token(n)).await;
            assert_ok(&answer);
            timing.in_time(&answer);
        }
        // A bad token is still refused: fail-open skips only the store.
        let mut claims = access_claims(&jwks.issuer(), "another-client");
        claims["origin_jti"] = json!(sign_in.origin_jti);
        let answer = call(&api, &mint(key(0), &claims)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
        // Revocation is not fail-open.
        assert_eq!(
            api.verifier.revoke_session(&sign_in.session_key()).await,
            Err(AuthError::StoreUnavailable)
        );
        redis.restart().await;
        wait_until_ok(&api, &sign_in.token(2), Duration::from_secs(20), timing).await;
    }

    /// A slow store (the server blocked by `DEBUG SLEEP 2`): 503 within the store timeout, not
    /// after the two seconds; fail-open: 200 within the timeout. Fine again afterwards.
    ///
    /// Without the timeout the request would wait for the server to wake and get its 200: the
    /// 503 itself says the timeout cut the call, and both answers arrive while it still sleeps.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_slow_store_times_out() {
        slow_store_times_out(Timing::Outcomes).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "wall-clock budget: run by the timing step of .ci/run"]
    async fn timing_redis_slow_store_times_out() {
        slow_store_times_out(Timing::Budgets).await;
    }

    async fn slow_store_times_out(timing: Timing) {
        let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
        let redis = OwnRedis::start_volatile().await;
        let store = store(&redis).await;
        let closed = server(&jwks, store.clone(), false).await;
        let open = server(&jwks, store.clone(), true).await;
        let sign_in = SignIn::new(&jwks, CLIENT);
        let token = sign_in.token(0);
        assert_ok(&call(&closed, &token).await);

        let sleep = pause(redis.port(), 2.0).await;
        let started = Instant::now();
        let answer = call(&closed, &token).await;
        assert_store_unavailable(&answer, timing);
        assert!(answer.took >= TIMEOUT, "503 before the timeout: {answer:?}");
        let answer = call(&open, &token).await;
        assert_ok(&answer);
        timing.in_time(&answer);
        assert!(
            !sleep.is_finished(),
            "the server woke before the answers came: the test could not observe the pause"
        );
        if timing == Timing::Budgets {
            assert!(
                started.elapsed() < Duration::from_millis(1900),
                "the test itself was too slow to observe the pause"
            );
        }
        sleep.await.expect("DEBUG SLEEP");

        // Awake: answers in time again (the requests queued meanwhile were answered).
        let took = wait_until_ok(&closed, &token, Duration::from_secs(10), timing).await;
        eprintln!("redis: answering {took:?} after DEBUG SLEEP ended");
        assert_ok(&call(&closed, &sign_in.token(1)).await);
        assert_ok(&call(&closed, &sign_in.token(2)).await);
        let refused = call(&closed, &token).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    }

    /// Connecting to a server that is not there fails with `Unavailable`, without hanging (a
    /// 10 s guard, no time budget).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_unreachable_at_connect() {
        let url = format!("redis://127.0.0.1:{}", spare_port());
        let error = tokio::time::timeout(Duration::from_secs(10), RedisStore::connect(&url))
            .await
            .expect("connecting to a closed port hung")
            .expect_err("nobody listens");
        assert_eq!(
            error.kind(),
            tower_cognito::session::StoreErrorKind::Unavailable,
            "{error}"
        );
        let error = RedisStore::connect("http://127.0.0.1:1")
            .await
            .expect_err("not Redis");
        assert_eq!(
            error.kind(),
            tower_cognito::session::StoreErrorKind::InvalidInput,
            "{error}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "postgres")]
mod postgres_faults {
    use super::*;
    use std::net::SocketAddr;
    use std::str::FromStr;
    use std::sync::Mutex;
    use support::stores::{
        database_url, drop_table, postgres_client, postgres_store_with_schema,
        unique_postgres_table,
    };
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;
    use tokio_postgres::config::Host;
    use tower_cognito::session::{PostgresStore, StoreErrorKind};

    /// The PostgreSQL server of `DATABASE_URL`, and the same URL pointed at `port` instead.
    fn upstream_and_url_via(port: u16) -> (SocketAddr, String) {
        let config = tokio_postgres::Config::from_str(&database_url()).expect("DATABASE_URL");
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            other => panic!("DATABASE_URL must name a TCP host, not {other:?}"),
        };
        let upstream_port = config.get_ports().first().copied().unwrap_or(5432);
        let upstream = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), upstream_port))
            .expect("resolve the database host")
            .next()
            .expect("an address");
        let mut url = format!(
            "host=127.0.0.1 port={port} user={} dbname={}",
            config.get_user().unwrap_or("postgres"),
            config.get_dbname().unwrap_or("postgres"),
        );
        if let Some(password) = config.get_password() {
            url += &format!(" password={}", String::from_utf8_lossy(password));
        }
        (upstream, url)
    }

    /// A TCP relay on 127.0.0.1:`port` to the real PostgreSQL server. Stopping it closes the
    /// port and cuts every relayed connection: for the store, the database is gone.
    struct Relay {
        port: u16,
        upstream: SocketAddr,
        tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    }

    impl Relay {
        async fn start(port: u16, upstream: SocketAddr) -> Self {
            let relay = Self {
                port,
                upstream,
                tasks: Arc::default(),
            };
            relay.listen().await;
            relay
        }

        async fn listen(&self) {
            let mut attempts = 0;
            let listener = loop {
                match TcpListener::bind(("127.0.0.1", self.port)).await {
                    Ok(listener) => break listener,
                    Err(e) if attempts < 100 => {
                        attempts += 1;
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => panic!("relay cannot bind port {}: {e}", self.port),
                }
            };
            let (upstream, tasks) = (self.upstream, self.tasks.clone());
            let accept = tokio::spawn(async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    let relay = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    tasks.lock().unwrap().push(relay);
                }
            });
            self.tasks.lock().unwrap().push(accept);
        }

        /// Closes the port and every relayed connection.
        async fn stop(&self) {
            let tasks: Vec<_> = self.tasks.lock().unwrap().drain(..).collect();
            for task in tasks {
                task.abort();
                let _ = task.await;
            }
        }

        async fn restart(&self) {
            self.stop().await;
            self.listen().await;
        }
    }

    impl Drop for Relay {
        fn drop(&mut self) {
            for task in self.tasks.lock().unwrap().drain(..) {
                task.abort();
            }
        }
    }

    /// Nobody listens: connecting fails with `Unavailable`, without hanging (a 10 s guard, no
    /// time budget); a malformed URL with `InvalidInput`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_unreachable_at_connect() {
        let (_, url) = upstream_and_url_via(spare_port());
        let error = tokio::time::timeout(Duration::from_secs(10), PostgresStore::connect(&url))
            .await
            .expect("connecting to a closed port hung")
            .expect_err("nobody listens");
        assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
        let error = PostgresStore::connect("postgres://host:notaport/db")
            .await
            .expect_err("malformed");
        assert_eq!(error.kind(), StoreErrorKind::InvalidInput, "{error}");
    }

    /// The database becomes unreachable after start-up (the relay stops): 503 without a
    /// challenge, within the store timeout, and 200 with fail-open; reachable again: the pool
    /// reconnects by itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_unreachable_then_back() {
        unreachable_then_back(Timing::Outcomes).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "wall-clock budget: run by the timing step of .ci/run"]
    async fn timing_postgres_unreachable_then_back() {
        unreachable_then_back(Timing::Budgets).await;
    }

    async fn unreachable_then_back(timing: Timing) {
        let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
        let table = unique_postgres_table("faults");
        let port = spare_port();
        let (upstream, url) = upstream_and_url_via(port);
        let relay = Relay::start(port, upstream).await;
        let store = PostgresStore::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connect through the relay: {e}"))
            .with_table(&table)
            .expect("table name");
        store.create_schema().await.expect("create schema");
        let store = Arc::new(store);
        let closed = server(&jwks, store.clone(), false).await;
        let open = server(&jwks, store.clone(), true).await;
        let sign_in = SignIn::new(&jwks, CLIENT);
        let token = sign_in.token(0);
        for _ in 0..3 {
            assert_ok(&call(&closed, &token).await);
        }

        relay.stop().await;
        for _ in 0..5 {
            assert_store_unavailable(&call(&closed, &token).await, timing);
            let answer = call(&open, &token).await;
            assert_ok(&answer);
            timing.in_time(&answer);
        }
        assert_eq!(
            closed.verifier.revoke_session(&sign_in.session_key()).await,
            Err(AuthError::StoreUnavailable)
        );

        relay.restart().await;
        let took = wait_until_ok(&closed, &token, Duration::from_secs(20), timing).await;
        eprintln!("postgres: recovered {took:?} after the relay came back");
        // The window survived the outage (it lives in the database).
        assert_ok(&call(&closed, &sign_in.token(1)).await);
        assert_ok(&call(&closed, &sign_in.token(2)).await);
        let refused = call(&closed, &token).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
        drop(relay);
        drop_table(&table).await;
    }

    /// A slow store: another session holds an exclusive lock on the table. 503 within the
    /// store timeout (200 with fail-open); once the lock is released, answers come back. The
    /// lock is held until the end of the checks: without the timeout the requests would wait
    /// for it and the hang guard would fire.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_locked_table_times_out() {
        locked_table_times_out(Timing::Outcomes).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "wall-clock budget: run by the timing step of .ci/run"]
    async fn timing_postgres_locked_table_times_out() {
        locked_table_times_out(Timing::Budgets).await;
    }

    async fn locked_table_times_out(timing: Timing) {
        let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
        let table = unique_postgres_table("faults");
        let store = Arc::new(postgres_store_with_schema(&table).await);
        let closed = server(&jwks, store.clone(), false).await;
        let open = server(&jwks, store.clone(), true).await;
        let sign_in = SignIn::new(&jwks, CLIENT);
        let token = sign_in.token(0);
        assert_ok(&call(&closed, &token).await);

        let mut locker = postgres_client().await;
        let transaction = locker.transaction().await.expect("begin");
        transaction
            .batch_execute(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
            .await
            .expect("lock");
        for _ in 0..3 {
            let answer = call(&closed, &token).await;
            assert_store_unavailable(&answer, timing);
            assert!(answer.took >= TIMEOUT, "503 before the timeout: {answer:?}");
            let answer = call(&open, &sign_in.token(1)).await;
            assert_ok(&answer);
            timing.in_time(&answer);
        }
        transaction.commit().await.expect("release the lock");

        let took = wait_until_ok(&closed, &token, Duration::from_secs(10), timing).await;
        eprintln!("postgres: answering {took:?} after the lock was released");
        assert_ok(&call(&closed, &sign_in.token(1)).await);
        assert_ok(&call(&closed, &sign_in.token(2)).await);
        let refused = call(&closed, &token).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
        drop_table(&table).await;
    }
}
