#![cfg(feature = "redis")]
//! `RedisStore` against a real Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`): what is
//! Redis's own. The value format and the key prefix, native TTLs, data this crate did not write,
//! the scripts (one round trip per call, NOSCRIPT after a flush), integers the scripts cannot
//! compare exactly, connection errors, reconnection, `Debug`. The session semantics are written
//! once for every backend: `session_behaviour.rs` (the shared suite) and `session_model.rs`
//! (against the model).
//!
//! Every test uses its own key prefix (process id, time, counter), so tests running in parallel,
//! or in other processes, never share a key; keys are deleted at the end. Round trips are counted
//! by a small TCP proxy in front of the real server that reads the commands the store sends.

use crate::support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::stores::{
    delete_redis_keys, redis_connection, redis_store, redis_url, unique_redis_prefix,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tower_cognito::session::{
    RedisStore, SessionEntry, SessionStore, SessionVerdict, StoreErrorKind, WindowLimits,
};

use SessionVerdict::{Accepted, Revoked, Superseded};

// --- helpers ----------------------------------------------------------------------------------

/// Tests that flush the server's script cache, and tests that count round trips (which a flush
/// would disturb), take this lock.
static SCRIPT_CACHE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn raw_get(key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut redis_connection().await)
        .await
        .unwrap()
}

async fn raw_ttl(key: &str) -> i64 {
    redis::cmd("TTL")
        .arg(key)
        .query_async(&mut redis_connection().await)
        .await
        .unwrap()
}

const fn limits(size: usize, ttl_secs: i64) -> WindowLimits {
    WindowLimits::new(size, ttl_secs)
}

async fn check(
    store: &RedisStore,
    key: &str,
    iat: i64,
    now: i64,
    l: WindowLimits,
) -> SessionVerdict {
    store.check_and_advance(key, iat, now, l).await.unwrap()
}

async fn iats(store: &impl SessionStore, key: &str, now: i64) -> Vec<i64> {
    store.entry(key, now).await.unwrap().expect("entry").iats
}

// --- a counting proxy -------------------------------------------------------------------------

/// A TCP proxy in front of the real Redis that records the name of every command a client sends,
/// and can cut every connection (and refuse new ones) to play a Redis outage.
struct Proxy {
    url: String,
    commands: Arc<Mutex<Vec<String>>>,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    async fn start() -> Self {
        let mut url = url::Url::parse(&redis_url()).unwrap();
        let upstream = format!(
            "{}:{}",
            url.host_str()
                .expect("REDIS_URL must be a TCP address for the proxy tests"),
            url.port().unwrap_or(6379)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(addr.port())).unwrap();
        let proxy = Self {
            url: url.to_string(),
            commands: Arc::default(),
            up: Arc::new(AtomicBool::new(true)),
            links: Arc::default(),
        };
        let (commands, up, links) = (
            proxy.commands.clone(),
            proxy.up.clone(),
            proxy.links.clone(),
        );
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (client_read, mut client_write) = client.into_split();
                let (mut server_read, server_write) = server.into_split();
                let requests = tokio::spawn(forward_requests(
                    client_read,
                    server_write,
                    commands.clone(),
                ));
                let replies = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                let mut links = links.lock().unwrap();
                links.push(requests.abort_handle());
                links.push(replies.abort_handle());
            }
        });
        proxy
    }

    /// The commands sent since the last call.
    fn take_commands(&self) -> Vec<String> {
        std::mem::take(&mut *self.commands.lock().unwrap())
    }

    /// Down: cut every connection and refuse new ones. Up: accept again.
    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for link in self.links.lock().unwrap().drain(..) {
                link.abort();
            }
        }
    }
}

