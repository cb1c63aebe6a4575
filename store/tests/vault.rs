//! The key vault: keys survive reopening, destroyed buckets leave no key
//! material in any file, moves and rotations never lose a live key.

use std::path::Path;

use callvault_domain::{CallId, ContactRef, RecordingId};
use callvault_store::vault::{Bucket, KeyLookup, KeyOwner, KeyVault};
use chrono::NaiveDate;

fn day(d: u32) -> Bucket {
    Bucket::Expiry(NaiveDate::from_ymd_opt(2027, 3, d).unwrap())
}

fn rec(n: u128) -> KeyOwner {
    KeyOwner::Recording(RecordingId(uuid::Uuid::from_u128(n)))
}

fn call(n: u128) -> KeyOwner {
    KeyOwner::Contact(ContactRef::Call(CallId(uuid::Uuid::from_u128(n))))
}

fn live(vault: &KeyVault, owner: KeyOwner) -> [u8; 32] {
    match vault.key(owner).unwrap() {
        KeyLookup::Live(k) => k.secret_bytes_for_audit(),
        KeyLookup::Gone => panic!("{owner} has no key"),
    }
}

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

fn occurs(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn keys_are_made_once_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = {
        let vault = KeyVault::open(dir.path()).unwrap();
        let a = vault
            .create_key(rec(1), day(3))
            .unwrap()
            .secret_bytes_for_audit();
        let again = vault
            .create_key(rec(1), day(4))
            .unwrap()
            .secret_bytes_for_audit();
        assert_eq!(a, again, "a second create returns the same key");
        assert_eq!(vault.bucket_of(rec(1)).unwrap(), Some(day(3)));
        let b = vault
            .create_key(call(1), day(3))
            .unwrap()
            .secret_bytes_for_audit();
        assert_ne!(a, b);
        (a, b)
    };
    let vault = KeyVault::open(dir.path()).unwrap();
    assert_eq!(live(&vault, rec(1)), a);
    assert_eq!(live(&vault, call(1)), b);
    assert!(matches!(vault.key(rec(9)).unwrap(), KeyLookup::Gone));
    assert_eq!(vault.owners_in(day(3)).unwrap().len(), 2);
}

#[test]
fn a_destroyed_bucket_leaves_no_key_material_in_any_file() {
    let dir = tempfile::tempdir().unwrap();
    let vault = KeyVault::open(dir.path()).unwrap();
    let doomed = vault
        .create_key(rec(1), day(3))
        .unwrap()
        .secret_bytes_for_audit();
    let kept = vault
        .create_key(rec(2), day(4))
        .unwrap()
        .secret_bytes_for_audit();
    let kek_file = files(&dir.path().join("kek"))
        .into_iter()
        .find(|(p, _)| p.to_string_lossy().contains("2027-03-03"))
        .unwrap();
    let kek = kek_file.1[8..].to_vec();
    assert_eq!(vault.destroy_bucket(day(3)).unwrap(), 1);
    assert!(matches!(vault.key(rec(1)).unwrap(), KeyLookup::Gone));
    assert_eq!(live(&vault, rec(2)), kept);
    for (path, bytes) in files(dir.path()) {
        assert!(
            !occurs(&bytes, &doomed),
            "the destroyed DEK is in {}",
            path.display()
        );
        assert!(
            !occurs(&bytes, &kek),
            "the destroyed KEK is in {}",
            path.display()
        );
    }
    drop(vault);
    let vault = KeyVault::open(dir.path()).unwrap();
    assert!(matches!(vault.key(rec(1)).unwrap(), KeyLookup::Gone));
    assert!(
        vault.destroy_bucket(Bucket::Hold).is_err(),
        "the hold bucket is never destroyed"
    );
}

#[test]
fn a_key_moved_to_hold_outlives_its_old_bucket_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let vault = KeyVault::open(dir.path()).unwrap();
    let key = vault
        .create_key(rec(1), day(3))
        .unwrap()
        .secret_bytes_for_audit();
    vault.create_key(rec(2), day(3)).unwrap();
    vault.move_to(rec(1), Bucket::Hold).unwrap();
    vault.destroy_bucket(day(3)).unwrap();
    assert_eq!(live(&vault, rec(1)), key, "a held key survives its bucket");
    assert!(matches!(vault.key(rec(2)).unwrap(), KeyLookup::Gone));
    vault.move_to(rec(1), day(9)).unwrap();
    assert!(vault.owners_in(Bucket::Hold).unwrap().is_empty());
    drop(vault);
    let vault = KeyVault::open(dir.path()).unwrap();
    assert_eq!(vault.bucket_of(rec(1)).unwrap(), Some(day(9)));
    assert_eq!(live(&vault, rec(1)), key);
}

