//! Calls over GraphQL: `startCall`, `endCall`, and `call(id)`.

use async_graphql::{Enum, ID, InputObject, Object, SimpleObject};
use callvault_domain::{
    CallId, ContactRef, HoldId, PhoneNumber, StaffId,
    call::{
        CallCommand, CallState, CorrectionInput, Direction as DomainDirection, EndCall,
        RectifyCall, StartCall,
    },
    controls::{LiftRestriction, PlaceHold, ReleaseHold, RestrictProcessing},
    policy::{Action, Target},
};
use callvault_store::Revision;
use chrono::{DateTime, NaiveDate, Utc};

use super::{caller, gql_error, guard};
use crate::{
    access::{Attempt, authorize},
    error::AppError,
    service::{Call, Executed},
};

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl From<Direction> for DomainDirection {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Inbound => DomainDirection::Inbound,
            Direction::Outbound => DomainDirection::Outbound,
        }
    }
}

impl From<DomainDirection> for Direction {
    fn from(d: DomainDirection) -> Self {
        match d {
            DomainDirection::Inbound => Direction::Inbound,
            DomainDirection::Outbound => Direction::Outbound,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallStatus {
    InProgress,
    Ended,
}

#[derive(SimpleObject, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recording {
    pub id: ID,
    pub codec: String,
    pub duration_ms: Option<u64>,
    pub size_bytes: u64,
    pub stored_at: DateTime<Utc>,
    /// When the recording's key was destroyed; null while it exists.
    pub purged_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    pub id: ID,
    pub case_reference: String,
    pub review_by: NaiveDate,
    pub placed_at: DateTime<Utc>,
    pub released_at: Option<DateTime<Utc>>,
}

/// One call as the register knows it now.
#[derive(SimpleObject, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallView {
    pub id: ID,
    /// Revision of the call's stream; pass it as `expectedRevision` to make
    /// sure nobody changed the call since you read it.
    pub revision: u64,
    pub direction: Direction,
    pub status: CallStatus,
    /// The customer's number in E.164; null once the call's personal data
    /// was purged, in a write's answer, and when the caller withheld it.
    pub caller_number: Option<String>,
    /// The caller withheld the number (the exchange got none), so the
    /// register never had it.
    pub caller_withheld: bool,
    pub service_number: String,
    pub agent_id: String,
    pub agent_name: Option<String>,
    pub agent_number: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<i64>,
    pub personal_data_shredded: bool,
    pub rectifications: u32,
    pub restricted: bool,
    pub recordings: Vec<Recording>,
    pub holds: Vec<Hold>,
}

/// A call as the log has it now; `None` if there is no such call.
pub(crate) async fn from_log(
    registry: &crate::service::Registry,
    id: CallId,
) -> Result<Option<CallView>, AppError> {
    let loaded = registry.load::<Call>(&id).await?;
    Ok(loaded
        .revision
        .and_then(|revision| CallView::from_state(&loaded.state, revision)))
}

impl CallView {
    pub(crate) fn from_state(state: &CallState, revision: Revision) -> Option<Self> {
        let call = state.call.as_ref()?;
        Some(Self {
            id: ID(call.call_id.to_string()),
            revision: revision.0,
            direction: call.direction.into(),
            status: if call.ended_at.is_some() {
                CallStatus::Ended
            } else {
                CallStatus::InProgress
            },
            caller_number: call.caller_in_clear().map(|p| p.to_string()),
            caller_withheld: call.caller.is_none(),
            service_number: call.service_number.to_string(),
            agent_id: call.agent.to_string(),
            agent_name: call.agent_name.clear().cloned(),
            agent_number: call
                .agent_number
                .as_ref()
                .and_then(|p| p.clear().map(|p| p.to_string())),
            started_at: call.started_at,
            ended_at: call.ended_at,
            duration_seconds: call.ended_at.map(|e| (e - call.started_at).num_seconds()),
            personal_data_shredded: state.controls.history_purged.is_some(),
            rectifications: call.rectifications,
            restricted: state.controls.is_restricted(),
            recordings: state
                .recordings
                .iter()
                .map(|(id, r)| Recording {
                    id: ID(id.to_string()),
                    codec: r.codec.clone(),
                    duration_ms: r.duration_ms,
                    size_bytes: r.size_bytes,
                    stored_at: r.stored_at,
                    purged_at: r.purged.as_ref().map(|p| p.purged_at),
                })
                .collect(),
            holds: state
                .controls
                .holds
                .iter()
                .map(|(id, h)| Hold {
                    id: ID(id.to_string()),
                    case_reference: h.case_reference.clone(),
                    review_by: h.review_by,
                    placed_at: h.placed_at,
                    released_at: h.released_at,
                })
                .collect(),
        })
    }
}

impl From<callvault_projections::models::calls::CallRow> for CallView {
    fn from(r: callvault_projections::models::calls::CallRow) -> Self {
        Self {
            id: ID(r.id.clone()),
            revision: r.revision,
            direction: r.direction.into(),
            status: if r.ended_at.is_some() {
                CallStatus::Ended
            } else {
                CallStatus::InProgress
            },
            duration_seconds: r.duration_seconds(),
            // The model keeps the number in clear until it is shredded.
            caller_withheld: r.caller.is_none() && !r.personal_data_shredded,
            caller_number: r.caller,
            service_number: r.service_number,
            agent_id: r.agent,
            agent_name: r.agent_name,
            agent_number: r.agent_number,
            started_at: r.started_at,
            ended_at: r.ended_at,
            personal_data_shredded: r.personal_data_shredded,
            rectifications: r.rectifications,
            restricted: r.restricted,
            recordings: r
                .recordings
                .into_iter()
                .map(|x| Recording {
                    id: ID(x.id),
                    codec: x.codec,
                    duration_ms: x.duration_ms,
                    size_bytes: x.size_bytes,
                    stored_at: x.stored_at,
                    purged_at: x.purged_at,
                })
                .collect(),
            holds: r
                .holds
                .into_iter()
                .map(|h| Hold {
                    id: ID(h.id),
                    case_reference: h.case_reference,
                    review_by: h.review_by,
                    placed_at: h.placed_at,
                    released_at: h.released_at,
                })
                .collect(),
        }
    }
}

/// What a call mutation did.
#[derive(SimpleObject, Debug)]
pub struct CallResult {
    /// The call after the write. Its personal data (caller number, agent
    /// name and number) is shown only in the answer to a fresh
    /// `startCall`, which brought it; otherwise it is null — read it
    /// with `call(id, purpose)`, which is checked and logged.
    pub call: CallView,
    /// Global log position of the last event written (or found, when
    /// `replayed`).
    pub log_position: String,
    /// The same command had already been executed; nothing new was
    /// written.
    pub replayed: bool,
}

#[derive(InputObject, Debug)]
pub struct StartCallInput {
    /// The call's id. Leave out to let the register make one, or give
    /// `sourceSystem` + `sourceCallId` so that retries make the same id.
    pub call_id: Option<ID>,
    pub source_system: Option<String>,
    pub source_call_id: Option<String>,
    pub direction: Direction,
    /// The customer's number, as typed: `040 123 4567`, `+358 40 123 4567`…
    /// Leave out (or null) when the caller withheld it: the call is still
    /// recorded, and reads with `callerNumber: null`.
    pub caller_number: Option<String>,
    /// The service number called (inbound) or called from (outbound).
    pub service_number: String,
    pub agent_id: String,
    pub agent_name: String,
    pub agent_number: Option<String>,
    /// Defaults to now.
    pub started_at: Option<DateTime<Utc>>,
}

#[derive(InputObject, Debug)]
pub struct EndCallInput {
    pub call_id: ID,
    /// Defaults to now.
    pub ended_at: Option<DateTime<Utc>>,
    /// Refuse (CONFLICT) unless the call is still at this revision.
    pub expected_revision: Option<u64>,
}

#[derive(InputObject, Debug)]
pub struct PlaceHoldInput {
    pub call_id: ID,
    /// Leave out to let the register make one.
    pub hold_id: Option<ID>,
    /// The complaint's case number, e.g. `KELA/123/2026`.
    pub case_reference: String,
    /// Why the recording must be kept (stored sealed: it may name people).
    pub reason: String,
    /// When the hold must be reviewed.
    pub review_by: NaiveDate,
    pub expected_revision: Option<u64>,
}

#[derive(InputObject, Debug)]
pub struct ReleaseHoldInput {
    pub call_id: ID,
    pub hold_id: ID,
    pub reason: String,
    pub expected_revision: Option<u64>,
}

#[derive(InputObject, Debug)]
pub struct RestrictProcessingInput {
    pub call_id: ID,
    pub case_reference: String,
    pub reason: String,
    pub expected_revision: Option<u64>,
}

#[derive(InputObject, Debug)]
pub struct LiftRestrictionInput {
    pub call_id: ID,
    /// When the data subject was told the restriction ends (GDPR art.
    /// 18(3)); required, and not in the future.
    pub subject_informed_at: DateTime<Utc>,
    pub reason: String,
    pub expected_revision: Option<u64>,
}

pub(crate) fn parse_call_id(field: &str, id: &ID) -> Result<CallId, AppError> {
    id.parse::<CallId>()
        .map_err(|e| AppError::invalid(field, e))
}

fn parse_phone(field: &str, typed: &str) -> Result<PhoneNumber, AppError> {
    PhoneNumber::parse(typed).map_err(|e| AppError::invalid(field, e))
}

fn parse_staff(field: &str, typed: &str) -> Result<StaffId, AppError> {
    StaffId::parse(typed).map_err(|e| AppError::invalid(field, e))
}

impl StartCallInput {
    fn call_id(&self) -> Result<CallId, AppError> {
        match (&self.call_id, &self.source_system, &self.source_call_id) {
            (Some(id), None, None) => parse_call_id("callId", id),
            (None, Some(system), Some(source_id)) => {
                if system.trim().is_empty() || source_id.trim().is_empty() {
                    return Err(AppError::invalid(
                        "sourceCallId",
                        "sourceSystem and sourceCallId must not be empty",
                    ));
                }
                Ok(CallId::from_source(system.trim(), source_id.trim()))
            }
            (None, None, None) => Ok(CallId(uuid::Uuid::now_v7())),
            _ => Err(AppError::invalid(
                "callId",
                "give either callId, or sourceSystem with sourceCallId, or neither",
            )),
        }
    }
}

#[derive(Default)]
pub struct CallQuery;

#[Object]
impl CallQuery {
    /// One call by id, from the `calls` read model; null if there is no
    /// such call. Opening a call states a purpose and is logged
    /// (`ContactHistoryRead`) before its data leaves; maintenance and
    /// security staff must also give a `reason` (a flagged break-glass read).
    async fn call(
        &self,
        ctx: &async_graphql::Context<'_>,
        id: ID,
        #[graphql(
            desc = "why you open it: verification, training, quality, legal_claim, data_subject_request, maintenance, security"
        )]
        purpose: String,
        reason: Option<String>,
        case_reference: Option<String>,
    ) -> async_graphql::Result<Option<CallView>> {
        async {
            let (registry, caller) = caller(ctx).await?;
            let call_id = parse_call_id("id", &id)?;
            let purpose = super::read::parse_purpose(&purpose)?;
            let attempt = Attempt {
                purpose: Some(purpose),
                contact: Some(ContactRef::Call(call_id)),
                recording_id: None,
                case_reference: case_reference.clone(),
                reason: reason.clone(),
            };
            let calls = callvault_projections::models::calls::NAME;
            let row = if super::read::stale(ctx, calls) {
                // The answering build no longer follows the log: whether
                // the call is restricted, and what it says, comes from the
                // log.
                from_log(registry, call_id).await?
            } else {
                let view = super::read::view(ctx, calls).await?;
                tokio::task::spawn_blocking(move || {
                    callvault_projections::models::calls::get(&view, call_id)
                })
                .await
                .map_err(|e| AppError::Internal(anyhow::anyhow!("query task failed: {e}")))?
                .map_err(super::read::projection_error)?
                .map(CallView::from)
            };
            let target = row.as_ref().map(|r| Target {
                relation: caller.relation(&r.agent_id),
                restricted: r.restricted,
                recording_purged: false,
            });
            // With no such call, still refuse someone no role lets open calls.
            let granted = authorize(
                registry,
                &caller,
                Action::ViewCall,
                &attempt,
                Some(target.unwrap_or(Target {
                    relation: callvault_domain::policy::Relation::Other,
                    restricted: false,
                    recording_purged: false,
                })),
            )
            .await;
            let granted = match (granted, &row) {
                (Ok(g), _) => g,
                (Err(AppError::Forbidden(_)), None) => return Ok(None),
                (Err(e), _) => return Err(e),
            };
            let Some(row) = row else {
                return Ok(None);
            };
            crate::access::record_open(registry, &caller, &attempt, granted).await?;
            Ok(Some(row))
        }
        .await
        .map_err(gql_error)
    }
}

