//! Appends N single-event batches, one after another, to a fresh sled
//! event log and exits: the driver `scripts/strace-fsync.sh` counts the
//! sync system calls it makes per acknowledged append.
//!
//! Usage: durability_probe <folder> <appends>

use callvault_store::{EventStore, ExpectedRevision, NewEvent, StreamName, sled_store::SledStore};
use uuid::Uuid;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: durability_probe FOLDER APPENDS")?;
    let n: usize = args.next().unwrap_or_else(|| "1000".into()).parse()?;
    let store = SledStore::open(&dir)?;
    let stream = StreamName::new("probe-1")?;
    for i in 0..n {
        store
            .append(
                &stream,
                ExpectedRevision::Any,
                vec![NewEvent {
                    id: Uuid::new_v4(),
                    event_type: "Probe".into(),
                    schema_version: 1,
                    payload: format!("{{\"i\":{i}}}").into_bytes(),
                    actor: "probe".into(),
                    correlation_id: None,
                    causation_id: None,
                }],
            )
            .await?;
    }
    println!("{n} appends acknowledged");
    Ok(())
}
