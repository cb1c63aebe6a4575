//! Typed rows in a transaction: read once, written once at commit with
//! their index entries replaced, and seen by every other read of the
//! transaction.

use callvault_store::Position;
use serde::{Deserialize, Serialize};

use super::{BuildMeta, Row, ViewDb};

/// A row indexed under `i<tag>` while it has a tag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Tagged {
    tag: Option<String>,
    count: u32,
}

impl Row for Tagged {
    fn index_keys(&self, key: &[u8]) -> Vec<Vec<u8>> {
        self.tag
            .iter()
            .map(|t| [b"i", t.as_bytes(), b"/", key].concat())
            .collect()
    }
}

fn open() -> (tempfile::TempDir, ViewDb) {
    let dir = tempfile::tempdir().unwrap();
    let view = ViewDb::open(
        dir.path(),
        BuildMeta {
            name: "test".into(),
            version: 1,
            config: String::new(),
        },
        crate::view::DEFAULT_CACHE_BYTES,
    )
    .unwrap();
    (dir, view)
}

fn keys(view: &ViewDb, prefix: &[u8]) -> Vec<String> {
    view.scan(prefix, None, false)
        .map(|e| String::from_utf8(e.unwrap().0).unwrap())
        .collect()
}

#[test]
fn a_row_changed_by_many_events_is_written_once_with_its_index_entries() {
    let (_dir, view) = open();
    let mut tx = view.tx();
    tx.insert_row(
        b"r1".to_vec(),
        Tagged {
            tag: Some("a".into()),
            count: 0,
        },
    )
    .unwrap();
    for _ in 0..3 {
        tx.row_mut::<Tagged>(b"r1").unwrap().unwrap().count += 1;
    }
    // Other reads in the transaction see the row as it is now.
    let seen: Tagged = tx.get_json(b"r1").unwrap().unwrap();
    assert_eq!(seen.count, 3);
    assert_eq!(tx.scan_keys(b"r").unwrap(), vec![b"r1".to_vec()]);
    assert_eq!(tx.pending(), 1);
    assert_eq!(view.get(b"r1").unwrap(), None, "nothing before commit");
    tx.commit(Position::sequence(7)).unwrap();

    let stored: Tagged = view.get_json(b"r1").unwrap().unwrap();
    assert_eq!(stored.count, 3);
    assert_eq!(keys(&view, b"i"), vec!["ia/r1"]);
    assert_eq!(view.checkpoint().unwrap(), Some(Position::sequence(7)));
}

#[test]
fn a_changed_row_replaces_its_stored_index_entries() {
    let (_dir, view) = open();
    let mut tx = view.tx();
    tx.insert_row(
        b"r1".to_vec(),
        Tagged {
            tag: Some("a".into()),
            count: 0,
        },
    )
    .unwrap();
    tx.insert_row(b"r2".to_vec(), Tagged::default()).unwrap();
    tx.commit(Position::sequence(1)).unwrap();
    assert_eq!(keys(&view, b"i"), vec!["ia/r1"]);

    // A later transaction loads the stored rows and changes their tags.
    let mut tx = view.tx();
    tx.row_mut::<Tagged>(b"r1").unwrap().unwrap().tag = Some("b".into());
    tx.row_mut::<Tagged>(b"r2").unwrap().unwrap().tag = Some("c".into());
    assert!(tx.row_mut::<Tagged>(b"r3").unwrap().is_none());
    tx.commit(Position::sequence(2)).unwrap();
    assert_eq!(keys(&view, b"i"), vec!["ib/r1", "ic/r2"]);

    // Dropping a tag drops its entry.
    let mut tx = view.tx();
    tx.row_mut::<Tagged>(b"r1").unwrap().unwrap().tag = None;
    tx.commit(Position::sequence(3)).unwrap();
    assert_eq!(keys(&view, b"i"), vec!["ic/r2"]);
}

