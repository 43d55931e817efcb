#![allow(dead_code)]
//! Test issuer shared by the integration tests (`crate::support`).
//!
//! Nothing here mocks the crate: [`JwksServer`] is a real HTTP/1.1 server on
//! `127.0.0.1` serving a JWKS document, and tokens are signed with real
//! RSA-2048 keys ([`TestKey`]) generated with aws-lc-rs.
//!
//! Typical use:
//!
//! ```ignore
//! let server = support::JwksServer::start("us-east-1_TestPool").await;
//! server.set_keys(&[support::key(0)]);
//! let mut claims = support::access_claims(&server.issuer(), "client-abc");
//! claims["exp"] = json!(support::now() - 10);
//! let token = support::mint(support::key(0), &claims);
//! let config = support::local_config(&server, TokenUse::Access, "client-abc");
//! ```
//!
//! With the `redis` or `postgres` feature, [`stores`] connects session stores to the shared
//! test servers.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use tower_cognito::{ClientIds, CognitoAuthLayer, CognitoConfig, TokenUse, UserPool, Verifier};

pub mod model;

#[cfg(feature = "postgres")]
pub mod certs;

#[cfg(any(feature = "redis", feature = "postgres"))]
pub mod stores;

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

/// Number of cached keys returned by [`keys`].
pub const KEY_COUNT: usize = 4;

/// An RSA-2048 signing key with its `kid` and public JWK components.
pub struct TestKey {
    /// Key id, put in the JWK and in minted token headers.
    pub kid: String,
    /// Public modulus, base64url without padding (JWK `n`).
    pub n: String,
    /// Public exponent, base64url without padding (JWK `e`, normally `AQAB`).
    pub e: String,
    /// jsonwebtoken signing key (PKCS#1 DER inside).
    pub encoding_key: EncodingKey,
    /// The private key as PKCS#8 v1 DER.
    pub pkcs8_der: Vec<u8>,
    key_pair: KeyPair,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TestKey {
    /// Generates a fresh RSA-2048 key (slow-ish: prefer the cached [`keys`]).
    pub fn generate(kid: impl Into<String>) -> TestKey {
        let key_pair = KeyPair::generate(KeySize::Rsa2048).expect("generate RSA-2048 key");
        let pkcs8 = key_pair.as_der().expect("export PKCS#8");
        Self::from_parts(kid.into(), pkcs8.as_ref().to_vec(), key_pair)
    }

    /// Loads a key from PKCS#8 DER (e.g. [`TestKey::pkcs8_der`] of another key).
    pub fn from_pkcs8(kid: impl Into<String>, pkcs8_der: &[u8]) -> TestKey {
        let key_pair = KeyPair::from_pkcs8(pkcs8_der).expect("parse PKCS#8 RSA key");
        Self::from_parts(kid.into(), pkcs8_der.to_vec(), key_pair)
    }

    /// The same key material under a different `kid`.
    pub fn with_kid(&self, kid: impl Into<String>) -> TestKey {
        Self::from_pkcs8(kid, &self.pkcs8_der)
    }

    fn from_parts(kid: String, pkcs8_der: Vec<u8>, key_pair: KeyPair) -> TestKey {
        let pkcs1 = pkcs1_from_pkcs8(&pkcs8_der);
        let public = PublicKeyComponents::<Vec<u8>>::from(key_pair.public_key());
        TestKey {
            kid,
            n: b64(&public.n),
            e: b64(&public.e),
            encoding_key: EncodingKey::from_rsa_der(pkcs1),
            pkcs8_der,
            key_pair,
        }
    }

    /// The public JWK as Cognito publishes it:
    /// `{"kty":"RSA","kid":..,"alg":"RS256","use":"sig","n":..,"e":..}`.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "use": "sig",
            "n": self.n,
            "e": self.e,
        })
    }

    /// A jsonwebtoken verification key built from the public components.
    pub fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_rsa_components(&self.n, &self.e).expect("decoding key from n/e")
    }

    /// Raw RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature over `msg`.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let mut sig = vec![0u8; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
            .expect("RSA sign");
        sig
    }
}

