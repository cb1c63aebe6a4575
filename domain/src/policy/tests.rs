//! The policy table, cell by cell: every role × action × relation against
//! an explicit expected table, then the rules the table can't show.

use super::*;

/// The purpose each role states in the table (its everyday one).
fn everyday_purpose(role: Role) -> Purpose {
    match role {
        Role::Agent | Role::Auditor | Role::Telephony | Role::Administrator => {
            Purpose::Verification
        }
        Role::Supervisor | Role::QualityExpert | Role::Analyst => Purpose::Quality,
        Role::Maintenance => Purpose::Maintenance,
        Role::Security => Purpose::Security,
        Role::CaseWorker => Purpose::DataSubjectRequest,
    }
}

/// Columns: own call, a supervised agent's call, another's call, own
/// restricted call, own call whose recording was purged.
const TARGETS: [Target; 5] = [
    Target {
        relation: Relation::Own,
        restricted: false,
        recording_purged: false,
    },
    Target {
        relation: Relation::Supervised,
        restricted: false,
        recording_purged: false,
    },
    Target {
        relation: Relation::Other,
        restricted: false,
        recording_purged: false,
    },
    Target {
        relation: Relation::Own,
        restricted: true,
        recording_purged: false,
    },
    Target {
        relation: Relation::Own,
        restricted: false,
        recording_purged: true,
    },
];

/// A = allowed, B = allowed as a flagged break-glass read, G = allowed but
/// the recording is gone, N = no role allows it, T = not their call,
/// P = purpose not allowed, R = restricted, Q = reason required.
/// Rows follow `Action::ALL`; actions not listed for a role are `NNNNN`.
fn expected(role: Role) -> Vec<(Action, &'static str)> {
    use Action::*;
    match role {
        Role::Agent => vec![
            (SearchCalls, "ATTRA"),
            (ViewCall, "ATTRA"),
            (Listen, "ATTRG"),
        ],
        Role::Supervisor => vec![
            (SearchCalls, "AATRA"),
            (ViewCall, "AATRA"),
            (Listen, "AATRG"),
            (ViewStats, "AAAAA"),
        ],
        Role::QualityExpert => vec![
            (SearchCalls, "AAARA"),
            (ViewCall, "AAARA"),
            (Listen, "AAARG"),
            (ViewStats, "AAAAA"),
        ],
        Role::Maintenance | Role::Security => vec![(ViewCall, "BBBRB"), (Listen, "BBBRG")],
        Role::Auditor => vec![
            (SearchCalls, "AAARA"),
            (ViewCall, "AAARA"),
            (LookUpSubject, "AAARA"),
            (ViewAccessAudit, "AAAAA"),
            (ReadHistory, "AAARA"),
            (ViewStaffRights, "AAAAA"),
            (ViewRetention, "AAAAA"),
            (ViewStats, "AAAAA"),
        ],
        Role::CaseWorker => vec![
            (SearchCalls, "AAAAA"),
            (ViewCall, "AAAAA"),
            (Listen, "AAAAG"),
            (Download, "PPPPP"),
            (SubjectSession, "AAAAG"),
            (LookUpSubject, "AAAAA"),
            (ManageHolds, "AAAAA"),
            (ManageRestriction, "AAAAA"),
            (Rectify, "AAAAA"),
            (ViewRetention, "AAAAA"),
        ],
        Role::Analyst => vec![
            (SearchCalls, "AAARA"),
            (ViewCall, "AAARA"),
            (ViewStats, "AAAAA"),
        ],
        Role::Telephony => vec![(RecordCalls, "AAAAA")],
        Role::Administrator => vec![
            (ViewStaffRights, "AAAAA"),
            (ManageRights, "AAAAA"),
            (OperateProjections, "AAAAA"),
        ],
    }
}

