//! The one path between domain events and the event log.
//!
//! Writing: a domain event becomes a [`NewEvent`] with its stored type
//! name, schema version and JSON payload. Reading: a [`RecordedEvent`]'s
//! payload is parsed, upcast to the current schema (`callvault-migrations`)
//! and decoded. Every reader — command handlers, projections, replay,
//! verify — goes through [`decode`], so they all see the same history.

use callvault_domain::{Event, StaffId};
use callvault_migrations::{CodecError, encode};
use callvault_store::{NewEvent, Position, RecordedEvent, Revision, StreamName};
use uuid::Uuid;

/// A stored event that can't be read as a domain event: where it is and
/// why. Never includes payload contents.
#[derive(Debug, thiserror::Error)]
#[error(
    "event at position {position} (stream `{stream}`, revision {revision}, type `{event_type}` v{version}) can't be read: {reason}"
)]
pub struct DecodeError {
    pub stream: StreamName,
    pub revision: Revision,
    pub position: Position,
    pub event_type: String,
    pub version: u32,
    pub reason: String,
}

/// Who caused an event and in answer to what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub actor: StaffId,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
}

impl Cause {
    pub fn actor(actor: StaffId) -> Self {
        Self {
            actor,
            correlation_id: None,
            causation_id: None,
        }
    }
}

/// The stored form of `event` under the given id.
pub fn to_new_event(event: &Event, id: Uuid, cause: &Cause) -> NewEvent {
    let encoded = encode(event);
    NewEvent {
        id,
        event_type: encoded.event_type.to_owned(),
        schema_version: encoded.schema_version,
        // A serde_json::Value always serialises.
        payload: serde_json::to_vec(&encoded.payload).unwrap_or_default(),
        actor: cause.actor.to_string(),
        correlation_id: cause.correlation_id,
        causation_id: cause.causation_id,
    }
}

/// The domain event a stored event says, upcast to the current schema.
pub fn decode(recorded: &RecordedEvent) -> Result<Event, DecodeError> {
    let fail = |reason: String| DecodeError {
        stream: recorded.stream.clone(),
        revision: recorded.revision,
        position: recorded.position,
        event_type: recorded.event_type.clone(),
        version: recorded.schema_version,
        reason,
    };
    let value: serde_json::Value = serde_json::from_slice(&recorded.payload).map_err(|e| {
        fail(format!(
            "payload is not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    callvault_migrations::decode(&recorded.event_type, recorded.schema_version, value)
        .map_err(|e: CodecError| fail(e.to_string()))
}
