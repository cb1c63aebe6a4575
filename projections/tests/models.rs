//! Each read model folded over a fixed log gives the expected view.

use callvault_domain::{
    CallId, ContactRef, Event, HoldId, PhoneNumber, Purpose, RecordingId, RetentionPolicy, Role,
    StaffId,
    access::{AccessDenied, AccessMode, RecordingAccessed},
    call::*,
    personal::Personal,
    staff::{AccessRightsReviewed, RoleGranted, RoleRevoked},
};
use callvault_projections::{
    Envelope, Projection,
    models::{access_audit, calls, retention, staff_rights, stats, subjects},
    view::{BuildMeta, ViewDb},
};
use callvault_store::Position;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};

fn t(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, h, m, 0).unwrap()
}

fn id(n: u128) -> CallId {
    CallId(uuid::Uuid::from_u128(n))
}

fn rec(n: u128) -> RecordingId {
    RecordingId(uuid::Uuid::from_u128(1000 + n))
}

fn staff(s: &str) -> StaffId {
    StaffId::parse(s).unwrap()
}

fn phone(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s).unwrap()
}

fn started(n: u128, caller: &str, service: &str, agent: &str, at: DateTime<Utc>) -> Event {
    CallStarted {
        call_id: id(n),
        direction: if n.is_multiple_of(2) {
            Direction::Outbound
        } else {
            Direction::Inbound
        },
        caller: Some(Personal::new(phone(caller))),
        service_number: phone(service),
        agent: staff(agent),
        agent_name: Personal::new(agent.to_uppercase()),
        agent_number: None,
        started_at: at,
    }
    .into()
}

fn ended(n: u128, at: DateTime<Utc>) -> Event {
    CallEnded {
        call_id: id(n),
        ended_at: at,
    }
    .into()
}

fn stored(n: u128, r: u128, at: DateTime<Utc>) -> Event {
    RecordingStored {
        call_id: id(n),
        recording_id: rec(r),
        media_type: "audio/wav".into(),
        duration_ms: None,
        size_bytes: 10,
        ciphertext_sha256: "ab".repeat(32),
        stored_at: at,
    }
    .into()
}

/// Folds `events` into `view` as one commit, the first at `first`.
fn fold_more(projection: &dyn Projection, view: &ViewDb, events: &[Event], first: u64) {
    let mut tx = view.tx();
    for (i, e) in events.iter().enumerate() {
        projection
            .apply(
                &mut tx,
                &Envelope {
                    position: Position::sequence(first + i as u64),
                    stream: e.stream_name(),
                    revision: 0,
                    recorded_at: e.occurred_at(),
                    actor: "tester".into(),
                    event: e.clone(),
                },
            )
            .unwrap();
    }
    tx.commit(Position::sequence(first + events.len() as u64 - 1))
        .unwrap();
}

fn fold(projection: &dyn Projection, events: &[Event]) -> (tempfile::TempDir, ViewDb) {
    let dir = tempfile::tempdir().unwrap();
    let view = ViewDb::open(
        &dir.path().join("build"),
        BuildMeta {
            name: projection.name().into(),
            version: projection.version(),
            config: projection.config(),
        },
        projection.cache_bytes(),
    )
    .unwrap();
    // Two batches, to cover reads of a previous batch's writes as well as
    // of the same batch's.
    let half = events.len() / 2;
    fold_more(projection, &view, &events[..half], 1);
    fold_more(projection, &view, &events[half..], half as u64 + 1);
    (dir, view)
}

fn call_log() -> Vec<Event> {
    vec![
        started(1, "040 123 4567", "0295 50 2000", "anna", t(3, 9, 0)),
        ended(1, t(3, 9, 2)),
        stored(1, 1, t(3, 9, 3)),
        started(2, "+358 40 123 4567", "0295 50 2000", "bob", t(3, 10, 0)),
        ended(2, t(3, 10, 10)),
        started(3, "050 765 4321", "0295 50 3000", "anna", t(4, 11, 0)),
        ended(3, t(4, 11, 1)),
        stored(3, 3, t(4, 11, 2)),
        HoldPlaced {
            contact: ContactRef::Call(id(3)),
            hold_id: HoldId(uuid::Uuid::from_u128(77)),
            case_reference: "KELA/1".into(),
            reason: Personal::new("complaint".into()),
            review_by: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
            placed_at: t(5, 8, 0),
        }
        .into(),
        started(4, "040 999 0000", "0295 50 2000", "carl", t(5, 12, 0)),
        ProcessingRestricted {
            contact: ContactRef::Call(id(4)),
            case_reference: "KELA/2".into(),
            reason: Personal::new("contested".into()),
            restricted_at: t(5, 12, 30),
        }
        .into(),
        RecordingPurged {
            call_id: id(1),
            recording_id: rec(1),
            reason: PurgeReason::RetentionExpired,
            policy_version: 1,
            key_bucket: "b".into(),
            purged_at: t(6, 0, 0),
        }
        .into(),
        ContactHistoryPurged {
            contact: ContactRef::Call(id(1)),
            reason: PurgeReason::RetentionExpired,
            policy_version: 1,
            key_bucket: "b".into(),
            purged_at: t(6, 0, 0),
        }
        .into(),
    ]
}

