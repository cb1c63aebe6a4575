//! The history of everything callvault keeps on disk: the codec between
//! stored event payloads and domain events, and the chain of upcasters that
//! lifts an old schema version to the current one on every read.
//!
//! Events are never rewritten in place. Upcasters are pure functions on the
//! stored JSON; they see sealed personal-data fields (`{"$sealed": …}`) as
//! opaque values and must move them, never open them.

pub mod codec;
pub mod upcast;

pub use codec::{CodecError, Encoded, decode, encode};
pub use upcast::{UPCASTERS, Upcaster, upcast};
