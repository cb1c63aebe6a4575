//! Given/when/then tests of the Call aggregate's rules, and a property test
//! that any sequence of accepted commands folds into a valid state.

use crate::Personal;
use chrono::{Duration, NaiveDate};
use proptest::prelude::*;

use super::*;
use crate::{
    access::{AccessMode, OpenRecording, open_recording},
    controls::*,
    error::DomainError,
    event::Event,
    ids::*,
    role::Purpose,
    samples::{self, at},
};

fn ctx() -> Context {
    Context::new(at(10, 0), samples::staff("case.worker"))
}

use crate::context::Context;

fn start() -> CallCommand {
    CallCommand::Start(StartCall {
        call_id: samples::call_id(),
        direction: Direction::Inbound,
        caller: Some(samples::caller()),
        service_number: samples::service_number(),
        agent: samples::staff("anna.agent"),
        agent_name: "Anna Agent".into(),
        agent_number: None,
        started_at: at(9, 0),
    })
}

fn end() -> CallCommand {
    CallCommand::End(EndCall { ended_at: at(9, 7) })
}

fn store(id: RecordingId) -> CallCommand {
    CallCommand::StoreRecording(StoreRecording {
        recording_id: id,
        codec: "audio/wav".into(),
        duration_ms: Some(1000),
        size_bytes: 10,
        ciphertext_sha256: "0f".repeat(32),
    })
}

fn purge(id: RecordingId) -> CallCommand {
    CallCommand::PurgeRecording(PurgeRecording {
        recording_id: id,
        policy_version: 1,
        key_bucket: "2027-03-03".into(),
    })
}

fn hold(id: HoldId) -> CallCommand {
    CallCommand::PlaceHold(PlaceHold {
        hold_id: id,
        case_reference: "KELA/1/2026".into(),
        reason: "complaint".into(),
        review_by: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
    })
}

fn release(id: HoldId) -> CallCommand {
    CallCommand::ReleaseHold(ReleaseHold {
        hold_id: id,
        reason: "settled".into(),
    })
}

fn restrict() -> CallCommand {
    CallCommand::RestrictProcessing(RestrictProcessing {
        case_reference: "KELA/2/2026".into(),
        reason: "accuracy contested".into(),
    })
}

/// Runs commands in order, each of which must be accepted; returns the state.
fn given(commands: impl IntoIterator<Item = CallCommand>) -> CallState {
    given_from(CallState::default(), commands)
}

fn given_from(state: CallState, commands: impl IntoIterator<Item = CallCommand>) -> CallState {
    commands.into_iter().fold(state, |state, cmd| {
        let events = decide(&state, samples::call_id(), cmd.clone(), &ctx())
            .unwrap_or_else(|e| panic!("given {cmd:?} was refused: {e}"));
        events.iter().fold(state, evolve)
    })
}

fn caller_corrected(number: &crate::phone::PhoneNumber, reason: &str) -> CallCommand {
    CallCommand::Rectify(RectifyCall {
        correction: CorrectionInput::Caller(number.clone()),
        reason: reason.into(),
        request_id: None,
    })
}

fn when(state: &CallState, cmd: CallCommand) -> Result<Vec<Event>, DomainError> {
    decide(state, samples::call_id(), cmd, &ctx())
}

#[test]
fn times_far_ahead_of_the_register_clock_are_refused() {
    // ctx's clock is 10:00: an end or a corrected end in the next year
    // would postpone the call's retention by that much.
    let state = given([start()]);
    let far = at(10, 0) + chrono::Duration::days(365);
    let refused = |r: Result<Vec<Event>, DomainError>| matches!(r, Err(DomainError::InvalidField { field, .. }) if field == "endedAt" || field == "startedAt");
    assert!(refused(when(
        &state,
        CallCommand::End(EndCall { ended_at: far })
    )));
    assert!(refused(when(
        &state,
        CallCommand::Rectify(RectifyCall {
            correction: CorrectionInput::StartedAt(far),
            reason: "wrong clock".into(),
            request_id: None,
        })
    )));
    let ended = given([start(), end()]);
    assert!(refused(when(
        &ended,
        CallCommand::Rectify(RectifyCall {
            correction: CorrectionInput::EndedAt(far),
            reason: "wrong clock".into(),
            request_id: None,
        })
    )));
    // A few minutes of skew pass.
    assert!(
        when(
            &state,
            CallCommand::End(EndCall {
                ended_at: at(10, 4)
            })
        )
        .is_ok()
    );
}

