//! Stream names: one stream per aggregate instance (`call-<uuid>`,
//! `chat-<uuid>`, `staff-<id>`) and one access log stream per actor
//! (`access-<staff id>`). The category is the part before the first `-`.

use crate::ids::{CallId, ChatId, StaffId};

pub const CALL_CATEGORY: &str = "call";
pub const CHAT_CATEGORY: &str = "chat";
pub const STAFF_CATEGORY: &str = "staff";
pub const ACCESS_CATEGORY: &str = "access";
/// Register-wide events (signed checkpoints).
pub const REGISTER_STREAM: &str = "register";

pub fn call(id: CallId) -> String {
    format!("{CALL_CATEGORY}-{id}")
}

pub fn chat(id: ChatId) -> String {
    format!("{CHAT_CATEGORY}-{id}")
}

pub fn staff(id: &StaffId) -> String {
    format!("{STAFF_CATEGORY}-{id}")
}

pub fn access(actor: &StaffId) -> String {
    format!("{ACCESS_CATEGORY}-{actor}")
}
