//! Per-test rejection after processing (issue 10 item 7): haemolysis or a clot found at the
//! analyser rejects potassium, LD and AST but not the rest of the tube. A test is marked not
//! performed with a reason code (any rejection reason: `hemolyzed`, `clotted`…) and a reason,
//! at any point before its result is released; the tube's other tests go on, and the whole
//! tube can still be rejected. With `recollect`, a test with no result yet is not closed: it
//! moves to a replacement tube planned in the same order, with a recollection task for the
//! ordering location.

use aliquot_domain::auth::Permission;
use aliquot_domain::specimen::{RejectionReason, TestStatus};
use serde_json::json;

use crate::patients::invalid;
use crate::specimens::{changed_meanwhile, not_found};
use crate::{Actor, App, AppError, AppResult, OrderView, require_reason};

/// What the technologist records about one test.
#[derive(Debug, Clone, Default)]
pub struct NotPerformedInput {
    /// Local test code or LOINC.
    pub test: String,
    /// Why, in words (3 to 500 characters).
    pub reason: Option<String>,
    /// A rejection-reason code for the test (`hemolyzed`, `clotted`, `qns`…).
    pub reason_code: Option<String>,
    /// Move the test to a redraw instead of closing it (only before a result is posted).
    pub recollect: bool,
}

impl App {
    /// Marks one test of an order not performed (see the module doc).
    pub async fn test_not_performed(
        &self,
        actor: &Actor,
        order_id: i64,
        input: NotPerformedInput,
    ) -> AppResult<OrderView> {
        actor.require(Permission::ResultVerify)?;
        let reason = require_reason(input.reason.as_deref())?;
        let code = input
            .reason_code
            .as_deref()
            .map(|c| {
                RejectionReason::parse(c.trim())
                    .map_err(|e| invalid(&e, "", "reason_code").with_field("reason_code"))
            })
            .transpose()?;
        let with_code = match code {
            Some(c) => format!("{c}: {reason}"),
            None => reason.clone(),
        };
        if !input.recollect {
            return self
                .mark_not_performed(actor, order_id, &input.test, Some(&with_code))
                .await;
        }
        let Some(code) = code else {
            return Err(AppError::invalid(
                "reason_code",
                "required",
                "a recollection names its rejection reason (hemolyzed, clotted, qns…)",
            ));
        };
        let test = self
            .test_code_of(&input.test)
            .await
            .map_err(|e| e.with_field("test"))?;
        let mut tx = self.store.begin().await?;
        let order = tx
            .order_by_id(order_id)
            .await?
            .ok_or(AppError::NotFound { entity: "order" })?;
        let t = tx
            .tests_of_order(order_id)
            .await?
            .into_iter()
            .find(|t| t.test_code == test)
            .ok_or_else(|| {
                AppError::invalid(
                    "test",
                    "test_not_ordered",
                    format!("{test} was not ordered"),
                )
            })?;
        match TestStatus::parse(&t.status) {
            Ok(TestStatus::Ordered) => {}
            Ok(TestStatus::Resulted) => {
                return Err(AppError::Conflict {
                    field: Some("recollect".into()),
                    code: "result_posted",
                    message: format!(
                        "{test} has a held result: mark it not performed (without recollect) and \
                         order it on a new draw"
                    ),
                });
            }
            _ => {
                return Err(AppError::Conflict {
                    field: Some("test".into()),
                    code: "test_closed",
                    message: format!("{test} is already {}", t.status),
                });
            }
        }
        if order.status != "active" {
            return Err(AppError::Conflict {
                field: None,
                code: "order_cancelled",
                message: "the order is cancelled".into(),
            });
        }
        let tube = tx
            .specimen_by_id(t.specimen_id)
            .await?
            .ok_or_else(not_found)?;
        if !self.guard_unchanged(&mut tx, &tube).await? {
            return Err(changed_meanwhile());
        }
        let replacement = self
            .plan_replacement(&mut tx, &order, &tube, std::slice::from_ref(&test))
            .await?;
        let now = self.now();
        let task = tx
            .insert_recollect_task(&aliquot_store::RecollectTaskRecord {
                id: 0,
                order_id: order.id,
                location_id: order.location_id,
                specimen_id: tube.id,
                accession: tube.accession.clone(),
                reason: code.as_str().to_owned(),
                created_at: now,
                done_at: None,
                done_by: None,
                replacement_accession: None,
            })
            .await?;
        let details = json!({"test": test, "reason_code": code.as_str(),
            "reason": &reason, "replacement": replacement.accession, "recollect_task_id": task});
        tx.insert_specimen_event(&self.custody(
            actor,
            &tube,
            "test_not_performed",
            &tube.status,
            details.clone(),
            None,
        ))
        .await?;
        tx.audit(self.entry(
            actor,
            "order.test_recollect",
            "order",
            order_id,
            Some(json!({"test": test, "accession": tube.accession})),
            Some(details),
            Some(&reason),
        ));
        tx.commit().await?;
        self.order(actor, order_id).await
    }
}
