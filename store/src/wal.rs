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
//! File (format 2): a 4 KiB header — `CVWH`, the format (u32), the current
//! epoch (u64), a CRC-32 of those 16 bytes — then records from offset 4096.
//! Record: `CVWL`, the epoch it was written in (u64), payload length (u32),
//! CRC-32 of the payload, then the payload: a count of key/value pairs and
//! each pair length-prefixed. Recovery reads records of the header's epoch
//! from the start and stops at the first that is torn, damaged or of
//! another epoch (a crash mid-write: it was never acknowledged).
//!
//! Emptying the log writes a new, random epoch into the header instead of
//! cutting the file: what follows is then stale, never replayed. So the
//! event log's WAL ([`Wal::open_preallocated`]) keeps its size and is grown
//! in zero-filled steps, and an `fdatasync` after an append flushes data
//! only — no file-size change for the filesystem's journal to commit — which
//! measured ~20 % more appends/s at 16 writers (BENCHMARKS.md, "Event
//! log"). The read models' journals ([`Wal::open`]) are cut back instead.
//!
//! A file of format 1 (records with no epoch, no header; written
//! by earlier versions) is read as such and rewritten in format 2 with the same
//! batches before anything is appended.
//!
//! The read models (`callvault-projections`) use the same file as a redo
//! journal for their commits, which they apply with plain sled inserts;
//! there a record is whatever one commit sets and removes.

use std::{
    collections::HashSet,
    fs::{File, OpenOptions},
    io::Read,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use crate::contract::StoreError;

const FILE_MAGIC: &[u8; 4] = b"CVWH";
const FORMAT: u32 = 2;
/// Where records start.
const FILE_HEADER: u64 = 4096;
const MAGIC: &[u8; 4] = b"CVWL";
/// A record's header in format 2: magic, epoch, length, CRC.
const HEADER: usize = 20;
/// A format-1 record's header: magic, length, CRC.
const V1_HEADER: usize = 12;

/// One batch: the sled key/value pairs it sets.
pub type Ops = Vec<(Vec<u8>, Vec<u8>)>;

fn io(context: &str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = format!("{context} {}", path.display());
    move |source| StoreError::Io { context, source }
}

fn new_epoch() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

fn file_header(epoch: u64) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(FILE_MAGIC);
    h[4..8].copy_from_slice(&FORMAT.to_be_bytes());
    h[8..16].copy_from_slice(&epoch.to_be_bytes());
    let crc = crc32fast::hash(&h[..16]);
    h[16..].copy_from_slice(&crc.to_be_bytes());
    h
}

/// What a WAL file's first bytes say it is.
enum Kind {
    /// Empty, or format-1 records from the start.
    First,
    /// A sound format-2 header with its epoch.
    Current(u64),
    /// Format 2's magic, but the header does not check out.
    DamagedHeader,
    /// A sound header of another format.
    Other(u32),
    Unknown,
}

fn kind(bytes: &[u8]) -> Kind {
    if bytes.is_empty() || bytes.starts_with(MAGIC) {
        return Kind::First;
    }
    if !bytes.starts_with(FILE_MAGIC) {
        return Kind::Unknown;
    }
    let Some(h) = bytes.get(..20) else {
        return Kind::DamagedHeader;
    };
    if crc32fast::hash(&h[..16]).to_be_bytes() != h[16..20] {
        return Kind::DamagedHeader;
    }
    match u32::from_be_bytes([h[4], h[5], h[6], h[7]]) {
        FORMAT => Kind::Current(u64::from_be_bytes(h[8..16].try_into().unwrap_or_default())),
        other => Kind::Other(other),
    }
}

/// The epoch of a format-2 record starting at `bytes`, if one does.
fn record_epoch(bytes: &[u8]) -> Option<u64> {
    let h = bytes.get(..12)?;
    (&h[..4] == MAGIC).then(|| u64::from_be_bytes(h[4..12].try_into().unwrap_or_default()))
}

