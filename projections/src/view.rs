//! Where a read model lives: one sled database per projection *build*, in
//! its own folder, so a rebuild writes fresh storage beside the old one and
//! dropping the old build deletes its files — residues of purged personal
//! data don't linger in reused sled pages.
//!
//! A build is one sled tree of prefixed keys. Its checkpoint (the last log
//! position folded in) lives in the same tree and is written in the same
//! journal record as the changes, so a crash never applies an event twice
//! or skips one. Writes go through a [`Tx`]: reads see the transaction's
//! own earlier writes, and `commit` writes them all at once.
//!
//! A commit reaches sled through the build's redo journal (`wal` in its
//! folder, the event log's write-ahead log format): the commit's changes
//! are appended to the journal, then applied with plain inserts, rows
//! before their index entries, checkpoint last. Not as one sled batch:
//! sled 0.34 takes one lock global to the process for every `apply_batch`
//! and seals its log buffer twice per batch, so a batch of any build made
//! the event log's writer and every query of every build wait
//! (BENCHMARKS.md, "Read models"). Plain inserts of several builds run side
//! by side and take no lock.
//!
//! After a crash, the journal finishes what a commit began: at open its
//! records are applied again — each sets values, never adds to them, so a
//! second time changes nothing — and the build is back at the checkpoint of
//! its last commit. The journal is emptied once sled's files are
//! `fdatasync`ed (every [`JOURNAL_LIMIT`] bytes, at a switch and at a clean
//! stop).
//!
//! The journal is not `fdatasync`ed per commit: a killed process's writes
//! stay in the kernel, so they are there at the next open. Only a power
//! loss (or a reboot) can lose a journal record whose inserts sled already
//! wrote out, and that is told apart by the boot: before the first record
//! after an emptying, a `DIRTY` note naming this boot is written and synced.
//! A build that opens dirty from another boot (or where the boot is not
//! known) may be inconsistent and is emptied, so its model folds the log
//! again from the start; it is a read model, the log is the record.

use std::{
    any::Any,
    collections::{BTreeMap, HashMap, HashSet},
    fs::File,
    num::NonZeroUsize,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering, fence},
    },
};

use callvault_store::{
    Position,
    wal::{Ops, Wal, sync_sled_files},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::projection::ProjectionError;

const CHECKPOINT: &[u8] = b"\x00checkpoint";
const META: &[u8] = b"\x00meta";
/// sled's page cache per build unless its model asks for more
/// ([`crate::Projection::cache_bytes`]); read models are small and numerous.
pub const DEFAULT_CACHE_BYTES: u64 = 256 * 1024 * 1024;
/// Rows a build keeps decoded for readers ([`ViewDb::get_row`]), at most.
/// A typical `calls` row (a recording, no holds) takes about 0.7 KB
/// decoded with its key, so ~45 MB for the one model that asks — more if
/// its rows carry many recordings or holds; nothing is set aside before
/// the first row.
const REMEMBERED_ROWS: usize = 65_536;
/// Once a build's redo journal holds this much, sled's files are made
/// durable and the journal emptied.
const JOURNAL_LIMIT: u64 = 64 * 1024 * 1024;
/// The note in a build's folder that its journal may hold records sled's
/// files depend on; it names the boot that wrote them.
const DIRTY: &str = "DIRTY";
/// A journal value's first byte: the key is set to the rest, or removed.
const SET: u8 = 1;
const REMOVE: u8 = 0;

/// What a build says about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuildMeta {
    pub name: String,
    pub version: u32,
    /// Anything else the projection's output depends on (e.g. the
    /// retention policy version); a change forces a rebuild.
    pub config: String,
}

/// One build of one read model.
pub struct ViewDb {
    dir: PathBuf,
    // Fields drop in order: the database closes before `cleanup` removes
    // its folder.
    db: sled::Db,
    meta: BuildMeta,
    journal: Mutex<Journal>,
    /// Odd while a commit's writes are being applied (see
    /// [`ViewDb::consistent`]).
    generation: AtomicU64,
    /// Held by a commit while it applies its writes, and shared by a
    /// reader that could not read between commits otherwise.
    applying: RwLock<()>,
    /// Rows readers decoded lately ([`ViewDb::get_row`]).
    remembered: Remembered,
    /// Emptied at open (written when the machine stopped): it must be
    /// built again before it answers as current.
    emptied: bool,
    cleanup: Cleanup,
}

