//! Read-only views of what the lab has released about a patient, with the context an outside
//! system needs (the test's name and LOINC code, the specimen, the order): the use cases
//! behind the FHIR R4 API. Only released and corrected results are shown; a held result is
//! not there yet for anyone outside the lab. Every read is checked against the caller's patient
//! scope and recorded in the access log.

use std::collections::HashMap;

use aliquot_domain::auth::Permission;
use aliquot_store::{ReleasedResultQuery, ReleasedResultRecord};
use jiff::Timestamp;

use crate::catalog::{catalog_key, definition};
use crate::results::{ResultView, result_view};
use crate::{Actor, App, AppError, AppResult, OrderView, SpecimenDetail};

/// The most results, orders or specimens one search returns.
pub const RELEASED_PAGE_MAX: i64 = 100;

/// A search over one patient's released results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleasedResultSearch {
    pub patient_id: i64,
    /// Local test codes or LOINC codes (any of); empty = every test. Codes the catalogue does
    /// not know match nothing.
    pub tests: Vec<String>,
    pub collected_from: Option<Timestamp>,
    pub collected_before: Option<Timestamp>,
    /// Keyset: results older (smaller id) than this one.
    pub before_id: Option<i64>,
    /// At most [`RELEASED_PAGE_MAX`].
    pub limit: i64,
}

/// A released result with its context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedResultView {
    /// The result (its correction history is not included).
    pub result: ResultView,
    pub patient_id: i64,
    pub order_id: i64,
    pub accession: String,
    /// The specimen type the test was performed on.
    pub specimen_type: String,
    pub test_name: String,
    pub loinc: Option<String>,
    pub department: Option<String>,
}

/// A test's name, LOINC code and department, looked up once per request.
struct Names {
    cache: HashMap<String, (String, Option<String>, Option<String>)>,
}

impl App {
    /// One page of a patient's released results, newest first (`order.read`).
    pub async fn released_results(
        &self,
        actor: &Actor,
        q: ReleasedResultSearch,
    ) -> AppResult<Vec<ReleasedResultView>> {
        actor.require(Permission::OrderRead)?;
        self.visible_patient(actor, q.patient_id).await?;
        let mut codes = Vec::with_capacity(q.tests.len());
        for t in &q.tests {
            if let Some(r) = self.store.catalog_by_code(&catalog_key(t)).await? {
                codes.push(r.code);
            }
        }
        if !q.tests.is_empty() && codes.is_empty() {
            self.log_results_read(actor, q.patient_id).await?;
            return Ok(Vec::new());
        }
        let rows = self
            .store
            .released_results_page(&ReleasedResultQuery {
                patient_id: q.patient_id,
                test_codes: &codes,
                collected_from: q.collected_from,
                collected_before: q.collected_before,
                before_id: q.before_id,
                id: None,
                limit: q.limit.clamp(1, RELEASED_PAGE_MAX),
            })
            .await?;
        let out = self.released_views(&rows).await?;
        self.log_results_read(actor, q.patient_id).await?;
        Ok(out)
    }

    /// One released result by id (`order.read`); a held result, or one of a patient the caller
    /// may not see, is not found.
    pub async fn released_result(&self, actor: &Actor, id: i64) -> AppResult<ReleasedResultView> {
        actor.require(Permission::OrderRead)?;
        let not_found = || AppError::NotFound { entity: "result" };
        let r = self
            .store
            .result_by_id(id)
            .await?
            .filter(|r| matches!(r.status.as_str(), "released" | "corrected"))
            .ok_or_else(not_found)?;
        if self
            .require_patient_visible(actor, r.patient_id, "result")
            .await
            .is_err()
        {
            return Err(not_found());
        }
        let rows = self
            .store
            .released_results_page(&ReleasedResultQuery {
                patient_id: r.patient_id,
                test_codes: &[],
                collected_from: None,
                collected_before: None,
                before_id: None,
                id: Some(id),
                limit: 1,
            })
            .await?;
        let mut out = self.released_views(&rows).await?;
        out.pop().ok_or_else(not_found)
    }