#[test]
fn a_call_starts_once() {
    let state = given([start()]);
    assert!(matches!(
        when(&state, start()),
        Err(DomainError::CallAlreadyStarted { .. })
    ));
}

#[test]
fn a_call_cannot_end_before_it_starts() {
    let state = CallState::default();
    assert!(matches!(
        when(&state, end()),
        Err(DomainError::CallNotStarted { .. })
    ));
}

#[test]
fn a_call_ends_once() {
    let state = given([start(), end()]);
    assert!(matches!(
        when(&state, end()),
        Err(DomainError::CallAlreadyEnded { .. })
    ));
}

#[test]
fn a_call_cannot_end_at_a_time_before_its_start() {
    let state = given([start()]);
    let early = CallCommand::End(EndCall {
        ended_at: at(8, 59),
    });
    assert!(matches!(
        when(&state, early),
        Err(DomainError::EndBeforeStart { .. })
    ));
}

#[test]
fn ending_a_started_call_emits_call_ended() {
    let state = given([start()]);
    let events = when(&state, end()).unwrap();
    assert_eq!(
        events,
        vec![Event::CallEnded(CallEnded {
            call_id: samples::call_id(),
            ended_at: at(9, 7)
        })]
    );
}

#[test]
fn a_recording_belongs_to_an_existing_call() {
    let state = CallState::default();
    assert!(matches!(
        when(&state, store(samples::recording_id())),
        Err(DomainError::CallNotStarted { .. })
    ));
}

#[test]
fn a_recording_is_stored_once() {
    let state = given([start(), store(samples::recording_id())]);
    assert!(matches!(
        when(&state, store(samples::recording_id())),
        Err(DomainError::RecordingAlreadyStored { .. })
    ));
}

#[test]
fn a_purged_recording_cannot_be_purged_again() {
    let r = samples::recording_id();
    let state = given([start(), store(r), end(), purge(r)]);
    assert!(matches!(
        when(&state, purge(r)),
        Err(DomainError::RecordingPurged { .. })
    ));
}

#[test]
fn a_purged_recording_cannot_be_held() {
    let r = samples::recording_id();
    let state = given([start(), store(r), end(), purge(r)]);
    assert!(matches!(
        when(&state, hold(samples::hold_id())),
        Err(DomainError::AllRecordingsPurged { .. })
    ));
}

#[test]
fn a_purged_recording_cannot_be_played() {
    let r = samples::recording_id();
    let state = given([start(), store(r), end(), purge(r)]);
    let open = OpenRecording {
        recording_id: r,
        role: None,
        purpose: Purpose::Verification,
        mode: AccessMode::Listen,
        case_reference: None,
        reason: None,
        break_glass: false,
    };
    assert!(matches!(
        open_recording(&state, samples::call_id(), open, &ctx()),
        Err(DomainError::RecordingPurged { .. })
    ));
}

#[test]
fn a_held_recording_cannot_be_purged() {
    let r = samples::recording_id();
    let state = given([start(), store(r), end(), hold(samples::hold_id())]);
    assert!(matches!(
        when(&state, purge(r)),
        Err(DomainError::OnHold { holds: 1, .. })
    ));
}

#[test]
fn a_released_hold_no_longer_keeps_the_recording() {
    let r = samples::recording_id();
    let h = samples::hold_id();
    let state = given([start(), store(r), end(), hold(h), release(h)]);
    assert!(when(&state, purge(r)).is_ok());
}

#[test]
fn every_hold_must_be_released_before_a_purge() {
    let r = samples::recording_id();
    let h1 = HoldId::from_source("t", "1");
    let h2 = HoldId::from_source("t", "2");
    let state = given([start(), store(r), end(), hold(h1), hold(h2), release(h1)]);
    assert!(matches!(
        when(&state, purge(r)),
        Err(DomainError::OnHold { holds: 1, .. })
    ));
}

