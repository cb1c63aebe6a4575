//! The runner and blue/green rebuilds: models follow the log, a rebuild
//! answers nothing wrong while it runs and takes over when caught up, and
//! a newer code version is rebuilt at start while the old build answers.

use std::{sync::Arc, time::Duration};

use callvault_domain::{
    CallId, Event, PhoneNumber, StaffId,
    call::{CallEnded, CallStarted, Direction},
    personal::Personal,
};
use callvault_projections::{
    Envelope, Projection, ProjectionError, Projections,
    journal::{Cause, Journal},
    models::calls,
    view::Tx,
};
use callvault_store::{
    EventStore, ExpectedRevision, StreamName,
    memory::MemoryStore,
    vault::{Bucket, KeyOwner, KeyVault},
};
use chrono::{TimeZone, Utc};

struct Fixture {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    store: Arc<dyn EventStore>,
    journal: Journal,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let vault = Arc::new(KeyVault::open(dir.path().join("keys")).unwrap());
    Fixture {
        root: dir.path().join("projections"),
        _dir: dir,
        store: Arc::new(MemoryStore::new()),
        journal: Journal::new(vault),
    }
}

impl Fixture {
    async fn call(&self, n: u128) -> callvault_store::Position {
        let id = CallId(uuid::Uuid::from_u128(n));
        self.journal
            .vault()
            .create_key(
                KeyOwner::Contact(callvault_domain::ContactRef::Call(id)),
                Bucket::Hold,
            )
            .unwrap();
        let at = Utc.with_ymd_and_hms(2026, 3, 3, 9, 0, 0).unwrap()
            + chrono::Duration::seconds(n as i64);
        let events: Vec<Event> = vec![
            CallStarted {
                call_id: id,
                direction: Direction::Inbound,
                caller: Some(Personal::new(
                    PhoneNumber::parse(&format!("040 {:07}", n)).unwrap(),
                )),
                service_number: PhoneNumber::parse("0295 50 2000").unwrap(),
                agent: StaffId::parse("anna").unwrap(),
                agent_name: Personal::new("Anna".into()),
                agent_number: None,
                started_at: at,
            }
            .into(),
            CallEnded {
                call_id: id,
                ended_at: at + chrono::Duration::seconds(60),
            }
            .into(),
        ];
        let cause = Cause::actor(StaffId::parse("pbx").unwrap());
        let new = events
            .iter()
            .map(|e| {
                self.journal
                    .encode(e, uuid::Uuid::now_v7(), &cause)
                    .unwrap()
            })
            .collect();
        self.store
            .append(
                &StreamName::new(callvault_domain::streams::call(id)).unwrap(),
                ExpectedRevision::NoStream,
                new,
            )
            .await
            .unwrap()
            .position
    }

    async fn open(&self, projections: Vec<Arc<dyn Projection>>) -> Projections {
        self.open_batched(projections, callvault_projections::registry::BATCH)
            .await
    }

    /// [`Fixture::open`] with catch-up batches of `batch` events.
    async fn open_batched(
        &self,
        projections: Vec<Arc<dyn Projection>>,
        batch: usize,
    ) -> Projections {
        Projections::open_with_batch(
            &self.root,
            self.store.clone(),
            self.journal.clone(),
            projections,
            batch,
        )
        .await
        .unwrap()
    }
}

async fn count_calls(p: &Projections) -> usize {
    let view = p.view(calls::NAME).await.unwrap();
    calls::search(&view, &Default::default(), None, 100_000)
        .unwrap()
        .items
        .len()
}

#[tokio::test]
async fn models_follow_the_log_and_a_query_reads_its_own_writes() {
    let f = fixture();
    f.call(1).await;
    let p = f.open(vec![Arc::new(calls::Calls)]).await;
    assert_eq!(count_calls(&p).await, 1);
    for n in 2..=50 {
        let position = f.call(n).await;
        // Right after the write, a query that asks for it sees it.
        let view = p
            .view_at(calls::NAME, Some(position), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(
            calls::get(&view, CallId(uuid::Uuid::from_u128(n)))
                .unwrap()
                .is_some()
        );
    }
    assert_eq!(count_calls(&p).await, 50);
}

#[tokio::test]
async fn a_rebuild_runs_beside_the_live_model_and_takes_over_without_a_failed_query() {
    let f = fixture();
    for n in 1..=400 {
        f.call(n).await;
    }
    let p = f.open(vec![Arc::new(calls::Calls)]).await;
    assert_eq!(count_calls(&p).await, 400);
    let before = p.view(calls::NAME).await.unwrap();
    let old_dir = before.dir().to_owned();
    drop(before);

    p.rebuild(Some(calls::NAME)).unwrap();
    // Keep writing and querying while it rebuilds.
    let mut n = 401;
    loop {
        f.call(n).await;
        n += 1;
        assert_eq!(
            count_calls(&p).await,
            (n - 1) as usize,
            "a query during the rebuild"
        );
        let progress = p.slot(calls::NAME).unwrap().rebuild_progress().unwrap();
        assert!(progress.error.is_none());
        if progress.finished {
            break;
        }
        assert!(n < 10_000, "the rebuild never finished");
    }
    let after = p.view(calls::NAME).await.unwrap();
    assert_ne!(after.dir(), old_dir, "a new build answers");
    assert_eq!(count_calls(&p).await, (n - 1) as usize);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!old_dir.exists(), "the old build's folder is deleted");
}

