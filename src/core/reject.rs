//! Why a request is refused: one variant per error code of the SPEC, with its status and message.

use std::sync::LazyLock;

use http::StatusCode;

use crate::core::hygiene::PathError;

/// Why forward-auth refused to decide (SPEC §3 "Forward-auth mode": fail closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardAuthError {
    /// No `X-Forwarded-Uri`, `X-Original-URI` or path after `/_tokengate/verify`.
    NoOriginalUri,
    /// Two sources of the original method or URI disagree (after normalization).
    ConflictingOriginal,
    /// The original URI holds a `.` or `..` segment, raw or percent-encoded.
    DotSegment,
    /// The original method or URI is not a valid method or origin-form path.
    BadOriginal,
}

/// A limit that refused a request: what its `Retry-After`, `RateLimit-Policy` and `RateLimit`
/// fields say (IETF httpapi ratelimit-headers draft).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Seconds until a request would be admitted again (at least 1).
    pub retry_after_s: u64,
    /// The policy's requests per window (the draft's `q`).
    pub limit: u64,
    /// The policy's window, seconds (the draft's `w`).
    pub window_s: u64,
}

/// A refusal; the variants map 1:1 to the SPEC's `error` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// No credential in the request.
    MissingCredentials,
    /// More than one credential (two `API-Token`, or `API-Token` and `Authorization`).
    MultipleCredentials,
    /// Malformed, unknown, wrong-method, bad signature, revoked or disabled.
    InvalidToken,
    /// `exp` has passed.
    TokenExpired,
    /// `nbf` is still ahead.
    TokenNotYetValid,
    /// The client address is not in the profile's `ip_allow`.
    AddressNotAllowed,
    /// The endpoint's collection is not granted to the profile.
    CollectionNotGranted,
    /// No such endpoint (told to authenticated callers only).
    NotFound,
    /// Over the profile's rate limit.
    RateLimited(Limited),
    /// Over the profile's quota; `retry_after_s` runs to the end of the quota window.
    QuotaExceeded(Limited),
    /// One header over 16 KiB, or all headers over 64 KiB.
    RequestHeaderTooLarge,
    /// Body over the configured limit.
    PayloadTooLarge,
    /// Upstream unreachable.
    BadGateway,
    /// The upstream's TLS certificate failed verification (unknown issuer, another host's
    /// name, expired): also `bad_gateway`, with a message that says so.
    UpstreamCertificate,
    /// Upstream too slow.
    GatewayTimeout,
    /// A path that cannot be normalized safely (request hygiene).
    InvalidRequest(PathError),
    /// The client stopped sending the request body for longer than the body timeout.
    RequestTimeout,
    /// The node has lost its store for longer than `--max-staleness-s`.
    Unavailable,
    /// Forward-auth fails closed (403 `forbidden`): the reason the proxy's request could not be
    /// trusted to name the original request.
    ForwardAuth(ForwardAuthError),
}

