//! The event log contract: our own words for streams, revisions, positions
//! and appends, modelled on EventStoreDB so the embedded sled backend and the
//! EventStoreDB backend are interchangeable.
//!
//! This module holds types and the [`EventStore`] trait only; it does no I/O.
//! Backends translate these types to their own storage.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::hash::ChainHash;

/// Longest stream name accepted, in bytes.
pub const MAX_STREAM_NAME_LEN: usize = 256;

/// The name of a stream, such as `call-0190…` or `staff-alice`.
///
/// Validated once: non-empty, at most [`MAX_STREAM_NAME_LEN`] bytes, no
/// control characters or NUL, and not starting with `$` (reserved for the
/// system streams of EventStoreDB).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamName(String);

impl StreamName {
    pub fn new(name: impl Into<String>) -> Result<Self, StoreError> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("is empty")
        } else if name.len() > MAX_STREAM_NAME_LEN {
            Some("is longer than 256 bytes")
        } else if name.starts_with('$') {
            Some("starts with `$`, which is reserved for system streams")
        } else if name.chars().any(char::is_control) {
            Some("contains a control character")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(StoreError::InvalidStreamName {
                name: name.chars().take(64).collect(),
                reason,
            }),
            None => Ok(Self(name)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The category of the stream: the part before the first `-`
    /// (`call-123` → `call`), or the whole name when there is no `-`.
    pub fn category(&self) -> &str {
        self.0.split_once('-').map_or(self.0.as_str(), |(c, _)| c)
    }
}

impl TryFrom<String> for StreamName {
    type Error = StoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<StreamName> for String {
    fn from(value: StreamName) -> Self {
        value.0
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The 0-based index of an event within its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Revision(pub u64);

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A place in the global order of all events.
///
/// Strictly increasing in append order. EventStoreDB positions are a
/// (commit, prepare) pair; the embedded backend uses one sequence number for
/// both. Ordered by commit, then prepare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    pub commit: u64,
    pub prepare: u64,
}

impl Position {
    /// A position whose commit and prepare parts are both `seq`, as the
    /// embedded backend assigns them.
    pub const fn sequence(seq: u64) -> Self {
        Self {
            commit: seq,
            prepare: seq,
        }
    }

    /// Big-endian bytes that sort like the position (for sled keys and
    /// checkpoints).
    pub fn to_be_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.commit.to_be_bytes());
        out[8..].copy_from_slice(&self.prepare.to_be_bytes());
        out
    }

    pub fn from_be_bytes(bytes: [u8; 16]) -> Self {
        let mut commit = [0u8; 8];
        let mut prepare = [0u8; 8];
        commit.copy_from_slice(&bytes[..8]);
        prepare.copy_from_slice(&bytes[8..]);
        Self {
            commit: u64::from_be_bytes(commit),
            prepare: u64::from_be_bytes(prepare),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.commit == self.prepare {
            write!(f, "{}", self.commit)
        } else {
            write!(f, "{}/{}", self.commit, self.prepare)
        }
    }
}

/// What the writer believes about the stream before appending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedRevision {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's last event must have this revision.
    Exact(Revision),
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no stream"),
            Self::StreamExists => f.write_str("stream exists"),
            Self::Exact(r) => write!(f, "revision {r}"),
        }
    }
}

/// An event to append. The id is made by the client: re-sending the same
/// ids to the same stream is idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    pub id: Uuid,
    /// Stored type name, e.g. `CallStarted` (an explicit constant, never a
    /// Rust identifier).
    pub event_type: String,
    pub schema_version: u32,
    /// The stored (already sealed) JSON payload.
    pub payload: Vec<u8>,
    pub actor: String,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
}

/// Metadata every stored event carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub actor: String,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    /// When the store accepted the event (microsecond precision).
    pub recorded_at: DateTime<Utc>,
    /// Hash of the previous event of the same stream (zero for the first).
    pub prev_hash: ChainHash,
    /// Hash of this event, chaining `prev_hash` (see [`crate::hash`]).
    pub hash: ChainHash,
}

/// An event as stored: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub stream: StreamName,
    pub revision: Revision,
    pub position: Position,
    pub id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: Vec<u8>,
    pub metadata: Metadata,
}

