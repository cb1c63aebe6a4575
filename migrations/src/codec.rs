//! Between domain events and stored payloads.
//!
//! [`encode`] gives the stored type name, schema version and JSON value of
//! an event (personal-data fields still in clear, marked `$pd`; the store
//! seals them). [`decode`] takes a stored type, version and (unsealed) JSON
//! value, upcasts it and builds the domain event.

use callvault_domain::Event;
use serde_json::Value;

use crate::upcast::upcast;

/// Why a stored payload could not become a domain event. Names the type
/// and version; never includes payload contents (they may be personal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("unknown event type `{event_type}`")]
    UnknownType { event_type: String },
    #[error(
        "`{event_type}` v{version} is newer than this build knows (v{current}); upgrade callvault"
    )]
    FutureVersion {
        event_type: String,
        version: u32,
        current: u32,
    },
    #[error("no upcaster for `{event_type}` from v{from_version}")]
    MissingUpcaster {
        event_type: String,
        from_version: u32,
    },
    #[error("upcasting `{event_type}` from v{from_version} failed: {reason}")]
    UpcastFailed {
        event_type: String,
        from_version: u32,
        reason: String,
    },
    #[error("payload of `{event_type}` is not valid: {reason}")]
    InvalidPayload { event_type: String, reason: String },
}

/// A domain event as the store wants it: stored name, version, JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub event_type: &'static str,
    pub schema_version: u32,
    pub payload: Value,
}

pub fn encode(event: &Event) -> Encoded {
    Encoded {
        event_type: event.event_type(),
        schema_version: event.schema_version(),
        // Serialising our own event types to a Value can't fail: they hold
        // no maps with non-string keys and no foreign Serialize impls.
        payload: serde_json::to_value(event).unwrap_or(Value::Null),
    }
}

pub fn decode(event_type: &str, version: u32, payload: Value) -> Result<Event, CodecError> {
    from_current(event_type, upcast(event_type, version, payload)?)
}

/// Builds the domain event from a payload already at the current schema.
pub fn from_current(event_type: &str, current: Value) -> Result<Event, CodecError> {
    match Event::from_payload(event_type, current) {
        Ok(Some(event)) => Ok(event),
        Ok(None) => Err(CodecError::UnknownType {
            event_type: event_type.to_owned(),
        }),
        Err(e) => Err(CodecError::InvalidPayload {
            event_type: event_type.to_owned(),
            reason: redact(&e.to_string()),
        }),
    }
}

/// serde_json errors may quote a value ("invalid value: string \"…\""):
/// keep only the part before the quote so personal data can't leak.
fn redact(message: &str) -> String {
    match message.find(['"', '`']) {
        Some(i) => format!("{}…", message[..i].trim_end()),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callvault_domain::samples;

    #[test]
    fn every_sample_event_round_trips() {
        for event in samples::one_of_each() {
            let enc = encode(&event);
            let back = decode(enc.event_type, enc.schema_version, enc.payload).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn an_unknown_type_is_named() {
        assert_eq!(
            decode("Nope", 1, serde_json::json!({})),
            Err(CodecError::UnknownType {
                event_type: "Nope".into()
            })
        );
    }

    #[test]
    fn a_version_from_the_future_is_refused() {
        assert!(matches!(
            decode("CallEnded", 99, serde_json::json!({})),
            Err(CodecError::FutureVersion { current: 1, .. })
        ));
    }

    #[test]
    fn a_bad_payload_error_does_not_quote_the_value() {
        let err = decode(
            "CallStarted",
            1,
            serde_json::json!({"call_id": "+358401234567"}),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("358401234567"), "{err}");
    }
}
