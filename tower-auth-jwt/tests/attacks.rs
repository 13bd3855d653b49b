//! The attack suite: every case is a 401 `invalid_token` with the description of the defence
//! that stopped it, never a panic; accepted neighbours prove the defence is not over-broad.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::Duration;

use common::*;
use jsonwebtoken::Algorithm as J;
use serde_json::{Value, json};
use tower_auth_jwt::{
    Algorithm, Claims, JwtAuthenticator, KeyLookup, KeySet, KeySource, TrustedIssuer, VerifyingKey,
};

fn rsa_auth() -> JwtAuthenticator {
    JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .pem(data("rsa_public.pem"))
                .algorithms([Algorithm::RS256]),
        )
        .clock(clock())
        .build()
        .unwrap()
}

fn hmac_auth() -> JwtAuthenticator {
    JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .hmac_secret(HMAC_SECRET),
        )
        .clock(clock())
        .build()
        .unwrap()
}

fn es256_auth() -> JwtAuthenticator {
    JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .pem(data("ec256_public.pem")),
        )
        .clock(clock())
        .build()
        .unwrap()
}

#[tokio::test]
async fn valid_tokens_of_every_key_type_pass() {
    let cases = [
        (Signer::rs256(), "rsa_public.pem"),
        (Signer::es256(), "ec256_public.pem"),
        (Signer::es384(), "ec384_public.pem"),
        (Signer::eddsa(), "ed25519_public.pem"),
    ];
    for (signer, pem) in cases {
        let auth = JwtAuthenticator::builder()
            .issuer(TrustedIssuer::new(ISS).audience(AUD).pem(data(pem)))
            .clock(clock())
            .build()
            .unwrap();
        let p = send_token(&auth, &mint(&claims(), &signer))
            .await
            .assert_ok()
            .clone();
        assert_eq!(p.subject(), "alice");
    }
    send_token(
        &hmac_auth(),
        &mint(&claims(), &Signer::hmac(J::HS256, HMAC_SECRET)),
    )
    .await
    .assert_ok();
}

/// Every algorithm of a key type verifies with one key (an RSA key is parsed per algorithm on
/// first use), and a signature made with one algorithm never verifies as another.
#[tokio::test]
async fn every_algorithm_of_a_key_verifies_and_only_its_own_signatures() {
    let rsa = [J::RS256, J::RS384, J::RS512, J::PS256, J::PS384, J::PS512];
    let secret = [7u8; 64];
    let hmac = [J::HS256, J::HS384, J::HS512];
    let ours = |alg: J| format!("{alg:?}").parse::<Algorithm>().unwrap();
    // The same key as a JWK without `alg` (with one, the key is restricted to it).
    let mut jwk: Value = serde_json::from_str(&data_str("rsa_public.jwk.json")).unwrap();
    jwk.as_object_mut().unwrap().remove("alg");
    let issuers = [
        TrustedIssuer::new(ISS)
            .audience(AUD)
            .pem(data("rsa_public.pem")),
        TrustedIssuer::new(ISS).audience(AUD).jwk(jwk.to_string()),
    ];
    for issuer in issuers {
        let auth = JwtAuthenticator::builder()
            .issuer(issuer.algorithms(rsa.map(ours)))
            .clock(clock())
            .build()
            .unwrap();
        for alg in rsa {
            send_token(
                &auth,
                &mint(&claims(), &Signer::rsa(alg, "rsa_private.pem")),
            )
            .await
            .assert_ok();
        }
    }
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .hmac_secret(secret)
                .algorithms(hmac.map(ours)),
        )
        .clock(clock())
        .build()
        .unwrap();
    for alg in hmac {
        send_token(&auth, &mint(&claims(), &Signer::hmac(alg, &secret)))
            .await
            .assert_ok();
    }
    // A signature over the same input under another algorithm of the same key type.
    for (rsa_auth, family, signer_for) in [
        (
            JwtAuthenticator::builder()
                .issuer(
                    TrustedIssuer::new(ISS)
                        .audience(AUD)
                        .pem(data("rsa_public.pem"))
                        .algorithms(rsa.map(ours)),
                )
                .clock(clock())
                .build()
                .unwrap(),
            &rsa[..],
            Box::new(|alg| Signer::rsa(alg, "rsa_private.pem")) as Box<dyn Fn(J) -> Signer>,
        ),
        (
            auth,
            &hmac[..],
            Box::new(move |alg| Signer::hmac(alg, &secret)),
        ),
    ] {
        for &signed in family {
            for &claimed in family.iter().filter(|&&a| a != signed) {
                let header = json!({"alg": format!("{claimed:?}"), "typ": "JWT"});
                let input = format!("{}.{}", b64_json(&header), b64_json(&claims()));
                let signer = signer_for(signed);
                let sig =
                    jsonwebtoken::crypto::sign(input.as_bytes(), &signer.key, signer.alg).unwrap();
                send_token(&rsa_auth, &format!("{input}.{sig}"))
                    .await
                    .assert_invalid_token("invalid signature");
            }
        }
    }
}