/// The outcome of an acknowledged (durable) append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResult {
    /// Revision of the last event now in the stream: pass it as
    /// `ExpectedRevision::Exact` for the next append.
    pub next_expected: Revision,
    /// Global position of the last event of this append.
    pub position: Position,
}

/// Where to start reading a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFrom {
    Start,
    End,
    /// Inclusive.
    Revision(Revision),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forwards,
    Backwards,
}

/// What can go wrong with the event log. Each variant says what the caller
/// should do: `Conflict` and `InvalidStreamName` reject the command,
/// `Unavailable` may be retried, `Refused`, `Corrupt` and `Io` are for the
/// operator.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stream `{stream}` was expected at {expected} but is at {}", display_actual(.actual))]
    Conflict {
        stream: StreamName,
        expected: ExpectedRevision,
        /// The stream's last revision, `None` when it does not exist.
        actual: Option<Revision>,
    },
    #[error("invalid stream name `{name}`: {reason}")]
    InvalidStreamName { name: String, reason: &'static str },
    #[error("event {id} was already appended, but not as part of the same append to `{stream}`")]
    IdempotencyMismatch { stream: StreamName, id: Uuid },
    #[error("an append needs at least one event")]
    EmptyAppend,
    #[error("append is too large: {0}")]
    TooLarge(String),
    /// The log may be back soon: worth retrying.
    #[error("the event log is unavailable: {0}")]
    Unavailable(String),
    /// The log's server refused for a reason a retry does not cure
    /// (credentials, configuration, a stream deleted on the server).
    #[error("the event log refused: {0}")]
    Refused(String),
    #[error("the event log is corrupt: {0}")]
    Corrupt(String),
    #[error("event log I/O failed while {context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn display_actual(actual: &Option<Revision>) -> String {
    match actual {
        Some(r) => format!("revision {r}"),
        None => "no stream".to_owned(),
    }
}

/// A catch-up-then-live feed of every event after a position: no gap, no
/// duplicate, in global order. Dropping it ends the feed.
pub struct Subscription {
    rx: tokio::sync::mpsc::Receiver<Result<RecordedEvent, StoreError>>,
}

impl Subscription {
    pub fn new(rx: tokio::sync::mpsc::Receiver<Result<RecordedEvent, StoreError>>) -> Self {
        Self { rx }
    }

    /// The next event, waiting for it if the feed has caught up. `None`
    /// when the store has shut down; an `Err` is the last item.
    pub async fn next(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
        self.rx.recv().await
    }

    /// The next event if one is already waiting; never waits.
    pub fn try_next(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
        self.rx.try_recv().ok()
    }
}

/// The event log. Every backend passes [`crate::conformance`].
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` atomically if `expected` holds, and
    /// returns only once they are durable. Re-sending events whose ids were
    /// already appended to this stream in the same order returns the
    /// original result and writes nothing.
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// Up to `max` events of one stream. A stream that does not exist reads
    /// as empty.
    async fn read_stream(
        &self,
        stream: &StreamName,
        from: StreamFrom,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `max` events in global order, strictly after `after` (from the
    /// beginning when `None`).
    async fn read_all(
        &self,
        after: Option<Position>,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Every event strictly after `after`: first those already stored, then
    /// each new one as it is acknowledged.
    async fn subscribe_all(&self, after: Option<Position>) -> Result<Subscription, StoreError>;

    /// The position of the last stored event, `None` for an empty log.
    async fn head_position(&self) -> Result<Option<Position>, StoreError>;

    /// Stores events copied from another log verbatim — ids, revisions,
    /// metadata, hash-chain links — in the given order, giving them
    /// positions here; returns once they are durable. Each stream's events
    /// must continue it exactly (a `Conflict` if some are already here, a
    /// `Corrupt` if they don't chain). For moving a log between backends.
    async fn import(&self, events: Vec<RecordedEvent>) -> Result<(), StoreError>;
}

/// Splits a copied batch into runs of consecutive events of one stream.
pub fn stream_runs(events: Vec<RecordedEvent>) -> Vec<(StreamName, Vec<RecordedEvent>)> {
    let mut runs: Vec<(StreamName, Vec<RecordedEvent>)> = Vec::new();
    for e in events {
        match runs.last_mut() {
            Some((stream, run)) if *stream == e.stream => run.push(e),
            _ => runs.push((e.stream.clone(), vec![e])),
        }
    }
    runs
}
