//! Where a read model lives: one sled database per projection *build*, in
//! its own folder, so a rebuild writes fresh storage beside the old one and
//! dropping the old build deletes its files — residues of purged personal
//! data don't linger in reused sled pages.
//!
//! A build is one sled tree of prefixed keys. Its checkpoint (the last log
//! position folded in) lives in the same tree and is written in the same
//! atomic batch as the changes, so a crash never applies an event twice or
//! skips one. Writes go through a [`Tx`]: reads see the transaction's own
//! earlier writes, and `commit` turns it into one sled batch.
//!
//! Large commits (a catch-up or a rebuild folding hundreds of events at a
//! time) go another way, [`Tx::commit_journaled`]: the commit's changes are
//! first written to the build's redo journal (`wal` in its folder, the
//! event log's write-ahead log format) and `fdatasync`ed, then applied with
//! plain inserts, checkpoint last. sled 0.34 takes one lock global to the
//! process for every `apply_batch` (readers and writers of every database
//! wait for it), so batches of several builds never run side by side;
//! plain inserts do, and cost less each (BENCHMARKS.md, "Read models").
//! A crash mid-apply is repaired when the build is opened: the journal's
//! records are applied again — each sets values, never adds to them, so a
//! second time changes nothing — and the build is back at the checkpoint
//! of its last journaled commit. The journal is emptied once sled's files
//! are `fdatasync`ed, and always before a batch commit, so an older
//! journal record can never be replayed over a newer batch.

use std::{
    any::Any,
    collections::{BTreeMap, HashMap, HashSet},
    fs::File,
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
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
/// Once a build's redo journal holds this much, sled's files are made
/// durable and the journal emptied.
const JOURNAL_LIMIT: u64 = 64 * 1024 * 1024;
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
    cleanup: Cleanup,
}

/// A build's redo journal, and what it takes to make sled's side durable
/// so the journal can be emptied.
struct Journal {
    wal: Wal,
    data_file: File,
    synced_blobs: HashSet<PathBuf>,
}

impl Journal {
    fn open(dir: &Path) -> Result<(Self, Vec<Ops>), ProjectionError> {
        let (wal, pending) = Wal::open(dir).map_err(store_err("opening a read model's journal"))?;
        let data_file = File::open(dir.join("db")).map_err(|e| {
            ProjectionError::Storage(format!("opening {}/db for fdatasync: {e}", dir.display()))
        })?;
        Ok((
            Self {
                wal,
                data_file,
                synced_blobs: HashSet::new(),
            },
            pending,
        ))
    }

    /// Makes everything applied to `db` durable, then empties the journal.
    fn settle(&mut self, db: &sled::Db, dir: &Path) -> Result<(), ProjectionError> {
        if self.wal.is_empty() {
            return Ok(());
        }
        db.flush().map_err(sled_err("flushing a read model"))?;
        sync_sled_files(dir, &self.data_file, &mut self.synced_blobs)
            .map_err(store_err("syncing a read model"))?;
        self.wal
            .reset()
            .map_err(store_err("emptying a read model's journal"))
    }
}

fn store_err(context: &str) -> impl FnOnce(callvault_store::StoreError) -> ProjectionError + '_ {
    move |e| ProjectionError::Storage(format!("{context}: {e}"))
}

