//! Sample events and commands, one of each kind, for tests across the
//! workspace (codec round trips, sealing, golden fixtures). Deterministic:
//! fixed ids and times.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use uuid::Uuid;

use crate::{
    access::event::*, call::event::*, chat::event::*, contact::ContactRef, email::EmailAddress,
    event::Event, ids::*, personal::Personal, phone::PhoneNumber, role::*, staff::event::*,
};

pub fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 3, hour, minute, 0)
        .single()
        .unwrap_or_default()
}

pub fn call_id() -> CallId {
    CallId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001))
}

pub fn recording_id() -> RecordingId {
    RecordingId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002))
}

pub fn chat_id() -> ChatId {
    ChatId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0003))
}

pub fn hold_id() -> HoldId {
    HoldId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0004))
}

pub fn request_id() -> EmailRequestId {
    EmailRequestId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0005))
}

pub fn staff(name: &str) -> StaffId {
    StaffId::parse(name).unwrap_or_else(|_| StaffId::system("sample"))
}

pub fn caller() -> PhoneNumber {
    PhoneNumber::parse("040 123 4567").unwrap_or_else(|_| unreachable!())
}

pub fn service_number() -> PhoneNumber {
    PhoneNumber::parse("0295 50 2000").unwrap_or_else(|_| unreachable!())
}

fn text(s: &str) -> Personal<String> {
    Personal::new(s.to_owned())
}

/// One event of every stored type, in `EVENT_TYPES` order.
pub fn one_of_each() -> Vec<Event> {
    let call = ContactRef::Call(call_id());
    let date = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap_or_default();
    vec![
        CallStarted {
            call_id: call_id(),
            direction: Direction::Inbound,
            caller: Some(Personal::new(caller())),
            service_number: service_number(),
            agent: staff("anna.agent"),
            agent_name: text("Anna Agent"),
            agent_number: Some(Personal::new(
                PhoneNumber::parse("+358 29 550 2001").unwrap_or_else(|_| unreachable!()),
            )),
            started_at: at(9, 0),
        }
        .into(),
        CallEnded {
            call_id: call_id(),
            ended_at: at(9, 7),
        }
        .into(),
        RecordingStored {
            call_id: call_id(),
            recording_id: recording_id(),
            media_type: "audio/wav".into(),
            duration_ms: Some(420_000),
            size_bytes: 13_440_044,
            ciphertext_sha256: "ab".repeat(32),
            stored_at: at(9, 8),
        }
        .into(),
        RecordingPurged {
            call_id: call_id(),
            recording_id: recording_id(),
            reason: PurgeReason::RetentionExpired,
            policy_version: 1,
            key_bucket: "2027-03-03".into(),
            purged_at: at(10, 0),
        }
        .into(),
        ContactHistoryPurged {
            contact: call,
            reason: PurgeReason::RetentionExpired,
            policy_version: 1,
            key_bucket: "2027-03-03".into(),
            purged_at: at(10, 0),
        }
        .into(),
        HoldPlaced {
            contact: call,
            hold_id: hold_id(),
            case_reference: "KELA/123/2026".into(),
            reason: text("complaint about the decision"),
            review_by: date,
            placed_at: at(9, 30),
        }
        .into(),
        HoldReleased {
            contact: call,
            hold_id: hold_id(),
            reason: text("complaint settled"),
            released_at: at(9, 40),
        }
        .into(),
        CallRectified {
            call_id: call_id(),
            correction: Correction::Caller(Personal::new(caller())),
            reason: text("wrong number recorded"),
            rectified_at: at(9, 45),
        }
        .into(),
        ProcessingRestricted {
            contact: call,
            case_reference: "KELA/124/2026".into(),
            reason: text("accuracy contested"),
            restricted_at: at(9, 50),
        }
        .into(),
        RestrictionLifted {
            contact: call,
            subject_informed_at: at(9, 51),
            reason: text("accuracy verified"),
            lifted_at: at(9, 55),
        }
        .into(),
        ChatStarted {
            chat_id: chat_id(),
            agent: staff("anna.agent"),
            service: "benefits".into(),
            customer_name: Some(text("Matti Meikäläinen")),
            started_at: at(11, 0),
        }
        .into(),
        ChatMessageAppended {
            chat_id: chat_id(),
            seq: 0,
            from: ChatParty::Customer,
            text: text("Hello, my benefit payment is late."),
            sent_at: at(11, 1),
        }
        .into(),
        ChatEnded {
            chat_id: chat_id(),
            ended_at: at(11, 10),
        }
        .into(),
        ChatTranscriptEmailRequested {
            chat_id: chat_id(),
            request_id: request_id(),
            ordered_by: ChatParty::Customer,
            address: Personal::new(
                EmailAddress::parse("matti@example.fi").unwrap_or_else(|_| unreachable!()),
            ),
            requested_at: at(11, 9),
        }
        .into(),
        ChatTranscriptEmailed {
            chat_id: chat_id(),
            request_id: request_id(),
            message_id: "<1@callvault>".into(),
            sent_at: at(11, 11),
        }
        .into(),
        ChatTranscriptEmailFailed {
            chat_id: chat_id(),
            request_id: request_id(),
            attempt: 1,
            error: "451 try again later".into(),
            gave_up: false,
            failed_at: at(11, 11),
        }
        .into(),
        RoleGranted {
            staff_id: staff("sue.supervisor"),
            role: Role::Supervisor,
            supervises: vec![staff("anna.agent")],
            decision_reference: Some("HR/7/2026".into()),
            granted_at: at(8, 0),
        }
        .into(),
        RoleRevoked {
            staff_id: staff("sue.supervisor"),
            role: Role::Supervisor,
            decision_reference: None,
            revoked_at: at(12, 0),
        }
        .into(),
        AccessRightsReviewed {
            staff_id: staff("sue.supervisor"),
            removed: vec![Role::Analyst],
            next_review_by: date,
            reviewed_at: at(12, 5),
        }
        .into(),
        RecordingAccessed {
            actor: staff("sue.supervisor"),
            role: Some(Role::Supervisor),
            call_id: call_id(),
            recording_id: recording_id(),
            purpose: Purpose::Quality,
            mode: AccessMode::Listen,
            case_reference: None,
            reason: Some(text("monthly quality sample")),
            break_glass: false,
            accessed_at: at(9, 20),
        }
        .into(),
        ContactHistoryRead {
            actor: staff("sue.supervisor"),
            role: Some(Role::Supervisor),
            contact: call,
            purpose: Purpose::Quality,
            case_reference: None,
            reason: None,
            break_glass: false,
            read_at: at(9, 19),
        }
        .into(),
        ContactHistorySearched {
            actor: staff("ada.analyst"),
            role: Some(Role::Analyst),
            purpose: Purpose::Quality,
            case_reference: None,
            filter_fields: vec!["service_number".into()],
            results: vec![call],
            searched_at: at(9, 18),
        }
        .into(),
        AccessDenied {
            actor: staff("anna.agent"),
            role: Some(Role::Agent),
            action: "play_recording".into(),
            contact: Some(call),
            recording_id: Some(recording_id()),
            purpose: Some(Purpose::Verification),
            case_reference: None,
            rule: "agents see only their own calls".into(),
            denied_at: at(9, 21),
        }
        .into(),
        crate::register::LogCheckpointSigned {
            position: 42,
            events: 42,
            digest: "cd".repeat(32),
            public_key: "ef".repeat(32),
            signature: "01".repeat(64),
            signed_at: at(9, 30),
        }
        .into(),
    ]
}