#[derive(Default)]
pub struct CallMutation;

#[Object]
impl CallMutation {
    /// Records that a call started. Telephony systems should pass
    /// `sourceSystem` + `sourceCallId` so a retried request is recognised.
    async fn start_call(
        &self,
        ctx: &async_graphql::Context<'_>,
        input: StartCallInput,
    ) -> async_graphql::Result<CallResult> {
        start_call(ctx, input).await.map_err(gql_error)
    }

    /// Records that a call ended. A call ends once, and not before it
    /// started.
    async fn end_call(
        &self,
        ctx: &async_graphql::Context<'_>,
        input: EndCallInput,
    ) -> async_graphql::Result<CallResult> {
        end_call(ctx, input).await.map_err(gql_error)
    }
}

async fn start_call(
    ctx: &async_graphql::Context<'_>,
    input: StartCallInput,
) -> Result<CallResult, AppError> {
    let (registry, caller) = guard(ctx, Action::RecordCalls).await?;
    let actor = &caller.id;
    let call_id = input.call_id()?;
    // A resend that leaves the time out means "the start you recorded":
    // take its time, so the resend is recognised as the same command. Only
    // a call id the client gave can have been started before.
    let given_id = input.call_id.is_some() || input.source_call_id.is_some();
    let started_at = match input.started_at {
        Some(t) => t,
        None if given_id => registry
            .load::<Call>(&call_id)
            .await?
            .state
            .call
            .map_or_else(|| registry.now(), |c| c.started_at),
        None => registry.now(),
    };
    let command = CallCommand::Start(StartCall {
        call_id,
        direction: input.direction.into(),
        caller: input
            .caller_number
            .as_deref()
            .map(|n| parse_phone("callerNumber", n))
            .transpose()?,
        service_number: parse_phone("serviceNumber", &input.service_number)?,
        agent: parse_staff("agentId", &input.agent_id)?,
        agent_name: input.agent_name.clone(),
        agent_number: input
            .agent_number
            .as_deref()
            .map(|n| parse_phone("agentNumber", n))
            .transpose()?,
        started_at,
    });
    let executed = registry
        .execute::<Call>(actor, &call_id, command, None)
        .await?;
    result(registry, call_id, executed, Shows::WhatTheCallerSent).await
}

