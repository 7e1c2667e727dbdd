//! Credential extraction: borrows the token bytes straight out of the request's header map.

use std::borrow::Cow;

use base64::Engine;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName};

use crate::core::reject::Reject;

/// The `API-Token` header name, lowercase as a parsed [`HeaderName`] holds it.
const API_TOKEN_NAME: &str = "api-token";

/// The `API-Token` header name.
pub static API_TOKEN: HeaderName = HeaderName::from_static(API_TOKEN_NAME);

/// Longest credential value looked at (a whole 15 KiB JWT fits); anything longer is refused
/// before any work.
pub const MAX_CREDENTIAL_LEN: usize = 15 * 1024;

/// A credential as found in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential<'a> {
    /// A raw auth token (`API-Token`, or Basic with user `api-token`).
    AuthToken(Cow<'a, [u8]>),
    /// A JWT from `Authorization: Bearer`.
    Bearer(&'a [u8]),
}

/// Finds the one credential of a request.
pub fn extract(headers: &HeaderMap) -> Result<Credential<'_>, Reject> {
    // One pass over the headers, comparing names: cheaper than two hashed lookups for the few
    // headers a request carries (a standard name compares as an enum tag).
    let mut api_token = None;
    let mut authorization = None;
    let mut count = 0usize;
    for (name, value) in headers {
        if name == AUTHORIZATION {
            authorization.get_or_insert(value);
            count += 1;
        } else if name.as_str() == API_TOKEN_NAME {
            // The constant, not `== API_TOKEN`: a fixed-length compare the compiler inlines,
            // where two custom names compare through a `memcmp` call.
            api_token.get_or_insert(value);
            count += 1;
        }
    }
    if count > 1 {
        return Err(Reject::MultipleCredentials);
    }
    if let Some(value) = api_token {
        return auth_token(value.as_bytes()).map(|t| Credential::AuthToken(Cow::Borrowed(t)));
    }
    match authorization {
        Some(value) => parse_authorization(value.as_bytes()),
        None => Err(Reject::MissingCredentials),
    }
}

/// An `Authorization` value's scheme and its non-empty parameter (RFC 9110 §11.4), both
/// trimmed; `None` without a space after the scheme or without a parameter.
fn scheme_and_param(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let value = value.trim_ascii();
    let split = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(split);
    let param = rest.trim_ascii_start();
    (!param.is_empty()).then_some((scheme, param))
}

fn auth_token(value: &[u8]) -> Result<&[u8], Reject> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > MAX_CREDENTIAL_LEN {
        return Err(Reject::InvalidToken);
    }
    Ok(value)
}

fn parse_authorization(value: &[u8]) -> Result<Credential<'_>, Reject> {
    let (scheme, param) = scheme_and_param(value).ok_or(Reject::InvalidToken)?;
    if param.len() > MAX_CREDENTIAL_LEN {
        return Err(Reject::InvalidToken);
    }
    if scheme.eq_ignore_ascii_case(b"bearer") {
        Ok(Credential::Bearer(param))
    } else if scheme.eq_ignore_ascii_case(b"basic") {
        basic_auth_token(param).map(|t| Credential::AuthToken(Cow::Owned(t)))
    } else {
        Err(Reject::InvalidToken)
    }
}

/// `base64("api-token:<auth token>")` → the auth token.
fn basic_auth_token(encoded: &[u8]) -> Result<Vec<u8>, Reject> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| Reject::InvalidToken)?;
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or(Reject::InvalidToken)?;
    if !decoded[..colon].eq_ignore_ascii_case(b"api-token") {
        return Err(Reject::InvalidToken);
    }
    let token = auth_token(&decoded[colon + 1..])?;
    Ok(token.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn api_token_is_borrowed_and_case_insensitive() {
        let map = headers(&[("API-Token", "abc")]);
        match extract(&map).unwrap() {
            Credential::AuthToken(Cow::Borrowed(t)) => assert_eq!(t, b"abc"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            extract(&headers(&[("api-token", "x")])),
            Ok(Credential::AuthToken(_))
        ));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let map = headers(&[("authorization", &format!("{scheme} a.b.c"))]);
            assert_eq!(extract(&map), Ok(Credential::Bearer(b"a.b.c")));
        }
    }

    #[test]
    fn basic_with_api_token_user() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("api-token:tok123");
        let map = headers(&[("authorization", &format!("Basic {encoded}"))]);
        assert_eq!(
            extract(&map),
            Ok(Credential::AuthToken(Cow::Owned(b"tok123".to_vec())))
        );
        let wrong_user = base64::engine::general_purpose::STANDARD.encode("admin:tok123");
        let map = headers(&[("authorization", &format!("Basic {wrong_user}"))]);
        assert_eq!(extract(&map), Err(Reject::InvalidToken));
        let map = headers(&[("authorization", "Basic !!!")]);
        assert_eq!(extract(&map), Err(Reject::InvalidToken));
    }

    #[test]
    fn none_one_or_many() {
        assert_eq!(extract(&HeaderMap::new()), Err(Reject::MissingCredentials));
        let two = headers(&[("api-token", "a"), ("api-token", "b")]);
        assert_eq!(extract(&two), Err(Reject::MultipleCredentials));
        let mixed = headers(&[("api-token", "a"), ("authorization", "Bearer x")]);
        assert_eq!(extract(&mixed), Err(Reject::MultipleCredentials));
        let two_auth = headers(&[("authorization", "Bearer x"), ("authorization", "Bearer y")]);
        assert_eq!(extract(&two_auth), Err(Reject::MultipleCredentials));
    }

    #[test]
    fn malformed_values_are_invalid() {
        for value in ["Bearer", "Bearer ", "Digest abc", "token"] {
            assert_eq!(
                extract(&headers(&[("authorization", value)])),
                Err(Reject::InvalidToken),
                "{value}"
            );
        }
        assert_eq!(
            extract(&headers(&[("api-token", "")])),
            Err(Reject::InvalidToken)
        );
    }
}
