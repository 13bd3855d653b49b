//! Public test vectors: RFC 7515 Appendix A (A.1 HS256, A.2 RS256, A.3 ES256) and RFC 7520
//! sections 4.1 (RS256) and 4.4 (HS256), committed under `tests/data/`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::data_str;
use serde_json::Value;
use tower_auth_core::clock::ManualClock;
use tower_auth_core::{AuthErrorKind, Scheme};
use tower_auth_jwt::{Algorithm, ClaimPath, Claims, JwtAuthenticator, TrustedIssuer, VerifyingKey};

/// The `exp` of the RFC 7515 Appendix A payload (2011-03-22T18:43:00Z).
const A_EXP: u64 = 1_300_819_380;

struct Vector {
    jws: String,
    jwk: String,
    alg: Algorithm,
}

fn vector(name: &str) -> Vector {
    let v: Value = serde_json::from_str(&data_str(name)).unwrap();
    Vector {
        jws: v["jws"].as_str().unwrap().to_owned(),
        jwk: v["jwk"].to_string(),
        alg: v["alg"].as_str().unwrap().parse().unwrap(),
    }
}

/// The Appendix A payload has `iss: joe`, `exp`, no `aud` and no `sub`: the issuer is
/// configured to match (no audience check, the subject taken from `iss`).
fn rfc7515_authenticator(v: &Vector, clock: ManualClock) -> JwtAuthenticator {
    JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new("joe")
                .jwk(v.jwk.clone())
                .algorithms([v.alg])
                .insecure_skip_audience()
                .subject_claim(ClaimPath::new("iss")),
        )
        .clock(clock)
        .build()
        .unwrap()
}

#[tokio::test]
async fn rfc7515_appendix_a_vectors_verify() {
    for (file, alg) in [
        ("rfc7515_a1_hs256.json", Algorithm::HS256),
        ("rfc7515_a2_rs256.json", Algorithm::RS256),
        ("rfc7515_a3_es256.json", Algorithm::ES256),
    ] {
        let v = vector(file);
        assert_eq!(v.alg, alg);
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(A_EXP - 3600));
        let auth = rfc7515_authenticator(&v, clock.clone());

        let principal = auth
            .verify(&v.jws)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(principal.scheme(), Scheme::Jwt);
        assert_eq!(principal.issuer(), Some("joe"));
        assert_eq!(
            principal.expires_at(),
            Some(UNIX_EPOCH + Duration::from_secs(A_EXP))
        );
        let claims = principal.extension::<Claims>().unwrap();
        assert_eq!(
            claims.get("http://example.com/is_root"),
            Some(&Value::Bool(true))
        );

        // After exp + leeway the same vector is expired.
        clock.set(UNIX_EPOCH + Duration::from_secs(A_EXP + 61));
        let err = auth.verify(&v.jws).await.unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::InvalidToken);
        assert_eq!(err.description(), "token expired");

        // One flipped signature character is a bad signature.
        clock.set(UNIX_EPOCH + Duration::from_secs(A_EXP - 3600));
        let mut bad = v.jws.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == 'A' { 'Q' } else { 'A' });
        assert_eq!(
            auth.verify(&bad).await.unwrap_err().description(),
            "invalid signature",
            "{file}"
        );
    }
}

/// RFC 7520's examples sign a plain-text quote, not a claims set: the signatures verify with
/// the RFC's keys, and the authenticator still refuses them as tokens.
#[tokio::test]
async fn rfc7520_signature_examples() {
    for (file, kid) in [
        ("rfc7520_4_1_rs256.json", "bilbo.baggins@hobbiton.example"),
        (
            "rfc7520_4_4_hs256.json",
            "018c0ae5-4d9b-471b-bfd6-eef314bc7037",
        ),
    ] {
        let v = vector(file);
        let key = VerifyingKey::from_jwk(&v.jwk).unwrap();
        assert_eq!(key.kid(), Some(kid));
        let (input, sig) = v.jws.rsplit_once('.').unwrap();
        assert!(key.verify_signature(v.alg, input.as_bytes(), sig), "{file}");

        // The payload is the quote from "The Fellowship of the Ring".
        let payload = input.split('.').nth(1).unwrap();
        let text =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .unwrap();
        assert!(
            String::from_utf8(text)
                .unwrap()
                .starts_with("It\u{2019}s a dangerous business, Frodo")
        );

        // Tampering with the signing input breaks it; so does another algorithm.
        let tampered = input.replacen("SXTigJlz", "SXTigJly", 1);
        assert!(!key.verify_signature(v.alg, tampered.as_bytes(), sig));
        let other = if v.alg == Algorithm::RS256 {
            Algorithm::RS512
        } else {
            Algorithm::HS512
        };
        assert!(!key.verify_signature(other, input.as_bytes(), sig));

        // Through the authenticator: not a JWT.
        let auth = JwtAuthenticator::builder()
            .issuer(
                TrustedIssuer::new("hobbiton")
                    .jwk(v.jwk.clone())
                    .insecure_skip_audience(),
            )
            .build()
            .unwrap();
        assert_eq!(
            auth.verify(&v.jws).await.unwrap_err().description(),
            "claims are not a JSON object"
        );
    }
}

/// The RFC 7520 RSA key as part of a JWKS document next to the RFC 7515 key: the `kid` picks
/// the key.
#[tokio::test]
async fn jwks_document_with_rfc_keys() {
    let a2 = vector("rfc7515_a2_rs256.json");
    let b = vector("rfc7520_4_1_rs256.json");
    let mut a2_jwk: Value = serde_json::from_str(&a2.jwk).unwrap();
    a2_jwk["kid"] = "rfc7515".into();
    let jwks = format!(r#"{{"keys":[{a2_jwk},{}]}}"#, b.jwk);
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new("joe")
                .jwks(jwks)
                .insecure_skip_audience()
                .subject_claim(ClaimPath::new("iss")),
        )
        .clock(ManualClock::new(
            UNIX_EPOCH + Duration::from_secs(A_EXP - 1),
        ))
        .build()
        .unwrap();
    // A.2 has no kid: every RS256-capable key is tried, and the right one verifies.
    auth.verify(&a2.jws).await.unwrap();
}
