#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use hmac::{KeyInit, Mac};
use http::{HeaderValue, Response};
use http_body_util::Full;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower_auth_core::PrincipalKind;
use tower_auth_core::clock::ManualClock;
use tower_auth_jwt::remote::Metadata;
use tower_auth_jwt::{KeySet, MAX_LEEWAY, StaticKeys, VerifyingKey};

use super::*;

const ISSUER: &str = "https://idp.test";
const CLIENT: &str = "web-app";
const SECRET: &str = "web-app-secret";
const REDIRECT: &str = "https://app.test/callback";
const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn sign(header: &Value, claims: &Value, key: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{h}.{p}").as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{h}.{p}.{sig}")
}

fn now_secs(clock: &ManualClock) -> u64 {
    clock.now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A token request's form and its `Authorization` header.
type Seen = (Vec<(String, String)>, Option<String>);

/// What the fake token endpoint saw and what it answers.
#[derive(Default)]
struct Endpoint {
    /// The form of the last token request, and its Authorization header.
    seen: Option<Seen>,
    /// The challenge of the login being completed, checked against the verifier like a real
    /// authorization server does.
    challenge: Option<String>,
    /// The token response body; `None` answers `invalid_grant`.
    answer: Option<Value>,
    /// A raw answer (status, body) that overrides everything else.
    raw: Option<(u16, &'static str)>,
}

struct Harness {
    login: Login,
    clock: ManualClock,
    endpoint: Arc<Mutex<Endpoint>>,
}

fn harness_with(f: impl FnOnce(LoginBuilder) -> LoginBuilder) -> Harness {
    harness_at(UNIX_EPOCH + Duration::from_secs(1_800_000_000), f)
}

fn harness_at(t0: std::time::SystemTime, f: impl FnOnce(LoginBuilder) -> LoginBuilder) -> Harness {
    let clock = ManualClock::new(t0);
    let endpoint = Arc::new(Mutex::new(Endpoint::default()));
    let ep = Arc::clone(&endpoint);
    let service = tower::service_fn(move |req: http::Request<Full<Bytes>>| {
        let ep = Arc::clone(&ep);
        async move {
            use http_body_util::BodyExt as _;
            let auth = req
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
            let mut ep = ep.lock().unwrap();
            let verifier = form
                .iter()
                .find(|(k, _)| k == "code_verifier")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let pkce_ok = ep.challenge.as_deref()
                == Some(&URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())));
            ep.seen = Some((form, auth));
            let (status, body) = match (ep.raw, &ep.answer, pkce_ok) {
                (Some((status, body)), _, _) => (status, body.to_owned()),
                (None, Some(a), true) => (200, a.to_string()),
                _ => (400, json!({"error": "invalid_grant"}).to_string()),
            };
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap(),
            )
        }
    });
    let http = HttpClient::builder().service(service).build().unwrap();
    let keys = StaticKeys::new(
        KeySet::new([VerifyingKey::hmac_secret(KEY).unwrap().with_kid("k1")]).unwrap(),
    );
    let store = MemoryStore::builder().clock(clock.clone()).build().unwrap();
    let builder = Login::builder(ISSUER)
        .authorization_endpoint("https://idp.test/authorize")
        .token_endpoint("https://idp.test/token")
        .client_id(CLIENT)
        .client_secret(SECRET)
        .redirect_uri(REDIRECT)
        .scopes(["email", "openid"])
        .http_client(http)
        .key_source(keys)
        .algorithms([Algorithm::HS256])
        .store(store)
        .clock(clock.clone());
    Harness {
        login: f(builder).build().unwrap(),
        clock,
        endpoint,
    }
}

fn harness() -> Harness {
    harness_with(|b| b)
}

/// A started login: the cookie value and the authorization request's parameters.
struct Started {
    cookie: String,
    set_cookie: String,
    params: Vec<(String, String)>,
}

impl Started {
    fn param(&self, name: &str) -> &str {
        let mut found = self.params.iter().filter(|(k, _)| k == name);
        let v = &found.next().unwrap_or_else(|| panic!("no {name}")).1;
        assert!(found.next().is_none(), "{name} twice");
        v
    }
}

async fn start(h: &Harness) -> Started {
    let s = h.login.start().await.unwrap();
    let url = s.authorize_url().to_owned();
    let (base, query) = url.split_once('?').unwrap();
    assert_eq!(base, "https://idp.test/authorize");
    let set_cookie = s.set_cookie().to_str().unwrap().to_owned();
    let cookie = set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    Started {
        cookie,
        set_cookie,
        params: form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
    }
}

fn good_claims(h: &Harness, nonce: &str) -> Value {
    let now = now_secs(&h.clock);
    json!({
        "iss": ISSUER, "sub": "alice", "aud": CLIENT, "exp": now + 300, "iat": now,
        "nonce": nonce, "email": "alice@example.test",
    })
}

