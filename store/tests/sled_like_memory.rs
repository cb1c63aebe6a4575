//! Property: for any sequence of appends (random streams, expected
//! revisions, resent ids) and reads, sled answers exactly as the in-memory
//! reference does — except for the time it stamps and the hashes that
//! cover it.

use callvault_store::{
    AppendResult, Direction, EventStore, ExpectedRevision, NewEvent, RecordedEvent, Revision,
    StoreError, StreamFrom, StreamName, memory::MemoryStore, sled_store::SledStore,
};
use proptest::prelude::*;
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Op {
    Append {
        stream: u8,
        expected: ExpectedRevision,
        n: u8,
        /// Resend the events of an earlier append instead of new ones.
        resend: Option<u8>,
    },
    ReadStream {
        stream: u8,
        from: StreamFrom,
        direction: Direction,
        max: u8,
    },
    ReadAll {
        after: Option<u8>,
        max: u8,
    },
}

fn arb_expected() -> impl Strategy<Value = ExpectedRevision> {
    prop_oneof![
        Just(ExpectedRevision::Any),
        Just(ExpectedRevision::NoStream),
        Just(ExpectedRevision::StreamExists),
        (0u64..6).prop_map(|r| ExpectedRevision::Exact(Revision(r))),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    let from = prop_oneof![
        Just(StreamFrom::Start),
        Just(StreamFrom::End),
        (0u64..6).prop_map(|r| StreamFrom::Revision(Revision(r))),
    ];
    let direction = prop_oneof![Just(Direction::Forwards), Just(Direction::Backwards)];
    prop_oneof![
        4 => (0u8..3, arb_expected(), 1u8..4, proptest::option::weighted(0.2, 0u8..8))
            .prop_map(|(stream, expected, n, resend)| Op::Append { stream, expected, n, resend }),
        2 => (0u8..3, from, direction, 1u8..8)
            .prop_map(|(stream, from, direction, max)| Op::ReadStream { stream, from, direction, max }),
        1 => (proptest::option::of(0u8..20), 1u8..10).prop_map(|(after, max)| Op::ReadAll { after, max }),
    ]
}

/// A recorded event without the store-stamped time and the hashes over it.
fn comparable(e: &RecordedEvent) -> (String, u64, u64, Uuid, String, Vec<u8>) {
    (
        e.stream.to_string(),
        e.revision.0,
        e.position.commit,
        e.id,
        e.event_type.clone(),
        e.payload.clone(),
    )
}

fn outcome(r: &Result<AppendResult, StoreError>) -> String {
    match r {
        Ok(r) => format!("ok {} {}", r.next_expected, r.position),
        Err(StoreError::Conflict { actual, .. }) => format!("conflict {actual:?}"),
        Err(StoreError::IdempotencyMismatch { .. }) => "mismatch".into(),
        Err(e) => format!("error {e}"),
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let sled = SledStore::open(dir.path()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let memory = MemoryStore::new();
    let streams: Vec<StreamName> = (0..3)
        .map(|i| StreamName::new(format!("s-{i}")).unwrap())
        .collect();
    let mut sent: Vec<Vec<NewEvent>> = Vec::new();
    let mut counter = 0u128;
    for op in ops {
        match op {
            Op::Append {
                stream,
                expected,
                n,
                resend,
            } => {
                let events = match resend.and_then(|i| sent.get(i as usize)) {
                    Some(earlier) => earlier.clone(),
                    None => (0..n)
                        .map(|_| {
                            counter += 1;
                            NewEvent {
                                id: Uuid::from_u128(counter),
                                event_type: "E".into(),
                                schema_version: 1,
                                payload: counter.to_string().into_bytes(),
                                actor: "p".into(),
                                correlation_id: None,
                                causation_id: None,
                            }
                        })
                        .collect(),
                };
                sent.push(events.clone());
                let s = &streams[stream as usize];
                let a = memory.append(s, expected, events.clone()).await;
                let b = sled.append(s, expected, events).await;
                prop_assert_eq!(outcome(&a), outcome(&b));
            }
            Op::ReadStream {
                stream,
                from,
                direction,
                max,
            } => {
                let s = &streams[stream as usize];
                let a = memory.read_stream(s, from, direction, max as usize).await;
                let b = sled.read_stream(s, from, direction, max as usize).await;
                let a: Vec<_> = a.unwrap().iter().map(comparable).collect();
                let b: Vec<_> = b.unwrap().iter().map(comparable).collect();
                prop_assert_eq!(a, b);
            }
            Op::ReadAll { after, max } => {
                let after = after.map(|p| callvault_store::Position::sequence(p as u64));
                let a: Vec<_> = memory
                    .read_all(after, max as usize)
                    .await
                    .unwrap()
                    .iter()
                    .map(comparable)
                    .collect();
                let b: Vec<_> = sled
                    .read_all(after, max as usize)
                    .await
                    .unwrap()
                    .iter()
                    .map(comparable)
                    .collect();
                prop_assert_eq!(a, b);
            }
        }
    }
    prop_assert_eq!(
        memory.head_position().await.unwrap(),
        sled.head_position().await.unwrap()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn sled_behaves_like_the_in_memory_store(ops in proptest::collection::vec(arb_op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops))?;
    }
}
