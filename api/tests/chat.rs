//! Chats end to end: written by the chat system, read under the policy,
//! transcripts ordered by e-mail and delivered over real SMTP by the
//! outbox (retried, reported, never re-sent once recorded), and after
//! retention the transcript and the address are gone.

mod common;

use std::{sync::Arc, time::Duration};

use callvault::{
    config::{SmtpConfig, SmtpTls},
    outbox::{self, Mail, Mailer, Policy, SmtpMailer},
};
use callvault_domain::{EmailAddress, EmailRequestId};
use common::{TestApp, error_code, smtp::SmtpServer};
use serde_json::{Value, json};

const START: &str = "mutation($i: StartChatInput!) { startChat(input: $i) { chatId revision } }";
const SAY: &str =
    "mutation($i: AppendChatMessageInput!) { appendChatMessage(input: $i) { messages } }";
const END: &str = "mutation($i: EndChatInput!) { endChat(input: $i) { ended } }";
const ORDER: &str = "mutation($i: RequestChatTranscriptEmailInput!) { requestChatTranscriptEmail(input: $i) { requestId replayed } }";
const VIEW: &str = "query($id: ID!) { chat(id: $id, purpose: \"data_subject_request\") {
    agentId customerName restricted personalDataShredded
    transcript { seq from text } transcriptOrders { id orderedBy address status attempts lastError } } }";

fn mailer(server: &SmtpServer) -> SmtpMailer {
    SmtpMailer::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port: server.port,
        tls: SmtpTls::None,
        username: None,
        password_file: None,
        from: EmailAddress::parse("callvault@agency.example").unwrap(),
        max_attempts: 3,
        retry: Duration::from_millis(20),
    })
    .unwrap()
}

