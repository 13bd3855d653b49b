//! [`JwtAuthenticator`]: token extraction, verification and the principal it produces.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::HeaderValue;
use http::header::{AUTHORIZATION, COOKIE};
use http::request::Parts;
use tower_auth_core::clock::Clock;
use tower_auth_core::credential::{Found, Location, bearer_token, cookie_value};
use tower_auth_core::{
    AuthError, Authentication, Authenticator, BoxAuthFuture, Principal, PrincipalBuilder,
    PrincipalKind, Scheme, Scopes,
};

use crate::cache::{self, CachedToken, TokenCache, TokenHash};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::claims::number_date;
use crate::json::{self, Object};
use crate::{
    Algorithm, ClaimPath, Claims, ClaimsMapping, JwtAuthenticatorBuilder, KeyLookup, KeySet,
    KeySource, RevocationCheck, RevocationStatus, ServiceRule, TokenIdentity, telemetry,
};

/// Authenticates requests carrying a JWT (RFC 7519) signed with JWS (RFC 7515), as an
/// `Authorization: Bearer` token (RFC 6750) or, when configured, in a cookie.
///
/// Built with [`JwtAuthenticator::builder`]; cheap to clone (one `Arc`). Use it with
/// [`AuthenticateLayer`](tower_auth_core::AuthenticateLayer). See the [crate docs](crate) for
/// the checks it makes.
#[derive(Clone)]
pub struct JwtAuthenticator {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) issuers: HashMap<Box<str>, IssuerState>,
    pub(crate) max_token_size: usize,
    pub(crate) cookie: Option<Arc<str>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cache: Option<TokenCache>,
    pub(crate) revocation: Option<Arc<dyn RevocationCheck>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypPolicy {
    /// Any `typ` but one naming another kind of JWT (`*+jwt` other than `at+jwt`).
    NotOtherJwt,
    /// `at+jwt` only.
    AccessToken,
}

impl TypPolicy {
    /// Whether a header `typ` passes: compared case-insensitively, with or without the
    /// `application/` prefix (RFC 7515 section 4.1.9).
    fn admits(self, typ: Option<&str>) -> bool {
        let Some(typ) = typ else {
            return self == Self::NotOtherJwt;
        };
        // The media type without its parameters (`dpop+jwt; v=1` is still `dpop+jwt`).
        let typ = typ
            .split(';')
            .next()
            .unwrap_or_default()
            .trim_matches(|c: char| c.is_ascii_whitespace());
        let prefix = "application/".len();
        let media = match typ.get(..prefix) {
            Some(p) if p.eq_ignore_ascii_case("application/") => &typ[prefix..],
            _ => typ,
        };
        let access_token = media.eq_ignore_ascii_case("at+jwt");
        let other_jwt = media.len() >= 4
            && media
                .get(media.len() - 4..)
                .is_some_and(|end| end.eq_ignore_ascii_case("+jwt"));
        match self {
            Self::AccessToken => access_token,
            Self::NotOtherJwt => access_token || !other_jwt,
        }
    }
}

pub(crate) struct IssuerState {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) skip_audience: bool,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) source: Arc<dyn KeySource>,
    pub(crate) leeway: Duration,
    pub(crate) max_age: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) require_exp: bool,
    pub(crate) typ: TypPolicy,
    pub(crate) mapping: ClaimsMapping,
    pub(crate) service_rule: ServiceRule,
    pub(crate) subject: Option<ClaimPath>,
}

impl fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut issuers: Vec<_> = self.inner.issuers.keys().collect();
        issuers.sort();
        f.debug_struct("JwtAuthenticator")
            .field("issuers", &issuers)
            .field("max_token_size", &self.inner.max_token_size)
            .field("cookie", &self.inner.cookie)
            .field("cache", &self.inner.cache.is_some())
            .field("revocation", &self.inner.revocation.is_some())
            .finish()
    }
}

impl JwtAuthenticator {
    /// Starts a configuration.
    pub fn builder() -> JwtAuthenticatorBuilder {
        JwtAuthenticatorBuilder::new()
    }

