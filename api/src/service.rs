//! Application services: load → decide → append, for every aggregate.
//!
//! A command is executed against the state folded from its stream and
//! appended with the exact revision it was decided on, so two concurrent
//! commands can't both act on the same state. Commands whose effect has a
//! natural identity (a call's start and end, a recording, a hold, an
//! e-mail order) get a deterministic event id (UUIDv5); re-sending such a
//! command after it succeeded returns the original result instead of an
//! error, and re-sending it with different content is a conflict.

use std::{collections::HashMap, sync::Arc};

use callvault_domain::RetentionPolicy;
use callvault_domain::{
    CallId, ChatId, Context, DomainError, Event, StaffId,
    call::{self, CallCommand, CallState},
    chat::{self, ChatCommand, ChatState},
    ids::ID_NAMESPACE,
    staff::{self, StaffCommand, StaffState},
    streams,
};
use callvault_projections::journal::{Cause, EncodeError, Journal};
use callvault_store::{
    Direction, EventStore, ExpectedRevision, Position, RecordedEvent, Revision, StreamFrom,
    StreamName,
    blob::BlobStore,
    vault::{KeyOwner, KeyVault},
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    custody::{self, ContactItems},
    error::AppError,
};

/// Where time comes from; a seam for tests and for `--now`.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

/// A clock stopped at one instant (`--now`).
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// One aggregate type as the services see it.
pub trait Aggregate {
    type Id: Clone + Send + Sync;
    type State: Default + Clone + Send;
    type Command: Clone + Send;

    fn stream(id: &Self::Id) -> String;
    fn evolve(state: Self::State, event: &Event) -> Self::State;
    fn decide(
        state: &Self::State,
        id: &Self::Id,
        command: Self::Command,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError>;
    /// The natural identity of the command's effect, if it has one.
    fn effect_key(command: &Self::Command) -> Option<String>;
    /// Whether `later` undoes this command's effect (a hold's release
    /// undoes its placing): once such an event is stored after it, a
    /// resend is no longer answered as done. Judged by the events, not by
    /// their ids, so a release stored any way counts.
    fn undone_by(command: &Self::Command, later: &Event) -> bool {
        let _ = (command, later);
        false
    }
    /// The contact's items whose keys custody keeps in the right bucket.
    fn items<'a>(id: &Self::Id, state: &'a Self::State) -> Option<ContactItems<'a>>;
}

pub struct Call;
pub struct Chat;
pub struct Staff;

impl Aggregate for Call {
    type Id = CallId;
    type State = CallState;
    type Command = CallCommand;

    fn stream(id: &CallId) -> String {
        streams::call(*id)
    }
    fn evolve(state: CallState, event: &Event) -> CallState {
        call::evolve(state, event)
    }
    fn decide(
        state: &CallState,
        id: &CallId,
        command: CallCommand,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        call::decide(state, *id, command, ctx)
    }
    fn items<'a>(id: &CallId, state: &'a CallState) -> Option<ContactItems<'a>> {
        ContactItems::of_call(*id, state)
    }
    fn effect_key(command: &CallCommand) -> Option<String> {
        match command {
            CallCommand::Start(_) => Some("CallStarted".into()),
            CallCommand::End(_) => Some("CallEnded".into()),
            CallCommand::StoreRecording(c) => Some(format!("RecordingStored/{}", c.recording_id)),
            CallCommand::PurgeRecording(c) => Some(format!("RecordingPurged/{}", c.recording_id)),
            CallCommand::PlaceHold(c) => Some(format!("HoldPlaced/{}", c.hold_id)),
            CallCommand::ReleaseHold(c) => Some(format!("HoldReleased/{}", c.hold_id)),
            CallCommand::PurgeContactHistory(_) => Some("ContactHistoryPurged".into()),
            CallCommand::Rectify(c) => c.request_id.map(|r| format!("CallRectified/{r}")),
            CallCommand::RestrictProcessing(_) | CallCommand::LiftRestriction(_) => None,
        }
    }
    fn undone_by(command: &CallCommand, later: &Event) -> bool {
        matches!((command, later),
            (CallCommand::PlaceHold(c), Event::HoldReleased(e)) if e.hold_id == c.hold_id)
    }
}

