//! The real binary: `callvault serve` answers over HTTP, and what it
//! acknowledged is still there after a SIGKILL and a restart.

use std::process::Command;

use serde_json::{Value, json};

mod common;
use common::server::Server;

#[tokio::test]
async fn a_call_written_before_a_sigkill_is_there_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::started(dir.path()).await;
    let started = server
        .gql(
            "mutation { startCall(input: {sourceSystem: \"pbx\", sourceCallId: \"r-1\", direction: OUTBOUND, callerNumber: \"+358 40 123 4567\", serviceNumber: \"029-5502000\", agentId: \"anna.agent\", agentName: \"Anna\"}) { call { id } } }",
            json!({}),
        )
        .await;
    let id = started["data"]["startCall"]["call"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"))
        .to_owned();
    let ended = server
        .gql(
            "mutation($id: ID!) { endCall(input: {callId: $id}) { call { status } } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        ended["data"]["endCall"]["call"]["status"], "ENDED",
        "{ended}"
    );
    let head = |server: &Server| {
        let url = server.url("/health");
        async move {
            let health: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            health["logHead"].as_str().unwrap().parse::<u64>().unwrap()
        }
    };
    let written = head(&server).await;
    server.kill();

    let server = Server::started(dir.path()).await;
    let read = server
        .gql(
            "query($id: ID!) { call(id: $id, purpose: \"verification\") { status direction callerNumber serviceNumber } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        read["data"]["call"],
        json!({"status": "ENDED", "direction": "OUTBOUND", "callerNumber": "+358401234567", "serviceNumber": "+358295502000"})
    );
    // Everything acknowledged is there, plus the read's own access entry.
    assert_eq!(head(&server).await, written + 1);
}

#[test]
fn a_bad_setting_stops_start_up_with_one_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("serve")
        .env("CALLVAULT_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("setting `listen` (from environment variable CALLVAULT_LISTEN) is invalid"),
        "{stderr}"
    );
}

#[test]
fn replay_prints_the_log_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::started(dir.path()).await;
        server
            .gql(
                "mutation { startCall(input: {direction: INBOUND, callerNumber: \"040 123 4567\", serviceNumber: \"0295 50 2000\", agentId: \"anna.agent\", agentName: \"Anna\"}) { call { id } } }",
                json!({}),
            )
            .await;
        server.kill();
    });
    let out = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("replay")
        .env("CALLVAULT_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // First the configured first administrator's grant, then the staff's
    // roles, then the call.
    assert_eq!(lines[0]["type"], "RoleGranted");
    assert_eq!(lines[0]["actor"], "system.bootstrap");
    assert_eq!(lines[0]["position"], "1");
    let started: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "CallStarted")
        .collect();
    assert_eq!(started.len(), 1, "{lines:?}");
    assert_eq!(started[0]["actor"], "test.operator");
    assert_eq!(started[0]["data"]["service_number"], "+358295502000");
}
