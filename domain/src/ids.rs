//! Identifiers of the things the register keeps: calls, recordings, chats,
//! holds and staff members.
//!
//! Uuid-based ids are made outside the domain (random or deterministic, see
//! [`CallId::from_source`]) and passed in; the domain never draws random
//! numbers. Staff ids are the identity provider's subject names.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Namespace for deterministic (UUIDv5) ids derived from a source system's
/// own identifiers, so a retried import makes the same ids.
pub const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a1c_2f0e_93d4_4c5b_8f31_0c1a_7e5d_b2a9);

/// An id that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a valid {kind}: {reason}")]
pub struct IdError {
    pub kind: &'static str,
    pub input: String,
    pub reason: String,
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The stream (or key) name prefix for this kind of id.
            pub const PREFIX: &'static str = $prefix;

            pub const fn new(id: Uuid) -> Self {
                Self(id)
            }

            /// A deterministic id for `source_id` in `source_system`: the
            /// same inputs always give the same id.
            pub fn from_source(source_system: &str, source_id: &str) -> Self {
                let name = format!("{}/{}/{}", $prefix, source_system, source_id);
                Self(Uuid::new_v5(&ID_NAMESPACE, name.as_bytes()))
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|e| IdError {
                    kind: $kind,
                    input: s.chars().take(64).collect(),
                    reason: e.to_string(),
                })
            }
        }
    };
}

uuid_id!(
    /// One call, inbound or outbound.
    CallId,
    "call id",
    "call"
);
uuid_id!(
    /// One recording of a call.
    RecordingId,
    "recording id",
    "recording"
);
uuid_id!(
    /// One chat contact.
    ChatId,
    "chat id",
    "chat"
);
uuid_id!(
    /// One complaint hold on a call or chat.
    HoldId,
    "hold id",
    "hold"
);
uuid_id!(
    /// One order to e-mail a chat transcript.
    EmailRequestId,
    "e-mail request id",
    "email-request"
);

/// Longest staff id accepted.
pub const MAX_STAFF_ID_LEN: usize = 64;

/// A staff member (or a system actor such as `system.retention`), as named
/// by the identity provider: 1–64 characters of `a-z`, `0-9`, `.`, `_`,
/// `-` and `@`, stored in lower case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StaffId(String);

impl StaffId {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let trimmed = input.trim();
        let err = |reason: String| IdError {
            kind: "staff id",
            input: input.chars().take(64).collect(),
            reason,
        };
        if trimmed.is_empty() {
            return Err(err("it is empty".into()));
        }
        if trimmed.chars().count() > MAX_STAFF_ID_LEN {
            return Err(err(format!(
                "it is longer than {MAX_STAFF_ID_LEN} characters"
            )));
        }
        let lower = trimmed.to_lowercase();
        if let Some((i, c)) = lower
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))
        {
            return Err(err(format!(
                "character {c:?} at position {} is not allowed (use a-z, 0-9, '.', '_', '-', '@')",
                i + 1
            )));
        }
        Ok(Self(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The actor recorded for work the register does by itself.
    pub fn system(name: &str) -> Self {
        Self(format!("system.{name}"))
    }
}

impl fmt::Display for StaffId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for StaffId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for StaffId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<StaffId> for String {
    fn from(value: StaffId) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_ids_repeat_for_the_same_source() {
        let a = CallId::from_source("pbx", "42");
        assert_eq!(a, CallId::from_source("pbx", "42"));
        assert_ne!(a, CallId::from_source("pbx", "43"));
        assert_ne!(a.0, RecordingId::from_source("pbx", "42").0);
    }

    #[test]
    fn staff_ids_are_lower_cased_and_checked() {
        assert_eq!(
            StaffId::parse(" Alice.Smith ").unwrap().as_str(),
            "alice.smith"
        );
        let err = StaffId::parse("bob smith").unwrap_err();
        assert!(err.to_string().contains("position 4"), "{err}");
        assert!(StaffId::parse("").is_err());
        assert!(StaffId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn call_ids_parse_and_reject_garbage() {
        let id: CallId = "0190b7a6-7a3e-7f00-8000-000000000001".parse().unwrap();
        assert_eq!(id.to_string(), "0190b7a6-7a3e-7f00-8000-000000000001");
        let err = "nope".parse::<CallId>().unwrap_err();
        assert_eq!(err.kind, "call id");
    }
}
