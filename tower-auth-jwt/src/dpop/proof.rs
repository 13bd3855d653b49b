//! DPoP proofs (RFC 9449 section 4): checking one, the RFC 7638 thumbprint of its key, the
//! `htu` comparison, and making one (client side).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// SHA-256 for `ath` and RFC 7638 thumbprints from aws-lc-rs, this crate's crypto library (the
// verified-token cache hashes with it too); jsonwebtoken's thumbprint uses its global provider.
use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Uri;
use jsonwebtoken::EncodingKey;
use serde_json::{Value, json};
use tower_auth_core::AuthError;

use super::nonce::DpopNonces;
use crate::claims::numeric_date;
use crate::json::{self, Object};
use crate::key::jose_algorithm;
use crate::{Algorithm, KeyError, VerifyingKey};

/// The longest `jti` accepted: enough for any random identifier, small in the replay cache.
const MAX_JTI_LEN: usize = 256;

/// The settings a proof is checked against.
pub(crate) struct Policy {
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) leeway: Duration,
    pub(crate) max_size: usize,
}

/// What the request says the proof must match.
pub(crate) struct Expected<'a> {
    /// The request method.
    pub(crate) method: &'a str,
    /// The request URL, normalized by [`normalize_url`].
    pub(crate) url: &'a str,
    /// The access token sent with the proof, for `ath`; `None` at a token endpoint, where
    /// there is none yet.
    pub(crate) token: Option<&'a [u8]>,
}

/// A proof that passed every check but the replay check and the token binding.
#[derive(Debug)]
pub(crate) struct Checked {
    /// The RFC 7638 thumbprint of the proof key (base64url of its SHA-256).
    pub(crate) thumbprint: String,
    pub(crate) jti: String,
    pub(crate) iat: SystemTime,
}

fn invalid(description: &'static str) -> AuthError {
    AuthError::invalid_dpop_proof(description)
}

/// Checks a DPoP proof, in the order of RFC 9449 section 4.3: shape, `typ`, `alg`, key,
/// signature, claims, `htm`, `htu`, nonce, `iat`, `ath`.
pub(crate) fn check(
    proof: &[u8],
    policy: &Policy,
    expected: &Expected<'_>,
    nonces: Option<&DpopNonces>,
    now: SystemTime,
) -> Result<Checked, AuthError> {
    if proof.len() > policy.max_size {
        return Err(invalid("dpop proof too large"));
    }
    let malformed = || invalid("malformed dpop proof");
    let mut dots = memchr::memchr_iter(b'.', proof);
    let (first, last) = match (dots.next(), dots.next(), dots.next()) {
        (Some(first), Some(last), None) => (first, last),
        _ => return Err(malformed()),
    };
    let decode = |segment: &[u8]| URL_SAFE_NO_PAD.decode(segment).map_err(|_| malformed());
    let header = json::object(&decode(&proof[..first])?).ok_or_else(malformed)?;
    if header.contains_key("crit") {
        return Err(invalid("unsupported critical header"));
    }
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(invalid("wrong dpop proof type"));
    }
    let alg: Algorithm = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| invalid("dpop algorithm not allowed"))?;
    if !policy.algorithms.contains(&alg) {
        return Err(invalid("dpop algorithm not allowed"));
    }
    let jwk = header
        .get("jwk")
        .ok_or_else(|| invalid("dpop proof without a key"))?;
    let key = VerifyingKey::from_proof_jwk(jwk).map_err(|_| invalid("invalid dpop proof key"))?;
    if !key.fits(alg) {
        return Err(invalid("dpop algorithm does not fit the key"));
    }
    if !key.verify(alg, &proof[..last], &proof[last + 1..]) {
        return Err(invalid("invalid dpop proof signature"));
    }
    let claims = json::object(&decode(&proof[first + 1..last])?).ok_or_else(malformed)?;
    let string = |name: &str| claims.get(name).and_then(Value::as_str);

    let jti = string("jti")
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
        .ok_or_else(|| invalid("dpop proof without a valid jti"))?;
    if string("htm") != Some(expected.method) {
        return Err(invalid("dpop proof for another method"));
    }
    let htu = string("htu")
        .and_then(normalize_url)
        .ok_or_else(|| invalid("dpop proof for another url"))?;
    if htu != expected.url {
        return Err(invalid("dpop proof for another url"));
    }
    if let Some(nonces) = nonces
        && !string("nonce").is_some_and(|n| nonces.check(n, now))
    {
        return Err(AuthError::use_dpop_nonce(nonces.current(now)));
    }
    let iat = claims
        .get("iat")
        .and_then(numeric_date)
        .ok_or_else(|| invalid("dpop proof without a valid iat"))?;
    // Compared with now moved by the leeway, so no arithmetic touches the sender's number.
    let too_new = now
        .checked_add(policy.leeway)
        .is_some_and(|limit| iat > limit);
    let too_old = now
        .checked_sub(policy.leeway)
        .is_some_and(|limit| iat < limit);
    if too_new || too_old {
        return Err(invalid("dpop proof iat outside the accepted window"));
    }
    if let Some(token) = expected.token
        && string("ath") != Some(access_token_hash(token).as_str())
    {
        return Err(invalid("dpop proof for another access token"));
    }
    let thumbprint = thumbprint(&header).ok_or_else(|| invalid("invalid dpop proof key"))?;
    Ok(Checked {
        thumbprint,
        jti: jti.to_owned(),
        iat,
    })
}

