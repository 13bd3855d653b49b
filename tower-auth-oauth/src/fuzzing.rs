//! Entry points for the fuzz targets of `fuzz/` (built only under `cfg(fuzzing)`); not an API.

use std::time::SystemTime;

use tower_auth_core::Principal;

use crate::introspection::{IntrospectionAuthenticator, IntrospectionError};

/// What `auth` decides on an introspection response body (status 200) at `now`: the
/// principal, the fixed reason the token is refused, or the error that makes the request 503.
pub fn introspection_response(
    auth: &IntrospectionAuthenticator,
    body: &[u8],
    now: SystemTime,
) -> Result<Result<Principal, &'static str>, IntrospectionError> {
    auth.judge_response(body, now)
}
