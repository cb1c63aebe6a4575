//! Given/when/then tests of the Staff aggregate, and its folding property.

use chrono::NaiveDate;
use proptest::prelude::*;

use super::*;
use crate::{
    context::Context,
    error::DomainError,
    event::Event,
    ids::StaffId,
    role::Role,
    samples::{self, at},
};

fn ctx() -> Context {
    Context::new(at(8, 0), samples::staff("admin"))
}

fn sue() -> StaffId {
    samples::staff("sue.supervisor")
}

fn grant(role: Role) -> StaffCommand {
    StaffCommand::GrantRole(GrantRole {
        role,
        supervises: if role == Role::Supervisor {
            vec![samples::staff("anna.agent")]
        } else {
            vec![]
        },
        decision_reference: None,
    })
}

fn revoke(role: Role) -> StaffCommand {
    StaffCommand::RevokeRole(RevokeRole {
        role,
        decision_reference: None,
    })
}

fn given(commands: impl IntoIterator<Item = StaffCommand>) -> StaffState {
    commands
        .into_iter()
        .fold(StaffState::default(), |state, cmd| {
            let events = decide(&state, &sue(), cmd.clone(), &ctx())
                .unwrap_or_else(|e| panic!("given {cmd:?} was refused: {e}"));
            events.iter().fold(state, evolve)
        })
}

fn when(state: &StaffState, cmd: StaffCommand) -> Result<Vec<Event>, DomainError> {
    decide(state, &sue(), cmd, &ctx())
}

#[test]
fn only_existing_roles_are_revoked() {
    let state = given([grant(Role::Agent)]);
    assert!(matches!(
        when(&state, revoke(Role::Auditor)),
        Err(DomainError::RoleNotHeld {
            role: Role::Auditor,
            ..
        })
    ));
    assert!(when(&state, revoke(Role::Agent)).is_ok());
}

#[test]
fn a_role_is_not_granted_twice() {
    let state = given([grant(Role::Analyst)]);
    assert!(matches!(
        when(&state, grant(Role::Analyst)),
        Err(DomainError::RoleAlreadyHeld { .. })
    ));
}

#[test]
fn a_supervisors_team_can_be_changed_by_a_new_grant() {
    let state = given([grant(Role::Supervisor)]);
    let new_team = StaffCommand::GrantRole(GrantRole {
        role: Role::Supervisor,
        supervises: vec![samples::staff("bob.agent")],
        decision_reference: Some("HR/9".into()),
    });
    let state = when(&state, new_team).unwrap().iter().fold(state, evolve);
    assert_eq!(state.supervised_agents(), &[samples::staff("bob.agent")]);
}

#[test]
fn only_supervisors_supervise() {
    let cmd = StaffCommand::GrantRole(GrantRole {
        role: Role::Agent,
        supervises: vec![samples::staff("bob.agent")],
        decision_reference: None,
    });
    assert!(matches!(
        when(&StaffState::default(), cmd),
        Err(DomainError::InvalidField {
            field: "supervises",
            ..
        })
    ));
}

#[test]
fn a_review_removes_only_held_roles_and_sets_the_next_review() {
    let state = given([grant(Role::Agent), grant(Role::Analyst)]);
    let bad = StaffCommand::ReviewAccessRights(ReviewAccessRights {
        remove: vec![Role::Auditor],
        next_review_by: NaiveDate::from_ymd_opt(2027, 3, 1).unwrap(),
    });
    assert!(matches!(
        when(&state, bad),
        Err(DomainError::RoleNotHeld { .. })
    ));
    let good = StaffCommand::ReviewAccessRights(ReviewAccessRights {
        remove: vec![Role::Analyst],
        next_review_by: NaiveDate::from_ymd_opt(2027, 3, 1).unwrap(),
    });
    let state = when(&state, good).unwrap().iter().fold(state, evolve);
    assert!(state.has_role(Role::Agent));
    assert!(!state.has_role(Role::Analyst));
    assert_eq!(state.next_review_by, NaiveDate::from_ymd_opt(2027, 3, 1));
}

fn arb_command() -> impl Strategy<Value = StaffCommand> {
    let role = proptest::sample::select(Role::ALL.to_vec());
    prop_oneof![
        role.clone().prop_map(grant),
        role.clone().prop_map(revoke),
        proptest::collection::vec(role, 0..3).prop_map(|remove| {
            StaffCommand::ReviewAccessRights(ReviewAccessRights {
                remove,
                next_review_by: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
            })
        }),
    ]
}

proptest! {
    #[test]
    fn any_sequence_of_accepted_staff_commands_folds_into_a_valid_state(
        commands in proptest::collection::vec(arb_command(), 0..40)
    ) {
        let mut state = StaffState::default();
        let mut history = Vec::new();
        for cmd in commands {
            let revoked = match &cmd {
                StaffCommand::RevokeRole(r) => Some(r.role),
                _ => None,
            };
            if let Ok(events) = decide(&state, &sue(), cmd, &ctx()) {
                if let Some(role) = revoked {
                    prop_assert!(state.has_role(role), "revoked a role not held");
                }
                history.extend(events.iter().cloned());
                state = events.iter().fold(state, evolve);
            }
            prop_assert_eq!(state.check_invariants(), Ok(()));
        }
        prop_assert_eq!(fold(history.iter()), state);
    }
}

#[test]
fn nobody_grants_a_role_to_themselves() {
    let admin = samples::staff("admin");
    let refused = decide(
        &StaffState::default(),
        &admin,
        grant(Role::Security),
        &ctx(),
    );
    assert!(matches!(
        refused,
        Err(DomainError::InvalidField {
            field: "staffId",
            ..
        })
    ));
    // The same grant to someone else is fine.
    assert!(when(&StaffState::default(), grant(Role::Security)).is_ok());
}
