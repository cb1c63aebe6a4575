//! Access rights as events (R11): `grantRole`, `revokeRole`,
//! `reviewAccessRights`. Only administrators may call them; every change
//! is an event in the staff member's stream, with the decision it rests on.

use async_graphql::{InputObject, Object, SimpleObject};
use callvault_domain::{
    Role, StaffId,
    policy::Action,
    staff::{GrantRole, ReviewAccessRights, RevokeRole, StaffCommand, StaffState},
};
use chrono::{DateTime, NaiveDate, Utc};

use super::{gql_error, guard};
use crate::{error::AppError, service::Staff};

#[derive(InputObject, Debug)]
pub struct GrantRoleInput {
    pub staff_id: String,
    /// agent, supervisor, quality_expert, maintenance, security, auditor,
    /// case_worker, analyst, telephony, administrator
    pub role: String,
    /// For a supervisor: the agents they supervise.
    #[graphql(default)]
    pub supervises: Vec<String>,
    /// The rights decision this grant rests on.
    pub decision_reference: Option<String>,
}

#[derive(InputObject, Debug)]
pub struct RevokeRoleInput {
    pub staff_id: String,
    pub role: String,
    pub decision_reference: Option<String>,
}

#[derive(InputObject, Debug)]
pub struct ReviewAccessRightsInput {
    pub staff_id: String,
    /// Roles the review found unnecessary; they are removed.
    #[graphql(default)]
    pub remove: Vec<String>,
    /// When the next review is due.
    pub next_review_by: NaiveDate,
}

#[derive(SimpleObject, Debug)]
pub struct RoleHeld {
    pub role: String,
    pub supervises: Vec<String>,
    pub granted_at: DateTime<Utc>,
    pub decision_reference: Option<String>,
}

#[derive(SimpleObject, Debug)]
pub struct StaffRightsResult {
    pub staff_id: String,
    /// The roles held after the change.
    pub roles: Vec<RoleHeld>,
    pub last_reviewed_at: Option<DateTime<Utc>>,
    pub next_review_by: Option<NaiveDate>,
    pub log_position: String,
    /// The same change had already been made; nothing new was written.
    pub replayed: bool,
}

fn parse_role(field: &str, text: &str) -> Result<Role, AppError> {
    text.parse().map_err(|e| AppError::invalid(field, e))
}

fn parse_staff(field: &str, text: &str) -> Result<StaffId, AppError> {
    StaffId::parse(text).map_err(|e| AppError::invalid(field, e))
}

async fn change(
    ctx: &async_graphql::Context<'_>,
    staff_id: StaffId,
    command: StaffCommand,
) -> Result<StaffRightsResult, AppError> {
    let (registry, caller) = guard(ctx, Action::ManageRights).await?;
    let executed = registry
        .execute::<Staff>(&caller.id, &staff_id, command, None)
        .await?;
    let state: StaffState = registry.load::<Staff>(&staff_id).await?.state;
    Ok(StaffRightsResult {
        staff_id: staff_id.to_string(),
        roles: state
            .roles
            .iter()
            .map(|(role, g)| RoleHeld {
                role: role.name().to_owned(),
                supervises: g.supervises.iter().map(ToString::to_string).collect(),
                granted_at: g.granted_at,
                decision_reference: g.decision_reference.clone(),
            })
            .collect(),
        last_reviewed_at: state.last_reviewed_at,
        next_review_by: state.next_review_by,
        log_position: executed.position.to_string(),
        replayed: executed.replayed,
    })
}

#[derive(Default)]
pub struct StaffMutation;

#[Object]
impl StaffMutation {
    /// Grants a role. Granting a supervisor again with another team
    /// replaces the team.
    async fn grant_role(
        &self,
        ctx: &async_graphql::Context<'_>,
        input: GrantRoleInput,
    ) -> async_graphql::Result<StaffRightsResult> {
        async {
            let staff_id = parse_staff("staffId", &input.staff_id)?;
            let command = StaffCommand::GrantRole(GrantRole {
                role: parse_role("role", &input.role)?,
                supervises: input
                    .supervises
                    .iter()
                    .map(|s| parse_staff("supervises", s))
                    .collect::<Result<_, _>>()?,
                decision_reference: input.decision_reference,
            });
            change(ctx, staff_id, command).await
        }
        .await
        .map_err(gql_error)
    }

    /// Revokes a role the staff member holds.
    async fn revoke_role(
        &self,
        ctx: &async_graphql::Context<'_>,
        input: RevokeRoleInput,
    ) -> async_graphql::Result<StaffRightsResult> {
        async {
            let staff_id = parse_staff("staffId", &input.staff_id)?;
            let command = StaffCommand::RevokeRole(RevokeRole {
                role: parse_role("role", &input.role)?,
                decision_reference: input.decision_reference,
            });
            change(ctx, staff_id, command).await
        }
        .await
        .map_err(gql_error)
    }

    /// Records a periodic review of one staff member's rights (R11): which
    /// roles it removed and when the next review is due.
    async fn review_access_rights(
        &self,
        ctx: &async_graphql::Context<'_>,
        input: ReviewAccessRightsInput,
    ) -> async_graphql::Result<StaffRightsResult> {
        async {
            let staff_id = parse_staff("staffId", &input.staff_id)?;
            let command = StaffCommand::ReviewAccessRights(ReviewAccessRights {
                remove: input
                    .remove
                    .iter()
                    .map(|r| parse_role("remove", r))
                    .collect::<Result<_, _>>()?,
                next_review_by: input.next_review_by,
            });
            change(ctx, staff_id, command).await
        }
        .await
        .map_err(gql_error)
    }
}
