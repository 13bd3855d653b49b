//! [`JwtIssuer`]: access tokens, signing keys, the JWKS.

use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value, json};
use tower_auth_core::clock::{Clock, SystemClock};

use super::keys::{SIGNING_ALGORITHMS, Signer, StoredSigningKey, random_bytes};
use super::{IssueError, IssueErrorKind, SigningKeyStore, StoreFuture};
use crate::{Algorithm, ConfigError, KeyLookup, KeySet, KeySource, KeySourceError};

/// Default lifetime of an access token (RFC 9068 tokens are short-lived; 15 minutes).
pub const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// The longest access-token lifetime accepted.
pub const MAX_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default `Cache-Control: max-age` of the JWKS response.
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// Default interval at which the issuer re-reads its signing keys from the store (to see a
/// rotation made by another process).
pub const DEFAULT_KEY_REFRESH: Duration = Duration::from_secs(60);
/// Default deadline of each store call, after which the request gets a 503.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time a retired key stays published after the last token it signed expired (the
/// validators' clock-skew leeway).
pub const DEFAULT_RETIRED_KEY_GRACE: Duration = Duration::from_secs(60);

/// The issuer as a [`KeySource`] re-reads its store for an unknown `kid` at most this often.
pub const UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(5);

/// Claims the issuer sets itself; a [`TokenRequest`] cannot set them as custom claims.
pub const REGISTERED_CLAIMS: [&str; 11] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "scope",
    "sid",
    "cnf",
];

/// What to put in an access token: the subject, scopes, and custom claims.
///
/// ```
/// use tower_auth_jwt::issue::TokenRequest;
///
/// let request = TokenRequest::new("alice")
///     .scopes(["orders:read", "orders:write"])
///     .claim("tenant", "acme");
/// # let _ = request;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct TokenRequest {
    pub(crate) subject: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) claims: Map<String, Value>,
    /// The RFC 7638 thumbprint of the DPoP key the token is bound to (`cnf.jkt`).
    pub(crate) jkt: Option<String>,
}

impl TokenRequest {
    /// A token for this subject (`sub`).
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            scopes: Vec::new(),
            client_id: None,
            claims: Map::new(),
            jkt: None,
        }
    }

    /// The granted scopes (`scope`, space separated). None by default.
    pub fn scopes(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The `client_id` for this token, instead of the issuer's default.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// A custom claim (roles, tenant, ...). A [registered claim](REGISTERED_CLAIMS) is refused
    /// when the token is issued.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }

    /// Binds the token to a DPoP key (RFC 9449 section 6): `cnf.jkt` is set to `jkt`, the
    /// RFC 7638 thumbprint that
    /// [`DpopAuthenticator::check_token_request`](crate::dpop::DpopAuthenticator::check_token_request)
    /// returns for the request's proof, and the token's type is `DPoP`. With
    /// [`JwtIssuer::login`], the session's refresh tokens are bound to the key too.
    pub fn dpop_jkt(mut self, jkt: impl Into<String>) -> Self {
        self.jkt = Some(jkt.into());
        self
    }

    pub(crate) fn scope_string(&self) -> String {
        self.scopes.join(" ")
    }
}

/// A signed access token. `Debug` does not show it.
#[derive(Clone)]
pub struct AccessToken {
    token: String,
    jti: String,
    kid: String,
    expires_at: SystemTime,
    expires_in: Duration,
    bound: bool,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("jti", &self.jti)
            .field("kid", &self.kid)
            .field("expires_at", &self.expires_at)
            .field("token_type", &self.token_type())
            .finish()
    }
}

impl AccessToken {
    /// The OAuth `token_type` of the answer: `DPoP` for a token bound to a DPoP key
    /// ([`TokenRequest::dpop_jkt`]), else `Bearer`.
    pub fn token_type(&self) -> &'static str {
        if self.bound { "DPoP" } else { "Bearer" }
    }

    /// The compact JWS, for an `Authorization: Bearer` header or a cookie.
    pub fn as_str(&self) -> &str {
        &self.token
    }

    /// The compact JWS.
    pub fn into_string(self) -> String {
        self.token
    }

    /// Its `jti`, for a revocation list.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// The `kid` of the key that signed it.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Its `exp`.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// Its lifetime (`expires_in` of an OAuth token response, a cookie's `Max-Age`).
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }
}

