//! REST endpoints for audio, beside GraphQL:
//!
//! - `POST /calls/{call}/recordings` streams a recording into the vault
//!   (encrypted under its own fresh key as it arrives; never whole in
//!   memory) and records `RecordingStored`;
//! - `GET /calls/{call}/recordings/{recording}` plays it back, with HTTP
//!   Range for seeking. **Audit before access**: the `RecordingAccessed`
//!   event is appended before the first byte leaves; if that fails, nothing
//!   is served. A purged recording answers `410 Gone` with its tombstone.
//!
//! Who is acting comes from the bearer token; what they may do from the
//! policy (`access.rs`); why, from headers (`x-callvault-purpose`,
//! `x-callvault-mode`, `x-callvault-reason`, `x-callvault-case`). Uploads
//! need the telephony role. Refusals are logged as `AccessDenied`.

use axum::{
    Json,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use callvault_domain::{
    CallId, Context, Purpose, RecordingId, StaffId,
    access::{AccessMode, OpenRecording, open_recording},
    call::{CallCommand, StoreRecording},
    policy::{Action, Target},
};
use callvault_projections::journal::Cause;
use callvault_store::{
    ExpectedRevision, StreamName,
    blob::BlobError,
    vault::{KeyLookup, KeyOwner},
};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use crate::{
    custody::expiry_bucket,
    error::AppError,
    http::{AppState, error_response},
    service::Call,
};

pub const PURPOSE_HEADER: &str = "x-callvault-purpose";
pub const MODE_HEADER: &str = "x-callvault-mode";
pub const REASON_HEADER: &str = "x-callvault-reason";
pub const CASE_HEADER: &str = "x-callvault-case";
pub const RECORDING_ID_HEADER: &str = "x-recording-id";
pub const DURATION_HEADER: &str = "x-recording-duration-ms";

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AppError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| AppError::invalid(name, "is not visible ASCII"))
        })
        .transpose()
}

fn blob_error(e: BlobError) -> AppError {
    match e {
        BlobError::Missing(r) => AppError::Gone(format!("no audio is stored for recording {r}")),
        BlobError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
            tracing::error!(error = %e, "the recordings' disk is full");
            AppError::Unavailable(
                "no space left on the disk that holds recordings; nothing was stored".into(),
            )
        }
        other => AppError::Internal(other.into()),
    }
}

/// `POST /calls/{call}/recordings`
pub async fn upload(
    State(state): State<AppState>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match upload_inner(state, call_id, headers, body).await {
        Ok(r) => r,
        Err(e) => error_response(e),
    }
}

