//! Proof that destruction is real (R16, R27), on the real binary and the
//! real data folder: after a retention run, no file under the data folder
//! holds the purged data keys, the destroyed key-encryption key, any 32
//! bytes of the audio, or the caller's number; a crash between tombstone
//! and key destruction is finished at the next start; a 200 MB recording
//! streams in and out with bounded memory.

use std::{
    collections::HashSet,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
};

use callvault_domain::{CallId, ContactRef, RecordingId};
use callvault_store::{
    EventStore,
    sled_store::SledStore,
    vault::{KeyLookup, KeyOwner, KeyVault},
};
use serde_json::{Value, json};

mod common;
use common::server::Server;

/// Uploads `len` bytes from `source` over a raw connection, streamed.
fn upload(server: &Server, call: &str, len: u64, mut source: impl FnMut(&mut [u8])) -> Value {
    let mut conn = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let token = common::token("telephony.pbx");
    write!(
        conn,
        "POST /calls/{call}/recordings HTTP/1.1\r\nHost: x\r\nauthorization: Bearer {token}\r\ncontent-type: audio/wav\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        source(&mut buf[..n]);
        conn.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|_| panic!("upload answered: {answer}"))
}

fn callvault(data: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callvault"));
    cmd.args(args)
        .env("CALLVAULT_DATA_DIR", data)
        .env("CALLVAULT_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn occurs(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn distinct_audio(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

async fn call_with_recording(server: &Server, audio: &[u8]) -> (String, String) {
    let started = server
        .gql("mutation { startCall(input: {direction: INBOUND, callerNumber: \"040 123 4567\", serviceNumber: \"0295 50 2000\", agentId: \"anna.agent\", agentName: \"Anna Agent\", startedAt: \"2026-03-03T09:00:00Z\"}) { call { id } } }", json!({}))
        .await;
    let call = started["data"]["startCall"]["call"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ended = server
        .gql(&format!("mutation {{ endCall(input: {{callId: \"{call}\", endedAt: \"2026-03-03T09:05:00Z\"}}) {{ call {{ status }} }} }}"), json!({}))
        .await;
    assert_eq!(ended["data"]["endCall"]["call"]["status"], "ENDED");
    let mut at = 0;
    let uploaded = upload(server, &call, audio.len() as u64, |buf| {
        buf.copy_from_slice(&audio[at..at + buf.len()]);
        at += buf.len();
    });
    (call, uploaded["recordingId"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn after_a_purge_nothing_under_the_data_folder_can_bring_the_call_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let audio = distinct_audio(512 * 1024);
    let server = Server::started(data).await;
    let (call, rec) = call_with_recording(&server, &audio).await;
    let played = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/calls/{call}/recordings/{rec}",
            server.port
        ))
        .header("authorization", common::bearer("sue.supervisor"))
        .header("x-callvault-purpose", "quality")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(played.as_ref(), audio.as_slice());
    server.kill();

    // What must disappear: both data keys and the bucket's KEK.
    let (recording_dek, call_dek) = {
        let vault = KeyVault::open(data.join("keys")).unwrap();
        let key = |owner| match vault.key(owner).unwrap() {
            KeyLookup::Live(k) => k.secret_bytes_for_audit(),
            KeyLookup::Gone => panic!("no key yet"),
        };
        (
            key(KeyOwner::Recording(rec.parse::<RecordingId>().unwrap())),
            key(KeyOwner::Contact(ContactRef::Call(
                call.parse::<CallId>().unwrap(),
            ))),
        )
    };
    let kek_files: Vec<PathBuf> = files(&data.join("keys/kek"));
    assert!(!kek_files.is_empty());
    let keks: Vec<Vec<u8>> = kek_files
        .iter()
        .map(|p| std::fs::read(p).unwrap()[8..].to_vec())
        .collect();

    let out = callvault(
        data,
        &[
            "retention",
            "run",
            "--allow-future",
            "--now",
            "2027-03-05T00:00:00Z",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("key-encryption key destroyed"), "{report}");

    let windows: HashSet<&[u8]> = audio.windows(32).collect();
    let mut scanned = 0;
    for path in files(data) {
        let bytes = std::fs::read(&path).unwrap();
        scanned += bytes.len();
        let name = path.display();
        assert!(
            !occurs(&bytes, &recording_dek),
            "the recording's key is in {name}"
        );
        assert!(!occurs(&bytes, &call_dek), "the call's key is in {name}");
        for kek in &keks {
            assert!(!occurs(&bytes, kek), "the destroyed KEK is in {name}");
        }
        assert!(
            !bytes.windows(32).any(|w| windows.contains(w)),
            "32 bytes of the audio are in {name}"
        );
        for number in [
            "+358401234567",
            "358401234567",
            "040 123 4567",
            "0401234567",
        ] {
            assert!(
                !occurs(&bytes, number.as_bytes()),
                "the caller's number `{number}` is in {name}"
            );
        }
    }
    assert!(scanned > 0);

    // The history is intact and says what was destroyed, when, and why.
    let out = callvault(data, &["replay"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let started = lines.iter().find(|l| l["type"] == "CallStarted").unwrap();
    assert_eq!(started["data"]["caller"], json!({"$shredded": true}));
    let tombstone = lines
        .iter()
        .find(|l| l["type"] == "RecordingPurged")
        .unwrap();
    assert_eq!(tombstone["data"]["recording_id"], rec.as_str());
    assert_eq!(tombstone["data"]["policy_version"], 1);
    assert_eq!(tombstone["data"]["reason"], "retention_expired");
    assert_eq!(tombstone["actor"], "system.retention");
}

/// A register whose retention run stopped (failpoint) after the
/// recording's tombstone and before its key's destruction; returns the
/// recording's key owner.
async fn purge_interrupted(data: &Path) -> KeyOwner {
    let server = Server::started(data).await;
    let (_, rec) = call_with_recording(&server, &distinct_audio(10_000)).await;
    server.kill();
    let owner = KeyOwner::Recording(rec.parse().unwrap());

    let out = callvault(
        data,
        &[
            "retention",
            "run",
            "--allow-future",
            "--now",
            "2027-03-05T00:00:00Z",
        ],
        &[("CALLVAULT_FAILPOINT", "retention-after-tombstones")],
    );
    assert_eq!(
        out.status.code(),
        Some(86),
        "the failpoint must stop the run"
    );
    let log = SledStore::open(data.join("events")).unwrap();
    let types: Vec<String> = log
        .read_all(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert!(
        types.contains(&"RecordingPurged".to_owned()),
        "the tombstone came first: {types:?}"
    );
    let vault = KeyVault::open(data.join("keys")).unwrap();
    assert!(
        matches!(vault.key(owner).unwrap(), KeyLookup::Live(_)),
        "the crash came before the key was destroyed"
    );
    owner
}

/// Starts the register (any command does) and checks the purge got
/// finished: key gone, audio deleted.
fn assert_a_start_finishes_the_purge(data: &Path, owner: KeyOwner) {
    let out = callvault(data, &["keys", "status"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vault = KeyVault::open(data.join("keys")).unwrap();
    assert!(matches!(vault.key(owner).unwrap(), KeyLookup::Gone));
    // What stays is the recording id's claim: the call's id, no audio.
    let left = files(&data.join("blobs"));
    assert!(
        left.iter()
            .all(|p| p.extension().is_some_and(|e| e == "owner")
                && std::fs::read_to_string(p)
                    .unwrap()
                    .parse::<callvault_domain::CallId>()
                    .is_ok()),
        "and the audio is deleted: {left:?}"
    );
}

#[tokio::test]
async fn an_auditors_verify_reports_an_interrupted_purge_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let owner = purge_interrupted(data).await;
    let out = callvault(data, &["verify"], &[]);
    assert!(!out.status.success(), "the key left behind is reported");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("NOT DESTROYED"), "{said}");
    let vault = KeyVault::open(data.join("keys")).unwrap();
    assert!(
        matches!(vault.key(owner).unwrap(), KeyLookup::Live(_)),
        "verify finished nothing: it reports the register as it is"
    );
    drop(vault);
    // Any other command's start finishes the purge, as before.
    assert_a_start_finishes_the_purge(data, owner);
}

#[tokio::test]
async fn a_crash_between_tombstone_and_key_destruction_is_finished_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let owner = purge_interrupted(dir.path()).await;
    assert_a_start_finishes_the_purge(dir.path(), owner);
}

#[tokio::test]
async fn a_purge_cut_short_before_its_read_model_rebuild_gets_it_at_the_next_serve() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let current = |model: &str| {
        std::fs::read_to_string(data.join("projections").join(model).join("CURRENT")).unwrap()
    };
    let owner = purge_interrupted(data).await;
    let before: Vec<String> = callvault_projections::WITH_PERSONAL_DATA
        .iter()
        .map(|m| current(m))
        .collect();
    // A start destroys the key but does not rebuild the read models
    // (only `serve` and `retention run` do): the debt stays noted.
    assert_a_start_finishes_the_purge(data, owner);
    let note = data
        .join("projections")
        .join(callvault_projections::registry::compaction::FILE);
    assert!(
        note.exists(),
        "the run noted the rebuild before any key went"
    );
    let server = Server::started(data).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while note.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not rebuild the read models within 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for (model, old) in callvault_projections::WITH_PERSONAL_DATA
        .iter()
        .zip(&before)
    {
        assert_ne!(&current(model), old, "{model} answers from a fresh build");
    }
    server.kill();
}

#[tokio::test]
async fn a_start_reads_the_whole_log_again_when_its_mark_does_not_match_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let owner = purge_interrupted(data).await;
    // Each start notes the last event it checked, so the next one reads
    // only what came after. Here the note claims the log's last event (past
    // the tombstone) with another hash — a note from another log, say a
    // restored backup's: trusting it would skip the tombstone.
    let mark_file = data.join("keys").join(callvault::retention::SCAN_MARK);
    let mark: Value = serde_json::from_slice(&std::fs::read(&mark_file).unwrap()).unwrap();
    assert!(mark["at"].is_object(), "a start left its mark: {mark}");
    let events = SledStore::open(data.join("events"))
        .unwrap()
        .read_all(None, 1000)
        .await
        .unwrap();
    let n = events.len();
    let forged = json!({
        "before": events[n - 2].position,
        "at": events[n - 1].position,
        "id": events[n - 1].id,
        "hash": "00".repeat(32),
    });
    std::fs::write(&mark_file, forged.to_string()).unwrap();
    assert_a_start_finishes_the_purge(data, owner);
    // And the new mark names the log's last event with its real hash.
    let mark: Value = serde_json::from_slice(&std::fs::read(&mark_file).unwrap()).unwrap();
    let last = SledStore::open(data.join("events"))
        .unwrap()
        .read_all(None, 10_000)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(mark["id"], json!(last.id));
    assert_eq!(mark["hash"], json!(last.metadata.hash.to_hex()));
}

#[tokio::test]
async fn a_200_mb_recording_round_trips_with_bounded_server_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::started(dir.path()).await;
    let started = server
        .gql("mutation { startCall(input: {direction: INBOUND, callerNumber: \"040 123 4567\", serviceNumber: \"0295 50 2000\", agentId: \"anna.agent\", agentName: \"Anna\"}) { call { id } } }", json!({}))
        .await;
    let call = started["data"]["startCall"]["call"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let len: u64 = 200 * 1024 * 1024;
    let fill = |offset: u64, buf: &mut [u8]| {
        for (i, b) in buf.iter_mut().enumerate() {
            let x = offset + i as u64;
            *b = (x ^ (x >> 11) ^ (x >> 19)) as u8;
        }
    };
    let mut at = 0u64;
    let uploaded = upload(&server, &call, len, |buf| {
        fill(at, buf);
        at += buf.len() as u64;
    });
    assert_eq!(uploaded["sizeBytes"], len, "{uploaded}");
    let rec = uploaded["recordingId"].as_str().unwrap().to_owned();

    let mut response = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/calls/{call}/recordings/{rec}",
            server.port
        ))
        .header("authorization", common::bearer("sue.supervisor"))
        .header("x-callvault-purpose", "quality")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut offset = 0u64;
    let mut expected = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        expected.resize(chunk.len(), 0);
        fill(offset, &mut expected);
        assert_eq!(
            chunk.as_ref(),
            expected.as_slice(),
            "audio differs at byte {offset}"
        );
        offset += chunk.len() as u64;
    }
    assert_eq!(offset, len);
    let peak_mib = server.peak_rss_kib() / 1024;
    eprintln!("server peak RSS after a 200 MiB upload and playback: {peak_mib} MiB");
    assert!(peak_mib < 120, "the server's peak RSS was {peak_mib} MiB");
}
