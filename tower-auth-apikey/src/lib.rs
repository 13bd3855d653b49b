//! API key authentication for tower: prefixed, checksummed keys stored only as hashes, looked up
//! through a cache. Being built; see the project's issue tracker.
