//! Stability over a specimen's whole temperature history, before and after separation
//! (issue 10 items 2 and 3; DOMAIN §6.3, CLSI GP44).
//!
//! # Temperature history
//! A specimen's temperature is not one value but timed segments: the collection (the draw time
//! and how it was kept at the draw site), transport (the courier's box), receipt (how it
//! arrived and is kept on the bench), storage (the holder's band) and the bench again after
//! retrieval. A [`TemperatureSegment`] starts at its `from` time and lasts until the next
//! segment starts (the last one until now). Time before the collection does not count.
//!
//! # The choice: cumulative fraction, not the strictest band
//! Stability is judged as the **cumulative fraction** of every segment's limit that was used:
//!
//! ```text
//!     Σ elapsedᵢ / limit(temperatureᵢ)  ≤  1
//! ```
//!
//! The alternative, judging the whole age against the strictest band seen, would refuse a
//! serum potassium that spent 10 minutes at room temperature (limit 24 h) and then 5 days in a
//! refrigerator (limit 7 d): 5 d 10 min against 24 h. The cumulative fraction accepts it (0.7 %
//! and 71 % of the two limits), yet refuses the tube that spent 30 h at room temperature
//! however it was received (125 % before any refrigerated time is added). Each band's limit is
//! the lab's validated time from collection at that temperature, so a fraction of it is the
//! share of the allowed degradation used; the sum is the usual way of combining excursions (it
//! equals the age rule when only one band was seen, and accepts no specimen older than the
//! longest limit seen).
//!
//! Equality is within stability; one more microsecond is not. The sum is computed exactly in
//! integers (limits in whole seconds, elapsed in microseconds); on an overflow, which needs
//! limits of centuries, the specimen is judged out of stability (fail closed).
//!
//! A temperature a test does not allow at all (`None` in its [`Stability`]) is reported for
//! every segment at it, even a segment that has just begun (the specimen is kept so now).
//!
//! # Before and after separation (CLSI GP44)
//! Serum and plasma tests may give a second, usually much shorter, stability for unspun whole
//! blood (`unspun`: e.g. 2 h at room temperature and none refrigerated for potassium, glucose
//! and phosphate). Separation time is the start of the first spin (or the time the draw site
//! says it spun the tube). The unspun share is judged over the segments between collection and
//! separation (or now, when the tube is still unspun), with the `unspun` limits; the whole
//! history is judged with the test's (separated) limits, which like the catalogue's are counted
//! from collection. Tests without `unspun` limits (whole blood, urine) are judged once.
//!
//! # Special handling
//! - `on_ice`: a segment at room temperature is reported (lactate, ammonia on ice; "on ice"
//!   is the refrigerated band), until separation for a separated specimen.
//! - `do_not_refrigerate`: a refrigerated segment is reported (LDH isoenzymes, blood cultures,
//!   PT whole blood), whatever the limits say.
//! - `keep_at_37c`: a refrigerated or frozen segment is reported (cold agglutinins).
//!
//! The other flags (protect from light, keep capped, deliver immediately) are not judged from
//! temperatures; deliver-immediately tests have limits in minutes.

use jiff::{SignedDuration, Timestamp};

use super::{ReceiptProblem, ReceiptTest};
use crate::catalog::{SpecialHandling, Stability, Temperature, code_enum};

code_enum! {
    /// Where a temperature segment comes from.
    TemperatureStage, "temperature_stage" {
        Collection => "collection",
        Transport => "transport",
        Receipt => "receipt",
        Storage => "storage",
        /// Back on the bench after retrieval from storage.
        Bench => "bench",
    }
}

/// A specimen kept at `temperature` from `from` until the next segment starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemperatureSegment {
    pub from: Timestamp,
    pub temperature: Temperature,
    pub stage: TemperatureStage,
}

/// A test's stability: from collection at each temperature (after separation, or for specimens
/// that are not separated), unspun whole blood before separation, and its handling flags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StabilityRule {
    pub stability: Stability,
    /// Limits for unspun blood before separation; `None`: the test is not judged before
    /// separation (not a separated specimen).
    pub unspun: Option<Stability>,
    pub handling: Vec<SpecialHandling>,
}

impl StabilityRule {
    /// A rule with only the limits from collection.
    pub fn simple(stability: Stability) -> Self {
        Self {
            stability,
            unspun: None,
            handling: Vec::new(),
        }
    }
}

