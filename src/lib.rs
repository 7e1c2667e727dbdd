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
pub mod admin;
pub mod cidr;
pub mod store;
