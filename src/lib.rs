//! A tower [`Layer`](tower_layer::Layer) that lets through only genuine AWS Cognito tokens.
//!
//! Add one layer to an axum or hyper service, configured with the user pool and the app client
//! ids; handlers receive the verified claims. Optionally, a per-session window in a session
//! store tolerates the refresh-token-rotation race, refuses superseded token chains and revokes
//! sessions.
//!
//! # Quick start: axum
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{routing::get, Router};
//! use tower_cognito::{ClientIds, CognitoAuthLayer, CognitoConfig, TokenUse, UserPool, Verified, Verifier};
//!
//! let config = CognitoConfig::new(
//!     UserPool::parse("eu-west-1_AbCdEf123")?,
//!     TokenUse::Access,
//!     ClientIds::one("4p1d8k3k9q2e5s7t0u6v1w3x4y"),
//! );
//! let verifier = Verifier::new(config)?;
//!
//! async fn me(claims: Verified) -> String {
//!     format!("hello {}", claims.username)
//! }
//!
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     // `route_layer`: unknown paths stay 404 instead of becoming 401.
//!     .route_layer(CognitoAuthLayer::new(verifier));
//! # Ok(()) }
//! ```
//!
//! # Quick start: plain tower or hyper
//!
//! The layer works on any `Service<http::Request<B>>`. Here one accepted and two refused
//! requests go through a `ServiceBuilder`, with keys from a JWKS document instead of the network:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use http::{header, Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_cognito::{ClientIds, CognitoAuthLayer, CognitoConfig, TokenUse, UserPool, Verified, Verifier};
//!
//! let config = CognitoConfig::new(
//!     UserPool::parse("eu-west-1_AbCdEf123")?,
//!     TokenUse::Access,
//!     ClientIds::one("client1"),
//! )
//! .jwks_document(include_str!("../tests/fixtures/doc-test-jwks.json"))
//! .fetch_keys(false);
//! let verifier = Verifier::new(config)?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(CognitoAuthLayer::new(verifier))
//!     .service(service_fn(|request: Request<String>| async move {
//!         let claims = request.extensions().get::<Verified>().expect("set by the layer");
//!         Ok::<_, std::convert::Infallible>(Response::new(format!("hello {}", claims.username)))
//!     }));
//!
//! # let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
//! # let claims = serde_json::json!({
//! #     "sub": "7d8ca528", "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123",
//! #     "client_id": "client1", "token_use": "access", "username": "alice",
//! #     "iat": now, "exp": now + 3600,
//! # });
//! # let mut jwt_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
//! # jwt_header.kid = Some("doc-key".into());
//! # jwt_header.typ = None;
//! # let key = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("../tests/fixtures/doc-test-key.pem"))?;
//! # let token = jsonwebtoken::encode(&jwt_header, &claims, &key)?;
//! // `token`: a Cognito access token signed by the pool's key.
//! let request = Request::get("/").header(header::AUTHORIZATION, format!("Bearer {token}"));
//! let response = service.clone().oneshot(request.body(String::new())?).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.into_body(), "hello alice");
//!
//! let response = service.clone().oneshot(Request::get("/").body(String::new())?).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()[header::WWW_AUTHENTICATE], r#"Bearer realm="cognito""#);
//!
//! let forged = format!("{}x", &token[..token.len() - 1]);
//! let request = Request::get("/").header(header::AUTHORIZATION, format!("Bearer {forged}"));
//! let response = service.oneshot(request.body(String::new())?).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     response.headers()[header::WWW_AUTHENTICATE],
//!     r#"Bearer realm="cognito", error="invalid_token", error_description="The token signature is invalid""#
//! );
//! # Ok(()) }
//! ```
//!
//! # The order of checks
//!
//! Size, header (`alg` exactly `RS256`, a `kid`, no `crit`), key, signature, `iss`, `token_use`,
//! client (`client_id` or `aud`, required), time (`exp` required, `nbf`, `iat`), rules (scopes,
//! groups, your check), then the session window. The first failure decides the answer; see
//! [`verify`] for the details and [`AuthError`] for the RFC 6750 answers (401, 400, 403, and
//! 503 when keys or the store are unavailable, never a 401 for our own outage).
//!
//! # When does this crate talk to the network?
//!
//! - **Never at build time.** [`Verifier::new`] only checks the configuration.
//! - **The JWKS**, from the one URL fixed at build time (the pool's, or your override; the token's
//!   `kid`, `jku` or `x5u` never choose it): on [`Verifier::prefetch_keys`]; when a token names
//!   a `kid` that is not cached, at most once per cooldown (10 s), shared by all requests that
//!   need it; and in the background when the cached keys are older than the max age (1 h).
//!   Requests whose key is cached never wait for a fetch. With
//!   [`fetch_keys(false)`](CognitoConfig::fetch_keys) it never fetches.
//! - **The session store**, when configured: one atomic round trip per request that passed every
//!   other check. Unauthenticated traffic never reaches it.
//! - **Never Cognito's other APIs**: no token introspection, no user lookups.
//!
//! # The rotation race and the session window
//!
//! With refresh-token rotation, two tabs that refresh at once both get valid new tokens. The
//! session window keeps the newest and the previous `iat` of each sign-in, so both tabs go on
//! working while tokens of a superseded chain are refused with a "refresh and retry" answer, and
//! [`Verifier::revoke_session`] signs a session out for good. See [`session`] for the exact
//! semantics and [`session::SessionConfig`] to turn it on.
//!
//! # Choosing a store backend
//!
//! | backend | feature | one check is | shared by servers | survives restart |
//! | --- | --- | --- | --- | --- |
//! | [`session::MemoryStore`] | always | an atomic per-key compute, bounded | no | no |
//! | `session::RedisStore` | `redis` | one Lua script (EVALSHA) | yes | with Redis persistence |
//! | `session::PostgresStore` | `postgres` | one upsert statement (a refusal: no write, one read) | yes | yes |
//!
//! One server: memory. Several servers: Redis (one round trip) or PostgreSQL (durable; call
//! `create_schema` at start and `cleanup_expired` from a periodic job).
//!
//! # Deployment caveats
//!
//! - **Clock skew.** `exp`, `nbf` and `iat` are checked against this server's clock with a small
//!   leeway (5 s by default). Keep NTP running; do not widen the leeway to paper over drift.
//! - **Proxies that strip `Authorization`.** Some load balancers and CDNs drop or rewrite the
//!   header; requests then arrive with no token and get a bare 401 challenge. Tokens are read
//!   from the `Authorization` header by default, or from a cookie or your own resolver
//!   ([`TokenSource`]; a cookie needs a [`CsrfRule`]), never from a query string (it ends up in
//!   logs).
//! - **gRPC.** In front of a tonic service, refusals of gRPC requests are Trailers-Only answers
//!   (`grpc-status` 16, 7 or 14 with the RFC 6750 text in `grpc-message`), chosen from the
//!   request's `content-type` by default ([`GrpcAnswers`]).
//! - **`route_layer`, not `layer`.** With axum's `Router::layer`, unknown paths become 401
//!   instead of 404; `route_layer` runs the layer only for matched routes.
//! - **The layer must be in front.** A handler that asks for [`Verified`] on a route with no
//!   layer gets a 500: that is a bug in the application, not the client's 401. Behind an
//!   [`optional`](CognitoAuthLayer::optional) layer, an anonymous request to such a handler
//!   gets the 401 challenge the layer would have sent.
//! - **Fail closed.** A session store that is down gives 503. `fail_open` exists, and gives up
//!   revocation while the store is down.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `axum` | yes | the [`Verified`] and `Option<Verified>` extractors, and [`alb::AlbClaims`] / `Option<AlbClaims>` behind an [`alb::AlbAuthLayer`] |
//! | `redis` | no | `session::RedisStore` (one server or a Redis Cluster) |
//! | `postgres` | no | `session::PostgresStore` (and `refresh::PostgresRefreshStore` with `refresh`), TLS through rustls (`session::PostgresTls`) |
//! | `refresh` | no | `refresh::Bff`: server-held sessions, one Cognito refresh per session across servers (`refresh::RedisRefreshStore` with `redis`) |
//! | `metrics` | no | counters and histograms through the `metrics` facade (names in the `metrics` module) |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![deny(unreachable_pub)]

