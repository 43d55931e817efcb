//! The axum extractors of the ALB claims: `AlbClaims` and `Option<AlbClaims>` in handlers
//! behind an [`AlbAuthLayer`] (feature `axum`), answering as the main crate's `Verified` does.

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use super::layer::{refusal, AlbAnonymous};
#[cfg(doc)]
use super::AlbAuthLayer;
use super::{AlbClaims, AlbError};

/// The rejection of the `Option<AlbClaims>` extractor: the route has no [`AlbAuthLayer`] in
/// front of it. That is a bug in the application, so the answer is 500, not 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingAlbLayer;

impl IntoResponse for MissingAlbLayer {
    fn into_response(self) -> Response {
        tracing::error!("AlbClaims extracted on a route without an AlbAuthLayer");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "tower-cognito: no AlbAuthLayer in front of this route",
        )
            .into_response()
    }
}

impl std::fmt::Display for MissingAlbLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no AlbAuthLayer in front of this route")
    }
}

impl std::error::Error for MissingAlbLayer {}

/// The rejection of the `AlbClaims` extractor.
///
/// - No [`AlbAuthLayer`] in front of the route: 500, as for [`MissingAlbLayer`]: a bug in the
///   application.
/// - A layer in [`optional`](AlbAuthLayer::optional) mode let a request without the header
///   through to a handler that needs claims: 401 with an empty body and
///   [`AlbError::MissingToken`] in the response extensions, exactly what a required layer
///   answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlbClaimsRejection {
    anonymous: bool,
}

impl AlbClaimsRejection {
    /// Whether no layer ran at all (the 500 case), as opposed to an anonymous request.
    pub fn is_missing_layer(&self) -> bool {
        !self.anonymous
    }
}

impl IntoResponse for AlbClaimsRejection {
    fn into_response(self) -> Response {
        if self.anonymous {
            refusal(AlbError::MissingToken)
        } else {
            MissingAlbLayer.into_response()
        }
    }
}

impl std::fmt::Display for AlbClaimsRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.anonymous {
            f.write_str("no load balancer token on a route that needs one")
        } else {
            MissingAlbLayer.fmt(f)
        }
    }
}

impl std::error::Error for AlbClaimsRejection {}

/// `AlbClaims` in a handler: the claims an [`AlbAuthLayer`] verified.
impl<S: Send + Sync> FromRequestParts<S> for AlbClaims {
    type Rejection = AlbClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(claims) = parts.extensions.get::<AlbClaims>() {
            return Ok(claims.clone());
        }
        let anonymous = parts.extensions.get::<AlbAnonymous>().is_some();
        Err(AlbClaimsRejection { anonymous })
    }
}

/// `Option<AlbClaims>`: `None` for a request the layer let through without the header
/// ([`optional`](AlbAuthLayer::optional) mode); still a 500 when no layer ran at all.
impl<S: Send + Sync> OptionalFromRequestParts<S> for AlbClaims {
    type Rejection = MissingAlbLayer;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match parts.extensions.get::<AlbClaims>() {
            Some(claims) => Ok(Some(claims.clone())),
            None if parts.extensions.get::<AlbAnonymous>().is_some() => Ok(None),
            None => Err(MissingAlbLayer),
        }
    }
}
