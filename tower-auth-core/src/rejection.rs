//! Turning an [`AuthError`] into a response: the HTTP default (RFC 6750), a gRPC responder, an
//! RFC 9457 problem document, or a closure of your own.

use std::fmt;

use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use crate::{AuthError, AuthErrorKind, ConfigError};

/// Builds the response for a rejected request.
///
/// Implemented by [`DefaultRejection`], [`GrpcRejection`], [`ProblemRejection`] and by closures
/// `Fn(&AuthError) -> Response<B>`.
pub trait OnRejection<B> {
    /// The response for `error`. The inner service is not called.
    fn on_rejection(&self, error: &AuthError) -> Response<B>;
}

impl<B, F> OnRejection<B> for F
where
    F: Fn(&AuthError) -> Response<B>,
{
    fn on_rejection(&self, error: &AuthError) -> Response<B> {
        self(error)
    }
}

/// The challenge settings shared by the built-in responders.
#[derive(Clone)]
struct Challenge {
    /// `Bearer realm="..."`, built once.
    missing: HeaderValue,
    /// `Bearer realm="..."` as text: the start of every challenge that carries an error
    /// attribute, which is built per rejection because the description varies.
    prefix: String,
    retry_after: HeaderValue,
}

impl Challenge {
    fn new(realm: &str, retry_after_secs: u32) -> Result<Self, ConfigError> {
        if realm.is_empty()
            || !realm
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            return Err(ConfigError::new(
                "realm",
                format!("{realm:?}"),
                "must be non-empty printable ASCII without quotes or backslashes",
            ));
        }
        let prefix = format!("Bearer realm=\"{realm}\"");
        let missing = HeaderValue::try_from(prefix.as_str())
            .map_err(|_| ConfigError::new("realm", format!("{realm:?}"), "not a header value"))?;
        Ok(Self {
            missing,
            prefix,
            retry_after: HeaderValue::from(retry_after_secs),
        })
    }

    /// Builds the `WWW-Authenticate` value for `error`, if its kind carries one.
    fn www_authenticate(&self, error: &AuthError) -> Option<HeaderValue> {
        let code = match error.kind() {
            AuthErrorKind::MissingCredential => return Some(self.missing.clone()),
            AuthErrorKind::InvalidRequest => "invalid_request",
            AuthErrorKind::InvalidToken => "invalid_token",
            AuthErrorKind::InsufficientScope => "insufficient_scope",
            AuthErrorKind::Forbidden | AuthErrorKind::Unavailable => return None,
        };
        let description = sanitize(error.description());
        let scope = error.required_scope().map(sanitize);
        let mut v = format!(
            "{}, error=\"{code}\", error_description=\"{description}\"",
            self.prefix
        );
        if let Some(scope) = scope {
            v.push_str(&format!(", scope=\"{scope}\""));
        }
        HeaderValue::try_from(v).ok()
    }

    fn apply<B>(&self, error: &AuthError, res: &mut Response<B>) {
        *res.status_mut() = error.status();
        if let Some(v) = self.www_authenticate(error) {
            res.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
        if error.kind() == AuthErrorKind::Unavailable {
            res.headers_mut()
                .insert(RETRY_AFTER, self.retry_after.clone());
        }
    }
}

/// Keeps a quoted-string attribute well formed: descriptions and scopes are fixed strings chosen
/// by code, but a stray quote must not break the header.
fn sanitize(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        std::borrow::Cow::Borrowed(s)
    } else {
        s.chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control() && *c != '"' && *c != '\\')
            .collect::<String>()
            .into()
    }
}

/// The response contract over plain HTTP (RFC 6750 section 3), with empty bodies.
///
/// | error | status | `WWW-Authenticate` |
/// |---|---|---|
/// | no credential | 401 | `Bearer realm="api"` |
/// | malformed request | 400 | `Bearer realm="api", error="invalid_request", error_description="..."` |
/// | bad credential | 401 | `Bearer realm="api", error="invalid_token", error_description="..."` |
/// | missing scope | 403 | `Bearer realm="api", error="insufficient_scope", error_description="...", scope="..."` |
/// | missing role, failed predicate | 403 | none |
/// | dependency unavailable | 503 | none; `Retry-After: 5` |
///
/// The realm (default `api`) and `Retry-After` (default 5 s) are configurable.
#[derive(Clone)]
pub struct DefaultRejection {
    challenge: Challenge,
}

impl DefaultRejection {
    /// The default: realm `api`, `Retry-After: 5`.
    pub fn new() -> Self {
        Self::builder()
            .build()
            .unwrap_or_else(|_| unreachable!("defaults are valid"))
    }

    /// Configures the realm and `Retry-After`.
    pub fn builder() -> RejectionBuilder<Self> {
        RejectionBuilder::new(|challenge| Self { challenge })
    }
}

impl Default for DefaultRejection {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for DefaultRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultRejection")
            .field("challenge", &self.challenge.missing)
            .finish()
    }
}

