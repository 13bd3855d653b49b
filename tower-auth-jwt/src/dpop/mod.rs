//! DPoP (RFC 9449): access tokens bound to a key whose possession the client proves on every
//! request.
//!
//! [`DpopAuthenticator`] claims `Authorization: DPoP <token>` with a `DPoP` proof header. It
//! checks the proof as RFC 9449 sections 4.3 and 7 ask, verifies the token with the
//! [`JwtAuthenticator`] it wraps (which must carry `cnf.jkt`), and compares that thumbprint
//! with the proof's key:
//!
//! - exactly one `DPoP` header (two: 400 `invalid_request`), at most
//!   [`max_proof_size`](DpopAuthenticatorBuilder::max_proof_size) bytes;
//! - `typ` `dpop+jwt`; `alg` from the allow-list (default ES256, ES384, EdDSA, PS256, RS256,
//!   never HMAC); signed by the public key in its `jwk` header, which holds no private member
//!   and is checked as strictly as a configured key;
//! - `htm` is the request method; `htu` the request URL without query and fragment, compared
//!   after normalization (scheme and host case, default port); the URL is built from
//!   [`external_url`](DpopAuthenticatorBuilder::external_url) when the server sits behind a
//!   proxy;
//! - `iat` within the leeway (default 60 s) either side of now;
//! - `ath` is the hash of the access token; the token's `cnf.jkt` is the RFC 7638 thumbprint of
//!   the proof key;
//! - a `jti` not seen in the window: a replay cache per instance, bounded (when it is full, new
//!   proofs get 503 rather than an eviction that would admit a replay); across instances,
//!   nonces, or, opt-in, a replay cache shared through a store
//!   ([`shared_replay_store`](DpopAuthenticatorBuilder::shared_replay_store):
//!   `PostgresReplayStore`, `SqliteReplayStore`, or your own [`DpopReplayStore`]), which fails
//!   closed (503) when the store cannot answer;
//! - with [`nonces`](DpopAuthenticatorBuilder::nonces) (off by default), a current server nonce
//!   ([`DpopNonces`], stateless, shared by every instance): otherwise 401
//!   `use_dpop_nonce` with a fresh `DPoP-Nonce`.
//!
//! A bad proof is 401 `invalid_dpop_proof`; a bad token, or a token without `cnf.jkt` sent with
//! the DPoP scheme, is 401 `invalid_token`, both on the `DPoP` challenge. A DPoP-bound token sent
//! as Bearer is refused by [`JwtAuthenticator`] itself. Compose with
//! [`or`](tower_auth_core::Authenticator::or) to accept both schemes, or use the DPoP
//! authenticator alone on a route that requires DPoP; announce it with
//! [`RejectionBuilder::dpop`](tower_auth_core::RejectionBuilder::dpop) (or `dpop_only`) and
//! [`DpopAuthenticator::algorithm_names`].
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_auth_core::{Authenticator, AuthenticateLayer, DefaultRejection};
//! use tower_auth_jwt::{Algorithm, JwtAuthenticator, TrustedIssuer};
//! use tower_auth_jwt::dpop::{DpopAuthenticator, DpopKey};
//! # use base64::Engine as _;
//! # use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let secret = b"a secret of at least 32 bytes, shared with the issuer";
//! let jwt = JwtAuthenticator::builder()
//!     .issuer(TrustedIssuer::new("https://auth.example.com").audience("api").hmac_secret(secret))
//!     .build()
//!     .unwrap();
//! let dpop = DpopAuthenticator::builder(jwt.clone())
//!     .external_url("https://api.example.com")
//!     .build()
//!     .unwrap();
//! let rejection = DefaultRejection::builder().dpop(dpop.algorithm_names()).build().unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(AuthenticateLayer::required(dpop.or(jwt)).with_rejection(rejection))
//!     .service(service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) }));
//!
//! // The client's key, and a token bound to it (`cnf.jkt`), here signed by hand.
//! let key = DpopKey::generate(Algorithm::ES256).unwrap();
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
//! let claims = serde_json::json!({"iss": "https://auth.example.com", "aud": "api", "sub": "alice",
//!     "exp": now + 300, "cnf": {"jkt": key.thumbprint()}});
//! let input = format!("{}.{}", B64.encode(r#"{"alg":"HS256"}"#), B64.encode(claims.to_string()));
//! let tag = aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
//!     input.as_bytes());
//! let token = format!("{input}.{}", B64.encode(tag));
//!
//! let request = |scheme: &str, proof: Option<String>| {
//!     let mut b = Request::get("/orders").header("authorization", format!("{scheme} {token}"));
//!     if let Some(p) = proof { b = b.header("dpop", p); }
//!     b.body(()).unwrap()
//! };
//! let proof = || key.proof("GET", "https://api.example.com/orders", Some(&token), None).unwrap();
//! // With a proof: 200.
//! let res = svc.clone().oneshot(request("DPoP", Some(proof()))).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! // The same proof again: a replay, 401 invalid_dpop_proof.
//! let p = proof();
//! svc.clone().oneshot(request("DPoP", Some(p.clone()))).await.unwrap();
//! let res = svc.clone().oneshot(request("DPoP", Some(p))).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! // The bound token as Bearer: 401, with both challenges, Bearer first.
//! let res = svc.oneshot(request("Bearer", None)).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! let challenges: Vec<_> = res.headers().get_all("www-authenticate").iter().collect();
//! assert!(challenges[0].to_str().unwrap().starts_with("Bearer"));
//! assert!(challenges[1].to_str().unwrap().starts_with("DPoP algs="));
//! # }
//! ```

