//! Given/when/then tests of the Chat aggregate, and its folding property.

use proptest::prelude::*;

use super::*;
use crate::{
    context::Context,
    controls::PurgeContactHistory,
    email::EmailAddress,
    error::DomainError,
    event::Event,
    ids::EmailRequestId,
    samples::{self, at},
};

fn ctx() -> Context {
    Context::new(at(12, 0), samples::staff("anna.agent"))
}

fn start() -> ChatCommand {
    ChatCommand::Start(StartChat {
        chat_id: samples::chat_id(),
        agent: samples::staff("anna.agent"),
        service: "benefits".into(),
        customer_name: None,
        started_at: at(11, 0),
    })
}

fn say(from: ChatParty, minute: u32) -> ChatCommand {
    ChatCommand::AppendMessage(AppendChatMessage {
        from,
        text: format!("message at {minute}"),
        sent_at: at(11, minute),
        client_message_id: None,
    })
}

fn end(minute: u32) -> ChatCommand {
    ChatCommand::End(EndChat {
        ended_at: at(11, minute),
    })
}

fn order(n: u128) -> ChatCommand {
    ChatCommand::RequestTranscriptEmail(RequestTranscriptEmail {
        request_id: EmailRequestId(uuid::Uuid::from_u128(n)),
        ordered_by: ChatParty::Customer,
        address: EmailAddress::parse("matti@example.fi").unwrap(),
    })
}

fn given(commands: impl IntoIterator<Item = ChatCommand>) -> ChatState {
    commands
        .into_iter()
        .fold(ChatState::default(), |state, cmd| {
            let events = decide(&state, samples::chat_id(), cmd.clone(), &ctx())
                .unwrap_or_else(|e| panic!("given {cmd:?} was refused: {e}"));
            events.iter().fold(state, evolve)
        })
}

fn when(state: &ChatState, cmd: ChatCommand) -> Result<Vec<Event>, DomainError> {
    decide(state, samples::chat_id(), cmd, &ctx())
}

#[test]
fn messages_are_numbered_in_order() {
    let state = given([
        start(),
        say(ChatParty::Customer, 1),
        say(ChatParty::Agent, 2),
    ]);
    assert_eq!(state.messages.len(), 2);
    let events = when(&state, say(ChatParty::Customer, 3)).unwrap();
    assert!(matches!(&events[0], Event::ChatMessageAppended(m) if m.seq == 2));
}

#[test]
fn a_message_from_the_future_is_refused() {
    let state = given([start()]);
    // ctx's clock is 12:00; a few minutes of skew pass, an hour does not.
    let soon = ChatCommand::AppendMessage(AppendChatMessage {
        from: ChatParty::Customer,
        text: "hei".into(),
        sent_at: at(12, 4),
        client_message_id: None,
    });
    assert!(when(&state, soon).is_ok());
    let later = ChatCommand::AppendMessage(AppendChatMessage {
        from: ChatParty::Customer,
        text: "hei".into(),
        sent_at: at(13, 0),
        client_message_id: None,
    });
    assert!(matches!(
        when(&state, later),
        Err(DomainError::InvalidField {
            field: "sentAt",
            ..
        })
    ));
}

#[test]
fn no_message_after_the_chat_ended() {
    let state = given([start(), end(5)]);
    assert!(matches!(
        when(&state, say(ChatParty::Customer, 6)),
        Err(DomainError::ChatAlreadyEnded { .. })
    ));
}

#[test]
fn a_transcript_e_mail_order_names_who_ordered_it_and_the_address() {
    let state = given([start(), say(ChatParty::Customer, 1)]);
    let events = when(&state, order(1)).unwrap();
    let Event::ChatTranscriptEmailRequested(e) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(e.ordered_by, ChatParty::Customer);
    assert_eq!(e.address.clear().unwrap().as_str(), "matti@example.fi");
}

#[test]
fn an_order_is_settled_once() {
    let r = EmailRequestId(uuid::Uuid::from_u128(1));
    let state = given([
        start(),
        order(1),
        ChatCommand::RecordTranscriptEmailed(RecordTranscriptEmailed {
            request_id: r,
            message_id: "<m>".into(),
        }),
    ]);
    assert!(matches!(
        when(
            &state,
            ChatCommand::RecordTranscriptEmailed(RecordTranscriptEmailed {
                request_id: r,
                message_id: "<m>".into()
            })
        ),
        Err(DomainError::EmailRequestSettled { .. })
    ));
}

#[test]
fn failed_attempts_are_counted_until_given_up() {
    let r = EmailRequestId(uuid::Uuid::from_u128(1));
    let fail = |gave_up| {
        ChatCommand::RecordTranscriptEmailFailed(RecordTranscriptEmailFailed {
            request_id: r,
            error: "451".into(),
            gave_up,
        })
    };
    let state = given([start(), order(1), fail(false), fail(true)]);
    let request = &state.email_requests[&r];
    assert_eq!(request.attempts, 2);
    assert_eq!(request.status, EmailStatus::GaveUp);
}

#[test]
fn purging_a_chat_shreds_transcript_and_addresses() {
    let state = given([
        start(),
        say(ChatParty::Customer, 1),
        order(1),
        end(5),
        ChatCommand::PurgeContactHistory(PurgeContactHistory {
            policy_version: 1,
            key_bucket: "b".into(),
        }),
    ]);
    assert!(state.messages.iter().all(|m| m.text.is_shredded()));
    assert!(
        state
            .email_requests
            .values()
            .all(|r| r.address.is_shredded())
    );
}

fn arb_command() -> impl Strategy<Value = ChatCommand> {
    prop_oneof![
        Just(start()),
        (0u32..59).prop_map(|m| say(ChatParty::Customer, m)),
        (0u32..59).prop_map(end),
        (1u128..3).prop_map(order),
        (1u128..3).prop_map(|n| ChatCommand::RecordTranscriptEmailFailed(
            RecordTranscriptEmailFailed {
                request_id: EmailRequestId(uuid::Uuid::from_u128(n)),
                error: "x".into(),
                gave_up: n == 2
            }
        )),
        Just(ChatCommand::PurgeContactHistory(PurgeContactHistory {
            policy_version: 1,
            key_bucket: "b".into()
        })),
    ]
}

proptest! {
    #[test]
    fn any_sequence_of_accepted_chat_commands_folds_into_a_valid_state(
        commands in proptest::collection::vec(arb_command(), 0..40)
    ) {
        let mut state = ChatState::default();
        let mut history = Vec::new();
        for cmd in commands {
            if let Ok(events) = decide(&state, samples::chat_id(), cmd, &ctx()) {
                history.extend(events.iter().cloned());
                state = events.iter().fold(state, evolve);
            }
            prop_assert_eq!(state.check_invariants(), Ok(()));
        }
        prop_assert_eq!(fold(history.iter()), state);
    }
}
