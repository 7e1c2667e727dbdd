//! The verification core: everything that decides on a request, as plain functions over plain
//! data. No I/O here: no sockets, no files, no clock but the one passed in. The data plane, the
//! admin API, the criterion benches and the unit tests all call it directly.
//!
//! - [`model`]: the stored objects (collections, endpoints, clients, profiles) as serde types.
//! - [`rules`]: what a collection path, endpoint method and path, upstream URL and fixed
//!   response may be; one source of truth for the admin API and the route compiler.
//! - [`route`]: compiled collections and endpoint matching (`/orders/:id`); [`route_memo`]: a
//!   connection's last route; [`decision_memo`]: its last admission; [`connection_memo`]: all
//!   of a connection's memos.
//! - [`catalog`]: the authoritative objects by id, the row changes applied to them, pages.
//! - [`registry`]: the compiled snapshot the data plane reads (keys parsed once), swapped whole;
//!   each change compiles only the objects it touched ([`compile`], [`sharded`]).
//! - [`credential`]: zero-copy extraction of the credential from the request headers.
//! - [`jwt`]: compact JWS parsing and claim checks (RFC 7515, 7519, 8725).
//! - [`keys`]: HMAC and RSA public keys, parsed once, and their verify operations.
//! - [`token`]: auth tokens: generation, SHA-256 digests, masks.
//! - [`cache`]: the moka memo of verified tokens, generation-checked.
//! - [`refusals`]: the memo of JWTs the current snapshot refused for good (unknown, forged).
//! - [`gate`]: the decision, in the SPEC's order: route → credential → verify → authorize.
//! - [`hygiene`]: path normalization, the client address behind trusted proxies, reserved
//!   header names; what the data plane (and forward-auth) do before routing.
//! - [`ratelimit`], [`quota`], [`cidr`]: per-profile rate limits (per node or shared by the
//!   cluster), request quotas over long windows, and `ip_allow` ranges.
//! - [`reject`]: every reason to refuse a request, one per error code.
//! - [`prefetch`]: cache-line hints for memory the decision reads a few checks later.

pub mod cache;
pub mod catalog;
pub mod cidr;
pub mod compile;
pub mod connection_memo;
pub mod credential;
pub mod decision_memo;
pub mod gate;
pub mod hygiene;
pub mod jwt;
pub mod keys;
pub mod model;
pub mod prefetch;
pub mod quota;
pub mod ratelimit;
pub mod refusals;
pub mod registry;
pub mod reject;
pub mod route;
pub mod route_memo;
pub mod rules;
pub mod sharded;
pub mod token;
