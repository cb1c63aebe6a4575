//! Who may do what (R4, R8–R12, R19): the one place where roles map to
//! rights. A pure function of the actor's roles, the action, the purpose
//! and how the call relates to the actor; the edge (GraphQL, REST) asks it
//! before every read or write and logs what it answers.
//!
//! The README's "Who may see what" table is this module's [`rule`] written
//! out; the policy table test in `tests` pins every cell.

use std::{collections::BTreeSet, fmt};

use crate::{
    ids::StaffId,
    role::{Purpose, Role},
    staff::StaffState,
};

/// Something an actor may try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Search contact history (metadata: numbers, agents, times).
    SearchCalls,
    /// Open one call's metadata.
    ViewCall,
    /// Stream a recording to listen to it.
    Listen,
    /// Take a recording away as a file.
    Download,
    /// Play a recording to its data subject in an audited session (R17, R29).
    SubjectSession,
    /// Look up every call of a data subject's numbers (R17).
    LookUpSubject,
    /// Write call events and upload audio (the telephony side).
    RecordCalls,
    /// Place or release a complaint hold (R15).
    ManageHolds,
    /// Restrict processing or lift a restriction (R19).
    ManageRestriction,
    /// Record a rectification (R18).
    Rectify,
    /// Read the log of use (R12, R28).
    ViewAccessAudit,
    /// Read who holds which roles, now or in the past (R11).
    ViewStaffRights,
    /// Read what retention will destroy and what keeps it (R13–R15).
    ViewRetention,
    /// Read aggregate statistics (R5).
    ViewStats,
    /// Grant, revoke and review roles (R11).
    ManageRights,
    /// Rebuild read models, read their status.
    OperateProjections,
    /// Read the event history itself (R6): every event, decoded.
    ReadHistory,
}

impl Action {
    pub const ALL: [Action; 17] = [
        Action::SearchCalls,
        Action::ViewCall,
        Action::Listen,
        Action::Download,
        Action::SubjectSession,
        Action::LookUpSubject,
        Action::RecordCalls,
        Action::ManageHolds,
        Action::ManageRestriction,
        Action::Rectify,
        Action::ViewAccessAudit,
        Action::ViewStaffRights,
        Action::ViewRetention,
        Action::ViewStats,
        Action::ManageRights,
        Action::OperateProjections,
        Action::ReadHistory,
    ];

    /// The stored name (in `AccessDenied.action`).
    pub fn name(self) -> &'static str {
        match self {
            Action::SearchCalls => "search_calls",
            Action::ViewCall => "view_call",
            Action::Listen => "listen",
            Action::Download => "download",
            Action::SubjectSession => "subject_session",
            Action::LookUpSubject => "look_up_subject",
            Action::RecordCalls => "record_calls",
            Action::ManageHolds => "manage_holds",
            Action::ManageRestriction => "manage_restriction",
            Action::Rectify => "rectify",
            Action::ViewAccessAudit => "view_access_audit",
            Action::ViewStaffRights => "view_staff_rights",
            Action::ViewRetention => "view_retention",
            Action::ViewStats => "view_stats",
            Action::ManageRights => "manage_rights",
            Action::OperateProjections => "operate_projections",
            Action::ReadHistory => "read_history",
        }
    }

    /// Reads a call's contents (metadata or audio): needs a purpose, and is
    /// refused on a restricted call unless the purpose is one the law
    /// allows.
    pub fn reads_contact(self) -> bool {
        matches!(
            self,
            Action::SearchCalls
                | Action::ViewCall
                | Action::Listen
                | Action::Download
                | Action::SubjectSession
                | Action::LookUpSubject
                | Action::ReadHistory
        )
    }

    /// Opens audio.
    pub fn is_audio(self) -> bool {
        matches!(
            self,
            Action::Listen | Action::Download | Action::SubjectSession
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which calls a role reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Calls the actor handled (R8).
    Own,
    /// Own calls and those of the agents the actor supervises (R9).
    Team,
    /// Any call.
    Any,
}

/// How a call relates to the actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    /// The actor was the call's agent.
    Own,
    /// The call's agent is one the actor supervises.
    Supervised,
    /// Anyone else's call.
    Other,
}

