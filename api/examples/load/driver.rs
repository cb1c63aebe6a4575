//! The load driver shared by `scripts/load` and the crash-under-load
//! test: many concurrent clients against a running `callvault serve` with
//! a realistic mix — call starts and ends, uploads, searches, playbacks,
//! access-audit reads — bounded in clients and time, recording latency per
//! operation and every write the server acknowledged.

#![allow(dead_code, unreachable_pub)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

/// Bearer tokens of the load's staff.
#[derive(Clone)]
pub struct Tokens {
    pub pbx: String,
    pub analyst: String,
    pub supervisor: String,
    pub auditor: String,
}

pub const AGENTS: usize = 8;

fn agent(i: usize) -> String {
    format!("load.agent{}", i % AGENTS)
}

/// The staff the load acts as, and their roles.
pub fn grants() -> Vec<Value> {
    let team: Vec<String> = (0..AGENTS).map(agent).collect();
    vec![
        json!({"staffId": "load.pbx", "role": "telephony"}),
        json!({"staffId": "load.analyst", "role": "analyst"}),
        json!({"staffId": "load.supervisor", "role": "supervisor", "supervises": team}),
        json!({"staffId": "load.auditor", "role": "auditor"}),
    ]
}

/// Gives the load's staff their roles (already held is fine).
pub async fn setup(client: &reqwest::Client, base: &str, admin: &str) -> anyhow::Result<()> {
    for g in grants() {
        let answer: Value = client
            .post(format!("{base}/graphql"))
            .bearer_auth(admin)
            .json(&json!({"query": "mutation($i: GrantRoleInput!) { grantRole(input: $i) { staffId } }", "variables": {"i": g}}))
            .send()
            .await?
            .json()
            .await?;
        let code = answer["errors"][0]["extensions"]["code"].as_str();
        anyhow::ensure!(
            code.is_none() || code == Some("CONFLICT"),
            "granting {g}: {answer}"
        );
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    StartAndEnd,
    Upload,
    Search,
    Play,
    Audit,
}

impl Op {
    pub const ALL: [Op; 5] = [Op::StartAndEnd, Op::Upload, Op::Search, Op::Play, Op::Audit];
    pub fn name(self) -> &'static str {
        match self {
            Op::StartAndEnd => "startCall + endCall",
            Op::Upload => "upload 64 KiB recording",
            Op::Search => "search by agent",
            Op::Play => "play recording",
            Op::Audit => "accessAudit page",
        }
    }
    /// Out of 100 operations.
    fn weight(self) -> u64 {
        match self {
            Op::StartAndEnd => 30,
            Op::Upload => 15,
            Op::Search => 30,
            Op::Play => 15,
            Op::Audit => 10,
        }
    }
}

/// What the server acknowledged.
#[derive(Debug, Default, Clone)]
pub struct Acked {
    /// Calls whose start (and end, if `true`) were acknowledged.
    pub calls: Vec<(String, bool)>,
    /// (call, recording, size) of acknowledged uploads.
    pub recordings: Vec<(String, String, usize)>,
}

#[derive(Debug, Default, Clone)]
pub struct OpStats {
    pub ok: Vec<Duration>,
    pub failed: u64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub stats: std::collections::BTreeMap<Op, OpStats>,
    pub acked: Acked,
    pub elapsed: Duration,
}

impl Report {
    pub fn print(&self, clients: usize) {
        println!(
            "{clients} clients for {:.1?}; every answer checked (a fast error is not a result)",
            self.elapsed
        );
        println!(
            "{:<26} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
            "operation", "ok", "failed", "ops/s", "p50 ms", "p99 ms", "max ms"
        );
        for (op, s) in &self.stats {
            let mut v = s.ok.clone();
            v.sort_unstable();
            let pct = |p: f64| {
                v.get(((v.len() as f64 - 1.0) * p).round() as usize)
                    .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
            };
            println!(
                "{:<26} {:>8} {:>8} {:>8.1} {:>9.2} {:>9.2} {:>9.2}",
                op.name(),
                s.ok.len(),
                s.failed,
                s.ok.len() as f64 / self.elapsed.as_secs_f64(),
                pct(0.5),
                pct(0.99),
                pct(1.0)
            );
        }
    }
}

struct Shared {
    report: Mutex<Report>,
    started: Instant,
}

