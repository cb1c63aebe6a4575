//! Recordings vault and retention through the router: upload and playback
//! (with Range), audit before access, sealed personal data in the log,
//! holds and restriction against retention, tombstones and shredding.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use callvault::retention;
use callvault_domain::ContactRef;
use callvault_store::vault::KeyOwner;
use callvault_store::{
    AppendResult, Direction, EventStore, ExpectedRevision, NewEvent, Position, RecordedEvent,
    StoreError, StreamFrom, StreamName, Subscription, memory::MemoryStore,
};
use common::{GET, TestApp, audio, error_code};
use serde_json::{Value, json};

async fn uploaded(app: &TestApp, len: usize) -> (String, String, Vec<u8>) {
    let call = app.ended_call().await;
    let data = audio(len);
    let (status, body) = app.upload(&call, data.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["sizeBytes"], len);
    (call, body["recordingId"].as_str().unwrap().to_owned(), data)
}

#[tokio::test]
async fn a_recording_uploads_and_plays_back_whole_and_in_ranges() {
    let app = TestApp::new().await;
    let (call, rec, data) = uploaded(&app, 300_000).await;
    let (status, headers, body) = app.play(&call, &rec, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, data);
    assert_eq!(headers["content-type"], "audio/wav");
    assert_eq!(headers["accept-ranges"], "bytes");
    let (status, headers, body) = app
        .play(&call, &rec, &[("range", "bytes=100000-100099")])
        .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(headers["content-range"], "bytes 100000-100099/300000");
    assert_eq!(body, data[100_000..100_100]);
    let (status, _, body) = app.play(&call, &rec, &[("range", "bytes=-10")]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, data[299_990..]);
    let (status, _, _) = app.play(&call, &rec, &[("range", "bytes=400000-")]).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    let read = app.gql(GET, json!({"id": call})).await;
    assert_eq!(read["data"]["call"]["recordings"][0]["id"], rec.as_str());
}

