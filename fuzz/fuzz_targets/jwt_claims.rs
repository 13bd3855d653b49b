//! The header and claims rules of tower-auth-jwt, behind a valid signature.
//!
//! Input: the JOSE header JSON, a newline, the claims JSON. The target signs them with the
//! issuer's HMAC key (HS256, whatever the header says), so every rule after the signature check
//! is reached.
//!
//! Property: a token the verifier accepts meets every rule, checked here independently: a JSON
//! object header with `alg` HS256, no `crit`, a `typ` that names no other kind of JWT; claims
//! with the configured `iss`, our audience, a number `exp` neither past nor more than the
//! maximum lifetime ahead (with leeway), `nbf` and `iat` not in the future, no `cnf`, and a
//! subject that is `sub` (else `client_id`, else `azp`).
#![no_main]

use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower_auth_core::clock::ManualClock;
use tower_auth_jwt::fuzzing::json_object;
use tower_auth_jwt::{DEFAULT_LEEWAY, DEFAULT_MAX_LIFETIME, JwtAuthenticator, TrustedIssuer};

const SECRET: [u8; 32] = [7; 32];
const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "api";
const NOW: u64 = 1_700_000_000;

static VERIFIER: LazyLock<JwtAuthenticator> = LazyLock::new(|| {
    JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISSUER)
                .audience(AUDIENCE)
                .hmac_secret(SECRET),
        )
        .clock(ManualClock::new(UNIX_EPOCH + Duration::from_secs(NOW)))
        .build()
        .expect("valid configuration")
});

fn sign(header: &[u8], claims: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&SECRET).expect("any key size");
    mac.update(input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{input}.{sig}")
}

/// `typ` names another kind of JWT: `*+jwt` but `at+jwt`, with or without `application/`.
fn other_jwt(typ: &str) -> bool {
    let t = typ.to_ascii_lowercase();
    let t = t.strip_prefix("application/").unwrap_or(&t);
    t.ends_with("+jwt") && t != "at+jwt"
}

fn seconds(v: Option<&Value>) -> Option<f64> {
    v.map(|v| {
        v.as_f64()
            .expect("a time claim of an accepted token is a number")
    })
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (header, claims) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let token = sign(header, claims);
    let mut fut = VERIFIER.verify(&token);
    let principal = match std::pin::Pin::new(&mut fut).poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(Ok(p)) => p,
        Poll::Ready(Err(_)) => return,
        Poll::Pending => panic!("static keys never fetch"),
    };
    let h = json_object(header).expect("accepted: the header is an object without duplicates");
    assert_eq!(h["alg"], "HS256");
    assert!(!h.contains_key("crit"));
    if let Some(typ) = h.get("typ") {
        assert!(!other_jwt(typ.as_str().expect("typ is a string")), "{typ}");
    }
    let c = json_object(claims).expect("accepted: the claims are an object without duplicates");
    assert_eq!(c["iss"], ISSUER);
    match &c["aud"] {
        Value::String(a) => assert_eq!(a, AUDIENCE),
        Value::Array(list) => {
            assert!(list.iter().all(Value::is_string));
            assert!(list.iter().any(|a| a == AUDIENCE));
        }
        other => panic!("aud {other}"),
    }
    assert!(!c.contains_key("cnf"));
    let (now, leeway) = (NOW as f64, DEFAULT_LEEWAY.as_secs() as f64);
    let exp = seconds(c.get("exp")).expect("exp is required");
    assert!(exp >= now - leeway - 1.0, "expired: {exp}");
    assert!(exp <= now + (DEFAULT_MAX_LIFETIME + DEFAULT_LEEWAY).as_secs() as f64 + 1.0);
    for name in ["nbf", "iat"] {
        if let Some(t) = seconds(c.get(name)) {
            assert!(t <= now + leeway + 1.0, "{name} in the future: {t}");
        }
    }
    let subject = ["sub", "client_id", "azp"]
        .iter()
        .find_map(|n| c.get(*n).and_then(Value::as_str));
    assert_eq!(Some(principal.subject()), subject);
    assert_eq!(principal.issuer(), Some(ISSUER));
});
