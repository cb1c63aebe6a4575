//! The rules of a call: `decide` refuses what breaks them, `evolve` folds.

use crate::{
    call::{command::*, event::*, state::*},
    contact::ContactRef,
    context::Context,
    error::{DomainError, MAX_REASON, required_text},
    event::Event,
    ids::CallId,
    personal::Personal,
    retention::RetentionPolicy,
};

/// Longest codec name accepted.
const MAX_CODEC: usize = 100;
/// Longest agent name accepted.
const MAX_NAME: usize = 200;

/// The events `command` causes on a call in `state`, or the rule it breaks.
/// `call_id` is the call the command is addressed to.
pub fn decide(
    state: &CallState,
    call_id: CallId,
    command: CallCommand,
    ctx: &Context,
) -> Result<Vec<Event>, DomainError> {
    let contact = ContactRef::Call(call_id);
    if let CallCommand::Start(cmd) = command {
        ctx.not_ahead("startedAt", cmd.started_at)?;
        return start(state, call_id, cmd);
    }
    let call = state
        .call
        .as_ref()
        .ok_or(DomainError::CallNotStarted { call_id })?;
    match command {
        CallCommand::Start(_) => unreachable!("handled above"),
        CallCommand::End(cmd) => {
            if let Some(ended_at) = call.ended_at {
                return Err(DomainError::CallAlreadyEnded { call_id, ended_at });
            }
            ctx.not_ahead("endedAt", cmd.ended_at)?;
            if cmd.ended_at < call.started_at {
                return Err(DomainError::EndBeforeStart {
                    call_id,
                    started_at: call.started_at,
                    ended_at: cmd.ended_at,
                });
            }
            Ok(vec![
                CallEnded {
                    call_id,
                    ended_at: cmd.ended_at,
                }
                .into(),
            ])
        }
        CallCommand::StoreRecording(cmd) => {
            state.controls.ensure_not_purged(contact)?;
            if state.recordings.contains_key(&cmd.recording_id) {
                return Err(DomainError::RecordingAlreadyStored {
                    recording_id: cmd.recording_id,
                });
            }
            let codec = required_text("codec", &cmd.codec, MAX_CODEC)?;
            if cmd.ciphertext_sha256.len() != 64
                || !cmd.ciphertext_sha256.chars().all(|c| c.is_ascii_hexdigit())
            {
                return Err(DomainError::InvalidField {
                    field: "ciphertextSha256",
                    reason: "it must be 64 hexadecimal digits".into(),
                });
            }
            Ok(vec![
                RecordingStored {
                    call_id,
                    recording_id: cmd.recording_id,
                    media_type: codec.trim().to_ascii_lowercase(),
                    duration_ms: cmd.duration_ms,
                    size_bytes: cmd.size_bytes,
                    ciphertext_sha256: cmd.ciphertext_sha256.to_ascii_lowercase(),
                    stored_at: ctx.now,
                }
                .into(),
            ])
        }
        CallCommand::PurgeRecording(cmd) => {
            let recording =
                state
                    .recordings
                    .get(&cmd.recording_id)
                    .ok_or(DomainError::UnknownRecording {
                        call_id,
                        recording_id: cmd.recording_id,
                    })?;
            if let Some(p) = &recording.purged {
                return Err(DomainError::RecordingPurged {
                    recording_id: cmd.recording_id,
                    purged_at: p.purged_at,
                });
            }
            if call.ended_at.is_none() && !RetentionPolicy::open_too_long(call.started_at, ctx.now)
            {
                return Err(DomainError::CallNotEnded { call_id });
            }
            state.controls.ensure_purgeable(contact)?;
            Ok(vec![
                RecordingPurged {
                    call_id,
                    recording_id: cmd.recording_id,
                    reason: PurgeReason::RetentionExpired,
                    policy_version: cmd.policy_version,
                    key_bucket: cmd.key_bucket,
                    purged_at: ctx.now,
                }
                .into(),
            ])
        }
        CallCommand::PlaceHold(cmd) => {
            state.controls.ensure_not_purged(contact)?;
            if !state.recordings.is_empty() && state.recordings.values().all(|r| r.purged.is_some())
            {
                return Err(DomainError::AllRecordingsPurged { call_id });
            }
            state.controls.place_hold(contact, cmd, ctx)
        }
        CallCommand::ReleaseHold(cmd) => state.controls.release_hold(contact, cmd, ctx),
        CallCommand::RestrictProcessing(cmd) => state.controls.restrict(contact, cmd, ctx),
        CallCommand::LiftRestriction(cmd) => state.controls.lift_restriction(contact, cmd, ctx),
        CallCommand::PurgeContactHistory(cmd) => {
            if call.ended_at.is_none() && !RetentionPolicy::open_too_long(call.started_at, ctx.now)
            {
                return Err(DomainError::CallNotEnded { call_id });
            }
            state.controls.purge_history(contact, cmd, ctx)
        }
        CallCommand::Rectify(cmd) => {
            state.controls.ensure_not_purged(contact)?;
            let reason = required_text("reason", &cmd.reason, MAX_REASON)?;
            let correction = match cmd.correction {
                CorrectionInput::Caller(p) => Correction::Caller(Personal::new(p)),
                CorrectionInput::ServiceNumber(p) => Correction::ServiceNumber(p),
                CorrectionInput::AgentName(n) => {
                    Correction::AgentName(Personal::new(required_text("agentName", &n, MAX_NAME)?))
                }
                CorrectionInput::StartedAt(t) => {
                    ctx.not_ahead("startedAt", t)?;
                    if call.ended_at.is_some_and(|end| t > end) {
                        return Err(DomainError::InvalidField {
                            field: "startedAt",
                            reason: "the corrected start is after the call's end".into(),
                        });
                    }
                    Correction::StartedAt(t)
                }
                CorrectionInput::EndedAt(t) => {
                    if call.ended_at.is_none() {
                        return Err(DomainError::CallNotEnded { call_id });
                    }
                    ctx.not_ahead("endedAt", t)?;
                    if t < call.started_at {
                        return Err(DomainError::EndBeforeStart {
                            call_id,
                            started_at: call.started_at,
                            ended_at: t,
                        });
                    }
                    Correction::EndedAt(t)
                }
            };
            Ok(vec![
                CallRectified {
                    call_id,
                    correction,
                    reason: Personal::new(reason),
                    rectified_at: ctx.now,
                }
                .into(),
            ])
        }
    }
}

