//! The append rules both embedded backends share: idempotency by event id,
//! the expected-revision check, and turning new events into recorded ones
//! with revisions, positions and hash-chain links. Pure: the caller supplies
//! the stream head, an id lookup, the next position and the time.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    contract::{
        AppendResult, ExpectedRevision, Metadata, NewEvent, Position, RecordedEvent, Revision,
        StoreError, StreamName,
    },
    hash::{ChainHash, ChainInput, truncate_to_micros},
};

/// Largest payload accepted for one event (the sled backend keeps every
/// page well below sled's blob threshold with this limit).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Most events accepted in one append.
pub const MAX_EVENTS_PER_APPEND: usize = 10_000;

/// The last event of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) last: Revision,
    pub(crate) hash: ChainHash,
}

/// Where an event id was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) stream: StreamName,
    pub(crate) revision: Revision,
    pub(crate) position: Position,
}

pub(crate) enum Plan {
    /// Every id was already appended by this same append: answer as then.
    Duplicate(AppendResult),
    /// New events to store, in order.
    Write(Vec<RecordedEvent>),
}

/// Decides what an append does.
pub(crate) fn plan(
    stream: &StreamName,
    expected: ExpectedRevision,
    events: Vec<NewEvent>,
    head: Option<Head>,
    lookup: impl Fn(&Uuid) -> Result<Option<Stored>, StoreError>,
    next_sequence: &mut u64,
    now: DateTime<Utc>,
) -> Result<Plan, StoreError> {
    if events.is_empty() {
        return Err(StoreError::EmptyAppend);
    }
    if events.len() > MAX_EVENTS_PER_APPEND {
        return Err(StoreError::TooLarge(format!(
            "{} events in one append; at most {MAX_EVENTS_PER_APPEND}",
            events.len()
        )));
    }
    if let Some(e) = events.iter().find(|e| e.payload.len() > MAX_PAYLOAD_BYTES) {
        return Err(StoreError::TooLarge(format!(
            "event {} has a {}-byte payload; at most {MAX_PAYLOAD_BYTES}",
            e.id,
            e.payload.len()
        )));
    }
    let mut seen = HashSet::with_capacity(events.len());
    if let Some(e) = events.iter().find(|e| !seen.insert(e.id)) {
        return Err(StoreError::IdempotencyMismatch {
            stream: stream.clone(),
            id: e.id,
        });
    }

    // Idempotency: all ids known, consecutively in this stream → duplicate;
    // some known → mismatch.
    let mut found = Vec::with_capacity(events.len());
    for e in &events {
        found.push(lookup(&e.id)?);
    }
    if found.iter().any(Option::is_some) {
        let first = found[0].as_ref();
        let consistent = first.is_some_and(|first| {
            found.iter().enumerate().all(|(i, f)| {
                f.as_ref().is_some_and(|f| {
                    f.stream == *stream && f.revision.0 == first.revision.0 + i as u64
                })
            })
        });
        let Some(Some(last)) = found.last().filter(|_| consistent) else {
            let id = events
                .iter()
                .zip(&found)
                .find(|(_, f)| f.is_some())
                .map_or(events[0].id, |(e, _)| e.id);
            return Err(StoreError::IdempotencyMismatch {
                stream: stream.clone(),
                id,
            });
        };
        return Ok(Plan::Duplicate(AppendResult {
            next_expected: last.revision,
            position: last.position,
        }));
    }

    let actual = head.map(|h| h.last);
    let ok = match expected {
        ExpectedRevision::Any => true,
        ExpectedRevision::NoStream => actual.is_none(),
        ExpectedRevision::StreamExists => actual.is_some(),
        ExpectedRevision::Exact(r) => actual == Some(r),
    };
    if !ok {
        return Err(StoreError::Conflict {
            stream: stream.clone(),
            expected,
            actual,
        });
    }

    let recorded_at = truncate_to_micros(now);
    let mut prev = head.map_or(ChainHash::GENESIS, |h| h.hash);
    let first = head.map_or(0, |h| h.last.0 + 1);
    let mut out = Vec::with_capacity(events.len());
    for (revision, event) in (first..).zip(events) {
        let rev = Revision(revision);
        let hash = ChainInput::for_new(&prev, stream, rev, &event, recorded_at).hash();
        let position = Position::sequence(*next_sequence);
        *next_sequence += 1;
        out.push(RecordedEvent {
            stream: stream.clone(),
            revision: rev,
            position,
            id: event.id,
            event_type: event.event_type,
            schema_version: event.schema_version,
            payload: event.payload,
            metadata: Metadata {
                actor: event.actor,
                correlation_id: event.correlation_id,
                causation_id: event.causation_id,
                recorded_at,
                prev_hash: prev,
                hash,
            },
        });
        prev = hash;
    }
    Ok(Plan::Write(out))
}

/// Checks that `records` — one stream's events copied from another log,
/// in order — continue `stream` exactly (revisions, chain links, hashes),
/// and gives them positions here. Everything else is kept verbatim.
pub(crate) fn plan_import(
    stream: &StreamName,
    records: Vec<RecordedEvent>,
    head: Option<Head>,
    next_sequence: &mut u64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    if records.is_empty() {
        return Err(StoreError::EmptyAppend);
    }
    let first = head.map_or(0, |h| h.last.0 + 1);
    let mut prev = head.map_or(ChainHash::GENESIS, |h| h.hash);
    if records[0].revision.0 < first {
        return Err(StoreError::Conflict {
            stream: stream.clone(),
            expected: ExpectedRevision::Exact(Revision(records[0].revision.0.saturating_sub(1))),
            actual: head.map(|h| h.last),
        });
    }
    // Positions are taken from a local counter and handed back only when
    // every record passed: a refused import leaves no gap in the log.
    let mut next = *next_sequence;
    let mut out = Vec::with_capacity(records.len());
    for (expected, mut r) in (first..).zip(records) {
        let broken = |why: &str| {
            StoreError::Corrupt(format!(
                "imported event {} ({} revision {}) {why}",
                r.id, r.stream, r.revision
            ))
        };
        if r.stream != *stream {
            return Err(broken("belongs to another stream"));
        }
        if r.revision.0 != expected {
            return Err(broken(&format!(
                "does not follow revision {}",
                expected.wrapping_sub(1)
            )));
        }
        if r.metadata.prev_hash != prev || ChainInput::for_recorded(&r).hash() != r.metadata.hash {
            return Err(broken("breaks the stream's hash chain"));
        }
        prev = r.metadata.hash;
        r.position = Position::sequence(next);
        next += 1;
        out.push(r);
    }
    *next_sequence = next;
    Ok(out)
}

/// The result of a planned write.
pub(crate) fn result_of(written: &[RecordedEvent]) -> Option<AppendResult> {
    written.last().map(|last| AppendResult {
        next_expected: last.revision,
        position: last.position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventStore, memory::MemoryStore};

    #[tokio::test]
    async fn a_refused_import_hands_back_the_positions_it_took() {
        let source = MemoryStore::new();
        let stream = StreamName::new("call-1").unwrap();
        source
            .append(
                &stream,
                ExpectedRevision::Any,
                crate::conformance::events(2),
            )
            .await
            .unwrap();
        let mut records = source.read_all(None, 10).await.unwrap();
        records[1].payload = vec![66];
        let mut next = 10;
        assert!(matches!(
            plan_import(&stream, records.clone(), None, &mut next),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(next, 10, "the first record's position was handed back");
        records.truncate(1);
        let planned = plan_import(&stream, records, None, &mut next).unwrap();
        assert_eq!(planned[0].position, Position::sequence(10));
        assert_eq!(next, 11);
    }
}
