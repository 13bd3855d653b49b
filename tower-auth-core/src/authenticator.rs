//! The [`Authenticator`] trait, composition with [`or`](Authenticator::or), and adapters.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;

use crate::credential::{Found, Location};
use crate::{AuthError, Principal};

/// What [`Authenticator::authenticate_now`] returns: the decision, or the future that makes it.
#[derive(Debug)]
pub enum Authentication<F> {
    /// Decided without waiting.
    Ready(Result<Principal, AuthError>),
    /// Not decided yet: the future of [`Authenticator::authenticate`].
    Pending(F),
}

impl<F> Authentication<F> {
    /// Maps the future, keeping a ready decision.
    pub fn map_pending<G>(self, f: impl FnOnce(F) -> G) -> Authentication<G> {
        match self {
            Self::Ready(result) => Authentication::Ready(result),
            Self::Pending(fut) => Authentication::Pending(f(fut)),
        }
    }
}

/// A boxed, sendable authentication future.
pub type BoxAuthFuture = Pin<Box<dyn Future<Output = Result<Principal, AuthError>> + Send>>;

/// One authentication scheme, in two phases.
///
/// 1. [`extract`](Self::extract) runs synchronously on the request head and answers one of:
///    - `Ok(Some(found))`: this scheme's credential, and where it was found;
///    - `Ok(None)`: no credential of this scheme ("not mine");
///    - `Err(e)`: the request is malformed or the credential is unusable as presented (two
///      credentials, an empty token).
///
///    It must be cheap: [`Or`] runs the `extract` of every scheme it composes.
/// 2. [`authenticate`](Self::authenticate) turns the credential into a [`Principal`] or an
///    [`AuthError`]. Its future is an associated type, so a synchronous scheme returns
///    [`std::future::Ready`] and the request path allocates nothing; asynchronous schemes name
///    their own future or use [`BoxAuthFuture`].
///
/// Authenticators never see the request body. They are shared by every clone of the service,
/// so `&self` methods must be safe to call concurrently; keep state behind an `Arc` so clones are
/// cheap.
///
/// A synchronous scheme written by hand:
///
/// ```
/// use std::future::{ready, Ready};
/// use http::request::Parts;
/// use tower_auth_core::credential::{bearer_token, Found, Location};
/// use tower_auth_core::{AuthError, Authenticator, Principal, Scheme};
///
/// #[derive(Clone)]
/// struct StaticToken;
///
/// impl Authenticator for StaticToken {
///     type Credential = String;
///     type Future = Ready<Result<Principal, AuthError>>;
///
///     fn extract(&self, parts: &Parts) -> Result<Option<Found<String>>, AuthError> {
///         Ok(bearer_token(&parts.headers)?
///             .map(|t| Found::new(t.to_owned(), Location::Authorization, Scheme::Custom("static"))))
///     }
///
///     fn authenticate(&self, token: String) -> Self::Future {
///         ready(if token == "letmein" {
///             Ok(Principal::builder("demo", Scheme::Custom("static")).build())
///         } else {
///             Err(AuthError::invalid_token("unknown token"))
///         })
///     }
/// }
/// ```
pub trait Authenticator {
    /// What [`extract`](Self::extract) takes out of the request for
    /// [`authenticate`](Self::authenticate).
    type Credential;
    /// The future returned by [`authenticate`](Self::authenticate).
    type Future: Future<Output = Result<Principal, AuthError>>;

    /// Finds this scheme's credential in the request head. See the trait docs.
    fn extract(&self, parts: &Parts) -> Result<Option<Found<Self::Credential>>, AuthError>;

    /// Checks the credential.
    fn authenticate(&self, credential: Self::Credential) -> Self::Future;

