//! Verified claims, and how they map onto a [`Principal`](tower_auth_core::Principal).

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::json::{self, Object};

/// The verified claims of a token, attached to the [`Principal`](tower_auth_core::Principal) as
/// an extension: `principal.extension::<Claims>()`.
///
/// Only tokens that passed every check get here. Read single claims with [`get`](Self::get) or
/// [`get_path`](Self::get_path), or your own typed view with
/// [`deserialize`](Self::deserialize).
///
/// The claims are the map verification read and checked (each top-level name once, see the
/// crate docs), with the token's JSON text beside it ([`as_json`](Self::as_json)).
///
/// ```
/// use serde::Deserialize;
/// use tower_auth_jwt::Claims;
///
/// #[derive(Deserialize)]
/// struct Mine<'a> { org: &'a str, plan: String }
///
/// let claims = Claims::from_json(r#"{"sub":"alice","org":"acme","plan":"pro","a":{"b":1}}"#).unwrap();
/// let mine: Mine<'_> = claims.deserialize().unwrap();
/// assert_eq!((mine.org, mine.plan.as_str()), ("acme", "pro"));
/// assert_eq!(claims.get_path("a.b").and_then(|v| v.as_u64()), Some(1));
/// assert_eq!(claims.subject(), Some("alice"));
/// ```
#[derive(Clone)]
pub struct Claims {
    json: Box<str>,
    value: OnceLock<Value>,
}

impl PartialEq for Claims {
    fn eq(&self, other: &Self) -> bool {
        self.as_map() == other.as_map()
    }
}

impl Claims {
    /// The claims of a verified token: `claims` is `json` as [`json::object`] read it.
    pub(crate) fn from_verified(json: String, claims: Object) -> Self {
        Self {
            json: json.into_boxed_str(),
            value: OnceLock::from(Value::Object(claims)),
        }
    }

    /// Claims from a JSON object (for tests and for your own token sources). Nothing is
    /// verified.
    pub fn from_json(json: &str) -> Result<Self, ClaimsError> {
        match serde_json::from_str::<Value>(json) {
            Ok(value @ Value::Object(_)) => Ok(Self {
                json: json.into(),
                value: OnceLock::from(value),
            }),
            _ => Err(ClaimsError(())),
        }
    }

    /// The claims as the JSON text they were read from (the decoded token payload).
    pub fn as_json(&self) -> &str {
        &self.json
    }

    fn value(&self) -> &Value {
        // Both constructors set the value: the lazy form only keeps the type `Clone`.
        self.value.get_or_init(|| Value::Object(Map::new()))
    }

    /// Every claim.
    pub fn as_map(&self) -> &Map<String, Value> {
        match self.value() {
            Value::Object(m) => m,
            // Constructed from objects only.
            _ => unreachable_map(),
        }
    }

    /// One top-level claim.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.as_map().get(name)
    }

    /// A claim at a dot path (`realm_access.roles`).
    pub fn get_path(&self, path: &str) -> Option<&Value> {
        path.split('.')
            .try_fold(self.value(), |v, seg| v.as_object()?.get(seg))
    }

    /// A typed view of the claims; borrows strings from the claims where the type allows.
    pub fn deserialize<'a, T: Deserialize<'a>>(&'a self) -> Result<T, ClaimsError> {
        T::deserialize(self.value()).map_err(|_| ClaimsError(()))
    }

    /// `sub`.
    pub fn subject(&self) -> Option<&str> {
        self.get("sub")?.as_str()
    }

    /// `iss`.
    pub fn issuer(&self) -> Option<&str> {
        self.get("iss")?.as_str()
    }

    /// `jti`.
    pub fn jti(&self) -> Option<&str> {
        self.get("jti")?.as_str()
    }

    /// `exp`, when it is a NumericDate.
    pub fn expires_at(&self) -> Option<SystemTime> {
        numeric_date(self.get("exp")?)
    }

    /// `iat`, when it is a NumericDate.
    pub fn issued_at(&self) -> Option<SystemTime> {
        numeric_date(self.get("iat")?)
    }
}