async fn end_call(
    ctx: &async_graphql::Context<'_>,
    input: EndCallInput,
) -> Result<CallResult, AppError> {
    let (registry, caller) = guard(ctx, Action::RecordCalls).await?;
    let actor = &caller.id;
    let call_id = parse_call_id("callId", &input.call_id)?;
    // Likewise a resend of an end without its time.
    let ended_at = match input.ended_at {
        Some(t) => t,
        None => registry
            .load::<Call>(&call_id)
            .await?
            .state
            .call
            .and_then(|c| c.ended_at)
            .unwrap_or_else(|| registry.now()),
    };
    let command = CallCommand::End(EndCall { ended_at });
    let executed = registry
        .execute::<Call>(
            actor,
            &call_id,
            command,
            input.expected_revision.map(Revision),
        )
        .await?;
    result(registry, call_id, executed, Shows::NoPersonalData).await
}

async fn command(
    ctx: &async_graphql::Context<'_>,
    action: Action,
    call_id: &ID,
    expected: Option<u64>,
    make: impl FnOnce() -> Result<CallCommand, AppError>,
) -> Result<CallResult, AppError> {
    let call_id = parse_call_id("callId", call_id)?;
    let command = make()?;
    let (registry, caller) = guard(ctx, action).await?;
    let executed = registry
        .execute::<Call>(&caller.id, &call_id, command, expected.map(Revision))
        .await?;
    result(registry, call_id, executed, Shows::NoPersonalData).await
}

