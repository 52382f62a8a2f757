//! PDF generation throughput for a 20-result report (issue 14: aim ≥ 200 reports/s on 2 cores).
//!
//! `cargo bench --workspace --bench report_pdf`
//!
//! `one_thread`: one report at a time on one core. `two_threads`: 100 reports rendered by two
//! threads at once (the machine's two cores), the figure to compare with the aim.

use std::hint::black_box;

use aliquot_report::{PdfMeta, render_pdf};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const DATA: &[u8] = include_bytes!("../tests/fixtures/order_report.json");

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
    g.bench_function("one_thread", |b| {
        b.iter(|| render_pdf(black_box(DATA), &meta).unwrap())
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("two_threads", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        for _ in 0..50 {
                            black_box(render_pdf(black_box(DATA), &meta).unwrap());
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