fn answer(h: &Harness, started: &Started, id_token: Option<String>) {
    let mut ep = h.endpoint.lock().unwrap();
    ep.challenge = Some(started.param("code_challenge").to_owned());
    let mut body = json!({
        "access_token": "at-123", "token_type": "Bearer", "expires_in": 300,
        "refresh_token": "rt-456", "scope": "openid email",
    });
    if let Some(t) = id_token {
        body["id_token"] = Value::String(t);
    }
    ep.answer = Some(body);
}

fn hs256() -> Value {
    json!({"alg": "HS256", "kid": "k1"})
}

async fn complete_with(h: &Harness, claims: Value) -> Result<LoggedIn, LoginError> {
    let s = start(h).await;
    let mut claims = claims;
    if claims["nonce"] == "<nonce>" {
        claims["nonce"] = Value::String(s.param("nonce").to_owned());
    }
    answer(h, &s, Some(sign(&hs256(), &claims, KEY)));
    let q = format!("code=the-code&state={}", s.param("state"));
    h.login.callback(Some(&s.cookie), &q).await
}

#[tokio::test]
async fn authorize_url_has_s256_challenge_state_nonce_and_exact_redirect() {
    let h = harness_with(|b| b.resources(["https://api.test"]));
    let s = start(&h).await;
    assert_eq!(s.param("response_type"), "code");
    assert_eq!(s.param("client_id"), CLIENT);
    assert_eq!(s.param("redirect_uri"), REDIRECT);
    assert_eq!(s.param("scope"), "openid email", "openid first, once");
    assert_eq!(s.param("code_challenge_method"), "S256");
    assert_eq!(s.param("resource"), "https://api.test");
    // 256-bit random values, base64url: 43 characters.
    for name in ["state", "nonce", "code_challenge"] {
        assert_eq!(s.param(name).len(), 43, "{name}");
    }
    assert_eq!(s.cookie.len(), 43);
    let other = start(&h).await;
    assert_ne!(s.param("state"), other.param("state"));
    assert_ne!(s.param("nonce"), other.param("nonce"));
    assert_ne!(s.param("code_challenge"), other.param("code_challenge"));
    assert_ne!(s.cookie, other.cookie);
    assert_ne!(s.param("state"), s.cookie, "the cookie id is not the state");
}

#[tokio::test]
async fn challenge_is_sha256_of_the_verifier_sent_at_exchange() {
    let h = harness();
    let s = start(&h).await;
    answer(&h, &s, None);
    let q = format!("code=the-code&state={}", s.param("state"));
    let _ = h.login.callback(Some(&s.cookie), &q).await;
    let (form, auth) = h.endpoint.lock().unwrap().seen.clone().unwrap();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let verifier = get("code_verifier").unwrap();
    assert!(verifier.len() >= 43);
    assert_eq!(
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        s.param("code_challenge")
    );
    assert_eq!(get("grant_type").as_deref(), Some("authorization_code"));
    assert_eq!(get("code").as_deref(), Some("the-code"));
    assert_eq!(get("redirect_uri").as_deref(), Some(REDIRECT));
    let basic = STANDARD.encode(format!("{CLIENT}:{SECRET}"));
    assert_eq!(auth, Some(format!("Basic {basic}")));
}

