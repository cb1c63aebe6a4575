//! The victim of the crash test: appends to a sled event log from several
//! tasks, forever, and prints `ack <stream> <revision> <event id>` for every
//! event the moment its append is acknowledged. The test kills it with
//! SIGKILL and checks that every printed event survived.
//!
//! Usage: crash_writer <data dir> <writers>

use std::{io::Write, sync::Arc};

use callvault_store::{
    Direction, EventStore, ExpectedRevision, NewEvent, StreamFrom, StreamName,
    sled_store::SledStore,
};
use uuid::Uuid;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: crash_writer DIR WRITERS"))?;
    let writers: usize = args.next().unwrap_or_else(|| "8".into()).parse()?;
    let store = Arc::new(SledStore::open(&dir)?);
    let stdout = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let stdout = stdout.clone();
        tasks.push(tokio::spawn(async move {
            let stream = StreamName::new(format!("crash-{w}"))?;
            let last = store
                .read_stream(&stream, StreamFrom::End, Direction::Backwards, 1)
                .await?
                .first()
                .map(|e| e.revision);
            let mut expected = match last {
                Some(r) => ExpectedRevision::Exact(r),
                None => ExpectedRevision::NoStream,
            };
            let mut n = 0u64;
            loop {
                n += 1;
                let batch = 1 + (n % 3) as usize;
                let events: Vec<NewEvent> = (0..batch)
                    .map(|i| NewEvent {
                        id: Uuid::new_v4(),
                        event_type: "CrashTest".into(),
                        schema_version: 1,
                        payload: format!(
                            "{{\"writer\":{w},\"n\":{n},\"i\":{i},\"pad\":\"{}\"}}",
                            "x".repeat(400)
                        )
                        .into_bytes(),
                        actor: "crash".into(),
                        correlation_id: None,
                        causation_id: None,
                    })
                    .collect();
                let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
                let result = store.append(&stream, expected, events).await?;
                let first = result.next_expected.0 + 1 - ids.len() as u64;
                {
                    let mut out = stdout.lock().map_err(|_| anyhow::anyhow!("stdout lock"))?;
                    for (i, id) in ids.iter().enumerate() {
                        writeln!(out, "ack {stream} {} {id}", first + i as u64)?;
                    }
                    out.flush()?;
                }
                expected = ExpectedRevision::Exact(result.next_expected);
            }
            #[allow(unreachable_code)]
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
