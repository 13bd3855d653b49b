//! The key format: `{prefix}_{30 random base62 characters}{6 base62 characters of CRC32}`, and
//! the hash that is stored instead of the key.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use tower_auth_core::ConfigError;

/// The base62 alphabet: digits, upper case, lower case.
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Random characters per key: 30 x log2(62) = 178.6 bits of entropy.
pub(crate) const RANDOM_LEN: usize = 30;
/// Base62 characters holding the CRC32 checksum (62^6 > 2^32).
pub(crate) const CHECKSUM_LEN: usize = 6;
/// Everything after `{prefix}_`.
pub(crate) const BODY_LEN: usize = RANDOM_LEN + CHECKSUM_LEN;
/// The longest prefix accepted.
pub(crate) const MAX_PREFIX_LEN: usize = 32;
/// Random characters of a key id (`key_` + 16 base62 characters, about 95 bits).
const ID_LEN: usize = 16;

/// A plain API key, as handed to its holder once, at creation.
///
/// It has no `Display`, and `Debug` shows only the prefix, so it does not end up in logs by
/// accident; call [`expose_secret`](Self::expose_secret) to print or send it.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainKey(String);

impl PlainKey {
    /// The key itself. Show it to its holder once; never log or store it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The environment prefix of the key (`sk_live`).
    pub fn prefix(&self) -> &str {
        self.0.rsplit_once('_').map_or("", |(p, _)| p)
    }
}

impl fmt::Debug for PlainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlainKey({}_<redacted>)", self.prefix())
    }
}

/// The digest of a key that stores keep and look keys up by: SHA-256 of the key, or
/// HMAC-SHA256 with a server-side pepper.
///
/// `Debug` does not print it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Wraps digest bytes read back from a store.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes, for a store to persist.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(<redacted>)")
    }
}

/// How keys are turned into [`KeyHash`]es.
#[derive(Clone)]
pub(crate) enum KeyHasher {
    Sha256,
    /// HMAC-SHA256 (RFC 2104) keyed once with the pepper; each hash starts from a clone of this
    /// keyed state.
    Hmac(Hmac<Sha256>),
}

impl KeyHasher {
    /// The shortest pepper accepted, in bytes.
    pub(crate) const MIN_PEPPER_LEN: usize = 16;

    pub(crate) fn new(pepper: Option<&[u8]>) -> Result<Self, ConfigError> {
        match pepper {
            None => Ok(Self::Sha256),
            Some(p) if p.len() < Self::MIN_PEPPER_LEN => Err(ConfigError::new(
                "pepper",
                format_args!("<{} bytes>", p.len()),
                "must be at least 16 bytes",
            )),
            Some(p) => Hmac::<Sha256>::new_from_slice(p)
                .map(Self::Hmac)
                .map_err(|_| ConfigError::new("pepper", "<redacted>", "not a valid HMAC key")),
        }
    }

    pub(crate) fn hash(&self, key: &str) -> KeyHash {
        match self {
            Self::Sha256 => KeyHash(Sha256::digest(key).into()),
            Self::Hmac(keyed) => {
                let mut mac = keyed.clone();
                mac.update(key.as_bytes());
                KeyHash(mac.finalize().into_bytes().into())
            }
        }
    }
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sha256 => f.write_str("Sha256"),
            Self::Hmac(_) => f.write_str("HmacSha256(<pepper redacted>)"),
        }
    }
}

/// Why a presented key was rejected without a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FormatError {
    /// Too long, too short, unknown prefix, non-base62 body.
    Malformed,
    /// A key of another known environment.
    OtherEnvironment,
    /// The checksum does not match.
    Checksum,
}

impl FormatError {
    pub(crate) fn description(self) -> &'static str {
        match self {
            Self::Malformed => "malformed api key",
            Self::OtherEnvironment => "api key of another environment",
            Self::Checksum => "malformed api key",
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::OtherEnvironment => "other_environment",
            Self::Checksum => "bad_checksum",
        }
    }
}

/// The prefixes this deployment knows: its own, which it accepts, and other environments', which
/// it claims and rejects.
#[derive(Clone, Debug)]
pub(crate) struct KeyFormat {
    prefix: Arc<str>,
    others: Arc<[Box<str>]>,
    max_len: usize,
}

