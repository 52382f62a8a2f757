//! Calculated tests (eGFR, anion gap, LDL, corrected calcium): computed from the released
//! results of the same order when the last input is released, and computed again when an
//! input is corrected. They are evaluated like any result (interval, flags, autoverification).

use aliquot_domain::patient::{AdministrativeSex, ClinicalSex, age_in_years};
use aliquot_domain::results::calc::{
    EgfrSex, anion_gap, corrected_calcium_payne, egfr_ckd_epi_2021, ldl_cholesterol_nih2,
    round_half_up,
};
use aliquot_domain::results::interval::{IntervalSex, interval_sex};
use aliquot_domain::results::value::display;
use aliquot_store::Tx;
use jiff::Timestamp;
use rust_decimal::Decimal;

use super::Body;
use super::entry::{Context, Reading, TestCache, numeric_of};
use super::rules::doc_of;
use crate::{Actor, App, AppError, AppResult};

/// The stable code of an error, for the log (never its message, which may hold values).
fn e_code(e: &AppError) -> &'static str {
    match e {
        AppError::Invalid { code, .. } | AppError::Conflict { code, .. } => code,
        _ => "other",
    }
}

impl App {
    /// Computes every calculated test of `ctx`'s order that uses `ctx`'s test, once all its
    /// inputs are released. A calculation the formula refuses (an eGFR for a child, LDL with
    /// triglycerides above 800 mg/dL) is left pending for the technologist, who sees it on
    /// the worklist.
    pub(crate) async fn recalculate(
        &self,
        tx: &mut Box<dyn Tx>,
        cache: &mut TestCache,
        actor: &Actor,
        ctx: &Context,
        call_minutes: i64,
        now: Timestamp,
    ) -> AppResult<()> {
        let dependents = cache.dependents(self, &ctx.test.test_code).await?;
        if dependents.is_empty() {
            return Ok(());
        }
        let tests = tx.tests_of_order(ctx.order.id).await?;
        let released: Vec<(String, Decimal, bool)> = tx
            .results_of_order(ctx.order.id)
            .await?
            .iter()
            .filter(|r| r.status == "released" || r.status == "corrected")
            .filter_map(|r| {
                let b = Body::parse(&r.body).ok()?;
                Some((r.test_code.clone(), numeric_of(&b)?, b.calculated))
            })
            .collect();
        for t in tests
            .iter()
            .filter(|t| t.id != ctx.test.id && t.status != "cancelled")
        {
            let Some(rules) = tx.result_rules(&t.test_code).await? else {
                continue;
            };
            let Some(calc) = doc_of(&rules)?.calculation else {
                continue;
            };
            if !calc.inputs.values().any(|c| *c == ctx.test.test_code) {
                continue;
            }
            let input = |name: &str| -> Option<Decimal> {
                let code = calc.inputs.get(name)?;
                released
                    .iter()
                    .find(|(c, _, calculated)| c == code && !calculated)
                    .map(|(_, v, _)| *v)
            };
            let time_zone = self.lab_timezone().await?;
            let Some(value) = self.compute(&calc.formula, &input, ctx, &time_zone)? else {
                continue;
            };
            let spec = tx
                .specimen_by_id(t.specimen_id)
                .await?
                .ok_or_else(|| AppError::Internal("calculated test without tube".into()))?;
            let target = self
                .result_context(
                    tx,
                    cache,
                    &spec.accession,
                    &t.test_code,
                    ctx.lab_suspended,
                    false,
                )
                .await;
            // A calculation that cannot be judged (its test on a tube the inputs are not
            // from, say) is left for the technologist; nothing was written for it.
            let target = match target {
                Ok(found) => found,
                Err(AppError::Internal(m)) => return Err(AppError::Internal(m)),
                Err(e) => {
                    tracing::warn!(test = %t.test_code, code = e_code(&e), "calculation skipped");
                    continue;
                }
            };
            let precision = target.def.precision.unwrap_or(0);
            let text = display(value, u32::from(precision));
            let reading = Reading {
                value: &text,
                units: None,
                instrument: None,
                instrument_flags: &[],
                indices: Default::default(),
                comment: None,
            };
            let mut ev = match self.evaluate(tx, &target, &reading, actor, now).await {
                Ok(ev) => ev,
                Err(AppError::Internal(m)) => return Err(AppError::Internal(m)),
                Err(e) => {
                    tracing::warn!(test = %t.test_code, code = e_code(&e), "calculation skipped");
                    continue;
                }
            };
            ev.body.calculated = true;
            let existing = tx.result_by_order_test(t.id).await?;
            if let Some(old) = &existing {
                let old_body = Body::parse(&old.body)?;
                if old_body.value == ev.body.value {
                    continue;
                }
                if old.status != "held" {
                    // A released calculation changes as a correction of its own.
                    ev.released = true;
                    ev.status = Some("corrected");
                    ev.body.autoverified = false;
                    let reason = format!("recalculated: {} changed", ctx.test.test_code);
                    self.store_evaluated(
                        tx,
                        actor,
                        &target,
                        existing.as_ref(),
                        ev,
                        call_minutes,
                        now,
                        Some(&reason),
                    )
                    .await?;
                    continue;
                }
            }
            self.store_evaluated(
                tx,
                actor,
                &target,
                existing.as_ref(),
                ev,
                call_minutes,
                now,
                None,
            )
            .await?;
        }
        Ok(())
    }

