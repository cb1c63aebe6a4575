//! The chat-transcript outbox: inside `serve`, sends every ordered
//! transcript by SMTP and records the outcome as an event.
//!
//! The outbox *is* the log: an order is pending while its chat's stream
//! holds `ChatTranscriptEmailRequested` and no `ChatTranscriptEmailed` or
//! final `ChatTranscriptEmailFailed`. The worker follows `$all` from the
//! start (no state of its own to lose), and before every send re-reads the
//! chat's stream, so an order already recorded as sent is never sent
//! again. What remains is SMTP's own edge: a crash after the server
//! accepted the mail and before `ChatTranscriptEmailed` is durable sends it
//! once more on restart. The resend carries the same `Message-ID`
//! (`<order id@callvault>`), so mail clients and servers that deduplicate
//! by it show one message. This is at-least-once, not exactly-once.
//!
//! Failures are retried with exponential backoff (`smtp.retry_seconds`,
//! doubling, at most an hour apart) and reported as failed for good after
//! `smtp.max_attempts`. Errors are recorded as the server said them, with
//! the recipient's address blanked out.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use callvault_domain::{
    ChatId, EmailAddress, EmailRequestId, Event, StaffId,
    chat::{
        ChatCommand, ChatParty, ChatState, EmailStatus, RecordTranscriptEmailFailed,
        RecordTranscriptEmailed,
    },
};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::authentication::Credentials,
};
use tokio::time::Instant;

use crate::{
    config::{SmtpConfig, SmtpTls},
    error::AppError,
    service::{Chat, Registry},
};

/// One mail to send.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: EmailAddress,
    pub subject: String,
    pub body: String,
    pub message_id: String,
}

/// Something that delivers mail (SMTP in the product).
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Delivers, or says why not (no address or transcript in the reason).
    async fn send(&self, mail: &Mail) -> Result<(), String>;
}

/// Delivery over SMTP with lettre.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    pub fn new(config: &SmtpConfig) -> anyhow::Result<Self> {
        let builder = match config.tls {
            SmtpTls::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)?
            }
            SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        };
        let mut builder = builder
            .port(config.port)
            .timeout(Some(Duration::from_secs(30)));
        if let Some(user) = &config.username {
            let password = match &config.password_file {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("smtp.password_file {}: {e}", path.display()))?
                    .trim_end()
                    .to_owned(),
                None => String::new(),
            };
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let from: Mailbox = config
            .from
            .as_str()
            .parse()
            .map_err(|e| anyhow::anyhow!("smtp.from: {e}"))?;
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), String> {
        let hide = |e: String| scrub(&e, mail.to.as_str());
        let to: Mailbox = mail
            .to
            .as_str()
            .parse()
            .map_err(|e: lettre::address::AddressError| hide(e.to_string()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(mail.message_id.clone()))
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| hide(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| hide(e.to_string()))
    }
}

/// `text` with `address` blanked out, in whatever ASCII case a server
/// echoed it (the failure text is stored in the immutable log).
pub fn scrub(text: &str, address: &str) -> String {
    if address.is_empty() {
        return text.to_owned();
    }
    // ASCII case only, so byte offsets in `lower` are those in `text`.
    let (lower, to) = (text.to_ascii_lowercase(), address.to_ascii_lowercase());
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in lower.match_indices(&to) {
        out.push_str(&text[rest..at]);
        out.push_str("<recipient>");
        rest = at + to.len();
    }
    out.push_str(&text[rest..]);
    out
}

/// The `Message-ID` of an order's mail: the same on every attempt, and
/// distinct across chats (request ids are unique only within a chat).
pub fn message_id(chat: ChatId, request: EmailRequestId) -> String {
    format!("<{request}.{chat}@callvault>")
}

