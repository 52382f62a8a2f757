//! Patient reports (issue 14): what leaves the lab.
//!
//! An order's report is a JSON document of display text (times in the lab's zone, names as
//! registered), in the shape the PDF template (`crates/report/templates/report.typ`) lays
//! out. `content.rs` builds it from the order, its patient, specimens, results with their
//! versions and critical calls, and the lab's settings. A report is **issued** as a numbered
//! version (`report_versions`, append-only) the first time its content differs from the
//! latest issued version: the version keeps the whole document, so `?version=N` renders
//! exactly what was issued, and the PDF's date and identifier come from the version, so the
//! same version gives the same bytes. Issuing is audited (`report.issue`); every read is
//! access-logged (`report.read`).
//!
//! The cumulative report (a patient's released results per test across orders) and the
//! batch print (every report of a client location with a result released or corrected
//! since a time) are built the same way; the batch issues each order's current version.

mod content;
mod manifest;

use aliquot_domain::auth::Permission;
use aliquot_store::ReportVersionRecord;
use jiff::Timestamp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{Actor, App, AppError, AppResult};

/// At most this many orders in one batch print.
pub const BATCH_LIMIT: i64 = 200;

/// A report ready to render: the template's JSON and what the PDF's metadata comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportDocument {
    /// The JSON the PDF is rendered from.
    pub document: String,
    /// A stable identifier of this document (the PDF's ID is derived from it).
    pub ident: String,
    /// The PDF's creation date: the version's issue time (never the clock at rendering).
    pub created: Timestamp,
    /// The report version (0 for documents that are not versioned: cumulative, batch).
    pub version: i64,
    /// `preliminary`, `final`, `corrected`; `cumulative` or `batch` otherwise.
    pub status: String,
}