impl Relation {
    /// How a call handled by `agent` relates to `actor` holding `rights`.
    pub fn of(actor: &StaffId, rights: &StaffState, agent: &str) -> Relation {
        if actor.as_str() == agent {
            Relation::Own
        } else if rights
            .supervised_agents()
            .iter()
            .any(|a| a.as_str() == agent)
        {
            Relation::Supervised
        } else {
            Relation::Other
        }
    }
}

impl Scope {
    pub fn reaches(self, relation: Relation) -> bool {
        match self {
            Scope::Own => relation == Relation::Own,
            Scope::Team => relation != Relation::Other,
            Scope::Any => true,
        }
    }
}

/// What one role may do for one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub scope: Scope,
    /// The purposes it may be done for; empty for actions that state none.
    pub purposes: &'static [Purpose],
    /// A "when needed" read by maintenance or security (R10): needs a
    /// stated reason and is flagged for review.
    pub break_glass: bool,
}

/// Purposes the law allows on a restricted call (GDPR art. 18(2)).
pub const RESTRICTED_PURPOSES: [Purpose; 2] = [Purpose::LegalClaim, Purpose::DataSubjectRequest];

const SERVICE: &[Purpose] = &[Purpose::Verification, Purpose::Quality, Purpose::Training];
const QUALITY: &[Purpose] = &[Purpose::Quality, Purpose::Training];
const AUDIT: &[Purpose] = &[Purpose::Verification, Purpose::LegalClaim];
const CASE: &[Purpose] = &[
    Purpose::DataSubjectRequest,
    Purpose::LegalClaim,
    Purpose::Verification,
];
const ANALYSIS: &[Purpose] = &[Purpose::Quality];
const MAINTENANCE: &[Purpose] = &[Purpose::Maintenance];
const SECURITY: &[Purpose] = &[Purpose::Security];

const fn reads(scope: Scope, purposes: &'static [Purpose]) -> Option<Rule> {
    Some(Rule {
        scope,
        purposes,
        break_glass: false,
    })
}

const fn break_glass(purposes: &'static [Purpose]) -> Option<Rule> {
    Some(Rule {
        scope: Scope::Any,
        purposes,
        break_glass: true,
    })
}

const ALLOWED: Option<Rule> = Some(Rule {
    scope: Scope::Any,
    purposes: &[],
    break_glass: false,
});

/// The policy table: what `role` may do for `action`, or `None`.
pub fn rule(role: Role, action: Action) -> Option<Rule> {
    use Action as A;
    use Role as R;
    match (role, action) {
        (R::Agent, A::SearchCalls | A::ViewCall | A::Listen) => reads(Scope::Own, SERVICE),

        (R::Supervisor, A::SearchCalls | A::ViewCall | A::Listen) => reads(Scope::Team, SERVICE),
        (R::Supervisor, A::ViewStats) => ALLOWED,

        (R::QualityExpert, A::SearchCalls | A::ViewCall | A::Listen) => reads(Scope::Any, QUALITY),
        (R::QualityExpert, A::ViewStats) => ALLOWED,

        // Break-glass staff open the call an incident names; they don't browse.
        (R::Maintenance, A::ViewCall | A::Listen) => break_glass(MAINTENANCE),
        (R::Security, A::ViewCall | A::Listen) => break_glass(SECURITY),

        (R::Auditor, A::SearchCalls | A::ViewCall | A::LookUpSubject | A::ReadHistory) => {
            reads(Scope::Any, AUDIT)
        }
        (R::Auditor, A::ViewAccessAudit | A::ViewStaffRights | A::ViewRetention | A::ViewStats) => {
            ALLOWED
        }

        (R::CaseWorker, A::SearchCalls | A::ViewCall | A::Listen | A::LookUpSubject) => {
            reads(Scope::Any, CASE)
        }
        (R::CaseWorker, A::SubjectSession) => reads(Scope::Any, &[Purpose::DataSubjectRequest]),
        (R::CaseWorker, A::Download) => reads(Scope::Any, &[Purpose::LegalClaim]),
        (R::CaseWorker, A::ManageHolds | A::ManageRestriction | A::Rectify | A::ViewRetention) => {
            ALLOWED
        }

        (R::Analyst, A::SearchCalls | A::ViewCall) => reads(Scope::Any, ANALYSIS),
        (R::Analyst, A::ViewStats) => ALLOWED,

        (R::Telephony, A::RecordCalls) => ALLOWED,

        (R::Administrator, A::ManageRights | A::ViewStaffRights | A::OperateProjections) => ALLOWED,

        _ => None,
    }
}