fn ids(page: &calls::CallPage) -> Vec<String> {
    page.items.iter().map(|r| r.id.clone()).collect()
}

#[test]
fn calls_are_found_by_a_number_typed_any_way_newest_first() {
    let (_d, view) = fold(&calls::Calls, &call_log());
    let filter = calls::CallFilter {
        caller: Some(phone("040-1234567")),
        ..Default::default()
    };
    let page = calls::search(&view, &filter, None, 10).unwrap();
    // Call 1's contact data was purged: its number is no longer searchable.
    assert_eq!(ids(&page), vec![id(2).to_string()]);
    let row = calls::get(&view, id(1)).unwrap().unwrap();
    assert_eq!(row.caller, None);
    assert!(row.personal_data_shredded);
    assert_eq!(row.agent_name, None);
}

/// Rows a search or `get` showed are kept decoded: a purge folded into
/// the same build afterwards must still take the caller's number out of
/// every answer at once.
#[test]
fn a_purge_reaches_rows_that_searches_showed_before_it() {
    let log = call_log();
    let (before, purges) = log.split_last_chunk::<2>().unwrap();
    let (_d, view) = fold(&calls::Calls, before);
    let by_caller = calls::CallFilter {
        caller: Some(phone("040 123 4567")),
        ..Default::default()
    };
    let everything = calls::CallFilter::default();
    for _ in 0..2 {
        let page = calls::search(&view, &by_caller, None, 10).unwrap();
        assert_eq!(ids(&page), vec![id(2).to_string(), id(1).to_string()]);
        calls::search(&view, &everything, None, 10).unwrap();
        let row = calls::get(&view, id(1)).unwrap().unwrap();
        assert_eq!(row.caller.as_deref(), Some("+358401234567"));
    }
    fold_more(&calls::Calls, &view, purges, before.len() as u64 + 1);
    let page = calls::search(&view, &by_caller, None, 10).unwrap();
    assert_eq!(ids(&page), vec![id(2).to_string()]);
    let page = calls::search(&view, &everything, None, 10).unwrap();
    let one = page
        .items
        .iter()
        .find(|r| r.id == id(1).to_string())
        .unwrap();
    assert_eq!(one.caller, None);
    assert!(one.personal_data_shredded);
    let row = calls::get(&view, id(1)).unwrap().unwrap();
    assert_eq!(row.caller, None);
    assert_eq!(row.agent_name, None);
}

/// A search with a budget of index entries stops there and says so; the
/// rest is found from its cursor, and a page it filled is not cut short.
#[test]
fn a_search_within_a_budget_says_when_it_stopped_short() {
    let (_d, view) = fold(&calls::Calls, &call_log());
    // Newest first on the time index: 4 (out), 3 (in), 2 (out), 1 (in).
    let inbound = calls::CallFilter {
        direction: Some(Direction::Inbound),
        ..Default::default()
    };
    let one = calls::search_within(&view, &inbound, None, 10, 1).unwrap();
    assert!(one.cut_short);
    assert_eq!(ids(&one), Vec::<String>::new());
    let two = calls::search_within(&view, &inbound, None, 10, 2).unwrap();
    assert!(two.cut_short);
    assert_eq!(ids(&two), vec![id(3).to_string()]);
    let rest = calls::search(&view, &inbound, two.next_cursor.as_deref(), 10).unwrap();
    assert_eq!(ids(&rest), vec![id(1).to_string()]);
    // Stopped at its budget on the last entry, it can't know that it was
    // the last: cut short, and the rest from its cursor is empty.
    let four = calls::search_within(&view, &inbound, None, 10, 4).unwrap();
    assert!(four.cut_short);
    let after_four = calls::search(&view, &inbound, four.next_cursor.as_deref(), 10).unwrap();
    assert_eq!(ids(&after_four), Vec::<String>::new());
    let whole = calls::search_within(&view, &inbound, None, 10, 5).unwrap();
    assert!(!whole.cut_short);
    assert_eq!(whole.next_cursor, None);
    assert_eq!(
        ids(&whole),
        ids(&calls::search(&view, &inbound, None, 10).unwrap())
    );
    // Full at the budget's last entry: a whole page, not a cut one.
    let full = calls::search_within(&view, &inbound, None, 1, 2).unwrap();
    assert!(!full.cut_short);
    assert_eq!(ids(&full), vec![id(3).to_string()]);
    assert!(full.next_cursor.is_some());
}

