//! The JOSE header and the claims set: JSON objects, each member name once.
//!
//! serde_json, and jsonwebtoken through it, keeps the last of two members with the same name,
//! and a struct derived with serde reads a JSON array positionally. A header or claims set that
//! two parsers could read two ways is refused instead: it must be a JSON object, and no member
//! name may repeat at its top level (RFC 7515 section 5.2 and RFC 7519 section 4 let a
//! recipient refuse duplicates; RFC 8725 section 2.8 asks for a strict reading). Everything
//! below the top level is read as `serde_json::Value` reads it, and the same map serves the
//! checks and the [`Claims`](crate::Claims) handed to handlers, so they cannot disagree.

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON object read by [`object`].
pub(crate) type Object = Map<String, Value>;

/// `json` as a JSON object without duplicate member names; `None` for anything else
/// (another JSON value, invalid JSON, trailing data, a repeated name).
pub(crate) fn object(json: &[u8]) -> Option<Object> {
    serde_json::from_slice::<StrictObject>(json)
        .ok()
        .map(|o| o.0)
}

/// The value at a path of nested objects: `["realm_access", "roles"]`.
pub(crate) fn path<'a, S: AsRef<str>>(object: &'a Object, segments: &[S]) -> Option<&'a Value> {
    let (first, rest) = segments.split_first()?;
    rest.iter().try_fold(object.get(first.as_ref())?, |v, seg| {
        v.as_object()?.get(seg.as_ref())
    })
}

/// A string, or the strings of an array (other elements skipped); nothing for other values.
pub(crate) fn strings(value: &Value) -> impl Iterator<Item = &str> {
    let (one, many): (Option<&str>, &[Value]) = match value {
        Value::String(s) => (Some(s), &[]),
        Value::Array(items) => (None, items),
        _ => (None, &[]),
    };
    one.into_iter().chain(many.iter().filter_map(Value::as_str))
}

struct StrictObject(Object);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `deserialize_map`: serde_json refuses anything but an object here.
        d.deserialize_map(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object without duplicate member names")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Object::new();
        while let Some(name) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            if members.contains_key(&name) {
                return Err(A::Error::custom("duplicate member name"));
            }
            members.insert(name, value);
        }
        Ok(StrictObject(members))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn objects_only() {
        for json in [
            "[]",
            r#"["RS256","k1"]"#,
            "1",
            "\"s\"",
            "null",
            "",
            "{",
            r#"{"a":1} x"#,
        ] {
            assert!(object(json.as_bytes()).is_none(), "{json}");
        }
        let o = object(br#" { "a" : 1 , "b": [2, {"c": "d"}] } "#).unwrap();
        assert_eq!(Value::Object(o), json!({"a": 1, "b": [2, {"c": "d"}]}));
    }

    /// A repeated member name is refused, also when one spelling uses an escape; below the top
    /// level, values read as `serde_json::Value` reads them.
    #[test]
    fn duplicate_names_are_refused() {
        for json in [
            r#"{"sub":"alice","sub":"admin"}"#,
            r#"{"sub":"alice","s\u0075b":"admin"}"#,
            r#"{"a":1,"b":2,"a":1}"#,
        ] {
            assert!(object(json.as_bytes()).is_none(), "{json}");
        }
        let o = object(br#"{"a":{"x":1,"x":2}}"#).unwrap();
        assert_eq!(o["a"]["x"], 2);
    }

    #[test]
    fn paths_and_strings() {
        let o = object(
            br#"{"realm_access":{"roles":["a","b"]},"flat":1,"k.dot":"v","l":["x",1,"y",["z"]]}"#,
        )
        .unwrap();
        let roles = path(&o, &["realm_access", "roles"]).unwrap();
        assert_eq!(strings(roles).collect::<Vec<_>>(), ["a", "b"]);
        assert!(path(&o, &["flat", "x"]).is_none());
        assert!(path(&o, &["realm_access", "none"]).is_none());
        assert!(path::<&str>(&o, &[]).is_none());
        assert_eq!(path(&o, &["k.dot"]).unwrap().as_str(), Some("v"));
        assert_eq!(strings(&o["l"]).collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(strings(&o["k.dot"]).collect::<Vec<_>>(), ["v"]);
        assert!(strings(&o["flat"]).next().is_none());
    }
}