    /// Checks the credential, answering at once when that needs no waiting (a cached lookup, a
    /// malformed credential) and returning the future of [`authenticate`](Self::authenticate)
    /// otherwise. [`AuthenticateLayer`](crate::AuthenticateLayer) calls this: a ready answer
    /// lets it call the inner service (or reject) directly, with no authentication future to
    /// keep.
    ///
    /// The default returns [`Authentication::Pending`] with `authenticate`'s future. An
    /// override must decide exactly as that future would; the `testing` module's
    /// `assert_now_decides_as_future` (feature `testing`) checks it for a set of requests.
    ///
    /// The convention of this workspace's schemes, for one decision path: the logic lives
    /// here, and `authenticate` calls `authenticate_now` and continues from it, turning a
    /// ready decision into a ready future and returning a pending one as it is:
    ///
    /// ```
    /// # use std::future::ready;
    /// # use http::request::Parts;
    /// # use tower_auth_core::credential::Found;
    /// # use tower_auth_core::{AuthError, Authentication, Authenticator, BoxAuthFuture, Principal, Scheme};
    /// struct Cached;
    ///
    /// impl Authenticator for Cached {
    ///     type Credential = String;
    ///     type Future = BoxAuthFuture;
    /// #   fn extract(&self, _: &Parts) -> Result<Option<Found<String>>, AuthError> { Ok(None) }
    ///
    ///     fn authenticate(&self, token: String) -> BoxAuthFuture {
    ///         match self.authenticate_now(token) {
    ///             Authentication::Ready(result) => Box::pin(ready(result)),
    ///             Authentication::Pending(fut) => fut,
    ///         }
    ///     }
    ///
    ///     fn authenticate_now(&self, token: String) -> Authentication<BoxAuthFuture> {
    ///         if token.is_empty() {
    ///             // Decided without waiting.
    ///             return Authentication::Ready(Err(AuthError::invalid_token("empty token")));
    ///         }
    ///         // A cache miss: the rest happens in the future.
    ///         Authentication::Pending(Box::pin(async move {
    ///             Ok(Principal::builder(token, Scheme::Custom("cached")).build())
    ///         }))
    ///     }
    /// }
    /// # let _ = Cached;
    /// ```
    fn authenticate_now(&self, credential: Self::Credential) -> Authentication<Self::Future> {
        Authentication::Pending(self.authenticate(credential))
    }

    /// Composes two schemes: `self` and then `other`. See [`Or`].
    fn or<B>(self, other: B) -> Or<Self, B>
    where
        Self: Sized,
        B: Authenticator,
    {
        Or {
            first: self,
            second: other,
        }
    }

    /// Boxes the future (and erases the type) for convenience, at the cost of one allocation
    /// per request.
    fn boxed(self) -> BoxAuthenticator<Self::Credential>
    where
        Self: Sized + Send + Sync + 'static,
        Self::Future: Send + 'static,
    {
        BoxAuthenticator {
            inner: Arc::new(Boxed(self)),
        }
    }
}

impl<A: Authenticator + ?Sized> Authenticator for Arc<A> {
    type Credential = A::Credential;
    type Future = A::Future;

    fn extract(&self, parts: &Parts) -> Result<Option<Found<Self::Credential>>, AuthError> {
        (**self).extract(parts)
    }

    fn authenticate(&self, credential: Self::Credential) -> Self::Future {
        (**self).authenticate(credential)
    }

    fn authenticate_now(&self, credential: Self::Credential) -> Authentication<Self::Future> {
        (**self).authenticate_now(credential)
    }
}

/// A scheme that may be switched off by configuration: `None` claims no credential, so it never
/// decides anything; `Some(a)` is `a`.
///
/// ```
/// use tower_auth_core::{Authenticator, credential::Location, from_fn};
///
/// let introspection_configured = false;
/// let optional = introspection_configured.then(|| from_fn(Location::Authorization, |_| Ok(None)));
/// let _composed = from_fn(Location::Authorization, |_| Ok(None)).or(optional);
/// ```
impl<A: Authenticator> Authenticator for Option<A> {
    type Credential = A::Credential;
    type Future = MaybeFuture<A::Future>;

