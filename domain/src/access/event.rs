//! The log of use (R12, R28; Finnish Act 906/2019 §17): every read of a
//! recording or of contact history, allowed or refused — who, what, when,
//! under which role and purpose. Appended to the actor's `access-` stream
//! before any data leaves.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    contact::ContactRef,
    ids::{CallId, RecordingId, StaffId},
    personal::Personal,
    role::{Purpose, Role},
};

/// How a recording was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccessMode {
    /// Streamed for listening.
    #[serde(rename = "listen")]
    Listen,
    /// Handed over as a file.
    #[serde(rename = "download")]
    Download,
    /// Played to a data subject in an audited session (R17, R29).
    #[serde(rename = "subject_session")]
    SubjectSession,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingAccessed {
    pub actor: StaffId,
    pub role: Option<Role>,
    pub call_id: CallId,
    pub recording_id: RecordingId,
    pub purpose: Purpose,
    pub mode: AccessMode,
    pub case_reference: Option<String>,
    /// The stated reason; required for break-glass reads.
    pub reason: Option<Personal<String>>,
    /// Read by maintenance or security staff "when needed" (R10): flagged
    /// for review.
    pub break_glass: bool,
    pub accessed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactHistoryRead {
    pub actor: StaffId,
    pub role: Option<Role>,
    pub contact: ContactRef,
    pub purpose: Purpose,
    pub case_reference: Option<String>,
    pub reason: Option<Personal<String>>,
    pub break_glass: bool,
    pub read_at: DateTime<Utc>,
}

/// A search over contact history: which contacts it revealed. The filter is
/// described by the fields used, never their values (a typed phone number
/// is personal data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactHistorySearched {
    pub actor: StaffId,
    pub role: Option<Role>,
    pub purpose: Purpose,
    pub case_reference: Option<String>,
    pub filter_fields: Vec<String>,
    pub results: Vec<ContactRef>,
    pub searched_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessDenied {
    pub actor: StaffId,
    pub role: Option<Role>,
    /// What was attempted, e.g. `play_recording`.
    pub action: String,
    pub contact: Option<ContactRef>,
    pub recording_id: Option<RecordingId>,
    pub purpose: Option<Purpose>,
    pub case_reference: Option<String>,
    /// The rule that refused it.
    pub rule: String,
    pub denied_at: DateTime<Utc>,
}
