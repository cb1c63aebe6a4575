//! The live read models and their builds: which build of each model
//! answers queries, the runners that keep builds up to date, blue/green
//! rebuilds, and read-your-writes waits.
//!
//! On disk, under the projections folder: `<name>/CURRENT` names the build
//! that answers queries; `<name>/v<version>-<id>/` is a build (a sled
//! database). A rebuild writes a new build beside the current one while
//! the current one keeps answering (and keeps following the log); once the
//! new build has caught up with the log, `CURRENT` is replaced atomically,
//! queries move over, and the old build's folder is deleted.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use callvault_store::{EventStore, Position, RecordedEvent, Subscription};
use tokio::sync::watch;

use crate::{
    journal::Journal,
    projection::{Envelope, Projection, ProjectionError},
    view::{BuildMeta, ViewDb},
};

/// Events taken from the log, decoded and folded at a time — and committed
/// at a time: one commit per build per batch, carrying its checkpoint, so
/// each is atomic on its own (through the build's journal, see `view.rs`).
/// Live, a batch is whatever came in since the last (usually one event);
/// catching up or rebuilding, it is this many. A row touched by several
/// events of one batch is read, decoded and written once, and the bigger
/// the batch, the more of a build's writes land next to each other in key
/// order: a rebuild of all six models took 15.6–16.7 s with 100,000 against
/// 22.0–25.8 s with 10,000 (1,003,513 events; BENCHMARKS.md, "Read models").
/// Memory grows with it (~+150 MB at 100,000), bounded by [`BATCH_BYTES`].
pub const BATCH: usize = 100_000;
/// A batch also ends once its events' stored payloads reach this many
/// bytes, so large events (long chat transcripts) cannot make one batch
/// take unbounded memory.
const BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Batches at least this big fold their builds side by side.
const SIDE_BY_SIDE_FROM: usize = 500;
/// How long a runner waits for the log before looking at its builds again.
const IDLE_WAKE: Option<Duration> = Some(Duration::from_millis(500));
/// How long [`Projections::shutdown`] waits for the runners.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// A build's stored checkpoint may lag this many positions behind when
/// the events in between changed nothing in it.
const CHECKPOINT_EVERY: u64 = 10_000;

/// How a rebuild is going.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildProgress {
    pub build: String,
    /// The log head when the rebuild started.
    pub target: Option<Position>,
    pub applied_events: u64,
    pub position: Option<Position>,
    pub started: Instant,
    pub finished: bool,
    pub error: Option<String>,
}

impl RebuildProgress {
    /// 0–1, by log position.
    pub fn fraction(&self) -> f64 {
        match (self.position, self.target) {
            (_, None) => 1.0,
            (None, Some(_)) => 0.0,
            (Some(p), Some(t)) if t.commit > 0 => (p.commit as f64 / t.commit as f64).min(1.0),
            _ => 1.0,
        }
    }

    pub fn rate(&self) -> f64 {
        let secs = self.started.elapsed().as_secs_f64();
        if secs > 0.0 {
            self.applied_events as f64 / secs
        } else {
            0.0
        }
    }

    /// Seconds left at the current rate, by position.
    pub fn eta_seconds(&self) -> Option<f64> {
        let f = self.fraction();
        let secs = self.started.elapsed().as_secs_f64();
        (f > 0.0 && f < 1.0).then(|| secs / f * (1.0 - f))
    }
}

/// One read model: its fold, the build answering queries, and progress of
/// any rebuild.
pub struct Slot {
    projection: Arc<dyn Projection>,
    dir: PathBuf,
    active: RwLock<Arc<ViewDb>>,
    /// The active build's checkpoint.
    applied: watch::Sender<Option<Position>>,
    /// The active build is of an older version and no longer follows the
    /// log (a rebuild is on its way).
    stale: RwLock<bool>,
    rebuild: Mutex<Option<RebuildProgress>>,
    /// Why the active build stopped following the log (a storage error,
    /// e.g. a full disk): queries then answer from what it has, without
    /// waiting, until a restart.
    failed: RwLock<Option<String>>,
}

