//! `access_audit`: the log of use as a view (R12, R28) — every recording
//! listened to or downloaded, every contact history opened or searched,
//! every refusal — queryable by actor, by call, by purpose and by time,
//! with break-glass reads flagged and listed for review.

use callvault_domain::{ContactRef, Event, Purpose, Role};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use callvault_store::Position;

use crate::{
    projection::{Envelope, Projection, ProjectionError, key, time_key},
    view::ViewDb,
};

/// A page's cursor: the last row's time (µs) and log position.
fn parse_cursor(cursor: &str) -> Result<(DateTime<Utc>, Position), ProjectionError> {
    let bad = || {
        ProjectionError::invalid(
            "after",
            format!("`{cursor}` is not a cursor this query gave (pass back its nextCursor)"),
        )
    };
    let mut parts = cursor.splitn(3, '_');
    let t = parts
        .next()
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    let mut number = || {
        parts
            .next()
            .and_then(|p| p.parse::<u64>().ok())
            .ok_or_else(bad)
    };
    let (commit, prepare) = (number()?, number()?);
    Ok((t, Position { commit, prepare }))
}

pub const NAME: &str = "access_audit";
/// v1: first version.
/// v2: a row lives at its time-index key instead of a key of its own (one
/// sled key less per access or search).
/// v3: keys end with the whole log position (commit and prepare), not the
/// commit alone: EventStoreDB gives the events of one append one commit
/// position, and they must not overwrite each other.
/// v4: chat transcript e-mails — the order and the sending — are
/// disclosures, listed as such.
pub const VERSION: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessKind {
    Listen,
    Download,
    SubjectSession,
    HistoryRead,
    Search,
    Denied,
    /// A chat transcript ordered by e-mail (who placed the order).
    TranscriptOrdered,
    /// A chat transcript e-mailed (the disclosure itself).
    TranscriptEmailed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRow {
    pub position: Position,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub role: Option<Role>,
    pub kind: AccessKind,
    pub allowed: bool,
    pub contact: Option<ContactRef>,
    pub recording_id: Option<String>,
    pub purpose: Option<Purpose>,
    pub case_reference: Option<String>,
    /// The stated reason; `None` if none was given or it was shredded.
    pub reason: Option<String>,
    pub break_glass: bool,
    /// What was attempted (denials) or which fields a search used.
    pub detail: Option<String>,
    /// Contacts a search revealed.
    pub results: usize,
}

pub struct AccessAudit;

/// A row's key, which is also its entry in the time index: `t`, the time
/// (a [`time_key`]) and the log position (16 bytes,
/// [`Position::to_be_bytes`]). Every other index entry ends with the same
/// time and position, so it leads here.
fn row_key(t: &[u8], position: &[u8]) -> Vec<u8> {
    key(&[b"t", t, position])
}

/// The time and position at the end of an index entry
/// (`…\0<time 8>\0<position 16>`).
fn time_and_position(entry: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = entry.len();
    (n >= ENTRY_TAIL && entry[n - 17] == 0).then(|| (&entry[n - 25..n - 17], &entry[n - 16..]))
}

/// Bytes after an index's prefix: time, separator, position.
const ENTRY_TAIL: usize = 8 + 1 + 16;

impl Projection for AccessAudit {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        VERSION
    }

    fn apply(&self, tx: &mut crate::view::Tx<'_>, env: &Envelope) -> Result<(), ProjectionError> {
        let position = env.position;
        let row = match &env.event {
            Event::RecordingAccessed(e) => AccessRow {
                position,
                at: e.accessed_at,
                actor: e.actor.to_string(),
                role: e.role,
                kind: match e.mode {
                    callvault_domain::access::AccessMode::Listen => AccessKind::Listen,
                    callvault_domain::access::AccessMode::Download => AccessKind::Download,
                    callvault_domain::access::AccessMode::SubjectSession => {
                        AccessKind::SubjectSession
                    }
                },
                allowed: true,
                contact: Some(ContactRef::Call(e.call_id)),
                recording_id: Some(e.recording_id.to_string()),
                purpose: Some(e.purpose),
                case_reference: e.case_reference.clone(),
                reason: e.reason.as_ref().and_then(|r| r.clear().cloned()),
                break_glass: e.break_glass,
                detail: None,
                results: 0,
            },
            Event::ContactHistoryRead(e) => AccessRow {
                position,
                at: e.read_at,
                actor: e.actor.to_string(),
                role: e.role,
                kind: AccessKind::HistoryRead,
                allowed: true,
                contact: Some(e.contact),
                recording_id: None,
                purpose: Some(e.purpose),
                case_reference: e.case_reference.clone(),
                reason: e.reason.as_ref().and_then(|r| r.clear().cloned()),
                break_glass: e.break_glass,
                detail: None,
                results: 1,
            },
            Event::ContactHistorySearched(e) => AccessRow {
                position,
                at: e.searched_at,
                actor: e.actor.to_string(),
                role: e.role,
                kind: AccessKind::Search,
                allowed: true,
                contact: None,
                recording_id: None,
                purpose: Some(e.purpose),
                case_reference: e.case_reference.clone(),
                reason: None,
                break_glass: false,
                detail: Some(e.filter_fields.join(",")),
                results: e.results.len(),
            },
            // The address is personal data and stays out of the log of
            // use; the chat it discloses is named.
            Event::ChatTranscriptEmailRequested(e) => transcript_row(
                env,
                e.requested_at,
                e.chat_id,
                AccessKind::TranscriptOrdered,
                format!("ordered by the {}", party(e.ordered_by)),
            ),
            Event::ChatTranscriptEmailed(e) => transcript_row(
                env,
                e.sent_at,
                e.chat_id,
                AccessKind::TranscriptEmailed,
                "transcript e-mailed to the address ordered".into(),
            ),
            Event::AccessDenied(e) => AccessRow {
                position,
                at: e.denied_at,
                actor: e.actor.to_string(),
                role: e.role,
                kind: AccessKind::Denied,
                allowed: false,
                contact: e.contact,
                recording_id: e.recording_id.map(|r| r.to_string()),
                purpose: e.purpose,
                case_reference: e.case_reference.clone(),
                reason: None,
                break_glass: false,
                detail: Some(format!("{}: {}", e.action, e.rule)),
                results: 0,
            },
            Event::ContactHistoryPurged(e) => {
                // The reasons people gave may name the data subject: they
                // go with the contact's other personal data.
                let contact = e.contact;
                let prefix = key(&[b"c", contact_id(&contact).as_bytes(), b""]);
                let mut rows = Vec::new();
                for entry in tx_scan_keys(tx, &prefix)? {
                    if let Some((t, p)) = time_and_position(&entry) {
                        rows.push(row_key(t, p));
                    }
                }
                for k in rows {
                    if let Some(mut row) = tx.get_json::<AccessRow>(&k)?
                        && row.reason.is_some()
                    {
                        row.reason = None;
                        tx.put_json(k, &row);
                    }
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        let t = time_key(row.at);
        let p = position.to_be_bytes();
        tx.put(key(&[b"a", row.actor.as_bytes(), &t, &p]), Vec::new());
        if let Some(c) = &row.contact {
            tx.put(key(&[b"c", contact_id(c).as_bytes(), &t, &p]), Vec::new());
        }
        if let Some(purpose) = row.purpose {
            tx.put(key(&[b"p", purpose.name().as_bytes(), &t, &p]), Vec::new());
        }
        if row.break_glass {
            tx.put(key(&[b"b", &t, &p]), Vec::new());
        }
        if !row.allowed {
            tx.put(key(&[b"d", &t, &p]), Vec::new());
        }
        tx.put_json(row_key(&t, &p), &row);
        Ok(())
    }
}

/// Keys under a prefix as the transaction's store has them (index entries
/// written earlier in the same batch are found by the caller's own get).
fn tx_scan_keys(tx: &crate::view::Tx<'_>, prefix: &[u8]) -> Result<Vec<Vec<u8>>, ProjectionError> {
    tx.scan_keys(prefix)
}

/// A chat transcript's order or mail, by whoever wrote the event.
fn transcript_row(
    env: &Envelope,
    at: DateTime<Utc>,
    chat: callvault_domain::ChatId,
    kind: AccessKind,
    detail: String,
) -> AccessRow {
    AccessRow {
        position: env.position,
        at,
        actor: env.actor.clone(),
        role: None,
        kind,
        allowed: true,
        contact: Some(ContactRef::Chat(chat)),
        recording_id: None,
        purpose: None,
        case_reference: None,
        reason: None,
        break_glass: false,
        detail: Some(detail),
        results: 0,
    }
}

fn party(p: callvault_domain::chat::ChatParty) -> &'static str {
    match p {
        callvault_domain::chat::ChatParty::Customer => "customer",
        callvault_domain::chat::ChatParty::Agent => "agent",
    }
}

fn contact_id(c: &ContactRef) -> String {
    match c {
        ContactRef::Call(id) => format!("call:{id}"),
        ContactRef::Chat(id) => format!("chat:{id}"),
    }
}

#[derive(Debug, Clone, Default)]
pub struct AccessFilter {
    pub actor: Option<String>,
    pub contact: Option<ContactRef>,
    pub purpose: Option<Purpose>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub break_glass_only: bool,
    pub denied_only: bool,
}

#[derive(Debug, Clone)]
pub struct AccessPage {
    pub items: Vec<AccessRow>,
    pub next_cursor: Option<String>,
}

/// Access rows, newest first.
pub fn query(
    view: &ViewDb,
    filter: &AccessFilter,
    after: Option<&str>,
    limit: usize,
) -> Result<AccessPage, ProjectionError> {
    let base = if let Some(c) = &filter.contact {
        key(&[b"c", contact_id(c).as_bytes(), b""])
    } else if let Some(a) = &filter.actor {
        key(&[b"a", a.as_bytes(), b""])
    } else if filter.break_glass_only {
        key(&[b"b", b""])
    } else if filter.denied_only {
        key(&[b"d", b""])
    } else if let Some(p) = filter.purpose {
        key(&[b"p", p.name().as_bytes(), b""])
    } else {
        key(&[b"t", b""])
    };
    crate::projection::check_range("to", filter.from, filter.to)?;
    let cursor = after.map(parse_cursor).transpose()?;
    let start = crate::projection::scan_start(
        &base,
        cursor.map(|(t, p)| [&base[..], &time_key(t), b"\x00", &p.to_be_bytes()].concat()),
        filter.to,
    );
    let floor = filter.from.map(time_key);
    let mut items = Vec::new();
    let mut scanned = 0usize;
    for entry in view.scan(&base, start.as_deref(), true) {
        let (k, v) = entry?;
        let rest = &k[base.len()..];
        if rest.len() != ENTRY_TAIL {
            continue;
        }
        if let Some(f) = floor
            && rest[..8] < f[..]
        {
            break;
        }
        let p = Position::from_be_bytes(rest[9..].try_into().unwrap_or_default());
        if cursor.is_some_and(|(_, cp)| cp == p) {
            continue;
        }
        scanned += 1;
        // Scanning the time index reads the rows themselves; any other
        // index leads to the row by its time and position.
        let row = if v.is_empty() {
            view.get_json::<AccessRow>(&row_key(&rest[..8], &rest[9..]))?
        } else {
            Some(crate::view::decode_row::<AccessRow>(&v)?)
        };
        let Some(row) = row else {
            continue;
        };
        let keep = filter.actor.as_ref().is_none_or(|a| row.actor == *a)
            && filter.contact.is_none_or(|c| row.contact == Some(c))
            && filter.purpose.is_none_or(|pu| row.purpose == Some(pu))
            && (!filter.break_glass_only || row.break_glass)
            && (!filter.denied_only || !row.allowed);
        let cursor_here = format!(
            "{}_{}_{}",
            row.at.timestamp_micros(),
            row.position.commit,
            row.position.prepare
        );
        if keep {
            items.push(row);
        }
        if items.len() == limit || scanned >= super::calls::MAX_SCAN {
            return Ok(AccessPage {
                items,
                next_cursor: Some(cursor_here),
            });
        }
    }
    Ok(AccessPage {
        items,
        next_cursor: None,
    })
}
