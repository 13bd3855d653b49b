//! OAuth 2.0 for tower: resource server (JWT access tokens and RFC 7662 introspection), client
//! credentials and authorization code with PKCE. Being built; see the project's issue tracker.
