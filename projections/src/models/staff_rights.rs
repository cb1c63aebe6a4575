//! `staff_rights`: who held which role when (R11). Each grant is an
//! interval, closed by a revocation, a review that removed it, or a new
//! grant of the same role (a supervisor's changed team), so the roles of
//! anyone at any past instant can be answered — and whose review is due.

use std::collections::BTreeMap;

use callvault_domain::{Event, Role};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    projection::{Envelope, Projection, ProjectionError, key, time_key},
    view::{Tx, ViewDb},
};

pub const NAME: &str = "staff_rights";
/// v1: first version.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRow {
    pub staff_id: String,
    pub role: Role,
    pub supervises: Vec<String>,
    pub decision_reference: Option<String>,
    pub granted_at: DateTime<Utc>,
    pub granted_by: String,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<String>,
}

impl GrantRow {
    pub fn held_at(&self, at: DateTime<Utc>) -> bool {
        self.granted_at <= at && self.ended_at.is_none_or(|e| e > at)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffSummary {
    /// Role → key of its open grant.
    pub current: BTreeMap<Role, Vec<u8>>,
    pub last_reviewed_at: Option<DateTime<Utc>>,
    pub next_review_by: Option<NaiveDate>,
}

pub struct StaffRights;

fn summary_key(staff: &str) -> Vec<u8> {
    key(&[b"s", staff.as_bytes()])
}

fn grant_key(staff: &str, granted_at: DateTime<Utc>, role: Role) -> Vec<u8> {
    key(&[
        b"g",
        staff.as_bytes(),
        &time_key(granted_at),
        role.name().as_bytes(),
    ])
}

fn close(
    tx: &mut Tx<'_>,
    grant: &[u8],
    at: DateTime<Utc>,
    by: &str,
) -> Result<(), ProjectionError> {
    if let Some(mut g) = tx.get_json::<GrantRow>(grant)? {
        g.ended_at = Some(at);
        g.ended_by = Some(by.to_owned());
        tx.put_json(grant.to_vec(), &g);
    }
    Ok(())
}

impl Projection for StaffRights {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        VERSION
    }

    fn apply(&self, tx: &mut Tx<'_>, env: &Envelope) -> Result<(), ProjectionError> {
        let staff = match &env.event {
            Event::RoleGranted(e) => e.staff_id.to_string(),
            Event::RoleRevoked(e) => e.staff_id.to_string(),
            Event::AccessRightsReviewed(e) => e.staff_id.to_string(),
            _ => return Ok(()),
        };
        let mut summary = tx
            .get_json::<StaffSummary>(&summary_key(&staff))?
            .unwrap_or_default();
        match &env.event {
            Event::RoleGranted(e) => {
                if let Some(open) = summary.current.remove(&e.role) {
                    close(tx, &open, e.granted_at, &env.actor)?;
                }
                let k = grant_key(&staff, e.granted_at, e.role);
                tx.put_json(
                    k.clone(),
                    &GrantRow {
                        staff_id: staff.clone(),
                        role: e.role,
                        supervises: e.supervises.iter().map(ToString::to_string).collect(),
                        decision_reference: e.decision_reference.clone(),
                        granted_at: e.granted_at,
                        granted_by: env.actor.clone(),
                        ended_at: None,
                        ended_by: None,
                    },
                );
                summary.current.insert(e.role, k);
            }
            Event::RoleRevoked(e) => {
                if let Some(open) = summary.current.remove(&e.role) {
                    close(tx, &open, e.revoked_at, &env.actor)?;
                }
            }
            Event::AccessRightsReviewed(e) => {
                for role in &e.removed {
                    if let Some(open) = summary.current.remove(role) {
                        close(tx, &open, e.reviewed_at, &env.actor)?;
                    }
                }
                if let Some(old) = summary.next_review_by {
                    tx.delete(key(&[b"d", old.to_string().as_bytes(), staff.as_bytes()]));
                }
                summary.last_reviewed_at = Some(e.reviewed_at);
                summary.next_review_by = Some(e.next_review_by);
                tx.put(
                    key(&[
                        b"d",
                        e.next_review_by.to_string().as_bytes(),
                        staff.as_bytes(),
                    ]),
                    Vec::new(),
                );
            }
            _ => {}
        }
        tx.put_json(summary_key(&staff), &summary);
        Ok(())
    }
}

/// Grants held at `at`, for one staff member or everyone.
pub fn rights_at(
    view: &ViewDb,
    staff: Option<&str>,
    at: DateTime<Utc>,
) -> Result<Vec<GrantRow>, ProjectionError> {
    let base = match staff {
        Some(s) => key(&[b"g", s.as_bytes(), b""]),
        None => key(&[b"g", b""]),
    };
    let mut out = Vec::new();
    for entry in view.scan(&base, None, false) {
        let (_, v) = entry?;
        let g: GrantRow = serde_json::from_slice(&v)
            .map_err(|e| ProjectionError::Storage(format!("a grant row: {e}")))?;
        if g.held_at(at) {
            out.push(g);
        }
    }
    Ok(out)
}

/// Every grant a staff member ever had, oldest first.
pub fn history(view: &ViewDb, staff: &str) -> Result<Vec<GrantRow>, ProjectionError> {
    let base = key(&[b"g", staff.as_bytes(), b""]);
    view.scan(&base, None, false)
        .map(|entry| {
            let (_, v) = entry?;
            serde_json::from_slice(&v)
                .map_err(|e| ProjectionError::Storage(format!("a grant row: {e}")))
        })
        .collect()
}

/// Staff whose rights review is due on or before `by`, and when; staff
/// with roles who were never reviewed are due at once (`None`).
pub fn reviews_due(
    view: &ViewDb,
    by: NaiveDate,
) -> Result<Vec<(String, Option<NaiveDate>)>, ProjectionError> {
    let mut out = Vec::new();
    let base = key(&[b"s", b""]);
    for entry in view.scan(&base, None, false) {
        let (k, v) = entry?;
        let staff = String::from_utf8_lossy(&k[base.len()..]).into_owned();
        let s: StaffSummary = serde_json::from_slice(&v)
            .map_err(|e| ProjectionError::Storage(format!("a staff row: {e}")))?;
        if s.current.is_empty() {
            continue;
        }
        match s.next_review_by {
            None => out.push((staff, None)),
            Some(d) if d <= by => out.push((staff, Some(d))),
            Some(_) => {}
        }
    }
    Ok(out)
}
