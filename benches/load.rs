//! Load test, in one process, on loopback only: a tool of this repository (CI runs it), built
//! as a bench (release profile, dev-dependencies) that plain `cargo bench` leaves out.
//!
//! ```sh
//! cargo bench --features redis --bench load -- --seconds 30
//! cargo bench --bench load -- --seconds 5        # MemoryStore, no restart
//! ```
//!
//! It starts
//!
//! - a local JWKS endpoint (hyper, `127.0.0.1:0`, the test issuer of `tests/it/support`) that
//!   ROTATES keys during the run: key B is published next to key A, clients start signing with B
//!   once the layer has fetched it, then key A is removed; from the moment the layer has fetched
//!   the JWKS without A, tokens signed by A are bad tokens (until then they are still good, and
//!   the answers in between are counted apart as "being removed");
//! - the protected axum API: `GET /me` behind [`CognitoAuthLayer`], with the session window on a
//!   Redis store when built with `--features redis` and `redis-server` can be started: a
//!   redis-server of this test on a spare port, with persistence (`appendfsync always`), that is
//!   KILLED (SIGKILL) and RESTARTED mid-run; the shared server of `REDIS_URL` is never used, since
//!   it must not be restarted. Otherwise a [`MemoryStore`], with a printed note;
//! - many concurrent keep-alive HTTP/1.1 connections (raw `TcpStream`s, 64 by default) sending a
//!   mix of tokens: valid (keys A and B), expired, forged (tampered signature or payload, signed
//!   by an unknown key under a real or a random `kid`), random garbage, another app client's,
//!   superseded (sessions refreshed twice before the run), and tokens of the removed key.
//!
//! It prints the requests sent, the answers by status per kind of token, the throughput and the
//! p50/p99 latency, and ASSERTS, exiting non-zero on any violation:
//!
//! - no bad token is ever accepted (200);
//! - no good token is refused outside the store outage (during it, they get 503);
//! - no 5xx other than 503, and 503 only during the outage: between the kill and the first 200
//!   of a request sent after the restart;
//! - no transport error.
//!
//! Options: `--seconds N` (default 30), `--connections N` (default 64), `--max-requests N`
//! (default 10 000 000).

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Extension, Router};
use serde_json::json;
use support::{access_claims, b64, key, mint, mint_json, uuid, JwksServer, TestKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower_cognito::session::{MemoryStore, SessionConfig, SessionStore};
use tower_cognito::{CognitoAuthLayer, TokenUse, Verified, Verifier};

const POOL: &str = "eu-west-1_LoadTest1";
const CLIENT: &str = "load0client0id0000000000";
/// After the layer has fetched a new JWKS, how long before its effect is relied on (the fetch
/// is counted when it reaches the endpoint; the layer stores it a moment later).
const MARGIN: Duration = Duration::from_millis(250);
const COOLDOWN: Duration = Duration::from_millis(500);
const MAX_AGE: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------------
// Kinds of tokens
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Signed by key A: good until the layer has fetched the JWKS without A, bad from then on.
    KeyA,
    /// Signed by key B, sent only once the layer knows B: good.
    KeyB,
    Expired,
    Forged,
    Garbage,
    WrongClient,
    Superseded,
}

/// How a request is judged, from its kind and when it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    /// Key A while it is in the JWKS, key B.
    Good,
    /// Key A between its removal from the JWKS and the layer's fetch of that JWKS: either answer.
    KeyABeingRemoved,
    /// Key A once the layer has fetched the JWKS without it.
    RemovedKey,
    Expired,
    Forged,
    Garbage,
    WrongClient,
    Superseded,
}

impl Class {
    fn label(self) -> &'static str {
        match self {
            Class::Good => "valid (keys A and B)",
            Class::KeyABeingRemoved => "key A, being removed",
            Class::RemovedKey => "key A, removed",
            Class::Expired => "expired",
            Class::Forged => "forged",
            Class::Garbage => "garbage",
            Class::WrongClient => "wrong client",
            Class::Superseded => "superseded",
        }
    }

    const ALL: [Class; 8] = [
        Class::Good,
        Class::KeyABeingRemoved,
        Class::RemovedKey,
        Class::Expired,
        Class::Forged,
        Class::Garbage,
        Class::WrongClient,
        Class::Superseded,
    ];
}

