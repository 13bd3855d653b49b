//! Authorization after authentication: required scopes, roles, or any predicate on the
//! [`Principal`].
//!
//! These layers read the `Principal` that an [`AuthenticateLayer`](crate::AuthenticateLayer)
//! earlier in the stack inserted. Without one the request is 401 (no credential); with one that
//! fails the requirement it is 403: `insufficient_scope` with a `scope` attribute for
//! [`RequireScopesLayer`], a plain 403 for roles and predicates (roles are not scopes).
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_auth_core::{Principal, RequireRolesLayer, RequireScopesLayer, Scheme};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(RequireScopesLayer::any_of(["read", "admin"]))
//!     .layer(RequireRolesLayer::all_of(["staff"]))
//!     .service(service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) }));
//!
//! let with = |p: Option<Principal>| {
//!     let mut req = Request::new(());
//!     if let Some(p) = p { req.extensions_mut().insert(p); }
//!     req
//! };
//! let staff_reader = Principal::builder("a", Scheme::Jwt).scopes(["read"]).roles(["staff"]).build();
//! let reader = Principal::builder("b", Scheme::Jwt).scopes(["read"]).build();
//! let nobody = Principal::builder("c", Scheme::Jwt).roles(["staff"]).build();
//!
//! assert_eq!(svc.clone().oneshot(with(Some(staff_reader))).await.unwrap().status(), StatusCode::OK);
//! assert_eq!(svc.clone().oneshot(with(Some(reader))).await.unwrap().status(), StatusCode::FORBIDDEN);
//! let res = svc.clone().oneshot(with(Some(nobody))).await.unwrap();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("scope=\"admin read\""));
//! assert_eq!(svc.oneshot(with(None)).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{AuthError, DefaultRejection, OnRejection, Principal, Scopes};

/// A requirement on the authenticated [`Principal`].
pub trait Policy {
    /// `Ok(())` when `principal` may proceed; otherwise the error to answer with (usually
    /// [`AuthError::insufficient_scope`] or [`AuthError::forbidden`]).
    fn check(&self, principal: &Principal) -> Result<(), AuthError>;
}

/// Requires scopes: any one of a set, or all of it. An empty set denies every request.
#[derive(Clone, Debug)]
pub struct ScopePolicy {
    scopes: Scopes,
    all: bool,
    challenge: Arc<str>,
}

impl Policy for ScopePolicy {
    fn check(&self, p: &Principal) -> Result<(), AuthError> {
        // An empty requirement is a configuration slip (`all_of(config.split(' '))` with an empty
        // value); it denies rather than letting everyone through.
        let ok = !self.scopes.is_empty()
            && if self.all {
                p.scopes().contains_all(self.scopes.iter())
            } else {
                p.scopes().contains_any(self.scopes.iter())
            };
        if ok {
            Ok(())
        } else {
            Err(AuthError::insufficient_scope(&*self.challenge))
        }
    }
}

/// Requires roles: any one of a set, or all of it. An empty set denies every request.
#[derive(Clone, Debug)]
pub struct RolePolicy {
    roles: Scopes,
    all: bool,
}

impl Policy for RolePolicy {
    fn check(&self, p: &Principal) -> Result<(), AuthError> {
        // As for scopes: an empty requirement denies.
        let ok = !self.roles.is_empty()
            && if self.all {
                p.roles().contains_all(self.roles.iter())
            } else {
                p.roles().contains_any(self.roles.iter())
            };
        if ok {
            Ok(())
        } else {
            Err(AuthError::forbidden("missing role"))
        }
    }
}

/// A predicate on the principal; failing it is a plain 403.
#[derive(Clone)]
pub struct PredicatePolicy<F>(F);

impl<F> fmt::Debug for PredicatePolicy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PredicatePolicy").finish_non_exhaustive()
    }
}

impl<F: Fn(&Principal) -> bool> Policy for PredicatePolicy<F> {
    fn check(&self, p: &Principal) -> Result<(), AuthError> {
        if (self.0)(p) {
            Ok(())
        } else {
            Err(AuthError::forbidden("not allowed"))
        }
    }
}

/// Applies [`Require`] with a [`Policy`]; see the [module docs](self).
#[derive(Clone)]
pub struct RequireLayer<P, R = DefaultRejection> {
    policy: Arc<P>,
    rejection: Arc<R>,
}

/// Requires scopes; built with [`any_of`](RequireLayer::any_of) or
/// [`all_of`](RequireLayer::all_of).
pub type RequireScopesLayer<R = DefaultRejection> = RequireLayer<ScopePolicy, R>;

/// Requires roles; built with [`any_of`](RequireLayer::<RolePolicy>::any_of) or
/// [`all_of`](RequireLayer::<RolePolicy>::all_of).
pub type RequireRolesLayer<R = DefaultRejection> = RequireLayer<RolePolicy, R>;

impl<P> RequireLayer<P> {
    /// Requires `policy`.
    pub fn new(policy: P) -> Self {
        Self {
            policy: Arc::new(policy),
            rejection: Arc::new(DefaultRejection::default()),
        }
    }
}

