//! The example's three calls, checked.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use tonic::Code;
use tonic_grpc::{check, start_authorization_server, start_grpc_server, tokens};

#[tokio::test]
async fn grpc_with_client_credentials() {
    let secret: &'static [u8] = b"test signing secret of the stand-in authorization server";
    let issuer = start_authorization_server(secret).await.unwrap();
    let addr = start_grpc_server(&issuer, secret).await.unwrap();

    assert_eq!(
        check(addr, None).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert_eq!(
        check(addr, Some(tokens(&issuer, &["health:read"]).unwrap()))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        check(addr, Some(tokens(&issuer, &[]).unwrap()))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
}