/// The keys as loaded from the store.
struct KeyState {
    active: Arc<Signer>,
    /// The key not retired: the signer, or the key scheduled to sign next.
    current_kid: String,
    jwks: Value,
    jwks_text: String,
    verifying: Arc<KeySet>,
    loaded_at: SystemTime,
    /// The next re-read: the key refresh interval, or sooner when a retired key's publication
    /// ends.
    valid_until: SystemTime,
}

impl KeyState {
    fn is_fresh(&self, now: SystemTime) -> bool {
        now >= self.loaded_at && now < self.valid_until
    }
}

pub(crate) struct Inner {
    pub(crate) issuer: String,
    audiences: Vec<String>,
    pub(crate) client_id: String,
    algorithm: Algorithm,
    pub(crate) access_ttl: Duration,
    retired_grace: Duration,
    key_refresh: Duration,
    jwks_max_age: Duration,
    store_timeout: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    keys: Arc<dyn SigningKeyStore>,
    pub(crate) refresh: Option<super::refresh::RefreshTokens>,
    #[cfg(feature = "revocation")]
    pub(crate) revocations: Option<crate::revocation::RevocationList>,
    state: RwLock<Option<Arc<KeyState>>>,
    unknown_kid_reload: Mutex<Option<SystemTime>>,
}

/// Issues RFC 9068 JWT access tokens (and, when configured, rotating refresh tokens) for your
/// own app, with signing keys generated once and kept in a [`SigningKeyStore`]. Cheap to clone
/// (an `Arc` inside). See the [module docs](super).
#[derive(Clone)]
pub struct JwtIssuer {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for JwtIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("JwtIssuer")
            .field("issuer", &i.issuer)
            .field("audiences", &i.audiences)
            .field("client_id", &i.client_id)
            .field("algorithm", &i.algorithm)
            .field("access_token_ttl", &i.access_ttl)
            .field("refresh_tokens", &i.refresh)
            .finish_non_exhaustive()
    }
}

/// Builds a [`JwtIssuer`]. Created by [`JwtIssuer::builder`].
#[must_use]
pub struct JwtIssuerBuilder {
    keys: Arc<dyn SigningKeyStore>,
    issuer: Option<String>,
    audiences: Vec<String>,
    client_id: Option<String>,
    algorithm: Algorithm,
    access_ttl: Duration,
    retired_grace: Duration,
    key_refresh: Duration,
    jwks_max_age: Duration,
    store_timeout: Duration,
    clock: Arc<dyn Clock>,
    refresh: Option<super::refresh::RefreshTokens>,
    #[cfg(feature = "revocation")]
    pub(crate) revocations: Option<crate::revocation::RevocationList>,
}