/// The call an action is about, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub relation: Relation,
    /// Processing is restricted (R19).
    pub restricted: bool,
    /// The recording asked for was destroyed by retention.
    pub recording_purged: bool,
}

/// One attempt, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub action: Action,
    pub purpose: Option<Purpose>,
    /// The call; `None` for actions on no particular call (a search asks
    /// [`visibility`] instead).
    pub target: Option<Target>,
    /// A reason was stated.
    pub reason_given: bool,
}

/// Why an attempt was refused: the `rule` of `AccessDenied`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// No role the actor holds allows the action at all.
    NoRole,
    /// A role allows the action, but not on this call (R8, R9).
    NotTheirCall,
    /// A role allows the action on this call, but not for this purpose (R4).
    PurposeNotAllowed,
    /// The action reads a call and states no purpose (R4).
    PurposeRequired,
    /// The call is restricted and the purpose is not one the law allows (R19).
    Restricted,
    /// A break-glass read without a stated reason (R10).
    ReasonRequired,
}

impl Refusal {
    pub fn name(self) -> &'static str {
        match self {
            Refusal::NoRole => "no_role",
            Refusal::NotTheirCall => "not_their_call",
            Refusal::PurposeNotAllowed => "purpose_not_allowed",
            Refusal::PurposeRequired => "purpose_required",
            Refusal::Restricted => "restricted",
            Refusal::ReasonRequired => "reason_required",
        }
    }

    /// A sentence for the person refused.
    pub fn explain(self, action: Action) -> String {
        match self {
            Refusal::NoRole => format!("none of your roles allows {action}"),
            Refusal::NotTheirCall => {
                format!("your roles allow {action} only on your own or your team's calls")
            }
            Refusal::PurposeNotAllowed => {
                format!("your roles do not allow {action} for this purpose")
            }
            Refusal::PurposeRequired => format!("{action} needs a stated purpose"),
            Refusal::Restricted => format!(
                "processing of this call is restricted: {action} is allowed only for {}",
                RESTRICTED_PURPOSES.map(Purpose::name).join(" or ")
            ),
            Refusal::ReasonRequired => {
                format!("{action} by maintenance or security staff needs a stated reason")
            }
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the policy answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed under `role`; `break_glass` reads are flagged for review.
    Allow { role: Role, break_glass: bool },
    /// Allowed, but the recording is gone: there is nothing to serve.
    Gone { role: Role },
    /// Refused, with the first rule that refused it. `role` is the role
    /// that came closest, if any.
    Deny {
        refusal: Refusal,
        role: Option<Role>,
    },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// How far a refusal got: later stages are closer to an allow, so the
/// refusal reported is the one of the role that came closest.
fn stage(r: Refusal) -> u8 {
    match r {
        Refusal::NoRole => 0,
        Refusal::NotTheirCall => 1,
        Refusal::PurposeRequired | Refusal::PurposeNotAllowed => 2,
        Refusal::Restricted => 3,
        Refusal::ReasonRequired => 4,
    }
}

fn check(role: Role, request: &Request) -> Result<Rule, Refusal> {
    let rule = rule(role, request.action).ok_or(Refusal::NoRole)?;
    if let Some(target) = &request.target
        && !rule.scope.reaches(target.relation)
    {
        return Err(Refusal::NotTheirCall);
    }
    if request.action.reads_contact() {
        let purpose = request.purpose.ok_or(Refusal::PurposeRequired)?;
        if !rule.purposes.contains(&purpose) {
            return Err(Refusal::PurposeNotAllowed);
        }
        if request.target.is_some_and(|t| t.restricted) && !RESTRICTED_PURPOSES.contains(&purpose) {
            return Err(Refusal::Restricted);
        }
    }
    if rule.break_glass && !request.reason_given {
        return Err(Refusal::ReasonRequired);
    }
    Ok(rule)
}

/// Decides one attempt by an actor holding `roles`. A role that allows
/// without break-glass wins over one that needs it; with none allowing,
/// the refusal of the role that came closest is reported.
pub fn decide(roles: &BTreeSet<Role>, request: &Request) -> Decision {
    let mut best: Option<(Role, Rule)> = None;
    let mut closest: Option<(Refusal, Role)> = None;
    for &role in roles {
        match check(role, request) {
            Ok(rule) => {
                if best.is_none_or(|(_, b)| b.break_glass && !rule.break_glass) {
                    best = Some((role, rule));
                }
            }
            Err(refusal) => {
                if closest.is_none_or(|(c, _)| stage(refusal) > stage(c)) {
                    closest = Some((refusal, role));
                }
            }
        }
    }
    match (best, closest) {
        (Some((role, _)), _)
            if request.action.is_audio() && request.target.is_some_and(|t| t.recording_purged) =>
        {
            Decision::Gone { role }
        }
        (Some((role, rule)), _) => Decision::Allow {
            role,
            break_glass: rule.break_glass,
        },
        (None, Some((refusal, role))) => Decision::Deny {
            refusal,
            role: (refusal != Refusal::NoRole).then_some(role),
        },
        (None, None) => Decision::Deny {
            refusal: Refusal::NoRole,
            role: None,
        },
    }
}

/// Which calls a search may show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Any call (restricted ones only if `restricted`).
    All {
        restricted: bool,
        role: Role,
        break_glass: bool,
    },
    /// Only calls handled by these agents.
    Agents {
        agents: Vec<StaffId>,
        restricted: bool,
        role: Role,
    },
}

/// What a search by `actor` for `purpose` may show, or why it may not run.
/// The widest allowing role wins; restricted calls are shown only for a
/// purpose the law allows.
pub fn visibility(
    actor: &StaffId,
    rights: &StaffState,
    purpose: Option<Purpose>,
    reason_given: bool,
) -> Result<Visibility, Decision> {
    let roles: BTreeSet<Role> = rights.roles.keys().copied().collect();
    let restricted = purpose.is_some_and(|p| RESTRICTED_PURPOSES.contains(&p));
    let mut request = Request {
        action: Action::SearchCalls,
        purpose,
        target: Some(Target {
            relation: Relation::Other,
            restricted: false,
            recording_purged: false,
        }),
        reason_given,
    };
    if let Decision::Allow { role, break_glass } = decide(&roles, &request) {
        return Ok(Visibility::All {
            restricted,
            role,
            break_glass,
        });
    }
    request.target = Some(Target {
        relation: Relation::Supervised,
        restricted: false,
        recording_purged: false,
    });
    let mut agents = vec![actor.clone()];
    let decision = match decide(&roles, &request) {
        Decision::Allow { role, .. } => {
            agents.extend(rights.supervised_agents().iter().cloned());
            Decision::Allow {
                role,
                break_glass: false,
            }
        }
        _ => {
            request.target = Some(Target {
                relation: Relation::Own,
                restricted: false,
                recording_purged: false,
            });
            decide(&roles, &request)
        }
    };
    match decision {
        Decision::Allow { role, .. } => Ok(Visibility::Agents {
            agents,
            restricted,
            role,
        }),
        denied => Err(denied),
    }
}

#[cfg(test)]
mod tests;