/// A build's redo journal, and what it takes to make sled's side durable
/// so the journal can be emptied.
struct Journal {
    dir: PathBuf,
    wal: Wal,
    data_file: File,
    synced_blobs: HashSet<PathBuf>,
    /// The `DIRTY` note is on disk.
    dirty: bool,
    /// A commit failed after its record was written: sled may hold part
    /// of it, so only a replay at the next open may empty the journal.
    broken: bool,
}

/// This boot of the machine, from the kernel (`None` where it does not
/// say: every unclean open is then taken for a power loss).
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn io_err(context: &str, dir: &Path) -> impl FnOnce(std::io::Error) -> ProjectionError {
    let context = format!("{context} in {}", dir.display());
    move |e| storage_err(&context)(e)
}

fn sync_dir(dir: &Path) -> Result<(), ProjectionError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing the folder", dir))
}

/// Replaces `dir/name` with `contents`, whole or not at all, durably:
/// written to a temporary file, synced, renamed, the folder synced.
pub(crate) fn replace_file_synced(
    dir: &Path,
    name: &str,
    contents: &[u8],
) -> Result<(), ProjectionError> {
    let temp = dir.join(format!("{name}.tmp"));
    std::fs::write(&temp, contents)
        .and_then(|()| File::open(&temp)?.sync_all())
        .and_then(|()| std::fs::rename(&temp, dir.join(name)))
        .map_err(io_err(&format!("writing {name}"), dir))?;
    sync_dir(dir)
}

impl Journal {
    fn open(dir: &Path) -> Result<(Self, Vec<Ops>), ProjectionError> {
        let (wal, pending) =
            Wal::open(dir).map_err(storage_err("opening a read model's journal"))?;
        let data_file =
            File::open(dir.join("db")).map_err(io_err("opening db for fdatasync", dir))?;
        Ok((
            Self {
                dir: dir.to_owned(),
                wal,
                data_file,
                synced_blobs: HashSet::new(),
                dirty: dir.join(DIRTY).exists(),
                broken: false,
            },
            pending,
        ))
    }

    /// Appends a commit's record, noting the build as dirty first.
    fn append(&mut self, ops: &Ops) -> Result<(), ProjectionError> {
        if self.broken {
            return Err(ProjectionError::Storage(
                "an earlier write to this read model failed halfway; restart the service to repair it"
                    .into(),
            ));
        }
        if !self.dirty {
            // Whole or not at all: a note cut short would read as another
            // boot's.
            replace_file_synced(&self.dir, DIRTY, boot_id().unwrap_or_default().as_bytes())?;
            self.dirty = true;
        }
        self.wal
            .append_unsynced(ops)
            .map_err(storage_err("writing a read model's journal"))
    }