    /// Verifies a compact JWS token and returns the principal, as the layer would. For callers
    /// that receive tokens outside HTTP headers (a WebSocket message, a gRPC metadata entry
    /// you parse yourself).
    pub fn verify(&self, token: &str) -> JwtFuture {
        JwtFuture::settle(self.verify_now(token.as_bytes(), None, Binding::Bearer))
    }

    /// Verifies a token presented with the DPoP scheme: as [`verify`](Self::verify), but the
    /// token must be bound (`cnf.jkt`), which the caller then compares with its proof key.
    pub(crate) fn verify_bound(&self, token: &str) -> JwtFuture {
        JwtFuture::settle(self.verify_now(token.as_bytes(), None, Binding::Dpop))
    }

    /// The one path of [`verify`](Self::verify), `verify_bound` and the [`Authenticator`]
    /// methods: size first (nothing of an oversized token is read), then the segments (split
    /// here unless `extract` found the dots), then [`start`](Self::start). Decided at once
    /// unless the key source has to fetch keys.
    fn verify_now(
        &self,
        token: &[u8],
        dots: Option<(usize, usize)>,
        binding: Binding,
    ) -> Authentication<JwtFuture> {
        if token.len() > self.inner.max_token_size {
            return Authentication::Ready(reject(AuthError::invalid_token("token too large")));
        }
        let segments = match dots {
            Some((first, last)) => Segments::at(token, first, last),
            None => Segments::split(token),
        };
        match segments {
            Some(segments) => self.start(segments, binding),
            None => Authentication::Ready(reject(malformed())),
        }
    }

    /// Removes every entry of the verified-token cache (after a key was withdrawn, for
    /// example). Does nothing without a cache.
    pub fn clear_cache(&self) {
        if let Some(c) = &self.inner.cache {
            c.invalidate_all();
        }
    }

    /// The number of tokens in the verified-token cache.
    pub fn cached_tokens(&self) -> u64 {
        self.inner.cache.as_ref().map_or(0, TokenCache::entry_count)
    }

    /// Verifies a token whose size [`verify_now`](Self::verify_now) has checked: decided at
    /// once unless the key source has to fetch keys.
    fn start(&self, token: Segments<'_>, binding: Binding) -> Authentication<JwtFuture> {
        let inner = &self.inner;
        // The cache is keyed by the SHA-256 of the signature segment, and an entry also holds
        // the signing input (header and claims, which the principal holds decoded anyway): a
        // hit needs the same signature hash and the same bytes, that is the same token. The
        // signature itself is not kept, so the token cannot be rebuilt from the cache.
        let mut hash = None;
        if let Some(cache) = &inner.cache {
            let key = cache::hash(token.signature());
            let hit = cache
                .get(&key)
                .filter(|hit| *hit.signing_input == *token.signing_input());
            telemetry::cache(hit.is_some());
            match hit {
                // The key that verified it is still published: serve from cache.
                Some(hit) if hit.key.strong_count() > 0 => {
                    return Authentication::Ready(inner.cached(&hit, binding));
                }
                // Its key left every key set: verify again (and fail if it is gone for good).
                Some(_) => cache.remove(&key),
                None => {}
            }
            hash = Some(key);
        }
        match inner.verify(token, None, hash, binding) {
            Ok(Verdict::Principal(p)) => Authentication::Ready(Ok(p)),
            Err(e) => Authentication::Ready(reject(e)),
            Ok(Verdict::FetchKeys(fut)) => {
                let inner = Arc::clone(inner);
                let (token, first, last) = (token.token.to_vec(), token.first, token.last);
                Authentication::Pending(JwtFuture::boxed(Box::pin(async move {
                    let keys = fut.await.map_err(|e| {
                        reject_err(
                            AuthError::unavailable("signing keys unavailable").with_source(e),
                        )
                    })?;
                    let token = Segments::at(&token, first, last).ok_or_else(malformed)?;
                    match inner.verify(token, Some(&keys), hash, binding) {
                        Ok(Verdict::Principal(p)) => Ok(p),
                        Err(e) => reject(e),
                        // Keys were given: nothing is fetched again.
                        Ok(Verdict::FetchKeys(_)) => {
                            reject(AuthError::unavailable("signing keys unavailable"))
                        }
                    }
                })))
            }
        }
    }
}

