//! Revoking access tokens from the issuer: one by `jti`, or every token and session of a
//! subject ("log out everywhere"), through a [`RevocationList`].

use std::time::SystemTime;

use super::{IssueError, IssueErrorKind, JwtIssuer, JwtIssuerBuilder};
use crate::revocation::RevocationList;
use crate::store::{StoreError, StoreErrorKind};

impl JwtIssuerBuilder {
    /// The revocation list that [`JwtIssuer::revoke_access_token`] and
    /// [`JwtIssuer::logout_everywhere`] write to (the same list, or one on the same store,
    /// as the verifiers'). Its [`max_token_lifetime`](crate::revocation::RevocationListBuilder::max_token_lifetime)
    /// must be at least the [access-token lifetime](Self::access_token_ttl), or a cut-off
    /// could be forgotten before the tokens it ends have expired; [`build`](Self::build)
    /// checks it.
    pub fn revocation_list(mut self, list: RevocationList) -> Self {
        self.revocations = Some(list);
        self
    }
}

impl JwtIssuer {
    fn revocation_list(&self) -> Result<&RevocationList, IssueError> {
        self.inner.revocations.as_ref().ok_or_else(|| {
            IssueError::new(
                IssueErrorKind::InvalidRequest,
                "no revocation list is configured",
            )
        })
    }

    /// Revokes one access token of this issuer by its `jti` (the admin's "revoke this
    /// token"): refused at once by every verifier asking the list, in this process at once and
    /// in others as soon as they hear of it. `expires_at` is the token's `exp`
    /// ([`AccessToken::expires_at`](super::AccessToken::expires_at)); with `None` the entry is
    /// kept for the access-token lifetime from now, which covers every token this issuer
    /// signed.
    pub async fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: Option<SystemTime>,
    ) -> Result<(), IssueError> {
        let list = self.revocation_list()?;
        let expires_at =
            expires_at.unwrap_or_else(|| self.inner.clock.now() + self.inner.access_ttl);
        list.revoke_token(&self.inner.issuer, jti, Some(expires_at))
            .await
            .map_err(list_error)?;
        super::telemetry::access_token_revoked();
        Ok(())
    }

    /// Logs `subject` out everywhere: revokes every refresh-token family (session) of the
    /// subject in the refresh-token store (when refresh tokens are configured), then cuts the
    /// subject off at the current time, so every access token issued to it until now is
    /// refused. Returns the number of sessions revoked.
    ///
    /// The cut-off is taken after the sessions are revoked: a refresh racing this call either
    /// fails (its family is revoked) or yields a token issued before the cut-off. A new login
    /// afterwards works (in the next second: `iat` has whole seconds, and the cut-off is
    /// rounded up to one). On an error, retry: both steps can be repeated.
    ///
    /// Refresh families are not keyed by issuer: when two issuers share one refresh-token
    /// store, this revokes the subject's sessions of both (the cut-off itself is this
    /// issuer's only).
    pub async fn logout_everywhere(&self, subject: &str) -> Result<u64, IssueError> {
        let list = self.revocation_list()?;
        let sessions = match &self.inner.refresh {
            Some(settings) => {
                self.call(
                    settings
                        .store
                        .revoke_subject(subject, self.inner.clock.now()),
                )
                .await?
            }
            None => 0,
        };
        let now = self.inner.clock.now();
        list.cut_off_subject(&self.inner.issuer, subject, now)
            .await
            .map_err(list_error)?;
        super::telemetry::logged_out_everywhere(sessions);
        Ok(sessions)
    }
}

/// A list refusal of its input is the caller's mistake; anything else the store's.
fn list_error(e: StoreError) -> IssueError {
    if e.kind() == StoreErrorKind::InvalidInput {
        IssueError::new(IssueErrorKind::InvalidRequest, "revocation value too long")
    } else {
        IssueError::store(e)
    }
}
