//! Why a command was refused. Each variant names the broken rule and
//! carries what a caller needs to understand it; none carries personal data.

use chrono::{DateTime, Utc};

use crate::{
    contact::ContactRef,
    ids::{CallId, ChatId, EmailRequestId, HoldId, RecordingId, StaffId},
    role::Role,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("call {call_id} has already started")]
    CallAlreadyStarted { call_id: CallId },
    #[error("call {call_id} does not exist (it has not started)")]
    CallNotStarted { call_id: CallId },
    #[error("call {call_id} already ended at {ended_at}")]
    CallAlreadyEnded {
        call_id: CallId,
        ended_at: DateTime<Utc>,
    },
    #[error("call {call_id} can't end at {ended_at}, before it started at {started_at}")]
    EndBeforeStart {
        call_id: CallId,
        started_at: DateTime<Utc>,
        ended_at: DateTime<Utc>,
    },
    #[error("call {call_id} has not ended yet")]
    CallNotEnded { call_id: CallId },
    #[error("recording {recording_id} is already stored")]
    RecordingAlreadyStored { recording_id: RecordingId },
    #[error("call {call_id} has no recording {recording_id}")]
    UnknownRecording {
        call_id: CallId,
        recording_id: RecordingId,
    },
    #[error("recording {recording_id} was purged at {purged_at}")]
    RecordingPurged {
        recording_id: RecordingId,
        purged_at: DateTime<Utc>,
    },
    #[error("{contact} is under {holds} complaint hold(s) and can't be purged")]
    OnHold { contact: ContactRef, holds: usize },
    #[error("processing of {contact} is restricted; it can't be {action}")]
    Restricted {
        contact: ContactRef,
        action: &'static str,
    },
    #[error("every recording of call {call_id} was already purged; there is nothing left to hold")]
    AllRecordingsPurged { call_id: CallId },
    #[error("the personal data of {contact} was purged at {purged_at}")]
    ContactHistoryPurged {
        contact: ContactRef,
        purged_at: DateTime<Utc>,
    },
    #[error("{contact} has no hold {hold_id}")]
    UnknownHold {
        contact: ContactRef,
        hold_id: HoldId,
    },
    #[error("hold {hold_id} already exists")]
    HoldAlreadyPlaced { hold_id: HoldId },
    #[error("hold {hold_id} was already released at {released_at}")]
    HoldAlreadyReleased {
        hold_id: HoldId,
        released_at: DateTime<Utc>,
    },
    #[error("processing of {contact} is already restricted")]
    AlreadyRestricted { contact: ContactRef },
    #[error("processing of {contact} is not restricted")]
    NotRestricted { contact: ContactRef },
    #[error(
        "the data subject must be informed before the restriction is lifted, not in the future ({informed_at})"
    )]
    SubjectInformedInFuture { informed_at: DateTime<Utc> },
    #[error("chat {chat_id} has already started")]
    ChatAlreadyStarted { chat_id: ChatId },
    #[error("chat {chat_id} does not exist (it has not started)")]
    ChatNotStarted { chat_id: ChatId },
    #[error("chat {chat_id} already ended at {ended_at}")]
    ChatAlreadyEnded {
        chat_id: ChatId,
        ended_at: DateTime<Utc>,
    },
    #[error("chat {chat_id} has no e-mail order {request_id}")]
    UnknownEmailRequest {
        chat_id: ChatId,
        request_id: EmailRequestId,
    },
    #[error("e-mail order {request_id} already exists")]
    EmailRequestExists { request_id: EmailRequestId },
    #[error("e-mail order {request_id} is already settled (sent or given up)")]
    EmailRequestSettled { request_id: EmailRequestId },
    #[error("{staff_id} already holds the role {role}")]
    RoleAlreadyHeld { staff_id: StaffId, role: Role },
    #[error("{staff_id} does not hold the role {role}")]
    RoleNotHeld { staff_id: StaffId, role: Role },
    #[error("{field} is invalid: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("command is for {command_for} but was sent to {aggregate}")]
    WrongAggregate {
        command_for: String,
        aggregate: String,
    },
}

/// Checks a required free-text field: trimmed, non-empty, at most `max`
/// characters.
pub fn required_text(field: &'static str, value: &str, max: usize) -> Result<String, DomainError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(DomainError::InvalidField {
            field,
            reason: "it is empty".into(),
        });
    }
    let n = trimmed.chars().count();
    if n > max {
        return Err(DomainError::InvalidField {
            field,
            reason: format!("it has {n} characters; at most {max} are allowed"),
        });
    }
    Ok(trimmed.to_owned())
}

/// Longest case reference accepted.
pub const MAX_CASE_REFERENCE: usize = 100;
/// Longest free-text reason accepted.
pub const MAX_REASON: usize = 2000;