impl Slot {
    pub fn name(&self) -> &'static str {
        self.projection.name()
    }

    pub fn current(&self) -> Arc<ViewDb> {
        self.active
            .read()
            .map(|a| a.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn rebuild_progress(&self) -> Option<RebuildProgress> {
        self.rebuild.lock().ok().and_then(|r| r.clone())
    }
}

/// A read model's state for operators.
#[derive(Debug, Clone)]
pub struct SlotStatus {
    pub name: String,
    pub code_version: u32,
    pub build: String,
    pub build_version: u32,
    pub position: Option<Position>,
    pub head: Option<Position>,
    pub stale: bool,
    pub rebuild: Option<RebuildProgress>,
    /// Why the build stopped following the log, if it did.
    pub error: Option<String>,
}

/// All read models of this process.
#[derive(Clone)]
pub struct Projections {
    root: PathBuf,
    runner: Runner,
    slots: Arc<BTreeMap<&'static str, Arc<Slot>>>,
    /// Dropped with the last `Projections`, which stops every runner.
    stop: Arc<watch::Sender<bool>>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// Compactions under way in this process ([`Projections::compact`]).
    compacting: Arc<std::sync::atomic::AtomicUsize>,
}

/// What a runner task needs (and nothing that would keep `Projections`
/// alive).
#[derive(Clone)]
struct Runner {
    store: Arc<dyn EventStore>,
    journal: Journal,
    /// Events per batch while catching up ([`BATCH`] unless opened with
    /// [`Projections::open_with_batch`]).
    batch: usize,
}

fn storage(context: &str, e: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Storage(format!("{context}: {e}"))
}

fn write_current(dir: &Path, build: &str) -> Result<(), ProjectionError> {
    crate::view::replace_file_synced(dir, "CURRENT", build.as_bytes())
}

fn meta_of(p: &dyn Projection) -> BuildMeta {
    BuildMeta {
        name: p.name().to_owned(),
        version: p.version(),
        config: p.config(),
    }
}

fn new_build_name(p: &dyn Projection) -> String {
    format!("v{}-{}", p.version(), uuid::Uuid::now_v7().simple())
}

/// Opens a fresh, empty build for `slot` beside its active one.
fn new_build(slot: &Slot) -> Result<Arc<ViewDb>, ProjectionError> {
    Ok(Arc::new(ViewDb::open(
        &slot.dir.join(new_build_name(slot.projection.as_ref())),
        meta_of(slot.projection.as_ref()),
        slot.projection.cache_bytes(),
    )?))
}

fn mark_rebuilding(slot: &Slot, view: &ViewDb) {
    let build = view
        .dir()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Ok(mut r) = slot.rebuild.lock() {
        *r = Some(RebuildProgress {
            build,
            target: None,
            applied_events: 0,
            position: None,
            started: Instant::now(),
            finished: false,
            error: None,
        });
    }
}

impl Projections {
    /// Opens every read model under `root` and starts following the log.
    /// A model whose stored build is of another version (or config) keeps
    /// answering from it while a new build is made.
    pub async fn open(
        root: impl AsRef<Path>,
        store: Arc<dyn EventStore>,
        journal: Journal,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Result<Self, ProjectionError> {
        Self::open_with_batch(root, store, journal, projections, BATCH).await
    }

    /// [`Projections::open`], folding at most `batch` events per batch
    /// (and commit) while catching up instead of [`BATCH`]: smaller
    /// batches publish a catch-up's progress more often and hold less
    /// memory; tests use them to cross batch boundaries on small logs.
    pub async fn open_with_batch(
        root: impl AsRef<Path>,
        store: Arc<dyn EventStore>,
        journal: Journal,
        projections: Vec<Arc<dyn Projection>>,
        batch: usize,
    ) -> Result<Self, ProjectionError> {
        let batch = batch.max(1);
        let root = root.as_ref().to_owned();
        let mut slots = BTreeMap::new();
        let mut live = Vec::new();
        let mut outdated = Vec::new();
        for projection in projections {
            let dir = root.join(projection.name());
            std::fs::create_dir_all(&dir)
                .map_err(|e| storage("creating a read model folder", e))?;
            // Only a missing CURRENT means "no build yet": any other error
            // (permissions, I/O) must not make a start replace the build.
            let current = match std::fs::read_to_string(dir.join("CURRENT")) {
                Ok(c) => Some(c),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(storage(&format!("reading {}/CURRENT", dir.display()), e)),
            };
            let wanted = meta_of(projection.as_ref());
            let (view, fresh) = match current.as_deref().map(str::trim) {
                Some(build) if dir.join(build).is_dir() => {
                    let view = tokio::task::spawn_blocking({
                        let path = dir.join(build);
                        let meta = wanted.clone();
                        let cache = projection.cache_bytes();
                        move || ViewDb::open_existing(&path, meta, cache)
                    })
                    .await
                    .map_err(|e| ProjectionError::Task(e.to_string()))??;
                    // Emptied after a power loss: built again beside it,
                    // like an older version, while the log decides.
                    let fresh = *view.meta() == wanted && !view.was_emptied();
                    (view, fresh)
                }
                _ => {
                    let build = new_build_name(projection.as_ref());
                    let view =
                        ViewDb::open(&dir.join(&build), wanted.clone(), projection.cache_bytes())?;
                    write_current(&dir, &build)?;
                    (view, true)
                }
            };
            // Leftovers of rebuilds a crash interrupted.
            let keep = view.dir().to_owned();
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    if e.path().is_dir() && e.path() != keep {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
            let checkpoint = view.checkpoint()?;
            let view = Arc::new(view);
            let (applied, _) = watch::channel(checkpoint);
            let slot = Arc::new(Slot {
                projection: projection.clone(),
                dir,
                active: RwLock::new(view.clone()),
                applied,
                stale: RwLock::new(!fresh),
                rebuild: Mutex::new(None),
                failed: RwLock::new(None),
            });
            if fresh {
                live.push((slot.clone(), view));
            } else if view.was_emptied() {
                tracing::warn!(
                    model = slot.name(),
                    "read model was emptied after the machine stopped; rebuilding it while \
                     searches check each call against the log"
                );
                outdated.push(slot.clone());
            } else {
                tracing::info!(
                    model = slot.name(),
                    version = projection.version(),
                    "read model is of an older version; rebuilding it while the old one answers"
                );
                outdated.push(slot.clone());
            }
            slots.insert(projection.name(), slot);
        }
        let (stop, _) = watch::channel(false);
        let this = Self {
            root,
            runner: Runner {
                store,
                journal,
                batch,
            },
            slots: Arc::new(slots),
            stop: Arc::new(stop),
            tasks: Arc::new(Mutex::new(Vec::new())),
            compacting: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        };
        if !live.is_empty() {
            this.spawn_group(live, None);
        }
        for slot in outdated {
            this.start_rebuild(&slot)?;
        }
        Ok(this)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn slot(&self, name: &str) -> Result<&Arc<Slot>, ProjectionError> {
        self.slots
            .get(name)
            .ok_or_else(|| ProjectionError::Unknown(name.to_owned()))
    }

    /// Whether `name` answers from an older build that no longer follows
    /// the log (its rebuild after an upgrade is under way): callers that
    /// decide on personal data then ask the log instead.
    pub fn is_stale(&self, name: &str) -> bool {
        self.slots
            .get(name)
            .is_some_and(|s| s.stale.read().map(|v| *v).unwrap_or(true))
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.slots.keys().copied().collect()
    }

    /// The build answering queries for `name`, once it has applied the log
    /// up to `position` (read your own writes). A stale build answers at
    /// once.
    pub async fn view_at(
        &self,
        name: &str,
        position: Option<Position>,
        timeout: Duration,
    ) -> Result<Arc<ViewDb>, ProjectionError> {
        let slot = self.slot(name)?;
        let failed = slot.failed.read().map(|f| f.is_some()).unwrap_or(false);
        if let Some(wanted) = position
            && !failed
            && !*slot
                .stale
                .read()
                .map_err(|_| ProjectionError::Task("lock".into()))?
        {
            let mut rx = slot.applied.subscribe();
            let started = Instant::now();
            let wait = async {
                loop {
                    if *rx.borrow_and_update() >= Some(wanted) {
                        return true;
                    }
                    if rx.changed().await.is_err() {
                        return false;
                    }
                }
            };
            if !tokio::time::timeout(timeout, wait).await.unwrap_or(false) {
                return Err(ProjectionError::NotCaughtUp {
                    name: name.to_owned(),
                    wanted,
                    waited_ms: started.elapsed().as_millis(),
                });
            }
        }
        Ok(slot.current())
    }

    /// Waits until every rebuild has finished (or failed).
    pub async fn wait_for_rebuilds(&self) -> Result<(), ProjectionError> {
        self.wait_for_builds_of(&self.names()).await
    }

    /// The build answering queries for `name`, caught up with the log as
    /// it is now.
    pub async fn view(&self, name: &str) -> Result<Arc<ViewDb>, ProjectionError> {
        let head = self.runner.store.head_position().await?;
        self.view_at(name, head, Duration::from_secs(5)).await
    }

    /// Stops every runner and waits for them (at most [`SHUTDOWN_WAIT`]),
    /// so each build stores how far it got and is closed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_WAIT, all).await.is_err() {
            // Say, a store call that waits on an unreachable server: the
            // next start folds the events since the stored checkpoints
            // again, changing nothing.
            tracing::warn!(
                "a read model runner did not stop within {SHUTDOWN_WAIT:?}; not waiting for it"
            );
        }
    }

    pub async fn status(&self) -> Result<Vec<SlotStatus>, ProjectionError> {
        let head = self.runner.store.head_position().await?;
        let mut out = Vec::new();
        for slot in self.slots.values() {
            let view = slot.current();
            out.push(SlotStatus {
                name: slot.name().to_owned(),
                code_version: slot.projection.version(),
                build: view
                    .dir()
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                build_version: view.meta().version,
                position: *slot.applied.borrow(),
                head,
                stale: slot.stale.read().map(|s| *s).unwrap_or(false),
                rebuild: slot.rebuild_progress(),
                error: slot.failed.read().ok().and_then(|f| f.clone()),
            });
        }
        Ok(out)
    }

    /// Rebuilds the models that hold personal data in clear
    /// ([`crate::WITH_PERSONAL_DATA`]) into fresh storage, after a purge:
    /// sled's deletes leave old values in its files, a fresh build never
    /// held them. Notes the debt first ([`compaction::note_due`]) and
    /// clears it only when every compaction of this process has switched,
    /// so a crash on the way leaves it for the next start. A rebuild
    /// already under way may have copied the data before the purge: it is
    /// let finish, then the models are built again.
    pub async fn compact(&self) -> Result<Vec<&'static str>, ProjectionError> {
        use std::sync::atomic::Ordering;
        compaction::note_due(&self.root)?;
        self.compacting.fetch_add(1, Ordering::SeqCst);
        let result = async {
            while crate::WITH_PERSONAL_DATA.iter().any(|n| {
                self.slots
                    .get(n)
                    .and_then(|s| s.rebuild_progress())
                    .is_some_and(|p| !p.finished)
            }) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let names = self.rebuild_many(&crate::WITH_PERSONAL_DATA)?;
            self.wait_for_builds_of(&names).await?;
            Ok(names)
        }
        .await;
        if self.compacting.fetch_sub(1, Ordering::SeqCst) == 1 && result.is_ok() {
            compaction::clear_due(&self.root)?;
        }
        result
    }

    /// Waits until the rebuilds just started for `names` have switched
    /// (or one failed) — not for any other model's, nor judged by an old
    /// failure of another build.
    async fn wait_for_builds_of(&self, names: &[&'static str]) -> Result<(), ProjectionError> {
        let started: Vec<(&Arc<Slot>, Option<String>)> = names
            .iter()
            .map(|n| {
                let slot = self.slot(n)?;
                Ok((slot, slot.rebuild_progress().map(|p| p.build)))
            })
            .collect::<Result<_, ProjectionError>>()?;
        loop {
            let mut busy = false;
            for (slot, build) in &started {
                let Some(p) = slot.rebuild_progress() else {
                    continue;
                };
                if Some(&p.build) != build.as_ref() {
                    continue; // a later rebuild took over: fresh storage too
                }
                if let Some(e) = p.error {
                    return Err(ProjectionError::Task(format!(
                        "rebuild of {}: {e}",
                        slot.name()
                    )));
                }
                busy |= !p.finished;
            }
            if !busy {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clears the compaction note of a purge that destroyed nothing —
    /// unless a compaction of this process is still running.
    pub fn purge_destroyed_nothing(&self) -> Result<(), ProjectionError> {
        if self.compacting.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            compaction::clear_due(&self.root)?;
        }
        Ok(())
    }

    /// Starts rebuilding `name` (or every model for `None`) beside the
    /// current builds; returns at once. Watch [`Projections::status`].
    pub fn rebuild(&self, name: Option<&str>) -> Result<Vec<&'static str>, ProjectionError> {
        match name {
            Some(n) => self.rebuild_many(&[n]),
            None => self.rebuild_many(&self.names()),
        }
    }

    /// Rebuilds several models in one pass over the log.
    pub fn rebuild_many(&self, names: &[&str]) -> Result<Vec<&'static str>, ProjectionError> {
        let slots: Vec<Arc<Slot>> = names
            .iter()
            .map(|n| self.slot(n).cloned())
            .collect::<Result<_, _>>()?;
        for slot in &slots {
            if slot.rebuild_progress().is_some_and(|p| !p.finished) {
                return Err(ProjectionError::Storage(format!(
                    "`{}` is already being rebuilt",
                    slot.name()
                )));
            }
        }
        // Every build is opened before any slot is marked as rebuilding:
        // a failure leaves no slot waiting for a rebuild that never runs,
        // and no half-made build folder behind.
        let mut builds = Vec::new();
        for slot in &slots {
            match new_build(slot) {
                Ok(view) => builds.push((slot.clone(), view)),
                Err(e) => {
                    for (_, view) in &builds {
                        view.retire();
                    }
                    return Err(e);
                }
            }
        }
        for (slot, view) in &builds {
            mark_rebuilding(slot, view);
        }
        self.spawn_group(builds, Some(Instant::now()));
        Ok(slots.iter().map(|s| s.name()).collect())
    }

    fn start_rebuild(&self, slot: &Arc<Slot>) -> Result<(), ProjectionError> {
        let view = new_build(slot)?;
        mark_rebuilding(slot, &view);
        self.spawn_group(vec![(slot.clone(), view)], Some(Instant::now()));
        Ok(())
    }

    /// Keeps `builds` up to date from the log in one task, decoding each
    /// event once. With `rebuild` set, each build replaces its slot's
    /// active build once it has caught up.
    fn spawn_group(&self, builds: Vec<(Arc<Slot>, Arc<ViewDb>)>, rebuild: Option<Instant>) {
        let runner = self.runner.clone();
        let stop = self.stop.subscribe();
        let task = tokio::spawn(async move {
            if let Err(e) = runner
                .run_group(builds.clone(), rebuild.is_some(), stop)
                .await
            {
                tracing::error!(error = %e, "a read model runner stopped");
                for (slot, view) in &builds {
                    if Arc::ptr_eq(&slot.current(), view) {
                        // The build answering queries (a rebuild that had
                        // switched, too): it answers from what it has.
                        if let Ok(mut f) = slot.failed.write() {
                            *f = Some(e.to_string());
                        }
                    } else if rebuild.is_some() && !view.is_retired() {
                        // A rebuild that never switched: say why, and let
                        // its folder go.
                        view.retire();
                        if let Ok(mut r) = slot.rebuild.lock()
                            && let Some(p) = r.as_mut()
                            && !p.finished
                        {
                            p.error = Some(e.to_string());
                            p.finished = true;
                        }
                    }
                }
            }
        });
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
        }
    }
}

impl Runner {
    async fn run_group(
        &self,
        builds: Vec<(Arc<Slot>, Arc<ViewDb>)>,
        rebuilding: bool,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), ProjectionError> {
        let mut members: Vec<Member> = Vec::new();
        for (slot, view) in builds {
            let checkpoint = view.checkpoint()?;
            members.push(Member {
                slot,
                view,
                checkpoint,
                switched: !rebuilding,
                last_took: Duration::ZERO,
            });
        }
        let start = members.iter().map(|m| m.checkpoint).min().flatten();
        let target = self.store.head_position().await?;
        for m in &members {
            if let Ok(mut r) = m.slot.rebuild.lock()
                && let Some(p) = r.as_mut()
                && !m.switched
            {
                p.target = target;
                p.position = m.checkpoint;
            }
        }
        let mut sub = self.store.subscribe_all(start).await?;
        let mut catching_up = CatchUp::new(&members, start, target, rebuilding);
        // The next batch, taken from the log and decoded while the one
        // before it was folded.
        let mut ready: Option<Gathered> = None;
        loop {
            // Switch rebuilt builds that have caught up (also when the log
            // is empty or the build was already there).
            // Not behind the build it replaces either, so a query that
            // waited for its own write never gets a build without it.
            let head = self.store.head_position().await?;
            for m in members.iter_mut().filter(|m| !m.switched) {
                if m.checkpoint >= head && m.checkpoint >= *m.slot.applied.borrow() {
                    self.switch(m)?;
                }
            }
            members.retain(|m| !m.view.is_retired());
            if members.is_empty() {
                return Ok(());
            }
            let Gathered {
                envelopes,
                stopping,
            } = match ready.take() {
                // Told to stop while it was taken: left unfolded (nor is
                // it checkpointed; the next start reads it again).
                Some(_) if stop.has_changed().unwrap_or(true) => {
                    return settle_off_async(members).await;
                }
                Some(gathered) => gathered,
                // Wake now and then even when the log is quiet, so a
                // retired build is let go (and its folder deleted) promptly.
                None => match self
                    .next_batch(&mut sub, head, &mut stop, IDLE_WAKE)
                    .await?
                {
                    Next::Batch(gathered) => gathered,
                    Next::Idle => continue,
                    Next::Stop => return settle_off_async(members).await,
                    Next::Closed => return Ok(()), // the store shut down
                },
            };
            // Behind the head (catching up or rebuilding), the next batch
            // is on its way: take it from the log and decode it while this
            // one folds, so no core waits for the decoding (BENCHMARKS.md,
            // "Read models").
            let behind = !stopping && envelopes.last().is_some_and(|e| Some(e.position) < head);
            let envelopes = Arc::new(envelopes);
            let fold = fold_batch(work_of(&members), envelopes);
            let next = if behind {
                // Published as soon as the fold is done (a query waiting
                // for its write does not wait for the next batch's
                // decoding), and a failed fold is reported at once.
                let prefetch = self.next_batch(&mut sub, head, &mut stop, None);
                tokio::pin!(fold, prefetch);
                let mut next = None;
                let folded = loop {
                    tokio::select! {
                        biased;
                        folded = &mut fold => break folded,
                        fetched = &mut prefetch, if next.is_none() => next = Some(fetched),
                    }
                };
                publish(&mut members, folded?)?;
                Some(match next {
                    Some(fetched) => fetched?,
                    None => prefetch.await?,
                })
            } else {
                publish(&mut members, fold.await?)?;
                None
            };
            catching_up.report(&members);
            match next {
                _ if stopping => return settle_off_async(members).await,
                Some(Next::Batch(gathered)) => ready = Some(gathered),
                Some(Next::Stop) => return settle_off_async(members).await,
                Some(Next::Closed) => return Ok(()), // the store shut down
                Some(Next::Idle) | None => {}
            }
        }
    }

    /// Decodes a batch of stored events once for every build, off the
    /// async threads.
    async fn decode(&self, batch: Vec<RecordedEvent>) -> Result<Vec<Envelope>, ProjectionError> {
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || decode_batch(&journal, &batch))
            .await
            .map_err(|e| ProjectionError::Task(e.to_string()))?
    }

    /// Takes the next batch from the log and decodes it; with `wake`,
    /// gives up after that long without an event.
    async fn next_batch(
        &self,
        sub: &mut Subscription,
        head: Option<Position>,
        stop: &mut watch::Receiver<bool>,
        wake: Option<Duration>,
    ) -> Result<Next, ProjectionError> {
        let first = tokio::select! {
            biased;
            _ = stop.changed() => return Ok(Next::Stop),
            next = sub.next() => next,
            () = tokio::time::sleep(wake.unwrap_or_default()), if wake.is_some() => {
                return Ok(Next::Idle);
            }
        };
        let Some(first) = first else {
            return Ok(Next::Closed);
        };
        let limit = (self.batch, BATCH_BYTES);
        let (batch, stopping) = gather(sub, first?, head, stop, limit).await?;
        Ok(Next::Batch(Gathered {
            envelopes: self.decode(batch).await?,
            stopping,
        }))
    }

    /// Makes a caught-up rebuilt build the one answering queries.
    fn switch(&self, m: &mut Member) -> Result<(), ProjectionError> {
        let build = m
            .view
            .dir()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        m.view.flush()?;
        // CURRENT may name the new build before it answers: after a crash
        // it resumes from its own durable checkpoint either way.
        write_current(&m.slot.dir, &build)?;
        let old = {
            let mut active = m
                .slot
                .active
                .write()
                .map_err(|_| ProjectionError::Task("lock".into()))?;
            // Decided under the lock the old build publishes under: if it
            // moved on meanwhile, the switch waits for the next round.
            if m.checkpoint < *m.slot.applied.borrow() {
                return Ok(());
            }
            m.slot.applied.send_replace(m.checkpoint);
            std::mem::replace(&mut *active, m.view.clone())
        };
        if let Ok(mut stale) = m.slot.stale.write() {
            *stale = false;
        }
        old.retire();
        m.switched = true;
        if let Ok(mut r) = m.slot.rebuild.lock()
            && let Some(p) = r.as_mut()
        {
            p.finished = true;
            p.position = m.checkpoint;
        }
        tracing::info!(model = m.slot.name(), build = %build, "rebuilt read model now answers queries");
        Ok(())
    }
}

