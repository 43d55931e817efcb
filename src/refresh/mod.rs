//! The refresh half of the rotation race: server-held sessions (a backend-for-frontend), and
//! exactly one Cognito refresh per session at a time across every server that shares a store.
//!
//! # The race, at refresh time
//!
//! With refresh-token rotation on and the app client's `RetryGracePeriodSeconds` at 0, Cognito
//! honours only the first of two refreshes made with one refresh token: two tabs that refresh
//! together leave one of them signed out before any API sees a token. The session window
//! ([`session`](crate::session)) cannot help: that tab never gets a token. [`Bff`] keeps the
//! refresh token on the server and lets one refresh per session run at a time, across every
//! server sharing the [`RefreshStore`]; the other requests get the winner's tokens.
//!
//! ```text
//!   tab A ─POST /auth/token─┐                      ┌─ store.lock ── Acquired (fence 7)
//!                           ├─► server 1 ──────────┤   GetTokensFromRefreshToken (RT1 → RT2)
//!   tab B ─POST /auth/token─┼─► server 2 ─┐        └─ store.save (fence 7) ─► A: new access token
//!                           │             └─ store.lock ── Busy ─► re-load ─► B: the same token
//! ```
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tower_cognito::refresh::{Bff, MemoryRefreshStore, SealingKeys, TokenClient};
//! use tower_cognito::{ClientIds, CognitoConfig, IdClaims, TokenUse, UserPool, Verifier};
//!
//! let pool = UserPool::parse("eu-west-1_AbCdEf123")?;
//! let client_id = "4p1d8k3k9q2e5s7t0u6v1w3x4y";
//! let cognito = TokenClient::builder(client_id)
//!     .region(pool.region())
//!     .domain("myapp.auth.eu-west-1.amazoncognito.com")
//!     .build()?;
//! let id_tokens: Verifier<IdClaims> =
//!     Verifier::with_claims(CognitoConfig::new(pool, TokenUse::Id, ClientIds::one(client_id)))?;
//! // Several servers: RedisRefreshStore::connect(url) or PostgresRefreshStore::connect(url).
//! let store = Arc::new(MemoryRefreshStore::new(100_000));
//! let keys = SealingKeys::from_base64("2026-12", &std::env::var("SESSION_KEY")?)?;
//! let bff = Bff::builder(cognito, store, keys, id_tokens, "https://app.example.com/auth/callback")
//!     .build()?;
//! let app: axum::Router = axum::Router::new().nest_service("/auth", bff);
//! # Ok(()) }
//! ```
//!
//! # Routes (default prefix `/auth`)
//!
//! - `GET /auth/login[?return_to=/path]`: redirects to the hosted UI's `/oauth2/authorize`
//!   with PKCE S256, `state` and `nonce`, bound to a short-lived (10 min) HttpOnly pre-login
//!   cookie sealed with the [`SealingKeys`]. `return_to` must be a path on this site, else 400
//!   `invalid_return_path`.
//! - `GET /auth/callback`: checks `state`, exchanges the code, verifies the id token (nonce
//!   included) with the verifier you give, stores a new server session and sets its cookie:
//!   256 random bits, HttpOnly, `Secure` (unless plain http on loopback was allowed),
//!   `SameSite=Lax`, `Path=/auth`. The refresh token never reaches the browser. Any failure is
//!   400 `invalid_callback` and stores nothing.
//! - `POST /auth/token`: `{"access_token", "expires_in", "token_type": "Bearer"}`, refreshing
//!   first when the stored access token expires within the margin (60 s by default).
//! - `POST /auth/logout`: `RevokeToken` at Cognito, revokes the session in the API's session
//!   window (when given with [`BffBuilder::revoke_in`]), deletes the server session and clears
//!   the cookie: 204.
//!
//! **Cross-site requests**: both POSTs require an `Origin` header naming the callback URL's
//! origin (or one added with [`BffBuilder::allow_origin`]); anything else, a missing `Origin`
//! included, is 403 `cross_site_request`. Browsers send `Origin` with every POST made by
//! `fetch`; programs that are not browsers set it themselves.
//!
//! **Answers a single-page app branches on** (JSON `error`, stable, see [`codes`]): 401
//! `login_required` (no session, or it ended: go to `/auth/login`), 503
//! `temporarily_unavailable` (Cognito or the store is down; the session is kept; retry),
//! 403 `cross_site_request`.
//!
//! # One refresh per session
//!
//! Each [`RefreshStore`] offers a lease lock with a fencing token (see its docs): `lock`
//! answers the record as stored (the reload), the holder re-checks whether someone refreshed
//! meanwhile, refreshes with `GetTokensFromRefreshToken`, and `save` stores the result only if
//! no newer fence was issued (the release). A holder that dies mid-refresh blocks its session
//! for at most the lease (15 s by default); its late write, if it ever comes, is refused. On
//! `RefreshTokenReuseException` the session is reloaded: a newer refresh token stored by
//! another server is used; without one the session ends (401 `login_required`). Cognito being
//! unavailable is a 503 and never ends a session.
//!
//! | backend | lock | shared by servers |
//! | --- | --- | --- |
//! | [`MemoryRefreshStore`] | a lease in this process | no |
//! | `RedisRefreshStore` (feature `redis`) | `SET NX PX` + a fence counter, Lua compare-and-save | yes |
//! | `PostgresRefreshStore` (feature `postgres`) | a lease column + a fence counter in the row | yes |
//!
//! # At rest
//!
//! A session's tokens are sealed with AES-256-GCM under the current [`SealingKeys`] key, with
//! the session's id as associated data; the id is the SHA-256 of the cookie. A dump of the store
//! holds no usable token and no cookie value.

mod bff;
mod coordinator;
mod memory;
mod seal;
mod store;
mod web;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

pub use bff::{
    Bff, BffBuilder, DEFAULT_LOCK_LEASE, DEFAULT_PREFIX, DEFAULT_REFRESH_MARGIN,
    DEFAULT_SESSION_TTL,
};
pub use memory::MemoryRefreshStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresRefreshStore;
#[cfg(feature = "redis")]
pub use redis::RedisRefreshStore;
pub use seal::SealingKeys;
pub use store::{LockOutcome, RefreshStore, SaveOutcome, SessionRecord};
pub use tower_cognito_client::{Secret, TokenClient, TokenClientBuilder, TokenError, Tokens};
pub use web::{codes, BffBody};
