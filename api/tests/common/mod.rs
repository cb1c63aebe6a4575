//! A `TestApp`: the real router over an in-memory log, a temporary key
//! vault and blob folder, and a clock the test can move.

#![allow(dead_code, unreachable_pub)]

pub mod server;
pub mod smtp;

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
};
use callvault::auth::Authenticator;
use callvault::{
    AppState, app,
    service::{Clock, Registry},
};
use callvault_domain::{
    RetentionPolicy, Role, StaffId,
    staff::{GrantRole, StaffCommand},
};
use callvault_projections::Projections;
use callvault_store::{EventStore, blob::BlobStore, memory::MemoryStore, vault::KeyVault};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// A clock the test sets.
pub struct TestClock(pub Mutex<DateTime<Utc>>);

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub router: Router,
    pub registry: Registry,
    pub projections: Projections,
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<TestClock>,
}

pub const MAX_UPLOAD: u64 = 64 * 1024 * 1024;

/// The HS256 secret the tests sign tokens with.
pub const SECRET: [u8; 32] = [42; 32];

/// Who acts in `gql`, `upload`: the telephony side plus case work, audit
/// and analysis, so the older tests can write and read with one actor.
pub const OPERATOR: &str = "test.operator";

/// The staff of the tests and their roles (supervisors: their team).
pub const STAFF: &[(&str, Role, &[&str])] = &[
    (OPERATOR, Role::Administrator, &[]),
    (OPERATOR, Role::Telephony, &[]),
    (OPERATOR, Role::CaseWorker, &[]),
    (OPERATOR, Role::Auditor, &[]),
    (OPERATOR, Role::Analyst, &[]),
    ("telephony.pbx", Role::Telephony, &[]),
    ("anna.agent", Role::Agent, &[]),
    ("bob.agent", Role::Agent, &[]),
    ("sue.supervisor", Role::Supervisor, &["anna.agent"]),
    ("quinn.quality", Role::QualityExpert, &[]),
    ("mike.maintenance", Role::Maintenance, &[]),
    ("aino.auditor", Role::Auditor, &[]),
    ("kaisa.case", Role::CaseWorker, &[]),
    ("antti.analyst", Role::Analyst, &[]),
    ("alma.admin", Role::Administrator, &[]),
];

pub fn authenticator() -> Authenticator {
    Authenticator::hs256(&SECRET, "callvault", "callvault").unwrap()
}

/// A valid token for `staff`.
pub fn token(staff: &str) -> String {
    authenticator()
        .issue(
            &StaffId::parse(staff).unwrap(),
            Utc::now(),
            chrono::Duration::hours(1),
        )
        .unwrap()
}