    fn compute(
        &self,
        formula: &str,
        input: &dyn Fn(&str) -> Option<Decimal>,
        ctx: &Context,
        time_zone: &jiff::tz::TimeZone,
    ) -> AppResult<Option<Decimal>> {
        let refused = |_| Ok(None);
        Ok(match formula {
            "egfr_ckd_epi_2021" => {
                let Some(crea) = input("creatinine") else {
                    return Ok(None);
                };
                let sex = AdministrativeSex::parse(&ctx.patient.sex)
                    .map_err(|e| AppError::Internal(e.to_string()))?;
                let clinical = ctx
                    .patient
                    .clinical_sex
                    .as_deref()
                    .map(ClinicalSex::parse)
                    .transpose()
                    .map_err(|e| AppError::Internal(e.to_string()))?;
                // The clinical sex when recorded, else the administrative one; neither female
                // nor male: no eGFR (never a guessed coefficient).
                let sex = match interval_sex(sex, clinical) {
                    Some(IntervalSex::Female) => EgfrSex::Female,
                    Some(IntervalSex::Male) => EgfrSex::Male,
                    None => return Ok(None),
                };
                let birth: jiff::civil::Date = ctx
                    .patient
                    .birth_date
                    .parse()
                    .map_err(|_| AppError::Internal("birth date".into()))?;
                let collected = ctx
                    .specimen
                    .collected_or_created()
                    .to_zoned(time_zone.clone())
                    .date();
                match egfr_ckd_epi_2021(crea, age_in_years(birth, collected), sex) {
                    Ok(v) => Some(round_half_up(v, 0)),
                    Err(e) => return refused(e),
                }
            }
            "anion_gap" => {
                let (Some(na), Some(cl), Some(hco3)) =
                    (input("sodium"), input("chloride"), input("bicarbonate"))
                else {
                    return Ok(None);
                };
                match anion_gap(na, cl, hco3) {
                    Ok(v) => Some(v),
                    Err(e) => return refused(e),
                }
            }
            "ldl_nih2" => {
                let (Some(tc), Some(hdl), Some(tg)) = (
                    input("total_cholesterol"),
                    input("hdl_cholesterol"),
                    input("triglycerides"),
                ) else {
                    return Ok(None);
                };
                match ldl_cholesterol_nih2(tc, hdl, tg) {
                    Ok(v) => Some(v),
                    Err(e) => return refused(e),
                }
            }
            "corrected_calcium" => {
                let (Some(ca), Some(alb)) = (input("calcium"), input("albumin")) else {
                    return Ok(None);
                };
                match corrected_calcium_payne(ca, alb) {
                    Ok(v) => Some(v),
                    Err(e) => return refused(e),
                }
            }
            _ => None,
        })
    }
}
