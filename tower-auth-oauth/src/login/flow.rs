//! The flow: starting a login, and completing it from the callback (the pending login, the code
//! exchange and the ID token).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthorizationCode, CsrfToken, EndpointNotSet, EndpointSet, PkceCodeChallenge, PkceCodeVerifier,
    Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse as _,
};
use serde_json::Value;
use tower_auth_core::client::FetchError;
use tower_auth_jwt::KeySourceError;

use super::store::{store_key, with_deadline};
use super::{ErrorCode, LoggedIn, Login, LoginError, LoginStart, PendingLogin, id_token};
use crate::token_request::SendError;

/// The token response's extra field of OpenID Connect: the ID token.
#[derive(Clone, serde::Deserialize, serde::Serialize)]
pub(super) struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdTokenField").finish_non_exhaustive()
    }
}

impl oauth2::ExtraTokenFields for IdTokenField {}

pub(super) type OidcTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;
pub(super) type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    OidcTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// `n` random bytes from the operating system's CSPRNG, base64url without padding.
pub(super) fn random_token(n: usize) -> Result<String, LoginError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|_| LoginError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

impl Login {
    /// Loads the authorization server's signing keys now, unless they are loaded: call it at
    /// startup to fail fast when the provider is unreachable and to take the first fetch off
    /// the first callback.
    pub async fn warm_up(&self) -> Result<(), LoginError> {
        match self.inner.keys.lookup(None) {
            tower_auth_jwt::KeyLookup::Pending(fut) => {
                fut.await.map(drop).map_err(LoginError::KeysUnavailable)
            }
            tower_auth_jwt::KeyLookup::Ready(_) => Ok(()),
            tower_auth_jwt::KeyLookup::Unavailable(e) => Err(LoginError::KeysUnavailable(e)),
            // A lookup result this version does not know: fail closed, as validation does.
            _ => Err(LoginError::KeysUnavailable(KeySourceError::new(
                "unknown key lookup result",
            ))),
        }
    }

    /// Starts a login: keeps a new pending login in the store and returns where to send the
    /// browser, with the login cookie to set.
    pub async fn start(&self) -> Result<LoginStart, LoginError> {
        let i = &self.inner;
        let id = random_token(32)?;
        let state = random_token(32)?;
        let nonce = random_token(32)?;
        let verifier = PkceCodeVerifier::new(random_token(32)?);
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        let mut request = i
            .oauth
            .authorize_url(|| CsrfToken::new(state.clone()))
            .set_pkce_challenge(challenge)
            .add_extra_param("nonce", nonce.clone());
        for s in &i.scopes {
            request = request.add_scope(Scope::new(s.clone()));
        }
        for r in &i.resources {
            request = request.add_extra_param("resource", r.clone());
        }
        for (k, v) in &i.authorize_params {
            request = request.add_extra_param(k.clone(), v.clone());
        }
        let (url, _) = request.url();
        let pending = PendingLogin {
            issuer: i.issuer.clone(),
            client_id: i.client_id.clone(),
            redirect_uri: i.redirect_uri.clone(),
            nonce,
            verifier: verifier.secret().clone(),
            // The TTL is at most an hour (checked at build time).
            expires_at: i.clock.now() + i.ttl,
        };
        let key = store_key(&id, &state);
        with_deadline(i.store_timeout, i.store.put(key, pending))
            .await
            .inspect_err(|_e| {
                #[cfg(feature = "tracing")]
                tracing::debug!(
                    target: "tower_auth::oauth",
                    error = %_e,
                    cause = std::error::Error::source(_e).map(ToString::to_string).unwrap_or_default(),
                    "login start failed"
                );
            })?;
        let set_cookie = self.cookie(&id, i.ttl);
        #[cfg(feature = "metrics")]
        metrics::counter!("tower_auth_login_starts_total").increment(1);
        #[cfg(feature = "tracing")]
        tracing::debug!(target: "tower_auth::oauth", issuer = %i.issuer, "login started");
        Ok(LoginStart {
            authorize_url: url.into(),
            set_cookie,
            id,
        })
    }

    /// Completes a login from the callback request: reads the login cookie from its headers
    /// and the parameters from its query string. See [`callback`](Self::callback).
    pub async fn callback_request(
        &self,
        parts: &http::request::Parts,
    ) -> Result<LoggedIn, LoginError> {
        let cookie = tower_auth_core::credential::cookie_value(&parts.headers, self.cookie_name())
            .map_err(|_| LoginError::MalformedCallback)?;
        self.callback(cookie, parts.uri.query().unwrap_or("")).await
    }

