//! With jsonwebtoken's `rust_crypto` backend compiled in beside `aws_lc_rs` (as when an
//! application enables it), jsonwebtoken's own functions panic until a provider is installed.
//! tower-auth-jwt does not depend on that choice: it verifies before any installation, and after
//! the application installs `rust_crypto`, both work side by side.
//!
//! Run: `cargo test -p tower-auth-jwt --test other_backend --features jsonwebtoken/rust_crypto`
//! (scripts/test does). Alone in its own test binary.

#![allow(clippy::unwrap_used)]

#[path = "common/backend.rs"]
mod backend;

use jsonwebtoken::crypto::{CryptoProvider, rust_crypto};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};

#[tokio::test]
async fn the_application_keeps_its_own_backend() {
    let auth = backend::authenticator();
    // Both backends are compiled in and none is installed: we still verify.
    assert_eq!(
        auth.verify(&backend::token()).await.unwrap().subject(),
        "alice"
    );

    // The application picks rust_crypto; the slot was free.
    assert!(CryptoProvider::install_default(&rust_crypto::DEFAULT_PROVIDER).is_ok());
    let key = EncodingKey::from_secret(&backend::SECRET);
    let token = jsonwebtoken::encode(&Header::default(), &backend::claims(), &key).unwrap();
    let mut validation = Validation::default();
    validation.set_audience(&["api"]);
    jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &DecodingKey::from_secret(&backend::SECRET),
        &validation,
    )
    .unwrap();
    // A token the application signed with rust_crypto verifies with us (aws-lc-rs).
    assert_eq!(auth.verify(&token).await.unwrap().subject(), "alice");
}
