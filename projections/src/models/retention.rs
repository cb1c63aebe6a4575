//! `retention`: recordings by the day they expire, with what keeps them —
//! the forecast the retention job and case workers read (R14, R15, R30).
//! Expiry follows the retention policy the model was built with (its
//! version is part of the build, so a policy change rebuilds it).

use callvault_domain::{ContactRef, Event, RetentionPolicy};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    projection::{Envelope, Projection, ProjectionError, key, time_key},
    view::{Row, Tx, ViewDb},
};

pub const NAME: &str = "retention";
/// v1: first version.
/// v2: recordings live in their call's row (about 1.8 sled keys per call
/// instead of 2.6).
/// v3: a call that has not ended is listed at the expiry of a call that
/// ended `OPEN_AT_MOST_DAYS` after its start.
pub const VERSION: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveHold {
    pub id: String,
    pub case_reference: String,
    pub review_by: NaiveDate,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct CallKeep {
    /// When its recordings expire under the model's policy: counted from
    /// the call's end, or while none is recorded from its start plus
    /// `OPEN_AT_MOST_DAYS` (a call whose end never came is not kept
    /// forever).
    expires_at: Option<DateTime<Utc>>,
    /// Its start, while it has no end.
    #[serde(default)]
    open_since: Option<DateTime<Utc>>,
    holds: Vec<ActiveHold>,
    restricted: bool,
    recordings: Vec<RecordingKeep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RecordingKeep {
    id: String,
    purged_at: Option<DateTime<Utc>>,
}

/// One recording in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueItem {
    pub recording_id: String,
    pub call_id: String,
    pub expires_at: DateTime<Utc>,
    pub holds: Vec<ActiveHold>,
    pub restricted: bool,
}

impl QueueItem {
    /// Whether retention will destroy it when it is due.
    pub fn kept(&self) -> bool {
        !self.holds.is_empty() || self.restricted
    }
}

pub struct Retention {
    pub policy: RetentionPolicy,
}

impl Retention {
    fn expires(&self, started_at: DateTime<Utc>, ended_at: Option<DateTime<Utc>>) -> DateTime<Utc> {
        self.policy
            .recording_expires_at(RetentionPolicy::retention_starts(started_at, ended_at))
    }
}

fn call_key(id: &str) -> Vec<u8> {
    key(&[b"k", id.as_bytes()])
}

/// The expiry index: `x`, expiry time, recording id, call id.
fn expiry_base() -> Vec<u8> {
    key(&[b"x", b""])
}

/// The id at the end of a row key (`<prefix>\0<id>`).
fn id_of(key: &[u8]) -> &[u8] {
    key.get(2..).unwrap_or_default()
}

impl Row for CallKeep {
    /// Calls kept by a hold or a restriction are listed under `h`;
    /// recordings waiting to expire under `x`, by expiry time.
    fn index_keys(&self, key: &[u8]) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        if !self.holds.is_empty() || self.restricted {
            keys.push(crate::projection::key(&[b"h", id_of(key)]));
        }
        if let Some(expires) = self.expires_at {
            let t = time_key(expires);
            for r in self.recordings.iter().filter(|r| r.purged_at.is_none()) {
                keys.push([&expiry_base()[..], &t, r.id.as_bytes(), b"\x00", id_of(key)].concat());
            }
        }
        keys
    }
}