fn unreachable_map() -> &'static Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Map::new)
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Claim names only: values may be personal data.
        f.debug_struct("Claims")
            .field("names", &self.as_map().keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The claims do not have the requested shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimsError(());

impl fmt::Display for ClaimsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("claims do not match the requested type")
    }
}

impl std::error::Error for ClaimsError {}

/// A JSON NumericDate (RFC 7519 section 2): a non-negative number of seconds, possibly
/// fractional. Strings, negatives and non-finite values are not dates.
pub(crate) fn numeric_date(v: &Value) -> Option<SystemTime> {
    number_date(v.as_number()?)
}

/// [`numeric_date`] of a number.
pub(crate) fn number_date(n: &Number) -> Option<SystemTime> {
    if let Some(u) = n.as_u64() {
        return UNIX_EPOCH.checked_add(Duration::from_secs(u));
    }
    let f = n.as_f64()?;
    if f.is_finite() && f >= 0.0 {
        UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(f).ok()?)
    } else {
        None
    }
}

/// A path to a claim: dot-separated segments into nested objects.
///
/// `ClaimPath::new("realm_access.roles")` reads `{"realm_access":{"roles":[...]}}`. Claim names
/// that contain dots (Auth0's namespaced claims such as `https://example.com/roles`) are
/// written with [`ClaimPath::key`].
///
/// ```
/// use tower_auth_jwt::ClaimPath;
///
/// assert_eq!(ClaimPath::new("realm_access.roles").segments(), ["realm_access", "roles"]);
/// assert_eq!(ClaimPath::key("https://example.com/roles").segments(), ["https://example.com/roles"]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimPath(Arc<[Box<str>]>);

impl ClaimPath {
    /// A dot path.
    pub fn new(path: &str) -> Self {
        Self(path.split('.').map(Box::from).collect())
    }

    /// A single claim name taken literally, dots included.
    pub fn key(name: &str) -> Self {
        Self(Arc::from([Box::from(name)]))
    }

    /// Explicit segments.
    pub fn from_segments<I: IntoIterator<Item = S>, S: AsRef<str>>(segments: I) -> Self {
        Self(
            segments
                .into_iter()
                .map(|s| Box::from(s.as_ref()))
                .collect(),
        )
    }

    /// The segments.
    pub fn segments(&self) -> Vec<&str> {
        self.0.iter().map(|s| &**s).collect()
    }

    pub(crate) fn is_valid(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|s| !s.is_empty())
    }

    pub(crate) fn lookup<'b>(&self, claims: &'b Object) -> Option<&'b Value> {
        json::path(claims, &self.0)
    }

    /// The string at this path, if it holds one.
    pub(crate) fn string<'b>(&self, claims: &'b Object) -> Option<&'b str> {
        self.lookup(claims)?.as_str()
    }
}

impl fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// Which claims become the principal's roles and tenant.
///
/// Scopes always come from `scope` (space separated, RFC 8693 / RFC 9068) or, when there is no
/// `scope`, from `scp` (a space-separated string or an array of strings, as Azure AD and Okta
/// send it). Roles are the union of the string values found at every role path (an array of
/// strings or a single string; other values are ignored). The tenant is the string at the
/// tenant path.
///
/// | preset | roles | tenant |
/// |---|---|---|
/// | [`default`](Self::default) | `roles` | none |
/// | [`keycloak`](Self::keycloak) | `realm_access.roles` | none |
/// | [`auth0`](Self::auth0) | `permissions` | none (`org_id` is common: add it) |
/// | [`azure_ad`](Self::azure_ad) | `roles` | `tid` |
///
/// ```
/// use tower_auth_jwt::{ClaimPath, ClaimsMapping};
///
/// // Keycloak realm roles plus the roles of one client, tenant from a custom claim.
/// let mapping = ClaimsMapping::keycloak()
///     .role_path(ClaimPath::new("resource_access.orders-api.roles"))
///     .tenant_path(ClaimPath::new("org"));
/// # let _ = mapping;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct ClaimsMapping {
    pub(crate) roles: Vec<ClaimPath>,
    pub(crate) tenant: Option<ClaimPath>,
}