#[test]
fn a_move_interrupted_after_the_new_copy_keeps_exactly_one_copy() {
    let dir = tempfile::tempdir().unwrap();
    let old_file = dir.path().join("wrapped/2027-03-03.g1.keys");
    let key = {
        let vault = KeyVault::open(dir.path()).unwrap();
        let key = vault
            .create_key(rec(1), day(3))
            .unwrap()
            .secret_bytes_for_audit();
        let before = std::fs::read(&old_file).unwrap();
        vault.move_to(rec(1), Bucket::Hold).unwrap();
        // A crash after the new copy was written but before the old one was
        // removed leaves both: put the old file back as it was.
        std::fs::write(&old_file, before).unwrap();
        key
    };
    let vault = KeyVault::open(dir.path()).unwrap();
    assert_eq!(
        vault.bucket_of(rec(1)).unwrap(),
        Some(Bucket::Hold),
        "the newer copy wins"
    );
    assert_eq!(live(&vault, rec(1)), key);
    assert!(
        std::fs::read(&old_file).unwrap().is_empty(),
        "the stale copy is removed at open"
    );
    // Destroying the old bucket can't take the held key with it.
    vault.destroy_bucket(day(3)).unwrap();
    assert_eq!(live(&vault, rec(1)), key);
}

#[test]
fn rotation_keeps_keys_and_destroys_the_old_kek() {
    let dir = tempfile::tempdir().unwrap();
    let vault = KeyVault::open(dir.path()).unwrap();
    let a = vault
        .create_key(rec(1), day(3))
        .unwrap()
        .secret_bytes_for_audit();
    let b = vault
        .create_key(call(1), day(3))
        .unwrap()
        .secret_bytes_for_audit();
    let old_kek = std::fs::read(dir.path().join("kek/2027-03-03.g1.kek")).unwrap();
    assert_eq!(vault.rotate(day(3)).unwrap(), 2);
    assert_eq!(live(&vault, rec(1)), a);
    assert_eq!(live(&vault, call(1)), b);
    assert!(!dir.path().join("kek/2027-03-03.g1.kek").exists());
    for (path, bytes) in files(dir.path()) {
        assert!(
            !occurs(&bytes, &old_kek[8..]),
            "old KEK in {}",
            path.display()
        );
    }
    drop(vault);
    let vault = KeyVault::open(dir.path()).unwrap();
    assert_eq!(live(&vault, rec(1)), a);
    assert_eq!(vault.status().unwrap()[0].generation, 2);
}

#[test]
fn a_rotation_that_never_finished_is_rolled_back_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let key = {
        let vault = KeyVault::open(dir.path()).unwrap();
        vault
            .create_key(rec(1), day(3))
            .unwrap()
            .secret_bytes_for_audit()
    };
    // A crash after the new KEK was made but before the re-wrapped file was
    // named: a generation-2 KEK with no key file.
    std::fs::copy(
        dir.path().join("kek/2027-03-03.g1.kek"),
        dir.path().join("kek/2027-03-03.g2.kek"),
    )
    .unwrap();
    std::fs::write(dir.path().join("wrapped/2027-03-03.g2.tmp"), b"partial").unwrap();
    let vault = KeyVault::open(dir.path()).unwrap();
    assert_eq!(live(&vault, rec(1)), key);
    assert!(!dir.path().join("kek/2027-03-03.g2.kek").exists());
    assert!(!dir.path().join("wrapped/2027-03-03.g2.tmp").exists());
}

/// A closed vault with `n` recordings' keys in one bucket; the first key.
fn vault_of(dir: &Path, n: u128) -> [u8; 32] {
    let vault = KeyVault::open(dir).unwrap();
    let key = vault
        .create_key(rec(1), day(3))
        .unwrap()
        .secret_bytes_for_audit();
    for i in 2..=n {
        vault.create_key(rec(i), day(3)).unwrap();
    }
    key
}