/// Applies one journal record (or a commit about to be journaled) to sled
/// with plain inserts, in order.
fn apply_ops(db: &sled::Db, ops: &[(Vec<u8>, Vec<u8>)]) -> Result<(), ProjectionError> {
    for (key, value) in ops {
        match value.split_first() {
            Some((&SET, v)) => db
                .insert(key.as_slice(), v)
                .map(drop)
                .map_err(sled_err("writing a read model"))?,
            Some((&REMOVE, [])) => db
                .remove(key.as_slice())
                .map(drop)
                .map_err(sled_err("writing a read model"))?,
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

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.retired.load(Ordering::SeqCst)
            && let Err(e) = std::fs::remove_dir_all(&self.dir)
        {
            tracing::warn!(folder = %self.dir.display(), error = %e, "could not delete a replaced read model");
        }
    }
}

fn sled_err(context: &str) -> impl FnOnce(sled::Error) -> ProjectionError + '_ {
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
    let mut tries = 0;
    loop {
        match sled::Config::new().path(dir).cache_capacity(cache).open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if tries < 40 && e.to_string().contains("could not acquire lock") =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(sled_err("opening a read model")(e)),
        }
    }
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
        // Also when nothing was pending: a crash may have left a torn
        // record that `Wal::open` cut off.
        journal.settle(&db, dir)?;
        let meta = match db
            .get(META)
            .map_err(sled_err("reading a read model's meta"))?
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
                    .map_err(sled_err("writing a read model's meta"))?;
                meta
            }
        };
        Ok(Self {
            dir: dir.to_owned(),
            db,
            meta,
            journal: Mutex::new(journal),
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
            .map_err(sled_err("reading a checkpoint"))?
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
            .map_err(sled_err("reading a read model"))?
            .map(|v| v.to_vec()))
    }

    pub fn get_json<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, ProjectionError> {
        self.get(key)?
            .map(|b| {
                serde_json::from_slice(&b)
                    .map_err(|e| ProjectionError::Storage(format!("a read model row: {e}")))
            })
            .transpose()
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
            let (k, v) = entry.map_err(sled_err("digesting a read model"))?;
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

    pub fn is_retired(&self) -> bool {
        self.cleanup.retired.load(Ordering::SeqCst)
    }

    /// Flushes the build and, if its journal holds anything, makes it
    /// durable and empties the journal.
    pub fn flush(&self) -> Result<(), ProjectionError> {
        let mut journal = self.journal.lock().map_err(|_| poisoned())?;
        journal.settle(&self.db, &self.dir)?;
        self.db.flush().map_err(sled_err("flushing a read model"))?;
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

    /// Every change the transaction makes, typed rows written back with
    /// their index entries: rows first, then other values, then removals
    /// (the order plain inserts make them visible in — a reader finding a
    /// new index entry finds its row).
    fn into_changes(self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let Tx {
            mut writes, rows, ..
        } = self;
        let mut out = Vec::with_capacity(writes.len() + rows.len() * 4);
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
            out.push((key, Some(cached.row.encode())));
        }
        let (sets, removals): (Vec<_>, Vec<_>) = writes.into_iter().partition(|(_, v)| v.is_some());
        out.extend(sets);
        out.extend(removals);
        out
    }

    /// Writes everything and the new checkpoint in one atomic batch.
    pub fn commit(self, checkpoint: Position) -> Result<(), ProjectionError> {
        let view = self.db;
        let mut batch = sled::Batch::default();
        for (k, v) in self.into_changes() {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        batch.insert(CHECKPOINT, &checkpoint.to_be_bytes()[..]);
        let mut journal = view.journal.lock().map_err(|_| poisoned())?;
        // A journal record replayed later must not undo this batch.
        journal.settle(&view.db, &view.dir)?;
        view.db
            .apply_batch(batch)
            .map_err(sled_err("committing a read model batch"))
    }

    /// Writes everything and the new checkpoint through the build's redo
    /// journal (see the module's note): as atomic as [`Tx::commit`] across
    /// a crash, without sled's process-wide batch lock, so several builds
    /// commit side by side. Readers may see a commit half applied, rows
    /// before their index entries; for the large commits of a catch-up.
    pub fn commit_journaled(self, checkpoint: Position) -> Result<(), ProjectionError> {
        let view = self.db;
        let ops = self.journal_ops(checkpoint);
        let mut journal = view.journal.lock().map_err(|_| poisoned())?;
        journal
            .wal
            .append(&ops)
            .map_err(store_err("writing a read model's journal"))?;
        apply_ops(&view.db, &ops)?;
        if journal.wal.len() >= JOURNAL_LIMIT {
            journal.settle(&view.db, &view.dir)?;
        }
        Ok(())
    }

    /// The transaction's changes as a journal record, checkpoint last.
    fn journal_ops(self, checkpoint: Position) -> Ops {
        let mut ops: Ops = self
            .into_changes()
            .into_iter()
            .map(|(k, v)| {
                let value = match v {
                    Some(v) => {
                        let mut tagged = Vec::with_capacity(v.len() + 1);
                        tagged.push(SET);
                        tagged.extend_from_slice(&v);
                        tagged
                    }
                    None => vec![REMOVE],
                };
                (k, value)
            })
            .collect();
        let mut cp = vec![SET];
        cp.extend_from_slice(&checkpoint.to_be_bytes());
        ops.push((CHECKPOINT.to_vec(), cp));
        ops
    }
}

fn poisoned() -> ProjectionError {
    ProjectionError::Storage("a read model's journal lock was poisoned".into())
}

#[cfg(test)]
mod tests;
