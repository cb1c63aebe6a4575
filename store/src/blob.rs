//! Encrypted audio blobs: one file per recording, sealed segment by segment
//! so a one-hour recording never sits whole in memory.
//!
//! Format 1: a 37-byte header — magic `CVBLOB\0\x01`, format version (u16),
//! segment size (u32), the recording id (16 bytes), a random 7-byte nonce
//! prefix — then the segments. Each holds up to `segment size` bytes of
//! audio sealed with AES-256-GCM under the recording's own data key (the
//! STREAM construction): nonce = prefix ‖ segment counter (u32) ‖ a
//! last-segment flag; associated data = the header. So a flipped byte, a
//! swapped or dropped segment, a cut-off tail, or a blob presented as
//! another recording's all fail authentication: an error, never garbage.
//!
//! Writes go to a temporary file that is synced and renamed into place, so
//! a crash never leaves half a blob under a recording's name.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use aws_lc_rs::{
    aead::{Aad, LessSafeKey, NONCE_LEN, Nonce},
    digest,
};
use callvault_domain::RecordingId;

use crate::vault::{DataKey, VaultError};

const MAGIC: &[u8; 8] = b"CVBLOB\x00\x01";
const VERSION: u16 = 1;
/// Length of the header.
pub const HEADER_LEN: usize = 8 + 2 + 4 + 16 + 7;
const TAG_LEN: usize = 16;
/// Plaintext bytes per segment unless configured otherwise.
pub const DEFAULT_SEGMENT: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob I/O failed while {context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a callvault audio blob")]
    NotABlob { path: PathBuf },
    #[error("audio blob format {0} is newer than this build understands")]
    UnsupportedVersion(u16),
    #[error("the blob belongs to recording {found}, not {expected}")]
    WrongRecording {
        expected: RecordingId,
        found: RecordingId,
    },
    #[error("the blob of recording {recording} is cut short: {reason}")]
    Truncated {
        recording: RecordingId,
        reason: String,
    },
    #[error(
        "segment {segment} of recording {recording}'s blob failed authentication (tampered, reordered, truncated, or the wrong key)"
    )]
    Tampered {
        recording: RecordingId,
        segment: u64,
    },
    #[error("no audio is stored for recording {0}")]
    Missing(RecordingId),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BlobError {
    let context = context.into();
    move |source| BlobError::Io { context, source }
}

fn nonce(prefix: &[u8; 7], counter: u32, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// What `finish` reports about a stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub plaintext_len: u64,
    pub ciphertext_len: u64,
    /// SHA-256 of the whole blob file, hex.
    pub ciphertext_sha256: String,
}

/// Encrypts a recording as it arrives.
pub struct BlobWriter {
    tmp: PathBuf,
    path: PathBuf,
    file: Option<File>,
    key: LessSafeKey,
    header: [u8; HEADER_LEN],
    prefix: [u8; 7],
    segment: usize,
    buf: Vec<u8>,
    counter: u32,
    digest: digest::Context,
    plaintext_len: u64,
    ciphertext_len: u64,
}

