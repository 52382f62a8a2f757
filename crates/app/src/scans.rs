//! Scanned requisitions: attached to an order (audited), listed and viewed (access-logged).
//! The bytes live under `<data dir>/scans/<first two hex digits>/<SHA-256>`, outside the
//! database rows, so identical scans are stored once.

use std::path::PathBuf;

use aliquot_domain::auth::Permission;
use aliquot_domain::scan::check_scan;
use aliquot_store::ScanRecord;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::patients::invalid;
use crate::{Actor, App, AppError, AppResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanView {
    pub id: i64,
    pub order_id: i64,
    pub sha256: String,
    pub media_type: String,
    pub size_bytes: i64,
    pub created_at: jiff::Timestamp,
    pub created_by: String,
}

impl From<ScanRecord> for ScanView {
    fn from(r: ScanRecord) -> Self {
        ScanView {
            id: r.id,
            order_id: r.order_id,
            sha256: r.sha256,
            media_type: r.media_type,
            size_bytes: r.size_bytes,
            created_at: r.created_at,
            created_by: r.created_by,
        }
    }
}

pub struct ScanContent {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl App {
    fn scan_path(&self, sha256: &str) -> PathBuf {
        self.config
            .data_dir
            .join("scans")
            .join(&sha256[..2])
            .join(sha256)
    }

    /// Attaches a scan (PDF, PNG or JPEG by content) to an order.
    pub async fn attach_scan(
        &self,
        actor: &Actor,
        order_id: i64,
        declared_type: Option<&str>,
        bytes: &[u8],
    ) -> AppResult<ScanView> {
        actor.require(Permission::OrderWrite)?;
        let kind = check_scan(bytes, declared_type).map_err(|e| invalid(&e, "", "scan"))?;
        let sha = hex::encode(Sha256::digest(bytes));
        let mut tx = self.store.begin().await?;
        if tx.order_by_id(order_id).await?.is_none() {
            return Err(AppError::NotFound { entity: "order" });
        }
        // The file first (write to a temporary name, then rename: a reader never sees half a
        // file); a rolled-back transaction leaves at worst an unreferenced file.
        let path = self.scan_path(&sha);
        if tokio::fs::metadata(&path).await.is_err() {
            let dir = path.parent().map(PathBuf::from).unwrap_or_default();
            let io = |e: std::io::Error| AppError::Internal(format!("storing scan: {e}"));
            tokio::fs::create_dir_all(&dir).await.map_err(io)?;
            let tmp = dir.join(format!("{sha}.{}.tmp", std::process::id()));
            tokio::fs::write(&tmp, bytes).await.map_err(io)?;
            tokio::fs::rename(&tmp, &path).await.map_err(io)?;
        }
        let mut r = ScanRecord {
            id: 0,
            order_id,
            sha256: sha,
            media_type: kind.media_type().to_owned(),
            size_bytes: bytes.len() as i64,
            created_at: self.now(),
            created_by: actor.username.clone(),
        };
        r.id = tx.insert_scan(&r).await?;
        tx.audit(self.entry(
            actor,
            "order.scan_attach",
            "order",
            order_id,
            None,
            Some(json!({"scan_id": r.id, "sha256": r.sha256, "media_type": r.media_type, "size_bytes": r.size_bytes})),
            None,
        ));
        tx.commit().await?;
        Ok(r.into())
    }

    pub async fn order_scans(&self, actor: &Actor, order_id: i64) -> AppResult<Vec<ScanView>> {
        actor.require(Permission::OrderRead)?;
        if self.store.order_by_id(order_id).await?.is_none() {
            return Err(AppError::NotFound { entity: "order" });
        }
        Ok(self
            .store
            .scans_of_order(order_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The scan's bytes, checked against their SHA-256. Recorded in the access log.
    pub async fn scan_content(&self, actor: &Actor, scan_id: i64) -> AppResult<ScanContent> {
        actor.require(Permission::OrderRead)?;
        let r = self
            .store
            .scan_by_id(scan_id)
            .await?
            .ok_or(AppError::NotFound { entity: "scan" })?;
        let order = self
            .store
            .order_by_id(r.order_id)
            .await?
            .ok_or(AppError::NotFound { entity: "order" })?;
        let bytes = tokio::fs::read(self.scan_path(&r.sha256))
            .await
            .map_err(|e| AppError::Internal(format!("reading scan {scan_id}: {e}")))?;
        if hex::encode(Sha256::digest(&bytes)) != r.sha256 {
            return Err(AppError::Internal(format!(
                "scan {scan_id} does not match its SHA-256"
            )));
        }
        self.store
            .record_access(&self.access(
                actor,
                "order.scan_read",
                "scan",
                scan_id,
                vec![order.patient_id],
            ))
            .await?;
        Ok(ScanContent {
            media_type: r.media_type,
            bytes,
        })
    }
}
