//! Access rights as events (R11): grants, revocations and the regular
//! review that removes unneeded rights. Rights-procedure decisions are named
//! by reference; these events carry no free text.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{ids::StaffId, role::Role};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGranted {
    pub staff_id: StaffId,
    pub role: Role,
    /// For a supervisor: the agents whose calls they may see.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supervises: Vec<StaffId>,
    /// The rights-procedure decision, e.g. a case number.
    pub decision_reference: Option<String>,
    pub granted_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRevoked {
    pub staff_id: StaffId,
    pub role: Role,
    pub decision_reference: Option<String>,
    pub revoked_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRightsReviewed {
    pub staff_id: StaffId,
    /// Roles the review found unneeded and removed.
    pub removed: Vec<Role>,
    pub next_review_by: NaiveDate,
    pub reviewed_at: DateTime<Utc>,
}
