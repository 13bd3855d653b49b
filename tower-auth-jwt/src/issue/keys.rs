//! Signing keys: generation with aws-lc-rs, signing with jsonwebtoken, and their public JWKs.

use std::fmt;
use std::time::SystemTime;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::EncodingKey;
use serde_json::json;

use super::IssueError;
use crate::key::jose_algorithm;
use crate::{Algorithm, VerifyingKey};

/// The algorithms a [`JwtIssuer`](super::JwtIssuer) signs with.
pub(crate) const SIGNING_ALGORITHMS: [Algorithm; 4] = [
    Algorithm::EdDSA,
    Algorithm::ES256,
    Algorithm::RS256,
    Algorithm::HS256,
];

/// A signing key as a [`SigningKeyStore`](super::SigningKeyStore) keeps it: its `kid`,
/// algorithm, private material and lifecycle times.
///
/// The material is the private key as PKCS #8 DER (Ed25519, P-256, RSA), or the raw HMAC
/// secret (32 bytes) for `HS256`. Whoever reads it can mint tokens: a store must keep it where
/// only the issuing service can read it. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    kid: String,
    algorithm: Algorithm,
    material: Vec<u8>,
    created_at: SystemTime,
    retired_at: Option<SystemTime>,
}

impl fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("material", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

impl StoredSigningKey {
    /// A key read back from storage. The material is checked when the issuer loads the key.
    pub fn from_parts(
        kid: impl Into<String>,
        algorithm: Algorithm,
        material: Vec<u8>,
        created_at: SystemTime,
        retired_at: Option<SystemTime>,
    ) -> Self {
        Self {
            kid: kid.into(),
            algorithm,
            material,
            created_at,
            retired_at,
        }
    }

    /// A new random key for `algorithm` (`EdDSA`, `ES256`, `RS256` with 2048 bits, or `HS256`
    /// with a 32-byte secret), with a random `kid`.
    pub(crate) fn generate(algorithm: Algorithm, now: SystemTime) -> Result<Self, IssueError> {
        let crypto = |_| IssueError::crypto("key generation failed");
        let material = match algorithm {
            Algorithm::EdDSA => Ed25519KeyPair::generate()
                .map_err(crypto)?
                .to_pkcs8()
                .map_err(crypto)?
                .as_ref()
                .to_vec(),
            Algorithm::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(crypto)?
                .to_pkcs8v1()
                .map_err(crypto)?
                .as_ref()
                .to_vec(),
            Algorithm::RS256 => {
                let pair = rsa::KeyPair::generate(rsa::KeySize::Rsa2048).map_err(crypto)?;
                let der =
                    AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&pair).map_err(crypto)?;
                der.as_ref().to_vec()
            }
            Algorithm::HS256 => random_bytes::<32>()?.to_vec(),
            _ => return Err(IssueError::crypto("unsupported signing algorithm")),
        };
        Ok(Self {
            kid: URL_SAFE_NO_PAD.encode(random_bytes::<12>()?),
            algorithm,
            material,
            created_at: now,
            retired_at: None,
        })
    }

    /// The key id, sent in the token header and the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signature algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The private material (PKCS #8 DER, or the HMAC secret). Secret: for storage only.
    pub fn secret_material(&self) -> &[u8] {
        &self.material
    }

    /// When the key was generated.
    pub fn created_at(&self) -> SystemTime {
        self.created_at
    }

    /// When the key stops (or stopped) signing, set by a rotation; `None` for the current key
    /// (the one signing, or scheduled to sign next).
    pub fn retired_at(&self) -> Option<SystemTime> {
        self.retired_at
    }

    pub(crate) fn retire(&mut self, at: SystemTime) {
        if self.retired_at.is_none() {
            self.retired_at = Some(at);
        }
    }
}

