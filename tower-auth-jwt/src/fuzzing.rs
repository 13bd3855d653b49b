//! Entry points for the fuzz targets of `fuzz/` (built only under `cfg(fuzzing)`); not an API.

use serde_json::{Map, Value};
use tower_auth_core::AuthError;

use crate::Algorithm;
use crate::authenticator::{Segments, decode_segment, read};

/// A compact JWS as the verifier reads it before the signature check.
#[derive(Debug)]
pub struct Compact {
    /// The decoded segments: header JSON, claims JSON, signature bytes.
    pub segments: [Vec<u8>; 3],
    /// The header's `alg`.
    pub alg: Algorithm,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The header's `typ`.
    pub typ: Option<String>,
    /// The claims object.
    pub claims: Map<String, Value>,
}

/// Splits and reads `token` as the verifier does (three segments, header and claims rules), and
/// decodes its signature segment as the signature check does.
pub fn read_compact(token: &[u8]) -> Result<Compact, AuthError> {
    let malformed = || AuthError::invalid_token("malformed token");
    let segments = Segments::split(token).ok_or_else(malformed)?;
    let (header, _, claims) = read(segments)?;
    Ok(Compact {
        segments: [
            decode_segment(segments.header())?,
            decode_segment(segments.payload())?,
            decode_segment(segments.signature())?,
        ],
        alg: header.alg,
        kid: header.kid.map(Into::into),
        typ: header.typ.map(Into::into),
        claims,
    })
}

/// A JOSE header or claims set read as a JSON object without duplicate member names.
pub fn json_object(json: &[u8]) -> Option<Map<String, Value>> {
    crate::json::object(json)
}

/// The `Cache-Control: max-age` a JWKS response sets its refresh by.
#[cfg(feature = "remote")]
pub fn max_age(headers: &http::HeaderMap) -> Option<std::time::Duration> {
    crate::remote::engine::max_age(headers)
}

/// The two metadata URLs discovery tries for `issuer`, with plain http allowed.
#[cfg(feature = "remote")]
pub fn metadata_urls(issuer: &str) -> Option<[http::Uri; 2]> {
    let client = tower_auth_core::client::HttpClient::builder()
        .insecure_allow_http(true)
        .build()
        .ok()?;
    crate::remote::discovery::metadata_urls(&client, issuer).ok()
}
