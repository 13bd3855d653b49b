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

use common::{BIN, claim, serve_with};

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
        ["id", "owner", "scopes", "created", "expires", "revoked"]
    );
    let row: Vec<&str> = lines.next().unwrap().split('\t').collect();
    assert_eq!(row[0], id);
    assert_eq!(row[1], "alice");
    assert_eq!(row[2], "read:items write:items");
    assert!(row[3].ends_with('Z'), "RFC 3339: {}", row[3]);
    assert_eq!(&row[4..], ["-", "-"]);
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
fn configuration_errors_exit_2_naming_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    for (toml, needle) in [
        ("listen = \"not-an-address\"", "listen"),
        ("nonsense = true", "nonsense"),
        ("[cache]\napikey_ttl = \"whenever\"", "whenever"),
        ("[cache]\napikey_ttl = \"0s\"", "cache.apikey_ttl"),
        (
            "[cache]\nrevocation_poll = \"1ms\"",
            "invalid `cache.revocation_poll` = 0.001s",
        ),
        ("database = \"mysql://db\"", "mysql://db"),
        (
            "[[issuers]]\nissuer = \"https://idp.test\"\naudiences = [\"a\"]\nalgorithms = [\"none\"]",
            "issuers[0].algorithms",
        ),
        (
            "[[issuers]]\nissuer = \"http://idp.test\"\naudiences = [\"a\"]",
            "http://idp.test",
        ),
        (
            "[introspection]\nendpoint = \"http://127.0.0.1:1/i\"\nclient_id = \"a\"\nclient_secret = \"b\"",
            "introspection.endpoint",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, toml).unwrap();
        let o = run(dir.path(), &["serve", "--config", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{toml}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{toml}: {}", stderr(&o));
    }
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
    let (status, challenge, _) =
        request("GET", &format!("{base}/admin"), &[("x-api-key", &key)]).await;
    assert_eq!(status, 403);
    assert!(challenge.unwrap().contains("scope=\"admin\""));

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

    // Body mode: the access token in the JSON, the refresh token in its cookie.
    let (status, cookies, body) = post(&format!("{base}/auth/login"), &json, demo).await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 900);
    let access = answer["access_token"].as_str().unwrap().to_owned();
    let refresh_cookie = cookies
        .iter()
        .find(|c| c.starts_with("refresh_token="))
        .unwrap();
    let (attributes, max_age) = refresh_cookie.rsplit_once("; Max-Age=").unwrap();
    assert!(
        attributes.ends_with("; HttpOnly; Secure; SameSite=Strict; Path=/auth"),
        "{refresh_cookie}"
    );
    assert!(max_age.parse::<u64>().unwrap() > 0, "{refresh_cookie}");
    assert!(cookies.iter().all(|c| !c.starts_with("access_token=")));
    let refresh1 = cookie_value(&cookies, "refresh_token").to_owned();

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
        .find(|c| c.starts_with("access_token="))
        .unwrap();
    assert!(
        access_cookie.ends_with("; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=900"),
        "{access_cookie}"
    );
    let cookie_access = cookie_value(&cookies, "access_token").to_owned();
    let (status, _, _) = request(
        "GET",
        &format!("{base}/me"),
        &[("cookie", &format!("access_token={cookie_access}"))],
    )
    .await;
    assert_eq!(status, 200);

    // Refresh rotates the refresh cookie.
    let (status, cookies, body) = post(
        &format!("{base}/auth/refresh"),
        &[("cookie", &format!("refresh_token={refresh1}"))],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let refresh2 = cookie_value(&cookies, "refresh_token").to_owned();
    assert_ne!(refresh1, refresh2);
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(answer["access_token"].is_string());

    // The consumed token again: 401 invalid_token, and its family is over.
    let (status, _, _) = post(
        &format!("{base}/auth/refresh"),
        &[("cookie", &format!("refresh_token={refresh1}"))],
        "",
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, _) = post(
        &format!("{base}/auth/refresh"),
        &[("cookie", &format!("refresh_token={refresh2}"))],
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
    let refresh3 = cookie_value(&cookies, "refresh_token").to_owned();
    let (status, cookies, _) = post(
        &format!("{base}/auth/logout"),
        &[("cookie", &format!("refresh_token={refresh3}"))],
        "",
    )
    .await;
    assert_eq!(status, 204);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("access_token=;") && c.contains("Max-Age=0")),
        "{cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("refresh_token=;") && c.contains("Max-Age=0")),
        "{cookies:?}"
    );
    let (status, _, _) = post(
        &format!("{base}/auth/refresh"),
        &[("cookie", &format!("refresh_token={refresh3}"))],
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
                    "active": true, "sub": "demo", "iss": iss, "scope": "read:items",
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
             [introspection]\nendpoint = \"{endpoint}\"\nclient_id = \"qs\"\nclient_secret = \"s\"\n"
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
            cookie_value(&cookies, "refresh_token").to_owned(),
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
            "--built-in-issuer",
            &base,
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
        cookies.iter().any(|c| c.starts_with("access_token=;")),
        "{cookies:?}"
    );
    assert!(
        cookies.iter().any(|c| c.starts_with("refresh_token=;")),
        "{cookies:?}"
    );
    assert_eq!(me(b.clone()).await, 401);
    for refresh in [&refresh_a, &refresh_b] {
        let (status, _, _) = post(
            &format!("{base}/auth/refresh"),
            &[("cookie", &format!("refresh_token={refresh}"))],
            "",
        )
        .await;
        assert_eq!(status, 401, "a session survived log out everywhere");
    }

    // A login after the cut-off works (`iat` has whole seconds: the next second).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (c, _) = login().await;
    assert_eq!(me(c.clone()).await, 200);

    // Without --built-in-issuer, a configuration on port 0 cannot name the running server's
    // issuer: refused (exit 2) rather than revoking tokens of an issuer that does not exist.
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
    assert!(stderr(&o).contains("--built-in-issuer"), "{}", stderr(&o));
    assert_eq!(me(c.clone()).await, 200);

    // The CLI's log out everywhere reaches the running server too.
    let o = run(
        dir.path(),
        &[
            "tokens",
            "--config",
            config_arg,
            "--built-in-issuer",
            &base,
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