mod nonce;
mod proof;
mod replay;
#[cfg(feature = "revocation")]
mod shared;

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::header::{AUTHORIZATION, HOST};
use http::request::Parts;
use http::{HeaderName, HeaderValue};
use tower_auth_core::clock::Clock;
use tower_auth_core::credential::{Found, Location, is_token68};
use tower_auth_core::{AuthError, AuthErrorKind, Authentication, Authenticator, Principal, Scheme};

pub use self::nonce::DpopNonces;
pub use self::proof::DpopKey;
use self::proof::{Expected, Policy};
use self::replay::{Refused, ReplayCache};
#[cfg(feature = "revocation")]
pub use self::shared::DpopReplayStore;
#[cfg(all(feature = "revocation", feature = "postgres"))]
pub use self::shared::PostgresReplayStore;
#[cfg(all(feature = "revocation", feature = "sqlite"))]
pub use self::shared::SqliteReplayStore;
use crate::{Algorithm, Claims, ConfigError, JwtAuthenticator, JwtFuture};

/// The `DPoP` request header.
pub const DPOP: HeaderName = HeaderName::from_static("dpop");
/// The `DPoP-Nonce` response header.
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// The proof algorithms accepted by default.
pub const DEFAULT_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::PS256,
    Algorithm::RS256,
];

/// Authenticates `Authorization: DPoP <token>` requests with a `DPoP` proof (RFC 9449). See
/// the [module docs](self).
///
/// Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct DpopAuthenticator {
    inner: Arc<Inner>,
}

struct Inner {
    jwt: JwtAuthenticator,
    policy: Policy,
    external_url: Option<String>,
    nonces: Option<DpopNonces>,
    replay: ReplayCache,
    #[cfg(feature = "revocation")]
    shared: Option<Arc<dyn DpopReplayStore>>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for DpopAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopAuthenticator")
            .field("algorithms", &self.inner.policy.algorithms)
            .field("leeway", &self.inner.policy.leeway)
            .field("max_proof_size", &self.inner.policy.max_size)
            .field("external_url", &self.inner.external_url)
            .field("nonces", &self.inner.nonces.is_some())
            .finish_non_exhaustive()
    }
}

impl DpopAuthenticator {
    /// Starts a configuration around `jwt`, which verifies the access tokens (and whose clock
    /// the proof checks use).
    pub fn builder(jwt: JwtAuthenticator) -> DpopAuthenticatorBuilder {
        DpopAuthenticatorBuilder {
            clock: Arc::clone(&jwt.inner.clock),
            jwt,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            leeway: Duration::from_secs(60),
            max_proof_size: 4096,
            external_url: None,
            nonces: None,
            replay_capacity: 100_000,
            #[cfg(feature = "revocation")]
            shared: None,
        }
    }

