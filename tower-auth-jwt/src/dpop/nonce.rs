//! Stateless DPoP server nonces (RFC 9449 section 9): an HMAC of a time slot under a secret
//! that every instance shares, so a nonce issued by one instance is accepted by all of them,
//! with nothing stored.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// HMAC and the constant-time compare from aws-lc-rs: already this crate's crypto library (key
// validation and generation), so no second HMAC implementation is pulled in; none of it is JOSE.
use aws_lc_rs::{constant_time, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;

use crate::ConfigError;

/// The shortest secret accepted, in bytes.
const MIN_SECRET_LEN: usize = 32;
/// The slot number (8 bytes) and 16 bytes of its HMAC-SHA-256.
const NONCE_LEN: usize = 8 + 16;
/// Domain separation: this secret's HMACs mean "a DPoP nonce for this slot", nothing else.
const LABEL: &[u8] = b"tower-auth dpop nonce v1";

/// The source of DPoP nonces: one per time slot, accepted during its slot and the next one.
///
/// Give every instance (and the issuer's token routes) the same secret and period: any of them
/// accepts the nonces of the others, so they hold behind a load balancer. A nonce is the
/// base64url of the slot number and 16 bytes of `HMAC-SHA-256(secret, label || slot)`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_auth_jwt::dpop::DpopNonces;
///
/// let nonces = DpopNonces::new(b"a secret of at least 32 bytes, shared", Duration::from_secs(300))
///     .unwrap();
/// let now = SystemTime::now();
/// let nonce = nonces.current(now);
/// assert!(nonces.check(nonce.to_str().unwrap(), now));
/// assert!(nonces.check(nonce.to_str().unwrap(), now + Duration::from_secs(300)));
/// assert!(!nonces.check(nonce.to_str().unwrap(), now + Duration::from_secs(601)));
/// ```
#[derive(Clone)]
pub struct DpopNonces {
    key: hmac::Key,
    period: Duration,
}

impl fmt::Debug for DpopNonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopNonces")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl DpopNonces {
    /// Nonces under `secret` (at least 32 bytes), a new one every `period` (at least 1 s); each
    /// is accepted for one to two periods.
    pub fn new(secret: impl AsRef<[u8]>, period: Duration) -> Result<Self, ConfigError> {
        let secret = secret.as_ref();
        if secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError::new(
                "dpop_nonce_secret",
                format!("{} bytes", secret.len()),
                "must be at least 32 bytes",
            ));
        }
        if period.as_secs() == 0 {
            return Err(ConfigError::new(
                "dpop_nonce_period",
                format!("{period:?}"),
                "must be at least one second",
            ));
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            period,
        })
    }

    fn slot(&self, now: SystemTime) -> u64 {
        now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / self.period.as_secs()
    }

    fn tag(&self, slot: u64) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(LABEL);
        ctx.update(&slot.to_be_bytes());
        ctx.sign()
    }

    /// The nonce of the slot of `now`, for a `DPoP-Nonce` header.
    pub fn current(&self, now: SystemTime) -> HeaderValue {
        let slot = self.slot(now);
        let mut raw = [0u8; NONCE_LEN];
        raw[..8].copy_from_slice(&slot.to_be_bytes());
        raw[8..].copy_from_slice(&self.tag(slot).as_ref()[..16]);
        // base64url is a valid header value.
        HeaderValue::try_from(URL_SAFE_NO_PAD.encode(raw))
            .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    }

    /// Whether `nonce` is the nonce of the current slot or of the one before.
    pub fn check(&self, nonce: &str, now: SystemTime) -> bool {
        if nonce.len() != 32 {
            return false;
        }
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Ok(slot) = <[u8; 8]>::try_from(&raw[..8]) else {
            return false;
        };
        let slot = u64::from_be_bytes(slot);
        let current = self.slot(now);
        if slot != current && Some(slot) != current.checked_sub(1) {
            return false;
        }
        constant_time::verify_slices_are_equal(&raw[8..], &self.tag(slot).as_ref()[..16]).is_ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_nonce_holds_for_its_slot_and_the_next_on_every_instance() {
        let a = DpopNonces::new(SECRET, Duration::from_secs(60)).unwrap();
        let b = DpopNonces::new(SECRET, Duration::from_secs(60)).unwrap();
        let n = a.current(at(6_000));
        let n = n.to_str().unwrap();
        assert!(b.check(n, at(6_000)));
        assert!(b.check(n, at(6_119)));
        assert!(!b.check(n, at(6_120)), "two slots later");
        assert!(!b.check(n, at(5_999)), "a slot before it was issued");
        assert_eq!(a.current(at(6_059)), a.current(at(6_000)));
        assert_ne!(a.current(at(6_060)), a.current(at(6_000)));
    }

    #[test]
    fn forged_and_foreign_nonces_are_refused() {
        let a = DpopNonces::new(SECRET, Duration::from_secs(60)).unwrap();
        let other = DpopNonces::new([7u8; 32], Duration::from_secs(60)).unwrap();
        let now = at(6_000);
        assert!(!a.check(other.current(now).to_str().unwrap(), now));
        // The slot of a valid nonce with another tag.
        let mut raw = URL_SAFE_NO_PAD
            .decode(a.current(now).to_str().unwrap())
            .unwrap();
        raw[NONCE_LEN - 1] ^= 1;
        assert!(!a.check(&URL_SAFE_NO_PAD.encode(&raw), now));
        for bad in ["", "x", &"A".repeat(32), &"A".repeat(33)] {
            assert!(!a.check(bad, now), "{bad}");
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let e = DpopNonces::new(b"short", Duration::from_secs(60)).unwrap_err();
        assert_eq!(e.setting(), "dpop_nonce_secret");
        let e = DpopNonces::new(SECRET, Duration::from_millis(10)).unwrap_err();
        assert_eq!(e.setting(), "dpop_nonce_period");
    }
}
