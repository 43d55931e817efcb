//! gRPC answers: refusals as Trailers-Only responses, for layers in front of tonic services.
//!
//! A gRPC client reads the outcome of a call from `grpc-status`, not from the HTTP status: a
//! 401 reaches a tonic client as a bare UNAUTHENTICATED with no message, and a 503 as a bare
//! UNAVAILABLE. So, to a gRPC request, the layer answers as a gRPC server does when it refuses a
//! call before any message: HTTP 200, `content-type: application/grpc`, `grpc-status` and a
//! percent-encoded `grpc-message`, and no body (the gRPC spec's Trailers-Only response).
//!
//! | refusal | `grpc-status` | HTTP answer otherwise |
//! | --- | --- | --- |
//! | no token, malformed credentials, any bad token (expired, superseded, revoked, ...) | 16 UNAUTHENTICATED | 400 / 401 |
//! | missing scope or group, a failed custom check | 7 PERMISSION_DENIED | 403 |
//! | no signing keys, session store down or slow | 14 UNAVAILABLE (retry with backoff) | 503 |
//!
//! `grpc-message` is the RFC 6750 text: the `error` code and the fixed `error_description`,
//! such as `invalid_token: The token has expired` (with `; scope="..."` for a missing scope;
//! the description alone when there is no code). The answer also keeps the HTTP answer's
//! headers that mean something to a caller: `cognito-auth-reason` (a tonic client reads it
//! from `Status::metadata()`) and the RFC 6750 `WWW-Authenticate` challenge, which gRPC
//! clients pass on as metadata and proxies such as Envoy read. The [`AuthError`] is in the
//! response extensions, as for HTTP answers. A custom
//! [`on_rejection`](crate::CognitoAuthLayer::on_rejection) shapes HTTP answers only: a gRPC
//! answer has no body to put anything in.

use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use super::rejection::log_refusal;
use crate::error::AuthError;

/// When [`CognitoAuthLayer`](crate::CognitoAuthLayer) answers a refusal the gRPC way; set with
/// [`CognitoAuthLayer::grpc_answers`](crate::CognitoAuthLayer::grpc_answers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrpcAnswers {
    /// gRPC answers to requests whose `content-type` is `application/grpc`, with or without a
    /// `+proto`, `+json` (or other) suffix or parameters; HTTP answers to every other request.
    /// The default: a layer in front of both a REST router and a tonic service answers each
    /// in its own protocol. Only the refusal looks at the header; an accepted request costs
    /// nothing more.
    ///
    /// gRPC-Web (`application/grpc-web...`) is not detected: put the layer inside tonic-web's
    /// `GrpcWebLayer`, which turns such requests into gRPC ones first.
    #[default]
    Detect,
    /// gRPC answers to every request: for a server that serves gRPC only.
    Always,
    /// HTTP answers to every request.
    Never,
}

impl GrpcAnswers {
    /// Whether a refused request with these headers gets a gRPC answer.
    pub(crate) fn applies(self, headers: &HeaderMap) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Detect => headers
                .get(CONTENT_TYPE)
                .is_some_and(|v| is_grpc_content_type(v.as_bytes())),
        }
    }
}

/// `application/grpc`, then nothing, `+suffix` or `;params` (ASCII case-insensitive).
fn is_grpc_content_type(value: &[u8]) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    value.len() >= GRPC.len()
        && value[..GRPC.len()].eq_ignore_ascii_case(GRPC)
        && matches!(value.get(GRPC.len()), None | Some(b'+' | b';' | b' '))
}

/// The gRPC status codes the layer answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrpcCode {
    /// 7: the caller is identified but may not do this (scope, group, custom check).
    PermissionDenied,
    /// 14: a dependency of ours is down; the client may retry with backoff.
    Unavailable,
    /// 16: no valid credentials.
    Unauthenticated,
}

impl GrpcCode {
    /// The code's number, as in `grpc-status` (and tonic's `Code::from_i32`).
    pub fn as_i32(self) -> i32 {
        match self {
            Self::PermissionDenied => 7,
            Self::Unavailable => 14,
            Self::Unauthenticated => 16,
        }
    }

    fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::PermissionDenied => "7",
            Self::Unavailable => "14",
            Self::Unauthenticated => "16",
        })
    }
}

/// The gRPC spec's `Percent-Byte-Unencoded`: space and visible ASCII, except `%`.
const GRPC_MESSAGE: &AsciiSet = &CONTROLS.add(b'%');

impl AuthError {
    /// The gRPC status of this error: 16 UNAUTHENTICATED for a missing token, malformed
    /// credentials or a bad token; 7 PERMISSION_DENIED for a missing scope or group or a failed
    /// check; 14 UNAVAILABLE when keys or the session store are unavailable.
    pub fn grpc_code(&self) -> GrpcCode {
        match self {
            Self::MissingToken | Self::InvalidRequest(_) | Self::InvalidToken(_) => {
                GrpcCode::Unauthenticated
            }
            Self::InsufficientScope { .. } => GrpcCode::PermissionDenied,
            Self::KeysUnavailable | Self::StoreUnavailable => GrpcCode::Unavailable,
        }
    }

