//! [`ResponseFuture`]: verification, then the inner service.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::future::BoxFuture;
use http::Response;
use pin_project_lite::pin_project;

pin_project! {
    /// The response future of [`CognitoAuth`](crate::CognitoAuth).
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Verifying { fut: BoxFuture<'static, Result<F, Response<B>>> },
        Inner { #[pin] fut: F },
        Rejected { response: Option<Response<B>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn verifying(fut: BoxFuture<'static, Result<F, Response<B>>>) -> Self {
        Self {
            state: State::Verifying { fut },
        }
    }

    pub(crate) fn inner(fut: F) -> Self {
        Self {
            state: State::Inner { fut },
        }
    }

    pub(crate) fn rejected(response: Response<B>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Verifying { fut } => match ready!(fut.as_mut().poll(cx)) {
                    Ok(inner) => this.state.set(State::Inner { fut: inner }),
                    Err(response) => {
                        this.state.set(State::Rejected { response: None });
                        return Poll::Ready(Ok(response));
                    }
                },
                StateProj::Inner { fut } => return fut.poll(cx),
                StateProj::Rejected { response } => {
                    return Poll::Ready(Ok(response
                        .take()
                        .expect("ResponseFuture polled after completion")));
                }
            }
        }
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
