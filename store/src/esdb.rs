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
//! chain. When the stream moved meanwhile the head is read again and
//! `plan` decides: our own ids there (an earlier try that went through)
//! give the original result, a caller's exact expectation no longer met is
//! their conflict, `Any` chains onto the new head. Transient failures (a
//! node going away, a leader change, a deadline) are retried with backoff;
//! appends stay idempotent across retries because event ids are ours and
//! the stream's tail (its last 1,000 events) is checked for them first.
//! Where the server answers without a log position (a resend it
//! recognised), the position is read from `$all`. Imports go in appends
//! of at most 512 KiB, under the server's default 1 MiB limit.

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
/// How far back in `$all` the position of an append the server did not
/// report is looked for (among the stream's own events).
const LOCATE_WINDOW: usize = 1000;
/// Bytes of payload and metadata per append when importing: well under
/// the server's default `MaxAppendSize` (1 MiB), which refuses bigger
/// appends whole.
const IMPORT_PART_BYTES: usize = 512 * 1024;
/// Events per page when looking backwards through `$all` for our newest,
/// and how many pages at most (a cluster shared with a busy application).
const HEAD_WINDOW: usize = 256;
const HEAD_PAGES: usize = 64;

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

/// A position the server gave, or `None` for its placeholders: none at
/// all (`0/0`, what the client makes of an append success without a
/// position, which a server may send for a resend it recognised; our
/// events never open `$all`, the server's own do) or "not available"
/// (`u64::MAX`, which some server versions give events read from a
/// stream).
pub fn known_position(p: esdb::Position) -> Option<Position> {
    let unknown =
        p.commit == u64::MAX || p.prepare == u64::MAX || (p.commit == 0 && p.prepare == 0);
    (!unknown).then(|| from_esdb_position(p))
}

