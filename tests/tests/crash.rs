//! Crash safety of the embedded event log: a child process appends from
//! several tasks and reports each acknowledged event; we kill it with
//! SIGKILL at random moments, reopen the log, and check that every
//! acknowledged event is there, at the revision it was acknowledged with,
//! with every hash chain intact and global positions strictly increasing.

use std::{
    collections::{BTreeMap, HashMap},
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use callvault_store::{
    Direction, EventStore, Position, StreamFrom, StreamName, conformance::check_chain,
    sled_store::SledStore,
};
use callvault_tests::rng::Rng;
use uuid::Uuid;

const ROUNDS: usize = 20;
const WRITERS: &str = "8";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::from_env("every_acknowledged_event_survives_sigkill");
    // stream → revision → id, for every acknowledged event of every round.
    let mut acked: HashMap<String, BTreeMap<u64, Uuid>> = HashMap::new();
    let mut total_acked = 0usize;

    for round in 0..ROUNDS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
            .arg(dir.path())
            .arg(WRITERS)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start crash_writer");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        tokio::time::sleep(Duration::from_millis(rng.between(30, 400))).await;
        child.kill().expect("SIGKILL the writer");
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the writer must have been killed"
        );
        let lines = reader.join().unwrap();
        for line in &lines {
            let parts: Vec<&str> = line.split(' ').collect();
            // A line cut by the kill is not a complete acknowledgement.
            if parts.len() != 4 || parts[0] != "ack" || parts[3].len() != 36 {
                continue;
            }
            let (Ok(revision), Ok(id)) = (parts[2].parse::<u64>(), parts[3].parse::<Uuid>()) else {
                continue;
            };
            let previous = acked
                .entry(parts[1].to_owned())
                .or_default()
                .insert(revision, id);
            assert!(
                previous.is_none() || previous == Some(id),
                "round {round}: revision {revision} of {} acknowledged twice with different ids",
                parts[1]
            );
            total_acked += 1;
        }

        // Reopen and check everything acknowledged so far.
        let store = SledStore::open(dir.path()).expect("reopen after SIGKILL");
        for (stream, revisions) in &acked {
            let name = StreamName::new(stream.clone()).unwrap();
            let events = store
                .read_stream(&name, StreamFrom::Start, Direction::Forwards, usize::MAX)
                .await
                .unwrap();
            check_chain(&events).unwrap_or_else(|e| panic!("round {round}: {e}"));
            for (revision, id) in revisions {
                let stored = events.get(*revision as usize).unwrap_or_else(|| {
                    panic!(
                        "round {round}: acknowledged {stream}@{revision} is missing ({} events stored)",
                        events.len()
                    )
                });
                assert_eq!(
                    stored.id, *id,
                    "round {round}: {stream}@{revision} holds another event"
                );
            }
        }
        let mut after: Option<Position> = None;
        loop {
            let page = store.read_all(after, 4096).await.unwrap();
            if page.is_empty() {
                break;
            }
            for e in &page {
                assert!(after < Some(e.position), "positions must strictly increase");
                after = Some(e.position);
            }
        }
        drop(store);
    }
    eprintln!("{ROUNDS} SIGKILL rounds, {total_acked} acknowledged events, all present");
    assert!(
        total_acked > ROUNDS,
        "the writer must have acknowledged events to check"
    );
}