/// Precomputed tokens of every kind.
struct Tokens {
    key_a: Vec<String>,
    key_b: Vec<String>,
    expired: Vec<String>,
    forged: Vec<String>,
    garbage: Vec<String>,
    wrong_client: Vec<String>,
    superseded: Vec<String>,
}

impl Tokens {
    fn pool(&self, kind: Kind) -> &[String] {
        match kind {
            Kind::KeyA => &self.key_a,
            Kind::KeyB => &self.key_b,
            Kind::Expired => &self.expired,
            Kind::Forged => &self.forged,
            Kind::Garbage => &self.garbage,
            Kind::WrongClient => &self.wrong_client,
            Kind::Superseded => &self.superseded,
        }
    }
}

/// xorshift64*: cheap, deterministic per connection.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A valid access token of its own session (its own `origin_jti`), signed by `key`.
fn valid(issuer: &str, key: &TestKey) -> String {
    let mut claims = access_claims(issuer, CLIENT);
    claims["iat"] = json!(support::now() - 10);
    mint(key, &claims)
}

/// Replaces the character at `at` of `token` with another base64url character.
fn flip(token: &str, at: usize) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ASCII")
}

fn make_tokens(issuer: &str, a: &TestKey, b: &TestKey, rng: &mut Rng) -> Tokens {
    let attacker = key(3);
    let key_a: Vec<String> = (0..200).map(|_| valid(issuer, a)).collect();
    let key_b: Vec<String> = (0..200).map(|_| valid(issuer, b)).collect();
    let expired = (0..60)
        .map(|i| {
            let mut claims = access_claims(issuer, CLIENT);
            claims["iat"] = json!(support::now() - 7200);
            claims["exp"] = json!(support::now() - 3600 + i);
            mint(if i % 2 == 0 { a } else { b }, &claims)
        })
        .collect();
    let mut forged = Vec::new();
    for i in 0..40 {
        let genuine = valid(issuer, if i % 2 == 0 { a } else { b });
        let signature_at = genuine.rfind('.').expect("three parts") + 1;
        // A tampered signature (not its last character, whose low bits may be ignored).
        let at = signature_at + 1 + rng.below(genuine.len() - signature_at - 2);
        forged.push(flip(&genuine, at));
        // A tampered payload under the genuine signature.
        let parts: Vec<&str> = genuine.split('.').collect();
        let mut claims = access_claims(issuer, CLIENT);
        claims["username"] = json!("mallory");
        forged.push(format!(
            "{}.{}.{}",
            parts[0],
            b64(claims.to_string()),
            parts[2]
        ));
        // Signed by a key of the attacker's under a real kid, and under a random one.
        let kid = if i % 2 == 0 { &a.kid } else { &b.kid };
        forged.push(mint(
            &attacker.with_kid(kid.clone()),
            &access_claims(issuer, CLIENT),
        ));
        forged.push(mint(
            &attacker.with_kid(uuid()),
            &access_claims(issuer, CLIENT),
        ));
        // alg none, HS256 with the public key bytes as the secret.
        forged.push(format!(
            "{}.{}.",
            b64(json!({"alg": "none", "kid": a.kid}).to_string()),
            b64(access_claims(issuer, CLIENT).to_string())
        ));
        forged.push(mint_json(
            &json!({"alg": "HS256", "kid": b.kid}),
            &access_claims(issuer, CLIENT),
            attacker,
        ));
    }
    let garbage = (0..150)
        .map(|i| {
            let len = 1 + rng.below(300);
            match i % 3 {
                // Three base64url parts of noise.
                0 => (0..3)
                    .map(|_| {
                        (0..1 + len / 3)
                            .map(|_| {
                                const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                                ALPHABET[rng.below(ALPHABET.len())] as char
                            })
                            .collect::<String>()
                    })
                    .collect::<Vec<_>>()
                    .join("."),
                // Any visible ASCII (often not a b64token at all: 400).
                1 => (0..len)
                    .map(|_| (0x21 + rng.below(0x7e - 0x21 + 1) as u8) as char)
                    .collect(),
                // JSON that is not a token header.
                _ => format!(
                    "{}.{}.{}",
                    b64(format!("[{}]", rng.next())),
                    b64("{}"),
                    b64(rng.next().to_be_bytes())
                ),
            }
        })
        .collect();
    let wrong_client = (0..60)
        .map(|i| {
            let claims = access_claims(issuer, "someone-elses-app-client");
            mint(if i % 2 == 0 { a } else { b }, &claims)
        })
        .collect();
    Tokens {
        key_a,
        key_b,
        expired,
        forged,
        garbage,
        wrong_client,
        superseded: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal keep-alive HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

struct Connection {
    addr: std::net::SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    request: Vec<u8>,
}

impl Connection {
    fn new(addr: std::net::SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            buf: Vec::with_capacity(4096),
            request: Vec::with_capacity(4096),
        }
    }

    /// `GET /me` with this bearer token; the status, or an error (then the connection is
    /// dropped and made again for the next request).
    async fn get(&mut self, token: &str) -> std::io::Result<u16> {
        let result = self.exchange(token).await;
        if result.is_err() {
            self.stream = None;
            self.buf.clear();
        }
        result
    }

    async fn exchange(&mut self, token: &str) -> std::io::Result<u16> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected");
        self.request.clear();
        self.request
            .extend_from_slice(b"GET /me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ");
        self.request.extend_from_slice(token.as_bytes());
        self.request.extend_from_slice(b"\r\n\r\n");
        stream.write_all(&self.request).await?;
        read_response(stream, &mut self.buf).await
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.reserve(4096);
    if stream.read_buf(buf).await? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    Ok(())
}

/// Reads one response (Content-Length or chunked body) and returns its status.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        fill(stream, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| invalid("non-UTF-8 head"))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let mut length = None;
    let mut chunked = false;
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| invalid("length"))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            }
        }
    }
    buf.drain(..head_end);
    if chunked {
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                fill(stream, buf).await?;
            };
            let size_text = std::str::from_utf8(&buf[..line_end]).map_err(|_| invalid("chunk"))?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| invalid("chunk size"))?;
            let need = line_end + 2 + size + 2;
            while buf.len() < need {
                fill(stream, buf).await?;
            }
            buf.drain(..need);
            if size == 0 {
                return Ok(status);
            }
        }
    }
    let length = length.unwrap_or(0);
    while buf.len() < length {
        fill(stream, buf).await?;
    }
    buf.drain(..length);
    Ok(status)
}

