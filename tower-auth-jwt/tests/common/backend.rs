//! Shared by the `backends` and `other_backend` tests: a token signed without jsonwebtoken's
//! process-wide provider, and an authenticator for it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use jsonwebtoken::crypto::aws_lc;
use tower_auth_jwt::{JwtAuthenticator, TrustedIssuer};

pub(crate) const ISS: &str = "https://issuer.example.com";
pub(crate) const SECRET: [u8; 32] = [7u8; 32];

pub(crate) fn authenticator() -> JwtAuthenticator {
    JwtAuthenticator::builder()
        .issuer(TrustedIssuer::new(ISS).audience("api").hmac_secret(SECRET))
        .build()
        .unwrap()
}

pub(crate) fn claims() -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    serde_json::json!({"iss": ISS, "aud": "api", "sub": "alice", "exp": now + 600})
}

/// An HS256 token signed through the aws-lc backend's factory, not the process-wide provider.
pub(crate) fn token() -> String {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims().to_string().as_bytes())
    );
    let signer = (aws_lc::DEFAULT_PROVIDER.signer_factory)(
        &jsonwebtoken::Algorithm::HS256,
        &EncodingKey::from_secret(&SECRET),
    )
    .unwrap();
    format!(
        "{input}.{}",
        b64(&signer.try_sign(input.as_bytes()).unwrap())
    )
}
