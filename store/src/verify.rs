//! Tamper evidence over a whole log: every per-stream hash chain
//! recomputed, and a running digest over the global order that a signed
//! checkpoint can pin.
//!
//! What is checked, event by event in log order:
//! - the event's hash is the hash of its stored fields (sealed bytes
//!   included, so shredding never breaks it) and its stream's previous
//!   hash;
//! - revisions in a stream start at 0 and go up by one, with no gap;
//! - positions strictly increase, and the times the store accepted events
//!   never go backwards (an event moved in the global order shows here).
//!
//! The running digest is `d₀ = 0³²`, `dₙ = SHA-256(tag ‖ dₙ₋₁ ‖ hashₙ)`: it
//! covers every event's hash in global order, so a checkpoint that signs
//! `(events, dₙ)` lets anyone holding the public key confirm a log extends
//! the signed one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::{
    contract::{EventStore, Position, RecordedEvent, StoreError},
    hash::{ChainHash, ChainInput},
};

const DIGEST_TAG: &[u8] = b"callvault/log-digest/v1";

/// What is wrong with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Its stored fields don't hash to its stored hash: altered.
    HashMismatch,
    /// It doesn't chain to the previous event of its stream: an event
    /// before it was removed, replaced or moved.
    BrokenLink,
    /// Its revision is not the next one of its stream.
    RevisionGap { expected: u64 },
    /// Its position is not after the previous event's.
    PositionOrder { previous: Position },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::HashMismatch => f.write_str(
                "its stored fields do not hash to its stored hash: the event was altered",
            ),
            Fault::BrokenLink => f.write_str(
                "it does not chain to the previous event of its stream: an event was removed, replaced or moved",
            ),
            Fault::RevisionGap { expected } => {
                write!(f, "its revision should be {expected}: an event of the stream is missing or out of order")
            }
            Fault::PositionOrder { previous } => {
                write!(f, "its position is not after the previous event's ({previous})")
            }
        }
    }
}

/// The first broken place in a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream {stream}, revision {revision}, position {position}: {fault}")]
pub struct Broken {
    pub stream: String,
    pub revision: u64,
    pub position: Position,
    pub event_type: String,
    pub fault: Fault,
}

/// A verification in progress: feed it every event in log order.
#[derive(Debug, Default)]
pub struct Verifier {
    streams: HashMap<String, (u64, ChainHash)>,
    digest: [u8; 32],
    events: u64,
    last_position: Option<Position>,
    last_time: Option<DateTime<Utc>>,
    times_back: u64,
}

/// What a verified log (or prefix) amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    pub streams: u64,
    /// The position of the last event verified.
    pub head: Option<Position>,
    /// The running digest after it.
    pub digest: [u8; 32],
    /// Events recorded (by their writer's clock) before the event before
    /// them: clock steps or concurrent writers, not tampering.
    pub times_back: u64,
}

impl Summary {
    pub fn digest_hex(&self) -> String {
        hex::encode(self.digest)
    }
}

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next event of the log.
    pub fn feed(&mut self, e: &RecordedEvent) -> Result<(), Broken> {
        let broken = |fault| Broken {
            stream: e.stream.as_str().to_owned(),
            revision: e.revision.0,
            position: e.position,
            event_type: e.event_type.clone(),
            fault,
        };
        if let Some(previous) = self.last_position
            && e.position <= previous
        {
            return Err(broken(Fault::PositionOrder { previous }));
        }
        // Recorded times come from the writers' clocks: a clock stepping
        // back, or two EventStoreDB clients committing in the other order
        // than they read their clocks, puts one before its predecessor.
        // That is no evidence of tampering (positions and chains are), so
        // it is counted and said, not failed.
        if self
            .last_time
            .is_some_and(|previous| e.metadata.recorded_at < previous)
        {
            self.times_back += 1;
        }
        if ChainInput::for_recorded(e).hash() != e.metadata.hash {
            return Err(broken(Fault::HashMismatch));
        }
        let (expected_revision, expected_prev) = match self.streams.get(e.stream.as_str()) {
            Some((rev, hash)) => (rev + 1, *hash),
            None => (0, ChainHash::GENESIS),
        };
        if e.revision.0 != expected_revision {
            return Err(broken(Fault::RevisionGap {
                expected: expected_revision,
            }));
        }
        if e.metadata.prev_hash != expected_prev {
            return Err(broken(Fault::BrokenLink));
        }
        self.streams.insert(
            e.stream.as_str().to_owned(),
            (e.revision.0, e.metadata.hash),
        );
        let mut h = Sha256::new();
        h.update(DIGEST_TAG);
        h.update(self.digest);
        h.update(e.metadata.hash.0);
        self.digest = h.finalize().into();
        self.events += 1;
        self.last_position = Some(e.position);
        self.last_time = Some(e.metadata.recorded_at);
        Ok(())
    }

    /// Events verified so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn summary(&self) -> Summary {
        Summary {
            events: self.events,
            streams: self.streams.len() as u64,
            head: self.last_position,
            digest: self.digest,
            times_back: self.times_back,
        }
    }
}