impl KeyFormat {
    pub(crate) const DEFAULT_PREFIX: &'static str = "sk_live";
    pub(crate) const DEFAULT_PREFIXES: [&'static str; 2] = ["sk_live", "sk_test"];

    pub(crate) fn new(prefix: &str, others: Option<&[String]>) -> Result<Self, ConfigError> {
        validate_prefix("prefix", prefix)?;
        let others: Vec<Box<str>> = match others {
            Some(list) => {
                for p in list {
                    validate_prefix("other_prefixes", p)?;
                }
                list.iter()
                    .filter(|p| p.as_str() != prefix)
                    .map(|p| p.as_str().into())
                    .collect()
            }
            None => Self::DEFAULT_PREFIXES
                .iter()
                .filter(|p| **p != prefix)
                .map(|p| (*p).into())
                .collect(),
        };
        let longest = others
            .iter()
            .map(|p| p.len())
            .chain([prefix.len()])
            .max()
            .unwrap_or(0);
        Ok(Self {
            prefix: prefix.into(),
            others: others.into(),
            max_len: longest + 1 + BODY_LEN,
        })
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn other_prefixes(&self) -> impl Iterator<Item = &str> {
        self.others.iter().map(|p| &**p)
    }

    /// Whether a Bearer value looks like one of our keys: it starts with a known prefix and `_`.
    pub(crate) fn claims(&self, value: &str) -> bool {
        let starts = |p: &str| {
            value.len() > p.len()
                && value.as_bytes()[p.len()] == b'_'
                && value.as_bytes().starts_with(p.as_bytes())
        };
        starts(&self.prefix) || self.others.iter().any(|p| starts(p))
    }

    /// Checks length, prefix, alphabet and checksum, in that order, without any lookup.
    pub(crate) fn check(&self, key: &str) -> Result<(), FormatError> {
        // Bytes throughout: the prefixes are ASCII, so a non-ASCII byte fails a comparison or
        // the alphabet check below.
        let key = key.as_bytes();
        if key.len() > self.max_len || key.len() < BODY_LEN + 2 {
            return Err(FormatError::Malformed);
        }
        let (prefix, body) = key.split_at(key.len() - BODY_LEN);
        let Some(prefix) = prefix.strip_suffix(b"_") else {
            return Err(FormatError::Malformed);
        };
        if prefix != self.prefix.as_bytes() {
            return Err(if self.others.iter().any(|p| p.as_bytes() == prefix) {
                FormatError::OtherEnvironment
            } else {
                FormatError::Malformed
            });
        }
        if !body.iter().all(u8::is_ascii_alphanumeric) {
            return Err(FormatError::Malformed);
        }
        let (_, sum) = body.split_at(RANDOM_LEN);
        // Decoding the presented checksum is cheaper than encoding the computed one, and as
        // base62 digits are unique (62^6 > 2^32), equal numbers mean equal strings.
        if decode_base62(sum) != u64::from(crc32fast::hash(&key[..key.len() - CHECKSUM_LEN])) {
            return Err(FormatError::Checksum);
        }
        Ok(())
    }

    /// A new key of this deployment's environment, from the OS random number generator.
    pub(crate) fn generate(&self) -> Result<PlainKey, getrandom::Error> {
        let mut random = String::with_capacity(RANDOM_LEN);
        push_random_base62(&mut random, RANDOM_LEN)?;
        Ok(self.key_with_random(&random))
    }

    /// The key of this environment whose random part is `random` (base62 characters):
    /// `{prefix}_{random}{checksum}`.
    pub(crate) fn key_with_random(&self, random: &str) -> PlainKey {
        let mut key = String::with_capacity(self.prefix.len() + 1 + random.len() + CHECKSUM_LEN);
        key.push_str(&self.prefix);
        key.push('_');
        key.push_str(random);
        let sum = checksum(key.as_bytes());
        key.extend(sum.iter().map(|&b| char::from(b)));
        PlainKey(key)
    }
}

/// A new public key id, `key_` and 16 base62 characters.
pub(crate) fn generate_id() -> Result<String, getrandom::Error> {
    let mut id = String::with_capacity(4 + ID_LEN);
    id.push_str("key_");
    push_random_base62(&mut id, ID_LEN)?;
    Ok(id)
}

fn validate_prefix(setting: &'static str, p: &str) -> Result<(), ConfigError> {
    let ok = !p.is_empty()
        && p.len() <= MAX_PREFIX_LEN
        && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !p.starts_with('_')
        && !p.ends_with('_');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            setting,
            format_args!("{p:?}"),
            "must be 1 to 32 ASCII letters, digits or inner underscores",
        ))
    }
}

