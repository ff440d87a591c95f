//! The file system under the durable stores: the record log, and the raft
//! log, vote and snapshot on it.
//!
//! A production build uses `std::fs` itself (this module re-exports it) and
//! `spawn_blocking`, so nothing changes or slows down there. A test build
//! puts a switch in between, the seam of the deterministic simulation
//! (`cluster::raft::simulation`): inside a turmoil simulation the same calls
//! reach turmoil's simulated disk — its writes stay pending until synced,
//! and a simulated crash drops whatever was not — and blocking work runs in
//! place, on the simulation's thread, so replays are exact. Outside a
//! simulation a test build behaves as production does.

#[cfg(not(test))]
mod real;
#[cfg(not(test))]
pub use real::*;

#[cfg(test)]
mod switch;
#[cfg(test)]
pub use switch::*;
