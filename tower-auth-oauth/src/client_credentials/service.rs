use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::token::ClientCredentials;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Adds client-credentials tokens to outbound requests. See the [module docs](super).
#[derive(Clone, Debug)]
pub struct ClientCredentialsLayer {
    tokens: ClientCredentials,
}

impl ClientCredentialsLayer {
    /// A layer that takes its tokens from `tokens`.
    pub fn new(tokens: ClientCredentials) -> Self {
        Self { tokens }
    }
}

impl<S> Layer<S> for ClientCredentialsLayer {
    type Service = ClientCredentialsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientCredentialsService {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

/// The service of [`ClientCredentialsLayer`].
#[derive(Clone)]
pub struct ClientCredentialsService<S> {
    inner: S,
    tokens: ClientCredentials,
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
        Box::pin(async move {
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
            let mut req = req;
            req.headers_mut()
                .insert(AUTHORIZATION, token.authorization().clone());
            let res = inner.call(req).await.map_err(Into::into)?;
            let Some(head) = replay.filter(|_| res.status() == StatusCode::UNAUTHORIZED) else {
                return Ok(res);
            };
            let fresh = tokens.refresh(&token).await?;
            let mut retry = head.map(|()| B::default());
            retry
                .headers_mut()
                .insert(AUTHORIZATION, fresh.authorization().clone());
            std::future::poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            inner.call(retry).await.map_err(Into::into)
        })
    }
}