/// Takes each member's new checkpoint after a fold: publishes it to
/// queries (an active build) or to its rebuild's progress.
fn publish(members: &mut [Member], folded: Vec<Folded>) -> Result<(), ProjectionError> {
    for (m, (checkpoint, took)) in members.iter_mut().zip(folded) {
        m.last_took = took;
        let applied = match (checkpoint, m.checkpoint) {
            (Some(new), Some(old)) => new.commit.saturating_sub(old.commit),
            (Some(new), None) => new.commit,
            _ => 0,
        };
        m.checkpoint = checkpoint;
        if m.switched {
            // Under the lock `switch` replaces the build with: once the
            // slot has moved on, this build's position is no longer what
            // it publishes.
            let active = m
                .slot
                .active
                .read()
                .map_err(|_| ProjectionError::Task("lock".into()))?;
            if Arc::ptr_eq(&active, &m.view) {
                m.slot.applied.send_replace(checkpoint);
            }
        } else if let Ok(mut r) = m.slot.rebuild.lock()
            && let Some(p) = r.as_mut()
        {
            p.applied_events += applied;
            p.position = checkpoint;
        }
    }
    Ok(())
}

/// Each member's share of the next batch.
fn work_of(members: &[Member]) -> Vec<Work> {
    members
        .iter()
        .map(|m| Work {
            projection: m.slot.projection.clone(),
            view: m.view.clone(),
            checkpoint: m.checkpoint,
            last_took: m.last_took,
        })
        .collect()
}