impl Default for ClaimsMapping {
    /// Roles from `roles`, no tenant.
    fn default() -> Self {
        Self {
            roles: vec![ClaimPath::new("roles")],
            tenant: None,
        }
    }
}

impl ClaimsMapping {
    /// No roles, no tenant.
    pub fn none() -> Self {
        Self {
            roles: Vec::new(),
            tenant: None,
        }
    }

    /// Keycloak: realm roles from `realm_access.roles`.
    pub fn keycloak() -> Self {
        Self::none().role_path(ClaimPath::new("realm_access.roles"))
    }

    /// Auth0 with RBAC: roles from `permissions`.
    pub fn auth0() -> Self {
        Self::none().role_path(ClaimPath::new("permissions"))
    }

    /// Azure AD / Entra ID: app roles from `roles`, tenant from `tid`.
    pub fn azure_ad() -> Self {
        Self::none()
            .role_path(ClaimPath::new("roles"))
            .tenant_path(ClaimPath::new("tid"))
    }

    /// Adds a claim path whose strings become roles.
    pub fn role_path(mut self, path: ClaimPath) -> Self {
        self.roles.push(path);
        self
    }

    /// Sets the claim path of the tenant.
    pub fn tenant_path(mut self, path: ClaimPath) -> Self {
        self.tenant = Some(path);
        self
    }

    pub(crate) fn roles<'b>(&'b self, claims: &'b Object) -> impl Iterator<Item = &'b str> {
        self.roles
            .iter()
            .filter_map(|path| path.lookup(claims))
            .flat_map(json::strings)
    }

    pub(crate) fn tenant<'b>(&self, claims: &'b Object) -> Option<&'b str> {
        self.tenant.as_ref()?.string(claims)
    }
}

/// When a token is treated as a machine ([`PrincipalKind::Service`]) rather than a person
/// ([`PrincipalKind::User`]).
///
/// The default is [`Never`](Self::Never): every principal is a user, because a token format
/// alone does not reliably tell. Identity providers that issue client-credentials tokens mark
/// them in one of a few ways; [`ClientCredentials`](Self::ClientCredentials) covers the common
/// ones.
///
/// [`PrincipalKind::Service`]: tower_auth_core::PrincipalKind::Service
/// [`PrincipalKind::User`]: tower_auth_core::PrincipalKind::User
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceRule {
    /// Every principal is a user.
    #[default]
    Never,
    /// A service when the token has no `sub`, or its `sub` equals its `client_id` or `azp`
    /// (Keycloak, Okta, RFC 9068: a client acting for itself), or when Azure AD marks it with
    /// `idtyp: app`.
    ClientCredentials,
    /// A service when the claim at the path holds this string (`ClaimPath::new("gty")`,
    /// `"client-credentials"` for Auth0).
    ClaimEquals(ClaimPath, String),
}

impl ServiceRule {
    pub(crate) fn is_service(&self, claims: &Object) -> bool {
        match self {
            Self::Never => false,
            Self::ClientCredentials => {
                let sub = claims.get("sub").and_then(Value::as_str);
                let client = claims
                    .get("client_id")
                    .or_else(|| claims.get("azp"))
                    .and_then(Value::as_str);
                let azure_app = claims.get("idtyp").and_then(Value::as_str) == Some("app");
                azure_app
                    || match (sub, client) {
                        (None, _) => true,
                        (Some(s), Some(c)) => s == c,
                        (Some(_), None) => false,
                    }
            }
            Self::ClaimEquals(path, value) => path.string(claims) == Some(value.as_str()),
        }
    }
}