#[test]
fn searches_refuse_foreign_cursors_and_upside_down_ranges_and_end_before_to() {
    use callvault_projections::ProjectionError;
    let (_d, view) = fold(&calls::Calls, &call_log());
    let invalid = |r: Result<calls::CallPage, ProjectionError>| match r {
        Err(ProjectionError::InvalidInput { field, .. }) => field,
        other => panic!("expected a typed refusal, got {other:?}"),
    };
    let none = calls::CallFilter::default();
    for bad in ["", "garbage", "123_not-a-call-id", &format!("x_{}", id(1))] {
        assert_eq!(
            invalid(calls::search(&view, &none, Some(bad), 10)),
            "after",
            "{bad}"
        );
    }
    let upside_down = calls::CallFilter {
        started_from: Some(t(5, 0, 0)),
        started_to: Some(t(3, 0, 0)),
        ..Default::default()
    };
    assert_eq!(
        invalid(calls::search(&view, &upside_down, None, 10)),
        "startedTo"
    );
    let durations = calls::CallFilter {
        min_duration_seconds: Some(60),
        max_duration_seconds: Some(10),
        ..Default::default()
    };
    assert_eq!(
        invalid(calls::search(&view, &durations, None, 10)),
        "maxDurationSeconds"
    );

    let all = calls::search(&view, &none, None, 10).unwrap().items;
    assert!(all.len() >= 4);
    // `startedTo` is exclusive: a call that starts exactly then is not in.
    let before_newest = calls::CallFilter {
        started_to: Some(all[0].started_at),
        ..Default::default()
    };
    assert_eq!(
        ids(&calls::search(&view, &before_newest, None, 10).unwrap()),
        ids_of(&all[1..])
    );
    // A cursor from another search does not lift the bound.
    let first = calls::search(&view, &none, None, 1).unwrap();
    let bounded = calls::CallFilter {
        started_to: Some(all[2].started_at),
        ..Default::default()
    };
    assert_eq!(
        ids(&calls::search(&view, &bounded, first.next_cursor.as_deref(), 10).unwrap()),
        ids_of(&all[3..])
    );
    // The access log's cursors are checked the same way.
    let (_d, audit) = fold(
        &access_audit::AccessAudit,
        &[access("sue", 3, Purpose::Quality, false, t(7, 9, 0))],
    );
    for bad in ["1_2", "x_1_1", "1_1_-1", ""] {
        assert!(
            matches!(
                access_audit::query(&audit, &Default::default(), Some(bad), 10),
                Err(ProjectionError::InvalidInput { field: "after", .. })
            ),
            "{bad}"
        );
    }
}

fn ids_of(rows: &[calls::CallRow]) -> Vec<String> {
    rows.iter().map(|r| r.id.clone()).collect()
}

#[test]
fn calls_filter_by_agent_service_time_direction_duration_and_status() {
    let (_d, view) = fold(&calls::Calls, &call_log());
    let search = |f: calls::CallFilter| ids(&calls::search(&view, &f, None, 10).unwrap());
    assert_eq!(
        search(calls::CallFilter {
            agent: Some(staff("anna")),
            ..Default::default()
        }),
        vec![id(3).to_string(), id(1).to_string()]
    );
    assert_eq!(
        search(calls::CallFilter {
            service_number: Some(phone("0295 50 2000")),
            started_from: Some(t(3, 9, 30)),
            started_to: Some(t(5, 0, 0)),
            ..Default::default()
        }),
        vec![id(2).to_string()]
    );
    assert_eq!(
        search(calls::CallFilter {
            direction: Some(Direction::Outbound),
            ..Default::default()
        }),
        vec![id(4).to_string(), id(2).to_string()]
    );
    assert_eq!(
        search(calls::CallFilter {
            min_duration_seconds: Some(300),
            ..Default::default()
        }),
        vec![id(2).to_string()]
    );
    assert_eq!(
        search(calls::CallFilter {
            max_duration_seconds: Some(90),
            ..Default::default()
        }),
        vec![id(3).to_string()]
    );
    assert_eq!(
        search(calls::CallFilter {
            status: Some(calls::Status::Held),
            ..Default::default()
        }),
        vec![id(3).to_string()]
    );
    assert_eq!(
        search(calls::CallFilter {
            status: Some(calls::Status::Restricted),
            ..Default::default()
        }),
        vec![id(4).to_string()]
    );
    assert_eq!(
        search(calls::CallFilter {
            status: Some(calls::Status::Purged),
            ..Default::default()
        }),
        vec![id(1).to_string()]
    );
    assert_eq!(
        search(calls::CallFilter {
            status: Some(calls::Status::Recorded),
            ..Default::default()
        }),
        vec![id(3).to_string()]
    );
}

#[test]
fn call_pages_are_stable_and_never_repeat() {
    let (_d, view) = fold(&calls::Calls, &call_log());
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page =
            calls::search(&view, &calls::CallFilter::default(), after.as_deref(), 1).unwrap();
        seen.extend(ids(&page));
        match page.next_cursor {
            Some(c) if !page.items.is_empty() => after = Some(c),
            _ => break,
        }
    }
    assert_eq!(
        seen,
        vec![
            id(4).to_string(),
            id(3).to_string(),
            id(2).to_string(),
            id(1).to_string()
        ]
    );
}

/// Every page of `filter`, `size` rows at a time, as call ids.
fn all_pages(view: &ViewDb, filter: &calls::CallFilter, size: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = calls::search(view, filter, after.as_deref(), size).unwrap();
        seen.extend(ids(&page));
        assert!(seen.len() <= 1000, "pages repeat: {seen:?}");
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    seen
}

/// A call in the search test: start, number, agent, service and caller
/// (indexes into the test's lists).
type Expected = (DateTime<Utc>, u128, usize, usize, usize);

