//! `[forward_auth]`: the quickstart's forward-authentication endpoint behind a real nginx (the
//! documented server block), at the endpoint itself, and Envoy's gRPC `Check` API with a tonic
//! client.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::http::HeaderMap;
use bytes::Bytes;
use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The quickstart binary built for these tests.
const BIN: &str = env!("CARGO_BIN_EXE_quickstart");

/// The server block the quickstart's docs carry.
const DOCUMENTED: &str = include_str!("../../../tower-auth-forward/proxy/nginx.conf");

const CONFIG: &str = r#"listen = "127.0.0.1:0"

[forward_auth]
grpc_listen = "127.0.0.1:0"

[[forward_auth.rules]]
path_prefix = "/api/"
methods = ["GET", "HEAD"]
scopes = ["read:items"]

[[forward_auth.rules]]
path_prefix = "/api/"
methods = ["POST"]
schemes = ["api_key"]
scopes = ["write:items"]

[[forward_auth.rules]]
path = "/public"
anonymous = true
"#;

/// A new API key with `scopes`, from the `keys` command.
fn create(dir: &Path, owner: &str, scopes: &str) -> String {
    let o = Command::new(BIN)
        .current_dir(dir)
        .args(["keys", "create", "--owner", owner, "--scopes", scopes])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    out.lines().last().unwrap().to_owned()
}

