//! The rules of a chat: messages only while it is open, one end, e-mail
//! orders settled once.

use crate::{
    chat::{command::*, event::*, state::*},
    contact::ContactRef,
    context::Context,
    error::{DomainError, required_text},
    event::Event,
    ids::ChatId,
    personal::Personal,
    retention::{OPEN_AT_MOST_DAYS, RetentionPolicy},
};

/// Longest chat message accepted, in characters.
pub const MAX_MESSAGE: usize = 10_000;

pub fn decide(
    state: &ChatState,
    chat_id: ChatId,
    command: ChatCommand,
    ctx: &Context,
) -> Result<Vec<Event>, DomainError> {
    let contact = ContactRef::Chat(chat_id);
    if let ChatCommand::Start(cmd) = command {
        if state.chat.is_some() {
            return Err(DomainError::ChatAlreadyStarted { chat_id });
        }
        ctx.not_ahead("startedAt", cmd.started_at)?;
        if cmd.chat_id != chat_id {
            return Err(DomainError::WrongAggregate {
                command_for: format!("chat {}", cmd.chat_id),
                aggregate: format!("chat {chat_id}"),
            });
        }
        let service = required_text("service", &cmd.service, 100)?;
        let customer_name = match cmd.customer_name {
            Some(n) => Some(Personal::new(required_text("customerName", &n, 200)?)),
            None => None,
        };
        return Ok(vec![
            ChatStarted {
                chat_id,
                agent: cmd.agent,
                service,
                customer_name,
                started_at: cmd.started_at,
            }
            .into(),
        ]);
    }
    let chat = state
        .chat
        .as_ref()
        .ok_or(DomainError::ChatNotStarted { chat_id })?;
    match command {
        ChatCommand::Start(_) => unreachable!("handled above"),
        ChatCommand::AppendMessage(cmd) => {
            if let Some(ended_at) = chat.ended_at {
                return Err(DomainError::ChatAlreadyEnded { chat_id, ended_at });
            }
            state.controls.ensure_not_purged(contact)?;
            if cmd.text.is_empty() {
                return Err(DomainError::InvalidField {
                    field: "text",
                    reason: "it is empty".into(),
                });
            }
            let n = cmd.text.chars().count();
            if n > MAX_MESSAGE {
                return Err(DomainError::InvalidField {
                    field: "text",
                    reason: format!("it has {n} characters; at most {MAX_MESSAGE} are allowed"),
                });
            }
            // A chat system's clock running ahead would keep the chat
            // from ending (and from retention) until that time.
            ctx.not_ahead("sentAt", cmd.sent_at)?;
            let sent_at = cmd.sent_at.max(chat.started_at);
            Ok(vec![
                ChatMessageAppended {
                    chat_id,
                    seq: state.messages.len() as u32,
                    from: cmd.from,
                    text: Personal::new(cmd.text),
                    sent_at,
                }
                .into(),
            ])
        }
        ChatCommand::End(cmd) => {
            if let Some(ended_at) = chat.ended_at {
                return Err(DomainError::ChatAlreadyEnded { chat_id, ended_at });
            }
            ctx.not_ahead("endedAt", cmd.ended_at)?;
            let last = state
                .messages
                .iter()
                .map(|m| m.sent_at)
                .max()
                .unwrap_or(chat.started_at);
            if cmd.ended_at < last {
                return Err(DomainError::InvalidField {
                    field: "endedAt",
                    reason: format!("it is before the chat's last activity at {last}"),
                });
            }
            Ok(vec![
                ChatEnded {
                    chat_id,
                    ended_at: cmd.ended_at,
                }
                .into(),
            ])
        }
        ChatCommand::RequestTranscriptEmail(cmd) => {
            state.controls.ensure_not_purged(contact)?;
            if state.controls.is_restricted() {
                return Err(DomainError::Restricted {
                    contact,
                    action: "e-mailed",
                });
            }
            if state.email_requests.contains_key(&cmd.request_id) {
                return Err(DomainError::EmailRequestExists {
                    request_id: cmd.request_id,
                });
            }
            Ok(vec![
                ChatTranscriptEmailRequested {
                    chat_id,
                    request_id: cmd.request_id,
                    ordered_by: cmd.ordered_by,
                    address: Personal::new(cmd.address),
                    requested_at: ctx.now,
                }
                .into(),
            ])
        }
        ChatCommand::RecordTranscriptEmailed(cmd) => {
            pending(state, chat_id, cmd.request_id)?;
            Ok(vec![
                ChatTranscriptEmailed {
                    chat_id,
                    request_id: cmd.request_id,
                    message_id: cmd.message_id,
                    sent_at: ctx.now,
                }
                .into(),
            ])
        }
        ChatCommand::RecordTranscriptEmailFailed(cmd) => {
            let request = pending(state, chat_id, cmd.request_id)?;
            Ok(vec![
                ChatTranscriptEmailFailed {
                    chat_id,
                    request_id: cmd.request_id,
                    attempt: request.attempts + 1,
                    error: cmd.error.chars().take(500).collect(),
                    gave_up: cmd.gave_up,
                    failed_at: ctx.now,
                }
                .into(),
            ])
        }
        ChatCommand::PlaceHold(cmd) => state.controls.place_hold(contact, cmd, ctx),
        ChatCommand::ReleaseHold(cmd) => state.controls.release_hold(contact, cmd, ctx),
        ChatCommand::RestrictProcessing(cmd) => state.controls.restrict(contact, cmd, ctx),
        ChatCommand::LiftRestriction(cmd) => state.controls.lift_restriction(contact, cmd, ctx),
        ChatCommand::PurgeContactHistory(cmd) => {
            if chat.ended_at.is_none() && !RetentionPolicy::open_too_long(chat.started_at, ctx.now)
            {
                return Err(DomainError::InvalidField {
                    field: "chat",
                    reason: format!(
                        "an open chat can't be purged before it has been open {OPEN_AT_MOST_DAYS} days"
                    ),
                });
            }
            state.controls.purge_history(contact, cmd, ctx)
        }
    }
}