    /// Makes everything applied to `db` durable, then empties the journal
    /// and removes the `DIRTY` note.
    fn settle(&mut self, db: &sled::Db) -> Result<(), ProjectionError> {
        if !self.dirty && self.wal.is_empty() {
            return Ok(());
        }
        if self.broken {
            return Err(ProjectionError::Storage(
                "a read model's write failed halfway; its journal is kept for the next start"
                    .into(),
            ));
        }
        db.flush().map_err(storage_err("flushing a read model"))?;
        sync_sled_files(&self.dir, &self.data_file, &mut self.synced_blobs)
            .map_err(storage_err("syncing a read model"))?;
        self.wal
            .reset()
            .map_err(storage_err("emptying a read model's journal"))?;
        match std::fs::remove_file(self.dir.join(DIRTY)) {
            Ok(()) => {
                self.dirty = false;
                sync_dir(&self.dir)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.dirty = false,
            Err(e) => return Err(io_err("removing the DIRTY note", &self.dir)(e)),
        }
        Ok(())
    }
}

/// Applies one journal record (or a commit about to be journaled) to sled
/// with plain inserts, in order.
fn apply_ops(db: &sled::Db, ops: &[(Vec<u8>, Vec<u8>)]) -> Result<(), ProjectionError> {
    for (key, value) in ops {
        match value.split_first() {
            Some((&SET, v)) => db
                .insert(key.as_slice(), v)
                .map(drop)
                .map_err(storage_err("writing a read model"))?,
            Some((&REMOVE, [])) => db
                .remove(key.as_slice())
                .map(drop)
                .map_err(storage_err("writing a read model"))?,
            _ => {
                return Err(ProjectionError::Storage(
                    "a read model's journal holds a record of an unknown kind".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Deletes a retired build's folder when the build is dropped.
struct Cleanup {
    dir: PathBuf,
    /// Set when a newer build took over: the folder is deleted once the
    /// last user lets go.
    retired: AtomicBool,
}

/// A build let go of without a clean stop (a CLI command, a shutdown that
/// ran out of time) is settled here, so no `DIRTY` note outlives the
/// process to be taken for a power loss after a reboot. Not a retired
/// build (its folder goes), nor one whose write failed halfway (its
/// journal must be replayed).
impl Drop for ViewDb {
    fn drop(&mut self) {
        if self.is_retired() {
            return;
        }
        if let Ok(mut journal) = self.journal.lock()
            && !journal.broken
            && let Err(e) = journal.settle(&self.db)
        {
            tracing::warn!(folder = %self.dir.display(), error = %e, "could not settle a read model's journal on close");
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.retired.load(Ordering::SeqCst)
            && let Err(e) = std::fs::remove_dir_all(&self.dir)
        {
            tracing::warn!(folder = %self.dir.display(), error = %e, "could not delete a replaced read model");
        }
    }
}

fn storage_err<E: std::fmt::Display>(context: &str) -> impl FnOnce(E) -> ProjectionError + '_ {
    move |e| ProjectionError::Storage(format!("{context}: {e}"))
}

/// Opens a build's sled database. A build belongs to this process alone
/// (the event log's lock keeps a second process out of the data folder),
/// so sled refusing its file lock means the previous holder in this
/// process — a runner that was just stopped, whose last sled I/O thread
/// still holds the file — is about to let go: wait for it, briefly. (Seen
/// once as a failed reopen right after `shutdown` in a test; not
/// reproduced in 30 further runs.)
fn open_sled(dir: &Path, cache: u64) -> Result<sled::Db, ProjectionError> {
    callvault_store::sled_store::open_when_released(
        || sled::Config::new().path(dir).cache_capacity(cache).open(),
        || true,
    )
    .map_err(storage_err("opening a read model"))
}

/// Whether `dir` holds a `DIRTY` note left by another boot than this one
/// (or this boot is not known).
fn dirty_from_another_boot(dir: &Path) -> bool {
    match std::fs::read_to_string(dir.join(DIRTY)) {
        Ok(noted) => boot_id().is_none_or(|now| noted.trim() != now),
        Err(_) => false,
    }
}

/// Removes everything in a build's folder, the `DIRTY` note last: a crash
/// halfway leaves a folder that is emptied again at the next open.
fn empty_folder(dir: &Path) -> Result<(), ProjectionError> {
    let entries = std::fs::read_dir(dir).map_err(io_err("emptying a read model", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err("emptying a read model", dir))?;
        let path = entry.path();
        if entry.file_name() == DIRTY {
            continue;
        }
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(io_err("emptying a read model", dir))?;
    }
    sync_dir(dir)?;
    match std::fs::remove_file(dir.join(DIRTY)) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("emptying a read model", dir)(e)),
    }
}

/// Opens a build's sled database and finishes (or, after a power loss,
/// discards) what its journal says was being written; says whether the
/// build was emptied.
fn open_journaled(dir: &Path, cache: u64) -> Result<(sled::Db, Journal, bool), ProjectionError> {
    // Before sled is opened: after a power loss its files may not open.
    if dirty_from_another_boot(dir) {
        tracing::warn!(
            folder = %dir.display(),
            "a read model was being written when the machine stopped (power loss or reboot); \
             it may be inconsistent, so it is emptied and built again from the log"
        );
        empty_folder(dir)?;
        let db = open_sled(dir, cache)?;
        let (journal, _) = Journal::open(dir)?;
        return Ok((db, journal, true));
    }
    let db = open_sled(dir, cache)?;
    let (mut journal, pending) = Journal::open(dir)?;
    if !pending.is_empty() {
        tracing::info!(
            folder = %dir.display(),
            commits = pending.len(),
            "replaying a read model's journal after an interrupted write"
        );
        for ops in &pending {
            apply_ops(&db, ops)?;
        }
    }
    journal.settle(&db)?;
    Ok((db, journal, false))
}

impl ViewDb {
    /// Opens a build in `dir` as it was made (its stored meta), or creates
    /// it with `meta` if it is new; `cache` is sled's page cache in bytes.
    pub fn open_existing(dir: &Path, meta: BuildMeta, cache: u64) -> Result<Self, ProjectionError> {
        Self::open_inner(dir, meta, cache, false)
    }

    /// Opens (or creates) a build in `dir`, which must be of `meta`.
    pub fn open(dir: &Path, meta: BuildMeta, cache: u64) -> Result<Self, ProjectionError> {
        Self::open_inner(dir, meta, cache, true)
    }

    fn open_inner(
        dir: &Path,
        meta: BuildMeta,
        cache: u64,
        strict: bool,
    ) -> Result<Self, ProjectionError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ProjectionError::Storage(format!("creating {}: {e}", dir.display())))?;
        let (db, journal, emptied) = open_journaled(dir, cache)?;
        let meta = match db
            .get(META)
            .map_err(storage_err("reading a read model's meta"))?
        {
            Some(bytes) => {
                let stored: BuildMeta = serde_json::from_slice(&bytes)
                    .map_err(|e| ProjectionError::Storage(format!("read model meta: {e}")))?;
                if strict && stored != meta {
                    return Err(ProjectionError::Storage(format!(
                        "{} holds {stored:?}, not {meta:?}",
                        dir.display()
                    )));
                }
                stored
            }
            None => {
                let bytes = serde_json::to_vec(&meta).unwrap_or_default();
                db.insert(META, bytes)
                    .map_err(storage_err("writing a read model's meta"))?;
                meta
            }
        };
        Ok(Self {
            dir: dir.to_owned(),
            db,
            meta,
            journal: Mutex::new(journal),
            generation: AtomicU64::new(0),
            applying: RwLock::new(()),
            remembered: Remembered::default(),
            emptied,
            cleanup: Cleanup {
                dir: dir.to_owned(),
                retired: AtomicBool::new(false),
            },
        })
    }

    pub fn meta(&self) -> &BuildMeta {
        &self.meta
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last log position folded into this build.
    pub fn checkpoint(&self) -> Result<Option<Position>, ProjectionError> {
        match self
            .db
            .get(CHECKPOINT)
            .map_err(storage_err("reading a checkpoint"))?
        {
            Some(b) => {
                let arr: [u8; 16] = b
                    .as_ref()
                    .try_into()
                    .map_err(|_| ProjectionError::Storage("checkpoint is not 16 bytes".into()))?;
                Ok(Some(Position::from_be_bytes(arr)))
            }
            None => Ok(None),
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ProjectionError> {
        Ok(self
            .db
            .get(key)
            .map_err(storage_err("reading a read model"))?
            .map(|v| v.to_vec()))
    }

    pub fn get_json<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, ProjectionError> {
        // Decoded from sled's buffer, not a copy of it.
        self.db
            .get(key)
            .map_err(storage_err("reading a read model"))?
            .map(|b| decode_row(&b))
            .transpose()
    }

    /// A row by key, decoded — kept decoded after the first read, so the
    /// rows a page of search results shows cost a clone when read again.
    ///
    /// Never stale: a commit forgets the keys it writes just before it
    /// applies them (its generation odd), and a row read from sled is
    /// kept only if no commit began or ended while it was read — checked
    /// under the memory's lock, which the commit's forgetting also takes.
    /// Rows of one type per key; absent keys are not remembered.
    pub fn get_row<T>(&self, key: &[u8]) -> Result<Option<T>, ProjectionError>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.get_row_if(key, |_| true)
    }

    /// As [`ViewDb::get_row`], but a row read from storage is kept only
    /// if `worth_keeping` says so: a search keeps the rows it shows, not
    /// every row its filters pass over.
    pub fn get_row_if<T>(
        &self,
        key: &[u8],
        worth_keeping: impl FnOnce(&T) -> bool,
    ) -> Result<Option<T>, ProjectionError>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        if let Some(row) = self.remembered.recall(key) {
            return Ok(Some(row));
        }
        let before = self.generation.load(Ordering::SeqCst);
        let row: Option<T> = self.get_json(key)?;
        if let Some(row) = &row
            && before.is_multiple_of(2)
            && worth_keeping(row)
        {
            // sled's reads are atomic loads; none may be ordered after
            // the second look at the generation.
            fence(Ordering::Acquire);
            self.remembered.keep(key, row, || {
                self.generation.load(Ordering::SeqCst) == before
            });
        }
        Ok(row)
    }

    /// Entries under `prefix` in key order (or reverse), starting at or
    /// after (before, in reverse) `from` when given.
    pub fn scan<'a>(
        &'a self,
        prefix: &[u8],
        from: Option<&[u8]>,
        reverse: bool,
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), ProjectionError>> + use<'a> {
        let mut end = prefix.to_vec();
        let upper = loop {
            match end.pop() {
                Some(0xff) => continue,
                Some(b) => {
                    end.push(b + 1);
                    break Some(end);
                }
                None => break None,
            }
        };
        let lower = prefix.to_vec();
        let iter: Box<dyn DoubleEndedIterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
            match (reverse, from, upper) {
                (false, Some(f), Some(u)) => Box::new(self.db.range(f.to_vec()..u)),
                (false, Some(f), None) => Box::new(self.db.range(f.to_vec()..)),
                (false, None, Some(u)) => Box::new(self.db.range(lower..u)),
                (false, None, None) => Box::new(self.db.range(lower..)),
                (true, Some(f), _) => Box::new(self.db.range(lower..=f.to_vec()).rev()),
                (true, None, Some(u)) => Box::new(self.db.range(lower..u).rev()),
                (true, None, None) => Box::new(self.db.range(lower..).rev()),
            };
        iter.map(|r| {
            r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(|e| ProjectionError::Storage(format!("scanning a read model: {e}")))
        })
    }

    /// Runs `read` on the build as it is between commits, never on a
    /// commit half applied (a commit's writes are plain inserts that
    /// readers would otherwise see one by one: a corrected call counted on
    /// both its days, an index entry whose row has not changed yet).
    ///
    /// Optimistic first, like a sequence lock: `read` runs, and runs again
    /// if a commit began or ended meanwhile; a reader that meets a commit
    /// under way, or was overtaken twice, waits for the commit and reads
    /// while the next one waits for it. Queries of a live build (small
    /// commits) almost never wait; during a large catch-up commit they
    /// wait for it to be applied. `read` may run more than once.
    pub fn consistent<T, E>(&self, mut read: impl FnMut(&Self) -> Result<T, E>) -> Result<T, E> {
        for _ in 0..2 {
            if let Some(out) = self.try_consistent(&mut read) {
                return out;
            }
        }
        let _between_commits = self.applying.read().unwrap_or_else(PoisonError::into_inner);
        read(self)
    }

    /// [`ViewDb::consistent`]'s first, optimistic attempt alone: `read`'s
    /// answer if no commit was under way, began or ended while it ran;
    /// `None` otherwise. Never waits (for a caller that must not block).
    pub fn try_consistent<T, E>(
        &self,
        read: impl FnOnce(&Self) -> Result<T, E>,
    ) -> Option<Result<T, E>> {
        let before = self.generation.load(Ordering::SeqCst);
        if !before.is_multiple_of(2) {
            return None;
        }
        let out = read(self);
        // sled's reads are atomic loads; none may be ordered after the
        // second look at the generation.
        fence(Ordering::Acquire);
        (self.generation.load(Ordering::SeqCst) == before).then_some(out)
    }

    /// Starts a transaction.
    pub fn tx(&self) -> Tx<'_> {
        Tx {
            db: self,
            writes: BTreeMap::new(),
            rows: HashMap::new(),
        }
    }

    /// Every key and value (for digests in tests and `projections verify`).
    pub fn digest(&self) -> Result<String, ProjectionError> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for entry in self.db.iter() {
            let (k, v) = entry.map_err(storage_err("digesting a read model"))?;
            // The content, not where the build happens to have written
            // its last checkpoint.
            if k.as_ref() == META || k.as_ref() == CHECKPOINT {
                continue;
            }
            h.update((k.len() as u64).to_be_bytes());
            h.update(&k);
            h.update((v.len() as u64).to_be_bytes());
            h.update(&v);
        }
        Ok(hex::encode(h.finalize()))
    }

