//! Why a request is refused: one variant per error code of the SPEC, with its status and message.

use std::sync::LazyLock;

use http::StatusCode;

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
    /// Peer address not allowed, or collection not granted.
    Forbidden,
    /// No such endpoint (told to authenticated callers only).
    NotFound,
    /// Over the profile's rate limit; retry after this many seconds.
    RateLimited {
        /// Seconds until a request would be admitted again (at least 1).
        retry_after_s: u64,
    },
    /// One header over 16 KiB, or all headers over 64 KiB.
    RequestHeaderTooLarge,
    /// Body over the configured limit.
    PayloadTooLarge,
    /// Upstream unreachable.
    BadGateway,
    /// Upstream too slow.
    GatewayTimeout,
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
            Reject::Forbidden => StatusCode::FORBIDDEN,
            Reject::NotFound => StatusCode::NOT_FOUND,
            Reject::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Reject::RequestHeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Reject::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::BadGateway => StatusCode::BAD_GATEWAY,
            Reject::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
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
            Reject::Forbidden => "forbidden",
            Reject::NotFound => "not_found",
            Reject::RateLimited { .. } => "rate_limited",
            Reject::RequestHeaderTooLarge => "request_header_too_large",
            Reject::PayloadTooLarge => "payload_too_large",
            Reject::BadGateway => "bad_gateway",
            Reject::GatewayTimeout => "gateway_timeout",
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
            Reject::Forbidden => "This credential may not call this endpoint from here.",
            Reject::NotFound => "No such endpoint.",
            Reject::RateLimited { .. } => "Too many requests for this access profile; retry later.",
            Reject::RequestHeaderTooLarge => "The request headers are too large.",
            Reject::PayloadTooLarge => "The request body is too large.",
            Reject::BadGateway => "The upstream service could not be reached.",
            Reject::GatewayTimeout => "The upstream service did not answer in time.",
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
            Reject::Forbidden => 5,
            Reject::NotFound => 6,
            Reject::RateLimited { .. } => 7,
            Reject::RequestHeaderTooLarge => 8,
            Reject::PayloadTooLarge => 9,
            Reject::BadGateway => 10,
            Reject::GatewayTimeout => 11,
        }
    }

    /// Every variant, for tests and metrics.
    pub const ALL: [Reject; 12] = [
        Reject::MissingCredentials,
        Reject::MultipleCredentials,
        Reject::InvalidToken,
        Reject::TokenExpired,
        Reject::TokenNotYetValid,
        Reject::Forbidden,
        Reject::NotFound,
        Reject::RateLimited { retry_after_s: 1 },
        Reject::RequestHeaderTooLarge,
        Reject::PayloadTooLarge,
        Reject::BadGateway,
        Reject::GatewayTimeout,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_with_code_and_message() {
        for reject in Reject::ALL {
            let body: serde_json::Value = serde_json::from_str(reject.body()).unwrap();
            assert_eq!(Reject::ALL[reject.index()].code(), reject.code());
            assert_eq!(body["error"], reject.code());
            assert!(body["message"].as_str().unwrap().ends_with('.'));
            assert_eq!(
                reject.www_authenticate().is_some(),
                reject.status() == StatusCode::UNAUTHORIZED
            );
        }
    }
}
