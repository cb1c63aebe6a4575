//! Key custody: keeps every data key in the bucket its item's state calls
//! for. After each command on a call or chat (and for every contact at
//! start-up) the desired bucket of the contact's key and of each
//! recording's key is derived from the folded state and the retention
//! policy, and keys that sit elsewhere are moved:
//!
//! - held or restricted → the hold bucket (never destroyed as a bucket);
//! - ended → the expiry bucket: the day after the item expires;
//! - still open → a provisional bucket from the start time (an item can't
//!   expire before its contact started), corrected when the contact ends.
//!
//! Moving a key out of the hold bucket is followed by a rotation of the
//! hold bucket, so no stale wrapped copy stays readable under a live KEK.

use callvault_domain::{
    ContactRef, RecordingId, RetentionPolicy, call::CallState, chat::ChatState, controls::Controls,
};
use callvault_store::vault::{Bucket, KeyOwner, KeyVault, VaultError};
use chrono::{DateTime, Days, Utc};

/// The bucket holding items that expire at `expires_at`: the first day on
/// which all of them are past it.
pub fn expiry_bucket(expires_at: DateTime<Utc>) -> Bucket {
    let day = expires_at.date_naive();
    Bucket::Expiry(day.checked_add_days(Days::new(1)).unwrap_or(day))
}

/// One contact's items as custody sees them.
pub struct ContactItems<'a> {
    pub contact: ContactRef,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub controls: &'a Controls,
    /// Recordings not yet purged.
    pub recordings: Vec<RecordingId>,
}

impl<'a> ContactItems<'a> {
    pub fn of_call(id: callvault_domain::CallId, state: &'a CallState) -> Option<Self> {
        let call = state.call.as_ref()?;
        Some(Self {
            contact: ContactRef::Call(id),
            started_at: call.started_at,
            ended_at: call.ended_at,
            controls: &state.controls,
            recordings: state
                .recordings
                .iter()
                .filter(|(_, r)| r.purged.is_none())
                .map(|(id, _)| *id)
                .collect(),
        })
    }

    pub fn of_chat(id: callvault_domain::ChatId, state: &'a ChatState) -> Option<Self> {
        let chat = state.chat.as_ref()?;
        Some(Self {
            contact: ContactRef::Chat(id),
            started_at: chat.started_at,
            ended_at: chat.ended_at,
            controls: &state.controls,
            recordings: Vec::new(),
        })
    }

    /// Where each live key of this contact belongs.
    pub fn desired(&self, policy: &RetentionPolicy) -> Vec<(KeyOwner, Bucket)> {
        let held = self.controls.is_held() || self.controls.is_restricted();
        let pick = |expires: fn(&RetentionPolicy, DateTime<Utc>) -> DateTime<Utc>| {
            if held {
                Bucket::Hold
            } else {
                expiry_bucket(expires(policy, self.ended_at.unwrap_or(self.started_at)))
            }
        };
        let mut out = Vec::new();
        if self.controls.history_purged.is_none() {
            out.push((
                KeyOwner::Contact(self.contact),
                pick(RetentionPolicy::contact_expires_at),
            ));
        }
        for r in &self.recordings {
            out.push((
                KeyOwner::Recording(*r),
                pick(RetentionPolicy::recording_expires_at),
            ));
        }
        out
    }
}

/// Moves every key of `items` to where it belongs; returns how many moved.
pub fn reconcile(
    vault: &KeyVault,
    policy: &RetentionPolicy,
    items: &ContactItems<'_>,
) -> Result<usize, VaultError> {
    let mut moved = 0;
    let mut left_hold = false;
    let open = items.ended_at.is_none();
    for (owner, want) in items.desired(policy) {
        match vault.bucket_of(owner)? {
            // A contact that has not ended whose key retention put off to
            // a later day stays there (moving it back would bring it into
            // a day already destroyed, over and over).
            Some(Bucket::Expiry(have)) if open && matches!(want, Bucket::Expiry(w) if have > w) => {
            }
            Some(have) if have != want => {
                vault.move_to(owner, want)?;
                left_hold |= have == Bucket::Hold;
                moved += 1;
            }
            _ => {}
        }
    }
    if left_hold {
        vault.rotate(Bucket::Hold)?;
    }
    Ok(moved)
}
