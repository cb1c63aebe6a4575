//! `stats`: per service number and day — calls, how many were recorded,
//! held or had a recording purged, and the distribution of durations
//! (p50, p90, max) — for analysts (R5). Counted on the (UTC) day the call
//! started, under its service number — both as corrected (R18), like its
//! duration.

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
/// v3: corrections of a call's start, end or service number move it (its
/// day, its duration, its service) as the domain's fold does.
pub const VERSION: u32 = 3;

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
    pub durations: Durations,
}

/// Duration bucket → count, ascending by bucket. Stored as the JSON map a
/// `BTreeMap<u32, u64>` gives (same bytes), but kept as a sorted vector:
/// summing a month of rows merges vectors instead of inserting into
/// trees, which was most of a `callStats` query's time (BENCHMARKS.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Durations(Vec<(u32, u64)>);

impl Durations {
    /// Bucket `b`'s count, the bucket inserted at 0 if it was not there.
    fn slot(&mut self, b: u32) -> &mut u64 {
        let i = match self.0.binary_search_by_key(&b, |(k, _)| *k) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (b, 0));
                i
            }
        };
        &mut self.0[i].1
    }

    /// Adds `n` calls to bucket `b`.
    pub fn add(&mut self, b: u32, n: u64) {
        *self.slot(b) += n;
    }

    /// Takes one call out of bucket `b` (the bucket stays, possibly at 0).
    pub fn take_one(&mut self, b: u32) {
        if let Ok(i) = self.0.binary_search_by_key(&b, |(k, _)| *k) {
            self.0[i].1 = self.0[i].1.saturating_sub(1);
        }
    }

    /// (bucket, count), ascending by bucket.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.0.iter().copied()
    }

    /// Adds every bucket of `other` (one pass over both).
    pub fn merge(&mut self, other: &Durations) {
        if other.0.is_empty() {
            return;
        }
        let (x, y) = (&self.0, &other.0);
        let mut merged = Vec::with_capacity(x.len() + y.len());
        let (mut i, mut j) = (0, 0);
        while i < x.len() && j < y.len() {
            match x[i].0.cmp(&y[j].0) {
                std::cmp::Ordering::Less => {
                    merged.push(x[i]);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    merged.push(y[j]);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    merged.push((x[i].0, x[i].1 + y[j].1));
                    i += 1;
                    j += 1;
                }
            }
        }
        merged.extend_from_slice(&x[i..]);
        merged.extend_from_slice(&y[j..]);
        self.0 = merged;
    }
}

impl Serialize for Durations {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (b, n) in &self.0 {
            map.serialize_entry(b, n)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Durations {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Durations;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of duration bucket to count")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Durations, A::Error> {
                let mut out: Vec<(u32, u64)> = Vec::with_capacity(map.size_hint().unwrap_or(0));
                let mut ascending = true;
                while let Some((b, n)) = map.next_entry::<u32, u64>()? {
                    ascending &= out.last().is_none_or(|(last, _)| *last < b);
                    out.push((b, n));
                }
                // Written strictly ascending; anything else is read the way
                // a BTreeMap reads it: sorted, the last value of a key wins.
                if !ascending {
                    let mut d = Durations::default();
                    for (b, n) in out {
                        *d.slot(b) = n;
                    }
                    return Ok(d);
                }
                Ok(Durations(out))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
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
        self.durations.merge(&other.durations);
    }