#[tokio::test]
async fn alg_none_in_every_spelling_is_rejected() {
    let auth = hmac_auth();
    let valid = mint(&claims(), &Signer::hmac(J::HS256, HMAC_SECRET));
    let real_sig = valid.rsplit('.').next().unwrap();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let input = format!(
            "{}.{}",
            b64_json(&json!({"alg": alg, "typ": "JWT"})),
            b64_json(&claims())
        );
        // Without a signature: "header.payload."
        send_token(&auth, &format!("{input}."))
            .await
            .assert_invalid_token("missing signature");
        // With a signature (a real one of another token, and junk).
        send_token(&auth, &format!("{input}.{real_sig}"))
            .await
            .assert_invalid_token("unsupported algorithm");
        send_token(&auth, &format!("{input}.{}", b64("sig")))
            .await
            .assert_invalid_token("unsupported algorithm");
    }
}

/// HS256/384/512 MACs keyed with the RSA public key (PEM, DER, JWK bytes) against an RS256
/// issuer: the classic key-confusion attack.
#[tokio::test]
async fn hmac_signed_with_the_rsa_public_key_is_rejected() {
    let auth = rsa_auth();
    let secrets = [
        data("rsa_public.pem"),
        data("rsa_public.der"),
        data("rsa_public.jwk.json"),
    ];
    for secret in &secrets {
        for alg in [J::HS256, J::HS384, J::HS512] {
            let token = mint(&claims(), &Signer::hmac(alg, secret));
            send_token(&auth, &token)
                .await
                .assert_invalid_token("algorithm not allowed");
        }
    }
}

/// The same attack when the allow-list does name HMAC algorithms (keys unknown at build time,
/// as with a remote key set): the key's type still refuses an HMAC verification.
#[tokio::test]
async fn key_type_refuses_hmac_even_when_the_allow_list_has_it() {
    struct RsaOnly(std::sync::Arc<KeySet>);
    impl KeySource for RsaOnly {
        fn lookup(&self, _: Option<&str>) -> KeyLookup {
            KeyLookup::Ready(self.0.clone())
        }
    }
    let keys = KeySet::new([VerifyingKey::from_pem(data("rsa_public.pem")).unwrap()]).unwrap();
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .key_source(RsaOnly(keys.into()))
                .algorithms([
                    Algorithm::RS256,
                    Algorithm::HS256,
                    Algorithm::HS384,
                    Algorithm::HS512,
                ]),
        )
        .clock(clock())
        .build()
        .unwrap();
    for secret in [
        data("rsa_public.pem"),
        data("rsa_public.der"),
        data("rsa_public.jwk.json"),
    ] {
        for alg in [J::HS256, J::HS384, J::HS512] {
            send_token(&auth, &mint(&claims(), &Signer::hmac(alg, &secret)))
                .await
                .assert_invalid_token("no key for this token");
        }
    }
    send_token(&auth, &mint(&claims(), &Signer::rs256()))
        .await
        .assert_ok();
}

/// A JWK's `alg` restricts the key further than its type.
#[tokio::test]
async fn jwk_alg_restricts_the_key() {
    // The test JWK says "alg":"RS256"; a PS256 signature with the matching private key fails.
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .jwk(data_str("rsa_public.jwk.json"))
                .algorithms([Algorithm::RS256]),
        )
        .clock(clock())
        .build()
        .unwrap();
    send_token(&auth, &mint(&claims(), &Signer::rs256()))
        .await
        .assert_ok();
    // Allowing PS256 is refused at build time: no configured key can verify it.
    let err = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .jwk(data_str("rsa_public.jwk.json"))
                .algorithms([Algorithm::RS256, Algorithm::PS256]),
        )
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "algorithms");
    assert_eq!(err.value(), "PS256");
}

