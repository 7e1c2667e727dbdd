//! Tools that stand on the client's side of the front door, or beside it: signing JWTs as a
//! client would (`tokengate jwt sign`), demo and benchmark seed data, and the embedded benchmark
//! harness (`tokengate bench`).
//!
//! - [`signing`]: RSA and HMAC signing keys (OpenSSH, PKCS#1, PKCS#8 private keys).
//! - [`jwt_sign`]: builds and signs a client's JWT (`sub`, `name`, `exp`, extra claims).
//! - [`demo`]: the `--demo` seed and the fixtures the benches share.
//! - [`bench`]: an in-process front door driven by an in-process HTTP/1.1 load generator.

pub mod bench;
pub mod demo;
pub mod jwt_sign;
pub mod signing;