    /// How many entries the build holds.
    pub fn len(&self) -> usize {
        self.db.len()
    }

    pub fn is_empty(&self) -> bool {
        self.db.is_empty()
    }

    /// Marks the build as replaced: its folder goes when the last user
    /// drops it.
    pub fn retire(&self) {
        self.cleanup.retired.store(true, Ordering::SeqCst);
    }

    /// Whether the build was emptied at open because it was being written
    /// when the machine stopped (see the module's note).
    pub fn was_emptied(&self) -> bool {
        self.emptied
    }

    pub fn is_retired(&self) -> bool {
        self.cleanup.retired.load(Ordering::SeqCst)
    }

    /// Flushes the build and, if its journal holds anything, makes it
    /// durable and empties the journal.
    pub fn flush(&self) -> Result<(), ProjectionError> {
        let mut journal = self.journal.lock().map_err(|_| poisoned())?;
        journal.settle(&self.db)?;
        self.db
            .flush()
            .map_err(storage_err("flushing a read model"))?;
        Ok(())
    }
}

/// A read model's row kept decoded for the length of a transaction: read
/// from storage at most once, changed in place by any number of events,
/// and written (as JSON) once, at commit, together with its index entries.
pub trait Row: Serialize + DeserializeOwned + Send + 'static {
    /// Keys (stored with empty values) that exist exactly while this row
    /// is stored as it is now: its secondary index entries. `key` is the
    /// row's own key. At commit the entries of the row as it was stored
    /// are replaced by the entries of the row as it is.
    fn index_keys(&self, key: &[u8]) -> Vec<Vec<u8>> {
        let _ = key;
        Vec::new()
    }
}