#[tokio::test]
async fn header_embedded_keys_are_ignored_and_never_fetched() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());

    // The attacker's own key pair, its public half embedded in the header every way JOSE allows.
    let attacker = Signer::rsa(J::RS256, "rsa2_private.pem");
    let attacker_jwk: Value = {
        let k = VerifyingKey::from_pem(data("rsa2_public.pem")).unwrap();
        assert_eq!(k.key_type(), tower_auth_jwt::KeyType::Rsa);
        // Any well-formed JWK will do; the point is that it is never read.
        json!({"kty": "RSA", "n": b64([0xAB; 256]), "e": "AQAB"})
    };
    let embedded = json!({
        "jwk": attacker_jwk,
        "jku": url,
        "x5u": url,
        "x5c": [base64::Engine::encode(&base64::engine::general_purpose::STANDARD, data("rsa_public.der"))],
        "kid": "attacker",
    });
    let auth = rsa_auth();
    let forged = mint_with(&claims(), &attacker, &embedded);
    send_token(&auth, &forged)
        .await
        .assert_invalid_token("invalid signature");
    // Each member alone, too.
    for member in ["jwk", "jku", "x5u", "x5c"] {
        let header = json!({ member: embedded[member].clone() });
        send_token(&auth, &mint_with(&claims(), &attacker, &header))
            .await
            .assert_invalid_token("invalid signature");
    }
    // Ignored, not rejected: the same header on a token signed by the configured key passes.
    send_token(&auth, &mint_with(&claims(), &Signer::rs256(), &embedded))
        .await
        .assert_ok();

    // Nothing connected to the jku / x5u URL.
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("a connection was made to the header URL: {other:?}"),
    }
}

#[tokio::test]
async fn all_zero_ecdsa_signatures_are_rejected() {
    let auth = es256_auth();
    let input = format!(
        "{}.{}",
        b64_json(&json!({"alg": "ES256", "typ": "JWT"})),
        b64_json(&claims())
    );
    // r = s = 0 ("psychic signatures", CVE-2022-21449), in the fixed-width JWS form and in
    // shorter and DER-looking forms.
    for sig in [
        vec![0u8; 64],
        vec![0u8; 2],
        vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00],
    ] {
        send_token(&auth, &format!("{input}.{}", b64(&sig)))
            .await
            .assert_invalid_token("invalid signature");
    }
    let auth384 = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .pem(data("ec384_public.pem")),
        )
        .clock(clock())
        .build()
        .unwrap();
    let input = format!(
        "{}.{}",
        b64_json(&json!({"alg": "ES384"})),
        b64_json(&claims())
    );
    send_token(&auth384, &format!("{input}.{}", b64([0u8; 96])))
        .await
        .assert_invalid_token("invalid signature");
}

#[tokio::test]
async fn payload_tampered_after_signing_is_rejected() {
    for (auth, signer) in [
        (rsa_auth(), Signer::rs256()),
        (hmac_auth(), Signer::hmac(J::HS256, HMAC_SECRET)),
    ] {
        let token = mint(&claims(), &signer);
        let parts: Vec<&str> = token.split('.').collect();
        let evil = with(claims(), "sub", json!("admin"));
        let tampered = format!("{}.{}.{}", parts[0], b64_json(&evil), parts[2]);
        send_token(&auth, &tampered)
            .await
            .assert_invalid_token("invalid signature");
        // Header tampering too (kid added).
        let header = b64_json(&json!({"alg": signer.alg_name(), "typ": "JWT", "kid": "x"}));
        send_token(&auth, &format!("{header}.{}.{}", parts[1], parts[2]))
            .await
            .assert_invalid_token("invalid signature");
        // And the signature itself (one bit).
        let mut sig =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[2])
                .unwrap();
        sig[0] ^= 1;
        send_token(&auth, &format!("{}.{}.{}", parts[0], parts[1], b64(&sig)))
            .await
            .assert_invalid_token("invalid signature");
    }
}

/// Flips the unused low bits of the last character of a base64url segment: a different string
/// that lenient decoders map to the same bytes.
fn with_trailing_bits(segment: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let unused_bits = match segment.len() % 4 {
        2 => 4,
        3 => 2,
        _ => return None,
    };
    let last = *segment.as_bytes().last()?;
    let idx = ALPHABET.iter().position(|&c| c == last)?;
    let flipped = ALPHABET[idx | ((1 << unused_bits) - 1)];
    if flipped == last {
        return None;
    }
    Some(format!(
        "{}{}",
        &segment[..segment.len() - 1],
        flipped as char
    ))
}

