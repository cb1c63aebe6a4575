//! What the register knows about one chat, folded from its events.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::{
    chat::event::ChatParty,
    controls::Controls,
    email::EmailAddress,
    ids::{ChatId, EmailRequestId, StaffId},
    personal::Personal,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatFacts {
    pub chat_id: ChatId,
    pub agent: StaffId,
    pub service: String,
    pub customer_name: Option<Personal<String>>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub from: ChatParty,
    pub text: Personal<String>,
    pub sent_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailStatus {
    Pending,
    Sent,
    /// Every attempt failed; no more will be made.
    GaveUp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailRequestFacts {
    pub ordered_by: ChatParty,
    pub address: Personal<EmailAddress>,
    pub requested_at: DateTime<Utc>,
    pub attempts: u32,
    pub status: EmailStatus,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatState {
    pub chat: Option<ChatFacts>,
    pub messages: Vec<ChatMessage>,
    pub email_requests: BTreeMap<EmailRequestId, EmailRequestFacts>,
    pub controls: Controls,
}

impl ChatState {
    pub fn check_invariants(&self) -> Result<(), String> {
        let Some(chat) = &self.chat else {
            if !self.messages.is_empty() || !self.email_requests.is_empty() {
                return Err("a chat that never started has messages or e-mail orders".into());
            }
            return Ok(());
        };
        if let Some(ended_at) = chat.ended_at {
            if ended_at < chat.started_at {
                return Err("chat ends before it starts".into());
            }
            if self.messages.iter().any(|m| m.sent_at > ended_at) {
                return Err("a message was sent after the chat ended".into());
            }
        }
        Ok(())
    }
}
