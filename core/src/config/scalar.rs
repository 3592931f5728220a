//! String fields that take any plain YAML scalar, as Go's YAML fills them: `replica: 1`,
//! `canary: true`, `replacement: 1`, `name: 429`, `X-Scope-OrgID: 1`, `username: 123456`,
//! where serde refuses a number or a boolean for a `String`. The fields upstream's
//! configurations are seen to hold such values in (label maps, relabeling, job and queue names,
//! headers, credentials) read through these functions with
//! `#[serde(deserialize_with)]`. Each reads its value with `deserialize_any`, so that it works
//! inside a flattened section too, whose values serde holds before it reads them.
//!
//! Go keeps the scalar's text. The configuration is parsed before it is typed, so a number is
//! written back from its value: integers alike, a float with its fraction (`1.0` stays `1.0`,
//! `2.50` is `2.5`, `1e3` is `1000.0`); an empty scalar (`~`) is "", as in Go. (In a
//! configuration file, a key whose value is null is taken as absent before these read it.)

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Visitor};

/// A string, or any plain scalar as text.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Text::deserialize(d).map(|t| t.0)
}

/// An optional string, or any plain scalar as text.
pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<Text>::deserialize(d).map(|t| t.map(|t| t.0))
}

/// A map of strings (label names to values, user names to hashes), each key and value any
/// plain scalar as text.
pub fn map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    optional_map(d).map(Option::unwrap_or_default)
}

/// An optional [`map`] (null or left out: None).
pub fn optional_map<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    let map = Option::<BTreeMap<Text, Text>>::deserialize(d)?;
    Ok(map.map(|m| m.into_iter().map(|(k, v)| (k.0, v.0)).collect()))
}

/// A value, or its default where the file gives null (`rules:` with nothing after it), as Go's
/// YAML leaves a field it reads null from at its zero value.
pub fn or_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// A plain scalar's text.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor).map(Text)
    }
}

struct TextVisitor;

impl Visitor<'_> for TextVisitor {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
        Ok(format!("{v:?}"))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }
}
