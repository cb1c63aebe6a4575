//! Catch-up-then-live subscriptions for the embedded backends.
//!
//! A task reads pages of the log from the last delivered position; when a
//! read comes back empty it waits for the head position (a `watch` the
//! writer bumps after each durable batch) to pass that position, then reads
//! again. Everything delivered comes from the durable log in position
//! order, so there is no gap and no duplicate by construction.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::contract::{Position, RecordedEvent, StoreError, Subscription};
use crate::sled_store::INLINE_READ;

/// Events read per page while catching up.
const PAGE: usize = 2048;
/// Events buffered between the reader task and the subscriber: enough
/// that reading the next pages overlaps a subscriber's batch of work
/// (a read model folds up to 10,000 events at a time).
const BUFFER: usize = 16_384;

/// Something that can read the global log synchronously.
pub(crate) trait ReadAll: Send + Sync + 'static {
    fn read_all_blocking(
        &self,
        after: Option<Position>,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;
}

pub(crate) fn spawn<R: ReadAll>(
    reader: Arc<R>,
    mut head: watch::Receiver<Option<Position>>,
    after: Option<Position>,
) -> Subscription {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        let mut after = after;
        loop {
            // Following the head, a few events are new: read them on this
            // thread (cheaper than the hop to a blocking thread and back).
            let few = match (*head.borrow(), after) {
                (None, _) => true,
                (Some(h), Some(a)) => h.commit.saturating_sub(a.commit) <= INLINE_READ as u64,
                (Some(h), None) => h.commit < INLINE_READ as u64,
            };
            let max = if few { INLINE_READ } else { PAGE };
            let r = reader.clone();
            let read = if few {
                Ok(r.read_all_blocking(after, max))
            } else {
                tokio::task::spawn_blocking(move || r.read_all_blocking(after, max)).await
            };
            let page = match read {
                Ok(Ok(page)) => page,
                Ok(Err(e)) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                Err(join) => {
                    let _ = tx
                        .send(Err(StoreError::Unavailable(format!(
                            "subscription reader stopped: {join}"
                        ))))
                        .await;
                    return;
                }
            };
            let short = page.len() < max;
            for event in page {
                after = Some(event.position);
                if tx.send(Ok(event)).await.is_err() {
                    return; // the subscriber went away
                }
            }
            if short {
                // Caught up (a read stops at the published head): wait
                // until the head passes `after`.
                loop {
                    if *head.borrow_and_update() > after {
                        break;
                    }
                    tokio::select! {
                        changed = head.changed() => {
                            if changed.is_err() {
                                return; // the store was dropped
                            }
                        }
                        _ = tx.closed() => return,
                    }
                }
            }
        }
    });
    Subscription::new(rx)
}
