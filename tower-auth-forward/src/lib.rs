//! Forward authentication for proxies: nginx `auth_request`, Traefik ForwardAuth and Envoy
//! `ext_authz`, answered with tower-auth's authenticators, caches, scope rules and response
//! contract.
//!
//! DOCS_PLACEHOLDER

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "envoy-grpc")]
pub mod envoy;
mod identity;
mod path;
mod rules;
mod service;

pub use self::rules::Rule;
pub use self::service::{ForwardAuth, ForwardAuthBuilder, ForwardBody, ResponseFuture};

#[cfg(test)]
mod tests;
