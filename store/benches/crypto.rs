//! What encryption costs the audio pipeline, measured in one run:
//! AES-256-GCM alone; storing a large recording encrypted (the real
//! `BlobWriter`) beside the same pipeline storing plaintext (same chunking,
//! same SHA-256 of what is written, same fsync and rename); reading it back
//! decrypted beside a plain read; and the key vault's rates (key creation,
//! each synced; destroying a bucket).
//!
//! Run: `cargo bench -p callvault-store --bench crypto`
//! (`CALLVAULT_BENCH_MIB`, default 512; `CALLVAULT_BENCH_DIR`, default
//! `target/bench-tmp`.)

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey},
    digest,
};
use callvault_domain::RecordingId;
use callvault_store::{
    blob::BlobStore,
    vault::{Bucket, KeyOwner, KeyVault},
};

const CHUNK: usize = 256 * 1024;
const SEGMENT: usize = 64 * 1024;

fn bench_dir() -> PathBuf {
    let dir = std::env::var("CALLVAULT_BENCH_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-tmp/crypto"),
        PathBuf::from,
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench folder");
    dir
}

fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn source(len: u64, mut sink: impl FnMut(&[u8])) {
    let mut buf = vec![0u8; CHUNK];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    let mut left = len;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        sink(&buf[..n]);
        left -= n as u64;
    }
}

fn cipher_alone(bytes: u64) -> Duration {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).expect("key"));
    let mut buf = vec![0u8; SEGMENT];
    let start = Instant::now();
    let mut counter = 0u32;
    let mut done = 0u64;
    while done < bytes {
        let mut n = [0u8; 12];
        n[7..11].copy_from_slice(&counter.to_be_bytes());
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::empty(), &mut buf)
            .expect("seal");
        let _ = std::hint::black_box(tag);
        counter += 1;
        done += SEGMENT as u64;
    }
    start.elapsed()
}

/// The plaintext twin of `BlobWriter`: segments of the same size, SHA-256
/// of what is written, fsync, rename, folder sync.
fn store_plain(dir: &Path, bytes: u64) -> Duration {
    let start = Instant::now();
    let tmp = dir.join("plain.tmp");
    let mut f = std::fs::File::create(&tmp).expect("plain file");
    let mut digest = digest::Context::new(&digest::SHA256);
    let mut segment = Vec::with_capacity(SEGMENT);
    source(bytes, |mut chunk| {
        while !chunk.is_empty() {
            let take = (SEGMENT - segment.len()).min(chunk.len());
            segment.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if segment.len() == SEGMENT {
                f.write_all(&segment).expect("write");
                digest.update(&segment);
                segment.clear();
            }
        }
    });
    f.write_all(&segment).expect("write");
    digest.update(&segment);
    f.sync_all().expect("fsync");
    std::fs::rename(&tmp, dir.join("plain.blob")).expect("rename");
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("dir sync");
    std::hint::black_box(digest.finish());
    start.elapsed()
}

fn read_plain(dir: &Path) -> (u64, Duration) {
    let start = Instant::now();
    let mut f = std::fs::File::open(dir.join("plain.blob")).expect("open");
    let mut buf = vec![0u8; SEGMENT];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    (total, start.elapsed())
}

