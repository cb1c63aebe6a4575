//! What auditors and operators ask of the log itself (R6, R7): history
//! filtered and decoded to the current schema, state as of any instant,
//! tamper evidence (hash chains, tombstones really destroyed, signed
//! checkpoints), and a check that every stored event still decodes.

use std::{collections::BTreeMap, path::Path};

use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use callvault_domain::{
    CallId, Event, Purpose, StaffId,
    policy::{self, Action, Relation, Request, Target},
    register::LogCheckpointSigned,
    staff::StaffState,
};
use callvault_projections::journal::Cause;
use callvault_store::{
    ExpectedRevision, Position, RecordedEvent, StreamName,
    vault::{KeyLookup, KeyOwner},
    verify::{Broken, Summary, Verifier},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{
    error::AppError,
    service::{Call, Registry, Staff},
};

/// Which events a history read shows. Every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// One stream, e.g. `call-0190…`.
    pub stream: Option<String>,
    /// `call`, `chat`, `staff`, `access` or `register`.
    pub category: Option<String>,
    pub event_type: Option<String>,
    pub actor: Option<String>,
    /// Only events after this position.
    pub after: Option<u64>,
    /// Only events up to this position (inclusive).
    pub until_position: Option<u64>,
    /// Only events the store accepted at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// …and before this time.
    pub until: Option<DateTime<Utc>>,
}

impl HistoryFilter {
    fn matches(&self, r: &RecordedEvent) -> bool {
        let category = r.stream.as_str().split('-').next().unwrap_or_default();
        self.stream
            .as_deref()
            .is_none_or(|s| r.stream.as_str() == s)
            && self.category.as_deref().is_none_or(|c| category == c)
            && self.event_type.as_deref().is_none_or(|t| r.event_type == t)
            && self.actor.as_deref().is_none_or(|a| r.metadata.actor == a)
            && self.since.is_none_or(|t| r.metadata.recorded_at >= t)
            && self.until.is_none_or(|t| r.metadata.recorded_at < t)
    }

    /// The names of the conditions used (for the access log: never their
    /// values).
    pub fn fields(&self) -> Vec<String> {
        [
            ("stream", self.stream.is_some()),
            ("category", self.category.is_some()),
            ("eventType", self.event_type.is_some()),
            ("actor", self.actor.is_some()),
            (
                "position",
                self.after.is_some() || self.until_position.is_some(),
            ),
            ("time", self.since.is_some() || self.until.is_some()),
        ]
        .into_iter()
        .filter(|(_, used)| *used)
        .map(|(n, _)| n.to_owned())
        .collect()
    }
}

/// One event of the history, decoded and upcast to its current schema.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub position: String,
    pub stream: String,
    pub revision: u64,
    pub id: uuid::Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The schema version it was stored with (the data is upcast from it).
    pub stored_version: u32,
    pub recorded_at: DateTime<Utc>,
    pub actor: String,
    /// The event in its current schema; shredded personal data shows as
    /// `{"$shredded": true}`; an event that can't be decoded shows
    /// `{"undecodable": reason}`.
    pub data: serde_json::Value,
    #[serde(skip)]
    pub event: Option<Event>,
    /// The stored event (to decode it again with personal data withheld).
    #[serde(skip)]
    pub stored: Option<RecordedEvent>,
}

/// A page of history and where the next one starts.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    /// Pass as `after` for the next page; `None` at the end.
    pub next: Option<u64>,
    pub undecodable: usize,
}

fn entry(registry: &Registry, r: &RecordedEvent) -> (HistoryEntry, bool) {
    let (data, event, failed) = match registry.journal().decode(r) {
        Ok(event) => (
            serde_json::to_value(&event).unwrap_or(serde_json::Value::Null),
            Some(event),
            false,
        ),
        Err(e) => (serde_json::json!({"undecodable": e.reason}), None, true),
    };
    (
        HistoryEntry {
            position: r.position.to_string(),
            stream: r.stream.as_str().to_owned(),
            revision: r.revision.0,
            id: r.id,
            event_type: r.event_type.clone(),
            stored_version: r.schema_version,
            recorded_at: r.metadata.recorded_at,
            actor: r.metadata.actor.clone(),
            data,
            event,
            stored: Some(r.clone()),
        },
        failed,
    )
}

