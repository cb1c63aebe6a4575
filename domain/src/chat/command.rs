//! What may be asked of a chat.

use chrono::{DateTime, Utc};

use crate::{
    chat::event::ChatParty,
    controls::{LiftRestriction, PlaceHold, PurgeContactHistory, ReleaseHold, RestrictProcessing},
    email::EmailAddress,
    ids::{ChatId, EmailRequestId, StaffId},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartChat {
    pub chat_id: ChatId,
    pub agent: StaffId,
    pub service: String,
    pub customer_name: Option<String>,
    pub started_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendChatMessage {
    pub from: ChatParty,
    pub text: String,
    pub sent_at: DateTime<Utc>,
    /// The chat system's own id of the message, if it gives one: a resend
    /// with the same id (and time) is recognised, not appended twice.
    pub client_message_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndChat {
    pub ended_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTranscriptEmail {
    pub request_id: EmailRequestId,
    pub ordered_by: ChatParty,
    pub address: EmailAddress,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordTranscriptEmailed {
    pub request_id: EmailRequestId,
    pub message_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordTranscriptEmailFailed {
    pub request_id: EmailRequestId,
    pub error: String,
    pub gave_up: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatCommand {
    Start(StartChat),
    AppendMessage(AppendChatMessage),
    End(EndChat),
    RequestTranscriptEmail(RequestTranscriptEmail),
    RecordTranscriptEmailed(RecordTranscriptEmailed),
    RecordTranscriptEmailFailed(RecordTranscriptEmailFailed),
    PlaceHold(PlaceHold),
    ReleaseHold(ReleaseHold),
    RestrictProcessing(RestrictProcessing),
    LiftRestriction(LiftRestriction),
    PurgeContactHistory(PurgeContactHistory),
}
