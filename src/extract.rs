//! The axum extractor: `Verified<C>` and `Option<Verified<C>>` in handlers (feature `axum`).

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use std::sync::Arc;

use crate::error::AuthError;
use crate::http::{reject, reject_grpc, Anonymous, DefaultRejection};
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

/// The rejection of the `Verified<C>` extractor.
///
/// - No [`CognitoAuthLayer`] (of that claims type) in front of the route: 500, as for
///   [`MissingAuthLayer`]: a bug in the application.
/// - A layer in [`optional`](crate::CognitoAuthLayer::optional) mode let an anonymous request
///   through to a handler that needs claims: 401 with the bare `Bearer realm` challenge and
///   `cognito-auth-reason: missing_token`, exactly what a required layer answers (the
///   [`AuthError`] is in the response extensions); to a request the layer would have answered
///   the gRPC way ([`grpc_answers`](crate::CognitoAuthLayer::grpc_answers)), the same
///   Trailers-Only UNAUTHENTICATED answer the layer gives. A custom rejection of the layer is
///   not applied here.
///
/// [`CognitoAuthLayer`]: crate::CognitoAuthLayer
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRejection {
    /// The layer's realm (and whether it answers this request the gRPC way) when the request
    /// was let through anonymously; `None`: no layer ran.
    anonymous_in: Option<(Arc<str>, bool)>,
}

impl VerifiedRejection {
    /// Whether no layer ran at all (the 500 case), as opposed to an anonymous request.
    pub fn is_missing_layer(&self) -> bool {
        self.anonymous_in.is_none()
    }
}

impl IntoResponse for VerifiedRejection {
    fn into_response(self) -> Response {
        match self.anonymous_in {
            None => MissingAuthLayer.into_response(),
            Some((realm, false)) => reject(AuthError::MissingToken, &realm, &DefaultRejection),
            Some((realm, true)) => reject_grpc(AuthError::MissingToken, &realm),
        }
    }
}

impl std::fmt::Display for VerifiedRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.anonymous_in {
            None => MissingAuthLayer.fmt(f),
            Some(_) => f.write_str("no credentials on a route that needs them"),
        }
    }
}

impl std::error::Error for VerifiedRejection {}

impl<S, C> FromRequestParts<S> for Verified<C>
where
    S: Send + Sync,
    C: Send + Sync + 'static,
{
    type Rejection = VerifiedRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(verified) = parts.extensions.get::<Verified<C>>() {
            return Ok(verified.clone());
        }
        let anonymous_in = parts
            .extensions
            .get::<Anonymous>()
            .map(|a| (a.realm.clone(), a.grpc.applies(&parts.headers)));
        Err(VerifiedRejection { anonymous_in })
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