#[tokio::test]
async fn a_rebuild_gives_the_same_model_as_incremental_folding() {
    let f = fixture();
    let p = f.open(vec![Arc::new(calls::Calls)]).await;
    for n in 1..=300 {
        f.call(n).await;
    }
    let incremental = p.view(calls::NAME).await.unwrap().digest().unwrap();
    p.rebuild(Some(calls::NAME)).unwrap();
    p.wait_for_rebuilds().await.unwrap();
    let rebuilt = p.view(calls::NAME).await.unwrap().digest().unwrap();
    assert_eq!(incremental, rebuilt);
}

/// `calls` under another version number, as a new release would bring.
struct CallsV2;

impl Projection for CallsV2 {
    fn name(&self) -> &'static str {
        calls::NAME
    }
    fn version(&self) -> u32 {
        calls::VERSION + 1
    }
    fn apply(&self, tx: &mut Tx<'_>, env: &Envelope) -> Result<(), ProjectionError> {
        calls::Calls.apply(tx, env)
    }
}

#[tokio::test]
async fn a_newer_code_version_is_rebuilt_at_start_while_the_old_build_answers() {
    let f = fixture();
    for n in 1..=200 {
        f.call(n).await;
    }
    {
        let p = f.open(vec![Arc::new(calls::Calls)]).await;
        assert_eq!(count_calls(&p).await, 200);
        p.shutdown().await;
    }
    let p = f.open(vec![Arc::new(CallsV2)]).await;
    // It answers at once (from the old build, or the new one if already done).
    assert_eq!(count_calls(&p).await, 200);
    p.wait_for_rebuilds().await.unwrap();
    let status = p.status().await.unwrap();
    assert_eq!(status[0].build_version, calls::VERSION + 1);
    assert!(!status[0].stale);
    assert_eq!(count_calls(&p).await, 200);
    let folders = std::fs::read_dir(f.root.join(calls::NAME))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .count();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let folders_after = std::fs::read_dir(f.root.join(calls::NAME))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .count();
    assert!(folders_after <= folders);
    assert_eq!(folders_after, 1, "only the new build is left");
}

/// A model that keeps nothing: every event changes nothing in it.
struct KeepsNothing;

impl Projection for KeepsNothing {
    fn name(&self) -> &'static str {
        "keeps_nothing"
    }
    fn version(&self) -> u32 {
        1
    }
    fn apply(&self, _: &mut Tx<'_>, _: &Envelope) -> Result<(), ProjectionError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_clean_stop_stores_how_far_each_model_got_so_status_shows_no_lag() {
    let f = fixture();
    let p = f
        .open(vec![Arc::new(KeepsNothing), Arc::new(calls::Calls)])
        .await;
    for n in 1..=20 {
        f.call(n).await;
    }
    let head = f.store.head_position().await.unwrap();
    for name in ["keeps_nothing", calls::NAME] {
        p.view_at(name, head, Duration::from_secs(5)).await.unwrap();
    }
    p.shutdown().await;
    // Opened again, before its runners fold anything, the model that
    // never wrote a row is where it was stopped, not at the start.
    let p = f
        .open(vec![Arc::new(KeepsNothing), Arc::new(calls::Calls)])
        .await;
    let status = p.status().await.unwrap();
    for s in &status {
        assert_eq!(s.position, head, "{} after a clean stop", s.name);
    }
}

