//! The embedded backend: the event log in a sled database.
//!
//! Layout: one sled tree with prefixed keys, so one `apply_batch` writes an
//! append atomically —
//! `E`+position → record (see `record.rs`), `S`+stream+0x00+revision →
//! position, `H`+stream → last revision + last hash, `I`+event id →
//! position.
//!
//! Durability: sled 0.34's `flush()` only calls `sync_file_range`
//! (spacejam/sled#1452), so after every flush the writer also `fdatasync`s
//! sled's data file and any new blob file. Appends go through one writer
//! thread that drains every pending request, validates them in order,
//! applies one batch, flushes and syncs once (group commit), and only then
//! answers each request. Reads go straight to sled from blocking tasks.

use std::{
    collections::{HashMap, HashSet},
    fs::File,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, mpsc},
    thread::JoinHandle,
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
};

/// sled's segment size. Values larger than a quarter of a segment become
/// separate blob files; 8 MiB keeps every page of 64 KiB events inline.
const SEGMENT_SIZE: usize = 8 * 1024 * 1024;
/// Most append requests committed together.
const MAX_REQUESTS_PER_BATCH: usize = 4096;

const EVENT: u8 = b'E';
const STREAM: u8 = b'S';
const HEAD: u8 = b'H';
const ID: u8 = b'I';

struct Request {
    stream: StreamName,
    expected: ExpectedRevision,
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

struct Inner {
    dir: PathBuf,
    db: sled::Db,
    /// sled's data file, opened to `fdatasync` it.
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

fn position_key(p: Position) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = EVENT;
    k[1..].copy_from_slice(&p.commit.to_be_bytes());
    k
}

fn stream_prefix(stream: &StreamName) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.as_str().len() + 2);
    k.push(STREAM);
    k.extend_from_slice(stream.as_str().as_bytes());
    k.push(0);
    k
}

fn stream_key(stream: &StreamName, r: Revision) -> Vec<u8> {
    let mut k = stream_prefix(stream);
    k.extend_from_slice(&r.0.to_be_bytes());
    k
}

fn head_key(stream: &StreamName) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.as_str().len() + 1);
    k.push(HEAD);
    k.extend_from_slice(stream.as_str().as_bytes());
    k
}

fn id_key(id: &Uuid) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = ID;
    k[1..].copy_from_slice(id.as_bytes());
    k
}

