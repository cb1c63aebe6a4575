//! Tests of the event catalogue as a whole: names, versions, serde, and
//! which events may carry personal data.

use std::collections::BTreeSet;

use crate::{event::*, samples};

fn has_personal_marker(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => {
            m.contains_key(crate::personal::CLEAR_KEY) || m.values().any(has_personal_marker)
        }
        serde_json::Value::Array(a) => a.iter().any(has_personal_marker),
        _ => false,
    }
}

#[test]
fn every_stored_type_has_a_sample_and_a_unique_name() {
    let samples = samples::one_of_each();
    let names: Vec<&str> = samples.iter().map(Event::event_type).collect();
    let expected: Vec<&str> = EVENT_TYPES.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, expected);
    assert_eq!(
        names.iter().collect::<BTreeSet<_>>().len(),
        names.len(),
        "duplicate stored type names"
    );
}

#[test]
fn every_event_round_trips_through_its_stored_payload() {
    for event in samples::one_of_each() {
        let json = serde_json::to_value(&event).unwrap();
        assert!(
            json.is_object(),
            "{} is not a JSON object",
            event.event_type()
        );
        assert!(
            json.get(event.event_type()).is_none(),
            "payload must not be enum-tagged"
        );
        let back = Event::from_payload(event.event_type(), json).unwrap();
        assert_eq!(back, Some(event));
    }
}

#[test]
fn an_unknown_type_name_decodes_to_none() {
    let decoded = Event::from_payload("NoSuchEvent", serde_json::json!({})).unwrap();
    assert_eq!(decoded, None);
}

#[test]
fn a_payload_that_does_not_fit_its_type_is_an_error() {
    assert!(Event::from_payload("CallEnded", serde_json::json!({"call_id": 3})).is_err());
}

#[test]
fn personal_data_appears_only_in_events_that_have_a_key_owner() {
    for event in samples::one_of_each() {
        let json = serde_json::to_value(&event).unwrap();
        if event.key_owner().is_none() {
            assert!(
                !has_personal_marker(&json),
                "{} carries personal data but has no key to seal it with",
                event.event_type()
            );
        }
    }
}

#[test]
fn personal_fields_are_marked_in_the_stored_form() {
    let started = &samples::one_of_each()[0];
    let json = serde_json::to_value(started).unwrap();
    assert_eq!(json["caller"], serde_json::json!({"$pd": "+358401234567"}));
    assert_eq!(json["agent_name"], serde_json::json!({"$pd": "Anna Agent"}));
    // The service number is the agency's, not personal data.
    assert_eq!(json["service_number"], serde_json::json!("+358295502000"));
}

#[test]
fn tombstones_carry_no_personal_data() {
    for event in samples::one_of_each() {
        if matches!(
            event,
            Event::RecordingPurged(_) | Event::ContactHistoryPurged(_)
        ) {
            let json = serde_json::to_value(&event).unwrap();
            assert!(!has_personal_marker(&json), "{}", event.event_type());
        }
    }
}

#[test]
fn streams_follow_the_naming_scheme() {
    let names: BTreeSet<String> = samples::one_of_each()
        .iter()
        .map(|e| e.stream_name().split('-').next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        names,
        ["access", "call", "chat", "register", "staff"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}