fn letter(d: Decision) -> char {
    match d {
        Decision::Allow {
            break_glass: false, ..
        } => 'A',
        Decision::Allow {
            break_glass: true, ..
        } => 'B',
        Decision::Gone { .. } => 'G',
        Decision::Deny { refusal, .. } => match refusal {
            Refusal::NoRole => 'N',
            Refusal::NotTheirCall => 'T',
            Refusal::PurposeNotAllowed => 'P',
            Refusal::PurposeRequired => '?',
            Refusal::Restricted => 'R',
            Refusal::ReasonRequired => 'Q',
        },
    }
}

#[test]
fn every_role_action_and_relation_matches_the_table() {
    let mut mismatches = Vec::new();
    for role in Role::ALL {
        let table = expected(role);
        for action in Action::ALL {
            let want = table
                .iter()
                .find(|(a, _)| *a == action)
                .map_or("NNNNN", |(_, row)| row);
            let got: String = TARGETS
                .iter()
                .map(|t| {
                    letter(decide(
                        &BTreeSet::from([role]),
                        &Request {
                            action,
                            purpose: Some(everyday_purpose(role)),
                            target: Some(*t),
                            reason_given: matches!(role, Role::Maintenance | Role::Security),
                        },
                    ))
                })
                .collect();
            if got != want {
                mismatches.push(format!("{role} × {action}: want {want}, got {got}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

fn one(role: Role, action: Action, purpose: Option<Purpose>, target: Target, reason: bool) -> char {
    letter(decide(
        &BTreeSet::from([role]),
        &Request {
            action,
            purpose,
            target: Some(target),
            reason_given: reason,
        },
    ))
}

const OWN: Target = TARGETS[0];
const OTHER: Target = TARGETS[2];
const RESTRICTED: Target = Target {
    relation: Relation::Other,
    restricted: true,
    recording_purged: false,
};

#[test]
fn purposes_outside_a_roles_duties_are_refused() {
    let agent_listens = |p| one(Role::Agent, Action::Listen, Some(p), OWN, false);
    assert_eq!(agent_listens(Purpose::Training), 'A');
    assert_eq!(agent_listens(Purpose::LegalClaim), 'P');
    assert_eq!(agent_listens(Purpose::Security), 'P');
    let q = |p| one(Role::QualityExpert, Action::ViewCall, Some(p), OTHER, false);
    assert_eq!(q(Purpose::Verification), 'P');
    assert_eq!(
        one(
            Role::CaseWorker,
            Action::Download,
            Some(Purpose::LegalClaim),
            OTHER,
            false
        ),
        'A'
    );
    assert_eq!(
        one(
            Role::Maintenance,
            Action::Listen,
            Some(Purpose::Security),
            OTHER,
            true
        ),
        'P'
    );
}

#[test]
fn reading_a_call_without_a_purpose_is_refused() {
    assert_eq!(one(Role::Agent, Action::ViewCall, None, OWN, false), '?');
    // Actions that read no call state none.
    assert_eq!(
        one(Role::Auditor, Action::ViewAccessAudit, None, OWN, false),
        'A'
    );
}

#[test]
fn restricted_calls_serve_only_legal_claims_and_subject_requests() {
    for role in [Role::Auditor, Role::CaseWorker] {
        assert_eq!(
            one(
                role,
                Action::ViewCall,
                Some(Purpose::LegalClaim),
                RESTRICTED,
                false
            ),
            'A',
            "{role}"
        );
        assert_eq!(
            one(
                role,
                Action::ViewCall,
                Some(Purpose::Verification),
                RESTRICTED,
                false
            ),
            'R',
            "{role}"
        );
    }
    // A restriction does not widen a role's purposes.
    assert_eq!(
        one(
            Role::QualityExpert,
            Action::ViewCall,
            Some(Purpose::LegalClaim),
            RESTRICTED,
            false
        ),
        'P'
    );
}

#[test]
fn break_glass_needs_a_reason() {
    assert_eq!(
        one(
            Role::Security,
            Action::Listen,
            Some(Purpose::Security),
            OTHER,
            false
        ),
        'Q'
    );
    assert_eq!(
        one(
            Role::Security,
            Action::Listen,
            Some(Purpose::Security),
            OTHER,
            true
        ),
        'B'
    );
}

#[test]
fn with_several_roles_the_plain_allow_wins_and_the_closest_refusal_is_told() {
    let roles = BTreeSet::from([Role::Agent, Role::Maintenance]);
    let ask = |purpose, target, reason| {
        decide(
            &roles,
            &Request {
                action: Action::Listen,
                purpose: Some(purpose),
                target: Some(target),
                reason_given: reason,
            },
        )
    };
    // As an agent on their own call: no break-glass flag.
    assert_eq!(
        ask(Purpose::Verification, OWN, false),
        Decision::Allow {
            role: Role::Agent,
            break_glass: false
        }
    );
    // On another's call only maintenance reaches, and it needs a reason.
    assert_eq!(
        ask(Purpose::Maintenance, OTHER, false),
        Decision::Deny {
            refusal: Refusal::ReasonRequired,
            role: Some(Role::Maintenance)
        }
    );
    assert_eq!(
        ask(Purpose::Maintenance, OTHER, true),
        Decision::Allow {
            role: Role::Maintenance,
            break_glass: true
        }
    );
    // Nobody at all.
    assert_eq!(
        decide(
            &BTreeSet::new(),
            &Request {
                action: Action::ViewStats,
                purpose: None,
                target: None,
                reason_given: false
            }
        ),
        Decision::Deny {
            refusal: Refusal::NoRole,
            role: None
        }
    );
}

fn staff(roles: &[(Role, &[&str])]) -> StaffState {
    let mut s = StaffState::default();
    for (role, team) in roles {
        s.roles.insert(
            *role,
            crate::staff::Grant {
                supervises: team.iter().map(|t| StaffId::parse(t).unwrap()).collect(),
                decision_reference: None,
                granted_at: chrono::DateTime::UNIX_EPOCH,
            },
        );
    }
    s
}

#[test]
fn a_search_shows_what_the_searcher_may_see() {
    let sue = StaffId::parse("sue.supervisor").unwrap();
    let team = staff(&[(Role::Supervisor, &["anna.agent"])]);
    match visibility(&sue, &team, Some(Purpose::Quality), false).unwrap() {
        Visibility::Agents {
            agents, restricted, ..
        } => {
            let names: Vec<&str> = agents.iter().map(StaffId::as_str).collect();
            assert_eq!(names, ["sue.supervisor", "anna.agent"]);
            assert!(!restricted);
        }
        other => panic!("{other:?}"),
    }
    let anna = StaffId::parse("anna.agent").unwrap();
    let agent = staff(&[(Role::Agent, &[])]);
    assert!(matches!(
        visibility(&anna, &agent, Some(Purpose::Verification), false),
        Ok(Visibility::Agents { ref agents, .. }) if agents.len() == 1
    ));
    let case = staff(&[(Role::CaseWorker, &[])]);
    assert!(matches!(
        visibility(&anna, &case, Some(Purpose::DataSubjectRequest), false),
        Ok(Visibility::All {
            restricted: true,
            ..
        })
    ));
    let tel = staff(&[(Role::Telephony, &[])]);
    assert!(matches!(
        visibility(&anna, &tel, Some(Purpose::Verification), false),
        Err(Decision::Deny {
            refusal: Refusal::NoRole,
            ..
        })
    ));
}

#[test]
fn relation_follows_the_agent_and_the_team() {
    let sue = StaffId::parse("sue.supervisor").unwrap();
    let team = staff(&[(Role::Supervisor, &["anna.agent"])]);
    assert_eq!(Relation::of(&sue, &team, "sue.supervisor"), Relation::Own);
    assert_eq!(
        Relation::of(&sue, &team, "anna.agent"),
        Relation::Supervised
    );
    assert_eq!(Relation::of(&sue, &team, "bob.agent"), Relation::Other);
}