impl Reject {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Reject::MissingCredentials
            | Reject::MultipleCredentials
            | Reject::InvalidToken
            | Reject::TokenExpired
            | Reject::TokenNotYetValid => StatusCode::UNAUTHORIZED,
            Reject::AddressNotAllowed | Reject::CollectionNotGranted | Reject::ForwardAuth(_) => {
                StatusCode::FORBIDDEN
            }
            Reject::NotFound => StatusCode::NOT_FOUND,
            Reject::RateLimited(_) | Reject::QuotaExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
            Reject::RequestHeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Reject::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::BadGateway | Reject::UpstreamCertificate => StatusCode::BAD_GATEWAY,
            Reject::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Reject::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Reject::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Reject::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `error` code of the JSON body.
    pub fn code(self) -> &'static str {
        match self {
            Reject::MissingCredentials => "missing_credentials",
            Reject::MultipleCredentials => "multiple_credentials",
            Reject::InvalidToken => "invalid_token",
            Reject::TokenExpired => "token_expired",
            Reject::TokenNotYetValid => "token_not_yet_valid",
            Reject::AddressNotAllowed | Reject::CollectionNotGranted | Reject::ForwardAuth(_) => {
                "forbidden"
            }
            Reject::NotFound => "not_found",
            Reject::RateLimited(_) => "rate_limited",
            Reject::QuotaExceeded(_) => "quota_exceeded",
            Reject::RequestHeaderTooLarge => "request_header_too_large",
            Reject::PayloadTooLarge => "payload_too_large",
            Reject::BadGateway | Reject::UpstreamCertificate => "bad_gateway",
            Reject::GatewayTimeout => "gateway_timeout",
            Reject::InvalidRequest(_) => "invalid_request",
            Reject::RequestTimeout => "request_timeout",
            Reject::Unavailable => "unavailable",
        }
    }

    /// One human sentence; never contains a token, secret or key.
    pub fn message(self) -> &'static str {
        match self {
            Reject::MissingCredentials => {
                "The request carries no credential: send API-Token or Authorization."
            }
            Reject::MultipleCredentials => {
                "The request carries more than one credential; send exactly one."
            }
            Reject::InvalidToken => "The credential is not valid for this API.",
            Reject::TokenExpired => "The token has expired.",
            Reject::TokenNotYetValid => "The token is not valid yet.",
            Reject::AddressNotAllowed => {
                "This access profile may not be used from this client address."
            }
            Reject::CollectionNotGranted => {
                "This access profile is not granted the collection of this endpoint."
            }
            Reject::NotFound => "No such endpoint.",
            Reject::RateLimited(_) => "Too many requests for this access profile; retry later.",
            Reject::QuotaExceeded(_) => {
                "This access profile has used its request quota; retry when the quota window ends."
            }
            Reject::RequestHeaderTooLarge => "The request headers are too large.",
            Reject::PayloadTooLarge => "The request body is too large.",
            Reject::BadGateway => "The upstream service could not be reached.",
            Reject::UpstreamCertificate => {
                "The upstream service's TLS certificate could not be verified."
            }
            Reject::GatewayTimeout => "The upstream service did not answer in time.",
            Reject::InvalidRequest(rule) => rule.message(),
            Reject::RequestTimeout => "The request body stopped arriving before it was complete.",
            Reject::Unavailable => {
                "This node has lost its configuration store for too long to decide safely; retry on another node."
            }
            Reject::ForwardAuth(ForwardAuthError::NoOriginalUri) => {
                "Forward-auth needs the original request: the proxy sent no X-Forwarded-Uri, X-Original-URI or path after /_tokengate/verify."
            }
            Reject::ForwardAuth(ForwardAuthError::ConflictingOriginal) => {
                "Forward-auth got two different original methods or URIs from the proxy; refusing to guess."
            }
            Reject::ForwardAuth(ForwardAuthError::DotSegment) => {
                "Forward-auth refuses an original URI with a . or .. segment: the upstream may read it differently."
            }
            Reject::ForwardAuth(ForwardAuthError::BadOriginal) => {
                "Forward-auth got an original method or URI that is not valid."
            }
        }
    }

    /// The `WWW-Authenticate` value a 401 carries; `None` for other statuses.
    pub fn www_authenticate(self) -> Option<&'static str> {
        match self {
            Reject::MissingCredentials => Some("Bearer realm=\"tokengate\""),
            Reject::MultipleCredentials
            | Reject::InvalidToken
            | Reject::TokenExpired
            | Reject::TokenNotYetValid => {
                Some("Bearer realm=\"tokengate\", error=\"invalid_token\"")
            }
            _ => None,
        }
    }

    /// The JSON error body: `{"error":"…","message":"…"}`, built once per code.
    pub fn body(self) -> &'static str {
        static BODIES: LazyLock<Vec<String>> = LazyLock::new(|| {
            Reject::ALL
                .iter()
                .map(|r| {
                    format!(
                        "{{\"error\":\"{}\",\"message\":\"{}\"}}",
                        r.code(),
                        r.message()
                    )
                })
                .collect()
        });
        BODIES[self.index()].as_str()
    }

    /// Position of this variant in [`Reject::ALL`].
    pub fn index(self) -> usize {
        match self {
            Reject::MissingCredentials => 0,
            Reject::MultipleCredentials => 1,
            Reject::InvalidToken => 2,
            Reject::TokenExpired => 3,
            Reject::TokenNotYetValid => 4,
            Reject::AddressNotAllowed => 5,
            Reject::NotFound => 6,
            Reject::RateLimited(_) => 7,
            Reject::RequestHeaderTooLarge => 8,
            Reject::PayloadTooLarge => 9,
            Reject::BadGateway => 10,
            Reject::GatewayTimeout => 11,
            Reject::CollectionNotGranted => 12,
            Reject::InvalidRequest(PathError::EncodedSeparator) => 13,
            Reject::InvalidRequest(PathError::Backslash) => 14,
            Reject::InvalidRequest(PathError::ControlCharacter) => 15,
            Reject::InvalidRequest(PathError::BadPercentEncoding) => 16,
            Reject::InvalidRequest(PathError::NotAbsolute) => 17,
            Reject::RequestTimeout => 18,
            Reject::InvalidRequest(PathError::DotSegmentWithParameters) => 19,
            Reject::Unavailable => 20,
            Reject::UpstreamCertificate => 21,
            Reject::ForwardAuth(ForwardAuthError::NoOriginalUri) => 22,
            Reject::ForwardAuth(ForwardAuthError::ConflictingOriginal) => 23,
            Reject::ForwardAuth(ForwardAuthError::DotSegment) => 24,
            Reject::ForwardAuth(ForwardAuthError::BadOriginal) => 25,
            Reject::QuotaExceeded(_) => 26,
        }
    }

    /// Every error code, once each, in a fixed order: the label values of metrics.
    pub const CODES: [&'static str; 16] = [
        "missing_credentials",
        "multiple_credentials",
        "invalid_token",
        "token_expired",
        "token_not_yet_valid",
        "forbidden",
        "not_found",
        "rate_limited",
        "request_header_too_large",
        "payload_too_large",
        "bad_gateway",
        "gateway_timeout",
        "invalid_request",
        "request_timeout",
        "unavailable",
        "quota_exceeded",
    ];

    /// Position of this refusal's code in [`Reject::CODES`].
    pub fn code_index(self) -> usize {
        match self {
            Reject::MissingCredentials => 0,
            Reject::MultipleCredentials => 1,
            Reject::InvalidToken => 2,
            Reject::TokenExpired => 3,
            Reject::TokenNotYetValid => 4,
            Reject::AddressNotAllowed | Reject::CollectionNotGranted | Reject::ForwardAuth(_) => 5,
            Reject::NotFound => 6,
            Reject::RateLimited(_) => 7,
            Reject::RequestHeaderTooLarge => 8,
            Reject::PayloadTooLarge => 9,
            Reject::BadGateway | Reject::UpstreamCertificate => 10,
            Reject::GatewayTimeout => 11,
            Reject::InvalidRequest(_) => 12,
            Reject::RequestTimeout => 13,
            Reject::Unavailable => 14,
            Reject::QuotaExceeded(_) => 15,
        }
    }

    /// Every variant (one per message), for tests and the prebuilt bodies.
    pub const ALL: [Reject; 27] = [
        Reject::MissingCredentials,
        Reject::MultipleCredentials,
        Reject::InvalidToken,
        Reject::TokenExpired,
        Reject::TokenNotYetValid,
        Reject::AddressNotAllowed,
        Reject::NotFound,
        Reject::RateLimited(Limited {
            retry_after_s: 1,
            limit: 1,
            window_s: 1,
        }),
        Reject::RequestHeaderTooLarge,
        Reject::PayloadTooLarge,
        Reject::BadGateway,
        Reject::GatewayTimeout,
        Reject::CollectionNotGranted,
        Reject::InvalidRequest(PathError::EncodedSeparator),
        Reject::InvalidRequest(PathError::Backslash),
        Reject::InvalidRequest(PathError::ControlCharacter),
        Reject::InvalidRequest(PathError::BadPercentEncoding),
        Reject::InvalidRequest(PathError::NotAbsolute),
        Reject::RequestTimeout,
        Reject::InvalidRequest(PathError::DotSegmentWithParameters),
        Reject::Unavailable,
        Reject::UpstreamCertificate,
        Reject::ForwardAuth(ForwardAuthError::NoOriginalUri),
        Reject::ForwardAuth(ForwardAuthError::ConflictingOriginal),
        Reject::ForwardAuth(ForwardAuthError::DotSegment),
        Reject::ForwardAuth(ForwardAuthError::BadOriginal),
        Reject::QuotaExceeded(Limited {
            retry_after_s: 1,
            limit: 1,
            window_s: 86_400,
        }),
    ];

    /// The limit behind a 429, with the name of its policy in the `RateLimit` fields.
    pub fn limited(self) -> Option<(&'static str, Limited)> {
        match self {
            Reject::RateLimited(limited) => Some(("rate", limited)),
            Reject::QuotaExceeded(limited) => Some(("quota", limited)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_with_code_and_message() {
        for reject in Reject::ALL {
            let body: serde_json::Value = serde_json::from_str(reject.body()).unwrap();
            assert_eq!(Reject::ALL[reject.index()], reject);
            assert_eq!(Reject::CODES[reject.code_index()], reject.code());
            assert_eq!(body["error"], reject.code());
            assert!(body["message"].as_str().unwrap().ends_with('.'));
            assert_eq!(
                reject.www_authenticate().is_some(),
                reject.status() == StatusCode::UNAUTHORIZED
            );
        }
    }
}