    /// The `grpc-message` text of this error, before percent-encoding: the RFC 6750 `error`
    /// code and the fixed description, such as `invalid_token: The token has expired`.
    pub fn grpc_message(&self) -> String {
        let mut message = match self.error_code() {
            Some(code) => format!("{code}: {}", self.description()),
            None => self.description().to_owned(),
        };
        if let Self::InsufficientScope { scope: Some(s), .. } = self {
            message.push_str("; scope=\"");
            message.push_str(s);
            message.push('"');
        }
        message
    }
}

/// The Trailers-Only answer to a refused gRPC request (logged as every refusal is).
pub(crate) fn reject_grpc<B: Default>(error: AuthError, realm: &str) -> Response<B> {
    log_refusal(&error);
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", error.grpc_code().header_value());
    let message = utf8_percent_encode(&error.grpc_message(), GRPC_MESSAGE).to_string();
    if let Ok(message) = HeaderValue::from_str(&message) {
        headers.insert("grpc-message", message);
    }
    headers.insert(
        "cognito-auth-reason",
        HeaderValue::from_static(error.reason()),
    );
    if let Some(challenge) = error.www_authenticate(realm) {
        headers.insert(WWW_AUTHENTICATE, challenge);
    }
    response.extensions_mut().insert(error);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Forbidden, InvalidRequest, InvalidToken};

    #[test]
    fn detects_grpc_content_types() {
        for yes in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc+json",
            "Application/GRPC",
            "application/grpc; charset=utf-8",
            "application/grpc;x=y",
        ] {
            assert!(is_grpc_content_type(yes.as_bytes()), "{yes}");
        }
        for no in [
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpcx",
            "application/json",
            "text/plain",
            "",
        ] {
            assert!(!is_grpc_content_type(no.as_bytes()), "{no}");
        }
        let mut headers = HeaderMap::new();
        assert!(!GrpcAnswers::Detect.applies(&headers));
        assert!(GrpcAnswers::Always.applies(&headers));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        assert!(GrpcAnswers::Detect.applies(&headers));
        assert!(!GrpcAnswers::Never.applies(&headers));
    }

    #[test]
    fn maps_each_refusal_onto_its_status() {
        let cases = [
            (AuthError::MissingToken, 16, "No token was presented"),
            (
                AuthError::InvalidRequest(InvalidRequest::MultipleCredentials),
                16,
                "invalid_request: More than one credential was presented",
            ),
            (
                AuthError::InvalidToken(InvalidToken::Superseded),
                16,
                "invalid_token: The token belongs to a superseded session; refresh the tokens and retry",
            ),
            (
                AuthError::InvalidToken(InvalidToken::Revoked),
                16,
                "invalid_token: The session has been revoked",
            ),
            (
                AuthError::InsufficientScope {
                    reason: Forbidden::MissingScope,
                    scope: Some("orders/read orders/write".into()),
                },
                7,
                "insufficient_scope: The token lacks a required scope; scope=\"orders/read orders/write\"",
            ),
            (
                AuthError::InsufficientScope {
                    reason: Forbidden::CheckFailed,
                    scope: None,
                },
                7,
                "insufficient_scope: The token is not allowed to access this resource",
            ),
            (
                AuthError::KeysUnavailable,
                14,
                "The token signing keys are unavailable",
            ),
            (
                AuthError::StoreUnavailable,
                14,
                "The session store is unavailable",
            ),
        ];
        for (error, code, message) in cases {
            assert_eq!(error.grpc_code().as_i32(), code, "{error:?}");
            assert_eq!(error.grpc_message(), message, "{error:?}");
            let response: Response<()> = reject_grpc(error.clone(), "api");
            assert_eq!(response.status(), 200);
            let h = response.headers();
            assert_eq!(h["content-type"], "application/grpc");
            assert_eq!(h["grpc-status"], code.to_string().as_str());
            assert_eq!(h["cognito-auth-reason"], error.reason());
            assert_eq!(
                h.get(WWW_AUTHENTICATE),
                error.www_authenticate("api").as_ref()
            );
            assert_eq!(response.extensions().get::<AuthError>(), Some(&error));
        }
    }

    #[test]
    fn grpc_message_is_percent_encoded() {
        let encode = |s: &str| utf8_percent_encode(s, GRPC_MESSAGE).to_string();
        assert_eq!(encode("a b; c=\"d\""), "a b; c=\"d\"");
        assert_eq!(encode("100%"), "100%25");
        assert_eq!(encode("é\n"), "%C3%A9%0A");
    }
}