async fn forward_requests(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    commands: Arc<Mutex<Vec<String>>>,
) {
    let mut pending = Vec::new();
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some((used, name)) = parse_command(&pending) {
            commands.lock().unwrap().push(name);
            pending.drain(..used);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// One complete RESP command (an array of bulk strings) at the start of `buf`: its length in
/// bytes and its name; `None` until it is complete.
fn parse_command(buf: &[u8]) -> Option<(usize, String)> {
    fn header(buf: &[u8], at: usize, tag: u8) -> Option<(usize, usize)> {
        assert_eq!(*buf.get(at)?, tag, "unexpected RESP from the client");
        let rest = &buf[at + 1..];
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let n = std::str::from_utf8(&rest[..end]).unwrap().parse().unwrap();
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

const L2: WindowLimits = limits(2, 100);

// --- storage ----------------------------------------------------------------------------------

/// A check that would write back the stored value (a known iat in the same second) writes
/// nothing: a native TTL shortened by hand stays as it is. Any change writes again.
#[tokio::test]
async fn a_check_that_changes_nothing_writes_nothing() {
    let prefix = unique_redis_prefix("no-op");
    let s = redis_store(&prefix).await;
    let key = format!("{prefix}k");
    let l = limits(2, 3600);
    let shorten = || async {
        let _: () = redis::cmd("EXPIRE")
            .arg(&key)
            .arg(500)
            .query_async(&mut redis_connection().await)
            .await
            .unwrap();
    };
    assert_eq!(check(&s, "k", 100, 1000, l).await, Accepted);
    let stored = raw_get(&key).await;
    shorten().await;
    // The same iat in the same second: nothing written.
    assert_eq!(check(&s, "k", 100, 1000, l).await, Accepted);
    assert!((1..=500).contains(&raw_ttl(&key).await));
    assert_eq!(raw_get(&key).await, stored);
    // The next second moves the expiry: written, with a fresh native TTL.
    assert_eq!(check(&s, "k", 100, 1001, l).await, Accepted);
    assert!(raw_ttl(&key).await > 500);
    assert_eq!(s.entry("k", 1001).await.unwrap().unwrap().expires_at, 4601);
    // A new iat in the same second changes the window: written.
    shorten().await;
    assert_eq!(check(&s, "k", 200, 1001, l).await, Accepted);
    assert!(raw_ttl(&key).await > 500);
    assert_eq!(iats(&s, "k", 1001).await, [100, 200]);
    // A refusal writes nothing either.
    shorten().await;
    assert_eq!(check(&s, "k", 50, 1001, l).await, Superseded);
    assert!((1..=500).contains(&raw_ttl(&key).await));
    delete_redis_keys(&prefix).await;
}

/// The scripts compare Lua numbers (doubles), exact up to 2^53 - 1, which unix times never
/// approach: an `iat` or a `now` beyond is refused before any round trip, and nothing is written.
/// (Exactness within, at the edges, on every backend: `session_model.rs`, `extreme_integers`.)
#[tokio::test]
async fn integers_beyond_2_pow_53_are_refused() {
    let prefix = unique_redis_prefix("exact");
    let s = redis_store(&prefix).await;
    let max = (1_i64 << 53) - 1;
    let l2 = limits(2, 100);
    // Beyond: refused before any round trip, and nothing is written.
    for (iat, now) in [
        (max + 1, 0),
        (-max - 1, 0),
        (1, max + 1),
        (i64::MAX, 0),
        (1, i64::MIN),
    ] {
        let err = s
            .check_and_advance("beyond", iat, now, l2)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::InvalidInput, "{iat} at {now}");
    }
    let err = s.revoke("beyond", i64::MAX, l2).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::InvalidInput);
    assert_eq!(s.entry("beyond", 0).await.unwrap(), None);
    delete_redis_keys(&prefix).await;
}

#[tokio::test]
async fn the_prefix_is_applied_and_the_format_is_documented() {
    let prefix = unique_redis_prefix("prefix");
    let s = redis_store(&prefix).await;
    assert_eq!(s.prefix(), prefix);
    assert_eq!(check(&s, "o:abc", 200, 1000, limits(2, 60)).await, Accepted);
    assert_eq!(check(&s, "o:abc", 100, 1000, limits(2, 60)).await, Accepted);
    let key = format!("{prefix}o:abc");
    assert_eq!(raw_get(&key).await.as_deref(), Some("1060|0|100,200"));
    assert_eq!(raw_get("o:abc").await, None);
    // Redis reclaims the entry by itself, a TTL after the write.
    let ttl = raw_ttl(&key).await;
    assert!((1..=60).contains(&ttl), "native TTL {ttl}");
    s.revoke("o:abc", 1001, limits(2, 60)).await.unwrap();
    assert_eq!(raw_get(&key).await.as_deref(), Some("1061|1|100,200"));

    // The default prefix.
    let default = RedisStore::connect(&redis_url()).await.unwrap();
    assert_eq!(default.prefix(), "tower-cognito:session:");
    assert_eq!(RedisStore::DEFAULT_PREFIX, "tower-cognito:session:");
    let session = unique_redis_prefix("default-prefix");
    assert_eq!(check(&default, &session, 1, 0, L2).await, Accepted);
    let key = format!("tower-cognito:session:{session}");
    assert_eq!(raw_get(&key).await.as_deref(), Some("100|0|1"));
    delete_redis_keys(&key).await;
    delete_redis_keys(&prefix).await;
}

#[tokio::test]
async fn a_very_long_ttl_gets_no_native_expiry() {
    let prefix = unique_redis_prefix("long-ttl");
    let s = redis_store(&prefix).await;
    assert_eq!(check(&s, "k", 1, 10, limits(2, i64::MAX)).await, Accepted);
    assert_eq!(raw_ttl(&format!("{prefix}k")).await, -1);
    assert_eq!(
        s.entry("k", 10).await.unwrap().unwrap().expires_at,
        i64::MAX
    );
    // A later, shorter TTL sets one again.
    assert_eq!(check(&s, "k", 1, 10, limits(2, 30)).await, Accepted);
    assert!((1..=30).contains(&raw_ttl(&format!("{prefix}k")).await));
    delete_redis_keys(&prefix).await;
}

#[tokio::test]
async fn data_this_crate_did_not_write_is_corrupt_and_left_alone() {
    let prefix = unique_redis_prefix("corrupt");
    let s = redis_store(&prefix).await;
    let mut conn = redis_connection().await;
    for (i, value) in [
        "garbage",
        "100|0|2,1",
        "100|0|1,1",
        "100|0|1,,2",
        "100|0|1,",
        "100|0|,1",
        "100|0|,",
        "100|0|01",
        "100|0|-0",
        "100|0|-",
        "100|0|1-2",
        "100|0|1,2,3,4,5,6,7,8,9",
        "100|2|1",
        "0100|0|1",
        "-0|0|1",
        "100|0|1|",
        // Expired (`now` is 0), and still not this crate's.
        "-5|0|1,,2",
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("k{i}");
        let () = redis::cmd("SET")
            .arg(format!("{prefix}{key}"))
            .arg(value)
            .query_async(&mut conn)
            .await
            .unwrap();
        let err = s.check_and_advance(&key, 1, 0, L2).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{value}: {err}");
        let err = s.revoke(&key, 0, L2).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{value}: {err}");
        let err = s.entry(&key, 0).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{value}: {err}");
        assert_eq!(
            raw_get(&format!("{prefix}{key}")).await.as_deref(),
            Some(value)
        );
    }
    // A key of another type.
    let () = redis::cmd("RPUSH")
        .arg(format!("{prefix}list"))
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    for err in [
        s.check_and_advance("list", 1, 0, L2).await.unwrap_err(),
        s.revoke("list", 0, L2).await.unwrap_err(),
        s.entry("list", 0).await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{err}");
    }
    delete_redis_keys(&prefix).await;
}

// --- round trips and the script cache ---------------------------------------------------------

#[tokio::test]
async fn a_check_still_works_after_script_flush() {
    let _guard = SCRIPT_CACHE.lock().await;
    let prefix = unique_redis_prefix("flush");
    let s = redis_store(&prefix).await;
    assert_eq!(check(&s, "k", 100, 0, L2).await, Accepted);
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis_connection().await)
        .await
        .unwrap();
    assert_eq!(check(&s, "k", 200, 0, L2).await, Accepted);
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis_connection().await)
        .await
        .unwrap();
    s.revoke("k", 0, L2).await.unwrap();
    assert_eq!(check(&s, "k", 200, 0, L2).await, Revoked);
    assert_eq!(
        s.entry("k", 0).await.unwrap(),
        Some(SessionEntry::new(vec![100, 200], true, 100))
    );
    delete_redis_keys(&prefix).await;
}

