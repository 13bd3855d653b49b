//! tower-auth-jwt never installs or reads jsonwebtoken's process-wide crypto provider: it calls
//! the aws-lc-rs backend's factories directly, so the application's own choice stays free.
//! Alone in its own test binary, so nothing else in the process has touched the provider.
//!
//! `tests/other_backend.rs` runs the same with jsonwebtoken's other backend compiled in:
//! `cargo test -p tower-auth-jwt --test other_backend --features jsonwebtoken/rust_crypto`.

#![allow(clippy::unwrap_used)]

#[path = "common/backend.rs"]
mod backend;

use jsonwebtoken::crypto::{CryptoProvider, aws_lc};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};

#[tokio::test]
async fn verifying_and_issuing_leave_the_provider_to_the_application() {
    let auth = backend::authenticator();
    let principal = auth.verify(&backend::token()).await.unwrap();
    assert_eq!(principal.subject(), "alice");

    // The issuer signs (every algorithm it knows) and its tokens verify, still without a
    // process-wide provider.
    #[cfg(feature = "issue")]
    for alg in [
        tower_auth_jwt::Algorithm::EdDSA,
        tower_auth_jwt::Algorithm::ES256,
        tower_auth_jwt::Algorithm::RS256,
        tower_auth_jwt::Algorithm::HS256,
    ] {
        use tower_auth_jwt::issue::{JwtIssuer, MemoryStore, TokenRequest};
        let issuer = JwtIssuer::builder(MemoryStore::new())
            .issuer(backend::ISS)
            .audience("api")
            .client_id("app")
            .algorithm(alg)
            .build()
            .unwrap();
        let token = issuer.issue(&TokenRequest::new("bob")).await.unwrap();
        let verifier = tower_auth_jwt::JwtAuthenticator::builder()
            .issuer(
                tower_auth_jwt::TrustedIssuer::new(backend::ISS)
                    .audience("api")
                    .algorithms([alg])
                    .key_source(issuer.clone()),
            )
            .build()
            .unwrap();
        let p = verifier.verify(token.as_str()).await.unwrap();
        assert_eq!(p.subject(), "bob", "{alg}");
    }

    // Nothing took the slot: the application installs its choice, and jsonwebtoken's own
    // functions use it.
    assert!(CryptoProvider::install_default(&aws_lc::DEFAULT_PROVIDER).is_ok());
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
    assert_eq!(auth.verify(&token).await.unwrap().subject(), "alice");
}
