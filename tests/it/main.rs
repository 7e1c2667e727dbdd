//! tokengate's integration tests, one binary: each module is one area, and each test starts the
//! real server (in-process on free loopback ports, or the real binary) and talks HTTP to it.
//! Shared helpers live in [`support`].

mod support;

mod admin_api;
mod admin_to_door;
mod answer_headers;
mod bench_harness;
mod cidr;
mod cli;
mod cluster;
mod decision;
mod decision_memo;
mod durability;
mod forward_auth;
mod forwarding;
mod front_door;
mod hygiene;
mod interop_http;
mod keys;
mod operations;
mod paging;
mod policies;
mod portal;
mod portal_browser;
mod proxies;
mod refusals;
mod route_memo;
mod slow_peers;
mod sqlite_store;
mod tls;
mod wycheproof;