    /// Completes a login: `login_cookie` is the value of the login cookie (`None` when the
    /// request has none), `query` the callback's query string (`code`, `state`, `iss`, or
    /// `error`).
    ///
    /// The pending login is found by the cookie **and** the `state` together, and consumed
    /// whatever the outcome once found: a callback with a `state` that is not the login's
    /// (forged, or from another login) finds nothing and leaves the login for its genuine
    /// callback.
    pub async fn callback(
        &self,
        login_cookie: Option<&str>,
        query: &str,
    ) -> Result<LoggedIn, LoginError> {
        let result = self.complete(login_cookie, query).await;
        #[cfg(feature = "metrics")]
        metrics::counter!(
            "tower_auth_login_callbacks_total",
            "outcome" => result.as_ref().map_or_else(LoginError::outcome, |_| "success")
        )
        .increment(1);
        #[cfg(feature = "tracing")]
        match &result {
            Ok(u) => tracing::debug!(
                target: "tower_auth::oauth",
                issuer = %self.inner.issuer,
                subject = %u.subject,
                "login completed"
            ),
            Err(e) => {
                // The causes of these are the store's, the key source's or the HTTP client's
                // errors: no token, code or secret is in them.
                let cause = match e {
                    LoginError::Store(_)
                    | LoginError::KeysUnavailable(_)
                    | LoginError::TokenEndpointUnavailable(_) => {
                        std::error::Error::source(e).map(ToString::to_string)
                    }
                    _ => None,
                };
                tracing::debug!(
                    target: "tower_auth::oauth",
                    error = %e,
                    cause = cause.as_deref().unwrap_or(""),
                    "login failed"
                );
            }
        }
        result
    }

    async fn complete(
        &self,
        login_cookie: Option<&str>,
        query: &str,
    ) -> Result<LoggedIn, LoginError> {
        let i = &self.inner;
        let params = CallbackParams::parse(query)?;
        let id = login_cookie
            .filter(|c| !c.is_empty())
            .ok_or(LoginError::MissingCookie)?;
        let state = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or(LoginError::StateMismatch)?;
        let pending = with_deadline(i.store_timeout, i.store.take(&store_key(id, state)))
            .await?
            .ok_or(LoginError::UnknownLogin)?;
        // Started by another Login sharing the store and the cookie name: another provider's
        // response must not be completed here (mix-up, RFC 9700 section 4.4).
        if pending.issuer != i.issuer
            || pending.client_id != i.client_id
            || pending.redirect_uri != i.redirect_uri
        {
            return Err(LoginError::ProviderMismatch);
        }
        let now = i.clock.now();
        if now >= pending.expires_at {
            return Err(LoginError::Expired);
        }
        match &params.iss {
            Some(iss) if *iss != i.issuer => return Err(LoginError::IssuerMismatch),
            None if i.require_iss => return Err(LoginError::IssuerMismatch),
            _ => {}
        }
        if let Some(error) = &params.error {
            return Err(match error.as_str() {
                "access_denied" => LoginError::AccessDenied,
                other => LoginError::AuthorizationFailed(ErrorCode::parse(other)),
            });
        }
        let code = params.code.ok_or(LoginError::MalformedCallback)?;
        let tokens = self.exchange(code, pending.verifier).await?;
        let id_token = tokens
            .extra_fields()
            .id_token
            .clone()
            .ok_or(LoginError::InvalidIdToken("missing"))?;
        let rules = id_token::Rules {
            issuer: &i.issuer,
            client_id: &i.client_id,
            algorithms: &i.algorithms,
            leeway: i.leeway,
            max_age: i.max_id_token_age,
            now: i.clock.now(),
            nonce: &pending.nonce,
        };
        let claims = id_token::validate(&id_token, &*i.keys, &rules).await?;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(LoggedIn {
            subject,
            issuer: i.issuer.clone(),
            claims,
            id_token,
            access_token: tokens.access_token().secret().clone(),
            refresh_token: tokens.refresh_token().map(|t| t.secret().clone()),
            expires_in: tokens.expires_in(),
            // An empty `scope` member lists no scope (not one empty scope).
            scopes: tokens.scopes().map(|s| {
                s.iter()
                    .map(|s| s.to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }),
        })
    }

    async fn exchange(
        &self,
        code: String,
        verifier: String,
    ) -> Result<OidcTokenResponse, LoginError> {
        let i = &self.inner;
        let mut req = i
            .oauth
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier));
        for r in &i.resources {
            req = req.add_extra_param("resource", r.clone());
        }
        let http = i.http.clone();
        let send = move |r: oauth2::HttpRequest| crate::token_request::send(http.clone(), r);
        req.request_async(&send).await.map_err(|e| match e {
            oauth2::RequestTokenError::ServerResponse(r) => {
                LoginError::CodeRejected(ErrorCode::parse(r.error().as_ref()))
            }
            // Unreachable, past its deadline, or a 5xx answer (whatever its body): try later.
            oauth2::RequestTokenError::Request(
                e @ (SendError::Status(_)
                | SendError::Fetch(FetchError::Timeout(_) | FetchError::Transport(_))),
            ) => LoginError::TokenEndpointUnavailable(Box::new(e)),
            // Parse errors carry the response body, which may hold tokens: keep nothing of it.
            _ => LoginError::TokenEndpointMalformed,
        })
    }
}

/// The parameters of a callback query. Each at most once.
#[derive(Default)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

impl CallbackParams {
    fn parse(query: &str) -> Result<Self, LoginError> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut p = Self::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*k {
                "code" => &mut p.code,
                "state" => &mut p.state,
                "iss" => &mut p.iss,
                "error" => &mut p.error,
                _ => continue,
            };
            if slot.replace(v.into_owned()).is_some() {
                return Err(LoginError::MalformedCallback);
            }
        }
        Ok(p)
    }
}
