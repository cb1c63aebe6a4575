//! The write-ahead log on a full disk: a write that fails is never replayed,
//! every acknowledged one is, and the log takes writes again once there is
//! room. On a small tmpfs the test mounts (it says it skipped when it
//! can't: mounting needs root).

use std::{path::Path, process::Command};

use callvault_store::wal::{Ops, Wal};

/// A tmpfs of `size` mounted on `at`, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        out.status
            .success()
            .then(|| Self(at.to_owned()))
            .ok_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount to {size}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn batch(n: u32) -> Ops {
    vec![(n.to_be_bytes().to_vec(), vec![n as u8; 10_000])]
}

/// Appends until the disk is full; returns the batches acknowledged.
fn fill(wal: &mut Wal) -> Vec<Ops> {
    let mut acked = Vec::new();
    for n in 0..1000 {
        match wal.append(&batch(n)) {
            Ok(()) => acked.push(batch(n)),
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains("write-ahead log"), "{text}");
                return acked;
            }
        }
    }
    panic!("a 256 KiB disk never filled");
}

fn check(open: impl Fn(&Path) -> (Wal, Vec<Ops>), label: &str) {
    let base = tempfile::tempdir().unwrap();
    let fs = match Tmpfs::mount(&base.path().join("fs"), "256k") {
        Ok(fs) => fs,
        Err(why) => {
            println!("skipped: can't mount a small tmpfs here (needs root): {why}");
            return;
        }
    };
    let (mut wal, _) = open(&fs.0);
    let mut acked = fill(&mut wal);
    assert!(!acked.is_empty(), "{label}: some writes fit");
    // Still full: refused again.
    assert!(wal.append(&batch(9999)).is_err(), "{label}");
    // Room again: the same log takes writes where the acknowledged ones
    // end, and nothing of the refused ones comes back.
    fs.resize("4m");
    wal.append(&batch(5000)).unwrap();
    acked.push(batch(5000));
    drop(wal);
    let (_, replayed) = open(&fs.0);
    assert_eq!(replayed, acked, "{label}: exactly the acknowledged writes");
}

#[test]
fn a_log_cut_back_when_emptied_loses_nothing_acknowledged_on_a_full_disk() {
    check(|dir| Wal::open(dir).unwrap(), "cut back");
}

#[test]
fn a_preallocated_log_loses_nothing_acknowledged_on_a_full_disk() {
    check(
        |dir| Wal::open_preallocated(dir, 64 * 1024, 128 * 1024).unwrap(),
        "preallocated",
    );
}
