//! The conformance suite every `EventStore` backend must pass.
//!
//! Each check is a public async function taking the store under test, so
//! the same suite runs against the in-memory store, sled, and (when a
//! server is configured) EventStoreDB. Checks use fresh, unique stream names
//! and never assume the log starts empty or that positions are consecutive.
//! A failed check panics with a message naming the broken promise.

use std::collections::HashSet;

use uuid::Uuid;

use crate::{
    contract::*,
    hash::{ChainHash, ChainInput},
};

/// A stream name no other check (or earlier run) uses.
pub fn unique_stream(category: &str) -> StreamName {
    StreamName::new(format!("{category}-{}", Uuid::new_v4().simple()))
        .unwrap_or_else(|e| panic!("test stream name: {e}"))
}

/// A new event with a fresh id and a small JSON payload.
pub fn event(n: u32) -> NewEvent {
    NewEvent {
        id: Uuid::new_v4(),
        event_type: "TestEvent".into(),
        schema_version: 1,
        payload: format!("{{\"n\":{n}}}").into_bytes(),
        actor: "conformance".into(),
        correlation_id: Some(Uuid::new_v4()),
        causation_id: None,
    }
}

pub fn events(n: u32) -> Vec<NewEvent> {
    (0..n).map(event).collect()
}

/// Runs every check.
pub async fn run_all<S: EventStore + ?Sized>(store: &S) {
    expected_revisions_are_enforced(store).await;
    a_conflict_writes_nothing(store).await;
    resending_the_same_ids_is_idempotent(store).await;
    reusing_ids_differently_is_refused(store).await;
    bad_appends_are_refused(store).await;
    streams_read_forwards_and_backwards(store).await;
    a_large_append_reads_back_in_any_slice(store).await;
    the_global_log_pages_in_strictly_increasing_positions(store).await;
    hash_chains_link_every_stream(store).await;
    a_subscription_catches_up_then_follows_live_without_gap_or_duplicate(store).await;
    imported_events_keep_everything_but_their_position(store).await;
}