/// Up to `limit` events matching `filter`, oldest first, starting after
/// `filter.after`. Scans at most `max_scan` events (`None`: no bound) so a
/// narrow filter over a long log answers with a cursor instead of hanging.
pub async fn history_page(
    registry: &Registry,
    filter: &HistoryFilter,
    limit: usize,
    max_scan: Option<usize>,
) -> Result<HistoryPage, AppError> {
    let store = registry.store();
    let mut entries = Vec::new();
    let mut undecodable = 0;
    let mut scanned = 0usize;
    let mut after = filter.after.map(Position::sequence);
    loop {
        let page = store.read_all(after, 1000).await?;
        let Some(last) = page.last() else {
            return Ok(HistoryPage {
                entries,
                next: None,
                undecodable,
            });
        };
        for r in &page {
            if filter.until_position.is_some_and(|u| r.position.commit > u) {
                return Ok(HistoryPage {
                    entries,
                    next: None,
                    undecodable,
                });
            }
            scanned += 1;
            if filter.matches(r) {
                let (e, failed) = entry(registry, r);
                undecodable += usize::from(failed);
                entries.push(e);
                if entries.len() == limit {
                    return Ok(HistoryPage {
                        entries,
                        next: Some(r.position.commit),
                        undecodable,
                    });
                }
            }
            if max_scan.is_some_and(|m| scanned >= m) {
                return Ok(HistoryPage {
                    entries,
                    next: Some(r.position.commit),
                    undecodable,
                });
            }
        }
        after = Some(last.position);
    }
}

/// A call as the register knew it at an instant.
pub async fn call_as_of(
    registry: &Registry,
    call_id: CallId,
    at: DateTime<Utc>,
) -> Result<crate::service::Loaded<callvault_domain::call::CallState>, AppError> {
    registry.load_as_of::<Call>(&call_id, at).await
}

/// A call a staff member's roles let them open at an instant, and under
/// which role and purposes.
#[derive(Debug, Clone, Serialize)]
pub struct OpenableCall {
    pub call_id: String,
    pub agent: String,
    pub started_at: DateTime<Utc>,
    pub restricted: bool,
    pub role: String,
    pub purposes: Vec<String>,
    pub break_glass: bool,
}

