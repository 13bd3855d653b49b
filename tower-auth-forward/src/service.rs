//! The forward-authentication service, its builder and its response future.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, Method, Request, Response, Uri};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_auth_core::{
    AuthError, Authentication, Authenticator, ConfigError, DefaultRejection, OnRejection, Principal,
};
use tower_service::Service;

use crate::identity::{IdentityHeaderNames, IdentityHeaders};
use crate::path::{check_rule_path, normalize};
use crate::rules::{Rule, Rules};

/// The body of every response of [`ForwardAuth`]: empty unless the rejection responder writes
/// one (an RFC 9457 problem document with
/// [`ProblemRejection`](tower_auth_core::ProblemRejection)).
pub type ForwardBody = Full<Bytes>;

/// The outcome of a forwarded request: the principal (`None` on an anonymous pass) or the
/// error that refuses it.
pub(crate) type Decision = Result<Option<Principal>, AuthError>;

const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");

/// Answers a proxy's question "may this request through?"; see the [crate docs](crate).
///
/// A leaf `Service<http::Request<B>>` (it calls no inner service) answering `200` with
/// identity headers and an empty body, or the response contract's rejection. Cheap to clone:
/// the authenticator, rules and responder are shared behind an `Arc`.
pub struct ForwardAuth<A, R = DefaultRejection> {
    inner: Arc<Inner<A, R>>,
}

pub(crate) struct Inner<A, R> {
    auth: A,
    rules: Rules,
    envoy_prefix: Option<String>,
    pub(crate) identity: IdentityHeaders,
    pub(crate) rejection: R,
}

impl<A, R> Clone for ForwardAuth<A, R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<A, R> fmt::Debug for ForwardAuth<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardAuth")
            .field("rules", &self.inner.rules)
            .field("envoy_prefix", &self.inner.envoy_prefix)
            .field("identity", &self.inner.identity)
            .finish_non_exhaustive()
    }
}

impl<A> ForwardAuth<A> {
    /// Starts a builder for a forward-authentication service checking credentials with `auth`
    /// (several schemes: compose them with [`Authenticator::or`], most specific first).
    pub fn builder(auth: A) -> ForwardAuthBuilder<A> {
        ForwardAuthBuilder {
            auth,
            rules: Vec::new(),
            envoy_prefix: None,
            identity: IdentityHeaderNames::default(),
            rejection: DefaultRejection::default(),
        }
    }
}

impl<A, R> ForwardAuth<A, R> {
    #[cfg(feature = "envoy-grpc")]
    pub(crate) fn inner(&self) -> &Arc<Inner<A, R>> {
        &self.inner
    }
}

/// Builds a [`ForwardAuth`]; every setting is checked by [`build`](Self::build).
#[must_use]
pub struct ForwardAuthBuilder<A, R = DefaultRejection> {
    auth: A,
    rules: Vec<Rule>,
    envoy_prefix: Option<String>,
    identity: IdentityHeaderNames,
    rejection: R,
}