/// Folds decoded events into every member's build; returns each one's
/// new checkpoint and how long its fold took.
async fn fold_batch(
    work: Vec<Work>,
    envelopes: Arc<Vec<Envelope>>,
) -> Result<Vec<Folded>, ProjectionError> {
    tokio::task::spawn_blocking(move || -> Result<Vec<Folded>, ProjectionError> {
        if work.len() < 2 || envelopes.len() < SIDE_BY_SIDE_FROM {
            return work.iter().map(|w| timed_fold(w, &envelopes)).collect();
        }
        fold_side_by_side(&work, &envelopes)
    })
    .await
    .map_err(|e| ProjectionError::Task(e.to_string()))?
}

/// A batch taken from the log, decoded.
struct Gathered {
    envelopes: Vec<Envelope>,
    /// Told to stop while taking it: fold it, then stop.
    stopping: bool,
}

/// What [`Runner::next_batch`] found.
enum Next {
    Batch(Gathered),
    /// Told to stop before the batch's first event came.
    Stop,
    /// The store shut down.
    Closed,
    /// Nothing came in the time it was given.
    Idle,
}

/// Takes events from the log after `first` until a batch is full
/// (`limit`: so many events, or so many bytes of stored payload — the event
/// that reaches it included), or the log has nothing more right now.
/// Behind the head (catching up or rebuilding) the next page is on its
/// way: it waits for it rather than folding a small batch — unless told
/// to stop (the page may never come from an unreachable server); says
/// whether it was.
async fn gather(
    sub: &mut Subscription,
    first: RecordedEvent,
    head: Option<Position>,
    stop: &mut watch::Receiver<bool>,
    (max_events, max_bytes): (usize, usize),
) -> Result<(Vec<RecordedEvent>, bool), ProjectionError> {
    let mut bytes = first.payload.len();
    let mut batch = vec![first];
    while batch.len() < max_events && bytes < max_bytes {
        let next = match sub.try_next() {
            Some(e) => e?,
            None if batch.last().is_some_and(|e| Some(e.position) < head) => {
                tokio::select! {
                    next = sub.next() => match next {
                        Some(e) => e?,
                        None => break,
                    },
                    _ = stop.changed() => return Ok((batch, true)),
                }
            }
            None => break,
        };
        bytes += next.payload.len();
        batch.push(next);
    }
    Ok((batch, false))
}

