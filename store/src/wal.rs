//! The embedded backend's write-ahead log: the durability of an append.
//!
//! sled 0.34 can't make one write durable cheaply (its `flush()` is a
//! `sync_file_range`, and a real `fsync` of its data file on top makes two
//! disk round-trips per append). So each batch of appends is first written
//! to this small append-only file and `fdatasync`ed — one round-trip — and
//! only then applied to sled and acknowledged. Every so often (and at a
//! clean shutdown) sled is flushed, its files `fdatasync`ed, and the WAL
//! emptied: a checkpoint. At open, whatever the WAL still holds is applied
//! to sled again; re-applying a batch writes identical values, so it is
//! harmless if sled had it already.
//!
//! Record: `CVWL` magic, payload length (u32), CRC-32 of the payload, then
//! the payload: a count of key/value pairs and each pair length-prefixed. A
//! torn or damaged tail record (a crash mid-write: it was never
//! acknowledged) ends recovery and is cut off.
//!
//! The read models (`callvault-projections`) use the same file as a redo
//! journal for their commits, which they apply with plain sled inserts;
//! there a record is whatever one commit sets and removes.

use std::{
    collections::HashSet,
    fs::{File, OpenOptions},
    io::{Read, Write},
    path::{Path, PathBuf},
};

use crate::contract::StoreError;

const MAGIC: &[u8; 4] = b"CVWL";
const HEADER: usize = 12;

/// One batch: the sled key/value pairs it sets.
pub type Ops = Vec<(Vec<u8>, Vec<u8>)>;

fn io(context: &str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = format!("{context} {}", path.display());
    move |source| StoreError::Io { context, source }
}

pub struct Wal {
    path: PathBuf,
    file: File,
    len: u64,
    /// A failed write could not be cut off again: whatever follows it
    /// would be lost at recovery (which stops at the damage), so nothing
    /// more is appended until a restart repairs the file.
    damaged: bool,
}

impl Wal {
    /// Opens the WAL in `dir` and returns the batches it still holds.
    pub fn open(dir: &Path) -> Result<(Self, Vec<Ops>), StoreError> {
        let path = dir.join("wal");
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(io("opening the write-ahead log", &path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io("reading the write-ahead log", &path))?;
        let (batches, good) = parse(&bytes);
        if good < bytes.len() {
            tracing::warn!(
                cut = bytes.len() - good,
                "write-ahead log ends in a torn record (a write that was never acknowledged); cutting it off"
            );
        }
        let mut wal = Self {
            path,
            file,
            len: good as u64,
            damaged: false,
        };
        wal.truncate_to(good as u64)?;
        Ok((wal, batches))
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one batch and makes it durable.
    pub fn append(&mut self, ops: &Ops) -> Result<(), StoreError> {
        self.write_record(ops, true)
    }

    /// Appends one batch without waiting for the disk: it survives the
    /// process being killed (the kernel holds it), not a power loss. For
    /// callers that can tell the two apart (the read models' journal).
    pub fn append_unsynced(&mut self, ops: &Ops) -> Result<(), StoreError> {
        self.write_record(ops, false)
    }

    fn write_record(&mut self, ops: &Ops, sync: bool) -> Result<(), StoreError> {
        if self.damaged {
            return Err(io("appending to the write-ahead log", &self.path)(
                std::io::Error::other(
                    "an earlier failed write could not be cut off; restart the service to repair the log",
                ),
            ));
        }
        let mut payload = Vec::with_capacity(
            4 + ops
                .iter()
                .map(|(k, v)| 8 + k.len() + v.len())
                .sum::<usize>(),
        );
        payload.extend_from_slice(&(ops.len() as u32).to_be_bytes());
        for (k, v) in ops {
            payload.extend_from_slice(&(k.len() as u32).to_be_bytes());
            payload.extend_from_slice(k);
            payload.extend_from_slice(&(v.len() as u32).to_be_bytes());
            payload.extend_from_slice(v);
        }
        let Ok(payload_len) = u32::try_from(payload.len()) else {
            return Err(io("appending to the write-ahead log", &self.path)(
                std::io::Error::other(format!(
                    "a batch of {} bytes is larger than a record can hold (4 GiB)",
                    payload.len()
                )),
            ));
        };
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(MAGIC);
        record.extend_from_slice(&payload_len.to_be_bytes());
        record.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        record.extend_from_slice(&payload);
        let written = self
            .file
            .write_all(&record)
            .and_then(|()| if sync { self.file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            // Don't leave half a record for the next batch to follow.
            if let Err(cut) = self.truncate_to(self.len) {
                tracing::error!(error = %cut, "could not cut a failed write off the write-ahead log; refusing further appends until a restart");
                self.damaged = true;
            }
            return Err(io("appending to the write-ahead log", &self.path)(e));
        }
        self.len += record.len() as u64;
        Ok(())
    }

    /// Empties the WAL once everything in it is durable in sled.
    pub fn reset(&mut self) -> Result<(), StoreError> {
        self.truncate_to(0)
    }

    fn truncate_to(&mut self, len: u64) -> Result<(), StoreError> {
        use std::io::Seek;
        self.file
            .set_len(len)
            .and_then(|()| self.file.seek(std::io::SeekFrom::Start(len)).map(|_| ()))
            .and_then(|()| self.file.sync_data())
            .map_err(io("truncating the write-ahead log", &self.path))?;
        self.len = len;
        Ok(())
    }
}

/// The complete batches in `bytes`, and how many bytes they span.
fn parse(bytes: &[u8]) -> (Vec<Ops>, usize) {
    let mut batches = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= HEADER {
        if &bytes[at..at + 4] != MAGIC {
            break;
        }
        let len = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap_or_default());
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(ops) = parse_ops(payload) else {
            break;
        };
        batches.push(ops);
        at += HEADER + len;
    }
    (batches, at)
}

fn parse_ops(payload: &[u8]) -> Option<Ops> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let out = payload.get(at..at.checked_add(n)?)?;
        at += n;
        Some(out)
    };
    let count = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
    let mut ops = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let klen = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
        let key = take(klen)?.to_vec();
        let vlen = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
        let value = take(vlen)?.to_vec();
        ops.push((key, value));
    }
    Some(ops)
}