impl RequireLayer<ScopePolicy> {
    /// At least one of `scopes`. The 403 challenge lists them all.
    pub fn any_of<I, T>(scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self::scopes(Scopes::new(scopes), false)
    }

    /// Every one of `scopes`.
    pub fn all_of<I, T>(scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self::scopes(Scopes::new(scopes), true)
    }

    fn scopes(scopes: Scopes, all: bool) -> Self {
        let challenge = scopes.to_space_separated().into();
        Self::new(ScopePolicy {
            scopes,
            all,
            challenge,
        })
    }
}

impl RequireLayer<RolePolicy> {
    /// At least one of `roles`.
    pub fn any_of<I, T>(roles: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self::new(RolePolicy {
            roles: Scopes::new(roles),
            all: false,
        })
    }

    /// Every one of `roles`.
    pub fn all_of<I, T>(roles: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self::new(RolePolicy {
            roles: Scopes::new(roles),
            all: true,
        })
    }
}

impl<F> RequireLayer<PredicatePolicy<F>>
where
    F: Fn(&Principal) -> bool,
{
    /// Requires `predicate` to hold for the principal.
    pub fn predicate(predicate: F) -> Self {
        Self::new(PredicatePolicy(predicate))
    }
}

impl<P, R> RequireLayer<P, R> {
    /// Builds rejections with `rejection` instead.
    pub fn with_rejection<R2>(self, rejection: R2) -> RequireLayer<P, R2> {
        RequireLayer {
            policy: self.policy,
            rejection: Arc::new(rejection),
        }
    }
}

impl<P: fmt::Debug, R> fmt::Debug for RequireLayer<P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireLayer")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S, P, R> Layer<S> for RequireLayer<P, R> {
    type Service = Require<S, P, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Require {
            inner,
            policy: Arc::clone(&self.policy),
            rejection: Arc::clone(&self.rejection),
        }
    }
}

/// Checks a [`Policy`] against the request's [`Principal`]. Created by [`RequireLayer`].
pub struct Require<S, P, R> {
    inner: S,
    policy: Arc<P>,
    rejection: Arc<R>,
}

impl<S: Clone, P, R> Clone for Require<S, P, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            policy: Arc::clone(&self.policy),
            rejection: Arc::clone(&self.rejection),
        }
    }
}

impl<S: fmt::Debug, P: fmt::Debug, R> fmt::Debug for Require<S, P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Require")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S, P, R, ReqB, ResB> Service<Request<ReqB>> for Require<S, P, R>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    P: Policy,
    R: OnRejection<ResB>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = RequireFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let verdict = match req.extensions().get::<Principal>() {
            None => Err(AuthError::missing_credential()),
            Some(p) => self.policy.check(p),
        };
        match verdict {
            Ok(()) => RequireFuture {
                state: RequireState::Inner {
                    fut: self.inner.call(req),
                },
            },
            Err(e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(
                    target: crate::telemetry::TARGET,
                    outcome = e.kind().as_str(),
                    "request not authorized"
                );
                RequireFuture {
                    state: RequireState::Rejected {
                        response: Some(self.rejection.on_rejection(&e)),
                    },
                }
            }
        }
    }
}

pin_project! {
    /// Response future of [`Require`]: the inner service's future, or the rejection.
    pub struct RequireFuture<F, B> {
        #[pin]
        state: RequireState<F, B>,
    }
}

pin_project! {
    #[project = RequireStateProj]
    enum RequireState<F, B> {
        Inner { #[pin] fut: F },
        Rejected { response: Option<Response<B>> },
    }
}

impl<F, B> fmt::Debug for RequireFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.state {
            RequireState::Inner { .. } => "RequireFuture::Inner",
            RequireState::Rejected { .. } => "RequireFuture::Rejected",
        })
    }
}

impl<F, B, E> Future for RequireFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            RequireStateProj::Inner { fut } => fut.poll(cx),
            RequireStateProj::Rejected { response } => Poll::Ready(Ok(response
                .take()
                .expect("RequireFuture polled after completion"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scheme;

    #[test]
    fn empty_requirements_deny() {
        let p = Principal::builder("a", Scheme::Jwt)
            .scopes(["read"])
            .roles(["admin"])
            .build();
        let empty: [&str; 0] = [];
        assert!(RequireScopesLayer::all_of(empty).policy.check(&p).is_err());
        assert!(RequireScopesLayer::all_of([""]).policy.check(&p).is_err());
        assert!(RequireScopesLayer::any_of(empty).policy.check(&p).is_err());
        assert!(RequireRolesLayer::all_of(empty).policy.check(&p).is_err());
        assert!(
            RequireScopesLayer::all_of(["read"])
                .policy
                .check(&p)
                .is_ok()
        );
        assert!(
            RequireRolesLayer::all_of(["admin"])
                .policy
                .check(&p)
                .is_ok()
        );
    }
}
