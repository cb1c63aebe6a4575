//! The conformance suite against the in-memory and sled backends, and sled
//! again across a close and reopen.

use callvault_store::{
    Direction, EventStore, ExpectedRevision, StreamFrom, conformance, memory::MemoryStore,
    sled_store::SledStore,
};

#[tokio::test]
async fn the_in_memory_store_passes_the_conformance_suite() {
    conformance::run_all(&MemoryStore::new()).await;
}

#[tokio::test]
async fn the_sled_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    conformance::run_all(&store).await;
}

#[tokio::test]
async fn the_sled_store_keeps_everything_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = conformance::unique_stream("reopen");
    let (written, head) = {
        let store = SledStore::open(dir.path()).unwrap();
        store
            .append(&s, ExpectedRevision::NoStream, conformance::events(5))
            .await
            .unwrap();
        let written = store
            .read_stream(&s, StreamFrom::Start, Direction::Forwards, 10)
            .await
            .unwrap();
        (written, store.head_position().await.unwrap())
    };
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.head_position().await.unwrap(), head);
    let read = store
        .read_stream(&s, StreamFrom::Start, Direction::Forwards, 10)
        .await
        .unwrap();
    assert_eq!(read, written);
    // The reopened store continues the chain and the positions.
    let r = store
        .append(
            &s,
            ExpectedRevision::Exact(written[4].revision),
            conformance::events(1),
        )
        .await
        .unwrap();
    assert!(Some(r.position) > head);
    let all = store
        .read_stream(&s, StreamFrom::Start, Direction::Forwards, 10)
        .await
        .unwrap();
    conformance::check_chain(&all).unwrap();
    // And the whole suite still passes on the reopened store.
    conformance::run_all(&store).await;
}

#[tokio::test]
async fn a_second_open_of_the_same_folder_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let _first = SledStore::open(dir.path()).unwrap();
    let err = SledStore::open(dir.path())
        .err()
        .expect("second open must fail");
    assert!(err.to_string().contains("in use"), "{err}");
}

/// Closing a store and opening its folder again at once works: sled's last
/// I/O thread may hold the file lock a moment after the drop, and the open
/// waits for it (a reopen in CI failed with "in use by another process").
#[tokio::test]
async fn a_folder_closed_in_this_process_reopens_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = conformance::unique_stream("reopen");
    for round in 0..30u64 {
        let store = SledStore::open(dir.path()).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let expected = if round == 0 {
            ExpectedRevision::NoStream
        } else {
            ExpectedRevision::Exact(callvault_store::Revision(round - 1))
        };
        store
            .append(&s, expected, conformance::events(1))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
}

/// The same suite against a real EventStoreDB / KurrentDB, when one is
/// reachable at `CALLVAULT_ESDB_URL` (e.g. `esdb://localhost:2113?tls=false`).
#[tokio::test]
async fn eventstoredb_passes_the_conformance_suite_when_configured() {
    let Ok(url) = std::env::var("CALLVAULT_ESDB_URL") else {
        println!("skipped: no EventStoreDB at CALLVAULT_ESDB_URL");
        return;
    };
    let store = callvault_store::esdb::EsdbStore::connect(&url)
        .unwrap_or_else(|e| panic!("CALLVAULT_ESDB_URL={url}: {e}"));
    conformance::run_all(&store).await;
}

/// sled 0.34 can leave a torn snapshot file when killed while writing it
/// (spacejam/sled#1527, #1533), and then refuses to open with
/// `Corruption { at: None }`. Snapshots are derived from sled's log; the
/// store sets a damaged one aside and opens from the log.
#[tokio::test]
async fn a_torn_sled_snapshot_does_not_stop_the_log_from_opening() {
    let dir = tempfile::tempdir().unwrap();
    let s = conformance::unique_stream("snapshot");
    let written = {
        let store = SledStore::open(dir.path()).unwrap();
        store
            .append(&s, ExpectedRevision::NoStream, conformance::events(50))
            .await
            .unwrap();
        store
            .read_stream(&s, StreamFrom::Start, Direction::Forwards, 100)
            .await
            .unwrap()
    };
    // Reopen once so sled writes a snapshot, then tear every snapshot.
    drop(SledStore::open(dir.path()).unwrap());
    let snaps: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("snap."))
        .map(|e| e.path())
        .collect();
    assert!(!snaps.is_empty(), "sled wrote no snapshot to tear");
    for snap in &snaps {
        let mut bytes = std::fs::read(snap).unwrap();
        let half = bytes.len() / 2;
        bytes.truncate(half.max(1));
        bytes.iter_mut().for_each(|b| *b ^= 0x5a);
        std::fs::write(snap, bytes).unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    let read = store
        .read_stream(&s, StreamFrom::Start, Direction::Forwards, 100)
        .await
        .unwrap();
    assert_eq!(read, written);
    conformance::check_chain(&read).unwrap();
}