    fn extract(&self, parts: &Parts) -> Result<Option<Found<Self::Credential>>, AuthError> {
        match self {
            Some(a) => a.extract(parts),
            None => Ok(None),
        }
    }

    fn authenticate(&self, credential: Self::Credential) -> Self::Future {
        MaybeFuture {
            inner: self.as_ref().map(|a| a.authenticate(credential)),
        }
    }

    fn authenticate_now(&self, credential: Self::Credential) -> Authentication<Self::Future> {
        match self {
            Some(a) => a
                .authenticate_now(credential)
                .map_pending(|f| MaybeFuture { inner: Some(f) }),
            None => Authentication::Pending(MaybeFuture { inner: None }),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of an optional scheme (`Option<A>`).
    #[derive(Debug)]
    pub struct MaybeFuture<F> {
        #[pin]
        inner: Option<F>,
    }
}

impl<F> Future for MaybeFuture<F>
where
    F: Future<Output = Result<Principal, AuthError>>,
{
    type Output = Result<Principal, AuthError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.as_pin_mut() {
            Some(f) => f.poll(cx),
            // Unreachable through the layer: a disabled scheme claims nothing.
            None => Poll::Ready(Err(AuthError::invalid_token("scheme disabled"))),
        }
    }
}

/// Two schemes composed by [`Authenticator::or`].
///
/// Both `extract` calls run, then:
///
/// | first | second | result |
/// |---|---|---|
/// | found | not mine | the first scheme decides |
/// | not mine | found | the second scheme decides |
/// | not mine | not mine | "not mine" (401 without error, or anonymous in optional mode) |
/// | found | found, same [`Location`] | the first scheme decides: compose the most specific first |
/// | found | found, other location | 400 `invalid_request` |
/// | error | anything | that error |
///
/// A credential rejected by the scheme that claimed it is never retried with the other one: a
/// bad API key is not sent on to an introspection endpoint.
#[derive(Clone, Debug)]
pub struct Or<A, B> {
    first: A,
    second: B,
}

/// The credential of an [`Or`]: which scheme claimed it.
#[derive(Debug)]
pub enum Either<A, B> {
    /// The first scheme's credential.
    First(A),
    /// The second scheme's credential.
    Second(B),
}

impl<A, B> Authenticator for Or<A, B>
where
    A: Authenticator,
    B: Authenticator,
{
    type Credential = Either<A::Credential, B::Credential>;
    type Future = OrFuture<A::Future, B::Future>;

    fn extract(&self, parts: &Parts) -> Result<Option<Found<Self::Credential>>, AuthError> {
        let first = self.first.extract(parts)?;
        let second = self.second.extract(parts)?;
        match (first, second) {
            (None, None) => Ok(None),
            (Some(a), None) => Ok(Some(a.map(Either::First))),
            (None, Some(b)) => Ok(Some(b.map(Either::Second))),
            (Some(a), Some(b)) if a.location == b.location => Ok(Some(a.map(Either::First))),
            (Some(_), Some(_)) => Err(AuthError::invalid_request(
                "credentials in more than one place",
            )),
        }
    }

    fn authenticate(&self, credential: Self::Credential) -> Self::Future {
        match credential {
            Either::First(c) => OrFuture {
                state: OrState::First {
                    fut: self.first.authenticate(c),
                },
            },
            Either::Second(c) => OrFuture {
                state: OrState::Second {
                    fut: self.second.authenticate(c),
                },
            },
        }
    }

    fn authenticate_now(&self, credential: Self::Credential) -> Authentication<Self::Future> {
        match credential {
            Either::First(c) => self.first.authenticate_now(c).map_pending(|fut| OrFuture {
                state: OrState::First { fut },
            }),
            Either::Second(c) => self.second.authenticate_now(c).map_pending(|fut| OrFuture {
                state: OrState::Second { fut },
            }),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of an [`Or`]: the deciding scheme's future.
    #[derive(Debug)]
    pub struct OrFuture<A, B> {
        #[pin]
        state: OrState<A, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = OrStateProj]
    #[derive(Debug)]
    enum OrState<A, B> {
        First { #[pin] fut: A },
        Second { #[pin] fut: B },
    }
}

impl<A, B> Future for OrFuture<A, B>
where
    A: Future<Output = Result<Principal, AuthError>>,
    B: Future<Output = Result<Principal, AuthError>>,
{
    type Output = Result<Principal, AuthError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            OrStateProj::First { fut } => fut.poll(cx),
            OrStateProj::Second { fut } => fut.poll(cx),
        }
    }
}

/// A type-erased authenticator with a boxed future. Created by [`Authenticator::boxed`].
pub struct BoxAuthenticator<C> {
    inner: Arc<dyn ErasedAuthenticator<C> + Send + Sync>,
}

impl<C> Clone for BoxAuthenticator<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C> fmt::Debug for BoxAuthenticator<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxAuthenticator").finish_non_exhaustive()
    }
}

trait ErasedAuthenticator<C> {
    fn extract(&self, parts: &Parts) -> Result<Option<Found<C>>, AuthError>;
    fn authenticate(&self, credential: C) -> BoxAuthFuture;
    fn authenticate_now(&self, credential: C) -> Authentication<BoxAuthFuture>;
}

struct Boxed<A>(A);

impl<A> ErasedAuthenticator<A::Credential> for Boxed<A>
where
    A: Authenticator,
    A::Future: Send + 'static,
{
    fn extract(&self, parts: &Parts) -> Result<Option<Found<A::Credential>>, AuthError> {
        self.0.extract(parts)
    }

    fn authenticate(&self, credential: A::Credential) -> BoxAuthFuture {
        Box::pin(self.0.authenticate(credential))
    }

    fn authenticate_now(&self, credential: A::Credential) -> Authentication<BoxAuthFuture> {
        self.0
            .authenticate_now(credential)
            .map_pending(|f| Box::pin(f) as BoxAuthFuture)
    }
}

impl<C> Authenticator for BoxAuthenticator<C> {
    type Credential = C;
    type Future = BoxAuthFuture;

