//! The authenticator in a stack: token sources, issuers, key sources, the verified-token cache,
//! revocation, time rules and configuration errors.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use http::{Request, StatusCode};
use jsonwebtoken::Algorithm as J;
use serde_json::json;
use tower_auth_core::credential::{Found, Location, bearer_token};
use tower_auth_core::{Authenticator, CacheConfig, Principal, Scheme, from_fn};
use tower_auth_jwt::{
    Algorithm, JwtAuthenticator, KeyLookup, KeySet, KeySource, KeySourceError, TokenIdentity,
    TrustedIssuer, VerifyingKey,
};

fn hmac() -> Signer {
    Signer::hmac(J::HS256, HMAC_SECRET)
}

fn builder() -> tower_auth_jwt::JwtAuthenticatorBuilder {
    JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .hmac_secret(HMAC_SECRET),
        )
        .clock(clock())
}

#[tokio::test]
async fn no_credential_is_a_bare_challenge() {
    let auth = builder().build().unwrap();
    let out = send(&auth, Request::get("/").body(()).unwrap()).await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        out.www_authenticate.as_deref(),
        Some("Bearer realm=\"api\"")
    );
}

#[tokio::test]
async fn principal_carries_issuer_expiry_scopes_and_claims() {
    let auth = builder().build().unwrap();
    let out = send_token(&auth, &mint(&claims(), &hmac())).await;
    let p = out.assert_ok();
    assert_eq!(p.subject(), "alice");
    assert_eq!(p.scheme(), Scheme::Jwt);
    assert_eq!(p.issuer(), Some(ISS));
    assert_eq!(p.expires_at(), Some(at(NOW + 300)));
    assert!(p.scopes().contains_all(["orders:read", "orders:write"]));
    let claims = p.extension::<tower_auth_jwt::Claims>().unwrap();
    assert_eq!(claims.jti(), Some("token-1"));
}

#[tokio::test]
async fn only_jws_shaped_bearer_values_are_claimed() {
    let auth = builder().build().unwrap();
    // Not three segments: not ours. With no other scheme to claim it, the layer answers that it
    // recognises no such token (the JWT scheme's own rejections say something else).
    for v in ["sk_live_abc", "a.b", "a.b.c.d"] {
        let out = send_token(&auth, v).await;
        assert_eq!(out.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            out.www_authenticate.as_deref(),
            Some(
                "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"unrecognized bearer token\""
            ),
            "{v}"
        );
    }
    // Composed with a scheme that claims other Bearer values, each gets its own.
    let api_key = from_fn(Location::Authorization, |parts| {
        Ok(bearer_token(&parts.headers)?
            .filter(|t| t.starts_with("sk_"))
            .map(|_| Principal::builder("key-owner", Scheme::ApiKey).build()))
    });
    let both = api_key.or(auth.clone());
    let run = |token: &str| {
        let parts = bearer(token).into_parts().0;
        let found = both.extract(&parts).unwrap().unwrap();
        both.authenticate(found.credential)
    };
    assert_eq!(run("sk_live_abc").await.unwrap().scheme(), Scheme::ApiKey);
    assert_eq!(
        run(&mint(&claims(), &hmac())).await.unwrap().scheme(),
        Scheme::Jwt
    );
}

#[tokio::test]
async fn cookie_source() {
    let token = mint(&claims(), &hmac());
    let with_cookie = |cookie: &str| Request::get("/").header("cookie", cookie).body(()).unwrap();
    // Not configured: the cookie is not read.
    let auth = builder().build().unwrap();
    let out = send(&auth, with_cookie(&format!("session={token}"))).await;
    assert_eq!(
        out.www_authenticate.as_deref(),
        Some("Bearer realm=\"api\"")
    );

    let auth = builder().cookie("session").build().unwrap();
    let out = send(
        &auth,
        with_cookie(&format!("theme=dark; session={token}; lang=en")),
    )
    .await;
    out.assert_ok();

    // A bad token in the cookie is rejected like a bad Bearer token.
    let out = send(&auth, with_cookie("session=a.b.c")).await;
    out.assert_invalid_token("malformed token");

    // Cookie and Bearer JWT at once: malformed request.
    let mut req = bearer(&token);
    req.headers_mut()
        .insert("cookie", format!("session={token}").parse().unwrap());
    let out = send(&auth, req).await;
    assert_eq!(out.status, StatusCode::BAD_REQUEST);
    assert!(
        out.www_authenticate
            .unwrap()
            .contains("error=\"invalid_request\"")
    );
    assert!(out.principal.is_none());

    // The same cookie twice is ambiguous.
    let out = send(
        &auth,
        with_cookie(&format!("session={token}; session={token}")),
    )
    .await;
    assert_eq!(out.status, StatusCode::BAD_REQUEST);

    // The location reported to composition is the cookie.
    let parts = with_cookie(&format!("session={token}")).into_parts().0;
    let found: Found<_> = auth.extract(&parts).unwrap().unwrap();
    assert_eq!(found.location, Location::Cookie("session".into()));
}

