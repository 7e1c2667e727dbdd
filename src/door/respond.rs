//! Response building: JSON error bodies with their auth headers, and endpoints' fixed responses.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response};
use http_body_util::{Either, Full};

use crate::core::reject::Reject;
use crate::core::route::FixedReply;
use crate::door::forward::DownstreamBody;

/// The front door's response body: a buffered one, or an upstream's streamed back.
pub type ResponseBody = Either<Full<Bytes>, DownstreamBody>;

/// The JSON error response for `reject`, with `WWW-Authenticate` or `Retry-After` as due.
pub fn error_response(reject: Reject) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from_static(
        reject.body().as_bytes(),
    ))));
    *response.status_mut() = reject.status();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(challenge) = reject.www_authenticate() {
        headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    if let Reject::RateLimited { retry_after_s } = reject {
        headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_s));
    }
    response
}

/// An endpoint's fixed response.
pub fn fixed_response(reply: &FixedReply) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Left(Full::new(reply.body.clone())));
    *response.status_mut() = reply.status;
    *response.headers_mut() = reply.headers.clone();
    response
}