/// Which phase a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The whole history, with the test's limits.
    Whole,
    /// Unspun blood before separation, with the `unspun` limits.
    Unspun,
}

/// One thing wrong with a specimen's history for a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StabilityFinding {
    /// The test does not allow `temperature` (in that phase).
    TemperatureNotAllowed {
        phase: Phase,
        temperature: Temperature,
        stage: TemperatureStage,
    },
    /// The cumulative fraction is above 1: `used_percent` (rounded down) of the stability is
    /// used after `elapsed` (of the phase).
    Exceeded {
        phase: Phase,
        elapsed: SignedDuration,
        used_percent: u64,
    },
    /// A special-handling flag was broken by a segment at `temperature`.
    Handling {
        flag: SpecialHandling,
        temperature: Temperature,
        stage: TemperatureStage,
    },
}

impl std::fmt::Display for StabilityFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phase = |p: &Phase| match p {
            Phase::Whole => "",
            Phase::Unspun => " before separation",
        };
        match self {
            Self::TemperatureNotAllowed {
                phase: p,
                temperature,
                stage,
            } => write!(
                f,
                "kept {temperature}{} ({stage}), which the test does not allow",
                phase(p)
            ),
            Self::Exceeded {
                phase: p,
                elapsed,
                used_percent,
            } => write!(
                f,
                "{} after collection{} it has used {used_percent} % of its stability over its \
                 temperature history",
                crate::duration::human(elapsed),
                phase(p)
            ),
            Self::Handling {
                flag,
                temperature,
                stage,
            } => write!(f, "kept {temperature} ({stage}) against {flag}"),
        }
    }
}

/// The segments clipped to `[start, end)`, in time order, with their lengths. A segment that
/// starts before `start` begins at `start`; the first segment also covers any gap between
/// `start` and its own start (the draw site kept it so until the first record). A segment
/// starting exactly at `end` is kept (with no length) when `at_end`: it is how the specimen
/// is kept now.
fn clipped(
    history: &[TemperatureSegment],
    start: Timestamp,
    end: Timestamp,
    at_end: bool,
) -> Vec<(TemperatureSegment, SignedDuration)> {
    let mut sorted: Vec<TemperatureSegment> = history.to_vec();
    sorted.sort_by_key(|s| s.from);
    let mut out = Vec::new();
    for (i, seg) in sorted.iter().enumerate() {
        let from = if i == 0 { start } else { seg.from.max(start) };
        let to = sorted.get(i + 1).map_or(end, |n| n.from.min(end));
        if to < start || from > end || (from == end && i > 0 && !at_end) {
            continue;
        }
        let length = if to > from {
            to.duration_since(from)
        } else {
            SignedDuration::ZERO
        };
        out.push((*seg, length));
    }
    out
}

/// Σ elapsedᵢ / limitᵢ ≤ 1, exactly: `Ok(())` or `Err(used_percent)`. `terms` are (elapsed,
/// limit) with positive limits.
fn cumulative(terms: &[(SignedDuration, SignedDuration)]) -> Result<(), u64> {
    // Group by limit (at most a few distinct limits), limits in whole seconds (at least 1).
    let mut groups: Vec<(i128, i128)> = Vec::new();
    for (elapsed, limit) in terms {
        let limit_s = i128::from(limit.as_secs().max(1));
        let elapsed_us = elapsed.as_micros().max(0);
        match groups.iter_mut().find(|(l, _)| *l == limit_s) {
            Some((_, e)) => *e += elapsed_us,
            None => groups.push((limit_s, elapsed_us)),
        }
    }
    let compute = || -> Option<(i128, i128)> {
        // Σ Eₖ/(Lₖ·10⁶) ≤ 1  ⇔  Σ Eₖ·Πⱼ≠ₖ Lⱼ ≤ 10⁶·Π Lⱼ
        let mut denominator: i128 = 1_000_000;
        for (l, _) in &groups {
            denominator = denominator.checked_mul(*l)?;
        }
        let mut numerator: i128 = 0;
        for (k, (_, e)) in groups.iter().enumerate() {
            let mut term = *e;
            for (j, (l, _)) in groups.iter().enumerate() {
                if j != k {
                    term = term.checked_mul(*l)?;
                }
            }
            numerator = numerator.checked_add(term)?;
        }
        Some((numerator, denominator))
    };
    match compute() {
        Some((n, d)) if n <= d => Ok(()),
        Some((n, d)) => {
            let percent = n.checked_mul(100).map_or(i128::MAX, |x| x / d);
            Err(u64::try_from(percent).unwrap_or(u64::MAX))
        }
        None => Err(u64::MAX),
    }
}

