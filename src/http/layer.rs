//! [`CognitoAuthLayer`]: the one line a user adds to a service.

use tower_layer::Layer;

use super::grpc::GrpcAnswers;
use super::rejection::DefaultRejection;
use super::service::CognitoAuth;
use super::source::TokenSource;
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
    options: Options,
    on_rejection: R,
}

/// The layer's settings besides the verifier and the rejection, handed to each service.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    pub(crate) optional: bool,
    pub(crate) source: TokenSource,
    pub(crate) grpc: GrpcAnswers,
}

// By hand: a derive would require `C: Clone`, and the claims type need not be.
impl<C, R: Clone> Clone for CognitoAuthLayer<C, R> {
    fn clone(&self) -> Self {
        Self {
            verifier: self.verifier.clone(),
            options: self.options.clone(),
            on_rejection: self.on_rejection.clone(),
        }
    }
}

impl<C> CognitoAuthLayer<C> {
    /// A layer that refuses every request without a valid token, read from the
    /// `Authorization: Bearer` header; refusals to gRPC requests are answered the gRPC way.
    pub fn new(verifier: Verifier<C>) -> Self {
        Self {
            verifier,
            options: Options::default(),
            on_rejection: DefaultRejection,
        }
    }
}

impl<C, R> CognitoAuthLayer<C, R> {
    /// Lets requests with no Bearer token through, unauthenticated (no `Verified` extension);
    /// requests with a bad token are still refused. For routes that serve anonymous users too,
    /// with `Option<Verified<C>>` in the handler.
    pub fn optional(mut self) -> Self {
        self.options.optional = true;
        self
    }

    /// Where the token is read from: the `Authorization: Bearer` header by default, or a cookie
    /// (with a CSRF rule) or your own resolver; see [`TokenSource`] and, for cookies, the CSRF
    /// rules of [`CsrfRule`](crate::CsrfRule). Never the query string.
    ///
    /// ```
    /// # use tower_cognito::{ClientIds, CognitoAuthLayer, CognitoConfig, TokenUse, UserPool, Verifier};
    /// use tower_cognito::{CsrfRule, TokenSource};
    /// # let config = CognitoConfig::new(UserPool::parse("eu-west-1_AbC").unwrap(), TokenUse::Access, ClientIds::one("c"));
    /// let source = TokenSource::cookie(
    ///     "__Host-access_token",
    ///     CsrfRule::allowed_origins(["https://app.example.com"])?,
    /// )?;
    /// let layer = CognitoAuthLayer::new(Verifier::new(config)?).token_source(source);
    /// # let _ = layer;
    /// # Ok::<(), tower_cognito::ConfigError>(())
    /// ```
    pub fn token_source(mut self, source: TokenSource) -> Self {
        if source.is_unprotected_cookie() {
            tracing::warn!(
                "CognitoAuthLayer reads a token cookie with CsrfRule::allow_cross_site_forgery(): \
                 any site can make a signed-in browser send authenticated unsafe requests"
            );
        }
        self.options.source = source;
        self
    }

    /// When refusals are answered the gRPC way (Trailers-Only: HTTP 200, `grpc-status`,
    /// `grpc-message`): by default ([`GrpcAnswers::Detect`]) for requests whose `content-type`
    /// is `application/grpc`; [`GrpcAnswers::Always`] for a gRPC-only server,
    /// [`GrpcAnswers::Never`] for plain HTTP answers to every request. The statuses are in
    /// [`AuthError::grpc_code`](crate::AuthError::grpc_code).
    pub fn grpc_answers(mut self, answers: GrpcAnswers) -> Self {
        self.options.grpc = answers;
        self
    }

    /// Replaces how refusals are answered over HTTP, for example with a JSON body. gRPC
    /// answers (see [`grpc_answers`](Self::grpc_answers)) are not affected: they have no body.
    pub fn on_rejection<R2>(self, on_rejection: R2) -> CognitoAuthLayer<C, R2> {
        CognitoAuthLayer {
            verifier: self.verifier,
            options: self.options,
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
            self.options.clone(),
            self.on_rejection.clone(),
        )
    }
}
