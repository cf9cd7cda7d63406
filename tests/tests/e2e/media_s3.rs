//! The S3 media store (`wabridge_aws::s3_media::S3MediaStore`) against moto's S3 through the
//! real AWS SDK: files of one part and of several round-trip byte for byte; an abort, a second
//! commit of a stored file and a refused key leave nothing behind (no pending object, no
//! incomplete upload); absent keys are neither open nor existing; a presigned URL serves the
//! bytes with the content type asked for.

use std::time::{Duration, Instant};

use crate::media_bench::peak_kib;
use sha2::Digest;
use tokio::io::AsyncReadExt;
use wabridge_aws::s3_media::{S3MediaStore, PART_SIZE, PENDING_PREFIX};
use wabridge_core::error::StoreError;
use wabridge_core::media::store::MediaStore;
use wabridge_core::media::Sha256Digest;
use wabridge_tests::{create_bucket, object_keys, unique_name, Aws};

/// Not a divisor of the part size: chunks straddle part boundaries, as a download's do.
const CHUNK: usize = 100_000;

/// `len` deterministic bytes of `seed` (an xorshift), so two files of different seeds differ.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn key_of(data: &[u8]) -> String {
    Sha256Digest::from_bytes(sha2::Sha256::digest(data).into()).object_key()
}

/// moto's clients, a new bucket and the store over it; `None` (the test skips) when moto is not
/// to be had, which `moto_endpoint` turns into a failure under `WABRIDGE_REQUIRE_SERVICES=1`.
async fn setup() -> Option<(Aws, String, S3MediaStore)> {
    let Some(endpoint) = wabridge_tests::moto_endpoint() else {
        eprintln!("skipped: needs moto's server; run scripts/test.sh");
        return None;
    };
    let aws = Aws::connect(&endpoint).await;
    let bucket = create_bucket(&aws.s3, &unique_name("media")).await;
    let store = S3MediaStore::new(&aws.config, &bucket);
    Some((aws, bucket, store))
}

/// Writes `data` in download-sized chunks and commits it under its content address.
async fn store(store: &S3MediaStore, data: &[u8]) -> Result<String, StoreError> {
    let key = key_of(data);
    let mut pending = store.begin().await?;
    for chunk in data.chunks(CHUNK) {
        pending.write(chunk).await?;
    }
    pending.commit(&key).await?;
    Ok(key)
}

