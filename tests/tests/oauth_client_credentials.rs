//! The client-credentials layer against the real OpenID provider, calling a resource server
//! (protected by the introspection layer) over loopback, for plain HTTP and for gRPC.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
use tower_auth_core::client::HttpClient;
use tower_auth_core::{AuthenticateLayer, GrpcRejection, Principal};
use tower_auth_oauth::client_credentials::{ClientCredentials, ClientCredentialsLayer, TokenError};
use tower_auth_oauth::introspection::IntrospectionAuthenticator;
use tower_auth_tests::{CC_CLIENT, OwnProvider, RS_CLIENT, op_url};

const OPAQUE: &str = "urn:tower-auth:opaque";

/// A token source whose token-endpoint calls are counted.
fn tokens(op: &str, resource: &str, token_requests: Arc<AtomicUsize>) -> ClientCredentials {
    let http: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let counting = service_fn(move |req: Request<Full<Bytes>>| {
        token_requests.fetch_add(1, Ordering::SeqCst);
        http.request(req)
    });
    ClientCredentials::builder(format!("{op}/token"))
        .client_id(CC_CLIENT.0)
        .client_secret(CC_CLIENT.1)
        .scopes(["read:items"])
        .resources([resource])
        .http_client(
            HttpClient::builder()
                .insecure_allow_http(true)
                .service(counting)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn introspection(op: &str) -> IntrospectionAuthenticator {
    IntrospectionAuthenticator::builder(format!("{op}/token/introspection"))
        .client_id(RS_CLIENT.0)
        .client_secret(RS_CLIENT.1)
        .audiences([OPAQUE, "urn:tower-auth:opaque-short"])
        .insecure_allow_http(true)
        .build()
        .unwrap()
}

/// A resource server that answers the caller's subject and counts the requests it sees.
async fn resource_server(op: &str, seen: Arc<AtomicUsize>) -> SocketAddr {
    let app = Router::new()
        .route(
            "/me",
            get(|p: Principal| async move { p.subject().to_owned() }),
        )
        .route_layer(AuthenticateLayer::required(introspection(op)))
        .layer(tower::util::MapRequestLayer::new(move |req| {
            seen.fetch_add(1, Ordering::SeqCst);
            req
        }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn outbound(
    tokens: ClientCredentials,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = http::Response<hyper::body::Incoming>,
    Error = Box<dyn std::error::Error + Send + Sync>,
    Future: Send,
> + Clone {
    let http: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    ClientCredentialsLayer::new(tokens)
        .insecure_allow_http(true)
        .layer(http)
}

fn get_me(addr: SocketAddr) -> Request<Full<Bytes>> {
    Request::get(format!("http://{addr}/me"))
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn calls_carry_a_token_the_resource_server_accepts_and_share_one_token_request() {
    let op = op_url();
    let token_requests = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(AtomicUsize::new(0));
    let addr = resource_server(&op, Arc::clone(&seen)).await;
    let client = outbound(tokens(&op, OPAQUE, Arc::clone(&token_requests)));

    let calls: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.oneshot(get_me(addr)).await.unwrap() })
        })
        .collect();
    for c in calls {
        let res = c.await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(token_requests.load(Ordering::SeqCst), 1);
    assert_eq!(seen.load(Ordering::SeqCst), 50);
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn a_new_token_is_fetched_after_expiry() {
    let op = op_url();
    let token_requests = Arc::new(AtomicUsize::new(0));
    let addr = resource_server(&op, Arc::default()).await;
    // The provider gives this resource 5-second tokens.
    let client = outbound(tokens(
        &op,
        "urn:tower-auth:opaque-short",
        Arc::clone(&token_requests),
    ));
    let res = client.clone().oneshot(get_me(addr)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(token_requests.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let res = client.oneshot(get_me(addr)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(token_requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn provider_down_fails_the_call_and_sends_nothing() {
    let mut own = OwnProvider::start().await;
    let seen = Arc::new(AtomicUsize::new(0));
    let addr = resource_server(&own.url, Arc::clone(&seen)).await;
    let client = outbound(tokens(&own.url, OPAQUE, Arc::default()));
    own.stop().await;
    let err = client.oneshot(get_me(addr)).await.unwrap_err();
    assert!(err.downcast_ref::<TokenError>().is_some(), "{err:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 0);
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn a_tonic_client_calls_through_the_layer() {
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic::transport::{Channel, Server};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let op = op_url();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let auth = AuthenticateLayer::required(introspection(&op)).with_rejection(GrpcRejection::new());
    tokio::spawn(async move {
        Server::builder()
            .layer(auth)
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    // Without the layer: UNAUTHENTICATED.
    let err = HealthClient::new(channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    // With it: the token travels as `authorization` metadata.
    let svc = ServiceBuilder::new()
        .layer(ClientCredentialsLayer::new(tokens(
            &op,
            OPAQUE,
            Arc::default(),
        )))
        .service(channel);
    let res = HealthClient::new(svc)
        .check(HealthCheckRequest::default())
        .await
        .unwrap();
    assert_eq!(
        res.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}
