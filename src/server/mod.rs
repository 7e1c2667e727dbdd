//! What both listeners (the data plane and the admin API) stand on, below both of them.
//!
//! - [`listener`]: the HTTP/1.1 accept loop: connection cap, TLS handshake, header timeout,
//!   graceful drain.
//! - [`head_watch`]: the header-read timeout, kept beside hyper (one `Sleep` per connection).
//! - [`metrics`]: the Prometheus registry the data plane records into and `GET /metrics` renders.
//! - [`send_timeout`]: cuts off a peer that stops reading its response.
//! - [`coalesce`]: a small vectored write goes out as one buffer (one `send`, not a `writev`).
//! - [`stop_signal`]: tells open connections the listener stops (one atomic load a poll).
//! - [`freshness`]: how old this node's view of the store is (`--max-staleness-s`).
//! - [`tls`]: rustls on ring: listener certificates (reloadable) and the upstream client's trust.

pub mod coalesce;
pub mod freshness;
pub mod head_watch;
pub mod listener;
pub mod metrics;
pub mod send_timeout;
pub mod stop_signal;
pub mod tls;

pub use listener::{serve, stopped, ServerLimits};