// ---------------------------------------------------------------------------------------------
// The timeline shared by the controller and the clients
// ---------------------------------------------------------------------------------------------

/// Milliseconds since the start, `u64::MAX` until it happens.
struct Event(AtomicU64);

impl Event {
    fn new() -> Self {
        Self(AtomicU64::new(u64::MAX))
    }
    fn set(&self, start: Instant) {
        self.0
            .store(start.elapsed().as_millis() as u64, Ordering::SeqCst);
    }
    fn ms(&self) -> Option<u64> {
        match self.0.load(Ordering::SeqCst) {
            u64::MAX => None,
            ms => Some(ms),
        }
    }
    fn us(&self) -> Option<u64> {
        self.ms().map(|ms| ms * 1000)
    }
}

struct Timeline {
    b_published: Event,
    /// The layer has fetched the JWKS with B (clients sign with B from MARGIN later).
    b_fetched: Event,
    a_removed: Event,
    /// The layer has fetched the JWKS without A.
    a_gone: Event,
    store_killed: Event,
    store_restarted: Event,
}

/// One request.
#[derive(Clone, Copy)]
struct Record {
    kind: Kind,
    /// 0: transport error.
    status: u16,
    start_us: u32,
    end_us: u32,
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

struct Args {
    seconds: u64,
    connections: usize,
    max_requests: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seconds: 30,
        connections: 64,
        max_requests: 10_000_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--seconds" => args.seconds = value("--seconds")?.max(2),
            "--connections" => args.connections = value("--connections")?.clamp(1, 1024) as usize,
            "--max-requests" => args.max_requests = value("--max-requests")?.max(1),
            // Added by `cargo bench`.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// The session store, and the server behind it when it is one of ours.
enum Store {
    Memory,
    #[cfg(feature = "redis")]
    Redis(support::stores::OwnRedis),
}

async fn make_store() -> (Arc<dyn SessionStore>, Store, String) {
    #[cfg(feature = "redis")]
    {
        let available = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if available {
            let redis = support::stores::OwnRedis::start_persistent().await;
            match tower_cognito::session::RedisStore::connect(&redis.url()).await {
                Ok(store) => {
                    let note = format!(
                        "Redis: a redis-server of this run on 127.0.0.1:{} (appendonly, \
                         appendfsync always), killed and restarted mid-run; REDIS_URL's shared \
                         server is left alone",
                        redis.port()
                    );
                    return (
                        Arc::new(store.with_prefix("load:")),
                        Store::Redis(redis),
                        note,
                    );
                }
                Err(e) => println!("NOTE: cannot use the redis-server started here: {e}"),
            }
        } else {
            println!("NOTE: built with --features redis, but redis-server cannot be started");
        }
    }
    #[cfg(not(feature = "redis"))]
    println!("NOTE: built without --features redis");
    (
        Arc::new(MemoryStore::new(100_000)),
        Store::Memory,
        "MemoryStore (no store outage: any 503 is a violation)".to_owned(),
    )
}

async fn me(Extension(verified): Extension<Verified>) -> String {
    verified.username.clone()
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}\nusage: load [--seconds N] [--connections N] [--max-requests N]");
            return ExitCode::from(2);
        }
    };
    let run = Duration::from_secs(args.seconds);
    let (a, b) = (key(0), key(1));

    // The issuer and its JWKS endpoint, serving key A.
    let jwks = JwksServer::start_with_keys(POOL, &[a]).await;
    let issuer = jwks.issuer();

    // The API.
    #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
    let (store, mut store_server, store_note) = make_store().await;
    let config = support::local_config(&jwks, TokenUse::Access, CLIENT)
        .jwks_cooldown(COOLDOWN)
        .jwks_max_age(MAX_AGE)
        .session_window(SessionConfig::new(store.clone()));
    let verifier = Verifier::new(config).expect("verifier");
    verifier.prefetch_keys().await.expect("prefetch keys");
    let app = Router::new()
        .route("/me", get(me))
        .route_layer(CognitoAuthLayer::new(verifier.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // The tokens; superseded ones from sessions refreshed twice, through the API.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut tokens = make_tokens(&issuer, a, b, &mut rng);
    let mut setup = Connection::new(addr);
    for _ in 0..60 {
        let origin = uuid();
        let t = support::now() - 100;
        let chain: Vec<String> = (0..3)
            .map(|n| {
                let mut claims = access_claims(&issuer, CLIENT);
                claims["origin_jti"] = json!(origin);
                claims["iat"] = json!(t + n);
                mint(a, &claims)
            })
            .collect();
        for token in &chain {
            let status = setup.get(token).await.expect("setup request");
            assert_eq!(status, 200, "setting up a session");
        }
        assert_eq!(setup.get(&chain[0]).await.expect("setup"), 401);
        tokens.superseded.push(chain[0].clone());
    }
    drop(setup);
    let tokens = Arc::new(tokens);

    println!(
        "load: {} s, {} connections, at most {} requests; session store: {store_note}",
        args.seconds, args.connections, args.max_requests
    );

    // The clients.
    let start = Instant::now();
    let timeline = Arc::new(Timeline {
        b_published: Event::new(),
        b_fetched: Event::new(),
        a_removed: Event::new(),
        a_gone: Event::new(),
        store_killed: Event::new(),
        store_restarted: Event::new(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..args.connections)
        .map(|i| {
            let (tokens, timeline, stop, sent) =
                (tokens.clone(), timeline.clone(), stop.clone(), sent.clone());
            let max = args.max_requests;
            tokio::spawn(async move {
                let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9));
                let mut conn = Connection::new(addr);
                let mut records = Vec::new();
                let margin_ms = MARGIN.as_millis() as u64;
                while !stop.load(Ordering::Relaxed) && sent.fetch_add(1, Ordering::Relaxed) < max {
                    let now_ms = start.elapsed().as_millis() as u64;
                    let b_live = timeline
                        .b_fetched
                        .ms()
                        .is_some_and(|t| now_ms >= t + margin_ms);
                    let a_listed = timeline.a_removed.ms().is_none();
                    let kind = match rng.below(100) {
                        // The tokens clients currently hold.
                        0..=39 => {
                            if b_live && (!a_listed || rng.below(2) == 0) {
                                Kind::KeyB
                            } else {
                                Kind::KeyA
                            }
                        }
                        // Tokens signed by A, whatever happened to A.
                        40..=47 => Kind::KeyA,
                        48..=55 => Kind::Expired,
                        56..=67 => Kind::Forged,
                        68..=77 => Kind::Garbage,
                        78..=85 => Kind::WrongClient,
                        _ => Kind::Superseded,
                    };
                    let pool = tokens.pool(kind);
                    let token = &pool[rng.below(pool.len())];
                    let t0 = start.elapsed();
                    let status = conn.get(token).await.unwrap_or(0);
                    let t1 = start.elapsed();
                    records.push(Record {
                        kind,
                        status,
                        start_us: t0.as_micros() as u32,
                        end_us: t1.as_micros() as u32,
                    });
                }
                records
            })
        })
        .collect();

    // Key rotation: publish B; once fetched, clients use it; then remove A.
    let rotation = {
        let (timeline, jwks) = (timeline.clone(), Arc::new(jwks));
        let jwks_for_task = jwks.clone();
        let task = tokio::spawn(async move {
            let jwks = jwks_for_task;
            tokio::time::sleep_until((start + run.mul_f64(0.15)).into()).await;
            let fetches = jwks.fetch_count();
            jwks.set_keys(&[a, b]);
            timeline.b_published.set(start);
            wait_for_fetch(&jwks, fetches).await;
            timeline.b_fetched.set(start);
            let remove_at = (start + run.mul_f64(0.65)).max(Instant::now() + 2 * MARGIN);
            tokio::time::sleep_until(remove_at.into()).await;
            let fetches = jwks.fetch_count();
            jwks.set_keys(&[b]);
            timeline.a_removed.set(start);
            wait_for_fetch(&jwks, fetches).await;
            timeline.a_gone.set(start);
        });
        (task, jwks)
    };

    // The store outage: kill at 40 % of the run, restart 10 % later (1 to 3 s).
    #[cfg(feature = "redis")]
    let outage = match std::mem::replace(&mut store_server, Store::Memory) {
        Store::Redis(mut redis) => {
            let timeline = timeline.clone();
            Some(tokio::spawn(async move {
                tokio::time::sleep_until((start + run.mul_f64(0.40)).into()).await;
                timeline.store_killed.set(start);
                redis.kill();
                let down = run
                    .mul_f64(0.10)
                    .clamp(Duration::from_secs(1), Duration::from_secs(3));
                tokio::time::sleep(down).await;
                redis.restart().await;
                timeline.store_restarted.set(start);
                redis
            }))
        }
        Store::Memory => None,
    };

    tokio::time::sleep_until((start + run).into()).await;
    stop.store(true, Ordering::SeqCst);
    let mut records: Vec<Record> = Vec::new();
    for client in clients {
        records.extend(client.await.expect("client task"));
    }
    let elapsed = start.elapsed();
    let (rotation_task, jwks) = rotation;
    let rotated = tokio::time::timeout(Duration::from_secs(5), rotation_task).await;
    #[cfg(feature = "redis")]
    if let Some(outage) = outage {
        store_server = Store::Redis(outage.await.expect("outage task"));
    }
    server.abort();

    let ok = report(
        &records,
        &timeline,
        elapsed,
        rotated.is_ok(),
        jwks.fetch_count(),
    );
    // Before exiting: kills our redis-server and removes its directory.
    match store_server {
        Store::Memory => {}
        #[cfg(feature = "redis")]
        Store::Redis(redis) => drop(redis),
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Waits until the endpoint has received a fetch beyond `fetches` (the layer's background
/// refresh, every max age under load).
async fn wait_for_fetch(jwks: &JwksServer, fetches: usize) {
    while jwks.fetch_count() <= fetches {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn secs(ms: Option<u64>) -> String {
    ms.map_or("-".to_owned(), |ms| format!("{:.2} s", ms as f64 / 1000.0))
}

/// Judges every request, prints the report, returns whether there was no violation.
fn report(
    records: &[Record],
    timeline: &Timeline,
    elapsed: Duration,
    rotated: bool,
    fetches: usize,
) -> bool {
    // Problems of the run as a whole, and the first requests that broke a rule.
    let mut violations: Vec<String> = Vec::new();
    let mut samples: Vec<String> = Vec::new();
    let margin_us = MARGIN.as_micros() as u64;
    let killed = timeline.store_killed.us();
    let restarted = timeline.store_restarted.us();
    // The layer recovered: the end of the first 200 of a request sent after the restart.
    let recovered = restarted.and_then(|r| {
        records
            .iter()
            .filter(|x| x.status == 200 && u64::from(x.start_us) >= r)
            .map(|x| u64::from(x.end_us))
            .min()
    });
    if killed.is_some() && recovered.is_none() {
        violations.push("the layer never answered 200 again after the store restart".into());
    }
    let a_removed = timeline.a_removed.us();
    let a_gone = timeline.a_gone.us();
    if !rotated || a_gone.is_none() {
        violations.push("the key rotation did not complete within the run".into());
    }

    let in_outage = |x: &Record| match (killed, recovered) {
        (Some(k), Some(r)) => u64::from(x.end_us) >= k && u64::from(x.start_us) <= r,
        (Some(k), None) => u64::from(x.end_us) >= k,
        _ => false,
    };
    let class_of = |x: &Record| match x.kind {
        Kind::KeyA => match (a_removed, a_gone) {
            (Some(_), Some(gone)) if u64::from(x.start_us) >= gone + margin_us => Class::RemovedKey,
            (Some(removed), _) if u64::from(x.end_us) >= removed => Class::KeyABeingRemoved,
            _ => Class::Good,
        },
        Kind::KeyB => Class::Good,
        Kind::Expired => Class::Expired,
        Kind::Forged => Class::Forged,
        Kind::Garbage => Class::Garbage,
        Kind::WrongClient => Class::WrongClient,
        Kind::Superseded => Class::Superseded,
    };

    // Counts per class and status; violations.
    const STATUSES: [u16; 5] = [200, 400, 401, 503, 0];
    let mut table = [[0usize; 6]; 8];
    let (mut good_503, mut accepted_bad, mut refused_good, mut stray_503, mut other_5xx) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut transport = 0usize;
    let mut violation_count = 0usize;
    let mut a_accepted_in_transition = 0usize;
    for x in records {
        let class = class_of(x);
        let row = Class::ALL.iter().position(|c| *c == class).expect("class");
        let col = STATUSES.iter().position(|s| *s == x.status).unwrap_or(5);
        table[row][col] += 1;
        let outage = in_outage(x);
        let fine = match (class, x.status) {
            (_, 0) => {
                transport += 1;
                false
            }
            (Class::Good, 200) => true,
            (Class::Good, 503) if outage => {
                good_503 += 1;
                true
            }
            (Class::Good, _) => {
                refused_good += 1;
                false
            }
            (Class::KeyABeingRemoved, 200) => {
                a_accepted_in_transition += 1;
                true
            }
            (Class::KeyABeingRemoved, 401) => true,
            (Class::KeyABeingRemoved | Class::Superseded, 503) if outage => true,
            (Class::Garbage, 400 | 401) => true,
            (_, 401) => true,
            (_, 200) => {
                accepted_bad += 1;
                false
            }
            (_, 503) => {
                stray_503 += 1;
                false
            }
            (_, s) if s >= 500 => {
                other_5xx += 1;
                false
            }
            _ => false,
        };
        if !fine {
            violation_count += 1;
        }
        if !fine && samples.len() < 30 {
            samples.push(format!(
                "{} -> {} at {:.3} s (took {:.1} ms){}",
                class.label(),
                x.status,
                f64::from(x.start_us) / 1e6,
                f64::from(x.end_us - x.start_us) / 1000.0,
                if outage { ", during the outage" } else { "" }
            ));
        }
    }

    // Latencies.
    let mut all: Vec<u32> = records.iter().map(|x| x.end_us - x.start_us).collect();
    all.sort_unstable();
    let mut good: Vec<u32> = records
        .iter()
        .filter(|x| class_of(x) == Class::Good && x.status == 200)
        .map(|x| x.end_us - x.start_us)
        .collect();
    good.sort_unstable();
    let mut bad: Vec<u32> = records
        .iter()
        .filter(|x| !matches!(class_of(x), Class::Good | Class::KeyABeingRemoved))
        .filter(|x| !in_outage(x))
        .map(|x| x.end_us - x.start_us)
        .collect();
    bad.sort_unstable();

    println!(
        "timeline: key B published {}, fetched by the layer {}; store killed {}, restarted {}, \
         layer answering 200 again {}; key A removed {}, fetched without it {}; JWKS requests {}",
        secs(timeline.b_published.ms()),
        secs(timeline.b_fetched.ms()),
        secs(timeline.store_killed.ms()),
        secs(timeline.store_restarted.ms()),
        secs(recovered.map(|us| us / 1000)),
        secs(timeline.a_removed.ms()),
        secs(timeline.a_gone.ms()),
        fetches,
    );
    let total = records.len();
    println!(
        "requests: {total} in {:.2} s = {:.0} requests/s; latency p50 {:.2} ms, p99 {:.2} ms, max \
         {:.2} ms (accepted: p50 {:.2} ms, p99 {:.2} ms; refused outside the outage: p50 {:.2} \
         ms, p99 {:.2} ms)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        percentile(&all, 1.0),
        percentile(&good, 0.5),
        percentile(&good, 0.99),
        percentile(&bad, 0.5),
        percentile(&bad, 0.99),
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "token kind", "sent", "200", "400", "401", "503", "io error", "other"
    );
    for (row, class) in Class::ALL.iter().enumerate() {
        let counts = table[row];
        let sent: usize = counts.iter().sum();
        println!(
            "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            class.label(),
            sent,
            counts[0],
            counts[1],
            counts[2],
            counts[3],
            counts[4],
            counts[5]
        );
    }
    println!(
        "checks: accepted bad tokens {accepted_bad}; good tokens refused outside the outage \
         {refused_good}; good tokens answered 503 during the outage {good_503}; 503 outside the \
         outage {stray_503}; other 5xx {other_5xx}; transport errors {transport}; key-A tokens \
         accepted while A was being removed {a_accepted_in_transition}"
    );
    let total_violations = violations.len() + violation_count;
    if total_violations == 0 {
        println!("RESULT: ok, no violation");
        true
    } else {
        println!(
            "RESULT: {total_violations} violation(s): {} of the run, {violation_count} requests \
             breaking a rule (the first {} listed)",
            violations.len(),
            samples.len()
        );
        violations.extend(samples);
        for v in &violations {
            println!("  {v}");
        }
        false
    }
}
