//! A reference to one contact — a call or a chat — the unit that retention,
//! holds, restriction, access and personal-data keys apply to.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{CallId, ChatId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id")]
pub enum ContactRef {
    #[serde(rename = "call")]
    Call(CallId),
    #[serde(rename = "chat")]
    Chat(ChatId),
}

impl ContactRef {
    /// The event stream that holds this contact's history.
    pub fn stream_name(&self) -> String {
        match self {
            ContactRef::Call(id) => crate::streams::call(*id),
            ContactRef::Chat(id) => crate::streams::chat(*id),
        }
    }

    pub fn call_id(&self) -> Option<CallId> {
        match self {
            ContactRef::Call(id) => Some(*id),
            ContactRef::Chat(_) => None,
        }
    }

    pub fn chat_id(&self) -> Option<ChatId> {
        match self {
            ContactRef::Chat(id) => Some(*id),
            ContactRef::Call(_) => None,
        }
    }
}

impl fmt::Display for ContactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContactRef::Call(id) => write!(f, "call {id}"),
            ContactRef::Chat(id) => write!(f, "chat {id}"),
        }
    }
}
