//! The tower adapter: the layer, its service and response future, how refusals are answered
//! (HTTP, and gRPC), where the token is read from, and the RFC 6750 challenge.

mod bearer;
mod challenge;
mod cookie;
mod future;
mod grpc;
mod layer;
mod rejection;
mod service;
mod source;

pub use cookie::CsrfRule;
pub use grpc::{GrpcAnswers, GrpcCode};
pub use source::{TokenResolver, TokenSource};

pub use future::ResponseFuture;
#[cfg(feature = "axum")]
pub(crate) use grpc::reject_grpc;
pub use layer::CognitoAuthLayer;
#[cfg(feature = "axum")]
pub(crate) use rejection::reject;
pub use rejection::{DefaultRejection, OnRejection};
#[cfg(feature = "axum")]
pub(crate) use service::Anonymous;
pub use service::CognitoAuth;
