//! Talk to AWS Cognito as a client: the token endpoints with typed answers, and token sources
//! that refresh once and retry once, for programs that call Cognito-protected APIs (a CLI, a
//! desktop app, a worker calling another service) and for servers that keep sessions
//! (tower-cognito's `refresh` feature builds on it).
//!
//! # The pieces
//!
//! | piece | what it does |
//! | --- | --- |
//! | [`TokenClient`] | Cognito's token calls: hosted-UI sign-in (PKCE), `GetTokensFromRefreshToken` (rotation), `InitiateAuth` `REFRESH_TOKEN_AUTH` (no rotation), `refresh_token` and `client_credentials` grants, `RevokeToken` |
//! | [`TokenSource`] | one sign-in's tokens: an access token valid for a margin, ONE refresh for all concurrent callers, rotation kept |
//! | [`TokenStore`], [`FileTokenStore`] | the tokens between runs, shared by processes: atomic 0600 file, OS file lock around refresh |
//! | [`ClientCredentialsSource`] | an M2M token for a set of scopes, cached and refreshed before expiry, single-flight |
//! | [`BearerAuthLayer`] | a tower client layer (hyper-util's `Client`...): `Authorization: Bearer`, one refresh and replay after a marked 401 |
//! | `BearerMiddleware` | the same for `reqwest-middleware` (feature `reqwest-middleware`) |
//! | [`AuthReason`], [`AUTH_REASON_HEADER`] | the server's `cognito-auth-reason` marker |
//!
//! # The rotation race, from the client's side
//!
//! With refresh-token rotation, a refresh spends the refresh token it sends. Two refreshes
//! with the same token (two tasks, two terminals) and a grace period of 0: the second fails
//! and the user is signed out. So:
//!
//! - within a process, concurrent callers share one refresh ([`TokenSource`]);
//! - across processes, a [`FileTokenStore`] lock is held around the refresh: lock, read the
//!   store again, use the tokens another process saved meanwhile, else refresh and save;
//! - if Cognito still answers "already used", the store is read once more and the refresh
//!   retried once with a newer refresh token; only then must the user sign in again;
//! - when the API (tower-cognito with its session window) refuses a token because newer
//!   refreshes of the same sign-in superseded its chain, it says so in the
//!   `cognito-auth-reason` header; [`BearerAuthLayer`] then refreshes and replays the
//!   request once.
//!
//! # Errors
//!
//! [`SourceError::kind`] says what to do: [`Unavailable`](SourceErrorKind::Unavailable)
//! (Cognito down or throttling: the tokens are kept, retry later; never a reason to sign out),
//! [`SignInRequired`](SourceErrorKind::SignInRequired), [`Rejected`](SourceErrorKind::Rejected)
//! (configuration) or [`Store`](SourceErrorKind::Store) (I/O, a corrupt file: left as it is).
//!
//! # When does this crate talk to the network?
//!
//! Only to Cognito's endpoints configured in the [`TokenClient`], when a token is missing, is
//! within the margin of its expiry, or was refused by the API; and to your API, through the
//! layer or middleware. Never in a constructor.
//!
//! Secrets (tokens, client secrets) are held in [`Secret`], which never shows itself in
//! `Debug` and is zeroed on drop; no error or log line carries one.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![deny(unreachable_pub)]

mod bearer;
mod body;
mod error;
mod file_store;
mod flight;
mod jwt;
mod layer;
mod m2m;
#[cfg(feature = "reqwest-middleware")]
mod middleware;
mod reason;
mod secret;
mod source;
mod store;
mod stored;
mod token_client;

pub use bearer::{AuthorizeError, BearerSource};
pub use body::ReplayBody;
pub use error::{SourceError, SourceErrorKind};
pub use file_store::{FileTokenStore, DEFAULT_LOCK_TIMEOUT};
pub use layer::{BearerAuth, BearerAuthLayer, BearerFuture, BoxError};
pub use m2m::ClientCredentialsSource;
#[cfg(feature = "reqwest-middleware")]
pub use middleware::BearerMiddleware;
pub use reason::{AuthReason, AUTH_REASON_HEADER};
pub use secret::Secret;
pub use source::{TokenSource, TokenSourceBuilder, DEFAULT_MARGIN};
pub use store::{StoreError, StoreErrorKind, StoreFuture, StoreLock, TokenStore};
pub use stored::StoredTokens;
pub use token_client::{
    Authorization, Cause, ClientConfigError, TokenClient, TokenClientBuilder, TokenError, Tokens,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT,
};

/// The README's examples, compiled as doctests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
