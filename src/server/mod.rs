//! What both listeners (the data plane and the admin API) stand on, below both of them.
//!
//! - [`listener`]: the HTTP/1.1 accept loop: connection cap, header timeout, graceful drain.
//! - [`metrics`]: the Prometheus registry the data plane records into and `GET /metrics` renders.

pub mod listener;
pub mod metrics;

pub use listener::{serve, stopped, ServerLimits};
