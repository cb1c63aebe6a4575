//! What auditors get from the real binary: filtered history, state as of
//! an instant, tamper evidence (a doctored log is caught: an event
//! rewritten, dropped, or moved), signed checkpoints an outside party can
//! check, and purged recordings really gone.

mod common;

use std::path::Path;

use callvault_store::sled_store::tamper;
use serde_json::Value;

use common::cli as callvault;

fn seeded(calls: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = callvault(
        dir.path(),
        &["demo", "seed", "--calls", calls, "--seed", "11"],
    );
    assert!(ok, "{err}");
    dir
}

/// Every event as `replay` prints it.
fn history(data: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["replay"];
    all.extend_from_slice(args);
    let (ok, out, err) = callvault(data, &all);
    assert!(ok, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn position(e: &Value) -> u64 {
    e["position"].as_str().unwrap().parse().unwrap()
}

fn verify_fails_at(data: &Path, stream: &str, revision: u64, position: u64) -> String {
    let (ok, _, err) = callvault(data, &["verify"]);
    assert!(!ok, "verify must fail: {err}");
    let want = format!("TAMPERED: stream {stream}, revision {revision}, position {position}");
    assert!(err.contains(&want), "want `{want}` in: {err}");
    err
}

#[test]
fn an_intact_log_verifies() {
    let dir = seeded("30");
    let (ok, out, err) = callvault(dir.path(), &["verify"]);
    assert!(ok, "{err}");
    assert!(out.contains("every hash chain intact"), "{out}");
}

#[test]
fn a_rewritten_payload_is_caught_at_its_event() {
    let dir = seeded("30");
    let events = history(dir.path(), &["--type", "CallEnded"]);
    let victim = &events[3];
    tamper::rewrite_payload(
        &dir.path().join("events"),
        position(victim),
        br#"{"call_id":"x","ended_at":"2020-01-01T00:00:00Z"}"#.to_vec(),
    )
    .unwrap();
    let err = verify_fails_at(
        dir.path(),
        victim["stream"].as_str().unwrap(),
        victim["revision"].as_u64().unwrap(),
        position(victim),
    );
    assert!(err.contains("altered"), "{err}");
}

#[test]
fn a_dropped_event_is_caught_at_the_next_event_of_its_stream() {
    let dir = seeded("30");
    let started = history(dir.path(), &["--type", "CallStarted"]);
    let stream = started[5]["stream"].as_str().unwrap().to_owned();
    let of_stream = history(dir.path(), &["--stream", &stream]);
    assert!(of_stream.len() >= 2, "{of_stream:?}");
    tamper::drop_event(&dir.path().join("events"), position(&of_stream[0])).unwrap();
    // The call's next event now comes first: revision 1 where 0 was due.
    // (Positions after the dropped one in its chunk moved down by one.)
    let (ok, _, err) = callvault(dir.path(), &["verify"]);
    assert!(!ok);
    assert!(
        err.contains(&format!("TAMPERED: stream {stream}, revision 1,")),
        "{err}"
    );
    assert!(err.contains("revision should be 0"), "{err}");
}

#[test]
fn swapped_events_are_caught_by_their_chain_or_their_order() {
    // Two events of one call: the chain breaks.
    let dir = seeded("30");
    let started = history(dir.path(), &["--type", "CallStarted"]);
    let stream = started[7]["stream"].as_str().unwrap().to_owned();
    let of_stream = history(dir.path(), &["--stream", &stream]);
    let (a, b) = (position(&of_stream[0]), position(&of_stream[1]));
    tamper::swap_events(&dir.path().join("events"), a, b).unwrap();
    verify_fails_at(dir.path(), &stream, 1, a);

    // Events of different streams accepted at different times: the global
    // order goes back in time.
    let dir = seeded("30");
    let all = history(dir.path(), &[]);
    let first = &all[0];
    let late = all
        .iter()
        .rev()
        .find(|e| e["recorded_at"] != first["recorded_at"] && e["stream"] != first["stream"])
        .unwrap();
    tamper::swap_events(&dir.path().join("events"), position(first), position(late)).unwrap();
    let (ok, _, err) = callvault(dir.path(), &["verify"]);
    assert!(!ok);
    assert!(err.contains("TAMPERED"), "{err}");
}

#[test]
fn a_signed_checkpoint_catches_what_chains_alone_cannot() {
    let dir = seeded("30");
    let cp = dir.path().join("checkpoint.json");
    let (ok, out, err) = callvault(dir.path(), &["checkpoint", "--out", cp.to_str().unwrap()]);
    assert!(ok, "{err}");
    let signed: Value = serde_json::from_str(&out).unwrap();
    let key = signed["public_key"].as_str().unwrap().to_owned();

    // More history after the checkpoint: the log still extends it.
    let (ok, _, err) = callvault(
        dir.path(),
        &["demo", "seed", "--calls", "5", "--seed", "12"],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = callvault(
        dir.path(),
        &[
            "verify",
            "--checkpoint",
            cp.to_str().unwrap(),
            "--public-key",
            &key,
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("the log extends the signed one"), "{out}");

    // Two neighbours of different streams accepted in the same instant:
    // swapping them keeps every chain and the time order intact, but not
    // the signed digest.
    let all = history(dir.path(), &[]);
    let pair = all
        .windows(2)
        .find(|w| {
            w[0]["recorded_at"] == w[1]["recorded_at"]
                && w[0]["stream"] != w[1]["stream"]
                && position(&w[1]) <= signed["position"].as_u64().unwrap()
        })
        .expect("two events committed together");
    tamper::swap_events(
        &dir.path().join("events"),
        position(&pair[0]),
        position(&pair[1]),
    )
    .unwrap();
    let (ok, _, _) = callvault(dir.path(), &["verify"]);
    assert!(ok, "chains and time order alone can't see this swap");
    let (ok, _, err) = callvault(
        dir.path(),
        &["verify", "--checkpoint", cp.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(err.contains("differ from the signed ones"), "{err}");

    // A doctored checkpoint file is refused on its signature; one signed by
    // a key you don't trust, too.
    let mut forged = signed.clone();
    forged["events"] = Value::from(3);
    std::fs::write(&cp, forged.to_string()).unwrap();
    let (ok, _, err) = callvault(
        dir.path(),
        &["verify", "--checkpoint", cp.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(err.contains("signature does not verify"), "{err}");
    std::fs::write(&cp, signed.to_string()).unwrap();
    let (ok, _, err) = callvault(
        dir.path(),
        &[
            "verify",
            "--checkpoint",
            cp.to_str().unwrap(),
            "--public-key",
            &"ab".repeat(32),
        ],
    );
    assert!(!ok);
    assert!(err.contains("another key"), "{err}");

    // A checkpoint forged whole — a new key, signing whatever it likes,
    // naming itself — is not trusted for naming itself: without
    // --public-key the register's own key decides.
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let forger =
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
    let mut forged = signed.clone();
    forged["public_key"] = Value::from(hex::encode(forger.public_key().as_ref()));
    let message = callvault_domain::register::LogCheckpointSigned::message(
        signed["position"].as_u64().unwrap(),
        signed["events"].as_u64().unwrap(),
        signed["digest"].as_str().unwrap(),
    );
    forged["signature"] = Value::from(hex::encode(forger.sign(&message).as_ref()));
    std::fs::write(&cp, forged.to_string()).unwrap();
    let (ok, _, err) = callvault(
        dir.path(),
        &["verify", "--checkpoint", cp.to_str().unwrap()],
    );
    assert!(!ok, "a self-signed forgery passed");
    assert!(err.contains("another key"), "{err}");
}

#[test]
fn verify_checks_purged_recordings_left_nothing_behind() {
    let dir = seeded("40");
    let (ok, out, err) = callvault(
        dir.path(),
        &["retention", "run", "--allow-future", "--now", "2030-01-01"],
    );
    assert!(ok, "{err}{out}");
    let purged = history(dir.path(), &["--type", "RecordingPurged"]);
    assert!(!purged.is_empty());
    let (ok, out, err) = callvault(dir.path(), &["verify"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "{} purged recordings: no key and no audio left",
            purged.len()
        )),
        "{out}"
    );
    // Put one recording's audio file back (a restored backup, say). A
    // retention run looks over the whole log and removes such leftovers,
    // so `verify` sees a clean folder again...
    let rec: callvault_domain::RecordingId = purged[0]["data"]["recording_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let blobs = callvault_store::blob::BlobStore::open(dir.path().join("blobs")).unwrap();
    let plant = || {
        let path = blobs.path(rec);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"resurrected").unwrap();
    };
    plant();
    let (ok, out, err) = callvault(
        dir.path(),
        &["retention", "run", "--allow-future", "--now", "2030-01-02"],
    );
    assert!(ok, "{err}{out}");
    assert!(!blobs.exists(rec), "the retention run removed it");
    let (ok, _, err) = callvault(dir.path(), &["verify"]);
    assert!(ok, "{err}");

    // ...and `verify` names what was not destroyed: a start of callvault
    // looks only at tombstones newer than its previous start, so the CLI's
    // `verify` now sees the leftover too.
    plant();
    let (ok, out, err) = callvault(dir.path(), &["verify"]);
    assert!(!ok, "verify must fail on a leftover audio file");
    assert!(
        format!("{out}{err}").contains(&format!("recording {rec}: its audio file still exists")),
        "{out}{err}"
    );
    // The same check through the library, on a register opened without
    // any start-up step.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt.block_on(async {
        let store = std::sync::Arc::new(
            callvault_store::sled_store::SledStore::open(dir.path().join("events")).unwrap(),
        );
        let vault = std::sync::Arc::new(
            callvault_store::vault::KeyVault::open(dir.path().join("keys")).unwrap(),
        );
        let registry = callvault::service::Registry::new(
            store,
            vault,
            callvault_store::blob::BlobStore::open(dir.path().join("blobs")).unwrap(),
            callvault_domain::RetentionPolicy::default(),
            std::sync::Arc::new(callvault::service::SystemClock),
        );
        callvault::audit::verify_register(&registry, None, |_| {})
            .await
            .unwrap()
    });
    assert_eq!(
        report.leftovers,
        [format!("recording {rec}: its audio file still exists")]
    );
}

#[test]
fn history_filters_and_shows_shredded_fields_as_shredded() {
    let dir = seeded("40");
    let (ok, _, err) = callvault(
        dir.path(),
        &["retention", "run", "--allow-future", "--now", "2030-01-01"],
    );
    assert!(ok, "{err}");
    let started = history(dir.path(), &["--type", "CallStarted", "--limit", "3"]);
    assert_eq!(started.len(), 3);
    for e in &started {
        assert_eq!(e["type"], "CallStarted");
        assert_eq!(
            e["data"]["caller"],
            serde_json::json!({"$shredded": true}),
            "{e}"
        );
    }
    let staff = history(dir.path(), &["--category", "staff"]);
    assert!(
        staff
            .iter()
            .all(|e| e["stream"].as_str().unwrap().starts_with("staff-"))
    );
    let by_retention = history(dir.path(), &["--actor", "system.retention"]);
    assert!(!by_retention.is_empty());
    assert!(
        by_retention
            .iter()
            .all(|e| e["actor"] == "system.retention")
    );
    let window = history(dir.path(), &["--after", "10", "--until-position", "20"]);
    assert_eq!(
        window.iter().map(position).collect::<Vec<_>>(),
        (11..=20).collect::<Vec<_>>()
    );
    let (ok, table, _) = callvault(dir.path(), &["replay", "--format", "table", "--limit", "2"]);
    assert!(ok);
    assert!(
        table.lines().next().unwrap().contains("recorded at"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 3);
}

#[test]
fn state_as_of_answers_what_the_register_said_then() {
    let dir = seeded("40");
    let started = history(dir.path(), &["--type", "CallStarted", "--limit", "1"]);
    let call = started[0]["data"]["call_id"].as_str().unwrap().to_owned();
    let at_start = started[0]["recorded_at"].as_str().unwrap().to_owned();
    let (ok, out, err) = callvault(dir.path(), &["state", "call", &call, "--as-of", &at_start]);
    assert!(ok, "{err}");
    let then: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(then["call"]["status"], "IN_PROGRESS", "{then}");
    let (ok, out, _) = callvault(dir.path(), &["state", "call", &call]);
    assert!(ok);
    let now: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(now["call"]["status"], "ENDED", "{now}");
    let (ok, _, err) = callvault(
        dir.path(),
        &["state", "call", &call, "--as-of", "2001-01-01"],
    );
    assert!(!ok);
    assert!(err.contains("knew no call"), "{err}");

    // A supervisor's reach then: their team's calls, each with the
    // purposes allowed.
    let (ok, out, err) = callvault(dir.path(), &["state", "staff", "supervisor1"]);
    assert!(ok, "{err}");
    let sup: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sup["roles"][0]["role"], "supervisor");
    let team: Vec<&str> = sup["roles"][0]["supervises"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let calls = sup["calls"].as_array().unwrap();
    assert!(!calls.is_empty(), "{sup}");
    assert!(
        calls
            .iter()
            .all(|c| team.contains(&c["agent"].as_str().unwrap()))
    );
    // Before any grant: nothing.
    let (ok, out, _) = callvault(
        dir.path(),
        &["state", "staff", "supervisor1", "--as-of", "2001-01-01"],
    );
    assert!(ok);
    let before: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(before["roles"], serde_json::json!([]));
    assert_eq!(before["calls"], serde_json::json!([]));
    // A quality expert reaches every call.
    let (_, out, _) = callvault(dir.path(), &["state", "staff", "quality.expert"]);
    let q: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(q["reach"], "all calls");
}

fn digest_line(data: &Path) -> String {
    let (ok, out, err) = callvault(data, &["verify"]);
    assert!(ok, "{err}");
    out.lines().next().unwrap().to_owned()
}

#[test]
fn a_log_copies_verbatim_resumably_and_verifies_with_the_same_digest() {
    let source = seeded("30");
    let target = tempfile::tempdir().unwrap();
    let copy = |extra: &[&str]| {
        let mut args = vec![
            "copy",
            "--from",
            source.path().to_str().unwrap(),
            "--to",
            target.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        callvault(source.path(), &args)
    };
    // Interrupted after 40 events, then resumed.
    let (ok, out, err) = copy(&["--max-events", "40"]);
    assert!(ok, "{err}");
    assert!(out.contains("40 events copied"), "{out}");
    let (ok, out, err) = copy(&[]);
    assert!(ok, "{err}");
    assert!(out.contains("40 already on the target"), "{out}");
    // Same events, same order, same metadata: the same digest.
    assert_eq!(digest_line(target.path()), digest_line(source.path()));
    let ids = |data: &Path| {
        history(data, &[])
            .into_iter()
            .map(|e| {
                (
                    e["id"].clone(),
                    e["recorded_at"].clone(),
                    e["actor"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(target.path()), ids(source.path()));
    // Copying again copies nothing.
    let (ok, out, _) = copy(&[]);
    assert!(ok);
    assert!(out.starts_with("0 events copied"), "{out}");
    // A target holding a different log is refused, not overwritten.
    let other = seeded("5");
    let (ok, _, err) = callvault(
        source.path(),
        &[
            "copy",
            "--from",
            other.path().to_str().unwrap(),
            "--to",
            target.path().to_str().unwrap(),
        ],
    );
    assert!(!ok);
    assert!(err.contains("differs from the source"), "{err}");
    // A mistyped source is an error, and creates nothing there.
    let typo = source.path().join("no-such-folder");
    let (ok, out, err) = callvault(
        source.path(),
        &[
            "copy",
            "--from",
            typo.to_str().unwrap(),
            "--to",
            target.path().to_str().unwrap(),
        ],
    );
    assert!(!ok, "{out}");
    assert!(err.contains("no event log at"), "{err}");
    assert!(!typo.exists());
}

#[test]
fn a_retention_run_in_the_future_needs_allow_future() {
    let dir = seeded("40");
    let purged = || history(dir.path(), &["--type", "RecordingPurged"]).len();
    let (ok, out, err) = callvault(dir.path(), &["retention", "run", "--now", "2030-01-01"]);
    assert!(!ok, "{out}");
    assert!(err.contains("later than the clock"), "{err}");
    assert!(err.contains("--allow-future"), "{err}");
    assert_eq!(purged(), 0, "a refused run changes nothing");
    // A dry run may look ahead.
    let (ok, out, err) = callvault(
        dir.path(),
        &["retention", "run", "--dry-run", "--now", "2030-01-01"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("would purge"), "{out}");
    assert_eq!(purged(), 0);
}

/// The build each read model answers from (its `CURRENT`).
fn builds(data: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_dir(data.join("projections"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path().join("CURRENT")).unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_purge_rebuilds_the_models_holding_personal_data_also_with_json() {
    let dir = seeded("40");
    let (ok, _, err) = callvault(dir.path(), &["projections", "status"]);
    assert!(ok, "{err}");
    let before = builds(dir.path());
    assert_eq!(before.len(), 6, "{before:?}");
    let (ok, out, err) = callvault(
        dir.path(),
        &[
            "retention",
            "run",
            "--json",
            "--allow-future",
            "--now",
            "2030-01-01",
        ],
    );
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).expect("stdout is the JSON report alone");
    assert!(
        !report["buckets"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let after = builds(dir.path());
    for (model, build) in &before {
        let personal = callvault_projections::WITH_PERSONAL_DATA.contains(&model.as_str());
        assert_eq!(
            after[model] != *build,
            personal,
            "{model}: rebuilt into fresh storage exactly when it holds personal data"
        );
    }
    assert!(
        !dir.path()
            .join("projections")
            .join(callvault_projections::registry::compaction::FILE)
            .exists(),
        "the rebuild it owed is paid"
    );
}

#[test]
fn a_checkpoint_of_the_empty_log_is_met_by_any_log_that_grew_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp.json");
    let (ok, out, err) = callvault(dir.path(), &["checkpoint", "--out", cp.to_str().unwrap()]);
    assert!(ok, "{err}{out}");
    let signed: Value = serde_json::from_str(&std::fs::read_to_string(&cp).unwrap()).unwrap();
    assert_eq!(signed["events"], 0, "{signed}");
    let (ok, out, err) = callvault(
        dir.path(),
        &["verify", "--checkpoint", cp.to_str().unwrap()],
    );
    assert!(ok, "{err}{out}");
    assert!(out.contains("extends the signed one"), "{out}");
}