/// `import` stores copied events verbatim (ids, revisions, metadata,
/// hashes), refuses what is already there and what doesn't chain.
pub async fn imported_events_keep_everything_but_their_position<S: EventStore + ?Sized>(store: &S) {
    let source = crate::memory::MemoryStore::new();
    let a = unique_stream("imported");
    let b = unique_stream("imported");
    for (stream, n) in [(&a, 2), (&b, 1), (&a, 1)] {
        source
            .append(stream, ExpectedRevision::Any, events(n))
            .await
            .unwrap_or_else(|e| panic!("source append: {e}"));
    }
    let copied = source.read_all(None, 100).await.unwrap_or_default();
    assert_eq!(copied.len(), 4);
    store
        .import(copied.clone())
        .await
        .unwrap_or_else(|e| panic!("import: {e}"));
    for stream in [&a, &b] {
        let here = store
            .read_stream(stream, StreamFrom::Start, Direction::Forwards, 10)
            .await
            .unwrap_or_else(|e| panic!("read {stream}: {e}"));
        let there: Vec<&RecordedEvent> = copied.iter().filter(|e| e.stream == *stream).collect();
        assert_eq!(here.len(), there.len(), "{stream}: every event imported");
        for (h, t) in here.iter().zip(there) {
            assert_eq!(
                (h.id, h.revision, &h.event_type, &h.payload, &h.metadata),
                (t.id, t.revision, &t.event_type, &t.payload, &t.metadata),
                "an imported event keeps everything but its position"
            );
        }
    }
    match store.import(copied[..1].to_vec()).await {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("importing an event already there: expected a conflict, got {other:?}"),
    }
    let c = unique_stream("imported");
    source
        .append(&c, ExpectedRevision::Any, events(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut doctored = source
        .read_stream(&c, StreamFrom::Start, Direction::Forwards, 1)
        .await
        .unwrap_or_default();
    doctored[0].payload = b"{\"n\":666}".to_vec();
    match store.import(doctored).await {
        Err(StoreError::Corrupt(_)) => {}
        other => panic!("importing a doctored event: expected Corrupt, got {other:?}"),
    }
    assert!(
        store
            .read_stream(&c, StreamFrom::Start, Direction::Forwards, 1)
            .await
            .unwrap_or_default()
            .is_empty(),
        "a refused import writes nothing"
    );
    // Refused at its second event, an import leaves the log's head where
    // it was: no position is taken for the first.
    let d = unique_stream("imported");
    source
        .append(&d, ExpectedRevision::Any, events(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut half_doctored = source
        .read_stream(&d, StreamFrom::Start, Direction::Forwards, 2)
        .await
        .unwrap_or_default();
    half_doctored[1].payload = b"{\"n\":666}".to_vec();
    let head = store
        .head_position()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    match store.import(half_doctored).await {
        Err(StoreError::Corrupt(_)) => {}
        other => panic!("importing a half-doctored run: expected Corrupt, got {other:?}"),
    }
    assert_eq!(
        store
            .head_position()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        head,
        "a refused import moves no position"
    );
}

async fn last_revision<S: EventStore + ?Sized>(store: &S, stream: &StreamName) -> Option<Revision> {
    store
        .read_stream(stream, StreamFrom::End, Direction::Backwards, 1)
        .await
        .unwrap_or_else(|e| panic!("read_stream({stream}): {e}"))
        .first()
        .map(|e| e.revision)
}

fn assert_conflict(result: Result<AppendResult, StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("{what}: expected a conflict, got {other:?}"),
    }
}

pub async fn expected_revisions_are_enforced<S: EventStore + ?Sized>(store: &S) {
    let s = unique_stream("conf");
    assert_conflict(
        store
            .append(&s, ExpectedRevision::StreamExists, events(1))
            .await,
        "StreamExists on a new stream",
    );
    assert_conflict(
        store
            .append(&s, ExpectedRevision::Exact(Revision(0)), events(1))
            .await,
        "Exact(0) on a new stream",
    );
    let r = store
        .append(&s, ExpectedRevision::NoStream, events(2))
        .await
        .unwrap_or_else(|e| panic!("NoStream on a new stream: {e}"));
    assert_eq!(r.next_expected, Revision(1), "two events end at revision 1");
    assert_conflict(
        store
            .append(&s, ExpectedRevision::NoStream, events(1))
            .await,
        "NoStream on an existing stream",
    );
    assert_conflict(
        store
            .append(&s, ExpectedRevision::Exact(Revision(0)), events(1))
            .await,
        "Exact(0) when the stream is at 1",
    );
    let r = store
        .append(&s, ExpectedRevision::Exact(Revision(1)), events(1))
        .await
        .unwrap_or_else(|e| panic!("Exact(1) at 1: {e}"));
    assert_eq!(r.next_expected, Revision(2));
    let r = store
        .append(&s, ExpectedRevision::StreamExists, events(1))
        .await
        .unwrap_or_else(|e| panic!("StreamExists on an existing stream: {e}"));
    assert_eq!(r.next_expected, Revision(3));
    let r = store
        .append(&s, ExpectedRevision::Any, events(1))
        .await
        .unwrap_or_else(|e| panic!("Any: {e}"));
    assert_eq!(r.next_expected, Revision(4));
    let fresh = unique_stream("conf");
    store
        .append(&fresh, ExpectedRevision::Any, events(1))
        .await
        .unwrap_or_else(|e| panic!("Any on a new stream: {e}"));

    match store
        .append(&s, ExpectedRevision::Exact(Revision(9)), events(1))
        .await
    {
        Err(StoreError::Conflict {
            stream,
            expected,
            actual,
        }) => {
            assert_eq!(stream, s);
            assert_eq!(expected, ExpectedRevision::Exact(Revision(9)));
            assert_eq!(
                actual,
                Some(Revision(4)),
                "the conflict names the actual revision"
            );
        }
        other => panic!("Exact(9) at 4: expected a conflict, got {other:?}"),
    }
}

pub async fn a_conflict_writes_nothing<S: EventStore + ?Sized>(store: &S) {
    let s = unique_stream("conf");
    store
        .append(&s, ExpectedRevision::NoStream, events(1))
        .await
        .unwrap_or_else(|e| panic!("first append: {e}"));
    let head = store
        .head_position()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let losing = events(3);
    assert_conflict(
        store
            .append(&s, ExpectedRevision::NoStream, losing.clone())
            .await,
        "second NoStream",
    );
    assert_eq!(last_revision(store, &s).await, Some(Revision(0)));
    // The refused ids are free to use: nothing of them was stored.
    let r = store
        .append(&s, ExpectedRevision::Exact(Revision(0)), losing)
        .await
        .unwrap_or_else(|e| panic!("ids of a refused append must be reusable: {e}"));
    assert_eq!(r.next_expected, Revision(3));
    let after = store
        .head_position()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(after > head, "head moves only on a write");
}

pub async fn resending_the_same_ids_is_idempotent<S: EventStore + ?Sized>(store: &S) {
    let s = unique_stream("conf");
    let batch = events(3);
    let first = store
        .append(&s, ExpectedRevision::NoStream, batch.clone())
        .await
        .unwrap_or_else(|e| panic!("first append: {e}"));
    let again = store
        .append(&s, ExpectedRevision::NoStream, batch.clone())
        .await
        .unwrap_or_else(|e| panic!("a resend of the same ids must succeed: {e}"));
    assert_eq!(again, first, "a resend answers with the original result");
    let again = store
        .append(&s, ExpectedRevision::Any, batch)
        .await
        .unwrap_or_else(|e| panic!("a resend with Any must succeed: {e}"));
    assert_eq!(again, first);
    let all = store
        .read_stream(&s, StreamFrom::Start, Direction::Forwards, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), 3, "a resend writes nothing");
}

pub async fn reusing_ids_differently_is_refused<S: EventStore + ?Sized>(store: &S) {
    let s = unique_stream("conf");
    let batch = events(2);
    store
        .append(&s, ExpectedRevision::NoStream, batch.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Partial overlap: one old id with one new.
    let mixed = vec![batch[1].clone(), event(9)];
    match store.append(&s, ExpectedRevision::Any, mixed).await {
        Err(StoreError::IdempotencyMismatch { .. }) => {}
        other => panic!("a partial resend must be refused, got {other:?}"),
    }
    // The same id in another stream.
    let other = unique_stream("conf");
    match store
        .append(&other, ExpectedRevision::Any, vec![batch[0].clone()])
        .await
    {
        Err(StoreError::IdempotencyMismatch { .. }) => {}
        other => panic!("an id reused in another stream must be refused, got {other:?}"),
    }
    assert_eq!(last_revision(store, &other).await, None);
}

pub async fn bad_appends_are_refused<S: EventStore + ?Sized>(store: &S) {
    let s = unique_stream("conf");
    match store.append(&s, ExpectedRevision::Any, vec![]).await {
        Err(StoreError::EmptyAppend) => {}
        other => panic!("an empty append must be refused, got {other:?}"),
    }
    let e = event(1);
    match store
        .append(&s, ExpectedRevision::Any, vec![e.clone(), e])
        .await
    {
        Err(StoreError::IdempotencyMismatch { .. }) => {}
        other => panic!("one id twice in an append must be refused, got {other:?}"),
    }
    assert_eq!(last_revision(store, &s).await, None, "nothing was written");
    assert!(matches!(
        StreamName::new("$all"),
        Err(StoreError::InvalidStreamName { .. })
    ));
    assert!(StreamName::new("").is_err());
    assert!(StreamName::new("a\nb").is_err());
}

pub async fn streams_read_forwards_and_backwards<S: EventStore + ?Sized>(store: &S) {
    let s = unique_stream("conf");
    store
        .append(&s, ExpectedRevision::NoStream, events(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let revs = |v: Vec<RecordedEvent>| v.iter().map(|e| e.revision.0).collect::<Vec<_>>();
    let read = |from, dir, max| store.read_stream(&s, from, dir, max);
    assert_eq!(
        revs(
            read(StreamFrom::Start, Direction::Forwards, 10)
                .await
                .unwrap_or_default()
        ),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(
        revs(
            read(StreamFrom::Start, Direction::Forwards, 2)
                .await
                .unwrap_or_default()
        ),
        vec![0, 1]
    );
    assert_eq!(
        revs(
            read(StreamFrom::Revision(Revision(3)), Direction::Forwards, 10)
                .await
                .unwrap_or_default()
        ),
        vec![3, 4]
    );
    assert_eq!(
        revs(
            read(StreamFrom::End, Direction::Backwards, 10)
                .await
                .unwrap_or_default()
        ),
        vec![4, 3, 2, 1, 0]
    );
    assert_eq!(
        revs(
            read(StreamFrom::End, Direction::Backwards, 2)
                .await
                .unwrap_or_default()
        ),
        vec![4, 3]
    );
    assert_eq!(
        revs(
            read(StreamFrom::Revision(Revision(2)), Direction::Backwards, 10)
                .await
                .unwrap_or_default()
        ),
        vec![2, 1, 0]
    );
    assert_eq!(
        revs(
            read(StreamFrom::Revision(Revision(9)), Direction::Forwards, 10)
                .await
                .unwrap_or_default()
        ),
        Vec::<u64>::new()
    );
    let missing = unique_stream("conf");
    let none = store
        .read_stream(&missing, StreamFrom::Start, Direction::Forwards, 10)
        .await
        .unwrap_or_else(|e| panic!("reading a missing stream must not fail: {e}"));
    assert!(none.is_empty());
    // Stored fields come back as sent.
    let sent = event(42);
    let s2 = unique_stream("conf");
    store
        .append(&s2, ExpectedRevision::NoStream, vec![sent.clone()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = store
        .read_stream(&s2, StreamFrom::Start, Direction::Forwards, 1)
        .await
        .unwrap_or_default();
    let got = got.first().unwrap_or_else(|| panic!("event not read back"));
    assert_eq!(got.id, sent.id);
    assert_eq!(got.event_type, sent.event_type);
    assert_eq!(got.schema_version, sent.schema_version);
    assert_eq!(got.payload, sent.payload);
    assert_eq!(got.metadata.actor, sent.actor);
    assert_eq!(got.metadata.correlation_id, sent.correlation_id);
    assert_eq!(got.metadata.causation_id, sent.causation_id);
    assert_eq!(got.stream, s2);
}

pub async fn a_large_append_reads_back_in_any_slice<S: EventStore + ?Sized>(store: &S) {
    let s = unique_stream("conf");
    store
        .append(&s, ExpectedRevision::NoStream, events(3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let big = events(300);
    let ids: Vec<Uuid> = big.iter().map(|e| e.id).collect();
    store
        .append(&s, ExpectedRevision::Exact(Revision(2)), big)
        .await
        .unwrap_or_else(|e| panic!("a 300-event append: {e}"));
    store
        .append(&s, ExpectedRevision::Exact(Revision(302)), events(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let revs = |v: &[RecordedEvent]| v.iter().map(|e| e.revision.0).collect::<Vec<_>>();
    let slice = store
        .read_stream(
            &s,
            StreamFrom::Revision(Revision(100)),
            Direction::Forwards,
            150,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(revs(&slice), (100..250).collect::<Vec<_>>());
    assert_eq!(slice[0].id, ids[97]);
    let back = store
        .read_stream(
            &s,
            StreamFrom::Revision(Revision(250)),
            Direction::Backwards,
            200,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(revs(&back), (51..=250).rev().collect::<Vec<_>>());
    let all = store
        .read_stream(&s, StreamFrom::Start, Direction::Forwards, 1000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(revs(&all), (0..305).collect::<Vec<_>>());
    if let Err(broken) = check_chain(&all) {
        panic!("{broken}");
    }
    // The global log, read from the middle of the append in small pages.
    let mut after = Some(all[150].position);
    let mut seen = Vec::new();
    while seen.len() < 154 {
        let page = store
            .read_all(after, 7)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if page.is_empty() {
            break;
        }
        after = page.last().map(|e| e.position);
        seen.extend(
            page.into_iter()
                .filter(|e| e.stream == s)
                .map(|e| e.revision.0),
        );
    }
    assert_eq!(seen, (151..305).collect::<Vec<_>>());
}

pub async fn the_global_log_pages_in_strictly_increasing_positions<S: EventStore + ?Sized>(
    store: &S,
) {
    let before = store
        .head_position()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let a = unique_stream("conf");
    let b = unique_stream("conf");
    let mut ids = Vec::new();
    for i in 0..6u32 {
        let s = if i % 2 == 0 { &a } else { &b };
        let e = event(i);
        ids.push(e.id);
        let r = store
            .append(s, ExpectedRevision::Any, vec![e])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let head = store
            .head_position()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            head,
            Some(r.position),
            "head is the last acknowledged position"
        );
    }
    // Page through everything after `before`, two at a time.
    let mut seen = Vec::new();
    let mut after = before;
    loop {
        let page = store
            .read_all(after, 2)
            .await
            .unwrap_or_else(|e| panic!("read_all: {e}"));
        assert!(page.len() <= 2, "read_all returned more than max");
        if page.is_empty() {
            break;
        }
        for e in &page {
            if let Some(prev) = after {
                assert!(e.position > prev, "positions must strictly increase");
            }
            after = Some(e.position);
            seen.push(e.id);
        }
    }
    let mine: Vec<Uuid> = seen.into_iter().filter(|id| ids.contains(id)).collect();
    assert_eq!(
        mine, ids,
        "the global log holds every event in append order"
    );
}

/// Recomputes every link of a stream's chain.
pub fn check_chain(events: &[RecordedEvent]) -> Result<(), String> {
    let mut prev = ChainHash::GENESIS;
    for e in events {
        if e.metadata.prev_hash != prev {
            return Err(format!(
                "stream {} revision {}: prev_hash does not match the previous event",
                e.stream, e.revision
            ));
        }
        let computed = ChainInput::for_recorded(e).hash();
        if computed != e.metadata.hash {
            return Err(format!(
                "stream {} revision {}: stored hash does not match its contents",
                e.stream, e.revision
            ));
        }
        prev = e.metadata.hash;
    }
    Ok(())
}

pub async fn hash_chains_link_every_stream<S: EventStore + ?Sized>(store: &S) {
    let s = unique_stream("conf");
    for i in 0..3 {
        store
            .append(&s, ExpectedRevision::Any, events(i + 1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let all = store
        .read_stream(&s, StreamFrom::Start, Direction::Forwards, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), 6);
    assert_eq!(all[0].metadata.prev_hash, ChainHash::GENESIS);
    if let Err(broken) = check_chain(&all) {
        panic!("{broken}");
    }
    let distinct: HashSet<_> = all.iter().map(|e| e.metadata.hash).collect();
    assert_eq!(distinct.len(), all.len(), "every link differs");
    // Any change of a stored field breaks the link.
    let mut doctored = all.clone();
    doctored[2].payload = b"{\"n\":666}".to_vec();
    assert!(
        check_chain(&doctored).is_err(),
        "a changed payload must be detected"
    );
}

pub async fn a_subscription_catches_up_then_follows_live_without_gap_or_duplicate<
    S: EventStore + ?Sized,
>(
    store: &S,
) {
    let start = store
        .head_position()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let s = unique_stream("conf");
    let early = events(20);
    let mut expected: Vec<Uuid> = early.iter().map(|e| e.id).collect();
    store
        .append(&s, ExpectedRevision::Any, early)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sub = store
        .subscribe_all(start)
        .await
        .unwrap_or_else(|e| panic!("subscribe_all: {e}"));
    // Live appends from several concurrent writers while the subscriber
    // is still catching up.
    let writers = (0..4).map(|w| {
        let s = unique_stream("conf");
        let batch: Vec<NewEvent> = (0..10).map(|i| event(w * 100 + i)).collect();
        (s, batch)
    });
    let mut live = Vec::new();
    for (s, batch) in writers {
        for e in batch {
            live.push(e.id);
            store
                .append(&s, ExpectedRevision::Any, vec![e])
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    expected.extend(live);
    let wanted: HashSet<Uuid> = expected.iter().copied().collect();
    let mut got = Vec::new();
    let mut last: Option<Position> = start;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while got.len() < expected.len() {
        let next = tokio::time::timeout_at(deadline, sub.next())
            .await
            .unwrap_or_else(|_| panic!("subscription stalled after {} events", got.len()))
            .unwrap_or_else(|| panic!("subscription ended early"))
            .unwrap_or_else(|e| panic!("subscription error: {e}"));
        if let Some(prev) = last {
            assert!(
                next.position > prev,
                "subscription positions must strictly increase"
            );
        }
        last = Some(next.position);
        if wanted.contains(&next.id) {
            got.push(next.id);
        }
    }
    assert_eq!(got, expected, "every event once, in append order");
}
