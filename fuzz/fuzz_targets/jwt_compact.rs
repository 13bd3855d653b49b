//! Compact JWS parsing with the header and claims rules of tower-auth-jwt.
//!
//! Input: a token (any bytes).
//!
//! Properties: a token the parser accepts re-serialises to the same segments (base64url is
//! canonical, no padding); its header and claims are JSON objects without duplicate names that
//! read back the same once re-serialised; the verifier never accepts a token the parser refuses
//! (here it has no key that could sign one, so it accepts nothing).
#![no_main]

use std::task::{Context, Poll, Waker};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use tower_auth_core::clock::ManualClock;
use tower_auth_jwt::fuzzing::{json_object, read_compact};
use tower_auth_jwt::{JwtAuthenticator, TrustedIssuer};

static VERIFIER: LazyLock<JwtAuthenticator> = LazyLock::new(|| {
    JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new("https://issuer.example")
                .audience("api")
                .hmac_secret([7u8; 32]),
        )
        .clock(ManualClock::new(
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        ))
        .build()
        .expect("valid configuration")
});

fuzz_target!(|token: &[u8]| {
    let parsed = read_compact(token);
    if let Ok(c) = &parsed {
        let encoded: Vec<String> = c
            .segments
            .iter()
            .map(|s| URL_SAFE_NO_PAD.encode(s))
            .collect();
        assert_eq!(encoded.join(".").as_bytes(), token);
        let header = json_object(&c.segments[0]).expect("the header was read as an object");
        assert_eq!(header["alg"].as_str(), Some(c.alg.as_str()));
        assert_eq!(header.get("kid").and_then(|v| v.as_str()), c.kid.as_deref());
        assert_eq!(header.get("typ").and_then(|v| v.as_str()), c.typ.as_deref());
        assert!(!header.contains_key("crit"));
        let again = serde_json::to_vec(&c.claims).expect("a JSON map serialises");
        assert_eq!(json_object(&again).as_ref(), Some(&c.claims));
    }
    if let Ok(token) = std::str::from_utf8(token) {
        let mut fut = VERIFIER.verify(token);
        let mut cx = Context::from_waker(Waker::noop());
        match std::pin::Pin::new(&mut fut).poll(&mut cx) {
            Poll::Ready(Ok(p)) => panic!("accepted without a signature by the key: {p:?}"),
            Poll::Ready(Err(_)) => {}
            Poll::Pending => panic!("static keys never fetch"),
        }
    }
});
