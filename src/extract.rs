//! The axum extractor: `Verified<C>` and `Option<Verified<C>>` in handlers (feature `axum`).

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::http::Anonymous;
use crate::verify::Verified;

/// The rejection of the `Verified<C>` extractor: the route has no [`CognitoAuthLayer`] in front
/// of it (or one with another claims type). That is a bug in the application, so the answer is
/// 500, not 401.
///
/// [`CognitoAuthLayer`]: crate::CognitoAuthLayer
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingAuthLayer;

impl IntoResponse for MissingAuthLayer {
    fn into_response(self) -> Response {
        tracing::error!(
            "Verified<C> extracted on a route without a CognitoAuthLayer of that claims type"
        );
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "tower-cognito: no CognitoAuthLayer in front of this route",
        )
            .into_response()
    }
}

impl std::fmt::Display for MissingAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no CognitoAuthLayer in front of this route")
    }
}

impl std::error::Error for MissingAuthLayer {}

impl<S, C> FromRequestParts<S> for Verified<C>
where
    S: Send + Sync,
    C: Send + Sync + 'static,
{
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Verified<C>>()
            .cloned()
            .ok_or(MissingAuthLayer)
    }
}

/// `Option<Verified<C>>`: `None` for a request the layer let through anonymously
/// ([`optional`](crate::CognitoAuthLayer::optional) mode); still a 500 when no layer ran at all.
impl<S, C> OptionalFromRequestParts<S> for Verified<C>
where
    S: Send + Sync,
    C: Send + Sync + 'static,
{
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match parts.extensions.get::<Verified<C>>() {
            Some(verified) => Ok(Some(verified.clone())),
            None if parts.extensions.get::<Anonymous>().is_some() => Ok(None),
            None => Err(MissingAuthLayer),
        }
    }
}
