//! Keys never reach logs or `Debug` output.

use tower_auth_core::Authenticator;

use super::*;
use crate::NewKey;

/// Strings that must never show up: the key, its random part, its checksum-less body, and the
/// hex and decimal-array forms of its hash.
fn forbidden(key: &str) -> Vec<String> {
    let body = &key[key.rfind('_').unwrap() + 1..];
    let hash = crate::key::KeyHasher::new(None).unwrap().hash(key);
    let hex: String = hash.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let array = format!("{:?}", hash.as_bytes());
    vec![
        key.to_owned(),
        body.to_owned(),
        body[..20].to_owned(),
        hex,
        array,
    ]
}

fn assert_clean(text: &str, keys: &[&str]) {
    for key in keys {
        for f in forbidden(key) {
            assert!(!text.contains(&f), "leaked {f:?} in:\n{text}");
        }
    }
}

#[cfg(feature = "tracing")]
mod logs {
    use std::io::Write;

    use http::StatusCode;

    use super::*;

    /// A `MakeWriter` that appends everything to a shared buffer.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[tokio::test]
    async fn keys_never_appear_in_logs() {
        // A global subscriber: a thread-local one can miss events whose callsites another test
        // thread registered first (tracing caches callsite interest). It keeps only the events
        // of this test's thread (a current-thread runtime), and ignores the other tests'.
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let capture = Capture::default();
        let owner = std::thread::current().id();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(capture.clone())
                .with_ansi(false)
                .with_filter(tracing_subscriber::filter::filter_fn(move |_| {
                    std::thread::current().id() == owner
                })),
        );
        tracing::subscriber::set_global_default(subscriber).unwrap();
        // A callsite first hit by another thread while it was registering could have cached
        // "never" across the switch above: recompute.
        tracing::callsite::rebuild_interest_cache();

        let store = TestStore::new();
        let auth = builder(&store)
            .store_timeout(Duration::from_millis(50))
            .build()
            .unwrap();
        let admin = auth.admin();
        let good = admin.create(NewKey::new("alice")).await.unwrap();
        let revoked = admin.create(NewKey::new("bob")).await.unwrap();
        admin.revoke(&revoked.record.id).await.unwrap();
        let unknown = ApiKeyAuthenticator::builder(MemoryStore::new())
            .prefix("sk_test")
            .build()
            .unwrap()
            .admin()
            .create(NewKey::new("x"))
            .await
            .unwrap();
        let failing = admin.create(NewKey::new("carol")).await.unwrap();
        let g = good.key.expose_secret();
        let tampered = format!(
            "{}{}",
            &g[..g.len() - 1],
            if g.ends_with('A') { 'B' } else { 'A' }
        );
        let (svc, _) = stack(auth.clone());
        tracing::callsite::rebuild_interest_cache();

        assert_eq!(status(&svc, bearer(g)).await, StatusCode::OK);
        assert_eq!(
            status(&svc, with_header("x-api-key", &tampered)).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(&svc, bearer(revoked.key.expose_secret())).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(&svc, bearer(unknown.key.expose_secret())).await,
            StatusCode::UNAUTHORIZED
        );
        let mut two = bearer(g);
        two.headers_mut().insert("x-api-key", g.parse().unwrap());
        assert_eq!(status(&svc, two).await, StatusCode::BAD_REQUEST);
        store.fail();
        assert_eq!(
            status(&svc, bearer(failing.key.expose_secret())).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        store.hang();
        assert_eq!(
            status(&svc, bearer(failing.key.expose_secret())).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        store.recover();
        auth.flush_last_used().await.unwrap();

        let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        // The capture works and saw the interesting events...
        assert!(logs.contains("api key accepted"), "{logs}");
        assert!(logs.contains("api key rejected"), "{logs}");
        assert!(logs.contains("bad_checksum"), "{logs}");
        assert!(logs.contains("api key store call failed"), "{logs}");
        assert!(
            logs.contains(&good.record.id),
            "public ids are logged: {logs}"
        );
        // ...and no key material.
        assert_clean(
            &logs,
            &[
                g,
                &tampered,
                revoked.key.expose_secret(),
                unknown.key.expose_secret(),
                failing.key.expose_secret(),
            ],
        );
    }
}

#[tokio::test]
async fn keys_never_appear_in_debug_output() {
    let store = TestStore::new();
    let pepper = b"pepper-pepper-pepper-0123456789".to_vec();
    let builder = builder(&store).pepper(pepper.clone());
    let builder_debug = format!("{builder:?}");
    let auth = builder.build().unwrap();
    let created = auth.admin().create(NewKey::new("alice")).await.unwrap();
    let key = created.key.expose_secret();

    let (parts, ()) = bearer(key).into_parts();
    let found = auth.extract(&parts).unwrap().unwrap();
    let found_debug = format!("{found:?} {:?}", found.credential);
    let fut = auth.authenticate(found.credential);
    let fut_debug = format!("{fut:?}");
    let principal = fut.await.unwrap();

    let (parts, ()) = with_header("x-api-key", &format!("{key}x")).into_parts();
    let bad = auth.extract(&parts).unwrap().unwrap();
    let bad_debug = format!("{bad:?} {:?}", bad.credential);
    let err = auth.authenticate(bad.credential).await.unwrap_err();

    let all = [
        builder_debug,
        format!("{auth:?}"),
        format!("{:?}", auth.admin()),
        format!("{created:?}"),
        format!("{:?}", created.key),
        found_debug,
        fut_debug,
        bad_debug,
        format!("{principal:?}"),
        format!("{err:?} {err}"),
        format!(
            "{:?}",
            crate::ApiKeys::builder(MemoryStore::new()).pepper(pepper.clone())
        ),
    ]
    .join("\n");
    assert_clean(&all, &[key]);
    let pepper_text = String::from_utf8(pepper).unwrap();
    assert!(!all.contains(&pepper_text), "pepper leaked:\n{all}");
    assert!(
        !all.contains("112, 101, 112"),
        "pepper bytes leaked:\n{all}"
    );
    // The output is still useful.
    assert!(all.contains("PlainKey(sk_test_<redacted>)"), "{all}");
    assert!(all.contains(&created.record.id), "{all}");
    assert!(all.contains("<pepper redacted>"), "{all}");
}
