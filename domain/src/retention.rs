//! Retention as data (R14, R30): a versioned policy, and the pure rules that
//! say when a recording or a contact's personal data is due for
//! destruction and what keeps it.

use chrono::{DateTime, Days, Months, Utc};
use serde::{Deserialize, Serialize};

use crate::controls::Controls;

/// How long things are kept. Tombstones record the version that destroyed
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    pub version: u32,
    /// Recordings are kept this many months after the call ends (§10).
    pub recording_months: u32,
    /// A contact's personal data (caller number, names, reasons, chat
    /// transcript) is kept this many months after the contact ends.
    pub contact_history_months: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            version: 1,
            recording_months: 12,
            contact_history_months: 12,
        }
    }
}

/// What happens to an item under the policy at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Past its retention and nothing keeps it.
    Due { expired_at: DateTime<Utc> },
    /// Not yet past its retention.
    NotYetDue { expires_at: DateTime<Utc> },
    /// Past (or before) its retention but kept by complaint holds.
    Held {
        holds: usize,
        expires_at: Option<DateTime<Utc>>,
    },
    /// Kept because processing is restricted.
    Restricted { expires_at: Option<DateTime<Utc>> },
    /// The contact has not ended; its retention has not started.
    Open,
    /// Already destroyed.
    Purged,
}

/// The longest a contact counts as open for retention: one whose end
/// never came (the telephony or chat system lost it) is retained as if it
/// had ended this many days after it started, so it is not kept forever.
/// An end recorded later counts instead.
pub const OPEN_AT_MOST_DAYS: u64 = 7;

impl RetentionPolicy {
    /// When a contact's retention starts: at its end, or while no end is
    /// recorded, [`OPEN_AT_MOST_DAYS`] after its start.
    pub fn retention_starts(
        started_at: DateTime<Utc>,
        ended_at: Option<DateTime<Utc>>,
    ) -> DateTime<Utc> {
        ended_at.unwrap_or_else(|| {
            started_at
                .checked_add_days(Days::new(OPEN_AT_MOST_DAYS))
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        })
    }

    /// Whether a contact with no end counts as ended at `now`: once it
    /// has been open [`OPEN_AT_MOST_DAYS`], its end is taken as lost, and
    /// retention may purge it when it is due. The purge commands check
    /// only this; whether an item is due is [`RetentionPolicy::disposition`],
    /// which the retention run consults before it sends them (nothing
    /// else does).
    pub fn open_too_long(started_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        now >= Self::retention_starts(started_at, None)
    }

    fn after(months: u32, ended_at: DateTime<Utc>) -> DateTime<Utc> {
        ended_at
            .checked_add_months(Months::new(months))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    pub fn recording_expires_at(&self, ended_at: DateTime<Utc>) -> DateTime<Utc> {
        Self::after(self.recording_months, ended_at)
    }

    pub fn contact_expires_at(&self, ended_at: DateTime<Utc>) -> DateTime<Utc> {
        Self::after(self.contact_history_months, ended_at)
    }

    /// What happens, at `now`, to an item that expires at `expires_at`
    /// (`None` while the contact is open) under `controls`.
    pub fn disposition(
        &self,
        expires_at: Option<DateTime<Utc>>,
        controls: &Controls,
        purged: bool,
        now: DateTime<Utc>,
    ) -> Disposition {
        if purged {
            return Disposition::Purged;
        }
        let holds = controls.active_holds().count();
        if holds > 0 {
            return Disposition::Held { holds, expires_at };
        }
        if controls.is_restricted() {
            return Disposition::Restricted { expires_at };
        }
        match expires_at {
            None => Disposition::Open,
            Some(t) if t <= now => Disposition::Due { expired_at: t },
            Some(t) => Disposition::NotYetDue { expires_at: t },
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;
    use crate::{controls::HoldFacts, controls::RestrictionFacts, ids::HoldId, personal::Personal};

    fn t(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_recording_expires_twelve_months_after_the_call_ends() {
        let p = RetentionPolicy::default();
        assert_eq!(p.recording_expires_at(t(2026, 3, 3)), t(2027, 3, 3));
        let c = Controls::default();
        let exp = Some(p.recording_expires_at(t(2026, 3, 3)));
        assert!(matches!(
            p.disposition(exp, &c, false, t(2027, 3, 2)),
            Disposition::NotYetDue { .. }
        ));
        assert!(matches!(
            p.disposition(exp, &c, false, t(2027, 3, 3)),
            Disposition::Due { .. }
        ));
    }

    #[test]
    fn holds_and_restrictions_keep_what_is_due() {
        let p = RetentionPolicy::default();
        let exp = Some(t(2020, 1, 1));
        let mut c = Controls::default();
        c.holds.insert(
            HoldId::from_source("t", "1"),
            HoldFacts {
                case_reference: "x".into(),
                reason: Personal::new("r".into()),
                review_by: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
                placed_at: t(2019, 1, 1),
                released_at: None,
            },
        );
        assert!(matches!(
            p.disposition(exp, &c, false, t(2026, 1, 1)),
            Disposition::Held { holds: 1, .. }
        ));
        c.holds.clear();
        c.restriction = Some(RestrictionFacts {
            case_reference: "x".into(),
            reason: Personal::new("r".into()),
            restricted_at: t(2019, 1, 1),
        });
        assert!(matches!(
            p.disposition(exp, &c, false, t(2026, 1, 1)),
            Disposition::Restricted { .. }
        ));
    }

    #[test]
    fn an_open_contact_is_never_due_and_a_purged_one_stays_purged() {
        let p = RetentionPolicy::default();
        let c = Controls::default();
        assert_eq!(
            p.disposition(None, &c, false, t(2030, 1, 1)),
            Disposition::Open
        );
        assert_eq!(
            p.disposition(Some(t(2020, 1, 1)), &c, true, t(2030, 1, 1)),
            Disposition::Purged
        );
    }
}
