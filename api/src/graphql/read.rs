//! Queries over the read models for analysts, auditors, case workers and
//! operators: search, the access audit, the retention queue, the data
//! subject's view, staff rights, statistics, and the models' own status.
//! Every query reads the model as of the log's head when it was asked (it
//! waits briefly for the model to catch up), so a client reads its own
//! writes.

use std::sync::Arc;

use async_graphql::{Enum, ID, InputObject, Object, SimpleObject};
use callvault_domain::{
    ContactRef, PhoneNumber, Purpose, StaffId, call::Direction as DomainDirection,
};
use callvault_projections::{
    Projections,
    models::{access_audit, calls, retention, staff_rights, stats, subjects},
    view::ViewDb,
};
use chrono::{DateTime, NaiveDate, Utc};

use super::{
    call::{CallView, Direction, parse_call_id},
    caller, gql_error, guard, parts,
};
use crate::{access::Attempt, error::AppError};
use callvault_domain::policy::{self, Action};

/// Most items one page returns.
pub const MAX_PAGE: usize = 100;

/// Whether the read model `name` answers from an older build that no
/// longer follows the log (an upgrade's rebuild is under way).
pub(crate) fn stale(ctx: &async_graphql::Context<'_>, name: &str) -> bool {
    ctx.data::<Projections>().is_ok_and(|p| p.is_stale(name))
}

/// The read model `name`, once it has folded in every command written
/// through this service (read your own writes). The models that show
/// accesses — the access audit and the data-subject view (who listened and
/// why) — wait for the whole log, access entries included; the others need
/// not wait for other readers' access entries.
pub(crate) async fn view(
    ctx: &async_graphql::Context<'_>,
    name: &str,
) -> Result<Arc<ViewDb>, AppError> {
    let projections = ctx
        .data::<Projections>()
        .map_err(|_| AppError::Internal(anyhow::anyhow!("schema built without read models")))?;
    if name == access_audit::NAME || name == subjects::NAME {
        return projections.view(name).await.map_err(projection_error);
    }
    let (registry, _) = parts(ctx)?;
    projections
        .view_at(
            name,
            registry.last_write(),
            std::time::Duration::from_secs(5),
        )
        .await
        .map_err(projection_error)
}

/// Most calls one `subject` answer lists.
const SUBJECT_MAX_CALLS: usize = 10_000;

pub(crate) fn projection_error(e: callvault_projections::ProjectionError) -> AppError {
    match e {
        callvault_projections::ProjectionError::NotCaughtUp { .. } => {
            AppError::Unavailable(e.to_string())
        }
        callvault_projections::ProjectionError::Unknown(_) => AppError::NotFound(e.to_string()),
        callvault_projections::ProjectionError::InvalidInput { field, reason } => {
            AppError::invalid(field, reason)
        }
        callvault_projections::ProjectionError::Storage(ref m)
            if m.contains("StorageFull") || m.contains("No space left") =>
        {
            tracing::error!(error = %e, "a read model's disk is full");
            AppError::Unavailable(
                "a read model's disk is full: free space and restart the service".into(),
            )
        }
        other => AppError::Internal(other.into()),
    }
}

pub(crate) fn parse_purpose(text: &str) -> Result<Purpose, AppError> {
    text.parse().map_err(|e| AppError::invalid("purpose", e))
}

pub(crate) fn page_size(first: Option<i32>) -> Result<usize, AppError> {
    match first {
        None => Ok(20),
        Some(n) if n >= 1 && n as usize <= MAX_PAGE => Ok(n as usize),
        Some(n) => Err(AppError::invalid(
            "first",
            format!("{n} is not between 1 and {MAX_PAGE}"),
        )),
    }
}

/// Index entries a search may read on the async thread before it moves
/// to a blocking thread.
const QUICK_SEARCH: usize = 64;

