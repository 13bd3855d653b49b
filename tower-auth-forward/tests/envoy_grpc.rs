//! Envoy's gRPC `Authorization/Check` over loopback, with a tonic client: allow, deny 401,
//! deny 403, and the other refusals of the response contract.

#![cfg(feature = "envoy-grpc")]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::net::SocketAddr;

use envoy_types::ext_authz::v3::pb::{
    CheckRequest, CheckResponse, HeaderAppendAction, HttpResponse,
};
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tower_auth_core::credential::{Location, bearer_token};
use tower_auth_core::{AuthError, Principal, Scheme, from_fn};
use tower_auth_forward::{ForwardAuth, Rule};

async fn serve() -> SocketAddr {
    let auth = from_fn(Location::Authorization, |parts| {
        let p = |s: &str| Principal::builder(s, Scheme::Jwt);
        Ok(Some(match bearer_token(&parts.headers)? {
            None => return Ok(None),
            Some("reader") => p("alice").scopes(["read:items"]).tenant("acme").build(),
            Some("admin") => p("root").scopes(["read:items"]).roles(["admin"]).build(),
            Some("bare") => p("nobody").build(),
            Some("down") => return Err(AuthError::unavailable("key store unavailable")),
            Some(_) => return Err(AuthError::invalid_token("unknown token")),
        }))
    });
    let forward = ForwardAuth::builder(auth)
        .rule(Rule::path_prefix("/api/").scopes(["read:items"]))
        .rule(Rule::path_prefix("/admin/").roles(["admin"]))
        .rule(Rule::path("/public").anonymous(true))
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        Server::builder()
            .add_service(forward.envoy_grpc())
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    addr
}

fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .chain([(":path".to_owned(), path.to_owned())])
        .collect();
    http_request(HttpRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        host: "app.example".to_owned(),
        headers,
        ..Default::default()
    })
}

fn http_request(http: HttpRequest) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

async fn check(addr: SocketAddr, req: CheckRequest) -> CheckResponse {
    let mut client = AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    client.check(req).await.unwrap().into_inner()
}

fn code(res: &CheckResponse) -> i32 {
    res.status.as_ref().unwrap().code
}

/// The headers of a response, by name, with their append actions.
fn headers(res: &CheckResponse) -> (u16, HashMap<String, (String, i32)>, Vec<String>) {
    let (status, options, remove) = match res.http_response.as_ref().unwrap() {
        HttpResponse::OkResponse(ok) => (200, &ok.headers, ok.headers_to_remove.clone()),
        HttpResponse::DeniedResponse(d) => (d.status.unwrap().code as u16, &d.headers, Vec::new()),
        other => panic!("unexpected response {other:?}"),
    };
    let map = options
        .iter()
        .map(|o| {
            let h = o.header.as_ref().unwrap();
            (h.key.clone(), (h.value.clone(), o.append_action))
        })
        .collect();
    (status, map, remove)
}

const OVERWRITE: i32 = HeaderAppendAction::OverwriteIfExistsOrAdd as i32;

#[tokio::test]
async fn allowed_requests_get_identity_headers_upstream() {
    let addr = serve().await;
    let res = check(
        addr,
        request(
            "GET",
            "/api/items?x=1",
            &[("authorization", "Bearer reader")],
        ),
    )
    .await;
    assert_eq!(code(&res), 0, "{res:?}");
    let (status, set, mut remove) = headers(&res);
    assert_eq!(status, 200);
    assert_eq!(set["x-auth-subject"], ("alice".to_owned(), OVERWRITE));
    assert_eq!(set["x-auth-scheme"], ("jwt".to_owned(), OVERWRITE));
    assert_eq!(set["x-auth-scopes"], ("read:items".to_owned(), OVERWRITE));
    assert_eq!(set["x-auth-tenant"], ("acme".to_owned(), OVERWRITE));
    assert_eq!(set.len(), 4);
    // Identity headers without a value are removed, so the client cannot supply them.
    assert_eq!(remove, ["x-auth-roles"]);
    assert!(
        set.values().all(|(v, _)| !v.contains("reader")),
        "never the credential"
    );

    // An anonymous pass sets nothing and removes every identity header.
    let res = check(
        addr,
        request("GET", "/public", &[("x-auth-subject", "root")]),
    )
    .await;
    assert_eq!(code(&res), 0);
    let (_, set, _) = headers(&res);
    assert!(set.is_empty());
    let (_, _, removed) = headers(&res);
    remove = removed;
    remove.sort();
    assert_eq!(
        remove,
        [
            "x-auth-roles",
            "x-auth-scheme",
            "x-auth-scopes",
            "x-auth-subject",
            "x-auth-tenant"
        ]
    );
}