/// The cached keys (kids `test-key-0` .. `test-key-3`), generated once per
/// test binary, in parallel.
pub fn keys() -> &'static [TestKey] {
    static KEYS: OnceLock<Vec<TestKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..KEY_COUNT)
                .map(|i| s.spawn(move || TestKey::generate(format!("test-key-{i}"))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("key generation thread"))
                .collect()
        })
    })
}

/// Cached key number `i` (`0..KEY_COUNT`).
pub fn key(i: usize) -> &'static TestKey {
    &keys()[i]
}

/// Extracts the PKCS#1 `RSAPrivateKey` from a PKCS#8 `PrivateKeyInfo`
/// (SEQUENCE { INTEGER version, SEQUENCE algorithm, OCTET STRING key, .. }).
fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> &[u8] {
    let (tag, info, _) = der_tlv(pkcs8);
    assert_eq!(tag, 0x30, "PKCS#8: expected SEQUENCE");
    let (tag, _version, rest) = der_tlv(info);
    assert_eq!(tag, 0x02, "PKCS#8: expected INTEGER version");
    let (tag, _alg, rest) = der_tlv(rest);
    assert_eq!(tag, 0x30, "PKCS#8: expected AlgorithmIdentifier");
    let (tag, key, _) = der_tlv(rest);
    assert_eq!(tag, 0x04, "PKCS#8: expected OCTET STRING");
    key
}

/// Splits one DER TLV off `input`: (tag, contents, rest).
fn der_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let first = input[1] as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        let len = input[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, 2 + n)
    };
    (tag, &input[header..header + len], &input[header + len..])
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

/// A fixed, uuid-like `sub` used by the claim helpers.
pub const SUB: &str = "7d8ca528-4931-4254-9273-ea5ee853f271";

/// Current unix time in seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A fresh uuid-like string, unique within the test binary (deterministic
/// sequence, so failures are reproducible).
pub fn uuid() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// A name unique to this test run (process, time) and call, ending in `what`: session keys,
/// Redis key prefixes, table names. The unique part comes first, so a table name cut to its
/// maximum length stays unique.
pub fn unique(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!(
        "{}_{}_{}_{what}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// base64url without padding.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `claims` with RS256; header is exactly `{"alg":"RS256","kid":<key.kid>}` (no `typ`).
pub fn mint(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.typ = None;
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding_key).expect("mint token")
}

/// Signs arbitrary header/payload bytes with RS256 using `key`:
/// `b64(header_json).b64(payload_json).b64(sig)`. The header is NOT
/// inspected, so it can lie about `alg`/`kid` or be invalid JSON.
pub fn mint_raw(header_json: &str, payload_json: &str, key: &TestKey) -> String {
    let signing_input = format!("{}.{}", b64(header_json), b64(payload_json));
    let sig = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(sig))
}

/// [`mint_raw`] with JSON values for header and payload.
pub fn mint_json(header: &Value, payload: &Value, key: &TestKey) -> String {
    mint_raw(&header.to_string(), &payload.to_string(), key)
}

/// Realistic Cognito access-token claims, issued and authenticated now,
/// expiring in one hour. Mutate the returned value as needed.
pub fn access_claims(issuer: &str, client_id: &str) -> Value {
    let now = now();
    json!({
        "sub": SUB,
        "iss": issuer,
        "client_id": client_id,
        "origin_jti": uuid(),
        "event_id": uuid(),
        "token_use": "access",
        "scope": "openid profile aws.cognito.signin.user.admin",
        "auth_time": now,
        "exp": now + 3600,
        "iat": now,
        "jti": uuid(),
        "username": "alice",
        "version": 2,
    })
}

/// Realistic Cognito ID-token claims (`aud` = `client_id`), issued and
/// authenticated now, expiring in one hour. Mutate the returned value as needed.
pub fn id_claims(issuer: &str, client_id: &str) -> Value {
    let now = now();
    json!({
        "sub": SUB,
        "email_verified": true,
        "iss": issuer,
        "cognito:username": "alice",
        "origin_jti": uuid(),
        "aud": client_id,
        "event_id": uuid(),
        "token_use": "id",
        "auth_time": now,
        "exp": now + 3600,
        "iat": now,
        "jti": uuid(),
        "email": "alice@example.com",
        "custom:tenant": "acme",
    })
}