async fn upload_inner(
    state: AppState,
    call_id: String,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let registry = &state.registry;
    let actor = state.authenticate(&headers)?;
    let caller = crate::access::Caller::load(registry, &actor).await?;
    crate::access::authorize_plain(registry, &caller, Action::RecordCalls).await?;
    let call_id: CallId = call_id.parse().map_err(|e| AppError::invalid("call", e))?;
    let recording_id = match header_text(&headers, RECORDING_ID_HEADER)? {
        Some(id) => id
            .parse::<RecordingId>()
            .map_err(|e| AppError::invalid(RECORDING_ID_HEADER, e))?,
        None => RecordingId(Uuid::now_v7()),
    };
    let codec = header_text(&headers, header::CONTENT_TYPE.as_str())?
        .unwrap_or("application/octet-stream")
        .to_owned();
    let duration_ms = header_text(&headers, DURATION_HEADER)?
        .map(|d| {
            d.trim().parse::<u64>().map_err(|_| {
                AppError::invalid(DURATION_HEADER, "is not a whole number of milliseconds")
            })
        })
        .transpose()?;
    if let Some(len) =
        header_text(&headers, header::CONTENT_LENGTH.as_str())?.and_then(|l| l.parse::<u64>().ok())
        && len > state.max_upload_bytes
    {
        return Err(too_large(state.max_upload_bytes));
    }

    // One upload of a recording at a time: a client's retry while its
    // first attempt still streams is told so, rather than racing it.
    let _in_flight = UploadInFlight::claim(recording_id)?;
    // The call must exist and still hold its data.
    let loaded = registry.load::<Call>(&call_id).await?;
    let call = loaded
        .state
        .call
        .as_ref()
        .ok_or(AppError::NotFound(format!("call {call_id} does not exist")))?;
    if let Some(p) = &loaded.state.controls.history_purged {
        return Err(AppError::Gone(format!(
            "the data of call {call_id} was purged at {}",
            p.purged_at
        )));
    }
    if loaded.state.recordings.contains_key(&recording_id) {
        return Err(AppError::Conflict(format!(
            "recording {recording_id} is already stored"
        )));
    }
    // A recording id belongs to one call, for good: audio stored under it
    // for another call must not be overwritten (nor share its key, and so
    // its purge and its holds), not even after that audio was purged. The
    // claim is a durable mark beside the audio; this call's own earlier
    // attempt (a crash before its event) may go on.
    let used_by_another = || {
        AppError::Conflict(format!(
            "recording id {recording_id} is already used by another call; give each recording its own id"
        ))
    };
    let blobs = registry.blobs().clone();
    let had_audio = blobs.exists(recording_id);
    let owner = call_id.to_string();
    let claimed = tokio::task::spawn_blocking(move || blobs.claim(recording_id, &owner))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("blob task failed: {e}")))?
        .map_err(blob_error)?;
    match claimed {
        callvault_store::blob::Claim::Other(_) => return Err(used_by_another()),
        // Audio from before claims existed, with no mark: whose it is
        // cannot be told, so it is not overwritten.
        callvault_store::blob::Claim::Fresh if had_audio => return Err(used_by_another()),
        callvault_store::blob::Claim::Fresh | callvault_store::blob::Claim::Ours => {}
    }
    // Where custody will keep it once stored: a held or restricted call's
    // keys live in the hold bucket, never destroyed as a bucket.
    let bucket = if loaded.state.controls.is_held() || loaded.state.controls.is_restricted() {
        callvault_store::vault::Bucket::Hold
    } else {
        expiry_bucket(
            registry
                .policy()
                .recording_expires_at(call.ended_at.unwrap_or(call.started_at)),
        )
    };
    let owner = KeyOwner::Recording(recording_id);
    let key = registry
        .with_vault(move |v| v.create_key(owner, bucket))
        .await?;

    // Encrypt on a blocking thread, fed chunk by chunk.
    let writer = registry
        .blobs()
        .create(recording_id, &key)
        .map_err(blob_error)?;
    drop(key);
    let (tx, mut rx) = mpsc::channel::<Bytes>(8);
    let encrypt = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        while let Some(chunk) = rx.blocking_recv() {
            writer.write(&chunk)?;
        }
        Ok::<_, BlobError>(writer)
    });
    let mut body = body;
    let mut received: u64 = 0;
    let mut failure = None;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                failure = Some(AppError::invalid(
                    "body",
                    format!("the upload broke off: {e}"),
                ));
                break;
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received += data.len() as u64;
        if received > state.max_upload_bytes {
            failure = Some(too_large(state.max_upload_bytes));
            break;
        }
        if tx.send(data).await.is_err() {
            // The encryptor failed (say, the disk is full); its error is
            // reported below. Read the rest of the body first, unstored:
            // a server that answers mid-body and closes leaves the client
            // with a broken pipe instead of the answer.
            while let Some(Ok(frame)) = body.frame().await {
                received += frame.data_ref().map_or(0, |d| d.len() as u64);
                if received > state.max_upload_bytes {
                    break;
                }
            }
            break;
        }
    }
    drop(tx);
    let writer = encrypt
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("encryption task failed: {e}")))?
        .map_err(blob_error)?;
    if let Some(failure) = failure {
        drop(writer); // removes the partial file
        return Err(failure);
    }
    let info = tokio::task::spawn_blocking(move || writer.finish())
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("encryption task failed: {e}")))?
        .map_err(blob_error)?;

    let command = CallCommand::StoreRecording(StoreRecording {
        recording_id,
        codec,
        duration_ms,
        size_bytes: info.plaintext_len,
        ciphertext_sha256: info.ciphertext_sha256.clone(),
    });
    match registry
        .execute::<Call>(&actor, &call_id, command, None)
        .await
    {
        Ok(executed) => Ok((
            StatusCode::CREATED,
            Json(serde_json::json!({
                "recordingId": recording_id,
                "callId": call_id,
                "sizeBytes": info.plaintext_len,
                "ciphertextSha256": info.ciphertext_sha256,
                "logPosition": executed.position.to_string(),
            })),
        )
            .into_response()),
        Err(e) => {
            // Nothing refers to the audio: don't keep it.
            let _ = registry.blobs().delete(recording_id);
            Err(e)
        }
    }
}

/// A recording id being uploaded in this process; released on drop.
struct UploadInFlight(RecordingId);

fn uploads_in_flight() -> &'static std::sync::Mutex<std::collections::HashSet<RecordingId>> {
    static IN_FLIGHT: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashSet<RecordingId>>,
    > = std::sync::OnceLock::new();
    IN_FLIGHT.get_or_init(Default::default)
}

