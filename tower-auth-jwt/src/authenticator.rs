//! [`JwtAuthenticator`]: token extraction, verification and the principal it produces.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::HeaderValue;
use http::header::{AUTHORIZATION, COOKIE};
use http::request::Parts;
use serde::{Deserialize, Deserializer};
use tower_auth_core::clock::Clock;
use tower_auth_core::credential::{Found, Location, bearer_token, cookie_value};
use tower_auth_core::{
    AuthError, Authentication, Authenticator, BoxAuthFuture, Principal, PrincipalBuilder,
    PrincipalKind, Scheme, Scopes,
};

use crate::cache::{self, CachedToken, TokenCache, TokenHash};
use crate::claims::number_date;
use crate::raw::{Json, Object};
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
    Any,
    AccessToken,
}

pub(crate) struct IssuerState {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) skip_audience: bool,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) source: Arc<dyn KeySource>,
    pub(crate) leeway: Duration,
    pub(crate) max_age: Option<Duration>,
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
        // Size first: nothing of an oversized token is read.
        if token.len() > self.inner.max_token_size {
            return JwtFuture::ready(reject(AuthError::invalid_token("token too large")));
        }
        match Segments::split(token.as_bytes()) {
            Some(segments) => self.start(segments),
            None => JwtFuture::ready(reject(malformed())),
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

    /// Verifies a token whose size the caller has checked ([`verify`](Self::verify) and
    /// `authenticate` both do, before splitting it).
    fn start(&self, token: Segments<'_>) -> JwtFuture {
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
                    return JwtFuture::ready(inner.cached(&hit));
                }
                // Its key left every key set: verify again (and fail if it is gone for good).
                Some(_) => cache.remove(&key),
                None => {}
            }
            hash = Some(key);
        }
        match inner.verify(token, None, hash) {
            Ok(Verdict::Principal(p)) => JwtFuture::ready(Ok(p)),
            Err(e) => JwtFuture::ready(reject(e)),
            Ok(Verdict::FetchKeys(fut)) => {
                let inner = Arc::clone(inner);
                let (token, first, last) = (token.token.to_vec(), token.first, token.last);
                JwtFuture::boxed(Box::pin(async move {
                    let keys = fut.await.map_err(|e| {
                        reject_err(
                            AuthError::unavailable("signing keys unavailable").with_source(e),
                        )
                    })?;
                    let token = Segments::at(&token, first, last).ok_or_else(malformed)?;
                    match inner.verify(token, Some(&keys), hash) {
                        Ok(Verdict::Principal(p)) => Ok(p),
                        Err(e) => reject(e),
                        // Keys were given: nothing is fetched again.
                        Ok(Verdict::FetchKeys(_)) => {
                            reject(AuthError::unavailable("signing keys unavailable"))
                        }
                    }
                }))
            }
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

/// base64url without padding, canonical (no stray bits), as JWS requires.
///
/// Decoded with `base64-simd`: the payload is the longest thing the layer reads on every
/// request, and the vectorised decoder takes a fraction of the time of a scalar one.
fn decode_segment(segment: &[u8]) -> Result<Vec<u8>, AuthError> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(segment)
        .map_err(|_| malformed())
}

