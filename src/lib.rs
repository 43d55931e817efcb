//! A tower [`Layer`](tower_layer::Layer) that lets through only genuine AWS Cognito tokens.
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
//! let verifier: Verifier = Verifier::new(config)?;
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
//! See [`verifier`] for the order of checks and [`AuthError`] for the answers.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![deny(unreachable_pub)]

mod bearer;
mod cache;
mod claims;
mod clock;
mod config;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod jwks;
mod layer;
mod rejection;
mod rules;
mod service;
pub mod session;
pub mod verifier;

pub use claims::{AccessClaims, AnyClaims, IdClaims};
pub use clock::{Clock, SystemClock};
pub use config::{
    ClientIds, CognitoConfig, ConfigError, IssuerForm, Issuers, TokenUse, UserPool,
    DEFAULT_JWKS_COOLDOWN, DEFAULT_JWKS_MAX_AGE, DEFAULT_LEEWAY, DEFAULT_MAX_JWKS_BYTES,
    DEFAULT_MAX_TOKEN_BYTES, DEFAULT_REALM, DEFAULT_TOKEN_CACHE_SIZE,
};
pub use error::{AuthError, Forbidden, InvalidRequest, InvalidToken};
#[cfg(feature = "axum")]
pub use extract::MissingAuthLayer;
pub use future::ResponseFuture;
pub use layer::CognitoAuthLayer;
pub use rejection::{DefaultRejection, OnRejection};
pub use service::CognitoAuth;
pub use verifier::{Verified, Verifier};

/// The README's examples, compiled as doctests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