/// `ath`: base64url of the SHA-256 of the access token's ASCII bytes (RFC 9449 section 4.2).
pub(crate) fn access_token_hash(token: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token))
}

/// The RFC 7638 thumbprint of the `jwk` of a proof header whose key parsed: the required
/// members of its `kty`, in lexicographic order, as compact JSON, hashed with SHA-256.
fn thumbprint(header: &Object) -> Option<String> {
    jwk_thumbprint(header.get("jwk")?)
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK (EC, RSA or OKP), base64url.
pub(crate) fn jwk_thumbprint(jwk: &Value) -> Option<String> {
    let members: &[&str] = match jwk.get("kty")?.as_str()? {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = String::from("{");
    for (i, name) in members.iter().enumerate() {
        if i > 0 {
            canonical.push(',');
        }
        let value = jwk.get(*name)?.as_str()?;
        // serde_json writes a string as RFC 8259 JSON, as RFC 7638 asks.
        canonical.push_str(&serde_json::to_string(name).ok()?);
        canonical.push(':');
        canonical.push_str(&serde_json::to_string(value).ok()?);
    }
    canonical.push('}');
    Some(URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes())))
}

/// An `http`/`https` URL without query and fragment, normalized for comparison (RFC 9449
/// section 4.3, RFC 3986 sections 6.2.2 and 6.2.3): scheme and host lowercased, the default port
/// dropped, an empty path made `/`. `None` for anything else.
pub(crate) fn normalize_url(url: &str) -> Option<String> {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let uri: Uri = url[..end].parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = uri.authority()?;
    // No user information in an `htu`.
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    let port = match authority.port_u16() {
        Some(p) if p != default_port => format!(":{p}"),
        _ => String::new(),
    };
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    Some(format!("{scheme}://{host}{port}{path}"))
}

