//! Fuzzes the admin API's body readers on any JSON value: `admin::input::{collection,
//! assign_endpoint_ids, auth, policy, ip_allow, grace_s}` (on the body and on its `auth`,
//! `policy`, `ip_allow` members), then `registry::compile_auth` and `Snapshot::build`; and the
//! shared rules `core::rules::{endpoint_path, upstream, method, collection_path, fixed_status,
//! fixed_header}` on every string and number in it (or on the input's lines when it is not JSON).
//! Asserts: no panic; an accepted collection compiles into a snapshot, every endpoint of it is
//! reached by a concrete request path that `normalize_path` leaves unchanged, and the state
//! holding it survives the store's JSON round trip (serialize, parse as a `Value`, read as
//! `State`) unchanged; an accepted auth obeys its documented limits (secret XOR public key, no
//! private key, leeway <= 3600, …) and survives a serde round trip; an accepted policy has a
//! limit, numbers within their bounds (quota days 1–366) and survives a serde round trip;
//! accepted `ip_allow` entries are canonical and unique; `grace_s` <= one week;
//! each rule's Ok agrees with an independent check of what it promises (an accepted upstream
//! always yields a valid upstream URI, an accepted endpoint path compiles and routes).
#![no_main]

use http::{Method, Uri};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokengate::admin::input::{
    assign_endpoint_ids, auth, collection, grace_s, ip_allow, policy, MAX_GRACE_S, MAX_REQUESTS,
};
use tokengate::core::cidr::Cidr;
use tokengate::core::hygiene::normalize_path;
use tokengate::core::jwt::ClaimSet;
use tokengate::core::keys::looks_like_private_key;
use tokengate::core::model::{AuthConfig, Collection, Endpoint, FixedResponse, JwtAlg, JwtConfig, State};
use tokengate::core::registry::{compile_auth, Snapshot};
use tokengate::core::route::CompiledCollection;
use tokengate::core::rules;

/// FINDING-3 (README.md): `regressions/admin_input/state-too-deep-to-reload.json` fails when `true`.
const STATE_DEPTH_IS_FINDING: bool = true;

