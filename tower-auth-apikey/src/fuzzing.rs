//! Entry points for the fuzz targets of `fuzz/` (built only under `cfg(fuzzing)`); not an API.

use crate::key;

/// The key format of a deployment: its prefix and the other environments' prefixes.
#[derive(Debug)]
pub struct KeyFormat(key::KeyFormat);

impl KeyFormat {
    /// The format of `prefix`, with the default other environments (`sk_live`, `sk_test`).
    pub fn new(prefix: &str) -> Option<Self> {
        key::KeyFormat::new(prefix, None).ok().map(Self)
    }

    /// The check every presented key goes through before any lookup; the reason on failure.
    pub fn check(&self, key: &str) -> Result<(), &'static str> {
        self.0.check(key).map_err(key::FormatError::as_str)
    }

    /// Whether a Bearer value is claimed by the API key scheme.
    pub fn claims(&self, value: &str) -> bool {
        self.0.claims(value)
    }

    /// The key the generator makes from these random characters.
    pub fn key_with_random(&self, random: &str) -> String {
        self.0.key_with_random(random).expose_secret().to_owned()
    }
}

/// The number of random characters in a key.
pub const RANDOM_LEN: usize = key::RANDOM_LEN;