impl UploadInFlight {
    fn claim(id: RecordingId) -> Result<Self, AppError> {
        let mut set = uploads_in_flight()
            .lock()
            .map_err(|_| AppError::Internal(anyhow::anyhow!("upload registry poisoned")))?;
        if set.insert(id) {
            Ok(Self(id))
        } else {
            Err(AppError::Conflict(format!(
                "recording {id} is being uploaded right now; retry once that upload has finished"
            )))
        }
    }
}

/// Whether recording `id` is being uploaded in this process right now.
pub(crate) fn is_uploading(id: RecordingId) -> bool {
    uploads_in_flight()
        .lock()
        .is_ok_and(|set| set.contains(&id))
}

impl Drop for UploadInFlight {
    fn drop(&mut self) {
        if let Ok(mut set) = uploads_in_flight().lock() {
            set.remove(&self.0);
        }
    }
}

fn too_large(limit: u64) -> AppError {
    AppError::PayloadTooLarge(format!(
        "the recording is larger than the {} MiB this register accepts",
        limit / (1024 * 1024)
    ))
}

/// A single byte range of a `Range` header, resolved against `len`.
#[derive(Debug, PartialEq, Eq)]
pub enum ByteRange {
    Whole,
    Part { start: u64, end: u64 },
    Unsatisfiable,
}

pub fn parse_range(value: Option<&str>, len: u64) -> ByteRange {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return ByteRange::Whole;
    };
    if spec.contains(',') {
        // Several ranges: serve the whole recording, as RFC 9110 allows.
        return ByteRange::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return ByteRange::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(start), Some(end)) if a.len() + b.len() > 0 => {
            (start, end.min(len.saturating_sub(1)))
        }
        (Some(start), None) if b.is_empty() => (start, len.saturating_sub(1)),
        (None, Some(suffix)) if a.is_empty() && suffix > 0 => {
            (len.saturating_sub(suffix), len.saturating_sub(1))
        }
        _ => return ByteRange::Whole,
    };
    if len == 0 || range.0 >= len || range.0 > range.1 {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Part {
        start: range.0,
        end: range.1,
    }
}