    /// The accepted proof algorithms, by JWA name: for
    /// [`RejectionBuilder::dpop`](tower_auth_core::RejectionBuilder::dpop).
    pub fn algorithm_names(&self) -> Vec<&'static str> {
        self.inner
            .policy
            .algorithms
            .iter()
            .map(|a| a.as_str())
            .collect()
    }

    /// Checks the proof of a token request (login, refresh: RFC 9449 section 5), which carries
    /// no access token: `Ok(None)` without a `DPoP` header, else the RFC 7638 thumbprint of the
    /// proof key, to bind the tokens to (`TokenRequest::dpop_jkt` with feature `issue`). Every
    /// check of a resource request applies but `ath`, the replay cache included. Errors:
    /// [`AuthErrorKind::InvalidDpopProof`], [`AuthErrorKind::UseDpopNonce`] (with its
    /// `DPoP-Nonce` header), `InvalidRequest` for two `DPoP` headers, `Unavailable` when the
    /// replay cache is full; a token endpoint answers the first two with 400 (RFC 9449
    /// section 5).
    pub fn check_token_request(&self, parts: &Parts) -> Result<Option<String>, AuthError> {
        let inner = &self.inner;
        let mut proofs = parts.headers.get_all(DPOP).iter();
        let proof = match (proofs.next(), proofs.next()) {
            (None, _) => return Ok(None),
            (Some(p), None) => p,
            (Some(_), Some(_)) => {
                return Err(dpop_error(AuthError::invalid_request(
                    "more than one dpop header",
                )));
            }
        };
        let url = inner
            .request_url(parts)
            .ok_or_else(|| dpop_error(AuthError::invalid_request("request url unknown")))?;
        let now = inner.clock.now();
        let expected = Expected {
            method: parts.method.as_str(),
            url: &url,
            token: None,
        };
        let checked = proof::check(
            proof.as_bytes(),
            &inner.policy,
            &expected,
            inner.nonces.as_ref(),
            now,
        )?;
        let bind = Bind::new(checked, inner.policy.leeway);
        inner.remember(&bind)?;
        Ok(Some(bind.thumbprint))
    }

    /// Checks the proof of a resource request whose access token another authenticator
    /// verifies (an opaque token checked by introspection): `Ok(None)` without
    /// `Authorization: DPoP`, else the token and the RFC 7638 thumbprint of the proof key,
    /// which the token's `cnf.jkt` must equal. Every check of [`Authenticator::authenticate`]
    /// on the proof applies, `ath` and the replay cache included (the `jti` is recorded here,
    /// before the token is verified). Errors are those of the DPoP scheme:
    /// [`AuthErrorKind::InvalidDpopProof`], [`AuthErrorKind::UseDpopNonce`], `InvalidToken`
    /// for a malformed token, `InvalidRequest` for two headers, `Unavailable` when the replay
    /// cache is full.
    pub fn check_resource_request(&self, parts: &Parts) -> Result<Option<DpopBinding>, AuthError> {
        let Some(found) = self.extract(parts)? else {
            return Ok(None);
        };
        let credential = found.credential;
        let inner = &self.inner;
        let token = credential
            .authorization
            .as_bytes()
            .get(credential.token.clone())
            .unwrap_or_default();
        let expected = Expected {
            method: credential.method.as_str(),
            url: &credential.url,
            token: Some(token),
        };
        let checked = proof::check(
            credential.proof.as_bytes(),
            &inner.policy,
            &expected,
            inner.nonces.as_ref(),
            inner.clock.now(),
        )?;
        // The token is token68, so ASCII.
        let token = String::from_utf8(token.to_vec())
            .map_err(|_| dpop_error(AuthError::invalid_token("malformed dpop token")))?;
        let bind = Bind::new(checked, inner.policy.leeway);
        inner.remember(&bind)?;
        Ok(Some(DpopBinding {
            token,
            thumbprint: bind.thumbprint,
        }))
    }

    /// The current nonce, when nonces are on: for a `DPoP-Nonce` header on other responses.
    pub fn current_nonce(&self) -> Option<HeaderValue> {
        let now = self.inner.clock.now();
        self.inner.nonces.as_ref().map(|n| n.current(now))
    }
}

