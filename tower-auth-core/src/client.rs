//! The outbound HTTP client the schemes use for remote keys, metadata, introspection and token
//! endpoints (feature `http-client`).
//!
//! [`HttpClient`] wraps any tower `Service` that sends `http::Request`s, and adds the rules every
//! remote call of an authentication library needs:
//!
//! - a deadline for the whole exchange, body included (default 5 s);
//! - a cap on the response body (default 1 MiB), enforced while reading;
//! - redirects are never followed (a 3xx is an error): a key or token endpoint that moves is a
//!   configuration change, not something to chase;
//! - `https` only, unless [`insecure_allow_http`](HttpClientBuilder::insecure_allow_http) is set
//!   (for loopback tests and development).
//!
//! The default transport is hyper-util's pooled client over hyper-rustls with the aws-lc-rs
//! provider and the Mozilla root store (`webpki-roots`), so it behaves the same in a minimal
//! container as on a workstation. Bring your own with [`HttpClientBuilder::service`] (a proxy, a
//! custom root store, a test double).
//!
//! ```
//! use std::time::Duration;
//! use tower_auth_core::client::HttpClient;
//!
//! let client = HttpClient::builder()
//!     .timeout(Duration::from_secs(2))
//!     .max_response_bytes(256 * 1024)
//!     .build()
//!     .unwrap();
//! assert!(client.check_url("https://idp.example.com/jwks").is_ok());
//! assert!(client.check_url("http://idp.example.com/jwks").is_err());
//! ```

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use crate::ConfigError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;
type Transport = BoxCloneSyncService<Request<Full<Bytes>>, Response<BoxBody>, BoxError>;

/// A response read in full: status, headers and a body within the size cap.
#[derive(Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bodies may hold tokens (token endpoint responses): never printed.
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Why an outbound call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum FetchError {
    /// The deadline passed before the response was read in full.
    Timeout(Duration),
    /// The body was larger than the cap.
    TooLarge(usize),
    /// The endpoint answered with a redirect, which is not followed.
    Redirect(StatusCode),
    /// A plain-http URL without `insecure_allow_http`.
    InsecureScheme,
    /// Connecting, sending or reading failed.
    Transport(BoxError),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(d) => write!(f, "no complete response within {d:?}"),
            Self::TooLarge(cap) => write!(f, "response body larger than {cap} bytes"),
            Self::Redirect(s) => write!(f, "redirect ({s}) not followed"),
            Self::InsecureScheme => {
                f.write_str("plain http is not allowed without insecure_allow_http")
            }
            Self::Transport(_) => f.write_str("request failed"),
        }
    }
}

impl std::error::Error for FetchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Transport(e) => Some(&**e),
            _ => None,
        }
    }
}

/// The outbound HTTP client. See the [module docs](self). Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    transport: Transport,
    timeout: Duration,
    max_response_bytes: usize,
    allow_http: bool,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("insecure_allow_http", &self.allow_http)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Starts from the defaults: 5 s, 1 MiB, https only, hyper-rustls transport.
    pub fn builder() -> HttpClientBuilder {
        HttpClientBuilder {
            transport: None,
            timeout: Duration::from_secs(5),
            max_response_bytes: 1024 * 1024,
            allow_http: false,
        }
    }

    /// Whether plain http is allowed.
    pub fn allows_http(&self) -> bool {
        self.allow_http
    }

    /// The deadline of one exchange.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Checks at configuration time that `url` is absolute and uses an allowed scheme.
    pub fn check_url(&self, url: &str) -> Result<Uri, ConfigError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| ConfigError::new("url", url, "not a valid URL"))?;
        match uri.scheme_str() {
            Some("https") if uri.host().is_some() => Ok(uri),
            Some("http") if uri.host().is_some() && self.allow_http => Ok(uri),
            Some("http") if uri.host().is_some() => Err(ConfigError::new(
                "url",
                url,
                "plain http needs insecure_allow_http",
            )),
            _ => Err(ConfigError::new(
                "url",
                url,
                "must be an absolute https URL",
            )),
        }
    }

    /// Sends `req` and reads the response within the deadline and size cap. Any status that is
    /// not a redirect is returned as is; the caller decides what a 4xx or 5xx means.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<HttpResponse, FetchError> {
        match req.uri().scheme_str() {
            Some("https") => {}
            Some("http") if self.allow_http => {}
            _ => return Err(FetchError::InsecureScheme),
        }
        let transport = self.transport.clone();
        let cap = self.max_response_bytes;
        let exchange = async move {
            let res = transport
                .oneshot(req)
                .await
                .map_err(FetchError::Transport)?;
            if res.status().is_redirection() {
                return Err(FetchError::Redirect(res.status()));
            }
            let (parts, body) = res.into_parts();
            Ok(HttpResponse {
                status: parts.status,
                headers: parts.headers,
                body: read_capped(body, cap).await?,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| FetchError::Timeout(self.timeout))?
    }

    /// `GET url` with `Accept: application/json`.
    pub async fn get_json(&self, url: &Uri) -> Result<HttpResponse, FetchError> {
        let req = Request::get(url.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Full::default())
            .map_err(|e| FetchError::Transport(e.into()))?;
        self.send(req).await
    }
}