pub fn bearer(staff: &str) -> String {
    format!("Bearer {}", token(staff))
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_store(Arc::new(MemoryStore::new())).await
    }

    pub async fn with_store(store: Arc<dyn EventStore>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(KeyVault::open(dir.path().join("keys")).unwrap());
        let blobs = BlobStore::open(dir.path().join("blobs")).unwrap();
        let clock = Arc::new(TestClock(Mutex::new(
            "2026-03-03T10:00:00Z".parse().unwrap(),
        )));
        let registry = Registry::new(
            store.clone(),
            vault,
            blobs,
            RetentionPolicy::default(),
            clock.clone(),
        );
        for (who, role, team) in STAFF {
            registry
                .execute::<callvault::service::Staff>(
                    &StaffId::system("test"),
                    &StaffId::parse(who).unwrap(),
                    StaffCommand::GrantRole(GrantRole {
                        role: *role,
                        supervises: team.iter().map(|t| StaffId::parse(t).unwrap()).collect(),
                        decision_reference: None,
                    }),
                    None,
                )
                .await
                .unwrap();
        }
        let models = callvault_projections::all(RetentionPolicy::default());
        Self::serving(dir, registry, store, clock, models).await
    }

    /// The router over `registry`, with `models` opened as its read models.
    async fn serving(
        dir: tempfile::TempDir,
        registry: Registry,
        store: Arc<dyn EventStore>,
        clock: Arc<TestClock>,
        models: Vec<Arc<dyn callvault_projections::Projection>>,
    ) -> Self {
        let projections = Projections::open(
            dir.path().join("projections"),
            store.clone(),
            registry.journal().clone(),
            models,
        )
        .await
        .unwrap();
        Self {
            router: app(AppState::new(
                registry.clone(),
                projections.clone(),
                MAX_UPLOAD,
                std::sync::Arc::new(authenticator()),
            )),
            projections,
            registry,
            store,
            clock,
            dir,
        }
    }

    /// Reopens the read models as if an upgrade had bumped `calls`' code
    /// version: the old build keeps answering, no longer following the
    /// log, while its rebuild waits as long as `hold` is set.
    pub async fn upgrading_calls(self, hold: Arc<std::sync::atomic::AtomicBool>) -> Self {
        let TestApp {
            dir,
            router,
            registry,
            projections,
            store,
            clock,
        } = self;
        drop(router);
        projections.shutdown().await;
        let mut models = callvault_projections::all(RetentionPolicy::default());
        models.retain(|m| m.name() != callvault_projections::models::calls::NAME);
        models.push(Arc::new(HeldCallsUpgrade { hold }));
        Self::serving(dir, registry, store, clock, models).await
    }

    pub fn set_now(&self, t: &str) {
        *self.clock.0.lock().unwrap() = t.parse().unwrap();
    }

    pub async fn request(
        &self,
        request: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, body.to_vec())
    }

    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.gql_as(OPERATOR, query, variables).await
    }

    /// A GraphQL request with `staff`'s token.
    pub async fn gql_as(&self, staff: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self.gql_with(Some(&bearer(staff)), query, variables).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// A GraphQL request with any `Authorization` header (or none).
    pub async fn gql_with(
        &self,
        authorization: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (StatusCode, Value) {
        let body = json!({"query": query, "variables": variables}).to_string();
        let mut request = Request::post("/graphql").header("content-type", "application/json");
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        let (status, _, body) = self.request(request.body(Body::from(body)).unwrap()).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn head(&self) -> Option<String> {
        self.store
            .head_position()
            .await
            .unwrap()
            .map(|p| p.to_string())
    }

    pub async fn start_call(&self, extra: Value) -> Value {
        let mut input = json!({
            "direction": "INBOUND",
            "callerNumber": "040 123 4567",
            "serviceNumber": "0295 50 2000",
            "agentId": "anna.agent",
            "agentName": "Anna Agent",
            "startedAt": "2026-03-03T09:00:00Z",
        });
        for (k, v) in extra.as_object().unwrap() {
            input[k] = v.clone();
        }
        self.gql(START, json!({"input": input})).await
    }

    /// Starts and ends a call; returns its id.
    pub async fn ended_call(&self) -> String {
        let started = self.start_call(json!({})).await;
        let id = started["data"]["startCall"]["call"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{started}"))
            .to_owned();
        let ended = self
            .gql(
                END,
                json!({"input": {"callId": id, "endedAt": "2026-03-03T09:07:30Z"}}),
            )
            .await;
        assert_eq!(ended["errors"], Value::Null, "{ended}");
        id
    }

    pub async fn upload(&self, call: &str, audio: Vec<u8>) -> (StatusCode, Value) {
        let request = Request::post(format!("/calls/{call}/recordings"))
            .header("content-type", "audio/wav")
            .header("authorization", bearer("telephony.pbx"))
            .body(Body::from(audio))
            .unwrap();
        let (status, _, body) = self.request(request).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Plays as `sue.supervisor` (anna.agent's supervisor) for quality.
    pub async fn play(
        &self,
        call: &str,
        recording: &str,
        extra: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        self.play_as("sue.supervisor", "quality", call, recording, extra)
            .await
    }

    pub async fn play_as(
        &self,
        staff: &str,
        purpose: &str,
        call: &str,
        recording: &str,
        extra: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut request = Request::get(format!("/calls/{call}/recordings/{recording}"))
            .header("authorization", bearer(staff))
            .header("x-callvault-purpose", purpose);
        for (k, v) in extra {
            request = request.header(*k, *v);
        }
        self.request(request.body(Body::empty()).unwrap()).await
    }

    /// Every stored event's type, in log order.
    pub async fn types(&self) -> Vec<String> {
        self.store
            .read_all(None, 100_000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }
}

pub const START: &str = "mutation($input: StartCallInput!) {
    startCall(input: $input) { replayed logPosition call { id revision status callerNumber serviceNumber agentId startedAt } }
}";

pub const END: &str = "mutation($input: EndCallInput!) {
    endCall(input: $input) { replayed call { id revision status endedAt durationSeconds } }
}";

pub const GET: &str = "query($id: ID!) {
    call(id: $id, purpose: \"legal_claim\") { id direction status callerNumber serviceNumber agentId agentName startedAt endedAt durationSeconds personalDataShredded restricted recordings { id purgedAt } holds { id releasedAt } }
}";

pub fn error_code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {response}"))
}

/// Distinct-looking audio: every 32-byte window is unique.
pub fn audio(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Runs the `callvault` binary on a data folder: (success, stdout, stderr).
pub fn cli(data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(args)
        .env("CALLVAULT_DATA_DIR", data)
        .env("CALLVAULT_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `calls` one version on, whose fold waits while `hold` is set.
struct HeldCallsUpgrade {
    hold: Arc<std::sync::atomic::AtomicBool>,
}

impl callvault_projections::Projection for HeldCallsUpgrade {
    fn name(&self) -> &'static str {
        callvault_projections::models::calls::NAME
    }

    fn version(&self) -> u32 {
        callvault_projections::models::calls::VERSION + 1
    }

    fn config(&self) -> String {
        callvault_projections::models::calls::Calls.config()
    }

    fn cache_bytes(&self) -> u64 {
        callvault_projections::models::calls::Calls.cache_bytes()
    }

    fn apply(
        &self,
        tx: &mut callvault_projections::view::Tx<'_>,
        envelope: &callvault_projections::Envelope,
    ) -> Result<(), callvault_projections::ProjectionError> {
        while self.hold.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        callvault_projections::models::calls::Calls.apply(tx, envelope)
    }
}
