//! Durable append throughput of the sled event log, next to the machine's
//! raw `fdatasync` rate measured in the same run.
//!
//! Run: `cargo bench -p callvault-store --bench append`
//! (`CALLVAULT_BENCH_SECONDS` per case, default 3; `CALLVAULT_BENCH_DIR`
//! for the folder, default `target/bench-tmp`, on the same disk as data;
//! `CALLVAULT_BENCH_ONLY=100` runs only the cases whose name contains it.)

use std::{
    io::Write,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use callvault_store::{EventStore, ExpectedRevision, NewEvent, StreamName, sled_store::SledStore};
use uuid::Uuid;

const PAYLOAD: usize = 500;

struct Figures {
    events: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&mut self, p: f64) -> Duration {
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(i).copied().unwrap_or_default()
    }
}

fn bench_dir() -> PathBuf {
    let dir = std::env::var("CALLVAULT_BENCH_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-tmp"),
        PathBuf::from,
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench folder");
    dir
}

fn raw_fdatasync(dir: &std::path::Path, seconds: Duration, per_sync: usize) -> Figures {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("raw"))
        .expect("raw file");
    let buf = vec![b'x'; PAYLOAD * per_sync];
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < seconds {
        let t = Instant::now();
        f.write_all(&buf).expect("write");
        f.sync_data().expect("fdatasync");
        latencies.push(t.elapsed());
    }
    Figures {
        events: (latencies.len() * per_sync) as u64,
        elapsed: start.elapsed(),
        latencies,
    }
}

fn event() -> NewEvent {
    NewEvent {
        id: Uuid::new_v4(),
        event_type: "BenchEvent".into(),
        schema_version: 1,
        payload: vec![b'x'; PAYLOAD],
        actor: "bench".into(),
        correlation_id: None,
        causation_id: None,
    }
}

async fn appends(
    store: Arc<SledStore>,
    writers: usize,
    batch: usize,
    seconds: Duration,
) -> Figures {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let stream = StreamName::new(format!("bench-{}-{w}", Uuid::new_v4().simple()))
                .expect("stream name");
            let mut latencies = Vec::new();
            let mut events = 0u64;
            while start.elapsed() < seconds {
                let batch: Vec<NewEvent> = (0..batch).map(|_| event()).collect();
                let t = Instant::now();
                store
                    .append(&stream, ExpectedRevision::Any, batch.clone())
                    .await
                    .expect("append");
                latencies.push(t.elapsed());
                events += batch.len() as u64;
            }
            (events, latencies)
        }));
    }
    let mut figures = Figures {
        events: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for t in tasks {
        let (events, latencies) = t.await.expect("writer task");
        figures.events += events;
        figures.latencies.extend(latencies);
    }
    figures.elapsed = start.elapsed();
    figures
}

fn main() {
    let seconds = Duration::from_secs(
        std::env::var("CALLVAULT_BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    );
    let dir = bench_dir();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let mut raw = raw_fdatasync(&dir, seconds, 1);
    let mut raw_batch = raw_fdatasync(&dir, seconds, 100);
    let store = Arc::new(SledStore::open(dir.join("log")).expect("open sled"));
    let cases = [
        ("sled, 1 writer, 1 event/append", 1, 1),
        ("sled, 16 writers, 1 event/append", 16, 1),
        ("sled, 64 writers, 1 event/append", 64, 1),
        ("sled, 1 writer, 100 events/append", 1, 100),
    ];
    let raw_rate = raw.rate();
    println!(
        "{:<36} {:>12} {:>10} {:>10} {:>8}",
        "case", "events/s", "p50", "p99", "× raw"
    );
    println!(
        "{:<36} {:>12.0} {:>10.2?} {:>10.2?} {:>8.2}",
        "raw write+fdatasync (500 B)",
        raw_rate,
        raw.pct(0.5),
        raw.pct(0.99),
        1.0
    );
    let only = std::env::var("CALLVAULT_BENCH_ONLY").unwrap_or_default();
    println!(
        "{:<36} {:>12.0} {:>10.2?} {:>10.2?} {:>8.2}",
        "raw write+fdatasync (100 × 500 B)",
        raw_batch.rate(),
        raw_batch.pct(0.5),
        raw_batch.pct(0.99),
        raw_batch.rate() / raw_rate
    );
    for (name, writers, batch) in cases {
        if !name.contains(only.as_str()) {
            continue;
        }
        let mut f = rt.block_on(appends(store.clone(), writers, batch, seconds));
        println!(
            "{:<36} {:>12.0} {:>10.2?} {:>10.2?} {:>8.2}",
            name,
            f.rate(),
            f.pct(0.5),
            f.pct(0.99),
            f.rate() / raw_rate
        );
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
