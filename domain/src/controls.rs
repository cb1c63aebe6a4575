//! What keeps a contact (call or chat) from its normal use or its purge:
//! complaint holds (R15), restriction of processing (R19), and the purge of
//! its personal data. Shared by the Call and Chat aggregates.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use crate::{
    call::event::{
        ContactHistoryPurged, HoldPlaced, HoldReleased, ProcessingRestricted, PurgeReason,
        RestrictionLifted,
    },
    contact::ContactRef,
    context::Context,
    error::{DomainError, MAX_CASE_REFERENCE, MAX_REASON, required_text},
    event::Event,
    ids::HoldId,
    personal::Personal,
};

/// Place a complaint hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceHold {
    pub hold_id: HoldId,
    pub case_reference: String,
    pub reason: String,
    pub review_by: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseHold {
    pub hold_id: HoldId,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestrictProcessing {
    pub case_reference: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiftRestriction {
    /// When the data subject was told the restriction will be lifted.
    pub subject_informed_at: DateTime<Utc>,
    pub reason: String,
}

/// Destroy the contact's personal data (its key) at the end of retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeContactHistory {
    pub policy_version: u32,
    pub key_bucket: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldFacts {
    pub case_reference: String,
    pub reason: Personal<String>,
    pub review_by: NaiveDate,
    pub placed_at: DateTime<Utc>,
    pub released_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestrictionFacts {
    pub case_reference: String,
    pub reason: Personal<String>,
    pub restricted_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeFacts {
    pub purged_at: DateTime<Utc>,
    pub policy_version: u32,
    pub key_bucket: String,
}

/// Holds, restriction and purge of one contact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Controls {
    pub holds: BTreeMap<HoldId, HoldFacts>,
    pub restriction: Option<RestrictionFacts>,
    pub history_purged: Option<PurgeFacts>,
}

impl Controls {
    pub fn active_holds(&self) -> impl Iterator<Item = (&HoldId, &HoldFacts)> {
        self.holds.iter().filter(|(_, h)| h.released_at.is_none())
    }

    pub fn is_held(&self) -> bool {
        self.active_holds().next().is_some()
    }

    pub fn is_restricted(&self) -> bool {
        self.restriction.is_some()
    }

    /// Refuses a purge while a hold or a restriction keeps the contact.
    pub fn ensure_purgeable(&self, contact: ContactRef) -> Result<(), DomainError> {
        let holds = self.active_holds().count();
        if holds > 0 {
            return Err(DomainError::OnHold { contact, holds });
        }
        if self.is_restricted() {
            return Err(DomainError::Restricted {
                contact,
                action: "purged",
            });
        }
        Ok(())
    }

    /// Refuses a change once the contact's personal data is gone.
    pub fn ensure_not_purged(&self, contact: ContactRef) -> Result<(), DomainError> {
        match &self.history_purged {
            Some(p) => Err(DomainError::ContactHistoryPurged {
                contact,
                purged_at: p.purged_at,
            }),
            None => Ok(()),
        }
    }

    pub fn place_hold(
        &self,
        contact: ContactRef,
        cmd: PlaceHold,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        self.ensure_not_purged(contact)?;
        if self.holds.contains_key(&cmd.hold_id) {
            return Err(DomainError::HoldAlreadyPlaced {
                hold_id: cmd.hold_id,
            });
        }
        let case_reference =
            required_text("caseReference", &cmd.case_reference, MAX_CASE_REFERENCE)?;
        let reason = required_text("reason", &cmd.reason, MAX_REASON)?;
        if cmd.review_by < ctx.now.date_naive() {
            return Err(DomainError::InvalidField {
                field: "reviewBy",
                reason: format!("{} is in the past", cmd.review_by),
            });
        }
        Ok(vec![
            HoldPlaced {
                contact,
                hold_id: cmd.hold_id,
                case_reference,
                reason: Personal::new(reason),
                review_by: cmd.review_by,
                placed_at: ctx.now,
            }
            .into(),
        ])
    }

    pub fn release_hold(
        &self,
        contact: ContactRef,
        cmd: ReleaseHold,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        let hold = self
            .holds
            .get(&cmd.hold_id)
            .ok_or(DomainError::UnknownHold {
                contact,
                hold_id: cmd.hold_id,
            })?;
        if let Some(released_at) = hold.released_at {
            return Err(DomainError::HoldAlreadyReleased {
                hold_id: cmd.hold_id,
                released_at,
            });
        }
        let reason = required_text("reason", &cmd.reason, MAX_REASON)?;
        Ok(vec![
            HoldReleased {
                contact,
                hold_id: cmd.hold_id,
                reason: Personal::new(reason),
                released_at: ctx.now,
            }
            .into(),
        ])
    }

    pub fn restrict(
        &self,
        contact: ContactRef,
        cmd: RestrictProcessing,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        self.ensure_not_purged(contact)?;
        if self.is_restricted() {
            return Err(DomainError::AlreadyRestricted { contact });
        }
        let case_reference =
            required_text("caseReference", &cmd.case_reference, MAX_CASE_REFERENCE)?;
        let reason = required_text("reason", &cmd.reason, MAX_REASON)?;
        Ok(vec![
            ProcessingRestricted {
                contact,
                case_reference,
                reason: Personal::new(reason),
                restricted_at: ctx.now,
            }
            .into(),
        ])
    }

    pub fn lift_restriction(
        &self,
        contact: ContactRef,
        cmd: LiftRestriction,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        if !self.is_restricted() {
            return Err(DomainError::NotRestricted { contact });
        }
        if cmd.subject_informed_at > ctx.now {
            return Err(DomainError::SubjectInformedInFuture {
                informed_at: cmd.subject_informed_at,
            });
        }
        // The subject is told about lifting *this* restriction (GDPR art.
        // 18(3)): a notice from before it was placed — a late retry of
        // lifting an earlier one, say — does not count.
        if let Some(r) = &self.restriction
            && cmd.subject_informed_at < r.restricted_at
        {
            return Err(DomainError::InvalidField {
                field: "subjectInformedAt",
                reason: format!(
                    "it is before this restriction was placed ({}): inform the data subject of lifting this one",
                    r.restricted_at
                ),
            });
        }
        let reason = required_text("reason", &cmd.reason, MAX_REASON)?;
        Ok(vec![
            RestrictionLifted {
                contact,
                subject_informed_at: cmd.subject_informed_at,
                reason: Personal::new(reason),
                lifted_at: ctx.now,
            }
            .into(),
        ])
    }

    pub fn purge_history(
        &self,
        contact: ContactRef,
        cmd: PurgeContactHistory,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        self.ensure_not_purged(contact)?;
        self.ensure_purgeable(contact)?;
        Ok(vec![
            ContactHistoryPurged {
                contact,
                reason: PurgeReason::RetentionExpired,
                policy_version: cmd.policy_version,
                key_bucket: cmd.key_bucket,
                purged_at: ctx.now,
            }
            .into(),
        ])
    }

    /// Folds the control events; ignores every other event.
    pub fn evolve(&mut self, event: &Event) {
        match event {
            Event::HoldPlaced(e) => {
                self.holds.insert(
                    e.hold_id,
                    HoldFacts {
                        case_reference: e.case_reference.clone(),
                        reason: e.reason.clone(),
                        review_by: e.review_by,
                        placed_at: e.placed_at,
                        released_at: None,
                    },
                );
            }
            Event::HoldReleased(e) => {
                if let Some(h) = self.holds.get_mut(&e.hold_id) {
                    h.released_at = Some(e.released_at);
                }
            }
            Event::ProcessingRestricted(e) => {
                self.restriction = Some(RestrictionFacts {
                    case_reference: e.case_reference.clone(),
                    reason: e.reason.clone(),
                    restricted_at: e.restricted_at,
                });
            }
            Event::RestrictionLifted(_) => self.restriction = None,
            Event::ContactHistoryPurged(e) => {
                self.history_purged = Some(PurgeFacts {
                    purged_at: e.purged_at,
                    policy_version: e.policy_version,
                    key_bucket: e.key_bucket.clone(),
                });
            }
            _ => {}
        }
    }
}
