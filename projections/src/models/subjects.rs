//! `subjects`: the data subject's view (R17) — for a phone number, every
//! call from or to it, whether it was recorded, what became of the
//! recording, and who opened it and why. Built for the case worker; the
//! access entries are not part of the copy handed to the subject (R28).

use callvault_domain::{ContactRef, Event, PhoneNumber};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    projection::{Envelope, Projection, ProjectionError, key, time_key},
    view::{Row, Tx, ViewDb},
};

pub const NAME: &str = "subjects";
/// v1: first version.
/// v2: start, end and service-number corrections applied (and numbers
/// typed `+358 0…` normalised without the trunk zero).
pub const VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectRecording {
    pub id: String,
    pub stored_at: DateTime<Utc>,
    pub purged_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectAccess {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub purpose: String,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectCall {
    pub call_id: String,
    pub number: Option<String>,
    pub direction: callvault_domain::call::Direction,
    pub service_number: String,
    pub agent: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub recordings: Vec<SubjectRecording>,
    pub accesses: Vec<SubjectAccess>,
}

impl Row for SubjectCall {
    fn index_keys(&self, _key: &[u8]) -> Vec<Vec<u8>> {
        self.number
            .iter()
            .map(|n| number_key(n, self.started_at, &self.call_id))
            .collect()
    }
}

pub struct Subjects;

fn row_key(call: &str) -> Vec<u8> {
    key(&[b"v", call.as_bytes()])
}

fn number_key(number: &str, started: DateTime<Utc>, call: &str) -> Vec<u8> {
    key(&[b"n", number.as_bytes(), &time_key(started), call.as_bytes()])
}

fn update(
    tx: &mut Tx<'_>,
    call: &str,
    f: impl FnOnce(&mut SubjectCall),
) -> Result<(), ProjectionError> {
    if let Some(row) = tx.row_mut::<SubjectCall>(&row_key(call))? {
        f(row);
    }
    Ok(())
}

impl Projection for Subjects {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        VERSION
    }

    fn apply(&self, tx: &mut Tx<'_>, env: &Envelope) -> Result<(), ProjectionError> {
        match &env.event {
            Event::CallStarted(e) => {
                let id = e.call_id.to_string();
                tx.insert_row(
                    row_key(&id),
                    SubjectCall {
                        call_id: id.clone(),
                        number: e.caller_in_clear().map(|p| p.to_string()),
                        direction: e.direction,
                        service_number: e.service_number.to_string(),
                        agent: e.agent.to_string(),
                        started_at: e.started_at,
                        ended_at: None,
                        recordings: Vec::new(),
                        accesses: Vec::new(),
                    },
                )?;
            }
            Event::CallEnded(e) => update(tx, &e.call_id.to_string(), |r| {
                r.ended_at = Some(e.ended_at)
            })?,
            Event::RecordingStored(e) => update(tx, &e.call_id.to_string(), |r| {
                r.recordings.push(SubjectRecording {
                    id: e.recording_id.to_string(),
                    stored_at: e.stored_at,
                    purged_at: None,
                })
            })?,
            Event::RecordingPurged(e) => update(tx, &e.call_id.to_string(), |r| {
                let rid = e.recording_id.to_string();
                if let Some(x) = r.recordings.iter_mut().find(|x| x.id == rid) {
                    x.purged_at = Some(e.purged_at);
                }
            })?,
            Event::RecordingAccessed(e) => update(tx, &e.call_id.to_string(), |r| {
                r.accesses.push(SubjectAccess {
                    at: e.accessed_at,
                    actor: e.actor.to_string(),
                    purpose: e.purpose.to_string(),
                    what: format!("recording {} ({:?})", e.recording_id, e.mode).to_lowercase(),
                })
            })?,
            Event::ContactHistoryRead(e) => {
                if let ContactRef::Call(c) = e.contact {
                    update(tx, &c.to_string(), |r| {
                        r.accesses.push(SubjectAccess {
                            at: e.read_at,
                            actor: e.actor.to_string(),
                            purpose: e.purpose.to_string(),
                            what: "contact history".into(),
                        })
                    })?;
                }
            }
            Event::CallRectified(e) => {
                // Every correction, as `calls` applies them: the subject's
                // answer shows the data as corrected (R18). The number
                // index follows the row (its start time included).
                use callvault_domain::call::Correction;
                let id = e.call_id.to_string();
                match &e.correction {
                    Correction::Caller(p) => {
                        let new = p.clear().map(|p| p.to_string());
                        update(tx, &id, |r| r.number = new)?;
                    }
                    Correction::StartedAt(t) => update(tx, &id, |r| r.started_at = *t)?,
                    Correction::EndedAt(t) => update(tx, &id, |r| r.ended_at = Some(*t))?,
                    Correction::ServiceNumber(p) => {
                        let new = p.to_string();
                        update(tx, &id, |r| r.service_number = new)?;
                    }
                    Correction::AgentName(_) => {}
                }
            }
            Event::ContactHistoryPurged(e) => {
                if let ContactRef::Call(c) = e.contact {
                    update(tx, &c.to_string(), |r| r.number = None)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Every call of these numbers, newest first: at most `limit`, and
/// whether there were more.
pub fn lookup(
    view: &ViewDb,
    numbers: &[PhoneNumber],
    limit: usize,
) -> Result<(Vec<SubjectCall>, bool), ProjectionError> {
    let mut out = Vec::new();
    // Each number's newest `limit + 1` calls: enough to merge the newest
    // `limit` across all numbers and to know whether any were left out.
    for n in numbers {
        let base = key(&[b"n", n.as_e164().as_bytes(), b""]);
        let mut taken = 0;
        for entry in view.scan(&base, None, true) {
            let (k, _) = entry?;
            let rest = &k[base.len()..];
            if rest.len() < 9 {
                continue;
            }
            let call = String::from_utf8_lossy(&rest[9..]).into_owned();
            if let Some(row) = view.get_json::<SubjectCall>(&row_key(&call))? {
                out.push(row);
                taken += 1;
            }
            if taken > limit {
                break;
            }
        }
    }
    out.sort_by(|a, b| {
        b.started_at
            .cmp(&a.started_at)
            .then(a.call_id.cmp(&b.call_id))
    });
    out.dedup_by(|a, b| a.call_id == b.call_id);
    let more = out.len() > limit;
    out.truncate(limit);
    Ok((out, more))
}
