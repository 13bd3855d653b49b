//! JWK and JWKS documents: key loading and validation (RSA size, EC points on the curve,
//! small-order Ed25519 keys, `use`, `key_ops`, `alg`), PEM keys, and the `Cache-Control`
//! header that sets a JWKS refresh.
//!
//! Input: the first byte picks what the rest is read as: a JWKS document, a JWK, a PEM key, or
//! `Cache-Control` values (one per line).
//!
//! Properties: a key set skips a bad key and keeps the rest (every published key is kept or
//! skipped, and kept in the set exactly when it is usable alone and its `kid` is not shared; a
//! known good key added to the document stays); a document the strict reader accepts keeps
//! every key; a loaded key fits its own default algorithm.
#![no_main]

use std::collections::HashMap;

use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tower_auth_jwt::fuzzing::max_age;
use tower_auth_jwt::{KeySet, VerifyingKey};

const ANCHOR_KID: &str = "fuzz-anchor-key";

/// The EC P-256 key of RFC 7515 appendix A.3. (The EC key printed in RFC 7517 appendix A.1
/// is not a point of P-256, and is refused: it is one of the seeds.)
fn anchor() -> Value {
    json!({"kty": "EC", "crv": "P-256", "kid": ANCHOR_KID,
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
}

fn lenient(doc: &str) -> Option<(KeySet, usize)> {
    KeySet::from_jwks_skipping_invalid(doc)
        .ok()
        .map(|(set, skipped)| (set, skipped.len()))
}

fn jwks(doc: &str) {
    let Some((set, skipped)) = lenient(doc) else {
        return;
    };
    let value: Value = serde_json::from_str(doc).expect("a JWKS the parser read is JSON");
    let keys = value["keys"].as_array().expect("a JWKS has a keys array");
    assert_eq!(set.len() + skipped, keys.len());
    // Each key alone: usable or not, independently of its neighbours.
    let mut usable_kids: HashMap<Option<String>, usize> = HashMap::new();
    let mut usable = 0;
    for key in keys {
        let alone = json!({ "keys": [key] }).to_string();
        let (one, _) = lenient(&alone).expect("a one-key JWKS is a JWKS");
        if let Some(k) = one.iter().next() {
            usable += 1;
            *usable_kids.entry(k.kid().map(str::to_owned)).or_default() += 1;
        }
    }
    let shared: usize = usable_kids
        .iter()
        .filter(|(kid, n)| kid.is_some() && **n > 1)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(set.len(), usable - shared, "{doc}");
    for k in set.iter() {
        if let Some(kid) = k.kid() {
            assert_eq!(usable_kids[&Some(kid.to_owned())], 1);
        }
    }
    // A good key added to the document is kept, unless its kid is taken.
    let mut with_anchor = value.clone();
    with_anchor["keys"]
        .as_array_mut()
        .expect("keys is an array")
        .push(anchor());
    let (set2, _) = lenient(&with_anchor.to_string()).expect("still a JWKS");
    let kid_taken = usable_kids.contains_key(&Some(ANCHOR_KID.to_owned()));
    assert_eq!(set2.get(ANCHOR_KID).is_some(), !kid_taken);
    if !kid_taken {
        assert_eq!(set2.len(), set.len() + 1);
    }
    if let Ok(strict) = KeySet::from_jwks(doc) {
        assert_eq!(strict.len(), keys.len());
    }
}

fn jwk(json: &str) {
    if let Ok(k) = VerifyingKey::from_jwk(json) {
        assert!(k.fits(k.default_algorithm()), "{k:?}");
    }
}

fn pem(data: &[u8]) {
    if let Ok(k) = VerifyingKey::from_pem(data) {
        assert!(k.fits(k.default_algorithm()), "{k:?}");
        assert!(k.kid().is_none());
    }
}

fn cache_control(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(CACHE_CONTROL, v);
        }
    }
    let _ = max_age(&headers);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let text = std::str::from_utf8(data);
    match (mode % 4, text) {
        (0, Ok(doc)) => jwks(doc),
        (1, Ok(json)) => jwk(json),
        (2, _) => pem(data),
        (3, _) => cache_control(data),
        _ => {}
    }
});
