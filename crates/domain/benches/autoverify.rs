//! The autoverification engine on one core: a potassium rule set with every kind of check
//! (13 checks: suspension, enabled, stability, instrument flags, QC, reportable range, serum
//! indices, critical, delta, plausibility, autoverification limits, consistency, pathologist)
//! over a mix of normal, abnormal, critical, haemolysed and delta-failing results.
//! `cargo bench -p aliquot-domain --bench autoverify`; figures in BENCHMARKS.md.

use std::hint::black_box;
use std::str::FromStr;

use aliquot_domain::results::autoverify::{Facts, QcStatus, Suspension, autoverify};
use aliquot_domain::results::delta::{Point, delta_check};
use aliquot_domain::results::interval::ShownInterval;
use aliquot_domain::results::rules::{
    Consistency, DeltaMode, DeltaRule, IndexLimits, Indices, Limits, ResultRules, flags, measure,
};
use aliquot_domain::results::value::{ResultValue, parse_numeric};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn rules() -> ResultRules {
    ResultRules {
        version: 7,
        reportable: Limits::new(Some(d("1.0")), Some(d("10.0"))),
        max_dilution: None,
        critical: Limits::new(Some(d("2.9")), Some(d("6.0"))),
        critical_action: Default::default(),
        plausible: Limits::new(Some(d("1.5")), Some(d("9.0"))),
        autoverify: true,
        autoverify_limits: Limits::new(Some(d("2.5")), Some(d("6.5"))),
        delta: Some(DeltaRule {
            mode: DeltaMode::Absolute,
            limit: d("1.0"),
            window: SignedDuration::from_hours(24),
        }),
        indices: IndexLimits {
            hemolysis: Some(20),
            icterus: None,
            lipemia: None,
        },
        normal_answers: Vec::new(),
        consistency: vec![Consistency::NotAbove("NA".into())],
        requires_pathologist: false,
    }
}

fn bench(c: &mut Criterion) {
    let rules = rules();
    let interval = ShownInterval {
        low: Some(d("3.5")),
        high: Some(d("5.1")),
        text: "3.5–5.1".into(),
    };
    let t0: Timestamp = "2026-11-28T08:00:00Z".parse().unwrap();
    let previous = Point {
        value: d("4.1"),
        collected_at: t0 - SignedDuration::from_hours(12),
    };
    // 1,000 readings: mostly normal, some abnormal, critical, haemolysed, delta failures.
    let readings: Vec<(ResultValue, Indices)> = (0..1000)
        .map(|i| {
            let v = match i % 20 {
                0 => "6.4".to_owned(),
                1 => "2.8".to_owned(),
                2 | 3 => "5.6".to_owned(),
                _ => format!("{}.{}", 3 + (i % 2), (i * 7) % 10),
            };
            let n = parse_numeric(&v).unwrap();
            let m = measure(&n, None, &rules);
            let hem = if i % 50 == 0 { Some(40) } else { Some(5) };
            (
                ResultValue::Numeric(m.reported),
                Indices {
                    hemolysis: hem,
                    ..Indices::default()
                },
            )
        })
        .collect();
    let related = [("NA", d("140"))];
    let mut group = c.benchmark_group("autoverify");
    group.throughput(Throughput::Elements(readings.len() as u64));
    group.bench_function("potassium_13_checks_x1000", |b| {
        b.iter(|| {
            let mut released = 0u32;
            for (value, indices) in &readings {
                let fl = flags(value, Some(&interval), &rules);
                let n = value.numeric().unwrap();
                let delta = delta_check(
                    rules.delta.as_ref(),
                    Some(previous),
                    Point {
                        value: n.value,
                        collected_at: t0,
                    },
                );
                let decision = autoverify(
                    &rules,
                    &Facts {
                        value,
                        flags: &fl,
                        outside: None,
                        dilution_not_validated: false,
                        instrument_flags: &[],
                        indices: *indices,
                        delta,
                        // Judged over the history before the rules run: 45 min old, within.
                        stability: &[],
                        related: &related,
                        qc: QcStatus::Accepted,
                        calibration_overdue: false,
                        suspended: Suspension::None,
                    },
                );
                released += u32::from(decision.released());
            }
            black_box(released)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
