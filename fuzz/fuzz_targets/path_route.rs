//! Fuzzes request hygiene and routing: `hygiene::normalize_path`, then `route::split_collection`
//! and `CompiledCollection::find` over a fixed collection (`/orders/:id`, `/orders/:id/lines`,
//! `/`, `/a.b/c`, …), then `door::forward::upstream_path`; plus `hygiene::client_address` with the
//! other input lines as `X-Forwarded-For` values and `hygiene::is_reserved_header` on them.
//! Asserts: no panic; a normalized path starts with `/`, is no longer than its input, has no `.`
//! or `..` segment, no `%2F`/`%5C` (any case), no `\`, no control byte, only canonical
//! upper-case escapes of reserved bytes, and normalizing it again gives the same string; a path
//! needing no change is borrowed unchanged; a path with a raw `\` or control byte is refused; a
//! valid request target stays a valid request target after normalization and as the upstream URI;
//! a matched endpoint's literal segments equal the path's and no `:param` value is empty, `.` or
//! `..` (for normalized and raw paths); `client_address` returns the peer or an address listed in
//! `X-Forwarded-For`, and the peer itself when the peer is not a trusted proxy;
//! `is_reserved_header` equals an independent reading of its rule; `door::verify::original` (the
//! first line as `X-Forwarded-Uri`, `X-Original-URI` and Envoy's path) never reads a URI with a
//! dot-segment and yields exactly `normalize_path` of the URI's path.
#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use tokengate::core::cidr::Cidr;
use tokengate::core::hygiene::{client_address, is_reserved_header, normalize_path};
use tokengate::core::model::{Endpoint, FixedResponse};
use tokengate::core::route::{split_collection, CompiledCollection, Upstream};

const ROUTES: [(&str, &str); 9] = [
    ("GET", "/orders/:id"),
    ("GET", "/orders/:id/lines"),
    ("POST", "/orders/:id/lines/:line"),
    ("GET", "/orders"),
    ("GET", "/"),
    ("GET", "/a.b/c"),
    ("PUT", "/~x/_y-z/:p"),
    ("DELETE", "/:a/:b"),
    ("OPTIONS", "/..a/.b./:c"),
];

struct Fixture {
    collection: CompiledCollection,
    upstream: Upstream,
    trusted: Vec<Cidr>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let endpoints: Vec<Endpoint> = ROUTES
            .iter()
            .map(|(method, path)| Endpoint {
                id: format!("{method} {path}"),
                name: "e".into(),
                method: (*method).into(),
                path: (*path).into(),
                upstream: None,
                response: Some(FixedResponse {
                    status: 200,
                    headers: Default::default(),
                    body: serde_json::json!({"ok": true}),
                }),
                active: true,
            })
            .collect();
        Fixture {
            collection: CompiledCollection::build(0, "c", &endpoints).expect("fixture compiles"),
            upstream: tokengate::core::rules::upstream("http://127.0.0.1:9000/base/").unwrap(),
            trusted: ["10.0.0.0/8", "::1/128", "192.168.0.0/16"]
                .iter()
                .map(|c| Cidr::parse(c).unwrap())
                .collect(),
        }
    })
}

fn hex_upper(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn check_normalized(input: &str, out: &str) {
    let b = out.as_bytes();
    assert!(b.first() == Some(&b'/'), "{out:?} does not start with /");
    assert!(out.len() <= input.len(), "{input:?} grew to {out:?}");
    assert!(!out.split('/').any(|s| s == "." || s == ".."), "dot segment in {out:?}");
    assert!(!b.iter().any(|&c| c == b'\\' || c < 0x20 || c == 0x7F), "bad byte in {out:?}");
    let upper = out.to_ascii_uppercase();
    assert!(!upper.contains("%2F") && !upper.contains("%5C"), "encoded separator in {out:?}");
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (Some(hi), Some(lo)) = (
                b.get(i + 1).copied().and_then(hex_upper),
                b.get(i + 2).copied().and_then(hex_upper),
            ) else {
                panic!("non-canonical escape in {out:?}");
            };
            let v = hi << 4 | lo;
            assert!(
                !(v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~')),
                "undecoded unreserved escape in {out:?}"
            );
            i += 3;
        } else {
            i += 1;
        }
    }
    match normalize_path(out) {
        Ok(again) => assert_eq!(again, out, "normalize is not idempotent on {input:?}"),
        Err(e) => panic!("normalized {input:?} to {out:?}, which is then refused: {e:?}"),
    }
}

fn check_route(method: &Method, rest: &str) {
    let Some(endpoint) = fixture().collection.find(method, rest) else { return };
    assert_eq!(endpoint.method, *method);
    let template = endpoint.id.split_once(' ').unwrap().1;
    let trimmed = match rest.strip_suffix('/') {
        Some(t) if !t.is_empty() => t,
        _ if rest.is_empty() => "/",
        _ => rest,
    };
    let body = trimmed.strip_prefix('/').unwrap_or(trimmed);
    let got: Vec<&str> = if body.is_empty() { vec![] } else { body.split('/').collect() };
    let want: Vec<&str> = template[1..].split('/').filter(|s| !s.is_empty()).collect();
    assert_eq!(got.len(), want.len(), "{rest:?} matched {template:?}");
    for (g, w) in got.iter().zip(&want) {
        if w.starts_with(':') {
            assert!(!g.is_empty() && *g != "." && *g != "..", "param {g:?} in {rest:?}");
        } else {
            assert_eq!(g, w, "{rest:?} matched {template:?}");
        }
    }
}