    fn extract(&self, parts: &Parts) -> Result<Option<Found<C>>, AuthError> {
        self.inner.extract(parts)
    }

    fn authenticate(&self, credential: C) -> BoxAuthFuture {
        self.inner.authenticate(credential)
    }

    fn authenticate_now(&self, credential: C) -> Authentication<BoxAuthFuture> {
        self.inner.authenticate_now(credential)
    }
}

/// An authenticator from a synchronous closure over the request head. Created by [`from_fn`].
#[derive(Clone)]
pub struct FromFn<F> {
    f: F,
    location: Location,
}

impl<F> fmt::Debug for FromFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFn")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// Builds an authenticator from a closure that inspects the request head and returns
/// `Ok(Some(principal))`, `Ok(None)` for "no credential of mine", or an error.
///
/// `location` says where the closure reads its credential, for [`Or`]'s rules.
///
/// ```
/// use tower_auth_core::credential::{bearer_token, Location};
/// use tower_auth_core::{from_fn, AuthError, Principal, Scheme};
///
/// let auth = from_fn(Location::Authorization, |parts| {
///     match bearer_token(&parts.headers)? {
///         None => Ok(None),
///         Some("letmein") => Ok(Some(Principal::builder("demo", Scheme::Custom("static")).build())),
///         Some(_) => Err(AuthError::invalid_token("unknown token")),
///     }
/// });
/// # let _ = auth;
/// ```
pub fn from_fn<F>(location: Location, f: F) -> FromFn<F>
where
    F: Fn(&Parts) -> Result<Option<Principal>, AuthError>,
{
    FromFn { f, location }
}

impl<F> Authenticator for FromFn<F>
where
    F: Fn(&Parts) -> Result<Option<Principal>, AuthError>,
{
    type Credential = Principal;
    type Future = Ready<Result<Principal, AuthError>>;

    fn extract(&self, parts: &Parts) -> Result<Option<Found<Principal>>, AuthError> {
        Ok((self.f)(parts)?.map(|p| {
            let scheme = p.scheme();
            Found::new(p, self.location.clone(), scheme)
        }))
    }

    fn authenticate(&self, principal: Principal) -> Self::Future {
        ready(Ok(principal))
    }

    fn authenticate_now(&self, principal: Principal) -> Authentication<Self::Future> {
        Authentication::Ready(Ok(principal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::{bearer_token, header_value};
    use crate::{AuthErrorKind, Scheme};
    use http::{HeaderName, Request};

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder();
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn bearer(
        prefix: &'static str,
        scheme: &'static str,
    ) -> impl Authenticator<Future = Ready<Result<Principal, AuthError>>> + Clone + Send + Sync + 'static
    {
        from_fn(Location::Authorization, move |p| {
            Ok(bearer_token(&p.headers)?
                .filter(|t| t.starts_with(prefix))
                .map(|_| Principal::builder("x", Scheme::Custom(scheme)).build()))
        })
    }

    fn header(scheme: &'static str) -> impl Authenticator + Clone {
        from_fn(
            Location::Header(HeaderName::from_static("x-api-key")),
            move |p| {
                Ok(
                    header_value(&p.headers, &HeaderName::from_static("x-api-key"))?
                        .map(|_| Principal::builder("x", Scheme::Custom(scheme)).build()),
                )
            },
        )
    }

    async fn decide<A: Authenticator>(a: &A, p: &Parts) -> Result<Option<Principal>, AuthError> {
        match a.extract(p)? {
            None => Ok(None),
            Some(found) => a.authenticate(found.credential).await.map(Some),
        }
    }

    #[tokio::test]
    async fn or_one_credential_goes_to_its_scheme() {
        let a = bearer("sk_", "apikey").or(bearer("ey", "jwt"));
        let p = decide(&a, &parts(&[("authorization", "Bearer eyabc")])).await;
        assert_eq!(p.unwrap().unwrap().scheme().as_str(), "jwt");
        let p = decide(&a, &parts(&[("authorization", "Bearer sk_abc")])).await;
        assert_eq!(p.unwrap().unwrap().scheme().as_str(), "apikey");
    }

    #[tokio::test]
    async fn or_none_is_not_mine() {
        let a = bearer("sk_", "apikey").or(bearer("ey", "jwt"));
        assert!(decide(&a, &parts(&[])).await.unwrap().is_none());
        assert!(
            decide(&a, &parts(&[("authorization", "Bearer other")]))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn or_same_location_earlier_wins() {
        let a = bearer("", "first").or(bearer("", "second"));
        let p = decide(&a, &parts(&[("authorization", "Bearer tok")])).await;
        assert_eq!(p.unwrap().unwrap().scheme().as_str(), "first");
    }

    #[tokio::test]
    async fn or_two_places_is_invalid_request() {
        let a = header("apikey").or(bearer("", "jwt"));
        let e = decide(
            &a,
            &parts(&[("x-api-key", "k"), ("authorization", "Bearer t")]),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), AuthErrorKind::InvalidRequest);
    }

    #[tokio::test]
    async fn or_never_retries_a_rejected_credential() {
        let reject = from_fn(Location::Authorization, |p| {
            if bearer_token(&p.headers)?.is_some() {
                Err(AuthError::invalid_token("bad"))
            } else {
                Ok(None)
            }
        });
        let a = reject.or(bearer("", "accepting"));
        let e = decide(&a, &parts(&[("authorization", "Bearer t")]))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), AuthErrorKind::InvalidToken);
    }

    #[tokio::test]
    async fn boxed_adapter_works() {
        let a = bearer("", "boxed").boxed();
        let p = decide(&a, &parts(&[("authorization", "Bearer t")])).await;
        assert_eq!(p.unwrap().unwrap().scheme().as_str(), "boxed");
    }
}
