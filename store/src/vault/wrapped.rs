//! A bucket's wrapped data keys: `<bucket>.g<generation>.keys`, a file of
//! fixed-size records — owner (17 bytes), sequence number (8), nonce (12),
//! wrapped key with its tag (48), CRC-32 (4) — appended and synced one by
//! one. The generation matches the KEK that wrapped them. A record torn by
//! a crash fails its CRC and is cut off: its key was never handed out.
//! Removing a record rewrites the file (write a temporary file, sync,
//! rename), so a key moved to another bucket does not linger in this one.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use aws_lc_rs::aead::NONCE_LEN;

use super::{
    Bucket, KEY_LEN, VaultError, io_err,
    kek::{private_file, sync_dir},
};

const TAG_LEN: usize = 16;
const RECORD_LEN: usize = 17 + 8 + NONCE_LEN + KEY_LEN + TAG_LEN + 4;

#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) owner: [u8; 17],
    pub(crate) seq: u64,
    pub(crate) nonce: [u8; NONCE_LEN],
    pub(crate) ciphertext: [u8; KEY_LEN + TAG_LEN],
}

impl Record {
    pub(crate) fn new(
        owner: [u8; 17],
        seq: u64,
        nonce: [u8; NONCE_LEN],
        sealed: &[u8],
    ) -> Result<Self, VaultError> {
        let ciphertext = sealed
            .try_into()
            .map_err(|_| VaultError::Crypto("a wrapped key has the wrong length"))?;
        Ok(Self {
            owner,
            seq,
            nonce,
            ciphertext,
        })
    }

    fn to_bytes(&self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        out[..17].copy_from_slice(&self.owner);
        out[17..25].copy_from_slice(&self.seq.to_be_bytes());
        out[25..25 + NONCE_LEN].copy_from_slice(&self.nonce);
        out[25 + NONCE_LEN..RECORD_LEN - 4].copy_from_slice(&self.ciphertext);
        let crc = crc32fast::hash(&out[..RECORD_LEN - 4]);
        out[RECORD_LEN - 4..].copy_from_slice(&crc.to_be_bytes());
        out
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != RECORD_LEN {
            return None;
        }
        let crc = u32::from_be_bytes(bytes[RECORD_LEN - 4..].try_into().ok()?);
        if crc32fast::hash(&bytes[..RECORD_LEN - 4]) != crc {
            return None;
        }
        Some(Self {
            owner: bytes[..17].try_into().ok()?,
            seq: u64::from_be_bytes(bytes[17..25].try_into().ok()?),
            nonce: bytes[25..25 + NONCE_LEN].try_into().ok()?,
            ciphertext: bytes[25 + NONCE_LEN..RECORD_LEN - 4].try_into().ok()?,
        })
    }
}

pub(crate) struct BucketFile {
    dir: PathBuf,
    bucket: Bucket,
    generation: u32,
    records: Vec<Record>,
    file: File,
}

fn file_name(bucket: Bucket, generation: u32) -> String {
    format!("{}.g{generation}.keys", bucket.name())
}

impl BucketFile {
    fn path(&self) -> PathBuf {
        self.dir.join(file_name(self.bucket, self.generation))
    }

    pub(crate) fn generation(&self) -> u32 {
        self.generation
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.iter()
    }

    /// A new, empty file for a new bucket.
    pub(crate) fn create(dir: &Path, bucket: Bucket, generation: u32) -> Result<Self, VaultError> {
        Self::write_all(dir, bucket, generation, &[])
    }

    /// Writes a whole file atomically (temporary file, sync, rename, sync
    /// folder) and opens it for appending.
    pub(crate) fn write_all(
        dir: &Path,
        bucket: Bucket,
        generation: u32,
        records: &[Record],
    ) -> Result<Self, VaultError> {
        let path = dir.join(file_name(bucket, generation));
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = private_file(&tmp)?;
        let mut bytes = Vec::with_capacity(records.len() * RECORD_LEN);
        for r in records {
            bytes.extend_from_slice(&r.to_bytes());
        }
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(io_err(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io_err(format!("naming {}", path.display())))?;
        sync_dir(dir)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        Ok(Self {
            dir: dir.to_owned(),
            bucket,
            generation,
            records: records.to_vec(),
            file,
        })
    }

    /// Appends one record durably.
    pub(crate) fn append(&mut self, record: &Record) -> Result<(), VaultError> {
        let path = self.path();
        self.file
            .write_all(&record.to_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(io_err(format!("appending to {}", path.display())))?;
        self.records.push(record.clone());
        Ok(())
    }

    /// Rewrites the file without `owner`'s record.
    pub(crate) fn remove(&mut self, owner: &[u8; 17]) -> Result<(), VaultError> {
        if !self.records.iter().any(|r| r.owner == *owner) {
            return Ok(());
        }
        let kept: Vec<Record> = self
            .records
            .iter()
            .filter(|r| r.owner != *owner)
            .cloned()
            .collect();
        *self = Self::write_all(&self.dir, self.bucket, self.generation, &kept)?;
        Ok(())
    }

    /// Deletes the file (hygiene once its KEK is gone).
    pub(crate) fn delete(self) -> Result<(), VaultError> {
        let path = self.path();
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(format!("removing {}", path.display()))(e)),
        }
    }

