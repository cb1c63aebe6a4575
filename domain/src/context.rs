//! What a decision may know about the world besides the aggregate's state:
//! the time and who is acting. Passed in, never read from a clock.

use chrono::{DateTime, Utc};

use crate::{error::DomainError, ids::StaffId};

/// How far ahead of the register's clock a time another system reports
/// may be (clock skew). Further ahead would postpone what the time starts
/// — a call's or chat's retention — or keep it from ending.
pub const CLOCK_AHEAD_MINUTES: i64 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub now: DateTime<Utc>,
    pub actor: StaffId,
}

impl Context {
    pub fn new(now: DateTime<Utc>, actor: StaffId) -> Self {
        Self { now, actor }
    }

    /// Refuses a reported time (`field`) too far ahead of now.
    pub fn not_ahead(&self, field: &'static str, t: DateTime<Utc>) -> Result<(), DomainError> {
        if t > self.now + chrono::Duration::minutes(CLOCK_AHEAD_MINUTES) {
            return Err(DomainError::InvalidField {
                field,
                reason: format!(
                    "{t} is in the future (the register's time is {}); give the time it happened",
                    self.now
                ),
            });
        }
        Ok(())
    }
}
