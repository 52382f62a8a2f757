//! Westgard multirule throughput on one core, in control values per second: 10,000 runs of
//! realistic controls (values around the mean with an SD-sized spread, two decimals, a few
//! shifts), judged in order by one `Evaluator` with the full multirule set — the modern
//! two-level preset plus 10x (1-3s/2-2s/R-4s/4-1s/8x/10x), and the three-level preset
//! (1-3s/2of3-2s/R-4s/3-1s/6x), all three scopes.
//! `cargo bench -p aliquot-domain --bench westgard`; figures in BENCHMARKS.md.

use std::hint::black_box;

use aliquot_domain::qc::westgard::{Evaluator, Observation, Rule, RuleSet, Target};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rust_decimal::Decimal;

const RUNS: usize = 10_000;

/// A small deterministic generator (64-bit LCG).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// About normal (sum of four uniforms), in hundredths of an SD.
    fn z_hundredths(&mut self) -> i64 {
        let s: i64 = (0..4).map(|_| (self.next() % 1000) as i64).sum();
        (s - 2000) * 173 / 1000
    }
}

/// Glucose (mg/dL), two decimals: level 1 around 95 (SD 2.1), level 2 around 250 (SD 4.8),
/// level 3 around 400 (SD 7.3).
fn runs(levels: u8) -> Vec<Vec<Observation>> {
    let targets = [
        Target::new(Decimal::new(9500, 2), Decimal::new(210, 2)).unwrap(),
        Target::new(Decimal::new(25000, 2), Decimal::new(480, 2)).unwrap(),
        Target::new(Decimal::new(40000, 2), Decimal::new(730, 2)).unwrap(),
    ];
    let mut rng = Lcg(13);
    (0..RUNS)
        .map(|i| {
            // A shift of +1.5 SD for 20 runs in every 500.
            let shift = if i % 500 < 20 { 150 } else { 0 };
            (1..=levels)
                .map(|level| {
                    let t = targets[usize::from(level - 1)];
                    let z = Decimal::new(rng.z_hundredths() + shift, 2);
                    let value = (t.mean() + z * t.sd()).round_dp(2);
                    Observation::new(level, value, t)
                })
                .collect()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("westgard");
    for (name, rules, levels) in [
        (
            "modern_two_level_plus_10x",
            RuleSet::modern_two_level().with_rule(Rule::TenX),
            2u8,
        ),
        ("three_level", RuleSet::three_level(), 3),
    ] {
        let runs = runs(levels);
        group.throughput(Throughput::Elements((RUNS * usize::from(levels)) as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut evaluator = Evaluator::new(rules);
                let mut rejected = 0u32;
                for run in &runs {
                    let verdict = evaluator.evaluate_run(run).unwrap();
                    rejected += u32::from(!verdict.accepted);
                }
                black_box(rejected)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
