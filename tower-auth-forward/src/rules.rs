//! Access rules: which requests a forwarded request may be, and what they need.

use std::fmt;
use std::sync::Arc;

use http::Method;
use tower_auth_core::{AuthError, ConfigError, Roles, Scheme, Scopes};

use crate::path::check_rule_path;

/// One access rule: a path (exact, or a prefix of whole segments), optional methods, and what a
/// request there needs.
///
/// Rules are plain values; [`ForwardAuthBuilder::build`](crate::ForwardAuthBuilder::build)
/// validates them all at once and names the rule and setting of the first mistake.
///
/// ```
/// use http::Method;
/// use tower_auth_core::Scheme;
/// use tower_auth_forward::Rule;
///
/// let read = Rule::path_prefix("/api/")
///     .methods([Method::GET, Method::HEAD])
///     .schemes([Scheme::ApiKey, Scheme::Jwt])
///     .scopes(["read:items"]);
/// let admin = Rule::path_prefix("/admin").roles(["admin"]);
/// let health = Rule::path("/healthz").anonymous(true);
/// # let _ = (read, admin, health);
/// ```
#[derive(Clone, Debug)]
pub struct Rule {
    path: RulePath,
    methods: Option<Vec<String>>,
    schemes: Option<Vec<Scheme>>,
    scopes: Vec<String>,
    roles: Vec<String>,
    anonymous: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum RulePath {
    Exact(String),
    Prefix(String),
}

impl Rule {
    fn new(path: RulePath) -> Self {
        Self {
            path,
            methods: None,
            schemes: None,
            scopes: Vec::new(),
            roles: Vec::new(),
            anonymous: false,
        }
    }

    /// A rule for exactly `path` (decoded, normalised, case-sensitive; `/a` is not `/a/`).
    #[must_use]
    pub fn path(path: impl Into<String>) -> Self {
        Self::new(RulePath::Exact(path.into()))
    }

    /// A rule for `prefix` and everything below it, by whole segments: `/api/` and `/api` both
    /// cover `/api`, `/api/` and `/api/x`, never `/apix`. `/` covers every path.
    #[must_use]
    pub fn path_prefix(prefix: impl Into<String>) -> Self {
        Self::new(RulePath::Prefix(prefix.into()))
    }

    /// The methods this rule is for (default: any). Case-sensitive, as HTTP methods are:
    /// `GET`, not `get`.
    #[must_use]
    pub fn methods<I, T>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.methods = Some(methods.into_iter().map(|m| m.as_ref().to_owned()).collect());
        self
    }

    /// The schemes whose credentials this rule accepts (default: every scheme of the
    /// authenticator). A credential of another scheme is 401 `invalid_token`, and is not checked.
    #[must_use]
    pub fn schemes(mut self, schemes: impl IntoIterator<Item = Scheme>) -> Self {
        self.schemes = Some(schemes.into_iter().collect());
        self
    }

    /// Scopes the principal must all hold (403 `insufficient_scope` otherwise).
    #[must_use]
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Roles the principal must all hold (403 without a challenge otherwise).
    #[must_use]
    pub fn roles<I, T>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Lets requests without any credential through, with no identity headers (default
    /// `false`). A credential that is present is still checked, as in
    /// [`AuthenticateLayer::optional`](tower_auth_core::AuthenticateLayer::optional): a valid
    /// one gives identity headers, a bad one 401. An anonymous rule cannot require scopes or
    /// roles.
    #[must_use]
    pub fn anonymous(mut self, anonymous: bool) -> Self {
        self.anonymous = anonymous;
        self
    }
}

/// A validated rule.
#[derive(Debug)]
pub(crate) struct Compiled {
    /// Exact path, or prefix without its trailing `/` (empty for `/`).
    path: RulePath,
    methods: Option<Vec<Method>>,
    schemes: Option<Vec<Scheme>>,
    scopes: Scopes,
    /// The `scope` attribute of the 403 challenge.
    scope_challenge: Arc<str>,
    roles: Roles,
    pub(crate) anonymous: bool,
}

impl Compiled {
    /// How specific the rule is for a path it covers, or `None` when it does not cover it:
    /// exact paths beat every prefix, longer prefixes beat shorter ones.
    fn specificity(&self, path: &str) -> Option<usize> {
        match &self.path {
            RulePath::Exact(p) => (p == path).then_some(usize::MAX),
            RulePath::Prefix(p) => {
                let rest = path.strip_prefix(p.as_str())?;
                (rest.is_empty() || rest.starts_with('/')).then_some(p.len())
            }
        }
    }

    fn allows_method(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|m| m.contains(method))
    }

    /// Whether a credential of `scheme` is accepted here.
    pub(crate) fn accepts(&self, scheme: Scheme) -> bool {
        self.schemes.as_ref().is_none_or(|s| s.contains(&scheme))
    }

