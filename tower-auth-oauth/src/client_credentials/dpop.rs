//! DPoP (RFC 9449) for the client-credentials client: a key held by the token source, a proof
//! with each token request (retried once with the authorization server's nonce), and a fresh
//! proof with each request the layer sends a DPoP-bound token with.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use tower_auth_core::client::HttpClient;
use tower_auth_jwt::dpop::{DPOP, DPOP_NONCE, DpopKey};

use super::token::{AccessToken, ClientCredentials};
use crate::token_request::SendError;

/// A DPoP proof could not be made for a request, which is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpopError {
    /// The request URI is a path only: a proof names the absolute URL (`htu`), so DPoP needs
    /// absolute request URIs.
    RelativeUri,
    /// The proof could not be signed.
    Signing,
}

impl fmt::Display for DpopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RelativeUri => "a dpop proof needs an absolute request uri",
            Self::Signing => "the dpop proof could not be signed",
        })
    }
}

impl std::error::Error for DpopError {}

/// The key and the server nonces seen so far: the token endpoint's, and each resource
/// origin's (RFC 9449 section 8: a nonce is per server).
pub(crate) struct ClientDpop {
    key: DpopKey,
    token_nonce: Mutex<Option<String>>,
    resource_nonces: Mutex<HashMap<String, String>>,
}

impl fmt::Debug for ClientDpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientDpop")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// At most this many resource origins' nonces are remembered; beyond, the table starts over
/// (a forgotten nonce costs one `use_dpop_nonce` round trip).
const MAX_ORIGINS: usize = 256;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `scheme://authority` of an absolute URI.
fn origin(uri: &Uri) -> Option<String> {
    Some(format!(
        "{}://{}",
        uri.scheme_str()?,
        uri.authority()?.as_str()
    ))
}

/// The server nonce of a response, when it sends one.
fn nonce_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(DPOP_NONCE)
        .and_then(|v| v.to_str().ok())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