/// Configures a [`DpopAuthenticator`].
#[must_use]
pub struct DpopAuthenticatorBuilder {
    jwt: JwtAuthenticator,
    clock: Arc<dyn Clock>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    max_proof_size: usize,
    external_url: Option<String>,
    nonces: Option<DpopNonces>,
    replay_capacity: usize,
    #[cfg(feature = "revocation")]
    shared: Option<Arc<dyn DpopReplayStore>>,
}

impl fmt::Debug for DpopAuthenticatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopAuthenticatorBuilder")
            .field("algorithms", &self.algorithms)
            .field("leeway", &self.leeway)
            .field("max_proof_size", &self.max_proof_size)
            .field("external_url", &self.external_url)
            .field("replay_capacity", &self.replay_capacity)
            .finish_non_exhaustive()
    }
}

impl DpopAuthenticatorBuilder {
    /// The proof algorithms accepted (default [`DEFAULT_ALGORITHMS`]); asymmetric only.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// How far a proof's `iat` may be from now, either side (default 60 s, at most one hour).
    pub fn iat_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The largest proof accepted, in bytes (default 4096).
    pub fn max_proof_size(mut self, bytes: usize) -> Self {
        self.max_proof_size = bytes;
        self
    }

    /// The URL clients see, for `htu`, when the server is behind a proxy
    /// (`https://api.example.com`, or with a path prefix `https://example.com/api`): the request
    /// path is appended to it. By default the URL is built from the request: its absolute URI,
    /// or `http://` and its `Host` header.
    pub fn external_url(mut self, url: impl Into<String>) -> Self {
        self.external_url = Some(url.into());
        self
    }

    /// Requires server nonces (RFC 9449 section 9), off by default.
    pub fn nonces(mut self, nonces: DpopNonces) -> Self {
        self.nonces = Some(nonces);
        self
    }

    /// How many proofs the replay cache holds (default 100 000); beyond, new proofs get 503
    /// until entries expire.
    pub fn replay_cache_capacity(mut self, entries: usize) -> Self {
        self.replay_capacity = entries;
        self
    }

    /// Shares the replay cache of resource requests with every instance through `store`
    /// (opt-in; feature `revocation`, on by default): a proof that passed this instance's own
    /// cache and the token check is recorded there too, and refused when another instance saw
    /// it. When the store cannot answer, the request is refused with 503 (fails closed). The
    /// token routes' [`check_token_request`](DpopAuthenticator::check_token_request) and
    /// [`check_resource_request`](DpopAuthenticator::check_resource_request) are synchronous
    /// and use the instance's cache only; nonces cover them across instances.
    #[cfg(feature = "revocation")]
    pub fn shared_replay_store(mut self, store: impl DpopReplayStore) -> Self {
        self.shared = Some(Arc::new(store));
        self
    }

    /// The clock of the proof checks (default: the JWT authenticator's).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<DpopAuthenticator, ConfigError> {
        let algs = || format!("{:?}", self.algorithms);
        if self.algorithms.is_empty() {
            return Err(ConfigError::new(
                "dpop_algorithms",
                algs(),
                "must not be empty",
            ));
        }
        if self.algorithms.iter().any(|a| a.as_str().starts_with("HS")) {
            return Err(ConfigError::new(
                "dpop_algorithms",
                algs(),
                "DPoP proofs are signed with asymmetric keys only",
            ));
        }
        if self.leeway > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "dpop_iat_leeway",
                format!("{:?}", self.leeway),
                "must be at most one hour",
            ));
        }
        if self.max_proof_size == 0 {
            return Err(ConfigError::new(
                "dpop_max_proof_size",
                0,
                "must be greater than zero",
            ));
        }
        if self.replay_capacity == 0 {
            return Err(ConfigError::new(
                "dpop_replay_cache_capacity",
                0,
                "must be greater than zero",
            ));
        }
        let external_url = match self.external_url {
            None => None,
            Some(url) => {
                let bad = |reason| ConfigError::new("dpop_external_url", &url, reason);
                if url.contains(['?', '#']) {
                    return Err(bad("must not have a query or fragment"));
                }
                let normalized = proof::normalize_url(&url)
                    .ok_or_else(|| bad("must be an absolute http or https URL"))?;
                Some(normalized.trim_end_matches('/').to_owned())
            }
        };
        Ok(DpopAuthenticator {
            inner: Arc::new(Inner {
                jwt: self.jwt,
                policy: Policy {
                    algorithms: self.algorithms,
                    leeway: self.leeway,
                    max_size: self.max_proof_size,
                },
                external_url,
                nonces: self.nonces,
                replay: ReplayCache::new(self.replay_capacity),
                #[cfg(feature = "revocation")]
                shared: self.shared,
                clock: self.clock,
            }),
        })
    }
}

