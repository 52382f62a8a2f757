//! Scanned requisitions: attached to an order (audited), listed and viewed (access-logged).
//! The bytes live under `<data dir>/scans/<first two hex digits>/<SHA-256>`, outside the
//! database rows, so identical scans are stored once.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Makes `bytes` durable at `path` (content-addressed: the name is their SHA-256) before the
/// caller commits the row that names it: written to a unique temporary file in the same
/// directory, fsynced, renamed (a reader never sees half a file), and the directories whose
/// entries changed fsynced. A file already there is kept only when it holds exactly these
/// bytes (an earlier write may have been cut short by a crash), and is fsynced with its
/// directory again: another request may have renamed it a moment ago without its directory
/// being durable yet.
fn store_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("scan path without a directory"))?;
    if std::fs::read(path).is_ok_and(|existing| existing == bytes) {
        File::open(path)?.sync_all()?;
    } else {
        std::fs::create_dir_all(dir)?;
        let name = path
            .file_name()
            .ok_or_else(|| std::io::Error::other("scan path without a name"))?
            .to_string_lossy();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{name}.{}.{n}.tmp", std::process::id()));
        let written = write_synced(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
    }
    // The file's directory (the rename), and its parents up to the data directory, which
    // `create_dir_all` may just have created entries in.
    for d in dir.ancestors().take(3) {
        File::open(d)?.sync_all()?;
    }
    Ok(())
}

/// Writes a file (replacing a leftover of a crashed process) and fsyncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
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
        // The file first, durably, before the row commits (see `store_durably`); a
        // rolled-back transaction leaves at worst an unreferenced file.
        let path = self.scan_path(&sha);
        let owned = bytes.to_vec();
        tokio::task::spawn_blocking(move || store_durably(&path, &owned))
            .await
            .map_err(|e| AppError::Internal(format!("storing scan: {e}")))?
            .map_err(|e| AppError::Internal(format!("storing scan: {e}")))?;
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
        let order = self
            .store
            .order_by_id(order_id)
            .await?
            .ok_or(AppError::NotFound { entity: "order" })?;
        self.require_patient_visible(actor, order.patient_id, "order")
            .await?;
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
        self.require_patient_visible(actor, order.patient_id, "scan")
            .await?;
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