/// A staff member's rights at an instant: their roles then, and which
/// calls (known to the register then) those roles let them open.
#[derive(Debug, Clone, Serialize)]
pub struct StaffAsOf {
    pub staff_id: String,
    pub at: DateTime<Utc>,
    pub roles: Vec<RoleThen>,
    /// `all calls` when a role reaches every call; the list is then left
    /// out (it would be the whole register).
    pub reach: String,
    pub calls: Vec<OpenableCall>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoleThen {
    pub role: String,
    pub supervises: Vec<String>,
    pub granted_at: DateTime<Utc>,
}

/// What `staff` could open at `at`. Walks the calls the register knew
/// then (their start events) and asks the policy about each, as it stood.
pub async fn staff_as_of(
    registry: &Registry,
    staff: &StaffId,
    at: DateTime<Utc>,
) -> Result<StaffAsOf, AppError> {
    let rights: StaffState = registry.load_as_of::<Staff>(staff, at).await?.state;
    let roles: std::collections::BTreeSet<_> = rights.roles.keys().copied().collect();
    let roles_then = rights
        .roles
        .iter()
        .map(|(r, g)| RoleThen {
            role: r.name().to_owned(),
            supervises: g.supervises.iter().map(ToString::to_string).collect(),
            granted_at: g.granted_at,
        })
        .collect();
    let decide = |relation, restricted| {
        let mut allowed = Vec::new();
        let mut how = None;
        for purpose in Purpose::ALL {
            if let policy::Decision::Allow { role, break_glass } = policy::decide(
                &roles,
                &Request {
                    action: Action::ViewCall,
                    purpose: Some(purpose),
                    target: Some(Target {
                        relation,
                        restricted,
                        recording_purged: false,
                    }),
                    reason_given: true,
                },
            ) {
                allowed.push(purpose.name().to_owned());
                how.get_or_insert((role, break_glass));
            }
        }
        how.map(|(role, bg)| (role, bg, allowed))
    };
    if decide(Relation::Other, false).is_some() {
        return Ok(StaffAsOf {
            staff_id: staff.to_string(),
            at,
            roles: roles_then,
            reach: "all calls".into(),
            calls: Vec::new(),
        });
    }
    let mut calls = Vec::new();
    if !roles.is_empty() {
        let filter = HistoryFilter {
            event_type: Some("CallStarted".into()),
            until: Some(at),
            ..HistoryFilter::default()
        };
        let mut cursor = filter.clone();
        loop {
            let page = history_page(registry, &cursor, 1000, None).await?;
            for e in &page.entries {
                let Some(Event::CallStarted(started)) = &e.event else {
                    continue;
                };
                let relation = Relation::of(staff, &rights, started.agent.as_str());
                if relation == Relation::Other {
                    continue;
                }
                let restricted = registry
                    .load_as_of::<Call>(&started.call_id, at)
                    .await?
                    .state
                    .controls
                    .is_restricted();
                if let Some((role, break_glass, purposes)) = decide(relation, restricted) {
                    calls.push(OpenableCall {
                        call_id: started.call_id.to_string(),
                        agent: started.agent.to_string(),
                        started_at: started.started_at,
                        restricted,
                        role: role.name().to_owned(),
                        purposes,
                        break_glass,
                    });
                }
            }
            match page.next {
                Some(next) => cursor.after = Some(next),
                None => break,
            }
        }
    }
    Ok(StaffAsOf {
        staff_id: staff.to_string(),
        at,
        roles: roles_then,
        reach: if roles.is_empty() {
            "no calls".into()
        } else {
            "own and supervised agents' calls".into()
        },
        calls,
    })
}

/// What `verify` found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub summary: Summary,
    pub tombstones: u64,
    /// Tombstoned recordings whose key or audio is still there.
    pub leftovers: Vec<String>,
    /// The checkpoint checked, if one was given.
    pub checkpoint: Option<CheckpointCheck>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointCheck {
    /// The log's first `events` events have the signed digest.
    Extends { position: u64, events: u64 },
    /// The log is shorter than the signed one.
    Shorter { events: u64, log_events: u64 },
    /// The digest after `events` events differs from the signed one.
    Differs { events: u64 },
}

/// Why `verify` stopped.
#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    #[error("the log is broken at {0}")]
    Broken(#[from] Broken),
    #[error(transparent)]
    App(#[from] AppError),
}

/// Recomputes every hash chain and the running digest; checks that every
/// tombstoned recording has neither key nor audio left; and, given a
/// checkpoint, that the log extends the signed one.
pub async fn verify_register(
    registry: &Registry,
    checkpoint: Option<&CheckpointFile>,
    mut progress: impl FnMut(u64),
) -> Result<VerifyReport, VerifyFailure> {
    let store = registry.store();
    let mut verifier = Verifier::new();
    let mut tombstones = 0;
    let mut leftovers = Vec::new();
    // A checkpoint of the empty log is met before the first event.
    let compare = |cp: &CheckpointFile, digest: String| {
        if digest == cp.digest {
            CheckpointCheck::Extends {
                position: cp.position,
                events: cp.events,
            }
        } else {
            CheckpointCheck::Differs { events: cp.events }
        }
    };
    let mut checked = checkpoint
        .filter(|cp| cp.events == 0)
        .map(|cp| compare(cp, verifier.summary().digest_hex()));
    let mut after = None;
    loop {
        let page = store.read_all(after, 4096).await.map_err(AppError::from)?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        for r in &page {
            verifier.feed(r)?;
            if let Some(cp) = checkpoint
                && checked.is_none()
                && verifier.events() == cp.events
            {
                checked = Some(compare(cp, verifier.summary().digest_hex()));
            }
            if r.event_type == "RecordingPurged" {
                tombstones += 1;
                if let Ok(Event::RecordingPurged(p)) = registry.journal().decode(r) {
                    let owner = KeyOwner::Recording(p.recording_id);
                    let key = registry.with_vault(move |v| v.key(owner)).await?;
                    if matches!(key, KeyLookup::Live(_)) {
                        leftovers.push(format!(
                            "recording {}: its key still exists",
                            p.recording_id
                        ));
                    }
                    if registry.blobs().exists(p.recording_id) {
                        leftovers.push(format!(
                            "recording {}: its audio file still exists",
                            p.recording_id
                        ));
                    }
                }
            }
        }
        progress(verifier.events());
    }
    let summary = verifier.summary();
    let checkpoint = checkpoint.map(|cp| {
        checked.unwrap_or(CheckpointCheck::Shorter {
            events: cp.events,
            log_events: summary.events,
        })
    });
    Ok(VerifyReport {
        summary,
        tombstones,
        leftovers,
        checkpoint,
    })
}

/// A checkpoint as handed to an outside party: everything needed to check
/// it with the public key alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointFile {
    pub position: u64,
    pub events: u64,
    pub digest: String,
    pub public_key: String,
    pub signature: String,
    pub signed_at: DateTime<Utc>,
}

impl From<&LogCheckpointSigned> for CheckpointFile {
    fn from(e: &LogCheckpointSigned) -> Self {
        Self {
            position: e.position,
            events: e.events,
            digest: e.digest.clone(),
            public_key: e.public_key.clone(),
            signature: e.signature.clone(),
            signed_at: e.signed_at,
        }
    }
}

impl CheckpointFile {
    /// Checks the signature against `trusted_key` (hex), or the key the
    /// file names when none is given.
    pub fn check_signature(&self, trusted_key: Option<&str>) -> Result<(), String> {
        let key_hex = trusted_key.unwrap_or(&self.public_key);
        if trusted_key.is_some_and(|k| !k.eq_ignore_ascii_case(&self.public_key)) {
            return Err("the checkpoint was signed by another key than the one you trust".into());
        }
        let key = hex::decode(key_hex).map_err(|_| "the public key is not hex".to_owned())?;
        let sig =
            hex::decode(&self.signature).map_err(|_| "the signature is not hex".to_owned())?;
        UnparsedPublicKey::new(&signature::ED25519, key)
            .verify(
                &LogCheckpointSigned::message(self.position, self.events, &self.digest),
                &sig,
            )
            .map_err(|_| {
                "the signature does not verify: the checkpoint was altered or forged".to_owned()
            })
    }
}

/// The public key (hex) of the register's signing key, if it has one
/// (never creates it).
pub fn own_public_key(vault_dir: &Path) -> Result<Option<String>, AppError> {
    if !vault_dir.join(SIGNING_KEY_FILE).exists() {
        return Ok(None);
    }
    let key = signing_key(vault_dir)?;
    Ok(Some(hex::encode(
        aws_lc_rs::signature::KeyPair::public_key(&key).as_ref(),
    )))
}

const SIGNING_KEY_FILE: &str = "checkpoint.ed25519.p8";

/// The register's Ed25519 signing key, in the vault folder (owner-only),
/// created on first use.
pub fn signing_key(vault_dir: &Path) -> Result<Ed25519KeyPair, AppError> {
    let path = vault_dir.join(SIGNING_KEY_FILE);
    let internal = |what: &str, e: &dyn std::fmt::Display| {
        AppError::Internal(anyhow::anyhow!("{what} {}: {e}", path.display()))
    };
    let pkcs8 = match std::fs::read(&path) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let rng = aws_lc_rs::rand::SystemRandom::new();
            let doc =
                Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| internal("generating", &e))?;
            let bytes = Zeroizing::new(doc.as_ref().to_vec());
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path).map_err(|e| internal("creating", &e))?;
            std::io::Write::write_all(&mut file, &bytes).map_err(|e| internal("writing", &e))?;
            file.sync_all().map_err(|e| internal("syncing", &e))?;
            // Its name in the folder must be durable too, or a power loss
            // could lose the key and a new one be made without notice.
            std::fs::File::open(vault_dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| internal("syncing the folder of", &e))?;
            bytes
        }
        Err(e) => return Err(internal("reading", &e)),
    };
    Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|e| internal("loading", &e))
}