/// Runs a query of one read model off the async threads, on the build as
/// it is between commits (never on a commit half applied; see
/// `ViewDb::consistent`). `read` may run more than once.
async fn consistent<T: Send + 'static>(
    view: Arc<ViewDb>,
    mut read: impl FnMut(&ViewDb) -> Result<T, callvault_projections::ProjectionError> + Send + 'static,
) -> Result<T, AppError> {
    blocking(move || view.consistent(&mut read)).await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, callvault_projections::ProjectionError> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("query task failed: {e}")))?
        .map_err(projection_error)
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum CallStatusFilter {
    /// Has a recording that still exists.
    Recorded,
    /// Had a recording destroyed by retention.
    Purged,
    Held,
    Restricted,
}

#[derive(InputObject, Debug, Default)]
pub struct CallSearch {
    /// As typed: `040 123 4567`, `+358 40 123 4567`, `040-1234567`…
    pub caller_number: Option<String>,
    pub service_number: Option<String>,
    pub agent_id: Option<String>,
    pub direction: Option<Direction>,
    pub started_from: Option<DateTime<Utc>>,
    pub started_to: Option<DateTime<Utc>>,
    pub min_duration_seconds: Option<i64>,
    pub max_duration_seconds: Option<i64>,
    pub status: Option<CallStatusFilter>,
}

impl CallSearch {
    pub(crate) fn to_filter(&self) -> Result<calls::CallFilter, AppError> {
        let phone = |field: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| PhoneNumber::parse(t).map_err(|e| AppError::invalid(field, e)))
                .transpose()
        };
        Ok(calls::CallFilter {
            caller: phone("callerNumber", &self.caller_number)?,
            service_number: phone("serviceNumber", &self.service_number)?,
            agent: self
                .agent_id
                .as_deref()
                .map(|a| StaffId::parse(a).map_err(|e| AppError::invalid("agentId", e)))
                .transpose()?,
            direction: self.direction.map(DomainDirection::from),
            started_from: self.started_from,
            started_to: self.started_to,
            min_duration_seconds: self.min_duration_seconds,
            max_duration_seconds: self.max_duration_seconds,
            status: self.status.map(|s| match s {
                CallStatusFilter::Recorded => calls::Status::Recorded,
                CallStatusFilter::Purged => calls::Status::Purged,
                CallStatusFilter::Held => calls::Status::Held,
                CallStatusFilter::Restricted => calls::Status::Restricted,
            }),
            agents_in: None,
            exclude_restricted: false,
        })
    }

    /// The names of the filters used (never their values: a typed number
    /// is personal data), for the access log.
    pub(crate) fn fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut add = |used: bool, name: &str| {
            if used {
                out.push(name.to_owned());
            }
        };
        add(self.caller_number.is_some(), "callerNumber");
        add(self.service_number.is_some(), "serviceNumber");
        add(self.agent_id.is_some(), "agentId");
        add(self.direction.is_some(), "direction");
        add(
            self.started_from.is_some() || self.started_to.is_some(),
            "startedAt",
        );
        add(
            self.min_duration_seconds.is_some() || self.max_duration_seconds.is_some(),
            "duration",
        );
        add(self.status.is_some(), "status");
        out
    }
}

