//! The quickstart configured with the real OpenID provider as an external issuer and for
//! introspection: every scheme in one service, as the decision guide composes them.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_auth_tests::{client_credentials_token as token, op_url};

mod common;

use common::{BIN, claim, serve_with};

async fn get(url: &str, bearer: &str) -> (u16, String) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::get(url)
        .header("authorization", format!("Bearer {bearer}"))
        .body(Empty::new())
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn jwt_and_introspection_from_the_provider() {
    let op = op_url();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quickstart.toml");
    std::fs::write(
        &config,
        format!(
            r#"
listen = "127.0.0.1:0"
insecure_allow_http = true

[cache]
revocation_poll = "100ms"

[[issuers]]
issuer = "{op}"
audiences = ["urn:tower-auth:rs256"]
require_typ = "at+jwt"

[introspection]
endpoint = "{op}/token/introspection"
client_id = "tower-auth-rs"
client_secret = "tower-auth-rs-secret"
audiences = ["urn:tower-auth:opaque"]
issuer = "{op}"
"#
        ),
    )
    .unwrap();
    let (_server, base) = serve_with(dir.path(), &config).await;

    let jwt = token(&op, "urn:tower-auth:rs256", "read:items").await;
    let (status, body) = get(&format!("{base}/me"), &jwt).await;
    assert_eq!(status, 200, "{body}");
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["scheme"], "jwt");
    assert_eq!(me["kind"], "service");
    assert_eq!(me["subject"], "tower-auth-cc");
    assert_eq!(me["issuer"], op.as_str());
    assert!(me["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(get(&format!("{base}/items"), &jwt).await.0, 200);
    assert_eq!(get(&format!("{base}/admin"), &jwt).await.0, 403);

    let opaque = token(&op, "urn:tower-auth:opaque", "read:items").await;
    let (status, body) = get(&format!("{base}/me"), &opaque).await;
    assert_eq!(status, 200, "{body}");
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["scheme"], "introspection");
    assert_eq!(me["kind"], "service");
    assert_eq!(get(&format!("{base}/items"), &opaque).await.0, 200);

    // A JWT for another audience.
    let other = token(&op, "urn:tower-auth:es256", "read:items").await;
    assert_eq!(get(&format!("{base}/me"), &other).await.0, 401);

    // `tokens revoke --issuer`: the CLI, another process on the same database, revokes the
    // provider's token by its `jti`; the server refuses it once it has read the list, and a
    // second token of the same client stays valid.
    let second = token(&op, "urn:tower-auth:rs256", "read:items").await;
    assert_eq!(get(&format!("{base}/me"), &second).await.0, 200);
    let jti = claim(&jwt, "jti");
    let o = std::process::Command::new(BIN)
        .current_dir(dir.path())
        .args([
            "tokens",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            base.trim_start_matches("http://"),
            "revoke",
            "--jti",
            &jti,
            "--issuer",
            &op,
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), format!("revoked token {jti} of {op}"));
    assert_eq!(until_status(&format!("{base}/me"), &jwt, 401).await, 401);
    assert_eq!(get(&format!("{base}/me"), &second).await.0, 200);
}

/// Waits (at most 30 s) until `url` with `bearer` answers `status`; returns what it answered
/// last.
async fn until_status(url: &str, bearer: &str, status: u16) -> u16 {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let got = get(url, bearer).await.0;
        if got == status || tokio::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