#[tokio::test]
async fn denied_with_401_and_the_challenge() {
    let addr = serve().await;
    let res = check(addr, request("GET", "/api/items", &[])).await;
    assert_eq!(code(&res), tonic::Code::Unauthenticated as i32);
    let (status, h, _) = headers(&res);
    assert_eq!(status, 401);
    assert_eq!(h["www-authenticate"].0, "Bearer realm=\"api\"");

    let res = check(
        addr,
        request("GET", "/api/items", &[("authorization", "Bearer wrong")]),
    )
    .await;
    assert_eq!(code(&res), tonic::Code::Unauthenticated as i32);
    let (status, h, _) = headers(&res);
    assert_eq!(status, 401);
    assert!(h["www-authenticate"].0.contains("error=\"invalid_token\""));
    assert!(!res.status.as_ref().unwrap().message.contains("wrong"));
}

#[tokio::test]
async fn denied_with_403() {
    let addr = serve().await;
    // Missing scope: insufficient_scope with the scope attribute.
    let res = check(
        addr,
        request("GET", "/api/items", &[("authorization", "Bearer admin")]),
    )
    .await;
    assert_eq!(code(&res), 0);
    let res = check(
        addr,
        request("GET", "/admin/users", &[("authorization", "Bearer reader")]),
    )
    .await;
    assert_eq!(code(&res), tonic::Code::PermissionDenied as i32);
    let (status, h, _) = headers(&res);
    assert_eq!(status, 403);
    assert!(
        !h.contains_key("www-authenticate"),
        "a missing role carries no challenge"
    );

    // No rule: 403.
    let res = check(
        addr,
        request("GET", "/elsewhere", &[("authorization", "Bearer admin")]),
    )
    .await;
    assert_eq!(code(&res), tonic::Code::PermissionDenied as i32);
    assert_eq!(headers(&res).0, 403);
}

#[tokio::test]
async fn insufficient_scope_carries_the_scope() {
    let addr = serve().await;
    let res = check(
        addr,
        request("GET", "/api/items", &[("authorization", "Bearer bare")]),
    )
    .await;
    assert_eq!(code(&res), tonic::Code::PermissionDenied as i32);
    let (status, h, _) = headers(&res);
    assert_eq!(status, 403);
    assert!(h["www-authenticate"].0.ends_with("error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"read:items\""));
    // Dot segments are removed before matching: this is `/api/items`.
    let res = check(
        addr,
        request(
            "GET",
            "/admin/../api/items",
            &[("authorization", "Bearer bare")],
        ),
    )
    .await;
    assert_eq!(code(&res), tonic::Code::PermissionDenied as i32);
    assert!(headers(&res).1.contains_key("www-authenticate"));
}

#[tokio::test]
async fn malformed_and_unavailable() {
    let addr = serve().await;
    let res = check(
        addr,
        request(
            "GET",
            "/api/%2e%2e%2fadmin",
            &[("authorization", "Bearer reader")],
        ),
    )
    .await;
    assert_eq!(code(&res), tonic::Code::InvalidArgument as i32);
    let (status, h, _) = headers(&res);
    assert_eq!(status, 400);
    assert!(
        h["www-authenticate"]
            .0
            .contains("error=\"invalid_request\"")
    );
    let res = check(addr, CheckRequest { attributes: None }).await;
    assert_eq!(code(&res), tonic::Code::InvalidArgument as i32);
    let res = check(addr, request("GET", "", &[])).await;
    assert_eq!(code(&res), tonic::Code::InvalidArgument as i32);

    let res = check(
        addr,
        request("GET", "/api/items", &[("authorization", "Bearer down")]),
    )
    .await;
    assert_eq!(code(&res), tonic::Code::Unavailable as i32);
    let (status, h, _) = headers(&res);
    assert_eq!(status, 503);
    assert_eq!(h["retry-after"].0, "5");
}

#[tokio::test]
async fn raw_headers_keep_repeated_names_apart() {
    let addr = serve().await;
    // With `encode_raw_headers`, two Authorization lines stay two: 400, as over HTTP.
    let raw = |k: &str, v: &str| HeaderValue {
        key: k.to_owned(),
        value: String::new(),
        raw_value: v.as_bytes().to_vec(),
    };
    let req = http_request(HttpRequest {
        method: "GET".to_owned(),
        path: "/api/items".to_owned(),
        header_map: Some(HeaderMap {
            headers: vec![
                raw("authorization", "Bearer reader"),
                raw("authorization", "Bearer admin"),
            ],
        }),
        ..Default::default()
    });
    let res = check(addr, req).await;
    assert_eq!(code(&res), tonic::Code::InvalidArgument as i32);
    let req = http_request(HttpRequest {
        method: "GET".to_owned(),
        path: "/api/items".to_owned(),
        header_map: Some(HeaderMap {
            headers: vec![raw("authorization", "Bearer reader")],
        }),
        ..Default::default()
    });
    assert_eq!(code(&check(addr, req).await), 0);
}
