//! The Chat aggregate: a chat contact's transcript, the customer's or
//! agent's orders to e-mail it, and their delivery outcome (R3).

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
