//! The one path between domain events and the event log.
//!
//! Writing ([`Journal::encode`]): a domain event becomes a [`NewEvent`] with
//! its stored type name, schema version and JSON payload, every
//! personal-data field sealed under its contact's data key from the vault.
//! Reading ([`Journal::decode`]): the payload is parsed, upcast to the
//! current schema (`callvault-migrations`; upcasters see sealed fields as
//! opaque), unsealed — a field whose key was destroyed reads as
//! `Personal::Shredded`, never as an error — and decoded. Every reader —
//! command handlers, projections, replay, verify — goes through here, so
//! they all see the same history.

use std::sync::Arc;

use callvault_domain::{Event, StaffId};
use callvault_migrations::encode;
use callvault_store::{
    NewEvent, Position, RecordedEvent, Revision, StreamName,
    seal::{self, SealError},
    vault::{KeyLookup, KeyOwner, KeyVault, VaultError},
};
use uuid::Uuid;

/// A stored event that can't be read as a domain event: where it is and
/// why. Never includes payload contents.
#[derive(Debug, thiserror::Error)]
#[error(
    "event at position {position} (stream `{stream}`, revision {revision}, type `{event_type}` v{version}) can't be read: {reason}"
)]
pub struct DecodeError {
    pub stream: StreamName,
    pub revision: Revision,
    pub position: Position,
    pub event_type: String,
    pub version: u32,
    pub reason: String,
}

/// An event that can't be written.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{owner}'s personal data can't be stored: it has no live key (its data was purged)")]
    NoKey { owner: KeyOwner },
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// Who caused an event and in answer to what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub actor: StaffId,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
}

impl Cause {
    pub fn actor(actor: StaffId) -> Self {
        Self {
            actor,
            correlation_id: None,
            causation_id: None,
        }
    }
}

/// Encodes and decodes events, sealing personal data with the vault's keys.
#[derive(Clone)]
pub struct Journal {
    vault: Arc<KeyVault>,
}

impl Journal {
    pub fn new(vault: Arc<KeyVault>) -> Self {
        Self { vault }
    }

    pub fn vault(&self) -> &Arc<KeyVault> {
        &self.vault
    }

    /// The stored form of `event` under the given id, personal data sealed.
    pub fn encode(&self, event: &Event, id: Uuid, cause: &Cause) -> Result<NewEvent, EncodeError> {
        let mut encoded = encode(event);
        if let Some(contact) = event.key_owner() {
            let owner = KeyOwner::Contact(contact);
            if seal::has_clear(&encoded.payload) {
                let key = match self.vault.key(owner)? {
                    KeyLookup::Live(k) => k,
                    KeyLookup::Gone => return Err(EncodeError::NoKey { owner }),
                };
                seal::seal(&mut encoded.payload, &key, owner)?;
            }
        }
        Ok(NewEvent {
            id,
            event_type: encoded.event_type.to_owned(),
            schema_version: encoded.schema_version,
            // A serde_json::Value always serialises.
            payload: serde_json::to_vec(&encoded.payload).unwrap_or_default(),
            actor: cause.actor.to_string(),
            correlation_id: cause.correlation_id,
            causation_id: cause.causation_id,
        })
    }

    /// The domain event a stored event says, upcast to the current schema,
    /// with shredded personal data marked as such.
    pub fn decode(&self, recorded: &RecordedEvent) -> Result<Event, DecodeError> {
        self.decode_with(recorded, true)
    }

    /// As [`Journal::decode`], but every personal field stays sealed, so
    /// it reads as shredded: what a reader may see of an event whose
    /// contact's processing is restricted.
    pub fn decode_sealed(&self, recorded: &RecordedEvent) -> Result<Event, DecodeError> {
        self.decode_with(recorded, false)
    }

    fn decode_with(&self, recorded: &RecordedEvent, unseal: bool) -> Result<Event, DecodeError> {
        let fail = |reason: String| DecodeError {
            stream: recorded.stream.clone(),
            revision: recorded.revision,
            position: recorded.position,
            event_type: recorded.event_type.clone(),
            version: recorded.schema_version,
            reason,
        };
        let value: serde_json::Value = serde_json::from_slice(&recorded.payload).map_err(|e| {
            fail(format!(
                "payload is not JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let mut value =
            callvault_migrations::upcast(&recorded.event_type, recorded.schema_version, value)
                .map_err(|e| fail(e.to_string()))?;
        seal::unseal_with(&mut value, |owner| {
            if !unseal {
                return Ok(None);
            }
            match self.vault.key(owner)? {
                KeyLookup::Live(k) => Ok(Some(k)),
                KeyLookup::Gone => Ok(None),
            }
        })
        .map_err(|e| fail(e.to_string()))?;
        callvault_migrations::codec::from_current(&recorded.event_type, value)
            .map_err(|e| fail(e.to_string()))
    }
}
