//! DPoP (RFC 9449) with a foreign issuer: the client-credentials layer obtains a DPoP-bound
//! token from the real OpenID provider (its DPoP feature on, nonces required) and calls the
//! quickstart, which trusts the provider and requires nonces too; then the attacks RFC 9449
//! section 11 names, against the same token.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_auth_jwt::Algorithm;
use tower_auth_jwt::dpop::DpopKey;
use tower_auth_oauth::client_credentials::{ClientCredentials, ClientCredentialsLayer};
use tower_auth_tests::{CC_CLIENT, loopback_client, op_url};

const RESOURCE: &str = "urn:tower-auth:es256";

/// The quickstart trusting the provider's JWT access tokens for [`RESOURCE`], nonces on.
async fn quickstart(op: &str, dir: &std::path::Path) -> SocketAddr {
    let config = quickstart::config::Config::parse(&format!(
        r#"
database = "sqlite://{}"
insecure_allow_http = true
dpop_nonce = true
dpop_nonce_secret = "a test secret of at least thirty-two bytes"

[[issuers]]
issuer = "{op}"
audiences = ["{RESOURCE}"]
require_typ = "at+jwt"
"#,
        dir.join("quickstart.db").display()
    ))
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = quickstart::app(&config, addr).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn tokens(op: &str) -> ClientCredentials {
    ClientCredentials::builder(format!("{op}/token"))
        .client_id(CC_CLIENT.0)
        .client_secret(CC_CLIENT.1)
        .scopes(["read:items"])
        .resources([RESOURCE])
        .http_client(loopback_client())
        .dpop(DpopKey::generate(Algorithm::ES256).unwrap())
        .build()
        .unwrap()
}

/// `GET url` with `Authorization: {authorization}` and `proof`; status, headers, body.
async fn get(url: &str, authorization: &str, proof: Option<&str>) -> (u16, HeaderMap, String) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::get(url).header("authorization", authorization);
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    let res = client
        .request(req.body(Full::default()).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

/// The `error` of the `DPoP` challenge.
fn dpop_error(headers: &HeaderMap) -> String {
    let dpop = headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("DPoP "))
        .unwrap_or_else(|| panic!("no DPoP challenge: {headers:?}"));
    let at = dpop.find("error=\"").unwrap_or_else(|| panic!("{dpop}"));
    dpop[at + 7..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn a_dpop_bound_token_from_the_provider_calls_the_quickstart() {
    let op = op_url();
    let dir = tempfile::tempdir().unwrap();
    let api = quickstart(&op, dir.path()).await;
    let base = format!("http://{api}");
    let tokens = tokens(&op);

    // Success through the layer: the provider asks for its nonce, then binds the token; the
    // quickstart asks for its own, and the layer sends the request again with it.
    let http: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let client = ClientCredentialsLayer::new(tokens.clone())
        .insecure_allow_http(true)
        .layer(http);
    for path in ["/me", "/items"] {
        let res = client
            .clone()
            .oneshot(
                Request::get(format!("{base}{path}"))
                    .body(Full::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        if path == "/me" {
            let body = res.into_body().collect().await.unwrap().to_bytes();
            let me: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(me["subject"], CC_CLIENT.0);
            assert_eq!(me["scheme"], "jwt");
            assert_eq!(me["issuer"], op.as_str());
        }
    }

    // The token: DPoP-bound by the provider to the client's key.
    let authorization = tokens
        .token()
        .await
        .unwrap()
        .authorization()
        .to_str()
        .unwrap()
        .to_owned();
    let token = authorization.strip_prefix("DPoP ").unwrap().to_owned();
    let key = tokens.dpop_key().unwrap();
    {
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(claims["cnf"]["jkt"], key.thumbprint());
    }
    let me = format!("{base}/me");

    // Nonce required: a proof without one gets use_dpop_nonce and the nonce; with it, 200.
    let p = key.proof("GET", &me, Some(&token), None).unwrap();
    let (status, headers, _) = get(&me, &authorization, Some(&p)).await;
    assert_eq!(status, 401);
    assert_eq!(dpop_error(&headers), "use_dpop_nonce");
    let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();
    let proof = |method: &str, url: &str, ath: &str| {
        key.proof(method, url, Some(ath), Some(&nonce)).unwrap()
    };
    let p = proof("GET", &me, &token);
    let (status, _, body) = get(&me, &authorization, Some(&p)).await;
    assert_eq!(status, 200, "{body}");

    // Replayed proof.
    let (status, headers, _) = get(&me, &authorization, Some(&p)).await;
    assert_eq!(status, 401);
    assert_eq!(dpop_error(&headers), "invalid_dpop_proof");

    // A proof for another method, for another URL, with a wrong `ath`.
    for p in [
        proof("POST", &me, &token),
        proof("GET", &format!("{base}/items"), &token),
        proof("GET", &me, "another-token"),
    ] {
        let (status, headers, _) = get(&me, &authorization, Some(&p)).await;
        assert_eq!(status, 401);
        assert_eq!(dpop_error(&headers), "invalid_dpop_proof");
    }

    // The token as Bearer.
    let (status, headers, _) = get(&me, &format!("Bearer {token}"), None).await;
    assert_eq!(status, 401);
    let bearer = headers["www-authenticate"].to_str().unwrap();
    assert!(
        bearer.starts_with("Bearer ") && bearer.contains("error=\"invalid_token\""),
        "{bearer}"
    );

    // A proof by a key other than the token's `cnf.jkt`.
    let other = DpopKey::generate(Algorithm::ES256).unwrap();
    let p = other.proof("GET", &me, Some(&token), Some(&nonce)).unwrap();
    let (status, headers, _) = get(&me, &authorization, Some(&p)).await;
    assert_eq!(status, 401);
    assert_eq!(dpop_error(&headers), "invalid_dpop_proof");

    // A stale `iat` (the nonce is current, the proof is not).
    let p = key
        .proof_at(
            "GET",
            &me,
            Some(&token),
            Some(&nonce),
            SystemTime::now() - Duration::from_secs(300),
        )
        .unwrap();
    let (status, headers, _) = get(&me, &authorization, Some(&p)).await;
    assert_eq!(status, 401);
    assert_eq!(dpop_error(&headers), "invalid_dpop_proof");
}
