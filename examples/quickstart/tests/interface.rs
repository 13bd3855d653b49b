//! The quickstart's interface as a user meets it: the binary, its `keys` command, its
//! configuration errors, and its routes over loopback.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

mod common;

use common::{BIN, claim, serve_logged, serve_with};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// `keys create` and returns (id, key).
fn create(dir: &Path, scopes: &str) -> (String, String) {
    let o = run(
        dir,
        &[
            "keys", "create", "--owner", "alice", "--scopes", scopes, "--name", "ci",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let id = out
        .lines()
        .next()
        .unwrap()
        .strip_prefix("id ")
        .unwrap()
        .to_owned();
    let key = out.lines().last().unwrap().to_owned();
    assert!(id.starts_with("key_"), "{out}");
    assert!(key.starts_with("sk_test_"), "{out}");
    (id, key)
}

#[test]
fn keys_cli_create_list_revoke_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let (id, key) = create(dir.path(), "read:items write:items");
    assert!(
        dir.path().join("quickstart.db").exists(),
        "default database in the working directory"
    );

    let o = run(dir.path(), &["keys", "list"]);
    assert!(o.status.success());
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap().split('\t').collect::<Vec<_>>(),
        [
            "id", "owner", "scopes", "created", "expires", "revoked", "limits"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split('\t').collect();
    assert_eq!(row[0], id);
    assert_eq!(row[1], "alice");
    assert_eq!(row[2], "read:items write:items");
    assert!(row[3].ends_with('Z'), "RFC 3339: {}", row[3]);
    assert_eq!(&row[4..], ["-", "-", "-"]);
    assert!(!out.contains(&key), "list never shows a key");

    let o = run(dir.path(), &["keys", "rotate", &id, "--grace", "1h"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let new_id = out.lines().next().unwrap().strip_prefix("id ").unwrap();
    assert_ne!(new_id, id);
    assert!(out.lines().last().unwrap().starts_with("sk_test_"));
    let listed = stdout(&run(dir.path(), &["keys", "list"]));
    let old_row: Vec<&str> = listed
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap()
        .split('\t')
        .collect();
    assert_ne!(old_row[4], "-", "the rotated key now expires");

    let o = run(dir.path(), &["keys", "revoke", &id]);
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim(), format!("revoked {id}"));
    assert_eq!(
        stderr(&o).trim(),
        "seen by running servers within about 100 ms"
    );
    let o = run(dir.path(), &["keys", "list"]);
    assert!(stderr(&o).is_empty(), "listing changes nothing");

    let o = run(dir.path(), &["keys", "revoke", "key_doesnotexist"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty());
    assert!(!stderr(&o).is_empty());

    // --db and --expires-in.
    let other = format!("sqlite://{}", dir.path().join("other.db").display());
    let o = run(
        dir.path(),
        &[
            "keys",
            "create",
            "--db",
            &other,
            "--owner",
            "bob",
            "--expires-in",
            "90d",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = stdout(&run(dir.path(), &["keys", "--db", &other, "list"]));
    assert_eq!(listed.lines().count(), 2);
    assert!(listed.contains("\tbob\t"));
}

#[test]
fn configuration_errors_exit_2_naming_file_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let file = path.to_str().unwrap();
    // Every file but the first listens on port 0: no test binds a fixed port, even when a
    // check is missing.
    for (toml, message) in [
        (
            "listen = \"not-an-address\"",
            "invalid `listen` = \"not-an-address\": invalid socket address syntax",
        ),
        ("nonsense = true", "invalid `nonsense` = true: unknown key"),
        (
            "[cache]\napikey_ttl = \"whenever\"",
            "invalid `cache.apikey_ttl` = \"whenever\": not a duration",
        ),
        (
            "[cache]\napikey_ttl = \"0s\"",
            "invalid `cache.apikey_ttl` = \"0s\": must be greater than zero",
        ),
        (
            "[cache]\nrevocation_poll = \"1ms\"",
            "invalid `cache.revocation_poll` = \"1ms\": ",
        ),
        (
            "database = \"mysql://db\"",
            "invalid `database` = \"mysql://db\": expected sqlite://PATH",
        ),
        (
            "api_key_prefix = \"sk-test\"",
            "invalid `api_key_prefix` = \"sk-test\": ",
        ),
        (
            "[[issuers]]\nissuer = \"https://idp.test\"\naudiences = [\"a\"]\nalgorithms = [\"RS256\", \"none\"]",
            "invalid `issuers[0].algorithms[1]` = \"none\": ",
        ),
        (
            "[[issuers]]\nissuer = \"https://idp.test\"\naudiences = [\"a\"]\nclaims = \"okta\"",
            "invalid `issuers[0].claims` = \"okta\": expected keycloak, auth0 or azure",
        ),
        (
            "[[issuers]]\nissuer = \"http://idp.test\"\naudiences = [\"a\"]",
            "invalid `issuers[0].issuer` = \"http://idp.test\": ",
        ),
        (
            "[introspection]\nendpoint = \"http://127.0.0.1:1/i\"\nclient_id = \"a\"\nclient_secret = \"b\"\naudiences = [\"a\"]",
            "invalid `introspection.endpoint` = \"http://127.0.0.1:1/i\": ",
        ),
        (
            "[introspection]\nendpoint = \"https://idp.test/i\"\nclient_id = \"a\"\nclient_secret = \"b\"",
            "invalid `introspection.audiences`: required, missing",
        ),
        // `[forward_auth]` settings the library refuses, under the file's keys.
        (
            "[forward_auth]\n[[forward_auth.rules]]\npath = \"/x\"\nmethods = [\"get\"]",
            "invalid `forward_auth.rules[0].methods` = \"get\": methods are case-sensitive",
        ),
        (
            "[forward_auth]\n[[forward_auth.rules]]\npath_prefix = \"/api\"\n[[forward_auth.rules]]\npath_prefix = \"/api/\"",
            "invalid `forward_auth.rules` = rules[0] and rules[1]: two rules for the same path",
        ),
        (
            "[forward_auth]\npath = \"/check\"",
            "invalid `forward_auth.rules` = []: at least one rule is needed",
        ),
    ] {
        let toml = if toml.starts_with("listen") {
            toml.to_owned()
        } else {
            format!("listen = \"127.0.0.1:0\"\n{toml}")
        };
        std::fs::write(&path, &toml).unwrap();
        // The options are global: before or after the command.
        for args in [
            &["serve", "--config", file][..],
            &["--config", file][..],
            &["--config", file, "keys", "list"][..],
        ] {
            let o = run(dir.path(), args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{toml}: {err}");
            assert!(
                err.starts_with(&format!("quickstart: {file}: {message}")),
                "{toml}\n got: {err}\nwant: quickstart: {file}: {message}"
            );
        }
    }

    // Values from the command line are named by their option.
    let o = run(dir.path(), &["keys", "--db", "mysql://db", "list"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with(
            "quickstart: command line: invalid `--db` = \"mysql://db\": expected sqlite://PATH"
        ),
        "{}",
        stderr(&o)
    );
    let o = run(dir.path(), &["--config", "missing.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with(
            "quickstart: command line: invalid `--config` = \"missing.toml\": cannot read the file"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_configuration_is_checked_before_the_port_and_a_busy_port_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // A port that is busy: this test holds it.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[cache]\napikey_ttl = \"0s\"").unwrap();
    let file = path.to_str().unwrap();

    // A configuration error is reported as such, whatever the state of the port.
    let o = run(dir.path(), &["--listen", &addr, "--config", file]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with(&format!(
            "quickstart: {file}: invalid `cache.apikey_ttl` = \"0s\""
        )),
        "{}",
        stderr(&o)
    );

    // A good configuration on a busy port: the port is named, and how to choose another.
    let o = run(dir.path(), &["serve", "--listen", &addr]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "cannot listen on {addr}: the address is already in use"
        )) && err.contains("--listen"),
        "{err}"
    );
    drop(busy);
}

#[test]
fn help_shows_the_global_options() {
    let o = run(std::path::Path::new("."), &["--help"]);
    assert!(o.status.success());
    let out = stdout(&o);
    for option in [
        "--config <FILE>",
        "--listen <ADDR>",
        "--db <URL>",
        "RUST_LOG",
    ] {
        assert!(out.contains(option), "{option} missing from:\n{out}");
    }
    // And after a command.
    let o = run(std::path::Path::new("."), &["tokens", "--help"]);
    assert!(stdout(&o).contains("--listen <ADDR>"), "{}", stdout(&o));
}

/// Starts `quickstart serve` on a free port; returns the child and its base URL.
async fn serve(dir: &Path) -> (tokio::process::Child, String) {
    let config = dir.join("quickstart.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n").unwrap();
    serve_with(dir, &config).await
}

async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, String) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, challenge, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn routes_with_api_keys_over_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let (_id, key) = create(dir.path(), "read:items write:items");
    let (_reader_id, reader) = create(dir.path(), "read:items");
    let (_child, base) = serve(dir.path()).await;
    let bearer = format!("Bearer {key}");

    assert_eq!(request("GET", &format!("{base}/healthz"), &[]).await.0, 200);

    // No credential, a bad one, a good one.
    let (status, challenge, _) = request("GET", &format!("{base}/me"), &[]).await;
    assert_eq!(
        (status, challenge.as_deref()),
        (401, Some("Bearer realm=\"api\""))
    );
    let (status, challenge, _) = request(
        "GET",
        &format!("{base}/me"),
        &[("authorization", "Bearer sk_test_bogus")],
    )
    .await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains("invalid_token"));
    let (status, _, body) =
        request("GET", &format!("{base}/me"), &[("authorization", &bearer)]).await;
    assert_eq!(status, 200);
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["subject"], "alice");
    assert_eq!(me["scheme"], "api_key");
    assert_eq!(me["kind"], "application");
    assert_eq!(
        me["scopes"],
        serde_json::json!(["read:items", "write:items"])
    );
    assert_eq!(me["issuer"], serde_json::Value::Null);
    assert_eq!(me["expires_at"], serde_json::Value::Null);

    // Scopes per route and method, the key in either place.
    assert_eq!(
        request("GET", &format!("{base}/items"), &[("x-api-key", &key)])
            .await
            .0,
        200
    );
    assert_eq!(
        request("POST", &format!("{base}/items"), &[("x-api-key", &key)])
            .await
            .0,
        201
    );
    assert_eq!(
        request("GET", &format!("{base}/items"), &[("x-api-key", &reader)])
            .await
            .0,
        200
    );
    let (status, challenge, _) =
        request("POST", &format!("{base}/items"), &[("x-api-key", &reader)]).await;
    assert_eq!(status, 403);
    assert!(challenge.unwrap().contains("scope=\"write:items\""));
    let (status, challenge, body) =
        request("GET", &format!("{base}/admin"), &[("x-api-key", &key)]).await;
    assert_eq!(status, 403);
    assert!(challenge.unwrap().contains("scope=\"admin\""));
    // Rejections carry RFC 9457 problem documents.
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        problem,
        serde_json::json!({
            "type": "about:blank", "title": "Forbidden", "status": 403,
            "detail": "insufficient scope",
        })
    );
    let (_, _, body) = request("GET", &format!("{base}/me"), &[]).await;
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 401);

    // Two credentials in two places: 400.
    let (status, _, _) = request(
        "GET",
        &format!("{base}/me"),
        &[("x-api-key", &key), ("authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 400);

    // The counters moved.
    let (status, _, metrics) = request("GET", &format!("{base}/metrics"), &[]).await;
    assert_eq!(status, 200);
    let authenticated = metrics
        .lines()
        .find(|l| {
            l.starts_with("tower_auth_requests_total{scheme=\"api_key\",outcome=\"authenticated\"}")
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    let n: u64 = authenticated.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 6, "{authenticated}");
    assert!(
        metrics.contains("outcome=\"missing_credential\""),
        "{metrics}"
    );
}

/// A request with a body and headers; returns status, Set-Cookie values and the body.
async fn post(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, Vec<String>, String) {
    use http_body_util::Full;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let cookies = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, cookies, String::from_utf8(body.to_vec()).unwrap())
}

fn cookie_value<'a>(cookies: &'a [String], name: &str) -> &'a str {
    let c = cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"));
    c.split(';').next().unwrap().split_once('=').unwrap().1
}

#[tokio::test]
async fn login_refresh_logout_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = serve(dir.path()).await;
    let json = [("content-type", "application/json")];
    let demo = r#"{"username":"demo","password":"demo"}"#;

    // Wrong credentials: 401, the bare challenge, no cookies.
    let client: Client<_, http_body_util::Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let res = client
        .request(
            http::Request::post(format!("{base}/auth/login"))
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(Bytes::from_static(
                    br#"{"username":"demo","password":"nope"}"#,
                )))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"api\"");
    assert!(res.headers().get("set-cookie").is_none());
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(problem["status"], 401);
    assert_eq!(problem["detail"], "invalid username or password");

    // Body mode: the access token in the JSON, the refresh token in its cookie.
    let (status, cookies, body) = post(&format!("{base}/auth/login"), &json, demo).await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 900);
    let access = answer["access_token"].as_str().unwrap().to_owned();
    let refresh_cookie = cookies
        .iter()
        .find(|c| c.starts_with("__Secure-refresh_token="))
        .unwrap();
    let (attributes, max_age) = refresh_cookie.rsplit_once("; Max-Age=").unwrap();
    assert!(
        attributes.ends_with("; HttpOnly; Secure; SameSite=Strict; Path=/auth"),
        "{refresh_cookie}"
    );
    assert!(max_age.parse::<u64>().unwrap() > 0, "{refresh_cookie}");
    assert!(
        cookies
            .iter()
            .all(|c| !c.starts_with("__Host-access_token="))
    );
    let refresh1 = cookie_value(&cookies, "__Secure-refresh_token").to_owned();

    let (status, _, body) = request(
        "GET",
        &format!("{base}/me"),
        &[("authorization", &format!("Bearer {access}"))],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["subject"], "demo");
    assert_eq!(me["scheme"], "jwt");
    assert_eq!(me["kind"], "user");
    assert_eq!(me["roles"], serde_json::json!(["user"]));
    assert_eq!(me["issuer"], base.as_str());
    assert_eq!(
        request(
            "GET",
            &format!("{base}/items"),
            &[("authorization", &format!("Bearer {access}"))]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        request(
            "GET",
            &format!("{base}/admin"),
            &[("authorization", &format!("Bearer {access}"))]
        )
        .await
        .0,
        403
    );

    // The JWKS is public.
    let (status, _, jwks) = request("GET", &format!("{base}/.well-known/jwks.json"), &[]).await;
    assert_eq!(status, 200);
    assert!(jwks.contains("\"OKP\""), "{jwks}");

    // Cookie mode: the access token in an HttpOnly cookie.
    let (status, cookies, body) =
        post(&format!("{base}/auth/login?mode=cookie"), &json, demo).await;
    assert_eq!(status, 200);
    assert!(!body.contains("access_token"), "{body}");
    let access_cookie = cookies
        .iter()
        .find(|c| c.starts_with("__Host-access_token="))
        .unwrap();
    assert!(
        access_cookie.ends_with("; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=900"),
        "{access_cookie}"
    );
    let cookie_access = cookie_value(&cookies, "__Host-access_token").to_owned();
    let (status, _, _) = request(
        "GET",
        &format!("{base}/me"),
        &[("cookie", &format!("__Host-access_token={cookie_access}"))],
    )
    .await;
    assert_eq!(status, 200);

    // A refresh keeps the session's mode: the access-token cookie is renewed, the body holds
    // no token. The mode travels in its own cookie, beside the refresh token.
    let session = format!(
        "__Secure-refresh_token={}; __Secure-session_mode={}",
        cookie_value(&cookies, "__Secure-refresh_token"),
        cookie_value(&cookies, "__Secure-session_mode")
    );
    let (status, renewed, body) =
        post(&format!("{base}/auth/refresh"), &[("cookie", &session)], "").await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("access_token"), "{body}");
    let renewed_access = cookie_value(&renewed, "__Host-access_token");
    assert_ne!(renewed_access, cookie_access);
    let (status, _, _) = request(
        "GET",
        &format!("{base}/me"),
        &[("cookie", &format!("__Host-access_token={renewed_access}"))],
    )
    .await;
    assert_eq!(status, 200);

    // Cookie-authenticated writes and the session routes refuse cross-site requests (403),
    // before touching the cookie: the refresh token below is still unused afterwards.
    for cross in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let refresh = format!("__Secure-refresh_token={refresh1}");
        let refresh = [cross, ("cookie", refresh.as_str())];
        let (status, cookies, body) = post(&format!("{base}/auth/refresh"), &refresh, "").await;
        assert_eq!((status, cookies.len()), (403, 0), "{cross:?}: {body}");
        let (status, _, _) = post(&format!("{base}/auth/logout"), &refresh, "").await;
        assert_eq!(status, 403, "{cross:?}");
        let access = format!("__Host-access_token={renewed_access}");
        let access = [cross, ("cookie", access.as_str())];
        let (status, _, _) = post(&format!("{base}/items"), &access, "").await;
        assert_eq!(status, 403, "{cross:?}");
        let (status, _, _) = post(&format!("{base}/auth/logout-everywhere"), &access, "").await;
        assert_eq!(status, 403, "{cross:?}");
    }
    // The same write from the same origin (fetch metadata, or an Origin naming this host).
    let origin = base.clone();
    for same in [
        ("sec-fetch-site", "same-origin"),
        ("origin", origin.as_str()),
    ] {
        let cookie = format!("__Host-access_token={renewed_access}");
        let (status, _, body) = post(
            &format!("{base}/items"),
            &[same, ("cookie", cookie.as_str())],
            "",
        )
        .await;
        assert_eq!(status, 201, "{same:?}: {body}");
    }

    // Refresh rotates the refresh cookie (a same-origin request passes the cross-site check).
    let (status, cookies, body) = post(
        &format!("{base}/auth/refresh"),
        &[
            ("cookie", &format!("__Secure-refresh_token={refresh1}")),
            ("origin", &base),
        ],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let refresh2 = cookie_value(&cookies, "__Secure-refresh_token").to_owned();
    assert_ne!(refresh1, refresh2);
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(answer["access_token"].is_string());

    // The consumed token again: 401 invalid_token, and its family is over.
    let (status, _, _) = post(
        &format!("{base}/auth/refresh"),
        &[("cookie", &format!("__Secure-refresh_token={refresh1}"))],
        "",
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, _) = post(
        &format!("{base}/auth/refresh"),
        &[("cookie", &format!("__Secure-refresh_token={refresh2}"))],
        "",
    )
    .await;
    assert_eq!(
        status, 401,
        "reuse of a consumed token ends the whole family"
    );
    // No cookie at all: 401.
    assert_eq!(post(&format!("{base}/auth/refresh"), &[], "").await.0, 401);

    // Logout: 204, both cookies cleared, the family revoked.
    let (_, cookies, _) = post(&format!("{base}/auth/login"), &json, demo).await;
    let refresh3 = cookie_value(&cookies, "__Secure-refresh_token").to_owned();
    let (status, cookies, _) = post(
        &format!("{base}/auth/logout"),
        &[("cookie", &format!("__Secure-refresh_token={refresh3}"))],
        "",
    )
    .await;
    assert_eq!(status, 204);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-access_token=;") && c.contains("Max-Age=0")),
        "{cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Secure-refresh_token=;") && c.contains("Max-Age=0")),
        "{cookies:?}"
    );
    let (status, _, _) = post(
        &format!("{base}/auth/refresh"),
        &[("cookie", &format!("__Secure-refresh_token={refresh3}"))],
        "",
    )
    .await;
    assert_eq!(status, 401);

    // A restart on the same database keeps validating earlier tokens (keys are persisted).
    child.kill().await.unwrap();
    let port = base.rsplit(':').next().unwrap().to_owned();
    let config = dir.path().join("quickstart.toml");
    std::fs::write(&config, format!("listen = \"127.0.0.1:{port}\"\n")).unwrap();
    let (_child, again) = serve_with(dir.path(), &config).await;
    assert_eq!(again, base);
    let (status, _, body) = request(
        "GET",
        &format!("{base}/me"),
        &[("authorization", &format!("Bearer {access}"))],
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Waits (at most 30 s) until `/me` with `token` answers `status`; returns what it answered last.
async fn until_me_answers(base: &str, token: &str, status: u16) -> u16 {
    let auth = format!("Bearer {token}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = request("GET", &format!("{base}/me"), &[("authorization", &auth)])
            .await
            .0;
        if got == status || tokio::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An RFC 7662 endpoint on loopback that declares every token active, for subject `demo` and
/// the issuer `iss` holds when it answers; its URL.
async fn introspection_stub(iss: std::sync::Arc<std::sync::Mutex<String>>) -> String {
    let app = axum::Router::new().route(
        "/introspect",
        axum::routing::post(move || {
            let iss = iss.lock().unwrap().clone();
            async move {
                axum::Json(serde_json::json!({
                    "active": true, "sub": "demo", "iss": iss, "aud": "qs-api",
                    "scope": "read:items",
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/introspect")
}

#[tokio::test]
async fn tokens_revoked_by_the_cli_and_logout_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quickstart.toml");
    let claimed_iss = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let endpoint = introspection_stub(std::sync::Arc::clone(&claimed_iss)).await;
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ninsecure_allow_http = true\n\
             [cache]\nrevocation_poll = \"100ms\"\n\
             [introspection]\nendpoint = \"{endpoint}\"\nclient_id = \"qs\"\nclient_secret = \"s\"\n\
             audiences = [\"qs-api\"]\n"
        ),
    )
    .unwrap();
    let (_key_id, key) = create(dir.path(), "read:items");
    let (mut child, base) = serve_with(dir.path(), &config).await;
    // The authorization server behind the opaque tokens claims to be the built-in issuer.
    *claimed_iss.lock().unwrap() = base.clone();
    let json = [("content-type", "application/json")];
    let demo = r#"{"username":"demo","password":"demo"}"#;
    let login = || async {
        let (status, cookies, body) = post(&format!("{base}/auth/login"), &json, demo).await;
        assert_eq!(status, 200, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        (
            answer["access_token"].as_str().unwrap().to_owned(),
            cookie_value(&cookies, "__Secure-refresh_token").to_owned(),
        )
    };
    let me = |token: String| {
        let base = base.clone();
        async move {
            request(
                "GET",
                &format!("{base}/me"),
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await
            .0
        }
    };

    // Two sessions of the demo user.
    let (a, refresh_a) = login().await;
    let (b, refresh_b) = login().await;
    assert_eq!(me(a.clone()).await, 200);
    assert_eq!(me(b.clone()).await, 200);

    // The CLI, another process on the same database, revokes token a by its jti: the server
    // applies it at its next read of the list; token b is untouched.
    let config_arg = config.to_str().unwrap();
    let jti = claim(&a, "jti");
    let o = run(
        dir.path(),
        &[
            "tokens",
            "--config",
            config_arg,
            "--listen",
            base.trim_start_matches("http://"),
            "revoke",
            "--jti",
            &jti,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), format!("revoked token {jti} of {base}"));
    assert_eq!(
        stderr(&o).trim(),
        "seen by running servers within about 100 ms"
    );
    assert_eq!(until_me_answers(&base, &a, 401).await, 401);
    assert_eq!(me(b.clone()).await, 200);

    // Log out everywhere with token b: needs one of the built-in issuer's tokens (an API key
    // gets 403, and so does an opaque token whose introspection names the built-in issuer
    // and the same subject), ends both sessions, clears the cookies, and refuses b at once.
    let (status, _, _) = post(
        &format!("{base}/auth/logout-everywhere"),
        &[("x-api-key", key.as_str())],
        "",
    )
    .await;
    assert_eq!(status, 403);
    let opaque = [("authorization", "Bearer opaque-token-of-another-authority")];
    let (status, _, body) = request("GET", &format!("{base}/me"), &opaque).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"scheme\":\"introspection\""), "{body}");
    let (status, _, _) = post(&format!("{base}/auth/logout-everywhere"), &opaque, "").await;
    assert_eq!(status, 403);
    assert_eq!(me(b.clone()).await, 200);
    let (status, cookies, body) = post(
        &format!("{base}/auth/logout-everywhere"),
        &[("authorization", &format!("Bearer {b}"))],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"sessions_revoked": 2})
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-access_token=;")),
        "{cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Secure-refresh_token=;")),
        "{cookies:?}"
    );
    assert_eq!(me(b.clone()).await, 401);
    for refresh in [&refresh_a, &refresh_b] {
        let (status, _, _) = post(
            &format!("{base}/auth/refresh"),
            &[("cookie", &format!("__Secure-refresh_token={refresh}"))],
            "",
        )
        .await;
        assert_eq!(status, 401, "a session survived log out everywhere");
    }

    // A login right after the cut-off, in the same second too, works at once.
    let (c, _) = login().await;
    assert_eq!(me(c.clone()).await, 200);

    // Without --listen, a configuration on port 0 cannot name the running server's issuer:
    // refused (exit 2) rather than revoking tokens of an issuer that does not exist.
    let o = run(
        dir.path(),
        &[
            "tokens",
            "--config",
            config_arg,
            "logout-everywhere",
            "--subject",
            "demo",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("invalid `listen` = \"127.0.0.1:0\"")
            && stderr(&o).contains("--listen"),
        "{}",
        stderr(&o)
    );
    assert_eq!(me(c.clone()).await, 200);

    // The CLI's log out everywhere reaches the running server too.
    let o = run(
        dir.path(),
        &[
            "tokens",
            "--config",
            config_arg,
            "--listen",
            base.trim_start_matches("http://"),
            "logout-everywhere",
            "--subject",
            "demo",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("1 session(s) revoked"),
        "{}",
        stdout(&o)
    );
    assert_eq!(until_me_answers(&base, &c, 401).await, 401);

    child.kill().await.unwrap();
}

#[tokio::test]
async fn the_server_does_not_start_without_its_revocation_list() {
    let dir = tempfile::tempdir().unwrap();
    // A first start creates and migrates the database.
    let (mut child, _) = serve(dir.path()).await;
    child.kill().await.unwrap();
    // The revocation list can no longer be read.
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("quickstart.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("DROP TABLE tower_auth_jwt_revocations")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;

    // Serving now would accept tokens it may have been told to refuse: it exits instead.
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(BIN)
            .current_dir(dir.path())
            .args(["serve", "--config", "quickstart.toml"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the server started without its revocation list")
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("cannot read the revocation list from sqlite://quickstart.db"),
        "{err}"
    );
}

#[tokio::test]
async fn requests_are_logged_with_the_principal_never_the_credential() {
    let dir = tempfile::tempdir().unwrap();
    let (_id, key) = create(dir.path(), "read:items");
    let config = dir.path().join("quickstart.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n").unwrap();
    let (_child, base, logs) = serve_logged(dir.path(), &config, "info,tower_auth=debug").await;

    assert_eq!(
        request("GET", &format!("{base}/items"), &[("x-api-key", &key)])
            .await
            .0,
        200
    );
    let bogus = "sk_test_0000000000000000000000000000000000";
    assert_eq!(
        request(
            "GET",
            &format!("{base}/me?api_key={bogus}"),
            &[("authorization", &format!("Bearer {bogus}"))]
        )
        .await
        .0,
        401
    );
    // The response event follows the response: wait for both lines (at most 10 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (ok, refused) = loop {
        let lines = logs.lock().unwrap().clone();
        let find = |path: &str, status: &str| {
            lines
                .iter()
                .find(|l| l.contains(&format!("path=\"{path}\"")) && l.contains(status))
                .cloned()
        };
        if let (Some(ok), Some(refused)) = (find("/items", "status=200"), find("/me", "status=401"))
        {
            break (ok, refused);
        }
        assert!(tokio::time::Instant::now() < deadline, "{lines:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for field in [
        "method=GET",
        "subject=\"alice\"",
        "scheme=\"api_key\"",
        "latency=",
    ] {
        assert!(ok.contains(field), "{field} missing: {ok}");
    }
    assert!(!refused.contains("subject="), "{refused}");
    let lines = logs.lock().unwrap().join("\n");
    // The rejection's reason at debug, and never a credential or the query string.
    assert!(
        lines.contains("DEBUG") && lines.contains("invalid_token"),
        "{lines}"
    );
    assert!(!lines.contains(&key) && !lines.contains(bogus), "{lines}");
}
