//! The Staff aggregate: the roles one staff member holds, granted and
//! revoked through the rights procedure and reviewed regularly (R11).

pub mod command;
pub mod decide;
pub mod event;
pub mod state;
#[cfg(test)]
mod tests;

pub use command::*;
pub use decide::{decide, evolve, fold};
pub use event::*;
pub use state::*;
