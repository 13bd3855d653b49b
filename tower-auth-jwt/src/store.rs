//! What every store of this crate shares: the boxed [`StoreFuture`] its traits return and
//! the [`StoreError`] they fail with (tower-auth-core's, shared with tower-auth-apikey).
//! Revocation stores (the verifier's) and the issuer's stores both use them, so neither side
//! imports the other for it.

pub use tower_auth_core::store::{StoreError, StoreErrorKind, StoreFuture};
