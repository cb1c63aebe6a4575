//! The in-memory backend: the whole contract, no durability. For tests and
//! as the reference the sled backend is compared against.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use async_trait::async_trait;
use chrono::Utc;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{
    append::{Head, Plan, Stored, plan, result_of},
    contract::*,
    subscription::{self, ReadAll},
};

#[derive(Default)]
struct State {
    events: Vec<RecordedEvent>,
    /// Indexes into `events`, by stream, in revision order.
    streams: HashMap<StreamName, Vec<usize>>,
    ids: HashMap<Uuid, usize>,
    next_sequence: u64,
}

struct Inner {
    state: Mutex<State>,
    head: watch::Sender<Option<Position>>,
}

impl Inner {
    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Unavailable("in-memory store lock poisoned".into()))
    }
}

impl ReadAll for Inner {
    fn read_all_blocking(
        &self,
        after: Option<Position>,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.lock()?;
        let start = match after {
            None => 0,
            Some(p) => state.events.partition_point(|e| e.position <= p),
        };
        Ok(state.events[start..].iter().take(max).cloned().collect())
    }
}

/// An event store that lives in memory.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        let (head, _) = watch::channel(None);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    next_sequence: 1,
                    ..State::default()
                }),
                head,
            }),
        }
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let mut guard = self.inner.lock()?;
        let state = &mut *guard;
        let head = state
            .streams
            .get(stream)
            .and_then(|ix| ix.last())
            .map(|&i| {
                let e = &state.events[i];
                Head {
                    last: e.revision,
                    hash: e.metadata.hash,
                }
            });
        let events_ref = &state.events;
        let ids = &state.ids;
        let lookup = |id: &Uuid| {
            Ok(ids.get(id).map(|&i| {
                let e = &events_ref[i];
                Stored {
                    stream: e.stream.clone(),
                    revision: e.revision,
                    position: e.position,
                }
            }))
        };
        let mut next = state.next_sequence;
        let written = match plan(
            stream,
            expected,
            events,
            head,
            lookup,
            &mut next,
            Utc::now(),
        )? {
            Plan::Duplicate(result) => return Ok(result),
            Plan::Write(written) => written,
        };
        state.next_sequence = next;
        let result = result_of(&written).ok_or(StoreError::EmptyAppend)?;
        for event in written {
            let i = state.events.len();
            state.ids.insert(event.id, i);
            state.streams.entry(stream.clone()).or_default().push(i);
            state.events.push(event);
        }
        // Published under the lock: two appends publish their heads in
        // the order they wrote, so the head never moves back (a
        // subscription waits for it to pass what it has read).
        self.inner.head.send_replace(Some(result.position));
        drop(guard);
        Ok(result)
    }

    async fn import(&self, events: Vec<RecordedEvent>) -> Result<(), StoreError> {
        let mut guard = self.inner.lock()?;
        let state = &mut *guard;
        let mut last = None;
        for (stream, run) in stream_runs(events) {
            let head = state
                .streams
                .get(&stream)
                .and_then(|ix| ix.last())
                .map(|&i| Head {
                    last: state.events[i].revision,
                    hash: state.events[i].metadata.hash,
                });
            let mut next = state.next_sequence;
            let written = crate::append::plan_import(&stream, run, head, &mut next)?;
            state.next_sequence = next;
            for event in written {
                let i = state.events.len();
                last = Some(event.position);
                state.ids.insert(event.id, i);
                state.streams.entry(stream.clone()).or_default().push(i);
                state.events.push(event);
            }
        }
        if let Some(p) = last {
            self.inner.head.send_replace(Some(p));
        }
        drop(guard);
        Ok(())
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: StreamFrom,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.inner.lock()?;
        let Some(ix) = state.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let pick = |i: &usize| state.events[*i].clone();
        Ok(match (direction, from) {
            (Direction::Forwards, StreamFrom::Start) => ix.iter().take(max).map(pick).collect(),
            (Direction::Forwards, StreamFrom::End) => Vec::new(),
            (Direction::Forwards, StreamFrom::Revision(r)) => ix
                .iter()
                .skip(usize::try_from(r.0).unwrap_or(usize::MAX))
                .take(max)
                .map(pick)
                .collect(),
            (Direction::Backwards, StreamFrom::End) => {
                ix.iter().rev().take(max).map(pick).collect()
            }
            (Direction::Backwards, StreamFrom::Start) => {
                ix.iter().take(1.min(max)).map(pick).collect()
            }
            (Direction::Backwards, StreamFrom::Revision(r)) => {
                let end = usize::try_from(r.0).map_or(ix.len(), |r| (r + 1).min(ix.len()));
                ix[..end].iter().rev().take(max).map(pick).collect()
            }
        })
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all_blocking(after, max)
    }

    async fn subscribe_all(&self, after: Option<Position>) -> Result<Subscription, StoreError> {
        Ok(subscription::spawn(
            self.inner.clone(),
            self.inner.head.subscribe(),
            after,
        ))
    }

    async fn head_position(&self) -> Result<Option<Position>, StoreError> {
        Ok(*self.inner.head.borrow())
    }
}
