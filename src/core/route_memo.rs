//! A connection's last route. A keep-alive client usually calls one endpoint over and over;
//! comparing the method and path with the last request's is cheaper than routing again (the
//! collection's and the endpoint's hash lookups: about 350 of a request's instructions, measured
//! with `loadtest/instructions.sh`, against about 40 for the comparison).
//!
//! What is remembered is positions, not references: the collection's position in the snapshot
//! and the endpoint's index in it, valid for that snapshot's [`Snapshot::epoch`] only. Under any
//! other snapshot the memo misses, so an admin change routes the very next request afresh, and
//! the memo never answers differently from [`Snapshot::route`].

use http::Method;

use crate::core::registry::Snapshot;
use crate::core::route::{split_collection, CompiledCollection, CompiledEndpoint};

/// Longest path (bytes) remembered; longer ones are routed every time.
pub const MAX_PATH_LEN: usize = 1024;

/// The last route found on a connection.
#[derive(Default)]
pub struct RouteMemo {
    last: Option<Remembered>,
    /// Whether the last lookup was answered from the memo.
    repeated: bool,
}

struct Remembered {
    epoch: u64,
    method: Method,
    path: String,
    position: u32,
    endpoint: Option<usize>,
}

/// A route: the collection, the endpoint if one matches, and the path after the collection
/// segment (as [`Snapshot::route`] gives it).
pub type Route<'s, 'p> = (
    &'s CompiledCollection,
    Option<&'s CompiledEndpoint>,
    &'p str,
);

impl RouteMemo {
    /// Starts loading the last route's path, which the next lookup compares first (a hint).
    #[inline]
    pub fn prefetch(&self) {
        if let Some(last) = &self.last {
            crate::core::prefetch::prefetch_bytes(last.path.as_bytes());
        }
    }

    /// [`Snapshot::route`] for `method` and `path` (normalized, no query), answered from the
    /// memo when the connection's last request had the same method and path under the same
    /// snapshot; a route found afresh is remembered (a path longer than [`MAX_PATH_LEN`] is not).
    pub fn route<'s, 'p>(
        &mut self,
        snapshot: &'s Snapshot,
        method: &Method,
        path: &'p str,
    ) -> Option<Route<'s, 'p>> {
        if let Some(last) = &self.last {
            if last.epoch == snapshot.epoch() && last.method == *method && last.path == path {
                self.repeated = true;
                return resolve(snapshot, path, last.position, last.endpoint);
            }
        }
        self.repeated = false;
        let Some((position, endpoint)) = snapshot.route_position(method, path) else {
            // Not found: nothing to remember (and a scan of unknown paths must not evict).
            return None;
        };
        if path.len() <= MAX_PATH_LEN {
            let last = self.last.get_or_insert_with(|| Remembered {
                epoch: 0,
                method: Method::GET,
                path: String::new(),
                position: 0,
                endpoint: None,
            });
            last.epoch = snapshot.epoch();
            last.method.clone_from(method);
            // Reuses the buffer: no allocation once the connection has seen a path this long.
            last.path.clear();
            last.path.push_str(path);
            last.position = position;
            last.endpoint = endpoint;
        }
        resolve(snapshot, path, position, endpoint)
    }
}

impl RouteMemo {
    /// Whether the last [`RouteMemo::route`] was answered from the memo: the request had the
    /// method and path of the one before it.
    pub fn repeated(&self) -> bool {
        self.repeated
    }

    /// The remembered collection position and endpoint index, when the memo holds a route to
    /// an endpoint for `method` and `path` under the snapshot of `epoch`.
    pub fn positions(&self, epoch: u64, method: &Method, path: &str) -> Option<(u32, usize)> {
        let last = self.last.as_ref()?;
        if last.epoch == epoch && last.method == *method && last.path == path {
            Some((last.position, last.endpoint?))
        } else {
            None
        }
    }
}

fn resolve<'s, 'p>(
    snapshot: &'s Snapshot,
    path: &'p str,
    position: u32,
    endpoint: Option<usize>,
) -> Option<Route<'s, 'p>> {
    let collection = snapshot.collection_at(position)?;
    let endpoint = match endpoint {
        Some(i) => Some(collection.endpoints.get(i)?),
        None => None,
    };
    // The rest is the path's alone: found again by a byte scan, as routing found it.
    let (_, rest) = split_collection(path)?;
    Some((collection, endpoint, rest))
}
