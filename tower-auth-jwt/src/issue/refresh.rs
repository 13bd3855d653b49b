//! Refresh tokens: opaque, stored hashed, rotated on every use, families revoked on reuse.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::keys::random_bytes;
use super::{
    AccessToken, IssueError, IssueErrorKind, JwtIssuer, JwtIssuerBuilder, RefreshFamily,
    RefreshTokenHash, RefreshTokenRecord, RefreshTokenStore, TokenRequest,
};
use crate::ConfigError;

/// Default absolute lifetime of a refresh-token family (one login): 30 days.
pub const DEFAULT_FAMILY_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default idle timeout: a refresh token unused for this long (7 days) is refused.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest reuse interval accepted.
pub const MAX_REUSE_INTERVAL: Duration = Duration::from_secs(60);
/// The longest refresh token accepted by [`JwtIssuer::refresh`] and [`JwtIssuer::logout`]
/// before hashing (ours are 43 characters).
const MAX_TOKEN_LEN: usize = 512;

/// Refresh-token settings for [`JwtIssuerBuilder::refresh_tokens`]: the store and the
/// lifetimes.
///
/// ```
/// use std::time::Duration;
/// use tower_auth_jwt::issue::{JwtIssuer, MemoryStore, RefreshTokens};
///
/// let store = MemoryStore::new();
/// let issuer = JwtIssuer::builder(store.clone())
///     .issuer("https://app.example")
///     .audience("app-api")
///     .client_id("app-web")
///     .refresh_tokens(
///         RefreshTokens::new(store)
///             .family_lifetime(Duration::from_secs(14 * 24 * 3600))
///             .idle_timeout(Duration::from_secs(3 * 24 * 3600))
///             .reuse_interval(Duration::from_secs(2)),
///     )
///     .build()
///     .unwrap();
/// # let _ = issuer;
/// ```
#[must_use]
pub struct RefreshTokens {
    pub(crate) store: Arc<dyn RefreshTokenStore>,
    family_lifetime: Duration,
    idle_timeout: Duration,
    reuse_interval: Duration,
}

impl fmt::Debug for RefreshTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokens")
            .field("family_lifetime", &self.family_lifetime)
            .field("idle_timeout", &self.idle_timeout)
            .field("reuse_interval", &self.reuse_interval)
            .finish_non_exhaustive()
    }
}

impl RefreshTokens {
    /// Refresh tokens kept (hashed) in `store`: families of 30 days, 7 days idle timeout,
    /// strict reuse detection.
    pub fn new(store: impl RefreshTokenStore) -> Self {
        Self {
            store: Arc::new(store),
            family_lifetime: DEFAULT_FAMILY_LIFETIME,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            reuse_interval: Duration::ZERO,
        }
    }

    /// The absolute lifetime of a family, from login: after it, the user logs in again
    /// however active they were (default 30 days).
    pub fn family_lifetime(mut self, lifetime: Duration) -> Self {
        self.family_lifetime = lifetime;
        self
    }

    /// A refresh token not used within this time of its issue is refused (default 7 days; at
    /// most the family lifetime).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Tolerates a benign race (two tabs refreshing with one token): a token presented again
    /// within this time of its rotation gets a 401 ([`IssueErrorKind::InvalidToken`]) and the
    /// family lives on. Later, or with the default of zero (strict), a consumed token revokes
    /// its family. At most 60 s: within it, the replay of a stolen, already rotated token
    /// is refused without ending the session, so keep it to a few seconds.
    pub fn reuse_interval(mut self, interval: Duration) -> Self {
        self.reuse_interval = interval;
        self
    }