/// The mail for one order, or why it can't be written (the chat's
/// personal data was purged).
pub fn compose(state: &ChatState, request: EmailRequestId) -> Result<Mail, String> {
    let chat = state.chat.as_ref().ok_or("the chat does not exist")?;
    let chat_id = chat.chat_id;
    let order = state.email_requests.get(&request).ok_or("no such order")?;
    let to = order
        .address
        .clear()
        .cloned()
        .ok_or("the chat's personal data was purged: the address is gone")?;
    let mut body = format!(
        "Transcript of your chat with {} ({}), started {}.\n\n",
        chat.service,
        chat.agent,
        chat.started_at.format("%Y-%m-%d %H:%M UTC")
    );
    for m in &state.messages {
        let who = match m.from {
            ChatParty::Customer => "You",
            ChatParty::Agent => "Agent",
        };
        let text = m
            .text
            .clear()
            .ok_or("the chat's personal data was purged: the transcript is gone")?;
        body.push_str(&format!("[{}] {who}: {text}\n", m.sent_at.format("%H:%M")));
    }
    Ok(Mail {
        to,
        subject: format!("Chat transcript {}", chat.started_at.format("%Y-%m-%d")),
        body,
        message_id: message_id(chat_id, request),
    })
}

/// How the worker retries.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_attempts: u32,
    pub retry: Duration,
}

impl Policy {
    /// The wait after the `attempts`-th failure.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.saturating_sub(1).min(16);
        (self.retry * factor).min(Duration::from_secs(3600))
    }
}

/// An order waiting: when it is due, and whether its mail already went
/// out but could not be recorded (then only the record is retried — the
/// mail is not sent again by this process).
#[derive(Debug, Clone, Copy)]
struct Due {
    at: Instant,
    sent: bool,
}

/// The orders waiting, by chat and request (a request id is unique only
/// within its chat).
#[derive(Debug, Default)]
struct Pending {
    orders: BTreeMap<(ChatId, EmailRequestId), Due>,
}

/// How long an order waits while its chat is still open or its
/// processing restricted, before it is looked at again.
const HELD_RECHECK: Duration = Duration::from_secs(60);

/// Why an attempt could not be finished.
#[derive(Debug)]
pub struct AttemptError {
    pub error: AppError,
    /// The mail went out; only recording it failed.
    pub sent: bool,
}

fn actor() -> StaffId {
    StaffId::system("outbox")
}

/// Tries one order once; returns when to try again, if ever. With
/// `already_sent`, the mail went out on an earlier try and only its
/// record is written now.
pub async fn attempt(
    registry: &Registry,
    mailer: &dyn Mailer,
    policy: Policy,
    chat_id: ChatId,
    request: EmailRequestId,
    already_sent: bool,
) -> Result<Option<Duration>, AttemptError> {
    let unsent = |error| AttemptError { error, sent: false };
    let state = registry.load::<Chat>(&chat_id).await.map_err(unsent)?.state;
    let Some(order) = state.email_requests.get(&request) else {
        return Ok(None);
    };
    if order.status != EmailStatus::Pending {
        return Ok(None);
    }
    if !already_sent {
        // Not while the chat goes on (the transcript would be cut short),
        // nor while its processing is restricted (R19): the order waits.
        let open = state.chat.as_ref().is_some_and(|c| c.ended_at.is_none());
        if open || state.controls.is_restricted() {
            tracing::info!(%chat_id, %request, open, "chat transcript order held");
            return Ok(Some(HELD_RECHECK));
        }
    }
    let attempts = order.attempts + 1;
    let outcome = if already_sent {
        Ok(())
    } else {
        match compose(&state, request) {
            Ok(mail) => mailer.send(&mail).await.map_err(|e| (e, false)),
            Err(why) => Err((why.to_owned(), true)),
        }
    };
    match outcome {
        Ok(()) => {
            registry
                .execute::<Chat>(
                    &actor(),
                    &chat_id,
                    ChatCommand::RecordTranscriptEmailed(RecordTranscriptEmailed {
                        request_id: request,
                        message_id: message_id(chat_id, request),
                    }),
                    None,
                )
                .await
                .map_err(|error| AttemptError { error, sent: true })?;
            tracing::info!(%chat_id, %request, "chat transcript e-mailed");
            Ok(None)
        }
        Err((error, hopeless)) => {
            let gave_up = hopeless || attempts >= policy.max_attempts;
            registry
                .execute::<Chat>(
                    &actor(),
                    &chat_id,
                    ChatCommand::RecordTranscriptEmailFailed(RecordTranscriptEmailFailed {
                        request_id: request,
                        error: error.clone(),
                        gave_up,
                    }),
                    None,
                )
                .await
                .map_err(unsent)?;
            tracing::warn!(%chat_id, %request, attempts, gave_up, error, "chat transcript not sent");
            Ok((!gave_up).then(|| policy.backoff(attempts)))
        }
    }
}

