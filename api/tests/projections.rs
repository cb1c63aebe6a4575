//! Read models through the real binary and the router: a model killed
//! mid catch-up ends up equal to a fresh rebuild; searches are logged;
//! operators see and trigger rebuilds.

mod common;

use std::{process::Command, time::Duration};

use common::{TestApp, server::Server};
use serde_json::{Value, json};

fn callvault(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(args)
        .env("CALLVAULT_DATA_DIR", data)
        .env("CALLVAULT_LOG", "warn")
        .output()
        .unwrap()
}

fn digests(data: &std::path::Path) -> String {
    let out = callvault(data, &["projections", "digest"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_model_killed_during_catch_up_ends_up_equal_to_a_fresh_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let out = callvault(data, &["demo", "seed", "--calls", "1500", "--seed", "7"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Start the service with no read models; kill it while they catch up.
    for delay in [60u64, 150, 300] {
        let server = Server::started(data).await;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill();
    }
    // Let them finish.
    let server = Server::started(data).await;
    loop {
        let status = server.gql("{ projections { name lag } }", json!({})).await;
        let lags: Vec<u64> = status["data"]["projections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["lag"].as_u64().unwrap())
            .collect();
        if lags.iter().all(|l| *l == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The CLI rebuilds through the running service, signed as the first
    // administrator.
    let out = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["projections", "rebuild", "stats", "--url"])
        .arg(server.url(""))
        .env("CALLVAULT_DATA_DIR", data)
        .env(
            "CALLVAULT_AUTH_HS256_SECRET_FILE",
            data.join("test-hs256.secret"),
        )
        .env("CALLVAULT_AUTH_BOOTSTRAP_ADMIN", common::OPERATOR)
        .env("CALLVAULT_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.kill();
    let survived = digests(data);

    std::fs::rename(data.join("projections"), dir.path().join("old-projections")).unwrap();
    let fresh = digests(data);
    assert_eq!(
        survived, fresh,
        "killed-and-resumed models must equal a fresh rebuild"
    );
    assert_eq!(survived.lines().count(), 6);
}

#[tokio::test]
async fn every_search_is_logged_with_its_purpose_and_filter_fields_but_not_values() {
    let app = TestApp::new().await;
    let call = app.ended_call().await;
    let found = app
        .gql(
            "{ search(purpose: \"verification\", filter: {callerNumber: \"040-1234567\"}) { items { id callerNumber } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        found["data"]["search"]["items"][0]["id"],
        call.as_str(),
        "{found}"
    );
    let audit = app
        .gql(
            "{ accessAudit(filter: {actorId: \"test.operator\"}) { items { kind purpose detail results } } }",
            json!({}),
        )
        .await;
    let entry = &audit["data"]["accessAudit"]["items"][0];
    assert_eq!(entry["kind"], "SEARCH");
    assert_eq!(entry["purpose"], "verification");
    assert_eq!(entry["detail"], "callerNumber");
    assert_eq!(entry["results"], 1);
    for e in app.store.read_all(None, 100).await.unwrap() {
        if e.event_type == "ContactHistorySearched" {
            assert!(!String::from_utf8_lossy(&e.payload).contains("1234567"));
        }
    }
    let refused = app
        .gql(
            "{ search(purpose: \"curiosity\") { items { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(common::error_code(&refused), "INVALID_INPUT");
}

#[tokio::test]
async fn operators_see_models_and_rebuild_one_while_queries_keep_answering() {
    let app = TestApp::new().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.ended_call().await);
    }
    let status = app
        .gql(
            "{ projections { name codeVersion buildVersion lag stale } }",
            json!({}),
        )
        .await;
    assert_eq!(status["data"]["projections"].as_array().unwrap().len(), 6);
    let started = app
        .gql("mutation { rebuildProjection(name: \"calls\") }", json!({}))
        .await;
    assert_eq!(started["data"]["rebuildProjection"], json!(["calls"]));
    for id in &ids {
        let read = app
            .gql(
                &format!("{{ call(id: \"{id}\", purpose: \"verification\") {{ id status }} }}"),
                json!({}),
            )
            .await;
        assert_eq!(read["data"]["call"]["status"], "ENDED", "{read}");
    }
    app.projections.wait_for_rebuilds().await.unwrap();
    let status = app
        .gql(
            "{ projections { name rebuild { finished fraction error } } }",
            json!({}),
        )
        .await;
    let calls = status["data"]["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "calls")
        .unwrap()
        .clone();
    assert_eq!(calls["rebuild"]["finished"], true, "{calls}");
    assert_eq!(calls["rebuild"]["error"], Value::Null);
    let unknown = app
        .gql("mutation { rebuildProjection(name: \"nope\") }", json!({}))
        .await;
    assert_eq!(common::error_code(&unknown), "NOT_FOUND");
}