/// Verifies the log as it stands, signs its digest, and appends the
/// checkpoint to the `register` stream.
pub async fn sign_checkpoint(
    registry: &Registry,
    vault_dir: &Path,
    progress: impl FnMut(u64),
) -> Result<LogCheckpointSigned, VerifyFailure> {
    let report = verify_register(registry, None, progress).await?;
    let key = signing_key(vault_dir)?;
    let summary = report.summary;
    let position = summary.head.map_or(0, |p| p.commit);
    let digest = summary.digest_hex();
    let signature = key.sign(&LogCheckpointSigned::message(
        position,
        summary.events,
        &digest,
    ));
    let event = LogCheckpointSigned {
        position,
        events: summary.events,
        digest,
        public_key: hex::encode(key.public_key().as_ref()),
        signature: hex::encode(signature.as_ref()),
        signed_at: registry.now(),
    };
    let wrapped = Event::from(event.clone());
    let stream = StreamName::new(wrapped.stream_name()).map_err(AppError::from)?;
    let new = registry.encode(
        &wrapped,
        uuid::Uuid::now_v7(),
        &Cause::actor(StaffId::system("checkpoint")),
    )?;
    registry
        .store()
        .append(&stream, ExpectedRevision::Any, vec![new])
        .await
        .map_err(AppError::from)?;
    Ok(event)
}