/// A decoded row behind a type-erased box (a transaction holds rows of
/// several types).
trait ErasedRow: Send {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn encode(&self) -> Vec<u8>;
    fn index_keys(&self, key: &[u8]) -> Vec<Vec<u8>>;
}

impl<T: Row> ErasedRow for T {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn encode(&self) -> Vec<u8> {
        // Rows are plain data; serialising them to JSON does not fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn index_keys(&self, key: &[u8]) -> Vec<Vec<u8>> {
        Row::index_keys(self, key)
    }
}

struct CachedRow {
    row: Box<dyn ErasedRow>,
    /// The index entries of the row as stored (empty for a new row).
    stored_index: Vec<Vec<u8>>,
}

pub(crate) fn decode_row<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ProjectionError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ProjectionError::Storage(format!("a read model row: {e}")))
}

/// Changes to one build, committed atomically with a checkpoint.
///
/// Two kinds of writes: raw keys ([`Tx::put`], [`Tx::delete`]) and typed
/// rows ([`Tx::row_mut`], [`Tx::insert_row`]), which stay decoded until
/// commit. A key is managed one way or the other, never both.
pub struct Tx<'a> {
    db: &'a ViewDb,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    rows: HashMap<Vec<u8>, CachedRow>,
}

impl Tx<'_> {
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ProjectionError> {
        if let Some(cached) = self.rows.get(key) {
            return Ok(Some(cached.row.encode()));
        }
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.db.get(key),
        }
    }

    pub fn get_json<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, ProjectionError> {
        self.get(key)?.map(|b| decode_row(&b)).transpose()
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.rows.remove(&key);
        self.writes.insert(key, Some(value));
    }

    pub fn put_json<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        self.put(key, serde_json::to_vec(value).unwrap_or_default());
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.rows.remove(&key);
        self.writes.insert(key, None);
    }

    /// The typed row at `key`, loaded once per transaction and written
    /// back (with its index entries) at commit; `None` if there is none.
    pub fn row_mut<T: Row>(&mut self, key: &[u8]) -> Result<Option<&mut T>, ProjectionError> {
        if !self.rows.contains_key(key) {
            let bytes = match self.writes.get(key) {
                Some(v) => v.clone(),
                None => self.db.get(key)?,
            };
            let Some(bytes) = bytes else {
                return Ok(None);
            };
            let row: T = decode_row(&bytes)?;
            let stored_index = row.index_keys(key);
            self.writes.remove(key);
            self.rows.insert(
                key.to_vec(),
                CachedRow {
                    row: Box::new(row),
                    stored_index,
                },
            );
        }
        let cached = self
            .rows
            .get_mut(key)
            .ok_or_else(|| ProjectionError::Storage("a cached row went missing".into()))?;
        cached
            .row
            .as_any_mut()
            .downcast_mut::<T>()
            .map(Some)
            .ok_or_else(|| {
                ProjectionError::Storage(format!(
                    "a read model row was used as two types (key {})",
                    String::from_utf8_lossy(key)
                ))
            })
    }

    /// The typed row at `key`, created as `T::default()` if there is none.
    pub fn row_or_default<T: Row + Default>(
        &mut self,
        key: &[u8],
    ) -> Result<&mut T, ProjectionError> {
        if self.row_mut::<T>(key)?.is_none() {
            self.insert_row(key.to_vec(), T::default())?;
        }
        self.row_mut::<T>(key)?
            .ok_or_else(|| ProjectionError::Storage("a new row went missing".into()))
    }

    /// Stores `row` at `key`. A row is created by the event that begins
    /// what it describes (a call's start, a recording's storing), which
    /// happens once, so only a row this transaction already holds is
    /// looked for and replaced (index entries included); looking in
    /// storage for every new row would cost a read per insert.
    pub fn insert_row<T: Row>(&mut self, key: Vec<u8>, row: T) -> Result<(), ProjectionError> {
        let stored_index = match self.rows.remove(&key) {
            Some(cached) => cached.stored_index,
            None => match self.writes.remove(&key) {
                Some(Some(bytes)) => decode_row::<T>(&bytes)?.index_keys(&key),
                _ => Vec::new(),
            },
        };
        self.rows.insert(
            key,
            CachedRow {
                row: Box::new(row),
                stored_index,
            },
        );
        Ok(())
    }

    /// How many changes are waiting for commit.
    pub fn pending(&self) -> usize {
        self.writes.len() + self.rows.len()
    }

    /// Keys under `prefix`, as stored plus this transaction's own writes.
    pub fn scan_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, ProjectionError> {
        let mut keys: std::collections::BTreeSet<Vec<u8>> = std::collections::BTreeSet::new();
        for entry in self.db.scan(prefix, None, false) {
            keys.insert(entry?.0);
        }
        for (k, v) in self.writes.range(prefix.to_vec()..) {
            if !k.starts_with(prefix) {
                break;
            }
            match v {
                Some(_) => keys.insert(k.clone()),
                None => keys.remove(k),
            };
        }
        keys.extend(self.rows.keys().filter(|k| k.starts_with(prefix)).cloned());
        Ok(keys.into_iter().collect())
    }

    /// Writes everything and the new checkpoint through the build's
    /// journal (see the module's note): atomic across a crash. Readers
    /// through [`ViewDb::consistent`] see it whole or not at all; plain
    /// reads may see it half applied — rows before their index entries,
    /// the checkpoint last.
    pub fn commit(self, checkpoint: Position) -> Result<(), ProjectionError> {
        let view = self.db;
        let ops = self.journal_ops(checkpoint);
        let mut journal = view.journal.lock().map_err(|_| poisoned())?;
        journal.append(&ops)?;
        let applied = {
            // Readers see the commit whole or not at all (`consistent`).
            let _applying = view
                .applying
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let _odd = Applying::begin(&view.generation);
            // Before the writes: a reader that found a new value in sled
            // must not find the old one kept decoded on its next read.
            view.remembered.forget(ops.iter().map(|(key, _)| key));
            apply_ops(&view.db, &ops)
        };
        if let Err(e) = applied {
            journal.broken = true;
            return Err(e);
        }
        if journal.wal.len() >= JOURNAL_LIMIT {
            journal.settle(&view.db)?;
        }
        Ok(())
    }

    /// The transaction's changes as a journal record, typed rows written
    /// back with their index entries: rows first, then other values, then
    /// removals, each in key order (neighbouring keys share sled's tree
    /// nodes), the checkpoint last — the order plain inserts make them
    /// visible in, so a reader finding a new index entry finds its row.
    fn journal_ops(self, checkpoint: Position) -> Ops {
        fn tagged(tag: u8, value: &[u8]) -> Vec<u8> {
            let mut out = Vec::with_capacity(value.len() + 1);
            out.push(tag);
            out.extend_from_slice(value);
            out
        }
        let Tx {
            mut writes, rows, ..
        } = self;
        let mut ops: Ops = Vec::with_capacity(writes.len() + rows.len() * 4 + 1);
        for (key, cached) in rows {
            let index = cached.row.index_keys(&key);
            for old in cached.stored_index.iter().filter(|k| !index.contains(k)) {
                writes.insert(old.clone(), None);
            }
            for new in index
                .into_iter()
                .filter(|k| !cached.stored_index.contains(k))
            {
                writes.insert(new, Some(Vec::new()));
            }
            ops.push((key, tagged(SET, &cached.row.encode())));
        }
        ops.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let (sets, removals): (Vec<_>, Vec<_>) = writes.into_iter().partition(|(_, v)| v.is_some());
        for (key, value) in sets.into_iter().chain(removals) {
            let value = match value {
                Some(v) => tagged(SET, &v),
                None => vec![REMOVE],
            };
            ops.push((key, value));
        }
        ops.push((CHECKPOINT.to_vec(), tagged(SET, &checkpoint.to_be_bytes())));
        ops
    }
}

