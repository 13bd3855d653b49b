//! Shared helpers of the integration tests: test keys, token minting, a stack to send requests
//! through.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, Response, StatusCode};
use jsonwebtoken::EncodingKey;
use serde_json::{Value, json};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_auth_core::clock::ManualClock;
use tower_auth_core::{AuthenticateLayer, Principal};
use tower_auth_jwt::JwtAuthenticator;

pub const ISS: &str = "https://issuer.example.com";
pub const AUD: &str = "orders-api";
pub const HMAC_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";

/// 2026-01-01T00:00:00Z: "now" in the tests.
pub const NOW: u64 = 1_767_225_600;

pub fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

pub fn data_str(name: &str) -> String {
    String::from_utf8(data(name)).unwrap()
}

pub fn clock() -> ManualClock {
    ManualClock::new(at(NOW))
}

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A private key to sign test tokens with.
#[derive(Clone)]
pub struct Signer {
    pub alg: jsonwebtoken::Algorithm,
    pub key: EncodingKey,
}

impl Signer {
    pub fn hmac(alg: jsonwebtoken::Algorithm, secret: &[u8]) -> Self {
        Self {
            alg,
            key: EncodingKey::from_secret(secret),
        }
    }
    pub fn rs256() -> Self {
        Self::rsa(jsonwebtoken::Algorithm::RS256, "rsa_private.pem")
    }
    pub fn rsa(alg: jsonwebtoken::Algorithm, file: &str) -> Self {
        Self {
            alg,
            key: EncodingKey::from_rsa_pem(&data(file)).unwrap(),
        }
    }
    pub fn es256() -> Self {
        Self {
            alg: jsonwebtoken::Algorithm::ES256,
            key: EncodingKey::from_ec_pem(&data("ec256_private.pem")).unwrap(),
        }
    }
    pub fn es384() -> Self {
        Self {
            alg: jsonwebtoken::Algorithm::ES384,
            key: EncodingKey::from_ec_pem(&data("ec384_private.pem")).unwrap(),
        }
    }
    pub fn eddsa() -> Self {
        Self {
            alg: jsonwebtoken::Algorithm::EdDSA,
            key: EncodingKey::from_ed_pem(&data("ed25519_private.pem")).unwrap(),
        }
    }
    pub fn alg_name(&self) -> String {
        serde_json::to_value(self.alg)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64_json(v: &Value) -> String {
    b64(serde_json::to_vec(v).unwrap())
}

/// Signs `header.payload` exactly as given (any header members, any claims).
pub fn sign_raw(header: &Value, claims: &Value, signer: &Signer) -> String {
    let input = format!("{}.{}", b64_json(header), b64_json(claims));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &signer.key, signer.alg).unwrap();
    format!("{input}.{sig}")
}

/// A token with header `{"alg": <signer's>, "typ": "JWT"}` merged with `extra_header`.
pub fn mint_with(claims: &Value, signer: &Signer, extra_header: &Value) -> String {
    let mut header = json!({ "alg": signer.alg_name(), "typ": "JWT" });
    for (k, v) in extra_header.as_object().unwrap() {
        header[k] = v.clone();
    }
    sign_raw(&header, claims, signer)
}

pub fn mint(claims: &Value, signer: &Signer) -> String {
    mint_with(claims, signer, &json!({}))
}

/// Valid claims for [`ISS`] / [`AUD`] at [`NOW`].
pub fn claims() -> Value {
    json!({
        "iss": ISS,
        "sub": "alice",
        "aud": AUD,
        "iat": NOW - 10,
        "exp": NOW + 300,
        "scope": "orders:read orders:write",
        "jti": "token-1",
    })
}

pub fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

pub fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

/// What the inner service saw.
pub struct Outcome {
    pub status: StatusCode,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<String>,
    pub principal: Option<Principal>,
}

impl Outcome {
    /// Asserts the response is 401 `invalid_token` with this description.
    #[track_caller]
    pub fn assert_invalid_token(&self, description: &str) {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{description}");
        let www = self.www_authenticate.as_deref().unwrap_or_default();
        assert!(
            www.contains("error=\"invalid_token\""),
            "expected invalid_token, got {www:?}"
        );
        assert!(
            www.contains(&format!("error_description=\"{description}\"")),
            "expected {description:?}, got {www:?}"
        );
        assert!(self.principal.is_none());
    }

    /// Asserts the response is 503 with `Retry-After`, the inner service not called.
    #[track_caller]
    #[allow(dead_code)]
    pub fn assert_unavailable(&self) {
        assert_eq!(self.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(self.retry_after.is_some(), "503 without Retry-After");
        assert!(self.principal.is_none());
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Principal {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "rejected: {:?}",
            self.www_authenticate
        );
        self.principal.as_ref().unwrap()
    }
}

/// Sends one request through `AuthenticateLayer::required(auth)` + a `service_fn` that returns
/// the principal it was given.
pub async fn send(auth: &JwtAuthenticator, req: Request<()>) -> Outcome {
    let (tx, rx) = std::sync::mpsc::channel();
    let inner = service_fn(move |req: Request<()>| {
        let tx = tx.clone();
        async move {
            tx.send(req.extensions().get::<Principal>().cloned())
                .unwrap();
            Ok::<_, Infallible>(Response::new(()))
        }
    });
    let mut svc = AuthenticateLayer::required(auth.clone()).layer(inner);
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    let principal = rx.try_recv().ok().flatten();
    Outcome {
        status: res.status(),
        www_authenticate: res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned()),
        retry_after: res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned()),
        principal,
    }
}

pub fn bearer(token: &str) -> Request<()> {
    Request::get("/orders")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
}

pub async fn send_token(auth: &JwtAuthenticator, token: &str) -> Outcome {
    send(auth, bearer(token)).await
}

/// A request whose Authorization header carries `token` as given (it may not be token68).
pub fn bearer_raw(token: &str) -> Request<()> {
    let value = http::HeaderValue::from_bytes(format!("Bearer {token}").as_bytes()).unwrap();
    let mut req = Request::get("/orders").body(()).unwrap();
    req.headers_mut().insert("authorization", value);
    req
}