#[tokio::test]
async fn non_canonical_base64_is_rejected() {
    let auth = rsa_auth();
    // Pick claims whose three segments all have unused trailing bits and contain `-` or `_`.
    let (token, parts) = (0..400)
        .map(|i| {
            let claims = with(claims(), "pad", json!("~?".repeat(i / 4)));
            let header = json!({ "pad": "?~".repeat(1 + i % 4) });
            mint_with(&claims, &Signer::rs256(), &header)
        })
        .map(|t| {
            let p: Vec<String> = t.split('.').map(str::to_owned).collect();
            (t, p)
        })
        .find(|(_, p)| {
            p.iter().all(|s| s.len() % 4 >= 2)
                && p.iter().all(|s| s.contains('-') || s.contains('_'))
        })
        .expect("a token with suitable segments");
    send_token(&auth, &token).await.assert_ok();

    for i in 0..3 {
        let variant = |seg: String| {
            let mut p = parts.clone();
            p[i] = seg;
            p.join(".")
        };
        let expect = if i == 2 {
            "invalid signature"
        } else {
            "malformed token"
        };
        let pad = "=".repeat(4 - parts[i].len() % 4);
        let padded = variant(format!("{}{pad}", parts[i]));
        let trailing_bits = variant(with_trailing_bits(&parts[i]).unwrap());
        let std_alphabet = variant(parts[i].replace('-', "+").replace('_', "/"));
        // `=` inside an Authorization value is not token68: the header parser stops it first.
        let padded_expect = if i == 2 {
            expect
        } else {
            "malformed bearer token"
        };
        send_token(&auth, &padded)
            .await
            .assert_invalid_token(padded_expect);
        send_token(&auth, &trailing_bits)
            .await
            .assert_invalid_token(expect);
        send_token(&auth, &std_alphabet)
            .await
            .assert_invalid_token(expect);
        // Our own decoder refuses all three too (cookies do not go through the token68 check).
        for token in [&padded, &trailing_bits, &std_alphabet] {
            let err = auth.verify(token).await.unwrap_err();
            assert_eq!(err.description(), expect, "{token}");
        }
    }
}

#[tokio::test]
async fn oversized_token_is_rejected_before_decoding() {
    let big = with(claims(), "blob", json!("x".repeat(9 * 1024)));
    let token = mint(&big, &Signer::rs256());
    send_token(&rsa_auth(), &token)
        .await
        .assert_invalid_token("token too large");
    // Over the limit by size alone: garbage of that size gets the same answer, not a parse error.
    let junk = format!(
        "{}.{}.{}",
        "A".repeat(4000),
        "B".repeat(4000),
        "C".repeat(400)
    );
    send_token(&rsa_auth(), &junk)
        .await
        .assert_invalid_token("token too large");
    // The same token passes with a larger limit: the size was the reason.
    let roomy = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .pem(data("rsa_public.pem")),
        )
        .max_token_size(16 * 1024)
        .clock(clock())
        .build()
        .unwrap();
    send_token(&roomy, &token).await.assert_ok();
}

#[tokio::test]
async fn expiry_around_the_leeway() {
    let auth = hmac_auth();
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    // Default leeway 60 s: expired 60 s ago is just within, 61 s ago just beyond.
    send_token(&auth, &mint(&with(claims(), "exp", json!(NOW - 60)), &s))
        .await
        .assert_ok();
    send_token(&auth, &mint(&with(claims(), "exp", json!(NOW - 61)), &s))
        .await
        .assert_invalid_token("token expired");
    // The clock decides: moving it one second turns the accepted token down.
    let clock = clock();
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .hmac_secret(HMAC_SECRET)
                .leeway(Duration::ZERO),
        )
        .clock(clock.clone())
        .build()
        .unwrap();
    let token = mint(&with(claims(), "exp", json!(NOW)), &s);
    send_token(&auth, &token).await.assert_ok();
    clock.advance(Duration::from_secs(1));
    send_token(&auth, &token)
        .await
        .assert_invalid_token("token expired");
}

#[tokio::test]
async fn nbf_in_the_future_is_rejected() {
    let auth = hmac_auth();
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    send_token(&auth, &mint(&with(claims(), "nbf", json!(NOW + 61)), &s))
        .await
        .assert_invalid_token("token not yet valid");
    send_token(&auth, &mint(&with(claims(), "nbf", json!(NOW + 60)), &s))
        .await
        .assert_ok();
    send_token(&auth, &mint(&with(claims(), "nbf", json!("0")), &s))
        .await
        .assert_invalid_token("malformed not-before");
}

