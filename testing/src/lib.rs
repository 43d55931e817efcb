//! A local AWS Cognito for tests and demos: a loopback HTTP server with a user pool's JWKS,
//! the hosted-UI `authorize` and `token` endpoints, token revocation and the parts of the
//! JSON API (`GetTokensFromRefreshToken`, `InitiateAuth` `REFRESH_TOKEN_AUTH`, `RevokeToken`)
//! that refresh tokens go through, with **refresh-token rotation** and its retry grace period,
//! which no emulator (moto, cognito-local) reproduces.
//!
//! Tokens are RS256 JWTs shaped like Cognito's (access tokens carry `client_id`, `origin_jti`,
//! `token_use: "access"`, no `aud`; id tokens carry `aud`, `cognito:username`, `email`), signed
//! with two keys (one for access, one for id tokens) published at [`LocalCognito::jwks_url`].
//! The issuer is `{origin}/{pool_id}` on `http://127.0.0.1:PORT`, so a verifier under test must
//! allow plain HTTP for this issuer.
//!
//! # Rotation model
//!
//! Every sign-in starts a *family* (its `origin_jti`), which expires `refresh_ttl` after the
//! sign-in: every refresh token of it lives only for the remaining lifetime of the original.
//! With rotation on, a refresh with an active token returns a successor and marks the token
//! rotated. A rotated token used again within the grace period gets the same successor again
//! ([`GracePolicy::SameSuccessor`]) or a new one ([`GracePolicy::NewSuccessor`]); after it, it
//! is refused: `RefreshTokenReuseException` from the JSON API, `invalid_grant` from
//! `/oauth2/token`. Reuse does not revoke the family (AWS does not document that it does).
//! All state is behind one mutex, so two concurrent refreshes with one token are decided
//! atomically: with grace 0, exactly one wins.
//!
//! # Example
//!
//! Two refreshes with the same refresh token, as two browser tabs would send them:
//!
//! ```
//! use tower_cognito_testing::LocalCognito;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let cognito = LocalCognito::start().await;
//! let tokens = cognito.sign_in("alice");
//! let refresh_token = tokens.refresh_token.clone().unwrap();
//!
//! let http = reqwest::Client::new();
//! let body = serde_json::json!({
//!     "ClientId": cognito.client_id(),
//!     "RefreshToken": refresh_token,
//! });
//! let refresh = || {
//!     http.post(cognito.idp_url())
//!         .header("content-type", "application/x-amz-json-1.1")
//!         .header("x-amz-target", "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken")
//!         .body(body.to_string())
//!         .send()
//! };
//!
//! let first = refresh().await.unwrap();
//! assert_eq!(first.status(), 200);
//! let first: serde_json::Value = serde_json::from_slice(&first.bytes().await.unwrap()).unwrap();
//! assert!(first["AuthenticationResult"]["RefreshToken"].is_string()); // rotated
//!
//! let second = refresh().await.unwrap(); // the same, already rotated token
//! assert_eq!(second.status(), 400);
//! let second: serde_json::Value = serde_json::from_slice(&second.bytes().await.unwrap()).unwrap();
//! assert_eq!(second["__type"], "RefreshTokenReuseException");
//!
//! assert_eq!(cognito.counts().refreshes, 2);
//! # }
//! ```
//!
//! # Endpoints
//!
//! | Endpoint | What it does |
//! |---|---|
//! | `GET /{pool}/.well-known/jwks.json` | the signing keys |
//! | `GET /{pool}/.well-known/openid-configuration` | OIDC discovery |
//! | `GET /oauth2/authorize` | auto-approves the default user (or `login_hint`), 302 with `code` and `state` |
//! | `POST /oauth2/token` | `authorization_code` (PKCE S256), `refresh_token`, `client_credentials` |
//! | `POST /oauth2/revoke` | revokes the sign-in a refresh token belongs to |
//! | `GET /logout` | 302 to `logout_uri` |
//! | `POST /` | JSON API: `GetTokensFromRefreshToken`, `InitiateAuth` (`REFRESH_TOKEN_AUTH`), `RevokeToken` |
//!
//! Differences from real Cognito, on purpose: `redirect_uri` (and `logout_uri`) may be any
//! `http`/`https` URL on a loopback host (`127.0.0.1`/`127.x.y.z`, `localhost`, `[::1]`)
//! instead of a configured list; scopes requested at `authorize` are not checked; there is no
//! sign-in page; the JSON API does not insist on its `Content-Type`. The server listens on
//! loopback only.
//!
//! The server speaks HTTP/1.1 and runs on the Tokio runtime that called
//! [`LocalCognito::start`]; a current-thread test runtime is fine as long as the test awaits
//! its requests rather than blocking. Timings (grace period, code and refresh-token lifetimes)
//! use real time, not Tokio's (possibly paused) clock.
//!
//! # Driving a backend-for-frontend
//!
//! [`Browser`] is a cookie jar in front of any tower service (the app, in-process), which
//! follows a sign-in through this server's hosted UI over real HTTP: tests of a
//! backend-for-frontend need no real browser.
//!
//! # The `local-cognito` binary
//!
//! `cargo run -p tower-cognito-testing --bin local-cognito` starts one on `127.0.0.1:9229`
//! (cognito-local's port) and prints `export COGNITO_DOMAIN=...` lines for
//! `COGNITO_DOMAIN`, `COGNITO_USER_POOL_ID`, `COGNITO_CLIENT_ID`, `COGNITO_ISSUER`,
//! `COGNITO_JWKS_URL`, `COGNITO_TOKEN_ENDPOINT`, `COGNITO_IDP_ENDPOINT` and
//! `COGNITO_ALLOW_HTTP=1`, then serves until Ctrl-C. Settings come from `LOCAL_COGNITO_PORT`
//! (0: any free port), `LOCAL_COGNITO_POOL_ID`, `LOCAL_COGNITO_CLIENT_ID`,
//! `LOCAL_COGNITO_ACCESS_TTL_SECS`, `LOCAL_COGNITO_GRACE_SECS` and `LOCAL_COGNITO_ROTATION`
//! (`1`/`0`).

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod browser;
mod http;
mod keys;
mod state;

