//! Property tests in place of a fuzzer: whatever a stored payload holds —
//! any JSON, any type name, any version — decoding answers with an event
//! or a typed error that names the type and never quotes the payload.

use callvault_domain::EVENT_TYPES;
use callvault_migrations::codec::{decode, encode};
use proptest::prelude::*;
use serde_json::Value;

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z$ ]{0,12}".prop_map(Value::String),
        Just(Value::String("SECRET-PERSONAL-DATA".into())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::hash_map(
                prop_oneof![
                    "[a-z_]{1,12}",
                    Just("codec".to_owned()),
                    Just("call_id".to_owned()),
                    Just("$pd".to_owned()),
                    Just("$shredded".to_owned()),
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_payload_decodes_or_fails_cleanly(
        which in 0..EVENT_TYPES.len() + 1,
        version in 0u32..5,
        payload in json(),
    ) {
        let event_type = EVENT_TYPES.get(which).map_or("NoSuchEvent", |(n, _)| *n);
        match decode(event_type, version, payload) {
            Ok(event) => prop_assert_eq!(event.event_type(), event_type),
            Err(e) => {
                let text = e.to_string();
                prop_assert!(!text.contains("SECRET-PERSONAL-DATA"), "{}", text);
            }
        }
    }
}

#[test]
fn every_sample_event_round_trips_through_the_codec() {
    for event in callvault_domain::samples::one_of_each() {
        let stored = encode(&event);
        let back = decode(stored.event_type, stored.schema_version, stored.payload).unwrap();
        assert_eq!(back, event);
    }
}
