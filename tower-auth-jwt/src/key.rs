//! Verification keys and key sets: HMAC secrets, PEM public keys, JWKs and JWKS documents.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
    RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, VerificationAlgorithm,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use crate::Algorithm;

/// The smallest RSA modulus accepted, in bits (RFC 7518 section 3.3).
pub const MIN_RSA_BITS: usize = 2048;
/// The smallest HMAC secret accepted, in bytes (RFC 7518 section 3.2: at least the hash size).
pub const MIN_HMAC_SECRET_LEN: usize = 32;

/// The type of a [`VerifyingKey`], which fixes the algorithms it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// A shared HMAC secret (`kty: oct`): `HS256` / `HS384` / `HS512`, each only when the
    /// secret is at least as long as the hash.
    Hmac,
    /// An RSA public key (`kty: RSA`): `RS*` and `PS*`.
    Rsa,
    /// An EC P-256 public key (`kty: EC, crv: P-256`): `ES256` only.
    EcP256,
    /// An EC P-384 public key (`kty: EC, crv: P-384`): `ES384` only.
    EcP384,
    /// An Ed25519 public key (`kty: OKP, crv: Ed25519`): `EdDSA` only.
    Ed25519,
}

impl KeyType {
    /// The algorithm assumed for a key of this type when neither the key (JWK `alg`) nor the
    /// issuer's allow-list says otherwise.
    pub fn default_algorithm(self) -> Algorithm {
        match self {
            Self::Hmac => Algorithm::HS256,
            Self::Rsa => Algorithm::RS256,
            Self::EcP256 => Algorithm::ES256,
            Self::EcP384 => Algorithm::ES384,
            Self::Ed25519 => Algorithm::EdDSA,
        }
    }

    fn admits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Self::Hmac => matches!(alg, HS256 | HS384 | HS512),
            Self::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Self::EcP256 => alg == ES256,
            Self::EcP384 => alg == ES384,
            Self::Ed25519 => alg == EdDSA,
        }
    }
}

/// Why a key or key set was rejected. The message never contains key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    kid: Option<String>,
    reason: Cow<'static, str>,
}

impl KeyError {
    pub(crate) fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kid: None,
            reason: reason.into(),
        }
    }

    fn with_kid(mut self, kid: Option<&str>) -> Self {
        if self.kid.is_none() {
            self.kid = kid.map(str::to_owned);
        }
        self
    }

    /// The `kid` of the rejected key, when it had one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Why it was rejected.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kid {
            Some(kid) => write!(f, "key `{kid}`: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for KeyError {}

/// A key that verifies token signatures: a public key, or an HMAC secret.
///
/// Built from an HMAC secret, a PEM public key, or a JWK. The key knows its [`KeyType`]; a
/// token's `alg` must fit it (and the JWK's `alg`, when the key has one), whatever the token
/// header claims. That is what stops algorithm confusion: an RSA public key never verifies an
/// `HS256` MAC.
///
/// `Debug` shows the kid, type and algorithm, never key material.
///
/// ```
/// use tower_auth_jwt::{Algorithm, KeyType, VerifyingKey};
///
/// let key = VerifyingKey::hmac_secret([7u8; 32]).unwrap().with_kid("k1");
/// assert_eq!(key.key_type(), KeyType::Hmac);
/// assert!(key.fits(Algorithm::HS256));
/// assert!(!key.fits(Algorithm::HS512)); // a 32-byte secret is too short for HS512
/// assert!(!key.fits(Algorithm::RS256));
///
/// // Secrets shorter than the hash are refused (RFC 7518 section 3.2).
/// assert!(VerifyingKey::hmac_secret(b"short").is_err());
/// ```
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    alg: Option<Algorithm>,
    key_type: KeyType,
    hmac_len: usize,
    crypto: Crypto,
}

/// The key material, as jsonwebtoken holds it.
///
/// Signatures are checked by jsonwebtoken's aws-lc-rs backend, called through its factory
/// directly ([`jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER`]): this crate never installs or
/// reads jsonwebtoken's process-wide provider, so an application that uses jsonwebtoken itself,
/// with either backend, keeps its own choice. Public keys are validated with aws-lc-rs when the
/// key is built (see [`Crypto::public`]); the backend parses them again for each signature
/// check, as `jsonwebtoken::decode` does.
#[derive(Clone)]
struct Crypto(DecodingKey);

/// The jsonwebtoken name of an algorithm.
pub(crate) fn jose_algorithm(alg: Algorithm) -> jsonwebtoken::Algorithm {
    use jsonwebtoken::Algorithm as J;
    match alg {
        Algorithm::HS256 => J::HS256,
        Algorithm::HS384 => J::HS384,
        Algorithm::HS512 => J::HS512,
        Algorithm::RS256 => J::RS256,
        Algorithm::RS384 => J::RS384,
        Algorithm::RS512 => J::RS512,
        Algorithm::PS256 => J::PS256,
        Algorithm::PS384 => J::PS384,
        Algorithm::PS512 => J::PS512,
        Algorithm::ES256 => J::ES256,
        Algorithm::ES384 => J::ES384,
        Algorithm::EdDSA => J::EdDSA,
    }
}

