//! Retention (R14–R16, R30): purging due buckets and forecasting what will
//! be destroyed.
//!
//! A run takes every expiry bucket whose day has come. For each key in it,
//! the item's state decides (the domain's retention policy): a due
//! recording gets a `RecordingPurged` tombstone, a due contact a
//! `ContactHistoryPurged` one; an item kept by a hold or a restriction, or
//! not yet due after all, has its key moved where it belongs. Only when
//! every key left in the bucket has its tombstone is the bucket's KEK
//! destroyed — tombstone first, then the key — and the audio blobs deleted
//! as hygiene. A crash between the two is finished at the next start
//! ([`finish_interrupted`]): a tombstone whose key still exists marks its
//! bucket for purging again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use callvault_domain::{
    CallId, ContactRef, Disposition, Event, RecordingId, RetentionPolicy, StaffId,
    call::{CallCommand, PurgeRecording},
    chat::ChatCommand,
    controls::PurgeContactHistory,
};
use callvault_store::{
    Position,
    vault::{Bucket, KeyOwner},
};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    error::AppError,
    service::{Call, Chat, Registry},
};

/// Set `CALLVAULT_FAILPOINT=retention-after-tombstones` to make a run stop
/// the process between the tombstones and the KEK destruction (for the
/// crash-recovery test).
pub const FAILPOINT_ENV: &str = "CALLVAULT_FAILPOINT";

