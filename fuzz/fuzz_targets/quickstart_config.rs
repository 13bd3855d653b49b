//! The quickstart's TOML configuration file, through its public `Config::parse`.
//!
//! Input: the file's text.
//!
//! Properties: no panic; an accepted configuration passes the checks `parse` promises (a
//! `sqlite://` or `postgres://` database), and parsing is deterministic; a refusal is an error
//! message, never empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quickstart::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text) {
        Ok(c) => {
            assert!(
                c.database.starts_with("sqlite://") || c.database.starts_with("postgres://"),
                "{:?}",
                c.database
            );
            let again = Config::parse(text).expect("the same text parses again");
            assert_eq!(format!("{again:?}"), format!("{c:?}"));
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