#[derive(Default)]
pub struct HoldMutation;

#[Object]
impl HoldMutation {
    /// Places a complaint hold (R15): the call and its recordings are kept
    /// past retention until every hold is released. Holds are unlimited.
    async fn place_hold(
        &self,
        ctx: &async_graphql::Context<'_>,
        input: PlaceHoldInput,
    ) -> async_graphql::Result<CallResult> {
        command(
            ctx,
            Action::ManageHolds,
            &input.call_id,
            input.expected_revision,
            || {
                let hold_id = match &input.hold_id {
                    Some(id) => id
                        .parse::<HoldId>()
                        .map_err(|e| AppError::invalid("holdId", e))?,
                    None => HoldId(uuid::Uuid::now_v7()),
                };
                Ok(CallCommand::PlaceHold(PlaceHold {
                    hold_id,
                    case_reference: input.case_reference.clone(),
                    reason: input.reason.clone(),
                    review_by: input.review_by,
                }))
            },
        )
        .await
        .map_err(gql_error)
    }

    /// Releases one hold; once none is left the call follows retention
    /// again (and is purged by the next run if it is past its expiry).
    async fn release_hold(
        &self,
        ctx: &async_graphql::Context<'_>,
        input: ReleaseHoldInput,
    ) -> async_graphql::Result<CallResult> {
        command(
            ctx,
            Action::ManageHolds,
            &input.call_id,
            input.expected_revision,
            || {
                Ok(CallCommand::ReleaseHold(ReleaseHold {
                    hold_id: input
                        .hold_id
                        .parse::<HoldId>()
                        .map_err(|e| AppError::invalid("holdId", e))?,
                    reason: input.reason.clone(),
                }))
            },
        )
        .await
        .map_err(gql_error)
    }

