//! The marker for personal data inside events (R27).
//!
//! Every event field that is personal data — a caller's number, an e-mail
//! address, a free-text reason that may name people, a chat message — is a
//! [`Personal<T>`]. In its serde form the value sits under a `"$pd"` key, so
//! the store's sealer can find every such field in a stored payload without
//! knowing the event type, encrypt it with the data subject's key, and, once
//! that key is shredded, give it back as `{"$shredded": true}`, which reads
//! as [`Personal::Shredded`]. Nothing here encrypts: the domain only marks.
//!
//! `Debug` never prints the value, so personal data does not leak into logs.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The JSON key under which a personal-data value travels in clear.
pub const CLEAR_KEY: &str = "$pd";
/// The JSON key that marks a value whose key was destroyed.
pub const SHREDDED_KEY: &str = "$shredded";
/// The JSON key under which the store keeps a sealed value.
pub const SEALED_KEY: &str = "$sealed";

/// A personal-data value, or the fact that it was destroyed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Personal<T> {
    Clear(T),
    /// The key that sealed this value was destroyed (crypto-shredding).
    Shredded,
}

impl<T> Personal<T> {
    pub fn new(value: T) -> Self {
        Self::Clear(value)
    }

    /// The value, unless it was shredded.
    pub fn clear(&self) -> Option<&T> {
        match self {
            Self::Clear(v) => Some(v),
            Self::Shredded => None,
        }
    }

    pub fn into_clear(self) -> Option<T> {
        match self {
            Self::Clear(v) => Some(v),
            Self::Shredded => None,
        }
    }

    pub fn is_shredded(&self) -> bool {
        matches!(self, Self::Shredded)
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Personal<U> {
        match self {
            Self::Clear(v) => Personal::Clear(f(v)),
            Self::Shredded => Personal::Shredded,
        }
    }

    pub fn as_ref(&self) -> Personal<&T> {
        match self {
            Self::Clear(v) => Personal::Clear(v),
            Self::Shredded => Personal::Shredded,
        }
    }
}

impl<T> From<T> for Personal<T> {
    fn from(value: T) -> Self {
        Self::Clear(value)
    }
}

impl<T> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Clear(_) => f.write_str("Personal(<redacted>)"),
            Self::Shredded => f.write_str("Personal(<shredded>)"),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
enum Repr<T> {
    #[serde(rename = "$pd")]
    Clear(T),
    #[serde(rename = "$shredded")]
    Shredded(bool),
}

impl<T: Serialize> Serialize for Personal<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Clear(v) => Repr::Clear(v).serialize(s),
            Self::Shredded => Repr::<&T>::Shredded(true).serialize(s),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Personal<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Repr::<T>::deserialize(d)? {
            Repr::Clear(v) => Ok(Self::Clear(v)),
            Repr::Shredded(_) => Ok(Self::Shredded),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_values_travel_under_the_personal_data_key() {
        let p = Personal::new("+358295502000".to_owned());
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"$pd": "+358295502000"})
        );
        let back: Personal<String> =
            serde_json::from_value(serde_json::json!({"$pd": "+358295502000"})).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn a_shredded_marker_reads_as_shredded() {
        let back: Personal<String> =
            serde_json::from_value(serde_json::json!({"$shredded": true})).unwrap();
        assert!(back.is_shredded());
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::json!({"$shredded": true})
        );
    }

    #[test]
    fn a_sealed_value_is_not_mistaken_for_clear_data() {
        let sealed = serde_json::json!({"$sealed": {"k": "call-1", "ct": "abc"}});
        assert!(serde_json::from_value::<Personal<String>>(sealed).is_err());
    }

    #[test]
    fn debug_output_never_shows_the_value() {
        let p = Personal::new("+358295502000".to_owned());
        assert_eq!(format!("{p:?}"), "Personal(<redacted>)");
    }
}
