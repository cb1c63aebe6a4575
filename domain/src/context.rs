//! What a decision may know about the world besides the aggregate's state:
//! the time and who is acting. Passed in, never read from a clock.

use chrono::{DateTime, Utc};

use crate::ids::StaffId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub now: DateTime<Utc>,
    pub actor: StaffId,
}

impl Context {
    pub fn new(now: DateTime<Utc>, actor: StaffId) -> Self {
        Self { now, actor }
    }
}