/// Judges one phase: temperatures allowed, and the cumulative fraction.
fn judge_phase(
    phase: Phase,
    stability: &Stability,
    segments: &[(TemperatureSegment, SignedDuration)],
    elapsed: SignedDuration,
    findings: &mut Vec<StabilityFinding>,
) {
    let mut terms = Vec::new();
    let mut reported: Vec<Temperature> = Vec::new();
    for (seg, length) in segments {
        match stability.limit(seg.temperature) {
            Some(limit) => terms.push((*length, limit)),
            None => {
                if !reported.contains(&seg.temperature) {
                    reported.push(seg.temperature);
                    findings.push(StabilityFinding::TemperatureNotAllowed {
                        phase,
                        temperature: seg.temperature,
                        stage: seg.stage,
                    });
                }
            }
        }
    }
    if let Err(used_percent) = cumulative(&terms) {
        findings.push(StabilityFinding::Exceeded {
            phase,
            elapsed,
            used_percent,
        });
    }
}

/// Judges a test's stability over a specimen's history at `now`; an empty list means within
/// stability. `separated_at`: the start of the first spin, if the tube was spun. A collection
/// time after `now` is not judged here (the collection-time rule refuses it).
pub fn judge(
    collected_at: Timestamp,
    separated_at: Option<Timestamp>,
    history: &[TemperatureSegment],
    now: Timestamp,
    rule: &StabilityRule,
) -> Vec<StabilityFinding> {
    let mut findings = Vec::new();
    if collected_at > now {
        return findings;
    }
    let whole = clipped(history, collected_at, now, true);
    let end = separated_at.map_or(now, |t| t.clamp(collected_at, now));
    let before = clipped(history, collected_at, end, separated_at.is_none());
    if let Some(unspun) = &rule.unspun {
        judge_phase(
            Phase::Unspun,
            unspun,
            &before,
            end.duration_since(collected_at),
            &mut findings,
        );
    }
    judge_phase(
        Phase::Whole,
        &rule.stability,
        &whole,
        now.duration_since(collected_at),
        &mut findings,
    );
    for flag in &rule.handling {
        let broken = |t: Temperature| match flag {
            SpecialHandling::OnIce => t == Temperature::Room,
            SpecialHandling::DoNotRefrigerate => t == Temperature::Refrigerated,
            SpecialHandling::KeepAt37C => t != Temperature::Room,
            _ => false,
        };
        // On ice is for the blood until it is separated; separated plasma waits at room
        // temperature on the analyser.
        let judged = if *flag == SpecialHandling::OnIce && rule.unspun.is_some() {
            &before
        } else {
            &whole
        };
        if let Some((seg, _)) = judged.iter().find(|(s, _)| broken(s.temperature)) {
            findings.push(StabilityFinding::Handling {
                flag: *flag,
                temperature: seg.temperature,
                stage: seg.stage,
            });
        }
    }
    findings
}

/// A specimen's temperature segments and when it was separated (the first spin's start).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpecimenHistory {
    pub segments: Vec<TemperatureSegment>,
    pub separated_at: Option<Timestamp>,
}

impl SpecimenHistory {
    /// Judges a test's `rule` over this history at `now` (see [`judge`]); with no segment
    /// recorded, as kept at room temperature since collection (the usual bench condition, and
    /// the shortest limit most tests have).
    pub fn judge(
        &self,
        collected_at: Timestamp,
        now: Timestamp,
        rule: &StabilityRule,
    ) -> Vec<StabilityFinding> {
        if self.segments.is_empty() {
            let room = [TemperatureSegment {
                from: collected_at,
                temperature: Temperature::Room,
                stage: TemperatureStage::Collection,
            }];
            return judge(collected_at, self.separated_at, &room, now, rule);
        }
        judge(collected_at, self.separated_at, &self.segments, now, rule)
    }

    /// One segment from `from` at `temperature`, unspun.
    pub fn kept(from: Timestamp, temperature: Temperature, stage: TemperatureStage) -> Self {
        Self {
            segments: vec![TemperatureSegment {
                from,
                temperature,
                stage,
            }],
            separated_at: None,
        }
    }
}

