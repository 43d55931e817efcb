//! The refresh-token-rotation race, end to end through the layer, with real tokens from a local
//! JWKS server.
//!
//! One sign-in (one `origin_jti`) issues the original token (`iat` T). Two tabs refresh from it
//! at once: tab A gets a token with `iat` T+1, tab B one with `iat` T+2. Many requests of both
//! tabs hit the API concurrently, and half-way through a third refresh arrives (token C, `iat`
//! T+3). The rules (window of two) say:
//!
//! - before C is seen, the window is {T+1, T+2}: A and B are always accepted;
//! - once C is seen, the window is {T+2, T+3}: B and C are always accepted, and A (like the
//!   original) is two refreshes old, so it is refused with 401 `invalid_token` and the
//!   superseded description.
//!
//! "Before" and "after" are taken from the client's side: a request of A that completed before
//! C's request started must have been accepted, one that started after C's request completed
//! must have been refused as superseded, and one that overlapped C's request may be either (the
//! store decided the order), but nothing else. B and C are never refused at all.
//!
//! Variants: a single API server with a `MemoryStore`; two API servers (two verifiers and
//! layers, each with its own store instance) sharing one Redis; the same sharing one PostgreSQL.
//! Then revocation: revoked through one server, refused by the other.

use crate::support;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use serde_json::json;
use support::{access_claims, challenge, key, local_config, mint, ApiServer, JwksServer, SignIn};
use tokio::task::JoinSet;
use tower_cognito::session::{MemoryStore, SessionConfig, SessionStore};
use tower_cognito::{
    ClientIds, CognitoConfig, ConfigError, TokenUse, UserPool, Verified, Verifier, DEFAULT_REALM,
};

const POOL: &str = "us-east-1_RaceTest1";
const CLIENT: &str = "race0client0id0for0tests";
const SUPERSEDED: &str = "The token belongs to a superseded session; refresh the tokens and retry";
const REVOKED: &str = "The session has been revoked";

/// The handler answers `session key|iat` of the verified token.
async fn handler(request: Request<String>) -> Result<Response<String>, Infallible> {
    let verified = request
        .extensions()
        .get::<Verified>()
        .expect("the layer puts Verified in the extensions");
    Ok(Response::new(format!(
        "{}|{}",
        verified.session_key().expect("a session key"),
        verified.issued_at()
    )))
}

/// One API server: a verifier with its own session store instance, behind the layer.
async fn server(jwks: &JwksServer, store: Arc<dyn SessionStore>) -> ApiServer {
    let config = local_config(jwks, TokenUse::Access, CLIENT)
        // A generous store timeout: hundreds of concurrent requests on a small test machine must
        // not turn into 503s; the faults tests cover the timeout itself.
        .session_window(SessionConfig::new(store).timeout(Duration::from_secs(5)));
    let verifier: Verifier = Verifier::new(config).expect("verifier");
    verifier.prefetch_keys().await.expect("prefetch keys");
    ApiServer::new(verifier, handler)
}

/// What a request got back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: String,
}

impl Answer {
    fn is_ok(&self) -> bool {
        self.status == StatusCode::OK
    }

    /// 401 `invalid_token` with exactly this description.
    fn is_refused_with(&self, description: &str) -> bool {
        self.status == StatusCode::UNAUTHORIZED
            && self.challenge.as_deref()
                == Some(&*format!(
                    "Bearer realm=\"{DEFAULT_REALM}\", error=\"invalid_token\", \
                     error_description=\"{description}\""
                ))
    }
}