#[derive(SimpleObject, Debug)]
pub struct CallConnection {
    pub items: Vec<CallView>,
    /// Pass as `after` for the next page; null when there is none.
    pub next_cursor: Option<String>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum AccessKind {
    Listen,
    Download,
    SubjectSession,
    HistoryRead,
    Search,
    Denied,
    /// A chat transcript ordered by e-mail.
    TranscriptOrdered,
    /// A chat transcript e-mailed: a disclosure.
    TranscriptEmailed,
}

#[derive(SimpleObject, Debug)]
pub struct AccessEntry {
    pub log_position: String,
    pub at: DateTime<Utc>,
    pub actor_id: String,
    pub role: Option<String>,
    pub kind: AccessKind,
    pub allowed: bool,
    pub call_id: Option<ID>,
    pub chat_id: Option<ID>,
    pub recording_id: Option<ID>,
    pub purpose: Option<String>,
    pub case_reference: Option<String>,
    pub reason: Option<String>,
    /// A maintenance or security read "when needed" (R10): to be reviewed.
    pub break_glass: bool,
    pub detail: Option<String>,
    pub results: u64,
}

impl From<access_audit::AccessRow> for AccessEntry {
    fn from(r: access_audit::AccessRow) -> Self {
        Self {
            log_position: r.position.to_string(),
            at: r.at,
            actor_id: r.actor,
            role: r.role.map(|r| r.name().to_owned()),
            kind: match r.kind {
                access_audit::AccessKind::Listen => AccessKind::Listen,
                access_audit::AccessKind::Download => AccessKind::Download,
                access_audit::AccessKind::SubjectSession => AccessKind::SubjectSession,
                access_audit::AccessKind::HistoryRead => AccessKind::HistoryRead,
                access_audit::AccessKind::Search => AccessKind::Search,
                access_audit::AccessKind::Denied => AccessKind::Denied,
                access_audit::AccessKind::TranscriptOrdered => AccessKind::TranscriptOrdered,
                access_audit::AccessKind::TranscriptEmailed => AccessKind::TranscriptEmailed,
            },
            allowed: r.allowed,
            call_id: r
                .contact
                .and_then(|c| c.call_id())
                .map(|c| ID(c.to_string())),
            chat_id: r
                .contact
                .and_then(|c| c.chat_id())
                .map(|c| ID(c.to_string())),
            recording_id: r.recording_id.map(ID),
            purpose: r.purpose.map(|p| p.name().to_owned()),
            case_reference: r.case_reference,
            reason: r.reason,
            break_glass: r.break_glass,
            detail: r.detail,
            results: r.results as u64,
        }
    }
}

#[derive(SimpleObject, Debug)]
pub struct AccessConnection {
    pub items: Vec<AccessEntry>,
    pub next_cursor: Option<String>,
}

#[derive(InputObject, Debug, Default)]
pub struct AccessAuditFilter {
    pub actor_id: Option<String>,
    pub call_id: Option<ID>,
    pub purpose: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    #[graphql(default)]
    pub break_glass_only: bool,
    #[graphql(default)]
    pub denied_only: bool,
}

impl AccessAuditFilter {
    fn to_filter(&self) -> Result<access_audit::AccessFilter, AppError> {
        Ok(access_audit::AccessFilter {
            actor: self
                .actor_id
                .as_deref()
                .map(|a| {
                    StaffId::parse(a)
                        .map(|s| s.to_string())
                        .map_err(|e| AppError::invalid("actorId", e))
                })
                .transpose()?,
            contact: self
                .call_id
                .as_ref()
                .map(|c| parse_call_id("callId", c).map(ContactRef::Call))
                .transpose()?,
            purpose: self
                .purpose
                .as_deref()
                .map(|p| {
                    p.parse::<Purpose>()
                        .map_err(|e| AppError::invalid("purpose", e))
                })
                .transpose()?,
            from: self.from,
            to: self.to,
            break_glass_only: self.break_glass_only,
            denied_only: self.denied_only,
        })
    }
}

#[derive(SimpleObject, Debug)]
pub struct HoldInfo {
    pub id: ID,
    pub case_reference: String,
    pub review_by: NaiveDate,
}

#[derive(SimpleObject, Debug)]
pub struct RetentionItem {
    pub recording_id: ID,
    pub call_id: ID,
    pub expires_at: DateTime<Utc>,
    /// Kept past its expiry by holds or a restriction.
    pub kept: bool,
    pub restricted: bool,
    pub holds: Vec<HoldInfo>,
}

#[derive(SimpleObject, Debug)]
pub struct SubjectRecording {
    pub id: ID,
    pub stored_at: DateTime<Utc>,
    pub purged_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject, Debug)]
pub struct SubjectAccess {
    pub at: DateTime<Utc>,
    pub actor_id: String,
    pub purpose: String,
    pub what: String,
}

#[derive(SimpleObject, Debug)]
pub struct SubjectCall {
    pub call_id: ID,
    pub number: Option<String>,
    pub direction: Direction,
    pub service_number: String,
    pub agent_id: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Whether the call was recorded at all.
    pub recorded: bool,
    pub recordings: Vec<SubjectRecording>,
    /// Who opened it and why (for the case worker; not part of the
    /// subject's copy, R28).
    pub accesses: Vec<SubjectAccess>,
}

