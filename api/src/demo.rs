//! `callvault demo seed`: a realistic register written through the normal
//! command path — staff and their rights, service lines, inbound and
//! outbound calls from a pool of repeat callers, recordings (small
//! synthetic audio, encrypted like any other), complaint holds, a few
//! restrictions, supervisors listening, the odd break-glass read by
//! maintenance, and chats with transcript orders. Everything derives from
//! `--seed`: the same seed gives the same ids, numbers and times.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use anyhow::Context as _;
use callvault_domain::{
    CallId, ChatId, EmailAddress, EmailRequestId, HoldId, PhoneNumber, Purpose, RecordingId, Role,
    StaffId,
    access::{AccessMode, OpenRecording, open_recording},
    call::{CallCommand, Direction, EndCall, StartCall, StoreRecording},
    chat::{AppendChatMessage, ChatCommand, ChatParty, EndChat, RequestTranscriptEmail, StartChat},
    controls::{PlaceHold, ReleaseHold, RestrictProcessing},
    staff::{GrantRole, StaffCommand},
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::{
    audio::record_access,
    custody::expiry_bucket,
    service::{Call, Chat, Registry, Staff},
};

/// What to seed.
#[derive(Debug, Clone)]
pub struct DemoPlan {
    pub calls: u64,
    pub seed: u64,
    /// The first day calls happen on; they spread over `days`.
    pub start: NaiveDate,
    pub days: u32,
    pub concurrency: usize,
}

/// splitmix64: small, fast, and the same everywhere.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        let mut r = Self(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

pub const SERVICE_LINES: [&str; 6] = [
    "020 692 200",
    "020 692 210",
    "020 692 220",
    "020 692 230",
    "020 692 240",
    "020 692 250",
];
pub const AGENTS: u64 = 40;
pub const SUPERVISORS: u64 = 5;

pub fn agent(i: u64) -> StaffId {
    StaffId::parse(&format!("agent{:02}", i % AGENTS)).unwrap_or_else(|_| StaffId::system("demo"))
}

pub fn supervisor(i: u64) -> StaffId {
    StaffId::parse(&format!("supervisor{}", i % SUPERVISORS))
        .unwrap_or_else(|_| StaffId::system("demo"))
}

fn staff(name: &str) -> StaffId {
    StaffId::parse(name).unwrap_or_else(|_| StaffId::system("demo"))
}

/// The `i`-th caller of the pool, as E.164-able Finnish mobile number.
pub fn caller(seed: u64, i: u64, pool: u64) -> PhoneNumber {
    let mut r = Rng::new(seed, 0xca11 + (i % pool.max(1)));
    let number = format!("04{}{:07}", r.below(10), r.below(10_000_000));
    PhoneNumber::parse(&number)
        .unwrap_or_else(|_| PhoneNumber::parse("0401234567").unwrap_or_else(|_| unreachable!()))
}

fn id(seed: u64, kind: &str, i: u64) -> Uuid {
    Uuid::new_v5(
        &callvault_domain::ids::ID_NAMESPACE,
        format!("demo/{seed}/{kind}/{i}").as_bytes(),
    )
}

/// Grants the demo's staff their roles (idempotent).
async fn seed_staff(registry: &Registry) -> anyhow::Result<()> {
    let admin = StaffId::system("demo");
    let mut grants: Vec<(StaffId, Role, Vec<StaffId>)> = Vec::new();
    for a in 0..AGENTS {
        grants.push((agent(a), Role::Agent, vec![]));
    }
    for s in 0..SUPERVISORS {
        let team = (0..AGENTS)
            .filter(|a| a % SUPERVISORS == s)
            .map(agent)
            .collect();
        grants.push((supervisor(s), Role::Supervisor, team));
    }
    for (name, role) in [
        ("quality.expert", Role::QualityExpert),
        ("maintenance.mike", Role::Maintenance),
        ("security.sam", Role::Security),
        ("auditor.aino", Role::Auditor),
        ("caseworker.kaisa", Role::CaseWorker),
        ("analyst.antti", Role::Analyst),
        ("telephony.pbx", Role::Telephony),
        ("admin.alma", Role::Administrator),
    ] {
        grants.push((staff(name), role, vec![]));
    }
    for (who, role, supervises) in grants {
        let state = registry.load::<Staff>(&who).await?.state;
        if state.has_role(role) {
            continue;
        }
        registry
            .execute::<Staff>(
                &admin,
                &who,
                StaffCommand::GrantRole(GrantRole {
                    role,
                    supervises,
                    decision_reference: Some("DEMO/2026".into()),
                }),
                None,
            )
            .await?;
    }
    Ok(())
}

/// Seeds one call (and what happens to it) through the command path.
async fn seed_call(registry: &Registry, plan: &DemoPlan, i: u64) -> anyhow::Result<u64> {
    let mut r = Rng::new(plan.seed, i);
    let pbx = staff("telephony.pbx");
    let call_id = CallId(id(plan.seed, "call", i));
    if registry.load::<Call>(&call_id).await?.revision.is_some() {
        return Ok(0); // seeded before
    }
    let day = plan.start + Duration::days(r.below(u64::from(plan.days.max(1))) as i64);
    let started_at: DateTime<Utc> = day
        .and_hms_opt(8, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_else(Utc::now)
        + Duration::seconds(r.below(9 * 3600) as i64);
    // Roughly log-normal: most calls a few minutes, some long.
    let duration = 20 + r.below(240) + if r.chance(150) { r.below(1800) } else { 0 };
    let ended_at = started_at + Duration::seconds(duration as i64);
    let agent_id = agent(r.below(AGENTS));
    let service = PhoneNumber::parse(SERVICE_LINES[r.below(SERVICE_LINES.len() as u64) as usize])?;
    let direction = if r.chance(900) {
        Direction::Inbound
    } else {
        Direction::Outbound
    };
    let mut events = 0;
    registry
        .execute::<Call>(
            &pbx,
            &call_id,
            CallCommand::Start(StartCall {
                call_id,
                direction,
                caller: Some(caller(
                    plan.seed,
                    r.below(u64::MAX),
                    (plan.calls / 3).max(1),
                )),
                service_number: service,
                agent: agent_id.clone(),
                agent_name: format!("Agent {}", agent_id.as_str().trim_start_matches("agent")),
                agent_number: None,
                started_at,
            }),
            None,
        )
        .await?;
    registry
        .execute::<Call>(&pbx, &call_id, CallCommand::End(EndCall { ended_at }), None)
        .await?;
    events += 2;
    if r.chance(800) {
        let recording_id = RecordingId(id(plan.seed, "recording", i));
        let audio: Vec<u8> = (0..2048).map(|_| r.next() as u8).collect();
        let bucket = expiry_bucket(registry.policy().recording_expires_at(ended_at));
        let owner = callvault_store::vault::KeyOwner::Recording(recording_id);
        let key = registry
            .with_vault(move |v| v.create_key(owner, bucket))
            .await?;
        let blobs = registry.blobs().clone();
        let info = tokio::task::spawn_blocking(move || {
            let mut w = blobs.create(recording_id, &key)?;
            w.write(&audio)?;
            w.finish()
        })
        .await??;
        registry
            .execute::<Call>(
                &pbx,
                &call_id,
                CallCommand::StoreRecording(StoreRecording {
                    recording_id,
                    codec: "audio/wav".into(),
                    duration_ms: Some(duration * 1000),
                    size_bytes: info.plaintext_len,
                    ciphertext_sha256: info.ciphertext_sha256,
                }),
                None,
            )
            .await?;
        events += 1;
        // Supervisors sample calls for quality; maintenance sometimes has
        // to listen to find a fault.
        let listener = if r.chance(50) {
            Some((
                supervisor(agent_index(&agent_id)),
                Role::Supervisor,
                Purpose::Quality,
                false,
            ))
        } else if r.chance(3) {
            Some((
                staff("maintenance.mike"),
                Role::Maintenance,
                Purpose::Maintenance,
                true,
            ))
        } else {
            None
        };
        if let Some((who, role, purpose, break_glass)) = listener {
            let state = registry.load::<Call>(&call_id).await?.state;
            let ctx = callvault_domain::Context::new(registry.now(), who.clone());
            let logged = open_recording(
                &state,
                call_id,
                OpenRecording {
                    recording_id,
                    role: Some(role),
                    purpose,
                    mode: AccessMode::Listen,
                    case_reference: None,
                    reason: break_glass.then(|| "audio codec fault ticket INC-4711".to_owned()),
                    break_glass,
                },
                &ctx,
            )?;
            record_access(registry, &who, &logged).await?;
            events += 1;
        }
    }
    if r.chance(5) {
        let case_worker = staff("caseworker.kaisa");
        let hold_id = HoldId(id(plan.seed, "hold", i));
        registry
            .execute::<Call>(
                &case_worker,
                &call_id,
                CallCommand::PlaceHold(PlaceHold {
                    hold_id,
                    case_reference: format!("KELA/{}/2026", 1000 + i % 9000),
                    reason: "complaint about a benefit decision".into(),
                    review_by: registry.now().date_naive() + Duration::days(180),
                }),
                None,
            )
            .await?;
        events += 1;
        if r.chance(300) {
            registry
                .execute::<Call>(
                    &case_worker,
                    &call_id,
                    CallCommand::ReleaseHold(ReleaseHold {
                        hold_id,
                        reason: "complaint settled".into(),
                    }),
                    None,
                )
                .await?;
            events += 1;
        }
    } else if r.chance(1) {
        registry
            .execute::<Call>(
                &staff("caseworker.kaisa"),
                &call_id,
                CallCommand::RestrictProcessing(RestrictProcessing {
                    case_reference: format!("TSV/{}/2026", i % 1000),
                    reason: "the customer contests the recorded details".into(),
                }),
                None,
            )
            .await?;
        events += 1;
    }
    Ok(events)
}

fn agent_index(a: &StaffId) -> u64 {
    a.as_str()
        .trim_start_matches("agent")
        .parse::<u64>()
        .unwrap_or(0)
}

/// Seeds one chat.
async fn seed_chat(registry: &Registry, plan: &DemoPlan, i: u64) -> anyhow::Result<u64> {
    let mut r = Rng::new(plan.seed, 0xc4a7_0000 + i);
    let chat_id = ChatId(id(plan.seed, "chat", i));
    if registry.load::<Chat>(&chat_id).await?.revision.is_some() {
        return Ok(0);
    }
    let agent_id = agent(r.below(AGENTS));
    let day = plan.start + Duration::days(r.below(u64::from(plan.days.max(1))) as i64);
    let started_at = day
        .and_hms_opt(9, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_else(Utc::now)
        + Duration::seconds(r.below(8 * 3600) as i64);
    let chat_system = staff("telephony.pbx");
    registry
        .execute::<Chat>(
            &chat_system,
            &chat_id,
            ChatCommand::Start(StartChat {
                chat_id,
                agent: agent_id,
                service: ["benefits", "pensions", "housing"][r.below(3) as usize].into(),
                customer_name: None,
                started_at,
            }),
            None,
        )
        .await?;
    let lines = [
        "Hello, I have a question about my application.",
        "Thank you for contacting us. How can I help?",
        "When will the decision be made?",
        "The processing time is currently about three weeks.",
        "Thanks, that helps.",
    ];
    let n = 3 + r.below(3);
    let mut at = started_at;
    for m in 0..n {
        at += Duration::seconds(20 + r.below(120) as i64);
        registry
            .execute::<Chat>(
                &chat_system,
                &chat_id,
                ChatCommand::AppendMessage(AppendChatMessage {
                    from: if m % 2 == 0 {
                        ChatParty::Customer
                    } else {
                        ChatParty::Agent
                    },
                    text: lines[m as usize % lines.len()].into(),
                    sent_at: at,
                    client_message_id: None,
                }),
                None,
            )
            .await?;
    }
    registry
        .execute::<Chat>(
            &chat_system,
            &chat_id,
            ChatCommand::End(EndChat {
                ended_at: at + Duration::seconds(30),
            }),
            None,
        )
        .await?;
    let mut events = n + 2;
    if r.chance(100) {
        registry
            .execute::<Chat>(
                &chat_system,
                &chat_id,
                ChatCommand::RequestTranscriptEmail(RequestTranscriptEmail {
                    request_id: EmailRequestId(id(plan.seed, "email", i)),
                    ordered_by: ChatParty::Customer,
                    address: EmailAddress::parse(&format!("customer{}@example.fi", i % 1000))?,
                }),
                None,
            )
            .await?;
        events += 1;
    }
    Ok(events)
}

/// Seeds the register; `progress` is told how many calls and chats are
/// done. Returns the number of events written.
pub async fn seed(
    registry: &Registry,
    plan: &DemoPlan,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> anyhow::Result<u64> {
    seed_staff(registry)
        .await
        .context("granting the demo staff their roles")?;
    let chats = plan.calls / 10;
    let total = plan.calls + chats;
    let permits = Arc::new(Semaphore::new(plan.concurrency.max(1)));
    let done = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(progress);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let permit = permits.clone().acquire_owned().await?;
        let registry = registry.clone();
        let plan = plan.clone();
        let done = done.clone();
        let events = events.clone();
        let progress = progress.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let n = if i < plan.calls {
                seed_call(&registry, &plan, i).await
            } else {
                seed_chat(&registry, &plan, i - plan.calls).await
            }
            .with_context(|| format!("seeding item {i}"))?;
            events.fetch_add(n, Ordering::Relaxed);
            progress(done.fetch_add(1, Ordering::Relaxed) + 1);
            Ok::<(), anyhow::Error>(())
        });
        while let Some(finished) = tasks.try_join_next() {
            finished??;
        }
    }
    while let Some(finished) = tasks.join_next().await {
        finished??;
    }
    Ok(events.load(Ordering::Relaxed))
}
