//! Reading and verifying the audit trail and the access log.
//!
//! The audit trail proves what changed without showing patient data to roles that may not
//! see it: an entry about a patient, order, tube, result … shows its values and reason only to
//! a caller with `patient.read`, and that read is written to the access log like any other
//! read of patient data. Others (the administrator) see which fields changed and the SHA-256
//! of the stored value text, which proves the value to anyone who holds it, and every hash of
//! the chain.

use aliquot_domain::auth::Permission;
use aliquot_store::{AccessRecord, AuditRecord, ChainReport};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{Actor, App, AppResult};

/// Entity types whose audit entries hold no patient data (users, settings, the catalogue,
/// the directory, storage holders, rules). Every other entry is treated as patient data.
const NO_PATIENT_DATA: &[&str] = &[
    "user",
    "session",
    "setting",
    "catalog_test",
    "location",
    "provider",
    "storage_unit",
    "retention_policy",
    "result_rules",
    "instrument",
    "destination",
];

/// Whether an audit entry may hold patient data.
pub(crate) fn holds_patient_data(entity_type: &str) -> bool {
    !NO_PATIENT_DATA.contains(&entity_type)
}

/// A value replaced by what proves it without showing it: the changed fields' names and the
/// SHA-256 of the stored JSON text.
fn redacted(value: Option<Value>, text: Option<&str>) -> Option<Value> {
    value.map(|v| {
        let fields: Vec<String> = match &v {
            Value::Object(m) => m.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let sha = hex::encode(Sha256::digest(text.unwrap_or_default().as_bytes()));
        json!({"redacted": true, "fields": fields, "sha256": sha})
    })
}

impl App {
    pub async fn audit_events(
        &self,
        actor: &Actor,
        after: i64,
        limit: i64,
        entity: Option<(&str, &str)>,
    ) -> AppResult<Vec<AuditRecord>> {
        actor.require(Permission::AuditRead)?;
        let mut rows = self
            .store
            .audit_events(after, limit.clamp(1, 1000), entity)
            .await?;
        if actor.role.allows(Permission::PatientRead) {
            // Shown in full: logged like any read of patient data.
            let mut patients = Vec::new();
            for r in rows
                .iter()
                .filter(|r| holds_patient_data(&r.entry.entity_type))
            {
                let id = r.entry.entity_id.as_str();
                let patient = match r.entry.entity_type.as_str() {
                    "patient" => id.parse::<i64>().ok(),
                    "order" => match id.parse::<i64>() {
                        Ok(o) => self.store.order_by_id(o).await?.map(|o| o.patient_id),
                        Err(_) => None,
                    },
                    "specimen" => self
                        .store
                        .specimen_by_accession(id)
                        .await?
                        .map(|s| s.patient_id),
                    "result" => match id.parse::<i64>() {
                        Ok(x) => self.store.result_by_id(x).await?.map(|r| r.patient_id),
                        Err(_) => None,
                    },
                    _ => None,
                };
                patients.extend(patient);
            }
            if !patients.is_empty() {
                patients.sort_unstable();
                patients.dedup();
                self.store
                    .record_access(&self.access(actor, "audit.read", "audit", after, patients))
                    .await?;
            }
        } else {
            for r in rows
                .iter_mut()
                .filter(|r| holds_patient_data(&r.entry.entity_type))
            {
                r.entry.old_value = redacted(r.entry.old_value.take(), r.old_text.as_deref());
                r.entry.new_value = redacted(r.entry.new_value.take(), r.new_text.as_deref());
                r.entry.reason = r.entry.reason.as_ref().map(|_| "<redacted>".to_owned());
                r.old_text = None;
                r.new_text = None;
            }
        }
        Ok(rows)
    }

    pub async fn access_log(
        &self,
        actor: &Actor,
        after: i64,
        limit: i64,
    ) -> AppResult<Vec<AccessRecord>> {
        actor.require(Permission::AuditRead)?;
        Ok(self.store.access_log(after, limit.clamp(1, 1000)).await?)
    }

    /// Walks the audit chain. From the API it needs `audit.read`; the CLI calls it as the
    /// operator.
    /// Verifies the audit chain (and that it still holds `anchor`, when given).
    pub async fn verify_audit(
        &self,
        actor: &Actor,
        anchor: Option<&aliquot_store::Anchor>,
    ) -> AppResult<ChainReport> {
        actor.require(Permission::AuditRead)?;
        Ok(self.store.verify_audit_anchor(anchor).await?)
    }

    /// Walks the access log's chain (issue 16 item 4; the rows written since it was
    /// chained). From the API it needs `audit.read`; `aliquot audit verify` runs it after
    /// the audit chain.
    pub async fn verify_access_log(&self, actor: &Actor) -> AppResult<ChainReport> {
        actor.require(Permission::AuditRead)?;
        Ok(self.store.verify_access_chain().await?)
    }

    /// The database's own integrity check (see `Store::integrity_check`), run by
    /// `aliquot audit verify` before the chain: a chain read from a damaged file proves
    /// nothing.
    pub async fn check_database_integrity(&self, actor: &Actor) -> AppResult<Option<Vec<String>>> {
        actor.require(Permission::AuditRead)?;
        Ok(self.store.integrity_check().await?)
    }
}