    pub(crate) fn validate(self) -> Result<Self, ConfigError> {
        let secs = |d: Duration| format!("{}s", d.as_secs_f64());
        if self.family_lifetime < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "family_lifetime",
                secs(self.family_lifetime),
                "must be at least 1 s",
            ));
        }
        if self.idle_timeout < Duration::from_secs(1) || self.idle_timeout > self.family_lifetime {
            return Err(ConfigError::new(
                "idle_timeout",
                secs(self.idle_timeout),
                "must be between 1 s and the family lifetime",
            ));
        }
        if self.reuse_interval > MAX_REUSE_INTERVAL {
            return Err(ConfigError::new(
                "reuse_interval",
                secs(self.reuse_interval),
                "must be at most 60 s",
            ));
        }
        Ok(self)
    }
}

impl JwtIssuerBuilder {
    /// Enables [`JwtIssuer::login`], [`JwtIssuer::refresh`] and [`JwtIssuer::logout`].
    pub fn refresh_tokens(self, refresh: RefreshTokens) -> Self {
        self.set_refresh(refresh)
    }
}

/// An opaque refresh token: 256 random bits, base64url. Only its SHA-256 is stored. `Debug`
/// does not show it.
#[derive(Clone)]
pub struct RefreshToken {
    token: String,
    expires_at: SystemTime,
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl RefreshToken {
    /// The token, to hand to the client once (a cookie, or `refresh_token` of a token
    /// response). Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.token
    }

    /// When it is refused at the latest: the idle timeout, capped by the family's end. Use it
    /// for the cookie's lifetime.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

/// What a login or a refresh hands out: an access token and a refresh token of one session.
#[derive(Clone, Debug)]
pub struct TokenPair {
    access_token: AccessToken,
    refresh_token: RefreshToken,
    session_id: String,
}

impl TokenPair {
    /// The access token.
    pub fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    /// The refresh token.
    pub fn refresh_token(&self) -> &RefreshToken {
        &self.refresh_token
    }

    /// The session (family) id, also the access token's `sid`.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Both tokens.
    pub fn into_parts(self) -> (AccessToken, RefreshToken) {
        (self.access_token, self.refresh_token)
    }
}

impl JwtIssuer {
    fn refresh_settings(&self) -> Result<&RefreshTokens, IssueError> {
        self.inner.refresh.as_ref().ok_or_else(|| {
            IssueError::new(
                IssueErrorKind::InvalidRequest,
                "refresh tokens are not configured",
            )
        })
    }

    fn new_token(
        &self,
        settings: &RefreshTokens,
        family_id: &str,
        family_end: SystemTime,
        now: SystemTime,
    ) -> Result<(RefreshToken, RefreshTokenRecord), IssueError> {
        let token = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
        let expires_at = (now + settings.idle_timeout).min(family_end);
        let record = RefreshTokenRecord::new(
            RefreshTokenHash::of(&token),
            family_id.to_owned(),
            now,
            expires_at,
            None,
        );
        Ok((RefreshToken { token, expires_at }, record))
    }