/// Why a whole-log verification stopped.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Broken(#[from] Broken),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Verifies the whole log (or its first `limit` events), calling
/// `progress(events so far)` after every page.
pub async fn verify_log(
    store: &dyn EventStore,
    limit: Option<u64>,
    mut progress: impl FnMut(u64),
) -> Result<Summary, VerifyError> {
    let mut verifier = Verifier::new();
    let mut after = None;
    let limit = limit.unwrap_or(u64::MAX);
    while verifier.events < limit {
        let want = (limit - verifier.events).min(4096) as usize;
        let page = store.read_all(after, want).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        for e in &page {
            verifier.feed(e)?;
        }
        progress(verifier.events);
    }
    Ok(verifier.summary())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        contract::{ExpectedRevision, NewEvent, StreamName},
        memory::MemoryStore,
    };

    fn new(n: u8) -> NewEvent {
        NewEvent {
            id: uuid::Uuid::from_bytes([n; 16]),
            event_type: "Thing".into(),
            schema_version: 1,
            payload: vec![n],
            actor: "tester".into(),
            correlation_id: None,
            causation_id: None,
        }
    }

    async fn log() -> Vec<RecordedEvent> {
        let store = MemoryStore::new();
        for (stream, n) in [("a-1", 1), ("b-1", 2), ("a-1", 3), ("b-1", 4), ("a-1", 5)] {
            store
                .append(
                    &StreamName::new(stream).unwrap(),
                    ExpectedRevision::Any,
                    vec![new(n)],
                )
                .await
                .unwrap();
        }
        store.read_all(None, 100).await.unwrap()
    }

    fn check(events: &[RecordedEvent]) -> Result<Summary, Broken> {
        let mut v = Verifier::new();
        for e in events {
            v.feed(e)?;
        }
        Ok(v.summary())
    }

    #[tokio::test]
    async fn a_recorded_time_earlier_than_its_predecessor_is_counted_not_failed() {
        let mut events = log().await;
        // The last event, written by a writer whose clock was a minute
        // behind (re-hashed: its own fields are intact).
        let before = events[3].metadata.recorded_at - chrono::Duration::minutes(1);
        let e = &mut events[4];
        e.metadata.recorded_at = before;
        e.metadata.hash = crate::hash::ChainInput::for_recorded(e).hash();
        let summary = check(&events).unwrap_or_else(|b| panic!("{b}"));
        assert_eq!(summary.times_back, 1);
        assert_eq!(check(&log().await).unwrap().times_back, 0);
    }

    #[tokio::test]
    async fn an_intact_log_verifies_and_its_digest_depends_on_every_event() {
        let events = log().await;
        let all = check(&events).unwrap();
        assert_eq!((all.events, all.streams), (5, 2));
        let prefix = check(&events[..4]).unwrap();
        assert_ne!(all.digest, prefix.digest);
        assert_eq!(check(&events).unwrap(), all, "deterministic");
    }

    #[tokio::test]
    async fn altered_dropped_and_reordered_events_are_named() {
        let events = log().await;
        let mut altered = events.clone();
        altered[2].payload = vec![9];
        let b = check(&altered).unwrap_err();
        assert_eq!((b.stream.as_str(), b.revision), ("a-1", 1));
        assert_eq!(b.fault, Fault::HashMismatch);

        let mut dropped = events.clone();
        dropped.remove(2);
        let b = check(&dropped).unwrap_err();
        assert_eq!(b.fault, Fault::RevisionGap { expected: 1 });
        assert_eq!(b.position, events[4].position);

        let mut swapped = events.clone();
        swapped.swap(0, 2);
        let b = check(&swapped).unwrap_err();
        assert!(
            matches!(
                b.fault,
                Fault::PositionOrder { .. } | Fault::RevisionGap { .. }
            ),
            "{b}"
        );
    }
}