fn start(state: &CallState, call_id: CallId, cmd: StartCall) -> Result<Vec<Event>, DomainError> {
    if state.exists() {
        return Err(DomainError::CallAlreadyStarted { call_id });
    }
    if cmd.call_id != call_id {
        return Err(DomainError::WrongAggregate {
            command_for: format!("call {}", cmd.call_id),
            aggregate: format!("call {call_id}"),
        });
    }
    let agent_name = required_text("agentName", &cmd.agent_name, MAX_NAME)?;
    Ok(vec![
        CallStarted {
            call_id,
            direction: cmd.direction,
            caller: cmd.caller.map(Personal::new),
            service_number: cmd.service_number,
            agent: cmd.agent,
            agent_name: Personal::new(agent_name),
            agent_number: cmd.agent_number.map(Personal::new),
            started_at: cmd.started_at,
        }
        .into(),
    ])
}

/// Folds one event into the call's state. Events of other aggregates are
/// ignored, so a whole stream (or log) can be folded.
pub fn evolve(mut state: CallState, event: &Event) -> CallState {
    match event {
        Event::CallStarted(e) => {
            state.call = Some(CallFacts {
                call_id: e.call_id,
                direction: e.direction,
                caller: e.caller.clone(),
                service_number: e.service_number.clone(),
                agent: e.agent.clone(),
                agent_name: e.agent_name.clone(),
                agent_number: e.agent_number.clone(),
                started_at: e.started_at,
                ended_at: None,
                rectifications: 0,
            });
        }
        Event::CallEnded(e) => {
            if let Some(call) = &mut state.call {
                call.ended_at = Some(e.ended_at);
            }
        }
        Event::RecordingStored(e) => {
            state.recordings.insert(
                e.recording_id,
                RecordingFacts {
                    codec: e.media_type.clone(),
                    duration_ms: e.duration_ms,
                    size_bytes: e.size_bytes,
                    ciphertext_sha256: e.ciphertext_sha256.clone(),
                    stored_at: e.stored_at,
                    purged: None,
                },
            );
        }
        Event::RecordingPurged(e) => {
            if let Some(r) = state.recordings.get_mut(&e.recording_id) {
                r.purged = Some(crate::controls::PurgeFacts {
                    purged_at: e.purged_at,
                    policy_version: e.policy_version,
                    key_bucket: e.key_bucket.clone(),
                });
            }
        }
        Event::CallRectified(e) => {
            if let Some(call) = &mut state.call {
                call.rectifications += 1;
                match &e.correction {
                    Correction::Caller(p) => call.caller = Some(p.clone()),
                    Correction::ServiceNumber(p) => call.service_number = p.clone(),
                    Correction::AgentName(n) => call.agent_name = n.clone(),
                    Correction::StartedAt(t) => call.started_at = *t,
                    Correction::EndedAt(t) => call.ended_at = Some(*t),
                }
            }
        }
        Event::ContactHistoryPurged(e) => {
            state.controls.evolve(event);
            if let (Some(call), crate::contact::ContactRef::Call(_)) = (&mut state.call, e.contact)
            {
                call.caller = call.caller.take().map(|_| Personal::Shredded);
                call.agent_name = Personal::Shredded;
                call.agent_number = call.agent_number.take().map(|_| Personal::Shredded);
            }
        }
        other => state.controls.evolve(other),
    }
    state
}

/// Folds a sequence of events from the empty state.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> CallState {
    events.into_iter().fold(CallState::default(), evolve)
}
