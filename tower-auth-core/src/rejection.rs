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
    /// `Bearer realm="..."` as text: the start of every Bearer challenge that carries an error
    /// attribute, which is built per rejection because the description varies.
    prefix: String,
    /// Whether a `Bearer` challenge is sent (not on routes that require DPoP).
    bearer: bool,
    /// The `DPoP` challenge, when the route accepts DPoP.
    dpop: Option<DpopChallenge>,
    retry_after: HeaderValue,
}

/// The `DPoP algs="..."` challenge (RFC 9449 section 7.1).
#[derive(Clone)]
struct DpopChallenge {
    /// `algs="ES256 EdDSA"`.
    algs: String,
    /// `DPoP algs="..."`, built once.
    bare: HeaderValue,
}

/// How the built-in responders announce DPoP.
#[derive(Clone, Debug, PartialEq, Eq)]
enum DpopMode {
    Off,
    /// `Bearer` first, then `DPoP`.
    Beside(Vec<String>),
    /// `DPoP` only.
    Only(Vec<String>),
}

impl Challenge {
    fn new(realm: &str, retry_after_secs: u32, dpop: &DpopMode) -> Result<Self, ConfigError> {
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
        let (bearer, algs) = match dpop {
            DpopMode::Off => (true, None),
            DpopMode::Beside(algs) => (true, Some(algs)),
            DpopMode::Only(algs) => (false, Some(algs)),
        };
        let dpop = algs.map(|algs| dpop_challenge(algs)).transpose()?;
        Ok(Self {
            missing,
            prefix,
            bearer,
            dpop,
            retry_after: HeaderValue::from(retry_after_secs),
        })
    }

    /// The `WWW-Authenticate` values for `error`, in order: `Bearer` first (proxies may pass on
    /// only the first), then `DPoP`. The challenge of the error's
    /// [scheme](AuthError::challenge_scheme) carries the `error` attributes (on a DPoP-only
    /// responder, the `DPoP` challenge carries them all); when the responder does not announce
    /// that scheme, a challenge of it is added last.
    fn www_authenticate(&self, error: &AuthError) -> Vec<HeaderValue> {
        let code = match error.kind() {
            AuthErrorKind::MissingCredential => None,
            AuthErrorKind::InvalidRequest => Some("invalid_request"),
            AuthErrorKind::InvalidToken => Some("invalid_token"),
            AuthErrorKind::InsufficientScope => Some("insufficient_scope"),
            AuthErrorKind::InvalidDpopProof => Some("invalid_dpop_proof"),
            AuthErrorKind::UseDpopNonce => Some("use_dpop_nonce"),
            AuthErrorKind::Forbidden
            | AuthErrorKind::Unavailable
            | AuthErrorKind::TooManyRequests => return Vec::new(),
        };
        let target = error.challenge_scheme();
        let attributes = code.map(|code| {
            let mut v = format!(
                "error=\"{code}\", error_description=\"{}\"",
                sanitize(error.description())
            );
            if let Some(scope) = error.required_scope() {
                v.push_str(&format!(", scope=\"{}\"", sanitize(scope)));
            }
            v
        });
        let mut out = Vec::with_capacity(2);
        let mut placed = attributes.is_none();
        if self.bearer {
            match &attributes {
                Some(a) if target.eq_ignore_ascii_case("Bearer") => {
                    placed = true;
                    out.extend(HeaderValue::try_from(format!("{}, {a}", self.prefix)).ok());
                }
                _ => out.push(self.missing.clone()),
            }
        }
        if let Some(dpop) = &self.dpop {
            match &attributes {
                // Where DPoP is required, its challenge is the only one: it carries every error.
                Some(a) if target.eq_ignore_ascii_case("DPoP") || !self.bearer => {
                    placed = true;
                    out.extend(HeaderValue::try_from(format!("DPoP {a}, {}", dpop.algs)).ok());
                }
                _ => out.push(dpop.bare.clone()),
            }
        }
        if let (false, Some(a)) = (placed, &attributes) {
            let v = if target.eq_ignore_ascii_case("Bearer") {
                format!("{}, {a}", self.prefix)
            } else {
                format!("{} {a}", sanitize(target))
            };
            out.extend(HeaderValue::try_from(v).ok());
        }
        out
    }

    fn apply<B>(&self, error: &AuthError, res: &mut Response<B>) {
        *res.status_mut() = error.status();
        for v in self.www_authenticate(error) {
            res.headers_mut().append(WWW_AUTHENTICATE, v);
        }
        if error.kind() == AuthErrorKind::Unavailable {
            res.headers_mut()
                .insert(RETRY_AFTER, self.retry_after.clone());
        }
        for (name, value) in error.headers() {
            res.headers_mut().insert(name.clone(), value.clone());
        }
    }
}