#[tokio::test]
async fn cookie_attributes() {
    let h = harness();
    let s = start(&h).await;
    assert_eq!(
        s.set_cookie,
        format!(
            "__Host-tower_auth_login={}; Max-Age=600; Path=/; HttpOnly; Secure; SameSite=Lax",
            s.cookie
        )
    );
    assert!(h.login.start().await.unwrap().set_cookie().is_sensitive());
    assert_eq!(
        h.login.clear_cookie(),
        "__Host-tower_auth_login=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax"
    );

    let dev = harness_with(|b| {
        b.redirect_uri("http://127.0.0.1:3000/callback")
            .insecure_http_redirect_uri(true)
            .pending_ttl(Duration::from_secs(120))
    });
    let s = start(&dev).await;
    assert_eq!(
        s.set_cookie,
        format!(
            "tower_auth_login={}; Max-Age=120; Path=/; HttpOnly; SameSite=Lax",
            s.cookie
        )
    );
    let res: Response<String> = dev.login.start().await.unwrap().into_response();
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("https://idp.test/authorize?")
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn success_returns_identity_and_tokens() {
    let h = harness();
    let user = complete_with(&h, good_claims(&h, "<nonce>")).await.unwrap();
    assert_eq!(user.subject(), "alice");
    assert_eq!(user.issuer(), ISSUER);
    assert_eq!(user.email(), Some("alice@example.test"));
    assert_eq!(user.access_token(), "at-123");
    assert_eq!(user.refresh_token(), Some("rt-456"));
    assert_eq!(user.expires_in(), Some(Duration::from_secs(300)));
    let p = user.to_principal();
    assert_eq!(p.subject(), "alice");
    assert_eq!(p.kind(), PrincipalKind::User);
    let d = format!("{user:?}");
    assert!(
        !d.contains("at-123") && !d.contains("rt-456") && !d.contains("eyJ"),
        "{d}"
    );
}

#[tokio::test]
async fn callback_works_once() {
    let h = harness();
    let s = start(&h).await;
    let nonce = s.param("nonce").to_owned();
    answer(&h, &s, Some(sign(&hs256(), &good_claims(&h, &nonce), KEY)));
    let q = format!("code=the-code&state={}", s.param("state"));
    let _user = h.login.callback(Some(&s.cookie), &q).await.unwrap();
    let again = h.login.callback(Some(&s.cookie), &q).await.unwrap_err();
    assert!(matches!(again, LoginError::UnknownLogin), "{again:?}");
    assert_eq!(again.status(), 400);
}

#[tokio::test]
async fn forged_state_is_refused_and_leaves_the_login_pending() {
    let h = harness();
    let s = start(&h).await;
    let nonce = s.param("nonce").to_owned();
    answer(&h, &s, Some(sign(&hs256(), &good_claims(&h, &nonce), KEY)));
    // A forged callback (cross-site top-level GET, the victim's cookie rides along).
    for q in [
        "code=the-code&state=forged",
        "error=access_denied&state=forged",
    ] {
        let e = h.login.callback(Some(&s.cookie), q).await.unwrap_err();
        assert!(matches!(e, LoginError::UnknownLogin), "{e:?}");
        assert_eq!(e.status(), 400);
    }
    assert!(h.endpoint.lock().unwrap().seen.is_none(), "no exchange");
    // No state at all.
    let e = h
        .login
        .callback(Some(&s.cookie), "code=the-code")
        .await
        .unwrap_err();
    assert!(matches!(e, LoginError::StateMismatch), "{e:?}");
    // The genuine callback still completes the login, once.
    let q = format!("code=the-code&state={}", s.param("state"));
    let user = h.login.callback(Some(&s.cookie), &q).await.unwrap();
    assert_eq!(user.subject(), "alice");
    let e = h.login.callback(Some(&s.cookie), &q).await.unwrap_err();
    assert!(matches!(e, LoginError::UnknownLogin), "{e:?}");
}

#[tokio::test]
async fn a_login_started_by_another_login_is_refused() {
    // Two providers (or clients) sharing one store and one cookie name: a callback for B
    // reaching A (mix-up) is refused, and nothing is exchanged at A's token endpoint.
    type Change = fn(LoginBuilder) -> LoginBuilder;
    let others: [(&str, Change); 3] = [
        ("issuer", |b| {
            let mut b = b.key_source(StaticKeys::new(
                KeySet::new([VerifyingKey::hmac_secret(KEY).unwrap().with_kid("k1")]).unwrap(),
            ));
            b.issuer = "https://other-idp.test".into();
            b
        }),
        ("client_id", |b| b.client_id("other-app")),
        ("redirect_uri", |b| {
            b.redirect_uri("https://app.test/other-callback")
        }),
    ];
    for (what, change) in others {
        let store = MemoryStore::new();
        let a = harness_with(|b| b.store(store.clone()));
        let b = harness_with(|b| change(b.store(store.clone())));
        assert_eq!(a.login.cookie_name(), b.login.cookie_name());
        let s = start(&b).await;
        answer(&a, &s, None);
        let q = format!("code=c&state={}", s.param("state"));
        let e = a.login.callback(Some(&s.cookie), &q).await.unwrap_err();
        assert!(matches!(e, LoginError::ProviderMismatch), "{what}: {e:?}");
        assert_eq!(e.status(), 400);
        assert!(
            a.endpoint.lock().unwrap().seen.is_none(),
            "{what}: no exchange"
        );
    }
}

#[tokio::test]
async fn missing_or_unknown_cookie() {
    let h = harness();
    let s = start(&h).await;
    let q = format!("code=c&state={}", s.param("state"));
    let e = h.login.callback(None, &q).await.unwrap_err();
    assert!(matches!(e, LoginError::MissingCookie), "{e:?}");
    let e = h
        .login
        .callback(Some("someone-else"), &q)
        .await
        .unwrap_err();
    assert!(matches!(e, LoginError::UnknownLogin), "{e:?}");
}

#[tokio::test]
async fn expired_pending_login() {
    let h = harness();
    let s = start(&h).await;
    h.clock.advance(DEFAULT_PENDING_TTL);
    let q = format!("code=c&state={}", s.param("state"));
    let e = h.login.callback(Some(&s.cookie), &q).await.unwrap_err();
    assert!(matches!(e, LoginError::Expired), "{e:?}");
    assert!(h.endpoint.lock().unwrap().seen.is_none(), "no exchange");
}

#[tokio::test]
async fn provider_errors() {
    let h = harness();
    let s = start(&h).await;
    let q = format!("error=access_denied&state={}", s.param("state"));
    let e = h.login.callback(Some(&s.cookie), &q).await.unwrap_err();
    assert!(matches!(e, LoginError::AccessDenied), "{e:?}");
    assert_eq!(e.status(), 403);

    let s = start(&h).await;
    let q = format!(
        "error=%3Cscript%3E&error_description=%3Cb%3Ehi&state={}",
        s.param("state")
    );
    let e = h.login.callback(Some(&s.cookie), &q).await.unwrap_err();
    assert!(!e.to_string().contains("script") && !e.to_string().contains("hi"));
    let res: Response<String> = h.login.error_response(&e);
    assert!(!res.body().contains("script"));
    assert_eq!(res.headers()["set-cookie"], h.login.clear_cookie());
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");

    // An error with a forged state finds no login: not taken at face value.
    let s = start(&h).await;
    let e = h
        .login
        .callback(Some(&s.cookie), "error=access_denied&state=forged")
        .await
        .unwrap_err();
    assert!(matches!(e, LoginError::UnknownLogin), "{e:?}");
}

#[tokio::test]
async fn callback_issuer_is_checked() {
    let h = harness();
    let s = start(&h).await;
    let q = format!(
        "code=c&state={}&iss=https%3A%2F%2Fevil.test",
        s.param("state")
    );
    let e = h.login.callback(Some(&s.cookie), &q).await.unwrap_err();
    assert!(matches!(e, LoginError::IssuerMismatch), "{e:?}");

    let h = harness_with(|b| b.require_issuer_in_callback(true));
    let s = start(&h).await;
    let q = format!("code=c&state={}", s.param("state"));
    let e = h.login.callback(Some(&s.cookie), &q).await.unwrap_err();
    assert!(matches!(e, LoginError::IssuerMismatch), "{e:?}");
}

#[tokio::test]
async fn duplicate_parameters_are_malformed() {
    let h = harness();
    let s = start(&h).await;
    let q = format!("code=a&code=b&state={}", s.param("state"));
    let e = h.login.callback(Some(&s.cookie), &q).await.unwrap_err();
    assert!(matches!(e, LoginError::MalformedCallback), "{e:?}");
}

#[tokio::test]
async fn rejected_code() {
    let h = harness();
    let s = start(&h).await;
    // The endpoint expects another challenge: as if the verifier had been tampered with.
    answer(&h, &s, None);
    h.endpoint.lock().unwrap().answer = Some(json!({"access_token": "x", "token_type": "Bearer"}));
    h.endpoint.lock().unwrap().challenge = Some("not-the-challenge".into());
    let q = format!("code=c&state={}", s.param("state"));
    let e = h.login.callback(Some(&s.cookie), &q).await.unwrap_err();
    assert!(
        matches!(&e, LoginError::CodeRejected(c) if c.as_str() == "invalid_grant"),
        "{e:?}"
    );
    assert_eq!(e.status(), 400);
}

#[tokio::test]
async fn id_token_checks() {
    let h = harness();
    let now = now_secs(&h.clock);
    let base = good_claims(&h, "<nonce>");
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "issuer",
            with("iss", json!("https://evil.test")),
            "wrong issuer",
        ),
        (
            "audience",
            with("aud", json!("other-client")),
            "wrong audience",
        ),
        (
            "several audiences without azp",
            with("aud", json!([CLIENT, "other"])),
            "wrong authorized party",
        ),
        (
            "azp for another",
            with("azp", json!("other")),
            "wrong authorized party",
        ),
        ("expired", with("exp", json!(now - 61)), "expired"),
        ("no exp", without("exp"), "no expiry"),
        (
            "future iat",
            with("iat", json!(now + 120)),
            "issued in the future",
        ),
        (
            "old iat",
            with("iat", json!(now - 400)),
            "issued too long ago",
        ),
        ("nbf", with("nbf", json!(now + 120)), "not yet valid"),
        ("no sub", without("sub"), "no subject"),
    ];
    for (name, claims, why) in cases {
        let e = complete_with(&h, claims).await.unwrap_err();
        assert!(
            matches!(e, LoginError::InvalidIdToken(w) if w == why),
            "{name}: {e:?}"
        );
    }
    // Several audiences with azp = us: fine.
    let mut c = with("aud", json!([CLIENT, "other"]));
    c["azp"] = json!(CLIENT);
    let _user = complete_with(&h, c).await.unwrap();
    // Within the leeway: fine.
    let _user = complete_with(&h, with("exp", json!(now - 30)))
        .await
        .unwrap();
}