#[test]
fn replacing_a_row_held_by_the_transaction_keeps_the_stored_index_to_replace() {
    let (_dir, view) = open();
    let mut tx = view.tx();
    tx.insert_row(
        b"r1".to_vec(),
        Tagged {
            tag: Some("a".into()),
            count: 1,
        },
    )
    .unwrap();
    tx.commit(Position::sequence(1)).unwrap();

    let mut tx = view.tx();
    let mut row = tx.row_mut::<Tagged>(b"r1").unwrap().unwrap().clone();
    row.tag = Some("z".into());
    tx.insert_row(b"r1".to_vec(), row).unwrap();
    tx.commit(Position::sequence(2)).unwrap();
    assert_eq!(keys(&view, b"i"), vec!["iz/r1"], "the old entry is gone");
}

#[test]
fn row_or_default_creates_a_missing_row() {
    let (_dir, view) = open();
    let mut tx = view.tx();
    tx.row_or_default::<Tagged>(b"d1").unwrap().count += 2;
    tx.row_or_default::<Tagged>(b"d1").unwrap().count += 3;
    tx.commit(Position::sequence(1)).unwrap();
    let stored: Tagged = view.get_json(b"d1").unwrap().unwrap();
    assert_eq!(stored.count, 5);
}

#[test]
fn a_raw_write_over_a_row_takes_its_place_and_a_row_of_another_type_is_an_error() {
    let (_dir, view) = open();
    let mut tx = view.tx();
    tx.insert_row(b"r1".to_vec(), Tagged::default()).unwrap();
    tx.put(b"r1".to_vec(), b"{\"tag\":null,\"count\":9}".to_vec());
    let row = tx.row_mut::<Tagged>(b"r1").unwrap().unwrap();
    assert_eq!(row.count, 9);
    #[derive(Debug, Default, Serialize, Deserialize)]
    struct Other {
        tag: Option<String>,
        count: u32,
    }
    impl Row for Other {}
    let err = tx.row_mut::<Other>(b"r1").unwrap_err();
    assert!(err.to_string().contains("two types"), "{err}");
}

#[test]
fn nothing_is_written_without_commit() {
    let (_dir, view) = open();
    {
        let mut tx = view.tx();
        tx.insert_row(b"r1".to_vec(), Tagged::default()).unwrap();
    }
    assert_eq!(view.get(b"r1").unwrap(), None);
    assert_eq!(view.checkpoint().unwrap(), None);
}

#[test]
fn reopening_waits_briefly_for_the_previous_holder_to_let_go() {
    let (dir, view) = open();
    let path = dir.path().to_owned();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(view);
    });
    // sled refuses its file lock while `view` is open; the open waits.
    let again = ViewDb::open_existing(
        &path,
        BuildMeta {
            name: "test".into(),
            version: 1,
            config: String::new(),
        },
        crate::view::DEFAULT_CACHE_BYTES,
    )
    .unwrap();
    releaser.join().unwrap();
    assert_eq!(again.meta().name, "test");
}

fn meta() -> BuildMeta {
    BuildMeta {
        name: "test".into(),
        version: 1,
        config: String::new(),
    }
}

fn reopen(dir: &std::path::Path) -> ViewDb {
    ViewDb::open(dir, meta(), crate::view::DEFAULT_CACHE_BYTES).unwrap()
}

fn tagged_commit<'a>(view: &'a ViewDb, rows: &[(&str, &str)]) -> super::Tx<'a> {
    let mut tx = view.tx();
    for (key, tag) in rows {
        tx.insert_row(
            key.as_bytes().to_vec(),
            Tagged {
                tag: Some((*tag).into()),
                count: 1,
            },
        )
        .unwrap();
    }
    tx
}

#[test]
fn a_journaled_commit_is_stored_like_a_batch_and_kept_across_a_reopen() {
    let (dir, view) = open();
    tagged_commit(&view, &[("r1", "a"), ("r2", "b")])
        .commit(Position::sequence(4))
        .unwrap();
    let mut tx = view.tx();
    tx.row_mut::<Tagged>(b"r1").unwrap().unwrap().tag = Some("c".into());
    tx.commit(Position::sequence(5)).unwrap();
    assert_eq!(keys(&view, b"i"), vec!["ib/r2", "ic/r1"]);
    assert_eq!(view.checkpoint().unwrap(), Some(Position::sequence(5)));
    let digest = view.digest().unwrap();
    drop(view);

    let view = reopen(dir.path());
    assert_eq!(view.digest().unwrap(), digest);
    assert_eq!(view.checkpoint().unwrap(), Some(Position::sequence(5)));
}

