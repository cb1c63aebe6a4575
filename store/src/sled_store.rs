//! The embedded backend: the event log in a sled database, made durable by
//! a write-ahead log.
//!
//! Layout: one sled tree with prefixed keys —
//! `E`+first position → a chunk of consecutive events of one append (see
//! `record.rs`);
//! `S`+stream+0x00+first revision → first position, one per chunk (a
//! chunk's events have consecutive revisions *and* positions, so this
//! locates every event of the stream);
//! `H`+stream → last revision + last hash.
//!
//! Writes: one writer thread drains every pending append, validates them in
//! order (later ones see earlier ones), writes the batch to the WAL and
//! `fdatasync`s it once (group commit), applies it to sled in one atomic
//! batch, and only then answers each request. See `wal.rs` for why sled's
//! own flush is not the durability point and how checkpoints work.
//!
//! Idempotency: a resent append is recognised from a cache of the most
//! recent event ids, and — always, as EventStoreDB does with the
//! concurrency check on — when an `Exact`/`NoStream` append conflicts
//! because the events after the expected revision are the very ones sent.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    fs::File,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, mpsc},
    thread::JoinHandle,
    time::Duration,
};

use async_trait::async_trait;
use chrono::Utc;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::{
    append::{Head, Plan, Stored, plan},
    contract::*,
    hash::ChainHash,
    record,
    subscription::{self, ReadAll},
    wal::{Ops, Wal, sync_sled_files},
};

/// sled's segment size for a new event log. It is also the size of the log
/// buffer sled writes out in one go when it fills, and every `fdatasync` of
/// the WAL that follows such a write waits for it to reach the disk: with
/// 8 MiB the WAL's p99 at 16 writers was ~5 ms, with 1 MiB ~1.8 ms
/// (BENCHMARKS.md, "Event log"). Values larger than a quarter of a segment
/// become separate blob files, so chunks stay below that
/// (`record::MAX_CHUNK_BYTES`).
const SEGMENT_SIZE: usize = 1024 * 1024;
/// Most append requests committed together.
const MAX_REQUESTS_PER_BATCH: usize = 4096;
/// Reads of at most this many events run on the calling thread.
pub(crate) const INLINE_READ: usize = 32;
/// Checkpoint (flush sled, empty the WAL) once the WAL is this big…
const CHECKPOINT_BYTES: u64 = 32 * 1024 * 1024;
/// …or when the writer has been idle this long with a non-empty WAL.
const CHECKPOINT_IDLE: Duration = Duration::from_secs(2);
/// The WAL grows in zero-filled steps of this size, and keeps room for
/// this much when emptied (see `wal.rs`).
const WAL_GROW_STEP: u64 = 1024 * 1024;
const WAL_KEEP: u64 = CHECKPOINT_BYTES + 8 * 1024 * 1024;
/// How many recent event ids are remembered for idempotent resends with
/// `Any`/`StreamExists`.
pub const RECENT_IDS: usize = 200_000;

const EVENT: u8 = b'E';
const STREAM: u8 = b'S';
const HEAD: u8 = b'H';

struct Request {
    stream: StreamName,
    expected: ExpectedRevision,
    events: Vec<NewEvent>,
    /// Events copied verbatim from another log (`import`), instead of
    /// `events`.
    import: Option<Vec<RecordedEvent>>,
    reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

struct Inner {
    dir: PathBuf,
    db: sled::Db,
    /// sled's data file, opened to `fdatasync` it at checkpoints.
    data_file: File,
    head: watch::Sender<Option<Position>>,
}

/// The embedded event store.
pub struct SledStore {
    inner: Arc<Inner>,
    writer: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Io { context, source }
}

/// The segment size an existing sled database in `dir` was created with,
/// from its `conf` file (text lines, then a CRC). sled refuses to open with
/// another one, so a log created with an older default keeps its own.
fn stored_segment_size(dir: &Path) -> Option<usize> {
    let bytes = std::fs::read(dir.join("conf")).ok()?;
    let text = String::from_utf8_lossy(bytes.get(..bytes.len().checked_sub(4)?)?);
    text.lines()
        .find_map(|l| l.strip_prefix("segment_size: ")?.trim().parse().ok())
}

fn sled_config(dir: &Path, segment_size: usize) -> sled::Config {
    sled::Config::new()
        .path(dir)
        .segment_size(segment_size)
        // No timed background flush: durability is the WAL's, and sled
        // writes its log at checkpoints and when a buffer fills.
        .flush_every_ms(None)
}

/// Folders whose log this process has opened, with how many of its stores
/// hold each open now. A refused file lock on a folder we opened and hold
/// no more is our own previous store letting go: its last sled I/O thread
/// keeps the file for a moment after the drop.
static OPENED_HERE: std::sync::Mutex<std::collections::BTreeMap<PathBuf, usize>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn opened_here() -> std::sync::MutexGuard<'static, std::collections::BTreeMap<PathBuf, usize>> {
    OPENED_HERE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn folder_key(dir: &Path) -> PathBuf {
    dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())
}