/// The tokens of one sign-in: all share one `origin_jti` and are minted with [`key`]`(0)`.
/// The original token has `iat` T, the one refreshed `n` times `iat` T+n.
pub struct SignIn {
    /// The sign-in's `origin_jti`.
    pub origin_jti: String,
    /// The `iss` of its tokens.
    pub issuer: String,
    /// The app client (`client_id`) of its tokens.
    pub client: String,
    /// The original token's `iat` (and every token's `auth_time`).
    pub t: i64,
}

impl SignIn {
    /// A fresh sign-in at the server's issuer, a minute ago (so that a few refreshes are not
    /// "issued in the future").
    pub fn new(server: &JwksServer, client: &str) -> Self {
        Self {
            origin_jti: uuid(),
            issuer: server.issuer(),
            client: client.to_owned(),
            t: now() - 60,
        }
    }

    /// The token refreshed `n` times from the original (`iat` T+n).
    pub fn token(&self, n: i64) -> String {
        let mut claims = access_claims(&self.issuer, &self.client);
        claims["origin_jti"] = json!(self.origin_jti);
        claims["auth_time"] = json!(self.t);
        claims["iat"] = json!(self.t + n);
        mint(key(0), &claims)
    }

    /// The default session key of this sign-in (`o:{origin_jti}`).
    pub fn session_key(&self) -> String {
        format!("o:{}", self.origin_jti)
    }
}

// ---------------------------------------------------------------------------
// Configs
// ---------------------------------------------------------------------------

/// A config taking its keys from the local JWKS server (plain http on loopback), but
/// accepting only the pool's own Cognito issuers (no `issuer_override`).
pub fn pool_issuer_config(
    server: &JwksServer,
    token_use: TokenUse,
    clients: ClientIds,
) -> CognitoConfig {
    CognitoConfig::new(
        UserPool::parse(server.pool_id()).expect("pool id"),
        token_use,
        clients,
    )
    .jwks_url(server.url())
    .allow_http_on_loopback(true)
}

/// A config for the local JWKS server: its keys (plain http on loopback) and its issuer.
pub fn local_config_with(
    server: &JwksServer,
    token_use: TokenUse,
    clients: ClientIds,
) -> CognitoConfig {
    pool_issuer_config(server, token_use, clients).issuer_override(server.issuer())
}

/// [`local_config_with`] for the one app client `client`.
pub fn local_config(server: &JwksServer, token_use: TokenUse, client: &str) -> CognitoConfig {
    local_config_with(server, token_use, ClientIds::one(client))
}

// ---------------------------------------------------------------------------
// API servers
// ---------------------------------------------------------------------------

/// The service of an [`ApiServer`]: the real layer in front of a handler.
pub type Api = BoxCloneSyncService<Request<String>, Response<String>, Infallible>;

/// One API server: a verifier behind the real [`CognitoAuthLayer`], in front of a handler.
#[derive(Clone)]
pub struct ApiServer {
    /// The verifier the layer uses (to revoke sessions, look at its caches).
    pub verifier: Verifier,
    /// The layer in front of the handler.
    pub api: Api,
}

impl ApiServer {
    /// `verifier` behind the layer, in front of `handler`.
    pub fn new<H, F>(verifier: Verifier, handler: H) -> Self
    where
        H: Fn(Request<String>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Result<Response<String>, Infallible>> + Send + 'static,
    {
        let api = ServiceBuilder::new()
            .layer(CognitoAuthLayer::new(verifier.clone()))
            .service(tower::service_fn(handler));
        Self {
            verifier,
            api: BoxCloneSyncService::new(api),
        }
    }

    /// Sends `GET uri` with `Authorization: Bearer {token}`.
    pub async fn get(&self, uri: &str, token: &str) -> Response<String> {
        let request = Request::builder()
            .uri(uri)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(String::new())
            .expect("request");
        self.api.clone().oneshot(request).await.expect("infallible")
    }
}

/// The `WWW-Authenticate` challenge of a response, if any.
pub fn challenge<B>(response: &Response<B>) -> Option<String> {
    response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().expect("ASCII challenge").to_owned())
}

// ---------------------------------------------------------------------------
// JWKS server
// ---------------------------------------------------------------------------