impl Aggregate for Chat {
    type Id = ChatId;
    type State = ChatState;
    type Command = ChatCommand;

    fn stream(id: &ChatId) -> String {
        streams::chat(*id)
    }
    fn evolve(state: ChatState, event: &Event) -> ChatState {
        chat::evolve(state, event)
    }
    fn decide(
        state: &ChatState,
        id: &ChatId,
        command: ChatCommand,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        chat::decide(state, *id, command, ctx)
    }
    fn items<'a>(id: &ChatId, state: &'a ChatState) -> Option<ContactItems<'a>> {
        ContactItems::of_chat(*id, state)
    }
    fn effect_key(command: &ChatCommand) -> Option<String> {
        match command {
            ChatCommand::Start(_) => Some("ChatStarted".into()),
            ChatCommand::End(_) => Some("ChatEnded".into()),
            ChatCommand::RequestTranscriptEmail(c) => {
                Some(format!("ChatTranscriptEmailRequested/{}", c.request_id))
            }
            ChatCommand::RecordTranscriptEmailed(c) => {
                Some(format!("ChatTranscriptEmailed/{}", c.request_id))
            }
            ChatCommand::PlaceHold(c) => Some(format!("HoldPlaced/{}", c.hold_id)),
            ChatCommand::ReleaseHold(c) => Some(format!("HoldReleased/{}", c.hold_id)),
            ChatCommand::PurgeContactHistory(_) => Some("ContactHistoryPurged".into()),
            ChatCommand::AppendMessage(c) => c
                .client_message_id
                .as_ref()
                .map(|id| format!("ChatMessageAppended/{id}")),
            ChatCommand::RecordTranscriptEmailFailed(_)
            | ChatCommand::RestrictProcessing(_)
            | ChatCommand::LiftRestriction(_) => None,
        }
    }
    fn undone_by(command: &ChatCommand, later: &Event) -> bool {
        matches!((command, later),
            (ChatCommand::PlaceHold(c), Event::HoldReleased(e)) if e.hold_id == c.hold_id)
    }
}

impl Aggregate for Staff {
    type Id = StaffId;
    type State = StaffState;
    type Command = StaffCommand;

    fn stream(id: &StaffId) -> String {
        streams::staff(id)
    }
    fn evolve(state: StaffState, event: &Event) -> StaffState {
        staff::evolve(state, event)
    }
    fn decide(
        state: &StaffState,
        id: &StaffId,
        command: StaffCommand,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        staff::decide(state, id, command, ctx)
    }
    fn effect_key(_: &StaffCommand) -> Option<String> {
        None
    }
    fn items<'a>(_: &StaffId, _: &'a StaffState) -> Option<ContactItems<'a>> {
        None
    }
}

/// An aggregate's state with the stream revision it was folded to.
#[derive(Debug, Clone)]
pub struct Loaded<S> {
    pub state: S,
    /// `None` when the stream does not exist.
    pub revision: Option<Revision>,
}

/// How often a command without a client-given revision is decided again
/// after losing a race with another writer.
const RACE_RETRIES: u32 = 8;

/// Why one attempt at a command did not succeed.
enum Attempted {
    /// Another writer appended between our read and our append.
    Raced,
    /// Another send of the same effect stored its events between our read
    /// and our append (the store took ours for its duplicate): decide
    /// again, as a resend of it.
    Preceded,
    Failed(AppError),
}

impl<E: Into<AppError>> From<E> for Attempted {
    fn from(e: E) -> Self {
        Attempted::Failed(e.into())
    }
}

/// The outcome of an executed command.
#[derive(Debug, Clone)]
pub struct Executed {
    pub events: Vec<Event>,
    /// The stream's revision after the command.
    pub revision: Revision,
    /// The global position of the last event: ask a projection to wait for
    /// it to read your own write.
    pub position: Position,
    /// The command had already been executed; nothing new was written.
    pub replayed: bool,
}