pub mod alb;
mod claims;
mod clock;
mod config;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod http;
mod jwks;
mod jws;
pub mod metrics;
#[cfg(feature = "refresh")]
pub mod refresh;
pub mod session;
pub mod verify;

/// The old name of [`verify`], kept so that paths written against it go on working.
#[doc(hidden)]
pub use verify as verifier;

pub use claims::{AccessClaims, AnyClaims, IdClaims};
pub use clock::{Clock, SystemClock};
pub use config::{
    ClientIds, CognitoConfig, ConfigError, IssuerForm, Issuers, JwksProxy, PoolConfig, TokenUse,
    UserPool, DEFAULT_JWKS_COOLDOWN, DEFAULT_JWKS_MAX_AGE, DEFAULT_LEEWAY, DEFAULT_MAX_JWKS_BYTES,
    DEFAULT_MAX_TOKEN_BYTES, DEFAULT_REALM, DEFAULT_TOKEN_CACHE_SIZE,
};
pub use error::{AuthError, Forbidden, InvalidRequest, InvalidToken};
#[cfg(feature = "axum")]
pub use extract::{MissingAuthLayer, VerifiedRejection};
pub use http::{
    CognitoAuth, CognitoAuthLayer, CsrfRule, DefaultRejection, GrpcAnswers, GrpcCode, OnRejection,
    ResponseFuture, TokenResolver, TokenSource,
};
pub use verify::{Verified, Verifier};

/// The README's examples, compiled as doctests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
