use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;

use http::{Request, Response, StatusCode, Uri};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::dpop;
use super::token::ClientCredentials;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where a token may be sent: https only unless told otherwise, and only to the allowed
/// origins when a list is given. Requests with a path-only URI go where the wrapped client is
/// bound (a tonic `Channel`) and are not checked.
#[derive(Clone, Debug, Default)]
struct Destinations {
    origins: Option<Arc<[String]>>,
    allow_http: bool,
}

impl Destinations {
    fn check(&self, uri: &Uri) -> Result<(), DestinationError> {
        if uri.scheme().is_none() && uri.authority().is_none() {
            // Origin-form (a path only), as tonic sends through a `Channel`: the destination is
            // the one endpoint the client was built for, not something the request can change.
            return Ok(());
        }
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if self.allow_http => {}
            _ => return Err(DestinationError::InsecureScheme),
        }
        if let Some(origins) = &self.origins {
            let origin = format!(
                "{}://{}",
                uri.scheme_str().unwrap_or_default(),
                uri.authority().map_or("", |a| a.as_str())
            );
            if !origins.iter().any(|o| o.eq_ignore_ascii_case(&origin)) {
                return Err(DestinationError::NotAllowed);
            }
        }
        Ok(())
    }
}

/// A request was not sent because its destination may not receive the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DestinationError {
    /// Not an absolute https URI (plain http needs `insecure_allow_http`).
    InsecureScheme,
    /// The origin is not in `allowed_origins`.
    NotAllowed,
}

impl fmt::Display for DestinationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InsecureScheme => "refusing to send a token to a non-https destination",
            Self::NotAllowed => "refusing to send a token to an origin that is not allowed",
        })
    }
}

impl std::error::Error for DestinationError {}

/// Adds client-credentials tokens to outbound requests. See the [module docs](super).
#[derive(Clone, Debug)]
pub struct ClientCredentialsLayer {
    tokens: ClientCredentials,
    destinations: Destinations,
}

impl ClientCredentialsLayer {
    /// A layer that takes its tokens from `tokens` and sends them to https destinations.
    pub fn new(tokens: ClientCredentials) -> Self {
        Self {
            tokens,
            destinations: Destinations::default(),
        }
    }

    /// Only these origins (`https://api.example.com`, `https://api.example.com:8443`) receive the
    /// token; a request to any other fails with [`DestinationError::NotAllowed`] and is not sent.
    /// Recommended whenever the wrapped client may follow links or call URLs from elsewhere.
    pub fn allowed_origins<I, T>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.destinations.origins = Some(
            origins
                .into_iter()
                .map(|o| o.into().trim_end_matches('/').to_owned())
                .collect(),
        );
        self
    }

    /// Also send tokens over plain http. Only for loopback tests and development: a token sent
    /// in clear can be read and replayed by anyone on the path.
    pub fn insecure_allow_http(mut self, allow: bool) -> Self {
        self.destinations.allow_http = allow;
        self
    }
}

impl<S> Layer<S> for ClientCredentialsLayer {
    type Service = ClientCredentialsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientCredentialsService {
            inner,
            tokens: self.tokens.clone(),
            destinations: self.destinations.clone(),
        }
    }
}

/// The service of [`ClientCredentialsLayer`].
#[derive(Clone)]
pub struct ClientCredentialsService<S> {
    inner: S,
    tokens: ClientCredentials,
    destinations: Destinations,
}

impl<S: fmt::Debug> fmt::Debug for ClientCredentialsService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentialsService")
            .field("inner", &self.inner)
            .field("tokens", &self.tokens)
            .finish()
    }
}

impl<S, B, RB> Service<Request<B>> for ClientCredentialsService<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Default + Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The instance driven to readiness serves this request; a clone stays for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let tokens = self.tokens.clone();
        let destination = self.destinations.check(req.uri());
        Box::pin(async move {
            destination?;
            let token = tokens.token().await?;
            // Only an empty body can be sent again exactly as it was.
            let replay = req.body().is_end_stream().then(|| {
                let (parts, _) = Request::new(()).into_parts();
                let mut head = Request::from_parts(parts, ());
                *head.method_mut() = req.method().clone();
                *head.uri_mut() = req.uri().clone();
                *head.version_mut() = req.version();
                *head.headers_mut() = req.headers().clone();
                *head.extensions_mut() = req.extensions().clone();
                head
            });
            let uri = req.uri().clone();
            let mut req = req;
            dpop::authorize(&tokens, &token, &mut req)?;
            let res = inner.call(req).await.map_err(Into::into)?;
            // A DPoP resource asking for its nonce: the same token, with a proof carrying it.
            let wants_nonce = tokens
                .dpop()
                .is_some_and(|d| d.observe(&uri, res.status(), res.headers()));
            let Some(head) = replay.filter(|_| res.status() == StatusCode::UNAUTHORIZED) else {
                return Ok(res);
            };
            let fresh = if wants_nonce {
                token
            } else {
                tokens.refresh(&token).await?
            };
            let mut retry = head.map(|()| B::default());
            dpop::authorize(&tokens, &fresh, &mut retry)?;
            std::future::poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let res = inner.call(retry).await.map_err(Into::into)?;
            if let Some(d) = tokens.dpop() {
                d.observe(&uri, res.status(), res.headers());
            }
            Ok(res)
        })
    }
}