    /// Restricts processing (R19, GDPR art. 18): the call is kept, not
    /// used, and not purged.
    async fn restrict_processing(
        &self,
        ctx: &async_graphql::Context<'_>,
        input: RestrictProcessingInput,
    ) -> async_graphql::Result<CallResult> {
        command(
            ctx,
            Action::ManageRestriction,
            &input.call_id,
            input.expected_revision,
            || {
                Ok(CallCommand::RestrictProcessing(RestrictProcessing {
                    case_reference: input.case_reference.clone(),
                    reason: input.reason.clone(),
                }))
            },
        )
        .await
        .map_err(gql_error)
    }

    /// Lifts a restriction once the data subject has been told.
    async fn lift_restriction(
        &self,
        ctx: &async_graphql::Context<'_>,
        input: LiftRestrictionInput,
    ) -> async_graphql::Result<CallResult> {
        command(
            ctx,
            Action::ManageRestriction,
            &input.call_id,
            input.expected_revision,
            || {
                Ok(CallCommand::LiftRestriction(LiftRestriction {
                    subject_informed_at: input.subject_informed_at,
                    reason: input.reason.clone(),
                }))
            },
        )
        .await
        .map_err(gql_error)
    }
}

/// A correction of one field (R18): give exactly one.
#[derive(InputObject, Debug)]
pub struct RectifyCallInput {
    pub call_id: ID,
    pub caller_number: Option<String>,
    pub service_number: Option<String>,
    pub agent_name: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Why, e.g. the data subject's request and its reference.
    pub reason: String,
    pub expected_revision: Option<u64>,
    /// Your id for this correction (a UUID): a resend after a lost answer
    /// is then answered `replayed: true` instead of recorded twice.
    pub request_id: Option<ID>,
}

