//! The transport of `oauth2` token requests over the crate's [`HttpClient`], shared by the
//! client-credentials token source and the login helper.

use std::fmt;

use tower_auth_core::client::{FetchError, HttpClient};

/// Why a token request got no usable answer from the transport.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The call failed: connection, deadline, size cap, redirect.
    Fetch(FetchError),
    /// The endpoint answered with a 5xx status: it is down or overloaded, whatever the body.
    Status(http::StatusCode),
    /// The DPoP proof of the request could not be made.
    Dpop(crate::client_credentials::DpopError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fetch(e) => write!(f, "token request failed: {e}"),
            Self::Status(s) => write!(f, "token endpoint answered {}", s.as_u16()),
            Self::Dpop(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Fetch(e) => Some(e),
            Self::Status(_) | Self::Dpop(_) => None,
        }
    }
}

/// Sends `request` with `http`. A 5xx answer is a [`SendError::Status`]; other statuses go to
/// `oauth2`, which reads RFC 6749 error bodies from 4xx answers.
pub(crate) async fn send(
    http: HttpClient,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, SendError> {
    let (parts, body) = request.into_parts();
    let req = http::Request::from_parts(parts, http_body_util::Full::new(bytes::Bytes::from(body)));
    let res = http.send(req).await.map_err(SendError::Fetch)?;
    if res.status.is_server_error() {
        return Err(SendError::Status(res.status));
    }
    let mut out = http::Response::new(res.body.to_vec());
    *out.status_mut() = res.status;
    *out.headers_mut() = res.headers;
    Ok(out)
}
