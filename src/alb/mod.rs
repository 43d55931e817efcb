//! Verifying the `x-amzn-oidc-data` header of an Application Load Balancer that authenticates
//! users with Cognito (or another OIDC provider) in front of the service.
//!
//! The ALB signs its own token, not Cognito's: ES256 over a header that names the load balancer
//! (`signer`), the identity provider (`iss`), the app client (`client`) and the expiry (`exp`),
//! and a payload of the user's claims (`sub`, `email`, `username`, ...). Its key is not in a
//! JWKS: each `kid` is one PEM file at the region's key endpoint,
//! `https://public-keys.auth.elb.{region}.amazonaws.com/{kid}` (GovCloud:
//! `https://s3-{region}.amazonaws.com/aws-elb-public-keys-prod-{region}/{kid}`).
//!
//! ```no_run
//! use tower_cognito::alb::{AlbConfig, AlbVerifier};
//!
//! # async fn run(header_value: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = AlbVerifier::new(
//!     AlbConfig::new(["arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188"])
//!         .issuer("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123")
//!         .client_id("1example23456789"),
//! )?;
//! match verifier.verify(header_value).await {
//!     Ok(claims) => println!("hello {:?}", claims.sub()),
//!     // 401 for a bad token, 503 when the key endpoint is down.
//!     Err(e) => println!("{} {}", e.status(), e.description()),
//! }
//! # Ok(()) }
//! ```
//!
//! # The order of checks
//!
//! 1. Size cap; three base64url parts (`=` padding tolerated here only: ALB pads), a JSON
//!    header with no duplicate members and no `crit`.
//! 2. `alg` is exactly `ES256` (no `none`, no `HS256`/`RS256`, no `es256`).
//! 3. `kid` is present and only hexadecimal digits and `-`, at most 64 characters: anything else
//!    is refused before any fetch, so a kid never shapes a URL beyond one path segment.
//! 4. `signer` is exactly one of the configured load balancer ARNs. It selects the key
//!    endpoint (the ARN's region, or the override): an unknown signer is refused without fetch.
//!    A signature part that is not 64 bytes is refused here too.
//! 5. The key of `kid`: from the cache, or fetched (one fetch per kid at a time; a failed kid is
//!    not asked again for the cooldown; at most a budget of fetches per cooldown in all).
//! 6. The signature (64 bytes, `r || s`) over the parts as sent.
//! 7. After the signature: header `exp` (required) with the leeway, payload `exp` if present,
//!    then `iss` and `client` when configured.
//!
//! # In a service
//!
//! [`AlbAuthLayer`] verifies the header of every request and puts the [`AlbClaims`] into the
//! request extensions; with the `axum` feature a handler takes `AlbClaims` as an extractor, or
//! `Option<AlbClaims>` behind an [`optional`](AlbAuthLayer::optional) layer. Missing layer: 500
//! (`MissingAlbLayer`); an anonymous request on a route that needs claims: the layer's own
//! 401. Apply it with axum's `Router::route_layer`, so that unknown paths stay 404.
//!
//! # Deployment
//!
//! The header proves what the ALB saw only if nobody else can send it: let the service be
//! reached through the load balancer alone (security groups), as AWS advises. The signer check
//! stops tokens of other load balancers, including other accounts'.

mod claims;
mod config;
mod endpoint;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod keys;
mod layer;
mod token;
mod verifier;

use std::time::Duration;

pub use claims::AlbClaims;
pub use config::AlbConfig;
pub use error::AlbError;
#[cfg(feature = "axum")]
pub use extract::{AlbClaimsRejection, MissingAlbLayer};
pub use layer::{AlbAuth, AlbAuthLayer};
pub use verifier::AlbVerifier;

/// The header an ALB puts its signed token in.
pub const ALB_DATA_HEADER: &str = "x-amzn-oidc-data";

/// How long a kid whose fetch failed is not asked for again, and the window of the fetch
/// budget: 30 seconds.
pub const DEFAULT_ALB_KEY_COOLDOWN: Duration = Duration::from_secs(30);

/// Key fetches of uncached kids allowed per cooldown window, across all kids: 8.
pub const DEFAULT_ALB_FETCHES_PER_COOLDOWN: u32 = 8;

/// The longest `x-amzn-oidc-data` value accepted: 32 KiB (ALB caps user claims at 11 KiB).
pub const DEFAULT_ALB_MAX_TOKEN_BYTES: usize = 32 * 1024;

const MAX_KEY_BYTES: usize = 4 * 1024;
