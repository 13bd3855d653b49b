//! What is known about a key, apart from the key itself.

use std::time::SystemTime;

use serde::{Serialize, Serializer};
use tower_auth_core::Scopes;

use crate::KeyHash;
use crate::limit::KeyLimits;

/// An API key's record: everything about a key except the key, which is never stored.
///
/// It is attached to the [`Principal`](tower_auth_core::Principal) of every request the key
/// authenticates (`principal.extension::<KeyRecord>()`), and it serializes with RFC 3339
/// timestamps, so a `/me` endpoint can show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyRecord {
    /// The public key id, `key_...`: safe to log and to show.
    pub id: String,
    /// Who the key belongs to: the subject of the principal.
    pub owner: String,
    /// A human-readable label.
    pub name: Option<String>,
    /// The scopes the key grants.
    pub scopes: Scopes,
    /// When the key was created.
    #[serde(serialize_with = "rfc3339")]
    pub created_at: SystemTime,
    /// When the key stops working, if ever.
    #[serde(serialize_with = "rfc3339_opt")]
    pub expires_at: Option<SystemTime>,
    /// When the key was revoked, if it was.
    #[serde(serialize_with = "rfc3339_opt")]
    pub revoked_at: Option<SystemTime>,
    /// When the key was last used (written behind in batches, so it lags).
    #[serde(serialize_with = "rfc3339_opt")]
    pub last_used_at: Option<SystemTime>,
    /// Free-form JSON of your own (an object by default).
    pub metadata: serde_json::Value,
    /// The key's rate limit and usage credits (none by default), enforced by the
    /// authenticator: see [`limit`](crate::limit). The credits are those the store held when
    /// the record was read.
    pub limits: KeyLimits,
}

impl KeyRecord {
    /// Whether the key is expired at `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }

    /// Whether the key was revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// A record as a store holds it: with the hash of its key.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredKey {
    /// The record.
    pub record: KeyRecord,
    /// The hash of the key (see [`KeyHash`]).
    pub hash: KeyHash,
}

/// Formats a time as RFC 3339 in UTC, to the second (`2026-01-02T03:04:05Z`).
pub(crate) fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub(crate) fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(*t))
}

fn rfc3339_opt<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_time(*t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn serializes_with_rfc3339_times() {
        let r = KeyRecord {
            id: "key_1".into(),
            owner: "alice".into(),
            name: None,
            scopes: Scopes::new(["b", "a"]),
            created_at: UNIX_EPOCH + Duration::from_secs(86_400),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            metadata: serde_json::json!({"team": "x"}),
            limits: KeyLimits::default(),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["created_at"], "1970-01-02T00:00:00Z");
        assert_eq!(v["expires_at"], serde_json::Value::Null);
        assert_eq!(v["scopes"], serde_json::json!(["a", "b"]));
        assert_eq!(v["metadata"]["team"], "x");
        assert!(v.get("hash").is_none());
        assert_eq!(
            v["limits"],
            serde_json::json!({"rate": null, "credits": null})
        );
        assert!(!r.is_expired_at(UNIX_EPOCH));
    }
}