#[tokio::test]
async fn every_playback_is_logged_with_purpose_and_mode() {
    let app = TestApp::new().await;
    let (call, rec, _) = uploaded(&app, 1000).await;
    // A download is for legal claims, by a case worker.
    let (status, _, _) = app
        .play_as(
            "kaisa.case",
            "legal_claim",
            &call,
            &rec,
            &[
                ("x-callvault-mode", "download"),
                ("x-callvault-reason", "monthly sample"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let access = app
        .store
        .read_stream(
            &StreamName::new("access-kaisa.case").unwrap(),
            StreamFrom::Start,
            Direction::Forwards,
            10,
        )
        .await
        .unwrap();
    assert_eq!(access.len(), 1);
    assert_eq!(access[0].event_type, "RecordingAccessed");
    let event = app.registry.journal().decode(&access[0]).unwrap();
    let callvault_domain::Event::RecordingAccessed(e) = event else {
        panic!("{event:?}")
    };
    assert_eq!(e.purpose, callvault_domain::Purpose::LegalClaim);
    assert_eq!(e.role, Some(callvault_domain::Role::CaseWorker));
    assert_eq!(e.mode, callvault_domain::access::AccessMode::Download);
    assert_eq!(
        e.reason.and_then(|r| r.into_clear()).as_deref(),
        Some("monthly sample")
    );
    // The stored reason is sealed, not in clear.
    assert!(!String::from_utf8_lossy(&access[0].payload).contains("monthly sample"));
}

#[tokio::test]
async fn playback_without_a_purpose_is_refused_and_logs_nothing() {
    let app = TestApp::new().await;
    let (call, rec, _) = uploaded(&app, 1000).await;
    let head = app.head().await;
    let request = Request::get(format!("/calls/{call}/recordings/{rec}"))
        .header("authorization", common::bearer("sue.supervisor"))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = app.request(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("x-callvault-purpose"));
    assert_eq!(app.head().await, head);
}

/// A log that refuses access events, to prove nothing is served unaudited.
struct NoAccessLog(MemoryStore);

#[async_trait]
impl EventStore for NoAccessLog {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        if stream.category() == "access" {
            return Err(StoreError::Unavailable("disk full".into()));
        }
        self.0.append(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        stream: &StreamName,
        from: StreamFrom,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.0.read_stream(stream, from, direction, max).await
    }
    async fn read_all(
        &self,
        after: Option<Position>,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.0.read_all(after, max).await
    }
    async fn subscribe_all(&self, after: Option<Position>) -> Result<Subscription, StoreError> {
        self.0.subscribe_all(after).await
    }
    async fn head_position(&self) -> Result<Option<Position>, StoreError> {
        self.0.head_position().await
    }

    async fn import(&self, events: Vec<RecordedEvent>) -> Result<(), StoreError> {
        self.0.import(events).await
    }
}

#[tokio::test]
async fn if_the_access_event_cannot_be_written_no_audio_is_served() {
    let app = TestApp::with_store(Arc::new(NoAccessLog(MemoryStore::new()))).await;
    let (call, rec, data) = uploaded(&app, 50_000).await;
    let (status, _, body) = app.play(&call, &rec, &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !body.windows(32).any(|w| data.windows(32).next() == Some(w)),
        "no audio may leave"
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "UNAVAILABLE");
}

#[tokio::test]
async fn the_callers_number_never_reaches_the_log_in_clear() {
    let app = TestApp::new().await;
    app.ended_call().await;
    for e in app.store.read_all(None, 100).await.unwrap() {
        let text = String::from_utf8_lossy(&e.payload);
        for secret in ["358401234567", "040 123 4567", "Anna Agent"] {
            assert!(
                !text.contains(secret),
                "{} holds `{secret}` in clear",
                e.event_type
            );
        }
    }
}

#[tokio::test]
async fn uploads_to_unknown_calls_and_oversized_uploads_are_refused_and_leave_nothing() {
    let app = TestApp::new().await;
    let (status, body) = app
        .upload("0190b7a6-7a3e-7f00-8000-000000000001", audio(10))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let call = app.ended_call().await;
    let head = app.head().await;
    let (status, body) = app
        .upload(&call, audio(common::MAX_UPLOAD as usize + 1))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(app.head().await, head, "nothing recorded");
    assert!(
        app.registry.blobs().list().unwrap().is_empty(),
        "no blob left"
    );
}

const HOLD: &str = "mutation($input: PlaceHoldInput!) { placeHold(input: $input) { call { holds { id releasedAt } } } }";
const RELEASE: &str = "mutation($input: ReleaseHoldInput!) { releaseHold(input: $input) { call { holds { id releasedAt } } } }";
const RESTRICT: &str = "mutation($input: RestrictProcessingInput!) { restrictProcessing(input: $input) { call { restricted } } }";
const LIFT: &str = "mutation($input: LiftRestrictionInput!) { liftRestriction(input: $input) { call { restricted } } }";

async fn run_retention(app: &TestApp, now: &str) -> retention::RunReport {
    app.set_now(now);
    retention::run(&app.registry, now.parse().unwrap(), false, None)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_call_that_never_ended_does_not_stop_retention_and_expires_a_week_after_its_start() {
    let app = TestApp::new().await;
    // Its end event never came; it shares its day's bucket with a call
    // that ended, whose recording is due with it.
    let started = app.start_call(json!({})).await;
    let open = started["data"]["startCall"]["call"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"))
        .to_owned();
    let (plain_call, plain_rec, _) = uploaded(&app, 5000).await;
    let bucket_before = {
        let id: callvault_domain::CallId = open.parse().unwrap();
        app.registry
            .vault()
            .bucket_of(KeyOwner::Contact(ContactRef::Call(id)))
            .unwrap()
    };

    let report = run_retention(&app, "2027-03-05T03:00:00Z").await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.buckets.iter().all(|b| b.kek_destroyed), "{report:?}");
    assert_eq!(
        app.play(&plain_call, &plain_rec, &[]).await.0,
        StatusCode::GONE,
        "the ended call's recording went"
    );
    let kept = report
        .buckets
        .iter()
        .flat_map(|b| &b.kept)
        .find(|k| k.owner.contains(&open))
        .unwrap_or_else(|| panic!("the open call is reported kept: {report:?}"));
    assert!(kept.outcome.contains("has not ended"), "{kept:?}");
    // Its data is kept, under a key that moved to a later bucket.
    let id: callvault_domain::CallId = open.parse().unwrap();
    let bucket_after = app
        .registry
        .vault()
        .bucket_of(KeyOwner::Contact(ContactRef::Call(id)))
        .unwrap();
    assert_ne!(bucket_after, bucket_before);
    // A later command on the open call leaves its key where it was put off.
    let fixed = app
        .gql(
            "mutation($i: RectifyCallInput!) { rectifyCall(input: $i) { call { id } } }",
            json!({"i": {"callId": open, "agentName": "Anna A.", "reason": "typo"}}),
        )
        .await;
    assert_eq!(fixed["errors"], Value::Null, "{fixed}");
    assert_eq!(
        app.registry
            .vault()
            .bucket_of(KeyOwner::Contact(ContactRef::Call(id)))
            .unwrap(),
        bucket_after
    );
    let seen = app
        .gql(
            "query($id: ID!) { call(id: $id, purpose: \"verification\") { callerNumber } }",
            json!({"id": open}),
        )
        .await;
    assert_eq!(
        seen["data"]["call"]["callerNumber"], "+358401234567",
        "{seen}"
    );
    // Its end never comes: counted as ended seven days after its start
    // (2026-03-10), its data expires on 2027-03-10, where its key was put
    // off to: the plan shows it, and that day's run purges it.
    let plan = retention::plan(&app.registry, "2027-03-06T00:00:00Z".parse().unwrap(), 30)
        .await
        .unwrap();
    let due = plan
        .buckets
        .iter()
        .find(|b| b.due_on == "2027-03-11")
        .unwrap_or_else(|| panic!("{plan:?}"));
    assert!(
        due.destroyed.iter().any(|i| i.owner.contains(&open)),
        "{due:?}"
    );
    let later = run_retention(&app, "2027-03-11T03:00:00Z").await;
    assert!(later.failed.is_empty(), "{:?}", later.failed);
    let purged = later
        .buckets
        .iter()
        .flat_map(|b| &b.purged)
        .find(|p| p.owner.contains(&open))
        .unwrap_or_else(|| panic!("the open call's data is purged: {later:?}"));
    assert!(purged.outcome.contains("expired 2027-03-10"), "{purged:?}");
    assert!(later.buckets.iter().all(|b| b.kek_destroyed), "{later:?}");
    let after = app
        .gql(
            "query($id: ID!) { call(id: $id, purpose: \"verification\") { callerNumber personalDataShredded } }",
            json!({"id": open}),
        )
        .await;
    assert_eq!(
        after["data"]["call"]["callerNumber"],
        Value::Null,
        "{after}"
    );
    assert_eq!(
        after["data"]["call"]["personalDataShredded"], true,
        "{after}"
    );
}

#[tokio::test]
async fn a_held_and_a_restricted_call_survive_retention_until_released() {
    let app = TestApp::new().await;
    let (held_call, held_rec, _) = uploaded(&app, 5000).await;
    let (restricted_call, restricted_rec, _) = uploaded(&app, 5000).await;
    let (plain_call, plain_rec, _) = uploaded(&app, 5000).await;
    let hold = app
        .gql(HOLD, json!({"input": {"callId": held_call, "caseReference": "KELA/1/2026", "reason": "complaint", "reviewBy": "2027-06-01"}}))
        .await;
    let hold_id = hold["data"]["placeHold"]["call"]["holds"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{hold}"))
        .to_owned();
    let restricted = app
        .gql(RESTRICT, json!({"input": {"callId": restricted_call, "caseReference": "KELA/2/2026", "reason": "accuracy contested"}}))
        .await;
    assert_eq!(
        restricted["data"]["restrictProcessing"]["call"]["restricted"],
        true
    );

    // A year and a day later: only the unprotected call goes.
    let report = run_retention(&app, "2027-03-05T03:00:00Z").await;
    assert!(report.buckets.iter().all(|b| b.kek_destroyed));
    let (status, _, body) = app.play(&plain_call, &plain_rec, &[]).await;
    assert_eq!(status, StatusCode::GONE);
    let gone: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(gone["tombstone"]["policyVersion"], 1);
    assert_eq!(gone["tombstone"]["reason"], "retention_expired");
    assert_eq!(app.play(&held_call, &held_rec, &[]).await.0, StatusCode::OK);
    // Kept, but not used (R19): only for a legal claim.
    assert_eq!(
        app.play(&restricted_call, &restricted_rec, &[]).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.play_as(
            "kaisa.case",
            "legal_claim",
            &restricted_call,
            &restricted_rec,
            &[]
        )
        .await
        .0,
        StatusCode::OK
    );
    let plain = app.gql(GET, json!({"id": plain_call})).await;
    assert_eq!(plain["data"]["call"]["callerNumber"], Value::Null);
    assert_eq!(plain["data"]["call"]["personalDataShredded"], true);

    // Released and lifted: the next run purges them.
    let released = app
        .gql(
            RELEASE,
            json!({"input": {"callId": held_call, "holdId": hold_id, "reason": "settled"}}),
        )
        .await;
    assert_eq!(released["errors"], Value::Null, "{released}");
    let lifted = app
        .gql(LIFT, json!({"input": {"callId": restricted_call, "subjectInformedAt": "2027-03-05T02:00:00Z", "reason": "verified"}}))
        .await;
    assert_eq!(lifted["errors"], Value::Null, "{lifted}");
    run_retention(&app, "2027-03-06T03:00:00Z").await;
    assert_eq!(
        app.play(&held_call, &held_rec, &[]).await.0,
        StatusCode::GONE
    );
    assert_eq!(
        app.play(&restricted_call, &restricted_rec, &[]).await.0,
        StatusCode::GONE
    );
    assert!(
        app.registry.blobs().list().unwrap().is_empty(),
        "blobs deleted as hygiene"
    );
    let types = app.types().await;
    assert_eq!(types.iter().filter(|t| *t == "RecordingPurged").count(), 3);
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "ContactHistoryPurged")
            .count(),
        3
    );
}

#[tokio::test]
async fn nothing_is_purged_before_its_time_and_a_dry_run_changes_nothing() {
    let app = TestApp::new().await;
    let (call, rec, _) = uploaded(&app, 5000).await;
    let report = run_retention(&app, "2027-03-03T09:00:00Z").await;
    assert!(report.buckets.is_empty(), "{report:?}");
    app.set_now("2027-03-10T00:00:00Z");
    let head = app.head().await;
    let dry = retention::run(
        &app.registry,
        "2027-03-10T00:00:00Z".parse().unwrap(),
        true,
        None,
    )
    .await
    .unwrap();
    assert_eq!(dry.buckets.len(), 1);
    assert_eq!(dry.buckets[0].purged.len(), 2, "{dry:?}");
    assert!(!dry.buckets[0].kek_destroyed);
    assert_eq!(app.head().await, head);
    assert_eq!(app.play(&call, &rec, &[]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn after_shredding_the_history_still_replays_with_shredded_fields() {
    let app = TestApp::new().await;
    let (call, _, _) = uploaded(&app, 100).await;
    run_retention(&app, "2027-03-05T00:00:00Z").await;
    let mut shredded = 0;
    for recorded in app.store.read_all(None, 1000).await.unwrap() {
        let event = app
            .registry
            .journal()
            .decode(&recorded)
            .expect("every event still decodes");
        if let callvault_domain::Event::CallStarted(e) = &event {
            assert_eq!(e.call_id.to_string(), call);
            assert!(e.caller.as_ref().is_some_and(|c| c.is_shredded()));
            assert!(e.agent_name.is_shredded());
            shredded += 1;
        }
    }
    assert_eq!(shredded, 1);
    // And commands on the purged call answer GONE.
    let hold = app
        .gql(HOLD, json!({"input": {"callId": call, "caseReference": "X", "reason": "late", "reviewBy": "2028-01-01"}}))
        .await;
    assert_eq!(error_code(&hold), "GONE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_to_one_call_all_land() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let call = app.ended_call().await;
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let (app, call) = (app.clone(), call.clone());
        tasks.push(tokio::spawn(async move {
            app.upload(&call, vec![i; 2000]).await
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let read = app.gql(GET, json!({"id": call})).await;
    assert_eq!(
        read["data"]["call"]["recordings"].as_array().unwrap().len(),
        8,
        "{read}"
    );
}

#[tokio::test]
async fn a_second_upload_of_a_recording_while_the_first_streams_is_refused_and_harms_nothing() {
    let app = TestApp::new().await;
    let call = app.ended_call().await;
    let rec = uuid::Uuid::now_v7().to_string();
    let upload = |body: Body| {
        Request::post(format!("/calls/{call}/recordings"))
            .header("content-type", "audio/wav")
            .header("x-recording-id", rec.as_str())
            .header("authorization", common::bearer("telephony.pbx"))
            .body(body)
            .unwrap()
    };
    // The first upload streams slowly: half its audio, then a pause.
    let data = audio(200_000);
    let (tx, first) = streaming(&app, upload(Body::empty()));
    tx.send(Ok(data[..100_000].to_vec().into())).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // A retry meanwhile is told the first is under way...
    let (status, _, body) = app.request(upload(Body::from(audio(5000)))).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(String::from_utf8_lossy(&body).contains("being uploaded"));
    // ...and the first completes, its audio whole.
    tx.send(Ok(data[100_000..].to_vec().into())).await.unwrap();
    drop(tx);
    let response = first.await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let (status, _, played) = app.play(&call, &rec, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(played, data);
    // Once stored, the same id is refused as already stored.
    let (status, _, body) = app.request(upload(Body::from(audio(5000)))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(String::from_utf8_lossy(&body).contains("already stored"));
    assert_eq!(app.play(&call, &rec, &[]).await.2, data);
}

type Chunks = tokio::sync::mpsc::Sender<Result<axum::body::Bytes, std::io::Error>>;

/// Sends `request` with a body fed through the returned sender, in a task.
fn streaming(
    app: &TestApp,
    request: Request<Body>,
) -> (Chunks, tokio::task::JoinHandle<axum::response::Response>) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (parts, _) = request.into_parts();
    let request = Request::from_parts(
        parts,
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    );
    let router = app.router.clone();
    let task = tokio::spawn(async move {
        use tower::ServiceExt;
        router.oneshot(request).await.unwrap()
    });
    (tx, task)
}

#[tokio::test]
async fn retention_keeps_the_key_of_a_recording_still_uploading() {
    let app = TestApp::new().await;
    let call = app.ended_call().await;
    let rec: callvault_domain::RecordingId = uuid::Uuid::now_v7().to_string().parse().unwrap();
    let request = Request::post(format!("/calls/{call}/recordings"))
        .header("content-type", "audio/wav")
        .header("x-recording-id", rec.to_string())
        .header("authorization", common::bearer("telephony.pbx"))
        .body(Body::empty())
        .unwrap();
    let (tx, upload) = streaming(&app, request);
    tx.send(Ok(audio(50_000).into())).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let owner = KeyOwner::Recording(rec);
    let before = app.registry.vault().bucket_of(owner).unwrap();
    assert!(before.is_some(), "the upload made its key");

    // The call's year is up while its recording still streams in.
    let report = run_retention(&app, "2027-03-05T03:00:00Z").await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let kept = report
        .buckets
        .iter()
        .flat_map(|b| &b.kept)
        .find(|k| k.owner.contains(&rec.to_string()))
        .unwrap_or_else(|| panic!("{report:?}"));
    assert!(kept.outcome.contains("upload is in progress"), "{kept:?}");
    let after = app.registry.vault().bucket_of(owner).unwrap();
    assert!(
        after.is_some() && after != before,
        "its key was moved on, not destroyed: {after:?}"
    );
    // The upload then finds its call's data purged: nothing is stored.
    drop(tx);
    let response = upload.await.unwrap();
    assert!(!response.status().is_success(), "{}", response.status());
    assert!(!app.registry.blobs().exists(rec));
}

#[tokio::test]
async fn a_recording_id_used_by_one_call_is_refused_for_another() {
    let app = TestApp::new().await;
    let (first, rec, data) = uploaded(&app, 5000).await;
    let second = app.ended_call().await;
    let request = Request::post(format!("/calls/{second}/recordings"))
        .header("content-type", "audio/wav")
        .header("x-recording-id", rec.as_str())
        .header("authorization", common::bearer("telephony.pbx"))
        .body(Body::from(audio(7000)))
        .unwrap();
    let (status, _, body) = app.request(request).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(String::from_utf8_lossy(&body).contains("already used by another call"));
    // The first call's audio is untouched.
    let (status, _, played) = app.play(&first, &rec, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(played, data);
}

#[tokio::test]
async fn a_recording_id_stays_its_calls_after_a_purge_and_its_own_retry_may_go_on() {
    let app = TestApp::new().await;
    let upload_as = |call: String, rec: String, len: usize| {
        let app = &app;
        async move {
            let request = Request::post(format!("/calls/{call}/recordings"))
                .header("content-type", "audio/wav")
                .header("x-recording-id", rec.as_str())
                .header("authorization", common::bearer("telephony.pbx"))
                .body(Body::from(audio(len)))
                .unwrap();
            app.request(request).await.0
        }
    };
    // A crash between the audio and its event left this call's own blob
    // behind: the retry goes on and stores it.
    let call = app.ended_call().await;
    let rec: callvault_domain::RecordingId = uuid::Uuid::now_v7().to_string().parse().unwrap();
    assert_eq!(
        app.registry.blobs().claim(rec, &call).unwrap(),
        callvault_store::blob::Claim::Fresh
    );
    let path = app.registry.blobs().path(rec);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"a blob from before the crash").unwrap();
    assert_eq!(
        upload_as(call.clone(), rec.to_string(), 3000).await,
        StatusCode::CREATED
    );
    // After its call's recording is purged, the id is still that call's.
    run_retention(&app, "2027-03-05T03:00:00Z").await;
    assert!(!app.registry.blobs().exists(rec), "purged");
    let other = app.ended_call().await;
    assert_eq!(
        upload_as(other, rec.to_string(), 3000).await,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn a_hold_id_used_again_after_its_release_is_refused_with_or_without_a_revision() {
    const HOLD_AT: &str = "mutation($input: PlaceHoldInput!) { placeHold(input: $input) { replayed call { revision holds { id releasedAt } } } }";
    let app = TestApp::new().await;
    let (call, _, _) = uploaded(&app, 1000).await;
    let hold_id = "0192f6a0-58c1-7000-8000-0000000000aa";
    let input = json!({"callId": call, "holdId": hold_id, "caseReference": "KELA/7/2026", "reason": "complaint", "reviewBy": "2027-06-01"});
    let placed = app.gql(HOLD_AT, json!({"input": input})).await;
    assert_eq!(placed["data"]["placeHold"]["replayed"], false, "{placed}");
    let released = app
        .gql(
            RELEASE,
            json!({"input": {"callId": call, "holdId": hold_id, "reason": "settled"}}),
        )
        .await;
    assert_eq!(released["errors"], Value::Null, "{released}");
    // (Reading the call is itself logged: the head is taken after.)
    let revision = app
        .gql(
            "query($id: ID!) { call(id: $id, purpose: \"verification\") { revision } }",
            json!({"id": call}),
        )
        .await["data"]["call"]["revision"]
        .clone();
    let head = app.head().await;
    // Without a revision it may be a late resend of the first placing or
    // the id used again: either way the hold is no longer in force, so it
    // is not answered as done (`replayed: true` would say it is).
    let resent = app.gql(HOLD_AT, json!({"input": input})).await;
    assert_eq!(error_code(&resent), "CONFLICT", "{resent}");
    let message = resent["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("undone") && message.contains("HoldReleased"),
        "{resent}"
    );
    // Naming the revision after the release, the client has seen the
    // hold come and go: this is a new hold, not a resend of the first,
    // and its id is taken.
    let mut again = input.clone();
    again["expectedRevision"] = revision;
    let reused = app.gql(HOLD_AT, json!({"input": again})).await;
    assert_eq!(error_code(&reused), "CONFLICT", "{reused}");
    assert_eq!(app.head().await, head, "a refusal writes nothing");
}