pub struct Wal {
    path: PathBuf,
    file: File,
    /// Bytes of records since the last emptying.
    len: u64,
    epoch: u64,
    /// The file's length.
    file_len: u64,
    /// Grow the file in zero-filled steps of this many bytes (0: let each
    /// write grow it).
    grow_step: u64,
    /// Bytes of records the file keeps room for when it is emptied.
    keep: u64,
    /// A failed write could not be voided (whatever follows it would be
    /// lost at recovery, which stops at the damage), or an emptying failed
    /// (the epoch on disk is unknown): nothing more is appended until an
    /// emptying succeeds or a restart repairs the file.
    damaged: bool,
}

impl Wal {
    /// Opens the WAL in `dir` and returns the batches it still holds. The
    /// file is cut back to its header when emptied.
    pub fn open(dir: &Path) -> Result<(Self, Vec<Ops>), StoreError> {
        Self::open_with(dir, 0, 0)
    }

    /// Like [`Wal::open`], for a log synced after every append: the file
    /// grows in zero-filled steps of `grow_step` bytes and keeps room for
    /// `keep` bytes of records when emptied, so appends rarely change its
    /// size.
    pub fn open_preallocated(
        dir: &Path,
        grow_step: u64,
        keep: u64,
    ) -> Result<(Self, Vec<Ops>), StoreError> {
        Self::open_with(dir, grow_step, keep)
    }

