//! The guard every reading or writing field and endpoint goes through:
//! the actor's roles come from the register (their `staff-` stream), the
//! decision from `callvault_domain::policy`, and every refusal is logged
//! as `AccessDenied` before the error leaves (R12, R28).

use std::collections::BTreeSet;

use callvault_domain::{
    ContactRef, Event, Personal, Purpose, RecordingId, Role, StaffId,
    access::{AccessDenied, ContactHistoryRead},
    policy::{self, Action, Decision, Refusal, Relation, Request, Target},
    staff::StaffState,
};

use crate::{error::AppError, service::Registry};

/// The authenticated actor with the roles the register holds for them now.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: StaffId,
    pub rights: StaffState,
}

impl Caller {
    pub async fn load(registry: &Registry, id: &StaffId) -> Result<Self, AppError> {
        let rights = registry.staff_rights(id).await?;
        Ok(Self {
            id: id.clone(),
            rights,
        })
    }

    pub fn roles(&self) -> BTreeSet<Role> {
        self.rights.roles.keys().copied().collect()
    }

    /// How a call handled by `agent` relates to this caller.
    pub fn relation(&self, agent: &str) -> Relation {
        Relation::of(&self.id, &self.rights, agent)
    }
}

/// What is being attempted, for the policy and for the log.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    pub purpose: Option<Purpose>,
    pub contact: Option<ContactRef>,
    pub recording_id: Option<RecordingId>,
    pub case_reference: Option<String>,
    pub reason: Option<String>,
}

impl Attempt {
    pub fn purpose(purpose: Purpose) -> Self {
        Self {
            purpose: Some(purpose),
            ..Self::default()
        }
    }

    fn reason_given(&self) -> bool {
        self.reason.as_deref().is_some_and(|r| !r.trim().is_empty())
    }
}

/// An allowed attempt: under which role, and whether it is a flagged
/// break-glass read. `gone`: allowed, but the recording was purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    pub role: Role,
    pub break_glass: bool,
    pub gone: bool,
}

/// Asks the policy; on a refusal appends `AccessDenied` and returns
/// `FORBIDDEN` with the reason.
pub async fn authorize(
    registry: &Registry,
    caller: &Caller,
    action: Action,
    attempt: &Attempt,
    target: Option<Target>,
) -> Result<Granted, AppError> {
    let decision = policy::decide(
        &caller.roles(),
        &Request {
            action,
            purpose: attempt.purpose,
            target,
            reason_given: attempt.reason_given(),
        },
    );
    match decision {
        Decision::Allow { role, break_glass } => Ok(Granted {
            role,
            break_glass,
            gone: false,
        }),
        Decision::Gone { role } => Ok(Granted {
            role,
            break_glass: false,
            gone: true,
        }),
        Decision::Deny { refusal, role } => {
            Err(deny(registry, caller, action, attempt, refusal, role).await)
        }
    }
}

/// Logs a refusal and returns the error to show.
pub async fn deny(
    registry: &Registry,
    caller: &Caller,
    action: Action,
    attempt: &Attempt,
    refusal: Refusal,
    role: Option<Role>,
) -> AppError {
    let event = Event::from(AccessDenied {
        actor: caller.id.clone(),
        role,
        action: action.name().to_owned(),
        contact: attempt.contact,
        recording_id: attempt.recording_id,
        purpose: attempt.purpose,
        case_reference: attempt.case_reference.as_deref().map(|c| {
            c.chars()
                .take(callvault_domain::error::MAX_CASE_REFERENCE)
                .collect()
        }),
        rule: refusal.name().to_owned(),
        denied_at: registry.now(),
    });
    if let Err(e) = crate::audio::record_access(registry, &caller.id, &[event]).await {
        // The refusal stands either way; a log that can't be written is
        // an operational fault worth its own error.
        return e;
    }
    AppError::Forbidden(refusal.explain(action))
}

/// Authorizes an action on no particular call (statistics, audit views,
/// rights, operations).
pub async fn authorize_plain(
    registry: &Registry,
    caller: &Caller,
    action: Action,
) -> Result<Granted, AppError> {
    authorize(registry, caller, action, &Attempt::default(), None).await
}

/// Logs that `caller` opened the attempt's contact (`ContactHistoryRead`),
/// before anything of it leaves.
pub async fn record_open(
    registry: &Registry,
    caller: &Caller,
    attempt: &Attempt,
    granted: Granted,
) -> Result<(), AppError> {
    let (Some(contact), Some(purpose)) = (attempt.contact, attempt.purpose) else {
        return Err(AppError::Internal(anyhow::anyhow!(
            "an open without a contact or a purpose"
        )));
    };
    let event = Event::from(ContactHistoryRead {
        actor: caller.id.clone(),
        role: Some(granted.role),
        contact,
        purpose,
        case_reference: attempt.case_reference.clone(),
        reason: attempt
            .reason
            .as_deref()
            .filter(|r| !r.trim().is_empty())
            .map(|r| {
                Personal::new(
                    r.chars()
                        .take(callvault_domain::error::MAX_REASON)
                        .collect(),
                )
            }),
        break_glass: granted.break_glass,
        read_at: registry.now(),
    });
    crate::audio::record_access(registry, &caller.id, &[event]).await
}

/// Lets `caller` open a call or chat handled by `agent` (the policy's
/// `ViewCall`), logging the open — or the refusal — first.
pub async fn open_contact(
    registry: &Registry,
    caller: &Caller,
    attempt: &Attempt,
    agent: &str,
    restricted: bool,
) -> Result<Granted, AppError> {
    let granted = authorize(
        registry,
        caller,
        Action::ViewCall,
        attempt,
        Some(Target {
            relation: caller.relation(agent),
            restricted,
            recording_purged: false,
        }),
    )
    .await?;
    record_open(registry, caller, attempt, granted).await?;
    Ok(granted)
}

/// What a search by `caller` may show: under which role, only the calls
/// of these agents (`None`: anyone's), and whether restricted ones too.
pub struct SearchScope {
    pub role: Role,
    pub agents: Option<Vec<StaffId>>,
    pub restricted: bool,
}

/// Asks the policy what a search for `attempt.purpose` may show; a search
/// nobody's role allows is logged as `AccessDenied` and refused.
pub async fn search_scope(
    registry: &Registry,
    caller: &Caller,
    attempt: &Attempt,
) -> Result<SearchScope, AppError> {
    match policy::visibility(&caller.id, &caller.rights, attempt.purpose, false) {
        Ok(policy::Visibility::All {
            restricted, role, ..
        }) => Ok(SearchScope {
            role,
            agents: None,
            restricted,
        }),
        Ok(policy::Visibility::Agents {
            agents,
            restricted,
            role,
        }) => Ok(SearchScope {
            role,
            agents: Some(agents),
            restricted,
        }),
        Err(Decision::Deny { refusal, role }) => Err(deny(
            registry,
            caller,
            Action::SearchCalls,
            attempt,
            refusal,
            role,
        )
        .await),
        Err(other) => Err(AppError::Internal(anyhow::anyhow!(
            "search visibility answered {other:?}"
        ))),
    }
}