/// Folds `envelopes` (those past its checkpoint) into one build as one
/// commit carrying its checkpoint; returns the new checkpoint.
fn fold(
    Work {
        projection,
        view,
        checkpoint,
        ..
    }: &Work,
    envelopes: &[Envelope],
) -> Result<Option<Position>, ProjectionError> {
    if view.is_retired() {
        return Ok(*checkpoint);
    }
    let mut tx = view.tx();
    let mut last = None;
    for env in envelopes.iter().filter(|e| Some(e.position) > *checkpoint) {
        projection.apply(&mut tx, env)?;
        last = Some(env.position);
    }
    let Some(p) = last else {
        return Ok(*checkpoint);
    };
    // Events that changed nothing in this model (say, access entries for
    // `calls`) are not written: only its checkpoint would move, and every
    // so often is enough — after a crash the few events since are folded
    // again, changing nothing again.
    let stored = view.checkpoint()?.map_or(0, |c| c.commit);
    if tx.pending() > 0 || p.commit.saturating_sub(stored) >= CHECKPOINT_EVERY {
        tx.commit(p)?;
    }
    Ok(Some(p))
}

/// [`fold`], and how long it took.
fn timed_fold(work: &Work, envelopes: &[Envelope]) -> Result<Folded, ProjectionError> {
    let started = Instant::now();
    let checkpoint = fold(work, envelopes)?;
    Ok((checkpoint, started.elapsed()))
}