    fn open_with(dir: &Path, grow_step: u64, keep: u64) -> Result<(Self, Vec<Ops>), StoreError> {
        let path = dir.join("wal");
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)
                    .map_err(io("reading the write-ahead log", &path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("opening the write-ahead log", &path)(e)),
        }
        let records = bytes.get(FILE_HEADER as usize..).unwrap_or_default();
        let batches = match kind(&bytes) {
            Kind::Current(epoch) => {
                let (batches, good) = parse(records, Some(epoch));
                if record_epoch(&records[good..]) == Some(epoch) {
                    tracing::warn!(
                        at = FILE_HEADER as usize + good,
                        "write-ahead log ends in a torn record (a write that was never acknowledged); it is left out"
                    );
                }
                return Self::open_file(path, epoch, good as u64, grow_step, keep)
                    .map(|wal| (wal, batches));
            }
            Kind::Other(format) => {
                return Err(StoreError::Corrupt(format!(
                    "the write-ahead log {} is of format {format}, which this version does not read (it reads format {FORMAT}); run the version that wrote it",
                    path.display(),
                )));
            }
            Kind::Unknown => {
                return Err(StoreError::Corrupt(format!(
                    "{} does not start like a write-ahead log; it was left as it is (move it aside only if the event log was closed cleanly)",
                    path.display()
                )));
            }
            Kind::DamagedHeader => {
                // Torn while being emptied (everything in it was in sled
                // already, and replaying it again is harmless) or damaged:
                // either way the records that follow are read by the epoch
                // of the first one.
                let batches =
                    record_epoch(records).map_or_else(Vec::new, |e| parse(records, Some(e)).0);
                tracing::warn!(
                    path = %path.display(),
                    batches = batches.len(),
                    "write-ahead log header is damaged; reading the records that follow by their own epoch"
                );
                batches
            }
            Kind::First => {
                let (batches, good) = parse(&bytes, None);
                if good < bytes.len() {
                    tracing::warn!(
                        cut = bytes.len() - good,
                        "write-ahead log ends in a torn record (a write that was never acknowledged); cutting it off"
                    );
                }
                batches
            }
        };
        // Anything but a sound format-2 file is rewritten as one, with the
        // batches it holds.
        let epoch = new_epoch();
        let len = rewrite(dir, &path, epoch, &batches, grow_step)?;
        Self::open_file(path, epoch, len, grow_step, keep).map(|wal| (wal, batches))
    }

    fn open_file(
        path: PathBuf,
        epoch: u64,
        len: u64,
        grow_step: u64,
        keep: u64,
    ) -> Result<Self, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io("opening the write-ahead log", &path))?;
        let file_len = file
            .metadata()
            .map_err(io("reading the size of the write-ahead log", &path))?
            .len();
        Ok(Self {
            path,
            file,
            len,
            epoch,
            file_len,
            grow_step,
            keep,
            damaged: false,
        })
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
                    "an earlier write failed in a way only emptying the log after a checkpoint, or a restart, repairs",
                ),
            ));
        }
        let record = encode(self.epoch, ops)
            .map_err(|e| io("appending to the write-ahead log", &self.path)(e))?;
        let at = FILE_HEADER + self.len;
        let end = at + record.len() as u64;
        // Zeros ahead of the record: if they don't fit (a full disk),
        // nothing of the record was written.
        self.grow_to(end)
            .map_err(io("growing the write-ahead log", &self.path))?;
        let written = self
            .file
            .write_all_at(&record, at)
            .and_then(|()| if sync { self.file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            // Void what may have been written, so that it is not replayed
            // (it was never acknowledged) and the next record takes its
            // place: cut off where the file grows with each record, its
            // header zeroed where the space is already the file's (so
            // that needs no more of a full disk).
            let voided = if self.grow_step == 0 {
                self.file.set_len(at)
            } else {
                self.file.write_all_at(&[0u8; HEADER], at)
            }
            .and_then(|()| self.file.sync_data());
            if let Err(void) = voided {
                tracing::error!(error = %void, "could not void a failed write in the write-ahead log; refusing further appends until a restart");
                self.damaged = true;
            }
            return Err(io("appending to the write-ahead log", &self.path)(e));
        }
        self.len += record.len() as u64;
        self.file_len = self.file_len.max(end);
        Ok(())
    }

    /// With a grow step, extends the file with zeros to a whole number of
    /// steps past `end`; synced with the record that follows.
    fn grow_to(&mut self, end: u64) -> std::io::Result<()> {
        if self.grow_step == 0 || end <= self.file_len {
            return Ok(());
        }
        let target = end.div_ceil(self.grow_step) * self.grow_step;
        let zeros = vec![0u8; (1 << 20).min(target - self.file_len) as usize];
        let mut at = self.file_len;
        while at < target {
            let n = zeros.len().min((target - at) as usize);
            self.file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        self.file_len = target;
        Ok(())
    }

    /// Empties the WAL once everything in it is durable in sled: a new
    /// epoch in the header makes every record in the file stale. The
    /// header is synced before the file is cut back: a cut that reached
    /// the disk before the header would leave part of the old epoch to be
    /// replayed (older values over newer ones). If anything fails, the
    /// header on disk is unknown, so appends are refused (`damaged`) until
    /// an emptying succeeds.
    pub fn reset(&mut self) -> Result<(), StoreError> {
        let epoch = new_epoch();
        let keep = FILE_HEADER + self.keep;
        let emptied = self
            .file
            .write_all_at(&file_header(epoch), 0)
            .and_then(|()| self.file.sync_data())
            .and_then(|()| {
                if self.file_len > keep {
                    self.file.set_len(keep)?;
                    self.file_len = keep;
                }
                Ok(())
            });
        if let Err(e) = emptied {
            self.damaged = true;
            return Err(io("emptying the write-ahead log", &self.path)(e));
        }
        self.epoch = epoch;
        self.len = 0;
        self.damaged = false;
        Ok(())
    }

    /// An append or an emptying failed in a way only a successful
    /// emptying (or a restart) repairs.
    pub fn is_damaged(&self) -> bool {
        self.damaged
    }
}

