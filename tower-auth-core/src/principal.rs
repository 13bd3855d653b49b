//! The authenticated identity every scheme produces.

use std::any::{Any, TypeId};
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// Who made a request, as established by one authentication scheme.
///
/// A `Principal` is cheap to clone (one reference count) and immutable once built. Schemes build
/// it with [`Principal::builder`]; handlers read it from the request extensions, or with the
/// axum extractor (feature `axum`).
///
/// It serializes (serde) to a flat object suitable for a `/me` endpoint or for forwarding:
/// `subject`, `kind`, `scheme`, `issuer`, `scopes`, `roles`, `tenant`, `expires_at` (RFC 3339).
/// The typed extensions are not serialized: they hold scheme data such as JWT claims or an API
/// key record, which is not meant to leave the process.
///
/// ```
/// use tower_auth_core::{Principal, PrincipalKind, Scheme};
///
/// let p = Principal::builder("alice", Scheme::Jwt)
///     .kind(PrincipalKind::User)
///     .scopes(["read:items", "write:items"])
///     .roles(["admin"])
///     .build();
/// assert!(p.scopes().contains("read:items"));
/// assert!(p.scopes().contains_all(["read:items", "write:items"]));
/// assert!(p.roles().contains("admin"));
/// assert_eq!(p.scheme(), Scheme::Jwt);
/// ```
#[derive(Clone)]
pub struct Principal {
    inner: Arc<Inner>,
}

struct Inner {
    subject: String,
    kind: PrincipalKind,
    scheme: Scheme,
    issuer: Option<String>,
    scopes: Scopes,
    roles: Roles,
    tenant: Option<String>,
    expires_at: Option<SystemTime>,
    extensions: Extensions,
}

impl Principal {
    /// Starts building a principal for `subject`, authenticated by `scheme`.
    pub fn builder(subject: impl Into<String>, scheme: Scheme) -> PrincipalBuilder {
        PrincipalBuilder {
            inner: Inner {
                subject: subject.into(),
                kind: PrincipalKind::User,
                scheme,
                issuer: None,
                scopes: Scopes::default(),
                roles: Roles::default(),
                tenant: None,
                expires_at: None,
                extensions: Extensions::default(),
            },
        }
    }

    /// The subject: a user id, a service name, or an API key's owner.
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// What kind of party this is.
    pub fn kind(&self) -> PrincipalKind {
        self.inner.kind
    }

    /// The scheme that authenticated the request.
    pub fn scheme(&self) -> Scheme {
        self.inner.scheme
    }

    /// The issuer of the credential (a JWT `iss`, an authorization server), if any.
    pub fn issuer(&self) -> Option<&str> {
        self.inner.issuer.as_deref()
    }

    /// The scopes granted to this credential.
    pub fn scopes(&self) -> &Scopes {
        &self.inner.scopes
    }

    /// The roles of this principal.
    pub fn roles(&self) -> &Roles {
        &self.inner.roles
    }

    /// The tenant (organisation, realm, directory) the principal belongs to, if any.
    pub fn tenant(&self) -> Option<&str> {
        self.inner.tenant.as_deref()
    }

    /// When the credential stops being valid, if it has an expiry.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.inner.expires_at
    }

    /// Scheme-specific data of type `T` attached by the scheme (JWT claims, an API key record).
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.inner.extensions.get::<T>()
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Extensions are omitted: they may hold scheme data that is not ours to print.
        f.debug_struct("Principal")
            .field("subject", &self.inner.subject)
            .field("kind", &self.inner.kind)
            .field("scheme", &self.inner.scheme)
            .field("issuer", &self.inner.issuer)
            .field("scopes", &self.inner.scopes)
            .field("roles", &self.inner.roles)
            .field("tenant", &self.inner.tenant)
            .field("expires_at", &self.inner.expires_at)
            .finish_non_exhaustive()
    }
}

