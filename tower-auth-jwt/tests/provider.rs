//! jsonwebtoken's crypto provider is installed explicitly by `build()`. Alone in its own test
//! binary: any earlier jsonwebtoken call in the process would pick a provider by itself.

#![allow(clippy::unwrap_used)]

use jsonwebtoken::crypto::{CryptoProvider, aws_lc};
use tower_auth_jwt::{JwtAuthenticator, TrustedIssuer};

#[test]
fn build_installs_the_aws_lc_provider() {
    JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new("https://issuer.example.com")
                .audience("api")
                .hmac_secret([7u8; 32]),
        )
        .build()
        .unwrap();
    // Nothing has used jsonwebtoken yet in this process, so only an explicit installation can
    // have taken the slot.
    assert!(CryptoProvider::install_default(&aws_lc::DEFAULT_PROVIDER).is_err());
}