async fn call(server: &ApiServer, token: &str) -> Answer {
    let response = server.get("/me", token).await;
    Answer {
        status: response.status(),
        challenge: challenge(&response),
        body: response.into_body(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tab {
    A,
    B,
}

#[derive(Debug)]
struct Record {
    tab: Tab,
    server: usize,
    start: Instant,
    end: Instant,
    answer: Answer,
}

fn spawn_request(
    tasks: &mut JoinSet<Record>,
    servers: &[ApiServer],
    tokens: &(Arc<str>, Arc<str>),
    i: usize,
) {
    let tab = if i % 2 == 0 { Tab::A } else { Tab::B };
    let n = (i / 2) % servers.len();
    let server = servers[n].clone();
    let token = match tab {
        Tab::A => tokens.0.clone(),
        Tab::B => tokens.1.clone(),
    };
    tasks.spawn(async move {
        let start = Instant::now();
        let answer = call(&server, &token).await;
        Record {
            tab,
            server: n,
            start,
            end: Instant::now(),
            answer,
        }
    });
}

/// The race against `servers` (one or more API servers sharing one session store).
/// `store` is one of the servers' stores, to look at the window at the end.
async fn refresh_race(jwks: &JwksServer, servers: &[ApiServer], store: &dyn SessionStore) {
    let sign_in = SignIn::new(jwks, CLIENT);
    let original = sign_in.token(0);
    let tokens: (Arc<str>, Arc<str>) = (sign_in.token(1).into(), sign_in.token(2).into());
    let c = sign_in.token(3);

    // Sign-in: the original token is used on every server.
    for s in servers {
        let answer = call(s, &original).await;
        assert!(answer.is_ok(), "original token refused: {answer:?}");
        assert_eq!(
            answer.body,
            format!("{}|{}", sign_in.session_key(), sign_in.t)
        );
    }

    // Both tabs refresh at once and fire requests concurrently, on every server.
    let mut tasks = JoinSet::new();
    for i in 0..100 {
        spawn_request(&mut tasks, servers, &tokens, i);
        if i % 10 == 9 {
            tokio::task::yield_now().await;
        }
    }
    // Let some of them finish before the third refresh.
    let mut records = Vec::new();
    for _ in 0..20 {
        records.push(tasks.join_next().await.expect("task").expect("request"));
    }
    // More requests, and the third refresh (on the last server) in the middle of them.
    for i in 100..140 {
        spawn_request(&mut tasks, servers, &tokens, i);
    }
    let c_server = servers.last().expect("a server").clone();
    let c_task = tokio::spawn(async move {
        let start = Instant::now();
        let answer = call(&c_server, &c).await;
        (start, Instant::now(), answer)
    });
    for i in 140..180 {
        spawn_request(&mut tasks, servers, &tokens, i);
    }
    let (c_start, c_end, c_answer) = c_task.await.expect("C's request");
    assert!(
        c_answer.is_ok(),
        "the newest token was refused: {c_answer:?}"
    );
    // Requests that start once C has been seen.
    for i in 180..200 {
        spawn_request(&mut tasks, servers, &tokens, i);
    }
    while let Some(record) = tasks.join_next().await {
        records.push(record.expect("request"));
    }
    assert_eq!(records.len(), 200);

    let (mut a_before, mut a_during, mut a_after) = (0, 0, 0);
    for r in &records {
        let a = &r.answer;
        match r.tab {
            Tab::B => assert!(a.is_ok(), "tab B refused (server {}): {a:?}", r.server),
            Tab::A if r.end < c_start => {
                a_before += 1;
                assert!(
                    a.is_ok(),
                    "tab A refused before the third refresh (server {}): {a:?}",
                    r.server
                );
            }
            Tab::A if r.start > c_end => {
                a_after += 1;
                assert!(
                    a.is_refused_with(SUPERSEDED),
                    "tab A not superseded after the third refresh (server {}): {a:?}",
                    r.server
                );
            }
            Tab::A => {
                a_during += 1;
                assert!(
                    a.is_ok() || a.is_refused_with(SUPERSEDED),
                    "tab A during the third refresh (server {}): {a:?}",
                    r.server
                );
            }
        }
        if a.is_ok() {
            let iat = sign_in.t + if r.tab == Tab::A { 1 } else { 2 };
            assert_eq!(a.body, format!("{}|{iat}", sign_in.session_key()));
        }
    }
    eprintln!(
        "tab A: {a_before} before the third refresh, {a_during} during, {a_after} after \
         ({} servers)",
        servers.len()
    );
    assert!(
        a_before > 0 && a_after > 0,
        "the run did not cover both sides of the third refresh: \
         {a_before} before, {a_during} during, {a_after} after"
    );

    // Afterwards, on every server: two refreshes old is superseded; the two newest are fine.
    for s in servers {
        for (n, ok) in [(0, false), (1, false), (2, true), (3, true)] {
            let answer = call(s, &sign_in.token(n)).await;
            if ok {
                assert!(answer.is_ok(), "T+{n}: {answer:?}");
            } else {
                assert!(answer.is_refused_with(SUPERSEDED), "T+{n}: {answer:?}");
                // Nothing but the challenge: the handler never ran.
                assert_eq!(answer.body, "");
            }
        }
    }
    let entry = store
        .entry(&sign_in.session_key(), support::now())
        .await
        .expect("entry")
        .expect("the session has an entry");
    assert_eq!(entry.iats, [sign_in.t + 2, sign_in.t + 3]);
    assert!(!entry.revoked);
}

/// Revoked through the first server, refused by every server (the last one in particular).
async fn revoke_across_servers(jwks: &JwksServer, servers: &[ApiServer]) {
    let (first, last) = (&servers[0], servers.last().expect("a server"));
    let sign_in = SignIn::new(jwks, CLIENT);
    let other = SignIn::new(jwks, CLIENT);
    for s in servers {
        assert!(call(s, &sign_in.token(0)).await.is_ok());
        assert!(call(s, &other.token(0)).await.is_ok());
    }
    // Sign-out on the first server, with the key the handler saw.
    let answer = call(first, &sign_in.token(1)).await;
    let (key, _) = answer.body.split_once('|').expect("key|iat");
    assert_eq!(key, sign_in.session_key());
    first.verifier.revoke_session(key).await.expect("revoke");
    // Every token of that session is refused everywhere, even one refreshed later.
    for s in [last, first] {
        for n in [0, 1, 2, 30] {
            let answer = call(s, &sign_in.token(n)).await;
            assert!(answer.is_refused_with(REVOKED), "T+{n}: {answer:?}");
            assert_eq!(answer.body, "");
        }
        // Another sign-in of the same user is untouched.
        assert!(call(s, &other.token(0)).await.is_ok());
        assert!(call(s, &other.token(1)).await.is_ok());
    }
}

// ---------------------------------------------------------------------------------------------
// Memory: one server
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_refresh_race_on_one_server() {
    let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let store = Arc::new(MemoryStore::new(10_000));
    let servers = [server(&jwks, store.clone()).await];
    refresh_race(&jwks, &servers, &*store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_revoke() {
    let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let servers = [server(&jwks, Arc::new(MemoryStore::new(10_000))).await];
    revoke_across_servers(&jwks, &servers).await;
}

/// Two servers with a memory store each share nothing: the same race on them is not refused,
/// and no revocation crosses over. (The reason to use Redis or PostgreSQL with several servers.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stores_are_per_server() {
    let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let one = server(&jwks, Arc::new(MemoryStore::new(100))).await;
    let two = server(&jwks, Arc::new(MemoryStore::new(100))).await;
    let sign_in = SignIn::new(&jwks, CLIENT);
    for n in 0..4 {
        assert!(call(&one, &sign_in.token(n)).await.is_ok());
    }
    assert!(call(&one, &sign_in.token(1))
        .await
        .is_refused_with(SUPERSEDED));
    assert!(call(&two, &sign_in.token(1)).await.is_ok());
    one.verifier
        .revoke_session(&sign_in.session_key())
        .await
        .expect("revoke");
    assert!(call(&one, &sign_in.token(3)).await.is_refused_with(REVOKED));
    assert!(call(&two, &sign_in.token(3)).await.is_ok());
}

/// Tokens without `origin_jti` share one session per user and client (and device).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_without_origin_jti_use_sub_and_client() {
    let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let store = Arc::new(MemoryStore::new(100));
    let api = server(&jwks, store.clone()).await;
    let t = support::now() - 60;
    let sub = support::uuid();
    let token = |n: i64, device: Option<&str>| {
        let mut claims = access_claims(&jwks.issuer(), CLIENT);
        claims.as_object_mut().expect("object").remove("origin_jti");
        claims["sub"] = json!(sub);
        claims["iat"] = json!(t + n);
        if let Some(device) = device {
            claims["device_key"] = json!(device);
        }
        mint(key(0), &claims)
    };
    let answer = call(&api, &token(0, None)).await;
    assert_eq!(answer.body, format!("s:{sub}:{CLIENT}|{t}"));
    assert!(call(&api, &token(1, None)).await.is_ok());
    assert!(call(&api, &token(2, None)).await.is_ok());
    assert!(call(&api, &token(0, None))
        .await
        .is_refused_with(SUPERSEDED));
    // Another device of the same user is another session.
    let answer = call(&api, &token(0, Some("dev-1"))).await;
    assert_eq!(answer.body, format!("s:{sub}:{CLIENT}:dev-1|{t}"));
    let e = store
        .entry(&format!("s:{sub}:{CLIENT}"), support::now())
        .await
        .expect("entry")
        .expect("present");
    assert_eq!(e.iats, [t + 1, t + 2]);
}

/// Only tokens that passed every other check reach the store: a forged, expired, future,
/// foreign or out-of-scope token carrying a session's `origin_jti` and a newer `iat` must not
/// move that session's window (else anyone could log a user out by superseding their chain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_never_touch_the_window() {
    let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let store = Arc::new(MemoryStore::new(100));
    let config = local_config(&jwks, TokenUse::Access, CLIENT)
        .require_scopes(["openid"])
        .session_window(SessionConfig::new(store.clone()));
    let verifier: Verifier = Verifier::new(config).expect("verifier");
    let api = ApiServer::new(verifier, handler);
    let sign_in = SignIn::new(&jwks, CLIENT);
    assert!(call(&api, &sign_in.token(0)).await.is_ok());
    let before = store
        .entry(&sign_in.session_key(), support::now())
        .await
        .expect("entry");
    assert_eq!(
        before.as_ref().map(|e| e.iats.clone()),
        Some(vec![sign_in.t])
    );

    let now = support::now();
    let newer = |n: i64| {
        let mut claims = access_claims(&jwks.issuer(), CLIENT);
        claims["origin_jti"] = json!(sign_in.origin_jti);
        claims["iat"] = json!(sign_in.t + n);
        claims
    };
    let mut refused = Vec::new();
    // Signed by a key the pool does not publish.
    refused.push((401, mint(key(1), &newer(10))));
    refused.push((401, mint(key(1), &newer(11))));
    // Expired.
    let mut c = newer(20);
    c["exp"] = json!(now - 3600);
    refused.push((401, mint(key(0), &c)));
    // Issued in the future.
    refused.push((401, mint(key(0), &newer(now - sign_in.t + 3600))));
    // Another app client.
    let mut c = newer(30);
    c["client_id"] = json!("another0client");
    refused.push((401, mint(key(0), &c)));
    // Another issuer.
    let mut c = newer(31);
    c["iss"] = json!("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other");
    refused.push((401, mint(key(0), &c)));
    // An id token.
    let mut c = newer(32);
    c["token_use"] = json!("id");
    refused.push((401, mint(key(0), &c)));
    // Lacking the required scope: 403.
    let mut c = newer(40);
    c["scope"] = json!("profile");
    refused.push((403, mint(key(0), &c)));
    for (status, token) in &refused {
        let answer = call(&api, token).await;
        assert_eq!(answer.status.as_u16(), *status, "{answer:?}");
    }
    let after = store
        .entry(&sign_in.session_key(), support::now())
        .await
        .expect("entry");
    assert_eq!(
        after.as_ref().map(|e| e.iats.clone()),
        before.as_ref().map(|e| e.iats.clone())
    );
    // The genuine chain is untouched.
    assert!(call(&api, &sign_in.token(0)).await.is_ok());
    assert!(call(&api, &sign_in.token(1)).await.is_ok());
    assert!(call(&api, &sign_in.token(0)).await.is_ok());
}

/// A key function replaces the session key: here one window per user, across sign-ins; and
/// a token it gives no key to is refused as lacking a required claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_function_chooses_the_session() {
    let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let store = Arc::new(MemoryStore::new(100));
    let config = local_config(&jwks, TokenUse::Access, CLIENT).session_window(
        SessionConfig::new(store.clone()).key_fn(|parts| match (parts.sub, parts.token_use) {
            (Some(sub), "access") if sub != "nobody" => Some(format!("user:{sub}")),
            _ => None,
        }),
    );
    let verifier: Verifier = Verifier::new(config).expect("verifier");
    let api = ApiServer::new(verifier, handler);
    // Three sign-ins of one user, one after another: one window for all of them.
    let sign_ins: Vec<SignIn> = (0..3)
        .map(|i| {
            let mut s = SignIn::new(&jwks, CLIENT);
            s.t += i * 10;
            s
        })
        .collect();
    for s in &sign_ins {
        let answer = call(&api, &s.token(0)).await;
        assert_eq!(answer.body, format!("user:{}|{}", support::SUB, s.t));
    }
    let refused = call(&api, &sign_ins[0].token(0)).await;
    assert!(refused.is_refused_with(SUPERSEDED), "{refused:?}");
    assert!(call(&api, &sign_ins[1].token(0)).await.is_ok());
    // No key: refused before the store is asked.
    let mut claims = access_claims(&jwks.issuer(), CLIENT);
    claims["sub"] = json!("nobody");
    let refused = call(&api, &mint(key(0), &claims)).await;
    assert!(
        refused.is_refused_with("The token lacks a required claim"),
        "{refused:?}"
    );
    let e = store
        .entry(&format!("user:{}", support::SUB), support::now())
        .await
        .expect("entry")
        .expect("present");
    assert_eq!(e.iats, [sign_ins[1].t, sign_ins[2].t]);
}

/// The window settings are checked when the verifier is built.
#[test]
fn window_settings_are_validated() {
    let build = |sessions: SessionConfig| {
        let config = CognitoConfig::new(
            UserPool::parse(POOL).expect("pool id"),
            TokenUse::Access,
            ClientIds::one(CLIENT),
        )
        .session_window(sessions);
        Verifier::<tower_cognito::AccessClaims>::new(config).map(|_| ())
    };
    let store = || SessionConfig::new(Arc::new(MemoryStore::new(10)));
    for bad in [
        store().window(0),
        store().window(9),
        store().window(usize::MAX),
        store().ttl(Duration::ZERO),
        store().ttl(Duration::from_millis(999)),
        store().timeout(Duration::ZERO),
    ] {
        let limits = bad.limits();
        assert!(
            matches!(build(bad), Err(ConfigError::InvalidSetting { .. })),
            "{limits:?} accepted"
        );
    }
    for good in [
        store(),
        store().window(1),
        store().window(8),
        store().ttl(Duration::from_secs(1)),
        store().ttl(Duration::MAX),
        store().timeout(Duration::from_nanos(1)),
    ] {
        assert_eq!(build(good), Ok(()));
    }
}

// ---------------------------------------------------------------------------------------------
// Redis: two servers, one Redis
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "redis")]
mod redis_servers {
    use super::*;
    use support::stores::{delete_redis_keys, redis_store, unique_redis_prefix};
    use tower_cognito::session::RedisStore;

