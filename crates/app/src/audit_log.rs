//! Reading and verifying the audit trail and the access log.

use aliquot_domain::auth::Permission;
use aliquot_store::{AccessRecord, AuditRecord, ChainReport};

use crate::{Actor, App, AppResult};

impl App {
    pub async fn audit_events(
        &self,
        actor: &Actor,
        after: i64,
        limit: i64,
        entity: Option<(&str, &str)>,
    ) -> AppResult<Vec<AuditRecord>> {
        actor.require(Permission::AuditRead)?;
        Ok(self
            .store
            .audit_events(after, limit.clamp(1, 1000), entity)
            .await?)
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
    pub async fn verify_audit(&self, actor: &Actor) -> AppResult<ChainReport> {
        actor.require(Permission::AuditRead)?;
        Ok(self.store.verify_audit_chain().await?)
    }
}
