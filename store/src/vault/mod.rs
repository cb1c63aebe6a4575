//! The key vault: one random data key (DEK) per recording and per contact,
//! stored only wrapped under the key-encryption key (KEK) of its **bucket**
//! — one bucket per expiry day, plus one for held and restricted items.
//! Destroying a bucket's KEK crypto-shreds every key in it at once (R16).
//!
//! On disk, under the vault folder (owner-only permissions):
//! `kek/<bucket>.g<generation>.kek` — a KEK (see [`kek`]; a KMS could
//! stand behind the same trait), and `wrapped/<bucket>.g<generation>.keys`
//! — the bucket's wrapped DEKs, fixed-size records (see [`wrapped`]).
//! Nothing secret is kept in sled or the event log.
//!
//! There is no cache of unwrapped DEKs: each lookup unwraps (about a
//! microsecond), so nothing lingers in memory after a bucket is destroyed.
//! KEKs are cached (zeroized on drop) and evicted synchronously when their
//! bucket is destroyed or rotated.

pub mod kek;
mod wrapped;

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
};

use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, NONCE_LEN, UnboundKey};
use callvault_domain::{ContactRef, RecordingId};
use chrono::NaiveDate;
use zeroize::{Zeroize, ZeroizeOnDrop};

pub use kek::{FileKekStore, KekStore};
use wrapped::{BucketFile, Record};

/// Length of a data key.
pub const KEY_LEN: usize = 32;

/// What a data key protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyOwner {
    /// A recording's audio.
    Recording(RecordingId),
    /// A call's or chat's personal-data fields.
    Contact(ContactRef),
}

impl KeyOwner {
    pub(crate) fn to_bytes(self) -> [u8; 17] {
        let (kind, id) = match self {
            KeyOwner::Recording(r) => (1u8, r.0),
            KeyOwner::Contact(ContactRef::Call(c)) => (2, c.0),
            KeyOwner::Contact(ContactRef::Chat(c)) => (3, c.0),
        };
        let mut out = [0u8; 17];
        out[0] = kind;
        out[1..].copy_from_slice(id.as_bytes());
        out
    }

    pub(crate) fn from_bytes(bytes: [u8; 17]) -> Option<Self> {
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[1..]);
        let id = uuid::Uuid::from_bytes(id);
        match bytes[0] {
            1 => Some(KeyOwner::Recording(RecordingId(id))),
            2 => Some(KeyOwner::Contact(ContactRef::Call(
                callvault_domain::CallId(id),
            ))),
            3 => Some(KeyOwner::Contact(ContactRef::Chat(
                callvault_domain::ChatId(id),
            ))),
            _ => None,
        }
    }

    /// The owner as text: `recording:<uuid>`, `call:<uuid>`, `chat:<uuid>`.
    pub fn to_string_id(&self) -> String {
        match self {
            KeyOwner::Recording(r) => format!("recording:{r}"),
            KeyOwner::Contact(ContactRef::Call(c)) => format!("call:{c}"),
            KeyOwner::Contact(ContactRef::Chat(c)) => format!("chat:{c}"),
        }
    }

    pub fn parse_string_id(s: &str) -> Option<Self> {
        let (kind, id) = s.split_once(':')?;
        let id = uuid::Uuid::parse_str(id).ok()?;
        match kind {
            "recording" => Some(KeyOwner::Recording(RecordingId(id))),
            "call" => Some(KeyOwner::Contact(ContactRef::Call(
                callvault_domain::CallId(id),
            ))),
            "chat" => Some(KeyOwner::Contact(ContactRef::Chat(
                callvault_domain::ChatId(id),
            ))),
            _ => None,
        }
    }

    /// Associated data binding a wrapped key or a sealed value to its owner.
    pub fn aad(&self) -> String {
        format!("callvault/v1/{}", self.to_string_id())
    }
}

impl fmt::Display for KeyOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyOwner::Recording(r) => write!(f, "recording {r}"),
            KeyOwner::Contact(c) => write!(f, "{c}"),
        }
    }
}

