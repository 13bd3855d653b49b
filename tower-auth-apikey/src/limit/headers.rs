//! The `RateLimit-Policy` and `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers-10),
//! on refusals and, through [`RateLimitHeadersLayer`], on allowed responses.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use tower_auth_core::{AuthError, Principal};
use tower_layer::Layer;
use tower_service::Service;

use super::limiter::{KeyLimiter, LimitStatus, Refusal};

/// `RateLimit-Policy`.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Whole seconds of a period, rounded up (at least 1).
fn window_secs(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

impl LimitStatus {
    /// The `RateLimit-Policy` value: `"rate";q=100;w=1` for a rate limit of 100 per second, and
    /// `"credits";q=10000;w=2592000` for credits refilled to 10000 every 30 days; `None` when
    /// the key has neither.
    pub fn policy_header(&self) -> Option<HeaderValue> {
        let mut out = String::new();
        if let Some(rate) = &self.rate {
            let r = rate.limit.rate();
            let _ = write!(
                out,
                "\"rate\";q={};w={}",
                r.count(),
                window_secs(r.period())
            );
        }
        if let Some(refill) = self.credits.and_then(|c| c.credits.refill) {
            if !out.is_empty() {
                out.push_str(", ");
            }
            let _ = write!(
                out,
                "\"credits\";q={};w={}",
                refill.count(),
                window_secs(refill.period())
            );
        }
        (!out.is_empty())
            .then(|| HeaderValue::try_from(out).ok())
            .flatten()
    }

    /// The `RateLimit` value: `"rate";r=0;t=1` (requests that could be made now, seconds until
    /// the full burst is back) and `"credits";r=9876` (credits left, with `t` the seconds until
    /// the next refill when there is one); `None` when the key has neither.
    pub fn header(&self) -> Option<HeaderValue> {
        let mut out = String::new();
        if let Some(rate) = &self.rate {
            let _ = write!(out, "\"rate\";r={};t={}", rate.remaining, rate.reset_secs);
        }
        if let Some(c) = &self.credits {
            if !out.is_empty() {
                out.push_str(", ");
            }
            let _ = write!(out, "\"credits\";r={}", c.remaining);
            if let Some(t) = c.reset_secs {
                let _ = write!(out, ";t={t}");
            }
        }
        (!out.is_empty())
            .then(|| HeaderValue::try_from(out).ok())
            .flatten()
    }

    /// Writes both headers into `headers`, replacing earlier values.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        if let Some(v) = self.policy_header() {
            headers.insert(RATELIMIT_POLICY, v);
        }
        if let Some(v) = self.header() {
            headers.insert(RATELIMIT, v);
        }
    }
}

/// The 429 of a refusal: `Retry-After` when waiting helps (a rate, or credits with a refill),
/// and the `RateLimit` headers.
pub(crate) fn refusal_error(refusal: &Refusal) -> AuthError {
    let description = match refusal.reason {
        super::limiter::Reason::Rate => "api key rate limit exceeded",
        super::limiter::Reason::Credits => "api key credits exhausted",
    };
    let mut e = AuthError::too_many_requests(description);
    if let Some(secs) = refusal.retry_after_secs {
        e = e.with_header(RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(v) = refusal.status.policy_header() {
        e = e.with_header(RATELIMIT_POLICY, v);
    }
    if let Some(v) = refusal.status.header() {
        e = e.with_header(RATELIMIT, v);
    }
    e
}

/// The live limits of the key that authenticated a request: an extension of its
/// [`Principal`] (`principal.extension::<KeyUsage>()`), present when the key has limits.
#[derive(Clone, Debug)]
pub struct KeyUsage(pub(crate) Arc<KeyLimiter>);

impl KeyUsage {
    /// Where the key stood after the last decision made for it (this request's, unless
    /// another request of the same key came in between).
    pub fn status(&self) -> LimitStatus {
        self.0.status()
    }
}

/// Adds `RateLimit-Policy` and `RateLimit` to the responses of requests authenticated by a
/// key with limits, with what remains after the request. Place it inside
/// [`AuthenticateLayer`](tower_auth_core::AuthenticateLayer) (after it, in `ServiceBuilder`
/// order). Refusals (429) carry the headers without it.
#[derive(Clone, Copy, Debug, Default)]
pub struct RateLimitHeadersLayer;

impl RateLimitHeadersLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for RateLimitHeadersLayer {
    type Service = RateLimitHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitHeaders { inner }
    }
}

/// The service of [`RateLimitHeadersLayer`].
#[derive(Clone, Debug)]
pub struct RateLimitHeaders<S> {
    inner: S,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for RateLimitHeaders<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let status = req
            .extensions()
            .get::<Principal>()
            .and_then(|p| p.extension::<KeyUsage>())
            .map(KeyUsage::status);
        ResponseFuture {
            inner: self.inner.call(req),
            status,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RateLimitHeaders`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        status: Option<LimitStatus>,
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        if let Some(status) = this.status.take() {
            status.write_headers(res.headers_mut());
        }
        Poll::Ready(Ok(res))
    }
}
