//! Authenticate requests with an [`Authenticator`](crate::Authenticator) and put the
//! [`Principal`](crate::Principal) into the request extensions.
//!
//! [`AuthenticateLayer::required`] rejects requests without a valid credential;
//! [`AuthenticateLayer::optional`] lets requests *without any credential* through anonymously,
//! while a credential that is present and bad is still rejected and an unavailable dependency is
//! still a 503. Rejections are responses built by an [`OnRejection`](crate::OnRejection) (default:
//! [`DefaultRejection`](crate::DefaultRejection)); the inner service is then not called and its
//! error type is never changed.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_auth_core::credential::{bearer_token, Location};
//! use tower_auth_core::{from_fn, AuthError, AuthenticateLayer, Principal, RequireScopesLayer, Scheme};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let auth = from_fn(Location::Authorization, |parts| match bearer_token(&parts.headers)? {
//!     None => Ok(None),
//!     Some("reader") => Ok(Some(
//!         Principal::builder("alice", Scheme::Custom("demo")).scopes(["read"]).build(),
//!     )),
//!     Some(_) => Err(AuthError::invalid_token("unknown token")),
//! });
//!
//! let svc = ServiceBuilder::new()
//!     .layer(AuthenticateLayer::required(auth))
//!     .layer(RequireScopesLayer::all_of(["read"]))
//!     .service(service_fn(|req: Request<String>| async move {
//!         let who = req.extensions().get::<Principal>().unwrap().subject().to_owned();
//!         Ok::<_, Infallible>(Response::new(who))
//!     }));
//!
//! let ok = svc.clone()
//!     .oneshot(Request::get("/").header("authorization", "Bearer reader").body(String::new()).unwrap())
//!     .await.unwrap();
//! assert_eq!(ok.status(), StatusCode::OK);
//! assert_eq!(ok.body(), "alice");
//!
//! let missing = svc.clone().oneshot(Request::get("/").body(String::new()).unwrap()).await.unwrap();
//! assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(missing.headers()["www-authenticate"], "Bearer realm=\"api\"");
//!
//! let bad = svc
//!     .oneshot(Request::get("/").header("authorization", "Bearer nope").body(String::new()).unwrap())
//!     .await.unwrap();
//! assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```

mod future;
mod layer;
mod service;

pub use self::future::ResponseFuture;
pub use self::layer::AuthenticateLayer;
pub use self::service::Authenticate;

/// Marks a request that [`AuthenticateLayer::optional`] let through without a credential, so the
/// `Option<Principal>` extractor can tell "anonymous" from "no layer at all".
#[derive(Clone, Copy, Debug)]
pub(crate) struct Anonymous;

#[cfg(test)]
mod tests;