    /// A patient's orders, newest first, each with its tests' results (`order.read`).
    pub async fn patient_orders(
        &self,
        actor: &Actor,
        patient_id: i64,
    ) -> AppResult<Vec<OrderView>> {
        actor.require(Permission::OrderRead)?;
        self.visible_patient(actor, patient_id).await?;
        let orders = self
            .store
            .orders_by(None, Some(patient_id), RELEASED_PAGE_MAX)
            .await?;
        let mut out = Vec::with_capacity(orders.len());
        for o in &orders {
            let specimens = self.store.specimens_of_order(o.id).await?;
            let tests = self.store.tests_of_order(o.id).await?;
            let mut v = crate::orders::view(o, &specimens, &tests)?;
            self.attach_results(&mut v, &tests).await?;
            out.push(v);
        }
        self.store
            .record_access(&self.access(
                actor,
                "order.search",
                "patient",
                patient_id,
                vec![patient_id],
            ))
            .await?;
        Ok(out)
    }

    /// A patient's specimens with their chain of custody, newest order first (`order.read`).
    pub async fn patient_specimens(
        &self,
        actor: &Actor,
        patient_id: i64,
    ) -> AppResult<Vec<SpecimenDetail>> {
        actor.require(Permission::OrderRead)?;
        self.visible_patient(actor, patient_id).await?;
        let orders = self
            .store
            .orders_by(None, Some(patient_id), RELEASED_PAGE_MAX)
            .await?;
        let mut out = Vec::new();
        for o in &orders {
            for s in self.store.specimens_of_order(o.id).await? {
                out.push(self.specimen_detail(&s).await?);
            }
        }
        self.store
            .record_access(&self.access(
                actor,
                "specimen.search",
                "patient",
                patient_id,
                vec![patient_id],
            ))
            .await?;
        Ok(out)
    }

    /// The patient exists and the caller may see them (otherwise: not found).
    async fn visible_patient(&self, actor: &Actor, patient_id: i64) -> AppResult<()> {
        let not_found = || AppError::NotFound { entity: "patient" };
        self.store
            .patient_by_id(patient_id)
            .await?
            .ok_or_else(not_found)?;
        self.require_patient_visible(actor, patient_id, "patient")
            .await
            .map_err(|_| not_found())
    }

    async fn log_results_read(&self, actor: &Actor, patient_id: i64) -> AppResult<()> {
        self.store
            .record_access(&self.access(
                actor,
                "patient.results",
                "patient",
                patient_id,
                vec![patient_id],
            ))
            .await?;
        Ok(())
    }

    async fn released_views(
        &self,
        rows: &[ReleasedResultRecord],
    ) -> AppResult<Vec<ReleasedResultView>> {
        let mut names = Names {
            cache: HashMap::new(),
        };
        let now = self.now();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let r = &row.result;
            let (test_name, loinc, department) = names.of(self, &r.test_code).await?;
            out.push(ReleasedResultView {
                result: result_view(r, &[], &[], now)?,
                patient_id: r.patient_id,
                order_id: r.order_id,
                accession: row.accession.clone(),
                specimen_type: row.specimen_type.clone(),
                test_name,
                loinc,
                department,
            });
        }
        Ok(out)
    }
}

impl Names {
    async fn of(
        &mut self,
        app: &App,
        code: &str,
    ) -> AppResult<(String, Option<String>, Option<String>)> {
        if let Some(n) = self.cache.get(code) {
            return Ok(n.clone());
        }
        let n = match app.store.catalog_by_code(code).await? {
            Some(r) => {
                let d = definition(&r)?;
                (d.name, d.loinc, d.department)
            }
            None => (code.to_owned(), None, None),
        };
        self.cache.insert(code.to_owned(), n.clone());
        Ok(n)
    }
}
