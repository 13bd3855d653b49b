//! The path normalisation of tower-auth-forward: the forwarded request target, decoded and
//! normalised before any rule sees it.
//!
//! Input: a request target (`/a/b?q`).
//!
//! Properties: a normalised path is absolute, has no empty, `.` or `..` segment, no `\`, `;`
//! or control character; it is a valid rule path unless it holds a decoded `?` or `#`; and it
//! is a fixed point: percent-encoded again and normalised, it gives itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use tower_auth_forward::fuzzing::{check_rule_path, normalize};

/// Everything but unreserved characters and a few sub-delims; `/` stays the separator.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

fuzz_target!(|data: &[u8]| {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = normalize(target) else {
        return;
    };
    let rest = path.strip_prefix('/').expect("absolute");
    let segments: Vec<&str> = rest.split('/').collect();
    for (i, s) in segments.iter().enumerate() {
        assert!(
            !s.is_empty() || i + 1 == segments.len(),
            "empty segment in {path:?} from {target:?}"
        );
        assert!(*s != "." && *s != "..", "{path:?} from {target:?}");
    }
    assert!(
        !path.contains(['\\', ';']) && !path.chars().any(char::is_control),
        "{path:?}"
    );
    if !path.contains(['?', '#']) {
        assert_eq!(check_rule_path(&path), Ok(()), "{path:?} from {target:?}");
    }
    let encoded = utf8_percent_encode(&path, SEGMENT).to_string();
    assert_eq!(
        normalize(&encoded).as_deref(),
        Ok(path.as_str()),
        "{encoded:?} from {target:?}"
    );
});