/// A loaded key: signs (through jsonwebtoken's aws-lc-rs backend, called directly: no
/// process-wide provider is installed or read), and knows its public half.
pub(crate) struct Signer {
    kid: String,
    algorithm: Algorithm,
    key: EncodingKey,
    /// The public JWK (`None` for HMAC, which publishes nothing).
    jwk: Option<serde_json::Value>,
    verifying: VerifyingKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub(crate) fn load(key: &StoredSigningKey) -> Result<Self, IssueError> {
        let bad = |_| IssueError::crypto("stored signing key is invalid");
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let kid = key.kid.clone();
        // aws-lc-rs reads each key once here, to check it and derive its public JWK;
        // jsonwebtoken signs with it.
        let (encoding, jwk) = match key.algorithm {
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8(&key.material).map_err(bad)?;
                let jwk = json!({
                    "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                    "x": b64(pair.public_key().as_ref()),
                });
                (EncodingKey::from_ed_der(&key.material), Some(jwk))
            }
            Algorithm::ES256 => {
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.material)
                        .map_err(bad)?;
                let point = pair.public_key().as_ref();
                if point.len() != 65 || point[0] != 4 {
                    return Err(IssueError::crypto("stored signing key is invalid"));
                }
                let jwk = json!({
                    "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                    "x": b64(&point[1..33]), "y": b64(&point[33..]),
                });
                (EncodingKey::from_ec_der(&key.material), Some(jwk))
            }
            Algorithm::RS256 => {
                let pair = rsa::KeyPair::from_pkcs8(&key.material).map_err(bad)?;
                let public = pair.public_key();
                let jwk = json!({
                    "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                });
                // jsonwebtoken's RSA signer takes PKCS #1; its PEM reader unwraps PKCS #8.
                let encoding = EncodingKey::from_rsa_pem(pkcs8_pem(&key.material).as_bytes())
                    .map_err(|_| IssueError::crypto("stored signing key is invalid"))?;
                (encoding, Some(jwk))
            }
            Algorithm::HS256 => {
                if key.material.len() < crate::MIN_HMAC_SECRET_LEN {
                    return Err(IssueError::crypto("stored signing key is invalid"));
                }
                (EncodingKey::from_secret(&key.material), None)
            }
            _ => return Err(IssueError::crypto("unsupported signing algorithm")),
        };
        let verifying = match &jwk {
            Some(jwk) => VerifyingKey::from_jwk_value(jwk),
            None => VerifyingKey::hmac_secret(&key.material)
                .and_then(|k| k.restrict_to(Algorithm::HS256))
                .map(|k| k.with_kid(kid.clone())),
        }
        .map_err(|_| IssueError::crypto("stored signing key is invalid"))?;
        Ok(Self {
            kid,
            algorithm: key.algorithm,
            key: encoding,
            jwk,
            verifying,
        })
    }

    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub(crate) fn jwk(&self) -> Option<&serde_json::Value> {
        self.jwk.as_ref()
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// The JWS signature of `input`, base64url.
    pub(crate) fn sign(&self, input: &[u8]) -> Result<String, IssueError> {
        let factory = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.signer_factory;
        let signer = factory(&jose_algorithm(self.algorithm), &self.key)
            .map_err(|_| IssueError::crypto("signing failed"))?;
        let sig = signer
            .try_sign(input)
            .map_err(|_| IssueError::crypto("signing failed"))?;
        Ok(URL_SAFE_NO_PAD.encode(sig))
    }
}

/// A PKCS #8 DER private key as PEM text.
fn pkcs8_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut pem = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    pem.push_str("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII.
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// `N` bytes from the operating system's CSPRNG (through aws-lc-rs).
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], IssueError> {
    let mut buf = [0u8; N];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| IssueError::crypto("random generator failed"))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_algorithm_signs_and_its_public_key_verifies() {
        for alg in SIGNING_ALGORITHMS {
            let key = StoredSigningKey::generate(alg, SystemTime::now()).unwrap();
            let signer = Signer::load(&key).unwrap();
            assert_eq!(signer.kid(), key.kid());
            let sig = signer.sign(b"header.payload").unwrap();
            let v = signer.verifying_key();
            assert_eq!(v.kid(), Some(key.kid()));
            assert!(v.verify_signature(alg, b"header.payload", &sig), "{alg}");
            assert!(!v.verify_signature(alg, b"header.payloaD", &sig), "{alg}");
            assert_eq!(signer.jwk().is_some(), alg != Algorithm::HS256);
            if let Some(jwk) = signer.jwk() {
                assert!(jwk.get("d").is_none(), "no private member in the JWK");
            }
        }
    }

    #[test]
    fn keys_are_random_and_debug_hides_the_material() {
        let a = StoredSigningKey::generate(Algorithm::HS256, SystemTime::now()).unwrap();
        let b = StoredSigningKey::generate(Algorithm::HS256, SystemTime::now()).unwrap();
        assert_ne!(a.kid(), b.kid());
        assert_ne!(a.secret_material(), b.secret_material());
        let debug = format!("{a:?}");
        assert!(debug.contains("<redacted>"));
        for needle in [
            format!("{:?}", a.secret_material()),
            URL_SAFE_NO_PAD.encode(a.secret_material()),
        ] {
            assert!(!debug.contains(&needle));
        }
    }

    #[test]
    fn corrupt_material_is_refused() {
        for alg in SIGNING_ALGORITHMS {
            let key =
                StoredSigningKey::from_parts("k", alg, vec![1, 2, 3], SystemTime::now(), None);
            assert!(Signer::load(&key).is_err(), "{alg}");
        }
    }
}