    /// Checks the principal's scopes, then roles.
    pub(crate) fn authorize(
        &self,
        principal: &tower_auth_core::Principal,
    ) -> Result<(), AuthError> {
        if !principal.scopes().contains_all(self.scopes.iter()) {
            return Err(AuthError::insufficient_scope(&*self.scope_challenge));
        }
        if !principal.roles().contains_all(self.roles.iter()) {
            return Err(AuthError::forbidden("missing role"));
        }
        Ok(())
    }
}

/// The validated rule set.
pub(crate) struct Rules {
    rules: Vec<Compiled>,
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules")
            .field("len", &self.rules.len())
            .finish()
    }
}

impl Rules {
    pub(crate) fn compile(rules: Vec<Rule>) -> Result<Self, ConfigError> {
        if rules.is_empty() {
            return Err(ConfigError::new(
                "rules",
                "[]",
                "at least one rule is needed (every request would be denied)",
            ));
        }
        let mut compiled: Vec<Compiled> = Vec::with_capacity(rules.len());
        for (i, rule) in rules.into_iter().enumerate() {
            let c = compile(i, rule)?;
            if let Some(j) = compiled
                .iter()
                .position(|other| other.path == c.path && methods_overlap(other, &c))
            {
                return Err(ConfigError::new(
                    "rules",
                    format!("rules[{j}] and rules[{i}]"),
                    "two rules for the same path and method: which one applies would be ambiguous",
                ));
            }
            compiled.push(c);
        }
        Ok(Self { rules: compiled })
    }

    /// The rule for a request: the most specific among those covering `path` whose methods
    /// include `method`. A path no rule covers, and a covered path with no rule for this
    /// method, are both 403.
    pub(crate) fn find(
        &self,
        method: &Method,
        path: &str,
    ) -> Result<(usize, &Compiled), AuthError> {
        let mut best: Option<(usize, usize)> = None;
        let mut covered = false;
        for (i, rule) in self.rules.iter().enumerate() {
            let Some(specificity) = rule.specificity(path) else {
                continue;
            };
            covered = true;
            if rule.allows_method(method) && best.is_none_or(|(_, s)| specificity > s) {
                best = Some((i, specificity));
            }
        }
        match best {
            Some((i, _)) => Ok((i, &self.rules[i])),
            None if covered => Err(AuthError::forbidden("method not allowed by any rule")),
            None => Err(AuthError::forbidden("no rule for this path")),
        }
    }

    pub(crate) fn get(&self, index: usize) -> &Compiled {
        &self.rules[index]
    }
}