#[tokio::test]
async fn several_issuers_chosen_by_iss() {
    let other = "https://other.example.com";
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .hmac_secret(HMAC_SECRET),
        )
        .issuer(
            TrustedIssuer::new(other)
                .audience("other-api")
                .pem(data("rsa_public.pem")),
        )
        .clock(clock())
        .build()
        .unwrap();
    send_token(&auth, &mint(&claims(), &hmac()))
        .await
        .assert_ok();
    let theirs = with(
        with(claims(), "iss", json!(other)),
        "aud",
        json!("other-api"),
    );
    let p = send_token(&auth, &mint(&theirs, &Signer::rs256())).await;
    assert_eq!(p.assert_ok().issuer(), Some(other));
    // The other issuer's claims signed with the first issuer's secret: refused by the other
    // issuer's rules (its allow-list is RS256).
    send_token(&auth, &mint(&theirs, &hmac()))
        .await
        .assert_invalid_token("algorithm not allowed");
    // Each issuer has its own audience.
    send_token(
        &auth,
        &mint(&with(theirs.clone(), "aud", json!(AUD)), &Signer::rs256()),
    )
    .await
    .assert_invalid_token("wrong audience");
}

/// A key source that counts lookups and answers what it is told.
struct Scripted {
    keys: Arc<KeySet>,
    mode: Mutex<&'static str>,
    lookups: AtomicUsize,
}

impl KeySource for Scripted {
    fn lookup(&self, _: Option<&str>) -> KeyLookup {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        match *self.mode.lock().unwrap() {
            "ready" => KeyLookup::Ready(self.keys.clone()),
            "pending" => {
                let keys = self.keys.clone();
                KeyLookup::Pending(Box::pin(async move {
                    tokio::task::yield_now().await;
                    Ok(keys)
                }))
            }
            "pending-fail" => KeyLookup::Pending(Box::pin(async {
                Err(KeySourceError::new("jwks fetch failed")
                    .with_source(std::io::Error::other("connection refused")))
            })),
            _ => KeyLookup::Unavailable(KeySourceError::new("jwks endpoint down")),
        }
    }
}

fn scripted() -> Arc<Scripted> {
    let key = VerifyingKey::from_pem(data("rsa_public.pem")).unwrap();
    Arc::new(Scripted {
        keys: Arc::new(KeySet::new([key]).unwrap()),
        mode: Mutex::new("ready"),
        lookups: AtomicUsize::new(0),
    })
}