/// The `DPoP` challenge for the algorithm names `algs` (JWA names: `ES256`, `EdDSA`).
fn dpop_challenge(algs: &[String]) -> Result<DpopChallenge, ConfigError> {
    let bad = || {
        ConfigError::new(
            "dpop_algs",
            format!("{algs:?}"),
            "must be non-empty JWA names",
        )
    };
    if algs.is_empty()
        || algs.iter().any(|a| {
            a.is_empty()
                || !a
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'+')
        })
    {
        return Err(bad());
    }
    let algs = format!("algs=\"{}\"", algs.join(" "));
    let bare = HeaderValue::try_from(format!("DPoP {algs}")).map_err(|_| bad())?;
    Ok(DpopChallenge { algs, bare })
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
/// The realm (default `api`) and `Retry-After` (default 5 s) are configurable. Where DPoP is
/// accepted ([`RejectionBuilder::dpop`]), every 401 carries a second challenge,
/// `DPoP algs="..."`, after the `Bearer` one, and a DPoP failure carries its `error` attributes
/// on it (`invalid_dpop_proof`, `use_dpop_nonce` with a `DPoP-Nonce` header, or `invalid_token`
/// for a token sent with the DPoP scheme); where DPoP is required
/// ([`RejectionBuilder::dpop_only`]) there is no `Bearer` challenge. A rate limit answers 429
/// with the headers its error carries and no challenge.
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
    dpop: DpopMode,
    make: fn(Challenge) -> T,
}

impl<T> fmt::Debug for RejectionBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectionBuilder")
            .field("realm", &self.realm)
            .field("retry_after", &self.retry_after)
            .field("dpop", &self.dpop)
            .finish()
    }
}