#[tokio::test]
async fn nonce_must_match() {
    let h = harness();
    for claims in [
        with_nonce(&h, Some("another-login's-nonce")),
        with_nonce(&h, None),
    ] {
        let e = complete_with(&h, claims).await.unwrap_err();
        assert!(matches!(e, LoginError::NonceMismatch), "{e:?}");
        assert_eq!(e.status(), 400);
    }
}

fn with_nonce(h: &Harness, nonce: Option<&str>) -> Value {
    let mut c = good_claims(h, "x");
    match nonce {
        Some(n) => c["nonce"] = json!(n),
        None => {
            c.as_object_mut().unwrap().remove("nonce");
        }
    }
    c
}

#[tokio::test]
async fn signature_and_algorithm() {
    let h = harness();
    let s = start(&h).await;
    let claims = good_claims(&h, s.param("nonce"));
    let cases = [
        (
            sign(&hs256(), &claims, b"another-key-another-key-another!"),
            "bad signature",
        ),
        (
            sign(&json!({"alg": "HS384", "kid": "k1"}), &claims, KEY),
            "algorithm not allowed",
        ),
        (
            sign(&json!({"alg": "none"}), &claims, KEY),
            "unsupported algorithm",
        ),
        (
            sign(
                &json!({"alg": "HS256", "kid": "k1", "crit": ["x"]}),
                &claims,
                KEY,
            ),
            "unsupported critical header",
        ),
        ("a.b".to_owned(), "not a compact JWS"),
    ];
    for (token, why) in cases {
        let s = start(&h).await;
        let mut claims = claims.clone();
        claims["nonce"] = json!(s.param("nonce"));
        let token = if token == "a.b" {
            token
        } else {
            // Re-sign with this login's nonce, keeping the case's header and key.
            let header = URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap();
            let header: Value = serde_json::from_slice(&header).unwrap();
            let key: &[u8] = if why == "bad signature" {
                b"another-key-another-key-another!"
            } else {
                KEY
            };
            sign(&header, &claims, key)
        };
        answer(&h, &s, Some(token));
        let q = format!("code=c&state={}", s.param("state"));
        let e = h.login.callback(Some(&s.cookie), &q).await.unwrap_err();
        assert!(
            matches!(e, LoginError::InvalidIdToken(w) if w == why),
            "{why}: {e:?}"
        );
    }
    // No ID token at all.
    let s = start(&h).await;
    answer(&h, &s, None);
    let q = format!("code=c&state={}", s.param("state"));
    let e = h.login.callback(Some(&s.cookie), &q).await.unwrap_err();
    assert!(matches!(e, LoginError::InvalidIdToken("missing")), "{e:?}");
}

