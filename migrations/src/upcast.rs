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
pub static UPCASTERS: &[Upcaster] = &[Upcaster {
    event_type: "RecordingStored",
    from_version: 1,
    why: "`codec` held a media type (`audio/wav`), not a codec: renamed `media_type`, \
          stored in lower case",
    apply: recording_stored_v1_to_v2,
}];

/// `RecordingStored` v1 → v2: `codec` becomes `media_type`, lower-cased.
fn recording_stored_v1_to_v2(mut payload: Value) -> Result<Value, String> {
    let object = payload
        .as_object_mut()
        .ok_or("the payload is not a JSON object")?;
    let codec = object.remove("codec").ok_or("it has no `codec` field")?;
    let media_type = codec
        .as_str()
        .ok_or("`codec` is not a string")?
        .trim()
        .to_ascii_lowercase();
    object.insert("media_type".to_owned(), Value::String(media_type));
    Ok(payload)
}

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn recording_stored_v1_renames_codec_to_a_lower_case_media_type() {
        let v1 = json!({"call_id": "c", "codec": " Audio/WAV ", "size_bytes": 3});
        let v2 = upcast("RecordingStored", 1, v1).unwrap();
        assert_eq!(
            v2,
            json!({"call_id": "c", "media_type": "audio/wav", "size_bytes": 3})
        );
        // The current version passes through untouched.
        assert_eq!(upcast("RecordingStored", 2, v2.clone()).unwrap(), v2);
    }

    #[test]
    fn a_broken_v1_payload_names_the_step_and_the_reason() {
        let err = upcast("RecordingStored", 1, json!({"size_bytes": 3})).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("RecordingStored") && text.contains("codec"),
            "{text}"
        );
        let err = upcast("RecordingStored", 3, json!({})).unwrap_err();
        assert!(err.to_string().contains('3'), "{err}");
    }

    #[test]
    fn every_type_reaches_its_current_version_from_version_one() {
        for (name, current) in callvault_domain::EVENT_TYPES {
            for from in 1..*current {
                assert!(
                    UPCASTERS
                        .iter()
                        .any(|u| u.event_type == *name && u.from_version == from),
                    "{name} has no upcaster from v{from}"
                );
            }
        }
    }
}