impl fmt::Debug for JwtIssuerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtIssuerBuilder")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("client_id", &self.client_id)
            .field("algorithm", &self.algorithm)
            .field("access_token_ttl", &self.access_ttl)
            .field("store_timeout", &self.store_timeout)
            .field("refresh_tokens", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl JwtIssuer {
    /// A builder whose signing keys live in `keys`.
    pub fn builder(keys: impl SigningKeyStore) -> JwtIssuerBuilder {
        JwtIssuerBuilder {
            keys: Arc::new(keys),
            issuer: None,
            audiences: Vec::new(),
            client_id: None,
            algorithm: Algorithm::EdDSA,
            access_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            retired_grace: DEFAULT_RETIRED_KEY_GRACE,
            key_refresh: DEFAULT_KEY_REFRESH,
            jwks_max_age: DEFAULT_JWKS_MAX_AGE,
            store_timeout: DEFAULT_STORE_TIMEOUT,
            clock: Arc::new(SystemClock),
            refresh: None,
            #[cfg(feature = "revocation")]
            revocations: None,
        }
    }

    /// The `iss` of its tokens.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.inner.algorithm
    }

    /// Issues an access token: `typ: at+jwt`, `iss`, `aud`, `sub`, `client_id`, `iat`, `exp`,
    /// a random `jti`, `scope` when scopes were granted, and the custom claims.
    ///
    /// The first call (or the first after [`key_refresh`](JwtIssuerBuilder::key_refresh))
    /// reads the signing keys from the store, generating and storing the first key when there
    /// is none.
    pub async fn issue(&self, request: &TokenRequest) -> Result<AccessToken, IssueError> {
        self.issue_with_session(request, None).await
    }

    pub(crate) async fn issue_with_session(
        &self,
        request: &TokenRequest,
        sid: Option<&str>,
    ) -> Result<AccessToken, IssueError> {
        let i = &self.inner;
        if let Some(name) = request
            .claims
            .keys()
            .find(|k| REGISTERED_CLAIMS.contains(&k.as_str()))
        {
            let _ = name;
            return Err(IssueError::new(
                IssueErrorKind::InvalidRequest,
                "a custom claim shadows a registered claim",
            ));
        }
        let state = self.state().await?;
        let now = self.issued_at(&request.subject, i.clock.now());
        let ttl = i.access_ttl.as_secs();
        let jti = URL_SAFE_NO_PAD.encode(random_bytes::<16>()?);
        let mut claims = request.claims.clone();
        claims.insert("iss".into(), json!(i.issuer));
        claims.insert("sub".into(), json!(request.subject));
        claims.insert(
            "aud".into(),
            match i.audiences.as_slice() {
                [one] => json!(one),
                many => json!(many),
            },
        );
        claims.insert(
            "client_id".into(),
            json!(request.client_id.as_deref().unwrap_or(&i.client_id)),
        );
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + ttl));
        claims.insert("jti".into(), json!(jti));
        if !request.scopes.is_empty() {
            claims.insert("scope".into(), json!(request.scope_string()));
        }
        if let Some(sid) = sid {
            claims.insert("sid".into(), json!(sid));
        }
        if let Some(jkt) = &request.jkt {
            claims.insert("cnf".into(), json!({ "jkt": jkt }));
        }
        let signer = &state.active;
        let header =
            json!({"alg": signer.algorithm().as_str(), "typ": "at+jwt", "kid": signer.kid()});
        let encode = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let mut token = format!("{}.{}", encode(&header), encode(&Value::Object(claims)));
        let signature = signer.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&signature);
        super::telemetry::issued(signer.kid());
        Ok(AccessToken {
            token,
            jti,
            kid: signer.kid().to_owned(),
            expires_at: UNIX_EPOCH + Duration::from_secs(now + ttl),
            expires_in: i.access_ttl,
            bound: request.jkt.is_some(),
        })
    }

    /// The `iat` of a token issued to `subject` at `now`: `now` in whole seconds, or, when the
    /// subject has a cut-off after that second (made during the current second by
    /// [`logout_everywhere`](Self::logout_everywhere), say), the cut-off's second. Cut-offs
    /// and `iat` are whole seconds and a cut-off refuses the tokens whose `iat` comes before
    /// it, so a token issued after the cut-off but stamped with the current second would be
    /// refused at once; stamping the cut-off's second (at most [`DEFAULT_LEEWAY`](crate::DEFAULT_LEEWAY)
    /// ahead, within verifiers' leeway) keeps `iat` an integer, as verifiers expect, and
    /// orders it after the cut-off. A token issued before the cut-off keeps its earlier
    /// second and stays refused.
    fn issued_at(&self, subject: &str, now: SystemTime) -> u64 {
        let now = secs(now);
        #[cfg(feature = "revocation")]
        if let Some(cut_off) = self.cut_off_after(subject, now) {
            return cut_off;
        }
        #[cfg(not(feature = "revocation"))]
        let _ = subject;
        now
    }

    /// The second of `subject`'s cut-off on this issuer's revocation list when it comes after
    /// second `after` (so tokens stamped `after` are refused), found by probing the list at
    /// most [`DEFAULT_LEEWAY`](crate::DEFAULT_LEEWAY) seconds ahead.
    #[cfg(feature = "revocation")]
    pub(crate) fn cut_off_after(&self, subject: &str, after: u64) -> Option<u64> {
        use crate::{RevocationCheck as _, RevocationStatus, TokenIdentity};
        let list = self.inner.revocations.as_ref()?;
        let refused_at = |iat: u64| {
            let token = TokenIdentity::new(
                self.inner.issuer.as_str(),
                Some(subject.to_owned()),
                None,
                Some(UNIX_EPOCH + Duration::from_secs(iat)),
                None,
            );
            list.check(&token) == RevocationStatus::Revoked
        };
        if !refused_at(after) {
            return None;
        }
        let ahead = crate::DEFAULT_LEEWAY.as_secs();
        (after + 1..=after + ahead).find(|&t| !refused_at(t))
    }

    /// The public JWKS document (RFC 7517 section 5): the active key and every retired key
    /// whose tokens may still be valid. Never a private member; `{"keys":[]}` for `HS256`.
    pub async fn jwks(&self) -> Result<Value, IssueError> {
        Ok(self.state().await?.jwks.clone())
    }

    /// The JWKS as an HTTP response, for any framework: `200` with
    /// `Content-Type: application/json` and `Cache-Control: public, max-age=...`
    /// ([`jwks_max_age`](JwtIssuerBuilder::jwks_max_age)), or `503` with `Retry-After: 5` and
    /// an empty body when the key store cannot be read.
    pub async fn jwks_response(&self) -> Response<String> {
        match self.state().await {
            Ok(state) => {
                let mut res = Response::new(state.jwks_text.clone());
                let h = res.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                if let Ok(v) = HeaderValue::from_str(&format!(
                    "public, max-age={}",
                    self.inner.jwks_max_age.as_secs()
                )) {
                    h.insert(header::CACHE_CONTROL, v);
                }
                res
            }
            Err(_) => {
                let mut res = Response::new(String::new());
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                res
            }
        }
    }

    /// The verification keys of the published set (for `HS256`, the secret), for a
    /// [`JwtAuthenticator`](crate::JwtAuthenticator) in the same process. The issuer is also a
    /// [`KeySource`] that follows rotations: prefer [`TrustedIssuer::key_source`](crate::TrustedIssuer::key_source)`(issuer.clone())`.
    pub async fn verifying_keys(&self) -> Result<Arc<KeySet>, IssueError> {
        Ok(self.state().await?.verifying.clone())
    }

    /// The `kid` of the key that signs now.
    pub async fn active_kid(&self) -> Result<String, IssueError> {
        Ok(self.state().await?.active.kid().to_owned())
    }

    /// Generates a new signing key, which signs from now on; the previous one is retired and
    /// stays published until every token it signed has expired (the access-token lifetime
    /// plus [`retired_key_grace`](JwtIssuerBuilder::retired_key_grace)). Returns the new `kid`.
    ///
    /// When another process rotated at the same moment, its rotation stands and this call
    /// returns that key's `kid`. Verifiers that cache the JWKS meet the new `kid` in a token
    /// before they have it; [`rotate_signing_key_after`](Self::rotate_signing_key_after)
    /// publishes it first.
    pub async fn rotate_signing_key(&self) -> Result<String, IssueError> {
        self.rotate_signing_key_after(Duration::ZERO).await
    }

    /// Generates a new signing key that is published now and starts signing after `delay`
    /// (when the previous key is retired). Give verifiers that cache the JWKS time to fetch it
    /// first: a delay of at least their refresh interval (the JWKS `max-age`,
    /// [`jwks_max_age`](JwtIssuerBuilder::jwks_max_age), 5 min by default) means no verifier
    /// ever meets an unknown `kid`. Returns the new `kid`. A later rotation replaces a
    /// scheduled one.
    pub async fn rotate_signing_key_after(&self, delay: Duration) -> Result<String, IssueError> {
        let current = self.reload().await?;
        let at = self.inner.clock.now() + delay;
        let new = StoredSigningKey::generate(self.inner.algorithm, at)?;
        if self
            .call(
                self.inner
                    .keys
                    .replace_active(Some(&current.current_kid), at, &new),
            )
            .await?
        {
            super::telemetry::key_generated(new.kid(), false);
        }
        Ok(self.reload().await?.current_kid.clone())
    }

    /// Withdraws a key at once, for a key that leaked: it leaves the store and the JWKS, and
    /// every token it signed stops verifying (here at once, at verifiers caching the JWKS at
    /// their next refresh). When it is the current key, an immediate rotation comes first.
    /// `false` when no such key is stored.
    pub async fn withdraw_signing_key(&self, kid: &str) -> Result<bool, IssueError> {
        let state = self.reload().await?;
        if state.current_kid == kid || state.active.kid() == kid {
            self.rotate_signing_key().await?;
        }
        let withdrawn = self.call(self.inner.keys.delete_retired_key(kid)).await?;
        // Scheduled rotations aside, a signer that was withdrawn is replaced at the reload.
        self.reload().await?;
        Ok(withdrawn)
    }

    /// A store call under the [store deadline](JwtIssuerBuilder::store_timeout): past it, the
    /// call is dropped and the caller gets [`IssueErrorKind::Unavailable`] (a 503).
    pub(crate) async fn call<T>(&self, call: StoreFuture<'_, T>) -> Result<T, IssueError> {
        let result = tokio::time::timeout(self.inner.store_timeout, call)
            .await
            .map_err(|_| {
                IssueError::new(
                    IssueErrorKind::Unavailable,
                    "issuer store deadline exceeded",
                )
            })?;
        result.map_err(IssueError::store)
    }

    async fn state(&self) -> Result<Arc<KeyState>, IssueError> {
        let now = self.inner.clock.now();
        if let Some(s) = self.cached()
            && s.is_fresh(now)
        {
            return Ok(s);
        }
        self.reload().await
    }

    /// Whether an unknown `kid` may trigger a store read now; if so, starts the cooldown.
    fn may_reload_for_unknown_kid(&self, now: SystemTime) -> bool {
        let mut last = self
            .inner
            .unknown_kid_reload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *last {
            Some(t) if now >= t && now < t + UNKNOWN_KID_COOLDOWN => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }

    fn cached(&self) -> Option<Arc<KeyState>> {
        self.inner
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads the keys from the store; generates the first key, or a key of the configured
    /// algorithm when the active one has another.
    async fn reload(&self) -> Result<Arc<KeyState>, IssueError> {
        let i = &self.inner;
        for _ in 0..4 {
            let keys = self.call(i.keys.signing_keys()).await?;
            let now = i.clock.now();
            // The current key: the one not retired (it may be scheduled to sign later).
            let current = keys
                .iter()
                .filter(|k| k.retired_at().is_none())
                .max_by_key(|k| k.created_at());
            match current {
                Some(current) if current.algorithm() == i.algorithm => {
                    // The signer: the newest key already created and not yet retired.
                    let signer = keys
                        .iter()
                        .filter(|k| k.created_at() <= now && k.retired_at().is_none_or(|r| r > now))
                        // Same creation time (a clock's resolution): the current key, else
                        // the one retired last, wins.
                        .max_by_key(|k| (k.created_at(), k.retired_at().is_none(), k.retired_at()))
                        .unwrap_or(current);
                    let state = Arc::new(self.build_state(&keys, signer, current, now)?);
                    // Keys whose tokens have all expired are deleted, best effort.
                    let keep = i.access_ttl + i.retired_grace;
                    if let Some(before) = now.checked_sub(keep)
                        && keys
                            .iter()
                            .any(|k| k.retired_at().is_some_and(|r| r < before))
                    {
                        let _ = self.call(i.keys.delete_retired_before(before)).await;
                    }
                    *i.state
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(state.clone());
                    return Ok(state);
                }
                other => {
                    // No key yet, or one of another algorithm: a new key signs from now on.
                    let new = StoredSigningKey::generate(i.algorithm, now)?;
                    if self
                        .call(
                            i.keys
                                .replace_active(other.map(StoredSigningKey::kid), now, &new),
                        )
                        .await?
                    {
                        super::telemetry::key_generated(new.kid(), other.is_none());
                    }
                }
            }
        }
        Err(IssueError::new(
            IssueErrorKind::Unavailable,
            "signing keys keep changing",
        ))
    }

    fn build_state(
        &self,
        keys: &[StoredSigningKey],
        active: &StoredSigningKey,
        current: &StoredSigningKey,
        now: SystemTime,
    ) -> Result<KeyState, IssueError> {
        let i = &self.inner;
        let keep = i.access_ttl + i.retired_grace;
        let active = Arc::new(Signer::load(active)?);
        let mut valid_until = now + i.key_refresh;
        let mut published = Vec::new();
        let mut verifying = Vec::new();
        // Newest first: the active key leads the document.
        let mut keys: Vec<_> = keys.iter().collect();
        keys.sort_by_key(|k| {
            std::cmp::Reverse((k.created_at(), k.retired_at().is_none(), k.retired_at()))
        });
        for k in keys {
            let signer = if k.kid() == active.kid() {
                active.clone()
            } else if k.retired_at().is_none() {
                // Scheduled to sign later: published now, and the signer changes then.
                if k.created_at() > now {
                    valid_until = valid_until.min(k.created_at());
                }
                match Signer::load(k) {
                    Ok(s) => Arc::new(s),
                    Err(_) => continue,
                }
            } else if let Some(end) = k.retired_at().map(|r| r + keep)
                && now <= end
            {
                valid_until = valid_until.min(end + Duration::from_millis(1));
                // A retired key that cannot be loaded any more only loses its tokens.
                match Signer::load(k) {
                    Ok(s) => Arc::new(s),
                    Err(_) => continue,
                }
            } else {
                continue;
            };
            if let Some(jwk) = signer.jwk() {
                published.push(jwk.clone());
            }
            verifying.push(signer.verifying_key().clone());
        }
        let jwks = json!({ "keys": published });
        let verifying = KeySet::new(verifying)
            .map_err(|_| IssueError::crypto("two signing keys share a kid"))?;
        Ok(KeyState {
            active,
            current_kid: current.kid().to_owned(),
            jwks_text: jwks.to_string(),
            jwks,
            verifying: Arc::new(verifying),
            loaded_at: now,
            valid_until,
        })
    }
}

/// The issuer as the [`KeySource`] of a [`JwtAuthenticator`](crate::JwtAuthenticator) in the
/// same process (the only way to verify `HS256` tokens, which publish no JWKS): answers with the
/// loaded keys, and loads them (from the store) when they are not loaded or are older than
/// [`key_refresh`](JwtIssuerBuilder::key_refresh). A `kid` it does not know (a key another
/// process sharing the store has just rotated to) re-reads the store at most once per
/// [`UNKNOWN_KID_COOLDOWN`]; other unknown `kid`s are rejected without a store read.
impl KeySource for JwtIssuer {
    fn lookup(&self, kid: Option<&str>) -> KeyLookup {
        let now = self.inner.clock.now();
        if let Some(s) = self.cached()
            && s.is_fresh(now)
        {
            let known = kid.is_none_or(|kid| s.verifying.get(kid).is_some());
            if known || !self.may_reload_for_unknown_kid(now) {
                return KeyLookup::Ready(s.verifying.clone());
            }
        }
        let this = self.clone();
        KeyLookup::Pending(Box::pin(async move {
            this.reload()
                .await
                .map(|s| s.verifying.clone())
                .map_err(|e| KeySourceError::new("issuer keys unavailable").with_source(e))
        }))
    }
}

impl JwtIssuerBuilder {
    /// The `iss` of the tokens (required): your app's URL, as verifiers will configure it.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Adds an audience (`aud`; at least one is required): the API that accepts the tokens.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The default `client_id` (required; RFC 9068 section 2.2): the client the tokens are
    /// issued to, your own app for a first-party login. A [`TokenRequest`] may override it.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The signing algorithm: `EdDSA` (default), `ES256`, `RS256` (2048-bit keys), or `HS256`
    /// (a 32-byte secret, for one service that both issues and verifies: nothing is
    /// published). Changing it later rotates to a key of the new algorithm at the next start.
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Access-token lifetime (default 15 min; 1 s to 24 h).
    pub fn access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// How long a retired key stays published after the last token it signed has expired
    /// (default 60 s, the verifiers' default clock-skew leeway; at most 1 h).
    pub fn retired_key_grace(mut self, grace: Duration) -> Self {
        self.retired_grace = grace;
        self
    }

    /// How often the keys are re-read from the store, so a rotation made by another process
    /// is picked up (default 60 s).
    pub fn key_refresh(mut self, interval: Duration) -> Self {
        self.key_refresh = interval;
        self
    }

    /// `Cache-Control: max-age` of [`JwtIssuer::jwks_response`] (default 5 min).
    pub fn jwks_max_age(mut self, max_age: Duration) -> Self {
        self.jwks_max_age = max_age;
        self
    }

    /// The deadline of each store call (default 2 s): past it the call is abandoned and the
    /// request fails with [`IssueErrorKind::Unavailable`] (a 503), so a stuck database cannot
    /// hold requests. Needs a tokio runtime with its timer.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// The clock for `iat`, `exp` and every expiry decision (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Validates the configuration. Does no I/O: keys load on first use.
    pub fn build(self) -> Result<JwtIssuer, ConfigError> {
        let issuer = match self.issuer {
            Some(i) if !i.is_empty() => i,
            Some(_) => return Err(ConfigError::new("issuer", "\"\"", "must not be empty")),
            None => return Err(ConfigError::new("issuer", "none", "required")),
        };
        if self.audiences.is_empty() {
            return Err(ConfigError::new(
                "audience",
                "none",
                "at least one audience is required",
            ));
        }
        if self.audiences.iter().any(String::is_empty) {
            return Err(ConfigError::new("audience", "\"\"", "must not be empty"));
        }
        let client_id = match self.client_id {
            Some(c) if !c.is_empty() => c,
            Some(_) => return Err(ConfigError::new("client_id", "\"\"", "must not be empty")),
            None => {
                return Err(ConfigError::new(
                    "client_id",
                    "none",
                    "required (RFC 9068 section 2.2)",
                ));
            }
        };
        if !SIGNING_ALGORITHMS.contains(&self.algorithm) {
            return Err(ConfigError::new(
                "algorithm",
                self.algorithm,
                "the issuer signs with EdDSA, ES256, RS256 or HS256",
            ));
        }
        let secs = |d: Duration| format!("{}s", d.as_secs_f64());
        if self.access_ttl < Duration::from_secs(1) || self.access_ttl > MAX_ACCESS_TOKEN_TTL {
            return Err(ConfigError::new(
                "access_token_ttl",
                secs(self.access_ttl),
                "must be between 1 s and 24 h",
            ));
        }
        if self.retired_grace > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "retired_key_grace",
                secs(self.retired_grace),
                "must be at most 1 h",
            ));
        }
        if self.store_timeout.is_zero() {
            return Err(ConfigError::new(
                "store_timeout",
                secs(self.store_timeout),
                "must be greater than zero",
            ));
        }
        if self.key_refresh.is_zero() {
            return Err(ConfigError::new(
                "key_refresh",
                secs(self.key_refresh),
                "must be greater than zero",
            ));
        }
        let refresh = self
            .refresh
            .map(super::refresh::RefreshTokens::validate)
            .transpose()?;
        #[cfg(feature = "revocation")]
        if let Some(list) = &self.revocations
            && list.max_token_lifetime() < self.access_ttl
        {
            return Err(ConfigError::new(
                "revocation_list",
                secs(list.max_token_lifetime()),
                "its max_token_lifetime must be at least the access-token lifetime",
            ));
        }
        Ok(JwtIssuer {
            inner: Arc::new(Inner {
                issuer,
                audiences: self.audiences,
                client_id,
                algorithm: self.algorithm,
                access_ttl: self.access_ttl,
                retired_grace: self.retired_grace,
                key_refresh: self.key_refresh,
                jwks_max_age: self.jwks_max_age,
                store_timeout: self.store_timeout,
                clock: self.clock,
                keys: self.keys,
                refresh,
                #[cfg(feature = "revocation")]
                revocations: self.revocations,
                state: RwLock::new(None),
                unknown_kid_reload: Mutex::new(None),
            }),
        })
    }
}

impl JwtIssuerBuilder {
    pub(crate) fn set_refresh(mut self, refresh: super::refresh::RefreshTokens) -> Self {
        self.refresh = Some(refresh);
        self
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
