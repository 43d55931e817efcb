#![allow(dead_code)]
//! Test issuer shared by the integration tests (`crate::support`).
//!
//! Nothing here mocks the crate: [`JwksServer`] is the local Cognito of
//! `tower-cognito-testing` (a real HTTP/1.1 server on `127.0.0.1`), seen through the JWKS
//! knobs these tests turn, and tokens are signed with real RSA-2048 keys ([`TestKey`], over
//! the test kit's [`SigningKey`]). [`JwksServer::cognito`] reaches the rest of it (hosted UI,
//! token endpoint, refresh-token rotation).
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
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hyper::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use tower_cognito::{
    AuthError, ClientIds, CognitoAuthLayer, CognitoConfig, TokenUse, UserPool, Verifier,
};
use tower_cognito_testing::{Jwks, LocalCognito, Options, SigningKey};

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

/// An RSA-2048 signing key with its `kid` and public JWK components: the test kit's
/// [`SigningKey`] plus what jsonwebtoken needs.
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
    signing: SigningKey,
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
        Self::from_signing(SigningKey::generate().with_kid(kid))
    }

    /// Loads a key from PKCS#8 DER (e.g. [`TestKey::pkcs8_der`] of another key).
    pub fn from_pkcs8(kid: impl Into<String>, pkcs8_der: &[u8]) -> TestKey {
        Self::from_signing(SigningKey::from_pkcs8(kid, pkcs8_der).expect("parse PKCS#8 RSA key"))
    }

    /// The same key material under a different `kid`.
    pub fn with_kid(&self, kid: impl Into<String>) -> TestKey {
        Self::from_signing(self.signing.with_kid(kid))
    }

    fn from_signing(signing: SigningKey) -> TestKey {
        let pkcs8_der = signing.pkcs8_der();
        let jwk = signing.jwk();
        let member = |name: &str| jwk[name].as_str().expect("JWK member").to_owned();
        TestKey {
            kid: signing.kid().to_owned(),
            n: member("n"),
            e: member("e"),
            encoding_key: EncodingKey::from_rsa_der(pkcs1_from_pkcs8(&pkcs8_der)),
            pkcs8_der,
            signing,
        }
    }

    /// The test kit's key (to give a [`LocalCognito`] as its signing key, or to publish).
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The public JWK as Cognito publishes it:
    /// `{"kty":"RSA","kid":..,"alg":"RS256","use":"sig","n":..,"e":..}`.
    pub fn jwk(&self) -> Value {
        self.signing.jwk()
    }

    /// A jsonwebtoken verification key built from the public components.
    pub fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_rsa_components(&self.n, &self.e).expect("decoding key from n/e")
    }

    /// Raw RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature over `msg`.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.signing.sign(msg)
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

    /// `GET /` with `token`, read as the store-fault tests read it; a request that takes longer
    /// than `hang_guard` fails the test (it hangs).
    pub async fn answer(&self, token: &str, hang_guard: Duration) -> Answer {
        let start = std::time::Instant::now();
        let response = tokio::time::timeout(hang_guard, self.get("/", token))
            .await
            .unwrap_or_else(|_| panic!("no answer after {hang_guard:?}: the request hangs"));
        Answer {
            status: response.status(),
            challenge: challenge(&response),
            error: response.extensions().get::<AuthError>().cloned(),
            took: start.elapsed(),
        }
    }
}

/// One answer of the layer: its status, challenge, typed error and how long it took.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub challenge: Option<String>,
    pub error: Option<AuthError>,
    pub took: Duration,
}