pub use browser::{Browser, Page};
pub use keys::{InvalidKey, SigningKey};

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::keys::KeySet;
use crate::state::{Client, State, DEFAULT_SCOPE};

/// What a second refresh inside the grace period gets. AWS does not document which one real
/// Cognito does, so clients must cope with both.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GracePolicy {
    /// The successor recorded at the first refresh, again (with new access and id tokens).
    #[default]
    SameSuccessor,
    /// Another successor: two valid refresh-token chains for one sign-in.
    NewSuccessor,
}

/// What the JWKS endpoint publishes ([`LocalCognito::set_jwks`], [`Options::jwks`]).
///
/// Whatever it is, the answer's status is [`LocalCognito::set_jwks_status`]'s (200 unless
/// changed), it waits [`LocalCognito::set_jwks_delay`], and it is counted in
/// [`Counts::jwks_fetches`].
///
/// ```
/// use serde_json::json;
/// use tower_cognito_testing::{Jwks, SigningKey};
///
/// let key = SigningKey::generate();
/// assert_eq!(Jwks::of([&key]), Jwks::Keys(vec![key.jwk()]));
/// let html = Jwks::raw("text/html", "<html>Service Unavailable</html>");
/// let ec = Jwks::Keys(vec![json!({ "kty": "EC", "kid": "ec-1", "crv": "P-256" })]);
/// # let _ = (html, ec);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Jwks {
    /// The keys tokens are signed with, plus the pair the last
    /// [`LocalCognito::rotate_signing_keys`] replaced: what Cognito publishes.
    #[default]
    SigningKeys,
    /// Exactly these JWK objects, as `{"keys":[..]}`: any keys (the test's own, an EC key, a key
    /// without `n`...), none, or duplicates. The pool still signs with its signing keys.
    Keys(Vec<Value>),
    /// This body verbatim with this `Content-Type` (an HTML error page, cut-off JSON, a huge
    /// document...).
    Raw {
        /// The `Content-Type` header of the answer.
        content_type: String,
        /// The body of the answer.
        body: Vec<u8>,
    },
}

impl Jwks {
    /// [`Jwks::Keys`] with the JWKs of these keys, in this order.
    pub fn of<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> Self {
        Self::Keys(keys.into_iter().map(SigningKey::jwk).collect())
    }

    /// [`Jwks::Raw`].
    pub fn raw(content_type: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self::Raw {
            content_type: content_type.into(),
            body: body.into(),
        }
    }
}