impl Serialize for Principal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let i = &self.inner;
        let mut map = serializer.serialize_map(Some(8))?;
        map.serialize_entry("subject", &i.subject)?;
        map.serialize_entry("kind", i.kind.as_str())?;
        map.serialize_entry("scheme", i.scheme.as_str())?;
        map.serialize_entry("issuer", &i.issuer)?;
        map.serialize_entry("scopes", &i.scopes)?;
        map.serialize_entry("roles", &i.roles)?;
        map.serialize_entry("tenant", &i.tenant)?;
        // RFC 3339 has four-digit years: a later expiry (a token that never really expires) is
        // `null`, as no expiry is.
        let expires = i
            .expires_at
            .filter(|t| {
                t.duration_since(UNIX_EPOCH)
                    .is_ok_and(|d| d.as_secs() < MAX_RFC3339_SECS)
            })
            .map(rfc3339_seconds);
        map.serialize_entry("expires_at", &expires)?;
        map.end()
    }
}

/// Seconds from the Unix epoch to 10000-01-01T00:00:00Z, the first instant RFC 3339 cannot write.
const MAX_RFC3339_SECS: u64 = 253_402_300_800;

/// `t` in RFC 3339, UTC, whole seconds (`2023-11-14T22:13:20Z`). Instants before the epoch are
/// written as the epoch; the caller keeps `t` before year 10000.
fn rfc3339_seconds(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_from_days(secs / 86_400);
    let time = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}

/// The proleptic Gregorian date (year, month, day) `days` days after 1970-01-01: Howard
/// Hinnant's `civil_from_days`, which counts in 400-year eras starting on 0000-03-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Builds a [`Principal`]. Created by [`Principal::builder`].
#[must_use]
pub struct PrincipalBuilder {
    inner: Inner,
}

impl PrincipalBuilder {
    /// Sets the kind of party (default [`PrincipalKind::User`]).
    pub fn kind(mut self, kind: PrincipalKind) -> Self {
        self.inner.kind = kind;
        self
    }

    /// Sets the issuer.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.inner.issuer = Some(issuer.into());
        self
    }

    /// Sets the granted scopes.
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.inner.scopes = Scopes::new(scopes);
        self
    }

    /// Sets the granted scopes from an already built set.
    pub fn scope_set(mut self, scopes: Scopes) -> Self {
        self.inner.scopes = scopes;
        self
    }

    /// Sets the roles.
    pub fn roles<I, T>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.inner.roles = Roles(Scopes::new(roles));
        self
    }

    /// Sets the tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.inner.tenant = Some(tenant.into());
        self
    }

    /// Sets the expiry of the credential.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.inner.expires_at = Some(at);
        self
    }

    /// Sets the expiry of the credential when there is one.
    pub fn maybe_expires_at(mut self, at: Option<SystemTime>) -> Self {
        self.inner.expires_at = at;
        self
    }

    /// Attaches scheme-specific data, readable with [`Principal::extension`]. A value of the same
    /// type replaces the earlier one.
    pub fn extension<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.inner.extensions.insert(value);
        self
    }

    /// Finishes the principal.
    pub fn build(self) -> Principal {
        Principal {
            inner: Arc::new(self.inner),
        }
    }
}

impl fmt::Debug for PrincipalBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrincipalBuilder")
            .field("subject", &self.inner.subject)
            .field("scheme", &self.inner.scheme)
            .finish_non_exhaustive()
    }
}

/// A type map; values are shared through the principal's `Arc`, so they need not be `Clone`.
///
/// A principal carries a handful of extensions at most: a vector searched in order is cheaper
/// to build, search and drop than a hash map (and allocates nothing while empty).
#[derive(Default)]
struct Extensions(Vec<(TypeId, Box<dyn Any + Send + Sync>)>);

