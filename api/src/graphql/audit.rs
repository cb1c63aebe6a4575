//! The auditor's window on the log itself: `history` (the events,
//! decoded to their current schema, filtered and paged), `callAsOf` (a
//! call as the register knew it at an instant) and `staffAsOf` (a staff
//! member's roles then, and the calls those roles let them open then).

use async_graphql::{ID, InputObject, Json, Object, SimpleObject};
use callvault_domain::{
    ContactRef, Event, StaffId, access::ContactHistorySearched, policy::Action,
};
use chrono::{DateTime, Utc};

use super::{call::CallView, caller, gql_error, guard, read::parse_purpose};
use crate::{
    access::{Attempt, authorize},
    audit::{self, HistoryFilter},
    error::AppError,
};

/// Most events one `history` page scans before answering with a cursor.
const MAX_SCAN: usize = 50_000;

#[derive(InputObject, Debug, Default)]
pub struct HistoryInput {
    pub stream: Option<String>,
    /// `call`, `chat`, `staff`, `access` or `register`.
    pub category: Option<String>,
    pub event_type: Option<String>,
    pub actor: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only events up to this log position.
    pub until_position: Option<String>,
}

#[derive(SimpleObject, Debug)]
pub struct HistoryEvent {
    pub position: String,
    pub stream: String,
    pub revision: u64,
    pub event_type: String,
    /// The schema version it was stored with; `data` is upcast from it.
    pub stored_version: u32,
    pub recorded_at: DateTime<Utc>,
    pub actor: String,
    /// The event in its current schema; shredded personal data shows as
    /// `{"$shredded": true}`.
    pub data: Json<serde_json::Value>,
}

