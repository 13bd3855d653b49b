//! DPoP proofs (RFC 9449) read and checked by tower-auth-jwt, as at a token endpoint.
//!
//! Input: the `DPoP` header value (any bytes) of a `POST https://server.example.com/token`,
//! checked at the `iat` of RFC 9449 section 4.1's example, whose proof is in the corpus.
//!
//! Properties: a proof is accepted or refused, never a panic; a refusal is
//! `invalid_dpop_proof` (one header, nonces off, a cache far from full); an accepted proof is a
//! `dpop+jwt` whose `htm` and `htu` name the request, and the thumbprint it gives is an RFC 7638
//! SHA-256 thumbprint (43 base64url characters).
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use tower_auth_core::AuthErrorKind;
use tower_auth_core::clock::ManualClock;
use tower_auth_jwt::dpop::DpopAuthenticator;
use tower_auth_jwt::{JwtAuthenticator, TrustedIssuer};

static DPOP: LazyLock<DpopAuthenticator> = LazyLock::new(|| {
    let jwt = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new("https://server.example.com")
                .audience("api")
                .hmac_secret([7u8; 32]),
        )
        .clock(ManualClock::new(
            UNIX_EPOCH + Duration::from_secs(1_562_262_616),
        ))
        .build()
        .expect("valid configuration");
    DpopAuthenticator::builder(jwt)
        .external_url("https://server.example.com")
        .build()
        .expect("valid configuration")
});

fn json(segment: &str) -> serde_json::Value {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .expect("an accepted segment is base64url");
    serde_json::from_slice(&bytes).expect("an accepted segment is JSON")
}

fuzz_target!(|proof: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(proof) else {
        return;
    };
    let (mut parts, ()) = Request::post("/token")
        .body(())
        .expect("a valid request")
        .into_parts();
    parts.headers.insert("dpop", value);
    match DPOP.check_token_request(&parts) {
        Ok(Some(thumbprint)) => {
            assert_eq!(thumbprint.len(), 43);
            assert!(URL_SAFE_NO_PAD.decode(&thumbprint).is_ok());
            let text = std::str::from_utf8(proof).expect("an accepted proof is ASCII");
            let mut segments = text.split('.');
            let header = json(segments.next().expect("a header"));
            let claims = json(segments.next().expect("claims"));
            assert_eq!(header["typ"], "dpop+jwt");
            assert_eq!(claims["htm"], "POST");
            assert!(claims["htu"].as_str().is_some());
        }
        Ok(None) => panic!("a dpop header was there"),
        Err(e) => assert_eq!(e.kind(), AuthErrorKind::InvalidDpopProof, "{e:?}"),
    }
});