/// A regular expression (the server's .NET flavour) matching exactly the
/// name `stream`: its metacharacters escaped as .NET's `Regex.Escape`
/// does — and nothing else, since .NET refuses a backslash before a word
/// character such as `_`.
pub fn exact_stream_regex(stream: &StreamName) -> String {
    let mut out = String::from("^");
    for c in stream.as_str().chars() {
        if "\\*+?|{}[]()^$.# ".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('$');
    out
}

/// `text` with the connection string's `user:password` (and the password
/// alone) replaced: the client quotes the whole string in some errors.
pub fn redact_credentials(url: &str, text: &str) -> String {
    // After the scheme (`esdb://`, or a mistyped `esdb:/`), up to the last
    // `@` before the query: a password may hold `/`, `@` or `?`-free text.
    let userinfo = url
        .find("://")
        .map(|i| i + 3)
        .or_else(|| url.find(':').map(|i| i + 1))
        .and_then(|start| {
            let rest = &url[start..];
            let upto = rest.find('?').unwrap_or(rest.len());
            let at = rest[..upto].rfind('@')?;
            Some(rest[..at].trim_start_matches('/')).filter(|u| !u.is_empty())
        });
    let Some(userinfo) = userinfo else {
        return text.to_owned();
    };
    let mut out = text.replace(userinfo, "***");
    if let Some((_, password)) = userinfo.split_once(':')
        && password.len() >= 3
    {
        out = out.replace(password, "***");
    }
    out
}

/// Splits a run of events into appends of at most `budget` bytes of
/// payload and metadata each (an event bigger than that goes alone).
pub fn parts_by_bytes(run: Vec<RecordedEvent>, budget: usize) -> Vec<Vec<RecordedEvent>> {
    let mut parts: Vec<Vec<RecordedEvent>> = Vec::new();
    let mut bytes = 0;
    for e in run {
        // Our metadata travels beside the payload: about 300 bytes of JSON.
        let size = e.payload.len() + e.metadata.actor.len() + 300;
        match parts.last_mut() {
            Some(part) if bytes + size <= budget => {
                bytes += size;
                part.push(e);
            }
            _ => {
                bytes = size;
                parts.push(vec![e]);
            }
        }
    }
    parts
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

/// A client error as ours: only the failures a retry may cure are
/// `Unavailable`; the server's size limit is `TooLarge`; refusals that
/// need an operator (credentials, a stream deleted on the server, an
/// unsupported server) are `Refused`.
pub fn store_error(stream: Option<&StreamName>, e: esdb::Error) -> StoreError {
    let name = || stream.map_or_else(|| "the log".to_owned(), |s| format!("`{s}`"));
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
        esdb::Error::Grpc { message, .. } if message.contains("Maximum Append Size") => {
            StoreError::TooLarge(format!("EventStoreDB refused an append to {}: {message}", name()))
        }
        esdb::Error::AccessDenied => StoreError::Refused(format!(
            "EventStoreDB denied access to {}: check the credentials in store.url and the user's stream ACLs",
            name()
        )),
        esdb::Error::ResourceDeleted => StoreError::Refused(format!(
            "{} was deleted on the EventStoreDB server; callvault never deletes streams, so this needs an operator",
            name()
        )),
        esdb::Error::UnsupportedFeature => StoreError::Refused(
            "the EventStoreDB server does not support an operation callvault needs (20.10 or newer is required)"
                .into(),
        ),
        other if transient(&other) => StoreError::Unavailable(format!("EventStoreDB: {other}")),
        // A server shutting down, an aborted or throttled call: worth
        // trying again later, though not retried here.
        esdb::Error::Grpc {
            code: tonic::Code::Cancelled | tonic::Code::Aborted | tonic::Code::ResourceExhausted,
            message,
        } => {
            StoreError::Unavailable(format!("EventStoreDB: {message}"))
        }
        other => StoreError::Refused(format!("EventStoreDB: {other}")),
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
        // The client quotes the whole connection string in some errors.
        let settings: esdb::ClientSettings = url.parse().map_err(|e: esdb::ClientSettingsParseError| {
            StoreError::Refused(format!(
                "the EventStoreDB URL is not valid ({}{}); expected esdb://[user:password@]host:2113[,host:port…][?tls=true|false]",
                redact_credentials(url, e.message()),
                e.error().map(|p| format!(": {p}")).unwrap_or_default()
            ))
        })?;
        let client = esdb::Client::new(settings).map_err(|e| {
            StoreError::Refused(format!(
                "EventStoreDB client: {}",
                redact_credentials(url, &format!("{e:#}"))
            ))
        })?;
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

    /// The stream's last event, which must be ours: another
    /// application's event there (no callvault metadata) cannot be chained
    /// onto, and skipping it would only make every append conflict.
    async fn head(&self, stream: &StreamName) -> Result<Option<Head>, StoreError> {
        let options = esdb::ReadStreamOptions::default()
            .position(esdb::StreamPosition::End)
            .backwards()
            .max_count(1);
        let last = self
            .retry("read", || async {
                let mut read = self.client.read_stream(stream.as_str(), &options).await?;
                Ok(read
                    .next()
                    .await?
                    .map(|e| (from_resolved(&e), e.get_original_event().revision)))
            })
            .await;
        match last {
            Ok(None) | Err(esdb::Error::ResourceNotFound) => Ok(None),
            Ok(Some((Some(e), _))) => Ok(Some(Head {
                last: e.revision,
                hash: e.metadata.hash,
            })),
            Ok(Some((None, revision))) => Err(StoreError::Corrupt(format!(
                "the last event of {stream} (revision {revision}) is not callvault's (no callvault metadata): another application writes to this stream"
            ))),
            Err(e) => Err(store_error(Some(stream), e)),
        }
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

    /// Up to `want` of our events from `$all`, after `from` (before it,
    /// backwards), read in pages of `page`: the server's stream-name
    /// filter lets through events of non-system streams that are not ours
    /// (another application's, link events), so a page of only those is
    /// not the end of the log.
    /// Reads at most `pages` pages; says whether it reached the log's end.
    async fn ours_in_all(
        &self,
        forwards: bool,
        mut from: Option<Position>,
        (page, pages): (usize, usize),
        want: usize,
    ) -> Result<(Vec<RecordedEvent>, bool), esdb::Error> {
        let mut out = Vec::new();
        for _ in 0..pages {
            let start = from.map_or(
                if forwards {
                    esdb::StreamPosition::Start
                } else {
                    esdb::StreamPosition::End
                },
                |p| esdb::StreamPosition::Position(to_esdb_position(p)),
            );
            let options = esdb::ReadAllOptions::default()
                .position(start)
                .filter(esdb::SubscriptionFilter::on_stream_name().regex("^[^$]"))
                .max_count(page);
            let options = if forwards {
                options.forwards()
            } else {
                options.backwards()
            };
            let mut read = self.client.read_all(&options).await?;
            let (mut seen, mut reached) = (0, from);
            while let Some(e) = read.next().await? {
                seen += 1;
                let at = from_esdb_position(e.get_original_event().position);
                // A read may start at its position: that event was had.
                if from.is_some_and(|f| if forwards { at <= f } else { at >= f }) {
                    continue;
                }
                reached = Some(at);
                if let Some(r) = from_resolved(&e) {
                    out.push(r);
                    if out.len() == want {
                        return Ok((out, false));
                    }
                }
            }
            if seen < page || reached == from {
                return Ok((out, true));
            }
            from = reached;
        }
        Ok((out, false))
    }

    /// `result` with a real log position: when the server gave none (a
    /// resend it recognised) or a placeholder (an event read from a
    /// stream), it is read back (see [`Self::locate`]).
    async fn with_position(
        &self,
        stream: &StreamName,
        mut result: AppendResult,
        last: Uuid,
    ) -> Result<AppendResult, StoreError> {
        if known_position(to_esdb_position(result.position)).is_none() {
            result.position = self.locate(stream, result.next_expected, last).await?;
        }
        Ok(result)
    }

    /// Where the append whose last event is `id`, at `revision`, landed:
    /// that event read back from the stream; or found in `$all` among the
    /// stream's last [`LOCATE_WINDOW`] events, when the server gives stream
    /// reads no position; or at the least the log's head now, which is at
    /// or after it — the events are stored, so the append must not be
    /// reported failed (a caller would write them again), and a caller
    /// waiting for read models to reach this position waits at most a
    /// little longer.
    async fn locate(
        &self,
        stream: &StreamName,
        revision: Revision,
        id: Uuid,
    ) -> Result<Position, StoreError> {
        let read = self
            .read_stream_raw(
                stream,
                StreamFrom::Revision(revision),
                Direction::Forwards,
                1,
            )
            .await?;
        if let Some(p) = read
            .first()
            .filter(|e| e.id == id)
            .and_then(|e| known_position(to_esdb_position(e.position)))
        {
            return Ok(p);
        }
        let options = esdb::ReadAllOptions::default()
            .backwards()
            .position(esdb::StreamPosition::End)
            .filter(esdb::SubscriptionFilter::on_stream_name().regex(exact_stream_regex(stream)))
            .max_count(LOCATE_WINDOW);
        let found = self
            .retry("read $all", || async {
                let mut read = self.client.read_all(&options).await?;
                while let Some(e) = read.next().await? {
                    let r = e.get_original_event();
                    if r.id == id {
                        return Ok(known_position(r.position));
                    }
                }
                Ok(None)
            })
            .await;
        match found {
            Ok(Some(p)) => Ok(p),
            Ok(None) | Err(_) => {
                tracing::warn!(%stream, %id, "EventStoreDB gave no position for an append; answering with the log's head");
                self.head_position().await?.ok_or_else(|| {
                    StoreError::Unavailable(format!(
                        "EventStoreDB stored an append to {stream} but shows no position for it"
                    ))
                })
            }
        }
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
        let last = events.last().map(|e| e.id);
        // After a conflict: the head we planned from, and what the server
        // said the stream was at.
        let mut refused: Option<(Option<Head>, Option<Revision>)> = None;
        let mut wait = Duration::from_millis(50);
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
                Plan::Duplicate(result) => {
                    // `plan` refuses an empty append, so there is a last id.
                    return match last {
                        Some(id) => self.with_position(stream, result, id).await,
                        None => Ok(result),
                    };
                }
                Plan::Write(records) => records,
            };
            // Refused from the same head we read again, and our events are
            // not there: what we read is not what the server holds (a
            // follower behind, events cut off by `$maxCount`). A caller's
            // expectation gets the server's answer; `Any` waits a little
            // for the reads to catch up.
            if let Some((planned, actual)) = refused
                && planned == head
            {
                if !matches!(expected, ExpectedRevision::Any) {
                    return Err(StoreError::Conflict {
                        stream: stream.clone(),
                        expected,
                        actual,
                    });
                }
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            // The chain was computed from this head: only this head may be
            // written after, whatever the caller expected.
            let state = match head {
                Some(h) => esdb::StreamState::StreamRevision(h.last.0),
                None => esdb::StreamState::NoStream,
            };
            match self.write(stream, state, &records).await {
                Ok(w) => {
                    let result = AppendResult {
                        next_expected: Revision(w.next_expected_version),
                        position: from_esdb_position(w.position),
                    };
                    let last = records.last().map_or(Uuid::nil(), |r| r.id);
                    return self.with_position(stream, result, last).await;
                }
                // The stream moved between our read and our append: someone
                // else wrote, or an earlier try of this very append went
                // through before its answer was lost. Read the head again:
                // `plan` then finds our ids (a resend: the original
                // result), holds the caller's expectation against the new
                // head (their conflict, with the right revisions), or with
                // `Any` chains onto it.
                Err(StoreError::Conflict { actual, .. }) => {
                    tracing::debug!(%stream, ?actual, "the stream moved under an append; reading it again");
                    refused = Some((head, actual));
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
        // One more than asked: a read starts *at* its position.
        self.retry("read $all", || async {
            let (ours, _) = self
                .ours_in_all(true, after, (max + 1, usize::MAX), max)
                .await?;
            Ok(ours)
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
                    // A dropped subscriber ends the task at once, also
                    // while the feed is quiet or the server unreachable.
                    let next = tokio::select! {
                        biased;
                        () = tx.closed() => return,
                        next = sub.next() => next,
                    };
                    match next {
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
                            tokio::select! {
                                () = tx.closed() => return,
                                () = tokio::time::sleep(wait) => {}
                            }
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
        // The newest events may be another application's, not ours.
        let (newest, ended) = self
            .retry("read $all", || {
                self.ours_in_all(false, None, (HEAD_WINDOW, HEAD_PAGES), 1)
            })
            .await
            .map_err(|e| store_error(None, e))?;
        match newest.first() {
            Some(e) => Ok(Some(e.position)),
            None if ended => Ok(None),
            None => Err(StoreError::Refused(format!(
                "none of the newest {} events in $all is callvault's: the cluster is shared with a busy application; give callvault a cluster of its own",
                HEAD_WINDOW * HEAD_PAGES
            ))),
        }
    }

    async fn import(&self, events: Vec<RecordedEvent>) -> Result<(), StoreError> {
        for (stream, run) in stream_runs(events) {
            // The whole run is checked before any of it is written; then
            // it goes in parts the server's append size limit lets
            // through, each expecting the part before.
            let head = self.head(&stream).await?;
            let mut positions = 0;
            let records = plan_import(&stream, run, head, &mut positions)?;
            let mut state = match head {
                Some(h) => esdb::StreamState::StreamRevision(h.last.0),
                None => esdb::StreamState::NoStream,
            };
            for part in parts_by_bytes(records, IMPORT_PART_BYTES) {
                self.write(&stream, state, &part).await?;
                if let Some(last) = part.last() {
                    state = esdb::StreamState::StreamRevision(last.revision.0);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;

    /// `n` stored events of one stream.
    async fn sample_of(n: u32) -> Vec<RecordedEvent> {
        let store = MemoryStore::new();
        let s = StreamName::new("call-1").unwrap();
        store
            .append(
                &s,
                ExpectedRevision::NoStream,
                crate::conformance::events(n),
            )
            .await
            .unwrap();
        store.read_all(None, 100).await.unwrap()
    }

    async fn sample() -> Vec<RecordedEvent> {
        sample_of(2).await
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

    #[tokio::test]
    async fn a_bad_url_never_shows_its_password() {
        for url in [
            "esdb://admin:s3cret-pw@host:99999",
            "esdb://admin:s3cret-pw@a:99999,b:2113",
            "http://admin:s3cret-pw@host:2113",
            "esdb://admin:s3cret-pw@host:2113?nodePreference=sometimes",
            "esdb://admin:s3cret/pw@host:99999",
            "esdb:/admin:s3cret-pw@host:2113",
        ] {
            let err = EsdbStore::connect(url).err().expect(url).to_string();
            assert!(!err.contains("s3cret"), "{url}: {err}");
            assert!(err.contains("URL"), "{url}: {err}");
        }
        assert_eq!(
            redact_credentials("esdb://u:pw123@h:1", "bad 'esdb://u:pw123@h:1' and pw123"),
            "bad 'esdb://***@h:1' and ***"
        );
        assert_eq!(redact_credentials("esdb://h:1", "as is"), "as is");
    }

    #[test]
    fn placeholder_positions_are_unknown() {
        let p = |commit, prepare| esdb::Position { commit, prepare };
        assert_eq!(
            known_position(p(0, 0)),
            None,
            "an append answered without one"
        );
        assert_eq!(
            known_position(p(u64::MAX, u64::MAX)),
            None,
            "a stream read's"
        );
        assert_eq!(known_position(p(u64::MAX, 7)), None);
        assert_eq!(
            known_position(p(1_000, 990)),
            Some(Position {
                commit: 1_000,
                prepare: 990
            })
        );
    }

    #[test]
    fn a_stream_regex_matches_that_stream_only() {
        let s = StreamName::new("call-0190.a+b").unwrap();
        assert_eq!(exact_stream_regex(&s), "^call-0190\\.a\\+b$");
        // .NET refuses a backslash before a word character such as `_`.
        let plain = StreamName::new("staff-john_doe").unwrap();
        assert_eq!(exact_stream_regex(&plain), "^staff-john_doe$");
    }

    #[tokio::test]
    async fn an_import_goes_in_parts_under_the_servers_limit() {
        let run = sample_of(10).await;
        let one = run[0].payload.len() + run[0].metadata.actor.len() + 300;
        let parts = parts_by_bytes(run.clone(), one * 3);
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            [3, 3, 3, 1],
            "in order, none over the budget"
        );
        assert_eq!(parts.concat(), run, "nothing lost, nothing reordered");
        // An event bigger than the budget goes alone.
        let parts = parts_by_bytes(run.clone(), 1);
        assert_eq!(parts.len(), run.len());
    }

    #[test]
    fn only_what_a_retry_may_cure_is_unavailable() {
        let s = StreamName::new("call-1").unwrap();
        let too_large = store_error(
            Some(&s),
            esdb::Error::Grpc {
                code: tonic::Code::InvalidArgument,
                message: "Maximum Append Size of 1048576 Exceeded.".into(),
            },
        );
        assert!(matches!(too_large, StoreError::TooLarge(_)), "{too_large}");
        for (e, what) in [
            (esdb::Error::AccessDenied, "credentials"),
            (esdb::Error::ResourceDeleted, "deleted"),
            (esdb::Error::UnsupportedFeature, "does not support"),
            (
                esdb::Error::Grpc {
                    code: tonic::Code::FailedPrecondition,
                    message: "no".into(),
                },
                "no",
            ),
        ] {
            let err = store_error(Some(&s), e);
            assert!(matches!(err, StoreError::Refused(_)), "{err}");
            assert!(err.to_string().contains(what), "{err}");
        }
        for e in [
            esdb::Error::DeadlineExceeded,
            esdb::Error::ServerError("leader lost".into()),
            esdb::Error::Grpc {
                code: tonic::Code::Cancelled,
                message: "server shutting down".into(),
            },
        ] {
            assert!(matches!(store_error(None, e), StoreError::Unavailable(_)));
        }
    }
}