#[test]
fn a_restricted_call_is_kept_from_purge() {
    let r = samples::recording_id();
    let state = given([start(), store(r), end(), restrict()]);
    assert!(matches!(
        when(&state, purge(r)),
        Err(DomainError::Restricted { .. })
    ));
}

#[test]
fn lifting_a_restriction_needs_the_subject_informed_first() {
    let state = given([start(), restrict()]);
    let future = CallCommand::LiftRestriction(LiftRestriction {
        subject_informed_at: ctx().now + Duration::hours(1),
        reason: "verified".into(),
    });
    assert!(matches!(
        when(&state, future),
        Err(DomainError::SubjectInformedInFuture { .. })
    ));
    // A notice from before this restriction was placed is about another.
    let earlier = CallCommand::LiftRestriction(LiftRestriction {
        subject_informed_at: ctx().now - Duration::days(1),
        reason: "verified".into(),
    });
    assert!(matches!(
        when(&state, earlier),
        Err(DomainError::InvalidField {
            field: "subjectInformedAt",
            ..
        })
    ));
    let ok = CallCommand::LiftRestriction(LiftRestriction {
        subject_informed_at: ctx().now,
        reason: "verified".into(),
    });
    let state = when(&state, ok).unwrap().iter().fold(state, evolve);
    assert!(!state.controls.is_restricted());
}

#[test]
fn a_hold_needs_a_case_reference_and_a_reason() {
    let state = given([start()]);
    let cmd = CallCommand::PlaceHold(PlaceHold {
        hold_id: samples::hold_id(),
        case_reference: "  ".into(),
        reason: "x".into(),
        review_by: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
    });
    assert_eq!(
        when(&state, cmd),
        Err(DomainError::InvalidField {
            field: "caseReference",
            reason: "it is empty".into()
        })
    );
}

#[test]
fn a_rectification_is_a_new_fact_and_the_original_stays_in_the_history() {
    let state = given([start()]);
    let new_number = crate::phone::PhoneNumber::parse("050 765 4321").unwrap();
    let events = when(&state, caller_corrected(&new_number, "typo at intake")).unwrap();
    let after = events.iter().fold(state.clone(), evolve);
    assert_eq!(
        after.call.as_ref().unwrap().caller_in_clear(),
        Some(&new_number)
    );
    assert_eq!(after.call.as_ref().unwrap().rectifications, 1);
    // The original is still what the CallStarted event said.
    assert_eq!(
        state.call.as_ref().unwrap().caller_in_clear(),
        Some(&samples::caller())
    );
}

#[test]
fn purging_contact_history_shreds_the_callers_number_in_the_state() {
    let state = given([
        start(),
        end(),
        CallCommand::PurgeContactHistory(PurgeContactHistory {
            policy_version: 1,
            key_bucket: "b".into(),
        }),
    ]);
    assert!(
        state
            .call
            .as_ref()
            .unwrap()
            .caller
            .as_ref()
            .is_some_and(Personal::is_shredded)
    );
    assert!(matches!(
        when(&state, restrict()),
        Err(DomainError::ContactHistoryPurged { .. })
    ));
}

// ---- property: any sequence of accepted commands folds into a valid state