struct ServeState {
    /// JWK objects served as `{"keys":[..]}`.
    keys: Vec<Value>,
    status: StatusCode,
    raw: Option<(Vec<u8>, String)>,
    delay: Duration,
}

struct Shared {
    jwks_path: String,
    state: Mutex<ServeState>,
    fetches: AtomicUsize,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, ServeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Run {
    Serving {
        shutdown: oneshot::Sender<()>,
        task: JoinHandle<()>,
    },
    /// Port reserved by a bound, non-listening socket: connections are refused.
    Stopped { reserved: TcpSocket },
    /// Transitional (only observable if a stop/start future is dropped midway).
    Empty,
}

/// A real JWKS endpoint on `127.0.0.1`, serving
/// `GET /{pool_id}/.well-known/jwks.json`, controllable from the test.
///
/// It runs in the tokio runtime it was started in. The port stays the same
/// across [`stop`](Self::stop) / [`start_again`](Self::start_again); while
/// stopped, connections are refused. Response settings are read when a
/// request arrives (before any delay).
pub struct JwksServer {
    addr: SocketAddr,
    pool_id: String,
    shared: Arc<Shared>,
    run: Mutex<Run>,
}

impl JwksServer {
    /// Starts serving (an empty key set) on an ephemeral port.
    pub async fn start(pool_id: &str) -> JwksServer {
        let server = Self::start_stopped(pool_id);
        server.start_again().await;
        server
    }

    /// Starts serving `keys` on an ephemeral port.
    pub async fn start_with_keys(pool_id: &str, keys: &[&TestKey]) -> JwksServer {
        let server = Self::start_stopped(pool_id);
        server.set_keys(keys);
        server.start_again().await;
        server
    }

    /// Reserves a port without serving (connections are refused until
    /// [`start_again`](Self::start_again)). Serves an empty key set once started.
    pub fn start_stopped(pool_id: &str) -> JwksServer {
        let reserved = reserve(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("reserve port");
        let addr = reserved.local_addr().expect("local addr");
        JwksServer {
            addr,
            pool_id: pool_id.to_owned(),
            shared: Arc::new(Shared {
                jwks_path: format!("/{pool_id}/.well-known/jwks.json"),
                state: Mutex::new(ServeState {
                    keys: Vec::new(),
                    status: StatusCode::OK,
                    raw: None,
                    delay: Duration::ZERO,
                }),
                fetches: AtomicUsize::new(0),
            }),
            run: Mutex::new(Run::Stopped { reserved }),
        }
    }

    /// The bound address (`127.0.0.1:port`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The pool id given at start.
    pub fn pool_id(&self) -> &str {
        &self.pool_id
    }

    /// `http://127.0.0.1:{port}/{pool_id}`, the token issuer (`iss`).
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}/{}", self.port(), self.pool_id)
    }