#[tokio::test]
async fn exp_must_be_a_present_numeric_date() {
    let auth = hmac_auth();
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    for bad in [
        json!("9999999999"),
        json!(null),
        json!(-1),
        json!([NOW + 300]),
        json!(true),
    ] {
        send_token(&auth, &mint(&with(claims(), "exp", bad), &s))
            .await
            .assert_invalid_token("malformed expiry");
    }
    send_token(&auth, &mint(&without(claims(), "exp"), &s))
        .await
        .assert_invalid_token("missing expiry");
    // Dates at the edge of what the platform represents: no overflow, no panic. A distant
    // expiry is refused by the lifetime limit; with the limit lifted it is a date like any
    // other.
    let unbounded = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .hmac_secret(HMAC_SECRET)
                .insecure_allow_unbounded_lifetime(),
        )
        .clock(clock())
        .build()
        .unwrap();
    for huge in [
        json!(i64::MAX),
        json!(u64::MAX),
        json!(1e300),
        json!(9_007_199_254_740_993u64),
    ] {
        let token = mint(&with(claims(), "exp", huge.clone()), &s);
        let out = send_token(&auth, &token).await;
        let lifted = send_token(&unbounded, &token).await;
        if huge.as_i64().is_some() {
            out.assert_invalid_token("token lifetime too long");
            lifted.assert_ok(); // representable: a (very) distant expiry
        } else {
            // beyond what SystemTime holds
            out.assert_invalid_token("malformed expiry");
            lifted.assert_invalid_token("malformed expiry");
        }
        let out = send_token(&auth, &mint(&with(claims(), "nbf", huge.clone()), &s)).await;
        assert_eq!(out.status, http::StatusCode::UNAUTHORIZED, "{huge}");
        let out = send_token(&auth, &mint(&with(claims(), "iat", huge.clone()), &s)).await;
        assert_eq!(out.status, http::StatusCode::UNAUTHORIZED, "{huge}");
    }
    // A fractional NumericDate is a date (RFC 7519 section 2).
    send_token(
        &auth,
        &mint(&with(claims(), "exp", json!(NOW as f64 + 0.5)), &s),
    )
    .await
    .assert_ok();
}

#[tokio::test]
async fn audience_checks() {
    let auth = hmac_auth();
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    send_token(&auth, &mint(&without(claims(), "aud"), &s))
        .await
        .assert_invalid_token("missing audience");
    send_token(
        &auth,
        &mint(&with(claims(), "aud", json!("billing-api")), &s),
    )
    .await
    .assert_invalid_token("wrong audience");
    send_token(
        &auth,
        &mint(&with(claims(), "aud", json!(["billing-api"])), &s),
    )
    .await
    .assert_invalid_token("wrong audience");
    send_token(&auth, &mint(&with(claims(), "aud", json!([])), &s))
        .await
        .assert_invalid_token("wrong audience");
    send_token(&auth, &mint(&with(claims(), "aud", json!(123)), &s))
        .await
        .assert_invalid_token("malformed audience");
    send_token(&auth, &mint(&with(claims(), "aud", json!([AUD, 7])), &s))
        .await
        .assert_invalid_token("malformed audience");
    // Accepted neighbour: an array containing ours.
    send_token(
        &auth,
        &mint(&with(claims(), "aud", json!(["billing-api", AUD])), &s),
    )
    .await
    .assert_ok();
}

#[tokio::test]
async fn insecure_skip_audience_is_an_explicit_opt_out() {
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    let err = JwtAuthenticator::builder()
        .issuer(TrustedIssuer::new(ISS).hmac_secret(HMAC_SECRET))
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "audience");
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .hmac_secret(HMAC_SECRET)
                .insecure_skip_audience(),
        )
        .clock(clock())
        .build()
        .unwrap();
    send_token(&auth, &mint(&without(claims(), "aud"), &s))
        .await
        .assert_ok();
}

#[tokio::test]
async fn issuer_checks() {
    let auth = hmac_auth();
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    send_token(&auth, &mint(&without(claims(), "iss"), &s))
        .await
        .assert_invalid_token("missing issuer");
    send_token(
        &auth,
        &mint(
            &with(claims(), "iss", json!("https://evil.example.com")),
            &s,
        ),
    )
    .await
    .assert_invalid_token("unknown issuer");
    // Exact match: no trailing-slash or case folding.
    send_token(
        &auth,
        &mint(&with(claims(), "iss", json!(format!("{ISS}/"))), &s),
    )
    .await
    .assert_invalid_token("unknown issuer");
    send_token(&auth, &mint(&with(claims(), "iss", json!([ISS])), &s))
        .await
        .assert_invalid_token("malformed issuer");
    send_token(&auth, &mint(&with(claims(), "iss", json!(1)), &s))
        .await
        .assert_invalid_token("malformed issuer");
}

