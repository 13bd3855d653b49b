//! No refresh or access token in the issuer's log events, at any level, nor in those of a
//! revocation list (whose background failures are logged). Its own test binary: the
//! subscriber is the process-wide default, so no other test shares the callsites.

#![cfg(feature = "tracing")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use std::time::{Duration, Instant};

use tower_auth_jwt::issue::{JwtIssuer, RefreshTokens, SqliteStore, TokenRequest};
use tower_auth_jwt::revocation::{RevocationList, SqliteRevocationStore};

#[tokio::test]
async fn refresh_tokens_never_reach_the_logs() {
    #[derive(Clone, Default)]
    struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("app.db")).await.unwrap();
    // Polled (no change feed, whose connection is its own): closing the pool below fails
    // the poll.
    let revocation_store =
        SqliteRevocationStore::builder(format!("sqlite://{}", dir.path().join("app.db").display()))
            .without_change_feed()
            .connect()
            .await
            .unwrap();
    let revocations = RevocationList::builder(revocation_store.clone())
        .poll_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    revocations.load().await.unwrap();
    let issuer = JwtIssuer::builder(store.clone())
        .issuer("https://app.example")
        .audience("app-api")
        .client_id("app-web")
        .refresh_tokens(RefreshTokens::new(store.clone()))
        .revocation_list(revocations.clone())
        .build()
        .unwrap();
    let first = issuer.login(&TokenRequest::new("alice")).await.unwrap();
    let second = issuer
        .refresh(first.refresh_token().expose_secret())
        .await
        .unwrap();
    let _ = issuer.refresh(first.refresh_token().expose_secret()).await;
    let _ = issuer.refresh(second.refresh_token().expose_secret()).await;
    let _ = issuer.refresh("not-a-token").await;
    issuer
        .logout(second.refresh_token().expose_secret())
        .await
        .unwrap();

    issuer
        .revoke_access_token(first.access_token().jti(), None)
        .await
        .unwrap();
    issuer.logout_everywhere("alice").await.unwrap();
    // The store goes away: the background poll fails, and says so.
    revocation_store.close().await;
    let start = Instant::now();
    let logs = loop {
        let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        if logs.contains("revocation list sync failed") {
            break logs;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no sync failure logged: {logs}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(logs.contains("operation=\"poll\""), "{logs}");
    assert!(logs.contains("subject logged out everywhere"), "{logs}");
    // The events are there (so the check below looks at real output)...
    assert!(logs.contains("refresh token rotated"), "{logs}");
    assert!(logs.contains("session revoked"), "{logs}");
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains(first.session_id()), "{logs}");
    // ...and no token is.
    for p in [&first, &second] {
        assert!(!logs.contains(p.refresh_token().expose_secret()), "{logs}");
        assert!(!logs.contains(p.access_token().as_str()), "{logs}");
    }
    assert!(!logs.contains("not-a-token"), "{logs}");
}