/// What `migrate check` found.
#[derive(Debug, Clone, Default)]
pub struct MigrateReport {
    /// (type, stored version) → count.
    pub counts: BTreeMap<(String, u32), u64>,
    /// Each event that failed: stream, revision, position, reason.
    pub failures: Vec<String>,
    pub events: u64,
}

/// Reads the whole log, upcasts and decodes every event.
pub async fn migrate_check(
    registry: &Registry,
    mut progress: impl FnMut(u64),
) -> Result<MigrateReport, AppError> {
    let mut report = MigrateReport::default();
    let mut after = None;
    loop {
        let page = registry.store().read_all(after, 4096).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        for r in &page {
            report.events += 1;
            *report
                .counts
                .entry((r.event_type.clone(), r.schema_version))
                .or_default() += 1;
            if let Err(e) = registry.journal().decode(r) {
                report.failures.push(format!(
                    "stream {}, revision {}, position {} ({} v{}): {}",
                    r.stream.as_str(),
                    r.revision.0,
                    r.position,
                    r.event_type,
                    r.schema_version,
                    e.reason
                ));
            }
        }
        progress(report.events);
    }
    Ok(report)
}

/// What a copy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopySummary {
    /// Source events read.
    pub seen: u64,
    pub copied: u64,
    /// Already on the target (an earlier, interrupted copy).
    pub skipped: u64,
    pub stopped_early: bool,
}

