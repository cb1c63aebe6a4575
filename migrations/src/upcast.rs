//! The chain of upcasters, keyed by (stored type name, from-version). One
//! step lifts a payload by exactly one version; [`upcast`] applies steps
//! until the type's current version is reached.

use serde_json::Value;

use crate::codec::CodecError;

/// One step: the payload of `event_type` at `from_version` becomes the
/// payload at `from_version + 1`.
pub struct Upcaster {
    pub event_type: &'static str,
    pub from_version: u32,
    /// Why the schema changed, for `migrate check` and the runbook.
    pub why: &'static str,
    pub apply: fn(Value) -> Result<Value, String>,
}

/// Every upcaster, in no particular order.
pub static UPCASTERS: &[Upcaster] = &[];

/// The current schema version of a stored type, `None` if the type is
/// unknown.
pub fn current_version(event_type: &str) -> Option<u32> {
    callvault_domain::EVENT_TYPES
        .iter()
        .find(|(name, _)| *name == event_type)
        .map(|(_, v)| *v)
}

/// Lifts `payload` from `version` to the current version of `event_type`.
pub fn upcast(event_type: &str, version: u32, mut payload: Value) -> Result<Value, CodecError> {
    let current = current_version(event_type).ok_or_else(|| CodecError::UnknownType {
        event_type: event_type.to_owned(),
    })?;
    if version > current {
        return Err(CodecError::FutureVersion {
            event_type: event_type.to_owned(),
            version,
            current,
        });
    }
    let mut at = version;
    while at < current {
        let step = UPCASTERS
            .iter()
            .find(|u| u.event_type == event_type && u.from_version == at)
            .ok_or_else(|| CodecError::MissingUpcaster {
                event_type: event_type.to_owned(),
                from_version: at,
            })?;
        payload = (step.apply)(payload).map_err(|reason| CodecError::UpcastFailed {
            event_type: event_type.to_owned(),
            from_version: at,
            reason,
        })?;
        at += 1;
    }
    Ok(payload)
}