#[derive(SimpleObject, Debug)]
pub struct Grant {
    pub staff_id: String,
    pub role: String,
    pub supervises: Vec<String>,
    pub decision_reference: Option<String>,
    pub granted_at: DateTime<Utc>,
    pub granted_by: String,
    pub ended_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject, Debug)]
pub struct ReviewDue {
    pub staff_id: String,
    /// Null: never reviewed.
    pub due_by: Option<NaiveDate>,
}

#[derive(SimpleObject, Debug)]
pub struct DayFigures {
    pub service_number: String,
    pub day: NaiveDate,
    pub calls: u64,
    pub recorded: u64,
    pub held: u64,
    pub purged: u64,
}

#[derive(SimpleObject, Debug)]
pub struct CallStats {
    pub calls: u64,
    pub recorded: u64,
    pub recorded_share: f64,
    pub held: u64,
    pub purged: u64,
    pub ended: u64,
    pub duration_p50_seconds: Option<i64>,
    pub duration_p90_seconds: Option<i64>,
    pub duration_max_seconds: Option<i64>,
    pub days: Vec<DayFigures>,
}

#[derive(SimpleObject, Debug)]
pub struct RebuildStatus {
    pub build: String,
    pub fraction: f64,
    pub applied_events: u64,
    pub events_per_second: f64,
    pub eta_seconds: Option<f64>,
    pub finished: bool,
    pub error: Option<String>,
}

#[derive(SimpleObject, Debug)]
pub struct ProjectionStatus {
    pub name: String,
    pub code_version: u32,
    pub build: String,
    pub build_version: u32,
    pub position: Option<String>,
    pub head: Option<String>,
    /// Log positions not yet folded in.
    pub lag: u64,
    /// Answering from an older build that no longer follows the log while
    /// a rebuild runs.
    pub stale: bool,
    pub rebuild: Option<RebuildStatus>,
    /// Why this model stopped following the log (e.g. its disk is full);
    /// it answers from what it has until the service is restarted.
    pub error: Option<String>,
}

impl From<callvault_projections::SlotStatus> for ProjectionStatus {
    fn from(s: callvault_projections::SlotStatus) -> Self {
        Self {
            lag: match (s.head, s.position) {
                (Some(h), Some(p)) => h.commit.saturating_sub(p.commit),
                (Some(h), None) => h.commit,
                _ => 0,
            },
            name: s.name,
            code_version: s.code_version,
            build: s.build,
            build_version: s.build_version,
            position: s.position.map(|p| p.to_string()),
            head: s.head.map(|p| p.to_string()),
            stale: s.stale,
            error: s.error,
            rebuild: s.rebuild.map(|r| RebuildStatus {
                fraction: r.fraction(),
                events_per_second: r.rate(),
                eta_seconds: r.eta_seconds(),
                build: r.build,
                applied_events: r.applied_events,
                finished: r.finished,
                error: r.error,
            }),
        }
    }
}

#[derive(Default)]
pub struct ReadQuery;

