//! The tower adapter: the layer, its service and response future, how refusals are answered,
//! where the token is read from, and the RFC 6750 challenge.

mod bearer;
mod challenge;
mod future;
mod layer;
mod rejection;
mod service;

pub use future::ResponseFuture;
pub use layer::CognitoAuthLayer;
#[cfg(feature = "axum")]
pub(crate) use rejection::reject;
pub use rejection::{DefaultRejection, OnRejection};
#[cfg(feature = "axum")]
pub(crate) use service::Anonymous;
pub use service::CognitoAuth;