#[tokio::test]
async fn key_source_states() {
    let source = scripted();
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .key_source(source.clone())
                .algorithms([Algorithm::RS256]),
        )
        .clock(clock())
        .build()
        .unwrap();
    let token = mint(&claims(), &Signer::rs256());
    send_token(&auth, &token).await.assert_ok();

    *source.mode.lock().unwrap() = "pending";
    send_token(&auth, &token).await.assert_ok();
    // A forged token after a fetch is still checked.
    send_token(
        &auth,
        &mint(&claims(), &Signer::rsa(J::RS256, "rsa2_private.pem")),
    )
    .await
    .assert_invalid_token("invalid signature");

    for mode in ["pending-fail", "unavailable"] {
        *source.mode.lock().unwrap() = mode;
        let out = send_token(&auth, &token).await;
        assert_eq!(out.status, StatusCode::SERVICE_UNAVAILABLE, "{mode}");
        assert!(out.principal.is_none());
    }

    // An unknown issuer is rejected without asking any key source.
    let before = source.lookups.load(Ordering::SeqCst);
    send_token(
        &auth,
        &mint(&with(claims(), "iss", json!("https://x")), &Signer::rs256()),
    )
    .await
    .assert_invalid_token("unknown issuer");
    assert_eq!(source.lookups.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn verified_token_cache_serves_hits_and_still_checks_expiry() {
    let source = scripted();
    let clock = clock();
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .key_source(source.clone())
                .algorithms([Algorithm::RS256]),
        )
        .clock(clock.clone())
        .verified_token_cache(
            CacheConfig::builder()
                .ttl(Duration::from_secs(600))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let token = mint(&with(claims(), "exp", json!(NOW + 30)), &Signer::rs256());
    let first = send_token(&auth, &token).await.assert_ok().clone();
    assert_eq!(source.lookups.load(Ordering::SeqCst), 1);
    assert_eq!(auth.cached_tokens(), 1);
    // A hit: no key lookup, no signature check; the same principal.
    let second = send_token(&auth, &token).await.assert_ok().clone();
    assert_eq!(source.lookups.load(Ordering::SeqCst), 1);
    assert_eq!(second.subject(), first.subject());
    assert!(second.extension::<tower_auth_jwt::Claims>().is_some());

    // Still within exp + leeway (30 + 60 s): served from cache.
    clock.advance(Duration::from_secs(90));
    send_token(&auth, &token).await.assert_ok();
    assert_eq!(source.lookups.load(Ordering::SeqCst), 1);
    // One second more: expired, although moka still holds the entry.
    clock.advance(Duration::from_secs(1));
    send_token(&auth, &token)
        .await
        .assert_invalid_token("token expired");

    // The cache is keyed by the signature: the same signature on other claims is not a hit
    // (the signing input is compared byte for byte), it is verified and fails.
    let (input, sig) = token.rsplit_once('.').unwrap();
    let (header, _) = input.split_once('.').unwrap();
    let evil = format!(
        "{header}.{}.{sig}",
        b64_json(&with(claims(), "sub", json!("admin")))
    );
    clock.set(at(NOW));
    send_token(&auth, &token).await.assert_ok();
    let lookups = source.lookups.load(Ordering::SeqCst);
    send_token(&auth, &evil)
        .await
        .assert_invalid_token("invalid signature");
    assert_eq!(source.lookups.load(Ordering::SeqCst), lookups + 1);
    send_token(&auth, &token).await.assert_ok();
    assert_eq!(source.lookups.load(Ordering::SeqCst), lookups + 1);

    // Invalid tokens are never cached.
    let forged = mint(&claims(), &Signer::rsa(J::RS256, "rsa2_private.pem"));
    for _ in 0..2 {
        send_token(&auth, &forged)
            .await
            .assert_invalid_token("invalid signature");
    }
    auth.clear_cache();
    assert_eq!(auth.cached_tokens(), 0);
}

/// A source whose key set can be replaced, as a refreshing JWKS source does.
struct Swappable {
    keys: Mutex<Arc<KeySet>>,
    lookups: AtomicUsize,
}

impl KeySource for Swappable {
    fn lookup(&self, _: Option<&str>) -> KeyLookup {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        KeyLookup::Ready(self.keys.lock().unwrap().clone())
    }
}

#[tokio::test]
async fn cached_tokens_of_a_withdrawn_key_are_verified_again() {
    let rsa = Arc::new(VerifyingKey::from_pem(data("rsa_public.pem")).unwrap());
    let other = Arc::new(VerifyingKey::from_pem(data("rsa2_public.pem")).unwrap());
    let source = Arc::new(Swappable {
        keys: Mutex::new(Arc::new(
            KeySet::from_shared([rsa.clone(), other.clone()]).unwrap(),
        )),
        lookups: AtomicUsize::new(0),
    });
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .key_source(source.clone())
                .algorithms([Algorithm::RS256]),
        )
        .clock(clock())
        .verified_token_cache(CacheConfig::default())
        .build()
        .unwrap();
    let token = mint(&claims(), &Signer::rs256());
    send_token(&auth, &token).await.assert_ok();
    send_token(&auth, &token).await.assert_ok();
    assert_eq!(source.lookups.load(Ordering::SeqCst), 1);

    // A refresh that keeps the key (same Arc): still served from the cache.
    *source.keys.lock().unwrap() =
        Arc::new(KeySet::from_shared([rsa.clone(), other.clone()]).unwrap());
    send_token(&auth, &token).await.assert_ok();
    assert_eq!(source.lookups.load(Ordering::SeqCst), 1);

    // The key leaves the published set: the cached token is not served any more.
    *source.keys.lock().unwrap() = Arc::new(KeySet::from_shared([other]).unwrap());
    drop(rsa);
    send_token(&auth, &token)
        .await
        .assert_invalid_token("invalid signature");
    assert_eq!(source.lookups.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn revocation_is_checked_on_every_request_including_cache_hits() {
    let revoked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let seen = revoked.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let auth = builder()
        .verified_token_cache(CacheConfig::default())
        .revocation(move |t: &TokenIdentity| {
            counted.fetch_add(1, Ordering::SeqCst);
            assert_eq!(t.issuer(), ISS);
            t.jti().is_some_and(|j| seen.lock().unwrap().contains(j))
        })
        .build()
        .unwrap();
    let token = mint(&claims(), &hmac());
    send_token(&auth, &token).await.assert_ok();
    send_token(&auth, &token).await.assert_ok(); // cache hit
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    revoked.lock().unwrap().insert("token-1".into());
    send_token(&auth, &token)
        .await
        .assert_invalid_token("token revoked");
    // Not cached yet: a fresh token with the revoked jti is refused on the full path too.
    let fresh = mint(&with(claims(), "iat", json!(NOW - 1)), &hmac());
    send_token(&auth, &fresh)
        .await
        .assert_invalid_token("token revoked");
    // Subject cut-off style: tokens of alice issued before a time.
    let cutoff_auth = builder()
        .revocation(|t: &TokenIdentity| {
            t.subject() == Some("alice") && t.issued_at().is_some_and(|i| i < at(NOW - 5))
        })
        .build()
        .unwrap();
    send_token(&cutoff_auth, &token)
        .await
        .assert_invalid_token("token revoked");
    send_token(&cutoff_auth, &fresh).await.assert_ok();
}

#[tokio::test]
async fn max_token_age_and_iat() {
    let clock = clock();
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .hmac_secret(HMAC_SECRET)
                .leeway(Duration::ZERO)
                .max_token_age(Duration::from_secs(600)),
        )
        .clock(clock.clone())
        .verified_token_cache(CacheConfig::default())
        .build()
        .unwrap();
    let s = hmac();
    let long = |c| with(c, "exp", json!(NOW + 86_400));
    send_token(
        &auth,
        &mint(&long(with(claims(), "iat", json!(NOW - 601))), &s),
    )
    .await
    .assert_invalid_token("token too old");
    send_token(&auth, &mint(&long(without(claims(), "iat")), &s))
        .await
        .assert_invalid_token("missing issued-at");
    send_token(
        &auth,
        &mint(&long(with(claims(), "iat", json!(NOW + 1))), &s),
    )
    .await
    .assert_invalid_token("token issued in the future");
    send_token(&auth, &mint(&long(with(claims(), "iat", json!("x"))), &s))
        .await
        .assert_invalid_token("malformed issued-at");
    // Exactly at the limit: accepted.
    send_token(
        &auth,
        &mint(&long(with(claims(), "iat", json!(NOW - 600))), &s),
    )
    .await
    .assert_ok();
    // Accepted at 500 s (and cached), refused from the cache once 600 s have passed.
    let ok = mint(&long(with(claims(), "iat", json!(NOW - 500))), &s);
    send_token(&auth, &ok).await.assert_ok();
    assert_eq!(auth.cached_tokens(), 1);
    clock.advance(Duration::from_secs(101));
    send_token(&auth, &ok)
        .await
        .assert_invalid_token("token expired");
}

#[tokio::test]
async fn missing_exp_only_with_the_insecure_opt_in() {
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .hmac_secret(HMAC_SECRET)
                .insecure_allow_missing_exp(),
        )
        .clock(clock())
        .build()
        .unwrap();
    send_token(&auth, &mint(&without(claims(), "exp"), &hmac()))
        .await
        .assert_ok();
    // A present exp is still enforced.
    send_token(
        &auth,
        &mint(&with(claims(), "exp", json!(NOW - 100)), &hmac()),
    )
    .await
    .assert_invalid_token("token expired");
}