#[test]
fn searches_page_through_a_long_log_in_order_and_follow_rectified_start_times() {
    // 120 calls over five days, two at each instant (ties order by id),
    // paged at several sizes under every index.
    let agents = ["anna", "bob", "cecilia"];
    let services = ["0295 50 2000", "0295 50 3000"];
    let callers = [
        "040 111 1111",
        "050 222 2222",
        "044 333 3333",
        "045 444 4444",
    ];
    let base = t(1, 0, 0);
    let mut log = Vec::new();
    let mut expected: Vec<Expected> = Vec::new();
    for n in 1..=120u128 {
        let at = base + chrono::Duration::minutes(55 * (n as i64 / 2) * 2 / 2);
        let (a, s, c) = (n as usize % 3, n as usize % 2, n as usize % 4);
        log.push(started(n, callers[c], services[s], agents[a], at));
        expected.push((at, n, a, s, c));
    }
    // Two calls' start times are corrected: one moves days back (to
    // another day), one a minute forward; one call's service number.
    let moved = [(7u128, t(1, 0, 1)), (90, t(4, 3, 33))];
    for (n, to) in moved {
        log.push(
            CallRectified {
                call_id: id(n),
                correction: Correction::StartedAt(to),
                reason: Personal::new("wrong clock".into()),
                rectified_at: t(6, 0, 0),
            }
            .into(),
        );
        expected.iter_mut().find(|e| e.1 == n).unwrap().0 = to;
    }
    log.push(
        CallRectified {
            call_id: id(11),
            correction: Correction::ServiceNumber(phone(services[0])),
            reason: Personal::new("misrouted".into()),
            rectified_at: t(6, 0, 0),
        }
        .into(),
    );
    expected.iter_mut().find(|e| e.1 == 11).unwrap().3 = 0;
    let (_d, view) = fold(&calls::Calls, &log);
    // Newest first; equal start times by id, descending.
    expected.sort_by_key(|e| std::cmp::Reverse((e.0, id(e.1).to_string())));
    let want = |keep: &dyn Fn(&Expected) -> bool| {
        expected
            .iter()
            .filter(|e| keep(e))
            .map(|e| id(e.1).to_string())
            .collect::<Vec<_>>()
    };
    let (from, to) = (t(2, 7, 0), t(4, 3, 33));
    let in_range = |e: &Expected| e.0 >= from && e.0 < to;
    for size in [1, 7, 50] {
        assert_eq!(
            all_pages(&view, &calls::CallFilter::default(), size),
            want(&|_| true)
        );
        let by_agent = calls::CallFilter {
            agent: Some(staff("bob")),
            ..Default::default()
        };
        assert_eq!(all_pages(&view, &by_agent, size), want(&|e| e.2 == 1));
        let by_service = calls::CallFilter {
            service_number: Some(phone(services[0])),
            started_from: Some(from),
            started_to: Some(to),
            ..Default::default()
        };
        assert_eq!(
            all_pages(&view, &by_service, size),
            want(&|e| e.3 == 0 && in_range(e))
        );
        let by_caller = calls::CallFilter {
            caller: Some(phone("+358 50 222 2222")),
            started_to: Some(to),
            ..Default::default()
        };
        assert_eq!(
            all_pages(&view, &by_caller, size),
            want(&|e| e.4 == 1 && e.0 < to)
        );
        let in_time = calls::CallFilter {
            started_from: Some(from),
            started_to: Some(to),
            ..Default::default()
        };
        assert_eq!(all_pages(&view, &in_time, size), want(&in_range));
    }
}

fn access(
    actor: &str,
    call: u128,
    purpose: Purpose,
    break_glass: bool,
    at: DateTime<Utc>,
) -> Event {
    RecordingAccessed {
        actor: staff(actor),
        role: Some(Role::Supervisor),
        call_id: id(call),
        recording_id: rec(call),
        purpose,
        mode: AccessMode::Listen,
        case_reference: None,
        reason: break_glass.then(|| Personal::new("incident 42".to_owned())),
        break_glass,
        accessed_at: at,
    }
    .into()
}