/// Writes a fresh format-2 file holding `batches` in place of `path`
/// (a temporary file, synced, renamed, the folder synced); returns the
/// bytes of records written.
fn rewrite(
    dir: &Path,
    path: &Path,
    epoch: u64,
    batches: &[Ops],
    grow_step: u64,
) -> Result<u64, StoreError> {
    let mut bytes = vec![0u8; FILE_HEADER as usize];
    bytes[..20].copy_from_slice(&file_header(epoch));
    for ops in batches {
        let record = encode(epoch, ops).map_err(io("rewriting the write-ahead log", path))?;
        bytes.extend_from_slice(&record);
    }
    let len = bytes.len() as u64 - FILE_HEADER;
    if grow_step > 0 {
        let target = (bytes.len() as u64).div_ceil(grow_step) * grow_step;
        bytes.resize(target as usize, 0);
    }
    let temp = dir.join("wal.tmp");
    std::fs::write(&temp, &bytes)
        .and_then(|()| File::open(&temp)?.sync_all())
        .and_then(|()| std::fs::rename(&temp, path))
        .and_then(|()| File::open(dir)?.sync_all())
        .map_err(io("writing the write-ahead log", path))?;
    Ok(len)
}

/// One record of `epoch` holding `ops`.
fn encode(epoch: u64, ops: &Ops) -> std::io::Result<Vec<u8>> {
    let payload_len = 4 + ops
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len())
        .sum::<usize>();
    let Ok(len32) = u32::try_from(payload_len) else {
        return Err(std::io::Error::other(format!(
            "a batch of {payload_len} bytes is larger than a record can hold (4 GiB)"
        )));
    };
    let mut record = Vec::with_capacity(HEADER + payload_len);
    record.extend_from_slice(MAGIC);
    record.extend_from_slice(&epoch.to_be_bytes());
    record.extend_from_slice(&len32.to_be_bytes());
    record.extend_from_slice(&[0; 4]);
    record.extend_from_slice(&(ops.len() as u32).to_be_bytes());
    for (k, v) in ops {
        record.extend_from_slice(&(k.len() as u32).to_be_bytes());
        record.extend_from_slice(k);
        record.extend_from_slice(&(v.len() as u32).to_be_bytes());
        record.extend_from_slice(v);
    }
    let crc = crc32fast::hash(&record[HEADER..]);
    record[16..20].copy_from_slice(&crc.to_be_bytes());
    Ok(record)
}