/// What happened (or, in a dry run, would happen) to one key.
#[derive(Debug, Clone, Serialize)]
pub struct ItemOutcome {
    pub owner: String,
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BucketReport {
    pub bucket: String,
    pub keys: usize,
    pub purged: Vec<ItemOutcome>,
    pub kept: Vec<ItemOutcome>,
    pub kek_destroyed: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub now: Option<DateTime<Utc>>,
    pub dry_run: bool,
    pub policy_version: u32,
    pub buckets: Vec<BucketReport>,
    /// Buckets that could not be purged, and why: the run went on with
    /// the others, and the next run tries these again.
    pub failed: Vec<BucketFailure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BucketFailure {
    pub bucket: String,
    pub error: String,
}

/// How long the key of a contact that has not ended, found in a due
/// bucket, is put off before it is looked at again.
const OPEN_CONTACT_RECHECK_DAYS: u64 = 30;

/// Where each recording's call is, from one pass over the log.
#[derive(Default)]
pub struct Catalog {
    pub recordings: HashMap<RecordingId, CallId>,
    /// Owners that have a tombstone.
    pub tombstoned: BTreeSet<KeyOwner>,
}

impl Catalog {
    pub async fn read(registry: &Registry) -> Result<Self, AppError> {
        Ok(Self::read_after(registry, None).await?.0)
    }

    /// The catalog of the events after `after`, and a mark of the last
    /// event read (none if there was none).
    async fn read_after(
        registry: &Registry,
        mut after: Option<Position>,
    ) -> Result<(Self, Option<ScanMark>), AppError> {
        let mut catalog = Catalog::default();
        let mut mark = None;
        loop {
            let page = registry.store().read_all(after, 2048).await?;
            let Some(last) = page.last() else {
                return Ok((catalog, mark));
            };
            let before = match page.len() {
                1 => after,
                n => Some(page[n - 2].position),
            };
            mark = Some(ScanMark {
                before,
                at: last.position,
                id: last.id,
                hash: last.metadata.hash.to_hex(),
            });
            after = Some(last.position);
            for recorded in &page {
                if !matches!(
                    recorded.event_type.as_str(),
                    "RecordingStored" | "RecordingPurged" | "ContactHistoryPurged"
                ) {
                    continue;
                }
                match registry.journal().decode(recorded)? {
                    Event::RecordingStored(e) => {
                        catalog.recordings.insert(e.recording_id, e.call_id);
                    }
                    Event::RecordingPurged(e) => {
                        catalog
                            .tombstoned
                            .insert(KeyOwner::Recording(e.recording_id));
                    }
                    Event::ContactHistoryPurged(e) => {
                        catalog.tombstoned.insert(KeyOwner::Contact(e.contact));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// How far the last start's check for interrupted purges read the log:
/// the last event it saw, and the position before it, so that event can
/// be read back and compared. Kept in the key vault's folder as
/// [`SCAN_MARK`]. Only a shortcut: if it is missing, unreadable, or the
/// log does not have that event there (another log, a restore), the
/// whole log is read again.
#[derive(Debug, Serialize, serde::Deserialize)]
struct ScanMark {
    before: Option<Position>,
    at: Position,
    id: uuid::Uuid,
    hash: String,
}

/// The file name of the [`ScanMark`], in the key vault's folder.
pub const SCAN_MARK: &str = "retention-scan.json";

impl ScanMark {
    /// The stored mark, if the log still has its event where it says and
    /// no expiry bucket is overdue. An overdue bucket is what a copy of the
    /// vault's folder taken file by file mid-purge can look like (the old
    /// KEK file beside the newer mark), so then the whole log is read, as
    /// it is whenever retention has fallen behind.
    async fn load(registry: &Registry) -> Option<Self> {
        let today = registry.now().date_naive();
        let overdue = registry
            .with_vault(|v| v.status())
            .await
            .ok()?
            .iter()
            .any(|b| matches!(b.bucket, Bucket::Expiry(day) if day < today));
        if overdue {
            return None;
        }
        let bytes = std::fs::read(registry.vault().dir().join(SCAN_MARK)).ok()?;
        let mark: Self = serde_json::from_slice(&bytes).ok()?;
        let found = registry.store().read_all(mark.before, 1).await.ok()?;
        let event = found.first()?;
        (event.position == mark.at
            && event.id == mark.id
            && event.metadata.hash.to_hex() == mark.hash)
            .then_some(mark)
    }

    /// Replaces the stored mark (a torn write only costs a full read).
    fn save(&self, registry: &Registry) -> std::io::Result<()> {
        let dir = registry.vault().dir();
        // Per process: nodes sharing the folder never rename each other's
        // half-written file.
        let tmp = dir.join(format!("{SCAN_MARK}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec(self)?)?;
        std::fs::rename(&tmp, dir.join(SCAN_MARK))
    }
}

fn describe(d: &Disposition) -> String {
    match d {
        Disposition::Due { expired_at } => format!("due since {expired_at}"),
        Disposition::NotYetDue { expires_at } => format!("not due until {expires_at}"),
        Disposition::Held { holds, .. } => format!("kept by {holds} complaint hold(s)"),
        Disposition::Restricted { .. } => "kept: processing is restricted".into(),
        Disposition::Open => "kept: the contact has not ended".into(),
        Disposition::Purged => "already purged".into(),
    }
}

/// How an item's expiry follows from its contact's end.
type Expires = fn(&RetentionPolicy, DateTime<Utc>) -> DateTime<Utc>;

/// What retention needs to know of one item (a recording, or a contact's
/// personal data), from its contact's state.
struct Item {
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    expires: Expires,
    controls: callvault_domain::controls::Controls,
    purged: bool,
}

impl Item {
    /// Its disposition at `now`. Its expiry counts from the contact's
    /// end; for a contact with no end, from `OPEN_AT_MOST_DAYS` after its
    /// start once that expiry has passed — before then it counts as open,
    /// and its key is put off to be looked at again (custody keeps it in
    /// the bucket of its start, so no key moves for calls that do end).
    fn disposition(&self, policy: &RetentionPolicy, now: DateTime<Utc>) -> Disposition {
        let at = (self.expires)(
            policy,
            RetentionPolicy::retention_starts(self.started_at, self.ended_at),
        );
        let expiry = (self.ended_at.is_some() || at <= now).then_some(at);
        policy.disposition(expiry, &self.controls, self.purged, now)
    }

    /// When it expires if its contact's end never comes.
    fn open_expiry(&self, policy: &RetentionPolicy) -> DateTime<Utc> {
        (self.expires)(
            policy,
            RetentionPolicy::retention_starts(self.started_at, None),
        )
    }
}

/// The item a key belongs to; `None` for a key with no stored item.
async fn item(
    registry: &Registry,
    owner: KeyOwner,
    catalog: &Catalog,
) -> Result<Option<Item>, AppError> {
    Ok(match owner {
        KeyOwner::Recording(r) => {
            let Some(call_id) = catalog.recordings.get(&r) else {
                return Ok(None); // a key whose upload never finished
            };
            let state = registry.load::<Call>(call_id).await?.state;
            let Some(call) = &state.call else {
                return Ok(None);
            };
            Some(Item {
                started_at: call.started_at,
                ended_at: call.ended_at,
                expires: RetentionPolicy::recording_expires_at,
                purged: state.recordings.get(&r).is_none_or(|x| x.purged.is_some()),
                controls: state.controls,
            })
        }
        KeyOwner::Contact(ContactRef::Call(c)) => {
            let state = registry.load::<Call>(&c).await?.state;
            let Some(call) = &state.call else {
                return Ok(None);
            };
            Some(Item {
                started_at: call.started_at,
                ended_at: call.ended_at,
                expires: RetentionPolicy::contact_expires_at,
                purged: state.controls.history_purged.is_some(),
                controls: state.controls,
            })
        }
        KeyOwner::Contact(ContactRef::Chat(c)) => {
            let state = registry.load::<Chat>(&c).await?.state;
            let Some(chat) = &state.chat else {
                return Ok(None);
            };
            Some(Item {
                started_at: chat.started_at,
                ended_at: chat.ended_at,
                expires: RetentionPolicy::contact_expires_at,
                purged: state.controls.history_purged.is_some(),
                controls: state.controls,
            })
        }
    })
}

/// An item's disposition under the registry's policy at `now`.
async fn disposition(
    registry: &Registry,
    owner: KeyOwner,
    catalog: &Catalog,
    now: DateTime<Utc>,
) -> Result<Option<Disposition>, AppError> {
    let policy = registry.policy();
    Ok(item(registry, owner, catalog)
        .await?
        .map(|i| i.disposition(policy, now)))
}

/// Appends the tombstone of one due item.
async fn tombstone(
    registry: &Registry,
    owner: KeyOwner,
    bucket: Bucket,
    catalog: &Catalog,
) -> Result<(), AppError> {
    let actor = StaffId::system("retention");
    let policy_version = registry.policy().version;
    let key_bucket = bucket.name();
    match owner {
        KeyOwner::Recording(r) => {
            let call = *catalog
                .recordings
                .get(&r)
                .ok_or_else(|| AppError::NotFound(format!("recording {r} is in no call")))?;
            registry
                .execute_unlocked::<Call>(
                    &actor,
                    &call,
                    CallCommand::PurgeRecording(PurgeRecording {
                        recording_id: r,
                        policy_version,
                        key_bucket,
                    }),
                    None,
                )
                .await?;
        }
        KeyOwner::Contact(ContactRef::Call(c)) => {
            registry
                .execute_unlocked::<Call>(
                    &actor,
                    &c,
                    CallCommand::PurgeContactHistory(PurgeContactHistory {
                        policy_version,
                        key_bucket,
                    }),
                    None,
                )
                .await?;
        }
        KeyOwner::Contact(ContactRef::Chat(c)) => {
            registry
                .execute_unlocked::<Chat>(
                    &actor,
                    &c,
                    ChatCommand::PurgeContactHistory(PurgeContactHistory {
                        policy_version,
                        key_bucket,
                    }),
                    None,
                )
                .await?;
        }
    }
    Ok(())
}

/// Moves a kept item's keys to where its contact's state says they belong.
async fn rehome(registry: &Registry, owner: KeyOwner, catalog: &Catalog) -> Result<(), AppError> {
    match owner {
        KeyOwner::Recording(r) => {
            if let Some(call) = catalog.recordings.get(&r) {
                registry.reconcile::<Call>(call).await?;
            }
        }
        KeyOwner::Contact(ContactRef::Call(c)) => {
            registry.reconcile::<Call>(&c).await?;
        }
        KeyOwner::Contact(ContactRef::Chat(c)) => {
            registry.reconcile::<Chat>(&c).await?;
        }
    }
    Ok(())
}

/// Purges every bucket due at `now` (or exactly `only`, when given).
pub async fn run(
    registry: &Registry,
    now: DateTime<Utc>,
    dry_run: bool,
    only: Option<BTreeSet<Bucket>>,
) -> Result<RunReport, AppError> {
    let _guard = registry.custody_lock().lock().await;
    let catalog = Catalog::read(registry).await?;
    let status = registry.with_vault(|v| v.status()).await?;
    let mut report = RunReport {
        now: Some(now),
        dry_run,
        policy_version: registry.policy().version,
        buckets: Vec::new(),
        failed: Vec::new(),
    };
    for bucket_status in status {
        let bucket = bucket_status.bucket;
        let due = match (&only, bucket) {
            (Some(only), b) => only.contains(&b),
            (None, Bucket::Expiry(day)) => day <= now.date_naive(),
            (None, Bucket::Hold) => false,
        };
        if !due {
            continue;
        }
        // One bucket's trouble does not keep the others from their due
        // destruction.
        match purge_bucket(registry, bucket, &catalog, now, dry_run).await {
            Ok(b) => report.buckets.push(b),
            Err(e) => {
                tracing::error!(bucket = %bucket, error = %e, "could not purge a due bucket; the next run tries again");
                report.failed.push(BucketFailure {
                    bucket: bucket.name(),
                    error: e.to_string(),
                });
            }
        }
    }
    if !dry_run {
        // Hygiene over the whole log (a start looks only at what is new
        // since the previous one): audio of any purged recording that is
        // back on disk — from a restored backup, say — is deleted. It is
        // unreadable anyway, its key being gone.
        delete_leftover_audio(registry, &catalog.tombstoned).await?;
    }
    Ok(report)
}

/// Deletes the audio files of tombstoned recordings that still have one.
async fn delete_leftover_audio(
    registry: &Registry,
    tombstoned: &BTreeSet<KeyOwner>,
) -> Result<(), AppError> {
    for owner in tombstoned {
        if let KeyOwner::Recording(r) = owner
            && registry.blobs().exists(*r)
        {
            let blobs = registry.blobs().clone();
            let r = *r;
            tokio::task::spawn_blocking(move || blobs.delete(r))
                .await
                .map_err(|e| AppError::Internal(anyhow::anyhow!("blob task failed: {e}")))?
                .map_err(|e| AppError::Internal(e.into()))?;
        }
    }
    Ok(())
}

async fn purge_bucket(
    registry: &Registry,
    bucket: Bucket,
    catalog: &Catalog,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<BucketReport, AppError> {
    let owners = registry.with_vault(move |v| v.owners_in(bucket)).await?;
    let mut report = BucketReport {
        bucket: bucket.name(),
        keys: owners.len(),
        purged: Vec::new(),
        kept: Vec::new(),
        kek_destroyed: false,
    };
    let mut purged_recordings = Vec::new();
    let later = Bucket::Expiry(now.date_naive() + chrono::Days::new(OPEN_CONTACT_RECHECK_DAYS));
    let put_off = |owner: KeyOwner, to: Bucket| async move {
        if !dry_run {
            registry.with_vault(move |v| v.move_to(owner, to)).await?;
        }
        Ok::<_, AppError>(format!(
            "key moved to bucket {}, looked at again then",
            to.name()
        ))
    };
    for owner in owners {
        let outcome = |text: String| ItemOutcome {
            owner: owner.to_string(),
            outcome: text,
        };
        // A recording still streaming in has a key but no event yet: it
        // is not an orphan, and its key must outlive this bucket.
        if let KeyOwner::Recording(r) = owner
            && crate::audio::is_uploading(r)
        {
            let moved = put_off(owner, later).await?;
            report
                .kept
                .push(outcome(format!("kept: its upload is in progress; {moved}")));
            continue;
        }
        let item = item(registry, owner, catalog).await?;
        let d = item.as_ref().map(|i| i.disposition(registry.policy(), now));
        match d {
            None => report
                .purged
                .push(outcome("orphan key (no stored item): destroyed".into())),
            Some(Disposition::Purged) => {
                report
                    .purged
                    .push(outcome("tombstone already written".into()));
            }
            Some(Disposition::Due { expired_at }) => {
                if !dry_run {
                    tombstone(registry, owner, bucket, catalog).await?;
                }
                report
                    .purged
                    .push(outcome(format!("purged: expired {expired_at}")));
            }
            Some(Disposition::Open) => {
                // A contact whose end has not come keeps its data, but not
                // the bucket: its key moves on to the day it expires as if
                // it had ended `OPEN_AT_MOST_DAYS` after its start (where
                // a later run, and `retention plan`, find it due).
                let to = item
                    .as_ref()
                    .map(|i| crate::custody::expiry_bucket(i.open_expiry(registry.policy())))
                    .filter(|b| *b > bucket)
                    .unwrap_or(later);
                let moved = put_off(owner, to).await?;
                report.kept.push(outcome(format!(
                    "{}; {moved}",
                    describe(&Disposition::Open)
                )));
                continue;
            }
            Some(other) => {
                if !dry_run {
                    rehome(registry, owner, catalog).await?;
                }
                report.kept.push(outcome(describe(&other)));
                continue;
            }
        }
        if let KeyOwner::Recording(r) = owner {
            purged_recordings.push(r);
        }
    }
    if dry_run {
        return Ok(report);
    }
    // Everything still in the bucket must now have its tombstone.
    let left = registry.with_vault(move |v| v.owners_in(bucket)).await?;
    let catalog_after = Catalog::read(registry).await?;
    for owner in &left {
        let orphan =
            matches!(owner, KeyOwner::Recording(r) if !catalog_after.recordings.contains_key(r));
        if !orphan && !catalog_after.tombstoned.contains(owner) {
            return Err(AppError::Conflict(format!(
                "bucket {bucket} still holds the key of {owner}, which has no tombstone; it was not destroyed"
            )));
        }
    }
    if std::env::var(FAILPOINT_ENV).as_deref() == Ok("retention-after-tombstones") {
        tracing::error!(
            "failpoint retention-after-tombstones: stopping before the KEK is destroyed"
        );
        std::process::exit(86);
    }
    registry
        .with_vault(move |v| v.destroy_bucket(bucket))
        .await?;
    report.kek_destroyed = true;
    for r in purged_recordings {
        let blobs = registry.blobs().clone();
        tokio::task::spawn_blocking(move || blobs.delete(r))
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("blob task failed: {e}")))?
            .map_err(|e| AppError::Internal(e.into()))?;
    }
    tracing::info!(bucket = %bucket, purged = report.purged.len(), kept = report.kept.len(), "retention purged a bucket");
    Ok(report)
}

/// Finishes purges a crash interrupted: every tombstone whose key still
/// exists has its bucket purged again (the bucket was due when the
/// tombstone was written), and blobs of tombstoned recordings are deleted.
pub async fn finish_interrupted(registry: &Registry) -> Result<Option<RunReport>, AppError> {
    // Only tombstones written since the last start can have a key or a
    // blob left: every start finishes what it finds before it moves the
    // mark, so a start reads the log written since, not all of it.
    let from = ScanMark::load(registry).await.map(|m| m.at);
    let (catalog, mark) = Catalog::read_after(registry, from).await?;
    let owners: Vec<KeyOwner> = catalog.tombstoned.iter().copied().collect();
    let (buckets, _) = registry
        .with_vault(move |v| {
            let mut buckets = BTreeSet::new();
            for o in &owners {
                if let Some(b) = v.bucket_of(*o)? {
                    buckets.insert(b);
                }
            }
            Ok((buckets, ()))
        })
        .await?;
    delete_leftover_audio(registry, &catalog.tombstoned).await?;
    let report = if buckets.is_empty() {
        None
    } else {
        Some(finish_buckets(registry, buckets).await?)
    };
    if let Some(mark) = mark
        && let Err(e) = mark.save(registry)
    {
        tracing::warn!(error = %e, "could not note how far the log was checked for interrupted purges; the next start reads it all again");
    }
    Ok(report)
}

/// Purges again the buckets whose tombstones were written but whose keys
/// were not destroyed.
async fn finish_buckets(
    registry: &Registry,
    buckets: BTreeSet<Bucket>,
) -> Result<RunReport, AppError> {
    tracing::warn!(
        buckets = buckets.len(),
        "finishing purges interrupted by a crash"
    );
    let latest = buckets
        .iter()
        .filter_map(|b| match b {
            Bucket::Expiry(d) => d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
            Bucket::Hold => None,
        })
        .max()
        .unwrap_or_else(|| registry.now());
    let now = registry.now().max(latest);
    run(registry, now, false, Some(buckets)).await
}

/// One bucket in the forecast.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedBucket {
    pub bucket: String,
    pub due_on: String,
    pub destroyed: Vec<ItemOutcome>,
    pub kept: Vec<ItemOutcome>,
}

/// What `retention plan` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub policy: callvault_domain::RetentionPolicy,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub buckets: Vec<PlannedBucket>,
    /// Items kept by holds or restrictions, whatever their expiry.
    pub held: Vec<ItemOutcome>,
}

/// Forecasts what retention will destroy between `now` and `now + days`.
pub async fn plan(registry: &Registry, now: DateTime<Utc>, days: u32) -> Result<Plan, AppError> {
    let until = now + chrono::Duration::days(i64::from(days));
    let catalog = Catalog::read(registry).await?;
    let status = registry.with_vault(|v| v.status()).await?;
    let mut buckets = BTreeMap::new();
    let mut held = Vec::new();
    for s in status {
        let bucket = s.bucket;
        let owners = registry.with_vault(move |v| v.owners_in(bucket)).await?;
        match bucket {
            Bucket::Hold => {
                for owner in owners {
                    if let Some(d) = disposition(registry, owner, &catalog, until).await? {
                        held.push(ItemOutcome {
                            owner: owner.to_string(),
                            outcome: describe(&d),
                        });
                    }
                }
            }
            Bucket::Expiry(day) => {
                let Some(due_at) = day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()) else {
                    continue;
                };
                if due_at > until {
                    continue;
                }
                let at = due_at.max(now);
                let mut planned = PlannedBucket {
                    bucket: bucket.name(),
                    due_on: day.to_string(),
                    destroyed: Vec::new(),
                    kept: Vec::new(),
                };
                for owner in owners {
                    let d = disposition(registry, owner, &catalog, at).await?;
                    let item = ItemOutcome {
                        owner: owner.to_string(),
                        outcome: d.as_ref().map_or("orphan key".into(), describe),
                    };
                    match d {
                        None | Some(Disposition::Due { .. }) | Some(Disposition::Purged) => {
                            planned.destroyed.push(item)
                        }
                        Some(_) => planned.kept.push(item),
                    }
                }
                buckets.insert(day, planned);
            }
        }
    }
    Ok(Plan {
        policy: *registry.policy(),
        from: now,
        until,
        buckets: buckets.into_values().collect(),
        held,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use callvault_domain::RetentionPolicy;
    use callvault_store::{
        EventStore, ExpectedRevision, NewEvent, StreamName, blob::BlobStore, memory::MemoryStore,
        vault::KeyVault,
    };

    use super::*;
    use crate::service::FixedClock;

    async fn registry_with(events: usize, dir: &std::path::Path) -> Registry {
        let store = Arc::new(MemoryStore::new());
        let stream = StreamName::new("noise-1").unwrap();
        let mut left = events;
        while left > 0 {
            let n = left.min(100);
            let batch = (0..n)
                .map(|_| NewEvent {
                    id: uuid::Uuid::now_v7(),
                    event_type: "Noise".into(),
                    schema_version: 1,
                    payload: b"{}".to_vec(),
                    actor: "test".into(),
                    correlation_id: None,
                    causation_id: None,
                })
                .collect();
            store
                .append(&stream, ExpectedRevision::Any, batch)
                .await
                .unwrap();
            left -= n;
        }
        Registry::new(
            store,
            Arc::new(KeyVault::open(dir.join("keys")).unwrap()),
            BlobStore::open(dir.join("blobs")).unwrap(),
            RetentionPolicy::default(),
            Arc::new(FixedClock("2026-03-03T10:00:00Z".parse().unwrap())),
        )
    }

    /// The mark a full read leaves names the log's last event in a way
    /// `load` accepts, whatever page the last event fell on (reads go
    /// 2,048 events at a time).
    #[tokio::test]
    async fn the_mark_of_a_read_is_accepted_for_any_page_length() {
        for events in [1, 2, 2048, 2049, 2050] {
            let dir = tempfile::tempdir().unwrap();
            let registry = registry_with(events, dir.path()).await;
            let (_, mark) = Catalog::read_after(&registry, None).await.unwrap();
            let mark = mark.unwrap();
            let head = registry.store().head_position().await.unwrap();
            assert_eq!(Some(mark.at), head, "{events} events");
            mark.save(&registry).unwrap();
            let loaded = ScanMark::load(&registry).await;
            assert_eq!(loaded.map(|m| m.at), head, "{events} events");
            // Nothing is left to read after it.
            let (_, after) = Catalog::read_after(&registry, head).await.unwrap();
            assert!(after.is_none());
        }
    }

    /// A mark naming the right position but another event (another log)
    /// is not trusted.
    #[tokio::test]
    async fn a_mark_with_another_id_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry_with(3, dir.path()).await;
        let (_, mark) = Catalog::read_after(&registry, None).await.unwrap();
        let mut mark = mark.unwrap();
        mark.id = uuid::Uuid::now_v7();
        mark.save(&registry).unwrap();
        assert!(ScanMark::load(&registry).await.is_none());
    }

    /// An overdue expiry bucket (what a vault folder copied file by file
    /// mid-purge looks like) makes a start read the whole log.
    #[tokio::test]
    async fn an_overdue_bucket_makes_the_mark_untrusted() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry_with(3, dir.path()).await;
        let (_, mark) = Catalog::read_after(&registry, None).await.unwrap();
        mark.unwrap().save(&registry).unwrap();
        assert!(ScanMark::load(&registry).await.is_some());
        let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 3).unwrap();
        let owner = KeyOwner::Recording(RecordingId(uuid::Uuid::now_v7()));
        // Due today: not overdue yet.
        registry
            .vault()
            .create_key(owner, Bucket::Expiry(day))
            .unwrap();
        assert!(ScanMark::load(&registry).await.is_some());
        let overdue = KeyOwner::Recording(RecordingId(uuid::Uuid::now_v7()));
        registry
            .vault()
            .create_key(overdue, Bucket::Expiry(day.pred_opt().unwrap()))
            .unwrap();
        assert!(ScanMark::load(&registry).await.is_none());
    }
}
