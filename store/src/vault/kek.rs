//! Key-encryption keys: the one secret per bucket that must really
//! disappear for crypto-shredding. [`KekStore`] is shaped like a KMS — it
//! wraps and unwraps, it never hands a KEK out — so a KMS or an HSM can
//! stand behind it later. [`FileKekStore`] keeps each KEK in its own small
//! file, `<bucket>.g<generation>.kek`, owner-only (0600 in a 0700 folder).
//!
//! Destroying a KEK overwrites its file with zeros, syncs, unlinks it and
//! syncs the folder. On a journalling or copy-on-write filesystem, or an
//! SSD, the old blocks may survive physically; that is the accepted limit
//! of file-based KEKs (a KMS removes it) and is stated in SECURITY.md.

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::Mutex,
};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use super::{Bucket, KEY_LEN, VaultError, io_err};

const MAGIC: &[u8; 8] = b"CVKEK\x00\x00\x01";

/// Where KEKs live and how they are used.
pub trait KekStore: Send + Sync {
    /// Every KEK that exists: (bucket, generation).
    fn list(&self) -> Result<Vec<(Bucket, u32)>, VaultError>;
    /// Makes a new KEK for `bucket` at `generation`.
    fn create(&self, bucket: Bucket, generation: u32) -> Result<(), VaultError>;
    /// Seals `buf` in place (the tag is appended).
    fn wrap(
        &self,
        bucket: Bucket,
        generation: u32,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), VaultError>;
    /// Opens `buf` in place; returns the plaintext length. An
    /// authentication failure is `VaultError::Crypto`.
    fn unwrap(
        &self,
        bucket: Bucket,
        generation: u32,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<usize, VaultError>;
    /// Destroys a KEK for good. Destroying one that does not exist is not
    /// an error.
    fn destroy(&self, bucket: Bucket, generation: u32) -> Result<(), VaultError>;
}

/// Creates `dir` if needed and makes it owner-only.
pub(crate) fn private_dir(dir: &Path) -> Result<(), VaultError> {
    std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(format!("restricting {}", dir.display())))?;
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), VaultError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("syncing folder {}", dir.display())))
}

/// Creates a file readable and writable by its owner only.
pub(crate) fn private_file(path: &Path) -> Result<File, VaultError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map_err(io_err(format!("creating {}", path.display())))
}

/// KEKs read so far, by bucket and generation; zeroized when dropped.
type KekCache = HashMap<(Bucket, u32), Zeroizing<[u8; KEY_LEN]>>;

/// KEKs in files.
pub struct FileKekStore {
    dir: PathBuf,
    cache: Mutex<KekCache>,
}

impl FileKekStore {
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, VaultError> {
        let dir = dir.as_ref().to_owned();
        private_dir(&dir)?;
        // A KEK write interrupted before its rename never held a key in use.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "tmp") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(Self {
            dir,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn path(&self, bucket: Bucket, generation: u32) -> PathBuf {
        self.dir
            .join(format!("{}.g{generation}.kek", bucket.name()))
    }

    fn aead(&self, bucket: Bucket, generation: u32) -> Result<LessSafeKey, VaultError> {
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| VaultError::Crypto("KEK cache lock poisoned"))?;
        let k = match cache.entry((bucket, generation)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let path = self.path(bucket, generation);
                let bytes = Zeroizing::new(match std::fs::read(&path) {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(VaultError::MissingKek { bucket });
                    }
                    Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
                });
                if bytes.len() != MAGIC.len() + KEY_LEN || &bytes[..MAGIC.len()] != MAGIC {
                    return Err(VaultError::Damaged {
                        path,
                        reason: "not a callvault KEK file".into(),
                    });
                }
                let mut k = Zeroizing::new([0u8; KEY_LEN]);
                k.copy_from_slice(&bytes[MAGIC.len()..]);
                slot.insert(k)
            }
        };
        UnboundKey::new(&AES_256_GCM, k.as_slice())
            .map(LessSafeKey::new)
            .map_err(|_| VaultError::Crypto("building a KEK"))
    }
}

impl KekStore for FileKekStore {
    fn list(&self) -> Result<Vec<(Bucket, u32)>, VaultError> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir)
            .map_err(io_err(format!("listing {}", self.dir.display())))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".kek") else {
                continue;
            };
            let Some((bucket, generation)) = stem.rsplit_once(".g") else {
                continue;
            };
            if let (Some(b), Ok(g)) = (Bucket::parse(bucket), generation.parse()) {
                out.push((b, g));
            }
        }
        out.sort();
        Ok(out)
    }

    fn create(&self, bucket: Bucket, generation: u32) -> Result<(), VaultError> {
        let path = self.path(bucket, generation);
        let tmp = path.with_extension("tmp");
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        aws_lc_rs::rand::fill(key.as_mut_slice()).map_err(|_| VaultError::Random)?;
        let mut contents = Zeroizing::new(Vec::with_capacity(MAGIC.len() + KEY_LEN));
        contents.extend_from_slice(MAGIC);
        contents.extend_from_slice(key.as_slice());
        let _ = std::fs::remove_file(&tmp);
        let mut f = private_file(&tmp)?;
        f.write_all(&contents)
            .and_then(|()| f.sync_all())
            .map_err(io_err(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io_err(format!("naming {}", path.display())))?;
        sync_dir(&self.dir)
    }

    fn wrap(
        &self,
        bucket: Bucket,
        generation: u32,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), VaultError> {
        self.aead(bucket, generation)?
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .map_err(|_| VaultError::Crypto("wrapping a key"))
    }

    fn unwrap(
        &self,
        bucket: Bucket,
        generation: u32,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<usize, VaultError> {
        let key = self.aead(bucket, generation)?;
        let plain = key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .map_err(|_| VaultError::Crypto("unwrapping a key"))?;
        Ok(plain.len())
    }

    fn destroy(&self, bucket: Bucket, generation: u32) -> Result<(), VaultError> {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(&(bucket, generation));
        }
        let path = self.path(bucket, generation);
        match OpenOptions::new().write(true).open(&path) {
            Ok(mut f) => {
                f.write_all(&[0u8; MAGIC.len() + KEY_LEN])
                    .and_then(|()| f.sync_all())
                    .map_err(io_err(format!("overwriting {}", path.display())))?;
            }
            // Gone already (a retry after a failed folder sync, say): make
            // its removal durable.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return sync_dir(&self.dir),
            Err(e) => return Err(io_err(format!("opening {}", path.display()))(e)),
        }
        std::fs::remove_file(&path).map_err(io_err(format!("removing {}", path.display())))?;
        sync_dir(&self.dir)
    }
}