fn methods_overlap(a: &Compiled, b: &Compiled) -> bool {
    match (&a.methods, &b.methods) {
        (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
        _ => true,
    }
}

fn compile(i: usize, rule: Rule) -> Result<Compiled, ConfigError> {
    let err = |setting: &'static str, value: &dyn fmt::Debug, reason: &'static str| {
        ConfigError::new(setting, format!("{value:?} (rules[{i}])"), reason)
    };
    let path = match rule.path {
        RulePath::Exact(p) => {
            check_rule_path(&p).map_err(|r| err("path", &p, r))?;
            RulePath::Exact(p)
        }
        RulePath::Prefix(p) => {
            check_rule_path(&p).map_err(|r| err("path_prefix", &p, r))?;
            RulePath::Prefix(p.trim_end_matches('/').to_owned())
        }
    };
    let methods = match rule.methods {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(err(
                "methods",
                &list,
                "must not be empty (leave it out for any method)",
            ));
        }
        Some(list) => Some(
            list.iter()
                .map(|m| {
                    if m.bytes().any(|b| b.is_ascii_lowercase()) {
                        return Err(err(
                            "methods",
                            m,
                            "methods are case-sensitive: write them in upper case",
                        ));
                    }
                    Method::from_bytes(m.as_bytes())
                        .map_err(|_| err("methods", m, "not an HTTP method"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    if rule.schemes.as_ref().is_some_and(Vec::is_empty) {
        return Err(err(
            "schemes",
            &rule.schemes,
            "must not be empty (leave it out for every scheme)",
        ));
    }
    for scope in &rule.scopes {
        // RFC 6749 section 3.3 scope-token.
        let valid = !scope.is_empty()
            && scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !valid {
            return Err(err(
                "scopes",
                scope,
                "not a scope token (RFC 6749 section 3.3)",
            ));
        }
    }
    for role in &rule.roles {
        if role.is_empty() || role.chars().any(|c| c.is_control() || c == ' ') {
            return Err(err(
                "roles",
                role,
                "must be non-empty, without spaces or control characters",
            ));
        }
    }
    if rule.anonymous && !(rule.scopes.is_empty() && rule.roles.is_empty()) {
        return Err(err(
            "anonymous",
            &rule.anonymous,
            "an anonymous rule cannot require scopes or roles",
        ));
    }
    let scopes = Scopes::new(rule.scopes);
    Ok(Compiled {
        path,
        methods,
        schemes: rule.schemes,
        scope_challenge: scopes.to_space_separated().into(),
        scopes,
        roles: Roles::new(rule.roles),
        anonymous: rule.anonymous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_auth_core::AuthErrorKind;

    fn rules(list: Vec<Rule>) -> Rules {
        Rules::compile(list).unwrap()
    }

    fn find(r: &Rules, method: Method, path: &str) -> Result<usize, AuthErrorKind> {
        r.find(&method, path).map(|(i, _)| i).map_err(|e| e.kind())
    }

    #[test]
    fn prefixes_match_whole_segments() {
        for prefix in ["/api", "/api/"] {
            let r = rules(vec![Rule::path_prefix(prefix)]);
            for covered in ["/api", "/api/", "/api/x", "/api/x/y"] {
                assert_eq!(find(&r, Method::GET, covered), Ok(0), "{prefix} {covered}");
            }
            for other in ["/apix", "/ap", "/", "/x/api"] {
                assert_eq!(
                    find(&r, Method::GET, other),
                    Err(AuthErrorKind::Forbidden),
                    "{prefix} {other}"
                );
            }
        }
        let root = rules(vec![Rule::path_prefix("/")]);
        assert_eq!(find(&root, Method::GET, "/anything/at/all"), Ok(0));
    }

    #[test]
    fn exact_beats_longest_prefix_beats_shorter_prefix() {
        let r = rules(vec![
            Rule::path_prefix("/"),
            Rule::path_prefix("/api/"),
            Rule::path("/api/items"),
            Rule::path_prefix("/api/items"),
        ]);
        assert_eq!(find(&r, Method::GET, "/api/items"), Ok(2));
        assert_eq!(find(&r, Method::GET, "/api/items/1"), Ok(3));
        assert_eq!(find(&r, Method::GET, "/api/other"), Ok(1));
        assert_eq!(find(&r, Method::GET, "/else"), Ok(0));
    }

    #[test]
    fn specificity_only_among_rules_allowing_the_method() {
        let r = rules(vec![
            Rule::path_prefix("/api/"),
            Rule::path("/api/items").methods(["POST"]),
        ]);
        assert_eq!(find(&r, Method::POST, "/api/items"), Ok(1));
        assert_eq!(find(&r, Method::GET, "/api/items"), Ok(0));
    }

    #[test]
    fn covered_path_without_a_rule_for_the_method_is_403() {
        let r = rules(vec![Rule::path_prefix("/api/").methods(["GET", "HEAD"])]);
        assert_eq!(find(&r, Method::HEAD, "/api/x"), Ok(0));
        let e = r.find(&Method::DELETE, "/api/x").unwrap_err();
        assert_eq!(
            (e.kind(), e.description()),
            (AuthErrorKind::Forbidden, "method not allowed by any rule")
        );
        let e = r.find(&Method::GET, "/other").unwrap_err();
        assert_eq!(
            (e.kind(), e.description()),
            (AuthErrorKind::Forbidden, "no rule for this path")
        );
    }

    #[test]
    fn bad_rules_name_the_setting_and_value() {
        let cases: Vec<(Rule, &str, &str)> = vec![
            (Rule::path("api"), "path", "\"api\" (rules[0])"),
            (
                Rule::path_prefix("/a//b"),
                "path_prefix",
                "\"/a//b\" (rules[0])",
            ),
            (
                Rule::path("/a").methods(Vec::<String>::new()),
                "methods",
                "[] (rules[0])",
            ),
            (
                Rule::path("/a").methods(["get"]),
                "methods",
                "\"get\" (rules[0])",
            ),
            (
                Rule::path("/a").methods(["GE T"]),
                "methods",
                "\"GE T\" (rules[0])",
            ),
            (
                Rule::path("/a").schemes([]),
                "schemes",
                "Some([]) (rules[0])",
            ),
            (
                Rule::path("/a").scopes(["a b"]),
                "scopes",
                "\"a b\" (rules[0])",
            ),
            (Rule::path("/a").scopes([""]), "scopes", "\"\" (rules[0])"),
            (Rule::path("/a").roles([""]), "roles", "\"\" (rules[0])"),
            (
                Rule::path("/a").anonymous(true).scopes(["x"]),
                "anonymous",
                "true (rules[0])",
            ),
        ];
        for (rule, setting, value) in cases {
            let e = Rules::compile(vec![rule]).err().unwrap();
            assert_eq!((e.setting(), e.value()), (setting, value), "{e}");
        }
        let e = Rules::compile(vec![]).err().unwrap();
        assert_eq!(e.setting(), "rules");
    }

    #[test]
    fn ambiguous_rules_are_refused() {
        let e = Rules::compile(vec![
            Rule::path("/x"),
            Rule::path_prefix("/api"),
            Rule::path_prefix("/api/").methods(["GET"]),
        ])
        .err()
        .unwrap();
        assert_eq!((e.setting(), e.value()), ("rules", "rules[1] and rules[2]"));
        // Disjoint methods, or an exact path beside a prefix, are fine.
        assert!(
            Rules::compile(vec![
                Rule::path_prefix("/api").methods(["GET"]),
                Rule::path_prefix("/api/").methods(["POST"]),
                Rule::path("/api"),
            ])
            .is_ok()
        );
    }
}