#[test]
fn a_journaled_commit_cut_short_by_a_crash_is_finished_at_the_next_open() {
    let (dir, view) = open();
    tagged_commit(&view, &[("r1", "a")])
        .commit(Position::sequence(1))
        .unwrap();
    // What a crash after the journal write, halfway through the plain
    // inserts, leaves: r2's row and r1's new row, but neither index
    // change, nor the checkpoint.
    let mut tx = tagged_commit(&view, &[("r2", "b")]);
    tx.row_mut::<Tagged>(b"r1").unwrap().unwrap().tag = Some("z".into());
    let ops = tx.journal_ops(Position::sequence(2));
    assert!(
        ops.len() >= 5,
        "rows, two new entries, a removal, checkpoint"
    );
    {
        let mut journal = view.journal.lock().unwrap();
        journal.append(&ops).unwrap();
        super::apply_ops(&view.db, &ops[..2]).unwrap();
        journal.broken = true; // as when the rest of the apply failed
    }
    assert_eq!(keys(&view, b"i"), vec!["ia/r1"], "index not yet changed");
    assert_eq!(view.checkpoint().unwrap(), Some(Position::sequence(1)));
    drop(view);

    let view = reopen(dir.path());
    assert_eq!(keys(&view, b"i"), vec!["ib/r2", "iz/r1"]);
    assert_eq!(view.checkpoint().unwrap(), Some(Position::sequence(2)));
    assert!(
        view.journal.lock().unwrap().wal.is_empty(),
        "replayed, then emptied"
    );
}

#[test]
fn a_build_left_dirty_by_another_boot_is_emptied_to_fold_again() {
    let (dir, view) = open();
    tagged_commit(&view, &[("r1", "a")])
        .commit(Position::sequence(3))
        .unwrap();
    assert!(
        dir.path().join(super::DIRTY).exists(),
        "noted before writing"
    );
    drop(view);
    // Within this boot, a reopen trusts the journal.
    let view = reopen(dir.path());
    assert_eq!(view.checkpoint().unwrap(), Some(Position::sequence(3)));
    tagged_commit(&view, &[("r2", "b")])
        .commit(Position::sequence(4))
        .unwrap();
    drop(view);

    // What a power loss leaves: the note names a boot that is over.
    std::fs::write(dir.path().join(super::DIRTY), "an-earlier-boot").unwrap();
    let view = reopen(dir.path());
    assert_eq!(view.checkpoint().unwrap(), None, "folds from the start");
    assert_eq!(view.get(b"r1").unwrap(), None);
    assert_eq!(view.meta().name, "test");
    assert!(view.was_emptied());
    assert!(!dir.path().join(super::DIRTY).exists());
}

#[test]
fn a_build_dirty_from_another_boot_is_emptied_even_when_sled_cannot_open_it() {
    let (dir, view) = open();
    tagged_commit(&view, &[("r1", "a")])
        .commit(Position::sequence(3))
        .unwrap();
    drop(view);
    // A power loss can leave sled's files unreadable.
    std::fs::write(dir.path().join("conf"), b"not sled's").unwrap();
    std::fs::write(dir.path().join("db"), b"torn").unwrap();
    std::fs::write(dir.path().join(super::DIRTY), "an-earlier-boot").unwrap();
    let view = reopen(dir.path());
    assert!(view.was_emptied());
    assert_eq!(view.checkpoint().unwrap(), None);
}

#[test]
fn a_build_dropped_without_a_flush_is_left_clean() {
    let (dir, view) = open();
    tagged_commit(&view, &[("r1", "a")])
        .commit(Position::sequence(3))
        .unwrap();
    assert!(dir.path().join(super::DIRTY).exists());
    drop(view);
    assert!(
        !dir.path().join(super::DIRTY).exists(),
        "a reboot must not take it for a power loss"
    );
    let view = reopen(dir.path());
    assert!(!view.was_emptied());
    assert_eq!(view.checkpoint().unwrap(), Some(Position::sequence(3)));
}

