//! DPoP (RFC 9449) end to end against the quickstart's built-in issuer: a login with a proof
//! binds the tokens, the protected routes take `Authorization: DPoP` with a fresh proof, and
//! every attack of RFC 9449 section 11 the quickstart claims to stop is refused.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tower_auth_jwt::Algorithm;
use tower_auth_jwt::dpop::DpopKey;

mod common;

use common::serve_with;

/// Starts the quickstart on a free port with `extra` configuration.
async fn serve(dir: &Path, extra: &str) -> (tokio::process::Child, String) {
    let config = dir.join("quickstart.toml");
    std::fs::write(&config, format!("listen = \"127.0.0.1:0\"\n{extra}")).unwrap();
    serve_with(dir, &config).await
}

/// A request; returns the status, the headers and the body.
async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, HeaderMap, String) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

const DEMO: &str = r#"{"username":"demo","password":"demo"}"#;

/// `POST /auth/login` (body mode) with `proof`; returns status, headers, body.
async fn login(base: &str, proof: Option<&str>, query: &str) -> (u16, HeaderMap, String) {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(p) = proof {
        headers.push(("dpop", p));
    }
    send("POST", &format!("{base}/auth/login{query}"), &headers, DEMO).await
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// The refresh-token cookie a token route set, as a `Cookie` header value.
fn refresh_cookie(headers: &HeaderMap) -> String {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("__Secure-refresh_token="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The `WWW-Authenticate` values, in order.
fn challenges(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// A DPoP-bound login: the key and the access token.
async fn bound_login(base: &str, key: &DpopKey) -> (String, String) {
    let proof = key
        .proof("POST", &format!("{base}/auth/login"), None, None)
        .unwrap();
    let (status, headers, body) = login(base, Some(&proof), "").await;
    assert_eq!(status, 200, "{body}");
    let answer = json(&body);
    assert_eq!(answer["token_type"], "DPoP");
    let token = answer["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&token)["cnf"]["jkt"], key.thumbprint());
    (token, refresh_cookie(&headers))
}

/// `GET {base}{path}` with `Authorization: {scheme} {token}` and `proof`.
async fn get(
    base: &str,
    path: &str,
    scheme: &str,
    token: &str,
    proof: Option<&str>,
) -> (u16, HeaderMap, String) {
    let authorization = format!("{scheme} {token}");
    let mut headers = vec![("authorization", authorization.as_str())];
    if let Some(p) = proof {
        headers.push(("dpop", p));
    }
    send("GET", &format!("{base}{path}"), &headers, "").await
}

/// The `error` attribute of the DPoP challenge of a 401.
fn dpop_error(headers: &HeaderMap) -> String {
    let dpop = challenges(headers)
        .into_iter()
        .find(|c| c.starts_with("DPoP "))
        .unwrap_or_else(|| panic!("no DPoP challenge in {headers:?}"));
    let at = dpop.find("error=\"").unwrap_or_else(|| panic!("{dpop}"));
    dpop[at + 7..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn dpop_bound_tokens_from_the_built_in_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = serve(dir.path(), "").await;
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let (token, refresh) = bound_login(&base, &key).await;
    let me = format!("{base}/me");
    let proof =
        |method: &str, url: &str, token: Option<&str>| key.proof(method, url, token, None).unwrap();

    // Success: `/me` reports the principal with scheme `jwt`; every route takes DPoP.
    let p = proof("GET", &me, Some(&token));
    let (status, _, body) = get(&base, "/me", "DPoP", &token, Some(&p)).await;
    assert_eq!(status, 200, "{body}");
    let principal = json(&body);
    assert_eq!(principal["subject"], "demo");
    assert_eq!(principal["scheme"], "jwt");
    let items = format!("{base}/items");
    let (status, _, body) = get(
        &base,
        "/items",
        "DPoP",
        &token,
        Some(&proof("GET", &items, Some(&token))),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Replayed proof.
    let (status, headers, _) = get(&base, "/me", "DPoP", &token, Some(&p)).await;
    assert_eq!(status, 401);
    assert_eq!(dpop_error(&headers), "invalid_dpop_proof");

    // A proof for another method, and for another URL.
    for p in [
        proof("POST", &me, Some(&token)),
        proof("GET", &items, Some(&token)),
    ] {
        let (status, headers, _) = get(&base, "/me", "DPoP", &token, Some(&p)).await;
        assert_eq!(status, 401);
        assert_eq!(dpop_error(&headers), "invalid_dpop_proof");
    }

    // A wrong `ath`: the proof names another token.
    let p = proof("GET", &me, Some("another-token"));
    let (status, headers, _) = get(&base, "/me", "DPoP", &token, Some(&p)).await;
    assert_eq!(status, 401);
    assert_eq!(dpop_error(&headers), "invalid_dpop_proof");

    // No proof at all.
    let (status, headers, _) = get(&base, "/me", "DPoP", &token, None).await;
    assert_eq!(status, 401);
    assert_eq!(dpop_error(&headers), "invalid_dpop_proof");

    // The bound token as Bearer: refused, both challenges, Bearer first.
    let (status, headers, _) = get(&base, "/me", "Bearer", &token, None).await;
    assert_eq!(status, 401);
    let list = challenges(&headers);
    assert!(list[0].starts_with("Bearer realm=\"api\""), "{list:?}");
    assert!(list[0].contains("error=\"invalid_token\""), "{list:?}");
    assert!(
        list[1].starts_with("DPoP algs=\"ES256 ES384 EdDSA PS256 RS256\""),
        "{list:?}"
    );

    // A proof by a key other than the token's `cnf.jkt`.
    let other = DpopKey::generate(Algorithm::EdDSA).unwrap();
    let p = other.proof("GET", &me, Some(&token), None).unwrap();
    let (status, headers, _) = get(&base, "/me", "DPoP", &token, Some(&p)).await;
    assert_eq!(status, 401);
    assert_eq!(dpop_error(&headers), "invalid_dpop_proof");

    // A stale `iat`, beyond the 60 s leeway, and one from the future.
    for at in [
        SystemTime::now() - Duration::from_secs(300),
        SystemTime::now() + Duration::from_secs(300),
    ] {
        let p = key.proof_at("GET", &me, Some(&token), None, at).unwrap();
        let (status, headers, _) = get(&base, "/me", "DPoP", &token, Some(&p)).await;
        assert_eq!(status, 401);
        assert_eq!(dpop_error(&headers), "invalid_dpop_proof");
    }

    // Two DPoP headers: 400.
    let p1 = proof("GET", &me, Some(&token));
    let p2 = proof("GET", &me, Some(&token));
    let authorization = format!("DPoP {token}");
    let (status, _, _) = send(
        "GET",
        &me,
        &[
            ("authorization", &authorization),
            ("dpop", &p1),
            ("dpop", &p2),
        ],
        "",
    )
    .await;
    assert_eq!(status, 400);

    // An unbound token sent with the DPoP scheme.
    let (status, _, body) = login(&base, None, "").await;
    assert_eq!(status, 200, "{body}");
    let unbound = json(&body)["access_token"].as_str().unwrap().to_owned();
    assert_eq!(json(&body)["token_type"], "Bearer");
    let p = proof("GET", &me, Some(&unbound));
    let (status, headers, _) = get(&base, "/me", "DPoP", &unbound, Some(&p)).await;
    assert_eq!(status, 401);
    assert_eq!(dpop_error(&headers), "invalid_token");

    // Refresh of the bound session without a proof: 400 invalid_dpop_proof (RFC 6749 body),
    // and the refresh token is neither consumed nor its family revoked.
    let refresh_url = format!("{base}/auth/refresh");
    let (status, headers, body) = send("POST", &refresh_url, &[("cookie", &refresh)], "").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(json(&body)["error"], "invalid_dpop_proof");
    // A proof by another key is refused the same way.
    let p = other.proof("POST", &refresh_url, None, None).unwrap();
    let (status, _, body) = send(
        "POST",
        &refresh_url,
        &[("cookie", &refresh), ("dpop", &p)],
        "",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["error"], "invalid_dpop_proof");
    // With the key's proof, the same refresh token works, and the new token is bound.
    let p = proof("POST", &refresh_url, None);
    let (status, _, body) = send(
        "POST",
        &refresh_url,
        &[("cookie", &refresh), ("dpop", &p)],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer = json(&body);
    assert_eq!(answer["token_type"], "DPoP");
    let renewed = answer["access_token"].as_str().unwrap();
    assert_eq!(claims(renewed)["cnf"]["jkt"], key.thumbprint());

    child.kill().await.unwrap();
}

#[tokio::test]
async fn token_routes_refuse_bad_proofs_and_cookie_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = serve(dir.path(), "").await;
    let key = DpopKey::generate(Algorithm::EdDSA).unwrap();
    let login_url = format!("{base}/auth/login");

    // A proof for another URL, another method, a stale one: 400 invalid_dpop_proof, no
    // cookies, an RFC 6749 error body.
    for p in [
        key.proof("POST", &format!("{base}/auth/refresh"), None, None)
            .unwrap(),
        key.proof("GET", &login_url, None, None).unwrap(),
        key.proof_at(
            "POST",
            &login_url,
            None,
            None,
            SystemTime::now() - Duration::from_secs(300),
        )
        .unwrap(),
        "not.a.proof".to_owned(),
    ] {
        let (status, headers, body) = login(&base, Some(&p), "").await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(headers["content-type"], "application/json");
        assert!(headers.get("set-cookie").is_none());
        assert_eq!(json(&body)["error"], "invalid_dpop_proof", "{body}");
    }

    // A replayed login proof.
    let p = key.proof("POST", &login_url, None, None).unwrap();
    let (status, _, _) = login(&base, Some(&p), "").await;
    assert_eq!(status, 200);
    let (status, _, body) = login(&base, Some(&p), "").await;
    assert_eq!(status, 400);
    assert_eq!(json(&body)["error"], "invalid_dpop_proof");

    // Cookie mode and DPoP do not mix.
    let p = key.proof("POST", &login_url, None, None).unwrap();
    let (status, headers, body) = login(&base, Some(&p), "?mode=cookie").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["error"], "invalid_request");
    assert!(headers.get("set-cookie").is_none());

    // A session that started unbound stays unbound, even refreshed with a proof.
    let (status, headers, _) = login(&base, None, "").await;
    assert_eq!(status, 200);
    let refresh_url = format!("{base}/auth/refresh");
    let p = key.proof("POST", &refresh_url, None, None).unwrap();
    let (status, _, body) = send(
        "POST",
        &refresh_url,
        &[("cookie", &refresh_cookie(&headers)), ("dpop", &p)],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer = json(&body);
    assert_eq!(answer["token_type"], "Bearer");
    assert!(
        claims(answer["access_token"].as_str().unwrap())
            .get("cnf")
            .is_none()
    );

    child.kill().await.unwrap();
}

#[tokio::test]
async fn nonces_are_required_then_supplied() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = serve(
        dir.path(),
        "dpop_nonce = true\ndpop_nonce_secret = \"a test secret of at least thirty-two bytes\"\n",
    )
    .await;
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let login_url = format!("{base}/auth/login");

    // Login without a nonce: 400 use_dpop_nonce with the nonce to use.
    let p = key.proof("POST", &login_url, None, None).unwrap();
    let (status, headers, body) = login(&base, Some(&p), "").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["error"], "use_dpop_nonce");
    let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();
    // With it: bound tokens.
    let p = key.proof("POST", &login_url, None, Some(&nonce)).unwrap();
    let (status, _, body) = login(&base, Some(&p), "").await;
    assert_eq!(status, 200, "{body}");
    let token = json(&body)["access_token"].as_str().unwrap().to_owned();

    // A resource: 401 use_dpop_nonce without it, a nonce that is not the server's refused,
    // 200 with it.
    let me = format!("{base}/me");
    let p = key.proof("GET", &me, Some(&token), None).unwrap();
    let (status, headers, _) = get(&base, "/me", "DPoP", &token, Some(&p)).await;
    assert_eq!(status, 401);
    assert_eq!(dpop_error(&headers), "use_dpop_nonce");
    let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();
    let forged = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let p = key.proof("GET", &me, Some(&token), Some(forged)).unwrap();
    let (status, headers, _) = get(&base, "/me", "DPoP", &token, Some(&p)).await;
    assert_eq!(status, 401);
    assert_eq!(dpop_error(&headers), "use_dpop_nonce");
    let p = key.proof("GET", &me, Some(&token), Some(&nonce)).unwrap();
    let (status, _, body) = get(&base, "/me", "DPoP", &token, Some(&p)).await;
    assert_eq!(status, 200, "{body}");

    child.kill().await.unwrap();
}