impl Extensions {
    fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        let id = TypeId::of::<T>();
        let value: Box<dyn Any + Send + Sync> = Box::new(value);
        match self.0.iter_mut().find(|(t, _)| *t == id) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((id, value)),
        }
    }

    fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.0
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, v)| v.downcast_ref())
    }
}

/// What kind of party a [`Principal`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PrincipalKind {
    /// A person using your application.
    User,
    /// A machine acting on its own behalf (OAuth client credentials).
    Service,
    /// An application holding an API key.
    Application,
}

impl PrincipalKind {
    /// `user`, `service` or `application`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Service => "service",
            Self::Application => "application",
        }
    }
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scheme that authenticated a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// An API key (`api_key`).
    ApiKey,
    /// A locally verified JWT (`jwt`).
    Jwt,
    /// An opaque token checked by RFC 7662 introspection (`introspection`).
    Introspection,
    /// A scheme of your own, named by a static string.
    Custom(&'static str),
}

impl Scheme {
    /// The scheme's stable name, as used in metrics labels and serialization.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Jwt => "jwt",
            Self::Introspection => "introspection",
            Self::Custom(name) => name,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scope strings (RFC 6749 section 3.3).
///
/// Held sorted and deduplicated, the scopes written one after the other in a single string with
/// their end offsets beside it: membership is a binary search, and the set costs two
/// allocations however many scopes it holds (none when empty).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Scopes {
    /// The scopes in ascending order, concatenated.
    text: Box<str>,
    /// Where each scope ends in `text`, ascending.
    ends: Box<[usize]>,
}

impl Scopes {
    /// Builds a set from individual scope strings; empty strings are dropped.
    pub fn new<I, T>(scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let mut v: Vec<String> = scopes
            .into_iter()
            .map(Into::into)
            .filter(|s| !s.is_empty())
            .collect();
        v.sort_unstable();
        v.dedup();
        Self::from_sorted(&v)
    }

    /// Parses an RFC 6749 space-separated scope string (`"read write"`).
    pub fn from_space_separated(s: &str) -> Self {
        // As `new(s.split(' '))`, without a string per scope.
        let mut v: Vec<&str> = s.split(' ').filter(|s| !s.is_empty()).collect();
        v.sort_unstable();
        v.dedup();
        Self::from_sorted(&v)
    }

    /// Packs sorted, deduplicated, non-empty scopes.
    fn from_sorted<S: AsRef<str>>(sorted: &[S]) -> Self {
        let mut text = String::with_capacity(sorted.iter().map(|s| s.as_ref().len()).sum());
        let mut ends = Vec::with_capacity(sorted.len());
        for s in sorted {
            text.push_str(s.as_ref());
            ends.push(text.len());
        }
        Self {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    /// The `i`th scope in ascending order; `i` is below `len()`.
    fn get(&self, i: usize) -> &str {
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1],
        };
        &self.text[start..self.ends[i]]
    }

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: &str) -> bool {
        let (mut low, mut high) = (0, self.ends.len());
        while low < high {
            let mid = low + (high - low) / 2;
            match self.get(mid).cmp(scope) {
                Ordering::Less => low = mid + 1,
                Ordering::Greater => high = mid,
                Ordering::Equal => return true,
            }
        }
        false
    }

    /// Whether every one of `scopes` is in the set.
    pub fn contains_all<I, T>(&self, scopes: I) -> bool
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        scopes.into_iter().all(|s| self.contains(s.as_ref()))
    }

    /// Whether at least one of `scopes` is in the set.
    pub fn contains_any<I, T>(&self, scopes: I) -> bool
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        scopes.into_iter().any(|s| self.contains(s.as_ref()))
    }

    /// The scopes in ascending order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.ends.len()).map(|i| self.get(i))
    }

    /// The number of scopes.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The set as an RFC 6749 space-separated string.
    pub fn to_space_separated(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + self.len().saturating_sub(1));
        for (i, s) in self.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(s);
        }
        out
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for s in self.iter() {
            seq.serialize_element(s)?;
        }
        seq.end()
    }
}

