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
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveHold {
    pub id: String,
    pub case_reference: String,
    pub review_by: NaiveDate,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct CallKeep {
    ended_at: Option<DateTime<Utc>>,
    holds: Vec<ActiveHold>,
    restricted: bool,
    recordings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RecordingKeep {
    call: String,
    stored_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
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

fn call_key(id: &str) -> Vec<u8> {
    key(&[b"k", id.as_bytes()])
}

fn rec_key(id: &str) -> Vec<u8> {
    key(&[b"r", id.as_bytes()])
}

fn expiry_key(t: DateTime<Utc>, rec: &str) -> Vec<u8> {
    key(&[b"x", &time_key(t), rec.as_bytes()])
}

/// The id at the end of a row key (`<prefix>\0<id>`).
fn id_of(key: &[u8]) -> &[u8] {
    key.get(2..).unwrap_or_default()
}

impl Row for CallKeep {
    /// Calls kept by a hold or a restriction are listed under `h`.
    fn index_keys(&self, key: &[u8]) -> Vec<Vec<u8>> {
        if !self.holds.is_empty() || self.restricted {
            vec![crate::projection::key(&[b"h", id_of(key)])]
        } else {
            Vec::new()
        }
    }
}

impl Row for RecordingKeep {
    /// Recordings waiting to expire are listed under `x` by expiry time.
    fn index_keys(&self, key: &[u8]) -> Vec<Vec<u8>> {
        match (self.expires_at, self.purged_at) {
            (Some(t), None) => vec![expiry_key(t, &String::from_utf8_lossy(id_of(key)))],
            _ => Vec::new(),
        }
    }
}

impl Retention {
    fn set_expiry(
        &self,
        tx: &mut Tx<'_>,
        recordings: &[String],
        ended_at: Option<DateTime<Utc>>,
    ) -> Result<(), ProjectionError> {
        for rec_id in recordings {
            if let Some(rec) = tx.row_mut::<RecordingKeep>(&rec_key(rec_id))? {
                rec.expires_at = ended_at.map(|t| self.policy.recording_expires_at(t));
            }
        }
        Ok(())
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
                return tx.insert_row(call_key(&e.call_id.to_string()), CallKeep::default());
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
                keep.ended_at = Some(e.ended_at);
                let (recordings, ended) = (keep.recordings.clone(), keep.ended_at);
                self.set_expiry(tx, &recordings, ended)?;
            }
            Event::CallRectified(e) => {
                if let callvault_domain::call::Correction::EndedAt(t) = e.correction {
                    keep.ended_at = Some(t);
                    let (recordings, ended) = (keep.recordings.clone(), keep.ended_at);
                    self.set_expiry(tx, &recordings, ended)?;
                }
            }
            Event::RecordingStored(e) => {
                let rid = e.recording_id.to_string();
                keep.recordings.push(rid.clone());
                let expires_at = keep.ended_at.map(|t| self.policy.recording_expires_at(t));
                tx.insert_row(
                    rec_key(&rid),
                    RecordingKeep {
                        call,
                        stored_at: e.stored_at,
                        expires_at,
                        purged_at: None,
                    },
                )?;
            }
            Event::RecordingPurged(e) => {
                if let Some(rec) =
                    tx.row_mut::<RecordingKeep>(&rec_key(&e.recording_id.to_string()))?
                {
                    rec.purged_at = Some(e.purged_at);
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
    let base = key(&[b"x", b""]);
    let start = [&base[..], &time_key(from)].concat();
    let mut out = Vec::new();
    for entry in view.scan(&base, Some(&start), false) {
        let (k, _) = entry?;
        let rest = &k[base.len()..];
        if rest.len() < 9 || rest[..8] >= time_key(to)[..] {
            break;
        }
        let rid = String::from_utf8_lossy(&rest[9..]).into_owned();
        let Some(rec) = view.get_json::<RecordingKeep>(&rec_key(&rid))? else {
            continue;
        };
        let keep = view
            .get_json::<CallKeep>(&call_key(&rec.call))?
            .unwrap_or_default();
        let Some(expires_at) = rec.expires_at else {
            continue;
        };
        out.push(QueueItem {
            recording_id: rid,
            call_id: rec.call,
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
