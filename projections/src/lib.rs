//! callvault's read side. For now: the [`journal`], the one path between
//! domain events and stored events that the write side, the projections
//! and the auditors' tools all share.

pub mod journal;
