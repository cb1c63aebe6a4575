//! The EventStoreDB (KurrentDB) backend, for when one machine is not
//! enough: the same `EventStore` contract over the gRPC client.
//!
//! How our model maps onto the server's:
//! - an event's data is our stored payload, byte for byte (sent as binary,
//!   so the server never re-encodes what the hash chain covers); its type
//!   is our stored type name; its id is our event id;
//! - our metadata (schema version, actor, correlation and causation ids,
//!   the time we accepted it, the hash-chain links) travels as the event's
//!   custom metadata, JSON;
//! - positions are the server's commit/prepare pair, unchanged;
//! - system streams (`$…`) and events without our metadata are not ours
//!   and are skipped when reading `$all`.
//!
//! Appends read the stream's head first, compute the chain links from it
//! (`append::plan`, the same rules as the embedded backends), then append
//! with the head's exact revision, so two writers can never interleave a
//! chain; with `ExpectedRevision::Any` a lost race is retried. Transient
//! failures (a node going away, a leader change, a deadline) are retried
//! with backoff; appends stay idempotent across retries because event ids
//! are ours and the stream's tail is checked for them first.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use eventstore as esdb;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    append::{Head, Plan, Stored, plan, plan_import},
    contract::*,
    hash::ChainHash,
};

/// Attempts of one operation against transient failures.
const ATTEMPTS: u32 = 6;
/// How far back an append looks for its own ids (a retried append).
const IDEMPOTENCY_WINDOW: usize = 1000;

/// Our metadata, as the event's custom metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMetadata {
    /// Schema version of the payload.
    pub v: u32,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
}

impl WireMetadata {
    pub fn of(e: &RecordedEvent) -> Self {
        Self {
            v: e.schema_version,
            actor: e.metadata.actor.clone(),
            correlation_id: e.metadata.correlation_id,
            causation_id: e.metadata.causation_id,
            recorded_at: e.metadata.recorded_at,
            prev_hash: e.metadata.prev_hash,
            hash: e.metadata.hash,
        }
    }
}

/// Our position as the client's.
pub fn to_esdb_position(p: Position) -> esdb::Position {
    esdb::Position {
        commit: p.commit,
        prepare: p.prepare,
    }
}

/// The client's position as ours.
pub fn from_esdb_position(p: esdb::Position) -> Position {
    Position {
        commit: p.commit,
        prepare: p.prepare,
    }
}

/// Our expected revision as the client's stream state.
pub fn to_stream_state(expected: ExpectedRevision) -> esdb::StreamState {
    match expected {
        ExpectedRevision::Any => esdb::StreamState::Any,
        ExpectedRevision::NoStream => esdb::StreamState::NoStream,
        ExpectedRevision::StreamExists => esdb::StreamState::StreamExists,
        ExpectedRevision::Exact(r) => esdb::StreamState::StreamRevision(r.0),
    }
}

/// Our stored event, from the parts of a server event; `None` when it is
/// not one of ours (no or foreign custom metadata, a system stream).
pub fn from_parts(
    stream: &str,
    id: Uuid,
    revision: u64,
    event_type: &str,
    data: &[u8],
    custom_metadata: &[u8],
    position: Position,
) -> Option<RecordedEvent> {
    if stream.starts_with('$') || event_type.starts_with('$') {
        return None;
    }
    let meta: WireMetadata = serde_json::from_slice(custom_metadata).ok()?;
    Some(RecordedEvent {
        stream: StreamName::new(stream).ok()?,
        revision: Revision(revision),
        position,
        id,
        event_type: event_type.to_owned(),
        schema_version: meta.v,
        payload: data.to_vec(),
        metadata: Metadata {
            actor: meta.actor,
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
            recorded_at: meta.recorded_at,
            prev_hash: meta.prev_hash,
            hash: meta.hash,
        },
    })
}

fn from_resolved(e: &esdb::ResolvedEvent) -> Option<RecordedEvent> {
    let r = e.get_original_event();
    from_parts(
        r.stream_id(),
        r.id,
        r.revision,
        &r.event_type,
        &r.data,
        &r.custom_metadata,
        from_esdb_position(r.position),
    )
}

fn to_event_data(e: &RecordedEvent) -> Result<esdb::EventData, StoreError> {
    let meta = serde_json::to_vec(&WireMetadata::of(e))
        .map_err(|err| StoreError::Corrupt(format!("encoding metadata of {}: {err}", e.id)))?;
    Ok(
        esdb::EventData::binary(&e.event_type, e.payload.clone().into())
            .id(e.id)
            .metadata(meta.into()),
    )
}