fn sha256(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn json_text(v: &Value) -> AppResult<String> {
    serde_json::to_string(v).map_err(|e| AppError::Internal(format!("report document: {e}")))
}

fn document_of(v: &ReportVersionRecord) -> ReportDocument {
    ReportDocument {
        document: v.document.clone(),
        ident: format!("order-{}-report-{}", v.order_id, v.version),
        created: v.issued_at,
        version: v.version,
        status: v.status.clone(),
    }
}

impl App {
    /// The report of an order (`order.read`, the patient visible to the caller): version
    /// `version`, or the current one, issued now when the content changed since the latest
    /// issued version. Recorded in the access log.
    pub async fn order_report(
        &self,
        actor: &Actor,
        order_id: i64,
        version: Option<i64>,
    ) -> AppResult<ReportDocument> {
        actor.require(Permission::OrderRead)?;
        let order = self
            .store
            .order_by_id(order_id)
            .await?
            .ok_or(AppError::NotFound { entity: "order" })?;
        self.require_patient_visible(actor, order.patient_id, "order")
            .await?;
        let issued =
            match version {
                Some(n) => self.store.report_version(order_id, Some(n)).await?.ok_or(
                    AppError::NotFound {
                        entity: "report version",
                    },
                )?,
                None => self.issue_current(actor, order_id).await?,
            };
        self.store
            .record_access(&self.access(
                actor,
                "report.read",
                "order",
                order_id,
                vec![order.patient_id],
            ))
            .await?;
        Ok(document_of(&issued))
    }

    /// The current version of an order's report: the latest issued one when its content is
    /// unchanged, else a new version, issued and audited in one transaction.
    async fn issue_current(&self, actor: &Actor, order_id: i64) -> AppResult<ReportVersionRecord> {
        let built = self.report_content(order_id).await?;
        let content = json_text(&built.content)?;
        let hash = sha256(&content);
        if let Some(latest) = self.store.report_version(order_id, None).await?
            && latest.content_sha256 == hash
        {
            return Ok(latest);
        }
        let mut tx = self.store.begin().await?;
        // Check and insert under the writers' lock: two servers cannot both issue version N.
        tx.serialize_writes().await?;
        let previous = tx.report_version(order_id, None).await?;
        if let Some(p) = &previous
            && p.content_sha256 == hash
        {
            return Ok(p.clone());
        }
        let now = self.now();
        let tz = self.lab_timezone().await?;
        let version = previous.as_ref().map_or(1, |p| p.version + 1);
        let replaces = previous.as_ref().map(|p| {
            format!(
                "version {} ({}) issued {}",
                p.version,
                p.status,
                content::show_time(p.issued_at, &tz)
            )
        });
        let mut report = built.content["report"].clone();
        let note = match (built.status, &replaces) {
            ("corrected", Some(r)) => format!(
                "Corrected report: a released result was corrected (see below). It replaces \
                 {r}, which stays retrievable."
            ),
            ("corrected", None) => {
                "Corrected report: a released result was corrected (see below).".to_owned()
            }
            ("final", Some(r)) => format!("Final report: every test is complete. Replaces {r}."),
            ("final", None) => "Final report: every test is complete.".to_owned(),
            (_, Some(r)) => {
                format!("Preliminary report: some tests are still pending. Replaces {r}.")
            }
            (_, None) => "Preliminary report: some tests are still pending.".to_owned(),
        };
        report["version"] = json!(version);
        report["issued"] = json!(content::show_time(now, &tz));
        report["replaces"] = json!(replaces);
        report["status_note"] = json!(note);
        let document = json!({
            "kind": "orders",
            "title": format!("Laboratory report, order {order_id}, version {version}"),
            "lab": built.content["lab"],
            "reports": [report],
        });
        let record = ReportVersionRecord {
            id: 0,
            order_id,
            version,
            status: built.status.to_owned(),
            content_sha256: hash,
            document: json_text(&document)?,
            issued_at: now,
            issued_by: actor.username.clone(),
        };
        let id = tx.insert_report_version(&record).await?;
        tx.audit(self.entry(
            actor,
            "report.issue",
            "order",
            order_id,
            previous
                .as_ref()
                .map(|p| json!({"version": p.version, "status": p.status})),
            Some(json!({"version": version, "status": built.status, "sha256": record.content_sha256})),
            None,
        ));
        tx.commit().await?;
        Ok(ReportVersionRecord { id, ..record })
    }

    /// A patient's cumulative report (`order.read`): every released result per test across
    /// orders, each with the interval in force at its collection. Recorded in the access log.
    /// Not versioned: its PDF date is the newest result's release, so the same results give
    /// the same bytes.
    pub async fn cumulative_report(
        &self,
        actor: &Actor,
        patient_id: i64,
    ) -> AppResult<ReportDocument> {
        actor.require(Permission::OrderRead)?;
        self.store
            .patient_by_id(patient_id)
            .await?
            .ok_or(AppError::NotFound { entity: "patient" })?;
        self.require_patient_visible(actor, patient_id, "patient")
            .await?;
        let (document, created) = self.cumulative_content(patient_id).await?;
        self.store
            .record_access(&self.access(
                actor,
                "report.cumulative",
                "patient",
                patient_id,
                vec![patient_id],
            ))
            .await?;
        Ok(ReportDocument {
            document: json_text(&document)?,
            ident: format!(
                "patient-{patient_id}-cumulative-{}",
                created.as_microsecond()
            ),
            created,
            version: 0,
            status: "cumulative".into(),
        })
    }

    /// The batch print of a client location (`order.read`): the current report of every order
    /// there with a result released or corrected at or after `since` (RFC 3339), oldest order
    /// first, at most [`BATCH_LIMIT`]; orders whose patient the caller may not see are left
    /// out. One access-log row names every patient printed.
    pub async fn batch_reports(
        &self,
        actor: &Actor,
        location: &str,
        since: &str,
    ) -> AppResult<ReportDocument> {
        actor.require(Permission::OrderRead)?;
        let since: Timestamp = since.trim().parse().map_err(|_| {
            AppError::invalid(
                "since",
                "invalid_time",
                "since must be an RFC 3339 time, e.g. 2026-11-28T06:00:00Z",
            )
        })?;
        let loc = self
            .store
            .location_by_code(location.trim())
            .await?
            .ok_or(AppError::NotFound { entity: "location" })?;
        let mut reports = Vec::new();
        let mut patients = Vec::new();
        let mut created = since;
        let mut idents = Vec::new();
        for order_id in self
            .store
            .orders_released_since(loc.id, since, BATCH_LIMIT)
            .await?
        {
            let Some(order) = self.store.order_by_id(order_id).await? else {
                continue;
            };
            match self
                .require_patient_visible(actor, order.patient_id, "order")
                .await
            {
                Ok(()) => {}
                Err(AppError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
            let v = self.issue_current(actor, order_id).await?;
            let doc: Value = serde_json::from_str(&v.document)
                .map_err(|e| AppError::Internal(format!("report version: {e}")))?;
            if let Some(r) = doc["reports"].as_array().and_then(|a| a.first()) {
                reports.push(r.clone());
            }
            created = created.max(v.issued_at);
            idents.push(format!("{}.{}", v.order_id, v.version));
            if !patients.contains(&order.patient_id) {
                patients.push(order.patient_id);
            }
        }
        let lab = self.lab_block().await?;
        let document = json!({
            "kind": "orders",
            "title": format!("Reports released for {} since {}", loc.code, since),
            "lab": lab,
            "reports": reports,
        });
        if !patients.is_empty() {
            self.store
                .record_access(&self.access(actor, "report.batch", "location", loc.id, patients))
                .await?;
        }
        Ok(ReportDocument {
            document: json_text(&document)?,
            ident: format!("batch-{}-{}", loc.code, sha256(&idents.join(","))),
            created,
            version: 0,
            status: "batch".into(),
        })
    }
}