#[tokio::test]
async fn a_rebuild_that_cannot_open_every_build_leaves_nothing_half_started() {
    let f = fixture();
    f.call(1).await;
    let p = f.open(callvault_projections::all(Default::default())).await;
    assert_eq!(count_calls(&p).await, 1);
    let folders = |model: &str| {
        let mut names: Vec<String> = std::fs::read_dir(f.root.join(model))
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let calls_before = folders("calls");
    // `stats`' folder is gone and a file stands in its way: its new build
    // cannot be made (even by root), after `calls`' was.
    let stats = f.root.join("stats");
    let aside = f.root.join("stats-aside");
    std::fs::rename(&stats, &aside).unwrap();
    std::fs::write(&stats, b"in the way").unwrap();
    assert!(p.rebuild_many(&["calls", "stats"]).is_err());
    // Nothing waits for a rebuild that never runs, and `calls` keeps no
    // half-made build folder.
    assert!(
        p.slot("calls")
            .unwrap()
            .rebuild_progress()
            .is_none_or(|r| r.finished)
    );
    tokio::time::timeout(Duration::from_secs(5), p.wait_for_rebuilds())
        .await
        .expect("no rebuild is left pending")
        .unwrap();
    assert_eq!(folders("calls"), calls_before);
    // With the way clear again, the same rebuild runs and takes over.
    std::fs::remove_file(&stats).unwrap();
    std::fs::rename(&aside, &stats).unwrap();
    assert_eq!(
        p.rebuild_many(&["calls", "stats"]).unwrap(),
        ["calls", "stats"]
    );
    tokio::time::timeout(Duration::from_secs(30), p.wait_for_rebuilds())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(folders("calls"), calls_before);
    assert_eq!(count_calls(&p).await, 1);
}

/// Counts the events it folds and refuses one that is not after the last:
/// an event folded twice, skipped, or out of order shows in its count or
/// stops its runner.
struct Counter;

impl Projection for Counter {
    fn name(&self) -> &'static str {
        "counter"
    }
    fn version(&self) -> u32 {
        1
    }
    fn apply(&self, tx: &mut Tx<'_>, env: &Envelope) -> Result<(), ProjectionError> {
        let (count, last): (u64, u64) = tx.get_json(b"n")?.unwrap_or((0, 0));
        if env.position.commit <= last {
            return Err(ProjectionError::Storage(format!(
                "position {} folded after {last}",
                env.position.commit
            )));
        }
        tx.put_json(b"n".to_vec(), &(count + 1, env.position.commit));
        Ok(())
    }
}

impl Fixture {
    /// Appends `n` events that carry no personal data, 1,000 per append.
    async fn many_events(&self, n: usize) {
        let cause = Cause::actor(StaffId::parse("pbx").unwrap());
        let at = Utc.with_ymd_and_hms(2026, 3, 3, 9, 0, 0).unwrap();
        let stream = StreamName::new("bulk-1").unwrap();
        for start in (0..n).step_by(1000) {
            let new = (start..n.min(start + 1000))
                .map(|i| {
                    let event: Event = CallEnded {
                        call_id: CallId(uuid::Uuid::from_u128(i as u128 + 1)),
                        ended_at: at,
                    }
                    .into();
                    self.journal
                        .encode(&event, uuid::Uuid::now_v7(), &cause)
                        .unwrap()
                })
                .collect();
            self.store
                .append(&stream, ExpectedRevision::Any, new)
                .await
                .unwrap();
        }
    }
}

async fn counted(p: &Projections, head: Option<callvault_store::Position>) -> (u64, u64) {
    let view = p
        .view_at("counter", head, Duration::from_secs(60))
        .await
        .unwrap();
    view.get_json(b"n").unwrap().unwrap()
}

/// Catching up over several batches takes the next batch from the log
/// while one folds: every event is folded once and in order, also when the
/// service stops in the middle and starts again, and a rebuild over the
/// same log ends up equal.
#[tokio::test]
async fn a_catch_up_over_many_batches_folds_every_event_once_in_order_across_a_stop() {
    let f = fixture();
    // More than four batches: batches of 10,000 here (the runner's own are
    // bigger), so the log stays small.
    let batch = 10_000;
    let events = 45_000;
    f.many_events(events).await;
    let head = f.store.head_position().await.unwrap();
    let models = || -> Vec<Arc<dyn Projection>> { vec![Arc::new(calls::Calls), Arc::new(Counter)] };

    // Stopped (at one point or another) while catching up: each start
    // goes on from where the last one settled.
    for delay in [0, 5, 20, 60] {
        let p = f.open_batched(models(), batch).await;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        p.shutdown().await;
    }
    let p = f.open_batched(models(), batch).await;
    assert_eq!(
        counted(&p, head).await,
        (events as u64, head.unwrap().commit)
    );

    // Live again after the catch-up, then a rebuild from nothing.
    f.many_events(10).await;
    let head = f.store.head_position().await.unwrap();
    assert_eq!(
        counted(&p, head).await,
        (events as u64 + 10, head.unwrap().commit)
    );
    let before = p.view("counter").await.unwrap().digest().unwrap();
    p.rebuild(Some("counter")).unwrap();
    p.wait_for_rebuilds().await.unwrap();
    assert_eq!(p.view("counter").await.unwrap().digest().unwrap(), before);
    let status = p.status().await.unwrap();
    assert!(status.iter().all(|s| s.error.is_none()), "{status:?}");
}