/// A group of keys that share one KEK and are destroyed together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// Items that expire on this day.
    Expiry(NaiveDate),
    /// Held or restricted items: never destroyed as a bucket.
    Hold,
}

impl Bucket {
    pub fn name(&self) -> String {
        match self {
            Bucket::Expiry(d) => d.format("%Y-%m-%d").to_string(),
            Bucket::Hold => "hold".into(),
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        if name == "hold" {
            return Some(Bucket::Hold);
        }
        NaiveDate::parse_from_str(name, "%Y-%m-%d")
            .ok()
            .map(Bucket::Expiry)
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A data key. Zeroized on drop; never printed, serialised or logged.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; KEY_LEN]);

impl DataKey {
    pub(crate) fn random() -> Result<Self, VaultError> {
        let mut k = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut k).map_err(|_| VaultError::Random)?;
        Ok(Self(k))
    }

    pub(crate) fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub(crate) fn aead(&self) -> Result<LessSafeKey, VaultError> {
        UnboundKey::new(&AES_256_GCM, &self.0)
            .map(LessSafeKey::new)
            .map_err(|_| VaultError::Crypto("building an AES-256-GCM key"))
    }

    /// The raw key, for the proof tests that search every file for it.
    /// Nothing else may call this.
    #[doc(hidden)]
    pub fn secret_bytes_for_audit(&self) -> [u8; KEY_LEN] {
        self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// What the vault knows of an owner's key.
#[derive(Debug)]
pub enum KeyLookup {
    Live(DataKey),
    /// No key: never made, or destroyed with its bucket.
    Gone,
}

/// One bucket as `keys status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketStatus {
    pub bucket: Bucket,
    pub keys: usize,
    pub generation: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("key vault I/O failed while {context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the OS random number generator failed")]
    Random,
    #[error("key vault cryptography failed: {0}")]
    Crypto(&'static str),
    #[error(
        "the wrapped key of {owner} does not open under its bucket's KEK (tampered or mixed-up vault files)"
    )]
    Unwrap { owner: KeyOwner },
    #[error("the key-encryption key of bucket {bucket} is missing")]
    MissingKek { bucket: Bucket },
    #[error(
        "bucket {0} can't be destroyed: held and restricted items are never destroyed as a bucket"
    )]
    HoldIsNotDestroyed(Bucket),
    #[error("{owner} has no key in the vault")]
    NoKey { owner: KeyOwner },
    #[error("key vault file {path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error(
        "the key vault in {0} is open in another process (one process at a time holds a vault: stop the other, e.g. `callvault serve`)"
    )]
    InUse(PathBuf),
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> VaultError {
    let context = context.into();
    move |source| VaultError::Io { context, source }
}

/// Where an owner's current wrapped key is.
#[derive(Clone)]
struct Entry {
    bucket: Bucket,
    record: Record,
}

struct State {
    index: HashMap<[u8; 17], Entry>,
    buckets: BTreeMap<Bucket, BucketFile>,
    next_seq: u64,
}

/// The key vault. Operations are synchronous and serialised; call them
/// from blocking tasks.
pub struct KeyVault {
    dir: PathBuf,
    keks: Box<dyn KekStore>,
    state: Mutex<State>,
    /// Held (an exclusive lock on `LOCK`) while the vault is open: its
    /// index and buckets live in this process's memory, so a second
    /// process writing the same folder would overwrite key files and keep
    /// using KEKs another has destroyed.
    _lock: std::fs::File,
}

fn wrap_nonce() -> Result<[u8; NONCE_LEN], VaultError> {
    let mut n = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut n).map_err(|_| VaultError::Random)?;
    Ok(n)
}

