//! What happens to a call: it starts and ends, its audio is stored and,
//! after retention, purged; holds, restriction and rectification change how
//! it may be used. Hold, restriction and purge events name a [`ContactRef`]
//! so chats share them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    contact::ContactRef,
    ids::{CallId, HoldId, RecordingId, StaffId},
    personal::Personal,
    phone::PhoneNumber,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// A customer called a service number.
    #[serde(rename = "inbound")]
    Inbound,
    /// An agent called a customer.
    #[serde(rename = "outbound")]
    Outbound,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStarted {
    pub call_id: CallId,
    pub direction: Direction,
    /// The customer's number: who called in, or who the agent called;
    /// `None` when the caller withheld it (absent in events written before
    /// withheld numbers were recorded, which always carry one).
    #[serde(default)]
    pub caller: Option<Personal<PhoneNumber>>,
    /// The service number called (inbound) or called from (outbound).
    pub service_number: PhoneNumber,
    /// The answering (or calling) agent.
    pub agent: StaffId,
    pub agent_name: Personal<String>,
    pub agent_number: Option<Personal<PhoneNumber>>,
    pub started_at: DateTime<Utc>,
}

impl CallStarted {
    /// The caller's number while it is known: not withheld, not shredded.
    pub fn caller_in_clear(&self) -> Option<&PhoneNumber> {
        self.caller.as_ref().and_then(Personal::clear)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEnded {
    pub call_id: CallId,
    pub ended_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingStored {
    pub call_id: CallId,
    pub recording_id: RecordingId,
    /// Media type of the audio as uploaded, e.g. `audio/wav` (lower case).
    /// Schema v1 called it `codec`; the upcaster renames it.
    pub media_type: String,
    pub duration_ms: Option<u64>,
    /// Plaintext size in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the stored ciphertext blob, hex.
    pub ciphertext_sha256: String,
    pub stored_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PurgeReason {
    /// The retention period ended and nothing kept the item.
    #[serde(rename = "retention_expired")]
    RetentionExpired,
}

/// The tombstone of a recording: its key was destroyed. Holds no personal
/// data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingPurged {
    pub call_id: CallId,
    pub recording_id: RecordingId,
    pub reason: PurgeReason,
    pub policy_version: u32,
    /// The key bucket whose key-encryption key was destroyed.
    pub key_bucket: String,
    pub purged_at: DateTime<Utc>,
}

/// The tombstone of a contact's personal data (caller number, names,
/// reasons, chat transcript): its key was destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactHistoryPurged {
    pub contact: ContactRef,
    pub reason: PurgeReason,
    pub policy_version: u32,
    pub key_bucket: String,
    pub purged_at: DateTime<Utc>,
}

/// A complaint hold (R15): keeps the contact and its recordings from purge
/// until released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldPlaced {
    pub contact: ContactRef,
    pub hold_id: HoldId,
    pub case_reference: String,
    pub reason: Personal<String>,
    pub review_by: NaiveDate,
    pub placed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldReleased {
    pub contact: ContactRef,
    pub hold_id: HoldId,
    pub reason: Personal<String>,
    pub released_at: DateTime<Utc>,
}

/// What a rectification corrects (R18). The original stays in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "field", content = "to")]
pub enum Correction {
    #[serde(rename = "caller")]
    Caller(Personal<PhoneNumber>),
    #[serde(rename = "service_number")]
    ServiceNumber(PhoneNumber),
    #[serde(rename = "agent_name")]
    AgentName(Personal<String>),
    #[serde(rename = "started_at")]
    StartedAt(DateTime<Utc>),
    #[serde(rename = "ended_at")]
    EndedAt(DateTime<Utc>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRectified {
    pub call_id: CallId,
    pub correction: Correction,
    pub reason: Personal<String>,
    pub rectified_at: DateTime<Utc>,
}

/// Restriction of processing (R19, GDPR art. 18): kept, not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessingRestricted {
    pub contact: ContactRef,
    pub case_reference: String,
    pub reason: Personal<String>,
    pub restricted_at: DateTime<Utc>,
}

/// The restriction ends; the subject was told first (art. 18(3)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestrictionLifted {
    pub contact: ContactRef,
    pub subject_informed_at: DateTime<Utc>,
    pub reason: Personal<String>,
    pub lifted_at: DateTime<Utc>,
}