impl Answer {
    /// 503 because of the store: no challenge (our outage is not the client's fault).
    #[track_caller]
    pub fn assert_store_unavailable(&self) {
        assert_eq!(self.status, StatusCode::SERVICE_UNAVAILABLE, "{self:?}");
        assert_eq!(self.challenge, None, "{self:?}");
        assert_eq!(self.error, Some(AuthError::StoreUnavailable), "{self:?}");
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

/// The local Cognito of `tower-cognito-testing`, as the JWKS endpoint of these tests:
/// `GET /{pool_id}/.well-known/jwks.json` on `127.0.0.1`, controllable from the test.
///
/// It publishes only the keys a test gives it (none at first), and signs its own tokens
/// ([`JwksServer::cognito`]) with the cached [`key`]`(0)` (access) and [`key`]`(1)` (id), so no
/// key is generated per server. It runs in the tokio runtime it was started in. The port
/// stays the same across [`stop`](Self::stop) / [`start_again`](Self::start_again); while
/// stopped, connections are refused. Response settings are read when a request arrives
/// (before any delay).
pub struct JwksServer {
    cognito: LocalCognito,
    /// The key set [`clear_raw_body`](Self::clear_raw_body) goes back to.
    keys: Mutex<Vec<Value>>,
}

impl JwksServer {
    fn options(pool_id: &str) -> Options {
        Options::new()
            .pool_id(pool_id)
            .signing_keys(key(0).signing_key().clone(), key(1).signing_key().clone())
            .jwks(Jwks::Keys(Vec::new()))
    }

    fn wrap(cognito: LocalCognito) -> JwksServer {
        JwksServer {
            cognito,
            keys: Mutex::new(Vec::new()),
        }
    }

    /// Starts serving (an empty key set) on an ephemeral port.
    pub async fn start(pool_id: &str) -> JwksServer {
        Self::wrap(LocalCognito::start_with(Self::options(pool_id)).await)
    }

    /// Starts serving `keys` on an ephemeral port.
    pub async fn start_with_keys(pool_id: &str, keys: &[&TestKey]) -> JwksServer {
        let server = Self::start(pool_id).await;
        server.set_keys(keys);
        server
    }

    /// Reserves a port without serving (connections are refused until
    /// [`start_again`](Self::start_again)). Serves an empty key set once started.
    pub fn start_stopped(pool_id: &str) -> JwksServer {
        Self::wrap(LocalCognito::start_stopped_with(Self::options(pool_id)))
    }

    /// The whole local Cognito behind this endpoint.
    pub fn cognito(&self) -> &LocalCognito {
        &self.cognito
    }

    /// The bound address (`127.0.0.1:port`).
    pub fn addr(&self) -> SocketAddr {
        self.cognito.addr()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// The pool id given at start.
    pub fn pool_id(&self) -> &str {
        self.cognito.pool_id()
    }

    /// `http://127.0.0.1:{port}/{pool_id}`, the token issuer (`iss`).
    pub fn issuer(&self) -> String {
        self.cognito.issuer()
    }

    /// `{issuer}/.well-known/jwks.json`.
    pub fn url(&self) -> String {
        self.cognito.jwks_url()
    }

    /// Serves exactly these keys (their [`TestKey::jwk`]). Clears any raw body.
    pub fn set_keys(&self, keys: &[&TestKey]) {
        self.set_jwks(keys.iter().map(|k| k.jwk()).collect());
    }

    /// Serves arbitrary JWK objects as `{"keys":[..]}`. Clears any raw body.
    pub fn set_jwks(&self, jwks: Vec<Value>) {
        *lock(&self.keys) = jwks.clone();
        self.cognito.set_jwks(Jwks::Keys(jwks));
    }

    /// Serves `body` verbatim with this `Content-Type` instead of the key set
    /// (until [`clear_raw_body`](Self::clear_raw_body) or a `set_keys`).
    pub fn set_raw_body(&self, body: impl Into<Vec<u8>>, content_type: &str) {
        self.cognito.set_jwks(Jwks::raw(content_type, body));
    }

    /// Goes back to serving the key set.
    pub fn clear_raw_body(&self) {
        let keys = lock(&self.keys).clone();
        self.cognito.set_jwks(Jwks::Keys(keys));
    }

    /// Responds with this status (the key set/raw body is still the body).
    /// `StatusCode::OK` restores normal behaviour.
    pub fn set_status(&self, status: StatusCode) {
        self.cognito.set_jwks_status(status.as_u16());
    }

    /// Delays each JWKS response by `delay` (`Duration::ZERO` to disable).
    pub fn set_delay(&self, delay: Duration) {
        self.cognito.set_jwks_delay(delay);
    }

    /// Number of requests received on the JWKS path (any status, counted on arrival).
    pub fn fetch_count(&self) -> usize {
        usize::try_from(self.cognito.counts().jwks_fetches).expect("a count fits")
    }

    /// Resets [`fetch_count`](Self::fetch_count) to zero (with every other count of the
    /// local Cognito).
    pub fn reset_fetch_count(&self) {
        self.cognito.reset_counts();
    }

    /// Waits until at least `at_least` JWKS requests arrived; fails the test after `deadline`.
    pub async fn wait_for_fetches(&self, at_least: usize, deadline: Duration) {
        let wanted = u64::try_from(at_least).expect("a count fits");
        let seen = self.cognito.wait_for_jwks_fetches(wanted, deadline).await;
        assert!(
            seen >= wanted,
            "waited {deadline:?} for {at_least} JWKS fetches, saw {seen}"
        );
    }

    /// Whether the server is currently accepting connections.
    pub fn is_running(&self) -> bool {
        self.cognito.is_running()
    }

    /// Stops serving: closes the listener and aborts open connections
    /// (including in-flight delayed responses); the port stays reserved and
    /// refuses connections. No-op if already stopped.
    pub async fn stop(&self) {
        self.cognito.stop().await;
    }

    /// Starts serving again on the same port. No-op if already running.
    pub async fn start_again(&self) {
        self.cognito.start_again().await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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