/// How many events are read per page when loading a stream.
const PAGE: usize = 1024;

/// Everything a command or query needs: the log, the keys, the audio, the
/// policy and the clock.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn EventStore>,
    journal: Journal,
    blobs: BlobStore,
    policy: RetentionPolicy,
    clock: Arc<dyn Clock>,
    /// Held while keys move between buckets or a bucket is purged, so a
    /// retention run and a command never shuffle the same keys at once.
    custody: Arc<tokio::sync::Mutex<()>>,
    /// The log position of the last command this process wrote (access-log
    /// entries aside): what a query waits for, so it reads every write
    /// made through this service without waiting for other readers'
    /// access-log entries.
    last_write: Arc<std::sync::Mutex<Option<Position>>>,
    /// Staff members' rights as last folded, with the revision they were
    /// folded to: each request checks the stream for events after it (one
    /// index lookup) instead of reading and decoding the whole stream.
    staff_rights: Arc<std::sync::Mutex<HashMap<StaffId, (Revision, StaffState)>>>,
}

/// Most staff members whose rights are kept folded; past it the cache
/// starts again (an agency has hundreds).
const STAFF_RIGHTS_CACHED: usize = 10_000;

impl Registry {
    pub fn new(
        store: Arc<dyn EventStore>,
        vault: Arc<KeyVault>,
        blobs: BlobStore,
        policy: RetentionPolicy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            journal: Journal::new(vault),
            blobs,
            policy,
            clock,
            custody: Arc::new(tokio::sync::Mutex::new(())),
            last_write: Arc::new(std::sync::Mutex::new(None)),
            staff_rights: Arc::default(),
        }
    }

    /// A staff member's rights now: the folded state cached from an
    /// earlier request, brought up to date with whatever the stream holds
    /// after it — always current, as reading the whole stream would be.
    pub async fn staff_rights(&self, id: &StaffId) -> Result<StaffState, AppError> {
        let stream = stream_name(Staff::stream(id))?;
        let cached = self
            .staff_rights
            .lock()
            .ok()
            .and_then(|c| c.get(id).cloned());
        let (from, mut state) = match cached {
            Some((revision, state)) => (StreamFrom::Revision(Revision(revision.0 + 1)), state),
            None => (StreamFrom::Start, StaffState::default()),
        };
        let recorded = self.read_stream_from(&stream, from).await?;
        for r in &recorded {
            state = Staff::evolve(state, &self.journal.decode(r)?);
        }
        let last = recorded.last().map(|r| r.revision);
        if let (Some(revision), Ok(mut cache)) = (last, self.staff_rights.lock()) {
            if cache.len() >= STAFF_RIGHTS_CACHED && !cache.contains_key(id) {
                cache.clear();
            }
            let newer = cache.get(id).is_none_or(|(r, _)| *r < revision);
            if newer {
                cache.insert(id.clone(), (revision, state.clone()));
            }
        }
        Ok(state)
    }

    /// The log position of the last command written through this registry.
    pub fn last_write(&self) -> Option<Position> {
        self.last_write.lock().map(|p| *p).unwrap_or(None)
    }

    fn wrote(&self, position: Position) {
        if let Ok(mut last) = self.last_write.lock()
            && *last < Some(position)
        {
            *last = Some(position);
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn vault(&self) -> &Arc<KeyVault> {
        self.journal.vault()
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn policy(&self) -> &RetentionPolicy {
        &self.policy
    }

    pub fn custody_lock(&self) -> &Arc<tokio::sync::Mutex<()>> {
        &self.custody
    }

    /// Runs vault work (synchronous, it syncs files) off the async runtime.
    pub async fn with_vault<T: Send + 'static>(
        &self,
        f: impl FnOnce(&KeyVault) -> Result<T, callvault_store::vault::VaultError> + Send + 'static,
    ) -> Result<T, AppError> {
        let vault = self.vault().clone();
        tokio::task::spawn_blocking(move || f(&vault))
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("vault task failed: {e}")))?
            .map_err(vault_error)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Every stored event of a stream, in order.
    pub async fn read_stream(&self, stream: &StreamName) -> Result<Vec<RecordedEvent>, AppError> {
        self.read_stream_from(stream, StreamFrom::Start).await
    }

    /// The events of `stream` from `from` on, every page of them.
    async fn read_stream_from(
        &self,
        stream: &StreamName,
        mut from: StreamFrom,
    ) -> Result<Vec<RecordedEvent>, AppError> {
        let mut out = Vec::new();
        loop {
            let page = self
                .store
                .read_stream(stream, from, Direction::Forwards, PAGE)
                .await?;
            let n = page.len();
            if let Some(last) = page.last() {
                from = StreamFrom::Revision(Revision(last.revision.0 + 1));
            }
            out.extend(page);
            if n < PAGE {
                return Ok(out);
            }
        }
    }

    async fn load_recorded<A: Aggregate>(
        &self,
        id: &A::Id,
    ) -> Result<(StreamName, Vec<RecordedEvent>, Vec<Event>), AppError> {
        let stream = stream_name(A::stream(id))?;
        let recorded = self.read_stream(&stream).await?;
        let events = recorded
            .iter()
            .map(|r| self.journal.decode(r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((stream, recorded, events))
    }

    /// The current state of one aggregate.
    pub async fn load<A: Aggregate>(&self, id: &A::Id) -> Result<Loaded<A::State>, AppError> {
        let (_, recorded, events) = self.load_recorded::<A>(id).await?;
        Ok(Loaded {
            state: events.iter().fold(A::State::default(), A::evolve),
            revision: recorded.last().map(|r| r.revision),
        })
    }

    /// The state of one aggregate as the register knew it at `at`: the
    /// events the store had accepted by then, folded.
    pub async fn load_as_of<A: Aggregate>(
        &self,
        id: &A::Id,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Loaded<A::State>, AppError> {
        let (_, recorded, events) = self.load_recorded::<A>(id).await?;
        let known = recorded
            .iter()
            .take_while(|r| r.metadata.recorded_at <= at)
            .count();
        Ok(Loaded {
            state: events[..known].iter().fold(A::State::default(), A::evolve),
            revision: known.checked_sub(1).map(|i| recorded[i].revision),
        })
    }

    /// Decides `command` on the aggregate's current state, appends the
    /// events, and moves the contact's keys to where its new state says
    /// they belong. `expected` lets a client insist on the revision it saw.
    #[tracing::instrument(skip_all, fields(stream = %A::stream(id), actor = %actor))]
    pub async fn execute<A: Aggregate>(
        &self,
        actor: &StaffId,
        id: &A::Id,
        command: A::Command,
        expected: Option<Revision>,
    ) -> Result<Executed, AppError>
    where
        A::Id: 'static,
    {
        let executed = self
            .execute_unlocked::<A>(actor, id, command, expected)
            .await?;
        if !executed.replayed {
            let _guard = self.custody.lock().await;
            self.reconcile::<A>(id).await?;
        }
        Ok(executed)
    }

    /// Moves the aggregate's keys to the buckets its state calls for. The
    /// caller holds the custody lock.
    pub async fn reconcile<A: Aggregate>(&self, id: &A::Id) -> Result<usize, AppError> {
        let loaded = self.load::<A>(id).await?;
        let Some(items) = A::items(id, &loaded.state) else {
            return Ok(0);
        };
        let contact = items.contact;
        let policy = self.policy;
        let ended_at = items.ended_at;
        let started_at = items.started_at;
        let controls = items.controls.clone();
        let recordings = items.recordings.clone();
        self.with_vault(move |vault| {
            let items = ContactItems {
                contact,
                started_at,
                ended_at,
                controls: &controls,
                recordings,
            };
            custody::reconcile(vault, &policy, &items)
        })
        .await
    }

    /// [`Registry::execute`] without moving keys: for callers (retention)
    /// that hold the custody lock and move keys themselves.
    pub async fn execute_unlocked<A: Aggregate>(
        &self,
        actor: &StaffId,
        id: &A::Id,
        command: A::Command,
        expected: Option<Revision>,
    ) -> Result<Executed, AppError> {
        // A client that named no revision wants the command decided on the
        // latest state: when another writer got in between our read and
        // our append, decide again on the new state (a few times).
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .try_execute::<A>(actor, id, command.clone(), expected)
                .await
            {
                Err(Attempted::Raced) if expected.is_none() && attempt < RACE_RETRIES => {
                    tokio::task::yield_now().await;
                }
                Err(Attempted::Preceded) if attempt < RACE_RETRIES => {}
                Err(Attempted::Raced | Attempted::Preceded) => {
                    return Err(AppError::Conflict(format!(
                        "`{}` kept changing while this command was decided; try again",
                        A::stream(id)
                    )));
                }
                Err(Attempted::Failed(e)) => return Err(e),
                Ok(done) => return Ok(done),
            }
        }
    }

    async fn try_execute<A: Aggregate>(
        &self,
        actor: &StaffId,
        id: &A::Id,
        command: A::Command,
        expected: Option<Revision>,
    ) -> Result<Executed, Attempted> {
        let (stream, recorded, events) = self.load_recorded::<A>(id).await?;
        let revision = recorded.last().map(|r| r.revision);
        let effect_id = A::effect_key(&command)
            .map(|key| Uuid::new_v5(&ID_NAMESPACE, format!("{stream}/{key}").as_bytes()));
        // A resend of a command that succeeded is answered as it was, even
        // when it names the revision the first send expected (the first
        // send moved the stream past it): checked before that revision.
        // A client that names a revision at or past the effect has seen it:
        // sending it again is a new command (say, a hold id used again
        // after its release), not a resend.
        let done_at = effect_id.and_then(|e| recorded.iter().position(|r| r.id == e));
        if let Some(k) = done_at
            && expected.is_none_or(|e| e < recorded[k].revision)
            && let Some(replayed) =
                self.replayed::<A>(actor, id, command.clone(), &recorded, &events, k)
        {
            // Undone since (a hold released): answering "done" would tell
            // the client its hold is in force when it is not — whether
            // this is a late resend or the id used again.
            if let Some(undone) = (k + 1..events.len())
                .find(|&j| A::undone_by(&command, &events[j]))
                .map(|j| &recorded[j])
            {
                return Err(Attempted::Failed(AppError::Conflict(format!(
                    "this was done at revision {} of `{stream}` and undone at revision {} \
                     (`{}`); an id is used once: send it again under a new id",
                    recorded[k].revision, undone.revision, undone.event_type
                ))));
            }
            return Ok(replayed);
        }
        if let Some(expected) = expected
            && Some(expected) != revision
        {
            return Err(Attempted::Failed(AppError::Conflict(format!(
                "stream `{stream}` was expected at revision {expected} but is at {}",
                revision.map_or("no stream".to_owned(), |r| format!("revision {r}"))
            ))));
        }
        let ctx = Context::new(self.clock.now(), actor.clone());
        let state = events.iter().fold(A::State::default(), A::evolve);
        if let Some(k) = done_at {
            // Not the same command: the domain's own refusal says best why
            // (e.g. "call … already ended at …").
            A::decide(&state, id, command, &ctx)?;
            return Err(Attempted::Failed(AppError::Conflict(format!(
                "this was already done differently: `{}` at revision {} of `{}` records it",
                recorded[k].event_type, recorded[k].revision, recorded[k].stream
            ))));
        }
        let new_events = A::decide(&state, id, command, &ctx)?;
        if revision.is_none() {
            // A new contact: make its key (in a provisional bucket; custody
            // moves it once the contact's state says where it belongs).
            self.create_contact_keys(&new_events).await?;
        }
        let cause = Cause::actor(actor.clone());
        let to_store = new_events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let event_id = match (i, effect_id) {
                    (0, Some(effect_id)) => effect_id,
                    _ => Uuid::now_v7(),
                };
                self.encode(e, event_id, &cause)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let expected = match revision {
            Some(r) => ExpectedRevision::Exact(r),
            None => ExpectedRevision::NoStream,
        };
        let first = revision.map_or(Revision(0), |r| Revision(r.0 + 1));
        let result = match self.store.append(&stream, expected, to_store).await {
            Err(callvault_store::StoreError::Conflict { .. }) => return Err(Attempted::Raced),
            other => other.map_err(AppError::from)?,
        };
        if effect_id.is_some() && !self.stored_is(&stream, first, &new_events[0]).await? {
            return Err(Attempted::Preceded);
        }
        self.wrote(result.position);
        Ok(Executed {
            events: new_events,
            revision: result.next_expected,
            position: result.position,
            replayed: false,
        })
    }

    /// Whether the event stored at `revision` of `stream` is `event`: an
    /// append whose effect id another send stored first is answered by
    /// the store as that one's duplicate, and only its content tells.
    async fn stored_is(
        &self,
        stream: &StreamName,
        revision: Revision,
        event: &Event,
    ) -> Result<bool, AppError> {
        let stored = self
            .store
            .read_stream(
                stream,
                StreamFrom::Revision(revision),
                Direction::Forwards,
                1,
            )
            .await?;
        match stored.first() {
            Some(r) => Ok(self.journal.decode(r)? == *event),
            None => Ok(false),
        }
    }

    /// Makes the data key of every contact these events open.
    async fn create_contact_keys(&self, events: &[Event]) -> Result<(), AppError> {
        let mut wanted: Vec<(KeyOwner, callvault_store::vault::Bucket)> = Vec::new();
        for e in events {
            if let Some(contact) = e.key_owner() {
                let bucket =
                    custody::expiry_bucket(self.policy.contact_expires_at(e.occurred_at()));
                let owner = KeyOwner::Contact(contact);
                if !wanted.iter().any(|(o, _)| *o == owner) {
                    wanted.push((owner, bucket));
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        self.with_vault(move |vault| {
            for (owner, bucket) in wanted {
                vault.create_key(owner, bucket)?;
            }
            Ok(())
        })
        .await
    }

    /// Encodes an event for the log, sealing its personal data.
    pub fn encode(
        &self,
        event: &Event,
        id: Uuid,
        cause: &Cause,
    ) -> Result<callvault_store::NewEvent, AppError> {
        self.journal.encode(event, id, cause).map_err(|e| match e {
            EncodeError::NoKey { owner } => AppError::Gone(format!(
                "the personal data of {owner} was purged; nothing more can be recorded about it"
            )),
            other => AppError::Internal(other.into()),
        })
    }

    /// A command whose effect is already stored at index `k` is a retry if,
    /// decided again on the state before that event and at the time it was
    /// decided then, it gives the stored event.
    fn replayed<A: Aggregate>(
        &self,
        actor: &StaffId,
        id: &A::Id,
        command: A::Command,
        recorded: &[RecordedEvent],
        events: &[Event],
        k: usize,
    ) -> Option<Executed> {
        let before = events[..k].iter().fold(A::State::default(), A::evolve);
        let ctx = Context::new(events[k].occurred_at(), actor.clone());
        let again = A::decide(&before, id, command, &ctx).ok()?;
        if again.first() != Some(&events[k]) {
            return None;
        }
        let last = &recorded[(k + again.len() - 1).min(recorded.len() - 1)];
        Some(Executed {
            events: again,
            revision: last.revision,
            position: last.position,
            replayed: true,
        })
    }
}

pub fn stream_name(name: String) -> Result<StreamName, AppError> {
    StreamName::new(name).map_err(AppError::from)
}

/// A full disk under the key vault is the same clear, retryable refusal as
/// a full disk under the log (the write was not stored), not an internal
/// error.
fn vault_error(e: callvault_store::vault::VaultError) -> AppError {
    match &e {
        callvault_store::vault::VaultError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::StorageFull =>
        {
            tracing::error!(error = %e, "the key vault's disk is full");
            AppError::Unavailable(
                "the write was not stored: no space left on the key vault's disk".into(),
            )
        }
        _ => AppError::Internal(e.into()),
    }
}
