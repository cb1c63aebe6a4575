//! The read models. Each is a pure fold with its own name and version;
//! see each file for its keys and queries.

pub mod access_audit;
pub mod calls;
pub mod retention;
pub mod staff_rights;
pub mod stats;
pub mod subjects;
