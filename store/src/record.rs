//! The embedded backend's binary encoding of recorded events. A record
//! (format 1) is a version byte, then every field length-prefixed,
//! big-endian; the global position is not repeated inside it. A chunk
//! (format 2) holds the records of consecutive positions from one append,
//! stored under the first position, so a batch of 100 events costs one sled
//! insert rather than a hundred.

use chrono::DateTime;
use uuid::Uuid;

use crate::{
    contract::{Metadata, Position, RecordedEvent, Revision, StoreError, StreamName},
    hash::ChainHash,
};

const FORMAT: u8 = 1;

pub(crate) fn encode(e: &RecordedEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + e.payload.len() + e.stream.as_str().len());
    out.push(FORMAT);
    put_str16(&mut out, e.stream.as_str());
    out.extend_from_slice(&e.revision.0.to_be_bytes());
    out.extend_from_slice(e.id.as_bytes());
    put_str16(&mut out, &e.event_type);
    out.extend_from_slice(&e.schema_version.to_be_bytes());
    put_str16(&mut out, &e.metadata.actor);
    put_uuid(&mut out, e.metadata.correlation_id);
    put_uuid(&mut out, e.metadata.causation_id);
    out.extend_from_slice(&e.metadata.recorded_at.timestamp_micros().to_be_bytes());
    out.extend_from_slice(&e.metadata.prev_hash.0);
    out.extend_from_slice(&e.metadata.hash.0);
    out.extend_from_slice(&(e.payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&e.payload);
    out
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    // Stream names, type names and actors are far below 64 KiB; longer
    // strings are cut rather than mis-framed (the append path refuses them
    // long before this).
    let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_uuid(out: &mut Vec<u8>, id: Option<Uuid>) {
    match id {
        Some(id) => {
            out.push(1);
            out.extend_from_slice(id.as_bytes());
        }
        None => out.push(0),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    position: Position,
}

impl<'a> Reader<'a> {
    fn corrupt(&self, what: &str) -> StoreError {
        StoreError::Corrupt(format!(
            "event record at position {} is damaged: {what} (byte {})",
            self.position, self.at
        ))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], StoreError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let out = &self.bytes[self.at..end];
                self.at = end;
                Ok(out)
            }
            None => Err(self.corrupt(&format!("{what} runs past the end"))),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], StoreError> {
        let slice = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn string(&mut self, what: &str) -> Result<String, StoreError> {
        let len = u16::from_be_bytes(self.array(what)?) as usize;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.corrupt(&format!("{what} is not UTF-8")))
    }

    fn uuid(&mut self, what: &str) -> Result<Option<Uuid>, StoreError> {
        match self.array::<1>(what)?[0] {
            0 => Ok(None),
            1 => Ok(Some(Uuid::from_bytes(self.array(what)?))),
            _ => Err(self.corrupt(&format!("{what} has a bad flag"))),
        }
    }
}

pub(crate) fn decode(position: Position, bytes: &[u8]) -> Result<RecordedEvent, StoreError> {
    let mut r = Reader {
        bytes,
        at: 0,
        position,
    };
    let format = r.array::<1>("format")?[0];
    if format != FORMAT {
        return Err(r.corrupt(&format!("unknown record format {format}")));
    }
    let stream = r.string("stream")?;
    let stream = StreamName::new(stream).map_err(|e| r.corrupt(&e.to_string()))?;
    let revision = Revision(u64::from_be_bytes(r.array("revision")?));
    let id = Uuid::from_bytes(r.array("id")?);
    let event_type = r.string("event type")?;
    let schema_version = u32::from_be_bytes(r.array("schema version")?);
    let actor = r.string("actor")?;
    let correlation_id = r.uuid("correlation id")?;
    let causation_id = r.uuid("causation id")?;
    let micros = i64::from_be_bytes(r.array("recorded at")?);
    let recorded_at = DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| r.corrupt("recorded-at out of range"))?;
    let prev_hash = ChainHash(r.array("previous hash")?);
    let hash = ChainHash(r.array("hash")?);
    let len = u32::from_be_bytes(r.array("payload length")?) as usize;
    let payload = r.take(len, "payload")?.to_vec();
    if r.at != bytes.len() {
        return Err(r.corrupt("trailing bytes"));
    }
    Ok(RecordedEvent {
        stream,
        revision,
        position,
        id,
        event_type,
        schema_version,
        payload,
        metadata: Metadata {
            actor,
            correlation_id,
            causation_id,
            recorded_at,
            prev_hash,
            hash,
        },
    })
}

