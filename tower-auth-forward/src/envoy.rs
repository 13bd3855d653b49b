//! Envoy's gRPC external authorization API, `envoy.service.auth.v3.Authorization/Check`
//! (feature `envoy-grpc`), served with tonic on the generated types of the
//! [`envoy-types`](https://crates.io/crates/envoy-types) crate.
//!
//! The method, path (raw request target) and headers of the original request come from the
//! check request's `attributes.request.http`; the rules and authenticator are those of the
//! [`ForwardAuth`] the service is made from, so the answers are the HTTP endpoint's:
//!
//! - allowed: status `OK` with an `ok_response` that sets the identity headers upstream
//!   (overwriting any the client sent) and removes the identity headers that have no value, so a
//!   client cannot supply them either;
//! - refused: the gRPC code of [`GrpcRejection::code`](tower_auth_core::GrpcRejection::code)
//!   (16 `UNAUTHENTICATED`, 7 `PERMISSION_DENIED`, 3 `INVALID_ARGUMENT`, 14 `UNAVAILABLE`)
//!   with a `denied_response` holding the HTTP status and headers (`WWW-Authenticate`,
//!   `Retry-After`) of the HTTP endpoint's rejection, which Envoy sends to the client.
//!
//! ```no_run
//! use tower_auth_core::{credential::Location, from_fn};
//! use tower_auth_forward::{ForwardAuth, Rule};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = from_fn(Location::Authorization, |_| Ok(None));
//! let forward = ForwardAuth::builder(auth).rule(Rule::path_prefix("/")).build()?;
//! tonic::transport::Server::builder()
//!     .add_service(forward.envoy_grpc())
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse,
    HeaderAppendAction, HeaderValue as EnvoyHeader, HeaderValueOption, HttpResponse, HttpStatus,
    OkHttpResponse,
};
use envoy_types::pb::google::rpc;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use tower_auth_core::{AuthError, Authenticator, GrpcRejection, OnRejection};

use crate::ForwardAuth;
use crate::service::{Decision, ForwardBody, Inner};

/// The `Check` service of a [`ForwardAuth`]; made by [`ForwardAuth::envoy_grpc`].
pub struct EnvoyCheck<A, R> {
    inner: Arc<Inner<A, R>>,
}

impl<A, R> fmt::Debug for EnvoyCheck<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvoyCheck").finish_non_exhaustive()
    }
}

impl<A, R> ForwardAuth<A, R>
where
    A: Authenticator + Send + Sync + 'static,
    A::Future: Send,
    R: OnRejection<ForwardBody> + Send + Sync + 'static,
{
    /// Envoy's `envoy.service.auth.v3.Authorization` gRPC service, with the same rules,
    /// authenticator and responder: add it to a `tonic::transport::Server`. See the
    /// [module docs](crate::envoy).
    pub fn envoy_grpc(&self) -> AuthorizationServer<EnvoyCheck<A, R>> {
        AuthorizationServer::new(EnvoyCheck {
            inner: Arc::clone(self.inner()),
        })
    }
}

#[tonic::async_trait]
impl<A, R> Authorization for EnvoyCheck<A, R>
where
    A: Authenticator + Send + Sync + 'static,
    A::Future: Send,
    R: OnRejection<ForwardBody> + Send + Sync + 'static,
{
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let decision = match original(request.into_inner()) {
            Ok((parts, method, target)) => self.inner.decide(parts, method, &target).await,
            Err(e) => Err(e),
        };
        Ok(tonic::Response::new(self.respond(decision)))
    }
}

/// The original request of a check: its head (headers only), method and raw target.
fn original(check: CheckRequest) -> Result<(http::request::Parts, Method, String), AuthError> {
    let http = check
        .attributes
        .and_then(|a| a.request)
        .and_then(|r| r.http)
        .ok_or(AuthError::invalid_request("no http request attributes"))?;
    if http.path.is_empty() {
        return Err(AuthError::invalid_request("no forwarded path"));
    }
    let method = Method::from_bytes(http.method.as_bytes())
        .map_err(|_| AuthError::invalid_request("malformed forwarded method"))?;
    let mut headers = HeaderMap::new();
    let mut add = |key: &str, value: &[u8]| -> Result<(), AuthError> {
        // Pseudo-headers (`:path`, `:authority`) are attributes, not headers.
        if key.starts_with(':') {
            return Ok(());
        }
        let name = HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| AuthError::invalid_request("malformed forwarded header"))?;
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| AuthError::invalid_request("malformed forwarded header"))?;
        headers.append(name, value);
        Ok(())
    };
    match http.header_map {
        // `encode_raw_headers`: one entry per header line, repeated names kept apart.
        Some(map) if !map.headers.is_empty() => {
            for h in &map.headers {
                let value = if h.raw_value.is_empty() {
                    h.value.as_bytes()
                } else {
                    &h.raw_value
                };
                add(&h.key, value)?;
            }
        }
        _ => {
            for (key, value) in &http.headers {
                add(key, value.as_bytes())?;
            }
        }
    }
    let mut parts = Request::new(()).into_parts().0;
    parts.headers = headers;
    Ok((parts, method, http.path))
}

impl<A, R: OnRejection<ForwardBody>> EnvoyCheck<A, R> {
    fn respond(&self, decision: Decision) -> CheckResponse {
        crate::telemetry::decided("envoy_grpc", &decision);
        match decision {
            Ok(principal) => {
                let set = principal
                    .map(|p| self.inner.identity_headers(&p))
                    .unwrap_or_default();
                let remove = self
                    .inner
                    .identity
                    .names()
                    .into_iter()
                    .filter(|n| !set.contains_key(*n))
                    .map(|n| n.as_str().to_owned())
                    .collect();
                #[allow(deprecated)] // `dynamic_metadata` is deprecated but must be named.
                let ok = OkHttpResponse {
                    headers: options(&set, HeaderAppendAction::OverwriteIfExistsOrAdd),
                    headers_to_remove: remove,
                    dynamic_metadata: None,
                    response_headers_to_add: Vec::new(),
                    query_parameters_to_remove: Vec::new(),
                    query_parameters_to_set: Vec::new(),
                };
                CheckResponse {
                    status: Some(rpc::Status {
                        code: tonic::Code::Ok as i32,
                        message: String::new(),
                        details: Vec::new(),
                    }),
                    http_response: Some(HttpResponse::OkResponse(ok)),
                    dynamic_metadata: None,
                }
            }
            Err(e) => {
                let res = self.inner.rejection.on_rejection(&e);
                let denied = DeniedHttpResponse {
                    status: Some(HttpStatus {
                        code: i32::from(res.status().as_u16()),
                    }),
                    headers: options(res.headers(), HeaderAppendAction::OverwriteIfExistsOrAdd),
                    body: String::new(),
                };
                CheckResponse {
                    status: Some(rpc::Status {
                        code: i32::from(GrpcRejection::code(e.kind())),
                        message: e.description().to_owned(),
                        details: Vec::new(),
                    }),
                    http_response: Some(HttpResponse::DeniedResponse(denied)),
                    dynamic_metadata: None,
                }
            }
        }
    }
}

fn options(headers: &HeaderMap, action: HeaderAppendAction) -> Vec<HeaderValueOption> {
    headers
        .iter()
        .map(|(name, value)| {
            #[allow(deprecated)] // `append` is deprecated in favour of `append_action`.
            HeaderValueOption {
                header: Some(EnvoyHeader {
                    key: name.as_str().to_owned(),
                    value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    raw_value: Vec::new(),
                }),
                append: None,
                append_action: action.into(),
                keep_empty_value: false,
            }
        })
        .collect()
}
