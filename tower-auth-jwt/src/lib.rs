//! JWT authentication for tower: validation, remote key sets, issuing. Being built; see the
//! project's issue tracker.
