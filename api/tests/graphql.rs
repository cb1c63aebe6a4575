//! The first vertical slice through the router, without a socket:
//! startCall, endCall and call(id) over GraphQL, and every kind of bad
//! input answered with a typed error that writes nothing.

mod common;

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use common::{END, GET, TestApp, error_code};
use serde_json::{Value, json};

#[tokio::test]
async fn a_started_and_ended_call_can_be_read_back() {
    let app = TestApp::new().await;
    let started = app.start_call(json!({})).await;
    assert_eq!(started["errors"], Value::Null, "{started}");
    let call = &started["data"]["startCall"]["call"];
    assert_eq!(call["callerNumber"], "+358401234567");
    assert_eq!(call["serviceNumber"], "+358295502000");
    assert_eq!(call["status"], "IN_PROGRESS");
    let id = call["id"].as_str().unwrap().to_owned();

    let ended = app
        .gql(
            END,
            json!({"input": {"callId": id, "endedAt": "2026-03-03T09:07:30Z"}}),
        )
        .await;
    assert_eq!(ended["errors"], Value::Null, "{ended}");
    assert_eq!(ended["data"]["endCall"]["call"]["durationSeconds"], 450);

    let read = app.gql(GET, json!({"id": id})).await;
    let call = &read["data"]["call"];
    assert_eq!(call["status"], "ENDED");
    assert_eq!(call["direction"], "INBOUND");
    assert_eq!(call["agentName"], "Anna Agent");
    assert_eq!(call["endedAt"], "2026-03-03T09:07:30+00:00");
}

#[tokio::test]
async fn an_unknown_call_reads_as_null_and_ending_it_is_not_found() {
    let app = TestApp::new().await;
    let before = app.head().await;
    let id = "0190b7a6-7a3e-7f00-8000-000000000001";
    let read = app.gql(GET, json!({"id": id})).await;
    assert_eq!(read["data"]["call"], Value::Null);
    let ended = app.gql(END, json!({"input": {"callId": id}})).await;
    assert_eq!(error_code(&ended), "NOT_FOUND");
    assert_eq!(app.head().await, before, "nothing may be written");
}