/// How a token was presented, which decides what its `cnf` claim (RFC 7800) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Binding {
    /// As a Bearer token (or cookie): a sender-constrained token (one with `cnf`) is refused.
    Bearer,
    /// With the DPoP scheme: the token must carry `cnf.jkt`, which the DPoP layer compares
    /// with its proof key.
    Dpop,
}

impl Binding {
    /// The error for a token whose `cnf` does not fit how it was presented.
    fn check(self, bound: bool) -> Result<(), AuthError> {
        match (self, bound) {
            (Self::Bearer, true) => Err(AuthError::invalid_token("sender-constrained token")),
            (Self::Dpop, false) => {
                Err(AuthError::invalid_token("token not bound to a key").with_challenge("DPoP"))
            }
            _ => Ok(()),
        }
    }
}

/// What [`Inner::verify`] came to without an error.
enum Verdict {
    Principal(Principal),
    /// The issuer's key source has to fetch keys first.
    FetchKeys(crate::source::KeySetFuture),
}

/// The rejection for a revocation answer, if any: revoked is 401, unavailable 503 (fail
/// closed: a list that cannot vouch for its freshness does not accept tokens).
fn revocation_error(status: RevocationStatus) -> Option<AuthError> {
    match status {
        RevocationStatus::Valid => None,
        RevocationStatus::Revoked => Some(AuthError::invalid_token("token revoked")),
        RevocationStatus::Unavailable => {
            Some(AuthError::unavailable("revocation list unavailable"))
        }
    }
}

/// The header, the claims as sent (UTF-8) and the claims object of a token split at its dots:
/// everything read before the signature check. The signature segment must not be empty.
pub(crate) fn read(token: Segments<'_>) -> Result<(Header, String, Object), AuthError> {
    if token.signature().is_empty() {
        return Err(AuthError::invalid_token("missing signature"));
    }
    let header = Header::read(token.header())?;
    let payload = String::from_utf8(decode_segment(token.payload())?)
        .map_err(|_| AuthError::invalid_token("claims are not a JSON object"))?;
    let claims = json::object(payload.as_bytes())
        .ok_or_else(|| AuthError::invalid_token("claims are not a JSON object"))?;
    Ok((header, payload, claims))
}

fn reject(e: AuthError) -> Result<Principal, AuthError> {
    Err(reject_err(e))
}

fn reject_err(e: AuthError) -> AuthError {
    telemetry::rejected(&e);
    e
}

fn malformed() -> AuthError {
    AuthError::invalid_token("malformed token")
}

/// base64url without padding, canonical (no stray bits), as JWS requires: `base64`'s
/// `URL_SAFE_NO_PAD` engine refuses padding and non-zero trailing bits.
pub(crate) fn decode_segment(segment: &[u8]) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| malformed())
}

impl Inner {
    /// Verifies a compact JWS: splits and decodes it, picks the issuer by `iss`, checks the
    /// signature with the issuer's keys (`keys` when they were just fetched), then every claim.
    ///
    /// Nothing is trusted before the signature check: until then the claims only pick the
    /// issuer. Header and claims are JSON objects without duplicate member names (see the
    /// `json` module); the map of the claims goes into the principal's [`Claims`].
    fn verify(
        &self,
        token: Segments<'_>,
        keys: Option<&KeySet>,
        hash: Option<TokenHash>,
        binding: Binding,
    ) -> Result<Verdict, AuthError> {
        let (signing_input, signature) = (token.signing_input(), token.signature());
        let (header, payload, claims) = read(token)?;
        let header = &header;
        let issuer = self.select_issuer(header, &claims)?;

        let fetched;
        let keys = match keys {
            Some(keys) => keys,
            None => match issuer.source.lookup(header.kid.as_deref()) {
                KeyLookup::Ready(keys) => {
                    fetched = keys;
                    &*fetched
                }
                KeyLookup::Pending(fut) => return Ok(Verdict::FetchKeys(fut)),
                KeyLookup::Unavailable(e) => {
                    return Err(AuthError::unavailable("signing keys unavailable").with_source(e));
                }
            },
        };

        // Signature: only keys that fit the algorithm, whatever the header says.
        let mut candidates = keys
            .candidates(header.kid.as_deref(), header.alg)
            .peekable();
        if candidates.peek().is_none() {
            return Err(AuthError::invalid_token("no key for this token"));
        }
        let verified_by = candidates
            .find(|k| k.verify(header.alg, signing_input, signature))
            .ok_or_else(|| AuthError::invalid_token("invalid signature"))?;

        let now = self.clock.now();
        let checked = self.check_claims(issuer, &claims, now, binding)?;
        let principal = checked
            .builder
            .extension(Claims::from_verified(payload, claims))
            .build();
        if let (Some(cache), Some(hash), Some(identity)) = (&self.cache, hash, checked.identity) {
            let mut entry = CachedToken::new(
                principal.clone(),
                identity,
                signing_input.into(),
                Arc::downgrade(verified_by),
                checked.valid_until,
                now,
                cache.ttl,
            );
            entry.bound = binding == Binding::Dpop;
            cache.insert(hash, entry);
        }
        telemetry::verified(false);
        Ok(Verdict::Principal(principal))
    }