#[test]
fn a_torn_key_record_is_cut_off_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let key = vault_of(dir.path(), 2);
    let path = dir.path().join("wrapped/2027-03-03.g1.keys");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let vault = KeyVault::open(dir.path()).unwrap();
    assert_eq!(live(&vault, rec(1)), key);
    assert!(matches!(vault.key(rec(2)).unwrap(), KeyLookup::Gone));
}

#[cfg(unix)]
#[test]
fn vault_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let vault = KeyVault::open(dir.path()).unwrap();
    vault.create_key(rec(1), day(3)).unwrap();
    for sub in ["", "kek", "wrapped"] {
        let mode = std::fs::metadata(dir.path().join(sub))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "folder {sub}");
    }
    for (path, _) in files(dir.path()) {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
}

/// File KEKs whose next `destroy` fails once (a full disk, say).
struct FailingDestroy {
    inner: callvault_store::vault::FileKekStore,
    fail_next: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl callvault_store::vault::KekStore for FailingDestroy {
    fn list(&self) -> Result<Vec<(Bucket, u32)>, callvault_store::vault::VaultError> {
        self.inner.list()
    }
    fn create(
        &self,
        bucket: Bucket,
        generation: u32,
    ) -> Result<(), callvault_store::vault::VaultError> {
        self.inner.create(bucket, generation)
    }
    fn wrap(
        &self,
        bucket: Bucket,
        generation: u32,
        nonce: [u8; 12],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), callvault_store::vault::VaultError> {
        self.inner.wrap(bucket, generation, nonce, aad, buf)
    }
    fn unwrap(
        &self,
        bucket: Bucket,
        generation: u32,
        nonce: [u8; 12],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<usize, callvault_store::vault::VaultError> {
        self.inner.unwrap(bucket, generation, nonce, aad, buf)
    }
    fn destroy(
        &self,
        bucket: Bucket,
        generation: u32,
    ) -> Result<(), callvault_store::vault::VaultError> {
        if self
            .fail_next
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(callvault_store::vault::VaultError::Io {
                context: "overwriting a KEK".into(),
                source: std::io::Error::other("injected failure"),
            });
        }
        self.inner.destroy(bucket, generation)
    }
}

#[test]
fn a_bucket_whose_kek_could_not_be_destroyed_is_destroyed_by_the_next_try() {
    let dir = tempfile::tempdir().unwrap();
    let fail_next = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let vault = KeyVault::open_with(
        dir.path().to_owned(),
        Box::new(FailingDestroy {
            inner: callvault_store::vault::FileKekStore::open(dir.path().join("kek")).unwrap(),
            fail_next,
        }),
    )
    .unwrap();
    vault.create_key(rec(1), day(3)).unwrap();
    assert!(vault.destroy_bucket(day(3)).is_err());
    // Its keys are already unusable, and the bucket is still listed, so
    // the next run tries again...
    assert!(matches!(vault.key(rec(1)).unwrap(), KeyLookup::Gone));
    assert!(vault.status().unwrap().iter().any(|s| s.bucket == day(3)));
    let kek_files = || -> Vec<String> {
        std::fs::read_dir(dir.path().join("kek"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert!(kek_files().iter().any(|k| k.starts_with("2027-03-03")));
    vault.destroy_bucket(day(3)).unwrap();
    // ...and then no KEK file of it is left.
    assert!(!vault.status().unwrap().iter().any(|s| s.bucket == day(3)));
    let keks = kek_files();
    assert!(
        keks.iter().all(|k| !k.starts_with("2027-03-03")),
        "{keks:?}"
    );
}

#[test]
fn a_second_opener_of_a_vault_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = KeyVault::open(dir.path()).unwrap();
    first.create_key(rec(1), day(3)).unwrap();
    // Its index lives in the first opener's memory: a second writer would
    // replace key files under it.
    let Err(e) = KeyVault::open(dir.path()) else {
        panic!("a second opener got the vault");
    };
    assert!(e.to_string().contains("open in another process"), "{e}");
    drop(first);
    let again = KeyVault::open(dir.path()).unwrap();
    assert!(matches!(again.key(rec(1)).unwrap(), KeyLookup::Live(_)));
}

#[test]
fn a_missing_kek_folder_or_a_damaged_record_refuses_to_open_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = vault_of(dir.path(), 3);
    let wrapped = dir.path().join("wrapped/2027-03-03.g1.keys");
    let before = std::fs::read(&wrapped).unwrap();

    // The KEK folder is not there (an unmounted volume, say).
    let kek = dir.path().join("kek");
    let aside = dir.path().join("kek-aside");
    std::fs::rename(&kek, &aside).unwrap();
    let Err(e) = KeyVault::open(dir.path()) else {
        panic!("a vault without any KEK opened");
    };
    assert!(
        e.to_string()
            .contains("not yet due have no key-encryption key"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(&wrapped).unwrap(),
        before,
        "no key file touched"
    );
    std::fs::remove_dir_all(&kek).ok();
    std::fs::rename(&aside, &kek).unwrap();

    // One flipped byte in the middle record: damage, not a torn tail.
    let mut damaged = before.clone();
    let middle = before.len() / 3 + before.len() / 6;
    damaged[middle] ^= 0xff;
    std::fs::write(&wrapped, &damaged).unwrap();
    let Err(e) = KeyVault::open(dir.path()) else {
        panic!("a damaged key file opened");
    };
    assert!(e.to_string().contains("records follow it"), "{e}");
    assert_eq!(std::fs::read(&wrapped).unwrap(), damaged, "nothing cut off");

    // Repaired (from a backup), everything is there again.
    std::fs::write(&wrapped, &before).unwrap();
    let vault = KeyVault::open(dir.path()).unwrap();
    assert_eq!(live(&vault, rec(1)), key);
    assert!(matches!(vault.key(rec(3)).unwrap(), KeyLookup::Live(_)));
}

#[test]
fn a_purge_stopped_between_kek_and_key_file_leaves_a_vault_that_opens() {
    let dir = tempfile::tempdir().unwrap();
    let past = Bucket::Expiry(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
    {
        let vault = KeyVault::open(dir.path()).unwrap();
        vault.create_key(rec(1), past).unwrap();
    }
    // The KEK was destroyed; the wrapped-key file was not yet deleted.
    std::fs::remove_file(dir.path().join("kek/2026-01-01.g1.kek")).unwrap();
    let vault = KeyVault::open(dir.path()).unwrap();
    assert!(matches!(vault.key(rec(1)).unwrap(), KeyLookup::Gone));
    assert!(
        dir.path().join("wrapped/2026-01-01.g1.keys").exists(),
        "left alone"
    );
}

/// A move whose clean-up failed leaves a stale copy in the old bucket while
/// the vault runs. Rotating that bucket must not carry the copy over: it
/// would outlive the key's destruction in its new bucket and, at the next
/// open, be taken for the key.
#[test]
fn a_rotation_does_not_carry_over_the_stale_copy_of_a_failed_move() {
    let dir = tempfile::tempdir().unwrap();
    let vault = KeyVault::open(dir.path()).unwrap();
    vault.create_key(rec(1), day(3)).unwrap();
    let other = vault
        .create_key(rec(2), day(3))
        .unwrap()
        .secret_bytes_for_audit();
    // Removing the old copy rewrites the bucket's file through a temporary
    // file; a folder in its place makes that fail (as root too).
    let blocker = dir.path().join("wrapped/2027-03-03.g1.tmp");
    std::fs::create_dir(&blocker).unwrap();
    assert!(
        vault.move_to(rec(1), Bucket::Hold).is_err(),
        "the clean-up of the move fails"
    );
    std::fs::remove_dir(&blocker).unwrap();
    assert_eq!(vault.bucket_of(rec(1)).unwrap(), Some(Bucket::Hold));

    assert_eq!(
        vault.rotate(day(3)).unwrap(),
        1,
        "only the bucket's own key is re-wrapped"
    );
    assert_eq!(live(&vault, rec(2)), other);
    // The key leaves the hold for a bucket that is then destroyed: gone,
    // also after reopening.
    vault.move_to(rec(1), day(9)).unwrap();
    vault.destroy_bucket(day(9)).unwrap();
    assert!(matches!(vault.key(rec(1)).unwrap(), KeyLookup::Gone));
    drop(vault);
    let vault = KeyVault::open(dir.path()).unwrap();
    assert!(
        matches!(vault.key(rec(1)).unwrap(), KeyLookup::Gone),
        "no copy of the destroyed key came back"
    );
    assert_eq!(live(&vault, rec(2)), other);
}