/// A chat between a customer and anna.agent, ended, with the transcript
/// ordered by the customer; (chat id, order id).
async fn ordered_chat(app: &TestApp) -> (String, String) {
    let started = app
        .gql(
            START,
            json!({"i": {"sourceSystem": "web", "sourceChatId": "c-1", "agentId": "anna.agent",
                   "service": "benefits", "customerName": "Maija Meikäläinen",
                   "startedAt": "2026-03-03T09:00:00Z"}}),
        )
        .await;
    let chat = started["data"]["startChat"]["chatId"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"))
        .to_owned();
    for (from, text, at) in [
        (
            "CUSTOMER",
            "Hei, missä hakemukseni on?",
            "2026-03-03T09:00:10Z",
        ),
        (
            "AGENT",
            "Se on käsittelyssä, päätös tulee ensi viikolla.",
            "2026-03-03T09:01:00Z",
        ),
    ] {
        let said = app
            .gql(
                SAY,
                json!({"i": {"chatId": chat, "from": from, "text": text, "sentAt": at}}),
            )
            .await;
        assert_eq!(said["errors"], Value::Null, "{said}");
    }
    let ended = app
        .gql(
            END,
            json!({"i": {"chatId": chat, "endedAt": "2026-03-03T09:02:00Z"}}),
        )
        .await;
    assert_eq!(ended["data"]["endChat"]["ended"], true, "{ended}");
    let ordered = app
        .gql(
            ORDER,
            json!({"i": {"chatId": chat, "orderedBy": "CUSTOMER", "address": "maija@example.fi"}}),
        )
        .await;
    let request = ordered["data"]["requestChatTranscriptEmail"]["requestId"]
        .as_str()
        .unwrap_or_else(|| panic!("{ordered}"))
        .to_owned();
    (chat, request)
}

/// Decodes a quoted-printable body (soft breaks and =XX escapes).
fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let mut bytes = Vec::new();
    let mut it = joined.bytes();
    while let Some(b) = it.next() {
        if b == b'=' {
            let hex: Vec<u8> = it.by_ref().take(2).collect();
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).unwrap()
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out");
}

async fn view(app: &TestApp, chat: &str) -> Value {
    let v = app.gql_as("kaisa.case", VIEW, json!({"id": chat})).await;
    assert_eq!(v["errors"], Value::Null, "{v}");
    v["data"]["chat"].clone()
}

#[tokio::test]
async fn an_ordered_transcript_arrives_by_smtp_once() {
    let app = TestApp::new().await;
    let server = SmtpServer::start(false).await;
    let (chat, request) = ordered_chat(&app).await;
    assert_eq!(
        view(&app, &chat).await["transcriptOrders"][0]["status"],
        "PENDING"
    );

    let worker = tokio::spawn(outbox::run(
        app.registry.clone(),
        Arc::new(mailer(&server)),
        Policy {
            max_attempts: 3,
            retry: Duration::from_millis(20),
        },
    ));
    wait_for(|| !server.received().is_empty()).await;
    let (rcpt, data) = &server.received()[0];
    assert_eq!(rcpt, &["<maija@example.fi>"]);
    let body = quoted_printable(data.split_once("\n\n").map_or("", |(_, b)| b));
    assert!(
        body.contains("[09:00] You: Hei, missä hakemukseni on?"),
        "{body}"
    );
    assert!(body.contains("[09:01] Agent: Se on käsittelyssä"), "{body}");
    assert!(
        data.contains(&format!("Message-ID: <{request}.{chat}@callvault>")),
        "{data}"
    );
    // Recorded as sent; no second mail however long the worker runs.
    for _ in 0..200 {
        if view(&app, &chat).await["transcriptOrders"][0]["status"] == "SENT" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        view(&app, &chat).await["transcriptOrders"][0]["status"],
        "SENT"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.received().len(), 1);
    worker.abort();
    // The order and the mail are disclosures in the log of use, by whom,
    // of which chat — never the address.
    let audit = app
        .gql_as(
            "aino.auditor",
            "{ accessAudit { items { kind actorId chatId detail } } }",
            json!({}),
        )
        .await;
    let items = audit["data"]["accessAudit"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{audit}"));
    for (kind, actor) in [
        ("TRANSCRIPT_ORDERED", "test.operator"),
        ("TRANSCRIPT_EMAILED", "system.outbox"),
    ] {
        let row = items
            .iter()
            .find(|i| i["kind"] == kind)
            .unwrap_or_else(|| panic!("{kind} missing: {audit}"));
        assert_eq!(row["actorId"], actor, "{row}");
        assert_eq!(row["chatId"], chat.as_str(), "{row}");
    }
    assert!(!audit.to_string().contains("maija@example.fi"), "{audit}");

    // A restarted outbox follows the log from the start: the order is
    // already recorded as sent, so nothing goes out again.
    let again = tokio::spawn(outbox::run(
        app.registry.clone(),
        Arc::new(mailer(&server)),
        Policy {
            max_attempts: 3,
            retry: Duration::from_millis(20),
        },
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    again.abort();
    assert_eq!(server.received().len(), 1);
    let emailed = app
        .types()
        .await
        .into_iter()
        .filter(|t| t == "ChatTranscriptEmailed")
        .count();
    assert_eq!(emailed, 1);
}

#[tokio::test]
async fn a_refusing_server_is_retried_then_reported_failed() {
    let app = TestApp::new().await;
    let server = SmtpServer::start(true).await;
    let (chat, _) = ordered_chat(&app).await;
    let worker = tokio::spawn(outbox::run(
        app.registry.clone(),
        Arc::new(mailer(&server)),
        Policy {
            max_attempts: 3,
            retry: Duration::from_millis(20),
        },
    ));
    for _ in 0..300 {
        if view(&app, &chat).await["transcriptOrders"][0]["status"] == "FAILED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.abort();
    let order = &view(&app, &chat).await["transcriptOrders"][0];
    assert_eq!(order["status"], "FAILED", "{order}");
    assert_eq!(order["attempts"], 3);
    let error = order["lastError"].as_str().unwrap();
    assert!(error.contains("554"), "{error}");
    assert!(!error.contains("maija@example.fi"), "{error}");
    assert!(server.received().is_empty());
    let failures = app
        .types()
        .await
        .into_iter()
        .filter(|t| t == "ChatTranscriptEmailFailed")
        .count();
    assert_eq!(failures, 3);
}

/// A mailer that delivers, then "crashes" before the outcome is recorded.
struct SendThenCrash(SmtpMailer);

#[async_trait::async_trait]
impl Mailer for SendThenCrash {
    async fn send(&self, mail: &Mail) -> Result<(), String> {
        self.0.send(mail).await?;
        panic!("crash between the SMTP server's 250 and the durable record");
    }
}

#[tokio::test]
async fn a_crash_between_send_and_record_resends_with_the_same_message_id() {
    let app = TestApp::new().await;
    let server = SmtpServer::start(false).await;
    let (chat, request) = ordered_chat(&app).await;
    let crashing = tokio::spawn(outbox::run(
        app.registry.clone(),
        Arc::new(SendThenCrash(mailer(&server))),
        Policy {
            max_attempts: 3,
            retry: Duration::from_millis(20),
        },
    ));
    assert!(crashing.await.is_err(), "the worker crashed");
    assert_eq!(server.received().len(), 1);
    assert_eq!(
        view(&app, &chat).await["transcriptOrders"][0]["status"],
        "PENDING"
    );

    let worker = tokio::spawn(outbox::run(
        app.registry.clone(),
        Arc::new(mailer(&server)),
        Policy {
            max_attempts: 3,
            retry: Duration::from_millis(20),
        },
    ));
    wait_for(|| server.received().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.abort();
    // At least once: SMTP can't take back the first mail; both carry the
    // same Message-ID, so the recipient's mail system shows one.
    let ids: Vec<String> = server
        .received()
        .iter()
        .map(|(_, d)| {
            d.lines()
                .find(|l| l.starts_with("Message-ID:"))
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert!(ids[0].contains(&request));
    assert_eq!(server.received().len(), 2);
    assert_eq!(
        view(&app, &chat).await["transcriptOrders"][0]["status"],
        "SENT"
    );
}

#[tokio::test]
async fn chats_are_read_under_the_policy_and_shredded_by_retention() {
    let app = TestApp::new().await;
    let (chat, request) = ordered_chat(&app).await;
    // A malformed address is refused, naming the field; nothing written.
    let before = app.head().await;
    let bad = app
        .gql(
            ORDER,
            json!({"i": {"chatId": chat, "orderedBy": "AGENT", "address": "anna@@x"}}),
        )
        .await;
    assert_eq!(error_code(&bad), "INVALID_INPUT");
    assert_eq!(bad["errors"][0]["extensions"]["field"], "address");
    assert_eq!(app.head().await, before);

    // Anna handled it; Bob didn't; the telephony side reads nothing.
    let read = app
        .gql_as(
            "anna.agent",
            "query($id: ID!) { chat(id: $id, purpose: \"verification\") { transcript { text } } }",
            json!({"id": chat}),
        )
        .await;
    assert_eq!(
        read["data"]["chat"]["transcript"][0]["text"], "Hei, missä hakemukseni on?",
        "{read}"
    );
    let refused = app
        .gql_as(
            "bob.agent",
            "query($id: ID!) { chat(id: $id, purpose: \"verification\") { agentId } }",
            json!({"id": chat}),
        )
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let listed = app
        .gql_as(
            "bob.agent",
            "{ chats(purpose: \"verification\") { items { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["data"]["chats"]["items"], json!([]), "{listed}");
    let listed = app
        .gql_as(
            "sue.supervisor",
            "{ chats(purpose: \"quality\") { items { id agentId } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["data"]["chats"]["items"][0]["id"],
        chat.as_str(),
        "{listed}"
    );
    let case = view(&app, &chat).await;
    assert_eq!(case["transcriptOrders"][0]["id"], request.as_str());
    assert_eq!(case["transcriptOrders"][0]["address"], "maija@example.fi");
    assert_eq!(case["customerName"], "Maija Meikäläinen");

    // The stored log holds neither the transcript nor the address in clear.
    for e in app.store.read_all(None, 1000).await.unwrap() {
        let text = String::from_utf8_lossy(&e.payload);
        assert!(!text.contains("hakemukseni"), "{}", e.event_type);
        assert!(!text.contains("maija@example.fi"), "{}", e.event_type);
    }

    // Twelve months after the chat: purged, key destroyed.
    app.set_now("2027-03-05T03:00:00Z");
    callvault::retention::run(
        &app.registry,
        "2027-03-05T03:00:00Z".parse().unwrap(),
        false,
        None,
    )
    .await
    .unwrap();
    let gone = view(&app, &chat).await;
    assert_eq!(gone["personalDataShredded"], true, "{gone}");
    assert_eq!(gone["transcript"][0]["text"], Value::Null);
    assert_eq!(gone["customerName"], Value::Null);
    assert_eq!(gone["transcriptOrders"][0]["address"], Value::Null);
    // An order still pending then can't be sent: reported, not crashed.
    let id: EmailRequestId = request.parse().unwrap();
    let state = app
        .registry
        .load::<callvault::service::Chat>(&chat.parse().unwrap())
        .await
        .unwrap()
        .state;
    let why = outbox::compose(&state, id).unwrap_err();
    assert!(why.contains("purged"), "{why}");
}

/// Counts what it is asked to send.
#[derive(Default)]
struct Counting(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl Mailer for Counting {
    async fn send(&self, mail: &Mail) -> Result<(), String> {
        self.0.lock().unwrap().push(mail.message_id.clone());
        Ok(())
    }
}

#[tokio::test]
async fn an_order_waits_while_the_chats_processing_is_restricted() {
    use callvault_domain::{
        ChatId, StaffId,
        chat::ChatCommand,
        controls::{LiftRestriction, RestrictProcessing},
    };
    let app = TestApp::new().await;
    let (chat, request) = ordered_chat(&app).await;
    let chat_id: ChatId = chat.parse().unwrap();
    let request_id: EmailRequestId = request.parse().unwrap();
    let case = StaffId::parse("kaisa.case").unwrap();
    app.registry
        .execute::<callvault::service::Chat>(
            &case,
            &chat_id,
            ChatCommand::RestrictProcessing(RestrictProcessing {
                case_reference: "DSR-9".into(),
                reason: "accuracy contested".into(),
            }),
            None,
        )
        .await
        .unwrap();
    let policy = Policy {
        max_attempts: 3,
        retry: Duration::from_millis(20),
    };
    let mailer = Counting::default();
    let held = outbox::attempt(&app.registry, &mailer, policy, chat_id, request_id, false)
        .await
        .unwrap();
    assert!(held.is_some(), "held, to be looked at again");
    assert!(mailer.0.lock().unwrap().is_empty(), "nothing sent (R19)");
    assert_eq!(
        view(&app, &chat).await["transcriptOrders"][0]["status"],
        "PENDING"
    );
    app.registry
        .execute::<callvault::service::Chat>(
            &case,
            &chat_id,
            ChatCommand::LiftRestriction(LiftRestriction {
                subject_informed_at: "2026-03-03T10:00:00Z".parse().unwrap(),
                reason: "resolved".into(),
            }),
            None,
        )
        .await
        .unwrap();
    let done = outbox::attempt(&app.registry, &mailer, policy, chat_id, request_id, false)
        .await
        .unwrap();
    assert_eq!(done, None);
    assert_eq!(
        *mailer.0.lock().unwrap(),
        [outbox::message_id(chat_id, request_id)]
    );
}

#[tokio::test]
async fn a_resent_message_with_its_id_is_recognised_not_appended_twice() {
    let app = TestApp::new().await;
    let started = app
        .gql(
            START,
            json!({"i": {"sourceSystem": "web", "sourceChatId": "c-9", "agentId": "anna.agent",
                   "service": "benefits", "startedAt": "2026-03-03T09:00:00Z"}}),
        )
        .await;
    let chat = started["data"]["startChat"]["chatId"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"))
        .to_owned();
    let say = |id: &'static str, text: &'static str| {
        let app = &app;
        let chat = chat.clone();
        async move {
            app.gql(
                "mutation($i: AppendChatMessageInput!) { appendChatMessage(input: $i) { messages replayed } }",
                json!({"i": {"chatId": chat, "from": "CUSTOMER", "text": text,
                       "sentAt": "2026-03-03T09:00:30Z", "messageId": id}}),
            )
            .await
        }
    };
    let first = say("m-1", "Hei!").await;
    assert_eq!(
        first["data"]["appendChatMessage"]["replayed"], false,
        "{first}"
    );
    let again = say("m-1", "Hei!").await;
    assert_eq!(
        again["data"]["appendChatMessage"]["replayed"], true,
        "{again}"
    );
    assert_eq!(again["data"]["appendChatMessage"]["messages"], 1, "{again}");
    // The same id with other words is not a resend.
    let other = say("m-1", "Moi!").await;
    assert_eq!(error_code(&other), "CONFLICT", "{other}");
    // Another id is another message.
    let second = say("m-2", "Hei!").await;
    assert_eq!(
        second["data"]["appendChatMessage"]["messages"], 2,
        "{second}"
    );
    assert_eq!(
        view(&app, &chat).await["transcript"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

/// A chat's hold id is used once, as a call's: a resend while the hold is
/// in force is answered as done; once released, the same id is a
/// CONFLICT, not "done".
#[tokio::test]
async fn a_chat_hold_resent_after_its_release_is_a_conflict_not_a_replay() {
    use callvault::error::AppError;
    use callvault_domain::{
        ChatId, HoldId, StaffId,
        chat::ChatCommand,
        controls::{PlaceHold, ReleaseHold},
    };
    let app = TestApp::new().await;
    let (chat, _) = ordered_chat(&app).await;
    let chat_id: ChatId = chat.parse().unwrap();
    let case = StaffId::parse("kaisa.case").unwrap();
    let hold_id = HoldId("0192f6a0-58c1-7000-8000-0000000000cc".parse().unwrap());
    let place = ChatCommand::PlaceHold(PlaceHold {
        hold_id,
        case_reference: "KELA/9/2026".into(),
        reason: "complaint".into(),
        review_by: "2027-06-01".parse().unwrap(),
    });
    let execute = |command: ChatCommand| {
        let (registry, case) = (app.registry.clone(), case.clone());
        async move {
            registry
                .execute::<callvault::service::Chat>(&case, &chat_id, command, None)
                .await
        }
    };
    assert!(!execute(place.clone()).await.unwrap().replayed);
    assert!(execute(place.clone()).await.unwrap().replayed, "a resend");
    execute(ChatCommand::ReleaseHold(ReleaseHold {
        hold_id,
        reason: "settled".into(),
    }))
    .await
    .unwrap();
    let head = app.head().await;
    match execute(place).await {
        Err(AppError::Conflict(message)) => assert!(message.contains("undone"), "{message}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(app.head().await, head, "a refusal writes nothing");
}
