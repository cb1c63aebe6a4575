//! Sealing personal data inside event payloads (R27).
//!
//! The domain marks every personal-data field as `{"$pd": value}`. Before
//! an event reaches the log, [`seal`] replaces each with
//! `{"$sealed": {"v": 1, "o": owner, "n": nonce, "c": ciphertext}}` —
//! AES-256-GCM of the value's JSON under the owner's data key, with the
//! owner bound as associated data. The owner (`call:<uuid>`, …) travels in
//! the envelope, so a reader finds the key without decoding the event
//! first. [`unseal`] turns them back into `{"$pd": value}`, or,
//! when the key is gone (crypto-shredded), into `{"$shredded": true}`,
//! which every reader understands; a sealed value that fails to
//! authenticate is an error (tampering), never silently "shredded".
//! Upcasters see sealed values as opaque JSON and may move them freely.

use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD as B64};
use callvault_domain::personal::{CLEAR_KEY, SEALED_KEY, SHREDDED_KEY};
use serde_json::{Map, Value};

use crate::vault::{DataKey, KeyOwner, VaultError};

const FORMAT: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "a sealed field of {owner}'s data failed authentication (tampered, or sealed under another key)"
    )]
    Tampered { owner: KeyOwner },
    #[error("a sealed field of {owner}'s data is malformed: {reason}")]
    Malformed {
        owner: KeyOwner,
        reason: &'static str,
    },
    #[error("a sealed field does not name its owner")]
    NoOwner,
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// Seals every `{"$pd": …}` field in place; returns how many.
pub fn seal(value: &mut Value, key: &DataKey, owner: KeyOwner) -> Result<usize, SealError> {
    let aead = key.aead()?;
    let aad = owner.aad();
    let mut n = 0;
    walk(value, &mut |field| {
        let Some(clear) = field.get(CLEAR_KEY) else {
            return Ok(false);
        };
        let mut bytes = serde_json::to_vec(clear).unwrap_or_default();
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| VaultError::Random)?;
        aead.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad.as_bytes()),
            &mut bytes,
        )
        .map_err(|_| VaultError::Crypto("sealing a personal-data field"))?;
        let mut sealed = Map::new();
        sealed.insert("v".into(), Value::from(FORMAT));
        sealed.insert("o".into(), Value::from(owner.to_string_id()));
        sealed.insert("n".into(), Value::from(B64.encode(nonce)));
        sealed.insert("c".into(), Value::from(B64.encode(&bytes)));
        *field = Map::from_iter([(SEALED_KEY.to_owned(), Value::Object(sealed))]);
        n += 1;
        Ok(true)
    })?;
    Ok(n)
}

/// Opens every sealed field in place, or marks it shredded when `key` is
/// `None`; returns how many fields were sealed.
pub fn unseal(
    value: &mut Value,
    key: Option<&DataKey>,
    owner: KeyOwner,
) -> Result<usize, SealError> {
    unseal_with(value, |o| {
        if o == owner {
            Ok(key.cloned())
        } else {
            Err(SealError::Tampered { owner: o })
        }
    })
}

/// Opens every sealed field in place, asking `keys` for each field's
/// owner's key (`None`: destroyed, so the field reads as shredded).
pub fn unseal_with(
    value: &mut Value,
    mut keys: impl FnMut(KeyOwner) -> Result<Option<DataKey>, SealError>,
) -> Result<usize, SealError> {
    let mut n = 0;
    walk(value, &mut |field| {
        let Some(sealed) = field.get(SEALED_KEY) else {
            return Ok(false);
        };
        n += 1;
        let owner = sealed
            .get("o")
            .and_then(Value::as_str)
            .and_then(KeyOwner::parse_string_id)
            .ok_or(SealError::NoOwner)?;
        let malformed = |reason| SealError::Malformed { owner, reason };
        if sealed.get("v").and_then(Value::as_u64) != Some(FORMAT) {
            return Err(malformed("unknown sealing format"));
        }
        let Some(key) = keys(owner)? else {
            *field = Map::from_iter([(SHREDDED_KEY.to_owned(), Value::Bool(true))]);
            return Ok(true);
        };
        let nonce: [u8; NONCE_LEN] = sealed
            .get("n")
            .and_then(Value::as_str)
            .and_then(|s| B64.decode(s).ok())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed("bad nonce"))?;
        let mut bytes = sealed
            .get("c")
            .and_then(Value::as_str)
            .and_then(|s| B64.decode(s).ok())
            .ok_or_else(|| malformed("bad ciphertext"))?;
        let aad = owner.aad();
        let plain = key
            .aead()?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut bytes,
            )
            .map_err(|_| SealError::Tampered { owner })?;
        let clear: Value =
            serde_json::from_slice(plain).map_err(|_| malformed("sealed value is not JSON"))?;
        *field = Map::from_iter([(CLEAR_KEY.to_owned(), clear)]);
        Ok(true)
    })?;
    Ok(n)
}

/// The owners whose keys a payload's sealed fields need.
pub fn sealed_owners(value: &Value) -> Vec<KeyOwner> {
    let mut out = Vec::new();
    collect_owners(value, &mut out);
    out.sort();
    out.dedup();
    out
}

fn collect_owners(value: &Value, out: &mut Vec<KeyOwner>) {
    match value {
        Value::Object(m) => match m.get(SEALED_KEY) {
            Some(sealed) => {
                if let Some(o) = sealed
                    .get("o")
                    .and_then(Value::as_str)
                    .and_then(KeyOwner::parse_string_id)
                {
                    out.push(o);
                }
            }
            None => m.values().for_each(|v| collect_owners(v, out)),
        },
        Value::Array(a) => a.iter().for_each(|v| collect_owners(v, out)),
        _ => {}
    }
}

/// How many sealed fields a payload holds.
pub fn count_sealed(value: &Value) -> usize {
    match value {
        Value::Object(m) if m.contains_key(SEALED_KEY) => 1,
        Value::Object(m) => m.values().map(count_sealed).sum(),
        Value::Array(a) => a.iter().map(count_sealed).sum(),
        _ => 0,
    }
}

/// Whether a payload holds a personal-data field still in the clear
/// (`{"$pd": …}`): one that [`seal`] would seal.
pub fn has_clear(value: &Value) -> bool {
    match value {
        Value::Object(m) => m.contains_key(CLEAR_KEY) || m.values().any(has_clear),
        Value::Array(a) => a.iter().any(has_clear),
        _ => false,
    }
}

/// Calls `f` on every JSON object, depth first; when `f` replaces an
/// object (returns true) its new contents are not walked.
fn walk(
    value: &mut Value,
    f: &mut impl FnMut(&mut Map<String, Value>) -> Result<bool, SealError>,
) -> Result<(), SealError> {
    match value {
        Value::Object(m) => {
            if f(m)? {
                return Ok(());
            }
            for v in m.values_mut() {
                walk(v, f)?;
            }
        }
        Value::Array(a) => {
            for v in a {
                walk(v, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}