/// Runs the outbox until the process ends. If it loses the log, it
/// follows it again from where it was.
pub async fn run(registry: Registry, mailer: Arc<dyn Mailer>, policy: Policy) {
    let mut pending = Pending::default();
    let mut seen: Option<callvault_store::Position> = None;
    // Catch up before sending, so orders already sent are known as such.
    let head = registry.store().head_position().await.ok().flatten();
    let mut caught_up = head.is_none();
    loop {
        let mut subscription = match registry.store().subscribe_all(seen).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "the chat outbox can't follow the log; trying again in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        loop {
            let next_due = pending.orders.values().map(|d| d.at).min();
            let wait = next_due.map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(Instant::now())
            });
            tokio::select! {
                event = subscription.next() => {
                    let recorded = match event {
                        Some(Ok(r)) => r,
                        Some(Err(e)) => {
                            tracing::error!(error = %e, "the chat outbox lost the log; following it again in 5 s");
                            break;
                        }
                        None => {
                            tracing::error!("the chat outbox's subscription ended; following the log again in 5 s");
                            break;
                        }
                    };
                    seen = Some(recorded.position);
                    if head.is_some_and(|h| recorded.position >= h) {
                        caught_up = true;
                    }
                    if recorded.event_type.starts_with("ChatTranscriptEmail") {
                        match registry.journal().decode(&recorded) {
                            Ok(Event::ChatTranscriptEmailRequested(e)) => {
                                pending.orders.insert(
                                    (e.chat_id, e.request_id),
                                    Due { at: Instant::now(), sent: false },
                                );
                            }
                            Ok(Event::ChatTranscriptEmailed(e)) => {
                                pending.orders.remove(&(e.chat_id, e.request_id));
                            }
                            Ok(Event::ChatTranscriptEmailFailed(e)) if e.gave_up => {
                                pending.orders.remove(&(e.chat_id, e.request_id));
                            }
                            Ok(_) => {}
                            // Never silently: an order it cannot read is one
                            // it would never send.
                            Err(e) => tracing::error!(
                                position = %recorded.position,
                                event_type = %recorded.event_type,
                                error = %e.reason,
                                "the chat outbox cannot read an order event"
                            ),
                        }
                    }
                }
                () = tokio::time::sleep(wait), if caught_up && next_due.is_some() => {
                    let now = Instant::now();
                    let due: Vec<_> = pending
                        .orders
                        .iter()
                        .filter(|(_, d)| d.at <= now)
                        .map(|(key, d)| (*key, d.sent))
                        .collect();
                    for ((chat, request), sent) in due {
                        let key = (chat, request);
                        match attempt(&registry, mailer.as_ref(), policy, chat, request, sent).await {
                            Ok(Some(again)) => {
                                pending.orders.insert(key, Due { at: Instant::now() + again, sent: false });
                            }
                            Ok(None) => {
                                pending.orders.remove(&key);
                            }
                            Err(e) => {
                                e.error.log();
                                tracing::warn!(%request, sent = e.sent, error = %e.error, "the outbox could not record an attempt; retrying");
                                pending.orders.insert(
                                    key,
                                    Due { at: Instant::now() + policy.backoff(1), sent: sent || e.sent },
                                );
                            }
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn an_echoed_address_is_blanked_in_any_case() {
        assert_eq!(
            scrub(
                "550 <Maija@Example.FI>: no such user (maija@example.fi)",
                "maija@example.fi"
            ),
            "550 <<recipient>>: no such user (<recipient>)"
        );
        assert_eq!(
            scrub("451 try later — ääkköset", "maija@example.fi"),
            "451 try later — ääkköset"
        );
    }
}