    /// `{issuer}/.well-known/jwks.json`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.port(), self.shared.jwks_path)
    }

    /// Serves exactly these keys (their [`TestKey::jwk`]). Clears any raw body.
    pub fn set_keys(&self, keys: &[&TestKey]) {
        self.set_jwks(keys.iter().map(|k| k.jwk()).collect());
    }

    /// Serves arbitrary JWK objects as `{"keys":[..]}`. Clears any raw body.
    pub fn set_jwks(&self, jwks: Vec<Value>) {
        let mut state = self.shared.state();
        state.keys = jwks;
        state.raw = None;
    }

    /// Serves `body` verbatim with this `Content-Type` instead of the key set
    /// (until [`clear_raw_body`](Self::clear_raw_body) or a `set_keys`).
    pub fn set_raw_body(&self, body: impl Into<Vec<u8>>, content_type: &str) {
        self.shared.state().raw = Some((body.into(), content_type.to_owned()));
    }

    /// Goes back to serving the key set.
    pub fn clear_raw_body(&self) {
        self.shared.state().raw = None;
    }

    /// Responds with this status (the key set/raw body is still the body).
    /// `StatusCode::OK` restores normal behaviour.
    pub fn set_status(&self, status: StatusCode) {
        self.shared.state().status = status;
    }

    /// Delays each JWKS response by `delay` (`Duration::ZERO` to disable).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.state().delay = delay;
    }

    /// Number of requests received on the JWKS path (any status, counted on arrival).
    pub fn fetch_count(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    /// Resets [`fetch_count`](Self::fetch_count) to zero.
    pub fn reset_fetch_count(&self) {
        self.shared.fetches.store(0, Ordering::SeqCst);
    }

    /// Polls until at least `at_least` JWKS requests arrived; fails the test after `deadline`.
    pub async fn wait_for_fetches(&self, at_least: usize, deadline: Duration) {
        let start = std::time::Instant::now();
        while self.fetch_count() < at_least {
            assert!(
                start.elapsed() < deadline,
                "waited {deadline:?} for {at_least} JWKS fetches, saw {}",
                self.fetch_count()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether the server is currently accepting connections.
    pub fn is_running(&self) -> bool {
        matches!(*self.lock_run(), Run::Serving { .. })
    }

    /// Stops serving: closes the listener and aborts open connections
    /// (including in-flight delayed responses); the port stays reserved and
    /// refuses connections. No-op if already stopped.
    pub async fn stop(&self) {
        let run = std::mem::replace(&mut *self.lock_run(), Run::Empty);
        let run = match run {
            Run::Serving { shutdown, task } => {
                let _ = shutdown.send(());
                let _ = task.await;
                Run::Stopped {
                    reserved: reserve_retrying(self.addr).await,
                }
            }
            other => other,
        };
        *self.lock_run() = run;
    }

    /// Starts serving again on the same port. No-op if already running.
    pub async fn start_again(&self) {
        let run = std::mem::replace(&mut *self.lock_run(), Run::Empty);
        let socket = match run {
            Run::Serving { .. } => {
                *self.lock_run() = run;
                return;
            }
            Run::Stopped { reserved } => reserved,
            Run::Empty => reserve_retrying(self.addr).await,
        };
        let listener = socket.listen(1024).expect("listen on reserved port");
        let (shutdown, shutdown_rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, self.shared.clone(), shutdown_rx));
        *self.lock_run() = Run::Serving { shutdown, task };
    }

    fn lock_run(&self) -> MutexGuard<'_, Run> {
        self.run.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        if let Run::Serving { task, .. } = &*self.lock_run() {
            task.abort();
        }
    }
}

/// A socket bound to `addr` (SO_REUSEADDR) but not listening.
fn reserve(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

async fn reserve_retrying(addr: SocketAddr) -> TcpSocket {
    let mut attempt = 0;
    loop {
        match reserve(addr) {
            Ok(socket) => return socket,
            Err(_) if attempt < 100 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot re-bind {addr}: {e}"),
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: oneshot::Receiver<()>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle(shared.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.shutdown().await;
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != shared.jwks_path {
        return Ok(response(
            StatusCode::NOT_FOUND,
            b"not found".to_vec(),
            "text/plain",
        ));
    }
    shared.fetches.fetch_add(1, Ordering::SeqCst);
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(response(
            StatusCode::METHOD_NOT_ALLOWED,
            Vec::new(),
            "text/plain",
        ));
    }
    let (status, body, content_type, delay) = {
        let state = shared.state();
        let (body, content_type) = match &state.raw {
            Some((body, ct)) => (body.clone(), ct.clone()),
            None => (
                serde_json::to_vec(&json!({ "keys": state.keys })).expect("serialize jwks"),
                "application/json".to_owned(),
            ),
        };
        (state.status, body, content_type, state.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    Ok(response(status, body, &content_type))
}

fn response(status: StatusCode, body: Vec<u8>, content_type: &str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        res.headers_mut().insert(CONTENT_TYPE, ct);
    }
    res
}

// ---------------------------------------------------------------------------
// Minimal HTTP client (for poking the server directly)
// ---------------------------------------------------------------------------

/// A response read by [`http_get`].
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// First header value named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Body parsed as JSON (panics if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("response body is JSON")
    }
}

/// One `GET` over a fresh HTTP/1.1 connection (`Connection: close`) to an
/// `http://host:port/path` URL. Errors if the connection fails.
pub async fn http_get(url: &str) -> std::io::Result<RawResponse> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// URLs"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(authority).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;

    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("non-UTF-8 head"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(RawResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}