impl Inner {
    /// Verifies a compact JWS: splits and decodes it, picks the issuer by `iss`, checks the
    /// signature with the issuer's keys (`keys` when they were just fetched), then every claim.
    ///
    /// Nothing is trusted before the signature check: until then the claims only pick the
    /// issuer. The claims are read without building a `serde_json::Value` (see the `raw`
    /// module); the principal's [`Claims`] keep the decoded payload and parse it when read.
    fn verify(
        &self,
        token: Segments<'_>,
        keys: Option<&KeySet>,
        hash: Option<TokenHash>,
    ) -> Result<Verdict, AuthError> {
        let (signing_input, signature) = (token.signing_input(), token.signature());
        if signature.is_empty() {
            return Err(AuthError::invalid_token("missing signature"));
        }
        let read = Header::read(token.header())?;
        let header = &read.header;
        let payload = String::from_utf8(decode_segment(token.payload())?)
            .map_err(|_| AuthError::invalid_token("claims are not a JSON object"))?;
        let claims = Object::parse(&payload)
            .ok_or_else(|| AuthError::invalid_token("claims are not a JSON object"))?;
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
        let checked = self.check_claims(issuer, &claims, now)?;
        // The claims' borrow of the payload ends here: the payload moves into the principal.
        drop(claims);
        let principal = checked
            .builder
            .extension(Claims::from_verified(payload))
            .build();
        if let (Some(cache), Some(hash), Some(identity)) = (&self.cache, hash, checked.identity) {
            cache.insert(
                hash,
                CachedToken::new(
                    principal.clone(),
                    identity,
                    signing_input.into(),
                    Arc::downgrade(verified_by),
                    checked.valid_until,
                    now,
                    cache.ttl,
                ),
            );
        }
        telemetry::verified(false);
        Ok(Verdict::Principal(principal))
    }

    fn select_issuer(
        &self,
        header: &Header,
        claims: &Object<'_>,
    ) -> Result<&IssuerState, AuthError> {
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
        if issuer.typ == TypPolicy::AccessToken {
            let ok = header.typ.as_deref().is_some_and(|t| {
                t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
            });
            if !ok {
                return Err(AuthError::invalid_token("wrong token type"));
            }
        }
        if !issuer.algorithms.contains(&header.alg) {
            return Err(AuthError::invalid_token("algorithm not allowed"));
        }
        Ok(issuer)
    }

