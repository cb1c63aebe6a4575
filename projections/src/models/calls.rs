//! `calls`: one row per call, and indexes to search them by the caller's
//! number, the service number, the agent, or time — newest first, with a
//! stable cursor. Rows hold the caller's number in clear (E.164) until the
//! call's contact data is purged; then the number and names go, and so
//! does the caller index entry. A rebuild after a purge never sees them:
//! shredded fields fold as absent.

use callvault_domain::{
    CallId, ContactRef, Event, PhoneNumber, StaffId, call::Correction, call::Direction,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    projection::{Envelope, Projection, ProjectionError, key, time_key},
    view::{Row, Tx, ViewDb},
};

pub const NAME: &str = "calls";
/// v1: first version.
/// v2: numbers typed `+358 0…` are read without the trunk zero (one number,
/// one form), so caller-index keys of such calls change.
pub const VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingRow {
    pub id: String,
    pub codec: String,
    pub size_bytes: u64,
    pub duration_ms: Option<u64>,
    pub stored_at: DateTime<Utc>,
    pub purged_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRow {
    pub id: String,
    pub case_reference: String,
    pub review_by: NaiveDate,
    pub placed_at: DateTime<Utc>,
    pub released_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRow {
    pub id: String,
    pub revision: u64,
    pub direction: Direction,
    /// E.164; `None` once purged.
    pub caller: Option<String>,
    pub service_number: String,
    pub agent: String,
    pub agent_name: Option<String>,
    pub agent_number: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub recordings: Vec<RecordingRow>,
    pub holds: Vec<HoldRow>,
    pub restricted: bool,
    pub personal_data_shredded: bool,
    pub rectifications: u32,
}

impl CallRow {
    pub fn duration_seconds(&self) -> Option<i64> {
        self.ended_at.map(|e| (e - self.started_at).num_seconds())
    }

    pub fn is_held(&self) -> bool {
        self.holds.iter().any(|h| h.released_at.is_none())
    }

    pub fn status(&self) -> Vec<Status> {
        let mut out = Vec::new();
        if self.recordings.iter().any(|r| r.purged_at.is_none()) {
            out.push(Status::Recorded);
        }
        if self.recordings.iter().any(|r| r.purged_at.is_some()) {
            out.push(Status::Purged);
        }
        if self.is_held() {
            out.push(Status::Held);
        }
        if self.restricted {
            out.push(Status::Restricted);
        }
        out
    }
}

impl Row for CallRow {
    fn index_keys(&self, _key: &[u8]) -> Vec<Vec<u8>> {
        let t = time_key(self.started_at);
        let id = self.id.as_bytes();
        let mut keys = vec![
            key(&[b"t", &t, id]),
            key(&[b"s", self.service_number.as_bytes(), &t, id]),
            key(&[b"a", self.agent.as_bytes(), &t, id]),
        ];
        if let Some(c) = &self.caller {
            keys.push(key(&[b"c", c.as_bytes(), &t, id]));
        }
        keys
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Has a recording that still exists.
    Recorded,
    /// Has a purged recording.
    Purged,
    Held,
    Restricted,
}

fn row_key(id: &str) -> Vec<u8> {
    key(&[b"r", id.as_bytes()])
}

pub struct Calls;

impl Projection for Calls {
    fn name(&self) -> &'static str {
        NAME
    }

    /// A row and four index entries per call, read by every search: at
    /// 1,000,000 calls (a 2.1 GB build) a rebuild took 93 s with the
    /// default 256 MiB and 69 s with 1 GiB (BENCHMARKS.md).
    fn cache_bytes(&self) -> u64 {
        1024 * 1024 * 1024
    }

    fn version(&self) -> u32 {
        VERSION
    }

    fn apply(&self, tx: &mut Tx<'_>, env: &Envelope) -> Result<(), ProjectionError> {
        let call_id = match &env.event {
            Event::CallStarted(e) => {
                let row = CallRow {
                    id: e.call_id.to_string(),
                    revision: env.revision,
                    direction: e.direction,
                    caller: e.caller_in_clear().map(|p| p.to_string()),
                    service_number: e.service_number.to_string(),
                    agent: e.agent.to_string(),
                    agent_name: e.agent_name.clear().cloned(),
                    agent_number: e
                        .agent_number
                        .as_ref()
                        .and_then(|p| p.clear().map(|p| p.to_string())),
                    started_at: e.started_at,
                    ended_at: None,
                    recordings: Vec::new(),
                    holds: Vec::new(),
                    restricted: false,
                    personal_data_shredded: e.agent_name.is_shredded()
                        || e.caller
                            .as_ref()
                            .is_some_and(callvault_domain::personal::Personal::is_shredded),
                    rectifications: 0,
                };
                let k = row_key(&row.id);
                return tx.insert_row(k, row);
            }
            Event::CallEnded(e) => e.call_id,
            Event::RecordingStored(e) => e.call_id,
            Event::RecordingPurged(e) => e.call_id,
            Event::CallRectified(e) => e.call_id,
            Event::HoldPlaced(e) => match e.contact {
                ContactRef::Call(c) => c,
                ContactRef::Chat(_) => return Ok(()),
            },
            Event::HoldReleased(e) => match e.contact {
                ContactRef::Call(c) => c,
                ContactRef::Chat(_) => return Ok(()),
            },
            Event::ProcessingRestricted(e) => match e.contact {
                ContactRef::Call(c) => c,
                ContactRef::Chat(_) => return Ok(()),
            },
            Event::RestrictionLifted(e) => match e.contact {
                ContactRef::Call(c) => c,
                ContactRef::Chat(_) => return Ok(()),
            },
            Event::ContactHistoryPurged(e) => match e.contact {
                ContactRef::Call(c) => c,
                ContactRef::Chat(_) => return Ok(()),
            },
            _ => return Ok(()),
        };
        let Some(row) = tx.row_mut::<CallRow>(&row_key(&call_id.to_string()))? else {
            return Ok(()); // an event for a call this model never saw start
        };
        row.revision = env.revision;
        match &env.event {
            Event::CallEnded(e) => row.ended_at = Some(e.ended_at),
            Event::RecordingStored(e) => row.recordings.push(RecordingRow {
                id: e.recording_id.to_string(),
                codec: e.media_type.clone(),
                size_bytes: e.size_bytes,
                duration_ms: e.duration_ms,
                stored_at: e.stored_at,
                purged_at: None,
            }),
            Event::RecordingPurged(e) => {
                let rid = e.recording_id.to_string();
                if let Some(r) = row.recordings.iter_mut().find(|r| r.id == rid) {
                    r.purged_at = Some(e.purged_at);
                }
            }
            Event::CallRectified(e) => {
                row.rectifications += 1;
                match &e.correction {
                    Correction::Caller(p) => row.caller = p.clear().map(|p| p.to_string()),
                    Correction::ServiceNumber(p) => row.service_number = p.to_string(),
                    Correction::AgentName(n) => row.agent_name = n.clear().cloned(),
                    Correction::StartedAt(t) => row.started_at = *t,
                    Correction::EndedAt(t) => row.ended_at = Some(*t),
                }
            }
            Event::HoldPlaced(e) => row.holds.push(HoldRow {
                id: e.hold_id.to_string(),
                case_reference: e.case_reference.clone(),
                review_by: e.review_by,
                placed_at: e.placed_at,
                released_at: None,
            }),
            Event::HoldReleased(e) => {
                let hid = e.hold_id.to_string();
                if let Some(h) = row.holds.iter_mut().find(|h| h.id == hid) {
                    h.released_at = Some(e.released_at);
                }
            }
            Event::ProcessingRestricted(_) => row.restricted = true,
            Event::RestrictionLifted(_) => row.restricted = false,
            Event::ContactHistoryPurged(_) => {
                row.caller = None;
                row.agent_name = None;
                row.agent_number = None;
                row.personal_data_shredded = true;
            }
            _ => {}
        }
        Ok(())
    }
}

/// What to search for. Every field narrows the search.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub caller: Option<PhoneNumber>,
    pub service_number: Option<PhoneNumber>,
    pub agent: Option<StaffId>,
    pub direction: Option<Direction>,
    pub started_from: Option<DateTime<Utc>>,
    pub started_to: Option<DateTime<Utc>>,
    pub min_duration_seconds: Option<i64>,
    pub max_duration_seconds: Option<i64>,
    pub status: Option<Status>,
    /// Only calls of these agents (a supervisor's team); `None`: anyone's.
    pub agents_in: Option<Vec<String>>,
    /// Leave out calls whose processing is restricted (R19).
    pub exclude_restricted: bool,
}

impl CallFilter {
    /// Whether `row` passes every filter.
    fn matches(&self, row: &CallRow) -> bool {
        self.direction.is_none_or(|d| d == row.direction)
            && self
                .caller
                .as_ref()
                .is_none_or(|c| row.caller.as_deref() == Some(c.as_e164()))
            && self
                .service_number
                .as_ref()
                .is_none_or(|s| row.service_number == s.as_e164())
            && self.agent.as_ref().is_none_or(|a| row.agent == a.as_str())
            && self
                .agents_in
                .as_ref()
                .is_none_or(|team| team.contains(&row.agent))
            && self
                .min_duration_seconds
                .is_none_or(|m| row.duration_seconds().is_some_and(|d| d >= m))
            && self
                .max_duration_seconds
                .is_none_or(|m| row.duration_seconds().is_some_and(|d| d <= m))
            && self.status.is_none_or(|s| row.status().contains(&s))
            && !(self.exclude_restricted && row.restricted)
    }
}

#[derive(Debug, Clone)]
pub struct CallPage {
    pub items: Vec<CallRow>,
    /// Pass back as `after` for the next page; `None` at the end.
    pub next_cursor: Option<String>,
    /// How many index entries were read (to show a search's cost).
    pub scanned: usize,
    /// The page ended at the scan limit before it was full: more calls
    /// may match after `next_cursor`.
    pub cut_short: bool,
}

/// Most index entries one page may read before returning what it has.
pub const MAX_SCAN: usize = 20_000;

fn cursor_of(row: &CallRow) -> String {
    format!("{}_{}", row.started_at.timestamp_micros(), row.id)
}

fn parse_cursor(cursor: &str) -> Result<(DateTime<Utc>, String), ProjectionError> {
    let bad = || {
        ProjectionError::invalid(
            "after",
            format!("`{cursor}` is not a cursor this search gave (pass back its nextCursor)"),
        )
    };
    let (t, id) = cursor.split_once('_').ok_or_else(bad)?;
    let t = t
        .parse()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    id.parse::<CallId>().map_err(|_| bad())?;
    Ok((t, id.to_owned()))
}

/// A row by call id.
pub fn get(view: &ViewDb, id: CallId) -> Result<Option<CallRow>, ProjectionError> {
    view.get_row(&row_key(&id.to_string()))
}

/// Searches calls, newest first.
pub fn search(
    view: &ViewDb,
    filter: &CallFilter,
    after: Option<&str>,
    limit: usize,
) -> Result<CallPage, ProjectionError> {
    search_within(view, filter, after, limit, MAX_SCAN)
}

/// As [`search`], reading at most `budget` index entries (at most
/// [`MAX_SCAN`]): a page it cut short says so ([`CallPage::cut_short`]),
/// so a caller can try a cheap search where it must not wait and run
/// [`search`] elsewhere when that was not enough.
pub fn search_within(
    view: &ViewDb,
    filter: &CallFilter,
    after: Option<&str>,
    limit: usize,
    budget: usize,
) -> Result<CallPage, ProjectionError> {
    let budget = budget.min(MAX_SCAN);
    let (prefix, value): (&[u8], Option<String>) = if let Some(c) = &filter.caller {
        (b"c", Some(c.to_string()))
    } else if let Some(a) = &filter.agent {
        (b"a", Some(a.to_string()))
    } else if let Some(s) = &filter.service_number {
        (b"s", Some(s.to_string()))
    } else {
        (b"t", None)
    };
    let base = match &value {
        Some(v) => key(&[prefix, v.as_bytes(), b""]),
        None => key(&[prefix, b""]),
    };
    crate::projection::check_range("startedTo", filter.started_from, filter.started_to)?;
    if let (Some(min), Some(max)) = (filter.min_duration_seconds, filter.max_duration_seconds)
        && min > max
    {
        return Err(ProjectionError::invalid(
            "maxDurationSeconds",
            format!("{max} is below minDurationSeconds {min}"),
        ));
    }
    let cursor = after.map(parse_cursor).transpose()?;
    let start = crate::projection::scan_start(
        &base,
        cursor
            .as_ref()
            .map(|(t, id)| [&base[..], &time_key(*t), b"\x00", id.as_bytes()].concat()),
        filter.started_to,
    );
    let floor = filter.started_from.map(time_key);
    let mut items = Vec::new();
    let mut scanned = 0;
    for entry in view.scan(&base, start.as_deref(), true) {
        let (k, _) = entry?;
        let rest = &k[base.len()..];
        if rest.len() < 9 {
            continue;
        }
        if let Some(f) = floor
            && rest[..8] < f[..]
        {
            break;
        }
        let id = String::from_utf8_lossy(&rest[9..]).into_owned();
        if let Some((t, cid)) = &cursor
            && time_key(*t)[..] == rest[..8]
            && *cid == id
        {
            continue; // the cursor row itself was on the previous page
        }
        scanned += 1;
        let listed_here = |row: &CallRow| time_key(row.started_at)[..] == rest[..8];
        let Some(row) = view
            .get_row_if::<CallRow>(&row_key(&id), |row| listed_here(row) && filter.matches(row))?
        else {
            continue;
        };
        if !listed_here(&row) {
            // An entry under a start time the call no longer has: a
            // correction being written (its entry under the new time is
            // where the call is listed), so the call is never listed twice
            // nor a cursor taken from a place it is not.
            continue;
        }
        let keep = filter.matches(&row);
        let cursor_here = cursor_of(&row);
        if keep {
            items.push(row);
        }
        if items.len() == limit || scanned >= budget {
            return Ok(CallPage {
                next_cursor: Some(cursor_here),
                cut_short: items.len() < limit,
                items,
                scanned,
            });
        }
    }
    Ok(CallPage {
        items,
        next_cursor: None,
        scanned,
        cut_short: false,
    })
}