impl ClientDpop {
    pub(crate) fn new(key: DpopKey) -> Self {
        Self {
            key,
            token_nonce: Mutex::new(None),
            resource_nonces: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn key(&self) -> &DpopKey {
        &self.key
    }

    fn proof(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<HeaderValue, DpopError> {
        let proof = self
            .key
            .proof(method, url, token, nonce)
            .map_err(|_| DpopError::Signing)?;
        HeaderValue::try_from(proof).map_err(|_| DpopError::Signing)
    }

    /// Sends a token request with a proof (`htm` its method, `htu` the token endpoint); when the
    /// authorization server answers `use_dpop_nonce` with a `DPoP-Nonce` (RFC 9449 section 8),
    /// sends it once more with that nonce. The last nonce is kept for the next request.
    pub(crate) async fn send_token_request(
        &self,
        http: HttpClient,
        endpoint: &str,
        request: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, SendError> {
        let method = request.method().as_str().to_owned();
        let mut retried = false;
        loop {
            let nonce = lock(&self.token_nonce).clone();
            let proof = self
                .proof(&method, endpoint, None, nonce.as_deref())
                .map_err(SendError::Dpop)?;
            let mut attempt = request.clone();
            attempt.headers_mut().insert(DPOP, proof);
            let res = crate::token_request::send(http.clone(), attempt).await?;
            let fresh = nonce_of(res.headers());
            if let Some(n) = &fresh {
                *lock(&self.token_nonce) = Some(n.clone());
            }
            let asks_nonce = res.status() == StatusCode::BAD_REQUEST
                && serde_json::from_slice::<serde_json::Value>(res.body())
                    .is_ok_and(|b| b["error"] == "use_dpop_nonce");
            if asks_nonce && fresh.is_some() && !retried {
                retried = true;
                continue;
            }
            return Ok(res);
        }
    }

    /// The `DPoP` header of a request to `uri` with `method`, sending `token`: a fresh proof,
    /// with the origin's last nonce.
    pub(crate) fn request_proof(
        &self,
        method: &Method,
        uri: &Uri,
        token: &str,
    ) -> Result<(HeaderName, HeaderValue), DpopError> {
        let origin = origin(uri).ok_or(DpopError::RelativeUri)?;
        let nonce = lock(&self.resource_nonces).get(&origin).cloned();
        let url = uri.to_string();
        let proof = self.proof(method.as_str(), &url, Some(token), nonce.as_deref())?;
        Ok((DPOP, proof))
    }

    /// Reads a resource's answer to a request sent to `uri`: keeps the nonce it carries, and
    /// tells whether it is a `use_dpop_nonce` challenge (a 401 whose `WWW-Authenticate` says so,
    /// with a `DPoP-Nonce`), which a new proof with that nonce answers.
    pub(crate) fn observe(&self, uri: &Uri, status: StatusCode, headers: &HeaderMap) -> bool {
        let (Some(nonce), Some(origin)) = (nonce_of(headers), origin(uri)) else {
            return false;
        };
        {
            let mut nonces = lock(&self.resource_nonces);
            if nonces.len() >= MAX_ORIGINS && !nonces.contains_key(&origin) {
                nonces.clear();
            }
            nonces.insert(origin, nonce);
        }
        status == StatusCode::UNAUTHORIZED
            && headers
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|c| c.contains("error=\"use_dpop_nonce\""))
    }
}

/// Puts `token` on `req`: `Authorization`, and for a DPoP-bound token a fresh proof for the
/// request's method and URI.
pub(crate) fn authorize<B>(
    tokens: &ClientCredentials,
    token: &AccessToken,
    req: &mut http::Request<B>,
) -> Result<(), DpopError> {
    if let (Some(dpop), Some(raw)) = (tokens.dpop(), token.dpop_token()) {
        let (name, proof) = dpop.request_proof(req.method(), req.uri(), raw)?;
        req.headers_mut().insert(name, proof);
    }
    req.headers_mut()
        .insert(http::header::AUTHORIZATION, token.authorization().clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use axum::extract::State;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::Full;
    use tower::{Layer, ServiceExt, service_fn};
    use tower_auth_core::{AuthenticateLayer, DefaultRejection};
    use tower_auth_jwt::dpop::{DpopAuthenticator, DpopNonces};
    use tower_auth_jwt::{Algorithm, JwtAuthenticator, TrustedIssuer};

    use super::*;
    use crate::client_credentials::{ClientCredentials, ClientCredentialsLayer, TokenError};

    const SECRET: &[u8] = b"a test secret of at least 32 bytes, shared";
    const ISS: &str = "https://as.test";
    const API: &str = "http://api.test";

    fn nonces() -> DpopNonces {
        DpopNonces::new(SECRET, Duration::from_secs(300)).unwrap()
    }

    fn jwt() -> JwtAuthenticator {
        JwtAuthenticator::builder()
            .issuer(TrustedIssuer::new(ISS).audience("api").hmac_secret(SECRET))
            .build()
            .unwrap()
    }

    /// An HS256 access token bound to `jkt`.
    fn bound_token(jkt: &str) -> String {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 300;
        let claims = serde_json::json!({"iss": ISS, "aud": "api", "sub": "svc", "exp": exp,
            "cnf": {"jkt": jkt}});
        let input = format!(
            "{}.{}",
            B64.encode(r#"{"alg":"HS256"}"#),
            B64.encode(claims.to_string())
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", B64.encode(tag))
    }

    #[derive(Clone)]
    struct Endpoint {
        dpop: DpopAuthenticator,
        requests: Arc<AtomicUsize>,
        /// `token_type` answered for a valid proof.
        token_type: &'static str,
    }

    /// A token endpoint that checks proofs as RFC 9449 section 5 says (nonces required) and
    /// issues tokens bound to the proof key.
    async fn token_endpoint(
        State(ep): State<Endpoint>,
        req: axum::extract::Request,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        ep.requests.fetch_add(1, Ordering::SeqCst);
        let (parts, _) = req.into_parts();
        match ep.dpop.check_token_request(&parts) {
            Ok(Some(jkt)) => axum::Json(serde_json::json!({
                "access_token": bound_token(&jkt), "token_type": ep.token_type,
                "expires_in": 300,
            }))
            .into_response(),
            Ok(None) => (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({"error": "invalid_dpop_proof"})),
            )
                .into_response(),
            Err(e) => {
                let mut res = (
                    StatusCode::BAD_REQUEST,
                    axum::Json(serde_json::json!({"error": e.kind().as_str()})),
                )
                    .into_response();
                for (name, value) in e.headers() {
                    res.headers_mut().insert(name.clone(), value.clone());
                }
                res
            }
        }
    }

    /// Starts the endpoint; returns its URL and its request counter.
    async fn start(nonce_secret: Option<&[u8]>, token_type: &'static str) -> (String, Endpoint) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut dpop = DpopAuthenticator::builder(jwt()).external_url(format!("http://{addr}"));
        if let Some(secret) = nonce_secret {
            dpop = dpop.nonces(DpopNonces::new(secret, Duration::from_secs(300)).unwrap());
        }
        let ep = Endpoint {
            dpop: dpop.build().unwrap(),
            requests: Arc::default(),
            token_type,
        };
        let app = axum::Router::new()
            .route("/token", axum::routing::post(token_endpoint))
            .with_state(ep.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/token"), ep)
    }

    fn client(url: &str) -> ClientCredentials {
        ClientCredentials::builder(url)
            .client_id("cc")
            .client_secret("cc-secret")
            .insecure_allow_http(true)
            .dpop(DpopKey::generate(Algorithm::ES256).unwrap())
            .build()
            .unwrap()
    }

    type Api =
        tower::util::BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible>;

    /// The called API: DPoP required, with nonces; counts the calls that reach it.
    fn api(calls: Arc<AtomicUsize>) -> Api {
        let dpop = DpopAuthenticator::builder(jwt())
            .external_url(API)
            .nonces(nonces())
            .build()
            .unwrap();
        let rejection = DefaultRejection::builder()
            .dpop_only(dpop.algorithm_names())
            .build()
            .unwrap();
        let inner = AuthenticateLayer::required(dpop)
            .with_rejection(rejection)
            .layer(service_fn(|_: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::default()))
            }));
        Api::new(service_fn(move |req: Request<Full<Bytes>>| {
            calls.fetch_add(1, Ordering::SeqCst);
            inner.clone().oneshot(req)
        }))
    }

    #[tokio::test]
    async fn the_token_request_carries_a_proof_and_retries_once_with_the_nonce() {
        let (url, ep) = start(Some(SECRET), "DPoP").await;
        let tokens = client(&url);
        let token = tokens.token().await.unwrap();
        // Refused for want of a nonce, then accepted with it.
        assert_eq!(ep.requests.load(Ordering::SeqCst), 2);
        let raw = token.dpop_token().unwrap();
        let jkt = tokens.dpop_key().unwrap().thumbprint();
        let payload: serde_json::Value =
            serde_json::from_slice(&B64.decode(raw.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(payload["cnf"]["jkt"], jkt);
        assert!(token.authorization().to_str().unwrap().starts_with("DPoP "));
    }

    #[tokio::test]
    async fn a_nonce_the_server_keeps_refusing_is_retried_only_once() {
        // An endpoint that asks for a new nonce every time, and records the proofs' nonces.
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = Arc::clone(&seen);
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(move |headers: http::HeaderMap| {
                let kept = Arc::clone(&kept);
                async move {
                    let proof = headers["dpop"].to_str().unwrap().to_owned();
                    let payload: serde_json::Value = serde_json::from_slice(
                        &B64.decode(proof.split('.').nth(1).unwrap()).unwrap(),
                    )
                    .unwrap();
                    let mut seen = kept.lock().unwrap();
                    seen.push(payload["nonce"].as_str().map(str::to_owned));
                    let nonce = format!("n-{}", seen.len());
                    (
                        StatusCode::BAD_REQUEST,
                        [("dpop-nonce", nonce)],
                        axum::Json(serde_json::json!({"error": "use_dpop_nonce"})),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let tokens = client(&format!("http://{addr}/token"));
        let err = tokens.token().await.unwrap_err();
        assert!(
            matches!(err, TokenError::Refused(ref c) if c == "use_dpop_nonce"),
            "{err:?}"
        );
        assert_eq!(*seen.lock().unwrap(), [None, Some("n-1".to_owned())]);
        // The next token request starts with the last nonce it was given.
        tokens.token().await.unwrap_err();
        assert_eq!(seen.lock().unwrap()[2].as_deref(), Some("n-2"));
    }

    #[tokio::test]
    async fn a_bearer_answer_is_sent_as_bearer_without_proof() {
        let (url, _) = start(None, "Bearer").await;
        let tokens = client(&url);
        let token = tokens.token().await.unwrap();
        assert!(token.dpop_token().is_none());
        let seen = Arc::new(std::sync::Mutex::new(None));
        let kept = Arc::clone(&seen);
        let svc = ClientCredentialsLayer::new(tokens)
            .insecure_allow_http(true)
            .layer(service_fn(move |req: Request<Full<Bytes>>| {
                *kept.lock().unwrap() = Some(req.headers().clone());
                async { Ok::<_, Infallible>(Response::new(())) }
            }));
        svc.oneshot(
            Request::get(format!("{API}/items"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
        let headers = seen.lock().unwrap().take().unwrap();
        assert!(
            headers["authorization"]
                .to_str()
                .unwrap()
                .starts_with("Bearer ")
        );
        assert!(headers.get("dpop").is_none());
    }

    #[tokio::test]
    async fn each_request_gets_a_fresh_proof_and_a_nonce_challenge_is_retried() {
        let (url, _) = start(None, "DPoP").await;
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = ClientCredentialsLayer::new(client(&url))
            .insecure_allow_http(true)
            .layer(api(Arc::clone(&calls)));
        let get = || {
            Request::get(format!("{API}/items?page=1"))
                .body(Full::default())
                .unwrap()
        };
        // The first call learns the API's nonce (401 use_dpop_nonce) and is sent again.
        let res = svc.clone().oneshot(get()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Then the nonce is known: one call each, each with its own proof (the API's replay
        // cache would refuse a second use of one).
        for n in 3..6 {
            let res = svc.clone().oneshot(get()).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(calls.load(Ordering::SeqCst), n);
        }
    }

    #[tokio::test]
    async fn a_nonce_challenge_to_a_request_with_a_body_goes_back_to_the_caller() {
        let (url, _) = start(None, "DPoP").await;
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = ClientCredentialsLayer::new(client(&url))
            .insecure_allow_http(true)
            .layer(api(Arc::clone(&calls)));
        let post = || {
            Request::post(format!("{API}/items"))
                .body(Full::new(Bytes::from_static(b"{\"name\":\"pear\"}")))
                .unwrap()
        };
        let res = svc.clone().oneshot(post()).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers().contains_key(DPOP_NONCE));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The caller sends it again: the nonce is now known.
        let res = svc.clone().oneshot(post()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_path_only_uri_gets_no_token_with_dpop() {
        let (url, _) = start(None, "DPoP").await;
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = ClientCredentialsLayer::new(client(&url))
            .insecure_allow_http(true)
            .layer(api(Arc::clone(&calls)));
        let err = svc
            .oneshot(Request::get("/items").body(Full::default()).unwrap())
            .await
            .unwrap_err();
        assert_eq!(
            err.downcast_ref::<DpopError>(),
            Some(&DpopError::RelativeUri)
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