/// Whether an error is worth retrying (the cluster may recover).
pub fn transient(e: &esdb::Error) -> bool {
    matches!(
        e,
        esdb::Error::ConnectionClosed
            | esdb::Error::GrpcConnectionError(_)
            | esdb::Error::DeadlineExceeded
            | esdb::Error::NotLeaderException(_)
            | esdb::Error::ServerError(_)
    )
}

/// A client error as ours (secrets are not in them: the connection string
/// is never quoted).
pub fn store_error(stream: Option<&StreamName>, e: esdb::Error) -> StoreError {
    match e {
        esdb::Error::WrongExpectedVersion { expected, current } => StoreError::Conflict {
            stream: stream
                .cloned()
                .unwrap_or_else(|| StreamName::new("unknown").unwrap_or_else(|_| unreachable!())),
            expected: match expected {
                esdb::StreamState::Any => ExpectedRevision::Any,
                esdb::StreamState::NoStream => ExpectedRevision::NoStream,
                esdb::StreamState::StreamExists => ExpectedRevision::StreamExists,
                esdb::StreamState::StreamRevision(r) => ExpectedRevision::Exact(Revision(r)),
            },
            actual: match current {
                esdb::CurrentRevision::Current(r) => Some(Revision(r)),
                esdb::CurrentRevision::NoStream => None,
            },
        },
        other => StoreError::Unavailable(format!("EventStoreDB: {other}")),
    }
}

/// The EventStoreDB backend.
pub struct EsdbStore {
    client: esdb::Client,
}

impl EsdbStore {
    /// Connects lazily to `url` (`esdb://host:2113?tls=false`, or a
    /// cluster: `esdb://a:2113,b:2113,c:2113?tls=true`).
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let settings: esdb::ClientSettings = url.parse().map_err(|e| {
            StoreError::Unavailable(format!("the EventStoreDB URL is not valid: {e}"))
        })?;
        let client = esdb::Client::new(settings)
            .map_err(|e| StoreError::Unavailable(format!("EventStoreDB client: {e:#}")))?;
        Ok(Self { client })
    }

    async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, esdb::Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, esdb::Error>>,
    {
        let mut wait = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if transient(&e) && attempt < ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "EventStoreDB {what} failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn read_stream_raw(
        &self,
        stream: &StreamName,
        from: StreamFrom,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let position = match from {
            StreamFrom::Start => esdb::StreamPosition::Start,
            StreamFrom::End => esdb::StreamPosition::End,
            StreamFrom::Revision(r) => esdb::StreamPosition::Position(r.0),
        };
        let options = esdb::ReadStreamOptions::default()
            .position(position)
            .max_count(max);
        let options = match direction {
            Direction::Forwards => options.forwards(),
            Direction::Backwards => options.backwards(),
        };
        let result = self
            .retry("read", || async {
                let mut read = self.client.read_stream(stream.as_str(), &options).await?;
                let mut out = Vec::new();
                while let Some(e) = read.next().await? {
                    out.extend(from_resolved(&e));
                }
                Ok(out)
            })
            .await;
        match result {
            Ok(v) => Ok(v),
            Err(esdb::Error::ResourceNotFound) => Ok(Vec::new()),
            Err(e) => Err(store_error(Some(stream), e)),
        }
    }

    async fn head(&self, stream: &StreamName) -> Result<Option<Head>, StoreError> {
        Ok(self
            .read_stream_raw(stream, StreamFrom::End, Direction::Backwards, 1)
            .await?
            .first()
            .map(|e| Head {
                last: e.revision,
                hash: e.metadata.hash,
            }))
    }

    async fn write(
        &self,
        stream: &StreamName,
        state: esdb::StreamState,
        records: &[RecordedEvent],
    ) -> Result<esdb::WriteResult, StoreError> {
        let data = records
            .iter()
            .map(to_event_data)
            .collect::<Result<Vec<_>, _>>()?;
        let options = esdb::AppendToStreamOptions::default().stream_state(state);
        self.retry("append", || {
            self.client
                .append_to_stream(stream.as_str(), &options, data.clone())
        })
        .await
        .map_err(|e| store_error(Some(stream), e))
    }
}

