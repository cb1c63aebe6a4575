//! One real schema evolution, end to end: a register written by the code
//! before `RecordingStored` went to v2 (`migrations/fixtures/v1-log`) is
//! read, checked, verified, replayed and projected by today's code — and
//! not one stored event is rewritten.

mod common;

use std::path::Path;

use serde_json::Value;

use common::cli as callvault;

/// A private copy of the fixture (opening a store writes to it).
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/fixtures/v1-log");
    copy_dir(&from, dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn migrate_check_reports_every_old_event_upcast() {
    let dir = fixture();
    let (ok, out, err) = callvault(dir.path(), &["migrate", "check"]);
    assert!(ok, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("RecordingStored"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(" v1 "), "{line}");
    assert!(line.contains("11"), "{line}");
    assert!(line.contains("v1→v2"), "{line}");
    assert!(out.contains("96 events read"), "{out}");
    assert!(out.contains("every event upcasts and decodes"), "{out}");
}

#[test]
fn the_old_log_replays_in_the_new_schema_without_a_rewrite() {
    let dir = fixture();
    let (ok, out, err) = callvault(dir.path(), &["replay", "--type", "RecordingStored"]);
    assert!(ok, "{err}");
    let stored: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(stored.len(), 11);
    for e in &stored {
        // Stored as v1 (nobody rewrote it), read as v2.
        assert_eq!(e["stored_version"], 1);
        assert_eq!(e["data"]["media_type"], "audio/wav", "{e}");
        assert!(e["data"].get("codec").is_none(), "{e}");
    }
    // Personal data sealed by the old code opens with the fixture's keys.
    let (ok, out, _) = callvault(
        dir.path(),
        &["replay", "--type", "CallStarted", "--limit", "1"],
    );
    assert!(ok);
    let started: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert!(
        started["data"]["caller"]["$pd"]
            .as_str()
            .is_some_and(|n| n.starts_with("+358")),
        "{started}"
    );
    let (ok, out, err) = callvault(dir.path(), &["verify"]);
    assert!(ok, "{err}");
    assert!(out.contains("96 events"), "{out}");
}

#[test]
fn the_old_log_projects_with_the_new_code() {
    let dir = fixture();
    let (ok, out, err) = callvault(dir.path(), &["projections", "rebuild"]);
    assert!(ok, "{err}{out}");
    let (ok, out, err) = callvault(dir.path(), &["projections", "status"]);
    assert!(ok, "{err}");
    for model in [
        "calls",
        "access_audit",
        "retention",
        "subjects",
        "staff_rights",
        "stats",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(model))
            .unwrap_or_else(|| panic!("{model} missing: {out}"));
        assert!(
            line.contains(" 96 "),
            "{model} did not fold all 96 events: {line}"
        );
    }
    // A call with a recording, read through the state command, shows the
    // media type the v1 event stored as `codec`.
    let (ok, out, _) = callvault(
        dir.path(),
        &["replay", "--type", "RecordingStored", "--limit", "1"],
    );
    assert!(ok);
    let stored: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let call = stored["data"]["call_id"].as_str().unwrap();
    let (ok, out, err) = callvault(dir.path(), &["state", "call", call]);
    assert!(ok, "{err}");
    let state: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        state["call"]["recordings"][0]["codec"], "audio/wav",
        "{state}"
    );
}