    fn select_issuer(&self, header: &Header, claims: &Object) -> Result<&IssuerState, AuthError> {
        let iss = claims
            .get("iss")
            .ok_or_else(|| AuthError::invalid_token("missing issuer"))?;
        let iss = iss
            .as_str()
            .ok_or_else(|| AuthError::invalid_token("malformed issuer"))?;
        let issuer = self
            .issuers
            .get(iss)
            .ok_or_else(|| AuthError::invalid_token("unknown issuer"))?;
        if !issuer.typ.admits(header.typ.as_deref()) {
            return Err(AuthError::invalid_token("wrong token type"));
        }
        if !issuer.algorithms.contains(&header.alg) {
            return Err(AuthError::invalid_token("algorithm not allowed"));
        }
        Ok(issuer)
    }

    fn cached(&self, hit: &CachedToken, binding: Binding) -> Result<Principal, AuthError> {
        // A token verified for the DPoP scheme is in the cache too: never served as Bearer.
        if let Err(e) = binding.check(hit.bound) {
            return reject(e);
        }
        let now = self.clock.now();
        if hit.valid_until.is_some_and(|t| now > t) {
            return reject(AuthError::invalid_token("token expired"));
        }
        if let Some(r) = &self.revocation
            && let Some(e) = revocation_error(r.check(&hit.identity))
        {
            return reject(e);
        }
        telemetry::verified(true);
        Ok(hit.principal.clone())
    }

    /// Every check of the claims of a token whose signature verified, and the principal they
    /// make (without its [`Claims`], which take the payload afterwards).
    fn check_claims(
        &self,
        issuer: &IssuerState,
        claims: &Object,
        now: SystemTime,
        binding: Binding,
    ) -> Result<Checked, AuthError> {
        // A sender-constrained token (RFC 7800 `cnf`, as DPoP and mTLS bind tokens) proves
        // nothing without its binding: refused as a plain Bearer token; with the DPoP scheme it
        // must name a key thumbprint (`cnf.jkt`, RFC 9449 section 6), which the DPoP layer
        // checks against its proof.
        binding.check(claims.contains_key("cnf"))?;
        if binding == Binding::Dpop
            && json::path(claims, &["cnf", "jkt"])
                .and_then(Value::as_str)
                .is_none()
        {
            return Err(
                AuthError::invalid_token("unsupported confirmation method").with_challenge("DPoP")
            );
        }
        let times = check_times(issuer, claims, now)?;
        check_audience(issuer, claims)?;

        let subject = string_claim(claims, "sub", "malformed subject")?;
        let jti = string_claim(claims, "jti", "malformed token id")?;
        let principal_subject = match &issuer.subject {
            Some(path) => path.string(claims),
            None => subject.or_else(|| {
                claims
                    .get("client_id")
                    .and_then(Value::as_str)
                    .or_else(|| claims.get("azp").and_then(Value::as_str))
            }),
        }
        .ok_or_else(|| AuthError::invalid_token("missing subject"))?;
        // Only built when something will read it.
        let identity = (self.revocation.is_some() || self.cache.is_some()).then(|| TokenIdentity {
            issuer: issuer.issuer.clone(),
            subject: subject.map(str::to_owned),
            jti: jti.map(str::to_owned),
            issued_at: times.iat,
            expires_at: times.exp,
        });
        if let (Some(r), Some(identity)) = (&self.revocation, &identity)
            && let Some(e) = revocation_error(r.check(identity))
        {
            return Err(e);
        }

        let kind = if issuer.service_rule.is_service(claims) {
            PrincipalKind::Service
        } else {
            PrincipalKind::User
        };
        let mut builder = Principal::builder(principal_subject, Scheme::Jwt)
            .kind(kind)
            .issuer(issuer.issuer.as_str())
            .scope_set(scopes(claims))
            .roles(issuer.mapping.roles(claims))
            .maybe_expires_at(times.exp);
        if let Some(t) = issuer.mapping.tenant(claims) {
            builder = builder.tenant(t);
        }
        Ok(Checked {
            builder,
            identity,
            valid_until: times.valid_until,
        })
    }
}