/// The aws-lc verification algorithm a public key of this type is validated with when loaded.
fn validation_algorithm(key_type: KeyType) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match key_type {
        KeyType::Rsa => &RSA_PKCS1_2048_8192_SHA256,
        KeyType::EcP256 => &ECDSA_P256_SHA256_FIXED,
        KeyType::EcP384 => &ECDSA_P384_SHA384_FIXED,
        KeyType::Ed25519 => &ED25519,
        KeyType::Hmac => return None,
    })
}

/// The largest signature of any supported algorithm: RSA with an 8192-bit modulus.
const MAX_SIGNATURE_LEN: usize = 1024;

impl Crypto {
    fn hmac(secret: &[u8]) -> Self {
        Self(DecodingKey::from_secret(secret))
    }

    /// A public key in the form jsonwebtoken's aws-lc backend reads (DER `RSAPublicKey` for
    /// RSA, the uncompressed point for EC, the raw 32 bytes for Ed25519), after aws-lc-rs
    /// accepted it for the key type: a key that could never verify anything is refused here,
    /// not at every request.
    fn public(key_type: KeyType, der: &[u8]) -> Result<Self, ()> {
        let alg = validation_algorithm(key_type).ok_or(())?;
        ParsedPublicKey::new(alg, der).map_err(|_| ())?;
        Ok(Self(match key_type {
            KeyType::Rsa => DecodingKey::from_rsa_der(der),
            KeyType::EcP256 | KeyType::EcP384 => DecodingKey::from_ec_der(der),
            KeyType::Ed25519 => DecodingKey::from_ed_der(der),
            KeyType::Hmac => return Err(()),
        }))
    }

    /// Checks `signature` (base64url, canonical, no padding) over `message`, with jsonwebtoken's
    /// aws-lc-rs verifier for `alg`. The caller has checked that `alg` fits the key.
    fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        // Longer than any signature we verify: refused without decoding.
        if signature.len() > MAX_SIGNATURE_LEN / 3 * 4 + 2 {
            return false;
        }
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        let factory = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.verifier_factory;
        match factory(&jose_algorithm(alg), &self.0) {
            Ok(verifier) => verifier.verify(message, &signature).is_ok(),
            Err(_) => false,
        }
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("key_type", &self.key_type)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// An HMAC secret (raw bytes, not base64). At least 32 bytes; `HS384` needs 48 and
    /// `HS512` 64.
    pub fn hmac_secret(secret: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        let secret = secret.as_ref();
        if secret.len() < MIN_HMAC_SECRET_LEN {
            return Err(KeyError::new(format!(
                "HMAC secret of {} bytes; at least {MIN_HMAC_SECRET_LEN} required",
                secret.len()
            )));
        }
        Ok(Self {
            kid: None,
            alg: None,
            key_type: KeyType::Hmac,
            hmac_len: secret.len(),
            crypto: Crypto::hmac(secret),
        })
    }

    /// A PEM public key: `PUBLIC KEY` (SPKI: RSA, EC P-256, EC P-384, Ed25519) or
    /// `RSA PUBLIC KEY` (PKCS #1). Private keys and certificates are refused.
    pub fn from_pem(pem: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        let pem = pem.as_ref();
        match pem_label(pem) {
            Some("PUBLIC KEY" | "RSA PUBLIC KEY") => {}
            Some(label) if label.contains("PRIVATE") => {
                return Err(KeyError::new(
                    "a PEM private key was given; configure the public key",
                ));
            }
            Some("CERTIFICATE") => {
                return Err(KeyError::new(
                    "PEM certificates are not accepted; configure the public key",
                ));
            }
            _ => return Err(KeyError::new("not a PEM public key")),
        }
        if let Ok(decoding) = DecodingKey::from_rsa_pem(pem) {
            let der = decoding
                .try_get_as_bytes()
                .map_err(|_| KeyError::new("invalid RSA public key"))?;
            let public = aws_lc_rs::rsa::PublicKey::from_der(der)
                .map_err(|_| KeyError::new("invalid RSA public key"))?;
            check_rsa_bits(public.modulus_len() * 8)?;
            return Self::asymmetric(KeyType::Rsa, der)
                .map_err(|()| KeyError::new("invalid RSA public key"));
        }
        if let Ok(decoding) = DecodingKey::from_ec_pem(pem) {
            let point = decoding
                .try_get_as_bytes()
                .map_err(|_| KeyError::new("invalid EC public key"))?;
            let key_type = ec_point_type(point)?;
            return Self::asymmetric(key_type, point)
                .map_err(|()| KeyError::new("invalid EC public key"));
        }
        if let Ok(decoding) = DecodingKey::from_ed_pem(pem) {
            let x = decoding
                .try_get_as_bytes()
                .map_err(|_| KeyError::new("invalid Ed25519 public key"))?;
            check_ed25519(x)?;
            return Self::asymmetric(KeyType::Ed25519, x)
                .map_err(|()| KeyError::new("invalid Ed25519 public key"));
        }
        Err(KeyError::new(
            "unsupported PEM public key (RSA, EC P-256, EC P-384 or Ed25519 expected)",
        ))
    }