/// What [`DpopAuthenticator`]'s `extract` found: the token, the proof, and the method and URL
/// the proof must name. `Debug` shows neither token nor proof.
pub struct DpopCredential {
    authorization: HeaderValue,
    token: Range<usize>,
    proof: HeaderValue,
    method: http::Method,
    url: String,
}

impl fmt::Debug for DpopCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopCredential")
            .field("method", &self.method)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A resource request's checked DPoP proof and its access token, from
/// [`DpopAuthenticator::check_resource_request`]: the token still has to be verified, and its
/// `cnf.jkt` compared with [`thumbprint`](Self::thumbprint). `Debug` does not show the token.
pub struct DpopBinding {
    token: String,
    thumbprint: String,
}

impl DpopBinding {
    /// The access token of `Authorization: DPoP`.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The RFC 7638 thumbprint of the proof key.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The token and the thumbprint.
    pub fn into_parts(self) -> (String, String) {
        (self.token, self.thumbprint)
    }
}

impl fmt::Debug for DpopBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopBinding")
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

fn dpop_error(e: AuthError) -> AuthError {
    e.with_challenge("DPoP")
}

impl Inner {
    /// The request URL `htu` must name, normalized.
    fn request_url(&self, parts: &Parts) -> Option<String> {
        let path = parts.uri.path();
        let url = match &self.external_url {
            Some(base) => format!("{base}{path}"),
            None => {
                let scheme = parts.uri.scheme_str().unwrap_or("http");
                let authority = match parts.uri.authority() {
                    Some(a) => a.as_str(),
                    None => {
                        let mut hosts = parts.headers.get_all(HOST).iter();
                        match (hosts.next(), hosts.next()) {
                            (Some(h), None) => h.to_str().ok()?,
                            _ => return None,
                        }
                    }
                };
                format!("{scheme}://{authority}{path}")
            }
        };
        proof::normalize_url(&url)
    }

    /// The principal, once the token verified: its `cnf.jkt` must be the proof key's
    /// thumbprint, and the proof's `jti` new.
    fn bind(&self, principal: Principal, bind: &Bind) -> Result<Principal, AuthError> {
        let jkt = principal
            .extension::<Claims>()
            .and_then(|c| c.get_path("cnf.jkt"))
            .and_then(|v| v.as_str());
        if jkt != Some(bind.thumbprint.as_str()) {
            return Err(AuthError::invalid_dpop_proof(
                "dpop proof key does not match the token",
            ));
        }
        self.remember(bind)?;
        Ok(principal)
    }

    /// Records the proof's `jti` in the replay cache: refused when it is there already, 503
    /// when the cache is full.
    fn remember(&self, bind: &Bind) -> Result<(), AuthError> {
        match self
            .replay
            .insert(bind.replay_key, bind.expires, self.clock.now())
        {
            Ok(()) => Ok(()),
            Err(Refused::Replayed) => Err(AuthError::invalid_dpop_proof("dpop proof replayed")),
            Err(Refused::Full) => Err(AuthError::unavailable("dpop replay cache full")),
        }
    }
}

/// What is left to check once the token verified.
struct Bind {
    thumbprint: String,
    replay_key: replay::ReplayKey,
    expires: SystemTime,
}

