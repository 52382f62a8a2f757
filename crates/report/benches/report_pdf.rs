//! PDF generation throughput for a 20-result report (issue 14: aim ≥ 200 reports/s on 2 cores).
//!
//! `cargo bench --workspace --bench report_pdf`
//!
//! `one_thread`: one report at a time on one core. `two_threads`: 100 reports rendered by two
//! threads at once (the machine's two cores), the figure to compare with the aim.
//!
//! Two kinds of distinct reports (`tests/fixtures/distinct_reports.rs`): `…`: the fixture with
//! another MRN and sodium value each time (the first measurements' case); `…_distinct`: another
//! patient, order, accession numbers and all 20 values each time, as a real day's reports
//! (typst's memoisation can only serve what repeats: the panel's names, units and intervals,
//! the lab, the labels). The second is the honest figure.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use aliquot_report::{PdfMeta, render_pdf};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

#[path = "../tests/fixtures/distinct_reports.rs"]
mod distinct_reports;

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
    let next = AtomicUsize::new(0);
    for (name, data) in [
        ("", distinct_reports::mrn_and_sodium as fn(usize) -> String),
        ("_distinct", distinct_reports::distinct),
    ] {
        let fresh = || data(next.fetch_add(1, Ordering::Relaxed)).into_bytes();
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("one_thread{name}"), |b| {
            b.iter_batched(
                fresh,
                |d| render_pdf(&d, &meta).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.throughput(Throughput::Elements(100));
        g.bench_function(format!("two_threads{name}"), |b| {
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
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