/// Counters of what the server processed since the start or [`LocalCognito::reset_counts`].
///
/// Refresh attempts are counted once processed (after any [`LocalCognito::set_refresh_delay`]),
/// whatever their outcome, so `refreshes == refresh_ok + reused + invalid` always.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Refresh attempts: JSON API `GetTokensFromRefreshToken` and `InitiateAuth`
    /// `REFRESH_TOKEN_AUTH`, `/oauth2/token` `refresh_token` grant, and
    /// [`LocalCognito::spend_refresh_token`].
    pub refreshes: u64,
    /// Refresh requests received, counted on arrival, before any
    /// [`LocalCognito::set_refresh_delay`] (so also those whose client gave up meanwhile):
    /// tests wait on it to know a refresh is in flight.
    pub refreshes_received: u64,
    /// Refreshes that returned tokens.
    pub refresh_ok: u64,
    /// Refreshes refused because the token was already rotated (past the grace period).
    pub reused: u64,
    /// Refreshes refused for any other reason (expired, revoked, unknown, wrong client, bad
    /// client secret, malformed request, `InitiateAuth` on a rotating client).
    pub invalid: u64,
    /// `GET /oauth2/authorize` requests, whatever their outcome.
    pub authorizations: u64,
    /// `authorization_code` grant requests, whatever their outcome.
    pub code_exchanges: u64,
    /// `client_credentials` grant requests, whatever their outcome.
    pub client_credentials: u64,
    /// Revocation requests (`/oauth2/revoke` and JSON API `RevokeToken`).
    pub revocations: u64,
    /// JWKS downloads, counted on arrival (before any [`LocalCognito::set_jwks_delay`]), whatever
    /// the answer (also a [`LocalCognito::set_jwks_unavailable`] error). Requests for another
    /// pool's JWKS are not counted.
    pub jwks_fetches: u64,
    /// Sign-ins: [`LocalCognito::sign_in`] calls and successful code exchanges.
    pub sign_ins: u64,
    /// Token endpoint and JSON API requests answered with the [`LocalCognito::set_unavailable`]
    /// status (not counted anywhere else).
    pub unavailable: u64,
}

/// Tokens from a sign-in or a refresh. `Debug` shows none of them.
#[derive(Clone)]
pub struct TokenSet {
    /// The access token (JWT).
    pub access_token: String,
    /// The id token (JWT); `None` for `client_credentials`.
    pub id_token: Option<String>,
    /// The refresh token: after a sign-in, or a refresh that rotated; else `None` (keep the old).
    pub refresh_token: Option<String>,
    /// Lifetime of the access token, in seconds.
    pub expires_in: u64,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |present: bool| if present { "<redacted>" } else { "None" };
        f.debug_struct("TokenSet")
            .field("access_token", &"<redacted>")
            .field("id_token", &redacted(self.id_token.is_some()))
            .field("refresh_token", &redacted(self.refresh_token.is_some()))
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// A user of the pool, as configured.
struct UserSpec {
    username: String,
    email: String,
    groups: Vec<String>,
}

/// How to start a [`LocalCognito`]. `Debug` does not show the client secret.
#[must_use]
pub struct Options {
    pool_id: String,
    client_id: Option<String>,
    access_ttl: Duration,
    refresh_ttl: Duration,
    rotation: bool,
    grace: Duration,
    grace_policy: GracePolicy,
    client_secret: Option<String>,
    users: Vec<UserSpec>,
    port: u16,
    signing_keys: Option<(SigningKey, SigningKey)>,
    jwks: Jwks,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("pool_id", &self.pool_id)
            .field("client_id", &self.client_id)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("rotation", &self.rotation)
            .field("grace", &self.grace)
            .field("grace_policy", &self.grace_policy)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "users",
                &self
                    .users
                    .iter()
                    .map(|u| u.username.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("port", &self.port)
            .field("signing_keys", &self.signing_keys)
            .field("jwks", &self.jwks)
            .finish()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            pool_id: "us-east-1_LocalPool1".to_owned(),
            client_id: None,
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            rotation: true,
            grace: Duration::ZERO,
            grace_policy: GracePolicy::SameSuccessor,
            client_secret: None,
            users: Vec::new(),
            port: 0,
            signing_keys: None,
            jwks: Jwks::SigningKeys,
        }
    }
}

impl Options {
    /// The defaults: pool `us-east-1_LocalPool1`, a public client with rotation on and no
    /// grace, access and id tokens for an hour, refresh tokens for 30 days, user `alice`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The user pool id; the part before `_` is the region. Default `us-east-1_LocalPool1`.
    pub fn pool_id(mut self, id: impl Into<String>) -> Self {
        self.pool_id = id.into();
        self
    }

    /// The default app client's id. Default: a random 26-character id, like Cognito's.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// Lifetime of access and id tokens (whole seconds, at least one). Default one hour.
    pub fn access_ttl(mut self, d: Duration) -> Self {
        self.access_ttl = d;
        self
    }

    /// Lifetime of a sign-in's refresh tokens. Default 30 days.
    pub fn refresh_ttl(mut self, d: Duration) -> Self {
        self.refresh_ttl = d;
        self
    }

    /// Refresh-token rotation of the default client. Default on.
    pub fn rotation(mut self, on: bool) -> Self {
        self.rotation = on;
        self
    }

    /// `RetryGracePeriodSeconds`: how long a rotated refresh token still works. Default 0.
    pub fn grace(mut self, d: Duration) -> Self {
        self.grace = d;
        self
    }