/// Opens a sled database with `open`; when sled refuses its file lock and
/// `ours` says the holder is this process's own database just dropped
/// (whose last sled I/O thread keeps the file a moment longer), tries
/// again every 50 ms for up to 2 s. Any other refusal is returned at once.
/// Shared by the event log and the read models' builds.
pub fn open_when_released(
    mut open: impl FnMut() -> sled::Result<sled::Db>,
    ours: impl Fn() -> bool,
) -> sled::Result<sled::Db> {
    let mut tries = 0;
    loop {
        match open() {
            Err(sled::Error::Io(e))
                if tries < 40 && e.to_string().contains("could not acquire lock") && ours() =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Opens the log's sled; a lock refused for a folder this process had open
/// and has closed is waited for. A lock held by another process (a running
/// `serve`), or by a store of this process still open, is reported at once.
fn open_waiting_for_ourselves(dir: &Path, segment_size: usize) -> sled::Result<sled::Db> {
    let key = folder_key(dir);
    let db = open_when_released(
        || sled_config(dir, segment_size).open(),
        || opened_here().get(&key) == Some(&0),
    )?;
    opened_here().entry(key).or_insert(0);
    Ok(db)
}

/// Opens sled. sled 0.34 can leave a torn snapshot when killed while
/// writing one, and then refuses to open (`Corruption { at: None }`,
/// spacejam/sled#1527). A snapshot is derived from sled's own log, so a
/// damaged one is moved aside (kept, for inspection) and sled opens from
/// its log; what came after our last checkpoint is replayed from our WAL.
fn open_sled(dir: &Path) -> Result<sled::Db, StoreError> {
    let holds_data = std::fs::metadata(dir.join("db")).is_ok_and(|m| m.len() > 0);
    let segment_size = match stored_segment_size(dir) {
        Some(size) => size,
        None if !holds_data => SEGMENT_SIZE,
        // sled would write a new `conf` with today's default and misread
        // a log created with another segment size.
        None => {
            return Err(StoreError::Corrupt(format!(
                "{} holds an event log but sled's `conf` file (which names its segment size) is missing or unreadable; restore it from the backup the folder came from",
                dir.display()
            )));
        }
    };
    match open_waiting_for_ourselves(dir, segment_size) {
        Ok(db) => Ok(db),
        Err(sled::Error::Corruption { at: None, .. }) => {
            let aside = dir.join("damaged-snapshots");
            std::fs::create_dir_all(&aside).map_err(io(format!("creating {}", aside.display())))?;
            let snaps = std::fs::read_dir(dir)
                .map_err(io(format!("listing {}", dir.display())))?
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("snap."));
            for snap in snaps {
                let to = aside.join(snap.file_name());
                std::fs::rename(snap.path(), &to)
                    .map_err(io(format!("moving {} aside", snap.path().display())))?;
                tracing::warn!(
                    snapshot = %to.display(),
                    "sled could not read its snapshot; moved it aside and opening from sled's log"
                );
            }
            sled_config(dir, segment_size)
                .open()
                .map_err(|e| sled_error("opening the event log", dir, e))
        }
        Err(e) => Err(sled_error("opening the event log", dir, e)),
    }
}

fn sled_error(context: &str, dir: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(source) if source.to_string().contains("could not acquire lock") => {
            StoreError::Unavailable(format!(
                "the event log in {} is in use by another process (is `callvault serve` running?)",
                dir.display()
            ))
        }
        sled::Error::Io(source) => StoreError::Io {
            context: format!("{context} ({})", dir.display()),
            source,
        },
        sled::Error::Corruption { .. } => {
            StoreError::Corrupt(format!("sled reports corruption while {context}: {e}"))
        }
        other => StoreError::Unavailable(format!("sled failed while {context}: {other}")),
    }
}

fn position_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = EVENT;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn stream_prefix(stream: &StreamName) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.as_str().len() + 10);
    k.push(STREAM);
    k.extend_from_slice(stream.as_str().as_bytes());
    k.push(0);
    k
}

