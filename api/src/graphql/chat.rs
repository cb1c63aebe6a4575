//! Chats over GraphQL: the chat system writes (`startChat`,
//! `appendChatMessage`, `endChat`, `requestChatTranscriptEmail`); staff
//! read under the same policy and audit as calls (`chat`, `chats`).
//! The transcript, the customer's name and e-mail addresses are personal
//! data, sealed with the chat's own key in the log and destroyed with it.

use async_graphql::{Enum, ID, InputObject, Object, SimpleObject};
use callvault_domain::{
    ChatId, ContactRef, EmailAddress, EmailRequestId, Event, StaffId,
    access::ContactHistorySearched,
    chat::{
        AppendChatMessage, ChatCommand, ChatParty, ChatState, EmailStatus, EndChat,
        RequestTranscriptEmail, StartChat,
    },
    policy::Action,
};
use chrono::{DateTime, Utc};

use super::{caller, gql_error, guard, read::parse_purpose};
use crate::{
    access::Attempt,
    audit::{self, HistoryFilter},
    error::AppError,
    service::{Chat, Registry},
};

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Party {
    Customer,
    Agent,
}

impl From<Party> for ChatParty {
    fn from(p: Party) -> Self {
        match p {
            Party::Customer => ChatParty::Customer,
            Party::Agent => ChatParty::Agent,
        }
    }
}

