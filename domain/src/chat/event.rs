//! What happens to a chat: it starts, messages are exchanged, it ends, and
//! either party may order the transcript to their own e-mail address (R3).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    email::EmailAddress,
    ids::{ChatId, EmailRequestId, StaffId},
    personal::Personal,
};

/// Who wrote a message or ordered a transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChatParty {
    #[serde(rename = "customer")]
    Customer,
    #[serde(rename = "agent")]
    Agent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatStarted {
    pub chat_id: ChatId,
    pub agent: StaffId,
    /// The service (queue) the customer chose, e.g. `benefits`.
    pub service: String,
    pub customer_name: Option<Personal<String>>,
    pub started_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessageAppended {
    pub chat_id: ChatId,
    /// 0-based number of the message in the transcript.
    pub seq: u32,
    pub from: ChatParty,
    pub text: Personal<String>,
    pub sent_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatEnded {
    pub chat_id: ChatId,
    pub ended_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatTranscriptEmailRequested {
    pub chat_id: ChatId,
    pub request_id: EmailRequestId,
    pub ordered_by: ChatParty,
    pub address: Personal<EmailAddress>,
    pub requested_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatTranscriptEmailed {
    pub chat_id: ChatId,
    pub request_id: EmailRequestId,
    /// The Message-ID the mail went out with.
    pub message_id: String,
    pub sent_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatTranscriptEmailFailed {
    pub chat_id: ChatId,
    pub request_id: EmailRequestId,
    pub attempt: u32,
    /// What the mail server said (no address, no transcript).
    pub error: String,
    /// No more attempts will be made.
    pub gave_up: bool,
    pub failed_at: DateTime<Utc>,
}
