//! Read-model figures on a demo register, in one run:
//!
//! 1. the raw reference: scanning the whole sled event log and making two
//!    sled index inserts per event (batched), into a fresh sled database;
//! 2. rebuilding all six read models from scratch on the same log;
//! 3. GraphQL latency through `callvault serve` at 16 concurrent clients:
//!    a caller-number lookup, an agent + time-range page, and `callStats`
//!    over a month — every response body checked (a fast error is not a
//!    result).
//!
//! Run: `cargo bench -p callvault --bench projections`
//! (`CALLVAULT_BENCH_CALLS`, default 20000; `CALLVAULT_BENCH_DATA` to keep
//! and reuse the seeded data folder; `CALLVAULT_BENCH_SECONDS` per query
//! kind, default 10, each after an untimed warm-up of
//! `CALLVAULT_BENCH_WARMUP` seconds with wrk, default 2;
//! `CALLVAULT_BENCH_ONLY=callStats` runs the query kinds whose name
//! contains it.)

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use callvault::{
    demo::{self, DemoPlan},
    service::{Registry, SystemClock},
};
use callvault_domain::RetentionPolicy;
use callvault_projections::Projections;
use callvault_store::{EventStore, blob::BlobStore, sled_store::SledStore, vault::KeyVault};
use serde_json::{Value, json};

/// The allocator the `callvault` binary uses, so the figures are the
/// product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

async fn registry(data: &Path) -> anyhow::Result<Registry> {
    Ok(Registry::new(
        Arc::new(SledStore::open(data.join("events"))?),
        Arc::new(KeyVault::open(data.join("keys"))?),
        BlobStore::open(data.join("blobs"))?,
        RetentionPolicy::default(),
        Arc::new(SystemClock),
    ))
}

/// The raw reference's writes: two index entries per event, by stream and
/// by time.
fn raw_batch(events: &[callvault_store::RecordedEvent]) -> sled::Batch {
    let mut batch = sled::Batch::default();
    for e in events {
        let mut k1 = b"s/".to_vec();
        k1.extend_from_slice(e.stream.as_str().as_bytes());
        k1.extend_from_slice(&e.position.to_be_bytes());
        let mut k2 = b"t/".to_vec();
        k2.extend_from_slice(&e.metadata.recorded_at.timestamp_micros().to_be_bytes());
        k2.extend_from_slice(&e.position.to_be_bytes());
        batch.insert(k1, &e.payload[..e.payload.len().min(64)]);
        batch.insert(k2, &e.id.as_bytes()[..]);
    }
    batch
}

