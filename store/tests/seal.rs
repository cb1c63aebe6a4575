//! Sealing personal-data fields in event payloads.

use callvault_domain::{CallId, ContactRef, Event, samples};
use callvault_store::{
    seal::{SealError, count_sealed, has_clear, seal, unseal},
    vault::{Bucket, KeyOwner, KeyVault},
};
use serde_json::json;

fn owner(n: u128) -> KeyOwner {
    KeyOwner::Contact(ContactRef::Call(CallId(uuid::Uuid::from_u128(n))))
}

#[test]
fn every_personal_field_is_sealed_and_opens_again() {
    let dir = tempfile::tempdir().unwrap();
    let vault = KeyVault::open(dir.path()).unwrap();
    let key = vault.create_key(owner(1), Bucket::Hold).unwrap();
    for event in samples::one_of_each() {
        let clear = serde_json::to_value(&event).unwrap();
        let mut v = clear.clone();
        let n = seal(&mut v, &key, owner(1)).unwrap();
        // `has_clear` decides whether an event needs its contact's key.
        assert_eq!(has_clear(&clear), n > 0, "{}", event.event_type());
        assert!(!has_clear(&v), "{}", event.event_type());
        let text = v.to_string();
        assert!(
            !text.contains("\"$pd\""),
            "{}: a field left in clear",
            event.event_type()
        );
        assert_eq!(count_sealed(&v), n);
        for secret in [
            "358401234567",
            "Anna Agent",
            "matti@example.fi",
            "complaint",
            "Meikäläinen",
        ] {
            assert!(
                !text.contains(secret),
                "{}: `{secret}` survived sealing",
                event.event_type()
            );
        }
        assert_eq!(unseal(&mut v, Some(&key), owner(1)).unwrap(), n);
        assert_eq!(v, clear);
        let back = Event::from_payload(event.event_type(), v).unwrap().unwrap();
        assert_eq!(back, event);
    }
}

#[test]
fn without_the_key_sealed_fields_read_as_shredded() {
    let dir = tempfile::tempdir().unwrap();
    let vault = KeyVault::open(dir.path()).unwrap();
    let key = vault.create_key(owner(1), Bucket::Hold).unwrap();
    let started = samples::one_of_each().remove(0);
    let mut v = serde_json::to_value(&started).unwrap();
    seal(&mut v, &key, owner(1)).unwrap();
    unseal(&mut v, None, owner(1)).unwrap();
    assert_eq!(v["caller"], json!({"$shredded": true}));
    let Event::CallStarted(e) = Event::from_payload("CallStarted", v).unwrap().unwrap() else {
        panic!()
    };
    assert!(e.caller.as_ref().is_some_and(|c| c.is_shredded()));
    assert_eq!(
        e.service_number,
        samples::service_number(),
        "non-personal fields stay"
    );
}

#[test]
fn tampering_and_the_wrong_owner_are_errors_not_shredding() {
    let dir = tempfile::tempdir().unwrap();
    let vault = KeyVault::open(dir.path()).unwrap();
    let key = vault.create_key(owner(1), Bucket::Hold).unwrap();
    let mut v = json!({"a": {"$pd": "secret"}, "list": [{"$pd": 1}, {"x": {"$pd": [1, 2]}}]});
    assert_eq!(seal(&mut v, &key, owner(1)).unwrap(), 3);
    let mut moved = v.clone();
    assert!(matches!(
        unseal(&mut moved, Some(&key), owner(2)),
        Err(SealError::Tampered { .. })
    ));
    let c = v["a"]["$sealed"]["c"].as_str().unwrap().to_owned();
    let flipped = if c.starts_with('A') {
        c.replacen('A', "B", 1)
    } else {
        format!("A{}", &c[1..])
    };
    v["a"]["$sealed"]["c"] = json!(flipped);
    assert!(unseal(&mut v, Some(&key), owner(1)).is_err());
}
