//! tokengate — an API front door that checks the access token on every request.
//!
//! The request travels one way; each module does one job:
//!
//! - [`model`]: the stored objects (collections, clients, access profiles).
//! - [`keys`]: HMAC and RSA verification keys, parsed once.
//! - [`signing`]: private keys for `tokengate jwt sign`.
pub mod keys;
pub mod model;
pub mod signing;
pub mod registry;
pub mod token;
pub mod cidr;
pub mod credential;
pub mod reject;
pub mod jwt;
pub mod ratelimit;
pub mod route;
pub mod cache;
pub mod gate;
pub mod metrics;
pub mod forward;
pub mod respond;
pub mod door;
pub mod server;
pub mod jwt_sign;
pub mod admin;
pub mod store;