impl<A, R> fmt::Debug for ForwardAuthBuilder<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardAuthBuilder")
            .field("rules", &self.rules)
            .field("envoy_prefix", &self.envoy_prefix)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl<A, R> ForwardAuthBuilder<A, R> {
    /// Adds a rule. At least one is needed; a request no rule covers is denied (403).
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds rules.
    pub fn rules(mut self, rules: impl IntoIterator<Item = Rule>) -> Self {
        self.rules.extend(rules);
        self
    }

    /// Serves Envoy's HTTP `ext_authz` mode (its `path_prefix` setting): a request whose own
    /// path is under `prefix` is the original request, its method and its path after the
    /// prefix (`/forward-auth/envoy/api/x` is `/api/x`). Off by default.
    pub fn envoy_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.envoy_prefix = Some(prefix.into());
        self
    }

    /// The subject header (default `X-Auth-Subject`).
    pub fn subject_header(mut self, name: impl Into<String>) -> Self {
        self.identity.subject = name.into();
        self
    }

    /// The scheme header (default `X-Auth-Scheme`): `api_key`, `jwt`, `introspection` or a
    /// custom scheme's name.
    pub fn scheme_header(mut self, name: impl Into<String>) -> Self {
        self.identity.scheme = name.into();
        self
    }

    /// The scopes header (default `X-Auth-Scopes`), space separated.
    pub fn scopes_header(mut self, name: impl Into<String>) -> Self {
        self.identity.scopes = name.into();
        self
    }

    /// The roles header (default `X-Auth-Roles`), space separated.
    pub fn roles_header(mut self, name: impl Into<String>) -> Self {
        self.identity.roles = name.into();
        self
    }

    /// The tenant header (default `X-Auth-Tenant`), sent when the principal has a tenant.
    pub fn tenant_header(mut self, name: impl Into<String>) -> Self {
        self.identity.tenant = name.into();
        self
    }

    /// The responder for refused requests (default [`DefaultRejection`]: empty body, the
    /// response contract's status and challenge).
    pub fn rejection<R2>(self, rejection: R2) -> ForwardAuthBuilder<A, R2> {
        ForwardAuthBuilder {
            auth: self.auth,
            rules: self.rules,
            envoy_prefix: self.envoy_prefix,
            identity: self.identity,
            rejection,
        }
    }

    /// Checks the rules, the Envoy prefix and the header names.
    pub fn build(self) -> Result<ForwardAuth<A, R>, ConfigError> {
        let rules = Rules::compile(self.rules)?;
        let envoy_prefix = match self.envoy_prefix {
            None => None,
            Some(p) => {
                check_rule_path(&p)
                    .map_err(|reason| ConfigError::new("envoy_prefix", format!("{p:?}"), reason))?;
                let trimmed = p.trim_end_matches('/');
                if trimmed.is_empty() {
                    return Err(ConfigError::new(
                        "envoy_prefix",
                        format!("{p:?}"),
                        "must not be `/`: every request would be read as Envoy's",
                    ));
                }
                Some(trimmed.to_owned())
            }
        };
        Ok(ForwardAuth {
            inner: Arc::new(Inner {
                auth: self.auth,
                rules,
                envoy_prefix,
                identity: self.identity.build()?,
                rejection: self.rejection,
            }),
        })
    }
}

/// The first step of a decision: made at once, or waiting on the authenticator.
pub(crate) enum Start<F> {
    Done(Decision),
    Pending { fut: F, rule: usize },
}

impl<A: Authenticator, R> Inner<A, R> {
    /// The original method and request target of a request to the HTTP endpoint.
    fn original(&self, parts: &Parts) -> Result<(Method, String), AuthError> {
        let header = |name: &HeaderName| -> Result<Option<&str>, AuthError> {
            let mut values = parts.headers.get_all(name).iter();
            let Some(v) = values.next() else {
                return Ok(None);
            };
            if values.next().is_some() {
                return Err(AuthError::invalid_request(
                    "duplicate forwarded request header",
                ));
            }
            v.to_str()
                .map(Some)
                .map_err(|_| AuthError::invalid_request("forwarded request header is not ascii"))
        };
        let envoy = self.envoy_prefix.as_deref().and_then(|prefix| {
            let rest = parts.uri.path().strip_prefix(prefix)?;
            rest.starts_with('/').then(|| match parts.uri.query() {
                Some(q) => format!("{rest}?{q}"),
                None => rest.to_owned(),
            })
        });
        let traefik = (header(&X_FORWARDED_METHOD)?, header(&X_FORWARDED_URI)?);
        let nginx = (header(&X_ORIGINAL_METHOD)?, header(&X_ORIGINAL_URI)?);
        let present = |(m, u): (Option<&str>, Option<&str>)| m.is_some() || u.is_some();
        let sources = usize::from(envoy.is_some())
            + usize::from(present(traefik))
            + usize::from(present(nginx));
        if sources > 1 {
            // A client can send any of these headers through a proxy that sets the others:
            // refuse rather than pick one.
            return Err(AuthError::invalid_request(
                "forwarded request given in more than one way",
            ));
        }
        let (method, target) = match (envoy, traefik, nginx) {
            (Some(target), _, _) => return Ok((parts.method.clone(), target)),
            (None, (m, Some(u)), _) | (None, _, (m, Some(u))) => (m, u),
            _ => return Err(AuthError::invalid_request("no forwarded path")),
        };
        let method = method.ok_or(AuthError::invalid_request("no forwarded method"))?;
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| AuthError::invalid_request("malformed forwarded method"))?;
        Ok((method, target.to_owned()))
    }

    /// Picks the rule for the original request and starts checking its credential. `parts` is
    /// rewritten to the original method and target first, so schemes that read them (a query
    /// parameter, a proof bound to the method and URI) see the request the client sent.
    pub(crate) fn start(
        &self,
        parts: &mut Parts,
        method: Method,
        target: &str,
    ) -> Start<A::Future> {
        let path = match normalize(target) {
            Ok(path) => path,
            Err(reason) => return Start::Done(Err(AuthError::invalid_request(reason))),
        };
        let (index, rule) = match self.rules.find(&method, &path) {
            Ok(found) => found,
            Err(e) => return Start::Done(Err(e)),
        };
        match Uri::try_from(target) {
            Ok(uri) => parts.uri = uri,
            Err(_) => {
                return Start::Done(Err(AuthError::invalid_request("malformed forwarded uri")));
            }
        }
        parts.method = method;
        let found = match self.auth.extract(parts) {
            Ok(Some(found)) => found,
            Ok(None) if rule.anonymous => return Start::Done(Ok(None)),
            Ok(None) => return Start::Done(Err(AuthError::missing_credential())),
            Err(e) => return Start::Done(Err(e)),
        };
        if !rule.accepts(found.scheme) {
            return Start::Done(Err(AuthError::invalid_token(
                "credential scheme not accepted here",
            )));
        }
        match self.auth.authenticate_now(found.credential) {
            Authentication::Ready(result) => Start::Done(self.finish(index, result)),
            Authentication::Pending(fut) => Start::Pending { fut, rule: index },
        }
    }

    /// Applies the rule's scopes and roles to an authenticated principal.
    pub(crate) fn finish(&self, rule: usize, result: Result<Principal, AuthError>) -> Decision {
        let principal = result?;
        self.rules.get(rule).authorize(&principal)?;
        Ok(Some(principal))
    }

    /// Decides a request whose original method and target are known (Envoy's gRPC API).
    #[cfg(feature = "envoy-grpc")]
    pub(crate) async fn decide(&self, mut parts: Parts, method: Method, target: &str) -> Decision {
        match self.start(&mut parts, method, target) {
            Start::Done(decision) => decision,
            Start::Pending { fut, rule } => self.finish(rule, fut.await),
        }
    }
}