    /// What a second refresh inside the grace period gets. Default
    /// [`GracePolicy::SameSuccessor`].
    pub fn grace_policy(mut self, p: GracePolicy) -> Self {
        self.grace_policy = p;
        self
    }

    /// Gives the default client a secret, which every token endpoint and JSON API call must
    /// then prove. Default: none (a public single-page-app client).
    pub fn client_secret(mut self, s: impl Into<String>) -> Self {
        self.client_secret = Some(s.into());
        self
    }

    /// Adds a user. The first user added replaces the default `alice`/`alice@example.com` and
    /// is the one `/oauth2/authorize` signs in without a `login_hint`.
    pub fn user(
        mut self,
        username: impl Into<String>,
        email: impl Into<String>,
        groups: &[&str],
    ) -> Self {
        self.users.push(UserSpec {
            username: username.into(),
            email: email.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        });
        self
    }

    /// The port on 127.0.0.1. Default 0: any free port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The keys access and id tokens are signed with. Default: two fresh keys, generated at
    /// start. Giving keys saves their generation (a few hundred milliseconds of CPU each) in
    /// suites that start many servers, and lets a test sign tokens with the pool's own key.
    pub fn signing_keys(mut self, access: SigningKey, id: SigningKey) -> Self {
        self.signing_keys = Some((access, id));
        self
    }

    /// What the JWKS endpoint publishes at start (later: [`LocalCognito::set_jwks`]). Default
    /// [`Jwks::SigningKeys`].
    pub fn jwks(mut self, jwks: Jwks) -> Self {
        self.jwks = jwks;
        self
    }
}

/// Shared by the handle and the server.
pub(crate) struct Inner {
    pool_id: String,
    region: String,
    origin: String,
    addr: SocketAddr,
    client_id: String,
    client_secret: Option<String>,
    state: Mutex<State>,
}

/// Whether the server listens.
enum Run {
    /// Listening: the accept loop's task and its shutdown trigger.
    Serving {
        shutdown: oneshot::Sender<()>,
        task: JoinHandle<()>,
    },
    /// Not listening. The port stays bound to a socket that does not listen (when it could be
    /// bound again), so connections are refused and no other socket is given the port.
    Stopped { reserved: Option<TcpSocket> },
}

/// A local Cognito user pool with one app client, serving on `127.0.0.1`.
///
/// Dropping it stops the server. Not `Clone`: share it in an `Arc`.
pub struct LocalCognito {
    inner: Arc<Inner>,
    run: Mutex<Run>,
    lifecycle: tokio::sync::Mutex<()>,
}

impl fmt::Debug for LocalCognito {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCognito")
            .field("origin", &self.inner.origin)
            .field("pool_id", &self.inner.pool_id)
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

impl Drop for LocalCognito {
    fn drop(&mut self) {
        let run = self.run.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Run::Serving { shutdown, .. } =
            std::mem::replace(run, Run::Stopped { reserved: None })
        {
            let _ = shutdown.send(());
        }
    }
}

/// A random id of `len` lowercase letters and digits.
fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    keys::random_bytes::<64>()
        .iter()
        .take(len)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// Two key pairs, generated on two blocking threads.
async fn generate_pair() -> (SigningKey, SigningKey) {
    let access = tokio::task::spawn_blocking(SigningKey::generate);
    let id = tokio::task::spawn_blocking(SigningKey::generate);
    (
        access.await.expect("key generation"),
        id.await.expect("key generation"),
    )
}

/// Two key pairs, generated on two threads, blocking this one.
fn generate_pair_blocking() -> (SigningKey, SigningKey) {
    std::thread::scope(|s| {
        let access = s.spawn(SigningKey::generate);
        let id = s.spawn(SigningKey::generate);
        (
            access.join().expect("key generation"),
            id.join().expect("key generation"),
        )
    })
}

/// A socket bound to 127.0.0.1:`port` (`SO_REUSEADDR`), not listening yet.
fn reserve(port: u16) -> std::io::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    Ok(socket)
}

/// How often, and how far apart, binding a given port is tried before giving up.
const BIND_TRIES: u32 = 100;
const BIND_PAUSE: Duration = Duration::from_millis(20);

fn bind_failed(port: u16, e: &std::io::Error) -> ! {
    panic!("local Cognito: cannot bind 127.0.0.1:{port}: {e}")
}

/// [`reserve`], retrying for a while if a given port is still taken.
async fn reserve_retrying(port: u16) -> TcpSocket {
    let mut tries = 0;
    loop {
        match reserve(port) {
            Ok(socket) => return socket,
            Err(_) if tries < BIND_TRIES && port != 0 => {
                tries += 1;
                tokio::time::sleep(BIND_PAUSE).await;
            }
            Err(e) => bind_failed(port, &e),
        }
    }
}

