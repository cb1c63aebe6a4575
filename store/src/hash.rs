//! The per-stream hash chain that makes the log tamper-evident.
//!
//! Each event's hash is SHA-256 over a domain-separation tag, the previous
//! event's hash in the same stream, and a length-prefixed encoding of every
//! stored field (stream, revision, id, type, schema version, the stored —
//! sealed — payload, actor, correlation and causation ids, recorded-at).
//! Because the chain covers the sealed bytes, shredding a key never breaks
//! verification. The global position is not covered: EventStoreDB assigns it
//! only at commit, after the hash must be known.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::contract::{NewEvent, Revision, StreamName};

const DOMAIN_TAG: &[u8] = b"callvault/event-chain/v1";

/// A SHA-256 link of a stream's hash chain.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The `prev_hash` of a stream's first event.
    pub const GENESIS: Self = Self([0u8; 32]);

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl From<ChainHash> for String {
    fn from(value: ChainHash) -> Self {
        value.to_hex()
    }
}

impl TryFrom<String> for ChainHash {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let bytes = hex::decode(&value).map_err(|e| format!("chain hash is not hex: {e}"))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "chain hash is not 32 bytes".to_owned())?;
        Ok(Self(arr))
    }
}

/// The fields a chain link covers.
pub struct ChainInput<'a> {
    pub prev_hash: &'a ChainHash,
    pub stream: &'a StreamName,
    pub revision: Revision,
    pub id: Uuid,
    pub event_type: &'a str,
    pub schema_version: u32,
    pub payload: &'a [u8],
    pub actor: &'a str,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
}

impl<'a> ChainInput<'a> {
    /// The chain input of a new event about to be stored.
    pub fn for_new(
        prev_hash: &'a ChainHash,
        stream: &'a StreamName,
        revision: Revision,
        event: &'a NewEvent,
        recorded_at: DateTime<Utc>,
    ) -> Self {
        Self {
            prev_hash,
            stream,
            revision,
            id: event.id,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            payload: &event.payload,
            actor: &event.actor,
            correlation_id: event.correlation_id,
            causation_id: event.causation_id,
            recorded_at,
        }
    }

    /// The chain input of a stored event, to re-check its hash.
    pub fn for_recorded(event: &'a crate::contract::RecordedEvent) -> Self {
        Self {
            prev_hash: &event.metadata.prev_hash,
            stream: &event.stream,
            revision: event.revision,
            id: event.id,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            payload: &event.payload,
            actor: &event.metadata.actor,
            correlation_id: event.metadata.correlation_id,
            causation_id: event.metadata.causation_id,
            recorded_at: event.metadata.recorded_at,
        }
    }

    pub fn hash(&self) -> ChainHash {
        let mut h = Sha256::new();
        h.update(DOMAIN_TAG);
        h.update(self.prev_hash.0);
        put_bytes(&mut h, self.stream.as_str().as_bytes());
        h.update(self.revision.0.to_be_bytes());
        h.update(self.id.as_bytes());
        put_bytes(&mut h, self.event_type.as_bytes());
        h.update(self.schema_version.to_be_bytes());
        put_bytes(&mut h, self.payload);
        put_bytes(&mut h, self.actor.as_bytes());
        put_uuid(&mut h, self.correlation_id);
        put_uuid(&mut h, self.causation_id);
        h.update(self.recorded_at.timestamp_micros().to_be_bytes());
        ChainHash(h.finalize().into())
    }
}

fn put_bytes(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

fn put_uuid(h: &mut Sha256, id: Option<Uuid>) {
    match id {
        Some(id) => {
            h.update([1u8]);
            h.update(id.as_bytes());
        }
        None => h.update([0u8]),
    }
}

/// Truncates a time to the microsecond precision the chain and the stores
/// keep, so a value round-trips exactly.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}