    fn open(dir: &Path, bucket: Bucket, generation: u32) -> Result<Self, VaultError> {
        let path = dir.join(file_name(bucket, generation));
        let bytes = std::fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
        let mut records = Vec::with_capacity(bytes.len() / RECORD_LEN);
        let mut good = 0usize;
        let chunks = bytes.len().div_ceil(RECORD_LEN);
        for (i, chunk) in bytes.chunks(RECORD_LEN).enumerate() {
            match Record::from_bytes(chunk) {
                Some(r) => {
                    records.push(r);
                    good += RECORD_LEN;
                }
                // Only the last record can be torn (an append that never
                // finished); a bad one with records after it is damage,
                // and cutting there would lose every key behind it.
                None if i + 1 == chunks => break,
                None => {
                    return Err(VaultError::Damaged {
                        path,
                        reason: format!(
                            "record {} of {chunks} does not check out, and records follow it; nothing was changed",
                            i + 1
                        ),
                    });
                }
            }
        }
        if good < bytes.len() {
            tracing::warn!(file = %path.display(), "cutting a torn record off a wrapped-key file");
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(format!("opening {}", path.display())))?;
            f.set_len(good as u64)
                .and_then(|()| f.sync_all())
                .map_err(io_err(format!("truncating {}", path.display())))?;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        Ok(Self {
            dir: dir.to_owned(),
            bucket,
            generation,
            records,
            file,
        })
    }
}

/// Wrapped-key files found without their KEK, by bucket.
pub(crate) type WithoutKek = Vec<(Bucket, PathBuf)>;

/// Opens the current file of every bucket whose KEK exists and deletes
/// what is superseded: files of other generations of such a bucket, and
/// temporary files of writes that never finished. Files of a bucket with
/// no KEK at all are left alone and returned (a purge that stopped between
/// destroying the KEK and deleting the file, or a missing KEK folder —
/// deleting on that evidence could lose keys for good).
pub(crate) fn open_all(
    dir: &Path,
    live: &[(Bucket, u32)],
) -> Result<(BTreeMap<Bucket, BucketFile>, WithoutKek), VaultError> {
    let mut found: BTreeMap<Bucket, Vec<u32>> = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(io_err(format!("listing {}", dir.display())))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            let _ = std::fs::remove_file(e.path());
            continue;
        }
        let Some(stem) = name.strip_suffix(".keys") else {
            continue;
        };
        let Some((bucket, generation)) = stem.rsplit_once(".g") else {
            continue;
        };
        if let (Some(b), Ok(g)) = (Bucket::parse(bucket), generation.parse::<u32>()) {
            found.entry(b).or_default().push(g);
        }
    }
    let mut out = BTreeMap::new();
    let mut without_kek = Vec::new();
    for (bucket, mut generations) in found {
        generations.sort_unstable();
        let current = generations
            .iter()
            .rev()
            .find(|g| live.contains(&(bucket, **g)))
            .copied();
        let Some(current) = current else {
            for g in &generations {
                let path = dir.join(file_name(bucket, *g));
                tracing::warn!(file = %path.display(), "wrapped-key file without its key-encryption key: left alone and unused");
                without_kek.push((bucket, path));
            }
            continue;
        };
        for g in &generations {
            if *g != current {
                let _ = std::fs::remove_file(dir.join(file_name(bucket, *g)));
            }
        }
        out.insert(bucket, BucketFile::open(dir, bucket, current)?);
    }
    sync_dir(dir)?;
    Ok((out, without_kek))
}