/// [`reserve_retrying`], blocking this thread between tries.
fn reserve_blocking(port: u16) -> TcpSocket {
    let mut tries = 0;
    loop {
        match reserve(port) {
            Ok(socket) => return socket,
            Err(_) if tries < BIND_TRIES && port != 0 => {
                tries += 1;
                std::thread::sleep(BIND_PAUSE);
            }
            Err(e) => bind_failed(port, &e),
        }
    }
}

impl LocalCognito {
    /// Starts one with [`Options::default`] on a free port.
    pub async fn start() -> LocalCognito {
        Self::start_with(Options::default()).await
    }

    /// Starts one on `127.0.0.1` (port from the options).
    ///
    /// # Panics
    /// If the port cannot be bound, or outside a Tokio runtime.
    pub async fn start_with(mut options: Options) -> LocalCognito {
        let keys = match options.signing_keys.take() {
            Some(keys) => keys,
            None => generate_pair().await,
        };
        let socket = reserve_retrying(options.port).await;
        let cognito = Self::build(options, keys, socket);
        cognito.start_again().await;
        cognito
    }

    /// Builds one with its port bound but not listening: connections are refused until
    /// [`LocalCognito::start_again`], so a test can start with the pool unreachable and bring
    /// it up later at the same URLs. Not async; it generates the signing keys on this thread
    /// (blocking it for a moment) unless the options carry [`Options::signing_keys`].
    ///
    /// ```
    /// use tower_cognito_testing::{LocalCognito, Options};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cognito = LocalCognito::start_stopped_with(Options::new());
    /// assert!(!cognito.is_running());
    /// assert!(reqwest::get(cognito.jwks_url()).await.is_err()); // connection refused
    ///
    /// cognito.start_again().await;
    /// assert_eq!(reqwest::get(cognito.jwks_url()).await.unwrap().status(), 200);
    /// # }
    /// ```
    ///
    /// # Panics
    /// If the port cannot be bound.
    pub fn start_stopped_with(mut options: Options) -> LocalCognito {
        let keys = options
            .signing_keys
            .take()
            .unwrap_or_else(generate_pair_blocking);
        let socket = reserve_blocking(options.port);
        Self::build(options, keys, socket)
    }

    /// Everything but the listening, on the port `socket` is bound to.
    fn build(options: Options, keys: (SigningKey, SigningKey), socket: TcpSocket) -> LocalCognito {
        let addr = socket.local_addr().expect("bound socket has an address");
        let origin = format!("http://{addr}");
        let pool_id = options.pool_id;
        let region = pool_id
            .split_once('_')
            .map_or(pool_id.as_str(), |(r, _)| r)
            .to_owned();
        let client_id = options.client_id.unwrap_or_else(|| random_id(26));
        let mut state = State::new(
            format!("{origin}/{pool_id}"),
            pool_id.clone(),
            client_id.clone(),
            KeySet::new(keys.0, keys.1),
        );
        state.access_ttl = options.access_ttl;
        state.refresh_ttl = options.refresh_ttl;
        state.rotation = options.rotation;
        state.grace = options.grace;
        state.grace_policy = options.grace_policy;
        state.jwks = options.jwks;
        state.clients.insert(
            client_id.clone(),
            Client {
                secret: options.client_secret.clone(),
                m2m_scopes: None,
            },
        );
        if options.users.is_empty() {
            state.add_user("alice", "alice@example.com", &[]);
        }
        for user in &options.users {
            state.add_user(&user.username, &user.email, &user.groups);
        }
        let inner = Arc::new(Inner {
            pool_id,
            region,
            origin,
            addr,
            client_id,
            client_secret: options.client_secret,
            state: Mutex::new(state),
        });
        LocalCognito {
            run: Mutex::new(Run::Stopped {
                reserved: Some(socket),
            }),
            inner,
            lifecycle: tokio::sync::Mutex::new(()),
        }
    }

    /// Listens on `socket` and spawns the accept loop.
    fn serve(inner: &Arc<Inner>, socket: TcpSocket) -> Run {
        let listener: TcpListener = socket
            .listen(1024)
            .unwrap_or_else(|e| panic!("local Cognito: cannot listen on {}: {e}", inner.addr));
        let (shutdown, receiver) = oneshot::channel();
        let task = tokio::spawn(http::serve(
            listener,
            http::router(Arc::clone(inner)),
            receiver,
        ));
        Run::Serving { shutdown, task }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self) -> MutexGuard<'_, Run> {
        self.run.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `http://127.0.0.1:PORT`: the hosted-UI domain.
    pub fn origin(&self) -> String {
        self.inner.origin.clone()
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The user pool id.
    pub fn pool_id(&self) -> &str {
        &self.inner.pool_id
    }

    /// The region: the part of the pool id before `_`.
    pub fn region(&self) -> &str {
        &self.inner.region
    }

    /// `{origin}/{pool_id}`, the `iss` of every token.
    pub fn issuer(&self) -> String {
        format!("{}/{}", self.inner.origin, self.inner.pool_id)
    }

    /// `{issuer}/.well-known/jwks.json`.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.issuer())
    }

