//! callvault's domain: what the register records and the rules it keeps.
//!
//! Pure by design: no tokio, no I/O, no clock reads, no random numbers.
//! Time and ids come in as arguments (see [`context::Context`]). Each
//! aggregate (call, chat, staff) is data plus `decide(state, command,
//! context) -> Result<Vec<Event>, DomainError>` and `evolve(state, event)`.
//! Events are serde types with explicit stored names and versions
//! ([`event::EVENT_TYPES`]); personal-data fields are [`Personal`] so the
//! store can seal and later shred them.

pub mod access;
pub mod call;
pub mod chat;
pub mod contact;
pub mod context;
pub mod controls;
pub mod email;
pub mod error;
pub mod event;
#[cfg(test)]
mod event_tests;
pub mod ids;
pub mod personal;
pub mod phone;
pub mod policy;
pub mod register;
pub mod retention;
pub mod role;
pub mod samples;
pub mod staff;
pub mod streams;

pub use contact::ContactRef;
pub use context::Context;
pub use email::{EmailAddress, EmailAddressError};
pub use error::DomainError;
pub use event::{EVENT_TYPES, Event};
pub use ids::{CallId, ChatId, EmailRequestId, HoldId, IdError, RecordingId, StaffId};
pub use personal::Personal;
pub use phone::{PhoneNumber, PhoneNumberError};
pub use retention::{Disposition, RetentionPolicy};
pub use role::{Purpose, Role};
