//! [`CognitoAuthLayer`]: the one line a user adds to a service.

use tower_layer::Layer;

use super::rejection::DefaultRejection;
use super::service::CognitoAuth;
use crate::claims::AccessClaims;
use crate::verify::Verifier;

/// A tower [`Layer`] that lets through only requests with a valid Cognito token, and puts the
/// verified claims ([`Verified<C>`](crate::Verified)) into the request extensions.
///
/// Cheap to clone and to apply: all state sits behind the verifier's `Arc`.
#[derive(Debug)]
#[must_use]
pub struct CognitoAuthLayer<C = AccessClaims, R = DefaultRejection> {
    verifier: Verifier<C>,
    optional: bool,
    on_rejection: R,
}

// By hand: a derive would require `C: Clone`, and the claims type need not be.
impl<C, R: Clone> Clone for CognitoAuthLayer<C, R> {
    fn clone(&self) -> Self {
        Self {
            verifier: self.verifier.clone(),
            optional: self.optional,
            on_rejection: self.on_rejection.clone(),
        }
    }
}

impl<C> CognitoAuthLayer<C> {
    /// A layer that refuses every request without a valid token.
    pub fn new(verifier: Verifier<C>) -> Self {
        Self {
            verifier,
            optional: false,
            on_rejection: DefaultRejection,
        }
    }
}

impl<C, R> CognitoAuthLayer<C, R> {
    /// Lets requests with no Bearer token through, unauthenticated (no `Verified` extension);
    /// requests with a bad token are still refused. For routes that serve anonymous users too,
    /// with `Option<Verified<C>>` in the handler.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Replaces how refusals are answered, for example with a JSON body.
    pub fn on_rejection<R2>(self, on_rejection: R2) -> CognitoAuthLayer<C, R2> {
        CognitoAuthLayer {
            verifier: self.verifier,
            optional: self.optional,
            on_rejection,
        }
    }

    /// The verifier this layer uses.
    pub fn verifier(&self) -> &Verifier<C> {
        &self.verifier
    }
}

impl<S, C, R: Clone> Layer<S> for CognitoAuthLayer<C, R> {
    type Service = CognitoAuth<S, C, R>;

    fn layer(&self, inner: S) -> Self::Service {
        CognitoAuth::new(
            inner,
            self.verifier.clone(),
            self.optional,
            self.on_rejection.clone(),
        )
    }
}
