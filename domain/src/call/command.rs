//! What may be asked of a call. Values are already parsed (phone numbers,
//! ids); free text is checked by `decide`.

use chrono::{DateTime, Utc};

use crate::{
    call::event::Direction,
    controls::{LiftRestriction, PlaceHold, PurgeContactHistory, ReleaseHold, RestrictProcessing},
    ids::{CallId, RecordingId, StaffId},
    phone::PhoneNumber,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartCall {
    pub call_id: CallId,
    pub direction: Direction,
    /// `None` when the caller withheld the number (CLIR, "salainen
    /// numero"): the call is still recorded.
    pub caller: Option<PhoneNumber>,
    pub service_number: PhoneNumber,
    pub agent: StaffId,
    pub agent_name: String,
    pub agent_number: Option<PhoneNumber>,
    pub started_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndCall {
    pub ended_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRecording {
    pub recording_id: RecordingId,
    pub codec: String,
    pub duration_ms: Option<u64>,
    pub size_bytes: u64,
    pub ciphertext_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRecording {
    pub recording_id: RecordingId,
    pub policy_version: u32,
    pub key_bucket: String,
}

/// A correction of a call's data (R18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorrectionInput {
    Caller(PhoneNumber),
    ServiceNumber(PhoneNumber),
    AgentName(String),
    StartedAt(DateTime<Utc>),
    EndedAt(DateTime<Utc>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RectifyCall {
    pub correction: CorrectionInput,
    pub reason: String,
    /// The client's id for this correction, so a resend after a lost
    /// answer is recognised instead of recorded twice.
    pub request_id: Option<uuid::Uuid>,
}

/// A command for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallCommand {
    Start(StartCall),
    End(EndCall),
    StoreRecording(StoreRecording),
    PurgeRecording(PurgeRecording),
    PlaceHold(PlaceHold),
    ReleaseHold(ReleaseHold),
    Rectify(RectifyCall),
    RestrictProcessing(RestrictProcessing),
    LiftRestriction(LiftRestriction),
    PurgeContactHistory(PurgeContactHistory),
}