#[derive(SimpleObject, Debug)]
pub struct HistoryConnection {
    pub items: Vec<HistoryEvent>,
    /// Pass as `after` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

#[derive(SimpleObject, Debug)]
pub struct RoleThen {
    pub role: String,
    pub supervises: Vec<String>,
    pub granted_at: DateTime<Utc>,
}

#[derive(SimpleObject, Debug)]
pub struct OpenableCall {
    pub call_id: ID,
    pub agent_id: String,
    pub started_at: DateTime<Utc>,
    pub restricted: bool,
    pub role: String,
    pub purposes: Vec<String>,
    pub break_glass: bool,
}

#[derive(SimpleObject, Debug)]
pub struct StaffAsOf {
    pub staff_id: String,
    pub at: DateTime<Utc>,
    pub roles: Vec<RoleThen>,
    /// `all calls`, `own and supervised agents' calls` or `no calls`.
    pub reach: String,
    /// The calls reachable then (empty when `reach` is all calls).
    pub calls: Vec<OpenableCall>,
}

fn parse_position(field: &str, text: &str) -> Result<u64, AppError> {
    text.trim()
        .parse()
        .map_err(|_| AppError::invalid(field, "is not a log position (a whole number)"))
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The event history, oldest first, decoded and upcast (auditors).
    /// Logged as a search of contact history, with the filters used.
    async fn history(
        &self,
        ctx: &async_graphql::Context<'_>,
        purpose: String,
        filter: Option<HistoryInput>,
        first: Option<i32>,
        after: Option<String>,
        case_reference: Option<String>,
    ) -> async_graphql::Result<HistoryConnection> {
        async {
            let (registry, caller) = caller(ctx).await?;
            let purpose = parse_purpose(&purpose)?;
            let input = filter.unwrap_or_default();
            let filter = HistoryFilter {
                stream: input.stream,
                category: input.category,
                event_type: input.event_type,
                actor: input.actor,
                after: after
                    .as_deref()
                    .map(|a| parse_position("after", a))
                    .transpose()?,
                until_position: input
                    .until_position
                    .as_deref()
                    .map(|p| parse_position("untilPosition", p))
                    .transpose()?,
                since: input.since,
                until: input.until,
            };
            let attempt = Attempt {
                case_reference: case_reference.clone(),
                ..Attempt::purpose(purpose)
            };
            let granted = authorize(registry, &caller, Action::ReadHistory, &attempt, None).await?;
            let limit = super::read::page_size(first)?;
            let mut page = audit::history_page(registry, &filter, limit, Some(MAX_SCAN)).await?;
            let mut contacts: Vec<ContactRef> = page
                .entries
                .iter()
                .filter_map(|e| e.event.as_ref().and_then(Event::key_owner))
                .collect();
            contacts.sort();
            contacts.dedup();
            // A contact whose processing is restricted now shows its
            // personal data only for the purposes the law allows (R19).
            if !callvault_domain::policy::RESTRICTED_PURPOSES.contains(&purpose) {
                let mut restricted = std::collections::BTreeSet::new();
                for c in &contacts {
                    if audit::restricted_now(registry, *c).await? {
                        restricted.insert(*c);
                    }
                }
                for e in &mut page.entries {
                    let owner = e.event.as_ref().and_then(Event::key_owner);
                    if let (Some(owner), Some(stored)) = (owner, &e.stored)
                        && restricted.contains(&owner)
                    {
                        // Fails closed: anything short of a clean sealed
                        // decode withholds the whole event's data.
                        let whole = || serde_json::json!({"$withheld": "processing is restricted"});
                        e.data = match registry
                            .journal()
                            .decode_sealed(stored)
                            .ok()
                            .and_then(|sealed| serde_json::to_value(&sealed).ok())
                        {
                            Some(sealed) => {
                                audit::withhold(&e.data, &sealed, "processing is restricted")
                            }
                            None => whole(),
                        };
                    }
                }
            }
            let logged = Event::from(ContactHistorySearched {
                actor: caller.id.clone(),
                role: Some(granted.role),
                purpose,
                case_reference,
                filter_fields: std::iter::once("history".to_owned())
                    .chain(filter.fields())
                    .collect(),
                results: contacts,
                searched_at: registry.now(),
            });
            crate::audio::record_access(registry, &caller.id, &[logged]).await?;
            Ok(HistoryConnection {
                items: page
                    .entries
                    .into_iter()
                    .map(|e| HistoryEvent {
                        position: e.position,
                        stream: e.stream,
                        revision: e.revision,
                        event_type: e.event_type,
                        stored_version: e.stored_version,
                        recorded_at: e.recorded_at,
                        actor: e.actor,
                        data: Json(e.data),
                    })
                    .collect(),
                next_cursor: page.next.map(|n| n.to_string()),
            })
        }
        .await
        .map_err(gql_error)
    }

    /// A call as the register knew it at `at`: the events it had accepted
    /// by then, folded. Opening it is logged like any other open.
    async fn call_as_of(
        &self,
        ctx: &async_graphql::Context<'_>,
        id: ID,
        at: DateTime<Utc>,
        purpose: String,
        reason: Option<String>,
        case_reference: Option<String>,
    ) -> async_graphql::Result<Option<CallView>> {
        async {
            let (registry, caller) = caller(ctx).await?;
            let call_id = super::call::parse_call_id("id", &id)?;
            let purpose = parse_purpose(&purpose)?;
            let loaded = audit::call_as_of(registry, call_id, at).await?;
            let (Some(revision), Some(facts)) = (loaded.revision, loaded.state.call.as_ref())
            else {
                return Ok(None);
            };
            let attempt = Attempt {
                purpose: Some(purpose),
                contact: Some(ContactRef::Call(call_id)),
                recording_id: None,
                case_reference: case_reference.clone(),
                reason: reason.clone(),
            };
            // Restricted then or now: a restriction added later must not
            // be stepped round by asking for an earlier instant (R19).
            let restricted = loaded.state.controls.is_restricted()
                || audit::restricted_now(registry, ContactRef::Call(call_id)).await?;
            crate::access::open_contact(
                registry,
                &caller,
                &attempt,
                facts.agent.as_str(),
                restricted,
            )
            .await?;
            Ok(CallView::from_state(&loaded.state, revision))
        }
        .await
        .map_err(gql_error)
    }

    /// A staff member's roles at `at`, and which calls the register knew
    /// then that those roles let them open, with the purposes allowed:
    /// "what could supervisor X hear on 1 March?" It reads the log up to
    /// `at`, so one query holds at most one of it; the answer (which calls)
    /// is logged like a search.
    #[graphql(complexity = "super::EXPENSIVE")]
    async fn staff_as_of(
        &self,
        ctx: &async_graphql::Context<'_>,
        staff_id: String,
        at: DateTime<Utc>,
    ) -> async_graphql::Result<StaffAsOf> {
        async {
            let (registry, caller) = guard(ctx, Action::ViewStaffRights).await?;
            let staff = StaffId::parse(&staff_id).map_err(|e| AppError::invalid("staffId", e))?;
            let answer = audit::staff_as_of(registry, &staff, at).await?;
            if !answer.calls.is_empty() {
                let logged = Event::from(ContactHistorySearched {
                    actor: caller.id.clone(),
                    role: None,
                    purpose: callvault_domain::Purpose::Security,
                    case_reference: None,
                    filter_fields: vec!["staffAsOf".to_owned()],
                    results: answer
                        .calls
                        .iter()
                        .filter_map(|c| c.call_id.parse().ok().map(ContactRef::Call))
                        .collect(),
                    searched_at: registry.now(),
                });
                crate::audio::record_access(registry, &caller.id, &[logged]).await?;
            }
            Ok(StaffAsOf {
                staff_id: answer.staff_id,
                at: answer.at,
                roles: answer
                    .roles
                    .into_iter()
                    .map(|r| RoleThen {
                        role: r.role,
                        supervises: r.supervises,
                        granted_at: r.granted_at,
                    })
                    .collect(),
                reach: answer.reach,
                calls: answer
                    .calls
                    .into_iter()
                    .map(|c| OpenableCall {
                        call_id: ID(c.call_id),
                        agent_id: c.agent,
                        started_at: c.started_at,
                        restricted: c.restricted,
                        role: c.role,
                        purposes: c.purposes,
                        break_glass: c.break_glass,
                    })
                    .collect(),
            })
        }
        .await
        .map_err(gql_error)
    }
}