#[test]
fn the_access_audit_answers_by_actor_call_purpose_time_and_flags() {
    let mut log = call_log();
    log.extend([
        access("sue", 3, Purpose::Quality, false, t(7, 9, 0)),
        access("mike", 3, Purpose::Maintenance, true, t(7, 10, 0)),
        access("sue", 2, Purpose::Training, false, t(8, 9, 0)),
        AccessDenied {
            actor: staff("anna"),
            role: Some(Role::Agent),
            action: "play_recording".into(),
            contact: Some(ContactRef::Call(id(2))),
            recording_id: None,
            purpose: Some(Purpose::Verification),
            case_reference: None,
            rule: "agents see only their own calls".into(),
            denied_at: t(8, 10, 0),
        }
        .into(),
    ]);
    let (_d, view) = fold(&access_audit::AccessAudit, &log);
    let q = |f: access_audit::AccessFilter| {
        access_audit::query(&view, &f, None, 50)
            .unwrap()
            .items
            .into_iter()
            .map(|r| (r.actor, r.at))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        q(access_audit::AccessFilter {
            actor: Some("sue".into()),
            ..Default::default()
        }),
        vec![("sue".into(), t(8, 9, 0)), ("sue".into(), t(7, 9, 0))]
    );
    assert_eq!(
        q(access_audit::AccessFilter {
            contact: Some(ContactRef::Call(id(3))),
            ..Default::default()
        })
        .len(),
        2
    );
    assert_eq!(
        q(access_audit::AccessFilter {
            break_glass_only: true,
            ..Default::default()
        }),
        vec![("mike".into(), t(7, 10, 0))]
    );
    assert_eq!(
        q(access_audit::AccessFilter {
            denied_only: true,
            ..Default::default()
        }),
        vec![("anna".into(), t(8, 10, 0))]
    );
    assert_eq!(
        q(access_audit::AccessFilter {
            purpose: Some(Purpose::Training),
            ..Default::default()
        }),
        vec![("sue".into(), t(8, 9, 0))]
    );
    assert_eq!(
        q(access_audit::AccessFilter {
            from: Some(t(7, 9, 30)),
            to: Some(t(8, 9, 30)),
            ..Default::default()
        }),
        vec![("sue".into(), t(8, 9, 0)), ("mike".into(), t(7, 10, 0))]
    );
    let all = access_audit::query(&view, &Default::default(), None, 50)
        .unwrap()
        .items;
    let glass = all.iter().find(|r| r.break_glass).unwrap();
    assert_eq!(glass.reason.as_deref(), Some("incident 42"));
    assert!(
        !all.iter()
            .find(|r| r.kind == access_audit::AccessKind::Denied)
            .unwrap()
            .allowed
    );
    // One row a page, by every index: the same rows, in the same order.
    for filter in [
        access_audit::AccessFilter::default(),
        access_audit::AccessFilter {
            purpose: Some(Purpose::Maintenance),
            ..Default::default()
        },
    ] {
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = access_audit::query(&view, &filter, after.as_deref(), 1).unwrap();
            paged.extend(page.items.into_iter().map(|r| r.position));
            assert!(paged.len() <= all.len(), "pages repeat: {paged:?}");
            match page.next_cursor {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        let want: Vec<callvault_store::Position> = access_audit::query(&view, &filter, None, 50)
            .unwrap()
            .items
            .iter()
            .map(|r| r.position)
            .collect();
        assert_eq!(paged, want);
    }

    // Purging call 3's contact data takes the reasons given for reading it
    // (they may name the caller) out of its access rows, and only those.
    log.push(
        ContactHistoryPurged {
            contact: ContactRef::Call(id(3)),
            reason: PurgeReason::RetentionExpired,
            policy_version: 1,
            key_bucket: "b".into(),
            purged_at: t(9, 0, 0),
        }
        .into(),
    );
    let (_d2, view) = fold(&access_audit::AccessAudit, &log);
    let after_purge = access_audit::query(&view, &Default::default(), None, 50)
        .unwrap()
        .items;
    assert_eq!(after_purge.len(), all.len());
    let glass = after_purge.iter().find(|r| r.break_glass).unwrap();
    assert_eq!(glass.reason, None);
    for (before, now) in all.iter().zip(&after_purge) {
        if before.contact != Some(ContactRef::Call(id(3))) {
            assert_eq!(before, now);
        }
    }
}

#[test]
fn the_retention_queue_lists_recordings_by_expiry_with_what_keeps_them() {
    let (_d, view) = fold(
        &retention::Retention {
            policy: RetentionPolicy::default(),
        },
        &call_log(),
    );
    let from = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2027, 12, 1, 0, 0, 0).unwrap();
    let queue = retention::queue(&view, from, to, 10).unwrap();
    // Recording 1 was purged; recording 3 expires a year after call 3 ended
    // and is held.
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].recording_id, rec(3).to_string());
    assert_eq!(
        queue[0].expires_at,
        Utc.with_ymd_and_hms(2027, 3, 4, 11, 1, 0).unwrap()
    );
    assert!(queue[0].kept());
    assert_eq!(queue[0].holds[0].case_reference, "KELA/1");
    let kept = retention::kept(&view, 10).unwrap();
    assert_eq!(kept.len(), 2, "the held call and the restricted one");
}

