//! Encrypted audio blobs: round trips at every size edge, reads from any
//! offset, and every kind of damage detected as an error.

use callvault_domain::RecordingId;
use callvault_store::{
    blob::{BlobError, BlobStore, HEADER_LEN},
    vault::{Bucket, DataKey, KeyOwner, KeyVault},
};

const SEG: usize = 1024;

struct Fixture {
    _dir: tempfile::TempDir,
    blobs: BlobStore,
    vault: KeyVault,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::with_segment(dir.path().join("blobs"), SEG).unwrap();
    let vault = KeyVault::open(dir.path().join("keys")).unwrap();
    Fixture {
        _dir: dir,
        blobs,
        vault,
    }
}

fn id(n: u128) -> RecordingId {
    RecordingId(uuid::Uuid::from_u128(n))
}

fn key(f: &Fixture, r: RecordingId) -> DataKey {
    f.vault
        .create_key(KeyOwner::Recording(r), Bucket::Hold)
        .unwrap()
}

fn audio(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn store(f: &Fixture, r: RecordingId, data: &[u8], chunk: usize) {
    let k = key(f, r);
    let mut w = f.blobs.create(r, &k).unwrap();
    for piece in data.chunks(chunk.max(1)) {
        w.write(piece).unwrap();
    }
    let info = w.finish().unwrap();
    assert_eq!(info.plaintext_len, data.len() as u64);
    assert_eq!(info.ciphertext_sha256.len(), 64);
}

fn read_from(f: &Fixture, r: RecordingId, offset: u64) -> Result<Vec<u8>, BlobError> {
    let k = key(f, r);
    let mut reader = f.blobs.open_reader(r, &k)?;
    reader.seek(offset);
    let mut out = Vec::new();
    while let Some(chunk) = reader.next_chunk() {
        out.extend(chunk?);
    }
    Ok(out)
}

#[test]
fn audio_round_trips_at_every_size_edge() {
    let f = fixture();
    for (n, len) in [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 5 * 1024 * 1024 + 7]
        .into_iter()
        .enumerate()
    {
        let r = id(n as u128 + 1);
        let data = audio(len);
        store(&f, r, &data, 777);
        assert_eq!(read_from(&f, r, 0).unwrap(), data, "length {len}");
        let k = key(&f, r);
        assert_eq!(
            f.blobs.open_reader(r, &k).unwrap().plaintext_len(),
            len as u64
        );
    }
}

#[test]
fn reading_from_any_offset_gives_the_rest() {
    let f = fixture();
    let r = id(1);
    let data = audio(10 * SEG + 123);
    store(&f, r, &data, 4096);
    for offset in [
        0,
        1,
        SEG - 1,
        SEG,
        SEG + 1,
        7 * SEG + 5,
        data.len() - 1,
        data.len(),
    ] {
        assert_eq!(
            read_from(&f, r, offset as u64).unwrap(),
            data[offset..],
            "offset {offset}"
        );
    }
}

fn tampered(f: &Fixture, r: RecordingId, edit: impl FnOnce(&mut Vec<u8>)) -> BlobError {
    let path = f.blobs.path(r);
    let mut bytes = std::fs::read(&path).unwrap();
    edit(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    read_from(f, r, 0).expect_err("damage must be detected")
}

#[test]
fn a_flipped_byte_is_detected() {
    let f = fixture();
    store(&f, id(1), &audio(4 * SEG), 100);
    let e = tampered(&f, id(1), |b| b[HEADER_LEN + SEG + 40] ^= 1);
    assert!(matches!(e, BlobError::Tampered { .. }), "{e}");
    // A flipped header byte (the nonce prefix) too.
    store(&f, id(2), &audio(4 * SEG), 100);
    let e = tampered(&f, id(2), |b| b[HEADER_LEN - 1] ^= 1);
    assert!(matches!(e, BlobError::Tampered { .. }), "{e}");
}

#[test]
fn truncation_is_detected_even_at_a_segment_boundary() {
    let f = fixture();
    let stride = SEG + 16;
    for (n, cut) in [1usize, stride, 2 * stride, 4 * stride - 3]
        .into_iter()
        .enumerate()
    {
        let r = id(n as u128 + 10);
        store(&f, r, &audio(4 * SEG), 100);
        let e = tampered(&f, r, |b| b.truncate(b.len() - cut));
        assert!(
            matches!(e, BlobError::Tampered { .. } | BlobError::Truncated { .. }),
            "cut {cut}: {e}"
        );
    }
    let r = id(20);
    store(&f, r, &audio(10), 100);
    let e = tampered(&f, r, |b| b.truncate(HEADER_LEN));
    assert!(matches!(e, BlobError::Truncated { .. }), "{e}");
}

#[test]
fn swapped_segments_are_detected() {
    let f = fixture();
    store(&f, id(1), &audio(4 * SEG), 100);
    let stride = SEG + 16;
    let e = tampered(&f, id(1), |b| {
        let (a, c) = (HEADER_LEN, HEADER_LEN + stride);
        let first: Vec<u8> = b[a..a + stride].to_vec();
        let second: Vec<u8> = b[c..c + stride].to_vec();
        b[a..a + stride].copy_from_slice(&second);
        b[c..c + stride].copy_from_slice(&first);
    });
    assert!(matches!(e, BlobError::Tampered { segment: 0, .. }), "{e}");
}

#[test]
fn a_blob_moved_to_another_recording_is_refused() {
    let f = fixture();
    store(&f, id(1), &audio(3 * SEG), 100);
    store(&f, id(2), &audio(3 * SEG), 100);
    std::fs::copy(f.blobs.path(id(1)), f.blobs.path(id(2))).unwrap();
    let e = read_from(&f, id(2), 0).unwrap_err();
    assert!(matches!(e, BlobError::WrongRecording { .. }), "{e}");
    // With the header's id rewritten too, the key and the AAD still differ.
    let e = tampered(&f, id(2), |b| b[14..30].copy_from_slice(id(2).0.as_bytes()));
    assert!(matches!(e, BlobError::Tampered { .. }), "{e}");
}

#[test]
fn the_wrong_key_cannot_read_a_blob() {
    let f = fixture();
    store(&f, id(1), &audio(100), 100);
    let other = f
        .vault
        .create_key(KeyOwner::Recording(id(99)), Bucket::Hold)
        .unwrap();
    let mut reader = f.blobs.open_reader(id(1), &other).unwrap();
    assert!(matches!(
        reader.next_chunk(),
        Some(Err(BlobError::Tampered { .. }))
    ));
}

#[test]
fn an_abandoned_upload_leaves_nothing_behind() {
    let f = fixture();
    let k = key(&f, id(1));
    let mut w = f.blobs.create(id(1), &k).unwrap();
    w.write(&audio(5000)).unwrap();
    drop(w);
    assert!(!f.blobs.exists(id(1)));
    assert!(matches!(
        read_from(&f, id(1), 0),
        Err(BlobError::Missing(_))
    ));
    assert!(f.blobs.list().unwrap().is_empty());
}

#[test]
fn a_200_mb_recording_streams_through_one_segment_of_memory() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path().join("blobs")).unwrap();
    let vault = KeyVault::open(dir.path().join("keys")).unwrap();
    let r = id(1);
    let k = vault
        .create_key(KeyOwner::Recording(r), Bucket::Hold)
        .unwrap();
    let chunk = audio(256 * 1024);
    let total = 200 * 1024 * 1024;
    let mut w = blobs.create(r, &k).unwrap();
    let mut peak = 0;
    for _ in 0..total / chunk.len() {
        w.write(&chunk).unwrap();
        peak = peak.max(w.buffered());
    }
    let info = w.finish().unwrap();
    assert_eq!(info.plaintext_len, total as u64);
    assert!(peak <= 64 * 1024 + 16, "the writer buffered {peak} bytes");
    let mut reader = blobs.open_reader(r, &k).unwrap();
    let (mut read, mut peak) = (0usize, 0usize);
    let mut pos = 0usize;
    while let Some(piece) = reader.next_chunk() {
        let piece = piece.unwrap();
        assert_eq!(piece[..], chunk[pos % chunk.len()..][..piece.len()]);
        pos += piece.len();
        read += piece.len();
        peak = peak.max(reader.buffered());
    }
    assert_eq!(read, total);
    assert!(peak <= 64 * 1024 + 16, "the reader buffered {peak} bytes");
}