impl<T: Into<String>> FromIterator<T> for Scopes {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self::new(iter)
    }
}

/// A set of role names. Roles are not scopes: a missing role is a plain 403 (see
/// [`RequireRolesLayer`](crate::RequireRolesLayer)).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Roles(Scopes);

impl Roles {
    /// Builds a set of roles.
    pub fn new<I, T>(roles: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self(Scopes::new(roles))
    }

    /// Whether `role` is in the set.
    pub fn contains(&self, role: &str) -> bool {
        self.0.contains(role)
    }

    /// Whether every one of `roles` is in the set.
    pub fn contains_all<I, T>(&self, roles: I) -> bool
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.0.contains_all(roles)
    }

    /// Whether at least one of `roles` is in the set.
    pub fn contains_any<I, T>(&self, roles: I) -> bool
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.0.contains_any(roles)
    }

    /// The roles in ascending order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.0.iter()
    }

    /// The number of roles.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Roles {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn scopes_are_a_set() {
        let s = Scopes::from_space_separated("b a  b c");
        assert_eq!(s.iter().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(s.contains("a"));
        assert!(!s.contains(""));
        assert!(!s.contains("d"));
        assert!(s.contains_all(["a", "c"]));
        assert!(!s.contains_all(["a", "d"]));
        assert!(s.contains_any(["d", "c"]));
        assert!(!s.contains_any(["d", "e"]));
        assert_eq!(s.to_space_separated(), "a b c");
    }

    /// The set semantics, spelled out with a `BTreeSet` of the non-empty inputs.
    fn model(items: &[&str]) -> Vec<String> {
        let set: std::collections::BTreeSet<&str> =
            items.iter().copied().filter(|s| !s.is_empty()).collect();
        set.into_iter().map(str::to_owned).collect()
    }

    #[test]
    fn scopes_pack_sorted_deduplicated_and_searchable() {
        let cases: &[&[&str]] = &[
            &[],
            &[""],
            &["", ""],
            &["a"],
            &["b", "a", "b", "", "c"],
            &["read", "read:items", "rea", "reads", "write", "r"],
            &["z", "y", "x", "w", "v", "u", "t", "s", "r", "q", "p"],
            &["caf\u{e9}", "cafe", "\u{1f600}", "a b", "a", "b"],
            &["same", "same", "same"],
        ];
        for items in cases {
            let expected = model(items);
            let s = Scopes::new(items.iter().copied());
            let owned = Scopes::new(items.iter().map(|s| s.to_string()));
            assert_eq!(s.iter().collect::<Vec<_>>(), expected, "{items:?}");
            assert_eq!(
                (s.len(), s.is_empty()),
                (expected.len(), expected.is_empty())
            );
            assert_eq!(s.iter().len(), expected.len());
            assert_eq!(s, owned);
            for e in &expected {
                assert!(s.contains(e), "{items:?} {e:?}");
            }
            // Non-members: around and between every member.
            for probe in [
                "", " ", "0", "~", "aa", "re", "reae", "read:", "writes", "zz", "a c",
            ] {
                assert_eq!(
                    s.contains(probe),
                    expected.iter().any(|e| e == probe),
                    "{items:?} {probe:?}"
                );
            }
            assert_eq!(s.to_space_separated(), expected.join(" "));
            assert_eq!(
                format!("{s:?}"),
                format!(
                    "{:?}",
                    expected.iter().collect::<std::collections::BTreeSet<_>>()
                )
            );
            assert_eq!(
                serde_json::to_value(&s).unwrap(),
                serde_json::json!(expected)
            );
            // Without spaces inside scopes, the space-separated form round-trips.
            if !expected.iter().any(|e| e.contains(' ')) {
                let joined = items.join("  ");
                assert_eq!(Scopes::from_space_separated(&joined), s, "{joined:?}");
            }
        }
    }

    #[test]
    fn equal_scope_sets_are_equal_and_hash_alike() {
        use std::hash::BuildHasher;
        let h = std::collections::hash_map::RandomState::new();
        let a = Scopes::new(["b", "a", "c"]);
        let b = Scopes::from_space_separated(" c a b a ");
        let c = Scopes::new(["ab", "c"]);
        let d = Scopes::new(["a", "bc"]);
        assert_eq!(a, b);
        assert_eq!(h.hash_one(&a), h.hash_one(&b));
        // Same concatenation, different scopes.
        assert_ne!(c, d);
        assert_ne!(a, c);
        assert_eq!(a.clone(), a);
        assert_eq!(Scopes::default(), Scopes::new(Vec::<String>::new()));
        let r = Roles::new(["admin", "ops", "admin"]);
        assert_eq!(r.iter().collect::<Vec<_>>(), ["admin", "ops"]);
        assert!(r.contains("ops") && !r.contains("op"));
    }

    #[test]
    fn extensions_are_kept_by_type_and_replaced() {
        #[derive(Debug, PartialEq)]
        struct Claims(&'static str);
        let p = Principal::builder("a", Scheme::Jwt)
            .extension(1u32)
            .extension(Claims("first"))
            .extension(2u64)
            .extension(Claims("second"))
            .extension(3u8)
            .build();
        assert_eq!(p.extension::<u32>(), Some(&1));
        assert_eq!(p.extension::<u64>(), Some(&2));
        assert_eq!(p.extension::<u8>(), Some(&3));
        assert_eq!(p.extension::<Claims>(), Some(&Claims("second")));
        assert_eq!(p.extension::<i32>(), None);
        assert_eq!(p.inner.extensions.0.len(), 4);
        assert_eq!(
            Principal::builder("b", Scheme::Jwt)
                .build()
                .extension::<u32>(),
            None
        );
    }

    #[test]
    fn serializes_flat_with_nulls() {
        let p = Principal::builder("key-owner", Scheme::ApiKey)
            .kind(PrincipalKind::Application)
            .scopes(["read:items"])
            .expires_at(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .extension(42u32)
            .build();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "subject": "key-owner",
                "kind": "application",
                "scheme": "api_key",
                "issuer": null,
                "scopes": ["read:items"],
                "roles": [],
                "tenant": null,
                "expires_at": "2023-11-14T22:13:20Z",
            })
        );
        assert_eq!(p.extension::<u32>(), Some(&42));
        assert_eq!(p.extension::<u64>(), None);
    }

    #[test]
    fn a_far_future_expiry_serializes_as_null_without_panicking() {
        let p = Principal::builder("a", Scheme::Jwt)
            .expires_at(UNIX_EPOCH + Duration::from_secs(300_000_000_000))
            .build();
        assert_eq!(
            serde_json::to_value(&p).unwrap()["expires_at"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn clone_shares() {
        let p = Principal::builder("a", Scheme::Custom("mine")).build();
        let q = p.clone();
        assert!(Arc::ptr_eq(&p.inner, &q.inner));
        assert_eq!(q.scheme().as_str(), "mine");
    }

    #[test]
    fn rfc3339_matches_humantime_from_the_epoch_to_year_9999() {
        let mut secs = 0;
        while secs < MAX_RFC3339_SECS {
            let t = UNIX_EPOCH + std::time::Duration::from_secs(secs);
            assert_eq!(
                rfc3339_seconds(t),
                humantime::format_rfc3339_seconds(t).to_string(),
                "{secs}"
            );
            // About 11.6 days and 3 s per step: the day, month and time of day all move.
            secs += 1_000_003;
        }
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (MAX_RFC3339_SECS - 1, "9999-12-31T23:59:59Z"),
        ] {
            let t = UNIX_EPOCH + std::time::Duration::from_secs(secs);
            assert_eq!(rfc3339_seconds(t), text);
        }
    }
}