fn u64_of(bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("an index entry is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(arr))
}

impl Inner {
    fn sled(&self, context: &str) -> impl FnOnce(sled::Error) -> StoreError + '_ {
        let context = context.to_owned();
        move |e| sled_error(&context, &self.dir, e)
    }

    fn event_at(&self, seq: u64) -> Result<RecordedEvent, StoreError> {
        let p = Position::sequence(seq);
        let bytes = self
            .db
            .get(position_key(p))
            .map_err(self.sled("reading an event"))?
            .ok_or_else(|| StoreError::Corrupt(format!("index points at missing event {p}")))?;
        record::decode(p, &bytes)
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

    fn lookup_id(&self, id: &Uuid) -> Result<Option<Stored>, StoreError> {
        let Some(pos) = self
            .db
            .get(id_key(id))
            .map_err(self.sled("reading the event-id index"))?
        else {
            return Ok(None);
        };
        let e = self.event_at(u64_of(&pos)?)?;
        Ok(Some(Stored {
            stream: e.stream,
            revision: e.revision,
            position: e.position,
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
            Some((key, _)) => u64_of(&key[1..]),
            None => Ok(0),
        }
    }

    fn read_stream_blocking(
        &self,
        stream: &StreamName,
        from: StreamFrom,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let prefix = stream_prefix(stream);
        let mut end = prefix.clone();
        if let Some(last) = end.last_mut() {
            *last = 1; // just past every key of this stream
        }
        let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
            match (direction, from) {
                (Direction::Forwards, StreamFrom::Start) => {
                    Box::new(self.db.range(prefix.clone()..end))
                }
                (Direction::Forwards, StreamFrom::End) => Box::new(std::iter::empty()),
                (Direction::Forwards, StreamFrom::Revision(r)) => {
                    Box::new(self.db.range(stream_key(stream, r)..end))
                }
                (Direction::Backwards, StreamFrom::End) => {
                    Box::new(self.db.range(prefix.clone()..end).rev())
                }
                (Direction::Backwards, StreamFrom::Start) => Box::new(
                    self.db
                        .range(prefix.clone()..=stream_key(stream, Revision(0)))
                        .rev(),
                ),
                (Direction::Backwards, StreamFrom::Revision(r)) => {
                    Box::new(self.db.range(prefix.clone()..=stream_key(stream, r)).rev())
                }
            };
        let mut out = Vec::new();
        for entry in entries.take(max) {
            let (_, pos) = entry.map_err(self.sled("reading a stream"))?;
            out.push(self.event_at(u64_of(&pos)?)?);
        }
        Ok(out)
    }

    /// Makes everything applied so far durable: sled's flush, then a real
    /// `fdatasync` of its data file and of any blob file sled wrote.
    fn sync(&self, synced_blobs: &mut HashSet<PathBuf>) -> Result<(), StoreError> {
        self.db
            .flush()
            .map_err(self.sled("flushing the event log"))?;
        self.data_file
            .sync_data()
            .map_err(io("fdatasync of the event log's data file"))?;
        let blobs = self.dir.join("blobs");
        if let Ok(entries) = std::fs::read_dir(&blobs) {
            let mut new = false;
            let mut present = HashSet::new();
            for entry in entries.flatten() {
                let path = entry.path();
                if !synced_blobs.contains(&path) {
                    File::open(&path)
                        .and_then(|f| f.sync_data())
                        .map_err(io(format!("fdatasync of sled blob {}", path.display())))?;
                    new = true;
                }
                present.insert(path);
            }
            if new {
                File::open(&blobs)
                    .and_then(|d| d.sync_all())
                    .map_err(io("fsync of sled's blob folder"))?;
            }
            *synced_blobs = present;
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
        for entry in self
            .db
            .range(position_key(Position::sequence(start)).to_vec()..vec![EVENT + 1])
            .take(max)
        {
            let (key, bytes) = entry.map_err(self.sled("reading the log"))?;
            out.push(record::decode(
                Position::sequence(u64_of(&key[1..])?),
                &bytes,
            )?);
        }
        Ok(out)
    }
}

/// The writer thread's memory: stream heads it has seen and the next
/// position to assign.
struct WriterState {
    heads: HashMap<StreamName, Head>,
    next_sequence: u64,
    synced_blobs: HashSet<PathBuf>,
}

impl WriterState {
    fn head(&mut self, inner: &Inner, stream: &StreamName) -> Result<Option<Head>, StoreError> {
        if let Some(h) = self.heads.get(stream) {
            return Ok(Some(*h));
        }
        let h = inner.load_head(stream)?;
        if let Some(h) = h {
            self.heads.insert(stream.clone(), h);
        }
        Ok(h)
    }
}

fn writer_loop(inner: Arc<Inner>, rx: mpsc::Receiver<Request>, mut state: WriterState) {
    while let Ok(first) = rx.recv() {
        let mut requests = vec![first];
        while requests.len() < MAX_REQUESTS_PER_BATCH {
            match rx.try_recv() {
                Ok(r) => requests.push(r),
                Err(_) => break,
            }
        }
        commit_batch(&inner, &mut state, requests);
    }
}

fn commit_batch(inner: &Inner, state: &mut WriterState, requests: Vec<Request>) {
    let mut batch = sled::Batch::default();
    let mut new_heads: HashMap<StreamName, Head> = HashMap::new();
    let mut new_ids: HashMap<Uuid, Stored> = HashMap::new();
    let mut next = state.next_sequence;
    let mut outcomes = Vec::with_capacity(requests.len());
    let mut writes = 0usize;
    let now = Utc::now();

    for req in requests {
        let head = match new_heads.get(&req.stream) {
            Some(h) => Ok(Some(*h)),
            None => state.head(inner, &req.stream),
        };
        let planned = head.and_then(|head| {
            let lookup = |id: &Uuid| match new_ids.get(id) {
                Some(s) => Ok(Some(s.clone())),
                None => inner.lookup_id(id),
            };
            plan(
                &req.stream,
                req.expected,
                req.events,
                head,
                lookup,
                &mut next,
                now,
            )
        });
        let outcome = match planned {
            Err(e) => Err(e),
            Ok(Plan::Duplicate(result)) => Ok(result),
            Ok(Plan::Write(records)) => {
                for r in &records {
                    let pos = r.position.commit.to_be_bytes();
                    batch.insert(&position_key(r.position)[..], record::encode(r));
                    batch.insert(stream_key(&r.stream, r.revision), &pos[..]);
                    batch.insert(&id_key(&r.id)[..], &pos[..]);
                    new_ids.insert(
                        r.id,
                        Stored {
                            stream: r.stream.clone(),
                            revision: r.revision,
                            position: r.position,
                        },
                    );
                }
                writes += records.len();
                match records.last() {
                    Some(last) => {
                        let head = Head {
                            last: last.revision,
                            hash: last.metadata.hash,
                        };
                        let mut value = Vec::with_capacity(40);
                        value.extend_from_slice(&head.last.0.to_be_bytes());
                        value.extend_from_slice(&head.hash.0);
                        batch.insert(head_key(&req.stream), value);
                        new_heads.insert(req.stream.clone(), head);
                        Ok(AppendResult {
                            next_expected: last.revision,
                            position: last.position,
                        })
                    }
                    None => Err(StoreError::EmptyAppend),
                }
            }
        };
        outcomes.push((req.reply, outcome));
    }

    if writes > 0 {
        let committed = inner
            .db
            .apply_batch(batch)
            .map_err(inner.sled("writing a batch"))
            .and_then(|()| inner.sync(&mut state.synced_blobs));
        if let Err(e) = committed {
            tracing::error!(error = %e, "event log batch failed; nothing in it was acknowledged");
            // What reached sled is unknown: forget cached heads and re-read
            // the last position, so the next batch starts from the disk.
            state.heads.clear();
            state.next_sequence = inner.last_sequence().map_or(state.next_sequence, |s| s + 1);
            let message = e.to_string();
            for (reply, outcome) in outcomes {
                let _ = reply.send(outcome.and(Err(StoreError::Unavailable(format!(
                    "the write was not acknowledged: {message}"
                )))));
            }
            return;
        }
        state.heads.extend(new_heads);
        state.next_sequence = next;
        inner
            .head
            .send_replace(Some(Position::sequence(next.saturating_sub(1))));
    }
    for (reply, outcome) in outcomes {
        let _ = reply.send(outcome);
    }
}

impl SledStore {
    /// Opens (or creates) the event log in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let db = sled::Config::new()
            .path(&dir)
            .segment_size(SEGMENT_SIZE)
            .open()
            .map_err(|e| sled_error("opening the event log", &dir, e))?;
        let data_file = File::open(dir.join("db"))
            .map_err(io(format!("opening {}/db for fdatasync", dir.display())))?;
        // Make the files sled just created, and their names, durable.
        for name in ["conf", "db"] {
            if let Ok(f) = File::open(dir.join(name)) {
                f.sync_all().map_err(io(format!("fsync of {name}")))?;
            }
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("fsync of {}", dir.display())))?;

        let (head, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            dir,
            db,
            data_file,
            head,
        });
        let last = inner.last_sequence()?;
        inner
            .head
            .send_replace((last > 0).then(|| Position::sequence(last)));
        let state = WriterState {
            heads: HashMap::new(),
            next_sequence: last + 1,
            synced_blobs: HashSet::new(),
        };
        let (tx, rx) = mpsc::channel();
        let writer_inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name("callvault-log-writer".into())
            .spawn(move || writer_loop(writer_inner, rx, state))
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
        // Closing the channel ends the writer after its current batch.
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
            reply,
        };
        {
            let writer = self
                .writer
                .lock()
                .map_err(|_| StoreError::Unavailable("log writer lock poisoned".into()))?;
            writer
                .as_ref()
                .ok_or_else(|| StoreError::Unavailable("the event log is closed".into()))?
                .send(request)
                .map_err(|_| StoreError::Unavailable("the log writer has stopped".into()))?;
        }
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the log writer stopped mid-append".into()))?
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: StreamFrom,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
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