/// Makes what a flushed sled database in `dir` wrote durable: sled's own
/// flush is a `sync_file_range`, so its data file (`data_file`, opened on
/// `dir/db`) and any blob file it wrote are `fdatasync`ed here.
pub fn sync_sled_files(
    dir: &Path,
    data_file: &File,
    synced_blobs: &mut HashSet<PathBuf>,
) -> Result<(), StoreError> {
    data_file
        .sync_data()
        .map_err(io("fdatasync of sled's data file in", dir))?;
    sync_blobs(dir, synced_blobs)
}

/// `fdatasync`s every file in sled's `blobs` folder not synced before (sled
/// writes large pages there without syncing them), and the folder if a
/// file is new.
fn sync_blobs(dir: &Path, synced: &mut HashSet<PathBuf>) -> Result<(), StoreError> {
    let blobs = dir.join("blobs");
    let Ok(entries) = std::fs::read_dir(&blobs) else {
        return Ok(());
    };
    let mut new = false;
    let mut present = HashSet::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !synced.contains(&path) {
            File::open(&path)
                .and_then(|f| f.sync_data())
                .map_err(io("fdatasync of sled blob", &path))?;
            new = true;
        }
        present.insert(path);
    }
    if new {
        File::open(&blobs)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync of", &blobs))?;
    }
    *synced = present;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(n: u8) -> Ops {
        (0..n).map(|i| (vec![i], vec![i; 3])).collect()
    }

    #[test]
    fn batches_survive_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, old) = Wal::open(dir.path()).unwrap();
            assert!(old.is_empty());
            wal.append(&ops(1)).unwrap();
            wal.append(&ops(3)).unwrap();
        }
        let (_, batches) = Wal::open(dir.path()).unwrap();
        assert_eq!(batches, vec![ops(1), ops(3)]);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            wal.append(&ops(2)).unwrap();
            wal.append(&ops(4)).unwrap();
        }
        let path = dir.path().join("wal");
        let full = std::fs::read(&path).unwrap();
        for cut in 1..12 {
            std::fs::write(&path, &full[..full.len() - cut]).unwrap();
            let (wal, batches) = Wal::open(dir.path()).unwrap();
            assert_eq!(batches, vec![ops(2)], "cut {cut}");
            assert!(wal.len() < full.len() as u64);
        }
    }

    #[test]
    fn a_damaged_record_ends_recovery() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            wal.append(&ops(2)).unwrap();
            wal.append(&ops(2)).unwrap();
        }
        let path = dir.path().join("wal");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, batches) = Wal::open(dir.path()).unwrap();
        assert_eq!(batches.len(), 1);
    }

    #[test]
    fn reset_empties_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.append(&ops(2)).unwrap();
        wal.reset().unwrap();
        wal.append(&ops(1)).unwrap();
        drop(wal);
        let (_, batches) = Wal::open(dir.path()).unwrap();
        assert_eq!(batches, vec![ops(1)]);
    }
}
