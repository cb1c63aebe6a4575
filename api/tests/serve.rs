//! The real binary: `callvault serve` answers over HTTP, and what it
//! acknowledged is still there after a SIGKILL and a restart.

use std::process::Command;

use serde_json::{Value, json};

mod common;
use common::server::Server;

#[tokio::test]
async fn a_call_written_before_a_sigkill_is_there_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
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
    server.kill();

    let server = Server::start(dir.path());
    let read = server
        .gql(
            "query($id: ID!) { call(id: $id) { status direction callerNumber serviceNumber } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        read["data"]["call"],
        json!({"status": "ENDED", "direction": "OUTBOUND", "callerNumber": "+358401234567", "serviceNumber": "+358295502000"})
    );
    let health: Value = reqwest::get(server.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["logHead"], "2");
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
        let server = Server::start(dir.path());
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
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["type"], "CallStarted");
    assert_eq!(lines[0]["actor"], "telephony.pbx");
    assert_eq!(lines[0]["position"], "1");
    assert_eq!(lines[0]["data"]["service_number"], "+358295502000");
}