impl<A, R: OnRejection<ForwardBody>> Inner<A, R> {
    fn respond(&self, decision: Decision) -> Response<ForwardBody> {
        crate::telemetry::decided("http", &decision);
        match decision {
            Ok(principal) => {
                let mut res = Response::new(ForwardBody::default());
                if let Some(p) = principal {
                    self.identity.write(&p, res.headers_mut());
                }
                res
            }
            Err(e) => self.rejection.on_rejection(&e),
        }
    }

    /// The identity headers of `principal`.
    #[cfg(feature = "envoy-grpc")]
    pub(crate) fn identity_headers(&self, principal: &Principal) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        self.identity.write(principal, &mut headers);
        headers
    }
}

impl<A, R, B> Service<Request<B>> for ForwardAuth<A, R>
where
    A: Authenticator,
    R: OnRejection<ForwardBody>,
{
    type Response = Response<ForwardBody>;
    type Error = Infallible;
    type Future = ResponseFuture<A::Future, A, R>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The body is never read: the proxy's subrequest has none worth reading.
        let (mut parts, _body) = req.into_parts();
        let inner = &self.inner;
        let start = match inner.original(&parts) {
            Ok((method, target)) => inner.start(&mut parts, method, &target),
            Err(e) => Start::Done(Err(e)),
        };
        let state = match start {
            Start::Done(decision) => State::Ready {
                response: Some(inner.respond(decision)),
            },
            Start::Pending { fut, rule } => State::Authenticating {
                fut,
                rule,
                inner: Arc::clone(inner),
            },
        };
        ResponseFuture { state }
    }
}

pin_project! {
    /// The response future of [`ForwardAuth`].
    pub struct ResponseFuture<F, A, R> {
        #[pin]
        state: State<F, A, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, A, R> {
        Ready { response: Option<Response<ForwardBody>> },
        Authenticating {
            #[pin]
            fut: F,
            rule: usize,
            inner: Arc<Inner<A, R>>,
        },
    }
}

impl<F, A, R> fmt::Debug for ResponseFuture<F, A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Ready { .. } => "ready",
            State::Authenticating { .. } => "authenticating",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, A, R> Future for ResponseFuture<F, A, R>
where
    F: Future<Output = Result<Principal, AuthError>>,
    A: Authenticator,
    R: OnRejection<ForwardBody>,
{
    type Output = Result<Response<ForwardBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Ready { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| unreachable!("polled after completion")))),
            StateProj::Authenticating { fut, rule, inner } => {
                let result = std::task::ready!(fut.poll(cx));
                Poll::Ready(Ok(inner.respond(inner.finish(*rule, result))))
            }
        }
    }
}