/// The least a login needs: endpoints, a public client, a redirect URI.
fn minimal() -> LoginBuilder {
    Login::builder(ISSUER)
        .authorization_endpoint("https://idp.test/authorize")
        .token_endpoint("https://idp.test/token")
        .client_id(CLIENT)
        .redirect_uri(REDIRECT)
}

#[test]
fn build_checks() {
    assert!(minimal().build().is_ok(), "public client");
    let err = |b: LoginBuilder| b.build().unwrap_err().to_string();
    assert!(err(minimal().redirect_uri("http://app.test/callback")).contains("redirect_uri"));
    let e = err(minimal().redirect_uri("http://127.0.0.1:3000/callback"));
    assert!(e.contains("insecure_http_redirect_uri"), "{e}");
    assert!(
        minimal()
            .redirect_uri("http://127.0.0.1:3000/callback")
            .insecure_http_redirect_uri(true)
            .build()
            .is_ok()
    );
    assert!(
        minimal()
            .redirect_uri("http://app.test/callback")
            .insecure_http_redirect_uri(true)
            .build()
            .is_err(),
        "http only on loopback"
    );
    assert!(err(minimal().redirect_uri("/callback")).contains("redirect_uri"));
    assert!(err(minimal().client_id("")).contains("client_id"));
    assert!(err(minimal().client_secret("")).contains("client_secret"));
    assert!(err(minimal().token_endpoint("http://idp.test/token")).contains("token_endpoint"));
    assert!(err(minimal().pending_ttl(Duration::ZERO)).contains("pending_ttl"));
    assert!(err(minimal().cookie_name("a b")).contains("cookie_name"));
    let e = err(minimal()
        .redirect_uri("http://localhost/cb")
        .insecure_http_redirect_uri(true)
        .cookie_name("__Host-x"));
    assert!(e.contains("cookie_name"), "{e}");
    let e = Login::builder(ISSUER)
        .client_id(CLIENT)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("authorization_endpoint"));
}

#[test]
fn metadata_sets_endpoints_and_iss_requirement() {
    let doc = json!({
        "issuer": ISSUER,
        "authorization_endpoint": "https://idp.test/auth",
        "token_endpoint": "https://idp.test/token",
        "authorization_response_iss_parameter_supported": true,
    });
    let m = Metadata::from_json(doc.to_string().as_bytes(), ISSUER).unwrap();
    let b = Login::builder_from_metadata(&m).unwrap();
    assert!(b.metadata_iss);
    assert_eq!(b.require_iss, None);
    assert_eq!(
        b.authorization_endpoint.as_deref(),
        Some("https://idp.test/auth")
    );
    let m = Metadata::from_json(
        json!({"issuer": ISSUER, "token_endpoint": "https://idp.test/token"})
            .to_string()
            .as_bytes(),
        ISSUER,
    )
    .unwrap();
    assert!(Login::builder_from_metadata(&m).is_err());
}

