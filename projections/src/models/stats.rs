//! `stats`: per service number and day — calls, how many were recorded,
//! held or had a recording purged, and the distribution of durations
//! (p50, p90, max) — for analysts (R5). Counted on the day the call
//! started, under the service number it started with.

use std::collections::BTreeMap;

use callvault_domain::{ContactRef, Event};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    projection::{Envelope, Projection, ProjectionError, key},
    view::{Row, Tx, ViewDb},
};

pub const NAME: &str = "stats";
/// v1: first version.
/// v2: a call's start time lives in its per-call row (one key less per call).
pub const VERSION: u32 = 2;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct CallStat {
    service: String,
    day: NaiveDate,
    /// When the call started, to compute its duration when it ends.
    started_at: Option<DateTime<Utc>>,
    duration: Option<i64>,
    recorded: bool,
    held: bool,
    purged: bool,
}

/// One service's day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayStats {
    pub calls: u64,
    pub recorded: u64,
    pub held: u64,
    pub purged: u64,
    pub ended: u64,
    pub max_duration: i64,
    /// Duration bucket → count (see [`bucket_of`]).
    pub durations: BTreeMap<u32, u64>,
}

/// Duration buckets: every second up to ten minutes, every ten seconds up
/// to two hours, every minute beyond. Percentiles are exact to a bucket.
pub fn bucket_of(seconds: i64) -> u32 {
    let s = seconds.max(0) as u64;
    let b = if s <= 600 {
        s
    } else if s <= 7200 {
        600 + (s - 600) / 10
    } else {
        1260 + (s - 7200) / 60
    };
    b.min(u32::MAX as u64) as u32
}

/// The lower edge of a bucket, in seconds.
pub fn bucket_floor(b: u32) -> i64 {
    let b = i64::from(b);
    if b <= 600 {
        b
    } else if b <= 1260 {
        600 + (b - 600) * 10
    } else {
        7200 + (b - 1260) * 60
    }
}

impl DayStats {
    pub fn merge(&mut self, other: &DayStats) {
        self.calls += other.calls;
        self.recorded += other.recorded;
        self.held += other.held;
        self.purged += other.purged;
        self.ended += other.ended;
        self.max_duration = self.max_duration.max(other.max_duration);
        for (b, n) in &other.durations {
            *self.durations.entry(*b).or_default() += n;
        }
    }

    /// The duration at quantile `q` (0–1) of ended calls.
    pub fn percentile(&self, q: f64) -> Option<i64> {
        if self.ended == 0 {
            return None;
        }
        let rank = ((self.ended as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in &self.durations {
            seen += n;
            if seen >= rank {
                return Some(bucket_floor(*b));
            }
        }
        Some(self.max_duration)
    }

    pub fn recorded_share(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.recorded as f64 / self.calls as f64
        }
    }
}

pub struct Stats;

fn call_key(call: &str) -> Vec<u8> {
    key(&[b"m", call.as_bytes()])
}

/// Rows are keyed day first, so a date range is one range scan.
fn day_key(service: &str, day: NaiveDate) -> Vec<u8> {
    key(&[b"d", day.to_string().as_bytes(), service.as_bytes()])
}

fn bump(
    tx: &mut Tx<'_>,
    stat: &CallStat,
    f: impl FnOnce(&mut DayStats),
) -> Result<(), ProjectionError> {
    f(tx.row_or_default::<DayStats>(&day_key(&stat.service, stat.day))?);
    Ok(())
}

impl Projection for Stats {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        VERSION
    }

    fn apply(&self, tx: &mut Tx<'_>, env: &Envelope) -> Result<(), ProjectionError> {
        let (call, start) = match &env.event {
            Event::CallStarted(e) => {
                let stat = CallStat {
                    service: e.service_number.to_string(),
                    day: e.started_at.date_naive(),
                    started_at: Some(e.started_at),
                    ..CallStat::default()
                };
                bump(tx, &stat, |d| d.calls += 1)?;
                let id = e.call_id.to_string();
                return tx.insert_row(call_key(&id), stat);
            }
            Event::CallEnded(e) => (e.call_id.to_string(), None),
            Event::RecordingStored(e) => (e.call_id.to_string(), None),
            Event::RecordingPurged(e) => (e.call_id.to_string(), None),
            Event::HoldPlaced(e) => match e.contact {
                ContactRef::Call(c) => (c.to_string(), None),
                ContactRef::Chat(_) => return Ok(()),
            },
            Event::CallRectified(e) => match e.correction {
                callvault_domain::call::Correction::EndedAt(t) => (e.call_id.to_string(), Some(t)),
                _ => return Ok(()),
            },
            _ => return Ok(()),
        };
        let Some(stat) = tx.row_mut::<CallStat>(&call_key(&call))? else {
            return Ok(());
        };
        let mut stat = stat.clone();
        let ended_at = match &env.event {
            Event::CallEnded(e) => Some(e.ended_at),
            _ => start,
        };
        match &env.event {
            Event::CallEnded(_) | Event::CallRectified(_) => {
                let Some(ended) = ended_at else {
                    return Ok(());
                };
                let duration = stat
                    .started_at
                    .map_or(0, |s| (ended - s).num_seconds().max(0));
                let old = stat.duration;
                bump(tx, &stat, |d| {
                    if let Some(o) = old {
                        if let Some(n) = d.durations.get_mut(&bucket_of(o)) {
                            *n = n.saturating_sub(1);
                        }
                    } else {
                        d.ended += 1;
                    }
                    *d.durations.entry(bucket_of(duration)).or_default() += 1;
                    d.max_duration = d.max_duration.max(duration);
                })?;
                stat.duration = Some(duration);
            }
            Event::RecordingStored(_) if !stat.recorded => {
                bump(tx, &stat, |d| d.recorded += 1)?;
                stat.recorded = true;
            }
            Event::RecordingPurged(_) if !stat.purged => {
                bump(tx, &stat, |d| d.purged += 1)?;
                stat.purged = true;
            }
            Event::HoldPlaced(_) if !stat.held => {
                bump(tx, &stat, |d| d.held += 1)?;
                stat.held = true;
            }
            _ => {}
        }
        tx.insert_row(call_key(&call), stat)
    }
}

impl Row for CallStat {}
impl Row for DayStats {}

/// One service number's day: (service number, day, figures).
pub type ServiceDay = (String, NaiveDate, DayStats);

/// Totals over `[from, to]` for one service number or all, with the rows
/// they were summed from.
pub fn totals(
    view: &ViewDb,
    from: NaiveDate,
    to: NaiveDate,
    service: Option<&str>,
) -> Result<(DayStats, Vec<ServiceDay>), ProjectionError> {
    let base = key(&[b"d", b""]);
    let start = key(&[b"d", from.to_string().as_bytes(), b""]);
    let mut total = DayStats::default();
    let mut days = Vec::new();
    for entry in view.scan(&base, Some(&start), false) {
        let (k, v) = entry?;
        let rest = &k[base.len()..];
        let mut parts = rest.splitn(2, |b| *b == 0);
        let (Some(day), Some(svc)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(day) = NaiveDate::parse_from_str(&String::from_utf8_lossy(day), "%Y-%m-%d") else {
            continue;
        };
        if day > to {
            break;
        }
        let svc = String::from_utf8_lossy(svc).into_owned();
        if service.is_some_and(|s| s != svc) {
            continue;
        }
        let stats: DayStats = serde_json::from_slice(&v)
            .map_err(|e| ProjectionError::Storage(format!("a stats row: {e}")))?;
        total.merge(&stats);
        days.push((svc, day, stats));
    }
    Ok((total, days))
}