    fn cached(&self, hit: &CachedToken) -> Result<Principal, AuthError> {
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
        claims: &Object<'_>,
        now: SystemTime,
    ) -> Result<Checked, AuthError> {
        let times = check_times(issuer, claims, now)?;
        check_audience(issuer, claims)?;

        let subject = string_claim(claims, "sub", "malformed subject")?;
        let jti = string_claim(claims, "jti", "malformed token id")?;
        let principal_subject = match &issuer.subject {
            Some(path) => path.string(claims),
            None => subject.or_else(|| {
                claims
                    .get("client_id")
                    .and_then(Json::as_str)
                    .or_else(|| claims.get("azp").and_then(Json::as_str))
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
    claims: &'b Object<'_>,
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
    claims: &Object<'_>,
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

fn check_times(
    issuer: &IssuerState,
    claims: &Object<'_>,
    now: SystemTime,
) -> Result<Times, AuthError> {
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

fn check_audience(issuer: &IssuerState, claims: &Object<'_>) -> Result<(), AuthError> {
    if issuer.skip_audience {
        return Ok(());
    }
    let ours = |a: &str| issuer.audiences.iter().any(|x| x == a);
    let aud = claims
        .get("aud")
        .ok_or_else(|| AuthError::invalid_token("missing audience"))?;
    let ok = match aud {
        Json::String(a) => ours(a),
        Json::Array(items) => {
            if items.iter().any(|v| v.as_str().is_none()) {
                return Err(AuthError::invalid_token("malformed audience"));
            }
            items.iter().filter_map(Json::as_str).any(ours)
        }
        _ => return Err(AuthError::invalid_token("malformed audience")),
    };
    if ok {
        Ok(())
    } else {
        Err(AuthError::invalid_token("wrong audience"))
    }
}

fn scopes(claims: &Object<'_>) -> Scopes {
    let from = |v: &Json<'_>| match v {
        Json::String(s) => Some(Scopes::from_space_separated(s)),
        Json::Array(items) => Some(Scopes::new(items.iter().filter_map(Json::as_str))),
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
struct Header {
    alg: Algorithm,
    kid: Option<Box<str>>,
    typ: Option<Box<str>>,
}

thread_local! {
    /// The header this thread read last, by its encoded form. The tokens of one issuer and key
    /// share their header, so most requests skip decoding and parsing it. Only headers that
    /// were read without error are kept, and a hit needs the same bytes: the outcome is that
    /// of reading the header again.
    static LAST_HEADER: RefCell<Option<Rc<ReadHeader>>> = const { RefCell::new(None) };
}

/// A header and the encoded segment it was read from.
struct ReadHeader {
    encoded: Box<[u8]>,
    header: Header,
}

impl Header {
    /// The header of an encoded first segment (base64url JSON).
    fn read(encoded: &[u8]) -> Result<Rc<ReadHeader>, AuthError> {
        // `try_with`: while the thread's locals are being torn down, read without the cache.
        let last = LAST_HEADER
            .try_with(|last| {
                last.borrow()
                    .as_ref()
                    .filter(|last| *last.encoded == *encoded)
                    .map(Rc::clone)
            })
            .ok()
            .flatten();
        if let Some(read) = last {
            return Ok(read);
        }
        let header = Rc::new(ReadHeader {
            encoded: encoded.into(),
            header: Self::parse(&decode_segment(encoded)?)?,
        });
        let _ = LAST_HEADER.try_with(|last| last.replace(Some(Rc::clone(&header))));
        Ok(header)
    }

    fn parse(json: &[u8]) -> Result<Self, AuthError> {
        #[derive(Deserialize)]
        struct Members<'a> {
            #[serde(borrow)]
            alg: Cow<'a, str>,
            #[serde(default, borrow)]
            kid: Option<Cow<'a, str>>,
            #[serde(default, borrow)]
            typ: Option<Cow<'a, str>>,
            #[serde(default, deserialize_with = "present")]
            crit: bool,
        }
        let members: Members<'_> = serde_json::from_slice(json).map_err(|_| malformed())?;
        if members.crit {
            return Err(AuthError::invalid_token("unsupported critical header"));
        }
        let alg = members
            .alg
            .parse()
            .map_err(|_| AuthError::invalid_token("unsupported algorithm"))?;
        Ok(Self {
            alg,
            kid: members.kid.map(Into::into),
            typ: members.typ.map(Into::into),
        })
    }
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d)?;
    Ok(true)
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
struct Segments<'t> {
    token: &'t [u8],
    first: usize,
    last: usize,
}

impl<'t> Segments<'t> {
    /// Exactly three segments (the middle one may be empty only if the token is malformed
    /// anyway); `None` for any other shape.
    fn split(token: &'t [u8]) -> Option<Self> {
        let (first, last) = two_dots(token)?;
        Some(Self { token, first, last })
    }

    /// The segments at dot positions found earlier in the same token (checked again, cheaply).
    fn at(token: &'t [u8], first: usize, last: usize) -> Option<Self> {
        (first < last && token.get(first) == Some(&b'.') && token.get(last) == Some(&b'.'))
            .then_some(Self { token, first, last })
    }

    fn header(&self) -> &'t [u8] {
        &self.token[..self.first]
    }

    fn payload(&self) -> &'t [u8] {
        &self.token[self.first + 1..self.last]
    }

    fn signing_input(&self) -> &'t [u8] {
        &self.token[..self.last]
    }

    fn signature(&self) -> &'t [u8] {
        &self.token[self.last + 1..]
    }
}

/// The positions of the two dots of `token`, if it has exactly two.
///
/// One pass, run on every request over a token of hundreds of bytes: each 32-byte chunk is
/// tested for a dot without branches (which compiles to vector compares), and only the chunks
/// holding one, and the tail, are searched, eight bytes at a time.
fn two_dots(token: &[u8]) -> Option<(usize, usize)> {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const DOTS: u64 = 0x2e2e_2e2e_2e2e_2e2e;
    let mut dots = [0usize; 2];
    let mut found = 0;
    // The dots among up to 8 bytes starting at `offset`.
    let mut search = |bytes: &[u8], offset: usize| -> Option<()> {
        let mut word = [0u8; 8];
        word[..bytes.len()].copy_from_slice(bytes);
        // Zero where a byte was a dot (the padding is not one); then the top bit of each byte
        // that is zero, exactly: adding within the low seven bits never carries into the next
        // byte.
        let x = u64::from_le_bytes(word) ^ DOTS;
        let mut mask = !(((x & LOW7) + LOW7) | x) & !LOW7;
        while mask != 0 {
            *dots.get_mut(found)? = offset + (mask.trailing_zeros() / 8) as usize;
            found += 1;
            mask &= mask - 1;
        }
        Some(())
    };
    let mut chunks = token.chunks_exact(32);
    let mut offset = 0;
    for chunk in &mut chunks {
        if chunk.iter().fold(false, |any, &c| any | (c == b'.')) {
            for (i, bytes) in chunk.chunks_exact(8).enumerate() {
                search(bytes, offset + 8 * i)?;
            }
        }
        offset += 32;
    }
    for (i, bytes) in chunks.remainder().chunks(8).enumerate() {
        search(bytes, offset + 8 * i)?;
    }
    (found == 2).then_some((dots[0], dots[1]))
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

    fn authenticate(&self, credential: JwtCredential) -> JwtFuture {
        // Size first, as for `verify`: nothing of an oversized token is read.
        if credential.range.len() > self.inner.max_token_size {
            return JwtFuture::ready(reject(AuthError::invalid_token("token too large")));
        }
        let token = credential.as_bytes();
        let segments = match credential.dots {
            Some((first, last)) => Segments::at(token, first, last),
            None => Segments::split(token),
        };
        match segments {
            Some(segments) => self.start(segments),
            None => JwtFuture::ready(reject(malformed())),
        }
    }

    fn authenticate_now(&self, credential: JwtCredential) -> Authentication<JwtFuture> {
        // Everything but a key fetch is decided at once.
        match self.authenticate(credential).state {
            FutureState::Ready(Some(result)) => Authentication::Ready(result),
            state => Authentication::Pending(JwtFuture { state }),
        }
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

    /// The chunked dot search finds the same dots as a byte-by-byte one, wherever they fall:
    /// inside a chunk, on its edges, in the tail after the last full chunk, none, one, two or
    /// more, and whatever the other bytes are (`/` is `.` with its lowest bit flipped: a word
    /// search with an inexact zero-byte test would take it for a dot after a real one).
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

    /// The per-thread header cache answers exactly what reading the header again would.
    #[test]
    fn the_last_header_is_reused_only_for_the_same_bytes() {
        let a = encode(r#"{"alg":"RS256","kid":"a"}"#);
        let b = encode(r#"{"alg":"ES256","kid":"b","typ":"at+jwt"}"#);
        let crit = encode(r#"{"alg":"RS256","kid":"a","crit":["exp"]}"#);
        for _ in 0..2 {
            let ra = Header::read(&a).unwrap();
            assert_eq!(
                (ra.header.alg, ra.header.kid.as_deref()),
                (Algorithm::RS256, Some("a"))
            );
            assert!(Rc::ptr_eq(&ra, &Header::read(&a).unwrap()), "a hit");
            let rb = Header::read(&b).unwrap();
            assert_eq!(
                (rb.header.alg, rb.header.kid.as_deref()),
                (Algorithm::ES256, Some("b"))
            );
            assert_eq!(rb.header.typ.as_deref(), Some("at+jwt"));
            assert!(!Rc::ptr_eq(&ra, &rb));
            // A header that fails is never kept: it fails every time, and the last good one
            // stays.
            for _ in 0..2 {
                let e = Header::read(&crit).err().unwrap();
                assert_eq!(e.description(), "unsupported critical header");
            }
            assert!(Rc::ptr_eq(&rb, &Header::read(&b).unwrap()));
        }
    }
}
