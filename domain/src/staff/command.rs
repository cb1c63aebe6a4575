//! What may be asked of a staff member's rights.

use chrono::NaiveDate;

use crate::{ids::StaffId, role::Role};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRole {
    pub role: Role,
    /// For a supervisor: the agents they supervise.
    pub supervises: Vec<StaffId>,
    pub decision_reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeRole {
    pub role: Role,
    pub decision_reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewAccessRights {
    /// Roles found unneeded; each must be held.
    pub remove: Vec<Role>,
    pub next_review_by: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaffCommand {
    GrantRole(GrantRole),
    RevokeRole(RevokeRole),
    ReviewAccessRights(ReviewAccessRights),
}
