//! Entry points for the fuzz targets of `fuzz/` (built only under `cfg(fuzzing)`); not an API.

/// The decoded, normalised path of a forwarded request target, or the reason for a 400.
pub fn normalize(target: &str) -> Result<String, &'static str> {
    crate::path::normalize(target)
}

/// Whether a path is acceptable in a rule (decoded and normalised).
pub fn check_rule_path(path: &str) -> Result<(), &'static str> {
    crate::path::check_rule_path(path)
}