#[tokio::test]
async fn ending_a_call_twice_is_a_conflict_and_writes_nothing() {
    let app = TestApp::new().await;
    let started = app.start_call(json!({})).await;
    let id = started["data"]["startCall"]["call"]["id"].clone();
    let first = app
        .gql(
            END,
            json!({"input": {"callId": id, "endedAt": "2026-03-03T09:05:00Z"}}),
        )
        .await;
    assert_eq!(first["errors"], Value::Null, "{first}");
    let head = app.head().await;
    let second = app
        .gql(
            END,
            json!({"input": {"callId": id, "endedAt": "2026-03-03T09:06:00Z"}}),
        )
        .await;
    assert_eq!(error_code(&second), "CONFLICT");
    let message = second["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("already ended"), "{message}");
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn a_malformed_phone_number_is_invalid_input_naming_the_field() {
    let app = TestApp::new().await;
    let before = app.head().await;
    let response = app
        .start_call(json!({"callerNumber": "040-12x-4567"}))
        .await;
    assert_eq!(error_code(&response), "INVALID_INPUT");
    assert_eq!(response["errors"][0]["extensions"]["field"], "callerNumber");
    let message = response["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("position 7"), "{message}");
    assert_eq!(app.head().await, before);
}

#[tokio::test]
async fn a_wrong_expected_revision_is_a_conflict_and_writes_nothing() {
    let app = TestApp::new().await;
    let started = app.start_call(json!({})).await;
    let id = started["data"]["startCall"]["call"]["id"].clone();
    assert_eq!(started["data"]["startCall"]["call"]["revision"], 0);
    let head = app.head().await;
    let response = app
        .gql(END, json!({"input": {"callId": id, "expectedRevision": 5}}))
        .await;
    assert_eq!(error_code(&response), "CONFLICT");
    assert_eq!(app.head().await, head);
    let ok = app
        .gql(END, json!({"input": {"callId": id, "expectedRevision": 0}}))
        .await;
    assert_eq!(ok["data"]["endCall"]["call"]["revision"], 1, "{ok}");
}

#[tokio::test]
async fn a_retried_start_with_a_source_id_is_recognised_not_duplicated() {
    let app = TestApp::new().await;
    let source = json!({"sourceSystem": "pbx", "sourceCallId": "A-1001"});
    let first = app.start_call(source.clone()).await;
    assert_eq!(first["data"]["startCall"]["replayed"], false, "{first}");
    let head = app.head().await;
    let again = app.start_call(source.clone()).await;
    assert_eq!(again["errors"], Value::Null, "{again}");
    assert_eq!(again["data"]["startCall"]["replayed"], true);
    assert_eq!(
        again["data"]["startCall"]["call"]["id"],
        first["data"]["startCall"]["call"]["id"]
    );
    assert_eq!(app.head().await, head, "a retry writes nothing");

    let mut different = source;
    different["callerNumber"] = json!("050 999 8888");
    let clash = app.start_call(different).await;
    assert_eq!(error_code(&clash), "CONFLICT");
}

#[tokio::test]
async fn giving_both_a_call_id_and_a_source_id_is_invalid() {
    let app = TestApp::new().await;
    let before = app.head().await;
    let response = app
        .start_call(json!({"callId": "0190b7a6-7a3e-7f00-8000-000000000001", "sourceSystem": "pbx", "sourceCallId": "1"}))
        .await;
    assert_eq!(error_code(&response), "INVALID_INPUT");
    assert_eq!(app.head().await, before);
}

#[tokio::test]
async fn a_call_cannot_end_before_it_started() {
    let app = TestApp::new().await;
    let started = app.start_call(json!({})).await;
    let id = started["data"]["startCall"]["call"]["id"].clone();
    let response = app
        .gql(
            END,
            json!({"input": {"callId": id, "endedAt": "2026-03-03T08:00:00Z"}}),
        )
        .await;
    assert_eq!(error_code(&response), "CONFLICT");
}

#[tokio::test]
async fn a_request_without_a_token_is_refused_and_a_name_header_counts_for_nothing() {
    let app = TestApp::new().await;
    let request = Request::post("/graphql")
        .header("content-type", "application/json")
        .header("x-callvault-actor", "test.operator")
        .body(Body::from(json!({"query": "{ __typename }"}).to_string()))
        .unwrap();
    let (status, _, body) = app.request(request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
}

#[tokio::test]
async fn health_reports_the_log_head_and_graphiql_is_served() {
    let app = TestApp::new().await;
    let (status, _, body) = app
        .request(Request::get("/health").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["status"], "ok");
    let (status, _, body) = app
        .request(Request::get("/graphql").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("graphiql"));
}

#[tokio::test]
async fn a_resend_without_its_times_is_recognised_as_the_same_command() {
    let app = TestApp::new().await;
    let start = json!({"input": {"sourceSystem": "pbx", "sourceCallId": "R-7", "direction": "INBOUND",
        "callerNumber": "040 123 4567", "serviceNumber": "0295 50 2000",
        "agentId": "anna.agent", "agentName": "Anna Agent"}});
    let first = app.gql(common::START, start.clone()).await;
    assert_eq!(first["data"]["startCall"]["replayed"], false, "{first}");
    let id = first["data"]["startCall"]["call"]["id"].clone();
    let ended = app.gql(END, json!({"input": {"callId": id}})).await;
    assert_eq!(ended["data"]["endCall"]["replayed"], false, "{ended}");
    let head = app.head().await;
    // The telephony system retries both, still without times.
    let again = app.gql(common::START, start).await;
    assert_eq!(again["data"]["startCall"]["replayed"], true, "{again}");
    let again = app.gql(END, json!({"input": {"callId": id}})).await;
    assert_eq!(again["data"]["endCall"]["replayed"], true, "{again}");
    assert_eq!(app.head().await, head, "nothing written twice");
}

#[tokio::test]
async fn a_request_over_its_time_limit_is_answered_in_graphqls_shape() {
    let mut app = TestApp::new().await;
    app.router = callvault::app(
        callvault::AppState::new(
            app.registry.clone(),
            app.projections.clone(),
            common::MAX_UPLOAD,
            std::sync::Arc::new(common::authenticator()),
        )
        .with_request_timeout(std::time::Duration::ZERO),
    );
    let (status, body) = app
        .gql_with(
            Some(&common::bearer("kaisa.case")),
            "{ search(purpose: \"verification\") { items { id } } }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, axum::http::StatusCode::REQUEST_TIMEOUT);
    assert_eq!(body["errors"][0]["extensions"]["code"], "TIMEOUT", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("ran longer")
    );
}

#[tokio::test]
async fn a_call_from_a_withheld_number_is_recorded_and_its_number_can_be_added_later() {
    let app = TestApp::new().await;
    // The exchange got no number (CLIR): the call is still recorded.
    let started = app.start_call(json!({"callerNumber": null})).await;
    assert_eq!(started["errors"], Value::Null, "{started}");
    let call = &started["data"]["startCall"]["call"];
    assert_eq!(call["callerNumber"], Value::Null, "{started}");
    let id = call["id"].as_str().unwrap().to_owned();
    let read = app.gql(GET, json!({"id": id})).await;
    assert_eq!(read["errors"], Value::Null, "{read}");
    assert_eq!(read["data"]["call"]["callerNumber"], Value::Null);
    assert_eq!(read["data"]["call"]["agentName"], "Anna Agent");
    assert_eq!(read["data"]["call"]["personalDataShredded"], false);
    assert_eq!(withheld(&app, &id).await, true, "a null number says why");
    let other = app.start_call(json!({})).await["data"]["startCall"]["call"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(withheld(&app, &other).await, false);
    // A number that is there must still be a number.
    let bad = app.start_call(json!({"callerNumber": "salainen"})).await;
    assert_eq!(error_code(&bad), "INVALID_INPUT", "{bad}");
    // The caller later tells it: a rectification records it.
    let fixed = app
        .gql_as(
            "kaisa.case",
            "mutation($i: RectifyCallInput!) { rectifyCall(input: $i) { call { revision } } }",
            json!({"i": {"callId": id, "callerNumber": "040 765 4321", "reason": "the caller gave it"}}),
        )
        .await;
    assert_eq!(fixed["errors"], Value::Null, "{fixed}");
    let read = app.gql(GET, json!({"id": id})).await;
    assert_eq!(
        read["data"]["call"]["callerNumber"], "+358407654321",
        "{read}"
    );
    assert_eq!(withheld(&app, &id).await, false, "no longer withheld");
}

async fn withheld(app: &TestApp, id: &str) -> Value {
    let read = app
        .gql(
            "query($id: ID!) { call(id: $id, purpose: \"legal_claim\") { callerWithheld } }",
            json!({"id": id}),
        )
        .await;
    read["data"]["call"]["callerWithheld"].clone()
}
