//! A crash under load: `callvault serve` is killed with SIGKILL while many
//! clients write and read, then restarted. Every write a client saw
//! acknowledged is there; every stored recording plays whole (none is left
//! half-stored); `verify` passes; the read models equal a fresh rebuild.

mod common;
#[path = "../examples/load/driver.rs"]
mod driver;

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use common::{OPERATOR, server::Server, token};
use serde_json::{Value, json};

use common::cli as callvault;

async fn caught_up(server: &Server) {
    for _ in 0..600 {
        let status = server.gql("{ projections { lag } }", json!({})).await;
        if status["data"]["projections"]
            .as_array()
            .is_some_and(|a| a.iter().all(|p| p["lag"] == 0))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("read models did not catch up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_under_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let server = Server::started(data).await;
    let base = server.url("");
    let client = reqwest::Client::new();
    driver::setup(&client, &base, &token(OPERATOR))
        .await
        .unwrap();
    let tokens = driver::Tokens {
        pbx: token("load.pbx"),
        analyst: token("load.analyst"),
        supervisor: token("load.supervisor"),
        auditor: token("load.auditor"),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (base, stop) = (base.clone(), stop.clone());
        async move { driver::run(&base, tokens, 6, Duration::from_secs(20), stop).await }
    });
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let report = load.await.unwrap();
    let acked = report.acked;
    assert!(
        acked.calls.len() >= 5 && !acked.recordings.is_empty(),
        "the load did too little before the kill to prove anything: {} calls, {} recordings",
        acked.calls.len(),
        acked.recordings.len()
    );

    let server = Server::started(data).await;
    // Every acknowledged call start and end is there.
    for (call, ended) in &acked.calls {
        let read = server
            .gql(
                "query($id: ID!) { call(id: $id, purpose: \"legal_claim\") { status } }",
                json!({"id": call}),
            )
            .await;
        let status = &read["data"]["call"]["status"];
        assert!(status.is_string(), "acknowledged call {call} lost: {read}");
        if *ended {
            assert_eq!(status, "ENDED", "acknowledged end of {call} lost");
        }
    }
    // Every acknowledged upload plays back whole.
    let play = |call: String, rec: String| {
        let url = server.url(&format!("/calls/{call}/recordings/{rec}"));
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(token("kaisa.case"))
                .header("x-callvault-purpose", "verification")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap().len())
        }
    };
    for (call, rec, len) in &acked.recordings {
        assert_eq!(play(call.clone(), rec.clone()).await, (200, *len), "{rec}");
    }
    // And so does every recording the log says was stored, acknowledged
    // or not: none is half-stored.
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = server
            .gql_as(
                "aino.auditor",
                "query($after: String) { history(purpose: \"verification\", filter: {eventType: \"RecordingStored\"}, first: 100, after: $after) { items { data } nextCursor } }",
                json!({"after": after}),
            )
            .await;
        items.extend(
            page["data"]["history"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .cloned(),
        );
        match page["data"]["history"]["nextCursor"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert!(items.len() >= acked.recordings.len());
    for i in &items {
        let d: &Value = &i["data"];
        let (status, len) = play(
            d["call_id"].as_str().unwrap().to_owned(),
            d["recording_id"].as_str().unwrap().to_owned(),
        )
        .await;
        assert_eq!(
            (status, len as u64),
            (200, d["size_bytes"].as_u64().unwrap())
        );
    }
    caught_up(&server).await;
    server.kill();

    let (ok, out, err) = callvault(data, &["verify"]);
    assert!(ok, "{err}");
    assert!(out.contains("every hash chain intact"), "{out}");
    let (ok, survived, err) = callvault(data, &["projections", "digest"]);
    assert!(ok, "{err}");
    std::fs::rename(data.join("projections"), data.join("old-projections")).unwrap();
    let (ok, fresh, err) = callvault(data, &["projections", "digest"]);
    assert!(ok, "{err}");
    assert_eq!(
        survived, fresh,
        "read models after the crash equal a fresh rebuild"
    );
}
