//! The DPoP checks through the layer: each refusal of RFC 9449 sections 4.3 and 7, with the
//! status and challenge the response contract gives it.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tower::{Layer as _, ServiceExt, service_fn};
use tower_auth_core::clock::ManualClock;
use tower_auth_core::{AuthenticateLayer, Authenticator, CacheConfig, DefaultRejection, Principal};

use super::*;
use crate::TrustedIssuer;

const ISS: &str = "https://issuer.example.com";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";
const NONCE_SECRET: &[u8] = b"fedcba9876543210fedcba9876543210-nonce";
const URL: &str = "https://api.example.com/orders";
const NOW: u64 = 1_767_225_600;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// An HS256 token from the test issuer, bound to `jkt` when given.
fn token(jkt: Option<&str>) -> String {
    token_with_cnf(jkt.map(|jkt| json!({ "jkt": jkt })))
}

fn token_with_cnf(cnf: Option<Value>) -> String {
    let mut claims = json!({"iss": ISS, "aud": "api", "sub": "alice", "exp": NOW + 600});
    if let Some(cnf) = cnf {
        claims["cnf"] = cnf;
    }
    let input = format!(
        "{}.{}",
        B64.encode(r#"{"alg":"HS256","typ":"at+jwt"}"#),
        B64.encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64.encode(tag))
}

struct Setup {
    clock: ManualClock,
    jwt: JwtAuthenticator,
}

fn setup(cache: bool) -> Setup {
    let clock = ManualClock::new(at(NOW));
    let mut b = JwtAuthenticator::builder()
        .issuer(TrustedIssuer::new(ISS).audience("api").hmac_secret(SECRET))
        .clock(clock.clone());
    if cache {
        b = b.verified_token_cache(CacheConfig::builder().build().unwrap());
    }
    Setup {
        clock,
        jwt: b.build().unwrap(),
    }
}

fn dpop(s: &Setup) -> DpopAuthenticatorBuilder {
    DpopAuthenticator::builder(s.jwt.clone()).external_url("https://api.example.com")
}

/// Sends a request through `auth` (DPoP announced beside Bearer); the response, with the
/// principal's subject as body on success.
async fn send<A>(auth: A, req: Request<String>) -> Response<String>
where
    A: Authenticator + Clone + Send + Sync + 'static,
    A::Credential: Send,
    A::Future: Send,
{
    let rejection = DefaultRejection::builder()
        .dpop(["ES256", "EdDSA"])
        .build()
        .unwrap();
    let svc = AuthenticateLayer::required(auth)
        .with_rejection(rejection)
        .layer(service_fn(|req: Request<String>| async move {
            let p = req.extensions().get::<Principal>().unwrap();
            Ok::<_, Infallible>(Response::new(p.subject().to_owned()))
        }));
    svc.oneshot(req).await.unwrap()
}

fn request(method: &str, path: &str, auth: &str, proofs: &[&str]) -> Request<String> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", auth);
    for p in proofs {
        b = b.header("dpop", *p);
    }
    b.body(String::new()).unwrap()
}

fn challenges(res: &Response<String>) -> Vec<String> {
    res.headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// A 401 whose DPoP challenge names `error` and `description`, after a bare Bearer one.
#[track_caller]
fn assert_dpop_error(res: &Response<String>, error: &str, description: &str) {
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "{:?}",
        challenges(res)
    );
    assert_eq!(
        challenges(res),
        [
            "Bearer realm=\"api\"".to_owned(),
            format!(
                "DPoP error=\"{error}\", error_description=\"{description}\", \
                 algs=\"ES256 EdDSA\""
            )
        ]
    );
}

fn claims(key: &DpopKey, token: &str) -> Value {
    json!({
        "jti": B64.encode(rand_bytes()),
        "htm": "GET",
        "htu": URL,
        "iat": NOW,
        "ath": proof::access_token_hash(token.as_bytes()),
        "_": key.thumbprint(),
    })
}

fn rand_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    b
}

fn good(key: &DpopKey, token: &str) -> String {
    key.proof_at("GET", URL, Some(token), None, at(NOW))
        .unwrap()
}

