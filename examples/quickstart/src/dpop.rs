//! DPoP (RFC 9449) in the quickstart: accepted on every protected route beside Bearer, and on
//! `/auth/login` and `/auth/refresh`, where a request with a valid proof gets tokens bound to
//! the proof key (`cnf.jkt`, `token_type` `DPoP`).
//!
//! The proofs' `htu` is checked against the built-in issuer's URL (`public_url`, else
//! `http://<listen>`) followed by the request path. With `dpop_nonce = true` every proof must
//! carry a server nonce (RFC 9449 section 9): stateless, an HMAC of a time slot under
//! `dpop_nonce_secret`, so every instance given the same secret accepts the nonces of the
//! others; a proof without a current nonce gets `use_dpop_nonce` and a `DPoP-Nonce` header.
//!
//! At the token routes a bad proof is 400 with an RFC 6749 error body
//! (`{"error": "invalid_dpop_proof", "error_description": "..."}`), as RFC 9449 section 5 asks;
//! on the other routes it is 401 with the `DPoP` challenge.

use std::time::Duration;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tower_auth_core::{AuthError, AuthErrorKind, DefaultRejection, ProblemRejection};
use tower_auth_jwt::JwtAuthenticator;
use tower_auth_jwt::dpop::{DpopAuthenticator, DpopNonces};

use crate::config::{Config, ConfigError};

/// How long a nonce lives: each is accepted during its period and the next one.
pub const NONCE_PERIOD: Duration = Duration::from_secs(300);

/// The nonce source when `dpop_nonce = true`, from `dpop_nonce_secret`.
pub fn nonces(config: &Config) -> Result<Option<DpopNonces>, ConfigError> {
    match (config.dpop_nonce, &config.dpop_nonce_secret) {
        (false, None) => Ok(None),
        (false, Some(_)) => Err(ConfigError::new(
            "dpop_nonce_secret",
            Some("\"...\"".into()),
            "only used with `dpop_nonce = true`",
        )),
        (true, None) => Err(ConfigError::new(
            "dpop_nonce_secret",
            None,
            "required, missing: `dpop_nonce = true` needs a secret of at least 32 bytes, \
             the same on every instance",
        )),
        (true, Some(secret)) => DpopNonces::new(secret.as_bytes(), NONCE_PERIOD)
            .map(Some)
            .map_err(|e| {
                // The value is a secret: only its length is shown.
                ConfigError::new(
                    "dpop_nonce_secret",
                    Some(format!("<{} bytes>", secret.len())),
                    e.reason(),
                )
            }),
    }
}

/// The DPoP authenticator around `jwt`, checking `htu` against `url` (the built-in issuer's
/// URL, which is where clients reach this server).
pub fn authenticator(
    config: &Config,
    jwt: JwtAuthenticator,
    url: &str,
) -> Result<DpopAuthenticator, ConfigError> {
    let mut dpop = DpopAuthenticator::builder(jwt).external_url(url);
    if let Some(nonces) = nonces(config)? {
        dpop = dpop.nonces(nonces);
    }
    dpop.build().map_err(|e| {
        let key = if config.public_url.is_some() {
            "public_url"
        } else {
            "listen"
        };
        ConfigError::new(
            key,
            Some(format!("{url:?}")),
            format!("{}: {}", e.setting(), e.reason()),
        )
    })
}

/// The problem-document rejection of the protected routes: `Bearer`, then
/// `DPoP algs="..."` with the accepted proof algorithms.
pub fn rejection(dpop: &DpopAuthenticator) -> ProblemRejection {
    let http = DefaultRejection::builder()
        .dpop(dpop.algorithm_names())
        .build()
        .unwrap_or_default();
    ProblemRejection::with_challenge(http)
}

/// The head of a request, for [`DpopAuthenticator::check_token_request`].
pub fn parts(method: Method, uri: Uri, headers: HeaderMap) -> Parts {
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.headers = headers;
    parts
}

/// A token route's refusal of a DPoP problem, as RFC 6749 section 5.2 writes token-endpoint
/// errors: 400 with `{"error", "error_description"}` for a bad proof, a missing nonce (with its
/// `DPoP-Nonce` header) or a malformed request; 503 with `Retry-After` when the replay cache is
/// full.
pub fn token_error(error: &AuthError) -> Response {
    tracing::debug!(target: "quickstart::session", reason = error.description(), "dpop refused");
    let status = match error.kind() {
        AuthErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let body = serde_json::json!({
        "error": error.kind().as_str(),
        "error_description": error.description(),
    });
    let mut res = (status, body.to_string()).into_response();
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from_static("5"),
        );
    }
    for (name, value) in error.headers() {
        headers.insert(name.clone(), value.clone());
    }
    res
}

/// 400 `invalid_request` for a token request that asks for cookies and carries a proof: a
/// cookie is sent by the browser whoever holds the key, so the two do not mix.
pub fn cookie_mode_refused() -> Response {
    token_error(&AuthError::invalid_request(
        "dpop proofs are not accepted with session cookies",
    ))
}
