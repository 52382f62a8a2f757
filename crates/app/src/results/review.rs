//! Review and release of held results, corrections of released ones, and critical calls.

use aliquot_domain::auth::Permission;
use aliquot_store::{CriticalCallRecord, ResultNoticeRecord, ResultRecord, ResultVersionRecord};
use serde_json::json;

use super::entry::{Context, Reading, TestCache, open_call};
use super::{Body, ResultView, SignOff, result_view};
use crate::security::signature::{
    MEANING_CORRECTED, MEANING_SIGNED_OFF, MEANING_VERIFIED, Signature, SignatureInput, Signer,
};
use crate::{Actor, App, AppError, AppResult, require_reason};

/// A correction of a released result.
#[derive(Debug, Clone, Default)]
pub struct CorrectionInput {
    pub value: String,
    pub units: Option<String>,
    pub reason: Option<String>,
    pub comment: Option<String>,
    /// The correcting person's signature (required).
    pub signature: Option<SignatureInput>,
}

/// The documentation of a critical result's call.
#[derive(Debug, Clone, Default)]
pub struct CriticalCallInput {
    /// Who was told (full name).
    pub notified_name: String,
    /// Their role or credential (physician, RN …).
    pub notified_role: String,
    /// The value was read back by the person told (required: CAP GEN.41330).
    pub read_back: bool,
}

fn conflict(code: &'static str, message: impl Into<String>) -> AppError {
    AppError::Conflict {
        field: None,
        code,
        message: message.into(),
    }
}

/// Whether a result's test needs a pathologist's sign-off (its rules hold it for one).
fn needs_sign_off(body: &Body) -> bool {
    body.hold_reasons
        .iter()
        .any(|h| h.code == "pathologist_review")
}