/// The outcome of [`Inner::check_claims`].
struct Checked {
    builder: PrincipalBuilder,
    identity: Option<TokenIdentity>,
    valid_until: Option<SystemTime>,
}

/// A claim that must be a string when present.
fn string_claim<'b>(
    claims: &'b Object,
    name: &str,
    malformed: &'static str,
) -> Result<Option<&'b str>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| AuthError::invalid_token(malformed)),
    }
}

struct Times {
    exp: Option<SystemTime>,
    iat: Option<SystemTime>,
    valid_until: Option<SystemTime>,
}

fn time_claim(
    claims: &Object,
    name: &str,
    malformed: &'static str,
) -> Result<Option<SystemTime>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_number()
            .and_then(number_date)
            .map(Some)
            .ok_or_else(|| AuthError::invalid_token(malformed)),
    }
}

fn check_times(issuer: &IssuerState, claims: &Object, now: SystemTime) -> Result<Times, AuthError> {
    let leeway = issuer.leeway;
    let exp = time_claim(claims, "exp", "malformed expiry")?;
    let nbf = time_claim(claims, "nbf", "malformed not-before")?;
    let iat = time_claim(claims, "iat", "malformed issued-at")?;
    // `later` is more than `leeway` after `earlier`; written without additions, so huge dates
    // cannot overflow.
    let beyond = |later: SystemTime, earlier: SystemTime| {
        later.duration_since(earlier).is_ok_and(|d| d > leeway)
    };
    let mut valid_until = None;
    match exp {
        None if issuer.require_exp => return Err(AuthError::invalid_token("missing expiry")),
        None => {}
        Some(exp) => {
            if beyond(now, exp) {
                return Err(AuthError::invalid_token("token expired"));
            }
            if let Some(max) = issuer.max_lifetime
                && exp
                    .duration_since(now)
                    .is_ok_and(|ahead| ahead > max.saturating_add(leeway))
            {
                return Err(AuthError::invalid_token("token lifetime too long"));
            }
            valid_until = exp.checked_add(leeway);
        }
    }
    if nbf.is_some_and(|nbf| beyond(nbf, now)) {
        return Err(AuthError::invalid_token("token not yet valid"));
    }
    if iat.is_some_and(|iat| beyond(iat, now)) {
        return Err(AuthError::invalid_token("token issued in the future"));
    }
    if let Some(max_age) = issuer.max_age {
        let iat = iat.ok_or_else(|| AuthError::invalid_token("missing issued-at"))?;
        // iat is at most `leeway` in the future here, so this cannot overflow in practice.
        let limit = iat.checked_add(max_age + leeway);
        if limit.is_none_or(|limit| now > limit) {
            return Err(AuthError::invalid_token("token too old"));
        }
        valid_until = match (valid_until, limit) {
            (Some(v), Some(l)) => Some(v.min(l)),
            (v, l) => v.or(l),
        };
    }
    Ok(Times {
        exp,
        iat,
        valid_until,
    })
}