async fn raw_reference(store: &Arc<dyn EventStore>, dir: &Path) -> anyhow::Result<(u64, Duration)> {
    let _ = std::fs::remove_dir_all(dir);
    let db = sled::Config::new().path(dir).open()?;
    let start = Instant::now();
    let mut after = None;
    let mut n = 0u64;
    loop {
        let page = store.read_all(after, 2000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        n += page.len() as u64;
        db.apply_batch(raw_batch(&page))?;
    }
    db.flush()?;
    Ok((n, start.elapsed()))
}

/// Builds `models` from nothing in `dir` until they reach the log's head;
/// returns how long it took and how many sled keys each model keeps.
async fn rebuild_from_scratch(
    dir: &Path,
    store: &Arc<dyn EventStore>,
    registry: &Registry,
    models: Vec<Arc<dyn callvault_projections::Projection>>,
) -> anyhow::Result<(Duration, Vec<(&'static str, usize)>)> {
    let _ = std::fs::remove_dir_all(dir);
    let t = Instant::now();
    let projections =
        Projections::open(dir, store.clone(), registry.journal().clone(), models).await?;
    for name in projections.names() {
        projections
            .view_at(
                name,
                store.head_position().await?,
                Duration::from_secs(3600),
            )
            .await?;
    }
    let took = t.elapsed();
    let mut keys = Vec::new();
    for name in projections.names() {
        keys.push((name, projections.view(name).await?.len()));
    }
    projections.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
    Ok((took, keys))
}

async fn fold_only(
    store: &Arc<dyn EventStore>,
    journal: &callvault_projections::journal::Journal,
    data: &Path,
    n: usize,
) -> anyhow::Result<()> {
    use callvault_projections::{
        Envelope,
        view::{BuildMeta, ViewDb},
    };
    let mut recorded = Vec::with_capacity(n);
    let mut after = None;
    while recorded.len() < n {
        let page = store.read_all(after, 2000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        recorded.extend(page);
    }
    recorded.truncate(n);
    let envelopes = recorded
        .iter()
        .map(|r| Envelope::decode(journal, r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    for r in &recorded {
        *kinds.entry(r.event_type.as_str()).or_default() += 1;
    }
    println!("fold only: events by type {kinds:?}");
    let dir = data.join("fold-bench");
    // Best time of three, and the build's size on disk once closed.
    let best = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<(Duration, u64)> {
        let mut best = Duration::MAX;
        let mut size = 0;
        for _ in 0..3 {
            let _ = std::fs::remove_dir_all(&dir);
            let t = Instant::now();
            f()?;
            best = best.min(t.elapsed());
            size = dir_size(&dir);
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok((best, size))
    };
    let (raw, _) = best(&mut || {
        let db = sled::Config::new().path(&dir).open()?;
        for chunk in recorded.chunks(10_000) {
            db.apply_batch(raw_batch(chunk))?;
        }
        Ok(())
    })?;
    println!(
        "fold only, {} events in memory: raw 2 inserts/event {:>10.0} events/s",
        envelopes.len(),
        envelopes.len() as f64 / raw.as_secs_f64()
    );
    let mut total = Duration::ZERO;
    let only = std::env::var("CALLVAULT_BENCH_FOLD_MODELS").unwrap_or_default();
    for model in callvault_projections::all(RetentionPolicy::default()) {
        if !only.is_empty() && !only.split(',').any(|m| m == model.name()) {
            continue;
        }
        let mut kept = 0;
        let (took, size) = best(&mut || {
            let view = ViewDb::open(
                &dir,
                BuildMeta {
                    name: model.name().into(),
                    version: model.version(),
                    config: model.config(),
                },
                model.cache_bytes(),
            )?;
            for chunk in envelopes.chunks(env_u64("CALLVAULT_BENCH_FOLD_CHUNK", 500) as usize) {
                let mut tx = view.tx();
                for env in chunk {
                    model.apply(&mut tx, env)?;
                }
                if let Some(last) = chunk.last() {
                    tx.commit(last.position)?;
                }
            }
            kept = view.len();
            Ok(())
        })?;
        total += took;
        println!(
            "  {:<14} {:>10.0} events/s  {took:.2?}  ({:.2} sled keys kept per event, {:.0} MB on disk)",
            model.name(),
            envelopes.len() as f64 / took.as_secs_f64(),
            kept as f64 / envelopes.len() as f64,
            size as f64 / 1e6
        );
    }
    println!(
        "  the above in turn {:>7.0} events/s  ({:.2}x raw)",
        envelopes.len() as f64 / total.as_secs_f64(),
        raw.as_secs_f64() / total.as_secs_f64()
    );
    Ok(())
}

/// Bytes of the files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    v.get(((v.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let calls = env_u64("CALLVAULT_BENCH_CALLS", 20_000);
    let seconds = env_u64("CALLVAULT_BENCH_SECONDS", 10);
    let keep = std::env::var("CALLVAULT_BENCH_DATA")
        .ok()
        .map(PathBuf::from);
    let data = keep.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-tmp/projections")
    });
    let plan = DemoPlan {
        calls,
        seed: 42,
        start: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
        days: 330,
        concurrency: 64,
    };
    if keep.is_none() || !data.join("events").exists() {
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data)?;
        let registry = registry(&data).await?;
        let t = Instant::now();
        let events = demo::seed(&registry, &plan, |_| {}).await?;
        println!(
            "seeded {calls} calls: {events} events in {:.1?}",
            t.elapsed()
        );
    }

    // 1 and 2: raw reference, then all read models from scratch.
    let registry = registry(&data).await?;
    let store = registry.store().clone();
    let head = store.head_position().await?.map_or(0, |p| p.commit);
    // `CALLVAULT_BENCH_FOLD=N` with `CALLVAULT_BENCH_FOLD_ONLY=1`: only
    // the fold-only figures (they carry their own raw reference).
    if std::env::var("CALLVAULT_BENCH_FOLD_ONLY").as_deref() == Ok("1")
        && let Some(n) = std::env::var("CALLVAULT_BENCH_FOLD")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    {
        return fold_only(&store, registry.journal(), &data, n).await;
    }
    let (n, raw) = raw_reference(&store, &data.join("raw-reference")).await?;
    let _ = std::fs::remove_dir_all(data.join("raw-reference"));
    let raw_rate = n as f64 / raw.as_secs_f64();
    // Reading and decoding alone (unsealing included), for scale.
    let t = Instant::now();
    let mut after = None;
    let mut decoded = 0u64;
    loop {
        let page = store.read_all(after, 2000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        for e in &page {
            registry.journal().decode(e)?;
            decoded += 1;
        }
    }
    let decode_rate = decoded as f64 / t.elapsed().as_secs_f64();
    let fresh = data.join("projections-bench");
    println!("log: {head} events");
    println!("{:<58} {:>12}", "case", "events/s");
    println!(
        "{:<58} {:>12.0}",
        "raw: scan the log + 2 sled index inserts per event", raw_rate
    );
    println!(
        "{:<58} {:>12.0}",
        "scan + decode every event (upcast, unseal), no writes", decode_rate
    );
    // `CALLVAULT_BENCH_FOLD=N`: the first N events decoded into memory,
    // then each model's fold and sled writes alone (no log reading), next
    // to the raw inserts on the same events — the quietest view of what a
    // model costs. Best of three.
    if let Some(n) = std::env::var("CALLVAULT_BENCH_FOLD")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        fold_only(&store, registry.journal(), &data, n).await?;
    }
    // `CALLVAULT_BENCH_ALL=0` leaves out the rebuild of all six together.
    if std::env::var("CALLVAULT_BENCH_ALL").as_deref() != Ok("0") {
        let models = callvault_projections::all(RetentionPolicy::default());
        let (rebuild, keys) = rebuild_from_scratch(&fresh, &store, &registry, models).await?;
        let rebuild_rate = head as f64 / rebuild.as_secs_f64();
        println!(
            "{:<58} {:>12.0}  ({:.2}x raw, {rebuild:.1?})",
            "rebuild all 6 read models from scratch",
            rebuild_rate,
            rebuild_rate / raw_rate
        );
        // Each key a model keeps was inserted at least once, against the
        // raw reference's two per event: at the raw reference's own cost
        // per insert (one thread, a sled batch per page) a rebuild could
        // reach at most raw × 2 / (keys per event). It does better by
        // inserting on every core, in key order, in commits of up to a
        // whole batch (BENCHMARKS.md, "Read models").
        let total: usize = keys.iter().map(|(_, n)| n).sum();
        let per_event = total as f64 / head.max(1) as f64;
        let shares: Vec<String> = keys
            .iter()
            .map(|(name, n)| format!("{name} {:.2}", *n as f64 / head.max(1) as f64))
            .collect();
        println!(
            "sled keys kept per event: {per_event:.2} (raw reference 2.00; {}); \
             at the raw reference's cost per insert, on one core, a rebuild would reach {:.2}x raw",
            shares.join(", "),
            2.0 / per_event
        );
    }
    // Optionally each model alone, to see where the time goes
    // (`CALLVAULT_BENCH_PER_MODEL=1` for all, or a comma-separated list).
    if let Ok(which) = std::env::var("CALLVAULT_BENCH_PER_MODEL") {
        let wanted: Vec<&str> = which.split(',').map(str::trim).collect();
        for model in callvault_projections::all(RetentionPolicy::default()) {
            let name = model.name();
            if which != "1" && !wanted.contains(&name) {
                continue;
            }
            let (took, _) = rebuild_from_scratch(&fresh, &store, &registry, vec![model]).await?;
            println!(
                "{:<58} {:>12.0}  ({took:.1?})",
                format!("rebuild `{name}` alone"),
                head as f64 / took.as_secs_f64()
            );
        }
    }
    drop(registry);
    drop(store);

    // 3: query latency through the real service.
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/callvault");
    if !bin.exists() {
        println!(
            "(build the release binary for the latency part: cargo build --release -p callvault)"
        );
        return Ok(());
    }
    let mut child = std::process::Command::new(&bin)
        .arg("serve")
        .env("CALLVAULT_DATA_DIR", &data)
        .env("CALLVAULT_LISTEN", "127.0.0.1:0")
        .env("CALLVAULT_LOG", "warn")
        .env("CALLVAULT_RETENTION_INTERVAL_MINUTES", "0")
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(
            child
                .stdout
                .take()
                .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
        ),
        &mut line,
    )?;
    let port: u16 = line
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no port in {line:?}"))?;
    let url = format!("http://127.0.0.1:{port}/graphql");
    // The demo's analyst searches and reads statistics; its administrator
    // watches the models catch up.
    let token = |staff: &str| -> anyhow::Result<String> {
        let out = std::process::Command::new(&bin)
            .args(["token", "issue", "--staff", staff])
            .env("CALLVAULT_DATA_DIR", &data)
            .output()?;
        anyhow::ensure!(out.status.success(), "token issue failed");
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    };
    let analyst = token("analyst.antti")?;
    let admin = token("admin.alma")?;
    let client = reqwest::Client::new();
    let post_url = url.clone();
    let post_token = analyst.clone();
    let post = move |query: String| {
        let client = client.clone();
        let url = post_url.clone();
        let token = post_token.clone();
        async move {
            let body: Value = client
                .post(&url)
                .bearer_auth(token)
                .json(&json!({"query": query}))
                .send()
                .await?
                .json()
                .await?;
            anyhow::Ok(body)
        }
    };
    // Wait until the models have caught up, and any rebuild the start
    // began (a model whose code version is newer than its build) has
    // taken over: queries measured beside a rebuild share the cores
    // with it.
    loop {
        let s: Value = reqwest::Client::new()
            .post(&url)
            .bearer_auth(&admin)
            .json(&json!({"query": "{ projections { lag stale rebuild { finished } } }"}))
            .send()
            .await?
            .json()
            .await?;
        if s["data"]["projections"].as_array().is_some_and(|a| {
            a.iter().all(|p| {
                p["lag"] == 0
                    && p["stale"] == false
                    && (p["rebuild"].is_null() || p["rebuild"]["finished"] == true)
            })
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pool = (calls / 3).max(1);
    let kinds: [(&str, QueryMaker); 3] = [
        (
            "caller-number lookup",
            Box::new(move |i| {
                let n = demo::caller(42, i * 7919 % pool, pool);
                let typed = n.as_e164().replacen("+358", "0", 1);
                format!(
                    "{{ search(purpose: \"quality\", filter: {{callerNumber: \"{typed}\"}}, first: 20) {{ items {{ id callerNumber }} }} }}"
                )
            }),
        ),
        (
            "agent + time range, first page",
            Box::new(|i| {
                let month = 1 + i % 10;
                format!(
                    "{{ search(purpose: \"quality\", filter: {{agentId: \"{}\", startedFrom: \"2026-{month:02}-01T00:00:00Z\", startedTo: \"2026-{month:02}-28T00:00:00Z\"}}, first: 20) {{ items {{ id agentId startedAt }} nextCursor }} }}",
                    demo::agent(i)
                )
            }),
        ),
        (
            "callStats over a month",
            Box::new(|i| {
                let month = 1 + i % 10;
                format!(
                    "{{ callStats(from: \"2026-{month:02}-01\", to: \"2026-{month:02}-28\") {{ calls recordedShare durationP50Seconds durationP90Seconds durationMaxSeconds }} }}"
                )
            }),
        ),
    ];
    let only = std::env::var("CALLVAULT_BENCH_ONLY").unwrap_or_default();
    let warmup = env_u64("CALLVAULT_BENCH_WARMUP", 2);
    let wrk = std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok();
    println!(
        "{:<34} {:>8} {:>10} {:>10} {:>10}  ({})",
        "query (16 connections)",
        "count",
        "req/s",
        "p50",
        "p99",
        if wrk {
            "load from wrk"
        } else {
            "load from an in-process client; install wrk for less noise"
        }
    );
    for (name, make) in kinds {
        if !name.contains(only.as_str()) {
            continue;
        }
        if wrk {
            // Untimed first: the first seconds after a start fill caches
            // (sled's pages, parsed queries, verified tokens, kept rows).
            if warmup > 0 {
                let (.., failures) = wrk_run(&url, &analyst, &data, &make, warmup)?;
                if failures > 0 {
                    anyhow::bail!("{failures} `{name}` answers were errors or empty (warm-up)");
                }
            }
            let (count, rate, p50, p99, failures) = wrk_run(&url, &analyst, &data, &make, seconds)?;
            if failures > 0 {
                anyhow::bail!("{failures} `{name}` answers were errors or empty");
            }
            println!("{name:<34} {count:>8} {rate:>10.0} {p50:>10} {p99:>10}");
            continue;
        }
        let make = Arc::new(make);
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut clients = tokio::task::JoinSet::new();
        for c in 0..16u64 {
            let make = make.clone();
            let post = post.clone();
            clients.spawn(async move {
                let mut lat = Vec::new();
                let mut i = c * 1_000_003;
                while Instant::now() < deadline {
                    i += 1;
                    let t = Instant::now();
                    let body = post(make(i)).await?;
                    let took = t.elapsed();
                    if body.get("errors").is_some() || body["data"].is_null() {
                        anyhow::bail!("a query failed: {body}");
                    }
                    lat.push(took);
                }
                anyhow::Ok(lat)
            });
        }
        let mut all = Vec::new();
        while let Some(r) = clients.join_next().await {
            all.extend(r??);
        }
        let count = all.len();
        let p50 = pct(&mut all, 0.5);
        let p99 = pct(&mut all, 0.99);
        println!(
            "{name:<34} {count:>8} {:>10.0} {:>10} {:>10}",
            count as f64 / seconds as f64,
            format!("{p50:.2?}"),
            format!("{p99:.2?}")
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(())
}

/// Runs wrk with 16 connections over 500 distinct request bodies; every
/// answer is checked by the script. Returns (requests, req/s, p50, p99,
/// failed answers).
fn wrk_run(
    url: &str,
    analyst: &str,
    data: &Path,
    make: &(dyn Fn(u64) -> String + Send + Sync),
    seconds: u64,
) -> anyhow::Result<(u64, f64, String, String, u64)> {
    let bodies: Vec<String> = (0..500u64)
        .map(|i| {
            let body = json!({"query": make(i * 1_000_003 + 1)}).to_string();
            format!("[[{body}]]")
        })
        .collect();
    let script = format!(
        r#"
bodies = {{ {} }}
counter = 0
failures = 0
answered = 0
threads = {{}}
-- `done` runs in the main script state: each thread's counts are read
-- from it through the handles `setup` keeps.
setup = function(thread)
  table.insert(threads, thread)
end
request = function()
  counter = counter + 1
  local body = bodies[(counter % #bodies) + 1]
  return wrk.format("POST", nil, {{["content-type"] = "application/json", ["authorization"] = "Bearer {analyst}"}}, body)
end
response = function(status, headers, body)
  answered = answered + 1
  if status ~= 200 or string.find(body, '"errors"', 1, true) or not string.find(body, '"data":{{', 1, true) then
    failures = failures + 1
  end
end
done = function(summary, latency, requests)
  local failed, checked = 0, 0
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("failures")
    checked = checked + thread:get("answered")
  end
  io.write(string.format("FAILURES %d\nCHECKED %d\n", failed, checked))
end
"#,
        bodies.join(", ")
    );
    let path = data.join("bench.lua");
    std::fs::write(&path, script)?;
    let out = std::process::Command::new("wrk")
        .args(["-t2", "-c16", &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(&path)
        .arg(url)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_owned()
    };
    let count = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let rate = field("Requests/sec:").parse().unwrap_or(0.0);
    let tally = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|n| n.trim().parse::<u64>().ok())
    };
    let (Some(failures), Some(checked)) = (tally("FAILURES "), tally("CHECKED ")) else {
        anyhow::bail!("wrk printed no tally of checked answers:\n{text}");
    };
    // Every answer counted must have been looked at: a check that saw
    // fewer (or none) proves nothing.
    anyhow::ensure!(
        count > 0 && checked >= count,
        "wrk checked {checked} of {count} answers"
    );
    Ok((count, rate, field("50%"), field("99%"), failures))
}

/// Makes the i-th query of one kind.
type QueryMaker = Box<dyn Fn(u64) -> String + Send + Sync>;