mod hostile {
    //! Property tests in place of a fuzzer (no `cargo fuzz` toolchain
    //! here): any bytes where a blob should be, and any damage to a real
    //! one, read as an error — never a panic, never garbage.

    use proptest::prelude::*;

    use super::*;

    fn read_all(f: &Fixture, r: RecordingId, k: &DataKey) -> Result<Vec<u8>, BlobError> {
        let mut reader = f.blobs.open_reader(r, k)?;
        let mut out = Vec::new();
        while let Some(chunk) = reader.next_chunk() {
            out.extend(chunk?);
        }
        Ok(out)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_bytes_are_never_a_recording(bytes in proptest::collection::vec(any::<u8>(), 0..3 * SEG)) {
            let f = fixture();
            let r = id(7);
            let k = key(&f, r);
            let path = f.blobs.path(r);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            prop_assert!(read_all(&f, r, &k).is_err());
        }

        #[test]
        fn any_damage_to_a_real_recording_is_detected(
            len in 1usize..4 * SEG,
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let f = fixture();
            let r = id(8);
            let k = key(&f, r);
            let data = audio(len);
            let mut w = f.blobs.create(r, &k).unwrap();
            w.write(&data).unwrap();
            w.finish().unwrap();
            let path = f.blobs.path(r);
            let mut stored = std::fs::read(&path).unwrap();
            if truncate {
                let at = cut.index(stored.len());
                stored.truncate(at);
            } else {
                let i = flip.index(stored.len());
                stored[i] ^= 1 << bit;
            }
            std::fs::write(&path, &stored).unwrap();
            let read = read_all(&f, r, &k);
            prop_assert!(read.is_err(), "damaged blob read as {} bytes", read.map(|v| v.len()).unwrap_or(0));
        }
    }

    #[test]
    fn the_header_length_is_what_a_reader_checks_first() {
        let f = fixture();
        let r = id(9);
        let k = key(&f, r);
        let path = f.blobs.path(r);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, vec![0u8; HEADER_LEN - 1]).unwrap();
        assert!(read_all(&f, r, &k).is_err());
    }
}