impl Bind {
    /// The replay entry of a checked proof: its `jti`, scoped to its key (so one client
    /// cannot block another's identifiers), kept until its `iat` leaves the window.
    fn new(checked: proof::Checked, leeway: Duration) -> Self {
        let mut replay_input = Vec::with_capacity(checked.thumbprint.len() + 1 + checked.jti.len());
        replay_input.extend_from_slice(checked.thumbprint.as_bytes());
        replay_input.push(0);
        replay_input.extend_from_slice(checked.jti.as_bytes());
        Self {
            replay_key: crate::cache::hash(&replay_input),
            // `iat` is within the leeway of now: this cannot overflow in practice.
            expires: checked.iat.checked_add(leeway).unwrap_or(checked.iat),
            thumbprint: checked.thumbprint,
        }
    }
}

impl Authenticator for DpopAuthenticator {
    type Credential = DpopCredential;
    type Future = DpopFuture;

    fn extract(&self, parts: &Parts) -> Result<Option<Found<DpopCredential>>, AuthError> {
        let headers = &parts.headers;
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(dpop_error(AuthError::invalid_request(
                "more than one authorization header",
            )));
        }
        // `DPoP` then 1*SP (RFC 9449 section 7.1); any other scheme is not ours.
        let bytes = value.as_bytes();
        const SCHEME: &[u8] = b"dpop";
        if bytes.len() < SCHEME.len()
            || !bytes[..SCHEME.len()].eq_ignore_ascii_case(SCHEME)
            || bytes.get(SCHEME.len()).is_some_and(|&b| b != b' ')
        {
            return Ok(None);
        }
        let start = bytes[SCHEME.len()..]
            .iter()
            .position(|&b| b != b' ')
            .map_or(bytes.len(), |p| SCHEME.len() + p);
        let end = bytes
            .iter()
            .rposition(|&b| b != b' ')
            .map_or(start, |p| (p + 1).max(start));
        let token = &bytes[start..end];
        if token.is_empty() {
            return Err(dpop_error(AuthError::invalid_token("empty dpop token")));
        }
        if !is_token68(token) {
            return Err(dpop_error(AuthError::invalid_token("malformed dpop token")));
        }
        let mut proofs = headers.get_all(DPOP).iter();
        let proof = match (proofs.next(), proofs.next()) {
            (Some(p), None) => p.clone(),
            (None, _) => return Err(AuthError::invalid_dpop_proof("missing dpop proof")),
            (Some(_), Some(_)) => {
                return Err(dpop_error(AuthError::invalid_request(
                    "more than one dpop header",
                )));
            }
        };
        let url = self
            .inner
            .request_url(parts)
            .ok_or_else(|| dpop_error(AuthError::invalid_request("request url unknown")))?;
        Ok(Some(Found::new(
            DpopCredential {
                authorization: value.clone(),
                token: start..end,
                proof,
                method: parts.method.clone(),
                url,
            },
            Location::Authorization,
            Scheme::Jwt,
        )))
    }

    fn authenticate(&self, credential: DpopCredential) -> DpopFuture {
        let inner = &self.inner;
        let token = credential
            .authorization
            .as_bytes()
            .get(credential.token.clone())
            .unwrap_or_default();
        let now = inner.clock.now();
        let expected = Expected {
            method: credential.method.as_str(),
            url: &credential.url,
            token: Some(token),
        };
        let checked = match proof::check(
            credential.proof.as_bytes(),
            &inner.policy,
            &expected,
            inner.nonces.as_ref(),
            now,
        ) {
            Ok(c) => c,
            Err(e) => return DpopFuture::ready(Err(e)),
        };
        // The token is token68, so ASCII.
        let Ok(token) = std::str::from_utf8(token) else {
            return DpopFuture::ready(Err(dpop_error(AuthError::invalid_token(
                "malformed dpop token",
            ))));
        };
        let bind = Bind::new(checked, inner.policy.leeway);
        DpopFuture {
            state: State::Verifying {
                jwt: inner.jwt.verify_bound(token),
                inner: Arc::clone(inner),
                bind,
            },
        }
    }

    fn authenticate_now(&self, credential: DpopCredential) -> Authentication<DpopFuture> {
        let mut fut = self.authenticate(credential);
        match fut.try_ready() {
            Some(result) => Authentication::Ready(result),
            None => Authentication::Pending(fut),
        }
    }
}

