//! The forwarded path, decoded and normalised before any rule sees it.
//!
//! Rules match what the upstream will serve, so the path is read the way a careful server reads
//! it: the query and fragment are dropped, each segment is percent-decoded, and dot segments are
//! removed (RFC 3986 section 5.2.4). Anything that different servers read differently is refused
//! (400 `invalid_request`) rather than guessed at: an encoded `/` or `\`, a backslash, a `;`
//! (path parameters), an empty segment (`//`), a control character (NUL included), a broken
//! percent escape, bytes that are not UTF-8 once decoded, and raw bytes outside visible ASCII.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// Decodes and normalises the path of a request target (`/a/b?q`), returning the path to match
/// or the fixed reason for a 400.
pub(crate) fn normalize(target: &str) -> Result<String, &'static str> {
    let path = target
        .split_once(['?', '#'])
        .map_or(target, |(path, _)| path);
    let Some(rest) = path.strip_prefix('/') else {
        return Err("forwarded uri is not an absolute path");
    };
    check_raw(path)?;
    let segments: Vec<&str> = rest.split('/').collect();
    let mut out: Vec<Cow<'_, str>> = Vec::with_capacity(segments.len());
    let mut trailing_slash = false;
    for (i, raw) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if raw.is_empty() {
            if last {
                trailing_slash = true;
                continue;
            }
            return Err("empty segment in forwarded path");
        }
        let segment = decode(raw)?;
        match &*segment {
            "." => trailing_slash = last,
            ".." => {
                out.pop();
                trailing_slash = last;
            }
            _ => {
                out.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut normalized = String::with_capacity(path.len());
    for segment in &out {
        normalized.push('/');
        normalized.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        normalized.push('/');
    }
    Ok(normalized)
}

/// Checks the raw (still encoded) path: visible ASCII only, no backslash or `;`, and every `%`
/// followed by two hex digits.
fn check_raw(path: &str) -> Result<(), &'static str> {
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' => return Err("backslash in forwarded path"),
            b';' => return Err("semicolon in forwarded path"),
            b'%' => {
                let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return Err("malformed percent escape in forwarded path");
                }
            }
            0x21..=0x7e => {}
            _ => return Err("forbidden character in forwarded path"),
        }
    }
    Ok(())
}

/// Percent-decodes one segment and refuses what decoding could smuggle in.
fn decode(raw: &str) -> Result<Cow<'_, str>, &'static str> {
    let segment = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| "forwarded path is not utf-8")?;
    for c in segment.chars() {
        match c {
            '/' | '\\' => return Err("encoded slash or backslash in forwarded path"),
            ';' => return Err("semicolon in forwarded path"),
            c if c.is_control() => return Err("control character in forwarded path"),
            _ => {}
        }
    }
    Ok(segment)
}

/// Checks a path written in a rule (already decoded): absolute, no empty or dot segment, none
/// of the characters a forwarded path may not hold once decoded, no query or fragment.
pub(crate) fn check_rule_path(path: &str) -> Result<(), &'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("must start with `/`");
    };
    if path.contains(['\\', ';', '?', '#']) || path.chars().any(char::is_control) {
        return Err("must not contain `\\`, `;`, `?`, `#` or control characters");
    }
    let segments: Vec<&str> = rest.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if (segment.is_empty() && !last) || *segment == "." || *segment == ".." {
            return Err("must be normalised: no empty, `.` or `..` segment");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_removes_dot_segments() {
        for (raw, want) in [
            ("/", "/"),
            ("/api/items", "/api/items"),
            ("/api/items/", "/api/items/"),
            ("/api/items?x=/../admin", "/api/items"),
            ("/api/items#frag", "/api/items"),
            ("/api/%69tems", "/api/items"),
            ("/public/../admin", "/admin"),
            ("/public/%2e%2E/admin", "/admin"),
            ("/public/%2E/x", "/public/x"),
            ("/a/./b/.", "/a/b/"),
            ("/a/..", "/"),
            ("/../../admin", "/admin"),
            ("/caf%C3%A9", "/caf\u{e9}"),
            ("/a%20b", "/a b"),
            ("/100%25", "/100%"),
        ] {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn refuses_what_servers_read_differently() {
        for raw in [
            "",
            "api/items",
            "*",
            "http://host/api",
            "/api//items",
            "//admin",
            "/api/%2fadmin",
            "/api/%2Fadmin",
            "/api/%5cadmin",
            "/api\\admin",
            "/api;jsessionid=1",
            "/api/%3b",
            "/api/%00",
            "/api/%0d%0aX-Auth-Subject:%20root",
            "/api/%7f",
            "/api/%",
            "/api/%4",
            "/api/%zz",
            "/api/%ff",
            "/api/a b",
            "/api/\u{e9}",
            "/api/\t",
        ] {
            assert!(normalize(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn rule_paths_must_be_normalised() {
        for ok in ["/", "/api", "/api/", "/a b/c", "/100%"] {
            assert_eq!(check_rule_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "api", "/a//b", "/a/./b", "/a/..", "/a;b", "/a?b", "/a\\b", "/a\0",
        ] {
            assert!(check_rule_path(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