#[tokio::test]
async fn typ_is_checked_when_access_tokens_are_required() {
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .hmac_secret(HMAC_SECRET)
                .require_access_token_type(),
        )
        .clock(clock())
        .build()
        .unwrap();
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    for typ in [json!("JWT"), json!("id_token+jwt"), json!("")] {
        send_token(&auth, &mint_with(&claims(), &s, &json!({"typ": typ})))
            .await
            .assert_invalid_token("wrong token type");
    }
    // A `typ` that is not a string is no type at all.
    for typ in [json!(null), json!(["at+jwt"])] {
        send_token(&auth, &mint_with(&claims(), &s, &json!({"typ": typ})))
            .await
            .assert_invalid_token("malformed token");
    }
    send_token(&auth, &sign_raw(&json!({"alg": "HS256"}), &claims(), &s))
        .await
        .assert_invalid_token("wrong token type");
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/At+JWT",
    ] {
        send_token(&auth, &mint_with(&claims(), &s, &json!({"typ": typ})))
            .await
            .assert_ok();
    }
}

#[tokio::test]
async fn any_crit_header_is_rejected() {
    let auth = hmac_auth();
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    for crit in [
        json!(["exp"]),
        json!(["b64"]),
        json!([]),
        json!("x"),
        json!(null),
    ] {
        let header = json!({"crit": crit, "exp": NOW + 300, "b64": true});
        send_token(&auth, &mint_with(&claims(), &s, &header))
            .await
            .assert_invalid_token("unsupported critical header");
    }
}

#[tokio::test]
async fn malformed_shapes_never_panic() {
    let auth = hmac_auth();
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    let good = mint(&claims(), &s);
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        format!(".{}.{}", parts[1], parts[2]),
        format!("{}..{}", parts[0], parts[2]),
        format!("{}.{}.{}", b64("not json"), parts[1], parts[2]),
        format!("{}.{}.{}", b64("[1]"), parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"HS256","alg":"HS256"}"#),
            parts[1],
            parts[2]
        ),
        format!("{}.{}.{}", b64(r#"{"typ":"JWT"}"#), parts[1], parts[2]),
        format!("{}.{}.{}", b64(r#"{"alg":5}"#), parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"HS256","kid":1}"#),
            parts[1],
            parts[2]
        ),
        format!("{}.{}.{}", parts[0], b64("\u{0}\u{ff}"), parts[2]),
        format!("{}.{}.{}", parts[0], parts[1], "!!"),
        format!("{}.{}.{}", "é", parts[1], parts[2]),
    ];
    for token in &cases {
        let res = common::send(&auth, common::bearer_raw(token)).await;
        assert_eq!(res.status, http::StatusCode::UNAUTHORIZED, "{token}");
        assert!(res.principal.is_none());
    }
    // Claims that are valid JSON but not an object.
    send_token(
        &auth,
        &format!("{}.{}.{}", parts[0], b64("[1,2]"), parts[2]),
    )
    .await
    .assert_invalid_token("claims are not a JSON object");
}

/// Claims whose JSON `serde_json::Value` refuses (a lone surrogate, a number out of range,
/// nesting past its depth limit) are refused even in a claim no check reads: the claims handed
/// to handlers are always the claims that were checked, never an empty stand-in.
#[tokio::test]
async fn claims_serde_json_cannot_read_are_refused() {
    let auth = hmac_auth();
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    let sign = |extra: &str| {
        let valid = serde_json::to_string(&claims()).unwrap();
        let payload = format!("{},{extra}}}", valid.strip_suffix('}').unwrap());
        let input = format!("{}.{}", b64(r#"{"alg":"HS256","typ":"JWT"}"#), b64(payload));
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &s.key, s.alg).unwrap();
        format!("{input}.{sig}")
    };
    let deep = format!(r#""deep":{}1{}"#, "[".repeat(200), "]".repeat(200));
    for extra in [r#""note":"\ud800""#, r#""big":1e400"#, &deep] {
        send_token(&auth, &sign(extra))
            .await
            .assert_invalid_token("claims are not a JSON object");
    }
    // Neighbours that serde_json reads pass, and handlers see them.
    let shallow = format!(r#""deep":{}1{}"#, "[".repeat(100), "]".repeat(100));
    for extra in [r#""note":"\u00e9\ud83d\ude00""#, r#""big":1e300"#, &shallow] {
        let res = send_token(&auth, &sign(extra)).await;
        let claims = res.assert_ok().extension::<Claims>().unwrap();
        let name = extra[1..].split('"').next().unwrap();
        assert!(claims.get(name).is_some(), "{extra:.30}");
        assert_eq!(claims.subject(), Some("alice"));
    }
}

#[tokio::test]
async fn revoked_and_unknown_kid_tokens_are_rejected() {
    let s = Signer::rs256();
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .jwk(data_str("rsa_public.jwk.json")),
        )
        .clock(clock())
        .build()
        .unwrap();
    send_token(
        &auth,
        &mint_with(&claims(), &s, &json!({"kid": "test-rsa"})),
    )
    .await
    .assert_ok();
    // A kid that names no key: no fallback to other keys that have a kid.
    send_token(&auth, &mint_with(&claims(), &s, &json!({"kid": "other"})))
        .await
        .assert_invalid_token("no key for this token");
}

#[tokio::test]
async fn subject_rules() {
    let auth = hmac_auth();
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    send_token(&auth, &mint(&with(claims(), "sub", json!(42)), &s))
        .await
        .assert_invalid_token("malformed subject");
    send_token(&auth, &mint(&without(claims(), "sub"), &s))
        .await
        .assert_invalid_token("missing subject");
    send_token(&auth, &mint(&with(claims(), "jti", json!(1)), &s))
        .await
        .assert_invalid_token("malformed token id");
}

/// The 32 bytes of the test Ed25519 public key: the end of its SPKI DER.
fn ed25519_public_x() -> Vec<u8> {
    use base64::Engine as _;
    let pem = data_str("ed25519_public.pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    der[der.len() - 32..].to_vec()
}

/// The review's probe: a published Ed25519 key at the identity point, with the fixed signature
/// R = identity, S = 0, which verifies any message under that key. The key is skipped when the
/// set is read (as every small-order or non-canonical key is, see `key.rs`), so the forged
/// token finds no key; a configured key of that kind is a build error.
#[tokio::test]
async fn a_small_order_ed25519_key_cannot_be_used_to_forge_tokens() {
    let identity = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let good = Signer::eddsa();
    let jwks = json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "kid": "weak", "x": identity},
        {"kty": "OKP", "crv": "Ed25519", "kid": "good", "x": b64(ed25519_public_x())},
    ]})
    .to_string();
    let (set, skipped) = KeySet::from_jwks_skipping_invalid(&jwks).unwrap();
    assert_eq!(skipped.len(), 1);
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .key_source(tower_auth_jwt::StaticKeys::new(set))
                .algorithms([Algorithm::EdDSA]),
        )
        .clock(clock())
        .build()
        .unwrap();
    let mut forged_sig = [0u8; 64];
    forged_sig[0] = 1;
    let forged = format!(
        "{}.{}.{}",
        b64_json(&json!({"alg": "EdDSA", "kid": "weak"})),
        b64_json(&with(claims(), "sub", json!("admin"))),
        b64(forged_sig)
    );
    send_token(&auth, &forged)
        .await
        .assert_invalid_token("no key for this token");
    // The rest of the set still works.
    send_token(&auth, &mint_with(&claims(), &good, &json!({"kid": "good"})))
        .await
        .assert_ok();
    // Configured directly, the key is refused at build time.
    let built = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .jwk(json!({"kty": "OKP", "crv": "Ed25519", "x": identity}).to_string()),
        )
        .build();
    assert!(built.is_err());
}

