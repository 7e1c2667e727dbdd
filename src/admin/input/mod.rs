//! Admin request bodies: parsed by hand from JSON so every 400 names the exact field (`endpoints[2].method`).
//!
//! Parsing here is pure: nothing looks at the current state except through the arguments. Checks
//! that need the state (unique collection paths, existing collection ids, profile counts) are made
//! by the handlers in [`super`]; checks that need key parsing (secret length, RSA modulus) are made
//! by [`crate::core::registry::Snapshot::build`].
//!
//! - [`collection`]: collection bodies, endpoints, fixed responses.
//! - [`profile`]: `auth`, `policy`, `ip_allow`.

mod collection;
mod profile;

pub use collection::{assign_endpoint_ids, collection};
pub use profile::{auth, ip_allow, policy, MAX_PER_DAYS, MAX_PER_S, MAX_REQUESTS};

use serde_json::{Map, Value};

use super::ApiError;
use crate::core::rules::RuleError;

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest accepted refresh `grace_s`: one week.
pub const MAX_GRACE_S: u64 = 604_800;

/// Turns a rule's verdict into a 400 naming `field`: `"<field>: <what is wrong>"`.
fn rule<T>(field: &str, verdict: Result<T, RuleError>) -> Result<T, ApiError> {
    verdict.map_err(|e| ApiError::invalid(field, &e.0))
}

/// A JSON object being read, with the dotted path that names it in error messages.
pub struct Obj<'a> {
    /// `""` for the body itself, else e.g. `endpoints[0]` or `auth`.
    path: String,
    /// The members.
    map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    /// `value` as an object whose members are all among `allowed`.
    pub fn new(value: &'a Value, path: &str, allowed: &[&str]) -> Result<Obj<'a>, ApiError> {
        let Some(map) = value.as_object() else {
            let what = if path.is_empty() { "body" } else { path };
            return Err(ApiError::invalid(what, "must be a JSON object"));
        };
        let obj = Obj {
            path: path.to_owned(),
            map,
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::invalid(
                    &obj.field(key),
                    &format!("unknown field; expected one of {}", allowed.join(", ")),
                ));
            }
        }
        Ok(obj)
    }

    /// The full name of member `name`, for error messages.
    pub fn field(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// Member `name` as given, `null` included; `None` when absent.
    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name)
    }

    /// Member `name` unless absent or `null`.
    pub fn present(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A required string member.
    pub fn req_str(&self, name: &str) -> Result<&'a str, ApiError> {
        self.opt_str(name)?
            .ok_or_else(|| ApiError::invalid(&self.field(name), "is required"))
    }

    /// An optional string member (`null` is not a string).
    pub fn opt_str(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid(&self.field(name), "must be a string")),
        }
    }

    /// An optional boolean member.
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::invalid(
                &self.field(name),
                "must be true or false",
            )),
        }
    }

    /// An optional non-negative whole number member.
    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                ApiError::invalid(&self.field(name), "must be a non-negative whole number")
            }),
        }
    }

    /// An optional array member (`null` counts as absent).
    pub fn opt_array(&self, name: &str) -> Result<Option<&'a Vec<Value>>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(ApiError::invalid(&self.field(name), "must be an array")),
        }
    }
}

/// A display name: not blank, at most 200 characters, no control characters (names travel in
/// `X-Tokengate-*-Name` headers).
pub fn name(field: &str, text: &str) -> Result<String, ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if text.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid(
            field,
            &format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

/// Parses `collections`: an array of collection ids, each of which must satisfy `exists`.
/// Duplicates are dropped.
pub fn collection_ids(
    value: &Value,
    exists: impl Fn(&str) -> bool,
) -> Result<Vec<String>, ApiError> {
    let items = match value {
        Value::Array(items) => items,
        _ => {
            return Err(ApiError::invalid(
                "collections",
                "must be an array of collection ids",
            ))
        }
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("collections[{i}]");
        let Some(id) = item.as_str() else {
            return Err(ApiError::invalid(&field, "must be a collection id string"));
        };
        if !exists(id) {
            return Err(ApiError::invalid(&field, "no such collection"));
        }
        if !out.iter().any(|have| have == id) {
            out.push(id.to_owned());
        }
    }
    Ok(out)
}

/// Parses the optional refresh body `{"grace_s"?}`.
pub fn grace_s(body: Option<&Value>) -> Result<u64, ApiError> {
    let Some(body) = body else {
        return Ok(0);
    };
    let obj = Obj::new(body, "", &["grace_s"])?;
    match obj.opt_u64("grace_s")? {
        None => Ok(0),
        Some(n) if n <= MAX_GRACE_S => Ok(n),
        Some(_) => Err(ApiError::invalid(
            "grace_s",
            &format!("must be from 0 to {MAX_GRACE_S} seconds (one week)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(err: ApiError) -> String {
        err.message().to_owned()
    }

    #[test]
    fn policy_ip_allow_and_grace() {
        assert_eq!(policy(&json!(null)).unwrap(), None);
        assert_eq!(policy(&json!({})).unwrap(), None);
        let p = policy(&json!({"rate_limit":{"requests":10,"per_s":1}})).unwrap();
        assert_eq!(p.unwrap().rate_limit.unwrap().requests, 10);
        let err = policy(&json!({"rate_limit":{"requests":0,"per_s":1}})).unwrap_err();
        assert_eq!(
            message(err),
            "policy.rate_limit.requests: must be at least 1"
        );
        let err = policy(&json!({"rate_limit":{"requests":1}})).unwrap_err();
        assert_eq!(message(err), "policy.rate_limit.per_s: is required");
        let p = policy(
            &json!({"rate_limit":{"requests":10,"per_s":1,"scope":"cluster"},
                               "quota":{"requests":1000,"per_days":30}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            p.rate_limit.unwrap().scope,
            crate::core::model::RateLimitScope::Cluster
        );
        assert_eq!(p.quota.unwrap().per_days, 30);
        let err = policy(&json!({"rate_limit":{"requests":1,"per_s":1,"scope":"global"}}));
        assert_eq!(
            message(err.unwrap_err()),
            "policy.rate_limit.scope: must be \"node\" or \"cluster\""
        );
        let err = policy(&json!({"quota":{"requests":1,"per_days":367}})).unwrap_err();
        assert_eq!(message(err), "policy.quota.per_days: must be at most 366");
        let err = policy(&json!({"quota":{"requests":5}})).unwrap_err();
        assert_eq!(message(err), "policy.quota.per_days: is required");
        assert_eq!(
            ip_allow(&json!(["10.1.0.0/16", "::1", "10.1.2.3/16"])).unwrap(),
            vec!["10.1.0.0/16", "::1/128"]
        );
        let err = ip_allow(&json!(["10.0.0.0/8", "10.0.0.0/99"])).unwrap_err();
        assert!(message(err).starts_with("ip_allow[1]: "));
        assert_eq!(grace_s(None).unwrap(), 0);
        assert_eq!(grace_s(Some(&json!({"grace_s": 30}))).unwrap(), 30);
        assert!(grace_s(Some(&json!({"grace_s": 604_801}))).is_err());
        assert!(grace_s(Some(&json!({"grace": 1}))).is_err());
    }
}