#[tokio::test]
async fn one_round_trip_per_call() {
    let _guard = SCRIPT_CACHE.lock().await;
    let proxy = Proxy::start().await;
    let prefix = unique_redis_prefix("round-trips");
    let s = RedisStore::connect(&proxy.url)
        .await
        .unwrap()
        .with_prefix(&prefix);
    // Connecting asks whether this is a cluster node, then loads both scripts.
    let at_connect = proxy.take_commands();
    assert_eq!(
        at_connect.iter().filter(|c| *c == "INFO").count(),
        1,
        "{at_connect:?}"
    );
    assert_eq!(
        at_connect.iter().filter(|c| *c == "SCRIPT").count(),
        2,
        "{at_connect:?}"
    );

    for i in 0..20 {
        assert_eq!(
            check(&s, "k", 100 + i % 3, 0, limits(3, 60)).await,
            Accepted
        );
    }
    assert_eq!(proxy.take_commands(), vec!["EVALSHA"; 20]);
    s.revoke("k", 0, limits(3, 60)).await.unwrap();
    assert_eq!(proxy.take_commands(), ["EVALSHA"]);
    assert_eq!(iats(&s, "k", 0).await, [100, 101, 102]);
    assert_eq!(proxy.take_commands(), ["GET"]);

    // After SCRIPT FLUSH: NOSCRIPT, then the script runs as EVAL, which caches it again.
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis_connection().await)
        .await
        .unwrap();
    assert_eq!(check(&s, "j", 1, 0, L2).await, Accepted);
    assert_eq!(proxy.take_commands(), ["EVALSHA", "EVAL"]);
    assert_eq!(check(&s, "j", 2, 0, L2).await, Accepted);
    assert_eq!(proxy.take_commands(), ["EVALSHA"]);
    delete_redis_keys(&prefix).await;
}