/// Folds a large batch into several builds on one thread per core, each
/// thread taking the next build not yet folded: commits take no lock
/// shared between builds (see `view.rs`). One thread per build measured
/// slower than one per core (BENCHMARKS.md, "Read models").
///
/// The builds are taken longest first (by their fold of the batch before),
/// so the short ones fill the end and no thread waits long for the last
/// build of the batch (BENCHMARKS.md, "Read models").
fn fold_side_by_side(
    work: &[Work],
    envelopes: &[Envelope],
) -> Result<Vec<Folded>, ProjectionError> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(work.len());
    let mut order: Vec<usize> = (0..work.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(work[i].last_took));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut folded: Vec<(usize, Result<Folded, ProjectionError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let at = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(&i) = order.get(at) else { break };
                        done.push((i, timed_fold(&work[i], envelopes)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| ProjectionError::Task("a read model's fold panicked".into()))
            })
            .collect::<Result<Vec<_>, _>>()
    })?
    .into_iter()
    .flatten()
    .collect();
    folded.sort_unstable_by_key(|(i, _)| *i);
    folded.into_iter().map(|(_, r)| r).collect()
}

/// [`settle`] on a blocking thread: its commits and `fdatasync`s must not
/// hold up an async worker (or wait there for a query's read).
async fn settle_off_async(members: Vec<Member>) -> Result<(), ProjectionError> {
    tokio::task::spawn_blocking(move || settle(&members))
        .await
        .map_err(|e| ProjectionError::Task(e.to_string()))?
}