#[test]
fn the_retention_queue_reads_expiries_in_order_exactly_in_its_window() {
    let policy = RetentionPolicy::default();
    let model = retention::Retention { policy };
    // 60 calls ending every 7 minutes, each with a recording — call 5
    // with two, call 9's stored before the call ended.
    let mut log = Vec::new();
    let mut ends = std::collections::BTreeMap::new();
    for n in 1..=60u128 {
        let start = t(2, 8, 0) + chrono::Duration::minutes(7 * n as i64);
        let end = start + chrono::Duration::minutes(3);
        log.push(started(n, "040 111 1111", "0295 50 2000", "anna", start));
        if n == 9 {
            log.push(stored(n, n, end));
            log.push(ended(n, end));
        } else {
            log.push(ended(n, end));
            log.push(stored(n, n, end));
        }
        ends.insert(n, end);
    }
    log.push(stored(5, 500, t(6, 0, 0)));
    // Call 20's end is corrected a day later; recording 30 is purged;
    // call 40 never ends (no expiry yet).
    log.push(
        CallRectified {
            call_id: id(20),
            correction: Correction::EndedAt(t(3, 12, 0)),
            reason: Personal::new("clock".into()),
            rectified_at: t(6, 0, 0),
        }
        .into(),
    );
    ends.insert(20, t(3, 12, 0));
    log.push(
        RecordingPurged {
            call_id: id(30),
            recording_id: rec(30),
            reason: PurgeReason::RetentionExpired,
            policy_version: 1,
            key_bucket: "b".into(),
            purged_at: t(6, 0, 0),
        }
        .into(),
    );
    log.retain(|e| !matches!(e, Event::CallEnded(c) if c.call_id == id(40)));
    let (_d, view) = fold(&model, &log);
    // Expected: every unpurged recording of an ended call, by expiry then
    // recording id.
    let mut want: Vec<(DateTime<Utc>, String)> = Vec::new();
    for (n, end) in &ends {
        if *n == 30 || *n == 40 {
            continue;
        }
        want.push((policy.recording_expires_at(*end), rec(*n).to_string()));
        if *n == 5 {
            want.push((policy.recording_expires_at(*end), rec(500).to_string()));
        }
    }
    want.sort();
    let window = |from: DateTime<Utc>, to: DateTime<Utc>, limit: usize| {
        retention::queue(&view, from, to, limit)
            .unwrap()
            .into_iter()
            .map(|q| (q.expires_at, q.recording_id))
            .collect::<Vec<_>>()
    };
    let (first, last) = (want[0].0, want[want.len() - 1].0);
    assert_eq!(
        window(first, last + chrono::Duration::seconds(1), 1000),
        want
    );
    // From is inclusive, to exclusive, to the microsecond.
    let (a, b) = (want[10].0, want[30].0);
    assert_eq!(
        window(a, b, 1000),
        want.iter()
            .filter(|w| w.0 >= a && w.0 < b)
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(window(a, b, 4), want[10..14].to_vec());
    assert!(
        window(
            last + chrono::Duration::seconds(1),
            last + chrono::Duration::days(1),
            10
        )
        .is_empty()
    );
}

#[test]
fn the_subject_view_shows_every_call_of_the_numbers_with_recordings_and_accesses() {
    let mut log = call_log();
    log.push(access("sue", 3, Purpose::Quality, false, t(7, 9, 0)));
    let (_d, view) = fold(&subjects::Subjects, &log);
    let numbers = [phone("050 765 4321"), phone("+358 40 123 4567")];
    let (calls, more) = subjects::lookup(&view, &numbers, 10).unwrap();
    assert!(!more);
    let found: Vec<&str> = calls.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(found, vec![id(3).to_string(), id(2).to_string()]);
    // A limit keeps the newest across all the numbers, whichever number
    // comes first, and says that calls were left out.
    for order in [numbers.clone(), [numbers[1].clone(), numbers[0].clone()]] {
        let (newest, more) = subjects::lookup(&view, &order, 1).unwrap();
        assert_eq!(newest.len(), 1);
        assert_eq!(newest[0].call_id, id(3).to_string());
        assert!(more);
    }
    assert_eq!(calls[0].recordings.len(), 1);
    assert_eq!(calls[0].accesses[0].actor, "sue");
    assert_eq!(calls[0].accesses[0].purpose, "quality");
    assert!(calls[1].recordings.is_empty(), "call 2 was not recorded");
}

#[test]
fn staff_rights_are_known_now_and_at_any_past_instant() {
    let log: Vec<Event> = vec![
        RoleGranted {
            staff_id: staff("sue"),
            role: Role::Supervisor,
            supervises: vec![staff("anna")],
            decision_reference: None,
            granted_at: t(1, 8, 0),
        }
        .into(),
        RoleGranted {
            staff_id: staff("sue"),
            role: Role::Analyst,
            supervises: vec![],
            decision_reference: None,
            granted_at: t(1, 8, 0),
        }
        .into(),
        RoleGranted {
            staff_id: staff("sue"),
            role: Role::Supervisor,
            supervises: vec![staff("anna"), staff("bob")],
            decision_reference: Some("HR/2".into()),
            granted_at: t(10, 8, 0),
        }
        .into(),
        RoleRevoked {
            staff_id: staff("sue"),
            role: Role::Analyst,
            decision_reference: None,
            revoked_at: t(15, 8, 0),
        }
        .into(),
        AccessRightsReviewed {
            staff_id: staff("sue"),
            removed: vec![],
            next_review_by: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
            reviewed_at: t(16, 8, 0),
        }
        .into(),
        RoleGranted {
            staff_id: staff("bob"),
            role: Role::Agent,
            supervises: vec![],
            decision_reference: None,
            granted_at: t(2, 8, 0),
        }
        .into(),
    ];
    let (_d, view) = fold(&staff_rights::StaffRights, &log);
    let roles_at = |at| {
        let mut r: Vec<(String, Role, usize)> = staff_rights::rights_at(&view, Some("sue"), at)
            .unwrap()
            .into_iter()
            .map(|g| (g.staff_id, g.role, g.supervises.len()))
            .collect();
        r.sort();
        r
    };
    assert_eq!(roles_at(t(1, 7, 0)), vec![]);
    assert_eq!(
        roles_at(t(5, 0, 0)),
        vec![
            ("sue".into(), Role::Supervisor, 1),
            ("sue".into(), Role::Analyst, 0)
        ]
    );
    assert_eq!(
        roles_at(t(20, 0, 0)),
        vec![("sue".into(), Role::Supervisor, 2)]
    );
    let due =
        staff_rights::reviews_due(&view, NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()).unwrap();
    assert_eq!(
        due,
        vec![
            ("bob".into(), None),
            ("sue".into(), NaiveDate::from_ymd_opt(2026, 9, 1))
        ]
    );
    assert_eq!(staff_rights::history(&view, "sue").unwrap().len(), 3);
}

#[test]
fn stats_count_calls_recordings_holds_and_duration_percentiles_per_service_and_day() {
    let mut log = vec![
        started(11, "040 111 1111", "0295 50 2000", "anna", t(3, 9, 0)),
        ended(11, t(3, 9, 1)),
        stored(11, 11, t(3, 9, 2)),
        started(12, "040 111 1112", "0295 50 2000", "anna", t(3, 10, 0)),
        ended(12, t(3, 10, 2)),
        started(13, "040 111 1113", "0295 50 2000", "anna", t(3, 11, 0)),
        ended(13, t(3, 11, 10)),
        started(14, "040 111 1114", "0295 50 3000", "anna", t(3, 11, 0)),
    ];
    log.push(
        HoldPlaced {
            contact: ContactRef::Call(id(12)),
            hold_id: HoldId(uuid::Uuid::from_u128(5)),
            case_reference: "x".into(),
            reason: Personal::new("y".into()),
            review_by: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
            placed_at: t(4, 0, 0),
        }
        .into(),
    );
    let (_d, view) = fold(&stats::Stats, &log);
    let day = NaiveDate::from_ymd_opt(2026, 3, 3).unwrap();
    let (total, rows) = stats::totals(&view, day, day, Some("+358295502000")).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(total.calls, 3);
    assert_eq!(total.recorded, 1);
    assert!((total.recorded_share() - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(total.held, 1);
    assert_eq!(total.percentile(0.5), Some(120));
    assert_eq!(total.percentile(0.9), Some(600));
    assert_eq!(total.max_duration, 600);
    let (all, rows) = stats::totals(&view, day, day, None).unwrap();
    assert_eq!(all.calls, 4);
    assert_eq!(rows.len(), 2);
}

fn rectified(call: u128, correction: Correction) -> Event {
    CallRectified {
        call_id: id(call),
        correction,
        reason: Personal::new("DSR: recorded wrong".into()),
        rectified_at: t(6, 0, 0),
    }
    .into()
}

#[test]
fn stats_follow_corrections_of_start_end_and_service() {
    let d = |day| NaiveDate::from_ymd_opt(2026, 3, day).unwrap();
    // Call 1: 09:00–09:02 on the 3rd under 0295 50 2000, recorded.
    let mut log = call_log();
    // Its start moves to 08:50 (12 min), then its end to 09:30 (40 min),
    // then it moves to the other service line and its end to 08:55.
    log.push(rectified(1, Correction::StartedAt(t(3, 8, 50))));
    let (_d, view) = fold(&stats::Stats, &log);
    let (line, _) = stats::totals(&view, d(3), d(3), Some("+358295502000")).unwrap();
    assert_eq!(line.max_duration, 720, "12 min, not the 2 min it was");
    assert_eq!(line.percentile(0.5), Some(600), "12 min and 10 min");
    log.push(rectified(1, Correction::EndedAt(t(3, 9, 30))));
    let (_d, view) = fold(&stats::Stats, &log);
    let (line, _) = stats::totals(&view, d(3), d(3), Some("+358295502000")).unwrap();
    assert_eq!(line.max_duration, 2400);
    assert_eq!(line.ended, 2, "corrected, not counted twice");
    log.push(rectified(
        1,
        Correction::ServiceNumber(phone("0295 50 3000")),
    ));
    log.push(rectified(1, Correction::EndedAt(t(3, 8, 55))));
    let (_d, view) = fold(&stats::Stats, &log);
    let (old_line, _) = stats::totals(&view, d(3), d(3), Some("+358295502000")).unwrap();
    assert_eq!(
        (old_line.calls, old_line.recorded),
        (1, 0),
        "only call 2 is left"
    );
    assert_eq!(old_line.max_duration, 600, "the 40 min left with the call");
    let (new_line, _) = stats::totals(&view, d(3), d(3), Some("+358295503000")).unwrap();
    assert_eq!((new_line.calls, new_line.recorded), (1, 1));
    assert_eq!(new_line.max_duration, 300, "shortened to 5 min");
    // A start corrected across midnight moves it to that day.
    log.push(rectified(2, Correction::StartedAt(t(2, 23, 50))));
    let (_d, view) = fold(&stats::Stats, &log);
    let (day2, _) = stats::totals(&view, d(2), d(2), None).unwrap();
    assert_eq!(day2.calls, 1);
    let (day3, _) = stats::totals(&view, d(3), d(3), Some("+358295502000")).unwrap();
    assert_eq!(day3.calls, 0);
}

#[test]
fn the_subject_view_shows_a_call_as_corrected() {
    let mut log = call_log();
    log.push(rectified(3, Correction::EndedAt(t(4, 11, 0))));
    log.push(rectified(3, Correction::StartedAt(t(4, 10, 50))));
    log.push(rectified(
        3,
        Correction::ServiceNumber(phone("0295 50 2000")),
    ));
    let (_d, view) = fold(&subjects::Subjects, &log);
    let (calls, _) = subjects::lookup(&view, &[phone("050 765 4321")], 10).unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].started_at, t(4, 10, 50));
    assert_eq!(calls[0].ended_at, Some(t(4, 11, 0)));
    assert_eq!(calls[0].service_number, "+358295502000");
}

#[test]
fn a_search_seeing_a_start_time_correction_half_applied_lists_the_call_once() {
    use callvault_projections::projection::{key, time_key};
    let (_d, view) = fold(&calls::Calls, &call_log());
    let all = all_pages(&view, &calls::CallFilter::default(), 1);
    // What a reader can see while a correction of call 2's start time is
    // being written: its row (and new entries) in place, the entry under
    // an old start time not yet removed — here, earlier than every call.
    let mut tx = view.tx();
    tx.put(
        key(&[b"t", &time_key(t(1, 0, 0)), id(2).to_string().as_bytes()]),
        Vec::new(),
    );
    tx.commit(Position::sequence(10_000)).unwrap();
    for size in [1, 2, 10] {
        assert_eq!(
            all_pages(&view, &calls::CallFilter::default(), size),
            all,
            "page size {size}"
        );
    }
}

#[test]
fn a_call_whose_end_never_came_is_queued_a_week_after_its_start() {
    let model = retention::Retention {
        policy: RetentionPolicy::default(),
    };
    let year = |from, to| {
        (
            Utc.with_ymd_and_hms(2027, 3, from, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2027, 3, to, 0, 0, 0).unwrap(),
        )
    };
    let mut log = vec![
        started(5, "040 123 4567", "0295 50 2000", "anna", t(3, 9, 0)),
        stored(5, 5, t(3, 9, 3)),
    ];
    let (_d, view) = fold(&model, &log);
    let (from, to) = year(1, 31);
    let queue = retention::queue(&view, from, to, 10).unwrap();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert_eq!(queue[0].recording_id, rec(5).to_string());
    assert_eq!(
        queue[0].expires_at,
        Utc.with_ymd_and_hms(2027, 3, 10, 9, 0, 0).unwrap(),
        "a year after its start plus a week"
    );
    // A corrected start moves it while it is open; its end, once it
    // comes, counts instead.
    log.push(
        CallRectified {
            call_id: id(5),
            correction: Correction::StartedAt(t(3, 8, 0)),
            reason: Personal::new("clock".into()),
            rectified_at: t(3, 12, 0),
        }
        .into(),
    );
    let (_d2, view) = fold(&model, &log);
    let queue = retention::queue(&view, from, to, 10).unwrap();
    assert_eq!(
        queue[0].expires_at,
        Utc.with_ymd_and_hms(2027, 3, 10, 8, 0, 0).unwrap()
    );
    log.push(ended(5, t(4, 10, 0)));
    let (_d3, view) = fold(&model, &log);
    let queue = retention::queue(&view, from, to, 10).unwrap();
    assert_eq!(
        queue.len(),
        1,
        "listed once, at its end's expiry: {queue:?}"
    );
    assert_eq!(
        queue[0].expires_at,
        Utc.with_ymd_and_hms(2027, 3, 4, 10, 0, 0).unwrap()
    );
}

#[test]
fn a_call_from_a_withheld_number_is_listed_without_one_and_under_no_subject() {
    let mut withheld = started(9, "040 123 4567", "0295 50 2000", "anna", t(8, 9, 0));
    if let Event::CallStarted(e) = &mut withheld {
        e.caller = None;
    }
    let log = vec![withheld, ended(9, t(8, 9, 5))];
    let (_d, view) = fold(&calls::Calls, &log);
    let row = calls::get(&view, id(9)).unwrap().unwrap();
    assert_eq!(row.caller, None);
    assert!(!row.personal_data_shredded, "withheld is not shredded");
    let by_agent = calls::CallFilter {
        agent: Some(staff("anna")),
        ..Default::default()
    };
    assert_eq!(
        ids(&calls::search(&view, &by_agent, None, 10).unwrap()),
        vec![id(9).to_string()]
    );
    let by_number = calls::CallFilter {
        caller: Some(phone("040 123 4567")),
        ..Default::default()
    };
    assert!(
        calls::search(&view, &by_number, None, 10)
            .unwrap()
            .items
            .is_empty()
    );
    let (_d2, subjects_view) = fold(&subjects::Subjects, &log);
    let (found, _) = subjects::lookup(&subjects_view, &[phone("040 123 4567")], 10).unwrap();
    assert!(found.is_empty(), "{found:?}");
}
