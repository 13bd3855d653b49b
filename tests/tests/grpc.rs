//! The core layers in front of a real tonic service (the standard gRPC health service) over
//! loopback: a tonic client sees `Unauthenticated`, `PermissionDenied` and `InvalidArgument`
//! statuses produced by `GrpcRejection`, and gets through with a valid token.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower_auth_core::credential::{Location, bearer_token};
use tower_auth_core::{
    AuthError, AuthenticateLayer, GrpcRejection, Principal, RequireScopesLayer, Scheme, from_fn,
};

async fn serve() -> SocketAddr {
    let auth = from_fn(Location::Authorization, |parts| {
        match bearer_token(&parts.headers)? {
            None => Ok(None),
            Some("checker") => Ok(Some(
                Principal::builder("svc", Scheme::Custom("test"))
                    .scopes(["health:read"])
                    .build(),
            )),
            Some("other") => Ok(Some(
                Principal::builder("svc", Scheme::Custom("test")).build(),
            )),
            Some(_) => Err(AuthError::invalid_token("unknown token")),
        }
    });
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        Server::builder()
            .layer(AuthenticateLayer::required(auth).with_rejection(GrpcRejection::new()))
            .layer(RequireScopesLayer::all_of(["health:read"]).with_rejection(GrpcRejection::new()))
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    addr
}

async fn check(addr: SocketAddr, authorization: &[&str]) -> Result<(), tonic::Status> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let mut req = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    for v in authorization {
        req.metadata_mut()
            .append("authorization", MetadataValue::try_from(*v).unwrap());
    }
    client.check(req).await.map(|_| ())
}

#[tokio::test]
async fn tonic_client_sees_grpc_statuses() {
    let addr = serve().await;
    check(addr, &["Bearer checker"]).await.unwrap();

    let e = check(addr, &[]).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = check(addr, &["Bearer wrong"]).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(!e.message().contains("wrong"));
    let e = check(addr, &["Bearer other"]).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = check(addr, &["Bearer checker", "Bearer checker"])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
}