/// Copies every event of `source` onto `target` verbatim, in global order,
/// skipping what an earlier run already copied (each stream continues
/// from the target's head; a target whose stream differs from the source
/// is an error, never overwritten). `progress(source position, copied,
/// skipped)` after every page.
pub async fn copy_log(
    source: &dyn callvault_store::EventStore,
    target: &dyn callvault_store::EventStore,
    max_events: Option<u64>,
    mut progress: impl FnMut(u64, u64, u64),
) -> anyhow::Result<CopySummary> {
    use callvault_store::{Direction, StreamFrom};
    let mut heads: std::collections::HashMap<
        StreamName,
        Option<(u64, callvault_store::ChainHash)>,
    > = std::collections::HashMap::new();
    // Per stream, the source's last event found already on the target
    // (below the target's head): its hash is checked at the end. The
    // chains link every event to the one before, so one equal hash
    // vouches for the whole prefix.
    let mut vouched: std::collections::HashMap<StreamName, (u64, callvault_store::ChainHash)> =
        std::collections::HashMap::new();
    let mut summary = CopySummary::default();
    let mut after = None;
    loop {
        let page = source.read_all(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        let mut batch = Vec::new();
        for e in page {
            summary.seen += 1;
            let head = match heads.get(&e.stream) {
                Some(h) => *h,
                None => {
                    let h = target
                        .read_stream(&e.stream, StreamFrom::End, Direction::Backwards, 1)
                        .await?
                        .first()
                        .map(|t| (t.revision.0, t.metadata.hash));
                    heads.insert(e.stream.clone(), h);
                    h
                }
            };
            if let Some((rev, hash)) = head
                && e.revision.0 <= rev
            {
                if e.revision.0 == rev && e.metadata.hash != hash {
                    anyhow::bail!(
                        "the target's stream {} differs from the source's at revision {rev}: \
                         refusing to copy onto a different log",
                        e.stream
                    );
                }
                if e.revision.0 < rev {
                    vouched.insert(e.stream.clone(), (e.revision.0, e.metadata.hash));
                }
                summary.skipped += 1;
                continue;
            }
            if max_events.is_some_and(|m| summary.copied + batch.len() as u64 >= m) {
                summary.stopped_early = true;
                break;
            }
            heads.insert(e.stream.clone(), Some((e.revision.0, e.metadata.hash)));
            batch.push(e);
        }
        summary.copied += batch.len() as u64;
        if !batch.is_empty() {
            target.import(batch).await?;
        }
        progress(
            after.map_or(0, |p| p.commit),
            summary.copied,
            summary.skipped,
        );
        if summary.stopped_early {
            break;
        }
    }
    // A target stream longer than the source's must still begin with it.
    for (stream, (revision, hash)) in vouched {
        let there = target
            .read_stream(
                &stream,
                StreamFrom::Revision(callvault_store::Revision(revision)),
                Direction::Forwards,
                1,
            )
            .await?;
        if there.first().map(|t| t.metadata.hash) != Some(hash) {
            anyhow::bail!(
                "the target's stream {stream} differs from the source's at revision {revision}: \
                 the target holds another log"
            );
        }
    }
    Ok(summary)
}

/// `clear` with every personal field that `sealed` (the same event decoded
/// without keys) shows as shredded replaced by `{"$withheld": reason}`.
pub fn withhold(
    clear: &serde_json::Value,
    sealed: &serde_json::Value,
    reason: &str,
) -> serde_json::Value {
    use serde_json::Value;
    let shredded = serde_json::json!({"$shredded": true});
    match (clear, sealed) {
        (c, s) if *s == shredded && *c != shredded => serde_json::json!({ "$withheld": reason }),
        (Value::Object(c), Value::Object(s)) => Value::Object(
            c.iter()
                .map(|(k, v)| {
                    let w = s
                        .get(k)
                        .map_or_else(|| v.clone(), |sv| withhold(v, sv, reason));
                    (k.clone(), w)
                })
                .collect(),
        ),
        (Value::Array(c), Value::Array(s)) => Value::Array(
            c.iter()
                .zip(s.iter().map(Some).chain(std::iter::repeat(None)))
                .map(|(v, sv)| sv.map_or_else(|| v.clone(), |sv| withhold(v, sv, reason)))
                .collect(),
        ),
        (c, _) => c.clone(),
    }
}

/// Whether the processing of `contact` is restricted now (R19).
pub async fn restricted_now(
    registry: &Registry,
    contact: callvault_domain::ContactRef,
) -> Result<bool, AppError> {
    Ok(match contact {
        callvault_domain::ContactRef::Call(id) => registry
            .load::<crate::service::Call>(&id)
            .await?
            .state
            .controls
            .is_restricted(),
        callvault_domain::ContactRef::Chat(id) => registry
            .load::<crate::service::Chat>(&id)
            .await?
            .state
            .controls
            .is_restricted(),
    })
}

#[cfg(test)]
mod tests {
    use callvault_store::{
        EventStore, ExpectedRevision, StreamName, conformance::event, memory::MemoryStore,
    };

    #[tokio::test]
    async fn copy_refuses_a_target_whose_longer_stream_is_another() {
        let stream = StreamName::new("call-1").unwrap();
        let source = MemoryStore::new();
        source
            .append(&stream, ExpectedRevision::Any, vec![event(1)])
            .await
            .unwrap();
        let target = MemoryStore::new();
        target
            .append(
                &stream,
                ExpectedRevision::Any,
                vec![event(7), event(8), event(9)],
            )
            .await
            .unwrap();
        let refused = super::copy_log(&source, &target, None, |_, _, _| {}).await;
        let why = refused.expect_err("copied onto another log").to_string();
        assert!(
            why.contains("differs from the source's at revision 0"),
            "{why}"
        );
        // A target that holds the source's events (and more) is fine.
        let same = MemoryStore::new();
        super::copy_log(&source, &same, None, |_, _, _| {})
            .await
            .unwrap();
        same.append(&stream, ExpectedRevision::Any, vec![event(2)])
            .await
            .unwrap();
        let again = super::copy_log(&source, &same, None, |_, _, _| {})
            .await
            .unwrap();
        assert_eq!((again.copied, again.skipped), (0, 1));
    }
}