/// Reads `body` in full, failing as soon as it grows past `cap` bytes.
async fn read_capped(mut body: BoxBody, cap: usize) -> Result<Bytes, FetchError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(FetchError::Transport)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > cap {
                return Err(FetchError::TooLarge(cap));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Builds an [`HttpClient`].
#[must_use]
pub struct HttpClientBuilder {
    transport: Option<Transport>,
    timeout: Duration,
    max_response_bytes: usize,
    allow_http: bool,
}

impl fmt::Debug for HttpClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientBuilder")
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("insecure_allow_http", &self.allow_http)
            .finish_non_exhaustive()
    }
}

impl HttpClientBuilder {
    /// The deadline for one exchange, body included (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest response body accepted (default 1 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Allows plain-http URLs. Only for loopback tests and development: tokens and keys fetched
    /// over plain http can be read and replaced by anyone on the path.
    pub fn insecure_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Sends requests through `service` instead of the default hyper-rustls client.
    pub fn service<S, B>(mut self, service: S) -> Self
    where
        S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.transport = Some(erase(service));
        self
    }

    /// Validates the settings and builds the client.
    pub fn build(self) -> Result<HttpClient, ConfigError> {
        if self.timeout.is_zero() {
            return Err(ConfigError::new(
                "timeout",
                "0s",
                "must be greater than zero",
            ));
        }
        if self.max_response_bytes == 0 {
            return Err(ConfigError::new(
                "max_response_bytes",
                0,
                "must be at least 1",
            ));
        }
        let transport = match self.transport {
            Some(t) => t,
            None => default_transport()?,
        };
        Ok(HttpClient {
            transport,
            timeout: self.timeout,
            max_response_bytes: self.max_response_bytes,
            allow_http: self.allow_http,
        })
    }
}

fn erase<S, B>(service: S) -> Transport
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let svc = service
        .map_response(|res: Response<B>| {
            res.map(|b| BodyExt::map_err(b, Into::into).boxed_unsync())
        })
        .map_err(Into::into);
    BoxCloneSyncService::new(svc)
}

fn default_transport() -> Result<Transport, ConfigError> {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| ConfigError::new("tls", "aws-lc-rs", "no usable TLS protocol version"))?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    Ok(erase(client))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A loopback server that answers every connection with `response` (raw HTTP/1.1), after
    /// `delay`.
    async fn server(response: &'static str, delay: Duration) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    tokio::time::sleep(delay).await;
                    let _ = sock.write_all(response.as_bytes()).await;
                });
            }
        });
        format!("http://{addr}/")
    }

    fn client(timeout_ms: u64, cap: usize) -> HttpClient {
        HttpClient::builder()
            .timeout(Duration::from_millis(timeout_ms))
            .max_response_bytes(cap)
            .insecure_allow_http(true)
            .build()
            .unwrap()
    }

    /// The future must be `Send` so schemes can box it into their authenticate futures.
    #[test]
    fn send_future_is_send() {
        fn is_send<T: Send>(_: &T) {}
        let c = HttpClient::builder().build().unwrap();
        is_send(&c.send(Request::new(Full::default())));
    }

    #[tokio::test]
    async fn reads_a_response() {
        let url = server(
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}",
            Duration::ZERO,
        )
        .await;
        let res = client(2000, 1024)
            .get_json(&url.parse().unwrap())
            .await
            .unwrap();
        assert_eq!(res.status, 200);
        assert_eq!(&res.body[..], b"{}");
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let url = server(
            "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:1/\r\ncontent-length: 0\r\n\r\n",
            Duration::ZERO,
        )
        .await;
        let err = client(2000, 1024)
            .get_json(&url.parse().unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::Redirect(s) if s == 302),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn oversized_bodies_are_cut() {
        let url = server(
            "HTTP/1.1 200 OK\r\ncontent-length: 20\r\n\r\n01234567890123456789",
            Duration::ZERO,
        )
        .await;
        let err = client(2000, 10)
            .get_json(&url.parse().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::TooLarge(10)), "{err:?}");
    }

    #[tokio::test]
    async fn hanging_endpoints_hit_the_deadline() {
        let url = server(
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            Duration::from_secs(30),
        )
        .await;
        let err = client(100, 10)
            .get_json(&url.parse().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Timeout(_)), "{err:?}");
    }

    #[tokio::test]
    async fn the_deadline_covers_a_slow_body() {
        // Headers at once, then a body that trickles past the deadline.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234")
                .await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            let _ = sock.write_all(b"56789").await;
        });
        let err = client(200, 1024)
            .get_json(&format!("http://{addr}/").parse().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Timeout(_)), "{err:?}");
    }

    #[tokio::test]
    async fn plain_http_needs_the_insecure_switch() {
        let strict = HttpClient::builder().build().unwrap();
        let err = strict
            .get_json(&"http://127.0.0.1:1/".parse().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::InsecureScheme));
        assert_eq!(
            strict.check_url("http://idp/").unwrap_err().to_string(),
            "invalid `url` = http://idp/: plain http needs insecure_allow_http"
        );
        assert!(strict.check_url("/relative").is_err());
        assert!(client(1, 1).check_url("http://127.0.0.1:8080/jwks").is_ok());
    }

    #[tokio::test]
    async fn a_custom_service_is_used() {
        let svc = tower::service_fn(|req: Request<Full<Bytes>>| async move {
            assert_eq!(req.uri(), "https://example.test/x");
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hi"))))
        });
        let c = HttpClient::builder().service(svc).build().unwrap();
        let res = c
            .get_json(&"https://example.test/x".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(&res.body[..], b"hi");
    }
}
