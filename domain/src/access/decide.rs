//! Deciding a read of a recording: the events logging it, or why it can't
//! happen.

use crate::{
    access::event::{AccessMode, RecordingAccessed},
    call::CallState,
    context::Context,
    error::{DomainError, MAX_CASE_REFERENCE, MAX_REASON, required_text},
    event::Event,
    ids::{CallId, RecordingId},
    personal::Personal,
    role::{Purpose, Role},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRecording {
    pub recording_id: RecordingId,
    pub role: Option<Role>,
    pub purpose: Purpose,
    pub mode: AccessMode,
    pub case_reference: Option<String>,
    pub reason: Option<String>,
    pub break_glass: bool,
}

/// The `RecordingAccessed` event for opening a recording of `call`, or why
/// it can't be opened: no such call or recording, or it was purged.
pub fn open_recording(
    call: &CallState,
    call_id: CallId,
    cmd: OpenRecording,
    ctx: &Context,
) -> Result<Vec<Event>, DomainError> {
    if !call.exists() {
        return Err(DomainError::CallNotStarted { call_id });
    }
    let recording =
        call.recordings
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
    let reason = cmd
        .reason
        .filter(|r| !r.trim().is_empty())
        .map(|r| required_text("reason", &r, MAX_REASON))
        .transpose()?;
    if cmd.break_glass && reason.is_none() {
        return Err(DomainError::InvalidField {
            field: "reason",
            reason: "a break-glass read needs a stated reason".into(),
        });
    }
    let case_reference = cmd
        .case_reference
        .filter(|r| !r.trim().is_empty())
        .map(|r| required_text("caseReference", &r, MAX_CASE_REFERENCE))
        .transpose()?;
    Ok(vec![
        RecordingAccessed {
            actor: ctx.actor.clone(),
            role: cmd.role,
            call_id,
            recording_id: cmd.recording_id,
            purpose: cmd.purpose,
            mode: cmd.mode,
            case_reference,
            reason: reason.map(Personal::new),
            break_glass: cmd.break_glass,
            accessed_at: ctx.now,
        }
        .into(),
    ])
}
