//! How a refused request is answered: [`OnRejection`], with [`DefaultRejection`] and closures.

use http::header::WWW_AUTHENTICATE;
use http::Response;

use crate::error::AuthError;

/// Builds the response for a refused request.
///
/// Implemented by [`DefaultRejection`] (an empty body) and by any
/// `Fn(&AuthError) -> Response<B> + Clone`, for example to send a JSON body. Whatever it returns,
/// the layer then adds the RFC 6750 `WWW-Authenticate` header (unless the response already has
/// one) and puts the [`AuthError`] in the response extensions, so outer layers can read why.
/// Use [`AuthError::status`] to keep the status right.
pub trait OnRejection<B>: Clone + Send + Sync + 'static {
    /// The response for `error`.
    fn on_rejection(&self, error: &AuthError) -> Response<B>;
}

/// The default rejection: the error's status, an empty body, and the marker header
/// `cognito-auth-reason: <reason>`, whose value is [`AuthError::reason`] (such as
/// `superseded`, `revoked`, `expired`, `missing_token` or `store_unavailable`).
///
/// The marker is a stable contract: clients read it instead of the English
/// `error_description` to tell "refresh and retry" (`superseded`, `expired`) from "sign in
/// again". tower-cognito-client retries once on a 401 marked `superseded`, `revoked` or
/// `expired`. A custom [`OnRejection`] should set the same header to keep that working.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection;

impl<B: Default> OnRejection<B> for DefaultRejection {
    fn on_rejection(&self, error: &AuthError) -> Response<B> {
        let mut response = Response::new(B::default());
        *response.status_mut() = error.status();
        let reason = http::HeaderValue::from_static(error.reason());
        response.headers_mut().insert("cognito-auth-reason", reason);
        response
    }
}

impl<B, F> OnRejection<B> for F
where
    F: Fn(&AuthError) -> Response<B> + Clone + Send + Sync + 'static,
{
    fn on_rejection(&self, error: &AuthError) -> Response<B> {
        self(error)
    }
}

/// Every refusal is logged (a warning for our outages (503), a debug event otherwise) and
/// counted (feature `metrics`).
pub(crate) fn log_refusal(error: &AuthError) {
    crate::metrics::refused(error);
    let status = error.status().as_u16();
    if status == 503 {
        tracing::warn!(
            reason = error.reason(),
            status,
            "request refused: dependency unavailable"
        );
    } else {
        tracing::debug!(reason = error.reason(), status, "request refused");
    }
}

/// The full rejection: log it, build the response, add the challenge and the typed error.
pub(crate) fn reject<B, R: OnRejection<B>>(
    error: AuthError,
    realm: &str,
    on_rejection: &R,
) -> Response<B> {
    log_refusal(&error);
    let mut response = on_rejection.on_rejection(&error);
    if !response.headers().contains_key(WWW_AUTHENTICATE) {
        if let Some(challenge) = error.www_authenticate(realm) {
            response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        }
    }
    response.extensions_mut().insert(error);
    response
}