impl BlobWriter {
    fn create(
        path: PathBuf,
        recording: RecordingId,
        key: &DataKey,
        segment: usize,
    ) -> Result<Self, BlobError> {
        let mut prefix = [0u8; 7];
        aws_lc_rs::rand::fill(&mut prefix).map_err(|_| VaultError::Random)?;
        // A temporary file of this writer's own (named by its random
        // nonce prefix, created only if new): two uploads of one
        // recording never write into, or delete, each other's file.
        let tmp = path.with_extension(format!("{}.blob.tmp", hex::encode(prefix)));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io(format!("creating {}", tmp.display())))?;
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..10].copy_from_slice(&VERSION.to_be_bytes());
        header[10..14].copy_from_slice(&(segment as u32).to_be_bytes());
        header[14..30].copy_from_slice(recording.0.as_bytes());
        header[30..37].copy_from_slice(&prefix);
        let mut w = Self {
            tmp,
            path,
            file: Some(file),
            key: key.aead()?,
            header,
            prefix,
            segment,
            buf: Vec::with_capacity(segment + TAG_LEN),
            counter: 0,
            digest: digest::Context::new(&digest::SHA256),
            plaintext_len: 0,
            ciphertext_len: 0,
        };
        w.emit(&header)?;
        Ok(w)
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        let file = self.file.as_mut().ok_or_else(|| BlobError::Io {
            context: "writing a finished blob".into(),
            source: std::io::Error::other("blob already finished"),
        })?;
        file.write_all(bytes).map_err(io("writing an audio blob"))?;
        self.digest.update(bytes);
        self.ciphertext_len += bytes.len() as u64;
        Ok(())
    }

    fn seal(&mut self, last: bool) -> Result<(), BlobError> {
        let n = nonce(&self.prefix, self.counter, last);
        let mut segment = std::mem::take(&mut self.buf);
        self.key
            .seal_in_place_append_tag(n, Aad::from(&self.header[..]), &mut segment)
            .map_err(|_| VaultError::Crypto("sealing an audio segment"))?;
        self.emit(&segment)?;
        segment.clear();
        self.buf = segment;
        self.counter = self.counter.checked_add(1).ok_or_else(|| BlobError::Io {
            context: "writing an audio blob".into(),
            source: std::io::Error::other("recording has too many segments"),
        })?;
        Ok(())
    }

    /// Adds audio. Holds at most one segment in memory.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), BlobError> {
        self.plaintext_len += data.len() as u64;
        while !data.is_empty() {
            if self.buf.len() == self.segment {
                // More data follows, so the full segment is not the last.
                self.seal(false)?;
            }
            let take = (self.segment - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Seals the last segment, syncs, and moves the blob into place.
    pub fn finish(mut self) -> Result<BlobInfo, BlobError> {
        self.seal(true)?;
        let file = self.file.take().ok_or_else(|| BlobError::Io {
            context: "finishing a blob".into(),
            source: std::io::Error::other("blob already finished"),
        })?;
        file.sync_all()
            .map_err(io(format!("syncing {}", self.tmp.display())))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path)
            .map_err(io(format!("naming {}", self.path.display())))?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        let digest = std::mem::replace(&mut self.digest, digest::Context::new(&digest::SHA256));
        Ok(BlobInfo {
            plaintext_len: self.plaintext_len,
            ciphertext_len: self.ciphertext_len,
            ciphertext_sha256: hex::encode(digest.finish().as_ref()),
        })
    }

    /// Bytes held in memory right now (for the bounded-memory tests).
    pub fn buffered(&self) -> usize {
        self.buf.capacity()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Abandoned before `finish`: leave nothing behind.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Makes a folder's entries durable.
fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", dir.display())))
}

/// What [`BlobStore::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The id was free; it is this owner's now.
    Fresh,
    /// This owner had claimed it already (an earlier attempt).
    Ours,
    /// Another owner holds it.
    Other(String),
}

/// Decrypts a recording from any offset, one segment at a time.
pub struct BlobReader {
    file: File,
    key: LessSafeKey,
    recording: RecordingId,
    header: [u8; HEADER_LEN],
    prefix: [u8; 7],
    segment: usize,
    segments: u64,
    plaintext_len: u64,
    /// Next segment to read and how much of it to skip.
    next: u64,
    skip: usize,
    /// Size of the last segment read (the memory one read holds).
    last_len: usize,
}

impl BlobReader {
    fn open(path: &Path, recording: RecordingId, key: &DataKey) -> Result<Self, BlobError> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::Missing(recording));
            }
            Err(e) => return Err(io(format!("opening {}", path.display()))(e)),
        };
        let len = file
            .metadata()
            .map_err(io(format!("reading {}", path.display())))?
            .len();
        let mut header = [0u8; HEADER_LEN];
        if len < HEADER_LEN as u64 {
            return Err(BlobError::Truncated {
                recording,
                reason: "the header is incomplete".into(),
            });
        }
        file.read_exact(&mut header)
            .map_err(io(format!("reading {}", path.display())))?;
        if &header[..8] != MAGIC {
            return Err(BlobError::NotABlob {
                path: path.to_owned(),
            });
        }
        let version = u16::from_be_bytes([header[8], header[9]]);
        if version != VERSION {
            return Err(BlobError::UnsupportedVersion(version));
        }
        let segment = u32::from_be_bytes([header[10], header[11], header[12], header[13]]) as usize;
        let mut id = [0u8; 16];
        id.copy_from_slice(&header[14..30]);
        let found = RecordingId(uuid::Uuid::from_bytes(id));
        if found != recording {
            return Err(BlobError::WrongRecording {
                expected: recording,
                found,
            });
        }
        if segment == 0 {
            return Err(BlobError::NotABlob {
                path: path.to_owned(),
            });
        }
        let mut prefix = [0u8; 7];
        prefix.copy_from_slice(&header[30..37]);
        let body = len - HEADER_LEN as u64;
        let stride = (segment + TAG_LEN) as u64;
        let segments = body.div_ceil(stride);
        let last_len = body - segments.saturating_sub(1) * stride;
        if segments == 0 || last_len < TAG_LEN as u64 {
            return Err(BlobError::Truncated {
                recording,
                reason: "the last segment is incomplete".into(),
            });
        }
        Ok(Self {
            file,
            key: key.aead()?,
            recording,
            header,
            prefix,
            segment,
            segments,
            plaintext_len: body - segments * TAG_LEN as u64,
            next: 0,
            skip: 0,
            last_len: 0,
        })
    }

    /// The recording's length in bytes.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// Continues reading from this plaintext offset.
    pub fn seek(&mut self, offset: u64) {
        let offset = offset.min(self.plaintext_len);
        self.next = offset / self.segment as u64;
        self.skip = (offset % self.segment as u64) as usize;
    }

    /// The next piece of audio (the rest of the current segment), `None`
    /// at the end. Each call holds one segment in memory.
    pub fn next_chunk(&mut self) -> Option<Result<Vec<u8>, BlobError>> {
        if self.next >= self.segments {
            return None;
        }
        Some(self.read_segment())
    }

    fn read_segment(&mut self) -> Result<Vec<u8>, BlobError> {
        let i = self.next;
        let stride = (self.segment + TAG_LEN) as u64;
        let last = i + 1 == self.segments;
        let start = HEADER_LEN as u64 + i * stride;
        let len = if last {
            (self.plaintext_len - i * self.segment as u64) as usize + TAG_LEN
        } else {
            self.segment + TAG_LEN
        };
        // A fresh buffer per segment: decrypted in place and handed out
        // as is, so audio is copied once (disk → buffer), not twice.
        let mut buf = vec![0u8; len];
        self.file
            .seek(SeekFrom::Start(start))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(io("reading an audio blob"))?;
        let counter = u32::try_from(i).map_err(|_| BlobError::Tampered {
            recording: self.recording,
            segment: i,
        })?;
        let plain_len = self
            .key
            .open_in_place(
                nonce(&self.prefix, counter, last),
                Aad::from(&self.header[..]),
                &mut buf,
            )
            .map_err(|_| BlobError::Tampered {
                recording: self.recording,
                segment: i,
            })?
            .len();
        buf.truncate(plain_len);
        if self.skip > 0 {
            buf.drain(..self.skip.min(plain_len));
        }
        self.last_len = len;
        self.next += 1;
        self.skip = 0;
        Ok(buf)
    }

    /// The most memory one read has needed (for the bounded-memory tests).
    pub fn buffered(&self) -> usize {
        self.last_len
    }
}