/// `quickstart serve` with `config` in `dir`; its HTTP address and its gRPC address, as printed.
async fn serve(dir: &Path, config: &str) -> (tokio::process::Child, SocketAddr, SocketAddr) {
    let path = dir.join("quickstart.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .current_dir(dir)
        .args(["serve", "--config", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (http, grpc) = tokio::time::timeout(Duration::from_secs(30), async {
        let mut http = None;
        loop {
            let Some(line) = lines.next_line().await.unwrap() else {
                panic!("the server exited");
            };
            if let Some(rest) = line.strip_prefix("quickstart listening on http://") {
                http = Some(rest.split(' ').next().unwrap().parse().unwrap());
            }
            if let Some(rest) = line.strip_prefix("Envoy gRPC Check API on ") {
                return (http.unwrap(), rest.parse().unwrap());
            }
        }
    })
    .await
    .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, http, grpc)
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn challenge(a: &Answer) -> &str {
    a.headers
        .get("www-authenticate")
        .map_or("", |v| v.to_str().unwrap())
}

/// At the endpoint, as nginx asks: the original method and URI in headers.
#[tokio::test]
async fn the_endpoint_answers_as_the_contract_says() {
    let dir = tempfile::tempdir().unwrap();
    let reader = create(dir.path(), "billing", "read:items");
    let (_child, at, _) = serve(dir.path(), CONFIG).await;
    let ask = |method: &'static str, uri: &'static str, key: Option<String>| async move {
        let mut h = vec![("x-original-method", method), ("x-original-uri", uri)];
        let key = key.unwrap_or_default();
        if !key.is_empty() {
            h.push(("x-api-key", key.as_str()));
        }
        send(at, "GET", "/forward-auth", &h).await
    };
    let res = ask("GET", "/api/items", Some(reader.clone())).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.headers["x-auth-subject"], "billing");
    assert_eq!(res.headers["x-auth-scheme"], "api_key");
    assert_eq!(res.headers["x-auth-scopes"], "read:items");
    assert!(res.body.is_empty());
    let res = ask("GET", "/api/items", None).await;
    assert_eq!((res.status, challenge(&res)), (401, "Bearer realm=\"api\""));
    let res = ask("POST", "/api/items", Some(reader.clone())).await;
    assert_eq!(res.status, 403);
    assert!(challenge(&res).contains("insufficient_scope"));
    // Malformed: an encoded `/` in the path, and no forwarded path at all.
    let res = ask("GET", "/api/a%2Fb", Some(reader.clone())).await;
    assert_eq!(res.status, 400);
    assert!(challenge(&res).contains("invalid_request"));
    let res = send(at, "GET", "/forward-auth", &[("x-api-key", &reader)]).await;
    assert_eq!(res.status, 400);
    // Default deny.
    assert_eq!(ask("GET", "/admin", Some(reader.clone())).await.status, 403);
    // Envoy's HTTP mode: the original request under the prefix.
    let res = send(
        at,
        "GET",
        "/forward-auth/envoy/api/items",
        &[("x-api-key", &reader)],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.headers["x-auth-subject"], "billing");
}

fn nginx_bin() -> String {
    std::env::var("TOWER_AUTH_TEST_NGINX").unwrap_or_else(|_| {
        panic!(
            "TOWER_AUTH_TEST_NGINX is not set: this test needs an nginx binary with the \
             auth_request module. Run `scripts/test` (as root it installs Debian's nginx), or \
             install nginx (`apt-get install nginx`) and set TOWER_AUTH_TEST_NGINX=/usr/sbin/nginx"
        )
    })
}

/// The upstream: answers with the identity headers it received, one `name: value` per line.
async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
        let mut lines = Vec::new();
        for (name, value) in &headers {
            if name.as_str().starts_with("x-auth-") {
                lines.push(format!("{name}: {}", value.to_str().unwrap()));
            }
        }
        lines.sort();
        format!("upstream\n{}", lines.join("\n"))
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// An nginx of its own (single process, no daemon) running the documented server block on a
/// free loopback port, killed on drop.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn nginx(upstream: SocketAddr, auth: SocketAddr) -> Nginx {
    let bin = nginx_bin();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = DOCUMENTED
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace("127.0.0.1:8080", &upstream.to_string())
        .replace("127.0.0.1:3000", &auth.to_string());
    let d = dir.path().display();
    let conf = format!(
        "master_process off;\ndaemon off;\nerror_log {d}/error.log info;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         {server}\n}}\n"
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut child = Command::new(&bin)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(dir.path().join("startup.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("could not run nginx ({bin}): {e}"));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(dir.path().join("startup.log")).unwrap_or_default();
            panic!("nginx exited ({status}) at start:\n{log}");
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Nginx {
                child,
                addr,
                _dir: dir,
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    panic!("nginx did not listen on {addr} within 5 s");
}

#[tokio::test]
#[ignore = "needs nginx: run scripts/test"]
async fn nginx_in_front_of_an_upstream_asks_the_quickstart() {
    nginx_bin();
    let dir = tempfile::tempdir().unwrap();
    let reader = create(dir.path(), "billing", "read:items");
    let (_child, auth, _) = serve(dir.path(), CONFIG).await;
    let nginx = nginx(upstream().await, auth).await;
    let at = nginx.addr;

    // No credential: 401, and the challenge reaches the client.
    let res = send(at, "GET", "/api/items", &[]).await;
    assert_eq!(res.status, 401, "{}", res.body);
    assert_eq!(challenge(&res), "Bearer realm=\"api\"");
    assert!(!res.body.contains("upstream"));

    // A valid key: the upstream answers and sees the identity, whatever the client claimed.
    let res = send(
        at,
        "GET",
        "/api/items?page=2",
        &[
            ("x-api-key", &reader),
            ("x-auth-subject", "root"),
            ("x-auth-roles", "admin"),
            ("x-auth-tenant", "other"),
        ],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        res.body,
        "upstream\nx-auth-scheme: api_key\nx-auth-scopes: read:items\nx-auth-subject: billing"
    );

    // Scope missing: 403 with the insufficient_scope challenge.
    let res = send(at, "POST", "/api/items", &[("x-api-key", &reader)]).await;
    assert_eq!(res.status, 403);
    assert!(
        challenge(&res).contains("scope=\"write:items\""),
        "{res:?}",
        res = challenge(&res)
    );

    // Malformed: 400 mapped through nginx (not 500).
    let res = send(at, "GET", "/api/items;x=1", &[("x-api-key", &reader)]).await;
    assert_eq!(res.status, 400, "{}", res.body);
}

fn check_request(method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .chain([(":path".to_owned(), path.to_owned())])
        .collect();
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: method.to_owned(),
                    path: path.to_owned(),
                    host: "app.example".to_owned(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// The gRPC status code and the HTTP status of an answer.
fn outcome(res: &CheckResponse) -> (i32, u16) {
    let code = res.status.as_ref().unwrap().code;
    let status = match res.http_response.as_ref().unwrap() {
        HttpResponse::OkResponse(_) => 200,
        HttpResponse::DeniedResponse(d) => d.status.unwrap().code as u16,
        other => panic!("unexpected response {other:?}"),
    };
    (code, status)
}

#[tokio::test]
async fn envoy_grpc_check_allows_and_denies() {
    let dir = tempfile::tempdir().unwrap();
    let reader = create(dir.path(), "billing", "read:items");
    let (_child, _, grpc) = serve(dir.path(), CONFIG).await;
    let mut client = AuthorizationClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let mut check = async |method, path, headers: &[(&str, &str)]| {
        let req = check_request(method, path, headers);
        client.check(req).await.unwrap().into_inner()
    };
    let allowed = check("GET", "/api/items", &[("x-api-key", &reader)]).await;
    assert_eq!(outcome(&allowed), (0, 200));
    let HttpResponse::OkResponse(ok) = allowed.http_response.unwrap() else {
        unreachable!()
    };
    let subject = ok
        .headers
        .iter()
        .filter_map(|o| o.header.as_ref())
        .find(|h| h.key.eq_ignore_ascii_case("x-auth-subject"))
        .unwrap();
    assert_eq!(subject.value, "billing");
    assert_eq!(outcome(&check("GET", "/api/items", &[]).await), (16, 401));
    let forbidden = check("POST", "/api/items", &[("x-api-key", &reader)]).await;
    assert_eq!(outcome(&forbidden), (7, 403));
}

/// A Postgres-backed quickstart whose own cluster is stopped: a key it has not cached yet gets
/// 503 with `Retry-After` at the endpoint (fail closed), never a pass.
#[tokio::test]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn store_down_is_503_at_the_endpoint() {
    let pg = tower_auth_tests::OwnPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let create = |owner: &str| {
        let o = Command::new(BIN)
            .current_dir(dir.path())
            .args(["keys", "--db", &pg.url, "create", "--owner", owner])
            .args(["--scopes", "read:items"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_owned()
    };
    let (seen, unseen) = (create("billing"), create("reports"));
    let config = format!("database = \"{}\"\n{CONFIG}", pg.url);
    let (_child, at, _) = serve(dir.path(), &config).await;
    let ask = |key: String| async move {
        let h = [
            ("x-original-method", "GET"),
            ("x-original-uri", "/api/items"),
            ("x-api-key", key.as_str()),
        ];
        send(at, "GET", "/forward-auth", &h).await
    };
    assert_eq!(ask(seen.clone()).await.status, 200);
    pg.stop();
    let res = ask(unseen).await;
    assert_eq!(res.status, 503, "{}", res.body);
    assert!(res.headers.contains_key("retry-after"));
    assert!(!res.headers.contains_key("x-auth-subject"));
}

/// A key's limits hold on the API and at the forward-auth endpoint alike, with no
/// configuration: the 429 is a problem document with the RateLimit headers, and a change made
/// by `keys update` in another process reaches the running server.
#[tokio::test]
async fn key_limits_count_requests_to_the_api_and_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .current_dir(dir.path())
        .args([
            "keys",
            "create",
            "--owner",
            "metered",
            "--scopes",
            "read:items",
            "--rate",
            "1/1h",
            "--burst",
            "3",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let id = out
        .lines()
        .next()
        .unwrap()
        .strip_prefix("id ")
        .unwrap()
        .to_owned();
    let key = out.lines().last().unwrap().to_owned();
    let (_child, at, _) = serve(dir.path(), CONFIG).await;
    let api = || {
        let key = key.clone();
        async move { send(at, "GET", "/items", &[("x-api-key", key.as_str())]).await }
    };
    let endpoint = || {
        let key = key.clone();
        async move {
            let headers = [
                ("x-original-method", "GET"),
                ("x-original-uri", "/api/items"),
                ("x-api-key", key.as_str()),
            ];
            send(at, "GET", "/forward-auth", &headers).await
        }
    };

    let res = api().await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.headers["ratelimit-policy"], "\"rate\";q=1;w=3600");
    assert_eq!(res.headers["ratelimit"], "\"rate\";r=2;t=3600");
    assert_eq!(endpoint().await.status, 200);
    assert_eq!(api().await.status, 200);
    for res in [endpoint().await, api().await] {
        assert_eq!(res.status, 429, "{}", res.body);
        assert_eq!(res.headers["content-type"], "application/problem+json");
        let body: serde_json::Value = serde_json::from_str(&res.body).unwrap();
        assert_eq!(body["status"], 429);
        assert_eq!(res.headers["retry-after"], "3600");
        assert_eq!(res.headers["ratelimit"], "\"rate\";r=0;t=10800");
        assert!(res.headers.get("www-authenticate").is_none());
    }

    // Lifted by another process: the server sees it through the SQLite change feed.
    let o = Command::new(BIN)
        .current_dir(dir.path())
        .args(["keys", "update", &id, "--rate", "none"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut status = 0;
    for _ in 0..50 {
        status = api().await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the update reached the server");
}
