//! A JSON value that borrows its strings from the text it was read from.
//!
//! Verification reads a dozen claims of a token and hands the whole set to handlers. Building a
//! `serde_json::Value` of the claims allocates for every member name and string, and cost more
//! than everything else the layer does besides the signature check. [`Json`] is read through
//! the same `serde_json` code path as `Value` (so it accepts exactly the same documents: number
//! ranges, escapes and surrogates, nesting depth), but keeps strings as slices of the decoded
//! payload and objects as member lists: a typical claims set costs one allocation per object or
//! array in it. [`Claims`](crate::Claims) builds the `Value` only when a handler reads it.
//!
//! Duplicate member names resolve to the last one, as they do in `serde_json::Map`, so the
//! checks and the claims handed to handlers always agree (RFC 7519 section 4 allows a parser
//! to take the lexically last duplicate).
//!
//! One exception keeps that agreement whatever features of `serde_json` a build enables:
//! `serde_json::Value` reads an object whose member name starts with `$serde_json::private::`
//! as a raw value or an arbitrary-precision number (features `raw_value` and
//! `arbitrary_precision`, which any crate in the build may turn on). [`Json`] refuses such
//! names, so a claims set that holds one is refused rather than read two different ways.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

/// A JSON value with borrowed strings.
#[derive(Debug, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// The members of a JSON object, in document order.
#[derive(Debug, PartialEq)]
pub(crate) struct Object<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> Object<'a> {
    /// `None` when `json` is not a JSON object, or not a document `serde_json::Value` reads.
    pub(crate) fn parse(json: &'a str) -> Option<Self> {
        match serde_json::from_str(json).ok()? {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The member `name` (the last one, if the name repeats).
    pub(crate) fn get(&self, name: &str) -> Option<&Json<'a>> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The value at a path of nested objects: `["realm_access", "roles"]`.
    pub(crate) fn path<S: AsRef<str>>(&self, segments: &[S]) -> Option<&Json<'a>> {
        let (first, rest) = segments.split_first()?;
        rest.iter().try_fold(self.get(first.as_ref())?, |v, seg| {
            v.as_object()?.get(seg.as_ref())
        })
    }
}

impl<'a> Json<'a> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_number(&self) -> Option<&Number> {
        match self {
            Self::Number(n) => Some(n),
            _ => None,
        }
    }

    #[cfg(test)]
    pub(crate) fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Self::Array(items) => Some(items),
            _ => None,
        }
    }

    pub(crate) fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Self::Object(o) => Some(o),
            _ => None,
        }
    }

    /// A string, or the strings of an array (other elements skipped); nothing for other
    /// values.
    pub(crate) fn strings(&self) -> impl Iterator<Item = &str> {
        let (one, many): (Option<&str>, &[Json<'a>]) = match self {
            Self::String(s) => (Some(s), &[]),
            Self::Array(items) => (None, items),
            _ => (None, &[]),
        };
        one.into_iter().chain(many.iter().filter_map(Json::as_str))
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

/// Mirrors `serde_json::Value`'s visitor, so both accept the same documents.
struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(v)))
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Json::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // No reservation: nothing is trusted yet, and a token of empty objects must not cost
        // an allocation per object.
        let mut members = Vec::new();
        while let Some(Name(name)) = map.next_key()? {
            if name.starts_with(SERDE_JSON_PRIVATE) {
                return Err(serde::de::Error::custom("reserved member name"));
            }
            members.push((name, map.next_value()?));
        }
        Ok(Json::Object(Object(members)))
    }
}

/// The prefix of the member names `serde_json::Value` gives a meaning of its own under some of
/// its features.
const SERDE_JSON_PRIVATE: &str = "$serde_json::private::";