impl App {
    /// The sign-off `actor` gives now: their name and role as they stand in the users table
    /// (the command-line operator, who has no row, by username).
    async fn sign_off(
        &self,
        tx: &mut Box<dyn aliquot_store::Tx>,
        actor: &Actor,
        now: jiff::Timestamp,
    ) -> AppResult<SignOff> {
        let name = match actor.user_id {
            Some(id) => tx.user_by_id(id).await?.map(|u| u.display_name),
            None => None,
        }
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| actor.username.clone());
        Ok(SignOff {
            by: actor.username.clone(),
            name,
            role: actor.role.title().to_owned(),
            at: now,
        })
    }

    async fn result_for_review(
        &self,
        tx: &mut Box<dyn aliquot_store::Tx>,
        id: i64,
    ) -> AppResult<ResultRecord> {
        tx.result_by_id(id)
            .await?
            .ok_or(AppError::NotFound { entity: "result" })
    }

    /// The result as it stands inside `tx`, with the access-log row of showing it written in
    /// the same transaction: a change's answer is read before its commit, so a committed change
    /// is never answered with an error.
    async fn result_in_tx(
        &self,
        tx: &mut Box<dyn aliquot_store::Tx>,
        actor: &Actor,
        id: i64,
    ) -> AppResult<ResultView> {
        let r = self.result_for_review(tx, id).await?;
        let versions = tx.result_versions_of_order(r.order_id).await?;
        let calls = tx.critical_calls_of_order(r.order_id).await?;
        tx.log_access(&self.access(actor, "result.read", "result", id, vec![r.patient_id]))
            .await?;
        result_view(&r, &versions, &calls, self.now())
    }

    /// One result with its versions and call (`order.read`); recorded in the access log.
    pub async fn result(&self, actor: &Actor, id: i64) -> AppResult<ResultView> {
        actor.require(Permission::OrderRead)?;
        let r = self
            .store
            .result_by_id(id)
            .await?
            .ok_or(AppError::NotFound { entity: "result" })?;
        self.require_patient_visible(actor, r.patient_id, "result")
            .await?;
        let versions = self.store.result_versions_of_order(r.order_id).await?;
        let calls = self.store.critical_calls_of_order(r.order_id).await?;
        self.store
            .record_access(&self.access(actor, "result.read", "result", id, vec![r.patient_id]))
            .await?;
        result_view(&r, &versions, &calls, self.now())
    }

    /// Verifies and releases a held result (`result.verify`; tests that need a pathologist
    /// also `result.sign_off`). `version` is the version the reviewer saw: of two reviewers of
    /// the same result exactly one succeeds, the other is told (409).
    ///
    /// `signature`: the password (or authenticator code) re-entered to sign the release;
    /// required when the lab requires signed releases
    /// (`results.verification_signature_required`), kept when given anyway. The signature's
    /// meaning is `signed off` for a result held for a pathologist, else `verified`.
    pub async fn verify_result(
        &self,
        actor: &Actor,
        id: i64,
        version: Option<i64>,
        comment: Option<&str>,
        signature: Option<&SignatureInput>,
    ) -> AppResult<ResultView> {
        actor.require(Permission::ResultVerify)?;
        let required = self.verification_signature_required().await?;
        let signer = self.signer(actor, signature, required).await?;
        self.verify_signed(actor, id, version, comment, signer.as_ref())
            .await
    }

    async fn verify_signed(
        &self,
        actor: &Actor,
        id: i64,
        version: Option<i64>,
        comment: Option<&str>,
        signer: Option<&Signer>,
    ) -> AppResult<ResultView> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let r = self.result_for_review(&mut tx, id).await?;
        if version.is_some_and(|v| v != r.version) {
            return Err(conflict(
                "result_changed",
                format!(
                    "the result is at version {}, not the one reviewed: reload it",
                    r.version
                ),
            ));
        }
        if r.status != "held" {
            return Err(conflict(
                "result_not_held",
                format!("the result is {}, not held for review", r.status),
            ));
        }
        let mut body = Body::parse(&r.body)?;
        let sign_off = needs_sign_off(&body);
        if sign_off {
            actor.require(Permission::ResultSignOff)?;
            body.signed_off = Some(self.sign_off(&mut tx, actor, now).await?);
        }
        // A rejected QC run holds the results of its instrument and test until a corrective
        // action and an accepted run lift the lock: nobody releases them meanwhile.
        if let Some(instrument) = r.instrument.as_deref()
            && tx.qc_locked(instrument, &r.test_code).await?
        {
            return Err(conflict(
                "qc_locked",
                format!(
                    "QC of {} on {instrument} was rejected: document the corrective action, run                      QC again, and re-test before releasing",
                    r.test_code
                ),
            ));
        }
        if let Some(c) = comment.map(str::trim).filter(|c| !c.is_empty()) {
            if c.chars().count() > 1000 {
                return Err(AppError::invalid(
                    "comment",
                    "comment_too_long",
                    "at most 1000 characters",
                ));
            }
            body.comment = Some(c.to_owned());
        }
        body.verified_by = Some(actor.username.clone());
        let meaning = if sign_off {
            MEANING_SIGNED_OFF
        } else {
            MEANING_VERIFIED
        };
        body.signature = signer.map(|s| s.sign(meaning, r.version + 1, now));
        let next = ResultRecord {
            status: "released".into(),
            version: r.version + 1,
            verified_at: Some(now),
            released_at: Some(now),
            body: body.json()?,
            updated_at: now,
            ..r.clone()
        };
        if !tx.update_result(&next, r.version).await? {
            return Err(conflict(
                "result_changed",
                "the result was changed meanwhile: reload it",
            ));
        }
        tx.insert_result_version(&ResultVersionRecord {
            result_id: id,
            version: next.version,
            status: next.status.clone(),
            body: next.body.clone(),
            reason: Some("verified".into()),
            at: now,
            by_user: actor.username.clone(),
        })
        .await?;
        tx.set_order_test_status(r.order_test_id, "released")
            .await?;
        tx.audit(self.entry(
            actor,
            "result.verify",
            "result",
            id,
            Some(json!({"version": r.version, "status": r.status, "hold_reasons": body.hold_reasons})),
            Some(json!({"version": next.version, "status": next.status, "value": body.value, "flags": body.flags,
                        "signature": body.signature.as_ref().map(Signature::audit)})),
            None,
        ));
        let ctx = self.context_of(&mut tx, &r).await?;
        self.queue_outbound(&mut tx, &ctx, &next).await?;
        let minutes = self.call_minutes().await?;
        self.recalculate(
            &mut tx,
            &mut TestCache::default(),
            actor,
            &ctx,
            minutes,
            now,
        )
        .await?;
        let view = self.result_in_tx(&mut tx, actor, id).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Corrects a released result: a new version with a reason, marked `corrected`; the
    /// earlier versions stay; the ordering provider gets a notice; calculated results that
    /// use it are recomputed (`result.verify`).
    pub async fn correct_result(
        &self,
        actor: &Actor,
        id: i64,
        input: CorrectionInput,
    ) -> AppResult<ResultView> {
        actor.require(Permission::ResultVerify)?;
        let reason = require_reason(input.reason.as_deref())?;
        // A correction is always signed (see `security::signature`).
        let signer = self
            .signer(actor, input.signature.as_ref(), true)
            .await?
            .ok_or_else(|| AppError::Internal("a required signature was not checked".into()))?;
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let r = self.result_for_review(&mut tx, id).await?;
        if r.status != "released" && r.status != "corrected" {
            return Err(conflict(
                "result_not_released",
                format!(
                    "the result is {}: a held result is verified or posted again, not corrected",
                    r.status
                ),
            ));
        }
        let old = Body::parse(&r.body)?;
        if old.calculated {
            return Err(conflict(
                "result_calculated",
                "a calculated result changes when the results it is computed from are corrected",
            ));
        }
        let ctx = self.context_of(&mut tx, &r).await?;
        let reading = Reading {
            value: &input.value,
            units: input.units.as_deref(),
            instrument: old.instrument.as_deref(),
            instrument_flags: &[],
            indices: old.indices,
            comment: input.comment.as_deref().or(old.comment.as_deref()),
        };
        let mut ev = self.evaluate(&mut tx, &ctx, &reading, actor, now).await?;
        // A correction is released by the person who makes it: the reasons it would have been
        // held for are kept for the record, and the interval stays the one shown before.
        ev.body.interval = old.interval.clone();
        ev.body.autoverified = false;
        ev.body.verified_by = Some(actor.username.clone());
        ev.body.signature = Some(signer.sign(MEANING_CORRECTED, r.version + 1, now));
        // A test that needs a pathologist's sign-off is corrected by one, who signs the
        // corrected value off: the report never shows an earlier signature under a new value.
        if needs_sign_off(&ev.body) || needs_sign_off(&old) {
            actor.require(Permission::ResultSignOff)?;
            ev.body.signed_off = Some(self.sign_off(&mut tx, actor, now).await?);
        }
        if ev.body.value == old.value && ev.body.units == old.units {
            return Err(AppError::invalid(
                "value",
                "correction_unchanged",
                "the corrected value is the value already reported",
            ));
        }
        let next = ResultRecord {
            status: "corrected".into(),
            version: r.version + 1,
            verified_at: Some(now),
            released_at: Some(now),
            body: ev.body.json()?,
            updated_at: now,
            ..r.clone()
        };
        if !tx.update_result(&next, r.version).await? {
            return Err(conflict(
                "result_changed",
                "the result was changed meanwhile: reload it",
            ));
        }
        tx.insert_result_version(&ResultVersionRecord {
            result_id: id,
            version: next.version,
            status: next.status.clone(),
            body: next.body.clone(),
            reason: Some(reason.clone()),
            at: now,
            by_user: actor.username.clone(),
        })
        .await?;
        tx.insert_result_notice(&ResultNoticeRecord {
            id: 0,
            result_id: id,
            result_version: next.version,
            provider_id: ctx.order.provider_id,
            created_at: now,
            acknowledged_at: None,
            acknowledged_by: None,
        })
        .await?;
        let minutes = self.call_minutes().await?;
        if ev.critical {
            open_call(&mut tx, id, next.version, minutes, now).await?;
        }
        self.queue_outbound(&mut tx, &ctx, &next).await?;
        tx.audit(self.entry(
            actor,
            "result.correct",
            "result",
            id,
            Some(json!({"version": r.version, "value": old.value, "units": old.units, "flags": old.flags})),
            Some(json!({"version": next.version, "value": ev.body.value, "units": ev.body.units, "flags": ev.body.flags,
                        "signature": ev.body.signature.as_ref().map(Signature::audit)})),
            Some(&reason),
        ));
        self.recalculate(
            &mut tx,
            &mut TestCache::default(),
            actor,
            &ctx,
            minutes,
            now,
        )
        .await?;
        let view = self.result_in_tx(&mut tx, actor, id).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Documents the call of a critical result: who called (the actor), whom, when, with the
    /// read-back confirmed (`result.verify`).
    pub async fn document_critical_call(
        &self,
        actor: &Actor,
        result_id: i64,
        input: CriticalCallInput,
    ) -> AppResult<ResultView> {
        actor.require(Permission::ResultVerify)?;
        let text = |field: &str, v: &str| -> AppResult<String> {
            let v = v.trim();
            if v.is_empty() || v.chars().count() > 200 || v.chars().any(char::is_control) {
                return Err(AppError::invalid(field, "required", "1 to 200 characters"));
            }
            Ok(v.to_owned())
        };
        let name = text("notified_name", &input.notified_name)?;
        let role = text("notified_role", &input.notified_role)?;
        if !input.read_back {
            return Err(AppError::invalid(
                "read_back",
                "read_back_required",
                "a critical result is documented only after the person told has read it back",
            ));
        }
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let r = self.result_for_review(&mut tx, result_id).await?;
        let call = tx.open_call_of_result(result_id).await?.ok_or_else(|| {
            conflict(
                "no_open_call",
                "this result has no critical call to document",
            )
        })?;
        let done = CriticalCallRecord {
            called_at: Some(now),
            called_by: Some(actor.username.clone()),
            notified_name: Some(name.clone()),
            notified_role: Some(role.clone()),
            read_back: Some(true),
            ..call.clone()
        };
        if !tx.document_critical_call(&done).await? {
            return Err(conflict(
                "call_documented",
                "the call was documented meanwhile",
            ));
        }
        tx.audit(self.entry(
            actor,
            "result.critical_call",
            "result",
            result_id,
            None,
            Some(json!({"call_id": call.id, "result_version": call.result_version, "notified_name": name,
                        "notified_role": role, "read_back": true, "overdue": now > call.due_at,
                        "order_id": r.order_id})),
            None,
        ));
        let view = self.result_in_tx(&mut tx, actor, result_id).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Verifies and releases every held result of an order the actor may release (results
    /// that need a pathologist stay held for one), each as [`App::verify_result`] would; the
    /// order's other tests keep their state, so a partial report shows what is released.
    ///
    /// One signature (checked once) signs every result released.
    pub async fn verify_order(
        &self,
        actor: &Actor,
        order_id: i64,
        comment: Option<&str>,
        signature: Option<&SignatureInput>,
    ) -> AppResult<crate::OrderView> {
        actor.require(Permission::ResultVerify)?;
        let required = self.verification_signature_required().await?;
        let signer = self.signer(actor, signature, required).await?;
        self.store
            .order_by_id(order_id)
            .await?
            .ok_or(AppError::NotFound { entity: "order" })?;
        for r in self.store.results_of_order(order_id).await? {
            if r.status != "held" {
                continue;
            }
            let body = Body::parse(&r.body)?;
            if needs_sign_off(&body) && !actor.role.allows(Permission::ResultSignOff) {
                continue;
            }
            self.verify_signed(actor, r.id, Some(r.version), comment, signer.as_ref())
                .await?;
        }
        self.order(actor, order_id).await
    }

    /// Records that an ordered test was not performed (e.g. insufficient specimen after
    /// processing, or the test was replaced), with a reason: the test keeps its history and
    /// leaves the worklists (`result.verify`). A released result is corrected instead.
    pub async fn mark_not_performed(
        &self,
        actor: &Actor,
        order_id: i64,
        test: &str,
        reason: Option<&str>,
    ) -> AppResult<crate::OrderView> {
        actor.require(Permission::ResultVerify)?;
        let reason = require_reason(reason)?;
        let now = self.now();
        let code = self
            .test_code_of(test)
            .await
            .map_err(|e| e.with_field("test"))?;
        let mut tx = self.store.begin().await?;
        let tests = tx.tests_of_order(order_id).await?;
        if tests.is_empty() {
            return Err(AppError::NotFound { entity: "order" });
        }
        let t = tests.iter().find(|t| t.test_code == code).ok_or_else(|| {
            AppError::invalid(
                "test",
                "test_not_ordered",
                format!("{code} was not ordered"),
            )
        })?;
        if t.status == "cancelled" || t.status == "not_performed" {
            return Err(conflict(
                "test_closed",
                format!("{code} is already {}", t.status),
            ));
        }
        let existing = tx.result_by_order_test(t.id).await?;
        if let Some(r) = &existing
            && r.status != "held"
        {
            return Err(conflict(
                "result_released",
                "a released result is corrected, not marked not performed",
            ));
        }
        let specimen = tx
            .specimen_by_id(t.specimen_id)
            .await?
            .ok_or_else(|| AppError::Internal("test without tube".into()))?;
        let ctx = self
            .result_context(
                &mut tx,
                &mut TestCache::default(),
                &specimen.accession,
                &code,
                false,
                false,
            )
            .await?;
        let ev = super::entry::Evaluated {
            body: Body {
                value: "Not performed".into(),
                kind: "text".into(),
                reading: None,
                posted_units: None,
                units: None,
                dilution: None,
                flags: Vec::new(),
                interval: None,
                hold_reasons: Vec::new(),
                instrument: None,
                instrument_flags: Vec::new(),
                indices: Default::default(),
                comment: Some(reason.clone()),
                rules_version: ctx.rules.rules.version,
                autoverified: false,
                calculated: false,
                entered_by: actor.username.clone(),
                verified_by: Some(actor.username.clone()),
                performing_lab: ctx.sent_out.as_ref().map(|s| s.lab.clone()),
                signature: None,
                signed_off: None,
            },
            released: false,
            critical: false,
            status: Some("not_performed"),
        };
        self.store_evaluated(
            &mut tx,
            actor,
            &ctx,
            existing.as_ref(),
            ev,
            0,
            now,
            Some(&reason),
        )
        .await?;
        tx.commit().await?;
        self.order(actor, order_id).await
    }

    /// The evaluation context of a stored result.
    pub(crate) async fn context_of(
        &self,
        tx: &mut Box<dyn aliquot_store::Tx>,
        r: &ResultRecord,
    ) -> AppResult<Context> {
        let specimen = tx
            .specimen_by_id(r.specimen_id)
            .await?
            .ok_or_else(|| AppError::Internal("result without specimen".into()))?;
        let lab_suspended = self
            .flag_setting("results.autoverification_suspended")
            .await?;
        let mut ctx = self
            .result_context(
                tx,
                &mut TestCache::default(),
                &specimen.accession,
                &r.test_code,
                lab_suspended,
                false,
            )
            .await
            .map_err(|e| match e {
                AppError::Internal(m) => AppError::Internal(m),
                other => AppError::Conflict {
                    field: None,
                    code: "result_context",
                    message: other.to_string(),
                },
            })?;
        ctx.specimen = specimen;
        Ok(ctx)
    }
}
