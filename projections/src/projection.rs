//! What a read model is: a name, a schema version, and a pure fold of
//! events into its keys ([`Projection::apply`]). Only the runner is async;
//! a projection never does I/O beyond its transaction.

use callvault_domain::Event;
use callvault_store::Position;
use chrono::{DateTime, Utc};

use crate::view::Tx;

/// One decoded event with where and when it was stored.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub position: Position,
    pub stream: String,
    /// The event's revision in its stream.
    pub revision: u64,
    pub recorded_at: DateTime<Utc>,
    pub actor: String,
    pub event: Event,
}

impl Envelope {
    /// Decodes a stored event (upcast, unsealed) with where and when it
    /// was stored.
    pub fn decode(
        journal: &crate::journal::Journal,
        recorded: &callvault_store::RecordedEvent,
    ) -> Result<Self, crate::journal::DecodeError> {
        Ok(Self {
            position: recorded.position,
            stream: recorded.stream.to_string(),
            revision: recorded.revision.0,
            recorded_at: recorded.metadata.recorded_at,
            actor: recorded.metadata.actor.clone(),
            event: journal.decode(recorded)?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("read model storage: {0}")]
    Storage(String),
    #[error("no read model is called `{0}`")]
    Unknown(String),
    #[error("the read model `{name}` did not reach log position {wanted} within {waited_ms} ms")]
    NotCaughtUp {
        name: String,
        wanted: Position,
        waited_ms: u128,
    },
    #[error(transparent)]
    Store(#[from] callvault_store::StoreError),
    #[error(transparent)]
    Decode(#[from] crate::journal::DecodeError),
    #[error("a read model task failed: {0}")]
    Task(String),
    /// A query argument that cannot be used (a cursor from nowhere, an
    /// empty range): `field` names the argument.
    #[error("{field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },
}

impl ProjectionError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }
}

/// Where a newest-first scan of an index starts: at the page's cursor
/// entry (which the scan skips), or just below `to` — the upper bound is
/// exclusive — whichever is lower, so a cursor never lifts the bound.
pub(crate) fn scan_start(
    base: &[u8],
    cursor_entry: Option<Vec<u8>>,
    to: Option<DateTime<Utc>>,
) -> Option<Vec<u8>> {
    let below_to = to.map(|t| [base, &time_key(t)[..]].concat());
    match (cursor_entry, below_to) {
        (Some(c), Some(t)) => Some(c.min(t)),
        (c, t) => c.or(t),
    }
}

/// Refuses a time range whose start is after its end.
pub(crate) fn check_range(
    field: &'static str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<(), ProjectionError> {
    match (from, to) {
        (Some(f), Some(t)) if f > t => Err(ProjectionError::invalid(
            field,
            format!("the range starts ({f}) after it ends ({t})"),
        )),
        _ => Ok(()),
    }
}

/// A read model's fold.
pub trait Projection: Send + Sync + 'static {
    /// The stable name (`calls`, `access_audit`, …).
    fn name(&self) -> &'static str;
    /// Bump with a one-line reason whenever what `apply` writes changes; a
    /// newer version than the stored build's is rebuilt at start.
    fn version(&self) -> u32;
    /// Anything besides the version the output depends on.
    fn config(&self) -> String {
        String::new()
    }
    /// sled's page cache for a build of this model, in bytes.
    fn cache_bytes(&self) -> u64 {
        crate::view::DEFAULT_CACHE_BYTES
    }
    /// Folds one event in. Must be deterministic: the same events give the
    /// same keys and values, whether applied live or in a rebuild.
    fn apply(&self, tx: &mut Tx<'_>, envelope: &Envelope) -> Result<(), ProjectionError>;
}

/// Big-endian bytes of a time, sorting like the time (microseconds, with
/// the sign bit flipped so earlier instants sort first).
pub fn time_key(t: DateTime<Utc>) -> [u8; 8] {
    ((t.timestamp_micros() as u64) ^ (1 << 63)).to_be_bytes()
}

/// Builds a key from parts separated by 0x00 (parts never contain it:
/// ids, E.164 numbers and staff ids are ASCII without NUL).
pub fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(p);
    }
    out
}