/// The complete batches at the start of `bytes`, and how many bytes they
/// span: records of `epoch` (format 2), or with `None` format-1 records.
fn parse(bytes: &[u8], epoch: Option<u64>) -> (Vec<Ops>, usize) {
    let header = if epoch.is_some() { HEADER } else { V1_HEADER };
    let mut batches = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= header {
        let h = &bytes[at..at + header];
        if &h[..4] != MAGIC {
            break;
        }
        let rest = match epoch {
            Some(epoch) if h[4..12] != epoch.to_be_bytes() => break,
            Some(_) => &h[12..],
            None => &h[4..],
        };
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_be_bytes(rest[4..8].try_into().unwrap_or_default());
        let Some(payload) = bytes.get(at + header..at + header + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(ops) = parse_ops(payload) else {
            break;
        };
        batches.push(ops);
        at += header + len;
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
    fn records_from_before_an_emptying_are_never_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        {
            let (mut wal, _) = Wal::open_preallocated(dir.path(), 1 << 16, 1 << 16).unwrap();
            wal.append(&ops(3)).unwrap();
            wal.append(&ops(4)).unwrap();
            let size = std::fs::metadata(&path).unwrap().len();
            assert_eq!(size, 1 << 16, "grown in one zero-filled step");
            wal.reset().unwrap();
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                size,
                "kept its size"
            );
            // Exactly as long as the first record: the second one, still in
            // the file, follows it — but it is of the old epoch.
            wal.append(&ops(3)).unwrap();
        }
        let (_, batches) = Wal::open_preallocated(dir.path(), 1 << 16, 1 << 16).unwrap();
        assert_eq!(batches, vec![ops(3)]);
    }

    #[test]
    fn a_file_of_the_first_format_is_read_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let mut v1 = Vec::new();
        for n in [2u8, 5] {
            let record = encode(0, &ops(n)).unwrap();
            // Format 1: magic, length, CRC, payload — no epoch.
            v1.extend_from_slice(MAGIC);
            v1.extend_from_slice(&record[12..]);
        }
        v1.extend_from_slice(&MAGIC[..3]); // a torn third record
        std::fs::write(&path, &v1).unwrap();
        let (mut wal, batches) = Wal::open(dir.path()).unwrap();
        assert_eq!(batches, vec![ops(2), ops(5)]);
        assert!(std::fs::read(&path).unwrap().starts_with(FILE_MAGIC));
        // Kept until emptied, and appended to in the new format.
        wal.append(&ops(1)).unwrap();
        drop(wal);
        let (mut wal, batches) = Wal::open(dir.path()).unwrap();
        assert_eq!(batches, vec![ops(2), ops(5), ops(1)]);
        wal.reset().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), FILE_HEADER);
        drop(wal);
        assert!(Wal::open(dir.path()).unwrap().1.is_empty());
    }

    #[test]
    fn a_damaged_header_still_gives_the_records_and_the_log_stays_usable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            wal.append(&ops(2)).unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[9] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (mut wal, batches) = Wal::open(dir.path()).unwrap();
        assert_eq!(batches, vec![ops(2)]);
        wal.append(&ops(1)).unwrap();
        drop(wal);
        assert_eq!(Wal::open(dir.path()).unwrap().1, vec![ops(2), ops(1)]);
    }

    #[test]
    fn a_file_that_is_no_log_of_a_known_format_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        std::fs::write(&path, b"not a log at all").unwrap();
        let err = Wal::open(dir.path()).err().expect("refused");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"not a log at all");

        // A sound header of a later format.
        let mut later = file_header(7).to_vec();
        later[4..8].copy_from_slice(&3u32.to_be_bytes());
        let crc = crc32fast::hash(&later[..16]);
        later[16..20].copy_from_slice(&crc.to_be_bytes());
        later.resize(FILE_HEADER as usize, 0);
        std::fs::write(&path, &later).unwrap();
        let err = Wal::open(dir.path()).err().expect("refused");
        assert!(err.to_string().contains("format 3"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), later);
    }

    /// A read-only handle in place of the file makes its writes fail.
    fn read_only(wal: &mut Wal) -> File {
        std::mem::replace(&mut wal.file, File::open(&wal.path).unwrap())
    }

    #[test]
    fn a_failed_emptying_refuses_appends_until_an_emptying_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.append(&ops(2)).unwrap();
        let writable = read_only(&mut wal);
        assert!(wal.reset().is_err());
        assert!(wal.is_damaged());
        wal.file = writable;
        let refused = wal.append(&ops(1)).expect_err("refused while damaged");
        assert!(
            format!("{refused:?}").contains("earlier write failed"),
            "{refused:?}"
        );
        wal.reset().unwrap();
        assert!(!wal.is_damaged());
        wal.append(&ops(3)).unwrap();
        drop(wal);
        assert_eq!(Wal::open(dir.path()).unwrap().1, vec![ops(3)]);
    }

    #[test]
    fn a_write_that_fails_and_cannot_be_voided_stops_appends_until_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open_preallocated(dir.path(), 1 << 16, 1 << 16).unwrap();
        wal.append(&ops(2)).unwrap();
        let writable = read_only(&mut wal);
        assert!(wal.append(&ops(4)).is_err());
        assert!(wal.is_damaged(), "the void could not be written either");
        wal.file = writable;
        assert!(wal.append(&ops(1)).is_err(), "refused while damaged");
        drop(wal);
        // Reopened, only the acknowledged batch is there.
        let (mut wal, batches) = Wal::open_preallocated(dir.path(), 1 << 16, 1 << 16).unwrap();
        assert_eq!(batches, vec![ops(2)]);
        wal.append(&ops(1)).unwrap();
        drop(wal);
        assert_eq!(
            Wal::open_preallocated(dir.path(), 1 << 16, 1 << 16)
                .unwrap()
                .1,
            vec![ops(2), ops(1)]
        );
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
