//! Auditor figures on a demo register, in one run:
//!
//! 1. the raw reference: scanning the sled event log and SHA-256-chaining
//!    each event's stored bytes (what any verification must at least do);
//! 2. `verify`'s check of the log alone (every per-stream chain recomputed
//!    from the stored fields, the running digest, the order checks);
//! 3. `verify` as the CLI runs it (plus the purged-recording checks);
//! 4. `replay` to JSON lines (decode, upcast, unseal, serialise), into a
//!    sink.
//!
//! Run: `cargo bench -p callvault --bench audit`
//! (`CALLVAULT_BENCH_CALLS`, default 20000; `CALLVAULT_BENCH_DATA` to keep
//! and reuse the seeded data folder — the projections benchmark's folder
//! works too.)

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use callvault::{
    audit::{self, HistoryFilter},
    demo::{self, DemoPlan},
    service::{Registry, SystemClock},
};
use callvault_domain::RetentionPolicy;
use callvault_store::{EventStore, blob::BlobStore, sled_store::SledStore, vault::KeyVault};
use sha2::{Digest, Sha256};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn registry(data: &Path) -> anyhow::Result<Registry> {
    Ok(Registry::new(
        Arc::new(SledStore::open(data.join("events"))?),
        Arc::new(KeyVault::open(data.join("keys"))?),
        BlobStore::open(data.join("blobs"))?,
        RetentionPolicy::default(),
        Arc::new(SystemClock),
    ))
}

async fn raw_chain(store: &Arc<dyn EventStore>) -> anyhow::Result<(u64, [u8; 32])> {
    let mut after = None;
    let mut n = 0u64;
    let mut chain = [0u8; 32];
    loop {
        let page = store.read_all(after, 4096).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        for e in &page {
            let mut h = Sha256::new();
            h.update(chain);
            h.update(e.stream.as_str().as_bytes());
            h.update(e.event_type.as_bytes());
            h.update(&e.payload);
            h.update(e.metadata.actor.as_bytes());
            chain = h.finalize().into();
            n += 1;
        }
    }
    Ok((n, chain))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let calls = env_u64("CALLVAULT_BENCH_CALLS", 20_000);
    let keep = std::env::var("CALLVAULT_BENCH_DATA")
        .ok()
        .map(PathBuf::from);
    let data = keep.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-tmp/audit")
    });
    if keep.is_none() || !data.join("events").exists() {
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data)?;
        let registry = registry(&data)?;
        let plan = DemoPlan {
            calls,
            seed: 42,
            start: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
            days: 330,
            concurrency: 64,
        };
        let t = Instant::now();
        let events = demo::seed(&registry, &plan, |_| {}).await?;
        println!(
            "seeded {calls} calls: {events} events in {:.1?}",
            t.elapsed()
        );
    }
    let registry = registry(&data)?;
    let store = registry.store().clone();

    // Warm the page cache once so every pass reads the same way.
    raw_chain(&store).await?;

    let t = Instant::now();
    let (n, _) = raw_chain(&store).await?;
    let raw = n as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    let summary = callvault_store::verify::verify_log(store.as_ref(), None, |_| {}).await?;
    let chains = summary.events as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    let report = audit::verify_register(&registry, None, |_| {})
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let full = report.summary.events as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut sink = std::io::BufWriter::new(std::io::sink());
    let mut cursor = HistoryFilter::default();
    let mut replayed = 0u64;
    loop {
        let page = audit::history_page(&registry, &cursor, 1000, None).await?;
        for e in &page.entries {
            serde_json::to_writer(&mut sink, e)?;
            sink.write_all(b"\n")?;
        }
        replayed += page.entries.len() as u64;
        match page.next {
            Some(next) => cursor.after = Some(next),
            None => break,
        }
    }
    sink.flush()?;
    let replay = replayed as f64 / t.elapsed().as_secs_f64();

    println!(
        "{n} events, {} streams, {} purged recordings",
        summary.streams, report.tombstones
    );
    println!("{:<58} {:>12} {:>7}", "pass", "events/s", "× raw");
    for (name, rate) in [
        ("raw: scan the sled log + SHA-256-chain stored bytes", raw),
        ("verify: hash chains, digest, order (log only)", chains),
        (
            "verify as the CLI runs it (+ purged-recording checks)",
            full,
        ),
        (
            "replay to JSON lines (decode, upcast, unseal, serialise)",
            replay,
        ),
    ] {
        println!("{name:<58} {rate:>12.0} {:>7.2}", rate / raw);
    }
    Ok(())
}