impl KeyVault {
    /// Opens (or creates) the vault in `dir`, with KEKs in files beside it.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, VaultError> {
        let dir = dir.as_ref().to_owned();
        kek::private_dir(&dir)?;
        let keks = FileKekStore::open(dir.join("kek"))?;
        Self::open_with(dir, Box::new(keks))
    }

    /// Opens the vault with another KEK store (a KMS, a test double).
    pub fn open_with(dir: PathBuf, keks: Box<dyn KekStore>) -> Result<Self, VaultError> {
        kek::private_dir(&dir)?;
        let lock_path = dir.join("LOCK");
        let mut options = std::fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let lock = options
            .open(&lock_path)
            .map_err(io_err(format!("opening {}", lock_path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(VaultError::InUse(dir)),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io_err(format!("locking {}", lock_path.display()))(e));
            }
        }
        let wrapped_dir = dir.join("wrapped");
        kek::private_dir(&wrapped_dir)?;
        let live = keks.list()?;
        let (files, without_kek) = wrapped::open_all(&wrapped_dir, &live)?;
        // A wrapped-key file without its KEK is what a purge leaves if it
        // stops between destroying the KEK and deleting the file — but only
        // for a day already due. For the hold bucket (never destroyed) or a
        // day still ahead it means KEKs are missing (a KEK folder or KMS not
        // there): opening would show those contacts as shredded. Refuse,
        // and touch nothing.
        let today = chrono::Utc::now().date_naive();
        let missing: Vec<&PathBuf> = without_kek
            .iter()
            .filter(|(b, _)| !matches!(b, Bucket::Expiry(day) if *day <= today))
            .map(|(_, p)| p)
            .collect();
        if let Some(first) = missing.first() {
            return Err(VaultError::Damaged {
                path: (*first).clone(),
                reason: format!(
                    "{} wrapped-key file(s) of buckets not yet due have no key-encryption key: is the KEK folder missing or not mounted? Nothing was changed",
                    missing.len()
                ),
            });
        }
        // Drop KEKs of generations superseded by a finished rotation or by
        // a rotation that never finished — only where the bucket's current
        // wrapped-key file is of another, live generation. A KEK whose
        // bucket has no file at all is left alone (never deleted because
        // a counterpart is missing).
        for (bucket, generation) in &live {
            if let Some(current) = files.get(bucket).map(|f| f.generation())
                && current != *generation
            {
                keks.destroy(*bucket, *generation)?;
            }
        }
        let mut index: HashMap<[u8; 17], Entry> = HashMap::new();
        let mut next_seq = 1;
        for (bucket, file) in &files {
            for record in file.records() {
                next_seq = next_seq.max(record.seq + 1);
                let newer = index
                    .get(&record.owner)
                    .is_none_or(|e| e.record.seq < record.seq);
                if newer {
                    index.insert(
                        record.owner,
                        Entry {
                            bucket: *bucket,
                            record: record.clone(),
                        },
                    );
                }
            }
        }
        let vault = Self {
            dir,
            keks,
            state: Mutex::new(State {
                index,
                buckets: files,
                next_seq,
            }),
            _lock: lock,
        };
        // A move interrupted after writing the new copy: drop stale copies.
        {
            let mut state = vault.lock()?;
            let stale: Vec<(Bucket, [u8; 17])> = state
                .buckets
                .iter()
                .flat_map(|(b, f)| f.records().map(move |r| (*b, r.owner, r.seq)))
                .filter(|(b, owner, seq)| {
                    state
                        .index
                        .get(owner)
                        .is_some_and(|e| e.bucket != *b || e.record.seq != *seq)
                })
                .map(|(b, owner, _)| (b, owner))
                .collect();
            for (bucket, owner) in stale {
                if let Some(file) = state.buckets.get_mut(&bucket) {
                    file.remove(&owner)?;
                }
            }
        }
        Ok(vault)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, VaultError> {
        self.state
            .lock()
            .map_err(|_| VaultError::Crypto("key vault lock poisoned"))
    }

    fn wrap(
        &self,
        bucket: Bucket,
        generation: u32,
        owner: KeyOwner,
        key: &DataKey,
        seq: u64,
    ) -> Result<Record, VaultError> {
        let nonce = wrap_nonce()?;
        let mut buf = key.0.to_vec();
        self.keks
            .wrap(bucket, generation, nonce, owner.aad().as_bytes(), &mut buf)?;
        let record = Record::new(owner.to_bytes(), seq, nonce, &buf);
        buf.zeroize();
        record
    }

    fn unwrap(
        &self,
        bucket: Bucket,
        generation: u32,
        owner: KeyOwner,
        record: &Record,
    ) -> Result<DataKey, VaultError> {
        let mut buf = record.ciphertext.to_vec();
        let opened = self.keks.unwrap(
            bucket,
            generation,
            record.nonce,
            owner.aad().as_bytes(),
            &mut buf,
        );
        let result = match opened {
            Ok(n) if n == KEY_LEN => {
                let mut k = [0u8; KEY_LEN];
                k.copy_from_slice(&buf[..KEY_LEN]);
                Ok(DataKey::from_bytes(k))
            }
            Ok(_) | Err(VaultError::Crypto(_)) => Err(VaultError::Unwrap { owner }),
            Err(e) => Err(e),
        };
        buf.zeroize();
        result
    }

    fn file<'a>(
        &self,
        state: &'a mut State,
        bucket: Bucket,
    ) -> Result<&'a mut BucketFile, VaultError> {
        match state.buckets.entry(bucket) {
            std::collections::btree_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::btree_map::Entry::Vacant(slot) => {
                let generation = 1;
                self.keks.create(bucket, generation)?;
                let file = BucketFile::create(&self.dir.join("wrapped"), bucket, generation)?;
                Ok(slot.insert(file))
            }
        }
    }

    fn generation(state: &State, bucket: Bucket) -> Result<u32, VaultError> {
        state
            .buckets
            .get(&bucket)
            .map(BucketFile::generation)
            .ok_or(VaultError::MissingKek { bucket })
    }

    /// The owner's key, made (and durably stored) in `bucket` if it has
    /// none yet.
    pub fn create_key(&self, owner: KeyOwner, bucket: Bucket) -> Result<DataKey, VaultError> {
        let mut state = self.lock()?;
        if let Some(entry) = state.index.get(&owner.to_bytes()).cloned() {
            let generation = Self::generation(&state, entry.bucket)?;
            return self.unwrap(entry.bucket, generation, owner, &entry.record);
        }
        let key = DataKey::random()?;
        let seq = state.next_seq;
        let generation = self.file(&mut state, bucket)?.generation();
        let record = self.wrap(bucket, generation, owner, &key, seq)?;
        self.file(&mut state, bucket)?.append(&record)?;
        state.next_seq += 1;
        state
            .index
            .insert(owner.to_bytes(), Entry { bucket, record });
        Ok(key)
    }

    /// The owner's key if it still exists.
    pub fn key(&self, owner: KeyOwner) -> Result<KeyLookup, VaultError> {
        let found = {
            let state = self.lock()?;
            match state.index.get(&owner.to_bytes()).cloned() {
                Some(e) => Some((Self::generation(&state, e.bucket)?, e)),
                None => None,
            }
        };
        match found {
            Some((generation, e)) => self
                .unwrap(e.bucket, generation, owner, &e.record)
                .map(KeyLookup::Live),
            None => Ok(KeyLookup::Gone),
        }
    }

    pub fn bucket_of(&self, owner: KeyOwner) -> Result<Option<Bucket>, VaultError> {
        Ok(self.lock()?.index.get(&owner.to_bytes()).map(|e| e.bucket))
    }

    /// Every owner whose key is in `bucket`.
    pub fn owners_in(&self, bucket: Bucket) -> Result<Vec<KeyOwner>, VaultError> {
        let state = self.lock()?;
        let mut owners: Vec<KeyOwner> = state
            .index
            .iter()
            .filter(|(_, e)| e.bucket == bucket)
            .filter_map(|(o, _)| KeyOwner::from_bytes(*o))
            .collect();
        owners.sort();
        Ok(owners)
    }

    /// Re-wraps the owner's key under `to`'s KEK. The new copy is durable
    /// before the old one is removed, so a crash never loses the key.
    pub fn move_to(&self, owner: KeyOwner, to: Bucket) -> Result<(), VaultError> {
        let mut state = self.lock()?;
        let entry = state
            .index
            .get(&owner.to_bytes())
            .cloned()
            .ok_or(VaultError::NoKey { owner })?;
        if entry.bucket == to {
            return Ok(());
        }
        let key = self.unwrap(
            entry.bucket,
            Self::generation(&state, entry.bucket)?,
            owner,
            &entry.record,
        )?;
        let seq = state.next_seq;
        let generation = self.file(&mut state, to)?.generation();
        let record = self.wrap(to, generation, owner, &key, seq)?;
        self.file(&mut state, to)?.append(&record)?;
        state.next_seq += 1;
        state
            .index
            .insert(owner.to_bytes(), Entry { bucket: to, record });
        if let Some(old) = state.buckets.get_mut(&entry.bucket) {
            old.remove(&owner.to_bytes())?;
        }
        Ok(())
    }

    /// Destroys `bucket`'s KEK — every key in it is gone for good — then
    /// deletes its wrapped-key file. Returns how many keys were destroyed.
    pub fn destroy_bucket(&self, bucket: Bucket) -> Result<usize, VaultError> {
        if bucket == Bucket::Hold {
            return Err(VaultError::HoldIsNotDestroyed(bucket));
        }
        let mut state = self.lock()?;
        let Some(file) = state.buckets.get(&bucket) else {
            return Ok(0);
        };
        let (n, generation) = (file.len(), file.generation());
        // Forget the keys first, so no lookup can unwrap one from here on.
        state.index.retain(|_, e| e.bucket != bucket);
        // The bucket is let go only once its KEK is destroyed: if that
        // fails, the next run finds the bucket still there and tries again.
        self.keks.destroy(bucket, generation)?;
        if let Some(file) = state.buckets.remove(&bucket) {
            file.delete()?;
        }
        Ok(n)
    }

    /// Re-wraps every key of `bucket` under a fresh KEK, then destroys the
    /// old KEK (routine rotation; also makes stale copies of moved-out keys
    /// unreadable).
    pub fn rotate(&self, bucket: Bucket) -> Result<usize, VaultError> {
        let mut state = self.lock()?;
        let Some(old) = state.buckets.get(&bucket) else {
            return Ok(0);
        };
        let old_generation = old.generation();
        // Only the owners' current copies: a stale one (left by a move
        // whose clean-up failed) is not carried over, so the old KEK's
        // destruction makes it unreadable, as a rotation should.
        let owners: Vec<(KeyOwner, Record)> = old
            .records()
            .filter(|r| {
                state
                    .index
                    .get(&r.owner)
                    .is_some_and(|e| e.bucket == bucket && e.record.seq == r.seq)
            })
            .filter_map(|r| KeyOwner::from_bytes(r.owner).map(|o| (o, r.clone())))
            .collect();
        let generation = old_generation + 1;
        self.keks.create(bucket, generation)?;
        let mut rewrapped = Vec::with_capacity(owners.len());
        for (owner, record) in &owners {
            let key = self.unwrap(bucket, old_generation, *owner, record)?;
            rewrapped.push(self.wrap(bucket, generation, *owner, &key, record.seq)?);
        }
        let file =
            BucketFile::write_all(&self.dir.join("wrapped"), bucket, generation, &rewrapped)?;
        let old = state.buckets.insert(bucket, file);
        for r in rewrapped {
            if let Some(e) = state.index.get_mut(&r.owner)
                && e.bucket == bucket
            {
                e.record = r;
            }
        }
        self.keks.destroy(bucket, old_generation)?;
        if let Some(old) = old {
            old.delete()?;
        }
        Ok(owners.len())
    }

    /// Every bucket with its key count, oldest first.
    pub fn status(&self) -> Result<Vec<BucketStatus>, VaultError> {
        let state = self.lock()?;
        Ok(state
            .buckets
            .iter()
            .map(|(b, f)| BucketStatus {
                bucket: *b,
                keys: f.len(),
                generation: f.generation(),
            })
            .collect())
    }
}
