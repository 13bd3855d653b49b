//! The quickstart on Postgres, as several instances would run it: keys created and revoked by
//! the `keys` command, and tokens revoked by the `tokens` command, in another process reach the
//! running server through LISTEN/NOTIFY.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_auth_tests::PgDatabase;

mod common;

use common::{BIN, serve_with};

async fn status(url: &str, key: &str) -> u16 {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::get(url)
        .header("x-api-key", key)
        .body(Empty::new())
        .unwrap();
    client.request(req).await.unwrap().status().as_u16()
}

/// Polls `status` (200 until then) every millisecond until the server answers 401, failing
/// after 5 s; prints how long `what`, done just before, took to reach the server.
async fn until_refused<F, Fut>(what: &str, mut status: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let start = Instant::now();
    loop {
        let s = status().await;
        if s == 401 {
            break;
        }
        assert_eq!(s, 200);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what} not seen within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!("{what} seen by the server after {:?}", start.elapsed());
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn keys_cli_and_server_share_postgres() {
    let db = PgDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .args([
            "keys",
            "--db",
            &db.url,
            "create",
            "--owner",
            "pg-app",
            "--scopes",
            "read:items",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8(out.stdout).unwrap();
    let id = out
        .lines()
        .next()
        .unwrap()
        .strip_prefix("id ")
        .unwrap()
        .to_owned();
    let key = out.lines().last().unwrap().to_owned();

    let config = dir.path().join("quickstart.toml");
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:0\"\ndatabase = \"{}\"\n", db.url),
    )
    .unwrap();
    let (child, base) = serve_with(dir.path(), &config).await;

    let items = format!("{base}/items");
    assert_eq!(status(&items, &key).await, 200);

    // Revoked by another process: the server's cache (TTL 30 s) is told at once.
    let out = Command::new(BIN)
        .args(["keys", "--db", &db.url, "revoke", &id])
        .output()
        .unwrap();
    assert!(out.status.success());
    until_refused("revocation", || status(&items, &key)).await;

    // A user of the built-in issuer, logged out everywhere from another process.
    let client: Client<_, http_body_util::Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let res = client
        .request(
            http::Request::post(format!("{base}/auth/login"))
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(Bytes::from_static(
                    br#"{"username":"demo","password":"demo"}"#,
                )))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let token = answer["access_token"].as_str().unwrap().to_owned();
    let me = || async {
        let req = http::Request::get(format!("{base}/me"))
            .header("authorization", format!("Bearer {token}"))
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        client.request(req).await.unwrap().status().as_u16()
    };
    assert_eq!(me().await, 200);
    let out = Command::new(BIN)
        .args([
            "tokens",
            "--db",
            &db.url,
            "--listen",
            base.trim_start_matches("http://"),
            "logout-everywhere",
            "--subject",
            "demo",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    until_refused("log out everywhere", me).await;
    drop(child);
    db.drop_database().await;
}