/// The future of [`DpopAuthenticator`]: ready at once unless the token's issuer has to fetch
/// keys first.
pub struct DpopFuture {
    state: State,
}

enum State {
    Ready(Option<Result<Principal, AuthError>>),
    Verifying {
        jwt: JwtFuture,
        inner: Arc<Inner>,
        bind: Bind,
    },
    /// Asking the shared replay store, with the principal to answer when the proof is new.
    #[cfg(feature = "revocation")]
    Sharing {
        check: shared::SharedCheck,
        principal: Option<Principal>,
    },
}

impl DpopFuture {
    fn ready(result: Result<Principal, AuthError>) -> Self {
        Self {
            state: State::Ready(Some(result)),
        }
    }

    /// The decision, if it needs no waiting.
    fn try_ready(&mut self) -> Option<Result<Principal, AuthError>> {
        match &mut self.state {
            State::Ready(result) => result.take(),
            State::Verifying { jwt, inner, bind } => {
                let verified = jwt.take_ready()?;
                self.state = verified_state(inner, bind, verified);
                match &mut self.state {
                    State::Ready(result) => result.take(),
                    _ => None,
                }
            }
            #[cfg(feature = "revocation")]
            State::Sharing { .. } => None,
        }
    }
}

/// What follows the token's verification: the decision, or, with a shared replay store and a
/// proof new to this instance, the store's check.
fn verified_state(
    inner: &Arc<Inner>,
    bind: &Bind,
    verified: Result<Principal, AuthError>,
) -> State {
    let result = finish(inner, bind, verified);
    #[cfg(feature = "revocation")]
    if let (Ok(_), Some(store)) = (&result, &inner.shared) {
        return State::Sharing {
            check: shared::check(store, bind.replay_key, bind.expires, inner.clock.now()),
            principal: result.ok(),
        };
    }
    State::Ready(Some(result))
}

fn finish(
    inner: &Inner,
    bind: &Bind,
    verified: Result<Principal, AuthError>,
) -> Result<Principal, AuthError> {
    match verified {
        Ok(principal) => inner.bind(principal, bind),
        // A token refused under the DPoP scheme: the error goes on the DPoP challenge.
        Err(e) if e.kind() == AuthErrorKind::InvalidToken => Err(dpop_error(e)),
        Err(e) => Err(e),
    }
}

impl fmt::Debug for DpopFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Ready(_) => "ready",
            State::Verifying { .. } => "verifying",
            #[cfg(feature = "revocation")]
            State::Sharing { .. } => "sharing",
        };
        f.debug_struct("DpopFuture").field("state", &state).finish()
    }
}

impl Future for DpopFuture {
    type Output = Result<Principal, AuthError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Ready(result) => {
                    return Poll::Ready(result.take().unwrap_or_else(|| {
                        Err(AuthError::invalid_token("future polled after completion"))
                    }));
                }
                State::Verifying { jwt, inner, bind } => match Pin::new(jwt).poll(cx) {
                    Poll::Ready(verified) => {
                        let next = verified_state(inner, bind, verified);
                        this.state = next;
                    }
                    Poll::Pending => return Poll::Pending,
                },
                #[cfg(feature = "revocation")]
                State::Sharing { check, principal } => {
                    let decided =
                        match std::task::ready!(check.as_mut().poll(cx)) {
                            Ok(true) => principal.take().ok_or_else(|| {
                                AuthError::invalid_token("future polled after completion")
                            }),
                            Ok(false) => Err(AuthError::invalid_dpop_proof("dpop proof replayed")),
                            // Fails closed: a proof nobody could check is not let through.
                            Err(e) => Err(AuthError::unavailable("dpop replay store unavailable")
                                .with_source(e)),
                        };
                    this.state = State::Ready(None);
                    return Poll::Ready(decided);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