/// The receipt problems of one test (DOMAIN §6.4: exceeded stability or wrong temperature).
pub(super) fn receipt_problems(
    test: &ReceiptTest,
    collected_at: Timestamp,
    history: &SpecimenHistory,
    now: Timestamp,
) -> Vec<ReceiptProblem> {
    let test_code = || test.test_code.clone();
    judge(
        collected_at,
        history.separated_at,
        &history.segments,
        now,
        &test.stability,
    )
    .into_iter()
    .map(|finding| match finding {
        StabilityFinding::TemperatureNotAllowed {
            phase: Phase::Whole,
            temperature,
            ..
        } => ReceiptProblem::TemperatureNotAllowed {
            test_code: test_code(),
            temperature,
        },
        StabilityFinding::TemperatureNotAllowed { temperature, .. } => {
            ReceiptProblem::UnspunTemperatureNotAllowed {
                test_code: test_code(),
                temperature,
            }
        }
        StabilityFinding::Exceeded {
            phase: Phase::Whole,
            elapsed,
            used_percent,
        } => ReceiptProblem::StabilityExceeded {
            test_code: test_code(),
            elapsed,
            used_percent,
        },
        StabilityFinding::Exceeded {
            elapsed,
            used_percent,
            ..
        } => ReceiptProblem::SeparationLate {
            test_code: test_code(),
            unspun: elapsed,
            used_percent,
        },
        StabilityFinding::Handling {
            flag, temperature, ..
        } => ReceiptProblem::HandlingBroken {
            test_code: test_code(),
            handling: flag,
            temperature,
        },
    })
    .collect()
}

/// A separation time given at receipt (a tube spun at the draw site) lies between the draw
/// and now plus [`super::COLLECTION_CLOCK_SKEW`].
pub fn separation_time_plausible(
    separated_at: Timestamp,
    collected_at: Option<Timestamp>,
    now: Timestamp,
) -> bool {
    let latest = now.checked_add(super::COLLECTION_CLOCK_SKEW).unwrap_or(now);
    separated_at <= latest && collected_at.is_none_or(|c| separated_at >= c)
}

