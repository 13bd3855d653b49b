//! RFC 7662 introspection responses, as the resource server judges them.
//!
//! Input: the response body of a 200 answer.
//!
//! Property: a token the authenticator accepts is active (`true`, not a string), is not a
//! refresh token, has not expired, names the configured issuer and one of the configured
//! audiences, and its principal's subject is `sub`, else `client_id`.
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tower_auth_oauth::fuzzing::introspection_response;
use tower_auth_oauth::introspection::{IntrospectionAuthenticator, IntrospectionClaims};

const ISSUER: &str = "https://as.example";
const AUDIENCE: &str = "https://api.example";
const NOW: u64 = 1_700_000_000;

static AUTH: LazyLock<IntrospectionAuthenticator> = LazyLock::new(|| {
    IntrospectionAuthenticator::builder("https://as.example/introspect")
        .client_id("rs")
        .client_secret("secret")
        .issuer(ISSUER)
        .audiences([AUDIENCE])
        .build()
        .expect("valid configuration")
});

fuzz_target!(|body: &[u8]| {
    let now: SystemTime = UNIX_EPOCH + Duration::from_secs(NOW);
    let Ok(Ok(principal)) = introspection_response(&AUTH, body, now) else {
        return;
    };
    let doc: Map<String, Value> = serde_json::from_slice(body).expect("accepted: an object");
    assert_eq!(doc["active"], Value::Bool(true));
    if let Some(t) = doc.get("token_type").and_then(Value::as_str) {
        assert!(!t.eq_ignore_ascii_case("refresh_token"));
    }
    if let Some(exp) = doc.get("exp") {
        assert!(exp.as_u64().expect("exp is a whole number") > NOW);
    }
    assert_eq!(doc["iss"], ISSUER);
    match &doc["aud"] {
        Value::String(a) => assert_eq!(a, AUDIENCE),
        Value::Array(list) => assert!(list.iter().any(|a| a == AUDIENCE)),
        other => panic!("aud {other}"),
    }
    let subject = doc
        .get("sub")
        .and_then(Value::as_str)
        .or_else(|| doc.get("client_id").and_then(Value::as_str));
    assert_eq!(Some(principal.subject()), subject);
    let claims = principal
        .extension::<IntrospectionClaims>()
        .expect("the response is attached");
    assert_eq!(claims.as_map(), &doc);
});
