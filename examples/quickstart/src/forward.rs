//! `[forward_auth]`: tower-auth-forward's [`ForwardAuth`] on the quickstart's authenticators,
//! at `forward_auth.path` (nginx `auth_request`, Traefik ForwardAuth), under
//! `forward_auth.envoy_prefix` (Envoy's HTTP mode) and, with `grpc_listen`, as Envoy's gRPC
//! `Authorization/Check` API.

use axum::Router;
use tower_auth_core::credential::Location;
use tower_auth_core::{Authenticator, ProblemRejection, Scheme, from_fn};
use tower_auth_forward::{ForwardAuth, Rule};

use crate::config::{Config, ConfigError, ForwardAuthConfig};

/// The endpoint, built from `forward`'s rules on `auth`.
pub type Endpoint<A> = ForwardAuth<A, ProblemRejection>;

fn rules(forward: &ForwardAuthConfig) -> Vec<Rule> {
    forward
        .rules
        .iter()
        .map(|r| {
            let mut rule = match (&r.path, &r.path_prefix) {
                (Some(path), _) => Rule::path(path),
                (None, prefix) => Rule::path_prefix(prefix.clone().unwrap_or_default()),
            };
            if let Some(methods) = &r.methods {
                rule = rule.methods(methods);
            }
            if let Some(schemes) = &r.schemes {
                rule = rule.schemes(schemes.iter().map(|s| match s.as_str() {
                    "api_key" => Scheme::ApiKey,
                    "jwt" => Scheme::Jwt,
                    _ => Scheme::Introspection,
                }));
            }
            rule.scopes(r.scopes.iter().cloned())
                .roles(r.roles.iter().cloned())
                .anonymous(r.anonymous)
        })
        .collect()
}

/// The endpoint on `auth`, or the library's refusal of the configuration, reported under the
/// file's key: `forward_auth.rules[N].SETTING` for a rule's setting.
pub fn endpoint<A: Authenticator>(
    auth: A,
    forward: &ForwardAuthConfig,
) -> Result<Endpoint<A>, ConfigError> {
    ForwardAuth::builder(auth)
        .rules(rules(forward))
        .envoy_prefix(&forward.envoy_prefix)
        .rejection(ProblemRejection::new())
        .build()
        .map_err(|e| {
            // A rule's refusal names it in its value: `"/x" (rules[2])`.
            let (value, rule) = match e.value().rsplit_once(" (rules[") {
                Some((value, rest)) => (value.to_owned(), rest.strip_suffix("])")),
                None => (e.value().to_owned(), None),
            };
            let key = match (rule, e.setting()) {
                (Some(n), setting) => format!("forward_auth.rules[{n}].{setting}"),
                (None, "envoy_prefix") => "forward_auth.envoy_prefix".to_owned(),
                (None, _) => "forward_auth.rules".to_owned(),
            };
            ConfigError::new(key, Some(value), e.reason())
        })
}

/// Checks `[forward_auth]` with the library, before the database is opened.
pub fn check(config: &Config) -> Result<(), ConfigError> {
    if let Some(forward) = &config.forward_auth {
        endpoint(from_fn(Location::Authorization, |_| Ok(None)), forward)?;
    }
    Ok(())
}

/// The endpoint's routes: `path` (every method) and Envoy's HTTP mode under `envoy_prefix`.
pub fn routes<A>(endpoint: Endpoint<A>, forward: &ForwardAuthConfig) -> Router
where
    A: Authenticator + Send + Sync + 'static,
    A::Future: Send + 'static,
{
    Router::new()
        .route_service(&forward.path, endpoint.clone())
        .route_service(&format!("{}/{{*path}}", forward.envoy_prefix), endpoint)
}
