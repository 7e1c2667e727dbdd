//! The in-memory registry: an immutable compiled snapshot of the state, swapped atomically on change.
//!
//! INTERFACE STUB — being written in main; signatures are the contract.

use std::sync::Arc;

use crate::model::State;

/// Why a state could not be compiled: names the offending field for a 400 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    /// Dotted path of the bad field, e.g. `auth.public_key` or `collections[0]`.
    pub field: String,
    /// One human sentence; never contains a secret or key.
    pub message: String,
}

/// A compiled, immutable view of the state for the hot path.
pub struct Snapshot {}

impl Snapshot {
    /// Compiles `state` (parsing every key once); `previous` lets per-profile counters survive.
    pub fn build(_state: &State, _previous: Option<&Snapshot>) -> Result<Snapshot, BuildError> {
        todo!()
    }
}

/// The live registry: readers load the current snapshot without locking.
pub struct Registry {}

impl Registry {
    /// A registry serving `snapshot`.
    pub fn new(_snapshot: Snapshot) -> Self {
        todo!()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        todo!()
    }

    /// Replaces the snapshot; requests that start afterwards see the new one.
    pub fn install(&self, _snapshot: Snapshot) {
        todo!()
    }
}
