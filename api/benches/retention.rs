//! Purge rate of a retention run on the embedded store, fsync included:
//! N ended calls, each with a small recording, all due the same day; one
//! run writes 2·N tombstones (recording and contact data), destroys the
//! bucket's key and deletes the blobs.
//!
//! Run: `cargo bench -p callvault --bench retention` (`CALLVAULT_BENCH_CALLS`,
//! default 1000).

use std::{sync::Arc, time::Instant};

use callvault::{
    retention,
    service::{Call, FixedClock, Registry},
};
use callvault_domain::{
    CallId, PhoneNumber, RecordingId, RetentionPolicy, StaffId,
    call::{CallCommand, Direction, EndCall, StartCall, StoreRecording},
};
use callvault_store::{
    blob::BlobStore,
    sled_store::SledStore,
    vault::{KeyOwner, KeyVault},
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("CALLVAULT_BENCH_CALLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-tmp/retention");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let start_time = "2026-03-03T09:00:00Z".parse()?;
    let registry = Registry::new(
        Arc::new(SledStore::open(dir.join("events"))?),
        Arc::new(KeyVault::open(dir.join("keys"))?),
        BlobStore::open(dir.join("blobs"))?,
        RetentionPolicy::default(),
        Arc::new(FixedClock(start_time)),
    );
    let actor = StaffId::parse("telephony.pbx")?;
    let seed = Instant::now();
    for i in 0..n {
        let call = CallId(uuid::Uuid::now_v7());
        registry
            .execute::<Call>(
                &actor,
                &call,
                CallCommand::Start(StartCall {
                    call_id: call,
                    direction: Direction::Inbound,
                    caller: Some(PhoneNumber::parse(&format!("040 {:07}", i))?),
                    service_number: PhoneNumber::parse("0295 50 2000")?,
                    agent: StaffId::parse("anna.agent")?,
                    agent_name: "Anna".into(),
                    agent_number: None,
                    started_at: start_time,
                }),
                None,
            )
            .await?;
        registry
            .execute::<Call>(
                &actor,
                &call,
                CallCommand::End(EndCall {
                    ended_at: start_time + chrono::Duration::minutes(5),
                }),
                None,
            )
            .await?;
        let rec = RecordingId(uuid::Uuid::now_v7());
        let key = registry.vault().create_key(
            KeyOwner::Recording(rec),
            callvault::custody::expiry_bucket(
                registry
                    .policy()
                    .recording_expires_at(start_time + chrono::Duration::minutes(5)),
            ),
        )?;
        let mut w = registry.blobs().create(rec, &key)?;
        w.write(&[7u8; 4096])?;
        let info = w.finish()?;
        registry
            .execute::<Call>(
                &actor,
                &call,
                CallCommand::StoreRecording(StoreRecording {
                    recording_id: rec,
                    codec: "audio/wav".into(),
                    duration_ms: None,
                    size_bytes: info.plaintext_len,
                    ciphertext_sha256: info.ciphertext_sha256,
                }),
                None,
            )
            .await?;
    }
    let seeded = seed.elapsed();
    let run = Instant::now();
    let report = retention::run(&registry, "2027-03-05T00:00:00Z".parse()?, false, None).await?;
    let took = run.elapsed();
    let items: usize = report.buckets.iter().map(|b| b.purged.len()).sum();
    println!("seeded {n} calls with recordings in {seeded:.2?}");
    println!(
        "retention run: {items} items purged (tombstone appended and synced, key destroyed, blob deleted) in {took:.2?} = {:.0} items/s",
        items as f64 / took.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