fn main() {
    let mib: u64 = std::env::var("CALLVAULT_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512);
    let bytes = mib * 1024 * 1024;
    let dir = bench_dir();
    let vault = KeyVault::open(dir.join("keys")).expect("vault");
    let blobs = BlobStore::open(dir.join("blobs")).expect("blobs");

    let cipher = cipher_alone(bytes);

    let recording = RecordingId(uuid::Uuid::now_v7());
    let key = vault
        .create_key(KeyOwner::Recording(recording), Bucket::Hold)
        .expect("key");
    // Alternate the two pipelines and keep each one's best of three, so
    // neither pays for the other's writeback.
    let mut plain_store = Duration::MAX;
    let mut enc_store = Duration::MAX;
    for round in 0..3 {
        let encrypted = || {
            let _ = blobs.delete(recording);
            let start = Instant::now();
            let mut writer = blobs.create(recording, &key).expect("writer");
            source(bytes, |chunk| writer.write(chunk).expect("write"));
            writer.finish().expect("finish");
            start.elapsed()
        };
        if round % 2 == 0 {
            plain_store = plain_store.min(store_plain(&dir, bytes));
            enc_store = enc_store.min(encrypted());
        } else {
            enc_store = enc_store.min(encrypted());
            plain_store = plain_store.min(store_plain(&dir, bytes));
        }
    }

    let (plain_bytes, plain_read) = read_plain(&dir);
    let start = Instant::now();
    let mut reader = blobs.open_reader(recording, &key).expect("reader");
    let mut dec_bytes = 0u64;
    while let Some(chunk) = reader.next_chunk() {
        dec_bytes += chunk.expect("decrypt").len() as u64;
    }
    let dec_read = start.elapsed();
    assert_eq!(plain_bytes, dec_bytes);

    println!(
        "{mib} MiB recording, 64 KiB segments, AES-256-GCM (aws-lc-rs); stores: best of 3, alternating"
    );
    println!("{:<44} {:>10} {:>8}", "case", "MB/s", "ratio");
    println!(
        "{:<44} {:>10.0}",
        "cipher alone (seal 64 KiB in place)",
        mb_s(bytes, cipher)
    );
    println!(
        "{:<44} {:>10.0} {:>8}",
        "store plaintext (write+sha256+fsync)",
        mb_s(bytes, plain_store),
        "1.00"
    );
    println!(
        "{:<44} {:>10.0} {:>8.2}",
        "store encrypted (BlobWriter)",
        mb_s(bytes, enc_store),
        plain_store.as_secs_f64() / enc_store.as_secs_f64()
    );
    println!(
        "{:<44} {:>10.0} {:>8}",
        "read plaintext (page cache)",
        mb_s(bytes, plain_read),
        "1.00"
    );
    println!(
        "{:<44} {:>10.0} {:>8.2}",
        "read + decrypt (BlobReader, page cache)",
        mb_s(bytes, dec_read),
        plain_read.as_secs_f64() / dec_read.as_secs_f64()
    );

    // The vault: creating keys (each durable), moving, destroying a bucket.
    let n = 2000u128;
    let bucket = Bucket::Expiry(chrono::NaiveDate::from_ymd_opt(2027, 3, 3).expect("date"));
    let start = Instant::now();
    for i in 0..n {
        vault
            .create_key(
                KeyOwner::Recording(RecordingId(uuid::Uuid::from_u128(i + 1))),
                bucket,
            )
            .expect("create");
    }
    let create = start.elapsed();
    let start = Instant::now();
    for i in 0..n {
        std::hint::black_box(
            vault
                .key(KeyOwner::Recording(RecordingId(uuid::Uuid::from_u128(
                    i + 1,
                ))))
                .expect("key"),
        );
    }
    let unwrap = start.elapsed();
    let start = Instant::now();
    let destroyed = vault.destroy_bucket(bucket).expect("destroy");
    let destroy = start.elapsed();
    println!("{:<44} {:>10}", "key vault", "per second");
    println!(
        "{:<44} {:>10.0}",
        "create key (wrap + append + fdatasync)",
        n as f64 / create.as_secs_f64()
    );
    println!(
        "{:<44} {:>10.0}",
        "look up key (unwrap)",
        n as f64 / unwrap.as_secs_f64()
    );
    println!(
        "{:<44} {:>10.0}  ({destroyed} keys in {destroy:.2?})",
        "destroy bucket (keys shredded)",
        destroyed as f64 / destroy.as_secs_f64()
    );
    drop(vault);
    let _ = std::fs::remove_dir_all(&dir);
}