    /// A JWK (RFC 7517) as JSON text. See [`from_jwk_value`](Self::from_jwk_value).
    pub fn from_jwk(json: &str) -> Result<Self, KeyError> {
        let object = crate::json::object(json.as_bytes())
            .ok_or_else(|| KeyError::new("not a JWK JSON object"))?;
        Self::from_jwk_value(&serde_json::Value::Object(object))
    }

    /// A JWK (RFC 7517) as a JSON value.
    ///
    /// Accepted: `kty` `RSA` (at least 2048 bits), `EC` (`P-256`, `P-384`), `OKP` (`Ed25519`)
    /// and `oct` (at least 32 bytes). The `kid` and `alg` are kept; `alg` restricts the key to
    /// that algorithm and must fit the key type. Refused: `use` other than `sig`, `key_ops`
    /// without `verify`, private key members (`d`, ...), unsupported curves, non-canonical
    /// base64url.
    pub fn from_jwk_value(value: &serde_json::Value) -> Result<Self, KeyError> {
        let raw = raw_jwk(value).ok_or_else(|| KeyError::new("not a JWK JSON object"))?;
        Self::from_raw_jwk(raw, true)
    }

    /// The public key of a DPoP proof's `jwk` header (RFC 9449 section 4.2): an asymmetric key
    /// only, without any private member (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`), checked
    /// as strictly as a configured JWK.
    pub(crate) fn from_proof_jwk(value: &serde_json::Value) -> Result<Self, KeyError> {
        let object = value
            .as_object()
            .ok_or_else(|| KeyError::new("not a JWK JSON object"))?;
        if ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
            .iter()
            .any(|m| object.contains_key(*m))
        {
            return Err(private_member());
        }
        let raw = RawJwk::deserialize(value).map_err(|_| KeyError::new("not a JWK JSON object"))?;
        Self::from_raw_jwk(raw, false)
    }

    fn from_raw_jwk(raw: RawJwk, allow_oct: bool) -> Result<Self, KeyError> {
        let kid = raw.kid.clone();
        Self::from_raw_jwk_inner(raw, allow_oct).map_err(|e| e.with_kid(kid.as_deref()))
    }