impl<T> RejectionBuilder<T> {
    fn new(make: fn(Challenge) -> T) -> Self {
        Self {
            realm: "api".to_owned(),
            retry_after: 5,
            dpop: DpopMode::Off,
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

    /// Announces DPoP (RFC 9449) beside Bearer: a `DPoP algs="..."` challenge after the
    /// `Bearer` one, with the accepted proof algorithms (JWA names such as `ES256`).
    pub fn dpop<I, A>(mut self, algs: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        self.dpop = DpopMode::Beside(algs.into_iter().map(Into::into).collect());
        self
    }

    /// For a route that requires DPoP: the `DPoP algs="..."` challenge only, no `Bearer`.
    pub fn dpop_only<I, A>(mut self, algs: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        self.dpop = DpopMode::Only(algs.into_iter().map(Into::into).collect());
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<T, ConfigError> {
        Ok((self.make)(Challenge::new(
            &self.realm,
            self.retry_after,
            &self.dpop,
        )?))
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
/// | bad DPoP proof, DPoP nonce required | 16 `UNAUTHENTICATED` |
/// | rate limit or quota exhausted | 8 `RESOURCE_EXHAUSTED` |
///
/// The `WWW-Authenticate` challenges and the error's headers (`DPoP-Nonce`, `Retry-After`,
/// `RateLimit`) are kept as response metadata, so clients that speak HTTP auth can still read
/// them. tonic clients see `Status::unauthenticated` and friends.
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
            AuthErrorKind::MissingCredential
            | AuthErrorKind::InvalidToken
            | AuthErrorKind::InvalidDpopProof
            | AuthErrorKind::UseDpopNonce => 16,
            AuthErrorKind::InsufficientScope | AuthErrorKind::Forbidden => 7,
            AuthErrorKind::InvalidRequest => 3,
            AuthErrorKind::TooManyRequests => 8,
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
            8 => (HeaderValue::from_static("8"), "resource exhausted"),
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

    fn all_www(res: &Response<()>) -> Vec<&str> {
        res.headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn dpop_challenges_follow_bearer_and_carry_dpop_errors() {
        let r = DefaultRejection::builder()
            .dpop(["ES256", "EdDSA"])
            .build()
            .unwrap();
        let on = |e: AuthError| -> Response<()> { r.on_rejection(&e) };
        let algs = "DPoP algs=\"ES256 EdDSA\"";

        let res = on(AuthError::missing_credential());
        assert_eq!(all_www(&res), ["Bearer realm=\"api\"", algs]);

        // A Bearer failure: the error on the Bearer challenge, DPoP still announced.
        let res = on(AuthError::invalid_token("sender-constrained token"));
        assert_eq!(
            all_www(&res),
            [
                "Bearer realm=\"api\", error=\"invalid_token\", \
                 error_description=\"sender-constrained token\"",
                algs
            ]
        );

        // A DPoP failure: the error on the DPoP challenge, Bearer first and bare.
        let res = on(AuthError::invalid_dpop_proof("proof replayed"));
        assert_eq!(res.status(), 401);
        assert_eq!(
            all_www(&res),
            [
                "Bearer realm=\"api\"",
                "DPoP error=\"invalid_dpop_proof\", error_description=\"proof replayed\", \
                 algs=\"ES256 EdDSA\""
            ]
        );
        let res = on(AuthError::invalid_token("token not bound").with_challenge("DPoP"));
        assert!(all_www(&res)[1].starts_with("DPoP error=\"invalid_token\""));

        let res = on(AuthError::use_dpop_nonce(HeaderValue::from_static("n-1")));
        assert_eq!(res.status(), 401);
        assert!(all_www(&res)[1].starts_with("DPoP error=\"use_dpop_nonce\""));
        assert_eq!(res.headers()["dpop-nonce"], "n-1");

        // No challenge where the contract has none.
        assert!(all_www(&on(AuthError::forbidden("role"))).is_empty());
    }

    #[test]
    fn dpop_only_routes_send_no_bearer_challenge() {
        let r = DefaultRejection::builder()
            .dpop_only(["ES256"])
            .build()
            .unwrap();
        let res: Response<()> = r.on_rejection(&AuthError::missing_credential());
        assert_eq!(all_www(&res), ["DPoP algs=\"ES256\""]);
        let res: Response<()> = r.on_rejection(&AuthError::invalid_dpop_proof("bad"));
        assert_eq!(
            all_www(&res),
            ["DPoP error=\"invalid_dpop_proof\", error_description=\"bad\", algs=\"ES256\""]
        );
        // A Bearer token on such a route: the error goes on the DPoP challenge, no Bearer one.
        let res: Response<()> = r.on_rejection(&AuthError::invalid_token("unrecognized"));
        assert_eq!(
            all_www(&res),
            ["DPoP error=\"invalid_token\", error_description=\"unrecognized\", algs=\"ES256\""]
        );
    }

    #[test]
    fn a_dpop_error_without_configured_dpop_still_names_its_scheme() {
        let res: Response<()> =
            DefaultRejection::new().on_rejection(&AuthError::invalid_dpop_proof("bad"));
        assert_eq!(
            all_www(&res),
            [
                "Bearer realm=\"api\"",
                "DPoP error=\"invalid_dpop_proof\", error_description=\"bad\""
            ]
        );
    }

    #[test]
    fn dpop_algs_are_validated() {
        for algs in [vec![], vec!["ES256\""], vec![""], vec!["ES 256"]] {
            let e = DefaultRejection::builder().dpop(algs).build().unwrap_err();
            assert_eq!(e.setting(), "dpop_algs");
        }
    }

    #[test]
    fn rate_limits_answer_429_with_their_headers() {
        let e = AuthError::too_many_requests("rate limit exceeded")
            .with_header(RETRY_AFTER, HeaderValue::from_static("7"))
            .with_header(
                http::HeaderName::from_static("ratelimit-policy"),
                HeaderValue::from_static("\"default\";q=100;w=60"),
            );
        let res: Response<()> = DefaultRejection::new().on_rejection(&e);
        assert_eq!(res.status(), 429);
        assert!(all_www(&res).is_empty());
        assert_eq!(res.headers()[RETRY_AFTER], "7");
        assert_eq!(res.headers()["ratelimit-policy"], "\"default\";q=100;w=60");

        // An error's Retry-After replaces the responder's default.
        let e = AuthError::unavailable("store").with_header(RETRY_AFTER, HeaderValue::from(1u32));
        let res: Response<()> = DefaultRejection::new().on_rejection(&e);
        assert_eq!(res.headers().get_all(RETRY_AFTER).iter().count(), 1);
        assert_eq!(res.headers()[RETRY_AFTER], "1");

        let e = AuthError::too_many_requests("quota")
            .with_header(RETRY_AFTER, HeaderValue::from_static("3"));
        let res: Response<()> = GrpcRejection::new().on_rejection(&e);
        assert_eq!(res.headers()["grpc-status"], "8");
        assert_eq!(res.headers()[RETRY_AFTER], "3");
        let res: Response<String> = ProblemRejection::new().on_rejection(&e);
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()[RETRY_AFTER], "3");
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
            (AuthError::invalid_dpop_proof("x"), "16"),
            (
                AuthError::use_dpop_nonce(HeaderValue::from_static("n")),
                "16",
            ),
            (AuthError::too_many_requests("x"), "8"),
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
