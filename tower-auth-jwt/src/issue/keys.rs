//! Signing keys: generation with aws-lc-rs, signing, and their public JWKs.

use std::fmt;
use std::time::SystemTime;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};
use aws_lc_rs::{hmac, rsa};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::IssueError;
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

enum Pair {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair),
    Rsa(rsa::KeyPair),
    Hmac(Box<hmac::Key>),
}

/// A loaded key: signs, and knows its public half.
pub(crate) struct Signer {
    kid: String,
    algorithm: Algorithm,
    pair: Pair,
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
        let (pair, jwk) = match key.algorithm {
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8(&key.material).map_err(bad)?;
                let jwk = json!({
                    "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                    "x": b64(pair.public_key().as_ref()),
                });
                (Pair::Ed25519(pair), Some(jwk))
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
                (Pair::Ecdsa(pair), Some(jwk))
            }
            Algorithm::RS256 => {
                let pair = rsa::KeyPair::from_pkcs8(&key.material).map_err(bad)?;
                let public = pair.public_key();
                let jwk = json!({
                    "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                });
                (Pair::Rsa(pair), Some(jwk))
            }
            Algorithm::HS256 => {
                if key.material.len() < crate::MIN_HMAC_SECRET_LEN {
                    return Err(IssueError::crypto("stored signing key is invalid"));
                }
                (
                    Pair::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, &key.material))),
                    None,
                )
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
            pair,
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
        let failed = |_| IssueError::crypto("signing failed");
        let sig = match &self.pair {
            Pair::Ed25519(p) => p.sign(input).as_ref().to_vec(),
            Pair::Ecdsa(p) => p
                .sign(&SystemRandom::new(), input)
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Pair::Rsa(p) => {
                let mut sig = vec![0; p.public_modulus_len()];
                p.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input, &mut sig)
                    .map_err(failed)?;
                sig
            }
            Pair::Hmac(k) => hmac::sign(k, input).as_ref().to_vec(),
        };
        Ok(URL_SAFE_NO_PAD.encode(sig))
    }
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
