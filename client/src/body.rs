//! [`ReplayBody`]: which request bodies can be sent twice.

use bytes::Bytes;
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{Empty, Full};

/// A request body that can be replayed: [`BearerAuth`](crate::BearerAuth) retries a request
/// only when its body clones. Buffered bodies ([`Full`], [`Empty`], `String`, `Bytes`,
/// `Vec<u8>`, `()`) do; streams ([`BoxBody`], [`UnsyncBoxBody`]) do not, and a request with
/// one is answered with the first response, as it came (its token is refreshed all the same,
/// for the next request).
///
/// Implement it for your own body type: `Some(self.clone())` for a buffer, `None` for a
/// stream.
pub trait ReplayBody: Sized {
    /// A copy to send again, or `None` if this body can be sent only once.
    fn try_clone(&self) -> Option<Self>;
}

impl<D: Clone> ReplayBody for Full<D> {
    fn try_clone(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> ReplayBody for Empty<D> {
    fn try_clone(&self) -> Option<Self> {
        Some(Empty::new())
    }
}

macro_rules! cloned {
    ($($t:ty),*) => {$(
        impl ReplayBody for $t {
            fn try_clone(&self) -> Option<Self> {
                Some(self.clone())
            }
        }
    )*};
}

cloned!(String, Bytes, Vec<u8>, ());

impl<D, E> ReplayBody for BoxBody<D, E> {
    fn try_clone(&self) -> Option<Self> {
        None
    }
}

impl<D, E> ReplayBody for UnsyncBoxBody<D, E> {
    fn try_clone(&self) -> Option<Self> {
        None
    }
}