#[tokio::test]
async fn public_client_sends_its_id_and_no_secret() {
    let h = harness_with(|b| {
        let mut b = b;
        b.registration.client_secret = None;
        b
    });
    let user = complete_with(&h, good_claims(&h, "<nonce>")).await.unwrap();
    assert_eq!(user.subject(), "alice");
    let (form, auth) = h.endpoint.lock().unwrap().seen.clone().unwrap();
    assert_eq!(auth, None);
    assert!(form.contains(&("client_id".to_owned(), CLIENT.to_owned())));
    assert!(!form.iter().any(|(k, _)| k == "client_secret"));
}

struct NeverStore;

impl PendingLoginStore for NeverStore {
    fn put(&self, _id: String, _login: PendingLogin) -> StoreFuture<'_, ()> {
        Box::pin(std::future::pending())
    }

    fn take<'a>(&'a self, _id: &'a str) -> StoreFuture<'a, Option<PendingLogin>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn store_past_its_deadline_is_503() {
    let h = harness_with(|b| b.store(NeverStore).store_timeout(Duration::from_millis(10)));
    let e = h.login.start().await.unwrap_err();
    assert!(matches!(e, LoginError::Store(_)), "{e:?}");
    let e = h
        .login
        .callback(Some("id"), "code=c&state=s")
        .await
        .unwrap_err();
    assert!(matches!(e, LoginError::Store(_)), "{e:?}");
    let res: Response<String> = h.login.error_response(&e);
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "5");
}

struct DownKeys;

impl KeySource for DownKeys {
    fn lookup(&self, _kid: Option<&str>) -> tower_auth_jwt::KeyLookup {
        tower_auth_jwt::KeyLookup::Unavailable(tower_auth_jwt::KeySourceError::new(
            "jwks endpoint unavailable",
        ))
    }
}

#[tokio::test]
async fn keys_unavailable_is_503() {
    let h = harness_with(|b| b.key_source(DownKeys));
    assert!(matches!(
        h.login.warm_up().await,
        Err(LoginError::KeysUnavailable(_))
    ));
    assert!(harness().login.warm_up().await.is_ok());
    let e = complete_with(&h, good_claims(&h, "<nonce>"))
        .await
        .unwrap_err();
    assert!(matches!(e, LoginError::KeysUnavailable(_)), "{e:?}");
    assert_eq!(e.status(), 503);
}

#[tokio::test]
async fn token_endpoint_down_is_503() {
    let down = tower::service_fn(|_req: http::Request<Full<Bytes>>| async {
        Err::<http::Response<Full<Bytes>>, _>(std::io::Error::other("connection refused"))
    });
    let http = HttpClient::builder().service(down).build().unwrap();
    let h = harness_with(|b| b.http_client(http));
    let s = start(&h).await;
    let q = format!("code=c&state={}", s.param("state"));
    let e = h.login.callback(Some(&s.cookie), &q).await.unwrap_err();
    assert!(
        matches!(e, LoginError::TokenEndpointUnavailable(_)),
        "{e:?}"
    );
    assert_eq!(e.status(), 503);
}

#[tokio::test]
async fn token_endpoint_5xx_is_503_whatever_the_body() {
    for body in [
        "<html>bad gateway</html>",
        r#"{"error":"server_error"}"#,
        "",
    ] {
        let h = harness();
        let s = start(&h).await;
        answer(&h, &s, None);
        h.endpoint.lock().unwrap().raw = Some((502, body));
        let q = format!("code=c&state={}", s.param("state"));
        let e = h.login.callback(Some(&s.cookie), &q).await.unwrap_err();
        assert!(
            matches!(e, LoginError::TokenEndpointUnavailable(_)),
            "{body}: {e:?}"
        );
        let res: Response<String> = h.login.error_response(&e);
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "5");
    }
    // A 4xx without an RFC 6749 error body is still an unusable answer (502).
    let h = harness();
    let s = start(&h).await;
    h.endpoint.lock().unwrap().raw = Some((404, "<html>not found</html>"));
    let q = format!("code=c&state={}", s.param("state"));
    let e = h.login.callback(Some(&s.cookie), &q).await.unwrap_err();
    assert!(matches!(e, LoginError::TokenEndpointMalformed), "{e:?}");
}

#[tokio::test]
async fn client_secret_post() {
    let h = harness_with(|b| b.client_auth(ClientAuth::ClientSecretPost));
    let _user = complete_with(&h, good_claims(&h, "<nonce>")).await.unwrap();
    let (form, auth) = h.endpoint.lock().unwrap().seen.clone().unwrap();
    assert_eq!(auth, None);
    assert!(form.contains(&("client_id".to_owned(), CLIENT.to_owned())));
    assert!(form.contains(&("client_secret".to_owned(), SECRET.to_owned())));
}

#[tokio::test]
async fn default_store_runs_on_the_builders_clock() {
    // The login's clock is years behind the system clock: a store on the system clock would
    // take every pending login for expired and drop it at once.
    let h = harness_at(UNIX_EPOCH + Duration::from_secs(1_000_000_000), |b| {
        let mut b = b;
        b.store = None;
        b
    });
    let user = complete_with(&h, good_claims(&h, "<nonce>")).await.unwrap();
    assert_eq!(user.subject(), "alice");
}