fn check_audience(issuer: &IssuerState, claims: &Object) -> Result<(), AuthError> {
    if issuer.skip_audience {
        return Ok(());
    }
    let ours = |a: &str| issuer.audiences.iter().any(|x| x == a);
    let aud = claims
        .get("aud")
        .ok_or_else(|| AuthError::invalid_token("missing audience"))?;
    let ok = match aud {
        Value::String(a) => ours(a),
        Value::Array(items) => {
            if items.iter().any(|v| v.as_str().is_none()) {
                return Err(AuthError::invalid_token("malformed audience"));
            }
            items.iter().filter_map(Value::as_str).any(ours)
        }
        _ => return Err(AuthError::invalid_token("malformed audience")),
    };
    if ok {
        Ok(())
    } else {
        Err(AuthError::invalid_token("wrong audience"))
    }
}

fn scopes(claims: &Object) -> Scopes {
    let from = |v: &Value| match v {
        Value::String(s) => Some(Scopes::from_space_separated(s)),
        Value::Array(items) => Some(Scopes::new(items.iter().filter_map(Value::as_str))),
        _ => None,
    };
    claims
        .get("scope")
        .and_then(from)
        .or_else(|| claims.get("scp").and_then(from))
        .unwrap_or_default()
}

/// The JOSE header members we act on. Everything else is ignored, in particular `jwk`, `jku`,
/// `x5u`, `x5c` and `x5t`: keys are never taken from the token.
pub(crate) struct Header {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<Box<str>>,
    pub(crate) typ: Option<Box<str>>,
}

impl Header {
    /// The header of an encoded first segment: base64url of a JSON object without duplicate
    /// member names (see the `json` module).
    fn read(encoded: &[u8]) -> Result<Self, AuthError> {
        let members = json::object(&decode_segment(encoded)?).ok_or_else(malformed)?;
        if members.contains_key("crit") {
            return Err(AuthError::invalid_token("unsupported critical header"));
        }
        let string = |name: &str| match members.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(malformed()),
        };
        let alg = string("alg")?
            .ok_or_else(malformed)?
            .parse()
            .map_err(|_| AuthError::invalid_token("unsupported algorithm"))?;
        Ok(Self {
            alg,
            kid: string("kid")?.map(Into::into),
            typ: string("typ")?.map(Into::into),
        })
    }
}

/// The token found by [`JwtAuthenticator`]'s `extract`: a view into the request header it came
/// from (sharing its buffer, not copying it). `Debug` does not show it.
pub struct JwtCredential {
    value: HeaderValue,
    range: Range<usize>,
    /// The positions of the two dots in the token, when `extract` found them already.
    dots: Option<(usize, usize)>,
}

impl JwtCredential {
    fn new(value: &HeaderValue, token: &str) -> Option<Self> {
        let base = value.as_bytes().as_ptr() as usize;
        let start = (token.as_ptr() as usize).checked_sub(base)?;
        let end = start + token.len();
        (end <= value.len()).then(|| Self {
            value: value.clone(),
            range: start..end,
            dots: None,
        })
    }

    fn as_bytes(&self) -> &[u8] {
        self.value
            .as_bytes()
            .get(self.range.clone())
            .unwrap_or_default()
    }
}

/// A compact JWS split at its two dots: `header.payload.signature`.
///
/// Bytes, not `str`: a credential is visible ASCII already (the `Bearer` and cookie parsers
/// check it), and each segment is checked where it is base64url-decoded, so the token is not
/// validated as UTF-8 again.
#[derive(Clone, Copy)]
pub(crate) struct Segments<'t> {
    token: &'t [u8],
    first: usize,
    last: usize,
}

impl<'t> Segments<'t> {
    /// Exactly three segments (the middle one may be empty only if the token is malformed
    /// anyway); `None` for any other shape.
    pub(crate) fn split(token: &'t [u8]) -> Option<Self> {
        let (first, last) = two_dots(token)?;
        Some(Self { token, first, last })
    }

    /// The segments at dot positions found earlier in the same token (checked again, cheaply).
    fn at(token: &'t [u8], first: usize, last: usize) -> Option<Self> {
        (first < last && token.get(first) == Some(&b'.') && token.get(last) == Some(&b'.'))
            .then_some(Self { token, first, last })
    }

    pub(crate) fn header(&self) -> &'t [u8] {
        &self.token[..self.first]
    }

    pub(crate) fn payload(&self) -> &'t [u8] {
        &self.token[self.first + 1..self.last]
    }

    fn signing_input(&self) -> &'t [u8] {
        &self.token[..self.last]
    }

    pub(crate) fn signature(&self) -> &'t [u8] {
        &self.token[self.last + 1..]
    }
}