#[Object]
impl ReadQuery {
    /// Searches calls, newest first. Filters combine; `after` takes the
    /// `nextCursor` of the previous page. Every search is logged (which
    /// filters were used — not their values — and which calls it showed)
    /// before its results leave.
    async fn search(
        &self,
        ctx: &async_graphql::Context<'_>,
        #[graphql(
            desc = "why you search: verification, training, quality, legal_claim, data_subject_request, maintenance, security"
        )]
        purpose: String,
        filter: Option<CallSearch>,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(desc = "the case this search serves, if any")] case_reference: Option<String>,
    ) -> async_graphql::Result<CallConnection> {
        async {
            let (registry, caller) = caller(ctx).await?;
            let purpose = parse_purpose(&purpose)?;
            let search = filter.unwrap_or_default();
            let fields = search.fields();
            let mut filter = search.to_filter()?;
            let limit = page_size(first)?;
            let attempt = Attempt {
                case_reference: case_reference.clone(),
                ..Attempt::purpose(purpose)
            };
            // Searches show only what the searcher may see (R8, R9, R19).
            let scope = crate::access::search_scope(registry, &caller, &attempt).await?;
            filter.exclude_restricted = !scope.restricted;
            filter.agents_in = scope
                .agents
                .map(|agents| agents.iter().map(ToString::to_string).collect());
            let role = scope.role;
            let exclude_restricted = filter.exclude_restricted;
            let caller_number = filter.caller.as_ref().map(|c| c.as_e164().to_owned());
            // Stale at either end of the read counts: a switch in between
            // must not let an old build's rows through unchecked.
            let stale_before = stale(ctx, calls::NAME);
            let view = view(ctx, calls::NAME).await?;
            // A search that finds its page within a few index entries
            // runs here; a longer one, or one that met a commit, on a
            // blocking thread.
            let quick = view.try_consistent(|v| {
                calls::search_within(v, &filter, after.as_deref(), limit, QUICK_SEARCH)
            });
            let page = match quick {
                Some(Ok(page)) if !page.cut_short => page,
                Some(Err(e)) => return Err(projection_error(e)),
                _ => {
                    consistent(view, move |v| {
                        calls::search(v, &filter, after.as_deref(), limit)
                    })
                    .await?
                }
            };
            let items: Vec<CallView> = if stale_before || stale(ctx, calls::NAME) {
                // An older build that no longer follows the log may not
                // know of restrictions, rectifications or purges since
                // the upgrade began: each call shown is as the log has it.
                let mut fresh = Vec::new();
                for row in &page.items {
                    let Ok(id) = row.id.parse() else { continue };
                    let Some(call) = super::call::from_log(registry, id).await? else {
                        continue;
                    };
                    let shown = !(exclude_restricted && call.restricted)
                        && caller_number
                            .as_ref()
                            .is_none_or(|n| call.caller_number.as_deref() == Some(n.as_str()));
                    if shown {
                        fresh.push(call);
                    }
                }
                fresh
            } else {
                page.items.into_iter().map(CallView::from).collect()
            };
            let results = items
                .iter()
                .filter_map(|c| c.id.parse().ok().map(ContactRef::Call))
                .collect();
            let logged =
                callvault_domain::Event::from(callvault_domain::access::ContactHistorySearched {
                    actor: caller.id.clone(),
                    role: Some(role),
                    purpose,
                    case_reference: attempt.case_reference.clone(),
                    filter_fields: fields,
                    results,
                    searched_at: registry.now(),
                });
            crate::audio::record_access(registry, &caller.id, &[logged]).await?;
            Ok(CallConnection {
                items,
                next_cursor: page.next_cursor,
            })
        }
        .await
        .map_err(gql_error)
    }

    /// The log of use: every access and refused attempt, newest first.
    async fn access_audit(
        &self,
        ctx: &async_graphql::Context<'_>,
        filter: Option<AccessAuditFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<AccessConnection> {
        async {
            guard(ctx, Action::ViewAccessAudit).await?;
            let filter = filter.unwrap_or_default().to_filter()?;
            let limit = page_size(first)?;
            let view = view(ctx, access_audit::NAME).await?;
            let page = consistent(view, move |v| {
                access_audit::query(v, &filter, after.as_deref(), limit)
            })
            .await?;
            Ok(AccessConnection {
                items: page.items.into_iter().map(AccessEntry::from).collect(),
                next_cursor: page.next_cursor,
            })
        }
        .await
        .map_err(gql_error)
    }

    /// Break-glass reads by maintenance and security staff, for review.
    async fn break_glass_reads(
        &self,
        ctx: &async_graphql::Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<AccessConnection> {
        async {
            guard(ctx, Action::ViewAccessAudit).await?;
            let limit = page_size(first)?;
            let view = view(ctx, access_audit::NAME).await?;
            let filter = access_audit::AccessFilter {
                break_glass_only: true,
                ..Default::default()
            };
            let page = consistent(view, move |v| {
                access_audit::query(v, &filter, after.as_deref(), limit)
            })
            .await?;
            Ok(AccessConnection {
                items: page.items.into_iter().map(AccessEntry::from).collect(),
                next_cursor: page.next_cursor,
            })
        }
        .await
        .map_err(gql_error)
    }

    /// Recordings that expire between `from` (default now) and `to`
    /// (default 30 days on), soonest first, with what keeps them.
    async fn retention_queue(
        &self,
        ctx: &async_graphql::Context<'_>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        first: Option<i32>,
    ) -> async_graphql::Result<Vec<RetentionItem>> {
        async {
            let (registry, _) = guard(ctx, Action::ViewRetention).await?;
            let from = from.unwrap_or_else(|| registry.now());
            let to = to.unwrap_or(from + chrono::Duration::days(30));
            let limit = page_size(first)?;
            let view = view(ctx, retention::NAME).await?;
            let items = consistent(view, move |v| retention::queue(v, from, to, limit)).await?;
            Ok(items
                .into_iter()
                .map(|i| RetentionItem {
                    kept: i.kept(),
                    recording_id: ID(i.recording_id),
                    call_id: ID(i.call_id),
                    expires_at: i.expires_at,
                    restricted: i.restricted,
                    holds: i
                        .holds
                        .into_iter()
                        .map(|h| HoldInfo {
                            id: ID(h.id),
                            case_reference: h.case_reference,
                            review_by: h.review_by,
                        })
                        .collect(),
                })
                .collect())
        }
        .await
        .map_err(gql_error)
    }

    /// Every call of the numbers a data subject has shown to be theirs
    /// (R17): whether it was recorded, what became of the recording, and
    /// who opened it and why.
    async fn subject(
        &self,
        ctx: &async_graphql::Context<'_>,
        phone_numbers: Vec<String>,
        #[graphql(desc = "default data_subject_request")] purpose: Option<String>,
        #[graphql(desc = "the data subject's request")] case_reference: Option<String>,
    ) -> async_graphql::Result<Vec<SubjectCall>> {
        async {
            let (registry, caller) = caller(ctx).await?;
            let purpose = match purpose.as_deref() {
                Some(p) => parse_purpose(p)?,
                None => Purpose::DataSubjectRequest,
            };
            let attempt = Attempt {
                case_reference: case_reference.clone(),
                ..Attempt::purpose(purpose)
            };
            let granted =
                crate::access::authorize(registry, &caller, Action::LookUpSubject, &attempt, None)
                    .await?;
            // The log of use is its own view with its own readers (R28): a
            // case worker preparing the subject's copy does not get it.
            let sees_audit = policy::decide(
                &caller.roles(),
                &policy::Request {
                    action: Action::ViewAccessAudit,
                    purpose: None,
                    target: None,
                    reason_given: false,
                },
            )
            .is_allowed();
            if phone_numbers.is_empty() {
                return Err(AppError::invalid(
                    "phoneNumbers",
                    "give at least one number",
                ));
            }
            let numbers = phone_numbers
                .iter()
                .map(|n| PhoneNumber::parse(n).map_err(|e| AppError::invalid("phoneNumbers", e)))
                .collect::<Result<Vec<_>, _>>()?;
            let wanted: Vec<String> = numbers.iter().map(|n| n.as_e164().to_owned()).collect();
            let view = view(ctx, subjects::NAME).await?;
            let (mut calls, more) = consistent(view, move |v| {
                subjects::lookup(v, &numbers, SUBJECT_MAX_CALLS)
            })
            .await?;
            if more {
                // An answer to the subject must be whole (R17): say so
                // rather than hand over part of it.
                return Err(AppError::invalid(
                    "phoneNumbers",
                    format!(
                        "more than {SUBJECT_MAX_CALLS} calls for these numbers: too many to \
                         answer in one response; ask one number at a time"
                    ),
                ));
            }
            // Restricted calls only for the purposes the law allows (R19).
            let restricted_out = !policy::RESTRICTED_PURPOSES.contains(&purpose);
            if stale(ctx, calls::NAME) || stale(ctx, subjects::NAME) {
                // A model answers from an older build that no longer
                // follows the log: each call is taken as the log has it —
                // shown only if not restricted (unless the law allows) and
                // still of one of these numbers, with its recordings'
                // purges as the log has them.
                let mut fresh = Vec::new();
                for mut c in calls {
                    let Ok(id) = c.call_id.parse() else { continue };
                    let Some(call) = super::call::from_log(registry, id).await? else {
                        continue;
                    };
                    let of_these = call
                        .caller_number
                        .as_ref()
                        .is_some_and(|n| wanted.contains(n));
                    if !of_these || (restricted_out && call.restricted) {
                        continue;
                    }
                    for r in &mut c.recordings {
                        if let Some(now) = call.recordings.iter().find(|x| x.id.as_str() == r.id) {
                            r.purged_at = now.purged_at;
                        }
                    }
                    fresh.push(c);
                }
                calls = fresh;
            } else if restricted_out {
                let call_rows = super::read::view(ctx, calls::NAME).await?;
                calls = blocking(move || {
                    let mut open = Vec::with_capacity(calls.len());
                    for c in calls {
                        let restricted = match c.call_id.parse() {
                            Ok(id) => calls::get(&call_rows, id)?.is_none_or(|r| r.restricted),
                            Err(_) => true,
                        };
                        if !restricted {
                            open.push(c);
                        }
                    }
                    Ok(open)
                })
                .await?;
            }
            let logged =
                callvault_domain::Event::from(callvault_domain::access::ContactHistorySearched {
                    actor: caller.id.clone(),
                    role: Some(granted.role),
                    purpose,
                    case_reference: attempt.case_reference.clone(),
                    filter_fields: vec!["phoneNumbers".to_owned()],
                    results: calls
                        .iter()
                        .filter_map(|c| c.call_id.parse().ok().map(ContactRef::Call))
                        .collect(),
                    searched_at: registry.now(),
                });
            crate::audio::record_access(registry, &caller.id, &[logged]).await?;
            Ok(calls
                .into_iter()
                .map(|c| SubjectCall {
                    recorded: !c.recordings.is_empty(),
                    call_id: ID(c.call_id),
                    number: c.number,
                    direction: c.direction.into(),
                    service_number: c.service_number,
                    agent_id: c.agent,
                    started_at: c.started_at,
                    ended_at: c.ended_at,
                    recordings: c
                        .recordings
                        .into_iter()
                        .map(|r| SubjectRecording {
                            id: ID(r.id),
                            stored_at: r.stored_at,
                            purged_at: r.purged_at,
                        })
                        .collect(),
                    accesses: c
                        .accesses
                        .into_iter()
                        .filter(|_| sees_audit)
                        .map(|a| SubjectAccess {
                            at: a.at,
                            actor_id: a.actor,
                            purpose: a.purpose,
                            what: a.what,
                        })
                        .collect(),
                })
                .collect())
        }
        .await
        .map_err(gql_error)
    }

    /// The roles held at `at` (default now), by everyone or one staff
    /// member.
    async fn staff_rights(
        &self,
        ctx: &async_graphql::Context<'_>,
        at: Option<DateTime<Utc>>,
        staff_id: Option<String>,
    ) -> async_graphql::Result<Vec<Grant>> {
        async {
            let (registry, _) = guard(ctx, Action::ViewStaffRights).await?;
            let at = at.unwrap_or_else(|| registry.now());
            let staff = staff_id
                .as_deref()
                .map(|s| StaffId::parse(s).map_err(|e| AppError::invalid("staffId", e)))
                .transpose()?
                .map(|s| s.to_string());
            let view = view(ctx, staff_rights::NAME).await?;
            let grants = consistent(view, move |v| {
                staff_rights::rights_at(v, staff.as_deref(), at)
            })
            .await?;
            Ok(grants.into_iter().map(grant).collect())
        }
        .await
        .map_err(gql_error)
    }

    /// Staff whose rights review is due by `by` (default today).
    async fn rights_reviews_due(
        &self,
        ctx: &async_graphql::Context<'_>,
        by: Option<NaiveDate>,
    ) -> async_graphql::Result<Vec<ReviewDue>> {
        async {
            let (registry, _) = guard(ctx, Action::ViewStaffRights).await?;
            let by = by.unwrap_or_else(|| registry.now().date_naive());
            let view = view(ctx, staff_rights::NAME).await?;
            let due = consistent(view, move |v| staff_rights::reviews_due(v, by)).await?;
            Ok(due
                .into_iter()
                .map(|(staff_id, due_by)| ReviewDue { staff_id, due_by })
                .collect())
        }
        .await
        .map_err(gql_error)
    }

    /// Calls per service number and day between `from` and `to`
    /// (inclusive), with duration percentiles.
    async fn call_stats(
        &self,
        ctx: &async_graphql::Context<'_>,
        from: NaiveDate,
        to: NaiveDate,
        service_number: Option<String>,
    ) -> async_graphql::Result<CallStats> {
        async {
            guard(ctx, Action::ViewStats).await?;
            if to < from {
                return Err(AppError::invalid("to", "is before `from`"));
            }
            if (to - from).num_days() > 366 {
                return Err(AppError::invalid("to", "ask for at most a year at a time"));
            }
            let service = service_number
                .as_deref()
                .map(|s| PhoneNumber::parse(s).map_err(|e| AppError::invalid("serviceNumber", e)))
                .transpose()?
                .map(|p| p.to_string());
            let view = view(ctx, stats::NAME).await?;
            let (total, days) = consistent(view, move |v| {
                stats::totals(v, from, to, service.as_deref())
            })
            .await?;
            Ok(CallStats {
                calls: total.calls,
                recorded: total.recorded,
                recorded_share: total.recorded_share(),
                held: total.held,
                purged: total.purged,
                ended: total.ended,
                duration_p50_seconds: total.percentile(0.5),
                duration_p90_seconds: total.percentile(0.9),
                duration_max_seconds: (total.ended > 0).then_some(total.max_duration),
                days: days
                    .into_iter()
                    .map(|(service_number, day, d)| DayFigures {
                        service_number,
                        day,
                        calls: d.calls,
                        recorded: d.recorded,
                        held: d.held,
                        purged: d.purged,
                    })
                    .collect(),
            })
        }
        .await
        .map_err(gql_error)
    }

    /// The read models: version, position, lag, and any rebuild's progress.
    async fn projections(
        &self,
        ctx: &async_graphql::Context<'_>,
    ) -> async_graphql::Result<Vec<ProjectionStatus>> {
        async {
            guard(ctx, Action::OperateProjections).await?;
            let projections = ctx
                .data::<Projections>()
                .map_err(|_| AppError::Internal(anyhow::anyhow!("no read models")))?;
            let status = projections.status().await.map_err(projection_error)?;
            Ok(status.into_iter().map(ProjectionStatus::from).collect())
        }
        .await
        .map_err(gql_error)
    }
}

fn grant(g: staff_rights::GrantRow) -> Grant {
    Grant {
        staff_id: g.staff_id,
        role: g.role.name().to_owned(),
        supervises: g.supervises,
        decision_reference: g.decision_reference,
        granted_at: g.granted_at,
        granted_by: g.granted_by,
        ended_at: g.ended_at,
    }
}

#[derive(Default)]
pub struct OperatorMutation;

#[Object]
impl OperatorMutation {
    /// Rebuilds a read model (or all, with no name) beside the live one;
    /// queries keep working and switch over when it has caught up. Watch
    /// `projections` for progress.
    async fn rebuild_projection(
        &self,
        ctx: &async_graphql::Context<'_>,
        name: Option<String>,
    ) -> async_graphql::Result<Vec<String>> {
        async {
            guard(ctx, Action::OperateProjections).await?;
            let projections = ctx
                .data::<Projections>()
                .map_err(|_| AppError::Internal(anyhow::anyhow!("no read models")))?;
            let started = projections.rebuild(name.as_deref()).map_err(|e| match e {
                callvault_projections::ProjectionError::Unknown(_) => {
                    AppError::NotFound(e.to_string())
                }
                callvault_projections::ProjectionError::Storage(ref m)
                    if m.contains("already being rebuilt") =>
                {
                    AppError::Conflict(e.to_string())
                }
                other => projection_error(other),
            })?;
            Ok(started.into_iter().map(str::to_owned).collect())
        }
        .await
        .map_err(gql_error)
    }
}