/// On a clean stop, stores each build's checkpoint where its fold got to:
/// events that changed nothing in a build move its stored checkpoint only
/// every [`CHECKPOINT_EVERY`] positions while running, and `projections
/// status` after a stop should not show that as lag.
fn settle(members: &[Member]) -> Result<(), ProjectionError> {
    // Every build, even after one fails: each settled build is one less
    // journal to replay, or `DIRTY` note to take for a power loss.
    let mut first_error = None;
    for m in members.iter().filter(|m| !m.view.is_retired()) {
        let settled = (|| {
            if let Some(reached) = m.checkpoint
                && m.view.checkpoint()? < Some(reached)
            {
                m.view.tx().commit(reached)?;
            }
            m.view.flush()
        })();
        if let Err(e) = settled {
            tracing::warn!(model = m.slot.name(), error = %e, "could not settle a read model at stop");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Says in the log how a group's catch-up goes — at a start after an
/// upgrade or a `demo seed`, or in a rebuild, that can take minutes while
/// queries wait — every [`REPORT_EVERY`], and once when it reached the
/// head it set out for.
struct CatchUp {
    models: String,
    target: Option<Position>,
    from: u64,
    last: Instant,
    done: bool,
}

const REPORT_EVERY: Duration = Duration::from_secs(10);

impl CatchUp {
    fn new(
        members: &[Member],
        start: Option<Position>,
        target: Option<Position>,
        rebuilding: bool,
    ) -> Self {
        let models = members
            .iter()
            .map(|m| m.slot.name())
            .collect::<Vec<_>>()
            .join(", ");
        let from = start.map_or(0, |p| p.commit);
        let done = target.is_none_or(|t| Some(t) <= start);
        if !done {
            tracing::info!(
                models = %models,
                from,
                to = target.map_or(0, |t| t.commit),
                "{} read models from the log",
                if rebuilding { "rebuilding" } else { "catching up" }
            );
        }
        Self {
            models,
            target,
            from,
            last: Instant::now(),
            done,
        }
    }

    fn report(&mut self, members: &[Member]) {
        if self.done {
            return;
        }
        let Some(target) = self.target else { return };
        let at = members.iter().map(|m| m.checkpoint).min().flatten();
        if at >= Some(target) {
            self.done = true;
            tracing::info!(models = %self.models, position = target.commit, "read models caught up with the log");
        } else if self.last.elapsed() >= REPORT_EVERY {
            self.last = Instant::now();
            let at = at.map_or(0, |p| p.commit);
            let span = target.commit.saturating_sub(self.from).max(1);
            let percent = at.saturating_sub(self.from) as f64 * 100.0 / span as f64;
            tracing::info!(
                models = %self.models,
                position = at,
                target = target.commit,
                "read models catching up: {percent:.0}%"
            );
        }
    }
}

/// One build's share of a batch: its fold, its storage, its checkpoint.
struct Work {
    projection: Arc<dyn Projection>,
    view: Arc<ViewDb>,
    checkpoint: Option<Position>,
    /// How long its fold of the batch before took.
    last_took: Duration,
}

/// A build's new checkpoint after a batch, and how long the fold took.
type Folded = (Option<Position>, Duration);

struct Member {
    slot: Arc<Slot>,
    view: Arc<ViewDb>,
    checkpoint: Option<Position>,
    /// Already the slot's active build (or it was never a rebuild).
    switched: bool,
    /// How long its fold of the last batch took.
    last_took: Duration,
}

/// Decodes a batch of stored events once for every build.
fn decode_batch(
    journal: &Journal,
    batch: &[RecordedEvent],
) -> Result<Vec<Envelope>, ProjectionError> {
    batch
        .iter()
        .map(|r| Ok(Envelope::decode(journal, r)?))
        .collect()
}

/// The note, beside the read models, that those holding personal data owe
/// a rebuild into fresh storage because a purge destroyed (or was about to
/// destroy) keys of data they hold in clear. Written and synced before the
/// purge, removed after the rebuilds switched.
pub mod compaction {
    use std::path::Path;

    use super::storage;
    use crate::ProjectionError;

    /// The note's file name under the read models' folder.
    pub const FILE: &str = "COMPACTION-DUE";

    pub fn is_due(root: &Path) -> bool {
        root.join(FILE).exists()
    }

    pub fn note_due(root: &Path) -> Result<(), ProjectionError> {
        if is_due(root) {
            return Ok(());
        }
        std::fs::create_dir_all(root).map_err(|e| storage("creating the read models folder", e))?;
        std::fs::File::create(root.join(FILE))
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::File::open(root))
            .and_then(|d| d.sync_all())
            .map_err(|e| storage("noting a compaction as due", e))
    }

    pub fn clear_due(root: &Path) -> Result<(), ProjectionError> {
        match std::fs::remove_file(root.join(FILE)) {
            Ok(()) => std::fs::File::open(root)
                .and_then(|d| d.sync_all())
                .map_err(|e| storage("clearing the compaction note", e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(storage("clearing the compaction note", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use callvault_store::{EventStore, ExpectedRevision, conformance, memory::MemoryStore};

    use super::*;

    /// A batch ends at its event limit, or at the event whose payload
    /// reaches the byte limit, whichever comes first; the next batch goes
    /// on from there.
    #[tokio::test]
    async fn a_batch_ends_at_its_event_or_byte_limit() {
        let store = MemoryStore::new();
        let stream = conformance::unique_stream("batch");
        let events = conformance::events(10);
        let size = events[0].payload.len(); // `{"n":0}` … `{"n":9}`: alike
        store
            .append(&stream, ExpectedRevision::NoStream, events)
            .await
            .unwrap();
        let head = store.head_position().await.unwrap();
        let (_keep, mut stop) = watch::channel(false);
        let mut sub = store.subscribe_all(None).await.unwrap();
        let mut batches = Vec::new();
        for limit in [(4, usize::MAX), (100, 2 * size + 1), (100, 3 * size)] {
            let first = sub.next().await.unwrap().unwrap();
            let (batch, stopping) = gather(&mut sub, first, head, &mut stop, limit)
                .await
                .unwrap();
            assert!(!stopping);
            let ns: Vec<String> = batch
                .iter()
                .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
                .collect();
            batches.push(ns);
        }
        let n = |range: std::ops::Range<u32>| -> Vec<String> {
            range.map(|i| format!("{{\"n\":{i}}}")).collect()
        };
        // The event limit; the byte limit passed by the third event; the
        // byte limit reached exactly by the third.
        assert_eq!(batches, [n(0..4), n(4..7), n(7..10)]);
    }
}
