use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::Anonymous;
use super::future::ResponseFuture;
use crate::credential::bearer_token;
use crate::{AuthError, Authentication, Authenticator, OnRejection, telemetry};

pub(crate) struct Shared<A> {
    pub(crate) authenticator: A,
    pub(crate) optional: bool,
}

/// Authenticates requests before they reach the inner service. Created by
/// [`AuthenticateLayer`](super::AuthenticateLayer).
pub struct Authenticate<S, A, R> {
    inner: S,
    shared: Arc<Shared<A>>,
    rejection: Arc<R>,
}

impl<S, A, R> Authenticate<S, A, R> {
    pub(crate) fn from_parts(inner: S, shared: Arc<Shared<A>>, rejection: Arc<R>) -> Self {
        Self {
            inner,
            shared,
            rejection,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, A, R> Clone for Authenticate<S, A, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            rejection: Arc::clone(&self.rejection),
        }
    }
}

impl<S: fmt::Debug, A, R> fmt::Debug for Authenticate<S, A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticate")
            .field("inner", &self.inner)
            .field("optional", &self.shared.optional)
            .finish_non_exhaustive()
    }
}

impl<S, A, R, ReqB, ResB> Service<Request<ReqB>> for Authenticate<S, A, R>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    A: Authenticator,
    R: OnRejection<ResB>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, A::Future, S, R, ReqB, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        match self.shared.authenticator.extract(&parts) {
            Ok(Some(found)) => match self.shared.authenticator.authenticate_now(found.credential) {
                // Decided at once: `self.inner` is the instance that was driven to readiness,
                // and it is called now.
                Authentication::Ready(Ok(principal)) => {
                    telemetry::authenticated(&principal);
                    parts.extensions.insert(principal);
                    ResponseFuture::calling(self.inner.call(Request::from_parts(parts, body)))
                }
                Authentication::Ready(Err(error)) => {
                    telemetry::rejected(Some(found.scheme), &error);
                    ResponseFuture::rejected(self.rejection.on_rejection(&error))
                }
                Authentication::Pending(auth) => {
                    // `self.inner` is the instance that was driven to readiness: it goes into
                    // the future, and a fresh clone stays behind for the next `poll_ready`.
                    let clone = self.inner.clone();
                    let ready = std::mem::replace(&mut self.inner, clone);
                    ResponseFuture::authenticating(
                        auth,
                        ready,
                        Request::from_parts(parts, body),
                        Arc::clone(&self.rejection),
                        found.scheme,
                    )
                }
            },
            // A Bearer token that no scheme claims is a credential all the same: a bad one, in
            // optional mode too.
            Ok(None) if matches!(bearer_token(&parts.headers), Ok(Some(_))) => {
                let error = AuthError::invalid_token("unrecognized bearer token");
                telemetry::rejected(None, &error);
                ResponseFuture::rejected(self.rejection.on_rejection(&error))
            }
            Ok(None) if self.shared.optional => {
                telemetry::anonymous();
                parts.extensions.insert(Anonymous);
                ResponseFuture::calling(self.inner.call(Request::from_parts(parts, body)))
            }
            Ok(None) => {
                let error = AuthError::missing_credential();
                telemetry::rejected(None, &error);
                ResponseFuture::rejected(self.rejection.on_rejection(&error))
            }
            Err(error) => {
                telemetry::rejected(None, &error);
                ResponseFuture::rejected(self.rejection.on_rejection(&error))
            }
        }
    }
}