fn segment_key(stream: &StreamName, first: Revision) -> Vec<u8> {
    let mut k = stream_prefix(stream);
    k.extend_from_slice(&first.0.to_be_bytes());
    k
}

fn head_key(stream: &StreamName) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.as_str().len() + 1);
    k.push(HEAD);
    k.extend_from_slice(stream.as_str().as_bytes());
    k
}

fn u64_of(bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("an index entry is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(arr))
}

/// A segment index entry: (first revision, first position).
fn segment_of(
    entry: sled::Result<(sled::IVec, sled::IVec)>,
    dir: &Path,
) -> Result<(u64, u64), StoreError> {
    let (key, value) = entry.map_err(|e| sled_error("reading a stream index", dir, e))?;
    let rev = key
        .len()
        .checked_sub(8)
        .map(|at| u64_of(&key[at..]))
        .ok_or_else(|| StoreError::Corrupt("a stream index key is too short".into()))??;
    Ok((rev, u64_of(&value)?))
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(open) = opened_here().get_mut(&folder_key(&self.dir)) {
            *open = open.saturating_sub(1);
        }
    }
}

impl Inner {
    fn sled(&self, context: &str) -> impl FnOnce(sled::Error) -> StoreError + '_ {
        let context = context.to_owned();
        move |e| sled_error(&context, &self.dir, e)
    }

    /// The chunk holding position `seq`: its first position and events.
    fn chunk_at(&self, seq: u64) -> Result<(u64, Vec<RecordedEvent>), StoreError> {
        let (key, bytes) = self
            .db
            .range(position_key(0)..=position_key(seq))
            .next_back()
            .transpose()
            .map_err(self.sled("reading an event"))?
            .ok_or_else(|| StoreError::Corrupt(format!("index points at missing event {seq}")))?;
        let first = u64_of(&key[1..])?;
        let events = record::decode_chunk(first, &bytes)?;
        if seq >= first + events.len() as u64 {
            return Err(StoreError::Corrupt(format!(
                "index points at missing event {seq}"
            )));
        }
        Ok((first, events))
    }

    fn load_head(&self, stream: &StreamName) -> Result<Option<Head>, StoreError> {
        let Some(bytes) = self
            .db
            .get(head_key(stream))
            .map_err(self.sled("reading a stream head"))?
        else {
            return Ok(None);
        };
        if bytes.len() != 40 {
            return Err(StoreError::Corrupt(format!(
                "head of stream `{stream}` is {} bytes, not 40",
                bytes.len()
            )));
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[8..]);
        Ok(Some(Head {
            last: Revision(u64_of(&bytes[..8])?),
            hash: ChainHash(hash),
        }))
    }

    fn last_sequence(&self) -> Result<u64, StoreError> {
        match self
            .db
            .scan_prefix([EVENT])
            .next_back()
            .transpose()
            .map_err(self.sled("finding the last event"))?
        {
            Some((key, bytes)) => {
                let first = u64_of(&key[1..])?;
                Ok(first + record::chunk_len(first, &bytes)? - 1)
            }
            None => Ok(0),
        }
    }

    /// The events of revisions `lo..=hi` from the chunk a stream index
    /// entry `(first revision, first position)` names, checked to be what
    /// the index says they are.
    fn segment_events(
        &self,
        stream: &StreamName,
        (seg_rev, seg_pos): (u64, u64),
        lo: u64,
        hi: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let (first, events) = self.chunk_at(seg_pos)?;
        let mut out = Vec::new();
        for e in events.into_iter().skip((seg_pos - first) as usize) {
            let rev = seg_rev + (e.position.commit - seg_pos);
            if e.stream != *stream || e.revision.0 != rev {
                return Err(StoreError::Corrupt(format!(
                    "stream index of `{stream}` says revision {rev} is at position {}, which holds {}@{}",
                    e.position, e.stream, e.revision
                )));
            }
            if rev > hi {
                break;
            }
            if rev >= lo {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn read_stream_blocking(
        &self,
        stream: &StreamName,
        from: StreamFrom,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let Some(head) = self.load_head(stream)? else {
            return Ok(Vec::new());
        };
        if max == 0 {
            return Ok(Vec::new());
        }
        let last = head.last.0;
        let prefix = stream_prefix(stream);
        let mut end = prefix.clone();
        if let Some(b) = end.last_mut() {
            *b = 1; // just past every key of this stream
        }
        let seg = |entry| segment_of(entry, &self.dir);
        let mut out = Vec::new();
        match direction {
            Direction::Forwards => {
                let start = match from {
                    StreamFrom::Start => 0,
                    StreamFrom::Revision(r) => r.0,
                    StreamFrom::End => return Ok(out),
                };
                if start > last {
                    return Ok(out);
                }
                let stop = last.min(start.saturating_add(max as u64 - 1));
                // The segment holding `start`, then the ones after it.
                let (seg_rev, _) = self
                    .db
                    .range(prefix.clone()..=segment_key(stream, Revision(start)))
                    .next_back()
                    .map(seg)
                    .transpose()?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("stream `{stream}` has no index"))
                    })?;
                for entry in self.db.range(segment_key(stream, Revision(seg_rev))..end) {
                    let segment = seg(entry)?;
                    if segment.0 > stop {
                        break;
                    }
                    out.extend(self.segment_events(stream, segment, start, stop)?);
                }
            }
            Direction::Backwards => {
                let start = match from {
                    StreamFrom::End => last,
                    StreamFrom::Revision(r) => r.0.min(last),
                    StreamFrom::Start => 0,
                };
                let stop = start.saturating_sub(max as u64 - 1);
                for entry in self
                    .db
                    .range(prefix.clone()..=segment_key(stream, Revision(start)))
                    .rev()
                {
                    let segment = seg(entry)?;
                    let mut events = self.segment_events(stream, segment, stop, start)?;
                    events.reverse();
                    out.extend(events);
                    if segment.0 <= stop {
                        break;
                    }
                }
            }
        }
        if out.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "stream `{stream}` has a head at revision {last} but no events where its index points"
            )));
        }
        Ok(out)
    }

    /// Makes everything applied to sled durable: flush, then a real
    /// `fdatasync` of its data file and of any blob file it wrote.
    fn checkpoint(
        &self,
        wal: &mut Wal,
        synced_blobs: &mut HashSet<PathBuf>,
    ) -> Result<(), StoreError> {
        self.db
            .flush()
            .map_err(self.sled("flushing the event log"))?;
        sync_sled_files(&self.dir, &self.data_file, synced_blobs)?;
        wal.reset()
    }

    /// Applies a batch that is already durable in the WAL. Plain inserts,
    /// not a sled batch: sled seals and `sync_file_range`s its log buffer
    /// twice for every `apply_batch`, and atomicity is the WAL's job here —
    /// a crash mid-apply is repaired by replaying the WAL at open. Readers
    /// never see a half-applied batch: stream heads are written last, and
    /// `read_all` stops at the published head.
    fn apply(&self, ops: &Ops) -> Result<(), StoreError> {
        for (k, v) in ops {
            self.db
                .insert(k.as_slice(), v.as_slice())
                .map_err(self.sled("applying a batch"))?;
        }
        Ok(())
    }
}

