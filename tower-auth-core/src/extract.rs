//! axum extractors for [`Principal`] and `Option<Principal>` (feature `axum`).
//!
//! `Principal` is there when an [`AuthenticateLayer`](crate::AuthenticateLayer) authenticated the
//! request. `Option<Principal>` is `None` for a request that
//! [`AuthenticateLayer::optional`](crate::AuthenticateLayer::optional) let through anonymously;
//! the `Principal` extractor answers such a request with 401 and the bare `Bearer` challenge.
//! If no layer ran at all, both extractors answer 500 with a message naming the mistake: that is
//! a wiring bug in the application, not a client error, and a 401 would hide it.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_auth_core::Principal;
//!
//! async fn me(p: Principal) -> String {
//!     p.subject().to_owned()
//! }
//!
//! async fn hello(p: Option<Principal>) -> String {
//!     p.map_or("hello, stranger".into(), |p| format!("hello, {}", p.subject()))
//! }
//!
//! let app: Router = Router::new().route("/me", get(me)).route("/hello", get(hello));
//! # let _ = app;
//! ```

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::Principal;
use crate::authenticate::Anonymous;

/// The rejection of the `Principal` extractors: the route has no authentication layer.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct MissingAuthLayer;

impl std::fmt::Display for MissingAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "no Principal in the request extensions: add tower_auth_core::AuthenticateLayer \
             (required or optional) to this route before extracting a Principal",
        )
    }
}

impl std::error::Error for MissingAuthLayer {}

impl IntoResponse for MissingAuthLayer {
    fn into_response(self) -> Response {
        #[cfg(feature = "tracing")]
        tracing::error!(target: crate::telemetry::TARGET, "{self}");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

/// The rejection of the `Principal` extractor.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum PrincipalRejection {
    /// No authentication layer ran: 500 naming the mistake.
    MissingAuthLayer,
    /// An optional layer let the request through anonymously, but this handler needs a
    /// principal: 401 with the bare `Bearer` challenge (realm `api`).
    Anonymous,
}

impl IntoResponse for PrincipalRejection {
    fn into_response(self) -> Response {
        match self {
            Self::MissingAuthLayer => MissingAuthLayer.into_response(),
            Self::Anonymous => crate::OnRejection::<axum::body::Body>::on_rejection(
                &crate::DefaultRejection::new(),
                &crate::AuthError::missing_credential(),
            ),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = PrincipalRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            Ok(p.clone())
        } else if parts.extensions.get::<Anonymous>().is_some() {
            Err(PrincipalRejection::Anonymous)
        } else {
            Err(PrincipalRejection::MissingAuthLayer)
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            Ok(Some(p.clone()))
        } else if parts.extensions.get::<Anonymous>().is_some() {
            Ok(None)
        } else {
            Err(MissingAuthLayer)
        }
    }
}
