//! The roles one staff member holds now, folded from their events.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use crate::{ids::StaffId, role::Role};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub supervises: Vec<StaffId>,
    pub decision_reference: Option<String>,
    pub granted_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaffState {
    pub roles: BTreeMap<Role, Grant>,
    pub last_reviewed_at: Option<DateTime<Utc>>,
    pub next_review_by: Option<NaiveDate>,
}

impl StaffState {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains_key(&role)
    }

    /// The agents this staff member supervises (empty unless a supervisor).
    pub fn supervised_agents(&self) -> &[StaffId] {
        self.roles
            .get(&Role::Supervisor)
            .map_or(&[], |g| g.supervises.as_slice())
    }

    pub fn check_invariants(&self) -> Result<(), String> {
        for (role, grant) in &self.roles {
            if *role != Role::Supervisor && !grant.supervises.is_empty() {
                return Err(format!("role {role} carries supervised agents"));
            }
        }
        Ok(())
    }
}