/// A concrete request path for an endpoint path: every `:param` becomes `p`.
fn instance(path: &str) -> String {
    if path == "/" {
        return "/".into();
    }
    path.split('/')
        .map(|s| if s.starts_with(':') { "p" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

fn check_collection(v: &Value, allow_id: bool) {
    let Ok((id, input)) = collection(v, allow_id) else { return };
    assert!(allow_id || id.is_none());
    let existing = Collection {
        id: "c1".into(),
        name: "old".into(),
        path: input.path.clone(),
        endpoints: input
            .endpoints
            .iter()
            .filter_map(|(given, e)| given.clone().map(|id| Endpoint { id, ..e.clone() }))
            .collect(),
    };
    let mut next = 0;
    let Ok(endpoints) = assign_endpoint_ids(input.endpoints, Some(&existing), || {
        next += 1;
        Ok(format!("new{next}"))
    }) else {
        return;
    };
    let state = State {
        collections: vec![Collection {
            id: "c1".into(),
            name: input.name,
            path: input.path.clone(),
            endpoints,
        }],
        ..State::default()
    };
    let snapshot = Snapshot::build(&state)
        .unwrap_or_else(|e| panic!("an accepted collection does not compile: {e}"));
    for endpoint in &state.collections[0].endpoints {
        let request = format!("/{}{}", input.path, instance(&endpoint.path));
        assert!(
            matches!(normalize_path(&request), Ok(std::borrow::Cow::Borrowed(_))),
            "{request:?} changes under normalization"
        );
        let method = Method::from_bytes(endpoint.method.as_bytes()).unwrap();
        let (_, found, _) = snapshot.route(&method, &request).expect("collection not found");
        let found = found.unwrap_or_else(|| panic!("{} {request:?} reaches no endpoint", endpoint.method));
        assert_eq!(found.method, method);
    }
    // The store writes the state as JSON and reads it back through a `Value`.
    let bytes = serde_json::to_vec(&state).expect("state does not serialize");
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        // FINDING-3 (README.md): a fixed-response body nested 122-123 deep is accepted (the body
        // is read with serde_json's 128-level limit), but the saved state nests it 2 levels
        // deeper, so the store cannot read its own file back and `serve` refuses to start.
        Err(e) if !STATE_DEPTH_IS_FINDING && e.to_string().starts_with("recursion limit") => return,
        Err(e) => panic!("the stored state is not readable JSON: {e}"),
    };
    let back: State = serde_json::from_value(value)
        .unwrap_or_else(|e| panic!("the stored state does not read back: {e}"));
    assert!(back == state, "the state changed in the store round trip");
}

fn check_auth(v: &Value, current: Option<&AuthConfig>) {
    let Ok(config) = auth(v, current) else { return };
    match &config {
        AuthConfig::Token => assert_eq!(v, &serde_json::json!({"type": "token"})),
        AuthConfig::Jwt(c) => {
            match c.alg {
                JwtAlg::HS256 => {
                    let secret = c.secret.as_deref().expect("HS256 without secret");
                    assert!(!secret.is_empty() && secret.len() <= 4096 && c.public_key.is_none());
                }
                JwtAlg::RS256 => {
                    let key = c.public_key.as_deref().expect("RS256 without key");
                    assert!(c.secret.is_none() && !c.secret_is_base64 && !key.trim().is_empty());
                    if v.get("public_key").is_some() {
                        assert!(!looks_like_private_key(key), "a private key was accepted");
                    }
                }
            }
            assert!(c.leeway_s.is_none_or(|l| l <= 3600));
            assert!(c.max_lifetime_s.is_none_or(|m| m >= 1));
            for (i, claim) in c.required_claims.iter().enumerate() {
                assert!(ClaimSet::bit(claim).is_some());
                assert!(!c.required_claims[..i].contains(claim));
            }
            assert!(c.allowed_issuers.iter().all(|s| !s.is_empty() && s.len() <= 1024));
        }
    }
    let _ = compile_auth(&config);
    let json = serde_json::to_value(&config).unwrap();
    let back: AuthConfig = serde_json::from_value(json).expect("auth does not read back");
    assert_eq!(back, config);
}

fn check_profile_parts(v: &Value) {
    let current_hs = AuthConfig::Jwt(JwtConfig {
        alg: JwtAlg::HS256,
        secret: Some("0123456789abcdef0123456789abcdef".into()),
        secret_is_base64: false,
        public_key: None,
        required_claims: vec![],
        max_lifetime_s: None,
        allowed_issuers: vec![],
        leeway_s: None,
    });
    let current_rs = AuthConfig::Jwt(JwtConfig {
        alg: JwtAlg::RS256,
        secret: None,
        public_key: Some("ssh-rsa AAAA".into()),
        ..match &current_hs {
            AuthConfig::Jwt(c) => c.clone(),
            AuthConfig::Token => unreachable!(),
        }
    });
    for current in [None, Some(&current_hs), Some(&current_rs)] {
        check_auth(v, current);
    }
    if let Ok(Some(p)) = policy(v) {
        assert!(p.rate_limit.is_some() || p.quota.is_some(), "empty policy accepted");
        if let Some(limit) = p.rate_limit {
            assert!((1..=MAX_REQUESTS).contains(&limit.requests) && limit.per_s >= 1);
        }
        if let Some(quota) = p.quota {
            assert!((1..=MAX_REQUESTS).contains(&quota.requests));
            assert!((1..=366).contains(&quota.per_days));
        }
        let again: tokengate::core::model::Policy =
            serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(again, p, "policy does not survive a serde round trip");
    }
    if let Ok(list) = ip_allow(v) {
        for (i, cidr) in list.iter().enumerate() {
            let again = Cidr::parse(cidr).unwrap_or_else(|e| panic!("{cidr:?}: {e}"));
            assert_eq!(&again.to_string(), cidr, "ip_allow entry is not canonical");
            assert!(!list[..i].contains(cidr), "duplicate ip_allow entry");
        }
    }
    if let Ok(n) = grace_s(Some(v)) {
        assert!(n <= MAX_GRACE_S);
    }
}

fn check_string(s: &str) {
    if rules::collection_path(s).is_ok() {
        assert!(!s.is_empty() && s.len() <= 64);
        assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    }
    if let Ok(m) = rules::method(s) {
        assert!(rules::METHODS.contains(&m.as_str()) && s.eq_ignore_ascii_case(m.as_str()));
    }
    if let Ok(path) = rules::endpoint_path(s) {
        assert!(s.starts_with('/') && s.len() <= rules::MAX_ENDPOINT_PATH);
        let blanked = if s == "/" {
            "/".to_owned()
        } else {
            s.split('/')
                .map(|seg| if seg.starts_with(':') { ":" } else { seg })
                .collect::<Vec<_>>()
                .join("/")
        };
        assert_eq!(path.shape, blanked);
        let endpoint = Endpoint {
            id: "e".into(),
            name: "e".into(),
            method: "GET".into(),
            path: s.into(),
            upstream: None,
            response: Some(FixedResponse { status: 204, headers: Default::default(), body: Value::Null }),
            active: true,
        };
        let compiled = CompiledCollection::build(0, "c", &[endpoint])
            .unwrap_or_else(|e| panic!("accepted endpoint path {s:?} does not compile: {e:?}"));
        assert!(compiled.find(&Method::GET, &instance(s)).is_some(), "{s:?} is unreachable");
    }
    if let Ok(up) = rules::upstream(s) {
        let https = s.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("https://"));
        assert!(s.len() <= rules::MAX_UPSTREAM && (https || s[..7].eq_ignore_ascii_case("http://")));
        assert_eq!(up.scheme.as_str(), if https { "https" } else { "http" }, "{s:?}");
        assert!(!s.contains('?') && !s.contains('#') && !up.authority.as_str().contains('@'));
        assert!(!up.base_path.ends_with('/'));
        for rest in ["/", "/orders/42", "/a%20b"] {
            let forwarded = tokengate::door::forward::upstream_path(&up, rest, Some("q=1"));
            Uri::builder()
                .scheme(up.scheme.clone())
                .authority(up.authority.clone())
                .path_and_query(forwarded.as_str())
                .build()
                .unwrap_or_else(|e| panic!("upstream {s:?} gives a bad URI {forwarded:?}: {e}"));
        }
    }
}

fn check_header(name: &str, value: &str) {
    if let Ok((n, v)) = rules::fixed_header(name, value) {
        assert!(!rules::RESERVED_HEADERS.contains(&n.as_str()));
        assert!(n.as_str().eq_ignore_ascii_case(name) && v.as_bytes() == value.as_bytes());
    }
}

/// Every string (keys included) and number in `v`, up to a bound.
fn walk<'a>(v: &'a Value, strings: &mut Vec<&'a str>, numbers: &mut Vec<u64>) {
    if strings.len() >= 64 {
        return;
    }
    match v {
        Value::String(s) => strings.push(s),
        Value::Number(n) => numbers.extend(n.as_u64()),
        Value::Array(items) => items.iter().for_each(|i| walk(i, strings, numbers)),
        Value::Object(map) => {
            for (k, i) in map {
                strings.push(k);
                walk(i, strings, numbers);
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        if let Ok(text) = std::str::from_utf8(data) {
            let lines: Vec<&str> = text.lines().collect();
            lines.iter().for_each(|l| check_string(l));
            for pair in lines.chunks(2) {
                if let [name, value] = pair {
                    check_header(name, value);
                }
            }
        }
        return;
    };
    check_collection(&v, false);
    check_collection(&v, true);
    check_profile_parts(&v);
    for member in ["auth", "policy", "ip_allow"] {
        if let Some(part) = v.get(member) {
            check_profile_parts(part);
        }
    }
    let (mut strings, mut numbers) = (Vec::new(), Vec::new());
    walk(&v, &mut strings, &mut numbers);
    strings.iter().for_each(|s| check_string(s));
    for pair in strings.chunks(2) {
        if let [name, value] = pair {
            check_header(name, value);
        }
    }
    for n in numbers {
        assert_eq!(rules::fixed_status(n).is_ok(), (200..=599).contains(&n), "status {n}");
    }
});
