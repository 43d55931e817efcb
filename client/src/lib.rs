//! Talk to AWS Cognito as a client: the token endpoints with typed answers, for programs that
//! call Cognito-protected APIs and for servers that keep sessions (tower-cognito's `refresh`
//! feature builds on it).
//!
//! [`TokenClient`] speaks the OAuth2 endpoints of the pool's domain (hosted-UI sign-in with
//! PKCE, the `refresh_token` and `client_credentials` grants) and Cognito's JSON API
//! (`GetTokensFromRefreshToken`, the call that completes refresh-token rotation, and
//! `RevokeToken`). Every answer is one of: new [`Tokens`], [`TokenError::Reused`] (the refresh
//! token was already rotated), [`TokenError::Invalid`] (sign in again),
//! [`TokenError::Unavailable`] (retry later; never a reason to sign out) or
//! [`TokenError::Rejected`] (a configuration error).
//!
//! Secrets (refresh tokens, client secrets) are held in [`Secret`], which never shows itself in
//! `Debug` and is zeroed on drop.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![deny(unreachable_pub)]

mod secret;
mod token_client;

pub use secret::Secret;
pub use token_client::{
    Authorization, Cause, ClientConfigError, TokenClient, TokenClientBuilder, TokenError, Tokens,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT,
};