fn pending(
    state: &ChatState,
    chat_id: ChatId,
    request_id: crate::ids::EmailRequestId,
) -> Result<&EmailRequestFacts, DomainError> {
    let request =
        state
            .email_requests
            .get(&request_id)
            .ok_or(DomainError::UnknownEmailRequest {
                chat_id,
                request_id,
            })?;
    if request.status != EmailStatus::Pending {
        return Err(DomainError::EmailRequestSettled { request_id });
    }
    Ok(request)
}

pub fn evolve(mut state: ChatState, event: &Event) -> ChatState {
    match event {
        Event::ChatStarted(e) => {
            state.chat = Some(ChatFacts {
                chat_id: e.chat_id,
                agent: e.agent.clone(),
                service: e.service.clone(),
                customer_name: e.customer_name.clone(),
                started_at: e.started_at,
                ended_at: None,
            });
        }
        Event::ChatMessageAppended(e) => state.messages.push(ChatMessage {
            from: e.from,
            text: e.text.clone(),
            sent_at: e.sent_at,
        }),
        Event::ChatEnded(e) => {
            if let Some(chat) = &mut state.chat {
                chat.ended_at = Some(e.ended_at);
            }
        }
        Event::ChatTranscriptEmailRequested(e) => {
            state.email_requests.insert(
                e.request_id,
                EmailRequestFacts {
                    ordered_by: e.ordered_by,
                    address: e.address.clone(),
                    requested_at: e.requested_at,
                    attempts: 0,
                    status: EmailStatus::Pending,
                    last_error: None,
                },
            );
        }
        Event::ChatTranscriptEmailed(e) => {
            if let Some(r) = state.email_requests.get_mut(&e.request_id) {
                r.attempts += 1;
                r.status = EmailStatus::Sent;
            }
        }
        Event::ChatTranscriptEmailFailed(e) => {
            if let Some(r) = state.email_requests.get_mut(&e.request_id) {
                r.attempts = e.attempt;
                r.last_error = Some(e.error.clone());
                if e.gave_up {
                    r.status = EmailStatus::GaveUp;
                }
            }
        }
        Event::ContactHistoryPurged(_) => {
            state.controls.evolve(event);
            for m in &mut state.messages {
                m.text = Personal::Shredded;
            }
            for r in state.email_requests.values_mut() {
                r.address = Personal::Shredded;
            }
            if let Some(chat) = &mut state.chat {
                chat.customer_name = chat.customer_name.take().map(|_| Personal::Shredded);
            }
        }
        other => state.controls.evolve(other),
    }
    state
}

pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> ChatState {
    events.into_iter().fold(ChatState::default(), evolve)
}
