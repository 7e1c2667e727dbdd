//! Helpers shared by the fuzz targets (included with `#[path]`, not a target itself).
#![allow(dead_code)]

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// A JSON object read member by member, duplicates kept (serde_json's `Map` would merge them).
/// Members named in `known` are read as `Value`s; the others are only skipped (`Value::Null`), as
/// a reader that ignores unknown members does (JSON puts no range on numbers, `Value` does).
pub struct Members(pub Vec<(String, serde_json::Value)>);

impl Members {
    /// Reads one JSON object (and nothing after it but whitespace).
    pub fn read(json: &[u8], known: &[&str]) -> Option<Members> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let members = MembersSeed(known).deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(members)
    }
}

struct MembersSeed<'k>(&'k [&'k str]);

impl<'de> DeserializeSeed<'de> for MembersSeed<'_> {
    type Value = Members;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Members, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MembersSeed<'_> {
    type Value = Members;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
        let mut out = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = if self.0.contains(&k.as_str()) {
                map.next_value::<serde_json::Value>()?
            } else {
                map.next_value::<IgnoredAny>()?;
                serde_json::Value::Null
            };
            out.push((k, v));
        }
        Ok(Members(out))
    }
}

impl Members {
    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn has_duplicates(&self) -> bool {
        self.0
            .iter()
            .enumerate()
            .any(|(i, (k, _))| self.0[..i].iter().any(|(j, _)| j == k))
    }
}

/// Splits `data` at every `sep` byte.
pub fn split(data: &[u8], sep: u8) -> Vec<&[u8]> {
    data.split(|&b| b == sep).collect()
}