impl RectifyCallInput {
    fn correction(&self) -> Result<CorrectionInput, AppError> {
        let mut given = Vec::new();
        if let Some(n) = &self.caller_number {
            given.push(CorrectionInput::Caller(parse_phone("callerNumber", n)?));
        }
        if let Some(n) = &self.service_number {
            given.push(CorrectionInput::ServiceNumber(parse_phone(
                "serviceNumber",
                n,
            )?));
        }
        if let Some(n) = &self.agent_name {
            given.push(CorrectionInput::AgentName(n.clone()));
        }
        if let Some(t) = self.started_at {
            given.push(CorrectionInput::StartedAt(t));
        }
        if let Some(t) = self.ended_at {
            given.push(CorrectionInput::EndedAt(t));
        }
        match given.len() {
            1 => Ok(given.remove(0)),
            0 => Err(AppError::invalid(
                "input",
                "give one field to correct: callerNumber, serviceNumber, agentName, startedAt or endedAt",
            )),
            _ => Err(AppError::invalid(
                "input",
                "correct one field per rectification, so each has its own reason",
            )),
        }
    }
}

#[derive(Default)]
pub struct CaseMutation;

#[Object]
impl CaseMutation {
    /// Records a rectification (R18) as a new event; the original value
    /// stays in the history.
    async fn rectify_call(
        &self,
        ctx: &async_graphql::Context<'_>,
        input: RectifyCallInput,
    ) -> async_graphql::Result<CallResult> {
        command(
            ctx,
            Action::Rectify,
            &input.call_id,
            input.expected_revision,
            || {
                let request_id = match &input.request_id {
                    Some(id) => Some(
                        id.parse::<uuid::Uuid>()
                            .map_err(|e| AppError::invalid("requestId", e))?,
                    ),
                    None => None,
                };
                Ok(CallCommand::Rectify(RectifyCall {
                    correction: input.correction()?,
                    reason: input.reason.clone(),
                    request_id,
                }))
            },
        )
        .await
        .map_err(gql_error)
    }
}

/// Whether a command's result may show the call's personal data: only a
/// fresh start, whose caller supplied that data itself. Every other write
/// (and a replayed start) answers without it — reading a call is
/// `call(id, purpose)`, checked and logged (R8, R12, R19).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shows {
    WhatTheCallerSent,
    NoPersonalData,
}

async fn result(
    registry: &crate::service::Registry,
    call_id: CallId,
    executed: Executed,
    shows: Shows,
) -> Result<CallResult, AppError> {
    let loaded = registry.load::<Call>(&call_id).await?;
    let mut call = loaded
        .revision
        .and_then(|r| CallView::from_state(&loaded.state, r))
        .ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!("call {call_id} vanished after a write"))
        })?;
    if shows == Shows::NoPersonalData || executed.replayed {
        call.caller_number = None;
        call.agent_name = None;
        call.agent_number = None;
    }
    Ok(CallResult {
        call,
        log_position: executed.position.to_string(),
        replayed: executed.replayed,
    })
}