    /// `{origin}/oauth2/authorize`.
    pub fn authorize_url(&self) -> String {
        format!("{}/oauth2/authorize", self.inner.origin)
    }

    /// `{origin}/oauth2/token`.
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.inner.origin)
    }

    /// `{origin}/oauth2/revoke`.
    pub fn revoke_url(&self) -> String {
        format!("{}/oauth2/revoke", self.inner.origin)
    }

    /// `{origin}/`: the JSON API endpoint (`X-Amz-Target` requests).
    pub fn idp_url(&self) -> String {
        format!("{}/", self.inner.origin)
    }

    /// The default app client's id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The default app client's secret, if it has one.
    pub fn client_secret(&self) -> Option<&str> {
        self.inner.client_secret.as_deref()
    }

    /// Adds a machine-to-machine client for the `client_credentials` grant.
    pub fn add_m2m_client(&self, client_id: &str, secret: &str, scopes: &[&str]) {
        self.state().clients.insert(
            client_id.to_owned(),
            Client {
                secret: Some(secret.to_owned()),
                m2m_scopes: Some(scopes.iter().map(|s| (*s).to_owned()).collect()),
            },
        );
    }

    /// Adds a user (or replaces the email and groups of an existing one).
    pub fn add_user(&self, username: &str, email: &str, groups: &[&str]) {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        self.state().add_user(username, email, &groups);
    }

    /// Signs `username` in at the default client, as if the hosted UI and the code exchange had
    /// happened: a new sign-in (new `origin_jti`), counted in [`Counts::sign_ins`]. An unknown
    /// username is added on the fly as `{username}@example.com` without groups.
    pub fn sign_in(&self, username: &str) -> TokenSet {
        let mut st = self.state();
        let client_id = st.client_id.clone();
        st.sign_in(username, &client_id, DEFAULT_SCOPE, None)
    }

    /// The counters so far.
    pub fn counts(&self) -> Counts {
        self.state().counts
    }

    /// Sets every counter to zero.
    pub fn reset_counts(&self) {
        self.state().counts = Counts::default();
    }

    /// Waits until `count` of the counters reaches `at_least`, or `deadline` (real time) passed;
    /// returns the count then.
    async fn wait_for_count(
        &self,
        at_least: u64,
        deadline: Duration,
        count: impl Fn(&Counts) -> u64,
    ) -> u64 {
        let until = std::time::Instant::now() + deadline;
        loop {
            let now = count(&self.counts());
            if now >= at_least || std::time::Instant::now() >= until {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until at least `at_least` refreshes were processed, or `deadline` (real time)
    /// passed; returns the number of refreshes then.
    pub async fn wait_for_refreshes(&self, at_least: u64, deadline: Duration) -> u64 {
        self.wait_for_count(at_least, deadline, |c| c.refreshes)
            .await
    }

    /// Waits until at least `at_least` refresh requests were received (processed or not), or
    /// `deadline` passed; returns the number received then.
    pub async fn wait_for_received_refreshes(&self, at_least: u64, deadline: Duration) -> u64 {
        self.wait_for_count(at_least, deadline, |c| c.refreshes_received)
            .await
    }

    /// Every refresh request waits `d` before it is processed. A client that gives up
    /// meanwhile (drops the connection) changes nothing: no rotation, no count.
    pub fn set_refresh_delay(&self, d: Duration) {
        self.state().refresh_delay = d;
    }

    /// `Some(status)`: every token endpoint, revoke endpoint and JSON API call answers `status`
    /// (JSON API: `InternalErrorException` for 500, `TooManyRequestsException` for 429,
    /// `ServiceUnavailableException` otherwise; OAuth: `server_error` or
    /// `temporarily_unavailable`). `None`: back to normal.
    pub fn set_unavailable(&self, status: Option<u16>) {
        self.state().unavailable = status;
    }

    /// `Some(status)`: JWKS downloads answer `status` with a short plain-text body (an outage;
    /// still counted). `None`: back to normal. It takes precedence over [`LocalCognito::set_jwks`]
    /// and [`LocalCognito::set_jwks_status`].
    pub fn set_jwks_unavailable(&self, status: Option<u16>) {
        self.state().jwks_unavailable = status;
    }

    /// What the JWKS endpoint publishes from now on: the pool's signing keys (the default),
    /// any list of JWKs, or a raw body.
    ///
    /// ```
    /// use tower_cognito_testing::{Jwks, LocalCognito, SigningKey};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cognito = LocalCognito::start().await;
    /// let mine = SigningKey::generate().with_kid("my-key");
    /// cognito.set_jwks(Jwks::of([&mine]));
    /// let body = reqwest::get(cognito.jwks_url()).await.unwrap().bytes().await.unwrap();
    /// let jwks: serde_json::Value = serde_json::from_slice(&body).unwrap();
    /// assert_eq!(jwks, serde_json::json!({ "keys": [mine.jwk()] }));
    ///
    /// cognito.set_jwks(Jwks::raw("text/html", "<html>Bad gateway</html>"));
    /// cognito.set_jwks_status(502);
    /// let answer = reqwest::get(cognito.jwks_url()).await.unwrap();
    /// assert_eq!(answer.status(), 502);
    /// assert_eq!(answer.headers()["content-type"], "text/html");
    /// assert_eq!(cognito.counts().jwks_fetches, 2);
    /// # }
    /// ```
    pub fn set_jwks(&self, jwks: Jwks) {
        self.state().jwks = jwks;
    }

    /// The status of every JWKS answer, whose body stays what [`LocalCognito::set_jwks`] says
    /// (a proxy answering 500 with a good document, a 304 no client asked for...). 200 restores
    /// the default.
    ///
    /// # Panics
    /// If `status` is not a valid HTTP status code (100 to 999).
    pub fn set_jwks_status(&self, status: u16) {
        assert!(
            ::http::StatusCode::from_u16(status).is_ok(),
            "set_jwks_status: {status} is not an HTTP status code"
        );
        self.state().jwks_status = status;
    }

    /// Every JWKS answer waits `delay` after the request arrived (counted at once). The wait
    /// runs on Tokio's clock, so a paused test clock skips it; `Duration::MAX` never answers (a
    /// hung endpoint, until the client gives up or [`LocalCognito::stop`]). `Duration::ZERO`
    /// (the default) answers at once. The answer is decided when the request arrives.
    pub fn set_jwks_delay(&self, delay: Duration) {
        self.state().jwks_delay = delay;
    }

    /// The JWKS document of the pool's signing keys (what [`Jwks::SigningKeys`] publishes), read
    /// here rather than fetched: not counted. Handy to warm-start a verifier.
    pub fn signing_jwks(&self) -> Value {
        self.state().keys.jwks()
    }

    /// The keys tokens are signed with now: (access, id).
    pub fn signing_keys(&self) -> (SigningKey, SigningKey) {
        let st = self.state();
        (st.keys.access.clone(), st.keys.id.clone())
    }

    /// Waits until at least `at_least` JWKS requests arrived, or `deadline` (real time) passed;
    /// returns the number of JWKS fetches then.
    pub async fn wait_for_jwks_fetches(&self, at_least: u64, deadline: Duration) -> u64 {
        self.wait_for_count(at_least, deadline, |c| c.jwks_fetches)
            .await
    }

    /// Changes the retry grace period (applies to tokens rotated earlier too).
    pub fn set_grace(&self, d: Duration) {
        self.state().grace = d;
    }

    /// Changes what a second refresh inside the grace period gets.
    pub fn set_grace_policy(&self, p: GracePolicy) {
        self.state().grace_policy = p;
    }

    /// Turns rotation of the default client on or off. Tokens rotated earlier stay rotated.
    pub fn set_rotation(&self, on: bool) {
        self.state().rotation = on;
    }

    /// New signing keys (one for access, one for id tokens) sign every token from now on; the
    /// JWKS publishes them first and keeps the replaced pair once, so tokens in flight still
    /// verify. Generating the keys blocks for a few hundred milliseconds.
    pub fn rotate_signing_keys(&self) {
        let (access, id) = generate_pair_blocking();
        self.state().keys.rotate(access, id);
    }

    /// The `kid`s tokens are signed with now: (access, id).
    pub fn signing_kids(&self) -> (String, String) {
        let st = self.state();
        (st.keys.access.kid().to_owned(), st.keys.id.kid().to_owned())
    }

    /// Revokes every sign-in of `username`, like `GlobalSignOut`: all their refresh tokens
    /// are refused from now on (not counted as a revocation).
    pub fn revoke_all(&self, username: &str) {
        self.state().revoke_all(username);
    }

    /// Expires every refresh token issued so far (`NotAuthorizedException` / `invalid_grant`).
    pub fn expire_refresh_tokens(&self) {
        self.state().expire_all();
    }

    /// Refreshes with `refresh_token` as another device would (through the rotation rules,
    /// counted as a refresh). `None` if that refresh was refused.
    pub fn spend_refresh_token(&self, refresh_token: &str) -> Option<TokenSet> {
        let mut st = self.state();
        st.counts.refreshes += 1;
        let client_id = match st.refresh_owner(refresh_token) {
            Some((_, client, _)) => client.to_owned(),
            None => st.client_id.clone(),
        };
        st.refresh(refresh_token, &client_id, true).ok()
    }

    /// Whether the sign-in a token belongs to (by its `origin_jti`) has been revoked: what a
    /// resource server's revocation store would know. `false` for tokens without one.
    pub fn is_revoked(&self, token: &str) -> bool {
        let claims = decode_claims(token);
        claims
            .get("origin_jti")
            .and_then(Value::as_str)
            .is_some_and(|jti| self.state().is_origin_revoked(jti))
    }

    /// An access token for a user (created on the fly if unknown), as the default client would
    /// get it at sign-in, with `overrides` applied to the claims (an object; a `null` value
    /// removes the claim). Signed with the current access key. Not a sign-in: no family.
    pub fn mint_access(&self, username: &str, overrides: &Value) -> String {
        let mut st = self.state();
        let user = st.user_or_create(username);
        let client_id = st.client_id.clone();
        let origin_jti = keys::uuid();
        let mut claims = st.access_claims(
            &user,
            &client_id,
            Some(&origin_jti),
            &keys::uuid(),
            state::now_secs(),
            DEFAULT_SCOPE,
        );
        state::apply_overrides(&mut claims, overrides);
        st.keys.access.sign_jwt(&Value::Object(claims))
    }

    /// An id token for a user, like [`LocalCognito::mint_access`], signed with the id key.
    pub fn mint_id(&self, username: &str, overrides: &Value) -> String {
        let mut st = self.state();
        let user = st.user_or_create(username);
        let client_id = st.client_id.clone();
        let mut claims = st.id_claims(
            &user,
            &client_id,
            Some(&keys::uuid()),
            &keys::uuid(),
            state::now_secs(),
            None,
            None,
        );
        state::apply_overrides(&mut claims, overrides);
        st.keys.id.sign_jwt(&Value::Object(claims))
    }

    /// Signs any header and claims with the current access key (for hostile-token tests: a
    /// wrong `alg`, a `crit`, an unknown `kid`...). The signature is always RS256.
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        self.state().keys.access.sign_with_header(header, claims)
    }

    /// Stops listening and closes every open connection (requests in flight, such as a
    /// delayed JWKS answer, are dropped unprocessed). The port stays bound, not listening:
    /// connections are refused. State is kept. Does nothing if already stopped.
    pub async fn stop(&self) {
        let _guard = self.lifecycle.lock().await;
        let run = std::mem::replace(&mut *self.run(), Run::Stopped { reserved: None });
        match run {
            Run::Serving { shutdown, task } => {
                let _ = shutdown.send(());
                let _ = task.await;
                let reserved = reserve_retrying(self.inner.addr.port()).await;
                *self.run() = Run::Stopped {
                    reserved: Some(reserved),
                };
            }
            stopped @ Run::Stopped { .. } => *self.run() = stopped,
        }
    }

    /// Listens again on the same port, with the same state (or for the first time, after
    /// [`LocalCognito::start_stopped_with`]). Does nothing if running.
    ///
    /// # Panics
    /// If the port cannot be bound again within about two seconds, or outside a Tokio runtime.
    pub async fn start_again(&self) {
        let _guard = self.lifecycle.lock().await;
        let reserved = match &mut *self.run() {
            Run::Serving { .. } => return,
            Run::Stopped { reserved } => reserved.take(),
        };
        let socket = match reserved {
            Some(socket) => socket,
            None => reserve_retrying(self.inner.addr.port()).await,
        };
        let run = Self::serve(&self.inner, socket);
        *self.run() = run;
    }

    /// Whether it listens (started, and not stopped since).
    pub fn is_running(&self) -> bool {
        matches!(*self.run(), Run::Serving { .. })
    }
}

/// The claims of a JWT, decoded WITHOUT verification (`Value::Null` if it is not one).
pub fn decode_claims(token: &str) -> Value {
    decode_part(token, 1)
}

/// The header of a JWT, decoded WITHOUT verification (`Value::Null` if it is not one).
pub fn decode_header(token: &str) -> Value {
    decode_part(token, 0)
}

fn decode_part(token: &str, index: usize) -> Value {
    token
        .split('.')
        .nth(index)
        .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}
