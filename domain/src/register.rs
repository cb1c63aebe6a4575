//! Register-wide events: a signed checkpoint of the log (tamper evidence
//! an outside party can check with only the public key).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The register signed the log as it stood: `events` events up to
/// `position`, whose running digest (see `store::verify`) is `digest`.
/// Holds no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCheckpointSigned {
    /// Global position of the last event covered.
    pub position: u64,
    pub events: u64,
    /// The running digest after that event, hex.
    pub digest: String,
    /// Ed25519 public key, hex.
    pub public_key: String,
    /// Ed25519 signature over [`LogCheckpointSigned::message`], hex.
    pub signature: String,
    pub signed_at: DateTime<Utc>,
}

impl LogCheckpointSigned {
    /// The exact bytes signed.
    pub fn message(position: u64, events: u64, digest: &str) -> Vec<u8> {
        format!("callvault/checkpoint/v1\n{position}\n{events}\n{digest}\n").into_bytes()
    }
}