    /// Starts a session after your app checked the user's credentials: a new refresh-token
    /// family, its first refresh token, and an access token whose `sid` is the family id.
    pub async fn login(&self, request: &TokenRequest) -> Result<TokenPair, IssueError> {
        let settings = self.refresh_settings()?;
        let now = self.inner.clock.now();
        let family_id = URL_SAFE_NO_PAD.encode(random_bytes::<16>()?);
        let access_token = self.issue_with_session(request, Some(&family_id)).await?;
        // A DPoP binding is kept with the session's claims, as the `cnf` the refreshed
        // access tokens carry (a request cannot set `cnf` itself: it is a registered claim).
        let mut claims = request.claims.clone();
        if let Some(jkt) = &request.jkt {
            claims.insert("cnf".into(), serde_json::json!({ "jkt": jkt }));
        }
        let family = RefreshFamily::new(
            family_id.clone(),
            request.subject.clone(),
            request
                .client_id
                .clone()
                .unwrap_or_else(|| self.inner.client_id.clone()),
            request.scope_string(),
            Value::Object(claims),
            now,
            now + settings.family_lifetime,
            None,
        );
        let (refresh_token, record) =
            self.new_token(settings, &family_id, family.expires_at, now)?;
        self.call(settings.store.create_family(&family, &record))
            .await?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            session_id: family_id,
        })
    }

    /// Exchanges a refresh token for a new access token and a new refresh token; the
    /// presented one is consumed.
    ///
    /// Refused with [`IssueErrorKind::InvalidToken`] (answer 401): unknown, expired (idle or
    /// absolute), of a revoked family, or (with a reuse interval) rotated moments ago. Refused
    /// with [`IssueErrorKind::TokenReused`] (401 as well): the token had already been
    /// consumed, so it was stolen or replayed, and the whole family is now revoked (RFC 9700
    /// section 4.14.2): the newest token of the family stops working too. Of two concurrent
    /// refreshes with one token, exactly one succeeds.
    ///
    /// A session bound to a DPoP key (logged in with [`TokenRequest::dpop_jkt`]) is refused
    /// here with [`IssueErrorKind::InvalidDpopProof`]: use [`refresh_dpop`](Self::refresh_dpop).
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, IssueError> {
        self.refresh_dpop(refresh_token, None).await
    }

    /// [`refresh`](Self::refresh) for a request that may carry a DPoP proof, with the
    /// thumbprint of its key (from
    /// [`DpopAuthenticator::check_token_request`](crate::dpop::DpopAuthenticator::check_token_request)).
    ///
    /// A session bound to a key refreshes only with a proof by that key: otherwise
    /// [`IssueErrorKind::InvalidDpopProof`], and the refresh token is neither consumed nor
    /// its family revoked (whoever lacks the key cannot end the session by replaying it). Its
    /// new tokens are bound to the same key. A session that started unbound stays unbound,
    /// proof or not.
    pub async fn refresh_dpop(
        &self,
        refresh_token: &str,
        proof_jkt: Option<&str>,
    ) -> Result<TokenPair, IssueError> {
        let mut sid = None;
        let result = self.refresh_inner(refresh_token, proof_jkt, &mut sid).await;
        match &result {
            Ok(pair) => super::telemetry::refreshed(pair.session_id()),
            Err(e) => super::telemetry::refresh_refused(e, sid.as_deref()),
        }
        result
    }

    async fn refresh_inner(
        &self,
        refresh_token: &str,
        proof_jkt: Option<&str>,
        sid: &mut Option<String>,
    ) -> Result<TokenPair, IssueError> {
        let settings = self.refresh_settings()?;
        if refresh_token.is_empty() || refresh_token.len() > MAX_TOKEN_LEN {
            return Err(invalid("unknown refresh token"));
        }
        let hash = RefreshTokenHash::of(refresh_token);
        let now = self.inner.clock.now();
        let Some((record, family)) = self.call(settings.store.find(&hash)).await? else {
            return Err(invalid("unknown refresh token"));
        };
        *sid = Some(family.id.clone());
        if family.revoked_at.is_some() {
            return Err(invalid("refresh token revoked"));
        }
        // Before anything is consumed or revoked: without the key, nothing happens.
        let request = family_request(&family);
        if let Some(bound) = &request.jkt
            && proof_jkt != Some(bound.as_str())
        {
            return Err(IssueError::new(
                IssueErrorKind::InvalidDpopProof,
                "refresh token bound to a dpop key; proof by that key required",
            ));
        }
        if let Some(consumed_at) = record.consumed_at {
            return Err(self.reused(settings, &family, consumed_at, now).await);
        }
        if now >= record.expires_at || now >= family.expires_at {
            return Err(invalid("refresh token expired"));
        }
        // Sign first: once the old token is consumed, the new pair must reach the client.
        let access_token = self.issue_with_session(&request, Some(&family.id)).await?;
        let (refresh_token, next) = self.new_token(settings, &family.id, family.expires_at, now)?;
        if !self.call(settings.store.consume(&hash, now, &next)).await? {
            // A concurrent refresh consumed it first, or the family was revoked meanwhile.
            return Err(match self.call(settings.store.find(&hash)).await? {
                Some((r, f)) if f.revoked_at.is_none() => match r.consumed_at {
                    Some(at) => self.reused(settings, &f, at, now).await,
                    None => invalid("refresh token revoked"),
                },
                _ => invalid("refresh token revoked"),
            });
        }
        Ok(TokenPair {
            access_token,
            refresh_token,
            session_id: family.id,
        })
    }

    /// A consumed token came back: within the reuse interval a plain refusal, else the
    /// family ends.
    async fn reused(
        &self,
        settings: &RefreshTokens,
        family: &RefreshFamily,
        consumed_at: SystemTime,
        now: SystemTime,
    ) -> IssueError {
        if !settings.reuse_interval.is_zero() && now < consumed_at + settings.reuse_interval {
            return invalid("refresh token already rotated");
        }
        match self
            .call(settings.store.revoke_family(&family.id, now))
            .await
        {
            Ok(_) => IssueError::new(
                IssueErrorKind::TokenReused,
                "refresh token reused; session revoked",
            ),
            Err(e) => e,
        }
    }

    /// Ends the session of this refresh token: its family is revoked, so neither it nor any
    /// other token of the family refreshes again. `false` when the token is unknown (nothing
    /// to do; clear the cookies anyway). Access tokens already issued stay valid until they
    /// expire (short-lived by design; a revocation list ends them sooner).
    pub async fn logout(&self, refresh_token: &str) -> Result<bool, IssueError> {
        let settings = self.refresh_settings()?;
        if refresh_token.is_empty() || refresh_token.len() > MAX_TOKEN_LEN {
            return Ok(false);
        }
        let hash = RefreshTokenHash::of(refresh_token);
        let Some((_, family)) = self.call(settings.store.find(&hash)).await? else {
            return Ok(false);
        };
        let revoked = self
            .call(
                settings
                    .store
                    .revoke_family(&family.id, self.inner.clock.now()),
            )
            .await?;
        super::telemetry::session_revoked(&family.id);
        Ok(revoked)
    }

    /// Revokes a session by id (the `sid` claim), for an administrator. `false` when there
    /// is no such session. Its access tokens live until their `exp`; to end every session of
    /// a user and their access tokens at once, see
    /// [`logout_everywhere`](Self::logout_everywhere).
    pub async fn revoke_session(&self, session_id: &str) -> Result<bool, IssueError> {
        let settings = self.refresh_settings()?;
        self.call(
            settings
                .store
                .revoke_family(session_id, self.inner.clock.now()),
        )
        .await
    }

    /// Deletes the sessions that ended (expired, or revoked) more than `keep` ago, with their
    /// tokens; returns how many. Run it now and then. Keeping revoked families a while lets a
    /// late replay of their tokens be recognised as reuse; after deletion such a token is
    /// simply unknown, and refused all the same.
    pub async fn purge_ended_sessions(&self, keep: Duration) -> Result<u64, IssueError> {
        let settings = self.refresh_settings()?;
        let before = self
            .inner
            .clock
            .now()
            .checked_sub(keep)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        self.call(settings.store.delete_families_ended_before(before))
            .await
    }
}

fn invalid(message: &'static str) -> IssueError {
    IssueError::new(IssueErrorKind::InvalidToken, message)
}

fn family_request(family: &RefreshFamily) -> TokenRequest {
    let mut request = TokenRequest::new(family.subject.clone())
        .scopes(family.scope.split(' ').filter(|s| !s.is_empty()))
        .client_id(family.client_id.clone());
    if let Value::Object(claims) = &family.claims {
        request.claims = claims.clone();
        // The session's DPoP binding, stored as the claim its access tokens carry. A `cnf`
        // without a readable `jkt` stays bound, to a key no proof matches: fail closed.
        if let Some(cnf) = request.claims.remove("cnf") {
            request.jkt = Some(
                cnf.get("jkt")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    request
}