/// `GET /calls/{call}/recordings/{recording}`
pub async fn play(
    State(state): State<AppState>,
    Path((call_id, recording_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match play_inner(state, call_id, recording_id, headers).await {
        Ok(r) => r,
        Err(e) => error_response(e),
    }
}

async fn play_inner(
    state: AppState,
    call_id: String,
    recording_id: String,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let registry = &state.registry;
    let actor = state.authenticate(&headers)?;
    let call_id: CallId = call_id.parse().map_err(|e| AppError::invalid("call", e))?;
    let recording_id: RecordingId = recording_id
        .parse()
        .map_err(|e| AppError::invalid("recording", e))?;
    let purpose: Purpose = header_text(&headers, PURPOSE_HEADER)?
        .ok_or_else(|| {
            AppError::invalid(
                PURPOSE_HEADER,
                "is required: say why you open the recording",
            )
        })?
        .parse()
        .map_err(|e| AppError::invalid(PURPOSE_HEADER, e))?;
    let (mode, action) = match header_text(&headers, MODE_HEADER)?.unwrap_or("listen") {
        "listen" => (AccessMode::Listen, Action::Listen),
        "download" => (AccessMode::Download, Action::Download),
        "subject_session" => (AccessMode::SubjectSession, Action::SubjectSession),
        other => {
            return Err(AppError::invalid(
                MODE_HEADER,
                format!("`{other}` is not listen, download or subject_session"),
            ));
        }
    };
    let case_reference = header_text(&headers, CASE_HEADER)?.map(str::to_owned);
    let reason = header_text(&headers, REASON_HEADER)?.map(str::to_owned);

    let caller = crate::access::Caller::load(registry, &actor).await?;
    let loaded = registry.load::<Call>(&call_id).await?;
    let attempt = crate::access::Attempt {
        purpose: Some(purpose),
        contact: Some(callvault_domain::ContactRef::Call(call_id)),
        recording_id: Some(recording_id),
        case_reference: case_reference.clone(),
        reason: reason.clone(),
    };
    let Some(facts) = &loaded.state.call else {
        // Whether a call exists is itself something to be allowed to
        // know: someone who could not open another's call is refused (and
        // the refusal logged) exactly as for a call that exists.
        crate::access::authorize(
            registry,
            &caller,
            action,
            &attempt,
            Some(Target {
                relation: callvault_domain::policy::Relation::Other,
                restricted: false,
                recording_purged: false,
            }),
        )
        .await?;
        return Err(AppError::NotFound(format!("there is no call {call_id}")));
    };
    let recording = loaded.state.recordings.get(&recording_id);
    let granted = crate::access::authorize(
        registry,
        &caller,
        action,
        &attempt,
        Some(Target {
            relation: caller.relation(facts.agent.as_str()),
            restricted: loaded.state.controls.is_restricted(),
            recording_purged: recording.is_some_and(|r| r.purged.is_some()),
        }),
    )
    .await?;
    if granted.gone
        && let Some(p) = recording.and_then(|r| r.purged.as_ref())
    {
        return Ok((
            StatusCode::GONE,
            Json(serde_json::json!({
                "error": {
                    "code": "GONE",
                    "message": format!("recording {recording_id} was destroyed at {} under retention policy v{}", p.purged_at, p.policy_version),
                },
                "tombstone": {
                    "recordingId": recording_id,
                    "callId": call_id,
                    "purgedAt": p.purged_at,
                    "policyVersion": p.policy_version,
                    "keyBucket": p.key_bucket,
                    "reason": "retention_expired",
                },
            })),
        )
            .into_response());
    }
    let ctx = Context::new(registry.now(), actor.clone());
    let events = open_recording(
        &loaded.state,
        call_id,
        OpenRecording {
            recording_id,
            role: Some(granted.role),
            purpose,
            mode,
            case_reference,
            reason,
            break_glass: granted.break_glass,
        },
        &ctx,
    )?;
    let codec = loaded
        .state
        .recordings
        .get(&recording_id)
        .map_or("application/octet-stream".to_owned(), |r| r.codec.clone());

    let owner = KeyOwner::Recording(recording_id);
    let key = match registry.with_vault(move |v| v.key(owner)).await? {
        KeyLookup::Live(k) => k,
        KeyLookup::Gone => {
            return Err(AppError::Gone(format!(
                "the key of recording {recording_id} was destroyed"
            )));
        }
    };
    let mut reader = registry
        .blobs()
        .open_reader(recording_id, &key)
        .map_err(blob_error)?;
    drop(key);
    let len = reader.plaintext_len();
    let range = parse_range(header_text(&headers, header::RANGE.as_str())?, len);
    if range == ByteRange::Unsatisfiable {
        return Ok((
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{len}"))],
        )
            .into_response());
    }

    // Audit before access: the access event is durable before any byte
    // leaves, or nothing is served.
    record_access(registry, &actor, &events).await?;

    let (start, end) = match range {
        ByteRange::Part { start, end } => (start, end),
        _ => (0, len.saturating_sub(1)),
    };
    let to_send = if len == 0 { 0 } else { end - start + 1 };
    reader.seek(start);
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut left = to_send;
        while left > 0 {
            let Some(chunk) = reader.next_chunk() else {
                break;
            };
            let item = chunk
                .map(|mut c| {
                    c.truncate(left.min(c.len() as u64) as usize);
                    left -= c.len() as u64;
                    Bytes::from(c)
                })
                .map_err(|e| std::io::Error::other(e.to_string()));
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                break;
            }
        }
    });
    let mut response = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&codec) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(to_send));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let disposition = if mode == AccessMode::Download {
        format!("attachment; filename=\"{recording_id}\"")
    } else {
        "inline".to_owned()
    };
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let ByteRange::Part { start, end } = range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

/// Appends access events to the actor's access stream.
pub async fn record_access(
    registry: &crate::service::Registry,
    actor: &StaffId,
    events: &[callvault_domain::Event],
) -> Result<(), AppError> {
    let Some(first) = events.first() else {
        return Ok(());
    };
    let stream = StreamName::new(first.stream_name())?;
    let cause = Cause::actor(actor.clone());
    let new = events
        .iter()
        .map(|e| registry.encode(e, Uuid::now_v7(), &cause))
        .collect::<Result<Vec<_>, _>>()?;
    registry
        .store()
        .append(&stream, ExpectedRevision::Any, new)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_like_rfc_9110() {
        assert_eq!(parse_range(None, 100), ByteRange::Whole);
        assert_eq!(
            parse_range(Some("bytes=0-9"), 100),
            ByteRange::Part { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=90-"), 100),
            ByteRange::Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=-10"), 100),
            ByteRange::Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=50-500"), 100),
            ByteRange::Part { start: 50, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=100-"), 100),
            ByteRange::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=5-2"), 100),
            ByteRange::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), ByteRange::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 100), ByteRange::Whole);
    }
}