    /// The duration at quantile `q` (0–1) of ended calls.
    pub fn percentile(&self, q: f64) -> Option<i64> {
        if self.ended == 0 {
            return None;
        }
        let rank = ((self.ended as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in self.durations.iter() {
            seen += n;
            if seen >= rank {
                return Some(bucket_floor(b));
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
        use callvault_domain::call::Correction;
        let call = match &env.event {
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
            Event::CallEnded(e) => e.call_id,
            Event::RecordingStored(e) => e.call_id,
            Event::RecordingPurged(e) => e.call_id,
            Event::HoldPlaced(e) => match e.contact {
                ContactRef::Call(c) => c,
                ContactRef::Chat(_) => return Ok(()),
            },
            Event::CallRectified(e) => match e.correction {
                Correction::EndedAt(_)
                | Correction::StartedAt(_)
                | Correction::ServiceNumber(_) => e.call_id,
                _ => return Ok(()),
            },
            _ => return Ok(()),
        };
        let call = call.to_string();
        let Some(stat) = tx.row_mut::<CallStat>(&call_key(&call))? else {
            return Ok(());
        };
        let mut stat = stat.clone();
        match &env.event {
            Event::CallEnded(e) => {
                let duration = duration(stat.started_at, e.ended_at);
                let old = stat.duration;
                bump(tx, &stat, |d| {
                    if let Some(o) = old {
                        d.durations.take_one(bucket_of(o));
                    } else {
                        d.ended += 1;
                    }
                    d.durations.add(bucket_of(duration), 1);
                    d.max_duration = d.max_duration.max(duration);
                })?;
                stat.duration = Some(duration);
            }
            Event::CallRectified(e) => {
                // Out of the day it was counted on, corrected, and into
                // the day (and service) it belongs to now.
                bump(tx, &stat, |d| d.remove(&stat))?;
                let ended_at = stat
                    .started_at
                    .zip(stat.duration)
                    .map(|(s, d)| s + chrono::Duration::seconds(d));
                match &e.correction {
                    Correction::StartedAt(t) => {
                        stat.started_at = Some(*t);
                        stat.day = t.date_naive();
                        stat.duration = ended_at.map(|end| duration(Some(*t), end));
                    }
                    Correction::EndedAt(t) => {
                        stat.duration = Some(duration(stat.started_at, *t));
                    }
                    Correction::ServiceNumber(p) => stat.service = p.to_string(),
                    _ => {}
                }
                bump(tx, &stat, |d| d.add(&stat))?;
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

/// Seconds from `start` to `end`, never negative.
fn duration(start: Option<DateTime<Utc>>, end: DateTime<Utc>) -> i64 {
    start.map_or(0, |s| (end - s).num_seconds().max(0))
}

impl DayStats {
    /// Counts one call's contribution in.
    fn add(&mut self, stat: &CallStat) {
        self.calls += 1;
        self.recorded += u64::from(stat.recorded);
        self.held += u64::from(stat.held);
        self.purged += u64::from(stat.purged);
        if let Some(d) = stat.duration {
            self.ended += 1;
            self.durations.add(bucket_of(d), 1);
            self.max_duration = self.max_duration.max(d);
        }
    }

    /// Takes one call's contribution out. If it was the longest, the
    /// maximum falls to the start of the longest bucket left (the exact
    /// durations are not kept).
    fn remove(&mut self, stat: &CallStat) {
        self.calls = self.calls.saturating_sub(1);
        self.recorded = self.recorded.saturating_sub(u64::from(stat.recorded));
        self.held = self.held.saturating_sub(u64::from(stat.held));
        self.purged = self.purged.saturating_sub(u64::from(stat.purged));
        if let Some(d) = stat.duration {
            self.ended = self.ended.saturating_sub(1);
            self.durations.take_one(bucket_of(d));
            if d >= self.max_duration {
                self.max_duration = self
                    .durations
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(b, _)| bucket_floor(b))
                    .last()
                    .unwrap_or(0);
            }
        }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A few rows' worth of buckets, with repeats and zero counts.
    fn samples() -> Vec<Vec<(u32, u64)>> {
        vec![
            vec![(3, 1), (0, 2), (600, 0), (1261, 4)],
            vec![],
            vec![(3, 5), (7, 1), (99_999, 1)],
            vec![(0, 1), (1261, 1), (2, 0)],
        ]
    }

    fn durations(pairs: &[(u32, u64)]) -> Durations {
        let mut d = Durations::default();
        for (b, n) in pairs {
            d.add(*b, *n);
        }
        d
    }

    fn tree(pairs: &[(u32, u64)]) -> BTreeMap<u32, u64> {
        let mut t = BTreeMap::new();
        for (b, n) in pairs {
            *t.entry(*b).or_default() += n;
        }
        t
    }

    #[test]
    fn durations_are_stored_as_the_same_bytes_as_a_btreemap() {
        for pairs in samples() {
            let ours = serde_json::to_string(&durations(&pairs)).unwrap();
            assert_eq!(ours, serde_json::to_string(&tree(&pairs)).unwrap());
            let back: Durations = serde_json::from_str(&ours).unwrap();
            assert_eq!(back, durations(&pairs));
        }
        // Out of order or repeated on disk (never written so): read as a
        // BTreeMap reads it, the last value of a key winning.
        for odd in [
            r#"{"9":1,"2":3,"9":2}"#,
            r#"{"2":1,"2":3}"#,
            r#"{"5":1,"2":3}"#,
        ] {
            let ours: Durations = serde_json::from_str(odd).unwrap();
            let reference: BTreeMap<u32, u64> = serde_json::from_str(odd).unwrap();
            assert_eq!(ours.iter().collect::<BTreeMap<_, _>>(), reference, "{odd}");
            assert!(ours.iter().map(|(b, _)| b).is_sorted(), "{odd}");
            assert_eq!(ours.iter().count(), reference.len(), "{odd}");
        }
    }

    #[test]
    fn merged_durations_add_up_like_a_btreemap() {
        let mut ours = Durations::default();
        let mut reference = BTreeMap::<u32, u64>::new();
        for pairs in samples() {
            ours.merge(&durations(&pairs));
            for (b, n) in tree(&pairs) {
                *reference.entry(b).or_default() += n;
            }
            assert_eq!(ours.iter().collect::<BTreeMap<_, _>>(), reference);
        }
        ours.take_one(1261);
        ours.take_one(5); // absent: nothing happens
        *reference.entry(1261).or_default() -= 1;
        assert_eq!(ours.iter().collect::<BTreeMap<_, _>>(), reference);
    }
}