#[tokio::test]
async fn a_valid_proof_with_its_bound_token_is_accepted_for_each_key_type() {
    let s = setup(false);
    let auth = dpop(&s).build().unwrap();
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::ES384] {
        let key = DpopKey::generate(alg).unwrap();
        let t = token(Some(key.thumbprint()));
        let res = send(
            auth.clone(),
            request("GET", "/orders", &format!("DPoP {t}"), &[&good(&key, &t)]),
        )
        .await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{alg:?} {:?}",
            challenges(&res)
        );
        assert_eq!(res.body(), "alice");
    }
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let s = setup(false);
    let auth = dpop(&s).build().unwrap();
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let t = token(Some(key.thumbprint()));
    let p = good(&key, &t);
    let req = || request("GET", "/orders", &format!("DPoP {t}"), &[&p]);
    assert_eq!(send(auth.clone(), req()).await.status(), StatusCode::OK);
    assert_dpop_error(
        &send(auth.clone(), req()).await,
        "invalid_dpop_proof",
        "dpop proof replayed",
    );
    // Still refused at the edge of the window, when its iat is still acceptable.
    s.clock.advance(Duration::from_secs(60));
    assert_dpop_error(
        &send(auth, req()).await,
        "invalid_dpop_proof",
        "dpop proof replayed",
    );
}

