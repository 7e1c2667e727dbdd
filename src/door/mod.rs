//! The data plane: the front door that every API call passes through.
//!
//! - [`service`]: the hyper service: limits, the gate's decision, then a fixed response or the
//!   upstream.
//! - [`forward`]: the upstream proxy (header hygiene, identity headers, streamed bodies).
//! - [`respond`]: fixed responses and the JSON error bodies of the error table.
//! - [`idle`]: idle timeouts on streamed bodies (a stalled client or upstream is cut off).
//! - [`clock`]: the wall clock a request reads (one clock read per request).
//! - [`access_log`]: one JSON line per request, written off the request's thread.
//! - [`layout`]: how the data plane uses the cores (shared runtime or one per core).
//! - [`verify`]: forward-auth for nginx, Traefik, Caddy and Envoy (`/_tokengate/verify`,
//!   `/_tokengate/auth-request`).

pub mod access_log;
pub mod clock;
pub mod forward;
pub mod idle;
pub mod layout;
pub mod respond;
pub mod service;
pub mod verify;

pub use service::{now_ms, DoorFuture, DoorLimits, DoorService, FrontDoor};