#[async_trait]
impl EventStore for EsdbStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        for _ in 0..ATTEMPTS {
            let head = self.head(stream).await?;
            // Our own ids at the stream's tail: a retried append.
            let tail = self
                .read_stream_raw(
                    stream,
                    StreamFrom::End,
                    Direction::Backwards,
                    IDEMPOTENCY_WINDOW,
                )
                .await?;
            let lookup = |id: &Uuid| {
                Ok(tail.iter().find(|e| e.id == *id).map(|e| Stored {
                    stream: e.stream.clone(),
                    revision: e.revision,
                    position: e.position,
                }))
            };
            let mut positions = 0;
            let records = match plan(
                stream,
                expected,
                events.clone(),
                head,
                lookup,
                &mut positions,
                Utc::now(),
            )? {
                Plan::Duplicate(result) => return Ok(result),
                Plan::Write(records) => records,
            };
            // The chain was computed from this head: only this head may be
            // written after, whatever the caller expected.
            let state = match head {
                Some(h) => esdb::StreamState::StreamRevision(h.last.0),
                None => esdb::StreamState::NoStream,
            };
            match self.write(stream, state, &records).await {
                Ok(w) => {
                    return Ok(AppendResult {
                        next_expected: Revision(w.next_expected_version),
                        position: from_esdb_position(w.position),
                    });
                }
                // Someone wrote between our read and our append. With an
                // exact expectation that is the caller's conflict; with
                // `Any` it is ours to retry on the new head.
                Err(StoreError::Conflict { actual, .. })
                    if matches!(expected, ExpectedRevision::Any) =>
                {
                    tracing::debug!(%stream, ?actual, "lost an append race; retrying");
                }
                Err(StoreError::Conflict { actual, .. }) => {
                    return Err(StoreError::Conflict {
                        stream: stream.clone(),
                        expected,
                        actual,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(format!(
            "{stream} kept changing under {ATTEMPTS} attempts to append"
        )))
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: StreamFrom,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_raw(stream, from, direction, max).await
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let options = esdb::ReadAllOptions::default()
            .forwards()
            .position(after.map_or(esdb::StreamPosition::Start, |p| {
                esdb::StreamPosition::Position(to_esdb_position(p))
            }))
            .filter(esdb::SubscriptionFilter::on_stream_name().regex("^[^$]"))
            // One more than asked: the read starts *at* `after`.
            .max_count(max + 1);
        self.retry("read $all", || async {
            let mut read = self.client.read_all(&options).await?;
            let mut out = Vec::new();
            while let Some(e) = read.next().await? {
                if let Some(r) = from_resolved(&e)
                    && after.is_none_or(|a| r.position > a)
                {
                    out.push(r);
                    if out.len() == max {
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| store_error(None, e))
    }

    async fn subscribe_all(&self, after: Option<Position>) -> Result<Subscription, StoreError> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let client = self.client.clone();
        tokio::spawn(async move {
            let mut after = after;
            let mut wait = Duration::from_millis(100);
            loop {
                let options = esdb::SubscribeToAllOptions::default()
                    .position(after.map_or(esdb::StreamPosition::Start, |p| {
                        esdb::StreamPosition::Position(to_esdb_position(p))
                    }))
                    .filter(esdb::SubscriptionFilter::on_stream_name().regex("^[^$]"));
                let mut sub = client.subscribe_to_all(&options).await;
                loop {
                    match sub.next().await {
                        Ok(e) => {
                            wait = Duration::from_millis(100);
                            if let Some(r) = from_resolved(&e)
                                && after.is_none_or(|a| r.position > a)
                            {
                                after = Some(r.position);
                                if tx.send(Ok(r)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) if transient(&e) => {
                            // Resume from the last delivered position.
                            tracing::warn!(error = %e, "EventStoreDB subscription dropped; resuming");
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_secs(5));
                            break;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(store_error(None, e))).await;
                            return;
                        }
                    }
                }
            }
        });
        Ok(Subscription::new(rx))
    }

    async fn head_position(&self) -> Result<Option<Position>, StoreError> {
        let options = esdb::ReadAllOptions::default()
            .backwards()
            .position(esdb::StreamPosition::End)
            .filter(esdb::SubscriptionFilter::on_stream_name().regex("^[^$]"))
            .max_count(16);
        self.retry("read $all", || async {
            let mut read = self.client.read_all(&options).await?;
            while let Some(e) = read.next().await? {
                if let Some(r) = from_resolved(&e) {
                    return Ok(Some(r.position));
                }
            }
            Ok(None)
        })
        .await
        .map_err(|e| store_error(None, e))
    }

    async fn import(&self, events: Vec<RecordedEvent>) -> Result<(), StoreError> {
        for (stream, run) in stream_runs(events) {
            let head = self.head(&stream).await?;
            let mut positions = 0;
            let records = plan_import(&stream, run, head, &mut positions)?;
            let state = match head {
                Some(h) => esdb::StreamState::StreamRevision(h.last.0),
                None => esdb::StreamState::NoStream,
            };
            self.write(&stream, state, &records).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;

    async fn sample() -> Vec<RecordedEvent> {
        let store = MemoryStore::new();
        let s = StreamName::new("call-1").unwrap();
        store
            .append(
                &s,
                ExpectedRevision::NoStream,
                crate::conformance::events(2),
            )
            .await
            .unwrap();
        store.read_all(None, 10).await.unwrap()
    }

    #[tokio::test]
    async fn an_event_survives_the_trip_through_the_servers_shape() {
        for e in sample().await {
            let meta = serde_json::to_vec(&WireMetadata::of(&e)).unwrap();
            let back = from_parts(
                e.stream.as_str(),
                e.id,
                e.revision.0,
                &e.event_type,
                &e.payload,
                &meta,
                e.position,
            )
            .unwrap();
            assert_eq!(back, e);
            // The chain still verifies on what came back.
            assert_eq!(
                crate::hash::ChainInput::for_recorded(&back).hash(),
                back.metadata.hash
            );
        }
    }

    #[test]
    fn system_and_foreign_events_are_not_ours() {
        let p = Position::sequence(1);
        assert!(from_parts("$stats-1", Uuid::nil(), 0, "x", b"{}", b"{}", p).is_none());
        assert!(from_parts("call-1", Uuid::nil(), 0, "$metadata", b"{}", b"{}", p).is_none());
        assert!(from_parts("call-1", Uuid::nil(), 0, "Foreign", b"{}", b"{\"x\":1}", p).is_none());
        assert!(from_parts("call-1", Uuid::nil(), 0, "Foreign", b"{}", b"", p).is_none());
    }

    #[test]
    fn positions_and_expectations_map_exactly() {
        let p = Position {
            commit: 1_234_567,
            prepare: 1_234_500,
        };
        assert_eq!(from_esdb_position(to_esdb_position(p)), p);
        assert_eq!(
            to_stream_state(ExpectedRevision::Any),
            esdb::StreamState::Any
        );
        assert_eq!(
            to_stream_state(ExpectedRevision::NoStream),
            esdb::StreamState::NoStream
        );
        assert_eq!(
            to_stream_state(ExpectedRevision::StreamExists),
            esdb::StreamState::StreamExists
        );
        assert_eq!(
            to_stream_state(ExpectedRevision::Exact(Revision(7))),
            esdb::StreamState::StreamRevision(7)
        );
    }

    #[test]
    fn a_wrong_expected_version_is_our_typed_conflict() {
        let s = StreamName::new("call-1").unwrap();
        let e = store_error(
            Some(&s),
            esdb::Error::WrongExpectedVersion {
                expected: esdb::StreamState::StreamRevision(3),
                current: esdb::CurrentRevision::Current(5),
            },
        );
        match e {
            StoreError::Conflict {
                stream,
                expected,
                actual,
            } => {
                assert_eq!(stream, s);
                assert_eq!(expected, ExpectedRevision::Exact(Revision(3)));
                assert_eq!(actual, Some(Revision(5)));
            }
            other => panic!("{other:?}"),
        }
        let e = store_error(
            Some(&s),
            esdb::Error::WrongExpectedVersion {
                expected: esdb::StreamState::NoStream,
                current: esdb::CurrentRevision::NoStream,
            },
        );
        assert!(matches!(e, StoreError::Conflict { actual: None, .. }));
        assert!(matches!(
            store_error(None, esdb::Error::ConnectionClosed),
            StoreError::Unavailable(_)
        ));
        assert!(transient(&esdb::Error::ConnectionClosed));
        assert!(!transient(&esdb::Error::AccessDenied));
    }

    #[test]
    fn a_bad_url_is_a_clear_error() {
        let err = EsdbStore::connect("http://nope").err().unwrap();
        assert!(err.to_string().contains("URL"), "{err}");
    }
}