    /// Two API servers, each with its own connection, sharing one Redis under `prefix`.
    async fn two_servers(jwks: &JwksServer, prefix: &str) -> ([ApiServer; 2], Arc<RedisStore>) {
        let one = Arc::new(redis_store(prefix).await);
        let two = Arc::new(redis_store(prefix).await);
        let servers = [server(jwks, one.clone()).await, server(jwks, two).await];
        (servers, one)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_refresh_race_on_two_servers() {
        let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
        let prefix = unique_redis_prefix("race");
        let (servers, store) = two_servers(&jwks, &prefix).await;
        refresh_race(&jwks, &servers, &*store).await;
        delete_redis_keys(&prefix).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_revoke_on_one_server_is_refused_on_the_other() {
        let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
        let prefix = unique_redis_prefix("race");
        let (servers, _) = two_servers(&jwks, &prefix).await;
        revoke_across_servers(&jwks, &servers).await;
        delete_redis_keys(&prefix).await;
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: two servers, one database
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "postgres")]
mod postgres_servers {
    use super::*;
    use support::stores::{drop_table, postgres_store, unique_postgres_table};
    use tower_cognito::session::PostgresStore;

    /// Two API servers, each with its own pool, sharing one table.
    async fn two_servers(jwks: &JwksServer, table: &str) -> ([ApiServer; 2], Arc<PostgresStore>) {
        let one = Arc::new(postgres_store(table).await);
        let two = Arc::new(postgres_store(table).await);
        one.create_schema().await.expect("create schema");
        let servers = [server(jwks, one.clone()).await, server(jwks, two).await];
        (servers, one)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_refresh_race_on_two_servers() {
        let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
        let table = unique_postgres_table("race");
        let (servers, store) = two_servers(&jwks, &table).await;
        refresh_race(&jwks, &servers, &*store).await;
        drop_table(&table).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_revoke_on_one_server_is_refused_on_the_other() {
        let jwks = JwksServer::start_with_keys(POOL, &[key(0)]).await;
        let table = unique_postgres_table("race");
        let (servers, _) = two_servers(&jwks, &table).await;
        revoke_across_servers(&jwks, &servers).await;
        drop_table(&table).await;
    }
}
