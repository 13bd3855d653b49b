//! Why a login failed, and the response that says so.

use std::fmt;

use http::StatusCode;
use tower_auth_jwt::KeySourceError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An OAuth 2.0 / OpenID Connect error code from the authorization server, when it is one of
/// the registered codes; anything else reads `unrecognized_error`. The code in a callback URL
/// is attacker-controlled input: only these fixed strings are ever shown or logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode(&'static str);

const KNOWN_CODES: &[&str] = &[
    // RFC 6749 sections 4.1.2.1 and 5.2
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
    "invalid_client",
    "invalid_grant",
    "unsupported_grant_type",
    // OpenID Connect Core section 3.1.2.6
    "interaction_required",
    "login_required",
    "account_selection_required",
    "consent_required",
    "invalid_request_uri",
    "invalid_request_object",
    "request_not_supported",
    "request_uri_not_supported",
    "registration_not_supported",
    // RFC 8707
    "invalid_target",
];

impl ErrorCode {
    /// The code for `raw`, or `unrecognized_error` when it is not a registered code.
    pub fn parse(raw: &str) -> Self {
        Self(
            KNOWN_CODES
                .iter()
                .find(|c| **c == raw)
                .copied()
                .unwrap_or("unrecognized_error"),
        )
    }

    /// The code.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Why [`Login::callback`](super::Login::callback) (or [`start`](super::Login::start)) failed.
///
/// `Display` is a fixed text per case and never contains input from the request or the
/// authorization server beyond a registered [`ErrorCode`]. [`status`](Self::status) maps each
/// case to a response status; [`Login::error_response`](super::Login::error_response) builds
/// the whole response.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoginError {
    /// The callback came without the login cookie: cookies blocked, another browser, or a
    /// callback this app never started. 400.
    MissingCookie,
    /// No pending login for the cookie and the `state` together: it was completed already (a
    /// replayed callback), the `state` is not the login's (a forged or crossed callback, which
    /// leaves the login pending for its genuine callback), it was dropped from a full store,
    /// or it never existed. 400.
    UnknownLogin,
    /// The pending login outlived its TTL before the callback came. 400.
    Expired,
    /// The callback has no `state`. (A `state` that is not the login's finds no pending login:
    /// [`UnknownLogin`](Self::UnknownLogin).) 400.
    StateMismatch,
    /// The pending login was started by another [`Login`](super::Login) (another issuer,
    /// client id or redirect URI) sharing the store and the cookie name: a response meant for
    /// another provider reached this one (mix-up, RFC 9700 section 4.4). 400.
    ProviderMismatch,
    /// The callback's `iss` (RFC 9207) is not the configured issuer: the response comes from
    /// another authorization server (mix-up attack). 400.
    IssuerMismatch,
    /// The callback has no `code` and no `error`, or a parameter twice. 400.
    MalformedCallback,
    /// The user declined at the authorization server (`error=access_denied`). 403.
    AccessDenied,
    /// The authorization server answered the authorization request with another error. 403 for
    /// `login_required`-like codes, 503 for `temporarily_unavailable`, 502 otherwise.
    AuthorizationFailed(ErrorCode),
    /// The token endpoint refused the code. `invalid_grant` (code used or expired, PKCE
    /// verifier or redirect URI not matching) is 400; others (`invalid_client`, ...) are a
    /// configuration problem, 502.
    CodeRejected(ErrorCode),
    /// The token endpoint could not be reached in time, or answered with a 5xx status. 503.
    TokenEndpointUnavailable(BoxError),
    /// The token endpoint answered something that is not a usable token response. 502.
    TokenEndpointMalformed,
    /// The token response has no ID token, or it fails validation (signature, issuer,
    /// audience, expiry); the fixed reason says which. 502.
    InvalidIdToken(&'static str),
    /// The ID token's `nonce` is not the pending login's: a token issued for another login was
    /// injected. 400.
    NonceMismatch,
    /// The authorization server's keys cannot be had now. 503.
    KeysUnavailable(KeySourceError),
    /// The pending-login store failed. 503.
    Store(BoxError),
    /// The system's random number generator failed. 500.
    Random,
}

impl LoginError {
    /// The response status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingCookie
            | Self::UnknownLogin
            | Self::Expired
            | Self::StateMismatch
            | Self::IssuerMismatch
            | Self::ProviderMismatch
            | Self::MalformedCallback
            | Self::NonceMismatch => StatusCode::BAD_REQUEST,
            Self::AccessDenied => StatusCode::FORBIDDEN,
            Self::AuthorizationFailed(code) => match code.as_str() {
                "login_required"
                | "consent_required"
                | "interaction_required"
                | "account_selection_required" => StatusCode::FORBIDDEN,
                "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_GATEWAY,
            },
            Self::CodeRejected(code) if code.as_str() == "invalid_grant" => StatusCode::BAD_REQUEST,
            Self::CodeRejected(_) | Self::TokenEndpointMalformed | Self::InvalidIdToken(_) => {
                StatusCode::BAD_GATEWAY
            }
            Self::TokenEndpointUnavailable(_) | Self::KeysUnavailable(_) | Self::Store(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Random => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A fixed label for the case (`state_mismatch`, `access_denied`, ...): the `outcome` of
    /// the `tower_auth_login_callbacks_total` counter.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::MissingCookie => "missing_cookie",
            Self::UnknownLogin => "unknown_login",
            Self::Expired => "expired",
            Self::StateMismatch => "state_mismatch",
            Self::IssuerMismatch => "issuer_mismatch",
            Self::ProviderMismatch => "provider_mismatch",
            Self::MalformedCallback => "malformed_callback",
            Self::AccessDenied => "access_denied",
            Self::AuthorizationFailed(_) => "authorization_failed",
            Self::CodeRejected(_) => "code_rejected",
            Self::TokenEndpointUnavailable(_) => "token_endpoint_unavailable",
            Self::TokenEndpointMalformed => "token_endpoint_malformed",
            Self::InvalidIdToken(_) => "invalid_id_token",
            Self::NonceMismatch => "nonce_mismatch",
            Self::KeysUnavailable(_) => "keys_unavailable",
            Self::Store(_) => "store_unavailable",
            Self::Random => "random_failed",
        }
    }

