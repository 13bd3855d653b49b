//! Cross-crate integration tests of tower-auth, against real components (SQLite, Postgres, an
//! OpenID provider) over loopback. The tests are in `tests/`; this library holds what they share:
//! finding the test services (started by `scripts/test`) and talking to the OpenID provider.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http_body_util::Full;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tower_auth_core::client::HttpClient;

/// The confidential client for client credentials (client_secret_basic).
pub const CC_CLIENT: (&str, &str) = ("tower-auth-cc", "tower-auth-cc-secret");
/// The resource server's introspection client.
pub const RS_CLIENT: (&str, &str) = ("tower-auth-rs", "tower-auth-rs-secret");

/// The base URL of the OpenID provider started by `scripts/test`; panics with instructions when
/// it is not there.
pub fn op_url() -> String {
    std::env::var("TOWER_AUTH_TEST_OP_URL").unwrap_or_else(|_| {
        panic!(
            "TOWER_AUTH_TEST_OP_URL is not set: this test needs the OpenID provider. \
             Run `scripts/test` (it starts one), or start one with \
             `scripts/test --services-only` and export the variables it prints"
        )
    })
}

/// The Postgres URL started by `scripts/test`; panics with instructions when it is not there.
pub fn pg_url() -> String {
    std::env::var("TOWER_AUTH_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "TOWER_AUTH_TEST_PG_URL is not set: this test needs PostgreSQL. \
             Run `scripts/test` (it starts a throwaway cluster), or point the variable at a \
             database you can write to"
        )
    })
}

/// An HTTP client allowed to talk plain http to loopback services.
pub fn loopback_client() -> HttpClient {
    HttpClient::builder()
        .insecure_allow_http(true)
        .build()
        .expect("valid client settings")
}

async fn post_form(url: &str, client: (&str, &str), form: &[(&str, &str)]) -> (u16, Value) {
    use base64::Engine as _;
    let body = form_body(form);
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", client.0, client.1));
    let req = Request::post(url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(AUTHORIZATION, format!("Basic {basic}"))
        .body(Full::new(Bytes::from(body)))
        .expect("valid request");
    let res = loopback_client()
        .send(req)
        .await
        .expect("provider reachable");
    let doc = serde_json::from_slice(&res.body).unwrap_or(Value::Null);
    (res.status.as_u16(), doc)
}

fn form_body(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A").replace(' ', "+")))
        .collect::<Vec<_>>()
        .join("&")
}

/// A client-credentials access token from the provider at `op` for `resource` with `scope`.
pub async fn client_credentials_token(op: &str, resource: &str, scope: &str) -> String {
    let (status, doc) = post_form(
        &format!("{op}/token"),
        CC_CLIENT,
        &[
            ("grant_type", "client_credentials"),
            ("resource", resource),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(status, 200, "token request failed: {doc}");
    doc["access_token"]
        .as_str()
        .expect("access_token in the token response")
        .to_owned()
}

/// Revokes `token` (RFC 7009) as the client it was issued to.
pub async fn revoke(op: &str, token: &str) {
    let (status, doc) = post_form(
        &format!("{op}/token/revocation"),
        CC_CLIENT,
        &[("token", token), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(status, 200, "revocation failed: {doc}");
}

/// An OpenID provider of the test's own, for tests that stop it. Killed on drop.
#[derive(Debug)]
pub struct OwnProvider {
    child: tokio::process::Child,
    /// Its base URL (also its issuer).
    pub url: String,
}

impl OwnProvider {
    /// Starts `tests/op/server.mjs` on a free loopback port (needs `TOWER_AUTH_TEST_OP_DIR`,
    /// set by `scripts/test`).
    pub async fn start() -> Self {
        let dir = std::env::var("TOWER_AUTH_TEST_OP_DIR").unwrap_or_else(|_| {
            panic!(
                "TOWER_AUTH_TEST_OP_DIR is not set: this test starts its own OpenID provider \
                 from tests/op. Run `scripts/test`"
            )
        });
        let mut child = tokio::process::Command::new("node")
            .arg(format!("{dir}/server.mjs"))
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("provider output") {
                if let Some(url) = line.strip_prefix("listening on ") {
                    return url.to_owned();
                }
            }
            panic!("the OpenID provider exited before listening")
        })
        .await
        .expect("the OpenID provider starts within 30 s");
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, url }
    }

    /// Stops the provider and waits until it has exited.
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}
