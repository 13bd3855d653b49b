use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::{AuthError, OnRejection, Principal, Scheme, telemetry};

pin_project! {
    /// Response future of [`Authenticate`](super::Authenticate): authenticating, then calling the
    /// inner service, or an immediate rejection.
    pub struct ResponseFuture<F, AF, S, R, ReqB, ResB> {
        #[pin]
        state: State<F, AF, S, R, ReqB, ResB>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, AF, S, R, ReqB, ResB> {
        Authenticating {
            #[pin]
            auth: AF,
            pending: Option<(S, Request<ReqB>)>,
            rejection: Arc<R>,
            scheme: Scheme,
        },
        Calling {
            #[pin]
            fut: F,
        },
        Rejected {
            response: Option<Response<ResB>>,
        },
    }
}

impl<F, AF, S, R, ReqB, ResB> ResponseFuture<F, AF, S, R, ReqB, ResB> {
    pub(crate) fn authenticating(
        auth: AF,
        inner: S,
        request: Request<ReqB>,
        rejection: Arc<R>,
        scheme: Scheme,
    ) -> Self {
        Self {
            state: State::Authenticating {
                auth,
                pending: Some((inner, request)),
                rejection,
                scheme,
            },
        }
    }

    pub(crate) fn calling(fut: F) -> Self {
        Self {
            state: State::Calling { fut },
        }
    }

    pub(crate) fn rejected(response: Response<ResB>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }
}

impl<F, AF, S, R, ReqB, ResB> fmt::Debug for ResponseFuture<F, AF, S, R, ReqB, ResB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Authenticating { .. } => "authenticating",
            State::Calling { .. } => "calling",
            State::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, AF, S, R, E, ReqB, ResB> Future for ResponseFuture<F, AF, S, R, ReqB, ResB>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    AF: Future<Output = Result<Principal, AuthError>>,
    S: Service<Request<ReqB>, Response = Response<ResB>, Error = E, Future = F>,
    R: OnRejection<ResB>,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Authenticating {
                    auth,
                    pending,
                    rejection,
                    scheme,
                } => {
                    let result = ready!(auth.poll(cx));
                    let Some((mut inner, mut request)) = pending.take() else {
                        // Only reachable if polled again after a rejection was returned.
                        panic!("ResponseFuture polled after completion");
                    };
                    match result {
                        Ok(principal) => {
                            telemetry::authenticated(&principal);
                            request.extensions_mut().insert(principal);
                            let fut = inner.call(request);
                            state.set(State::Calling { fut });
                        }
                        Err(error) => {
                            telemetry::rejected(Some(*scheme), &error);
                            return Poll::Ready(Ok(rejection.on_rejection(&error)));
                        }
                    }
                }
                StateProj::Calling { fut } => return fut.poll(cx),
                StateProj::Rejected { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}