    fn from_raw_jwk_inner(raw: RawJwk, allow_oct: bool) -> Result<Self, KeyError> {
        if let Some(u) = raw.use_.as_deref()
            && u != "sig"
        {
            return Err(KeyError::new("`use` is not `sig`"));
        }
        if let Some(ops) = &raw.key_ops
            && !ops.iter().any(|o| o == "verify")
        {
            return Err(KeyError::new("`key_ops` does not include `verify`"));
        }
        let alg = match raw.alg.as_deref() {
            None => None,
            Some(a) => Some(
                a.parse::<Algorithm>()
                    .map_err(|_| KeyError::new("unsupported `alg`"))?,
            ),
        };
        let mut key = match raw.kty.as_str() {
            "RSA" => {
                if raw.d.is_some() || raw.p.is_some() || raw.q.is_some() {
                    return Err(private_member());
                }
                let n = b64_member(raw.n.as_deref(), "n")?;
                let e = b64_member(raw.e.as_deref(), "e")?;
                let n_trimmed = trim_leading_zeros(&n);
                let bits = n_trimmed.len() * 8
                    - n_trimmed.first().map_or(8, |b| b.leading_zeros() as usize);
                check_rsa_bits(bits)?;
                if trim_leading_zeros(&e).is_empty() {
                    return Err(KeyError::new("invalid RSA exponent"));
                }
                let invalid = || KeyError::new("invalid RSA public key");
                let parsed = RsaPublicKeyComponents { n: &n, e: &e }
                    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                    .map_err(|_| invalid())?;
                Self::asymmetric(KeyType::Rsa, parsed.as_ref()).map_err(|()| invalid())?
            }
            "EC" => {
                if raw.d.is_some() {
                    return Err(private_member());
                }
                let x = b64_member(raw.x.as_deref(), "x")?;
                let y = b64_member(raw.y.as_deref(), "y")?;
                let (key_type, len) = match raw.crv.as_deref() {
                    Some("P-256") => (KeyType::EcP256, 32),
                    Some("P-384") => (KeyType::EcP384, 48),
                    Some(_) => return Err(KeyError::new("unsupported EC curve")),
                    None => return Err(KeyError::new("missing `crv`")),
                };
                if x.len() != len || y.len() != len {
                    return Err(KeyError::new("EC coordinates do not match the curve"));
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                ec_point_type(&point)?;
                Self::asymmetric(key_type, &point)
                    .map_err(|()| KeyError::new("invalid EC public key"))?
            }
            "OKP" => {
                if raw.d.is_some() {
                    return Err(private_member());
                }
                if raw.crv.as_deref() != Some("Ed25519") {
                    return Err(KeyError::new("unsupported OKP curve"));
                }
                let x = b64_member(raw.x.as_deref(), "x")?;
                check_ed25519(&x)?;
                Self::asymmetric(KeyType::Ed25519, &x)
                    .map_err(|()| KeyError::new("invalid Ed25519 public key"))?
            }
            "oct" if allow_oct => {
                let k = b64_member(raw.k.as_deref(), "k")?;
                Self::hmac_secret(&k)?
            }
            "oct" => {
                return Err(KeyError::new(
                    "symmetric (`oct`) key in a public key set; skipped",
                ));
            }
            _ => return Err(KeyError::new("unsupported `kty`")),
        };
        if let Some(alg) = alg {
            key = key.restrict_to(alg)?;
        }
        key.kid = raw.kid;
        Ok(key)
    }

    /// A public key from the bytes aws-lc parses, checked by parsing it for the key type's
    /// default algorithm.
    fn asymmetric(key_type: KeyType, der: &[u8]) -> Result<Self, ()> {
        Ok(Self {
            kid: None,
            alg: None,
            key_type,
            hmac_len: 0,
            crypto: Crypto::public(key_type, der)?,
        })
    }

    /// Sets the key id matched against the token header's `kid`.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Restricts the key to one algorithm, as a JWK's `alg` does. Fails when the algorithm does
    /// not fit the key type.
    pub fn restrict_to(mut self, alg: Algorithm) -> Result<Self, KeyError> {
        self.alg = None;
        if !self.fits(alg) {
            return Err(KeyError::new(format!(
                "`alg` {alg} does not fit a {:?} key",
                self.key_type
            )));
        }
        self.alg = Some(alg);
        Ok(self)
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The one algorithm this key is restricted to (a JWK's `alg`), if any.
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.alg
    }

    /// The algorithm assumed when none is configured: the key's own `alg`, else
    /// [`KeyType::default_algorithm`].
    pub fn default_algorithm(&self) -> Algorithm {
        self.alg.unwrap_or(self.key_type.default_algorithm())
    }

    /// Whether a signature made with `alg` may be verified with this key: the algorithm must
    /// belong to the key type, match the key's `alg` when it has one, and for HMAC the secret
    /// must be at least as long as the hash.
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.key_type.admits(alg)
            && self.alg.is_none_or(|a| a == alg)
            && alg
                .hmac_min_key_len()
                .is_none_or(|min| self.hmac_len >= min)
    }

    /// Checks a JWS signature: `signature` is the third segment of a compact JWS (base64url,
    /// no padding, canonical) and `signing_input` the first two segments with their dot. False
    /// when `alg` does not [fit](Self::fits) the key.
    ///
    /// Low level: no header or claim is looked at. [`JwtAuthenticator`](crate::JwtAuthenticator)
    /// does everything else.
    pub fn verify_signature(&self, alg: Algorithm, signing_input: &[u8], signature: &str) -> bool {
        self.fits(alg) && self.verify(alg, signing_input, signature.as_bytes())
    }

    /// [`verify_signature`](Self::verify_signature) for a key known to fit.
    pub(crate) fn verify(&self, alg: Algorithm, signing_input: &[u8], signature: &[u8]) -> bool {
        debug_assert!(self.fits(alg));
        self.crypto.verify(alg, signing_input, signature)
    }
}

/// A set of verification keys, looked up by `kid`.
///
/// Cheap to share behind an `Arc`; key sources hand out `Arc<KeySet>`.
///
/// ```
/// use tower_auth_jwt::KeySet;
///
/// let jwks = r#"{"keys":[{"kty":"EC","kid":"a","crv":"P-256",
///   "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
///   "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
/// let set = KeySet::from_jwks(jwks).unwrap();
/// assert_eq!(set.len(), 1);
/// assert!(set.get("a").is_some());
/// ```
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<Arc<VerifyingKey>>,
}

impl KeySet {
    /// A set of the given keys. Fails when two keys share a `kid`: which one is meant could not
    /// be known.
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>) -> Result<Self, KeyError> {
        Self::from_shared(keys.into_iter().map(Arc::new))
    }

    /// A set of keys that may also belong to other sets. A refreshing source passes the
    /// `Arc`s of keys that did not change, so tokens they verified stay in the verified-token
    /// cache (entries are served only while their key is held by some set).
    pub fn from_shared(
        keys: impl IntoIterator<Item = Arc<VerifyingKey>>,
    ) -> Result<Self, KeyError> {
        let keys: Vec<_> = keys.into_iter().collect();
        let mut seen = HashSet::new();
        for k in &keys {
            if let Some(kid) = k.kid()
                && !seen.insert(kid)
            {
                return Err(KeyError::new("duplicate `kid`").with_kid(Some(kid)));
            }
        }
        Ok(Self { keys })
    }

    /// A JWKS document (RFC 7517 section 5), strictly: every key must be valid (see
    /// [`VerifyingKey::from_jwk_value`]). For configuration you control.
    pub fn from_jwks(json: &str) -> Result<Self, KeyError> {
        let keys = jwks_keys(json.as_bytes())?
            .into_iter()
            .map(|raw| Self::parse_value(raw, true))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys)
    }

    /// A JWKS document published by someone else: keys that cannot be used for verification
    /// (`use: enc`, unknown `kty`, unsupported curve, an `alg` that disagrees with the key,
    /// symmetric `oct` keys, private members, bad material) are skipped and returned, without
    /// breaking the rest. Keys sharing a `kid` are all skipped: the right one cannot be guessed.
    /// Fails only when the document itself is not a JWKS.
    pub fn from_jwks_skipping_invalid(json: &str) -> Result<(Self, Vec<KeyError>), KeyError> {
        let (keys, skipped) = parse_published_jwks(json.as_bytes())?;
        Ok((
            Self {
                keys: keys.into_iter().map(|(_, k)| Arc::new(k)).collect(),
            },
            skipped,
        ))
    }

    fn parse_value(value: serde_json::Value, allow_oct: bool) -> Result<VerifyingKey, KeyError> {
        let kid = value.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
        let raw = raw_jwk(&value)
            .ok_or_else(|| KeyError::new("not a JWK JSON object").with_kid(kid.as_deref()))?;
        VerifyingKey::from_raw_jwk(raw, allow_oct)
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&Arc<VerifyingKey>> {
        self.keys.iter().find(|k| k.kid() == Some(kid))
    }

    /// Every key, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<VerifyingKey>> {
        self.keys.iter()
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys that may verify a token with this `kid` and `alg`, in order:
    ///
    /// - a token `kid` selects the key with that `kid`; when none has it, the keys configured
    ///   without a `kid` are tried (a PEM key has no `kid`, and an issuer may still send one);
    /// - a token without a `kid` tries every key;
    ///
    /// and in every case only keys that [fit](VerifyingKey::fits) `alg`.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a Arc<VerifyingKey>> + 'a {
        let by_kid = kid.and_then(|kid| self.get(kid));
        let exact = by_kid.into_iter();
        let rest = self
            .keys
            .iter()
            .filter(move |k| by_kid.is_none() && (kid.is_none() || k.kid().is_none()));
        exact.chain(rest).filter(move |k| k.fits(alg))
    }
}