/// The positions of the two dots of `token`, if it has exactly two.
fn two_dots(token: &[u8]) -> Option<(usize, usize)> {
    let mut dots = memchr::memchr_iter(b'.', token);
    match (dots.next(), dots.next(), dots.next()) {
        (Some(first), Some(last), None) => Some((first, last)),
        _ => None,
    }
}

impl fmt::Debug for JwtCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtCredential").finish_non_exhaustive()
    }
}

impl Authenticator for JwtAuthenticator {
    type Credential = JwtCredential;
    type Future = JwtFuture;

    fn extract(&self, parts: &Parts) -> Result<Option<Found<JwtCredential>>, AuthError> {
        let headers = &parts.headers;
        // A Bearer value that is not shaped like a compact JWS (three segments) is not ours:
        // other schemes may claim other Bearer values.
        let bearer = bearer_token(headers)?.and_then(|t| Some((t, Segments::split(t.as_bytes())?)));
        let cookie = match &self.inner.cookie {
            Some(name) => cookie_value(headers, name)?.map(|c| (name, c)),
            None => None,
        };
        let unreadable = || AuthError::invalid_token("malformed token");
        match (bearer, cookie) {
            (Some(_), Some(_)) => Err(AuthError::invalid_request(
                "credentials in more than one place",
            )),
            (Some((token, segments)), None) => {
                let value = headers.get(AUTHORIZATION).ok_or_else(unreadable)?;
                let mut cred = JwtCredential::new(value, token).ok_or_else(unreadable)?;
                cred.dots = Some((segments.first, segments.last));
                Ok(Some(Found::new(cred, Location::Authorization, Scheme::Jwt)))
            }
            (None, Some((name, token))) => {
                let cred = headers
                    .get_all(COOKIE)
                    .iter()
                    .find_map(|v| JwtCredential::new(v, token))
                    .ok_or_else(unreadable)?;
                Ok(Some(Found::new(
                    cred,
                    Location::Cookie(Arc::clone(name)),
                    Scheme::Jwt,
                )))
            }
            (None, None) => Ok(None),
        }
    }

    /// The future continues from [`authenticate_now`](Self::authenticate_now), the trait's
    /// convention.
    fn authenticate(&self, credential: JwtCredential) -> JwtFuture {
        JwtFuture::settle(self.authenticate_now(credential))
    }

    /// Everything but a key fetch is decided at once.
    fn authenticate_now(&self, credential: JwtCredential) -> Authentication<JwtFuture> {
        self.verify_now(credential.as_bytes(), credential.dots, Binding::Bearer)
    }
}

/// The future of [`JwtAuthenticator`]: ready at once unless the issuer's key source has to
/// fetch keys first.
pub struct JwtFuture {
    state: FutureState,
}

enum FutureState {
    Ready(Option<Result<Principal, AuthError>>),
    Boxed(BoxAuthFuture),
}

impl JwtFuture {
    fn ready(result: Result<Principal, AuthError>) -> Self {
        Self {
            state: FutureState::Ready(Some(result)),
        }
    }

    fn boxed(fut: BoxAuthFuture) -> Self {
        Self {
            state: FutureState::Boxed(fut),
        }
    }

    /// The future of a decision made at once, or the pending one.
    fn settle(now: Authentication<Self>) -> Self {
        match now {
            Authentication::Ready(result) => Self::ready(result),
            Authentication::Pending(fut) => fut,
        }
    }

    /// The decision, when it was made without waiting.
    pub(crate) fn take_ready(&mut self) -> Option<Result<Principal, AuthError>> {
        match &mut self.state {
            FutureState::Ready(result) => result.take(),
            FutureState::Boxed(_) => None,
        }
    }
}

impl fmt::Debug for JwtFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            FutureState::Ready(_) => "ready",
            FutureState::Boxed(_) => "fetching keys",
        };
        f.debug_struct("JwtFuture").field("state", &state).finish()
    }
}

impl Future for JwtFuture {
    type Output = Result<Principal, AuthError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            FutureState::Ready(result) => Poll::Ready(result.take().unwrap_or_else(|| {
                Err(AuthError::invalid_token("future polled after completion"))
            })),
            FutureState::Boxed(fut) => fut.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn encode(json: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.encode(json).into_bytes()
    }