// --- failures ---------------------------------------------------------------------------------

#[tokio::test]
async fn connecting_to_a_closed_port_is_unavailable() {
    // A refused connection fails; it must not hang (10 s is a hang guard, no time budget).
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        RedisStore::connect("redis://127.0.0.1:1"),
    )
    .await
    .expect("connecting to a closed port hung")
    .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");

    for url in [
        "",
        "not a url",
        "http://127.0.0.1:6379",
        "redis://127.0.0.1:6379/notadb",
    ] {
        let err = RedisStore::connect(url).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::InvalidInput, "{url}: {err}");
    }
}

#[tokio::test]
async fn the_store_reconnects_by_itself_after_an_outage() {
    let proxy = Proxy::start().await;
    let prefix = unique_redis_prefix("outage");
    let s = RedisStore::connect(&proxy.url)
        .await
        .unwrap()
        .with_prefix(&prefix);
    assert_eq!(check(&s, "k", 100, 0, L2).await, Accepted);

    proxy.set_up(false);
    for _ in 0..3 {
        let err = s.check_and_advance("k", 200, 0, L2).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    }

    proxy.set_up(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    let verdict = loop {
        match s.check_and_advance("k", 200, 0, L2).await {
            Ok(verdict) => break verdict,
            Err(err) if Instant::now() < deadline => {
                assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("no reconnection after 10 s: {err}"),
        }
    };
    assert_eq!(verdict, Accepted);
    assert_eq!(iats(&s, "k", 0).await, [100, 200]);
    delete_redis_keys(&prefix).await;
}

#[tokio::test]
async fn debug_shows_no_password() {
    let mut url = url::Url::parse(&redis_url()).unwrap();
    if url.password().is_none() {
        // A server without a password accepts any password for the `default` user.
        url.set_username("default").unwrap();
        url.set_password(Some("canary-s3cret")).unwrap();
    }
    let password = url.password().unwrap().to_owned();
    let Ok(s) = RedisStore::connect(url.as_str()).await else {
        eprintln!("skipped: the server refused the test password");
        return;
    };
    let s = s.with_prefix("dbg:");
    let debug = format!("{s:?}");
    assert!(!debug.contains(&password), "{debug}");
    assert!(
        debug.contains("RedisStore") && debug.contains("dbg:"),
        "{debug}"
    );
}

#[test]
fn the_store_is_shareable() {
    fn assert_shareable<T: SessionStore + Clone + Send + Sync + 'static>() {}
    assert_shareable::<RedisStore>();
}
