//! OpenID Connect ID token validation (Core section 3.1.3.7) over tower-auth-jwt's keys.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use tower_auth_jwt::{Algorithm, KeyLookup, KeySource};

use super::error::LoginError;

/// The largest ID token looked at.
const MAX_ID_TOKEN_BYTES: usize = 16 * 1024;

pub(crate) struct Rules<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) algorithms: &'a [Algorithm],
    pub(crate) leeway: Duration,
    pub(crate) max_age: Duration,
    pub(crate) now: SystemTime,
    pub(crate) nonce: &'a str,
}

fn invalid(why: &'static str) -> LoginError {
    LoginError::InvalidIdToken(why)
}

fn decode_json(segment: &str, what: &'static str) -> Result<Map<String, Value>, LoginError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| invalid(what))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(invalid(what)),
    }
}

fn seconds(claims: &Map<String, Value>, name: &str) -> Option<SystemTime> {
    let v = claims.get(name)?.as_f64()?;
    if !v.is_finite() || !(0.0..=1e12).contains(&v) {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_secs_f64(v))
}

/// Checks the ID token's signature with `keys` and its claims with `rules`; returns its claims.
pub(crate) async fn validate(
    token: &str,
    keys: &dyn KeySource,
    rules: &Rules<'_>,
) -> Result<Map<String, Value>, LoginError> {
    if token.len() > MAX_ID_TOKEN_BYTES {
        return Err(invalid("too large"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not a compact JWS"));
    };
    let header = decode_json(h, "malformed header")?;
    if header.contains_key("crit") {
        return Err(invalid("unsupported critical header"));
    }
    let alg: Algorithm = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| invalid("unsupported algorithm"))?;
    if !rules.algorithms.contains(&alg) {
        return Err(invalid("algorithm not allowed"));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(invalid("malformed header")),
    };
    let set = match keys.lookup(kid) {
        KeyLookup::Ready(set) => set,
        KeyLookup::Pending(fut) => fut.await.map_err(LoginError::KeysUnavailable)?,
        KeyLookup::Unavailable(e) => return Err(LoginError::KeysUnavailable(e)),
        _ => return Err(invalid("no key")),
    };
    let signing_input = &token[..h.len() + 1 + p.len()];
    if !set
        .candidates(kid, alg)
        .any(|k| k.verify_signature(alg, signing_input.as_bytes(), sig))
    {
        return Err(invalid("bad signature"));
    }

    let claims = decode_json(p, "malformed claims")?;
    if claims.get("iss").and_then(Value::as_str) != Some(rules.issuer) {
        return Err(invalid("wrong issuer"));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Err(invalid("no audience")),
    };
    if !audiences.contains(&rules.client_id) {
        return Err(invalid("wrong audience"));
    }
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == rules.client_id => {}
        Some(_) => return Err(invalid("wrong authorized party")),
        // With several audiences, OpenID Connect says the `azp` should say who the token is
        // for: required here, so a token minted for another client that also lists us is
        // refused.
        None if audiences.len() > 1 => return Err(invalid("wrong authorized party")),
        None => {}
    }
    // Every sum is checked: one that overflows makes the token invalid, never valid.
    let exp = seconds(&claims, "exp").ok_or_else(|| invalid("no expiry"))?;
    let latest = rules.now.checked_add(rules.leeway);
    match exp.checked_add(rules.leeway) {
        Some(until) if rules.now <= until => {}
        _ => return Err(invalid("expired")),
    }
    let iat = seconds(&claims, "iat").ok_or_else(|| invalid("no issue time"))?;
    match latest {
        Some(latest) if iat <= latest => {}
        _ => return Err(invalid("issued in the future")),
    }
    match iat
        .checked_add(rules.max_age)
        .and_then(|t| t.checked_add(rules.leeway))
    {
        Some(oldest) if oldest >= rules.now => {}
        _ => return Err(invalid("issued too long ago")),
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf
            .as_f64()
            .map(|_| seconds(&claims, "nbf"))
            .ok_or_else(|| invalid("malformed not-before"))?
            .ok_or_else(|| invalid("malformed not-before"))?;
        match latest {
            Some(latest) if nbf <= latest => {}
            _ => return Err(invalid("not yet valid")),
        }
    }
    match claims.get("nonce").and_then(Value::as_str) {
        Some(n) if bool::from(n.as_bytes().ct_eq(rules.nonce.as_bytes())) => {}
        _ => return Err(LoginError::NonceMismatch),
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(s) if !s.is_empty() => {}
        _ => return Err(invalid("no subject")),
    }
    Ok(claims)
}
