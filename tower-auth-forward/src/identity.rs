//! The identity headers of an allowed request.

use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use tower_auth_core::{ConfigError, Principal};

/// Encoded inside each item: controls, space and `%` (non-ASCII is always encoded), so a value
/// holds visible ASCII only and a list splits on single spaces exactly into its items.
const ITEM: &AsciiSet = &CONTROLS.add(b' ').add(b'%');

/// The names of the identity headers.
#[derive(Clone, Debug)]
pub(crate) struct IdentityHeaders {
    pub(crate) subject: HeaderName,
    pub(crate) scheme: HeaderName,
    pub(crate) scopes: HeaderName,
    pub(crate) roles: HeaderName,
    pub(crate) tenant: HeaderName,
}

/// The configured names, before validation.
#[derive(Clone, Debug)]
pub(crate) struct IdentityHeaderNames {
    pub(crate) subject: String,
    pub(crate) scheme: String,
    pub(crate) scopes: String,
    pub(crate) roles: String,
    pub(crate) tenant: String,
}

impl Default for IdentityHeaderNames {
    fn default() -> Self {
        Self {
            subject: "x-auth-subject".into(),
            scheme: "x-auth-scheme".into(),
            scopes: "x-auth-scopes".into(),
            roles: "x-auth-roles".into(),
            tenant: "x-auth-tenant".into(),
        }
    }
}

impl IdentityHeaderNames {
    pub(crate) fn build(self) -> Result<IdentityHeaders, ConfigError> {
        let name = |setting: &'static str, value: &str| {
            HeaderName::from_bytes(value.as_bytes())
                .map_err(|_| ConfigError::new(setting, format!("{value:?}"), "not a header name"))
        };
        let headers = IdentityHeaders {
            subject: name("subject_header", &self.subject)?,
            scheme: name("scheme_header", &self.scheme)?,
            scopes: name("scopes_header", &self.scopes)?,
            roles: name("roles_header", &self.roles)?,
            tenant: name("tenant_header", &self.tenant)?,
        };
        let names = headers.names();
        for (i, a) in names.iter().enumerate() {
            if names[..i].contains(a) {
                return Err(ConfigError::new(
                    "identity headers",
                    a.as_str(),
                    "the same header name is configured twice",
                ));
            }
        }
        Ok(headers)
    }
}

impl IdentityHeaders {
    /// Every identity header name.
    pub(crate) fn names(&self) -> [&HeaderName; 5] {
        [
            &self.subject,
            &self.scheme,
            &self.scopes,
            &self.roles,
            &self.tenant,
        ]
    }

    /// Writes the identity of `principal`; an empty list or a missing tenant writes nothing.
    pub(crate) fn write(&self, principal: &Principal, headers: &mut HeaderMap) {
        headers.insert(self.subject.clone(), item(principal.subject()));
        headers.insert(self.scheme.clone(), item(principal.scheme().as_str()));
        if let Some(v) = list(principal.scopes().iter()) {
            headers.insert(self.scopes.clone(), v);
        }
        if let Some(v) = list(principal.roles().iter()) {
            headers.insert(self.roles.clone(), v);
        }
        if let Some(tenant) = principal.tenant() {
            headers.insert(self.tenant.clone(), item(tenant));
        }
    }
}

fn value(s: String) -> HeaderValue {
    HeaderValue::try_from(s)
        .unwrap_or_else(|_| unreachable!("percent-encoded values are visible ASCII"))
}

fn item(s: &str) -> HeaderValue {
    value(utf8_percent_encode(s, ITEM).to_string())
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> Option<HeaderValue> {
    let mut out = String::new();
    for s in items {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(utf8_percent_encode(s, ITEM));
    }
    (!out.is_empty()).then(|| value(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_auth_core::Scheme;

    #[test]
    fn items_hold_visible_ascii_and_lists_split_exactly() {
        let headers = IdentityHeaderNames::default().build().unwrap();
        let p = Principal::builder("ali ce\r\nX-Auth-Roles: admin%0A\u{e9}", Scheme::Jwt)
            .scopes(["read:items", "a\nb"])
            .roles(["has space", "100%"])
            .tenant("t\u{0}1")
            .build();
        let mut map = HeaderMap::new();
        headers.write(&p, &mut map);
        assert_eq!(
            map["x-auth-subject"],
            "ali%20ce%0D%0AX-Auth-Roles:%20admin%250A%C3%A9"
        );
        assert_eq!(map["x-auth-scheme"], "jwt");
        // Scopes are sorted by the set type.
        assert_eq!(map["x-auth-scopes"], "a%0Ab read:items");
        assert_eq!(map["x-auth-roles"], "100%25 has%20space");
        assert_eq!(map["x-auth-tenant"], "t%001");
        for v in map.values() {
            assert!(
                v.as_bytes()
                    .iter()
                    .all(|b| (0x21..=0x7e).contains(b) || *b == b' ')
            );
        }
        assert_eq!(map.len(), 5);
    }

    #[test]
    fn empty_lists_and_no_tenant_omit_their_header() {
        let headers = IdentityHeaderNames::default().build().unwrap();
        let mut map = HeaderMap::new();
        headers.write(&Principal::builder("svc", Scheme::ApiKey).build(), &mut map);
        let names: Vec<_> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-auth-subject", "x-auth-scheme"]);
    }

    #[test]
    fn names_are_validated() {
        let e = IdentityHeaderNames {
            subject: "x user".into(),
            ..Default::default()
        }
        .build()
        .unwrap_err();
        assert_eq!((e.setting(), e.value()), ("subject_header", "\"x user\""));
        let e = IdentityHeaderNames {
            roles: "X-Auth-Scopes".into(),
            ..Default::default()
        }
        .build()
        .unwrap_err();
        assert_eq!(e.setting(), "identity headers");
    }
}