async fn gql(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    query: &str,
    vars: Value,
) -> Result<Value, String> {
    let answer: Value = client
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&json!({"query": query, "variables": vars}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    if answer["errors"] != Value::Null || answer["data"] == Value::Null {
        return Err(answer.to_string());
    }
    Ok(answer["data"].clone())
}

/// One operation by one client; `Ok` only when the answer checks out.
async fn one(
    op: Op,
    n: u64,
    client: &reqwest::Client,
    base: &str,
    tokens: &Tokens,
    shared: &Shared,
) -> Result<(), String> {
    match op {
        Op::StartAndEnd => {
            let started = gql(client, base, &tokens.pbx,
                "mutation($i: StartCallInput!) { startCall(input: $i) { call { id } } }",
                json!({"i": {"direction": "INBOUND", "callerNumber": format!("040 {:07}", n % 10_000_000),
                        "serviceNumber": "0295 50 2000", "agentId": agent(n as usize), "agentName": "Load Agent"}})).await?;
            let id = started["startCall"]["call"]["id"]
                .as_str()
                .ok_or("no id")?
                .to_owned();
            shared
                .report
                .lock()
                .unwrap()
                .acked
                .calls
                .push((id.clone(), false));
            let ended = gql(
                client,
                base,
                &tokens.pbx,
                "mutation($i: EndCallInput!) { endCall(input: $i) { call { status } } }",
                json!({"i": {"callId": id}}),
            )
            .await?;
            if ended["endCall"]["call"]["status"] != "ENDED" {
                return Err(ended.to_string());
            }
            let mut r = shared.report.lock().unwrap();
            if let Some(c) = r.acked.calls.iter_mut().rev().find(|(c, _)| *c == id) {
                c.1 = true;
            }
            Ok(())
        }
        Op::Upload => {
            let call = {
                let r = shared.report.lock().unwrap();
                r.acked
                    .calls
                    .iter()
                    .rev()
                    .find(|(_, ended)| *ended)
                    .map(|(c, _)| c.clone())
            };
            let Some(call) = call else { return Ok(()) };
            let audio: Vec<u8> = (0..64 * 1024)
                .map(|i| ((i as u64 * 31 + n) % 251) as u8)
                .collect();
            let len = audio.len();
            let response = client
                .post(format!("{base}/calls/{call}/recordings"))
                .bearer_auth(&tokens.pbx)
                .header("content-type", "audio/wav")
                .body(audio)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if response.status() != 201 {
                return Err(format!("upload: {}", response.status()));
            }
            let body: Value = response.json().await.map_err(|e| e.to_string())?;
            let rec = body["recordingId"]
                .as_str()
                .ok_or("no recording id")?
                .to_owned();
            shared
                .report
                .lock()
                .unwrap()
                .acked
                .recordings
                .push((call, rec, len));
            Ok(())
        }
        Op::Search => {
            let data = gql(client, base, &tokens.analyst,
                "query($a: String) { search(purpose: \"quality\", filter: {agentId: $a}, first: 20) { items { id agentId } } }",
                json!({"a": agent(n as usize)})).await?;
            data["search"]["items"].as_array().ok_or("no items")?;
            Ok(())
        }
        Op::Play => {
            let pick = {
                let r = shared.report.lock().unwrap();
                let v = &r.acked.recordings;
                (!v.is_empty()).then(|| v[(n as usize) % v.len()].clone())
            };
            let Some((call, rec, len)) = pick else {
                return Ok(());
            };
            let response = client
                .get(format!("{base}/calls/{call}/recordings/{rec}"))
                .bearer_auth(&tokens.supervisor)
                .header("x-callvault-purpose", "quality")
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if response.status() != 200 {
                return Err(format!("play: {}", response.status()));
            }
            let body = response.bytes().await.map_err(|e| e.to_string())?;
            if body.len() != len {
                return Err(format!("played {} of {len} bytes", body.len()));
            }
            Ok(())
        }
        Op::Audit => {
            let data = gql(
                client,
                base,
                &tokens.auditor,
                "{ accessAudit(first: 20) { items { at actorId kind } } }",
                json!({}),
            )
            .await?;
            data["accessAudit"]["items"].as_array().ok_or("no items")?;
            Ok(())
        }
    }
}

/// Runs `clients` concurrent clients for `duration` (or until `stop` is
/// set); returns what happened.
pub async fn run(
    base: &str,
    tokens: Tokens,
    clients: usize,
    duration: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Report {
    let shared = Arc::new(Shared {
        report: Mutex::new(Report::default()),
        started: Instant::now(),
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (shared, client, tokens, base, stop) = (
            shared.clone(),
            client.clone(),
            tokens.clone(),
            base.to_owned(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = (c as u64 + 1) * 0x9E37_79B9;
            while shared.started.elapsed() < duration
                && !stop.load(std::sync::atomic::Ordering::SeqCst)
            {
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let mut roll = (n >> 33) % 100;
                let op = Op::ALL
                    .into_iter()
                    .find(|o| {
                        if roll < o.weight() {
                            true
                        } else {
                            roll -= o.weight();
                            false
                        }
                    })
                    .unwrap_or(Op::Search);
                let t = Instant::now();
                let outcome = one(op, n >> 20, &client, &base, &tokens, &shared).await;
                let took = t.elapsed();
                let mut r = shared.report.lock().unwrap();
                let s = r.stats.entry(op).or_default();
                match outcome {
                    Ok(()) => s.ok.push(took),
                    Err(_) => s.failed += 1,
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut report = std::mem::take(&mut *shared.report.lock().unwrap());
    report.elapsed = shared.started.elapsed();
    report
}