fn arb_command() -> impl Strategy<Value = CallCommand> {
    let rec = (0u128..3).prop_map(|n| RecordingId(uuid::Uuid::from_u128(n + 1)));
    let hid = (0u128..3).prop_map(|n| HoldId(uuid::Uuid::from_u128(n + 1)));
    let minute = 0i64..120;
    prop_oneof![
        minute.clone().prop_map(|m| CallCommand::Start(StartCall {
            call_id: samples::call_id(),
            direction: Direction::Outbound,
            caller: Some(samples::caller()),
            service_number: samples::service_number(),
            agent: samples::staff("anna.agent"),
            agent_name: "Anna".into(),
            agent_number: None,
            started_at: at(8, 0) + Duration::minutes(m),
        })),
        minute.clone().prop_map(|m| CallCommand::End(EndCall {
            ended_at: at(8, 0) + Duration::minutes(m)
        })),
        rec.clone().prop_map(store),
        rec.clone().prop_map(purge),
        hid.clone().prop_map(hold),
        hid.prop_map(release),
        Just(restrict()),
        Just(CallCommand::LiftRestriction(LiftRestriction {
            subject_informed_at: at(9, 0),
            reason: "told".into()
        })),
        minute.prop_map(|m| CallCommand::Rectify(RectifyCall {
            correction: CorrectionInput::EndedAt(at(8, 0) + Duration::minutes(m)),
            reason: "clock skew".into(),
            request_id: None,
        })),
        Just(CallCommand::PurgeContactHistory(PurgeContactHistory {
            policy_version: 1,
            key_bucket: "b".into()
        })),
    ]
}

proptest! {
    #[test]
    fn any_sequence_of_accepted_commands_folds_into_a_valid_state(
        commands in proptest::collection::vec(arb_command(), 0..40)
    ) {
        let mut state = CallState::default();
        let mut history: Vec<Event> = Vec::new();
        for cmd in commands {
            let before = state.clone();
            match decide(&state, samples::call_id(), cmd, &ctx()) {
                Ok(events) => {
                    for e in &events {
                        // No purge may be accepted while a hold or restriction keeps the call.
                        if matches!(e, Event::RecordingPurged(_) | Event::ContactHistoryPurged(_)) {
                            prop_assert!(!before.controls.is_held());
                            prop_assert!(!before.controls.is_restricted());
                        }
                    }
                    history.extend(events.iter().cloned());
                    state = events.iter().fold(state, evolve);
                }
                Err(_) => prop_assert_eq!(&state, &before),
            }
            prop_assert_eq!(state.check_invariants(), Ok(()));
        }
        // Folding the whole history from scratch gives the same state.
        prop_assert_eq!(fold(history.iter()), state);
    }
}

#[test]
fn an_open_call_is_purged_only_once_it_has_been_open_a_week() {
    // Its end never came. Within a week of its start it may still be
    // live; after, its end counts as lost and retention may purge it.
    let state = given([start(), store(samples::recording_id())]);
    let history = || {
        CallCommand::PurgeContactHistory(PurgeContactHistory {
            policy_version: 1,
            key_bucket: "b".into(),
        })
    };
    let on = |now| Context::new(now, samples::staff("retention"));
    let id = samples::call_id();
    let week = Duration::days(crate::retention::OPEN_AT_MOST_DAYS as i64);
    let almost = at(9, 0) + week - Duration::seconds(1);
    for cmd in [purge(samples::recording_id()), history()] {
        assert!(matches!(
            decide(&state, id, cmd.clone(), &on(almost)),
            Err(DomainError::CallNotEnded { .. })
        ));
        assert!(decide(&state, id, cmd, &on(at(9, 0) + week)).is_ok());
    }
}

#[test]
fn a_withheld_number_stays_absent_through_a_purge_and_can_be_rectified_in() {
    let CallCommand::Start(mut withheld) = start() else {
        unreachable!()
    };
    withheld.caller = None;
    let events = when(&CallState::default(), CallCommand::Start(withheld)).unwrap();
    let Event::CallStarted(e) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(e.caller, None);
    let state = events.iter().fold(CallState::default(), evolve);
    let purged = given_from(
        state.clone(),
        [
            end(),
            CallCommand::PurgeContactHistory(PurgeContactHistory {
                policy_version: 1,
                key_bucket: "b".into(),
            }),
        ],
    );
    let call = purged.call.as_ref().unwrap();
    assert_eq!(call.caller, None, "nothing to shred, nothing made up");
    assert!(call.agent_name.is_shredded());
    let number = crate::phone::PhoneNumber::parse("050 765 4321").unwrap();
    let fixed = when(&state, caller_corrected(&number, "the caller gave it")).unwrap();
    let after = fixed.iter().fold(state, evolve);
    assert_eq!(after.call.unwrap().caller_in_clear(), Some(&number));
}