/// New logs use 1 MiB sled segments; a log created with the earlier 8 MiB
/// default must keep opening (sled refuses a different segment size) and
/// keep working across reopens.
#[tokio::test]
async fn a_log_created_with_the_earlier_segment_size_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    // Without a timed flush, like the store's own sled: sled's flusher
    // thread would hold the file's lock for up to its period after the
    // drop, and the open below failed now and then as "in use by another
    // process" (1 run in 6).
    drop(
        sled::Config::new()
            .path(dir.path())
            .segment_size(8 * 1024 * 1024)
            .flush_every_ms(None)
            .open()
            .unwrap(),
    );
    let s = conformance::unique_stream("old-segments");
    {
        let store = SledStore::open(dir.path()).unwrap();
        store
            .append(&s, ExpectedRevision::NoStream, conformance::events(3))
            .await
            .unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    let read = store
        .read_stream(&s, StreamFrom::Start, Direction::Forwards, 10)
        .await
        .unwrap();
    assert_eq!(read.len(), 3);
    conformance::check_chain(&read).unwrap();
    let conf = std::fs::read(dir.path().join("conf")).unwrap();
    assert!(String::from_utf8_lossy(&conf).contains("segment_size: 8388608"));

    let fresh = tempfile::tempdir().unwrap();
    drop(SledStore::open(fresh.path()).unwrap());
    let conf = std::fs::read(fresh.path().join("conf")).unwrap();
    assert!(String::from_utf8_lossy(&conf).contains("segment_size: 1048576"));
}

/// Without sled's `conf` the segment size of an existing log is unknown:
/// opening is refused with what to do, rather than guessed.
#[tokio::test]
async fn a_log_whose_sled_conf_is_missing_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        store
            .append(
                &conformance::unique_stream("conf"),
                ExpectedRevision::NoStream,
                conformance::events(2),
            )
            .await
            .unwrap();
    }
    std::fs::remove_file(dir.path().join("conf")).unwrap();
    let err = SledStore::open(dir.path()).err().expect("refused");
    assert!(err.to_string().contains("`conf`"), "{err}");
}

/// A subscription follows concurrent writers: it starts more than a page
/// behind (read on a blocking thread), then takes the few new events of
/// each wake on its own thread, waiting after a short read until the head
/// moves. Every event comes once, in position order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_following_concurrent_writers_misses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    follows_concurrent_writers(std::sync::Arc::new(SledStore::open(dir.path()).unwrap())).await;
    follows_concurrent_writers(std::sync::Arc::new(MemoryStore::new())).await;
}

async fn follows_concurrent_writers(store: std::sync::Arc<dyn EventStore>) {
    let backlog = conformance::unique_stream("backlog");
    let mut expected: std::collections::HashSet<uuid::Uuid> = Default::default();
    // More than one page (2,048) behind when it starts.
    for chunk in 0..5 {
        let batch = (0..500)
            .map(|i| conformance::event(chunk * 500 + i))
            .collect::<Vec<_>>();
        expected.extend(batch.iter().map(|e| e.id));
        store
            .append(&backlog, ExpectedRevision::Any, batch)
            .await
            .unwrap();
    }
    let mut sub = store.subscribe_all(None).await.unwrap();
    let writers: Vec<_> = (0..4u32)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let s = conformance::unique_stream("live");
                let mut ids = Vec::new();
                for i in 0..300u32 {
                    // Mostly single events, now and then a burst larger
                    // than an inline read.
                    let n = if i % 50 == 0 { 40 } else { 1 };
                    let batch: Vec<_> = (0..n)
                        .map(|k| conformance::event(w * 100_000 + i * 100 + k))
                        .collect();
                    ids.extend(batch.iter().map(|e| e.id));
                    store
                        .append(&s, ExpectedRevision::Any, batch)
                        .await
                        .unwrap();
                    if i % 7 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                ids
            })
        })
        .collect();
    for w in writers {
        expected.extend(w.await.unwrap());
    }
    let mut seen = std::collections::HashSet::new();
    let mut last = None;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while seen.len() < expected.len() {
        let e = tokio::time::timeout_at(deadline, sub.next())
            .await
            .unwrap_or_else(|_| panic!("stalled after {} of {} events", seen.len(), expected.len()))
            .expect("the subscription ended early")
            .unwrap();
        assert!(Some(e.position) > last, "positions must strictly increase");
        last = Some(e.position);
        assert!(expected.contains(&e.id), "an event nobody wrote");
        assert!(seen.insert(e.id), "an event delivered twice");
    }
    // Nothing more than what was written comes after.
    let extra = tokio::time::timeout(std::time::Duration::from_millis(300), sub.next()).await;
    assert!(extra.is_err(), "more events than were written: {extra:?}");
}