/// A usable key of a published JWKS, with its JWK as published.
pub(crate) type PublishedKey = (serde_json::Value, VerifyingKey);

/// A published JWKS, leniently: the usable keys, each with its JWK as published (so a
/// refreshing source can tell which keys did not change), and the skipped ones with the reason.
/// Keys sharing a `kid` are all skipped.
pub(crate) fn parse_published_jwks(
    json: &[u8],
) -> Result<(Vec<PublishedKey>, Vec<KeyError>), KeyError> {
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for raw in jwks_keys(json)? {
        match KeySet::parse_value(raw.clone(), false) {
            Ok(k) => keys.push((raw, k)),
            Err(e) => skipped.push(e),
        }
    }
    let mut counts = std::collections::HashMap::new();
    for (_, k) in &keys {
        if let Some(kid) = k.kid() {
            *counts.entry(kid.to_owned()).or_insert(0usize) += 1;
        }
    }
    keys.retain(|(_, k)| match k.kid() {
        Some(kid) if counts.get(kid).copied().unwrap_or(0) > 1 => {
            skipped.push(KeyError::new("duplicate `kid`").with_kid(Some(kid)));
            false
        }
        _ => true,
    });
    Ok((keys, skipped))
}

fn pem_label(pem: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(pem).ok()?;
    let start = s.find("-----BEGIN ")? + "-----BEGIN ".len();
    let end = s[start..].find("-----")? + start;
    Some(&s[start..end])
}

fn check_rsa_bits(bits: usize) -> Result<(), KeyError> {
    if bits < MIN_RSA_BITS {
        return Err(KeyError::new(format!(
            "RSA key of {bits} bits; at least {MIN_RSA_BITS} required"
        )));
    }
    Ok(())
}

fn ec_point_type(point: &[u8]) -> Result<KeyType, KeyError> {
    let (key_type, alg) = match point.len() {
        65 => (KeyType::EcP256, &ECDSA_P256_SHA256_FIXED),
        97 => (KeyType::EcP384, &ECDSA_P384_SHA384_FIXED),
        _ => {
            return Err(KeyError::new(
                "unsupported EC key (P-256 or P-384 expected)",
            ));
        }
    };
    ParsedPublicKey::new(alg, point).map_err(|_| KeyError::new("invalid EC public key"))?;
    Ok(key_type)
}

/// Refuses Ed25519 public keys that let one signature verify every message: the points of
/// small order (the identity, the point of order 2, the two of order 4 and the four of order
/// 8), and every non-canonical encoding.
///
/// With such a key A, the signature (R = identity, S = 0) satisfies `[S]B = R + [k]A` for
/// every message (a verifier that multiplies by the cofactor accepts more still), so a token
/// with any claims would pass. An encoding is `y` (255 bits, little-endian) and the sign of
/// `x` in the top bit. Refused:
///
/// - `y >= p` (p = 2^255 - 19): a non-canonical `y`, which some decoders reduce to a small
///   `y` (`p + 1` reads as 1, the identity), so a list of canonical encodings alone misses it;
/// - `y` in {0, 1, p - 1} whatever the sign bit: the identity (y = 1), the point of order 2
///   (y = -1, both with x = 0, so the sign bit set is non-canonical too) and the two points of
///   order 4 (y = 0);
/// - the two `y` of the four points of order 8, whatever the sign bit.
fn check_ed25519(x: &[u8]) -> Result<(), KeyError> {
    /// The `y` of the points of order 8, little-endian.
    const ORDER_8: [[u8; 32]; 2] = [
        [
            0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef,
            0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88,
            0x6d, 0x53, 0xfc, 0x05,
        ],
        [
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10,
            0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77,
            0x92, 0xac, 0x03, 0x7a,
        ],
    ];
    let invalid = || KeyError::new("invalid Ed25519 public key");
    let weak = || KeyError::new("Ed25519 public key of small order or non-canonical encoding");
    let Ok(encoded) = <[u8; 32]>::try_from(x) else {
        return Err(invalid());
    };
    let mut y = encoded;
    y[31] &= 0x7f;
    // y >= p: the top byte is 0x7f, the 30 below it 0xff, and the lowest at least 0xed.
    if y[31] == 0x7f && y[1..31].iter().all(|&b| b == 0xff) && y[0] >= 0xed {
        return Err(weak());
    }
    let small = |value: u8| y[0] == value && y[1..].iter().all(|&b| b == 0);
    let minus_one = y[0] == 0xec && y[1..31].iter().all(|&b| b == 0xff) && y[31] == 0x7f;
    if small(0) || small(1) || minus_one || ORDER_8.contains(&y) {
        return Err(weak());
    }
    Ok(())
}