    /// The reference for `two_dots`: a token splits where it has exactly two dots.
    fn dots_by_search(token: &[u8]) -> Option<(usize, usize)> {
        let dots: Vec<usize> = (0..token.len()).filter(|&i| token[i] == b'.').collect();
        match dots[..] {
            [first, last] => Some((first, last)),
            _ => None,
        }
    }

    /// The dot search finds the same dots as a byte-by-byte one, wherever they fall (at the
    /// edges of the vector widths `memchr` works in, or in a tail after them), none, one, two
    /// or more, and whatever the other bytes are.
    #[test]
    fn two_dots_finds_exactly_two_dots_anywhere() {
        let mut checked = 0;
        for filler in [b'a', b'/', b'-', 0x00, 0x0f, 0xae, 0xff] {
            for len in [
                0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 31, 32, 33, 40, 63, 64, 65, 100, 130,
            ] {
                let positions: Vec<usize> = (0..len).collect();
                let mut tokens = vec![vec![filler; len]];
                for &p in &positions {
                    let mut t = vec![filler; len];
                    t[p] = b'.';
                    tokens.push(t.clone());
                    for &q in positions.iter().filter(|&&q| q > p) {
                        let mut t2 = t.clone();
                        t2[q] = b'.';
                        tokens.push(t2.clone());
                        for r in [q + 1, q + 33, len.saturating_sub(1)] {
                            if r > q && r < len {
                                let mut t3 = t2.clone();
                                t3[r] = b'.';
                                tokens.push(t3);
                            }
                        }
                    }
                }
                for t in tokens {
                    assert_eq!(two_dots(&t), dots_by_search(&t), "{t:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
        let t = b"head.claims.sig";
        let s = Segments::split(t).unwrap();
        assert_eq!(
            (s.header(), s.payload(), s.signature(), s.signing_input()),
            (
                &b"head"[..],
                &b"claims"[..],
                &b"sig"[..],
                &b"head.claims"[..]
            )
        );
    }

    /// The header is a JSON object, read once per token: its `alg`, `kid` and `typ` are
    /// strings, a `crit` member is refused whatever its value, and so are duplicate names and
    /// a header that is an array (which a derived struct would read positionally).
    #[test]
    fn header_rules() {
        let read = |json: &str| Header::read(&encode(json));
        let h = read(r#"{"alg":"ES256","kid":"b","typ":"at+jwt","x5u":"https://evil"}"#).unwrap();
        assert_eq!(
            (h.alg, h.kid.as_deref(), h.typ.as_deref()),
            (Algorithm::ES256, Some("b"), Some("at+jwt"))
        );
        let description = |json: &str| read(json).err().unwrap().description().to_owned();
        for (json, why) in [
            (
                r#"{"alg":"RS256","crit":["exp"]}"#,
                "unsupported critical header",
            ),
            (
                r#"{"alg":"RS256","crit":null}"#,
                "unsupported critical header",
            ),
            (r#"{"alg":"none"}"#, "unsupported algorithm"),
            (r#"{"alg":"rs256"}"#, "unsupported algorithm"),
            (r#"["RS256","k1"]"#, "malformed token"),
            (r#"{"alg":"HS256","alg":"RS256"}"#, "malformed token"),
            (r#"{"alg":"RS256","kid":"a","kid":"b"}"#, "malformed token"),
            (r#"{"alg":"RS256","kid":7}"#, "malformed token"),
            (r#"{"alg":"RS256","typ":["at+jwt"]}"#, "malformed token"),
            (r#"{"alg":["RS256"]}"#, "malformed token"),
            (r#"{"kid":"a"}"#, "malformed token"),
        ] {
            assert_eq!(description(json), why, "{json}");
        }
        // Not base64url: padded, or the standard alphabet.
        for encoded in [&b"eyJhbGciOiJSUzI1NiJ9="[..], b"eyJhbGciOiJSUzI1NiJ9+"] {
            assert!(Header::read(encoded).is_err());
        }
        assert!(Header::read(b"eyJhbGciOiJSUzI1NiJ9").is_ok());
    }
}