/// RFC 8725 section 3.10: by default `exp` is at most 7 days (plus the leeway) ahead; the
/// review's probe (exp ten years ahead) is refused; the limit is configurable and lifted only
/// by a setting that says what it does.
#[tokio::test]
async fn token_lifetime_is_bounded_by_default() {
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    let week = 7 * 24 * 3600;
    let exp = |secs: u64| mint(&with(claims(), "exp", json!(NOW + secs)), &s);
    let auth = hmac_auth();
    send_token(&auth, &exp(10 * 365 * 24 * 3600))
        .await
        .assert_invalid_token("token lifetime too long");
    send_token(&auth, &exp(week + 61))
        .await
        .assert_invalid_token("token lifetime too long");
    send_token(&auth, &exp(week + 60)).await.assert_ok();
    let build = |issuer: TrustedIssuer| {
        JwtAuthenticator::builder()
            .issuer(issuer.audience(AUD).hmac_secret(HMAC_SECRET))
            .clock(clock())
            .build()
    };
    let hour = build(TrustedIssuer::new(ISS).max_lifetime(Duration::from_secs(3600))).unwrap();
    send_token(&hour, &exp(3600 + 61))
        .await
        .assert_invalid_token("token lifetime too long");
    send_token(&hour, &exp(3600)).await.assert_ok();
    let lifted = build(TrustedIssuer::new(ISS).insecure_allow_unbounded_lifetime()).unwrap();
    send_token(&lifted, &exp(10 * 365 * 24 * 3600))
        .await
        .assert_ok();
    let e = build(TrustedIssuer::new(ISS).max_lifetime(Duration::ZERO)).unwrap_err();
    assert!(e.to_string().contains("max_lifetime"), "{e}");
}

