//! Reading a recording or a contact's history: the checks that make a
//! read possible at all (the recording exists and is not purged), and the
//! access events that log it. Who may read what is the policy's business
//! (see the access-control issue); this module only refuses what can't be
//! read by anyone.

pub mod decide;
pub mod event;

pub use decide::*;
pub use event::*;
