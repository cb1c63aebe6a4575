//! What the register knows about one call, folded from its events.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::{
    call::event::Direction,
    controls::{Controls, PurgeFacts},
    ids::{CallId, RecordingId, StaffId},
    personal::Personal,
    phone::PhoneNumber,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFacts {
    pub call_id: CallId,
    pub direction: Direction,
    /// `None`: withheld by the caller.
    pub caller: Option<Personal<PhoneNumber>>,
    pub service_number: PhoneNumber,
    pub agent: StaffId,
    pub agent_name: Personal<String>,
    pub agent_number: Option<Personal<PhoneNumber>>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// How many corrections were recorded (R18).
    pub rectifications: u32,
}

impl CallFacts {
    /// The caller's number while it is known: not withheld, not shredded.
    pub fn caller_in_clear(&self) -> Option<&PhoneNumber> {
        self.caller.as_ref().and_then(Personal::clear)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingFacts {
    pub codec: String,
    pub duration_ms: Option<u64>,
    pub size_bytes: u64,
    pub ciphertext_sha256: String,
    pub stored_at: DateTime<Utc>,
    pub purged: Option<PurgeFacts>,
}

/// The state of one call. `Default` is "no such call yet".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallState {
    pub call: Option<CallFacts>,
    pub recordings: BTreeMap<RecordingId, RecordingFacts>,
    pub controls: Controls,
}

impl CallState {
    pub fn exists(&self) -> bool {
        self.call.is_some()
    }

    pub fn is_ended(&self) -> bool {
        self.call.as_ref().is_some_and(|c| c.ended_at.is_some())
    }

    /// Checks the invariants every folded state must keep; used by tests
    /// and by `verify`. Returns the first broken one.
    pub fn check_invariants(&self) -> Result<(), String> {
        let Some(call) = &self.call else {
            if !self.recordings.is_empty() || self.controls != Controls::default() {
                return Err("a call that never started has recordings or controls".into());
            }
            return Ok(());
        };
        if let Some(ended_at) = call.ended_at
            && ended_at < call.started_at
        {
            return Err(format!(
                "call {} ends at {ended_at}, before it starts at {}",
                call.call_id, call.started_at
            ));
        }
        for (id, rec) in &self.recordings {
            if let Some(p) = &rec.purged
                && p.purged_at < rec.stored_at
            {
                return Err(format!("recording {id} purged before it was stored"));
            }
        }
        Ok(())
    }
}