/// The unspun stability a serum or plasma test has when its catalogue entry gives none: CLSI
/// GP44's "separate from cells within 2 h of collection", at room temperature or refrigerated
/// (never frozen: freezing whole blood lyses the cells).
pub fn gp44_default_unspun() -> Stability {
    let two_hours = Some(SignedDuration::from_hours(2));
    Stability::new(two_hours, two_hours, None).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_separation_time_lies_between_the_draw_and_now() {
        let at = |m: i64| Timestamp::UNIX_EPOCH + SignedDuration::from_mins(m);
        let now = at(600);
        // (separated, collected, plausible)
        let cases = [
            (at(300), Some(at(200)), true),
            (at(200), Some(at(200)), true),
            (at(199), Some(at(200)), false),
            (at(604), Some(at(200)), true),
            (at(606), Some(at(200)), false),
            (at(10), None, true),
        ];
        for (separated, collected, plausible) in cases {
            assert_eq!(
                super::separation_time_plausible(separated, collected, now),
                plausible,
                "{separated} {collected:?}"
            );
        }
    }

    use super::*;
    use Temperature::{Frozen as F, Refrigerated as C, Room as R};
    use proptest::prelude::*;

    const T0: &str = "2026-11-21T08:00:00Z";

    fn at(minutes: i64) -> Timestamp {
        T0.parse::<Timestamp>()
            .unwrap()
            .checked_add(SignedDuration::from_mins(minutes))
            .unwrap()
    }

    fn h(n: i64) -> Option<SignedDuration> {
        Some(SignedDuration::from_hours(n))
    }

    fn m(n: i64) -> Option<SignedDuration> {
        Some(SignedDuration::from_mins(n))
    }

    /// Serum potassium: 24 h room, 7 d refrigerated, a year frozen; unspun 2 h room, never
    /// refrigerated.
    fn potassium() -> StabilityRule {
        StabilityRule {
            stability: Stability::new(h(24), h(168), h(8760)).unwrap(),
            unspun: Some(Stability::new(m(120), None, None).unwrap()),
            handling: vec![],
        }
    }

    /// Lactate: unspun 15 min at room, 30 min on ice; separated plasma 8 h / 24 h.
    fn lactate() -> StabilityRule {
        StabilityRule {
            stability: Stability::new(h(8), h(24), None).unwrap(),
            unspun: Some(Stability::new(m(15), m(30), None).unwrap()),
            handling: vec![SpecialHandling::OnIce],
        }
    }

    fn ldh() -> StabilityRule {
        StabilityRule {
            stability: Stability::new(h(72), h(96), None).unwrap(),
            unspun: Some(Stability::new(m(120), None, None).unwrap()),
            handling: vec![SpecialHandling::DoNotRefrigerate],
        }
    }

    fn seg(minute: i64, t: Temperature, stage: TemperatureStage) -> TemperatureSegment {
        TemperatureSegment {
            from: at(minute),
            temperature: t,
            stage,
        }
    }

    use TemperatureStage::{Collection as Col, Receipt as Rec, Storage as Sto, Transport as Tra};

    type Row = (
        &'static str,
        fn() -> StabilityRule,
        Vec<TemperatureSegment>,
        Option<i64>,
        i64,
        Vec<StabilityFinding>,
    );

    fn exceeded(phase: Phase, minutes: i64, used_percent: u64) -> StabilityFinding {
        StabilityFinding::Exceeded {
            phase,
            elapsed: SignedDuration::from_mins(minutes),
            used_percent,
        }
    }

    /// One row: why, rule, history (minutes after the draw), separation minute, now minute →
    /// findings.
    fn cases() -> Vec<Row> {
        let spun = Some(60);
        vec![
            (
                "issue 10 item 2: 30 h at room, received as room",
                potassium,
                vec![seg(0, R, Col), seg(1800, R, Rec)],
                spun,
                1800,
                vec![exceeded(Phase::Whole, 1800, 125)],
            ),
            (
                "the same tube received as refrigerated: the 30 h at room still count",
                potassium,
                vec![seg(0, R, Col), seg(1800, C, Rec)],
                spun,
                1800,
                vec![exceeded(Phase::Whole, 1800, 125)],
            ),
            (
                "transport refrigerated from 1 h: 1/24 + 29/168 of the stability",
                potassium,
                vec![seg(0, R, Col), seg(60, C, Tra), seg(1800, C, Rec)],
                spun,
                1800,
                vec![],
            ),
            (
                "24 h at room exactly: still within",
                potassium,
                vec![seg(0, R, Col)],
                spun,
                1440,
                vec![],
            ),
            (
                "12 h room then 84 h refrigerated: exactly 1/2 + 1/2",
                potassium,
                vec![seg(0, R, Col), seg(720, C, Sto)],
                spun,
                720 + 84 * 60,
                vec![],
            ),
            (
                "12 h room then 84 h 1 min refrigerated: just over",
                potassium,
                vec![seg(0, R, Col), seg(720, C, Sto)],
                spun,
                720 + 84 * 60 + 1,
                vec![exceeded(Phase::Whole, 720 + 84 * 60 + 1, 100)],
            ),
            (
                "strictest band would refuse: 10 min room then 5 d refrigerated",
                potassium,
                vec![seg(0, R, Col), seg(10, C, Sto)],
                Some(5),
                10 + 5 * 1440,
                vec![],
            ),
            (
                "unspun 2 h 30 min at room: separation late (GP44)",
                potassium,
                vec![seg(0, R, Col)],
                Some(150),
                180,
                vec![exceeded(Phase::Unspun, 150, 125)],
            ),
            (
                "still unspun at receipt 3 h after the draw",
                potassium,
                vec![seg(0, R, Col), seg(180, R, Rec)],
                None,
                180,
                vec![exceeded(Phase::Unspun, 180, 150)],
            ),
            (
                "unspun whole blood refrigerated for potassium",
                potassium,
                vec![seg(0, C, Col)],
                Some(60),
                90,
                vec![StabilityFinding::TemperatureNotAllowed {
                    phase: Phase::Unspun,
                    temperature: C,
                    stage: Col,
                }],
            ),
            (
                "refrigerated only after the spin: allowed",
                potassium,
                vec![seg(0, R, Col), seg(60, C, Sto)],
                Some(45),
                600,
                vec![],
            ),
            (
                "lactate on ice, 14 min: fine",
                lactate,
                vec![seg(0, C, Col), seg(14, C, Rec)],
                None,
                14,
                vec![],
            ),
            (
                "lactate received at room: on-ice flag broken (issue 10 item 10)",
                lactate,
                vec![seg(0, C, Col), seg(14, R, Rec)],
                None,
                14,
                vec![StabilityFinding::Handling {
                    flag: SpecialHandling::OnIce,
                    temperature: R,
                    stage: Rec,
                }],
            ),
            (
                "lactate 20 min unspun at room: over its minutes and not on ice",
                lactate,
                vec![seg(0, R, Col)],
                None,
                20,
                vec![
                    exceeded(Phase::Unspun, 20, 133),
                    StabilityFinding::Handling {
                        flag: SpecialHandling::OnIce,
                        temperature: R,
                        stage: Col,
                    },
                ],
            ),
            (
                "LDH refrigerated after the spin: do not refrigerate",
                ldh,
                vec![seg(0, R, Col), seg(90, C, Sto)],
                Some(60),
                120,
                vec![StabilityFinding::Handling {
                    flag: SpecialHandling::DoNotRefrigerate,
                    temperature: C,
                    stage: Sto,
                }],
            ),
            (
                "LDH frozen: not allowed at all",
                ldh,
                vec![seg(0, R, Col), seg(90, F, Sto)],
                Some(60),
                120,
                vec![StabilityFinding::TemperatureNotAllowed {
                    phase: Phase::Whole,
                    temperature: F,
                    stage: Sto,
                }],
            ),
            (
                "lactate separated on ice, then on the analyser at room: fine",
                lactate,
                vec![seg(0, C, Col), seg(12, R, Sto)],
                Some(12),
                40,
                vec![],
            ),
            (
                "segments before the draw do not count",
                potassium,
                vec![seg(-600, R, Col), seg(30, C, Sto)],
                Some(20),
                60,
                vec![],
            ),
        ]
    }

    #[test]
    fn stability_case_table() {
        for (why, rule, history, separated, now, expected) in cases() {
            let got = judge(at(0), separated.map(at), &history, at(now), &rule());
            assert_eq!(got, expected, "{why}");
        }
    }

    #[test]
    fn one_microsecond_more_is_out() {
        let rule = StabilityRule::simple(Stability::new(h(1), None, None).unwrap());
        let history = [seg(0, R, Col)];
        assert!(judge(at(0), None, &history, at(60), &rule).is_empty());
        let later = at(60).checked_add(SignedDuration::from_micros(1)).unwrap();
        assert_eq!(judge(at(0), None, &history, later, &rule).len(), 1);
    }

    #[test]
    fn a_draw_in_the_future_is_not_judged_here() {
        assert!(judge(at(10), None, &[seg(10, R, Col)], at(0), &potassium()).is_empty());
    }

    proptest! {
        /// With one band the cumulative rule is the plain age rule.
        #[test]
        fn one_band_equals_the_age_rule(limit in 1i64..10_000, age in 0i64..20_000) {
            let rule = StabilityRule::simple(Stability::new(m(limit), m(limit), None).unwrap());
            let got = judge(at(0), None, &[seg(0, C, Col)], at(age), &rule);
            prop_assert_eq!(got.is_empty(), age <= limit);
        }

        /// Moving time from a shorter-limit band to a longer-limit band never makes a
        /// specimen worse; the verdict lies between the strictest and the most lenient band.
        #[test]
        fn bounded_by_the_bands(room in 0i64..3_000, cold in 0i64..20_000) {
            let rule = StabilityRule::simple(Stability::new(h(24), h(168), None).unwrap());
            let history = [seg(0, R, Col), seg(room, C, Sto)];
            let ok = judge(at(0), None, &history, at(room + cold), &rule).is_empty();
            let age = room + cold;
            if age <= 24 * 60 { prop_assert!(ok); }
            if age > 168 * 60 { prop_assert!(!ok); }
            // Exactly: room/1440 + cold/10080 ≤ 1.
            prop_assert_eq!(ok, room * 7 + cold <= 10_080);
        }

        /// Adding time never brings a specimen back into stability.
        #[test]
        fn monotone_in_time(now in 0i64..5_000, more in 0i64..5_000, switch in 0i64..5_000) {
            let history = [seg(0, R, Col), seg(switch, C, Sto)];
            let rule = potassium();
            let before = judge(at(0), Some(at(30)), &history, at(now), &rule).is_empty();
            let after = judge(at(0), Some(at(30)), &history, at(now + more), &rule).is_empty();
            prop_assert!(before || !after);
        }
    }
}