impl ReadAll for Inner {
    fn read_all_blocking(
        &self,
        after: Option<Position>,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let start = after.map_or(0, |p| p.commit.saturating_add(1));
        let mut out = Vec::new();
        // Only what is acknowledged: a batch being applied is not yet.
        let Some(head) = *self.head.borrow() else {
            return Ok(out);
        };
        if max == 0 || start > head.commit {
            return Ok(out);
        }
        // Begin at the chunk that holds `start` (it may begin before it).
        let from = self
            .db
            .range(position_key(0)..=position_key(start))
            .next_back()
            .transpose()
            .map_err(self.sled("reading the log"))?
            .map_or(start, |(key, _)| u64_of(&key[1..]).unwrap_or(start));
        for entry in self.db.range(position_key(from).to_vec()..vec![EVENT + 1]) {
            let (key, bytes) = entry.map_err(self.sled("reading the log"))?;
            let first = u64_of(&key[1..])?;
            if first > head.commit {
                break;
            }
            for e in record::decode_chunk(first, &bytes)? {
                if e.position.commit > head.commit {
                    return Ok(out);
                }
                if e.position.commit >= start {
                    out.push(e);
                    if out.len() == max {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The most recent event ids, for recognising resent appends.
struct RecentIds {
    map: HashMap<Uuid, Stored>,
    order: VecDeque<Uuid>,
}

impl RecentIds {
    fn new() -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn insert(&mut self, id: Uuid, stored: Stored) {
        if self.map.insert(id, stored).is_none() {
            self.order.push_back(id);
            if self.order.len() > RECENT_IDS
                && let Some(old) = self.order.pop_front()
            {
                self.map.remove(&old);
            }
        }
    }
}

/// The writer thread's memory.
struct Writer {
    inner: Arc<Inner>,
    wal: Wal,
    heads: HashMap<StreamName, Head>,
    recent: RecentIds,
    next_sequence: u64,
    synced_blobs: HashSet<PathBuf>,
    /// Set when a batch reached the WAL but not sled: the state is unknown
    /// until a restart replays the WAL, so every append is refused.
    failed: Option<String>,
}

impl Writer {
    fn head(&mut self, stream: &StreamName) -> Result<Option<Head>, StoreError> {
        if let Some(h) = self.heads.get(stream) {
            return Ok(Some(*h));
        }
        let h = self.inner.load_head(stream)?;
        if let Some(h) = h {
            self.heads.insert(stream.clone(), h);
        }
        Ok(h)
    }

    fn run(mut self, rx: mpsc::Receiver<Request>) {
        loop {
            let first = match rx.recv_timeout(CHECKPOINT_IDLE) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.checkpoint_if(|len| len > 0);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut requests = vec![first];
            while requests.len() < MAX_REQUESTS_PER_BATCH {
                match rx.try_recv() {
                    Ok(r) => requests.push(r),
                    Err(_) => break,
                }
            }
            self.commit(requests);
            self.checkpoint_if(|len| len > CHECKPOINT_BYTES);
        }
        self.checkpoint_if(|len| len > 0);
    }

    fn checkpoint_if(&mut self, due: impl Fn(u64) -> bool) {
        // A damaged WAL refuses appends until it is emptied: try at once.
        if self.failed.is_some() || !(due(self.wal.len()) || self.wal.is_damaged()) {
            return;
        }
        if let Err(e) = self.inner.checkpoint(&mut self.wal, &mut self.synced_blobs) {
            // The WAL still holds everything; a later checkpoint or the next
            // open will retry.
            tracing::warn!(error = %e, "event log checkpoint failed; the write-ahead log keeps the data");
        }
    }

    /// When an `Exact`/`NoStream` append conflicts, it is a resend if the
    /// events right after the expected revision are the ones sent.
    fn resent(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        ids: &[Uuid],
    ) -> Option<AppendResult> {
        let from = match expected {
            ExpectedRevision::Exact(r) => Revision(r.0 + 1),
            ExpectedRevision::NoStream => Revision(0),
            _ => return None,
        };
        let stored = self
            .inner
            .read_stream_blocking(
                stream,
                StreamFrom::Revision(from),
                Direction::Forwards,
                ids.len(),
            )
            .ok()?;
        let same = stored.len() == ids.len() && stored.iter().zip(ids).all(|(e, id)| e.id == *id);
        let last = stored.last().filter(|_| same)?;
        Some(AppendResult {
            next_expected: last.revision,
            position: last.position,
        })
    }

    fn commit(&mut self, requests: Vec<Request>) {
        if let Some(why) = &self.failed {
            for r in requests {
                let _ = r.reply.send(Err(StoreError::Unavailable(why.clone())));
            }
            return;
        }
        let mut ops: Ops = Vec::new();
        let mut new_heads: HashMap<StreamName, Head> = HashMap::new();
        let mut new_ids: HashMap<Uuid, Stored> = HashMap::new();
        let mut next = self.next_sequence;
        let mut outcomes = Vec::with_capacity(requests.len());
        let now = Utc::now();

        for req in requests {
            let ids: Vec<Uuid> = req.events.iter().map(|e| e.id).collect();
            let head = match new_heads.get(&req.stream) {
                Some(h) => Ok(Some(*h)),
                None => self.head(&req.stream),
            };
            let recent = &self.recent.map;
            let planned = head.and_then(|head| match req.import {
                Some(records) => crate::append::plan_import(&req.stream, records, head, &mut next)
                    .map(Plan::Write),
                None => {
                    let lookup =
                        |id: &Uuid| Ok(new_ids.get(id).or_else(|| recent.get(id)).cloned());
                    plan(
                        &req.stream,
                        req.expected,
                        req.events,
                        head,
                        lookup,
                        &mut next,
                        now,
                    )
                }
            });
            let outcome = match planned {
                Err(StoreError::Conflict {
                    stream,
                    expected,
                    actual,
                }) => match self.resent(&stream, expected, &ids) {
                    Some(original) => Ok(original),
                    None => Err(StoreError::Conflict {
                        stream,
                        expected,
                        actual,
                    }),
                },
                Err(e) => Err(e),
                Ok(Plan::Duplicate(result)) => Ok(result),
                Ok(Plan::Write(records)) => match (records.first(), records.last()) {
                    (Some(_), Some(last)) => {
                        for chunk in record::chunks(&records) {
                            let first = &chunk[0];
                            ops.push((
                                segment_key(&req.stream, first.revision),
                                first.position.commit.to_be_bytes().to_vec(),
                            ));
                            ops.push((
                                position_key(first.position.commit).to_vec(),
                                record::encode_chunk(chunk),
                            ));
                        }
                        for r in &records {
                            new_ids.insert(
                                r.id,
                                Stored {
                                    stream: r.stream.clone(),
                                    revision: r.revision,
                                    position: r.position,
                                },
                            );
                        }
                        let head = Head {
                            last: last.revision,
                            hash: last.metadata.hash,
                        };
                        let mut value = Vec::with_capacity(40);
                        value.extend_from_slice(&head.last.0.to_be_bytes());
                        value.extend_from_slice(&head.hash.0);
                        ops.push((head_key(&req.stream), value));
                        new_heads.insert(req.stream.clone(), head);
                        Ok(AppendResult {
                            next_expected: last.revision,
                            position: last.position,
                        })
                    }
                    _ => Err(StoreError::EmptyAppend),
                },
            };
            outcomes.push((req.reply, outcome));
        }

        if !ops.is_empty() {
            if let Err(e) = self.wal.append(&ops) {
                tracing::error!(error = %e, "write-ahead log append failed; nothing in the batch was acknowledged");
                let message = e.to_string();
                for (reply, outcome) in outcomes {
                    let _ = reply.send(outcome.and(Err(StoreError::Unavailable(format!(
                        "the write was not stored: {message}"
                    )))));
                }
                return;
            }
            if let Err(e) = self.inner.apply(&ops) {
                // Durable in the WAL, unknown in sled: refuse everything
                // until a restart replays the WAL.
                let why = format!("the event log must be reopened after a failed write: {e}");
                tracing::error!(error = %e, "sled refused a batch already in the write-ahead log");
                for (reply, _) in outcomes {
                    let _ = reply.send(Err(StoreError::Unavailable(why.clone())));
                }
                self.failed = Some(why);
                return;
            }
            self.heads.extend(new_heads);
            for (id, stored) in new_ids {
                self.recent.insert(id, stored);
            }
            self.next_sequence = next;
            self.inner
                .head
                .send_replace(Some(Position::sequence(next.saturating_sub(1))));
        }
        for (reply, outcome) in outcomes {
            let _ = reply.send(outcome);
        }
    }
}

impl SledStore {
    /// Hands requests to the writer thread, in order.
    fn submit(&self, requests: Vec<Request>) -> Result<(), StoreError> {
        let writer = self
            .writer
            .lock()
            .map_err(|_| StoreError::Unavailable("log writer lock poisoned".into()))?;
        let writer = writer
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the event log is closed".into()))?;
        for r in requests {
            writer
                .send(r)
                .map_err(|_| StoreError::Unavailable("the log writer has stopped".into()))?;
        }
        Ok(())
    }

    /// Opens (or creates) the event log in `dir`, finishing any write the
    /// write-ahead log holds.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let db = open_sled(&dir)?;
        let data_file = File::open(dir.join("db"))
            .map_err(io(format!("opening {}/db for fdatasync", dir.display())))?;
        let (mut wal, pending) = Wal::open_preallocated(&dir, WAL_GROW_STEP, WAL_KEEP)?;
        // Make the files sled and the WAL just created, and their names,
        // durable.
        for name in ["conf", "db", "wal"] {
            if let Ok(f) = File::open(dir.join(name)) {
                f.sync_all().map_err(io(format!("fsync of {name}")))?;
            }
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("fsync of {}", dir.display())))?;

        let (head, _) = watch::channel(None);
        *opened_here().entry(folder_key(&dir)).or_insert(0) += 1;
        let inner = Arc::new(Inner {
            dir,
            db,
            data_file,
            head,
        });
        let mut synced_blobs = HashSet::new();
        if !pending.is_empty() {
            tracing::info!(
                batches = pending.len(),
                "replaying the write-ahead log into the event log"
            );
            for ops in &pending {
                inner.apply(ops)?;
            }
        }
        inner.checkpoint(&mut wal, &mut synced_blobs)?;

        let last = inner.last_sequence()?;
        inner
            .head
            .send_replace((last > 0).then(|| Position::sequence(last)));
        let mut recent = RecentIds::new();
        let mut warm = Vec::new();
        for entry in inner.db.scan_prefix([EVENT]).rev() {
            if warm.len() >= RECENT_IDS {
                break;
            }
            let (key, bytes) = entry.map_err(inner.sled("reading recent events"))?;
            let mut chunk = record::decode_chunk(u64_of(&key[1..])?, &bytes)?;
            chunk.reverse();
            warm.extend(chunk);
        }
        for e in warm.into_iter().rev() {
            recent.insert(
                e.id,
                Stored {
                    stream: e.stream,
                    revision: e.revision,
                    position: e.position,
                },
            );
        }
        let writer = Writer {
            inner: inner.clone(),
            wal,
            heads: HashMap::new(),
            recent,
            next_sequence: last + 1,
            synced_blobs,
            failed: None,
        };
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("callvault-log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(io("starting the log writer thread"))?;
        Ok(Self {
            inner,
            writer: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The folder this store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| f(&inner)))
            .await
            .map_err(|e| StoreError::Unavailable(format!("a log reader stopped: {e}")))?
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // Closing the channel makes the writer checkpoint and stop.
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        if let Ok(mut t) = self.thread.lock()
            && let Some(t) = t.take()
        {
            let _ = t.join();
        }
    }
}

#[async_trait]
impl EventStore for SledStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            stream: stream.clone(),
            expected,
            events,
            import: None,
            reply,
        };
        self.submit(vec![request])?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the log writer stopped mid-append".into()))?
    }

    async fn import(&self, events: Vec<RecordedEvent>) -> Result<(), StoreError> {
        // One request per run of a stream, all handed to the writer at once
        // and in order: it commits them in that order, in one group commit.
        let mut answers = Vec::new();
        let mut requests = Vec::new();
        for (stream, run) in stream_runs(events) {
            let (reply, answer) = oneshot::channel();
            requests.push(Request {
                stream,
                expected: ExpectedRevision::Any,
                events: Vec::new(),
                import: Some(run),
                reply,
            });
            answers.push(answer);
        }
        self.submit(requests)?;
        for answer in answers {
            answer.await.map_err(|_| {
                StoreError::Unavailable("the log writer stopped mid-import".into())
            })??;
        }
        Ok(())
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: StreamFrom,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // A read of a few events — say, a cache asking whether anything
        // came after the revision it holds — answers on the calling thread:
        // a head lookup and a few reads from sled's cache cost less than
        // the hop to a blocking thread and back (BENCHMARKS.md, "Read
        // models").
        let few = max <= INLINE_READ
            || match (direction, from) {
                (Direction::Forwards, StreamFrom::Revision(r)) => self
                    .inner
                    .load_head(stream)?
                    .is_none_or(|h| h.last.0.saturating_sub(r.0) < INLINE_READ as u64),
                _ => false,
            };
        if few {
            return self
                .inner
                .read_stream_blocking(stream, from, direction, max);
        }
        let stream = stream.clone();
        self.blocking(move |inner| inner.read_stream_blocking(&stream, from, direction, max))
            .await
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.blocking(move |inner| inner.read_all_blocking(after, max))
            .await
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

/// A test-only back door that alters a closed store's files the way an
/// attacker with disk access could, so `verify` can be shown to catch it.
/// Compiled only with the `tamper` feature; never in the product.
#[cfg(feature = "tamper")]
pub mod tamper {
    use super::*;

    /// Every chunk of the log: (first position, its events).
    type Chunks = Vec<(u64, Vec<RecordedEvent>)>;

    fn rewrite(dir: &Path, change: impl FnOnce(&mut Chunks)) -> Result<(), StoreError> {
        // Let the store replay its write-ahead log and checkpoint first, so
        // what we alter is what it will read.
        drop(SledStore::open(dir)?);
        let db = open_sled(dir)?;
        let mut chunks = Chunks::new();
        for entry in db.range(position_key(0).to_vec()..vec![EVENT + 1]) {
            let (key, bytes) = entry.map_err(|e| sled_error("reading", dir, e))?;
            let first = u64_of(&key[1..])?;
            chunks.push((first, record::decode_chunk(first, &bytes)?));
        }
        change(&mut chunks);
        for (first, events) in &chunks {
            db.insert(position_key(*first), record::encode_chunk(events))
                .map_err(|e| sled_error("writing", dir, e))?;
        }
        db.flush().map_err(|e| sled_error("flushing", dir, e))?;
        Ok(())
    }

    fn find(chunks: &mut Chunks, position: u64) -> (usize, usize) {
        for (c, (_, events)) in chunks.iter().enumerate() {
            if let Some(i) = events.iter().position(|e| e.position.commit == position) {
                return (c, i);
            }
        }
        panic!("no event at position {position}");
    }

    /// Replaces the stored payload of the event at `position`.
    pub fn rewrite_payload(dir: &Path, position: u64, payload: Vec<u8>) -> Result<(), StoreError> {
        rewrite(dir, |chunks| {
            let (c, i) = find(chunks, position);
            chunks[c].1[i].payload = payload;
        })
    }

    /// Removes the event at `position` (it must not be the log's last).
    pub fn drop_event(dir: &Path, position: u64) -> Result<(), StoreError> {
        rewrite(dir, |chunks| {
            let (c, i) = find(chunks, position);
            chunks[c].1.remove(i);
        })
    }

    /// Exchanges the events stored at two positions.
    pub fn swap_events(dir: &Path, a: u64, b: u64) -> Result<(), StoreError> {
        rewrite(dir, |chunks| {
            let (ca, ia) = find(chunks, a);
            let (cb, ib) = find(chunks, b);
            let first = chunks[ca].1[ia].clone();
            let second = chunks[cb].1[ib].clone();
            chunks[ca].1[ia] = second;
            chunks[cb].1[ib] = first;
        })
    }
}