    /// A short text for the user, fixed per case: what happened and what to do.
    pub fn user_message(&self) -> &'static str {
        match self {
            Self::MissingCookie | Self::UnknownLogin | Self::StateMismatch => {
                "This login link is not valid here. Please start the login again."
            }
            Self::Expired => "The login took too long. Please start the login again.",
            Self::AccessDenied => "The login was cancelled.",
            Self::MalformedCallback
            | Self::IssuerMismatch
            | Self::ProviderMismatch
            | Self::NonceMismatch
            | Self::CodeRejected(_) => "The login could not be completed. Please start again.",
            Self::AuthorizationFailed(_)
            | Self::TokenEndpointMalformed
            | Self::InvalidIdToken(_) => {
                "The login provider returned an error. Please try again later."
            }
            Self::TokenEndpointUnavailable(_)
            | Self::KeysUnavailable(_)
            | Self::Store(_)
            | Self::Random => "Login is unavailable right now. Please try again later.",
        }
    }
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingCookie => f.write_str("login callback without the login cookie"),
            Self::UnknownLogin => {
                f.write_str("no pending login for this cookie (already completed or unknown)")
            }
            Self::Expired => f.write_str("the pending login expired"),
            Self::StateMismatch => f.write_str("login callback without state"),
            Self::ProviderMismatch => {
                f.write_str("the pending login was started for another provider or client")
            }
            Self::IssuerMismatch => f.write_str("login callback issuer does not match"),
            Self::MalformedCallback => f.write_str("malformed login callback"),
            Self::AccessDenied => f.write_str("the user denied access"),
            Self::AuthorizationFailed(code) => write!(f, "authorization failed: {code}"),
            Self::CodeRejected(code) => write!(f, "token endpoint refused the code: {code}"),
            Self::TokenEndpointUnavailable(_) => f.write_str("token endpoint unavailable"),
            Self::TokenEndpointMalformed => {
                f.write_str("token endpoint returned an unusable response")
            }
            Self::InvalidIdToken(why) => write!(f, "invalid id token: {why}"),
            Self::NonceMismatch => f.write_str("id token nonce does not match"),
            Self::KeysUnavailable(_) => f.write_str("authorization server keys unavailable"),
            Self::Store(_) => f.write_str("pending login store failed"),
            Self::Random => f.write_str("random number generator failed"),
        }
    }
}

impl std::error::Error for LoginError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::TokenEndpointUnavailable(e) | Self::Store(e) => Some(&**e),
            Self::KeysUnavailable(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_are_not_echoed() {
        assert_eq!(ErrorCode::parse("access_denied").as_str(), "access_denied");
        let e = LoginError::AuthorizationFailed(ErrorCode::parse("<script>alert(1)</script>"));
        assert_eq!(e.to_string(), "authorization failed: unrecognized_error");
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn statuses() {
        assert_eq!(LoginError::StateMismatch.status(), 400);
        assert_eq!(LoginError::UnknownLogin.status(), 400);
        assert_eq!(LoginError::Expired.status(), 400);
        assert_eq!(LoginError::AccessDenied.status(), 403);
        assert_eq!(
            LoginError::CodeRejected(ErrorCode::parse("invalid_grant")).status(),
            400
        );
        assert_eq!(
            LoginError::CodeRejected(ErrorCode::parse("invalid_client")).status(),
            502
        );
        assert_eq!(LoginError::InvalidIdToken("x").status(), 502);
        assert_eq!(
            LoginError::KeysUnavailable(KeySourceError::new("down")).status(),
            503
        );
    }
}