/// A member name, borrowed unless it has escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Json::deserialize(d)? {
            Json::String(s) => Ok(Name(s)),
            _ => Err(serde::de::Error::custom("member name is not a string")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::Value;

    use super::*;

    fn obj(json: &str) -> Object<'_> {
        Object::parse(json).unwrap()
    }

    /// Both readers accept and refuse the same documents: the checks never pass a claims set
    /// that `Claims` could not then read.
    #[test]
    fn accepts_what_serde_json_value_accepts() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        let cases = [
            r#"{"a":1}"#,
            r#"{"exp":1e400}"#,
            r#"{"n":-0.0,"big":123456789012345678901234567890}"#,
            r#"{"s":"\ud800"}"#,
            r#"{"s":"\ud83d\ude00"}"#,
            r#"{"s":"\x"}"#,
            "{\"s\":\"tab\there\"}",
            r#"{"a":[1,2,]}"#,
            r#"{"a":1,}"#,
            r#"{"a":nul}"#,
            r#"{"a":1} x"#,
            " {} ",
            &deep,
            "[]",
            "1",
            "\"s\"",
            "",
        ];
        for json in cases {
            let value = serde_json::from_str::<Value>(json)
                .ok()
                .filter(Value::is_object);
            assert_eq!(Object::parse(json).is_some(), value.is_some(), "{json:.40}");
        }
    }

    /// Member names that `serde_json::Value` reads specially under its `raw_value` or
    /// `arbitrary_precision` features are refused, escaped or not, at any depth.
    #[test]
    fn serde_json_private_names_are_refused() {
        for json in [
            r#"{"profile":{"$serde_json::private::RawValue":""acme""}}"#,
            r#"{"$serde_json::private::Number":"1"}"#,
            r#"{"a":[{"$serde_json::private::RawValue":0}]}"#,
        ] {
            assert!(Object::parse(json).is_none(), "{json}");
        }
        assert!(
            Object::parse(r#"{"$serde_json::public":1,"x$serde_json::private::":2}"#).is_some()
        );
    }

    #[test]
    fn members_and_the_last_duplicate_win() {
        let o = obj(r#"{ "a" : 1 , "b":"x", "a": [2, {"c": "d"}] }"#);
        assert_eq!(o.get("a").unwrap().as_array().unwrap().len(), 2);
        assert_eq!(o.get("b").unwrap().as_str(), Some("x"));
        assert!(o.get("c").is_none());
        // The same answer as serde_json's map.
        let map: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{ "a" : 1 , "a": 2 }"#).unwrap();
        assert_eq!(map["a"], 2);
        let o = obj(r#"{ "a" : 1 , "a": 2 }"#);
        assert_eq!(o.get("a").unwrap().as_number().unwrap().as_u64(), Some(2));
    }

    #[test]
    fn escaped_names_match_their_value() {
        let o = obj(r#"{"r\u006fles":["x"]}"#);
        assert_eq!(o.get("roles").unwrap().strings().collect::<Vec<_>>(), ["x"]);
    }

    #[test]
    fn paths() {
        let o = obj(r#"{"realm_access":{"roles":["a","b"]},"flat":1,"k.dot":"v"}"#);
        let roles = o.path(&["realm_access", "roles"]).unwrap();
        assert_eq!(roles.strings().collect::<Vec<_>>(), ["a", "b"]);
        assert!(o.path(&["flat", "x"]).is_none());
        assert!(o.path(&["realm_access", "none"]).is_none());
        assert!(o.path::<&str>(&[]).is_none());
        assert_eq!(o.path(&["k.dot"]).unwrap().as_str(), Some("v"));
    }

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let o = obj(r#"{"plain":"abc","esc":"a\"b\\c\u00e9","num":12,"neg":-1.5,"t":true}"#);
        assert!(matches!(
            o.get("plain").unwrap(),
            Json::String(Cow::Borrowed("abc"))
        ));
        assert_eq!(o.get("esc").unwrap().as_str(), Some("a\"b\\c\u{e9}"));
        assert!(o.get("num").unwrap().as_str().is_none());
        assert_eq!(
            o.get("num").unwrap().as_number().unwrap().as_u64(),
            Some(12)
        );
        assert_eq!(
            o.get("neg").unwrap().as_number().unwrap().as_f64(),
            Some(-1.5)
        );
        assert!(o.get("plain").unwrap().as_number().is_none());
        assert_eq!(o.get("t").unwrap(), &Json::Bool(true));
    }

    #[test]
    fn string_lists() {
        let o = obj(r#"{"a":["x",1,"y",null,["z"]],"s":"one","n":3}"#);
        assert_eq!(o.get("a").unwrap().as_array().unwrap().len(), 5);
        let strings = |name| o.get(name).unwrap().strings().collect::<Vec<_>>();
        assert_eq!(strings("a"), ["x", "y"]);
        assert_eq!(strings("s"), ["one"]);
        assert!(strings("n").is_empty());
    }
}
