//! A full disk: the data folder on a 20 MiB tmpfs the test mounts. Writes
//! that can't be stored are refused with a clear 503 and acknowledged
//! never; reads keep answering; after space returns and a restart,
//! everything acknowledged is there and writes work again.
//!
//! Mounting needs root (as in the CI container); elsewhere the test says
//! it skipped and why.

mod common;

use std::{path::PathBuf, process::Command, time::Duration};

use common::{bearer, server::Server};
use serde_json::{Value, json};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: PathBuf, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(&at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Self(at))
    }

    fn grow(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

const START: &str = "mutation { startCall(input: {direction: INBOUND, callerNumber: \"040 123 4567\", serviceNumber: \"0295 50 2000\", agentId: \"anna.agent\", agentName: \"Anna\"}) { call { id } } }";

async fn upload(server: &Server, call: &str, bytes: usize) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(server.url(&format!("/calls/{call}/recordings")))
        .header("authorization", bearer("telephony.pbx"))
        .header("content-type", "audio/wav")
        .body(vec![7u8; bytes])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_clearly_keeps_reads_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = match Tmpfs::mount(dir.path().join("data"), "20m") {
        Ok(fs) => fs,
        Err(why) => {
            println!("skipped: can't mount a small tmpfs here (needs root): {why}");
            return;
        }
    };
    let data = fs.0.clone();
    let server = Server::started(&data).await;
    let first = server.gql(START, json!({})).await;
    let call = first["data"]["startCall"]["call"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let mut acked = vec![call.clone()];

    // Fill the disk with audio until an upload is refused.
    let mut refused = None;
    for _ in 0..10 {
        let (status, body) = upload(&server, &call, 6 * 1024 * 1024).await;
        if status != 201 {
            refused = Some((status, body));
            break;
        }
    }
    let (status, body) = refused.expect("the disk never filled");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "UNAVAILABLE");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no space left"),
        "{body}"
    );

    // Then the log: small writes until one is refused.
    let mut log_refusal = None;
    for _ in 0..2000 {
        let answer = server.gql(START, json!({})).await;
        match answer["data"]["startCall"]["call"]["id"].as_str() {
            Some(id) => acked.push(id.to_owned()),
            None => {
                log_refusal = Some(answer);
                break;
            }
        }
    }
    let refusal = log_refusal.expect("the log never filled");
    assert_eq!(
        refusal["errors"][0]["extensions"]["code"], "UNAVAILABLE",
        "{refusal}"
    );
    assert!(
        refusal["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not stored"),
        "{refusal}"
    );

    // Reads keep answering what they can — never an internal error, never
    // a hang: the audit view and statistics answer from what their models
    // have; a model whose own storage hit the full disk says so (503).
    // Opening a call logs the access first (R12): with no room for that
    // entry the call is not shown — the same clear 503, never data
    // unaudited.
    let health: Value = reqwest::get(server.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let answered_or_full = |answer: &Value, field: &str| {
        let code = &answer["errors"][0]["extensions"]["code"];
        assert!(
            answer["data"][field] != Value::Null || code == "UNAVAILABLE",
            "{field}: {answer}"
        );
    };
    let mut answered = 0;
    for (who, query, field) in [
        (
            "aino.auditor",
            "{ accessAudit(first: 5) { items { actorId } } }",
            "accessAudit",
        ),
        (
            "antti.analyst",
            "{ callStats(from: \"2020-01-01\", to: \"2020-12-31\") { calls } }",
            "callStats",
        ),
        (
            common::OPERATOR,
            "{ projections { name error } }",
            "projections",
        ),
    ] {
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            server.gql_as(who, query, json!({})),
        )
        .await
        .expect("a read answered in time");
        answered_or_full(&answer, field);
        answered += usize::from(answer["data"][field] != Value::Null);
    }
    assert!(answered >= 1, "the read-model status at least answers");
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        server.gql(
            "query($id: ID!) { call(id: $id, purpose: \"legal_claim\") { id } }",
            json!({"id": call}),
        ),
    )
    .await
    .expect("an open answered in time");
    answered_or_full(&read, "call");

    // Space returns; after a restart everything acknowledged is there and
    // writes work again.
    fs.grow("128m");
    server.kill();
    let server = Server::started(&data).await;
    for id in &acked {
        let read = server
            .gql(
                "query($id: ID!) { call(id: $id, purpose: \"legal_claim\") { id } }",
                json!({"id": id}),
            )
            .await;
        assert_eq!(
            read["data"]["call"]["id"],
            id.as_str(),
            "acknowledged {id} lost: {read}"
        );
    }
    let again = server.gql(START, json!({})).await;
    assert!(
        again["data"]["startCall"]["call"]["id"].is_string(),
        "{again}"
    );
    let (status, body) = upload(&server, &call, 1024).await;
    assert_eq!(status, 201, "{body}");
    server.kill();
    let out = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("verify")
        .env("CALLVAULT_DATA_DIR", &data)
        .env("CALLVAULT_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
