//! Every event of the register in one enum, each with an explicit stored
//! type name and schema version.
//!
//! The stored payload of an event is the JSON of its struct alone (no enum
//! tag): the type name and version travel in the event's metadata.
//! [`Event::from_payload`] turns a (type name, payload) pair of the
//! *current* schema back into an event; older versions are upcast by
//! `callvault-migrations` first. Names and versions are constants here and
//! must never be derived from Rust identifiers.

use chrono::{DateTime, Utc};
use serde::{Deserializer, Serialize, Serializer};

use crate::{
    access::event::*, call::event::*, chat::event::*, contact::ContactRef, register::*,
    staff::event::*, streams,
};

macro_rules! events {
    ($($(#[$doc:meta])* $variant:ident = $name:literal v $version:literal),* $(,)?) => {
        /// One event of the register.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Event {
            $($(#[$doc])* $variant($variant),)*
        }

        /// Every stored type name with its current schema version.
        pub const EVENT_TYPES: &[(&str, u32)] = &[$(($name, $version),)*];

        impl Event {
            /// The stored type name.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $name,)*
                }
            }

            /// The current schema version of this event's type.
            pub fn schema_version(&self) -> u32 {
                match self {
                    $(Self::$variant(_) => $version,)*
                }
            }

            /// Decodes a payload of the current schema. `Ok(None)` when the
            /// type name is unknown.
            pub fn from_payload<'de, D: Deserializer<'de>>(
                event_type: &str,
                payload: D,
            ) -> Result<Option<Self>, D::Error> {
                use serde::Deserialize as _;
                match event_type {
                    $($name => $variant::deserialize(payload).map(|e| Some(Self::$variant(e))),)*
                    _ => Ok(None),
                }
            }
        }

        $(impl From<$variant> for Event {
            fn from(e: $variant) -> Self {
                Self::$variant(e)
            }
        })*

        impl Serialize for Event {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Self::$variant(e) => e.serialize(s),)*
                }
            }
        }
    };
}

events! {
    CallStarted = "CallStarted" v 1,
    CallEnded = "CallEnded" v 1,
    RecordingStored = "RecordingStored" v 2,
    /// The tombstone of a recording.
    RecordingPurged = "RecordingPurged" v 1,
    /// The tombstone of a contact's personal data.
    ContactHistoryPurged = "ContactHistoryPurged" v 1,
    HoldPlaced = "HoldPlaced" v 1,
    HoldReleased = "HoldReleased" v 1,
    CallRectified = "CallRectified" v 1,
    ProcessingRestricted = "ProcessingRestricted" v 1,
    RestrictionLifted = "RestrictionLifted" v 1,
    ChatStarted = "ChatStarted" v 1,
    ChatMessageAppended = "ChatMessageAppended" v 1,
    ChatEnded = "ChatEnded" v 1,
    ChatTranscriptEmailRequested = "ChatTranscriptEmailRequested" v 1,
    ChatTranscriptEmailed = "ChatTranscriptEmailed" v 1,
    ChatTranscriptEmailFailed = "ChatTranscriptEmailFailed" v 1,
    RoleGranted = "RoleGranted" v 1,
    RoleRevoked = "RoleRevoked" v 1,
    AccessRightsReviewed = "AccessRightsReviewed" v 1,
    RecordingAccessed = "RecordingAccessed" v 1,
    ContactHistoryRead = "ContactHistoryRead" v 1,
    ContactHistorySearched = "ContactHistorySearched" v 1,
    AccessDenied = "AccessDenied" v 1,
    /// A signed checkpoint of the whole log.
    LogCheckpointSigned = "LogCheckpointSigned" v 1,
}

impl Event {
    /// The contact whose key seals this event's personal-data fields.
    /// Events without one carry no personal data (a test checks this).
    pub fn key_owner(&self) -> Option<ContactRef> {
        use Event::*;
        match self {
            CallStarted(e) => Some(ContactRef::Call(e.call_id)),
            CallEnded(e) => Some(ContactRef::Call(e.call_id)),
            RecordingStored(e) => Some(ContactRef::Call(e.call_id)),
            RecordingPurged(e) => Some(ContactRef::Call(e.call_id)),
            CallRectified(e) => Some(ContactRef::Call(e.call_id)),
            ContactHistoryPurged(e) => Some(e.contact),
            HoldPlaced(e) => Some(e.contact),
            HoldReleased(e) => Some(e.contact),
            ProcessingRestricted(e) => Some(e.contact),
            RestrictionLifted(e) => Some(e.contact),
            ChatStarted(e) => Some(ContactRef::Chat(e.chat_id)),
            ChatMessageAppended(e) => Some(ContactRef::Chat(e.chat_id)),
            ChatEnded(e) => Some(ContactRef::Chat(e.chat_id)),
            ChatTranscriptEmailRequested(e) => Some(ContactRef::Chat(e.chat_id)),
            ChatTranscriptEmailed(e) => Some(ContactRef::Chat(e.chat_id)),
            ChatTranscriptEmailFailed(e) => Some(ContactRef::Chat(e.chat_id)),
            RecordingAccessed(e) => Some(ContactRef::Call(e.call_id)),
            ContactHistoryRead(e) => Some(e.contact),
            RoleGranted(_)
            | RoleRevoked(_)
            | AccessRightsReviewed(_)
            | ContactHistorySearched(_)
            | AccessDenied(_)
            | LogCheckpointSigned(_) => None,
        }
    }

    /// The stream this event belongs to.
    pub fn stream_name(&self) -> String {
        use Event::*;
        match self {
            RoleGranted(e) => streams::staff(&e.staff_id),
            RoleRevoked(e) => streams::staff(&e.staff_id),
            AccessRightsReviewed(e) => streams::staff(&e.staff_id),
            RecordingAccessed(e) => streams::access(&e.actor),
            ContactHistoryRead(e) => streams::access(&e.actor),
            ContactHistorySearched(e) => streams::access(&e.actor),
            AccessDenied(e) => streams::access(&e.actor),
            LogCheckpointSigned(_) => streams::REGISTER_STREAM.to_owned(),
            other => other
                .key_owner()
                .map(|c| c.stream_name())
                .unwrap_or_else(|| unreachable!("every contact event has a key owner")),
        }
    }

    /// When the event happened in the world (as the command said), not when
    /// it was stored.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        use Event::*;
        match self {
            CallStarted(e) => e.started_at,
            CallEnded(e) => e.ended_at,
            RecordingStored(e) => e.stored_at,
            RecordingPurged(e) => e.purged_at,
            ContactHistoryPurged(e) => e.purged_at,
            HoldPlaced(e) => e.placed_at,
            HoldReleased(e) => e.released_at,
            CallRectified(e) => e.rectified_at,
            ProcessingRestricted(e) => e.restricted_at,
            RestrictionLifted(e) => e.lifted_at,
            ChatStarted(e) => e.started_at,
            ChatMessageAppended(e) => e.sent_at,
            ChatEnded(e) => e.ended_at,
            ChatTranscriptEmailRequested(e) => e.requested_at,
            ChatTranscriptEmailed(e) => e.sent_at,
            ChatTranscriptEmailFailed(e) => e.failed_at,
            RoleGranted(e) => e.granted_at,
            RoleRevoked(e) => e.revoked_at,
            AccessRightsReviewed(e) => e.reviewed_at,
            RecordingAccessed(e) => e.accessed_at,
            ContactHistoryRead(e) => e.read_at,
            ContactHistorySearched(e) => e.searched_at,
            AccessDenied(e) => e.denied_at,
            LogCheckpointSigned(e) => e.signed_at,
        }
    }
}
