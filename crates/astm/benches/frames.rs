//! `cargo bench -p aliquot-astm --bench frames`
//!
//! Frames/s with checksum verification: bare `parse_frame`, and the full
//! receiver state machine (ENQ, frames, ACK writes, record assembly, EOT).

use aliquot_astm::{FrameEnd, Link, LinkConfig, Output, encode_frame, parse_frame, parse_records};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn records(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| match i % 4 {
            0 => format!("O|{}|SID{:08}||^^^GLU\\^^^NA\\^^^K|R||20261121080000|||||N||||SERUM||||||||||F\r", i, i).into_bytes(),
            _ => format!(
                "R|{}|^^^TEST{}^787-2|{}.{}|mmol/L|3.5-5.1^REFERENCE_RANGE|N||F||LABOR^^USER|20261121090000|20261121090500|ANALYZER-01\r",
                i, i % 40, i % 97, i % 10
            )
            .into_bytes(),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    const N: usize = 10_000;
    let recs = records(N);
    let mut frames = Vec::with_capacity(N);
    let mut stream = vec![0x05];
    for (i, r) in recs.iter().enumerate() {
        let mut f = Vec::new();
        encode_frame(((i + 1) % 8) as u8, r, FrameEnd::Last, &mut f);
        stream.extend_from_slice(&f);
        frames.push(f);
    }
    stream.push(0x04);
    let avg = frames.iter().map(|f| f.len()).sum::<usize>() / N;
    eprintln!("{N} frames, avg {avg} bytes");

    let mut g = c.benchmark_group("astm_frames");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("parse_frame_verify_checksum", |b| {
        b.iter(|| {
            let mut ok = 0usize;
            for f in &frames {
                if parse_frame(black_box(f)).is_ok() {
                    ok += 1;
                }
            }
            assert_eq!(ok, N);
            ok
        })
    });
    g.bench_function("link_receiver_session", |b| {
        b.iter(|| {
            let mut link = Link::new(LinkConfig {
                auto_ack: true,
                ..LinkConfig::lis()
            });
            let mut acks = 0usize;
            let mut delivered = 0usize;
            for chunk in stream.chunks(1024) {
                link.receive(black_box(chunk), 0);
                while let Some(o) = link.poll() {
                    match o {
                        Output::Write(_) => acks += 1,
                        Output::Message(m) => delivered += m.len(),
                        Output::HeldMessage { message, .. } => delivered += message.len(),
                        Output::Event(_) => {}
                    }
                }
            }
            assert_eq!(acks, N + 1);
            delivered
        })
    });
    g.finish();

    let message: Vec<u8> =
        std::iter::once(b"H|\\^&|||ANALYZER|||||||P|LIS2-A2|20261121\r".to_vec())
            .chain(recs.iter().cloned())
            .flatten()
            .collect();
    let mut g = c.benchmark_group("astm_records");
    g.throughput(Throughput::Elements(N as u64 + 1));
    g.bench_function("parse_records", |b| {
        b.iter(|| parse_records(black_box(&message)).records.len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