#[tokio::test]
async fn a_proof_for_another_method_or_url_is_refused() {
    let s = setup(false);
    let auth = dpop(&s).build().unwrap();
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let t = token(Some(key.thumbprint()));
    let bearer = format!("DPoP {t}");
    let res = send(
        auth.clone(),
        request("POST", "/orders", &bearer, &[&good(&key, &t)]),
    )
    .await;
    assert_dpop_error(&res, "invalid_dpop_proof", "dpop proof for another method");
    let res = send(
        auth.clone(),
        request("GET", "/admin", &bearer, &[&good(&key, &t)]),
    )
    .await;
    assert_dpop_error(&res, "invalid_dpop_proof", "dpop proof for another url");
    let other_host = key
        .proof_at(
            "GET",
            "https://evil.example.com/orders",
            Some(&t),
            None,
            at(NOW),
        )
        .unwrap();
    let res = send(
        auth.clone(),
        request("GET", "/orders", &bearer, &[&other_host]),
    )
    .await;
    assert_dpop_error(&res, "invalid_dpop_proof", "dpop proof for another url");
    // The query is not part of htu: a proof made for the URL with its query is fine.
    let with_query = key
        .proof_at(
            "GET",
            "https://API.example.com:443/orders?page=2",
            Some(&t),
            None,
            at(NOW),
        )
        .unwrap();
    let res = send(
        auth,
        request("GET", "/orders?page=2", &bearer, &[&with_query]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_an_external_url_the_request_authority_is_used() {
    let s = setup(false);
    let auth = DpopAuthenticator::builder(s.jwt.clone()).build().unwrap();
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let t = token(Some(key.thumbprint()));
    let p = key
        .proof_at(
            "GET",
            "http://localhost:8080/orders",
            Some(&t),
            None,
            at(NOW),
        )
        .unwrap();
    let mut req = request("GET", "/orders", &format!("DPoP {t}"), &[&p]);
    req.headers_mut()
        .insert("host", "localhost:8080".parse().unwrap());
    assert_eq!(send(auth.clone(), req).await.status(), StatusCode::OK);
    // No Host at all: the URL cannot be known.
    let p = key
        .proof_at(
            "GET",
            "http://localhost:8080/orders",
            Some(&t),
            None,
            at(NOW),
        )
        .unwrap();
    let res = send(auth, request("GET", "/orders", &format!("DPoP {t}"), &[&p])).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_proof_for_another_token_is_refused() {
    let s = setup(false);
    let auth = dpop(&s).build().unwrap();
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let t = token(Some(key.thumbprint()));
    let p = key
        .proof_at("GET", URL, Some("another-token"), None, at(NOW))
        .unwrap();
    let res = send(
        auth.clone(),
        request("GET", "/orders", &format!("DPoP {t}"), &[&p]),
    )
    .await;
    assert_dpop_error(
        &res,
        "invalid_dpop_proof",
        "dpop proof for another access token",
    );
    // No ath at all.
    let p = key.proof_at("GET", URL, None, None, at(NOW)).unwrap();
    let res = send(auth, request("GET", "/orders", &format!("DPoP {t}"), &[&p])).await;
    assert_dpop_error(
        &res,
        "invalid_dpop_proof",
        "dpop proof for another access token",
    );
}

#[tokio::test]
async fn a_proof_key_other_than_the_tokens_is_refused() {
    let s = setup(false);
    let auth = dpop(&s).build().unwrap();
    let holder = DpopKey::generate(Algorithm::ES256).unwrap();
    let thief = DpopKey::generate(Algorithm::ES256).unwrap();
    let t = token(Some(holder.thumbprint()));
    let res = send(
        auth,
        request("GET", "/orders", &format!("DPoP {t}"), &[&good(&thief, &t)]),
    )
    .await;
    assert_dpop_error(
        &res,
        "invalid_dpop_proof",
        "dpop proof key does not match the token",
    );
}

#[tokio::test]
async fn the_bound_token_as_bearer_is_refused_even_from_the_cache() {
    let s = setup(true);
    let auth = dpop(&s).build().unwrap().or(s.jwt.clone());
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let t = token(Some(key.thumbprint()));
    // Verified (and cached) under DPoP first.
    let res = send(
        auth.clone(),
        request("GET", "/orders", &format!("DPoP {t}"), &[&good(&key, &t)]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(s.jwt.cached_tokens(), 1);
    for _ in 0..2 {
        let res = send(
            auth.clone(),
            request("GET", "/orders", &format!("Bearer {t}"), &[]),
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenges(&res),
            [
                "Bearer realm=\"api\", error=\"invalid_token\", \
                 error_description=\"sender-constrained token\"",
                "DPoP algs=\"ES256 EdDSA\""
            ]
        );
    }
    // An unbound token verified (and cached) as Bearer is not accepted with the DPoP scheme.
    let plain = token(None);
    let res = send(
        auth.clone(),
        request("GET", "/orders", &format!("Bearer {plain}"), &[]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = send(
        auth,
        request(
            "GET",
            "/orders",
            &format!("DPoP {plain}"),
            &[&good(&key, &plain)],
        ),
    )
    .await;
    assert_dpop_error(&res, "invalid_token", "token not bound to a key");
}

#[tokio::test]
async fn an_unbound_or_bad_token_with_the_dpop_scheme_is_invalid_token() {
    let s = setup(false);
    let auth = dpop(&s).build().unwrap();
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let plain = token(None);
    let res = send(
        auth.clone(),
        request(
            "GET",
            "/orders",
            &format!("DPoP {plain}"),
            &[&good(&key, &plain)],
        ),
    )
    .await;
    assert_dpop_error(&res, "invalid_token", "token not bound to a key");
    // Bound by another method (mTLS, RFC 8705): not a DPoP binding.
    let mtls = token_with_cnf(Some(
        json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
    ));
    let res = send(
        auth.clone(),
        request(
            "GET",
            "/orders",
            &format!("DPoP {mtls}"),
            &[&good(&key, &mtls)],
        ),
    )
    .await;
    assert_dpop_error(&res, "invalid_token", "unsupported confirmation method");
    // A bad signature.
    let mut forged = token(None);
    forged.truncate(forged.len() - 2);
    forged.push_str("AA");
    let res = send(
        auth,
        request(
            "GET",
            "/orders",
            &format!("DPoP {forged}"),
            &[&good(&key, &forged)],
        ),
    )
    .await;
    assert_dpop_error(&res, "invalid_token", "invalid signature");
}

#[tokio::test]
async fn proof_iat_must_be_within_the_leeway() {
    let s = setup(false);
    let auth = dpop(&s)
        .iat_leeway(Duration::from_secs(30))
        .build()
        .unwrap();
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let t = token(Some(key.thumbprint()));
    let send_at = |iat: u64| {
        let p = key.proof_at("GET", URL, Some(&t), None, at(iat)).unwrap();
        send(
            auth.clone(),
            request("GET", "/orders", &format!("DPoP {t}"), &[&p]),
        )
    };
    for iat in [NOW - 31, NOW + 31] {
        assert_dpop_error(
            &send_at(iat).await,
            "invalid_dpop_proof",
            "dpop proof iat outside the accepted window",
        );
    }
    for iat in [NOW - 30, NOW + 30] {
        assert_eq!(send_at(iat).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn nonces_are_required_when_on_and_accepted_from_any_instance() {
    let s = setup(false);
    let nonces = || DpopNonces::new(NONCE_SECRET, Duration::from_secs(300)).unwrap();
    let auth = dpop(&s).nonces(nonces()).build().unwrap();
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let t = token(Some(key.thumbprint()));
    let res = send(
        auth.clone(),
        request("GET", "/orders", &format!("DPoP {t}"), &[&good(&key, &t)]),
    )
    .await;
    assert_dpop_error(
        &res,
        "use_dpop_nonce",
        "authorization server requires nonce in dpop proof",
    );
    let nonce = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    // Another instance with the same secret accepts it.
    let other = dpop(&s).nonces(nonces()).build().unwrap();
    let p = key
        .proof_at("GET", URL, Some(&t), Some(&nonce), at(NOW))
        .unwrap();
    let res = send(
        other,
        request("GET", "/orders", &format!("DPoP {t}"), &[&p]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    // A nonce of another secret is not a nonce.
    let foreign = DpopNonces::new([9u8; 32], Duration::from_secs(300))
        .unwrap()
        .current(at(NOW));
    let p = key
        .proof_at(
            "GET",
            URL,
            Some(&t),
            Some(foreign.to_str().unwrap()),
            at(NOW),
        )
        .unwrap();
    let res = send(auth, request("GET", "/orders", &format!("DPoP {t}"), &[&p])).await;
    assert_dpop_error(
        &res,
        "use_dpop_nonce",
        "authorization server requires nonce in dpop proof",
    );
}

#[tokio::test]
async fn proof_header_rules() {
    let s = setup(false);
    let auth = dpop(&s)
        .algorithms([Algorithm::ES256, Algorithm::EdDSA])
        .build()
        .unwrap();
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let t = token(Some(key.thumbprint()));
    let jwk = key.public_jwk().clone();
    let c = claims(&key, &t);
    let mut with_d = jwk.clone();
    with_d["d"] = json!("AAAA");
    let ed = DpopKey::generate(Algorithm::EdDSA).unwrap();
    for (header, description) in [
        (
            json!({"typ": "JWT", "alg": "ES256", "jwk": jwk}),
            "wrong dpop proof type",
        ),
        (json!({"alg": "ES256", "jwk": jwk}), "wrong dpop proof type"),
        (
            json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": jwk}),
            "dpop algorithm not allowed",
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "none", "jwk": jwk}),
            "dpop algorithm not allowed",
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "ES256"}),
            "dpop proof without a key",
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": with_d}),
            "invalid dpop proof key",
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "oct", "k": B64.encode([1u8; 32])}}),
            "invalid dpop proof key",
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk}),
            "dpop algorithm does not fit the key",
        ),
        // Signed by the ES256 key, carrying the Ed25519 key.
        (
            json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": ed.public_jwk()}),
            "invalid dpop proof signature",
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk, "crit": ["x"]}),
            "unsupported critical header",
        ),
    ] {
        let p = key.sign_with_header(&header, &c).unwrap();
        let res = send(
            auth.clone(),
            request("GET", "/orders", &format!("DPoP {t}"), &[&p]),
        )
        .await;
        assert_dpop_error(&res, "invalid_dpop_proof", description);
    }
    // Allowed by default, but not in this list.
    let es384 = DpopKey::generate(Algorithm::ES384).unwrap();
    let t384 = token(Some(es384.thumbprint()));
    let res = send(
        auth.clone(),
        request(
            "GET",
            "/orders",
            &format!("DPoP {t384}"),
            &[&good(&es384, &t384)],
        ),
    )
    .await;
    assert_dpop_error(&res, "invalid_dpop_proof", "dpop algorithm not allowed");
    // A tampered payload.
    let p = good(&key, &t);
    let (head, rest) = p.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let mut c2 = claims(&key, &t);
    c2["htm"] = json!("GET");
    let tampered = format!("{head}.{}.{sig}", B64.encode(c2.to_string()));
    let res = send(
        auth,
        request("GET", "/orders", &format!("DPoP {t}"), &[&tampered]),
    )
    .await;
    assert_dpop_error(&res, "invalid_dpop_proof", "invalid dpop proof signature");
}

#[tokio::test]
async fn proof_claim_rules() {
    let s = setup(false);
    let auth = dpop(&s).build().unwrap();
    let key = DpopKey::generate(Algorithm::EdDSA).unwrap();
    let t = token(Some(key.thumbprint()));
    for (remove, description) in [
        ("jti", "dpop proof without a valid jti"),
        ("htm", "dpop proof for another method"),
        ("htu", "dpop proof for another url"),
        ("iat", "dpop proof without a valid iat"),
    ] {
        let mut c = claims(&key, &t);
        c.as_object_mut().unwrap().remove(remove);
        let p = key.sign(&c).unwrap();
        let res = send(
            auth.clone(),
            request("GET", "/orders", &format!("DPoP {t}"), &[&p]),
        )
        .await;
        assert_dpop_error(&res, "invalid_dpop_proof", description);
    }
    let mut c = claims(&key, &t);
    c["iat"] = json!(NOW.to_string());
    let res = send(
        auth.clone(),
        request(
            "GET",
            "/orders",
            &format!("DPoP {t}"),
            &[&key.sign(&c).unwrap()],
        ),
    )
    .await;
    assert_dpop_error(&res, "invalid_dpop_proof", "dpop proof without a valid iat");
    // An iat at the end of time or at the epoch is refused.
    for iat in [json!(i64::MAX as u64 - 10), json!(u64::MAX), json!(0)] {
        let mut c = claims(&key, &t);
        c["iat"] = iat;
        let res = send(
            auth.clone(),
            request(
                "GET",
                "/orders",
                &format!("DPoP {t}"),
                &[&key.sign(&c).unwrap()],
            ),
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    for p in ["a.b", "a.b.c.d", "!!.!!.!!"] {
        let res = send(
            auth.clone(),
            request("GET", "/orders", &format!("DPoP {t}"), &[p]),
        )
        .await;
        assert_dpop_error(&res, "invalid_dpop_proof", "malformed dpop proof");
    }
    // A duplicate claim name is refused as malformed, not read one way or the other.
    let payload = format!(
        r#"{{"jti":"a","htm":"GET","htm":"POST","htu":"{URL}","iat":{NOW},"ath":"{}"}}"#,
        proof::access_token_hash(t.as_bytes())
    );
    let header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.public_jwk()});
    let good_proof = key.sign_with_header(&header, &json!({})).unwrap();
    let (head, _) = good_proof.split_once('.').unwrap();
    let input = format!("{head}.{}", B64.encode(payload));
    let p = format!("{input}.AAAA");
    let res = send(auth, request("GET", "/orders", &format!("DPoP {t}"), &[&p])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn request_shape_rules() {
    let s = setup(false);
    let auth = dpop(&s).max_proof_size(600).build().unwrap();
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let t = token(Some(key.thumbprint()));
    let p = good(&key, &t);
    // Two DPoP headers: a malformed request.
    let res = send(
        auth.clone(),
        request("GET", "/orders", &format!("DPoP {t}"), &[&p, &p]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(challenges(&res)[1].starts_with("DPoP error=\"invalid_request\""));
    // No proof.
    let res = send(
        auth.clone(),
        request("GET", "/orders", &format!("DPoP {t}"), &[]),
    )
    .await;
    assert_dpop_error(&res, "invalid_dpop_proof", "missing dpop proof");
    // Too large.
    let big = format!("{p}{}", "A".repeat(600));
    let res = send(
        auth.clone(),
        request("GET", "/orders", &format!("DPoP {t}"), &[&big]),
    )
    .await;
    assert_dpop_error(&res, "invalid_dpop_proof", "dpop proof too large");
    // Empty or non-token68 token.
    let res = send(auth.clone(), request("GET", "/orders", "DPoP ", &[&p])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = send(auth.clone(), request("GET", "/orders", "DPoP a,b", &[&p])).await;
    assert_dpop_error(&res, "invalid_token", "malformed dpop token");
    // Another scheme is not ours: a Bearer token nobody claims.
    let res = send(
        auth,
        request("GET", "/orders", &format!("Bearer {t}"), &[&p]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenges(&res),
        [
            "Bearer realm=\"api\", error=\"invalid_token\", \
             error_description=\"unrecognized bearer token\"",
            "DPoP algs=\"ES256 EdDSA\""
        ]
    );
}

#[tokio::test]
async fn a_full_replay_cache_answers_503_and_keeps_its_entries() {
    let s = setup(false);
    let auth = dpop(&s).replay_cache_capacity(1).build().unwrap();
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let t = token(Some(key.thumbprint()));
    let first = good(&key, &t);
    let req = |p: &str| request("GET", "/orders", &format!("DPoP {t}"), &[p]);
    assert_eq!(
        send(auth.clone(), req(&first)).await.status(),
        StatusCode::OK
    );
    let res = send(auth.clone(), req(&good(&key, &t))).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The first proof is still known.
    assert_dpop_error(
        &send(auth.clone(), req(&first)).await,
        "invalid_dpop_proof",
        "dpop proof replayed",
    );
    // Once it left the window there is room again.
    s.clock.advance(Duration::from_secs(61));
    let p = key
        .proof_at("GET", URL, Some(&t), None, at(NOW + 61))
        .unwrap();
    assert_eq!(send(auth, req(&p)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_route_that_requires_dpop_announces_dpop_only() {
    let s = setup(false);
    let auth = dpop(&s).build().unwrap();
    let rejection = DefaultRejection::builder()
        .dpop_only(auth.algorithm_names())
        .build()
        .unwrap();
    let svc = AuthenticateLayer::required(auth)
        .with_rejection(rejection)
        .layer(service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    let t = token(None);
    let res = svc
        .clone()
        .oneshot(request("GET", "/orders", &format!("Bearer {t}"), &[]))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenges(&res),
        [
            "DPoP error=\"invalid_token\", error_description=\"unrecognized bearer token\", \
          algs=\"ES256 ES384 EdDSA PS256 RS256\""
        ]
    );
    let res = svc
        .oneshot(Request::get("/orders").body(String::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        challenges(&res),
        ["DPoP algs=\"ES256 ES384 EdDSA PS256 RS256\""]
    );
}

#[test]
fn bad_settings_are_named() {
    let s = setup(false);
    for (b, setting) in [
        (dpop(&s).algorithms([]), "dpop_algorithms"),
        (dpop(&s).algorithms([Algorithm::HS256]), "dpop_algorithms"),
        (dpop(&s).max_proof_size(0), "dpop_max_proof_size"),
        (
            dpop(&s).iat_leeway(Duration::from_secs(3601)),
            "dpop_iat_leeway",
        ),
        (
            dpop(&s).replay_cache_capacity(0),
            "dpop_replay_cache_capacity",
        ),
        (
            dpop(&s).external_url("api.example.com"),
            "dpop_external_url",
        ),
        (
            dpop(&s).external_url("https://a.example/?x"),
            "dpop_external_url",
        ),
    ] {
        assert_eq!(b.build().unwrap_err().setting(), setting);
    }
    // A path prefix is kept, a trailing slash is not doubled.
    let auth = dpop(&s)
        .external_url("https://Example.com/api/")
        .build()
        .unwrap();
    assert_eq!(
        auth.inner.external_url.as_deref(),
        Some("https://example.com/api")
    );
}

/// A shared replay store in memory, for the tests: what every instance sees.
#[cfg(feature = "revocation")]
#[derive(Clone, Default)]
struct MemoryShared(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<[u8; 32], SystemTime>>>,
);

#[cfg(feature = "revocation")]
impl DpopReplayStore for MemoryShared {
    fn insert(
        &self,
        key: [u8; 32],
        expires: SystemTime,
        now: SystemTime,
    ) -> crate::StoreFuture<'_, bool> {
        let mut seen = self.0.lock().unwrap();
        let new = seen.get(&key).is_none_or(|&e| e <= now);
        if new {
            seen.insert(key, expires);
        }
        Box::pin(std::future::ready(Ok(new)))
    }
}

/// A shared replay store that is down.
#[cfg(feature = "revocation")]
struct DownShared;

#[cfg(feature = "revocation")]
impl DpopReplayStore for DownShared {
    fn insert(&self, _: [u8; 32], _: SystemTime, _: SystemTime) -> crate::StoreFuture<'_, bool> {
        Box::pin(std::future::ready(Err(crate::StoreError::new(
            crate::StoreErrorKind::Unavailable,
            "store down",
        ))))
    }
}

#[cfg(feature = "revocation")]
#[tokio::test]
async fn a_shared_replay_store_refuses_a_proof_another_instance_saw() {
    let s = setup(false);
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let t = token(Some(key.thumbprint()));
    let p = good(&key, &t);
    let req = || request("GET", "/orders", &format!("DPoP {t}"), &[&p]);
    // Without a shared store, a second instance (its own cache) accepts the replay.
    let (a, b) = (dpop(&s).build().unwrap(), dpop(&s).build().unwrap());
    assert_eq!(send(a, req()).await.status(), StatusCode::OK);
    assert_eq!(send(b, req()).await.status(), StatusCode::OK);
    // With one, it refuses it.
    let store = MemoryShared::default();
    let shared = || dpop(&s).shared_replay_store(store.clone()).build().unwrap();
    let p = good(&key, &t);
    let req = || request("GET", "/orders", &format!("DPoP {t}"), &[&p]);
    assert_eq!(send(shared(), req()).await.status(), StatusCode::OK);
    assert_dpop_error(
        &send(shared(), req()).await,
        "invalid_dpop_proof",
        "dpop proof replayed",
    );
    // A fresh proof passes on any instance.
    let p = good(&key, &t);
    let res = send(
        shared(),
        request("GET", "/orders", &format!("DPoP {t}"), &[&p]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[cfg(feature = "revocation")]
#[tokio::test]
async fn a_shared_replay_store_that_is_down_fails_closed() {
    let s = setup(false);
    let auth = dpop(&s).shared_replay_store(DownShared).build().unwrap();
    let key = DpopKey::generate(Algorithm::EdDSA).unwrap();
    let t = token(Some(key.thumbprint()));
    let res = send(
        auth,
        request("GET", "/orders", &format!("DPoP {t}"), &[&good(&key, &t)]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
}

/// The SQLite store: shared by two instances on one file, an entry taken over once expired.
#[cfg(all(feature = "revocation", feature = "sqlite"))]
#[tokio::test]
async fn the_sqlite_replay_store_is_shared_and_forgets_expired_entries() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("dpop.db").display());
    let one = SqliteReplayStore::connect(&url).await.unwrap();
    let two = SqliteReplayStore::connect(&url).await.unwrap();
    let key = [7u8; 32];
    let expires = at(NOW + 60);
    assert!(one.insert(key, expires, at(NOW)).await.unwrap());
    assert!(!two.insert(key, expires, at(NOW + 1)).await.unwrap());
    assert!(!one.insert(key, expires, at(NOW + 59)).await.unwrap());
    assert!(two.insert(key, at(NOW + 200), at(NOW + 60)).await.unwrap());
    assert!(!one.insert(key, at(NOW + 200), at(NOW + 61)).await.unwrap());

    // Through the authenticators.
    let s = setup(false);
    let auth_one = dpop(&s).shared_replay_store(one).build().unwrap();
    let auth_two = dpop(&s).shared_replay_store(two).build().unwrap();
    let k = DpopKey::generate(Algorithm::ES256).unwrap();
    let t = token(Some(k.thumbprint()));
    let p = good(&k, &t);
    let req = || request("GET", "/orders", &format!("DPoP {t}"), &[&p]);
    assert_eq!(send(auth_one, req()).await.status(), StatusCode::OK);
    assert_dpop_error(
        &send(auth_two.clone(), req()).await,
        "invalid_dpop_proof",
        "dpop proof replayed",
    );
}

/// RFC 9449 section 4.1's example proof (also in the fuzz corpus), checked at its `iat` for
/// its request: accepted, with the thumbprint of section 6.1's example; for another URL,
/// refused.
#[test]
fn the_rfc_9449_example_proof_is_accepted_for_its_request() {
    const PROOF: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg";
    let check = |base: &str| {
        let jwt = JwtAuthenticator::builder()
            .issuer(TrustedIssuer::new(ISS).audience("api").hmac_secret(SECRET))
            .clock(ManualClock::new(at(1_562_262_616)))
            .build()
            .unwrap();
        let dpop = DpopAuthenticator::builder(jwt)
            .external_url(base)
            .build()
            .unwrap();
        let (parts, ()) = Request::post("/token")
            .header("dpop", PROOF)
            .body(())
            .unwrap()
            .into_parts();
        dpop.check_token_request(&parts)
    };
    assert_eq!(
        check("https://server.example.com").unwrap().as_deref(),
        Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
    );
    let e = check("https://other.example.com").unwrap_err();
    assert_eq!(e.kind(), AuthErrorKind::InvalidDpopProof);
}
