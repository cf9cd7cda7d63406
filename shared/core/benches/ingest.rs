//! Ingest hot path (verify + split with keys) next to its floor (HMAC-SHA256 + a serde_json
//! `Value` parse of the same bytes), on a ~2 KB realistic batched payload.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use wabridge_core::signature::{self, AppSecret, WebhookSignature};
use wabridge_core::webhook::split;

fn payload() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/webhooks/batched_multi_entry.json"
    );
    let pretty = std::fs::read(path).expect("events/webhooks/batched_multi_entry.json");
    // Meta sends compact JSON: minify (keys end up sorted, which changes nothing for parsing).
    let v: serde_json::Value = serde_json::from_slice(&pretty).expect("sample is JSON");
    serde_json::to_vec(&v).expect("serialises")
}

fn bench(c: &mut Criterion) {
    let body = payload();
    let secret = AppSecret::new("bench-app-secret").unwrap();
    let header = signature::sign(&secret, &body);
    let mut group = c.benchmark_group(format!("ingest_{}B", body.len()));
    group.throughput(Throughput::Bytes(body.len() as u64));

    group.bench_function("floor_hmac_plus_value_parse", |b| {
        b.iter(|| {
            let sig = WebhookSignature::parse(black_box(&header)).unwrap();
            assert!(signature::verify(&secret, black_box(&body), &sig));
            let v: serde_json::Value = serde_json::from_slice(black_box(&body)).unwrap();
            black_box(v)
        })
    });

    group.bench_function("hot_path_verify_split_keys", |b| {
        b.iter(|| {
            let sig = WebhookSignature::parse(black_box(&header)).unwrap();
            assert!(signature::verify(&secret, black_box(&body), &sig));
            let events = split(black_box(&body), 1_763_700_000_000).unwrap();
            assert_eq!(events.len(), 7);
            black_box(events)
        })
    });

    group.bench_function("hmac_only", |b| {
        b.iter(|| {
            let sig = WebhookSignature::parse(black_box(&header)).unwrap();
            black_box(signature::verify(&secret, black_box(&body), &sig))
        })
    });

    group.bench_function("split_only", |b| {
        b.iter(|| black_box(split(black_box(&body), 1_763_700_000_000).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
