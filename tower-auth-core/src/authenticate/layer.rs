use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::service::{Authenticate, Shared};
use crate::DefaultRejection;

/// Applies [`Authenticate`] to a service. See the [module docs](crate::authenticate).
#[derive(Clone)]
pub struct AuthenticateLayer<A, R = DefaultRejection> {
    authenticator: A,
    rejection: R,
    optional: bool,
}

impl<A> AuthenticateLayer<A> {
    /// Every request must carry a valid credential.
    pub fn required(authenticator: A) -> Self {
        Self {
            authenticator,
            rejection: DefaultRejection::default(),
            optional: false,
        }
    }

    /// Requests without any credential pass anonymously (no `Principal` is inserted); a
    /// credential that is present is checked as in [`required`](Self::required).
    pub fn optional(authenticator: A) -> Self {
        Self {
            authenticator,
            rejection: DefaultRejection::default(),
            optional: true,
        }
    }
}

impl<A, R> AuthenticateLayer<A, R> {
    /// Builds rejections with `rejection` instead (for example
    /// [`GrpcRejection`](crate::GrpcRejection), or a closure).
    pub fn with_rejection<R2>(self, rejection: R2) -> AuthenticateLayer<A, R2> {
        AuthenticateLayer {
            authenticator: self.authenticator,
            rejection,
            optional: self.optional,
        }
    }
}

impl<A, R> fmt::Debug for AuthenticateLayer<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticateLayer")
            .field("optional", &self.optional)
            .finish_non_exhaustive()
    }
}

impl<S, A: Clone, R: Clone> Layer<S> for AuthenticateLayer<A, R> {
    type Service = Authenticate<S, A, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate::from_parts(
            inner,
            Arc::new(Shared {
                authenticator: self.authenticator.clone(),
                optional: self.optional,
            }),
            Arc::new(self.rejection.clone()),
        )
    }
}