async fn read_back(store: &S3MediaStore, key: &str) -> (u64, Vec<u8>) {
    let mut object = store
        .open(key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{key} is stored"));
    let mut body = Vec::new();
    object.body.read_to_end(&mut body).await.unwrap();
    (object.size, body)
}

/// Multipart uploads started in `bucket` and neither completed nor aborted.
async fn open_uploads(aws: &Aws, bucket: &str) -> Vec<String> {
    let out = aws
        .s3
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    out.uploads()
        .iter()
        .filter_map(|u| u.key().map(str::to_string))
        .collect()
}

/// Exactly these objects in the whole bucket, and no upload left open.
async fn assert_bucket_holds(aws: &Aws, bucket: &str, keys: &[&str]) {
    let mut have = object_keys(&aws.s3, bucket, "").await;
    have.sort();
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(have, want, "objects of {bucket}");
    assert_eq!(open_uploads(aws, bucket).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_small_file_round_trips_byte_for_byte() {
    let Some((aws, bucket, media)) = setup().await else {
        return;
    };
    let data = bytes(1, 150_000);
    let key = store(&media, &data).await.unwrap();
    assert!(media.exists(&key).await.unwrap());
    let (size, body) = read_back(&media, &key).await;
    assert_eq!(size, data.len() as u64);
    assert!(body == data, "the bytes read back differ");
    assert_bucket_holds(&aws, &bucket, &[&key]).await;

    // Empty and exactly one part: still single objects, no upload started.
    let empty = store(&media, &[]).await.unwrap();
    assert_eq!(read_back(&media, &empty).await, (0, vec![]));
    let one_part = bytes(2, PART_SIZE);
    let one = store(&media, &one_part).await.unwrap();
    assert_eq!(read_back(&media, &one).await.0, PART_SIZE as u64);
    assert_bucket_holds(&aws, &bucket, &[&key, &empty, &one]).await;
}

#[tokio::test]
async fn a_20_mib_file_round_trips_through_a_multipart_upload() {
    let Some((aws, bucket, media)) = setup().await else {
        return;
    };
    let data = bytes(3, 20 * 1024 * 1024);
    let key = key_of(&data);
    let mut pending = media.begin().await.unwrap();
    for chunk in data.chunks(CHUNK) {
        pending.write(chunk).await.unwrap();
    }
    // Two parts are in S3 already, under the pending key, and nothing is visible.
    let uploads = open_uploads(&aws, &bucket).await;
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    assert!(uploads[0].starts_with(PENDING_PREFIX), "{uploads:?}");
    assert!(!media.exists(&key).await.unwrap());
    pending.commit(&key).await.unwrap();

    let (size, body) = read_back(&media, &key).await;
    assert_eq!(size, data.len() as u64);
    assert_eq!(body.len(), data.len());
    assert!(body == data, "the bytes read back differ");
    assert_bucket_holds(&aws, &bucket, &[&key]).await;
}

#[tokio::test]
async fn an_aborted_object_leaves_nothing() {
    let Some((aws, bucket, media)) = setup().await else {
        return;
    };
    // Within the buffer: nothing reached S3.
    let mut small = media.begin().await.unwrap();
    small.write(&bytes(4, 10_000)).await.unwrap();
    small.abort().await;
    // Past one part: a multipart upload is under way, and aborted.
    let mut large = media.begin().await.unwrap();
    for chunk in bytes(5, PART_SIZE + 3 * CHUNK).chunks(CHUNK) {
        large.write(chunk).await.unwrap();
    }
    assert_eq!(open_uploads(&aws, &bucket).await.len(), 1);
    large.abort().await;
    assert_bucket_holds(&aws, &bucket, &[]).await;
}

#[tokio::test]
async fn committing_a_stored_file_again_leaves_one_object() {
    let Some((aws, bucket, media)) = setup().await else {
        return;
    };
    let small = bytes(6, 40_000);
    let large = bytes(7, PART_SIZE + 5 * CHUNK);
    let small_key = store(&media, &small).await.unwrap();
    let large_key = store(&media, &large).await.unwrap();
    assert_eq!(store(&media, &small).await.unwrap(), small_key);
    assert_eq!(store(&media, &large).await.unwrap(), large_key);
    assert_bucket_holds(&aws, &bucket, &[&small_key, &large_key]).await;
    assert!(read_back(&media, &large_key).await.1 == large);
}

/// A file used again (redelivered, re-sent, uploaded again) is rewritten onto itself, so the
/// bucket's lifecycle, which counts from the write, restarts; the bytes stay and still read
/// back whole (the copy's checksum). A key that is no content address is left alone.
#[tokio::test]
async fn refreshing_a_stored_file_restarts_its_lifecycle() {
    let Some((aws, bucket, media)) = setup().await else {
        return;
    };
    let data = bytes(10, PART_SIZE + CHUNK);
    let key = store(&media, &data).await.unwrap();
    let modified = |key: String| {
        let s3 = aws.s3.clone();
        let bucket = bucket.clone();
        async move {
            let head = s3
                .head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            head.last_modified().unwrap().secs()
        }
    };
    let before = modified(key.clone()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    media.refresh(&key).await.unwrap();
    assert!(modified(key.clone()).await > before);
    assert!(read_back(&media, &key).await.1 == data);
    media.refresh("media/not-a-digest").await.unwrap();
    assert_bucket_holds(&aws, &bucket, &[&key]).await;
}

#[tokio::test]
async fn a_key_that_is_no_content_address_is_refused_and_cleaned_up() {
    let Some((aws, bucket, media)) = setup().await else {
        return;
    };
    for len in [1_000, PART_SIZE + CHUNK] {
        let mut pending = media.begin().await.unwrap();
        for chunk in bytes(8, len).chunks(CHUNK) {
            pending.write(chunk).await.unwrap();
        }
        let err = pending.commit("media/not-a-digest").await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    }
    assert_bucket_holds(&aws, &bucket, &[]).await;
}

#[tokio::test]
async fn absent_and_deleted_files_are_neither_open_nor_existing() {
    let Some((aws, bucket, media)) = setup().await else {
        return;
    };
    let absent = key_of(b"never stored");
    assert!(!media.exists(&absent).await.unwrap());
    assert!(media.open(&absent).await.unwrap().is_none());
    media.delete(&absent).await.unwrap();

    let data = bytes(9, 2_000);
    let key = store(&media, &data).await.unwrap();
    media.delete(&key).await.unwrap();
    assert!(!media.exists(&key).await.unwrap());
    assert!(media.open(&key).await.unwrap().is_none());
    media.delete(&key).await.unwrap();
    assert_bucket_holds(&aws, &bucket, &[]).await;

    // Only content addresses are read through the store: not a pending object, not a
    // claim-checked event in a shared bucket.
    aws.s3
        .put_object()
        .bucket(&bucket)
        .key(format!("{PENDING_PREFIX}left"))
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();
    let pending = format!("{PENDING_PREFIX}left");
    assert!(!media.exists(&pending).await.unwrap());
    assert!(media.open(&pending).await.unwrap().is_none());
    media.delete(&pending).await.unwrap();
    assert_eq!(object_keys(&aws.s3, &bucket, "").await, vec![pending]);

    // A bucket that is not there is an operator's fix: retried, never "absent".
    let missing = S3MediaStore::new(&aws.config, unique_name("media-missing"));
    let err = missing.open(&key).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn a_presigned_url_serves_the_bytes_with_the_content_type() {
    let Some((_aws, _bucket, media)) = setup().await else {
        return;
    };
    let data = bytes(10, 70_000);
    let key = store(&media, &data).await.unwrap();
    let url = media
        .presign(&key, "application/pdf", Duration::from_secs(300))
        .await
        .unwrap()
        .expect("S3 presigns");
    assert!(url.contains("X-Amz-Expires=300"), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let response = wabridge_tests::gateway::http_client()
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/pdf")
    );
    assert!(response.bytes().await.unwrap() == data);

    assert_eq!(
        media
            .presign("events/x", "text/plain", Duration::from_secs(60))
            .await
            .unwrap(),
        None
    );
    let too_long = media
        .presign(&key, "text/plain", Duration::from_secs(8 * 86_400))
        .await
        .unwrap_err();
    assert!(matches!(too_long, StoreError::Invalid(_)), "{too_long:?}");
}

/// A 100 MB document (WhatsApp's largest) written in 64 KiB chunks and read back streamed,
/// generated and hashed on the fly, with the test process's peak RSS measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: bash scripts/moto.sh -- cargo test -p wabridge-tests --test e2e -- --ignored --nocapture --test-threads=1 media_s3::bench"]
async fn bench_a_100_mb_document_through_s3_in_bounded_memory() {
    let Some((aws, bucket, media)) = setup().await else {
        return;
    };
    const SIZE: usize = 100 * 1024 * 1024;
    const WRITE: usize = 64 * 1024;
    // Reset the peak to what the process holds now (Linux: clear_refs 5).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let base = peak_kib();
    let started = Instant::now();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut chunk = vec![0u8; WRITE];
    let mut hasher = sha2::Sha256::new();
    let mut pending = media.begin().await.unwrap();
    for _ in 0..SIZE / WRITE {
        for b in chunk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 32) as u8;
        }
        hasher.update(&chunk);
        pending.write(&chunk).await.unwrap();
    }
    let key = Sha256Digest::from_bytes(hasher.finalize().into()).object_key();
    pending.commit(&key).await.unwrap();
    let written = started.elapsed();
    let write_peak = peak_kib();

    let started = Instant::now();
    let mut object = media.open(&key).await.unwrap().unwrap();
    let mut hasher = sha2::Sha256::new();
    let mut read = 0usize;
    loop {
        let n = object.body.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        read += n;
        hasher.update(&chunk[..n]);
    }
    let read_time = started.elapsed();
    let peak = peak_kib();
    assert_eq!(object.size, SIZE as u64);
    assert_eq!(read, SIZE);
    assert_eq!(
        Sha256Digest::from_bytes(hasher.finalize().into()).object_key(),
        key
    );
    assert_bucket_holds(&aws, &bucket, &[&key]).await;
    println!(
        "100 MiB into S3 (moto): written in {written:?}, read back in {read_time:?}; process peak RSS \
         {} MiB after the write, {} MiB after the read (it held {} MiB before)",
        write_peak / 1024,
        peak / 1024,
        base / 1024
    );
    assert!(
        peak < 64 * 1024,
        "peak RSS {} MiB: over the 64 MB goal",
        peak / 1024
    );
}
