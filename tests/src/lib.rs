//! Cross-crate integration tests of tower-auth, against real components (SQLite, Postgres, an
//! OpenID provider) over loopback. The tests are in `tests/`; this library holds shared helpers.
