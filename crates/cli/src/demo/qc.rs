//! The demo lab's quality control (issue 13): one chemistry control material in two levels,
//! targets for every chemistry analyte on both analyzers, 30 days of runs on CHEM1 (one
//! glucose run rejected twelve days ago, its corrective action, and the accepted re-run), and
//! CHEM2 locked for potassium by this morning's rejected run (2-2s within the run), waiting
//! for a corrective action. The values are deterministic: a fixed-seed generator whose
//! sequences never break a rule by chance (no point beyond 1.5 SD, never three on one side in
//! a row), so only the planned runs are flagged.

use aliquot_app::qc::TargetInput;
use aliquot_app::qc::{CalibrationInput, ControlInput, CorrectiveActionInput, LotInput, RunInput};
use aliquot_app::{Actor, App};
use anyhow::{Context, anyhow};
use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;

/// (test, level 1 mean, level 1 SD, level 2 mean, level 2 SD, decimals), in the test's units.
const TARGETS: [(&str, &str, &str, &str, &str, u32); 8] = [
    ("NA", "125", "1.5", "155", "1.8", 0),
    ("K", "3.50", "0.08", "6.00", "0.12", 2),
    ("CL", "88", "1.4", "114", "1.8", 0),
    ("CO2", "18", "0.9", "32", "1.2", 0),
    ("BUN", "15", "0.6", "55", "1.8", 0),
    ("CREA", "1.00", "0.04", "5.00", "0.15", 2),
    ("GLU", "90", "2.5", "280", "6.5", 0),
    ("CA", "8.00", "0.15", "12.50", "0.20", 2),
];
const LOTS: [(&str, i64); 2] = [("CC1-26051", 1), ("CC2-26052", 2)];
const DAYS: i64 = 30;

/// A small deterministic generator (64-bit LCG, Knuth's constants).
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// A z-score in hundredths, roughly bell-shaped, within ±1.50 (after rounding to the
    /// test's decimals a value stays within 2 SD).
    fn z(&mut self) -> i64 {
        let sum: i64 = (0..3).map(|_| (self.next() % 151) as i64 - 75).sum();
        match sum.clamp(-150, 150) {
            0 => 1,
            z => z,
        }
    }
}

/// The signs of one stream of values, so that none runs three on one side of the mean.
#[derive(Default)]
struct Streak(Vec<i64>);

impl Streak {
    fn would_be_third(&self, z: i64) -> bool {
        let n = self.0.len();
        n >= 2 && self.0[n - 1].signum() == z.signum() && self.0[n - 2].signum() == z.signum()
    }
}

/// The next value of a level: flipped to the other side when it would be the third on one
/// side in its level's stream or in the interleaved stream of both levels (the two never
/// demand opposite flips: they share the previous value).
fn next(draw: &mut Draw, level: &mut Streak, both: &mut Streak) -> i64 {
    let z = draw.z();
    let z = if level.would_be_third(z) || both.would_be_third(z) {
        -z
    } else {
        z
    };
    level.0.push(z);
    both.0.push(z);
    z
}

fn value(mean: &str, sd: &str, z_hundredths: i64, decimals: u32) -> anyhow::Result<String> {
    let mean: Decimal = mean.parse().context("demo mean")?;
    let sd: Decimal = sd.parse().context("demo sd")?;
    Ok((mean + sd * Decimal::new(z_hundredths, 2))
        .round_dp(decimals)
        .to_string())
}

fn at(now: Timestamp, days: i64, hours: i64) -> anyhow::Result<String> {
    Ok(now
        .checked_sub(SignedDuration::from_hours(days * 24 + hours))
        .context("time out of range")?
        .to_string())
}

fn err(what: impl std::fmt::Display) -> impl FnOnce(aliquot_app::AppError) -> anyhow::Error {
    move |e| anyhow!("demo QC: {what}: {e}")
}