/// Chunk format: the events of one append (or part of a large one), with
/// consecutive positions, stored under the first one's position.
const CHUNK_FORMAT: u8 = 2;
/// Most events in one chunk.
pub(crate) const MAX_CHUNK_EVENTS: usize = 128;
/// A chunk is closed once it holds this many bytes. With one more event of
/// at most 64 KiB it stays under a quarter of sled's 1 MiB segment, above
/// which sled would write it to a file of its own.
pub(crate) const MAX_CHUNK_BYTES: usize = 128 * 1024;

pub(crate) fn encode_chunk(records: &[RecordedEvent]) -> Vec<u8> {
    let encoded: Vec<Vec<u8>> = records.iter().map(encode).collect();
    let mut out = Vec::with_capacity(5 + encoded.iter().map(|e| 4 + e.len()).sum::<usize>());
    out.push(CHUNK_FORMAT);
    out.extend_from_slice(&(records.len() as u32).to_be_bytes());
    for e in encoded {
        out.extend_from_slice(&(e.len() as u32).to_be_bytes());
        out.extend_from_slice(&e);
    }
    out
}

/// How many events a chunk holds, from its header alone.
pub(crate) fn chunk_len(first: u64, bytes: &[u8]) -> Result<u64, StoreError> {
    match bytes.get(..5) {
        Some([CHUNK_FORMAT, n @ ..]) => Ok(u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as u64),
        _ => Err(StoreError::Corrupt(format!(
            "event chunk at position {first} has an unknown format"
        ))),
    }
}

pub(crate) fn decode_chunk(first: u64, bytes: &[u8]) -> Result<Vec<RecordedEvent>, StoreError> {
    let count = chunk_len(first, bytes)?;
    let mut out = Vec::with_capacity(count as usize);
    let mut at = 5usize;
    for i in 0..count {
        let position = Position::sequence(first + i);
        let damaged = || {
            StoreError::Corrupt(format!(
                "event chunk at position {first} is damaged at event {i}"
            ))
        };
        let len_bytes: [u8; 4] = bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(damaged)?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let record = bytes.get(at + 4..at + 4 + len).ok_or_else(damaged)?;
        out.push(decode(position, record)?);
        at += 4 + len;
    }
    if at != bytes.len() {
        return Err(StoreError::Corrupt(format!(
            "event chunk at position {first} has trailing bytes"
        )));
    }
    Ok(out)
}

/// Splits an append's records into chunks.
pub(crate) fn chunks(records: &[RecordedEvent]) -> Vec<&[RecordedEvent]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, r) in records.iter().enumerate() {
        if i > start && (i - start >= MAX_CHUNK_EVENTS || bytes >= MAX_CHUNK_BYTES) {
            out.push(&records[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += r.payload.len() + 128;
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordedEvent {
        RecordedEvent {
            stream: StreamName::new("call-1").unwrap(),
            revision: Revision(3),
            position: Position::sequence(9),
            id: Uuid::from_u128(7),
            event_type: "CallEnded".into(),
            schema_version: 2,
            payload: b"{\"a\":1}".to_vec(),
            metadata: Metadata {
                actor: "anna".into(),
                correlation_id: Some(Uuid::from_u128(1)),
                causation_id: None,
                recorded_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
                prev_hash: ChainHash([1; 32]),
                hash: ChainHash([2; 32]),
            },
        }
    }

    #[test]
    fn a_record_round_trips() {
        let e = sample();
        assert_eq!(decode(e.position, &encode(&e)).unwrap(), e);
    }

    #[test]
    fn a_chunk_round_trips_and_large_appends_split() {
        let mut records = Vec::new();
        for i in 0..300u64 {
            let mut e = sample();
            e.position = Position::sequence(10 + i);
            e.revision = Revision(i);
            records.push(e);
        }
        let parts = chunks(&records);
        assert_eq!(
            parts.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![128, 128, 44]
        );
        let bytes = encode_chunk(parts[1]);
        assert_eq!(chunk_len(138, &bytes).unwrap(), 128);
        assert_eq!(decode_chunk(138, &bytes).unwrap(), parts[1].to_vec());
        assert!(decode_chunk(138, &bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn a_truncated_record_is_reported_as_damaged_not_misread() {
        let e = sample();
        let bytes = encode(&e);
        for cut in [0, 1, 10, bytes.len() - 1] {
            let err = decode(e.position, &bytes[..cut]).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        }
    }
}
