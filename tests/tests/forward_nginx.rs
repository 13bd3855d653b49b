//! A real nginx (`auth_request`) in front of a small upstream, asking a forward-auth endpoint
//! built from tower-auth-forward with an API key authenticator (memory store), over loopback.
//! nginx runs the documented server block of `tower-auth-forward/proxy/nginx.conf`, with only
//! its addresses changed.
//!
//! Needs an nginx binary with the auth_request module in `TOWER_AUTH_TEST_NGINX` (`scripts/test`
//! installs Debian's package when it runs as root, and sets the variable).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tower_auth_apikey::{ApiKeyAuthenticator, MemoryStore, NewKey};
use tower_auth_core::credential::{Location, header_value};
use tower_auth_core::{AuthError, Authenticator, Principal, Scheme, from_fn};
use tower_auth_forward::{ForwardAuth, Rule};

const DOCUMENTED: &str = include_str!("../../tower-auth-forward/proxy/nginx.conf");

fn nginx_bin() -> String {
    std::env::var("TOWER_AUTH_TEST_NGINX").unwrap_or_else(|_| {
        panic!(
            "TOWER_AUTH_TEST_NGINX is not set: this test needs an nginx binary with the \
             auth_request module. Run `scripts/test` (as root it installs Debian's nginx), or \
             install nginx (`apt-get install nginx`) and set TOWER_AUTH_TEST_NGINX=/usr/sbin/nginx"
        )
    })
}

async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// The upstream: answers with the identity headers it received, one `name: value` per line.
async fn upstream() -> SocketAddr {
    let (listener, addr) = listen().await;
    let app = Router::new().fallback(|headers: HeaderMap| async move {
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

/// The forward-auth endpoint: API keys from a memory store, plus a stand-in for a store that is
/// down (the `x-test-outage` header), since the memory store cannot fail.
async fn forward_auth() -> (SocketAddr, String, String) {
    let keys = ApiKeyAuthenticator::builder(MemoryStore::new())
        .prefix("sk_test")
        .build()
        .unwrap();
    let reader = keys
        .admin()
        .create(NewKey::new("billing-service").scopes(["read:items"]))
        .await
        .unwrap();
    let writer = keys
        .admin()
        .create(NewKey::new("ops tool").scopes(["read:items", "write:items"]))
        .await
        .unwrap();
    let outage_header = http::HeaderName::from_static("x-test-outage");
    let outage = from_fn(
        Location::Custom("x-test-outage"),
        move |parts| match header_value(&parts.headers, &outage_header)? {
            Some(_) => Err(AuthError::unavailable("key store unavailable")),
            None => Ok(None::<Principal>),
        },
    );
    let forward = ForwardAuth::builder(keys.or(outage))
        .rule(
            Rule::path_prefix("/api/")
                .methods(["GET", "HEAD"])
                .schemes([Scheme::ApiKey, Scheme::Custom("x-test-outage")])
                .scopes(["read:items"]),
        )
        .rule(
            Rule::path_prefix("/api/")
                .methods(["POST"])
                .scopes(["write:items"]),
        )
        .rule(Rule::path("/public").anonymous(true))
        .build()
        .unwrap();
    let (listener, addr) = listen().await;
    let app = Router::new().route_service("/forward-auth", forward);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (
        addr,
        reader.key.expose_secret().to_owned(),
        writer.key.expose_secret().to_owned(),
    )
}

/// An nginx of its own (single process, no daemon), killed on drop.
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
    // A free loopback port: taken by the OS, then handed to nginx.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = DOCUMENTED
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace("127.0.0.1:8080", &upstream.to_string())
        .replace("127.0.0.1:3000", &auth.to_string());
    assert_ne!(server, DOCUMENTED);
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
            panic!("nginx exited ({status}) at start:\n{}", logs(dir.path()));
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
    panic!(
        "nginx did not listen on {addr} within 5 s:\n{}",
        logs(dir.path())
    );
}

fn logs(dir: &Path) -> String {
    ["startup.log", "error.log"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

#[tokio::test]
#[ignore = "needs nginx: run scripts/test"]
async fn nginx_auth_request_through_the_forward_auth_endpoint() {
    nginx_bin();
    let upstream = upstream().await;
    let (auth, reader, writer) = forward_auth().await;
    let nginx = nginx(upstream, auth).await;
    let at = nginx.addr;

    // No credential: 401, and the challenge reaches the client.
    let res = send(at, "GET", "/api/items", &[]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    assert_eq!(res.headers["www-authenticate"], "Bearer realm=\"api\"");
    assert!(!res.body.contains("upstream"));

    // A bad key: 401 invalid_token.
    let res = send(at, "GET", "/api/items", &[("x-api-key", "sk_test_nope")]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(
        res.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer realm=\"api\", error=\"invalid_token\"")
    );

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
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(
        res.body,
        "upstream\nx-auth-scheme: api_key\nx-auth-scopes: read:items\nx-auth-subject: billing-service"
    );
    // The owner's space is percent-encoded; the key itself never travels onwards.
    let res = send(
        at,
        "GET",
        "/api/items",
        &[("authorization", &format!("Bearer {writer}"))],
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(
        res.body.contains("x-auth-subject: ops%20tool"),
        "{}",
        res.body
    );
    assert!(!res.body.contains(&writer));

    // An anonymous pass: client-sent identity headers are dropped, none are added.
    let res = send(at, "GET", "/public", &[("x-auth-subject", "root")]).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, "upstream\n");

    // A client cannot steer the endpoint with Traefik-style headers either: they are dropped.
    let res = send(
        at,
        "GET",
        "/api/items",
        &[
            ("x-forwarded-uri", "/public"),
            ("x-forwarded-method", "GET"),
        ],
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);

    // Scope missing: 403 with the insufficient_scope challenge.
    let res = send(at, "POST", "/api/items", &[("x-api-key", &reader)]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(
        res.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .ends_with("error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"write:items\"")
    );
    let res = send(at, "POST", "/api/items", &[("x-api-key", &writer)]).await;
    assert_eq!(res.status, StatusCode::OK);

    // No rule: 403 without a challenge.
    let res = send(at, "GET", "/admin", &[("x-api-key", &writer)]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(!res.headers.contains_key("www-authenticate"));

    // Malformed: 400 invalid_request at the endpoint, mapped through nginx (not 500).
    let res = send(at, "GET", "/api/items;x=1", &[("x-api-key", &reader)]).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
    assert!(
        res.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_request\"")
    );
    let res = send(
        at,
        "GET",
        "/api/items",
        &[
            ("x-api-key", &reader),
            ("authorization", &format!("Bearer {writer}")),
        ],
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);

    // Store unavailable: 503 with Retry-After, mapped through nginx.
    let res = send(at, "GET", "/api/items", &[("x-test-outage", "1")]).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
    assert_eq!(res.headers["retry-after"], "5");
    assert!(!res.headers.contains_key("www-authenticate"));
}
