//! PDF generation throughput for a 20-result report (issue 14: aim ≥ 200 reports/s on 2 cores).
//!
//! `cargo bench --workspace --bench report_pdf`
//!
//! `one_thread`: one report at a time on one core. `two_threads`: 100 reports rendered by two
//! threads at once (the machine's two cores), the figure to compare with the aim.

use std::hint::black_box;

use aliquot_report::{PdfMeta, render_pdf};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const DATA: &str = include_str!("../tests/fixtures/order_report.json");

/// A distinct report each time (another MRN and value), so typst's memoisation cannot serve
/// a previous compilation: every iteration lays out and writes a new document.
fn data(n: usize) -> Vec<u8> {
    DATA.replace("M000123", &format!("M{n:06}"))
        .replace("\"139\"", &format!("\"{}\"", 130 + n % 20))
        .into_bytes()
}

fn meta() -> PdfMeta {
    PdfMeta {
        ident: "order-17-report-2".into(),
        created: "2026-11-28T16:05:00Z".parse().unwrap(),
    }
}

fn bench(c: &mut Criterion) {
    let meta = meta();
    let mut g = c.benchmark_group("report_pdf_20_results");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let fresh = || data(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    g.bench_function("one_thread", |b| {
        b.iter_batched(
            fresh,
            |d| render_pdf(&d, &meta).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("two_threads", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        for _ in 0..50 {
                            black_box(render_pdf(&fresh(), &meta).unwrap());
                        }
                    });
                }
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
