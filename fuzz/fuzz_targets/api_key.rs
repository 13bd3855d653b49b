//! The API key format: `{prefix}_{30 random base62}{6 base62 of CRC32}`.
//!
//! Input: the first byte picks the property, the rest is the data.
//!
//! Properties: the check accepts exactly the keys the generator makes (any string accepted is
//! the generator's key for its random part, and every key the generator makes from any random
//! part is accepted and claimed); a key of another environment is reported as such; a value the
//! check accepts or calls another environment's is claimed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_auth_apikey::fuzzing::{KeyFormat, RANDOM_LEN};

const PREFIX: &str = "sk_live";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Any string: accepted iff it is the generator's key for its random part.
fn check_any(format: &KeyFormat, key: &str) {
    let verdict = format.check(key);
    let b = key.as_bytes();
    let body = PREFIX.len() + 1;
    let generated = b.len() == body + RANDOM_LEN + 6
        && b.starts_with(PREFIX.as_bytes())
        && b[PREFIX.len()] == b'_'
        && b[body..body + RANDOM_LEN]
            .iter()
            .all(u8::is_ascii_alphanumeric)
        && format.key_with_random(&key[body..body + RANDOM_LEN]) == key;
    assert_eq!(verdict.is_ok(), generated, "{key:?}: {verdict:?}");
    if verdict == Err("other_environment") {
        assert!(key.starts_with("sk_test_"), "{key:?}");
    }
    if verdict.is_ok() || verdict == Err("other_environment") {
        assert!(format.claims(key), "{key:?}");
    }
}

/// Any random part: the generated key passes and is claimed; any one-character change fails.
fn generate(format: &KeyFormat, data: &[u8]) {
    if data.len() < RANDOM_LEN {
        return;
    }
    let random: String = data[..RANDOM_LEN]
        .iter()
        .map(|&b| char::from(BASE62[usize::from(b % 62)]))
        .collect();
    let key = format.key_with_random(&random);
    assert_eq!(format.check(&key), Ok(()), "{key:?}");
    assert!(format.claims(&key));
    if let Some(&at) = data.get(RANDOM_LEN) {
        let mut changed = key.clone().into_bytes();
        let i = PREFIX.len() + 1 + usize::from(at) % (RANDOM_LEN + 6);
        let by = 1 + data.get(RANDOM_LEN + 1).map_or(0, |&b| usize::from(b) % 61);
        let pos = BASE62
            .iter()
            .position(|&c| c == changed[i])
            .expect("base62");
        changed[i] = BASE62[(pos + by) % 62];
        let changed = String::from_utf8(changed).expect("ascii");
        assert_eq!(format.check(&changed), Err("bad_checksum"), "{changed:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let format = KeyFormat::new(PREFIX).expect("the default prefix is valid");
    if mode % 2 == 0 {
        check_any(&format, &String::from_utf8_lossy(data));
    } else {
        generate(&format, data);
    }
});
