//! Fuzzes `core::credential::extract` over a header map built from the input (one `name:value`
//! per line; pairs `http` refuses are skipped), then feeds a Bearer token to `core::jwt::parse`.
//! Asserts: no panic; more than one `API-Token`/`Authorization` value gives
//! `MultipleCredentials`, none gives `MissingCredentials`; a returned credential is non-empty, at
//! most `MAX_CREDENTIAL_LEN` bytes and has no surrounding whitespace; an `API-Token` credential is
//! the trimmed header value; a Bearer credential is the tail of an `Authorization: Bearer` value;
//! a Basic credential decodes (standard base64) to `api-token:<credential>` (user case-insensitive).
#![no_main]

use std::borrow::Cow;

use base64::Engine;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tokengate::core::credential::{extract, Credential, API_TOKEN, MAX_CREDENTIAL_LEN};
use tokengate::core::reject::Reject;

fn trimmed(t: &[u8]) -> bool {
    t.trim_ascii().len() == t.len()
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(&line[colon + 1..]),
        ) else {
            continue;
        };
        headers.append(name, value);
    }

    let api: Vec<&HeaderValue> = headers.get_all(&API_TOKEN).iter().collect();
    let auth: Vec<&HeaderValue> = headers.get_all(AUTHORIZATION).iter().collect();
    let total = api.len() + auth.len();
    let verdict = extract(&headers);

    match total {
        0 => assert_eq!(verdict, Err(Reject::MissingCredentials)),
        1 => assert_ne!(verdict, Err(Reject::MultipleCredentials)),
        _ => assert_eq!(verdict, Err(Reject::MultipleCredentials)),
    }
    if total == 1 && !matches!(verdict, Ok(_) | Err(Reject::InvalidToken)) {
        panic!("unexpected verdict {verdict:?}");
    }

    let Ok(credential) = verdict else { return };
    match &credential {
        Credential::Bearer(t) => {
            assert_eq!(auth.len(), 1);
            assert!(!t.is_empty() && t.len() <= MAX_CREDENTIAL_LEN && trimmed(t));
            let value = auth[0].as_bytes().trim_ascii();
            assert!(value.len() > 7 && value[..6].eq_ignore_ascii_case(b"bearer") && value[6] == b' ');
            assert!(value.ends_with(t));
            // What the gate does next.
            let _ = tokengate::core::jwt::parse(t);
        }
        Credential::AuthToken(t) => {
            assert!(!t.is_empty() && t.len() <= MAX_CREDENTIAL_LEN && trimmed(t));
            if api.len() == 1 {
                assert!(matches!(t, Cow::Borrowed(_)));
                assert_eq!(&**t, api[0].as_bytes().trim_ascii());
            } else {
                let value = auth[0].as_bytes().trim_ascii();
                assert!(value[..5].eq_ignore_ascii_case(b"basic") && value[5] == b' ');
                let param = value[6..].trim_ascii_start();
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(param)
                    .expect("accepted Basic credential is not base64");
                assert!(decoded.len() >= 10 && decoded[..10].eq_ignore_ascii_case(b"api-token:"));
                assert_eq!(&**t, decoded[10..].trim_ascii());
            }
        }
    }
});