#[test]
fn configuration_errors_name_the_setting_and_value() {
    let cases: Vec<(tower_auth_jwt::JwtAuthenticatorBuilder, &str, &str)> = vec![
        (JwtAuthenticator::builder(), "issuer", "none"),
        (
            JwtAuthenticator::builder()
                .issuer(
                    TrustedIssuer::new(ISS)
                        .audience(AUD)
                        .hmac_secret(HMAC_SECRET),
                )
                .issuer(
                    TrustedIssuer::new(ISS)
                        .audience(AUD)
                        .hmac_secret(HMAC_SECRET),
                ),
            "issuer",
            "\"https://issuer.example.com\"",
        ),
        (
            JwtAuthenticator::builder().issuer(TrustedIssuer::new(ISS).audience(AUD)),
            "keys",
            "none",
        ),
        (
            JwtAuthenticator::builder().issuer(
                TrustedIssuer::new(ISS)
                    .audience(AUD)
                    .pem(data("rsa_private.pem")),
            ),
            "pem",
            "key #1",
        ),
        (
            JwtAuthenticator::builder().issuer(
                TrustedIssuer::new(ISS)
                    .audience(AUD)
                    .hmac_secret(HMAC_SECRET)
                    .pem(data("rsa1024_public.pem")),
            ),
            "pem",
            "key #2",
        ),
        (
            JwtAuthenticator::builder().issuer(
                TrustedIssuer::new(ISS)
                    .audience(AUD)
                    .jwk(r#"{"kty":"RSA","n":"AQAB=","e":"AQAB"}"#),
            ),
            "jwk",
            "key #1",
        ),
        (
            JwtAuthenticator::builder().issuer(
                TrustedIssuer::new(ISS)
                    .audience(AUD)
                    .hmac_secret(HMAC_SECRET)
                    .algorithms([Algorithm::HS512]),
            ),
            "algorithms",
            "HS512",
        ),
        (
            JwtAuthenticator::builder().issuer(
                TrustedIssuer::new(ISS)
                    .audience(AUD)
                    .hmac_secret(HMAC_SECRET)
                    .leeway(Duration::from_secs(3600)),
            ),
            "leeway",
            "3600s",
        ),
        (
            JwtAuthenticator::builder()
                .issuer(TrustedIssuer::new(ISS).audience(AUD).key_source(scripted())),
            "algorithms",
            "[]",
        ),
        (
            JwtAuthenticator::builder().issuer(
                TrustedIssuer::new(ISS)
                    .audience(AUD)
                    .hmac_secret(HMAC_SECRET)
                    .key_source(scripted()),
            ),
            "key_source",
            "a key source and local keys",
        ),
        (builder().cookie("a b"), "cookie", "\"a b\""),
        (
            JwtAuthenticator::builder()
                .issuer(TrustedIssuer::new(ISS).audience(AUD).jwks(r#"{"keys":[]}"#)),
            "jwks",
            r#"{"keys":[]}"#,
        ),
        (builder().max_token_size(10), "max_token_size", "10"),
        (
            JwtAuthenticator::builder().issuer(
                TrustedIssuer::new(ISS)
                    .audience("")
                    .hmac_secret(HMAC_SECRET),
            ),
            "audience",
            "\"\"",
        ),
    ];
    for (b, setting, value) in cases {
        let err = b.build().unwrap_err();
        assert_eq!((err.setting(), err.value()), (setting, value), "{err}");
        assert!(!err.to_string().contains("0123456789abcdef"), "{err}");
    }
    let err = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .pem(data("rsa1024_public.pem")),
        )
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `pem` = key #1 of issuer `https://issuer.example.com`: RSA key of 1024 bits; at least 2048 required"
    );
}

#[test]
fn debug_output_never_shows_secrets() {
    let issuer = TrustedIssuer::new(ISS)
        .audience(AUD)
        .hmac_secret(HMAC_SECRET);
    let builder = JwtAuthenticator::builder().issuer(issuer);
    let auth = builder.build().unwrap();
    let key = VerifyingKey::hmac_secret(HMAC_SECRET).unwrap();
    for s in [
        format!("{auth:?}"),
        format!("{key:?}"),
        format!("{:?}", TrustedIssuer::new(ISS).hmac_secret(HMAC_SECRET)),
    ] {
        assert!(!s.contains("0123456789abcdef"), "{s}");
        assert!(!s.contains("48, 49, 50"), "{s}");
    }
}

#[tokio::test]
async fn rejections_never_call_the_inner_service_or_panic_on_odd_headers() {
    let auth = builder().cookie("session").build().unwrap();
    let odd = [
        vec![("authorization", &b"Bearer"[..])],
        vec![("authorization", b"Bearer ")],
        vec![("authorization", b"Bearer \xff.\xfe.\xfd")],
        vec![("cookie", b"session=")],
        vec![("cookie", b"session=\xff.a.b")],
        vec![
            ("authorization", b"Bearer a.b.c"),
            ("authorization", b"Bearer a.b.c"),
        ],
    ];
    for headers in odd {
        let mut req = Request::get("/").body(()).unwrap();
        for (k, v) in &headers {
            req.headers_mut()
                .append(*k, http::HeaderValue::from_bytes(v).unwrap());
        }
        let out = send(&auth, req).await;
        assert!(out.status.is_client_error(), "{headers:?}");
        assert!(out.principal.is_none());
    }
}

/// `authenticate_now` (what the layer calls) decides every token exactly as the future of
/// `authenticate` does, with and without the verified-token cache.
#[tokio::test]
async fn authenticate_now_decides_as_authenticate() {
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    let good = mint(&claims(), &s);
    let parts: Vec<&str> = good.split('.').collect();
    let tokens = [
        good.clone(),
        mint(&with(claims(), "exp", json!(1)), &s),
        mint(&with(claims(), "aud", json!("other")), &s),
        format!("{}.{}.{}", parts[0], parts[1], b64([0u8; 32])),
        format!("{}.{}.{}", parts[0], b64("[1]"), parts[2]),
        format!("{}.{}.", parts[0], parts[1]),
        "a.b.c".to_owned(),
    ];
    for cached in [false, true] {
        let mut builder = JwtAuthenticator::builder()
            .issuer(
                TrustedIssuer::new(ISS)
                    .audience(AUD)
                    .hmac_secret(HMAC_SECRET),
            )
            .clock(clock());
        if cached {
            builder = builder.verified_token_cache(CacheConfig::default());
        }
        let auth = builder.build().unwrap();
        // Twice over, so the second pass meets the cache when there is one.
        for token in tokens.iter().chain(&tokens) {
            let (parts, ()) = bearer(token).into_parts();
            let found = || auth.extract(&parts).unwrap().unwrap().credential;
            let later = auth.authenticate(found()).await;
            let now = match auth.authenticate_now(found()) {
                tower_auth_core::Authentication::Ready(r) => r,
                tower_auth_core::Authentication::Pending(f) => f.await,
            };
            match (later, now) {
                (Ok(a), Ok(b)) => assert_eq!(a.subject(), b.subject(), "{token}"),
                (Err(a), Err(b)) => {
                    assert_eq!(
                        (a.kind(), a.description()),
                        (b.kind(), b.description()),
                        "{token}"
                    )
                }
                (a, b) => panic!("{token}: {a:?} against {b:?}"),
            }
        }
    }
}

/// `authenticate_now` decides exactly as the future of `authenticate` would (the trait's rule,
/// checked by tower-auth-core's shared helper), with and without the verified-token cache: a
/// good token, an expired one, one without `exp`, one signed with another key, another
/// audience's, and a three-segment value that is no JWT.
#[tokio::test]
async fn authenticate_now_decides_as_the_future() {
    let requests = || {
        [
            mint(&claims(), &hmac()),
            mint(&with(claims(), "exp", json!(NOW - 3600)), &hmac()),
            mint(&without(claims(), "exp"), &hmac()),
            mint(
                &claims(),
                &Signer::hmac(J::HS256, b"another-secret-another-secret-32"),
            ),
            mint(&with(claims(), "aud", json!("another-api")), &hmac()),
            "not.a.jwt".to_owned(),
        ]
        .map(|t| bearer(&t))
    };
    let plain = builder().build().unwrap();
    tower_auth_core::testing::assert_now_decides_as_future(&plain, requests()).await;
    let cached = builder()
        .verified_token_cache(CacheConfig::default())
        .build()
        .unwrap();
    tower_auth_core::testing::assert_now_decides_as_future(&cached, requests()).await;
}