/// Audio blobs in a folder, `<dir>/<first two hex digits>/<recording>.blob`.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    segment: usize,
}

impl BlobStore {
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, BlobError> {
        Self::with_segment(dir, DEFAULT_SEGMENT)
    }

    pub fn with_segment(dir: impl AsRef<Path>, segment: usize) -> Result<Self, BlobError> {
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        Ok(Self {
            dir,
            segment: segment.max(1),
        })
    }

    pub fn path(&self, recording: RecordingId) -> PathBuf {
        let name = recording.0.simple().to_string();
        self.dir.join(&name[..2]).join(format!("{name}.blob"))
    }

    /// Starts writing a recording's blob.
    pub fn create(&self, recording: RecordingId, key: &DataKey) -> Result<BlobWriter, BlobError> {
        let path = self.path(recording);
        self.make_shard(&path)?;
        BlobWriter::create(path, recording, key, self.segment)
    }

    /// Creates the shard folder `path` lives in, if new: its entry in the
    /// blobs folder must be durable before a file in it is.
    fn make_shard(&self, path: &Path) -> Result<(), BlobError> {
        if let Some(dir) = path.parent()
            && !dir.is_dir()
        {
            std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    pub fn open_reader(
        &self,
        recording: RecordingId,
        key: &DataKey,
    ) -> Result<BlobReader, BlobError> {
        BlobReader::open(&self.path(recording), recording, key)
    }

    pub fn exists(&self, recording: RecordingId) -> bool {
        self.path(recording).exists()
    }

    /// Marks `recording` as `owner`'s (an opaque id, the call's) before
    /// its audio is written, durably, so a recording id is never used by
    /// two owners — not even after its audio is purged (the mark stays).
    pub fn claim(&self, recording: RecordingId, owner: &str) -> Result<Claim, BlobError> {
        use std::io::Write;
        let path = self.path(recording).with_extension("owner");
        self.make_shard(&path)?;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(owner.as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(io(format!("writing {}", path.display())))?;
                if let Some(dir) = path.parent() {
                    sync_dir(dir)?;
                }
                Ok(Claim::Fresh)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let held = std::fs::read_to_string(&path)
                    .map_err(io(format!("reading {}", path.display())))?;
                Ok(if held.trim() == owner {
                    Claim::Ours
                } else {
                    Claim::Other(held.trim().to_owned())
                })
            }
            Err(e) => Err(io(format!("creating {}", path.display()))(e)),
        }
    }

    /// Removes a blob (hygiene once its key is destroyed). Removing a blob
    /// that is not there is not an error.
    pub fn delete(&self, recording: RecordingId) -> Result<(), BlobError> {
        let path = self.path(recording);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(format!("removing {}", path.display()))(e)),
        }
    }

    /// Every recording that has a blob.
    pub fn list(&self) -> Result<Vec<RecordingId>, BlobError> {
        let mut out = Vec::new();
        let Ok(shards) = std::fs::read_dir(&self.dir) else {
            return Ok(out);
        };
        for shard in shards.flatten() {
            let Ok(files) = std::fs::read_dir(shard.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_suffix(".blob")
                    && let Ok(id) = uuid::Uuid::parse_str(id)
                {
                    out.push(RecordingId(id));
                }
            }
        }
        Ok(out)
    }
}