/// Decoded rows by key, least recently read dropped first; allocated at
/// the first row kept.
#[derive(Default)]
struct Remembered {
    rows: Mutex<Option<RowsByKey>>,
}

type RowsByKey = lru::LruCache<Vec<u8>, Arc<dyn Any + Send + Sync>>;

impl Remembered {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<RowsByKey>> {
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn recall<T: Clone + 'static>(&self, key: &[u8]) -> Option<T> {
        let row = self.lock().as_mut()?.get(key)?.clone();
        row.downcast_ref::<T>().cloned()
    }

    /// Keeps `row` under `key` if `still_current()` says, under the lock,
    /// that no commit overlapped its read.
    fn keep<T: Clone + Send + Sync + 'static>(
        &self,
        key: &[u8],
        row: &T,
        still_current: impl FnOnce() -> bool,
    ) {
        let mut rows = self.lock();
        if still_current() {
            let capacity = NonZeroUsize::new(REMEMBERED_ROWS).unwrap_or(NonZeroUsize::MIN);
            rows.get_or_insert_with(|| lru::LruCache::new(capacity))
                .put(key.to_vec(), Arc::new(row.clone()));
        }
    }

    fn forget<'k>(&self, keys: impl Iterator<Item = &'k Vec<u8>>) {
        if let Some(rows) = self.lock().as_mut().filter(|rows| !rows.is_empty()) {
            for key in keys {
                rows.pop(key.as_slice());
            }
        }
    }
}

/// A commit's writes under way: the generation is odd from `begin` until
/// this is dropped — also when applying them panics, so readers are not
/// left waiting on a commit that will never end.
struct Applying<'a>(&'a AtomicU64);

impl<'a> Applying<'a> {
    fn begin(generation: &'a AtomicU64) -> Self {
        generation.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::Release);
        Self(generation)
    }
}

impl Drop for Applying<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poisoned() -> ProjectionError {
    ProjectionError::Storage("a read model's journal lock was poisoned".into())
}

#[cfg(test)]
mod tests;