fn check_forwarded(values: &[&[u8]], selector: u8) {
    let f = fixture();
    let mut headers = HeaderMap::new();
    let mut listed: Vec<IpAddr> = Vec::new();
    for v in values {
        if let Ok(value) = HeaderValue::from_bytes(v) {
            if let Ok(text) = value.to_str() {
                for entry in text.split(',').map(str::trim) {
                    if let Ok(ip) = entry.parse::<IpAddr>() {
                        listed.push(ip);
                    } else if let Some(inside) = entry.strip_prefix('[').and_then(|r| r.split_once(']')) {
                        if let Ok(ip) = inside.0.parse::<IpAddr>() {
                            listed.push(ip);
                        }
                    } else if let Ok(sa) = entry.parse::<std::net::SocketAddr>() {
                        listed.push(sa.ip());
                    }
                }
            }
            headers.append("x-forwarded-for", value);
        }
        if let Ok(name) = std::str::from_utf8(v) {
            let model = name.len() >= 12
                && name.as_bytes()[..12]
                    .iter()
                    .map(|&c| if c == b'_' { b'-' } else { c.to_ascii_lowercase() })
                    .eq(b"x-tokengate-".iter().copied());
            assert_eq!(is_reserved_header(name), model, "{name:?}");
        }
    }
    let peers: [IpAddr; 4] = [
        "10.1.2.3".parse().unwrap(),
        "203.0.113.5".parse().unwrap(),
        "::ffff:10.0.0.1".parse().unwrap(),
        "::1".parse().unwrap(),
    ];
    let peer = peers[usize::from(selector) % peers.len()];
    let got = client_address(peer, &f.trusted, &headers);
    let trusted_peer = f.trusted.iter().any(|c| c.contains(peer));
    if !trusted_peer || listed.is_empty() {
        assert_eq!(got, peer);
    } else {
        assert!(got == peer || listed.contains(&got), "{got} is neither the peer nor listed");
    }
    assert_eq!(client_address(peer, &[], &headers), peer);
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let mut lines = body.split(|&b| b == b'\n');
    let raw = lines.next().unwrap_or(b"");
    let rest_lines: Vec<&[u8]> = lines.collect();
    let method = match selector % 8 {
        0 => Method::GET,
        1 => Method::POST,
        2 => Method::PUT,
        3 => Method::PATCH,
        4 => Method::DELETE,
        5 => Method::HEAD,
        6 => Method::OPTIONS,
        _ => Method::from_bytes(b"PROPFIND").unwrap(),
    };

    if let Ok(path) = std::str::from_utf8(raw) {
        match normalize_path(path) {
            Ok(out) => {
                check_normalized(path, &out);
                let needs_change = path.contains('%') || path.split('/').any(|s| s == "." || s == "..");
                if !needs_change {
                    assert!(matches!(out, std::borrow::Cow::Borrowed(p) if p == path));
                }
                if let Some((_, rest)) = split_collection(&out) {
                    check_route(&method, rest);
                }
            }
            Err(_) => {}
        }
        if path.starts_with('/') && path.bytes().any(|c| c == b'\\' || c < 0x20 || c == 0x7F) {
            assert!(normalize_path(path).is_err(), "{path:?} accepted");
        }
        if let Some((_, rest)) = split_collection(path) {
            check_route(&method, rest);
        }
    }

    // As the data plane sees it: a valid request target, its path normalized, then forwarded.
    if let Ok(target) = PathAndQuery::try_from(raw) {
        if let Ok(out) = normalize_path(target.path()) {
            assert!(PathAndQuery::try_from(&*out).is_ok(), "{out:?} is no longer a valid path");
            if let Some((_, rest)) = split_collection(&out) {
                check_route(&method, rest);
                let f = fixture();
                let forwarded =
                    tokengate::door::forward::upstream_path(&f.upstream, rest, target.query());
                Uri::builder()
                    .scheme("http")
                    .authority(f.upstream.authority.clone())
                    .path_and_query(forwarded.as_str())
                    .build()
                    .unwrap_or_else(|e| panic!("upstream URI for {forwarded:?} refused: {e}"));
            }
        }
    }

    check_forwarded(&rest_lines, selector);
    check_forward_auth(raw, &method);
});

/// Forward-auth: the first line as `X-Forwarded-Uri`, as `X-Original-URI`, and as Envoy's path
/// after `/_tokengate/verify`. A granted original path is what `normalize_path` makes of the
/// URI's path; a URI with a `.`/`..` segment (raw or `%2e`-encoded) is never read.
fn check_forward_auth(raw: &[u8], method: &Method) {
    use tokengate::door::verify::{original, Flavor, AUTH_REQUEST, VERIFY};
    let Ok(value) = HeaderValue::from_bytes(raw) else { return };
    let Ok(text) = std::str::from_utf8(raw) else { return };
    let path = text.split(['?', '#']).next().unwrap_or("");
    let dotted = path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    });
    for (flavor, name, request_path) in [
        (Flavor::Verify, "x-forwarded-uri", VERIFY.to_owned()),
        (Flavor::AuthRequest, "x-original-uri", AUTH_REQUEST.to_owned()),
        (Flavor::Verify, "x-unrelated", format!("{VERIFY}{path}")),
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(name, value.clone());
        let Ok(got) = original(flavor, method, &request_path, &headers) else { continue };
        assert!(!dotted, "{text:?} has a dot-segment but was read as {:?}", got.path);
        let expected = normalize_path(path).expect("an accepted original path normalizes");
        assert_eq!(got.path, expected, "{text:?}");
        assert_eq!(&got.method, method);
    }
}
