//! Who may see what, end to end through the router with real tokens:
//! authentication, the policy on every read, searches filtered to what the
//! searcher may see, break-glass reads, rights as events, data-subject work,
//! and every attempt — allowed or refused — in the access audit.

mod common;

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use callvault::auth::Authenticator;
use callvault_domain::StaffId;
use common::{TestApp, audio, error_code};
use serde_json::{Value, json};

const CALL: &str = "query($id: ID!, $purpose: String!, $reason: String) {
    call(id: $id, purpose: $purpose, reason: $reason) { id agentId callerNumber }
}";

const SEARCH: &str = "query($purpose: String!) {
    search(purpose: $purpose) { items { id agentId } }
}";

const AUDIT: &str = "query($actor: String) {
    accessAudit(filter: {actorId: $actor}) {
        items { at actorId role kind allowed callId purpose reason breakGlass detail }
    }
}";

/// An ended call handled by `agent`, with a recording; (call, recording).
async fn recorded_call(app: &TestApp, agent: &str) -> (String, String) {
    let started = app.start_call(json!({"agentId": agent})).await;
    let call = started["data"]["startCall"]["call"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"))
        .to_owned();
    let (status, body) = app.upload(&call, audio(4000)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (call, body["recordingId"].as_str().unwrap().to_owned())
}

/// Restricts the processing of `call`, as the case worker on `case`.
async fn restrict(app: &TestApp, call: &str, case: &str) {
    let restricted = app
        .gql_as(
            "kaisa.case",
            "mutation($i: RestrictProcessingInput!) { restrictProcessing(input: $i) { call { restricted } } }",
            json!({"i": {"callId": call, "caseReference": case, "reason": "accuracy contested"}}),
        )
        .await;
    assert_eq!(
        restricted["data"]["restrictProcessing"]["call"]["restricted"], true,
        "{restricted}"
    );
}

/// A restricted `call` (anna's, the only one) is left out of a
/// verification search and shown for a legal claim, and anna's own open
/// is refused; returns that refusal.
async fn kept_out_but_for_the_law(app: &TestApp, call: &str) -> Value {
    let count = |v: &Value| v["data"]["search"]["items"].as_array().map(Vec::len);
    let verify = app
        .gql_as("kaisa.case", SEARCH, json!({"purpose": "verification"}))
        .await;
    assert_eq!(count(&verify), Some(0), "{verify}");
    let legal = app
        .gql_as("kaisa.case", SEARCH, json!({"purpose": "legal_claim"}))
        .await;
    assert_eq!(count(&legal), Some(1), "{legal}");
    let own = open(app, "anna.agent", call, "verification").await;
    assert_eq!(error_code(&own), "FORBIDDEN", "{own}");
    own
}

async fn open(app: &TestApp, staff: &str, call: &str, purpose: &str) -> Value {
    app.gql_as(staff, CALL, json!({"id": call, "purpose": purpose}))
        .await
}

async fn audit(app: &TestApp, actor: &str) -> Vec<Value> {
    let answer = app
        .gql_as("aino.auditor", AUDIT, json!({"actor": actor}))
        .await;
    answer["data"]["accessAudit"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .clone()
}

#[tokio::test]
async fn missing_forged_expired_and_foreign_tokens_are_refused() {
    let app = TestApp::new().await;
    let before = app.head().await;
    let anna = StaffId::parse("anna.agent").unwrap();
    let now = chrono::Utc::now();
    let forged = Authenticator::hs256(&[1; 32], "callvault", "callvault")
        .unwrap()
        .issue(&anna, now, chrono::Duration::hours(1))
        .unwrap();
    let expired = common::authenticator()
        .issue(
            &anna,
            now - chrono::Duration::hours(3),
            chrono::Duration::hours(1),
        )
        .unwrap();
    let wrong_audience = Authenticator::hs256(&common::SECRET, "callvault", "payroll")
        .unwrap()
        .issue(&anna, now, chrono::Duration::hours(1))
        .unwrap();
    let wrong_issuer = Authenticator::hs256(&common::SECRET, "someone-else", "callvault")
        .unwrap()
        .issue(&anna, now, chrono::Duration::hours(1))
        .unwrap();
    let cases = [
        (None, "sign in"),
        (Some("Basic YW5uYTpwdw==".to_owned()), "Bearer"),
        (Some(format!("Bearer {forged}")), "signature"),
        (Some(format!("Bearer {expired}")), "expired"),
        (Some(format!("Bearer {wrong_audience}")), "audience"),
        (Some(format!("Bearer {wrong_issuer}")), "issuer"),
        (Some("Bearer not.a.token".to_owned()), "refused"),
    ];
    for (header, says) in cases {
        let (status, body) = app
            .gql_with(header.as_deref(), "{ __typename }", json!({}))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header:?}: {body}");
        assert_eq!(error_code(&body), "UNAUTHENTICATED");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{header:?}: {message}");
        // The token itself is never echoed.
        if let Some(h) = &header
            && h.len() > 40
        {
            assert!(!message.contains(&h[7..]), "{message}");
        }
    }
    // REST too.
    let request = Request::get("/calls/0190b7a6-7a3e-7f00-8000-000000000001/recordings/0190b7a6-7a3e-7f00-8000-000000000002")
        .header("x-callvault-purpose", "quality")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.request(request).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.head().await, before, "nothing is written for strangers");
}

#[tokio::test]
async fn an_agent_sees_their_own_calls_and_no_colleagues_by_id_search_or_url() {
    let app = TestApp::new().await;
    let (own, own_rec) = recorded_call(&app, "anna.agent").await;
    let (other, other_rec) = recorded_call(&app, "bob.agent").await;

    let read = open(&app, "anna.agent", &own, "verification").await;
    assert_eq!(read["data"]["call"]["agentId"], "anna.agent", "{read}");

    let refused = open(&app, "anna.agent", &other, "verification").await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    assert_eq!(refused["data"]["call"], Value::Null);
    assert!(
        !refused.to_string().contains("+35840"),
        "a refusal shows nothing of the call: {refused}"
    );

    let found = app
        .gql_as("anna.agent", SEARCH, json!({"purpose": "verification"}))
        .await;
    let ids: Vec<&str> = found["data"]["search"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{found}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [own.as_str()]);

    let (status, _, _) = app
        .play_as("anna.agent", "verification", &own, &own_rec, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = app
        .play_as("anna.agent", "verification", &other, &other_rec, &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "FORBIDDEN");

    // Every attempt is in the audit, allowed or not, with purpose and time.
    let entries = audit(&app, "anna.agent").await;
    let kinds: Vec<(String, bool)> = entries
        .iter()
        .map(|e| (e["kind"].as_str().unwrap().to_owned(), e["allowed"] == true))
        .collect();
    assert_eq!(
        kinds,
        [
            ("DENIED".to_owned(), false),
            ("LISTEN".to_owned(), true),
            ("SEARCH".to_owned(), true),
            ("DENIED".to_owned(), false),
            ("HISTORY_READ".to_owned(), true),
        ],
        "newest first: {entries:?}"
    );
    for e in &entries {
        assert_eq!(e["actorId"], "anna.agent");
        assert_eq!(e["purpose"], "verification");
        assert!(e["at"].as_str().is_some());
    }
    assert_eq!(entries[0]["detail"], "listen: not_their_call");
    assert_eq!(entries[0]["callId"], other.as_str());
    assert_eq!(entries[3]["detail"], "view_call: not_their_call");
    assert_eq!(entries[4]["role"], "agent");
}

#[tokio::test]
async fn a_supervisor_reaches_their_team_only() {
    let app = TestApp::new().await;
    let (annas, annas_rec) = recorded_call(&app, "anna.agent").await;
    let (bobs, bobs_rec) = recorded_call(&app, "bob.agent").await;
    let read = open(&app, "sue.supervisor", &annas, "quality").await;
    assert_eq!(read["data"]["call"]["id"], annas.as_str(), "{read}");
    let refused = open(&app, "sue.supervisor", &bobs, "quality").await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    // A purpose outside the role's duties is refused even on the team.
    let refused = open(&app, "sue.supervisor", &annas, "security").await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    assert_eq!(app.play(&annas, &annas_rec, &[]).await.0, StatusCode::OK);
    assert_eq!(
        app.play(&bobs, &bobs_rec, &[]).await.0,
        StatusCode::FORBIDDEN
    );
    let found = app
        .gql_as("sue.supervisor", SEARCH, json!({"purpose": "quality"}))
        .await;
    let items = found["data"]["search"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{found}");
    assert_eq!(items[0]["agentId"], "anna.agent");
    // A quality expert reaches every call, for quality.
    let found = app
        .gql_as("quinn.quality", SEARCH, json!({"purpose": "quality"}))
        .await;
    assert_eq!(
        found["data"]["search"]["items"].as_array().unwrap().len(),
        2
    );
}

#[tokio::test]
async fn break_glass_reads_need_a_reason_and_are_flagged_for_review() {
    let app = TestApp::new().await;
    let (call, rec) = recorded_call(&app, "bob.agent").await;
    let (status, _, body) = app
        .play_as("mike.maintenance", "maintenance", &call, &rec, &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&body).contains("reason"));
    let (status, _, _) = app
        .play_as(
            "mike.maintenance",
            "maintenance",
            &call,
            &rec,
            &[("x-callvault-reason", "INC-4471 audio distorted")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let read = app
        .gql_as(
            "mike.maintenance",
            CALL,
            json!({"id": call, "purpose": "maintenance", "reason": "INC-4471"}),
        )
        .await;
    assert_eq!(read["data"]["call"]["id"], call.as_str(), "{read}");
    let flagged = app
        .gql_as(
            "aino.auditor",
            "{ breakGlassReads { items { actorId kind callId reason role } } }",
            json!({}),
        )
        .await;
    let items = flagged["data"]["breakGlassReads"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{flagged}"));
    assert_eq!(items.len(), 2, "{flagged}");
    assert!(items.iter().all(|i| i["actorId"] == "mike.maintenance"
        && i["role"] == "maintenance"
        && i["callId"] == call.as_str()));
    assert_eq!(items[1]["reason"], "INC-4471 audio distorted");
    // Maintenance can't browse.
    let search = app
        .gql_as(
            "mike.maintenance",
            SEARCH,
            json!({"purpose": "maintenance"}),
        )
        .await;
    assert_eq!(error_code(&search), "FORBIDDEN");
}

#[tokio::test]
async fn roles_without_audio_or_reads_are_refused_and_each_view_has_its_readers() {
    let app = TestApp::new().await;
    let (call, rec) = recorded_call(&app, "anna.agent").await;
    // Analysts: statistics and metadata, no audio.
    let (status, _, _) = app
        .play_as("antti.analyst", "quality", &call, &rec, &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let stats = app
        .gql_as(
            "antti.analyst",
            "{ callStats(from: \"2026-03-01\", to: \"2026-03-31\") { calls } }",
            json!({}),
        )
        .await;
    assert_eq!(stats["data"]["callStats"]["calls"], 1, "{stats}");
    // Auditors: history and audit, no audio.
    let (status, _, _) = app
        .play_as("aino.auditor", "verification", &call, &rec, &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The telephony side writes and reads nothing.
    let read = open(&app, "telephony.pbx", &call, "verification").await;
    assert_eq!(error_code(&read), "FORBIDDEN");
    // Agents don't read the audit, rights, or statistics; only
    // administrators operate the read models.
    for query in [
        "{ accessAudit { items { at } } }",
        "{ staffRights { role } }",
        "{ callStats(from: \"2026-03-01\", to: \"2026-03-31\") { calls } }",
        "{ projections { name } }",
        "{ retentionQueue { recordingId } }",
    ] {
        let answer = app.gql_as("anna.agent", query, json!({})).await;
        assert_eq!(error_code(&answer), "FORBIDDEN", "{query}: {answer}");
    }
    let answer = app
        .gql_as("alma.admin", "{ projections { name } }", json!({}))
        .await;
    assert_eq!(answer["errors"], Value::Null, "{answer}");
    let denied = app
        .gql_as(
            "aino.auditor",
            "{ accessAudit(filter: {actorId: \"anna.agent\", deniedOnly: true}) { items { detail role } } }",
            json!({}),
        )
        .await;
    let details: Vec<&str> = denied["data"]["accessAudit"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        details,
        [
            "view_retention: no_role",
            "operate_projections: no_role",
            "view_stats: no_role",
            "view_staff_rights: no_role",
            "view_access_audit: no_role",
        ]
    );
}

const GRANT: &str =
    "mutation($i: GrantRoleInput!) { grantRole(input: $i) { staffId roles { role supervises } } }";
const REVOKE: &str = "mutation($i: RevokeRoleInput!) { revokeRole(input: $i) { roles { role } } }";
const REVIEW: &str = "mutation($i: ReviewAccessRightsInput!) { reviewAccessRights(input: $i) { roles { role } nextReviewBy } }";

#[tokio::test]
async fn rights_are_granted_revoked_and_reviewed_by_administrators_only() {
    let app = TestApp::new().await;
    let (call, _) = recorded_call(&app, "anna.agent").await;
    // Not an administrator: refused and logged.
    let refused = app
        .gql_as(
            "anna.agent",
            GRANT,
            json!({"i": {"staffId": "anna.agent", "role": "auditor"}}),
        )
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN");

    // A new quality expert: refused before the grant, allowed after.
    assert_eq!(
        error_code(&open(&app, "olli.new", &call, "quality").await),
        "FORBIDDEN"
    );
    let granted = app
        .gql_as(
            "alma.admin",
            GRANT,
            json!({"i": {"staffId": "olli.new", "role": "quality_expert", "decisionReference": "HR-77"}}),
        )
        .await;
    assert_eq!(
        granted["data"]["grantRole"]["roles"],
        json!([{"role": "quality_expert", "supervises": []}]),
        "{granted}"
    );
    let read = open(&app, "olli.new", &call, "quality").await;
    assert_eq!(read["data"]["call"]["id"], call.as_str(), "{read}");

    let revoked = app
        .gql_as(
            "alma.admin",
            REVOKE,
            json!({"i": {"staffId": "olli.new", "role": "quality_expert"}}),
        )
        .await;
    assert_eq!(
        revoked["data"]["revokeRole"]["roles"],
        json!([]),
        "{revoked}"
    );
    assert_eq!(
        error_code(&open(&app, "olli.new", &call, "quality").await),
        "FORBIDDEN"
    );
    let again = app
        .gql_as(
            "alma.admin",
            REVOKE,
            json!({"i": {"staffId": "olli.new", "role": "quality_expert"}}),
        )
        .await;
    assert_eq!(error_code(&again), "CONFLICT");

    // A review removes what is no longer needed and sets the next date.
    let reviewed = app
        .gql_as(
            "alma.admin",
            REVIEW,
            json!({"i": {"staffId": "sue.supervisor", "remove": ["supervisor"], "nextReviewBy": "2027-03-01"}}),
        )
        .await;
    assert_eq!(
        reviewed["data"]["reviewAccessRights"],
        json!({"roles": [], "nextReviewBy": "2027-03-01"}),
        "{reviewed}"
    );
    assert_eq!(
        error_code(&open(&app, "sue.supervisor", &call, "quality").await),
        "FORBIDDEN"
    );
    // And the history of rights shows all of it.
    let rights = app
        .gql_as(
            "aino.auditor",
            "{ staffRights(at: \"2026-03-03T10:00:00Z\", staffId: \"olli.new\") { role endedAt grantedBy } }",
            json!({}),
        )
        .await;
    assert_eq!(rights["errors"], Value::Null, "{rights}");
    let bad_role = app
        .gql_as(
            "alma.admin",
            GRANT,
            json!({"i": {"staffId": "olli.new", "role": "janitor"}}),
        )
        .await;
    assert_eq!(error_code(&bad_role), "INVALID_INPUT");
}

#[tokio::test]
async fn a_case_worker_serves_a_data_subject_without_handing_over_the_access_log() {
    let app = TestApp::new().await;
    let (call, rec) = recorded_call(&app, "anna.agent").await;
    // Anna listens once, so there is an access to (not) show.
    app.play_as("anna.agent", "verification", &call, &rec, &[])
        .await;
    let query = "query($p: String) { subject(phoneNumbers: [\"+358 40 123 4567\", \"050 000 0000\"], purpose: $p, caseReference: \"DSR-1\") {
        callId recorded recordings { id } accesses { actorId } } }";
    let copy = app.gql_as("kaisa.case", query, json!({})).await;
    let calls = copy["data"]["subject"]
        .as_array()
        .unwrap_or_else(|| panic!("{copy}"));
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["recorded"], true);
    assert_eq!(
        calls[0]["accesses"],
        json!([]),
        "R28: not in the subject's copy"
    );
    let for_audit = app
        .gql_as("aino.auditor", query, json!({"p": "legal_claim"}))
        .await;
    assert_eq!(
        for_audit["data"]["subject"][0]["accesses"][0]["actorId"], "anna.agent",
        "{for_audit}"
    );
    // The subject listens in an audited session; a download is refused.
    let (status, headers, _) = app
        .play_as(
            "kaisa.case",
            "data_subject_request",
            &call,
            &rec,
            &[
                ("x-callvault-mode", "subject_session"),
                ("x-callvault-case", "DSR-1"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-disposition"], "inline");
    let (status, _, _) = app
        .play_as(
            "kaisa.case",
            "data_subject_request",
            &call,
            &rec,
            &[("x-callvault-mode", "download")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Rectification: a new event, the original kept.
    let fixed = app
        .gql_as(
            "kaisa.case",
            "mutation($i: RectifyCallInput!) { rectifyCall(input: $i) { call { callerNumber } } }",
            json!({"i": {"callId": call, "callerNumber": "040 765 4321", "reason": "DSR-1: wrong number recorded"}}),
        )
        .await;
    // A write's answer carries no personal data (reading it is a logged
    // open); the open shows the rectified number.
    assert_eq!(
        fixed["data"]["rectifyCall"]["call"]["callerNumber"],
        Value::Null,
        "{fixed}"
    );
    let opened = app
        .gql_as(
            "kaisa.case",
            CALL,
            json!({"id": call, "purpose": "data_subject_request"}),
        )
        .await;
    assert_eq!(
        opened["data"]["call"]["callerNumber"], "+358407654321",
        "{opened}"
    );
    assert!(app.types().await.contains(&"CallRectified".to_owned()));
    let two = app
        .gql_as(
            "kaisa.case",
            "mutation($i: RectifyCallInput!) { rectifyCall(input: $i) { call { id } } }",
            json!({"i": {"callId": call, "callerNumber": "040 765 4321", "agentName": "A", "reason": "x"}}),
        )
        .await;
    assert_eq!(error_code(&two), "INVALID_INPUT");
    // An agent can't rectify.
    let refused = app
        .gql_as(
            "anna.agent",
            "mutation($i: RectifyCallInput!) { rectifyCall(input: $i) { call { id } } }",
            json!({"i": {"callId": call, "agentName": "B", "reason": "x"}}),
        )
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
}

#[tokio::test]
async fn searches_leave_restricted_calls_out_unless_the_law_allows() {
    let app = TestApp::new().await;
    let (call, _) = recorded_call(&app, "anna.agent").await;
    restrict(&app, &call, "DSR-2").await;
    let own = kept_out_but_for_the_law(&app, &call).await;
    assert!(
        own["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("restricted")
    );
}

#[tokio::test]
async fn playing_an_unknown_call_tells_nothing_to_someone_who_could_not_open_it() {
    let app = TestApp::new().await;
    let (call, rec) = recorded_call(&app, "bob.agent").await;
    let nowhere = uuid::Uuid::now_v7().to_string();
    // Anna may open only her own calls: bob's and one that does not
    // exist get the same refusal, both logged.
    let (theirs, _, _) = app
        .play_as("anna.agent", "verification", &call, &rec, &[])
        .await;
    let (missing, _, _) = app
        .play_as("anna.agent", "verification", &nowhere, &rec, &[])
        .await;
    assert_eq!(theirs, StatusCode::FORBIDDEN);
    assert_eq!(missing, StatusCode::FORBIDDEN);
    let denied = audit(&app, "anna.agent")
        .await
        .into_iter()
        .filter(|e| e["kind"] == "DENIED")
        .count();
    assert_eq!(denied, 2);
    // Someone who may open any call for quality learns it does not exist.
    let (status, _, _) = app
        .play_as("quinn.quality", "quality", &nowhere, &rec, &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn staff_as_of_is_logged_and_cannot_be_multiplied_by_aliases() {
    let app = TestApp::new().await;
    recorded_call(&app, "anna.agent").await;
    let at = chrono::Utc::now().to_rfc3339();
    let one = app
        .gql_as(
            "aino.auditor",
            "query($at: DateTime!) { staffAsOf(staffId: \"sue.supervisor\", at: $at) { calls { callId } } }",
            json!({"at": at}),
        )
        .await;
    assert_eq!(one["errors"], Value::Null, "{one}");
    let logged = audit(&app, "aino.auditor").await;
    assert!(
        logged
            .iter()
            .any(|e| e["kind"] == "SEARCH" && e["detail"] == "staffAsOf"),
        "{logged:?}"
    );
    let (status, two) = app
        .gql_with(
            Some(&common::bearer("aino.auditor")),
            "query($at: DateTime!) { a: staffAsOf(staffId: \"sue.supervisor\", at: $at) { reach } b: staffAsOf(staffId: \"anna.agent\", at: $at) { reach } }",
            json!({"at": at}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        two["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("complex")),
        "{two}"
    );
}

#[tokio::test]
async fn a_write_answers_without_personal_data_it_did_not_bring() {
    let app = TestApp::new().await;
    let started = app.start_call(json!({})).await;
    let call = &started["data"]["startCall"]["call"];
    assert_eq!(
        call["callerNumber"], "+358401234567",
        "the start's own data"
    );
    let id = call["id"].as_str().unwrap().to_owned();
    let end = || {
        app.gql_as(
            "telephony.pbx",
            "mutation($i: EndCallInput!) { endCall(input: $i) { replayed call { status callerNumber agentName } } }",
            json!({"i": {"callId": id}}),
        )
    };
    for (answer, replayed) in [(end().await, false), (end().await, true)] {
        let result = &answer["data"]["endCall"];
        assert_eq!(result["replayed"], replayed, "{answer}");
        assert_eq!(result["call"]["status"], "ENDED");
        assert_eq!(result["call"]["callerNumber"], Value::Null, "{answer}");
        assert_eq!(result["call"]["agentName"], Value::Null, "{answer}");
    }
}

#[tokio::test]
async fn a_restriction_reaches_past_views_the_history_and_the_subject_view() {
    let app = TestApp::new().await;
    let (call, _) = recorded_call(&app, "anna.agent").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let before = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    restrict(&app, &call, "DSR-4").await;

    // The call as it was before the restriction is restricted now too.
    let as_of = "query($id: ID!, $at: DateTime!, $p: String!) { callAsOf(id: $id, at: $at, purpose: $p) { callerNumber } }";
    let then = app
        .gql_as(
            "anna.agent",
            as_of,
            json!({"id": call, "at": before, "p": "verification"}),
        )
        .await;
    assert_eq!(error_code(&then), "FORBIDDEN", "{then}");

    // The history withholds its personal data unless the law allows.
    let history = |purpose: &'static str| {
        let app = &app;
        let call = call.clone();
        async move {
            let answer = app
                .gql_as(
                    "aino.auditor",
                    "query($s: String, $p: String!) { history(purpose: $p, filter: {stream: $s}) { items { eventType data } } }",
                    json!({"s": format!("call-{call}"), "p": purpose}),
                )
                .await;
            answer["data"]["history"]["items"]
                .as_array()
                .unwrap_or_else(|| panic!("{answer}"))
                .iter()
                .find(|i| i["eventType"] == "CallStarted")
                .unwrap()["data"]
                .clone()
        }
    };
    let verification = history("verification").await;
    assert_eq!(
        verification["caller"],
        json!({"$withheld": "processing is restricted"}),
        "{verification}"
    );
    assert_eq!(
        verification["agent"], "anna.agent",
        "what is not personal stays"
    );
    let legal = history("legal_claim").await;
    assert_eq!(legal["caller"]["$pd"], "+358401234567", "{legal}");

    // The subject view: only for the purposes the law allows.
    let subject = |purpose: &'static str| {
        app.gql_as(
            "kaisa.case",
            "query($p: String) { subject(phoneNumbers: [\"040 123 4567\"], purpose: $p) { callId } }",
            json!({"p": purpose}),
        )
    };
    let found = subject("verification").await;
    assert_eq!(found["data"]["subject"], json!([]), "{found}");
    let found = subject("data_subject_request").await;
    assert_eq!(
        found["data"]["subject"][0]["callId"],
        call.as_str(),
        "{found}"
    );
}

#[tokio::test]
async fn while_an_upgrade_rebuilds_calls_a_restriction_still_keeps_the_call_out() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };
    /// Lets the held rebuild go however the test ends.
    struct Release(Arc<AtomicBool>);
    impl Drop for Release {
        fn drop(&mut self) {
            self.0.store(false, Ordering::SeqCst);
        }
    }
    let app = TestApp::new().await;
    let (call, _) = recorded_call(&app, "anna.agent").await;
    let count = |v: &Value| v["data"]["search"]["items"].as_array().map(Vec::len);
    let found = app
        .gql_as("kaisa.case", SEARCH, json!({"purpose": "verification"}))
        .await;
    assert_eq!(count(&found), Some(1), "{found}");

    let hold = Arc::new(AtomicBool::new(true));
    let release = Release(hold.clone());
    let app = app.upgrading_calls(hold).await;
    assert!(app.projections.is_stale("calls"));
    restrict(&app, &call, "DSR-3").await;
    // The answering build has not seen the restriction; the answers have.
    assert!(app.projections.is_stale("calls"));
    kept_out_but_for_the_law(&app, &call).await;

    // Once the rebuild has taken over, the same answers from the model.
    drop(release);
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        app.projections.wait_for_rebuilds(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!app.projections.is_stale("calls"));
    let verify = app
        .gql_as("kaisa.case", SEARCH, json!({"purpose": "verification"}))
        .await;
    assert_eq!(count(&verify), Some(0), "{verify}");
}

#[tokio::test]
async fn the_first_administrator_comes_from_configuration_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = callvault::config::Config::load(
        None,
        &MapEnv(vec![
            (
                "CALLVAULT_DATA_DIR",
                dir.path().to_string_lossy().into_owned(),
            ),
            ("CALLVAULT_AUTH_BOOTSTRAP_ADMIN", "root.admin".to_owned()),
        ]),
    )
    .unwrap();
    let app = TestApp::new().await;
    callvault::cli::bootstrap_admin(&config, &app.registry)
        .await
        .unwrap();
    let granted = app
        .gql_as(
            "root.admin",
            GRANT,
            json!({"i": {"staffId": "new.auditor", "role": "auditor"}}),
        )
        .await;
    assert_eq!(granted["errors"], Value::Null, "{granted}");
    // Revoked by another administrator, it stays revoked after a restart.
    let revoked = app
        .gql_as(
            "alma.admin",
            REVOKE,
            json!({"i": {"staffId": "root.admin", "role": "administrator"}}),
        )
        .await;
    assert_eq!(revoked["errors"], Value::Null, "{revoked}");
    callvault::cli::bootstrap_admin(&config, &app.registry)
        .await
        .unwrap();
    let again = app
        .gql_as(
            "root.admin",
            GRANT,
            json!({"i": {"staffId": "new.auditor2", "role": "auditor"}}),
        )
        .await;
    assert_eq!(error_code(&again), "FORBIDDEN");
}

struct MapEnv(Vec<(&'static str, String)>);

impl callvault::config::Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

#[tokio::test]
async fn auditors_read_the_history_and_the_state_as_of_an_instant() {
    let app = TestApp::new().await;
    let started = app.start_call(json!({"agentId": "anna.agent"})).await;
    let call = started["data"]["startCall"]["call"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let between = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let ended = app
        .gql(
            common::END,
            json!({"input": {"callId": call, "endedAt": "2026-03-03T09:07:30Z"}}),
        )
        .await;
    assert_eq!(ended["errors"], Value::Null, "{ended}");

    let as_of = "query($id: ID!, $at: DateTime!) { callAsOf(id: $id, at: $at, purpose: \"verification\") { status revision } }";
    let then = app
        .gql_as("aino.auditor", as_of, json!({"id": call, "at": between}))
        .await;
    assert_eq!(
        then["data"]["callAsOf"],
        json!({"status": "IN_PROGRESS", "revision": 0}),
        "{then}"
    );
    let now = app
        .gql_as(
            "aino.auditor",
            as_of,
            json!({"id": call, "at": chrono::Utc::now().to_rfc3339()}),
        )
        .await;
    assert_eq!(now["data"]["callAsOf"]["status"], "ENDED", "{now}");

    let history = app
        .gql_as(
            "aino.auditor",
            "query($s: String) { history(purpose: \"verification\", filter: {stream: $s}) { items { eventType storedVersion actor data } nextCursor } }",
            json!({"s": format!("call-{call}")}),
        )
        .await;
    let items = history["data"]["history"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{history}"));
    let types: Vec<&str> = items
        .iter()
        .map(|i| i["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["CallStarted", "CallEnded"]);
    assert_eq!(items[0]["data"]["caller"]["$pd"], "+358401234567");

    let reach = app
        .gql_as(
            "aino.auditor",
            "query($at: DateTime!) { staffAsOf(staffId: \"sue.supervisor\", at: $at) { roles { role supervises } reach calls { callId agentId purposes } } }",
            json!({"at": chrono::Utc::now().to_rfc3339()}),
        )
        .await;
    let sue = &reach["data"]["staffAsOf"];
    assert_eq!(
        sue["roles"][0]["supervises"],
        json!(["anna.agent"]),
        "{reach}"
    );
    assert_eq!(sue["calls"][0]["callId"], call.as_str());
    assert_eq!(
        sue["calls"][0]["purposes"],
        json!(["verification", "training", "quality"])
    );

    // Nobody else reads the raw history; the auditor's reads are logged.
    let refused = app
        .gql_as(
            "anna.agent",
            "{ history(purpose: \"verification\") { items { position } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let kinds: Vec<String> = audit(&app, "aino.auditor")
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(kinds.contains(&"SEARCH".to_owned()), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "HISTORY_READ").count(), 2);
}

#[tokio::test]
async fn a_resent_rectification_with_its_request_id_is_recorded_once() {
    const RECTIFY: &str =
        "mutation($i: RectifyCallInput!) { rectifyCall(input: $i) { replayed call { revision } } }";
    let app = TestApp::new().await;
    let (call, _) = recorded_call(&app, "anna.agent").await;
    let input = json!({
        "callId": call,
        "agentName": "Anna Agentti",
        "reason": "DSR-3: name misspelt",
        "requestId": "0192f6a0-58c1-7000-8000-00000000d5a3",
    });
    let first = app.gql_as("kaisa.case", RECTIFY, json!({"i": input})).await;
    assert_eq!(first["data"]["rectifyCall"]["replayed"], false, "{first}");
    let revision = first["data"]["rectifyCall"]["call"]["revision"]
        .as_u64()
        .unwrap();
    let head = app.head().await;
    // The answer was lost: the same correction again, and again naming
    // the revision the first send would have expected.
    let mut expecting = input.clone();
    expecting["expectedRevision"] = json!(revision - 1);
    for resend in [input.clone(), expecting] {
        let again = app
            .gql_as("kaisa.case", RECTIFY, json!({"i": resend}))
            .await;
        assert_eq!(again["errors"], Value::Null, "{again}");
        assert_eq!(again["data"]["rectifyCall"]["replayed"], true, "{again}");
        assert_eq!(again["data"]["rectifyCall"]["call"]["revision"], revision);
    }
    assert_eq!(app.head().await, head, "a resend writes nothing");
    assert_eq!(rectified(&app.types().await), 1);
    // The same id for a different correction is refused, not recorded.
    let mut other = input.clone();
    other["reason"] = json!("DSR-4");
    let clash = app.gql_as("kaisa.case", RECTIFY, json!({"i": other})).await;
    assert_eq!(error_code(&clash), "CONFLICT", "{clash}");
    let mut malformed = input.clone();
    malformed["requestId"] = json!("DSR-3");
    let bad = app
        .gql_as("kaisa.case", RECTIFY, json!({"i": malformed}))
        .await;
    assert_eq!(error_code(&bad), "INVALID_INPUT", "{bad}");
    assert_eq!(
        bad["errors"][0]["extensions"]["field"], "requestId",
        "{bad}"
    );
    assert_eq!(app.head().await, head, "refusals write nothing");
    // Without an id each send is a correction of its own.
    let mut unnamed = input.clone();
    unnamed["requestId"] = Value::Null;
    for _ in 0..2 {
        let r = app
            .gql_as("kaisa.case", RECTIFY, json!({"i": unnamed}))
            .await;
        assert_eq!(r["data"]["rectifyCall"]["replayed"], false, "{r}");
    }
    assert_eq!(rectified(&app.types().await), 3);
}

fn rectified(types: &[String]) -> usize {
    types
        .iter()
        .filter(|t| t.as_str() == "CallRectified")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sends_of_one_request_id_at_once_never_both_succeed_with_different_corrections() {
    const RECTIFY: &str =
        "mutation($i: RectifyCallInput!) { rectifyCall(input: $i) { replayed call { revision } } }";
    let dir = tempfile::tempdir().unwrap();
    // The sled log's writer thread lets both sends read the call before
    // either has appended.
    let app = TestApp::with_store(std::sync::Arc::new(
        callvault_store::sled_store::SledStore::open(dir.path().join("events")).unwrap(),
    ))
    .await;
    let (call, _) = recorded_call(&app, "anna.agent").await;
    for round in 0..20 {
        let request = format!("0192f6a0-58c1-7000-8000-{round:012}");
        let send = |reason: &str| {
            app.gql_as(
                "kaisa.case",
                RECTIFY,
                json!({"i": {"callId": call, "agentName": format!("Agent {round}"), "reason": reason, "requestId": request}}),
            )
        };
        let before = rectified(&app.types().await);
        let (a, b) = tokio::join!(send("DSR-A"), send("DSR-B"));
        let ok = [&a, &b].iter().filter(|r| r["errors"].is_null()).count();
        assert_eq!(
            ok, 1,
            "exactly one correction is told it was done:\n{a}\n{b}"
        );
        for r in [&a, &b] {
            if r["errors"].is_null() {
                assert_eq!(r["data"]["rectifyCall"]["replayed"], false, "{r}");
            } else {
                assert_eq!(error_code(r), "CONFLICT", "{r}");
            }
        }
        assert_eq!(
            rectified(&app.types().await),
            before + 1,
            "one correction recorded"
        );
    }
}
