//! The JOSE header and the JWT claims set read strictly (RFC 7515 §4, RFC 7519 §4, RFC 8725):
//! hand-written serde visitors that read only the members tokengate uses, refuse duplicate keys
//! (escaped spellings included) and `crit`, and take `exp`/`nbf`/`iat` only as JSON numbers.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::Claims;
use crate::core::model::JwtAlg;
use crate::core::reject::Reject;
use crate::core::token::{token_digest, TokenDigest};

/// Most JSON members accepted in the header or the payload.
const MAX_MEMBERS: usize = 64;

pub(super) struct Header {
    pub(super) alg: JwtAlg,
    pub(super) kid_digest: Option<TokenDigest>,
}

pub(super) fn parse_header(json: &[u8]) -> Result<Header, Reject> {
    let fields: HeaderFields = deserialize_object(json)?;
    if fields.crit {
        return Err(Reject::InvalidToken);
    }
    let alg = match fields.alg.as_deref() {
        Some("HS256") => JwtAlg::HS256,
        Some("RS256") => JwtAlg::RS256,
        _ => return Err(Reject::InvalidToken),
    };
    let kid_digest = fields
        .kid
        .filter(|k| !k.is_empty())
        .map(|k| token_digest(k.as_bytes()));
    Ok(Header { alg, kid_digest })
}

pub(super) struct Payload {
    pub(super) key_digest: Option<TokenDigest>,
    pub(super) claims: Claims,
}

pub(super) fn parse_payload(json: &[u8]) -> Result<Payload, Reject> {
    let fields: PayloadFields = deserialize_object(json)?;
    Ok(Payload {
        key_digest: fields.key_digest,
        claims: fields.claims,
    })
}

/// Reads one JSON object. The whole text must be UTF-8 (RFC 8259 §8.1): serde skips members it
/// does not read without checking their strings, so the check is made here, once, first
/// (found by the `jwt` fuzz target: `{"x":"\x9f"}` was accepted).
fn deserialize_object<T: ObjectFields>(json: &[u8]) -> Result<T, Reject> {
    let json = std::str::from_utf8(json).map_err(|_| Reject::InvalidToken)?;
    let mut de = serde_json::Deserializer::from_str(json);
    let value = de
        .deserialize_map(ObjectVisitor::<T>(std::marker::PhantomData))
        .map_err(|_| Reject::InvalidToken)?;
    de.end().map_err(|_| Reject::InvalidToken)?;
    Ok(value)
}

/// Members of a JSON object read one at a time; duplicate keys are refused by [`ObjectVisitor`].
trait ObjectFields: Default {
    /// Reads the value of member `key`.
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
    /// Called once all members were read.
    fn finish(&mut self) {}
}

struct ObjectVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: ObjectFields> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut fields = T::default();
        let mut seen: Vec<Cow<'de, str>> = Vec::with_capacity(8);
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if seen.len() >= MAX_MEMBERS || seen.contains(&key) {
                return Err(de::Error::custom("duplicate or too many members"));
            }
            fields.read(&key, &mut map)?;
            seen.push(key);
        }
        fields.finish();
        Ok(fields)
    }
}

#[derive(Default)]
pub(super) struct HeaderFields {
    pub(super) alg: Option<String>,
    kid: Option<String>,
    crit: bool,
}

impl ObjectFields for HeaderFields {
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "alg" => self.alg = Some(map.next_value::<String>()?),
            "kid" => self.kid = map.next_value::<MaybeString>()?.0.map(Cow::into_owned),
            "crit" => {
                map.next_value::<IgnoredAny>()?;
                self.crit = true;
            }
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
pub(super) struct PayloadFields {
    /// Candidates for the key claim, in lookup order.
    key_claims: [Option<TokenDigest>; 3],
    pub(super) key_digest: Option<TokenDigest>,
    pub(super) claims: Claims,
}

impl ObjectFields for PayloadFields {
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        self.claims.present.insert(key);
        let slot = match key {
            "https://www.workato.com/sub" => Some(0),
            "workato_sub" => Some(1),
            "sub" => Some(2),
            _ => None,
        };
        if let Some(slot) = slot {
            let value = map.next_value::<MaybeString>()?.0;
            self.key_claims[slot] = value
                .filter(|v| !v.is_empty())
                .map(|v| token_digest(v.as_bytes()));
            return Ok(());
        }
        match key {
            "exp" => self.claims.exp = Some(map.next_value::<NumericDate>()?.0),
            "nbf" => self.claims.nbf = Some(map.next_value::<NumericDate>()?.0),
            "iat" => self.claims.iat = Some(map.next_value::<NumericDate>()?.0),
            "iss" => self.claims.iss = map.next_value::<MaybeString>()?.0.map(|s| s.into()),
            "name" => self.claims.name = map.next_value::<MaybeString>()?.0.map(|s| s.into()),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn finish(&mut self) {
        self.key_digest = self.key_claims.iter().flatten().next().copied();
    }
}

/// An object key, borrowed from the input when it holds no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(CowStrVisitor).map(Key)
    }
}

struct CowStrVisitor;

impl<'de> Visitor<'de> for CowStrVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// A value that is kept when it is a string and skipped otherwise.
struct MaybeString<'de>(Option<Cow<'de, str>>);

impl<'de> de::Deserialize<'de> for MaybeString<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MaybeStringVisitor)
    }
}

struct MaybeStringVisitor;

impl<'de> Visitor<'de> for MaybeStringVisitor {
    type Value = MaybeString<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(MaybeString(Some(Cow::Borrowed(v))))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(MaybeString(Some(Cow::Owned(v.to_owned()))))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(MaybeString(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(MaybeString(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(MaybeString(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(MaybeString(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(MaybeString(None))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(MaybeString(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(MaybeString(None))
    }
}

/// A NumericDate: a JSON number only (a string is refused), as whole seconds.
struct NumericDate(i64);

impl<'de> de::Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NumericDateVisitor)
    }
}

struct NumericDateVisitor;

impl Visitor<'_> for NumericDateVisitor {
    type Value = NumericDate;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON number")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(NumericDate(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(NumericDate(i64::try_from(v).unwrap_or(i64::MAX)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // `as` saturates; fractional seconds round down.
        Ok(NumericDate(v.floor() as i64))
    }
}
