//! Hostile HTTP input: each gets a clear 4xx with a stable code, and
//! nothing is written.

mod common;

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use common::{TestApp, bearer};
use serde_json::{Value, json};

async fn post(app: &TestApp, content_type: &str, body: impl Into<Body>) -> (StatusCode, Value) {
    let request = Request::post("/graphql")
        .header("content-type", content_type)
        .header("authorization", bearer(common::OPERATOR))
        .body(body.into())
        .unwrap();
    let (status, _, body) = app.request(request).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .or(body["error"]["code"].as_str())
}

#[tokio::test]
async fn malformed_deep_complex_huge_and_garbled_requests_are_refused_cleanly() {
    let app = TestApp::new().await;
    let before = app.head().await;
    let nested = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } } }";
    let wide = format!(
        "{{ {} }}",
        (0..300)
            .map(|i| format!(
                "a{i}: search(purpose: \"quality\") {{ items {{ id callerNumber }} }}"
            ))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let cases: Vec<(&str, &str, Body, StatusCode, &str)> = vec![
        (
            "syntax error",
            "application/json",
            Body::from(json!({"query": "{ search(purpose: "}).to_string()),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
        ),
        (
            "unknown field",
            "application/json",
            Body::from(json!({"query": "{ noSuchField }"}).to_string()),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
        ),
        (
            "too deep",
            "application/json",
            Body::from(json!({"query": nested}).to_string()),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
        ),
        (
            "too complex",
            "application/json",
            Body::from(json!({"query": wide}).to_string()),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
        ),
        (
            "not JSON",
            "application/json",
            Body::from("{\"query\": "),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
        ),
        (
            "invalid UTF-8",
            "application/json",
            Body::from(vec![b'{', 0xff, 0xfe, b'}']),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
        ),
        (
            "huge body",
            "application/json",
            Body::from(vec![b' '; 2 * 1024 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
        ),
    ];
    for (what, content_type, body, status, want_code) in cases {
        let (got, answer) = post(&app, content_type, body).await;
        assert_eq!(got, status, "{what}: {answer}");
        assert_eq!(code(&answer), Some(want_code), "{what}: {answer}");
    }
    // A content type GraphQL does not speak.
    let (got, answer) = post(&app, "text/csv", "a,b\n1,2").await;
    assert_eq!(got, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");
    assert_eq!(code(&answer), Some("UNSUPPORTED_MEDIA_TYPE"));
    assert_eq!(app.head().await, before, "nothing was written");
}

#[tokio::test]
async fn hostile_audio_requests_are_refused_cleanly() {
    let app = TestApp::new().await;
    let call = app.ended_call().await;
    let before = app.head().await;
    // Not a call id; a recording id that is not a UUID; a purpose nobody knows.
    for (uri, purpose) in [
        ("/calls/not-a-uuid/recordings/x".to_owned(), "quality"),
        (
            format!("/calls/{call}/recordings/../../etc/passwd"),
            "quality",
        ),
        (
            format!("/calls/{call}/recordings/0190b7a6-7a3e-7f00-8000-000000000001"),
            "curiosity",
        ),
    ] {
        let request = Request::get(&uri)
            .header("authorization", bearer("sue.supervisor"))
            .header("x-callvault-purpose", purpose)
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = app.request(request).await;
        assert!(status.is_client_error(), "{uri}: {status}");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("root:"), "{uri}: {text}");
    }
    // An upload whose declared length lies, and one to a call that doesn't exist.
    let request = Request::post(format!("/calls/{call}/recordings"))
        .header("authorization", bearer("telephony.pbx"))
        .header("content-type", "audio/wav")
        .header("x-recording-id", "not-a-uuid")
        .body(Body::from(vec![0u8; 100]))
        .unwrap();
    let (status, _, _) = app.request(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = app
        .upload("0190b7a6-7a3e-7f00-8000-0000000000ff", vec![1; 100])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(app.head().await, before, "nothing was written");
}