/// A client's DPoP key: a key pair generated with aws-lc-rs, which signs proofs (RFC 9449
/// section 4) through jsonwebtoken.
///
/// ```
/// use tower_auth_jwt::Algorithm;
/// use tower_auth_jwt::dpop::DpopKey;
///
/// let key = DpopKey::generate(Algorithm::ES256).unwrap();
/// let proof = key
///     .proof("GET", "https://api.example.com/orders?page=2", Some("the-access-token"), None)
///     .unwrap();
/// assert_eq!(proof.matches('.').count(), 2);
/// assert_eq!(key.thumbprint().len(), 43);
/// ```
pub struct DpopKey {
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
    thumbprint: String,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.alg)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A new random key for `alg`: `ES256`, `ES384` or `EdDSA`.
    pub fn generate(alg: Algorithm) -> Result<Self, KeyError> {
        let failed = || KeyError::new("key generation failed");
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let rng = SystemRandom::new();
        let (encoding, jwk) = match alg {
            Algorithm::ES256 | Algorithm::ES384 => {
                let (signing, crv, len) = if alg == Algorithm::ES256 {
                    (&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)
                } else {
                    (&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)
                };
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &rng).map_err(|_| failed())?;
                let pair =
                    EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref()).map_err(|_| failed())?;
                let point = pair.public_key().as_ref();
                if point.len() != 1 + 2 * len {
                    return Err(failed());
                }
                let jwk = json!({
                    "kty": "EC", "crv": crv,
                    "x": b64(&point[1..=len]), "y": b64(&point[1 + len..]),
                });
                (EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
            }
            Algorithm::EdDSA => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| failed())?;
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| failed())?;
                let jwk = json!({
                    "kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()),
                });
                (EncodingKey::from_ed_der(pkcs8.as_ref()), jwk)
            }
            _ => return Err(KeyError::new("DPoP keys are ES256, ES384 or EdDSA")),
        };
        let thumbprint = jwk_thumbprint(&jwk).ok_or_else(failed)?;
        Ok(Self {
            alg,
            encoding,
            jwk,
            thumbprint,
        })
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public key as a JWK (the proof's `jwk` header).
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// The RFC 7638 thumbprint of the public key: what a bound token's `cnf.jkt` holds.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// A proof for a request with `method` to `url` (its query and fragment are left out of
    /// `htu`), issued now with a random `jti`; `access_token` gives `ath`, `nonce` the server
    /// nonce.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, KeyError> {
        self.proof_at(method, url, access_token, nonce, SystemTime::now())
    }

    /// [`proof`](Self::proof) issued at `now` (a client with its own clock, tests).
    pub fn proof_at(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now: SystemTime,
    ) -> Result<String, KeyError> {
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| KeyError::new("random generator failed"))?;
        let end = url.find(['?', '#']).unwrap_or(url.len());
        let mut claims = json!({
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "htm": method,
            "htu": &url[..end],
            "iat": iat,
        });
        if let Some(token) = access_token {
            claims["ath"] = Value::String(access_token_hash(token.as_bytes()));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = Value::String(nonce.to_owned());
        }
        self.sign(&claims)
    }

    /// Signs `claims` as a DPoP proof (the header carries `typ`, `alg` and `jwk`). For tests
    /// and clients that set the claims themselves.
    pub fn sign(&self, claims: &Value) -> Result<String, KeyError> {
        let header = json!({"typ": "dpop+jwt", "alg": self.alg.as_str(), "jwk": self.jwk});
        self.sign_with_header(&header, claims)
    }

    /// Signs with this key under any header, for tests of malformed proofs.
    pub(crate) fn sign_with_header(
        &self,
        header: &Value,
        claims: &Value,
    ) -> Result<String, KeyError> {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let failed = || KeyError::new("signing failed");
        let factory = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.signer_factory;
        let signer = factory(&jose_algorithm(self.alg), &self.encoding).map_err(|_| failed())?;
        let signature = signer.try_sign(input.as_bytes()).map_err(|_| failed())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rfc_7638_example_thumbprint() {
        // RFC 7638 section 3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            jwk_thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn urls_compare_after_normalization_without_query_and_fragment() {
        for (a, b) in [
            ("https://API.Example.com/a", "https://api.example.com/a"),
            ("HTTPS://api.example.com:443/a", "https://api.example.com/a"),
            ("http://api.example.com:80", "http://api.example.com/"),
            (
                "https://api.example.com/a?x=1#f",
                "https://api.example.com/a",
            ),
            ("https://api.example.com/a#f", "https://api.example.com/a"),
        ] {
            assert_eq!(normalize_url(a), normalize_url(b), "{a} {b}");
            assert!(normalize_url(a).is_some());
        }
        for (a, b) in [
            ("https://api.example.com/a", "http://api.example.com/a"),
            (
                "https://api.example.com:8443/a",
                "https://api.example.com/a",
            ),
            ("https://api.example.com/a", "https://api.example.com/a/"),
            ("https://api.example.com/A", "https://api.example.com/a"),
            ("https://api.example.com/a", "https://api.example.org/a"),
        ] {
            assert_ne!(normalize_url(a), normalize_url(b), "{a} {b}");
        }
        for bad in [
            "/a",
            "ftp://x/a",
            "https://user@api.example.com/a",
            "not a url",
            "",
        ] {
            assert_eq!(normalize_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn generated_keys_sign_proofs_their_jwk_verifies() {
        for alg in [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
            let key = DpopKey::generate(alg).unwrap();
            let proof = key.proof("GET", "https://a.example/x", None, None).unwrap();
            let last = proof.rfind('.').unwrap();
            let verifying = VerifyingKey::from_proof_jwk(key.public_jwk()).unwrap();
            assert!(verifying.verify_signature(alg, &proof.as_bytes()[..last], &proof[last + 1..]));
            assert_eq!(jwk_thumbprint(key.public_jwk()).unwrap(), key.thumbprint());
        }
        assert!(DpopKey::generate(Algorithm::HS256).is_err());
    }
}