/// CRC32 of `data`, as 6 base62 characters, most significant first.
pub(crate) fn checksum(data: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(data);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// The value of base62 `digits`, most significant first. Each digit must be ASCII alphanumeric
/// (checked by the caller); six digits fit in a `u64` with room to spare.
fn decode_base62(digits: &[u8]) -> u64 {
    digits.iter().fold(0, |n, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'A'..=b'Z' => d - b'A' + 10,
            _ => d.wrapping_sub(b'a').wrapping_add(36),
        };
        n * 62 + u64::from(v)
    })
}

/// Appends `n` uniformly distributed base62 characters (rejection sampling: bytes of 248 and
/// above are dropped so that `b % 62` has no bias).
fn push_random_base62(out: &mut String, n: usize) -> Result<(), getrandom::Error> {
    let mut buf = [0u8; 64];
    let mut pushed = 0;
    while pushed < n {
        getrandom::fill(&mut buf)?;
        for &b in &buf {
            if b < 248 {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
                pushed += 1;
                if pushed == n {
                    break;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> KeyFormat {
        KeyFormat::new("sk_live", None).unwrap()
    }

    #[test]
    fn generated_keys_have_the_documented_shape_and_pass_the_check() {
        let f = live();
        let k = f.generate().unwrap();
        let s = k.expose_secret();
        assert!(s.starts_with("sk_live_"));
        assert_eq!(s.len(), "sk_live_".len() + 36);
        assert!(
            s["sk_live_".len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        );
        assert_eq!(f.check(s), Ok(()));
        assert!(f.claims(s));
        assert_eq!(k.prefix(), "sk_live");
        assert_ne!(f.generate().unwrap(), k, "keys are random");
    }

    #[test]
    fn a_key_is_its_random_part_with_prefix_and_checksum() {
        let f = live();
        let k = f.generate().unwrap();
        let random = &k.expose_secret()["sk_live_".len()..][..RANDOM_LEN];
        assert_eq!(f.key_with_random(random), k);
    }

    #[test]
    fn any_single_character_change_fails_the_check() {
        let f = live();
        let k = f.generate().unwrap();
        let s = k.expose_secret();
        let start = "sk_live_".len();
        for i in start..s.len() {
            let mut b = s.as_bytes().to_vec();
            b[i] = if b[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(b).unwrap();
            assert_eq!(
                f.check(&changed),
                Err(FormatError::Checksum),
                "position {i}"
            );
        }
    }

    #[test]
    fn malformed_keys_are_told_apart() {
        let f = live();
        let k = f.generate().unwrap();
        let s = k.expose_secret();
        assert_eq!(f.check(&format!("{s}0")), Err(FormatError::Malformed));
        assert_eq!(f.check(&s[..s.len() - 1]), Err(FormatError::Malformed));
        let non_base62 = format!("{}-{}", &s[..20], &s[21..]);
        assert_eq!(f.check(&non_base62), Err(FormatError::Malformed));
        let test_env = KeyFormat::new("sk_test", None).unwrap();
        let other = test_env.generate().unwrap();
        assert!(f.claims(other.expose_secret()));
        assert_eq!(
            f.check(other.expose_secret()),
            Err(FormatError::OtherEnvironment)
        );
        assert_eq!(
            f.check(&format!("zz_{}", &s["sk_live_".len()..])),
            Err(FormatError::Malformed)
        );
        // Multi-byte characters are rejected, not split in the middle.
        let accented = format!("sk_live_{}\u{e9}{}", &s[8..20], &s[22..]);
        assert_eq!(accented.len(), s.len());
        assert_eq!(f.check(&accented), Err(FormatError::Malformed));
        // Here byte 8, where the body would start, is inside the two-byte character.
        let accented = format!("sk_live\u{e9}{}", &s[9..]);
        assert_eq!(accented.len(), s.len());
        assert_eq!(f.check(&accented), Err(FormatError::Malformed));
        assert!(!f.claims("eyJhbGciOi.eyJzdWIi.sig"));
        assert!(!f.claims("sk_live"));
        assert!(!f.claims("sk_liveX"));
    }

    #[test]
    fn prefixes_are_validated() {
        for bad in ["", "_x", "x_", "a-b", "sk live", &"x".repeat(33)] {
            let e = KeyFormat::new(bad, None).unwrap_err();
            assert_eq!(e.setting(), "prefix", "{bad:?}");
        }
        let e = KeyFormat::new("sk_live", Some(&["ok".into(), "no!".into()])).unwrap_err();
        assert_eq!(e.setting(), "other_prefixes");
        assert_eq!(e.value(), "\"no!\"");
    }

    #[test]
    fn hashes_depend_on_the_pepper_and_never_print() {
        let plain = KeyHasher::new(None).unwrap();
        let peppered = KeyHasher::new(Some(&[7u8; 32])).unwrap();
        let other = KeyHasher::new(Some(&[8u8; 32])).unwrap();
        assert_eq!(plain.hash("k"), plain.hash("k"));
        assert_ne!(plain.hash("k"), peppered.hash("k"));
        assert_ne!(peppered.hash("k"), other.hash("k"));
        assert_eq!(peppered.hash("k"), peppered.hash("k"));
        // SHA-256("abc") test vector.
        assert_eq!(plain.hash("abc").as_bytes()[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(format!("{:?}", plain.hash("k")), "KeyHash(<redacted>)");
        assert!(!format!("{peppered:?}").contains('7'));
        let e = KeyHasher::new(Some(b"short")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid `pepper` = <5 bytes>: must be at least 16 bytes"
        );
    }

    #[test]
    fn ids_are_prefixed_and_random() {
        let a = generate_id().unwrap();
        assert!(a.starts_with("key_") && a.len() == 20);
        assert_ne!(a, generate_id().unwrap());
    }

    #[test]
    fn unpeppered_hashes_match_the_sha2_crate() {
        let plain = KeyHasher::new(None).unwrap();
        for len in 0..=130 {
            let key: String = (0..len)
                .map(|i| char::from(ALPHABET[(i * 7 + len) % 62]))
                .collect();
            let expected: [u8; 32] = Sha256::digest(key.as_bytes()).into();
            assert_eq!(plain.hash(&key).as_bytes(), &expected, "{len}");
        }
        let key = live().generate().unwrap();
        let expected: [u8; 32] = Sha256::digest(key.expose_secret().as_bytes()).into();
        assert_eq!(plain.hash(key.expose_secret()).as_bytes(), &expected);
    }

    #[test]
    fn peppered_hashes_match_the_hmac_crate() {
        for pepper_len in [16, 31, 32, 55, 63, 64, 65, 100, 200] {
            let pepper: Vec<u8> = (0..pepper_len).map(|i| (i * 13 + 5) as u8).collect();
            let hasher = KeyHasher::new(Some(&pepper)).unwrap();
            for len in 0..=130 {
                let key: String = (0..len)
                    .map(|i| char::from(ALPHABET[(i * 7 + len) % 62]))
                    .collect();
                let mut mac = Hmac::<Sha256>::new_from_slice(&pepper).unwrap();
                mac.update(key.as_bytes());
                let expected: [u8; 32] = mac.finalize().into_bytes().into();
                assert_eq!(
                    hasher.hash(&key).as_bytes(),
                    &expected,
                    "{pepper_len} {len}"
                );
            }
        }
        // RFC 4231 test case 2 (a 4-byte key, below our minimum, so built directly); hashing
        // twice shows the keyed state is not consumed.
        let k = KeyHasher::Hmac(Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap());
        for _ in 0..2 {
            assert_eq!(
                k.hash("what do ya want for nothing?").as_bytes()[..8],
                [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e]
            );
        }
    }

    #[test]
    fn base62_decoding_inverts_the_checksum_encoding() {
        for n in [0u32, 1, 61, 62, 3843, 0x7fff_ffff, 0xdead_beef, u32::MAX] {
            let mut x = n;
            let mut digits = [b'0'; CHECKSUM_LEN];
            for slot in digits.iter_mut().rev() {
                *slot = ALPHABET[(x % 62) as usize];
                x /= 62;
            }
            assert_eq!(decode_base62(&digits), u64::from(n), "{n}");
        }
        for (i, &d) in ALPHABET.iter().enumerate() {
            assert_eq!(decode_base62(&[d]), i as u64);
        }
        // The encoder keys are made with, over inputs whose CRC32 spans the range.
        for len in 0..200u32 {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let crc = u64::from(crc32fast::hash(&data));
            assert_eq!(decode_base62(&checksum(&data)), crc, "{len}");
        }
        // A 6-digit value above u32::MAX never equals a CRC32.
        assert!(decode_base62(b"zzzzzz") > u64::from(u32::MAX));
    }

    #[test]
    fn checksum_is_fixed_width() {
        assert_eq!(checksum(b"").len(), 6);
        // CRC32("") = 0.
        assert_eq!(&checksum(b""), b"000000");
    }
}