impl<B: Default> OnRejection<B> for DefaultRejection {
    fn on_rejection(&self, error: &AuthError) -> Response<B> {
        let mut res = Response::new(B::default());
        self.challenge.apply(error, &mut res);
        res
    }
}

/// Builds one of the built-in responders with a custom realm or `Retry-After`.
#[must_use]
pub struct RejectionBuilder<T> {
    realm: String,
    retry_after: u32,
    make: fn(Challenge) -> T,
}

impl<T> fmt::Debug for RejectionBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectionBuilder")
            .field("realm", &self.realm)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl<T> RejectionBuilder<T> {
    fn new(make: fn(Challenge) -> T) -> Self {
        Self {
            realm: "api".to_owned(),
            retry_after: 5,
            make,
        }
    }

    /// The `realm` of the `Bearer` challenge (default `api`): printable ASCII, no quotes.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// The `Retry-After` seconds on 503 responses (default 5).
    pub fn retry_after_secs(mut self, secs: u32) -> Self {
        self.retry_after = secs;
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<T, ConfigError> {
        Ok((self.make)(Challenge::new(&self.realm, self.retry_after)?))
    }
}

/// The response contract over gRPC: HTTP 200 with `grpc-status` and a generic `grpc-message`.
///
/// | error | `grpc-status` |
/// |---|---|
/// | no credential, bad credential | 16 `UNAUTHENTICATED` |
/// | missing scope, role or predicate | 7 `PERMISSION_DENIED` |
/// | malformed request | 3 `INVALID_ARGUMENT` |
/// | dependency unavailable | 14 `UNAVAILABLE` |
///
/// The `WWW-Authenticate` challenge is kept as response metadata, so clients that speak HTTP auth
/// can still read it. tonic clients see `Status::unauthenticated` and friends.
#[derive(Clone, Debug, Default)]
pub struct GrpcRejection {
    http: DefaultRejection,
}

impl GrpcRejection {
    /// The gRPC responder with realm `api`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `http`'s realm for the challenge metadata.
    pub fn with_challenge(http: DefaultRejection) -> Self {
        Self { http }
    }

    /// The gRPC status code for an error kind.
    pub fn code(kind: AuthErrorKind) -> u8 {
        match kind {
            AuthErrorKind::MissingCredential | AuthErrorKind::InvalidToken => 16,
            AuthErrorKind::InsufficientScope | AuthErrorKind::Forbidden => 7,
            AuthErrorKind::InvalidRequest => 3,
            AuthErrorKind::Unavailable => 14,
        }
    }
}

impl<B: Default> OnRejection<B> for GrpcRejection {
    fn on_rejection(&self, error: &AuthError) -> Response<B> {
        let mut res = Response::new(B::default());
        self.http.challenge.apply(error, &mut res);
        *res.status_mut() = StatusCode::OK;
        let (code, message) = match Self::code(error.kind()) {
            16 => (HeaderValue::from_static("16"), "unauthenticated"),
            7 => (HeaderValue::from_static("7"), "permission denied"),
            3 => (HeaderValue::from_static("3"), "invalid request"),
            _ => (HeaderValue::from_static("14"), "authentication unavailable"),
        };
        let h = res.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        h.insert("grpc-status", code);
        h.insert("grpc-message", HeaderValue::from_static(message));
        res
    }
}

/// The response contract with an RFC 9457 `application/problem+json` body.
///
/// Status and headers are those of [`DefaultRejection`]; the body is
/// `{"type":"about:blank","title":"...","status":401,"detail":"<fixed description>"}`.
#[derive(Clone, Debug, Default)]
pub struct ProblemRejection {
    http: DefaultRejection,
}

impl ProblemRejection {
    /// Problem documents with realm `api`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `http`'s realm and `Retry-After`.
    pub fn with_challenge(http: DefaultRejection) -> Self {
        Self { http }
    }
}

impl<B: From<String>> OnRejection<B> for ProblemRejection {
    fn on_rejection(&self, error: &AuthError) -> Response<B> {
        let status = error.status();
        let body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "detail": error.description(),
        });
        let mut res = Response::new(B::from(body.to_string()));
        self.http.challenge.apply(error, &mut res);
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn www(res: &Response<()>) -> Option<&str> {
        res.headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap())
    }

    #[test]
    fn default_rejection_follows_the_contract() {
        let r = DefaultRejection::new();
        let res: Response<()> = r.on_rejection(&AuthError::missing_credential());
        assert_eq!(res.status(), 401);
        assert_eq!(www(&res), Some("Bearer realm=\"api\""));

        let res: Response<()> = r.on_rejection(&AuthError::invalid_request("duplicate"));
        assert_eq!(res.status(), 400);
        assert_eq!(
            www(&res),
            Some(
                "Bearer realm=\"api\", error=\"invalid_request\", error_description=\"duplicate\""
            )
        );

        let res: Response<()> = r.on_rejection(&AuthError::invalid_token("expired"));
        assert_eq!(res.status(), 401);
        assert!(www(&res).unwrap().contains("error=\"invalid_token\""));

        let res: Response<()> = r.on_rejection(&AuthError::insufficient_scope("a b"));
        assert_eq!(res.status(), 403);
        assert!(www(&res).unwrap().ends_with(
            "error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"a b\""
        ));

        let res: Response<()> = r.on_rejection(&AuthError::forbidden("role"));
        assert_eq!(res.status(), 403);
        assert_eq!(www(&res), None);

        let res: Response<()> = r.on_rejection(&AuthError::unavailable("store"));
        assert_eq!(res.status(), 503);
        assert_eq!(www(&res), None);
        assert_eq!(res.headers()[RETRY_AFTER], "5");
    }

    #[test]
    fn realm_and_retry_after_are_configurable_and_validated() {
        let r = DefaultRejection::builder()
            .realm("orders")
            .retry_after_secs(30)
            .build()
            .unwrap();
        let res: Response<()> = r.on_rejection(&AuthError::missing_credential());
        assert_eq!(www(&res), Some("Bearer realm=\"orders\""));
        let res: Response<()> = r.on_rejection(&AuthError::unavailable("x"));
        assert_eq!(res.headers()[RETRY_AFTER], "30");

        let e = DefaultRejection::builder()
            .realm("a\"b")
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "realm");
        assert!(e.to_string().contains("a\\\"b"), "{e}");
        assert!(DefaultRejection::builder().realm("").build().is_err());
    }

    #[test]
    fn challenges_are_exact_per_realm_kind_and_description() {
        static DESCRIPTIONS: [&str; 40] = [
            "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "d10", "d11", "d12", "d13",
            "d14", "d15", "d16", "d17", "d18", "d19", "d20", "d21", "d22", "d23", "d24", "d25",
            "d26", "d27", "d28", "d29", "d30", "d31", "d32", "d33", "d34", "d35", "d36", "d37",
            "d38", "d39",
        ];
        let api = DefaultRejection::new();
        let orders = DefaultRejection::builder().realm("orders").build().unwrap();
        let a_clone = api.clone();
        // Three rounds over many descriptions and realms, clones included: every answer is
        // exact, whatever was built before it.
        for _ in 0..3 {
            for d in DESCRIPTIONS {
                for (r, realm) in [(&api, "api"), (&orders, "orders"), (&a_clone, "api")] {
                    for (err, code) in [
                        (AuthError::invalid_token(d), "invalid_token"),
                        (AuthError::invalid_request(d), "invalid_request"),
                    ] {
                        let res: Response<()> = r.on_rejection(&err);
                        assert_eq!(
                            www(&res).unwrap(),
                            format!(
                                "Bearer realm=\"{realm}\", error=\"{code}\", \
                                 error_description=\"{d}\""
                            )
                        );
                    }
                }
            }
        }
        // A description that needs sanitizing, twice.
        for _ in 0..2 {
            let res: Response<()> = api.on_rejection(&AuthError::invalid_token("a\"b\\c\u{e9}"));
            assert_eq!(
                www(&res).unwrap(),
                "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"abc\""
            );
        }
        // Scopes vary per error.
        for scope in ["a", "b"] {
            let res: Response<()> = api.on_rejection(&AuthError::insufficient_scope(scope));
            assert!(www(&res).unwrap().ends_with(&format!("scope=\"{scope}\"")));
        }
    }

    #[test]
    fn grpc_codes() {
        let r = GrpcRejection::new();
        for (err, code) in [
            (AuthError::missing_credential(), "16"),
            (AuthError::invalid_token("x"), "16"),
            (AuthError::insufficient_scope("a"), "7"),
            (AuthError::forbidden("x"), "7"),
            (AuthError::invalid_request("x"), "3"),
            (AuthError::unavailable("x"), "14"),
        ] {
            let res: Response<()> = r.on_rejection(&err);
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["grpc-status"], code);
            assert_eq!(res.headers()[CONTENT_TYPE], "application/grpc");
        }
    }

    #[test]
    fn problem_document() {
        let res: Response<String> =
            ProblemRejection::new().on_rejection(&AuthError::invalid_token("token expired"));
        assert_eq!(res.status(), 401);
        assert_eq!(res.headers()[CONTENT_TYPE], "application/problem+json");
        let v: serde_json::Value = serde_json::from_str(res.body()).unwrap();
        assert_eq!(v["status"], 401);
        assert_eq!(v["detail"], "token expired");
    }

    #[test]
    fn closures_are_responders() {
        let f = |e: &AuthError| {
            let mut r = Response::new(());
            *r.status_mut() = if e.kind() == AuthErrorKind::Unavailable {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::IM_A_TEAPOT
            };
            r
        };
        assert_eq!(f.on_rejection(&AuthError::unavailable("x")).status(), 502);
    }
}