pub async fn seed(app: &App, technologist: &Actor, technician: &Actor) -> anyhow::Result<usize> {
    let now = app.now();
    for (lot, level) in LOTS {
        app.create_qc_lot(
            technologist,
            LotInput {
                material: "Chemistry control (assayed)".into(),
                manufacturer: "Demo Diagnostics".into(),
                lot: lot.into(),
                level,
                expires_on: "2099-12-31".into(),
                control_ids: vec![
                    ("CHEM1".into(), format!("QC{level}")),
                    ("CHEM2".into(), format!("QC{level}")),
                ],
            },
        )
        .await
        .map_err(err("a control lot"))?;
    }
    let since = at(now, DAYS + 1, 0)?;
    for instrument in ["CHEM1", "CHEM2"] {
        for (test, m1, s1, m2, s2, _) in TARGETS {
            for ((lot, level), (mean, sd)) in LOTS.into_iter().zip([(m1, s1), (m2, s2)]) {
                app.set_qc_target(
                    technologist,
                    TargetInput {
                        instrument: instrument.into(),
                        test: test.into(),
                        lot: lot.into(),
                        level,
                        mean: mean.into(),
                        sd: sd.into(),
                        effective_at: Some(since.clone()),
                        reason: None,
                    },
                )
                .await
                .map_err(err("a target"))?;
            }
            app.record_calibration(
                technician,
                CalibrationInput {
                    instrument: instrument.into(),
                    test: test.into(),
                    kind: "calibration".into(),
                    calibrator_lot: "CAL-2611".into(),
                    outcome: "passed".into(),
                    at: Some(since.clone()),
                    notes: None,
                },
            )
            .await
            .map_err(err("a calibration"))?;
        }
    }
    let mut runs = 0;
    let post =
        |instrument: &'static str, test: &'static str, time: String, v1: String, v2: String| {
            RunInput {
                instrument: instrument.into(),
                test: test.into(),
                at: Some(time),
                controls: vec![
                    ControlInput {
                        lot: LOTS[0].0.into(),
                        level: 1,
                        value: v1,
                    },
                    ControlInput {
                        lot: LOTS[1].0.into(),
                        level: 2,
                        value: v2,
                    },
                ],
            }
        };
    // CHEM1: every analyte, one run a day at 06:00 (hours before now), 30 days.
    for (i, (test, m1, s1, m2, s2, dp)) in TARGETS.into_iter().enumerate() {
        let mut draw = Draw(0x5eed_0000 + i as u64);
        let (mut l1, mut l2, mut both) = (Streak::default(), Streak::default(), Streak::default());
        for day in (0..DAYS).rev() {
            let time = at(now, day, 2)?;
            let mut z1 = next(&mut draw, &mut l1, &mut both);
            let mut z2 = next(&mut draw, &mut l2, &mut both);
            if test == "GLU" && day == 12 {
                // Level 1 at +3.3 SD: 1-3s rejects the run.
                z1 = 330;
                z2 = z2.clamp(-90, 90);
            }
            if test == "NA" && day == 5 {
                z1 = 215; // a 1-2s warning alone: accepted, shown
                z2 = -40;
            }
            let r = app
                .post_qc_run(
                    technician,
                    post(
                        "CHEM1",
                        test,
                        time,
                        value(m1, s1, z1, dp)?,
                        value(m2, s2, z2, dp)?,
                    ),
                )
                .await
                .map_err(err("a CHEM1 run"))?;
            runs += 1;
            if test == "GLU" && day == 12 {
                anyhow::ensure!(
                    r.status == "rejected",
                    "the planned glucose rejection was {}",
                    r.status
                );
                app.document_corrective_action(
                    technologist,
                    CorrectiveActionInput {
                        instrument: "CHEM1".into(),
                        test: "GLU".into(),
                        action: "Replaced the glucose reagent cartridge (opened 31 days ago), recalibrated, re-ran both levels".into(),
                        reason: Some("Level 1 read high: reagent past its on-board stability".into()),
                        at: Some(at(now, day, 1)?),
                    },
                )
                .await
                .map_err(err("the corrective action"))?;
                let rerun = app
                    .post_qc_run(
                        technician,
                        post(
                            "CHEM1",
                            "GLU",
                            at(now, day, 0)?,
                            value(m1, s1, 20, dp)?,
                            value(m2, s2, -30, dp)?,
                        ),
                    )
                    .await
                    .map_err(err("the re-run"))?;
                anyhow::ensure!(!rerun.locked, "the glucose lock did not lift");
                runs += 1;
            } else {
                anyhow::ensure!(
                    r.status != "rejected",
                    "demo QC {test} day {day} was rejected by chance"
                );
            }
        }
    }
    // CHEM2: potassium, 30 days, then this morning both levels beyond +2 SD (2-2s within the
    // run): the instrument is locked for potassium.
    let (test, m1, s1, m2, s2, dp) = TARGETS[1];
    let mut draw = Draw(0x5eed_1000);
    let (mut l1, mut l2, mut both) = (Streak::default(), Streak::default(), Streak::default());
    for day in (1..DAYS).rev() {
        let z1 = next(&mut draw, &mut l1, &mut both);
        let z2 = next(&mut draw, &mut l2, &mut both);
        let r = app
            .post_qc_run(
                technician,
                post(
                    "CHEM2",
                    test,
                    at(now, day, 3)?,
                    value(m1, s1, z1, dp)?,
                    value(m2, s2, z2, dp)?,
                ),
            )
            .await
            .map_err(err("a CHEM2 run"))?;
        anyhow::ensure!(
            r.status != "rejected",
            "demo QC CHEM2 day {day} was rejected by chance"
        );
        runs += 1;
    }
    let r = app
        .post_qc_run(
            technician,
            post(
                "CHEM2",
                test,
                at(now, 0, 1)?,
                value(m1, s1, 240, dp)?,
                value(m2, s2, 225, dp)?,
            ),
        )
        .await
        .map_err(err("the CHEM2 rejection"))?;
    anyhow::ensure!(r.locked, "CHEM2 potassium is not locked");
    Ok(runs + 1)
}
