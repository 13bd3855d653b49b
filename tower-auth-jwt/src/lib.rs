//! JWT docs placeholder.

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod algorithm;
mod authenticator;
mod builder;
mod cache;
mod claims;
mod error;
mod key;
mod revocation;
mod source;
mod telemetry;

pub use self::algorithm::{Algorithm, UnknownAlgorithm};
pub use self::authenticator::{JwtAuthenticator, JwtCredential, JwtFuture};
pub use self::builder::{
    DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_SIZE, Issuer, JwtAuthenticatorBuilder, MAX_LEEWAY,
};
pub use self::claims::{ClaimPath, Claims, ClaimsError, ClaimsMapping, ServiceRule};
pub use self::error::ConfigError;
pub use self::key::{KeyError, KeySet, KeyType, MIN_HMAC_SECRET_LEN, MIN_RSA_BITS, VerifyingKey};
pub use self::revocation::{RevocationCheck, TokenIdentity};
pub use self::source::{KeyLookup, KeySetFuture, KeySource, KeySourceError, StaticKeys};

/// Installs jsonwebtoken's aws-lc-rs crypto provider as the process default, once.
///
/// jsonwebtoken picks its provider from its crate features and panics at first use when
/// feature unification enables both of its backends. Installing ours explicitly, before any
/// verification, means that can never happen. If the application installed a provider first,
/// that one stays (installation is first-wins).
pub(crate) fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        );
    });
}