#[test]
fn a_flushed_build_is_clean_and_reopens_as_it_was_after_any_boot() {
    let (dir, view) = open();
    tagged_commit(&view, &[("r1", "a")])
        .commit(Position::sequence(9))
        .unwrap();
    view.flush().unwrap();
    assert!(!dir.path().join(super::DIRTY).exists());
    assert!(view.journal.lock().unwrap().wal.is_empty());
    drop(view);
    let view = reopen(dir.path());
    assert_eq!(view.checkpoint().unwrap(), Some(Position::sequence(9)));
    assert_eq!(keys(&view, b"i"), vec!["ia/r1"]);
}

#[test]
fn a_journal_record_of_an_unknown_kind_is_refused_not_guessed() {
    let (dir, view) = open();
    {
        let mut journal = view.journal.lock().unwrap();
        journal
            .append(&vec![(b"k".to_vec(), vec![7, 1, 2])])
            .unwrap();
        journal.broken = true;
    }
    drop(view);
    let err = ViewDb::open(dir.path(), meta(), crate::view::DEFAULT_CACHE_BYTES)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("unknown kind"), "{err}");
}

/// Commits that move a count between two keys, read while they are being
/// applied: through `consistent` the two always add up; a commit is never
/// seen half applied.
#[test]
fn a_consistent_read_never_sees_a_commit_half_applied() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const TOTAL: u64 = 1_000;
    let (_dir, view) = open();
    let put = |tx: &mut super::Tx<'_>, a: u64| {
        tx.put(b"a".to_vec(), a.to_be_bytes().to_vec());
        tx.put(b"b".to_vec(), (TOTAL - a).to_be_bytes().to_vec());
    };
    let mut tx = view.tx();
    put(&mut tx, 0);
    tx.commit(Position::sequence(1)).unwrap();
    let read = |key: &[u8]| -> u64 {
        u64::from_be_bytes(view.get(key).unwrap().unwrap().try_into().unwrap())
    };
    let done = AtomicBool::new(false);
    let (reads, torn) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let (mut reads, mut torn) = (0u64, 0u64);
            while !done.load(Ordering::SeqCst) {
                let sum = view
                    .consistent(|_| Ok::<_, ()>(read(b"a") + read(b"b")))
                    .unwrap();
                reads += 1;
                torn += u64::from(sum != TOTAL);
            }
            (reads, torn)
        });
        for n in 0..3_000u64 {
            let mut tx = view.tx();
            put(&mut tx, n % TOTAL);
            tx.commit(Position::sequence(n + 2)).unwrap();
        }
        done.store(true, Ordering::SeqCst);
        reader.join().unwrap()
    });
    assert!(reads > 0);
    assert_eq!(torn, 0, "{torn} of {reads} reads saw a commit half applied");
}

fn commit_count(view: &ViewDb, count: u32, at: u64) {
    let mut tx = view.tx();
    tx.insert_row(b"r1".to_vec(), Tagged { tag: None, count })
        .unwrap();
    tx.commit(Position::sequence(at)).unwrap();
}

fn kept(view: &ViewDb) -> Option<u32> {
    view.remembered.recall::<Tagged>(b"r1").map(|r| r.count)
}