impl From<ChatParty> for Party {
    fn from(p: ChatParty) -> Self {
        match p {
            ChatParty::Customer => Party::Customer,
            ChatParty::Agent => Party::Agent,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum OrderStatus {
    Pending,
    Sent,
    Failed,
}

#[derive(InputObject, Debug)]
pub struct StartChatInput {
    /// Your id for the chat; or give `sourceSystem` + `sourceChatId` so a
    /// retried request is recognised; or neither.
    pub chat_id: Option<ID>,
    pub source_system: Option<String>,
    pub source_chat_id: Option<String>,
    pub agent_id: String,
    /// The service (queue) the customer chose, e.g. `benefits`.
    pub service: String,
    pub customer_name: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
}

#[derive(InputObject, Debug)]
pub struct AppendChatMessageInput {
    pub chat_id: ID,
    pub from: Party,
    pub text: String,
    pub sent_at: Option<DateTime<Utc>>,
    /// The chat system's own id of the message (at most 200 characters):
    /// a resend with the same id and `sentAt` is answered `replayed`, not
    /// appended twice. Give both to make retries safe.
    pub message_id: Option<String>,
}

#[derive(InputObject, Debug)]
pub struct EndChatInput {
    pub chat_id: ID,
    pub ended_at: Option<DateTime<Utc>>,
}

#[derive(InputObject, Debug)]
pub struct RequestChatTranscriptEmailInput {
    pub chat_id: ID,
    /// Who orders it: the transcript goes to their own address.
    pub ordered_by: Party,
    pub address: String,
    /// Your id for the order, so a retried request is recognised.
    pub request_id: Option<ID>,
}

/// What a write answers: the chat's shape, not its contents.
#[derive(SimpleObject, Debug)]
pub struct ChatWritten {
    pub chat_id: ID,
    pub revision: u64,
    pub messages: u32,
    pub ended: bool,
    /// The order this call placed, if any.
    pub request_id: Option<ID>,
    pub log_position: String,
    pub replayed: bool,
}

#[derive(SimpleObject, Debug)]
pub struct ChatLine {
    pub seq: u32,
    pub from: Party,
    /// Null once the chat's personal data was purged.
    pub text: Option<String>,
    pub sent_at: DateTime<Utc>,
}

#[derive(SimpleObject, Debug)]
pub struct TranscriptOrder {
    pub id: ID,
    pub ordered_by: Party,
    /// Null once the chat's personal data was purged.
    pub address: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub status: OrderStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
}

#[derive(SimpleObject, Debug)]
pub struct ChatView {
    pub id: ID,
    pub agent_id: String,
    pub service: String,
    pub customer_name: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub restricted: bool,
    pub personal_data_shredded: bool,
    pub transcript: Vec<ChatLine>,
    pub transcript_orders: Vec<TranscriptOrder>,
}

impl ChatView {
    fn from_state(state: &ChatState) -> Option<Self> {
        let chat = state.chat.as_ref()?;
        Some(Self {
            id: ID(chat.chat_id.to_string()),
            agent_id: chat.agent.to_string(),
            service: chat.service.clone(),
            customer_name: chat.customer_name.as_ref().and_then(|n| n.clear().cloned()),
            started_at: chat.started_at,
            ended_at: chat.ended_at,
            restricted: state.controls.is_restricted(),
            personal_data_shredded: state.controls.history_purged.is_some(),
            transcript: state
                .messages
                .iter()
                .enumerate()
                .map(|(i, m)| ChatLine {
                    seq: i as u32,
                    from: m.from.into(),
                    text: m.text.clear().cloned(),
                    sent_at: m.sent_at,
                })
                .collect(),
            transcript_orders: state
                .email_requests
                .iter()
                .map(|(id, r)| TranscriptOrder {
                    id: ID(id.to_string()),
                    ordered_by: r.ordered_by.into(),
                    address: r.address.clear().map(|a| a.to_string()),
                    requested_at: r.requested_at,
                    status: match r.status {
                        EmailStatus::Pending => OrderStatus::Pending,
                        EmailStatus::Sent => OrderStatus::Sent,
                        EmailStatus::GaveUp => OrderStatus::Failed,
                    },
                    attempts: r.attempts,
                    last_error: r.last_error.clone(),
                })
                .collect(),
        })
    }
}

#[derive(SimpleObject, Debug)]
pub struct ChatSummary {
    pub id: ID,
    pub agent_id: String,
    pub service: String,
    pub started_at: DateTime<Utc>,
}

#[derive(InputObject, Debug, Default)]
pub struct ChatFilter {
    pub agent_id: Option<String>,
    pub started_from: Option<DateTime<Utc>>,
    pub started_to: Option<DateTime<Utc>>,
}

#[derive(SimpleObject, Debug)]
pub struct ChatConnection {
    pub items: Vec<ChatSummary>,
    pub next_cursor: Option<String>,
}

fn parse_chat_id(field: &str, id: &ID) -> Result<ChatId, AppError> {
    id.parse().map_err(|e| AppError::invalid(field, e))
}

async fn write(
    ctx: &async_graphql::Context<'_>,
    chat_id: ChatId,
    command: ChatCommand,
    request_id: Option<EmailRequestId>,
) -> Result<ChatWritten, AppError> {
    let (registry, caller) = guard(ctx, Action::RecordCalls).await?;
    let executed = registry
        .execute::<Chat>(&caller.id, &chat_id, command, None)
        .await?;
    let state = registry.load::<Chat>(&chat_id).await?.state;
    Ok(ChatWritten {
        chat_id: ID(chat_id.to_string()),
        revision: executed.revision.0,
        messages: state.messages.len() as u32,
        ended: state.chat.as_ref().is_some_and(|c| c.ended_at.is_some()),
        request_id: request_id.map(|r| ID(r.to_string())),
        log_position: executed.position.to_string(),
        replayed: executed.replayed,
    })
}

fn now(ctx: &async_graphql::Context<'_>) -> Result<DateTime<Utc>, AppError> {
    Ok(super::parts(ctx)?.0.now())
}

#[derive(Default)]
pub struct ChatMutation;

#[Object]
impl ChatMutation {
    /// A chat began (the chat system).
    async fn start_chat(
        &self,
        ctx: &async_graphql::Context<'_>,
        input: StartChatInput,
    ) -> async_graphql::Result<ChatWritten> {
        async {
            let chat_id = match (&input.chat_id, &input.source_system, &input.source_chat_id) {
                (Some(id), None, None) => parse_chat_id("chatId", id)?,
                (None, Some(s), Some(i)) if !s.trim().is_empty() && !i.trim().is_empty() => {
                    ChatId::from_source(s.trim(), i.trim())
                }
                (None, None, None) => ChatId(uuid::Uuid::now_v7()),
                _ => {
                    return Err(AppError::invalid(
                        "chatId",
                        "give either chatId, or sourceSystem with sourceChatId, or neither",
                    ));
                }
            };
            // Only a chat id the client gave can have been started before.
            let known = match (
                input.started_at,
                input.chat_id.is_some() || input.source_chat_id.is_some(),
            ) {
                (None, true) => super::parts(ctx)?
                    .0
                    .load::<Chat>(&chat_id)
                    .await?
                    .state
                    .chat
                    .map(|c| c.started_at),
                _ => None,
            };
            let command = ChatCommand::Start(StartChat {
                chat_id,
                agent: StaffId::parse(&input.agent_id)
                    .map_err(|e| AppError::invalid("agentId", e))?,
                service: input.service.clone(),
                customer_name: input.customer_name.clone(),
                started_at: match (input.started_at, known) {
                    (Some(t), _) | (None, Some(t)) => t,
                    (None, None) => now(ctx)?,
                },
            });
            write(ctx, chat_id, command, None).await
        }
        .await
        .map_err(gql_error)
    }

    /// A message from the customer or the agent.
    async fn append_chat_message(
        &self,
        ctx: &async_graphql::Context<'_>,
        input: AppendChatMessageInput,
    ) -> async_graphql::Result<ChatWritten> {
        async {
            let chat_id = parse_chat_id("chatId", &input.chat_id)?;
            if let Some(id) = &input.message_id
                && (id.trim().is_empty() || id.chars().count() > 200)
            {
                return Err(AppError::invalid(
                    "messageId",
                    "give 1 to 200 characters (or leave it out)",
                ));
            }
            let command = ChatCommand::AppendMessage(AppendChatMessage {
                from: input.from.into(),
                text: input.text.clone(),
                sent_at: match input.sent_at {
                    Some(t) => t,
                    None => now(ctx)?,
                },
                client_message_id: input.message_id.clone(),
            });
            write(ctx, chat_id, command, None).await
        }
        .await
        .map_err(gql_error)
    }

    /// The chat ended.
    async fn end_chat(
        &self,
        ctx: &async_graphql::Context<'_>,
        input: EndChatInput,
    ) -> async_graphql::Result<ChatWritten> {
        async {
            let chat_id = parse_chat_id("chatId", &input.chat_id)?;
            // A resend without its time means "the end you recorded".
            let ended_at = match input.ended_at {
                Some(t) => t,
                None => match super::parts(ctx)?
                    .0
                    .load::<Chat>(&chat_id)
                    .await?
                    .state
                    .chat
                    .and_then(|c| c.ended_at)
                {
                    Some(t) => t,
                    None => now(ctx)?,
                },
            };
            let command = ChatCommand::End(EndChat { ended_at });
            write(ctx, chat_id, command, None).await
        }
        .await
        .map_err(gql_error)
    }

    /// The customer or the agent orders the transcript to their own
    /// address. The outbox inside `serve` mails it and records the outcome.
    async fn request_chat_transcript_email(
        &self,
        ctx: &async_graphql::Context<'_>,
        input: RequestChatTranscriptEmailInput,
    ) -> async_graphql::Result<ChatWritten> {
        async {
            let chat_id = parse_chat_id("chatId", &input.chat_id)?;
            let address =
                EmailAddress::parse(&input.address).map_err(|e| AppError::invalid("address", e))?;
            let request_id = match &input.request_id {
                Some(id) => id
                    .parse::<EmailRequestId>()
                    .map_err(|e| AppError::invalid("requestId", e))?,
                None => EmailRequestId(uuid::Uuid::now_v7()),
            };
            let command = ChatCommand::RequestTranscriptEmail(RequestTranscriptEmail {
                request_id,
                ordered_by: input.ordered_by.into(),
                address,
            });
            write(ctx, chat_id, command, Some(request_id)).await
        }
        .await
        .map_err(gql_error)
    }
}

#[derive(Default)]
pub struct ChatQuery;

/// Most chat-start events one `chats` page scans.
const MAX_SCAN: usize = 20_000;

#[Object]
impl ChatQuery {
    /// One chat with its transcript and e-mail orders, for a stated
    /// purpose; logged before it is shown.
    async fn chat(
        &self,
        ctx: &async_graphql::Context<'_>,
        id: ID,
        purpose: String,
        reason: Option<String>,
        case_reference: Option<String>,
    ) -> async_graphql::Result<Option<ChatView>> {
        async {
            let (registry, caller) = caller(ctx).await?;
            let chat_id = parse_chat_id("id", &id)?;
            let purpose = parse_purpose(&purpose)?;
            let state = registry.load::<Chat>(&chat_id).await?.state;
            let Some(facts) = &state.chat else {
                return Ok(None);
            };
            let attempt = Attempt {
                purpose: Some(purpose),
                contact: Some(ContactRef::Chat(chat_id)),
                recording_id: None,
                case_reference: case_reference.clone(),
                reason: reason.clone(),
            };
            crate::access::open_contact(
                registry,
                &caller,
                &attempt,
                facts.agent.as_str(),
                state.controls.is_restricted(),
            )
            .await?;
            Ok(ChatView::from_state(&state))
        }
        .await
        .map_err(gql_error)
    }

    /// Chats the caller may see, oldest first: by agent and start time.
    /// (Read from the log's chat-start events, not a read model: fine for
    /// chat volumes; a page scans at most 20,000 of them.)
    async fn chats(
        &self,
        ctx: &async_graphql::Context<'_>,
        purpose: String,
        filter: Option<ChatFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ChatConnection> {
        async {
            let ChatFilter {
                agent_id,
                started_from,
                started_to,
            } = filter.unwrap_or_default();
            let (registry, caller) = caller(ctx).await?;
            let purpose = parse_purpose(&purpose)?;
            let limit = super::read::page_size(first)?;
            let attempt = Attempt::purpose(purpose);
            let crate::access::SearchScope {
                role,
                agents,
                restricted: restricted_ok,
            } = crate::access::search_scope(registry, &caller, &attempt).await?;
            let agent = agent_id
                .as_deref()
                .map(|a| StaffId::parse(a).map_err(|e| AppError::invalid("agentId", e)))
                .transpose()?;
            let mut cursor = HistoryFilter {
                event_type: Some("ChatStarted".into()),
                after: after
                    .as_deref()
                    .map(|a| {
                        a.parse::<u64>()
                            .map_err(|_| AppError::invalid("after", "is not a cursor"))
                    })
                    .transpose()?,
                ..HistoryFilter::default()
            };
            let mut items = Vec::new();
            let mut next_cursor = None;
            let mut scanned = 0;
            'pages: loop {
                let page = audit::history_page(registry, &cursor, 200, Some(MAX_SCAN)).await?;
                for e in &page.entries {
                    scanned += 1;
                    let Some(Event::ChatStarted(s)) = &e.event else {
                        continue;
                    };
                    let keep = agents.as_ref().is_none_or(|a| a.contains(&s.agent))
                        && agent.as_ref().is_none_or(|a| *a == s.agent)
                        && started_from.is_none_or(|t| s.started_at >= t)
                        && started_to.is_none_or(|t| s.started_at < t)
                        && (restricted_ok || !is_restricted(registry, s.chat_id).await?);
                    if keep {
                        items.push(ChatSummary {
                            id: ID(s.chat_id.to_string()),
                            agent_id: s.agent.to_string(),
                            service: s.service.clone(),
                            started_at: s.started_at,
                        });
                        if items.len() == limit {
                            next_cursor = Some(e.position.clone());
                            break 'pages;
                        }
                    }
                    if scanned >= MAX_SCAN {
                        next_cursor = Some(e.position.clone());
                        break 'pages;
                    }
                }
                match page.next {
                    Some(n) => cursor.after = Some(n),
                    None => break,
                }
            }
            let logged = Event::from(ContactHistorySearched {
                actor: caller.id.clone(),
                role: Some(role),
                purpose,
                case_reference: None,
                filter_fields: ["chats"]
                    .into_iter()
                    .chain(agent.as_ref().map(|_| "agentId"))
                    .chain((started_from.is_some() || started_to.is_some()).then_some("startedAt"))
                    .map(str::to_owned)
                    .collect(),
                results: items
                    .iter()
                    .filter_map(|i| i.id.parse().ok().map(ContactRef::Chat))
                    .collect(),
                searched_at: registry.now(),
            });
            crate::audio::record_access(registry, &caller.id, &[logged]).await?;
            Ok(ChatConnection { items, next_cursor })
        }
        .await
        .map_err(gql_error)
    }
}

async fn is_restricted(registry: &Registry, chat: ChatId) -> Result<bool, AppError> {
    Ok(registry
        .load::<Chat>(&chat)
        .await?
        .state
        .controls
        .is_restricted())
}