#[tokio::test]
async fn cookie_follows_the_redirect_uri_scheme() {
    // The insecure switch allows an http redirect URI; it does not weaken an https one.
    let h = harness_with(|b| b.insecure_http_redirect_uri(true));
    let s = start(&h).await;
    assert!(
        s.set_cookie.starts_with("__Host-tower_auth_login=") && s.set_cookie.contains("; Secure"),
        "{}",
        s.set_cookie
    );
}

#[tokio::test]
async fn success_redirect_clears_the_login_cookie() {
    let h = harness();
    let res: Response<String> = h.login.success_redirect(HeaderValue::from_static("/home"));
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/home");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    assert_eq!(res.headers()["set-cookie"], h.login.clear_cookie());
}

#[tokio::test]
async fn login_id_is_the_cookie_value() {
    let h = harness();
    let s = h.login.start().await.unwrap();
    let set_cookie = s.set_cookie().to_str().unwrap();
    assert!(set_cookie.starts_with(&format!("{}={};", LOGIN_COOKIE, s.login_id())));
}

#[tokio::test]
async fn extra_authorize_parameters() {
    let h = harness_with(|b| {
        b.authorize_param("prompt", "consent")
            .authorize_param("login_hint", "alice")
    });
    let s = start(&h).await;
    assert_eq!(s.param("prompt"), "consent");
    assert_eq!(s.param("login_hint"), "alice");
    for reserved in [
        "state",
        "nonce",
        "redirect_uri",
        "code_challenge_method",
        "scope",
        "",
    ] {
        let e = minimal()
            .authorize_param(reserved, "x")
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "authorize_param", "{reserved}");
    }
}

#[test]
fn time_settings_are_bounded() {
    let refused = [
        ("leeway", minimal().leeway(Duration::MAX)),
        (
            "leeway",
            minimal().leeway(MAX_LEEWAY + Duration::from_secs(1)),
        ),
        ("pending_ttl", minimal().pending_ttl(Duration::MAX)),
        (
            "pending_ttl",
            minimal().pending_ttl(Duration::from_millis(500)),
        ),
        ("pending_ttl", minimal().pending_ttl(Duration::ZERO)),
        (
            "pending_ttl",
            minimal().pending_ttl(MAX_PENDING_TTL + Duration::from_secs(1)),
        ),
        (
            "max_id_token_age",
            minimal().max_id_token_age(Duration::MAX),
        ),
        (
            "max_id_token_age",
            minimal().max_id_token_age(Duration::ZERO),
        ),
        (
            "max_id_token_age",
            minimal().max_id_token_age(MAX_ID_TOKEN_AGE + Duration::from_secs(1)),
        ),
    ];
    for (setting, b) in refused {
        let e = b.build().unwrap_err();
        assert_eq!(e.setting(), setting, "{e}");
    }
    minimal()
        .leeway(MAX_LEEWAY)
        .pending_ttl(MIN_PENDING_TTL)
        .max_id_token_age(MAX_ID_TOKEN_AGE)
        .build()
        .unwrap();
    minimal().pending_ttl(MAX_PENDING_TTL).build().unwrap();
}

#[tokio::test]
async fn time_checks_never_overflow_into_acceptance() {
    // Rules past any bound the builder allows: each sum overflows, and the token is refused
    // (not accepted, and no panic).
    let keys = StaticKeys::new(
        KeySet::new([VerifyingKey::hmac_secret(KEY).unwrap().with_kid("k1")]).unwrap(),
    );
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let claims = json!({
        "iss": ISSUER, "sub": "alice", "aud": CLIENT, "nonce": "n",
        "exp": 1_000_000_000u64, "iat": 1_000_000_000u64,
    });
    let token = sign(&hs256(), &claims, KEY);
    for (leeway, max_age) in [
        (Duration::MAX, Duration::from_secs(300)),
        (Duration::from_secs(60), Duration::MAX),
    ] {
        let rules = id_token::Rules {
            issuer: ISSUER,
            client_id: CLIENT,
            algorithms: &[Algorithm::HS256],
            leeway,
            max_age,
            now,
            nonce: "n",
        };
        let e = id_token::validate(&token, &keys, &rules).await.unwrap_err();
        assert!(matches!(e, LoginError::InvalidIdToken(_)), "{e:?}");
    }
}