#[test]
fn a_row_kept_decoded_for_readers_follows_every_commit() {
    let (_dir, view) = open();
    assert_eq!(view.get_row::<Tagged>(b"r1").unwrap(), None);
    commit_count(&view, 1, 1);
    // Absent keys are not remembered: the new row is found, and kept.
    assert_eq!(view.get_row::<Tagged>(b"r1").unwrap().unwrap().count, 1);
    assert_eq!(kept(&view), Some(1));
    assert_eq!(view.get_row::<Tagged>(b"r1").unwrap().unwrap().count, 1);
    // A commit that writes the key forgets it.
    commit_count(&view, 2, 2);
    assert_eq!(kept(&view), None);
    assert_eq!(view.get_row::<Tagged>(b"r1").unwrap().unwrap().count, 2);
    assert_eq!(kept(&view), Some(2));
    // A raw write over the key is a commit's write too; so is a removal.
    let mut tx = view.tx();
    tx.put(b"r1".to_vec(), br#"{"tag":null,"count":7}"#.to_vec());
    tx.commit(Position::sequence(3)).unwrap();
    assert_eq!(kept(&view), None);
    assert_eq!(view.get_row::<Tagged>(b"r1").unwrap().unwrap().count, 7);
    let mut tx = view.tx();
    tx.delete(b"r1".to_vec());
    tx.commit(Position::sequence(4)).unwrap();
    assert_eq!(kept(&view), None);
    assert_eq!(view.get_row::<Tagged>(b"r1").unwrap(), None);
    // A commit of other keys leaves a kept row alone.
    commit_count(&view, 8, 5);
    assert_eq!(view.get_row::<Tagged>(b"r1").unwrap().unwrap().count, 8);
    let mut tx = view.tx();
    tx.put(b"other".to_vec(), b"1".to_vec());
    tx.commit(Position::sequence(6)).unwrap();
    assert_eq!(kept(&view), Some(8));
}

#[test]
fn a_row_read_while_a_commit_runs_or_not_worth_keeping_is_not_kept() {
    let (_dir, view) = open();
    commit_count(&view, 1, 1);
    {
        let _odd = super::Applying::begin(&view.generation);
        assert_eq!(view.get_row::<Tagged>(b"r1").unwrap().unwrap().count, 1);
    }
    assert_eq!(kept(&view), None);
    assert_eq!(
        view.get_row_if::<Tagged>(b"r1", |r| r.count > 1)
            .unwrap()
            .unwrap()
            .count,
        1
    );
    assert_eq!(kept(&view), None);
    // A commit that began and ended between the read and the keeping.
    let row = Tagged {
        tag: None,
        count: 1,
    };
    let before = view.generation.load(std::sync::atomic::Ordering::SeqCst);
    drop(super::Applying::begin(&view.generation));
    view.remembered.keep(b"r1", &row, || {
        view.generation.load(std::sync::atomic::Ordering::SeqCst) == before
    });
    assert_eq!(kept(&view), None);
    // Kept at last, and never taken for a row of another type.
    assert_eq!(view.get_row::<Tagged>(b"r1").unwrap(), Some(row));
    assert_eq!(kept(&view), Some(1));
    assert_eq!(view.remembered.recall::<u32>(b"r1"), None);
}

/// Readers race a stream of commits to one row: none ever sees the row
/// go back to an older count, and once the commits stop every reader
/// finds the last one — a row read before a commit and kept after it
/// would be found instead.
#[test]
fn rows_kept_decoded_never_go_stale_under_concurrent_commits() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const COMMITS: u32 = 3_000;
    const READERS: usize = 2;
    let (_dir, view) = open();
    commit_count(&view, 0, 1);
    let done = AtomicBool::new(false);
    let reading = AtomicUsize::new(0);
    let reads: Vec<u64> = std::thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                s.spawn(|| {
                    let (mut reads, mut last) = (0u64, 0u32);
                    while !done.load(Ordering::SeqCst) {
                        let count = view.get_row::<Tagged>(b"r1").unwrap().unwrap().count;
                        assert!(count >= last, "read {count} after {last}");
                        last = count;
                        reads += 1;
                        if reads == 1 {
                            reading.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    reads
                })
            })
            .collect();
        // The commits start once every reader is reading.
        while reading.load(Ordering::SeqCst) < READERS {
            std::thread::yield_now();
        }
        for n in 1..=COMMITS {
            commit_count(&view, n, u64::from(n) + 1);
        }
        done.store(true, Ordering::SeqCst);
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert!(reads.iter().all(|&r| r > 0), "{reads:?}");
    for _ in 0..2 {
        assert_eq!(
            view.get_row::<Tagged>(b"r1").unwrap().unwrap().count,
            COMMITS
        );
    }
}

#[test]
fn an_optimistic_read_answers_only_between_commits() {
    let (_dir, view) = open();
    commit_count(&view, 1, 1);
    let count = |v: &ViewDb| v.get_row::<Tagged>(b"r1").map(|r| r.unwrap().count);
    assert_eq!(view.try_consistent(count).unwrap().unwrap(), 1);
    {
        let _odd = super::Applying::begin(&view.generation);
        assert!(
            view.try_consistent(count).is_none(),
            "a commit is under way"
        );
    }
    let overtaken = view.try_consistent(|v| {
        let before = count(v);
        commit_count(v, 2, 2);
        before
    });
    assert!(overtaken.is_none(), "a commit ran during the read");
    assert_eq!(view.try_consistent(count).unwrap().unwrap(), 2);
}
