//! The rules of rights: a role is granted once (a supervisor's team may be
//! re-granted), only held roles are revoked or removed by a review.

use std::collections::BTreeSet;

use crate::{
    context::Context,
    error::{DomainError, MAX_CASE_REFERENCE, required_text},
    event::Event,
    ids::StaffId,
    role::Role,
    staff::{command::*, event::*, state::*},
};

pub fn decide(
    state: &StaffState,
    staff_id: &StaffId,
    command: StaffCommand,
    ctx: &Context,
) -> Result<Vec<Event>, DomainError> {
    match command {
        StaffCommand::GrantRole(cmd) => {
            if cmd.role != Role::Supervisor && !cmd.supervises.is_empty() {
                return Err(DomainError::InvalidField {
                    field: "supervises",
                    reason: format!("only a supervisor supervises agents, not a {}", cmd.role),
                });
            }
            if cmd.supervises.contains(staff_id) {
                return Err(DomainError::InvalidField {
                    field: "supervises",
                    reason: "a supervisor can't supervise themselves".into(),
                });
            }
            let supervises: Vec<StaffId> = cmd
                .supervises
                .into_iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if let Some(grant) = state.roles.get(&cmd.role)
                && grant.supervises == supervises
            {
                return Err(DomainError::RoleAlreadyHeld {
                    staff_id: staff_id.clone(),
                    role: cmd.role,
                });
            }
            // Four eyes: nobody widens their own rights (an administrator
            // granting themselves `security` to listen, or `auditor`).
            if ctx.actor == *staff_id {
                return Err(DomainError::InvalidField {
                    field: "staffId",
                    reason: "nobody grants a role to themselves: another administrator must".into(),
                });
            }
            Ok(vec![
                RoleGranted {
                    staff_id: staff_id.clone(),
                    role: cmd.role,
                    supervises,
                    decision_reference: reference(cmd.decision_reference)?,
                    granted_at: ctx.now,
                }
                .into(),
            ])
        }
        StaffCommand::RevokeRole(cmd) => {
            if !state.has_role(cmd.role) {
                return Err(DomainError::RoleNotHeld {
                    staff_id: staff_id.clone(),
                    role: cmd.role,
                });
            }
            Ok(vec![
                RoleRevoked {
                    staff_id: staff_id.clone(),
                    role: cmd.role,
                    decision_reference: reference(cmd.decision_reference)?,
                    revoked_at: ctx.now,
                }
                .into(),
            ])
        }
        StaffCommand::ReviewAccessRights(cmd) => {
            let remove: BTreeSet<Role> = cmd.remove.into_iter().collect();
            if let Some(role) = remove.iter().find(|r| !state.has_role(**r)) {
                return Err(DomainError::RoleNotHeld {
                    staff_id: staff_id.clone(),
                    role: *role,
                });
            }
            if cmd.next_review_by <= ctx.now.date_naive() {
                return Err(DomainError::InvalidField {
                    field: "nextReviewBy",
                    reason: format!("{} is not in the future", cmd.next_review_by),
                });
            }
            Ok(vec![
                AccessRightsReviewed {
                    staff_id: staff_id.clone(),
                    removed: remove.into_iter().collect(),
                    next_review_by: cmd.next_review_by,
                    reviewed_at: ctx.now,
                }
                .into(),
            ])
        }
    }
}

fn reference(r: Option<String>) -> Result<Option<String>, DomainError> {
    r.filter(|s| !s.trim().is_empty())
        .map(|s| required_text("decisionReference", &s, MAX_CASE_REFERENCE))
        .transpose()
}

pub fn evolve(mut state: StaffState, event: &Event) -> StaffState {
    match event {
        Event::RoleGranted(e) => {
            state.roles.insert(
                e.role,
                Grant {
                    supervises: e.supervises.clone(),
                    decision_reference: e.decision_reference.clone(),
                    granted_at: e.granted_at,
                },
            );
        }
        Event::RoleRevoked(e) => {
            state.roles.remove(&e.role);
        }
        Event::AccessRightsReviewed(e) => {
            for role in &e.removed {
                state.roles.remove(role);
            }
            state.last_reviewed_at = Some(e.reviewed_at);
            state.next_review_by = Some(e.next_review_by);
        }
        _ => {}
    }
    state
}

pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> StaffState {
    events.into_iter().fold(StaffState::default(), evolve)
}
