//! callvault's storage: the event log contract ([`EventStore`]) and its
//! backends — in-memory for tests, sled for the embedded default.
//!
//! This crate is the only one that touches sled (and, later, EventStoreDB).
//! It knows events only as typed, versioned, opaque payload bytes; decoding
//! them into domain events is `callvault-migrations`' job.

pub(crate) mod append;
pub mod blob;
pub mod conformance;
pub mod contract;
pub mod esdb;
pub mod hash;
pub mod memory;
mod record;
pub mod seal;
pub mod sled_store;
mod subscription;
pub mod vault;
pub mod verify;
pub mod wal;

pub use append::{MAX_EVENTS_PER_APPEND, MAX_PAYLOAD_BYTES};
pub use contract::{
    AppendResult, Direction, EventStore, ExpectedRevision, Metadata, NewEvent, Position,
    RecordedEvent, Revision, StoreError, StreamFrom, StreamName, Subscription,
};
pub use hash::ChainHash;