#[test]
fn explicit_issuer_requirement_survives_the_metadata() {
    let meta = |iss_supported: bool| {
        let doc = json!({
            "issuer": ISSUER,
            "authorization_endpoint": "https://idp.test/authorize",
            "token_endpoint": "https://idp.test/token",
            "authorization_response_iss_parameter_supported": iss_supported,
        });
        Metadata::from_json(doc.to_string().as_bytes(), ISSUER).unwrap()
    };
    let base = || {
        Login::builder(ISSUER)
            .client_id(CLIENT)
            .redirect_uri(REDIRECT)
    };
    let required = |b: LoginBuilder| b.build().unwrap().inner.require_iss;
    // Set before the metadata (as discover() applies it): kept.
    assert!(required(
        base()
            .require_issuer_in_callback(true)
            .metadata(&meta(false))
            .unwrap()
    ));
    assert!(!required(
        base()
            .require_issuer_in_callback(false)
            .metadata(&meta(true))
            .unwrap()
    ));
    // Not set: the metadata decides.
    assert!(required(base().metadata(&meta(true)).unwrap()));
    assert!(!required(base().metadata(&meta(false)).unwrap()));
}

#[tokio::test]
async fn required_issuer_set_before_metadata_refuses_callbacks_without_iss() {
    let doc = json!({
        "issuer": ISSUER,
        "authorization_endpoint": "https://idp.test/authorize",
        "token_endpoint": "https://idp.test/token",
    });
    let m = Metadata::from_json(doc.to_string().as_bytes(), ISSUER).unwrap();
    let h = harness_with(|b| b.require_issuer_in_callback(true).metadata(&m).unwrap());
    let s = start(&h).await;
    let q = format!("code=c&state={}", s.param("state"));
    let e = h.login.callback(Some(&s.cookie), &q).await.unwrap_err();
    assert!(matches!(e, LoginError::IssuerMismatch), "{e:?}");
}

#[test]
fn metadata_must_support_code_and_s256() {
    let with = |extra: Value| {
        let mut doc = json!({
            "issuer": ISSUER,
            "authorization_endpoint": "https://idp.test/authorize",
            "token_endpoint": "https://idp.test/token",
        });
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        let m = Metadata::from_json(doc.to_string().as_bytes(), ISSUER).unwrap();
        Login::builder_from_metadata(&m)
            .map(drop)
            .map_err(|e| e.setting())
    };
    assert_eq!(with(json!({})), Ok(()), "absent lists are accepted");
    assert_eq!(
        with(json!({"response_types_supported": ["code", "id_token"],
                    "code_challenge_methods_supported": ["plain", "S256"]})),
        Ok(())
    );
    assert_eq!(
        with(json!({"response_types_supported": ["id_token", "code id_token"]})),
        Err("response_types_supported")
    );
    assert_eq!(
        with(json!({"code_challenge_methods_supported": ["plain"]})),
        Err("code_challenge_methods_supported")
    );
    assert_eq!(
        with(json!({"code_challenge_methods_supported": "S256"})),
        Err("code_challenge_methods_supported")
    );
}

/// An RSA key pair for RS256 ID tokens.
struct Rsa {
    pair: aws_lc_rs::rsa::KeyPair,
    /// The public key, PKCS #1 DER.
    der: Vec<u8>,
}

impl Rsa {
    fn new() -> Self {
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = pair.public_key().as_ref().to_vec();
        Self { pair, der }
    }

    fn pem(&self) -> String {
        let b64 = STANDARD.encode(&self.der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    fn sign(&self, claims: &Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "kid": "rsa"}).to_string());
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                format!("{h}.{p}").as_bytes(),
                &mut sig,
            )
            .unwrap();
        format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

#[tokio::test]
async fn default_algorithms_refuse_hmac_even_keyed_with_the_public_key() {
    let rsa = Rsa::new();
    let pem = rsa.pem();
    let key = VerifyingKey::from_pem(&pem).unwrap().with_kid("rsa");
    let h = harness_with(|b| {
        let mut b = b.key_source(StaticKeys::new(KeySet::new([key]).unwrap()));
        // Back to the default allow-list (the harness narrows it to HS256).
        b.algorithms = Login::builder(ISSUER).algorithms;
        b
    });
    assert!(!h.login.inner.algorithms.contains(&Algorithm::HS256));

    // The algorithm-confusion forgery: HS256 keyed with the provider's public key (its PEM
    // text, its DER bytes), which anyone can fetch.
    let header = json!({"alg": "HS256", "kid": "rsa"});
    for secret in [pem.as_bytes(), rsa.der.as_slice()] {
        let s = start(&h).await;
        let claims = good_claims(&h, s.param("nonce"));
        answer(&h, &s, Some(sign(&header, &claims, secret)));
        let q = format!("code=c&state={}", s.param("state"));
        let e = h.login.callback(Some(&s.cookie), &q).await.unwrap_err();
        assert!(
            matches!(e, LoginError::InvalidIdToken("algorithm not allowed")),
            "{e:?}"
        );
    }

    // RS256 signed with the private key: accepted.
    let s = start(&h).await;
    let claims = good_claims(&h, s.param("nonce"));
    answer(&h, &s, Some(rsa.sign(&claims)));
    let q = format!("code=c&state={}", s.param("state"));
    let user = h.login.callback(Some(&s.cookie), &q).await.unwrap();
    assert_eq!(user.subject(), "alice");
}