fn trim_leading_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}

fn private_member() -> KeyError {
    KeyError::new("private key members present; configure the public key only")
}

fn b64_member(value: Option<&str>, name: &'static str) -> Result<Vec<u8>, KeyError> {
    let value = value.ok_or_else(|| KeyError::new(format!("missing `{name}`")))?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| KeyError::new(format!("`{name}` is not canonical base64url")))
}

/// The `keys` of a JWKS document (RFC 7517 section 5): a JSON object without duplicate member
/// names whose `keys` is an array. A derived struct would also read the array `[[...]]`
/// positionally as a document.
fn jwks_keys(json: &[u8]) -> Result<Vec<serde_json::Value>, KeyError> {
    match crate::json::object(json).and_then(|mut doc| doc.remove("keys")) {
        Some(serde_json::Value::Array(keys)) => Ok(keys),
        _ => Err(KeyError::new("not a JWKS document")),
    }
}

/// The members of a JWK, which must be a JSON object: a derived struct would also read an
/// array positionally.
fn raw_jwk(value: &serde_json::Value) -> Option<RawJwk> {
    if !value.is_object() {
        return None;
    }
    RawJwk::deserialize(value).ok()
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
    d: Option<String>,
    p: Option<String>,
    q: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn data(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn ec_jwk() -> serde_json::Value {
        json!({"kty":"EC","crv":"P-256","kid":"e1",
               "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
               "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
    }

    fn reason(v: serde_json::Value) -> String {
        VerifyingKey::from_jwk_value(&v)
            .unwrap_err()
            .reason()
            .to_owned()
    }

    #[test]
    fn pem_key_types() {
        for (file, kt) in [
            ("rsa_public.pem", KeyType::Rsa),
            ("ec256_public.pem", KeyType::EcP256),
            ("ec384_public.pem", KeyType::EcP384),
            ("ed25519_public.pem", KeyType::Ed25519),
        ] {
            let k = VerifyingKey::from_pem(data(file)).unwrap();
            assert_eq!(k.key_type(), kt, "{file}");
            assert_eq!(k.kid(), None);
        }
        for (file, why) in [
            ("rsa_private.pem", "private key"),
            ("ec256_private.pem", "private key"),
            ("rsa1024_public.pem", "1024 bits"),
        ] {
            let e = VerifyingKey::from_pem(data(file)).unwrap_err();
            assert!(e.reason().contains(why), "{file}: {e}");
        }
        assert!(VerifyingKey::from_pem(b"not pem").is_err());
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert!(
            VerifyingKey::from_pem(cert)
                .unwrap_err()
                .reason()
                .contains("certificates")
        );
    }

    /// Asked for another curve's algorithm (which `fits` already refuses), a key does not
    /// verify rather than use its own curve.
    #[test]
    fn a_key_parsed_for_one_algorithm_never_verifies_for_another() {
        let p384 = VerifyingKey::from_pem(data("ec384_public.pem")).unwrap();
        let p256 = VerifyingKey::from_pem(data("ec256_public.pem")).unwrap();
        let ed = VerifyingKey::from_pem(data("ed25519_public.pem")).unwrap();
        let sig = URL_SAFE_NO_PAD.encode([1u8; 96]);
        for (key, foreign) in [
            (&p384, [Algorithm::ES256, Algorithm::EdDSA]),
            (&p256, [Algorithm::ES384, Algorithm::EdDSA]),
            (&ed, [Algorithm::ES256, Algorithm::ES384]),
        ] {
            for alg in foreign {
                assert!(!key.fits(alg));
                assert!(!key.crypto.verify(alg, b"input", sig.as_bytes()));
            }
        }
    }

    #[test]
    fn pkcs1_rsa_public_key_pem() {
        // The same key as rsa_public.pem, re-encoded as PKCS #1 ("RSA PUBLIC KEY").
        let spki = VerifyingKey::from_pem(data("rsa_public.pem")).unwrap();
        let der = spki.crypto.0.try_get_as_bytes().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let pem = format!("-----BEGIN RSA PUBLIC KEY-----\n{b64}\n-----END RSA PUBLIC KEY-----\n");
        assert_eq!(
            VerifyingKey::from_pem(pem).unwrap().key_type(),
            KeyType::Rsa
        );
    }

    #[test]
    fn jwk_rules() {
        let k = VerifyingKey::from_jwk_value(&ec_jwk()).unwrap();
        assert_eq!((k.key_type(), k.kid()), (KeyType::EcP256, Some("e1")));
        assert!(k.fits(Algorithm::ES256));
        assert!(!k.fits(Algorithm::ES384));

        let with = |k: &str, v: serde_json::Value| {
            let mut j = ec_jwk();
            j[k] = v;
            j
        };
        assert_eq!(reason(with("use", json!("enc"))), "`use` is not `sig`");
        assert_eq!(
            reason(with("key_ops", json!(["encrypt"]))),
            "`key_ops` does not include `verify`"
        );
        assert!(VerifyingKey::from_jwk_value(&with("key_ops", json!(["verify"]))).is_ok());
        assert!(reason(with("alg", json!("ES384"))).contains("does not fit"));
        assert!(reason(with("alg", json!("RS256"))).contains("does not fit"));
        assert_eq!(reason(with("alg", json!("none"))), "unsupported `alg`");
        assert_eq!(reason(with("crv", json!("P-521"))), "unsupported EC curve");
        assert_eq!(
            reason(with("crv", json!("P-384"))),
            "EC coordinates do not match the curve"
        );
        assert!(reason(with("d", json!("AAAA"))).contains("private key members"));
        assert_eq!(
            reason(with(
                "x",
                json!("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU=")
            )),
            "`x` is not canonical base64url"
        );
        // A point that is not on the curve.
        assert_eq!(
            reason(with(
                "y",
                json!("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5aA")
            )),
            "invalid EC public key"
        );
        assert_eq!(
            reason(json!({"kty":"OKP","crv":"Ed448","x":"AA"})),
            "unsupported OKP curve"
        );
        assert_eq!(reason(json!({"kty":"XYZ"})), "unsupported `kty`");
        assert!(reason(json!({"kty":"oct","k":"c2hvcnQ"})).contains("HMAC secret of 5 bytes"));
        // The error names the key.
        let e = VerifyingKey::from_jwk_value(&with("use", json!("enc"))).unwrap_err();
        assert_eq!(e.to_string(), "key `e1`: `use` is not `sig`");
    }

    /// Every small-order point and every non-canonical encoding is refused, from a JWK, a PEM
    /// and in a published set (where the rest of the set is kept); an ordinary key passes.
    #[test]
    fn ed25519_small_order_and_non_canonical_keys_are_refused() {
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        let with_low = |low: u8| {
            let mut y = p;
            y[0] = low;
            y
        };
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let order_8 = [
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        ]
        .map(|h| {
            let mut b = [0u8; 32];
            for (i, byte) in b.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap();
            }
            b
        });
        let mut weak = vec![
            identity,       // order 1
            [0u8; 32],      // y = 0: order 4
            with_low(0xec), // y = p - 1: order 2
            p,              // y = p: non-canonical 0
            with_low(0xee), // y = p + 1: non-canonical 1, the identity
            with_low(0xff), // y = 2^255 - 1: non-canonical
            order_8[0],
            order_8[1],
        ];
        // The same with the sign bit of x set.
        let signed: Vec<[u8; 32]> = weak
            .iter()
            .map(|y| {
                let mut y = *y;
                y[31] |= 0x80;
                y
            })
            .collect();
        weak.extend(signed);
        let jwk =
            |x: &[u8; 32]| json!({"kty":"OKP","crv":"Ed25519","x": URL_SAFE_NO_PAD.encode(x)});
        for x in &weak {
            let e = VerifyingKey::from_jwk_value(&jwk(x)).unwrap_err();
            assert!(
                e.reason().contains("small order") || e.reason().contains("invalid Ed25519"),
                "{x:02x?}: {e}"
            );
            // The same key as a PEM (SPKI: the Ed25519 OID, then the 32 bytes).
            let mut der = vec![
                0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
            ];
            der.extend_from_slice(x);
            let pem = format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                base64::engine::general_purpose::STANDARD.encode(&der)
            );
            assert!(VerifyingKey::from_pem(pem).is_err(), "{x:02x?}");
        }
        // An ordinary key (RFC 8037 appendix A) passes, from a JWK and from the test PEM.
        let ok =
            json!({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert!(VerifyingKey::from_jwk_value(&ok).is_ok());
        assert!(VerifyingKey::from_pem(data("ed25519_public.pem")).is_ok());
        // In a published set the weak key is skipped and the rest kept.
        let mut bad = jwk(&identity);
        bad["kid"] = json!("weak");
        let mut good = ok;
        good["kid"] = json!("good");
        let doc = json!({"keys": [bad, good]}).to_string();
        let (set, skipped) = KeySet::from_jwks_skipping_invalid(&doc).unwrap();
        assert_eq!(
            set.iter().map(|k| k.kid().unwrap()).collect::<Vec<_>>(),
            ["good"]
        );
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].kid(), Some("weak"));
    }

    #[test]
    fn hmac_secret_length_decides_the_algorithms() {
        let k48 = VerifyingKey::hmac_secret([1u8; 48]).unwrap();
        assert!(k48.fits(Algorithm::HS256) && k48.fits(Algorithm::HS384));
        assert!(!k48.fits(Algorithm::HS512));
        let k64 = VerifyingKey::hmac_secret([1u8; 64]).unwrap();
        assert!(k64.fits(Algorithm::HS512));
        assert!(!k64.fits(Algorithm::RS256));
        assert!(k64.clone().restrict_to(Algorithm::RS256).is_err());
        let only = k64.restrict_to(Algorithm::HS384).unwrap();
        assert!(only.fits(Algorithm::HS384) && !only.fits(Algorithm::HS256));
        // verify_signature refuses a key that does not fit, whatever the signature.
        assert!(!only.verify_signature(Algorithm::HS256, b"a.b", "AAAA"));
    }

    #[test]
    fn strict_and_lenient_jwks() {
        let good = ec_jwk();
        let mut dup = ec_jwk();
        dup["kid"] = json!("e1");
        let enc = json!({"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB","kid":"r1"});
        let oct = json!({"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","kid":"s1"});
        let odd = json!({"kty":"OKP","crv":"X25519","x":"AA","kid":"x1"});
        let mut other = ec_jwk();
        other["kid"] = json!("e2");

        let doc = |keys: Vec<serde_json::Value>| json!({ "keys": keys }).to_string();
        assert!(KeySet::from_jwks(&doc(vec![good.clone(), dup.clone()])).is_err());
        assert!(KeySet::from_jwks(&doc(vec![good.clone(), enc.clone()])).is_err());
        assert_eq!(
            KeySet::from_jwks(&doc(vec![good.clone(), oct.clone()]))
                .unwrap()
                .len(),
            2
        );
        assert!(KeySet::from_jwks("[]").is_err());
        assert!(KeySet::from_jwks(r#"{"keys":{}}"#).is_err());

        let (set, skipped) =
            KeySet::from_jwks_skipping_invalid(&doc(vec![good, dup, enc, oct, odd, other]))
                .unwrap();
        // Only e2 survives: e1 is duplicated, r1 is for encryption, s1 is a secret in a public
        // set, x1 is not a signature key.
        assert_eq!(
            set.iter().map(|k| k.kid().unwrap()).collect::<Vec<_>>(),
            ["e2"]
        );
        let mut kids: Vec<_> = skipped
            .iter()
            .map(|e| e.kid().unwrap().to_owned())
            .collect();
        kids.sort();
        assert_eq!(kids, ["e1", "e1", "r1", "s1", "x1"]);
    }

    /// Found by the `jwks` fuzz target: `[[]]` was read as a JWKS, since a derived struct reads
    /// an array positionally. A document and each of its keys must be JSON objects, and a
    /// document without duplicate member names.
    #[test]
    fn documents_and_keys_are_json_objects() {
        for doc in [
            "[[]]",
            "[[{\"kty\":\"oct\"}]]",
            r#"{"keys":[],"keys":[]}"#,
            "[]",
            "{}",
        ] {
            assert!(KeySet::from_jwks(doc).is_err(), "{doc}");
            assert!(KeySet::from_jwks_skipping_invalid(doc).is_err(), "{doc}");
        }
        let jwk = ec_jwk();
        // RawJwk's fields in order: kty kid alg use key_ops crv n e x y k d p q.
        let positional = json!([
            jwk["kty"], jwk["kid"], null, null, null, jwk["crv"], null, null, jwk["x"], jwk["y"],
            null, null, null, null
        ]);
        assert_eq!(
            VerifyingKey::from_jwk_value(&positional)
                .unwrap_err()
                .reason(),
            "not a JWK JSON object"
        );
        assert!(VerifyingKey::from_jwk(&positional.to_string()).is_err());
        let (set, skipped) =
            KeySet::from_jwks_skipping_invalid(&json!({ "keys": [positional, jwk] }).to_string())
                .unwrap();
        assert_eq!((set.len(), skipped.len()), (1, 1));
        let doubled = r#"{"kty":"EC","kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
        assert!(VerifyingKey::from_jwk(doubled).is_err());
    }

    #[test]
    fn candidates_follow_kid_then_keys_without_kid() {
        let a = VerifyingKey::hmac_secret([1u8; 32]).unwrap().with_kid("a");
        let b = VerifyingKey::hmac_secret([2u8; 32]).unwrap().with_kid("b");
        let plain = VerifyingKey::hmac_secret([3u8; 32]).unwrap();
        let ec = VerifyingKey::from_jwk_value(&ec_jwk()).unwrap();
        let set = KeySet::new([a, b, plain, ec]).unwrap();
        let kids = |kid: Option<&str>, alg| {
            set.candidates(kid, alg)
                .map(|k| k.kid().unwrap_or("-").to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(kids(Some("b"), Algorithm::HS256), ["b"]);
        assert_eq!(kids(Some("zzz"), Algorithm::HS256), ["-"]);
        assert_eq!(kids(None, Algorithm::HS256), ["a", "b", "-"]);
        assert_eq!(kids(None, Algorithm::ES256), ["e1"]);
        assert!(kids(Some("e1"), Algorithm::HS256).is_empty());
        assert!(kids(None, Algorithm::HS512).is_empty());
    }
}
