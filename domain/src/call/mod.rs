//! The Call aggregate: one call, its recordings, holds, restriction and
//! corrections. `decide` checks a command against the state and returns the
//! events it causes; `evolve` folds an event into the state.

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