/// RFC 8725 section 3.11: a token typed as another kind of JWT is refused even when `at+jwt`
/// is not required; plain `JWT`, no `typ`, and `at+jwt` in its spellings pass.
#[tokio::test]
async fn other_kinds_of_jwt_are_refused_by_default() {
    let auth = hmac_auth();
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    for typ in [
        "dpop+jwt",
        "logout+jwt",
        "secevent+jwt",
        "application/secevent+jwt",
        "DPoP+JWT",
        "Application/Logout+Jwt",
        "id_token+jwt",
        "+jwt",
        "dpop+jwt; v=1",
        "logout+jwt ",
        " application/secevent+jwt;charset=utf-8",
    ] {
        send_token(&auth, &mint_with(&claims(), &s, &json!({"typ": typ})))
            .await
            .assert_invalid_token("wrong token type");
    }
    for typ in [
        "JWT",
        "jwt",
        "application/jwt",
        "at+jwt",
        "application/AT+JWT",
        "JOSE",
    ] {
        send_token(&auth, &mint_with(&claims(), &s, &json!({"typ": typ})))
            .await
            .assert_ok();
    }
    send_token(&auth, &sign_raw(&json!({"alg": "HS256"}), &claims(), &s))
        .await
        .assert_ok();
}

/// A sender-constrained token (`cnf`) is never accepted as a plain Bearer token, whatever
/// the binding it names.
#[tokio::test]
async fn sender_constrained_tokens_are_refused_as_bearer() {
    let auth = hmac_auth();
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    for cnf in [
        json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}),
        json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
        json!({}),
        json!(null),
    ] {
        send_token(&auth, &mint(&with(claims(), "cnf", cnf), &s))
            .await
            .assert_invalid_token("sender-constrained token");
    }
}

/// Header and claims are JSON objects with each top-level name once: the review's probes (a
/// duplicate `sub`, a header that is an array) are refused.
#[tokio::test]
async fn duplicate_members_and_array_headers_are_refused() {
    let auth = hmac_auth();
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    let sign = |header: &str, payload: &str| {
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &s.key, s.alg).unwrap();
        format!("{input}.{sig}")
    };
    let valid = serde_json::to_string(&claims()).unwrap();
    let duplicate_sub = format!(r#"{},"sub":"admin"}}"#, valid.strip_suffix('}').unwrap());
    send_token(&auth, &sign(r#"{"alg":"HS256"}"#, &duplicate_sub))
        .await
        .assert_invalid_token("claims are not a JSON object");
    send_token(&auth, &sign(r#"["HS256"]"#, &valid))
        .await
        .assert_invalid_token("malformed token");
    send_token(&auth, &sign(r#"{"alg":"none","alg":"HS256"}"#, &valid))
        .await
        .assert_invalid_token("malformed token");
    send_token(&auth, &sign(r#"{"alg":"HS256"}"#, &valid))
        .await
        .assert_ok();
}

/// Hostile `kid` values: path traversal, SQL, 5 and 10 KB, control characters, and values that are
/// not strings. A `kid` only ever selects among configured keys by equality: none of these
/// matches one, none is echoed in the response, nothing panics; a non-string `kid` is a
/// malformed header. The token's own key, named by its own `kid`, still passes.
#[tokio::test]
async fn kid_injection_corpus() {
    let s = Signer::rs256();
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .jwk(data_str("rsa_public.jwk.json")),
        )
        .clock(clock())
        .build()
        .unwrap();
    let long = "k".repeat(5 * 1024);
    let strings = [
        "../../../../etc/passwd",
        "..\\..\\windows\\win.ini",
        "/dev/null",
        "' OR '1'='1' --",
        "test-rsa' UNION SELECT secret FROM keys --",
        "test-rsa\u{0}",
        "test-rsa\r\nX-Injected: 1",
        "\u{1b}[31m",
        "",
        " test-rsa",
        "TEST-RSA",
        long.as_str(),
    ];
    for kid in strings {
        let token = mint_with(&claims(), &s, &json!({ "kid": kid }));
        let out = send_token(&auth, &token).await;
        out.assert_invalid_token("no key for this token");
        let www = out.www_authenticate.as_deref().unwrap_or_default();
        assert!(www.len() < 200, "the kid is not echoed: {}", www.len());
        assert!(!www.contains("passwd") && !www.contains("UNION") && !www.contains("Injected"));
    }
    for kid in [
        json!(7),
        json!(null),
        json!(["test-rsa"]),
        json!({"kid": "test-rsa"}),
        json!(true),
    ] {
        send_token(&auth, &mint_with(&claims(), &s, &json!({ "kid": kid })))
            .await
            .assert_invalid_token("malformed token");
    }
    send_token(
        &auth,
        &mint_with(&claims(), &s, &json!({"kid": "test-rsa"})),
    )
    .await
    .assert_ok();
}