impl Projection for Retention {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        VERSION
    }

    fn config(&self) -> String {
        format!(
            "policy v{}: recordings {} months",
            self.policy.version, self.policy.recording_months
        )
    }

    fn apply(&self, tx: &mut Tx<'_>, env: &Envelope) -> Result<(), ProjectionError> {
        let call = match &env.event {
            Event::CallStarted(e) => {
                let keep = CallKeep {
                    expires_at: Some(self.expires(e.started_at, None)),
                    open_since: Some(e.started_at),
                    ..CallKeep::default()
                };
                return tx.insert_row(call_key(&e.call_id.to_string()), keep);
            }
            Event::CallEnded(e) => e.call_id.to_string(),
            Event::RecordingStored(e) => e.call_id.to_string(),
            Event::RecordingPurged(e) => e.call_id.to_string(),
            Event::CallRectified(e) => e.call_id.to_string(),
            Event::HoldPlaced(e) => match e.contact {
                ContactRef::Call(c) => c.to_string(),
                ContactRef::Chat(_) => return Ok(()),
            },
            Event::HoldReleased(e) => match e.contact {
                ContactRef::Call(c) => c.to_string(),
                ContactRef::Chat(_) => return Ok(()),
            },
            Event::ProcessingRestricted(e) => match e.contact {
                ContactRef::Call(c) => c.to_string(),
                ContactRef::Chat(_) => return Ok(()),
            },
            Event::RestrictionLifted(e) => match e.contact {
                ContactRef::Call(c) => c.to_string(),
                ContactRef::Chat(_) => return Ok(()),
            },
            _ => return Ok(()),
        };
        let Some(keep) = tx.row_mut::<CallKeep>(&call_key(&call))? else {
            return Ok(());
        };
        match &env.event {
            Event::CallEnded(e) => {
                keep.open_since = None;
                keep.expires_at = Some(self.expires(e.ended_at, Some(e.ended_at)));
            }
            Event::CallRectified(e) => match e.correction {
                callvault_domain::call::Correction::EndedAt(t) => {
                    keep.open_since = None;
                    keep.expires_at = Some(self.expires(t, Some(t)));
                }
                callvault_domain::call::Correction::StartedAt(t) if keep.open_since.is_some() => {
                    keep.open_since = Some(t);
                    keep.expires_at = Some(self.expires(t, None));
                }
                _ => {}
            },
            Event::RecordingStored(e) => {
                let id = e.recording_id.to_string();
                if !keep.recordings.iter().any(|r| r.id == id) {
                    keep.recordings.push(RecordingKeep {
                        id,
                        purged_at: None,
                    });
                }
            }
            Event::RecordingPurged(e) => {
                let id = e.recording_id.to_string();
                if let Some(r) = keep.recordings.iter_mut().find(|r| r.id == id) {
                    r.purged_at = Some(e.purged_at);
                }
            }
            Event::HoldPlaced(e) => keep.holds.push(ActiveHold {
                id: e.hold_id.to_string(),
                case_reference: e.case_reference.clone(),
                review_by: e.review_by,
            }),
            Event::HoldReleased(e) => {
                let id = e.hold_id.to_string();
                keep.holds.retain(|h| h.id != id);
            }
            Event::ProcessingRestricted(_) => keep.restricted = true,
            Event::RestrictionLifted(_) => keep.restricted = false,
            _ => {}
        }
        Ok(())
    }
}

/// Recordings that expire in `[from, to)`, soonest first.
pub fn queue(
    view: &ViewDb,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<QueueItem>, ProjectionError> {
    let base = expiry_base();
    let (from, to) = (time_key(from), time_key(to));
    let first = [&base[..], &from].concat();
    let mut out = Vec::new();
    for entry in view.scan(&base, Some(&first), false) {
        let member = entry?.0.split_off(base.len());
        if member.len() < 8 || member[..8] >= to[..] {
            break;
        }
        let rest = String::from_utf8_lossy(&member[8..]).into_owned();
        let Some((recording_id, call_id)) = rest.split_once('\0') else {
            continue;
        };
        let Some(keep) = view.get_json::<CallKeep>(&call_key(call_id))? else {
            continue;
        };
        let Some(expires_at) = keep.expires_at else {
            continue;
        };
        out.push(QueueItem {
            recording_id: recording_id.to_owned(),
            call_id: call_id.to_owned(),
            expires_at,
            holds: keep.holds,
            restricted: keep.restricted,
        });
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

/// Calls kept by holds or restriction, with their holds.
pub fn kept(
    view: &ViewDb,
    limit: usize,
) -> Result<Vec<(String, Vec<ActiveHold>, bool)>, ProjectionError> {
    let base = key(&[b"h", b""]);
    let mut out = Vec::new();
    for entry in view.scan(&base, None, false).take(limit) {
        let (k, _) = entry?;
        let call = String::from_utf8_lossy(&k[base.len()..]).into_owned();
        let keep = view
            .get_json::<CallKeep>(&call_key(&call))?
            .unwrap_or_default();
        out.push((call, keep.holds, keep.restricted));
    }
    Ok(out)
}
