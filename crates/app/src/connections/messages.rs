//! The interface message log and error queue, as an interface analyst reads them. A
//! message's content (and its sender's control id) is patient data: shown only to a caller who
//! may read patients, and that read is access-logged. Everyone with `interface.manage` sees
//! what happened to it: status, counts, and each error's location, code and text.

use aliquot_domain::auth::Permission;
use aliquot_store::InterfaceMessageRecord;
use jiff::Timestamp;

use super::InboundError;
use crate::{Actor, App, AppError, AppResult};

/// Criteria of the message list.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    /// `accepted`, `error` (the error queue) or `replayed`.
    pub status: Option<String>,
    /// An instrument's code.
    pub connection: Option<String>,
    /// Page: messages with a smaller id.
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct InterfaceMessageView {
    pub id: i64,
    pub protocol: String,
    pub connection: String,
    pub message_type: String,
    pub received_at: Timestamp,
    pub status: String,
    pub posted: i64,
    pub errors: Vec<InboundError>,
    pub updated_at: Timestamp,
    pub updated_by: String,
    /// With `patient.read` only: the sender, its control id, the message and the
    /// acknowledgement as text (bytes that are not UTF-8 replaced).
    pub content: Option<MessageContent>,
}

#[derive(Debug, Clone)]
pub struct MessageContent {
    pub sender: String,
    pub control_id: String,
    pub raw: String,
    pub ack: String,
}

fn view(m: InterfaceMessageRecord, with_content: bool) -> InterfaceMessageView {
    InterfaceMessageView {
        id: m.id,
        protocol: m.protocol,
        connection: m.connection,
        message_type: m.message_type,
        received_at: m.received_at,
        status: m.status,
        posted: m.posted,
        errors: serde_json::from_str(&m.errors).unwrap_or_default(),
        updated_at: m.updated_at,
        updated_by: m.updated_by,
        content: with_content.then(|| MessageContent {
            sender: m.sender,
            control_id: m.control_id,
            raw: String::from_utf8_lossy(&m.raw).into_owned(),
            ack: String::from_utf8_lossy(&m.ack).into_owned(),
        }),
    }
}

impl App {
    /// The message log, newest first, without content (`interface.manage`).
    pub async fn list_messages(
        &self,
        actor: &Actor,
        q: MessageQuery,
    ) -> AppResult<Vec<InterfaceMessageView>> {
        actor.require(Permission::InterfaceManage)?;
        if let Some(s) = q.status.as_deref()
            && !["accepted", "error", "replayed"].contains(&s)
        {
            return Err(AppError::invalid(
                "status",
                "invalid_status",
                "`accepted`, `error` or `replayed`",
            ));
        }
        let limit = q.limit.unwrap_or(100).clamp(1, 500);
        Ok(self
            .store
            .interface_messages(
                q.status.as_deref(),
                q.connection.as_deref(),
                q.before,
                limit,
            )
            .await?
            .into_iter()
            .map(|m| view(m, false))
            .collect())
    }

    /// One message; its content only for a caller who may read patients, access-logged
    /// (`interface.manage`).
    pub async fn get_message(&self, actor: &Actor, id: i64) -> AppResult<InterfaceMessageView> {
        actor.require(Permission::InterfaceManage)?;
        let m = self
            .store
            .interface_message_by_id(id)
            .await?
            .ok_or(AppError::NotFound { entity: "message" })?;
        let with_content = actor.role.allows(Permission::PatientRead);
        if with_content {
            self.store
                .record_access(&self.access(
                    actor,
                    "interface_message.read",
                    "interface_message",
                    id,
                    Vec::new(),
                ))
                .await?;
        }
        Ok(view(m, with_content))
    }
}

/// Days an accepted message's content is kept when the setting is not set.
pub const DEFAULT_RETENTION_DAYS: i64 = 90;

impl App {
    /// Empties the content of accepted and replayed messages older than the retention
    /// (`interfaces.message_retention_days`); their key stays, so a resend is still answered
    /// and never posted twice, and the error queue is never touched. Run by the server every
    /// hour; audited when it removed anything.
    pub async fn purge_interface_messages(&self) -> AppResult<u64> {
        let days = self
            .store
            .setting("interfaces.message_retention_days")
            .await?
            .and_then(|s| s.value.parse::<i64>().ok())
            .unwrap_or(DEFAULT_RETENTION_DAYS);
        let now = self.now();
        let before = now
            .checked_sub(jiff::SignedDuration::from_hours(days * 24))
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let mut tx = self.store.begin().await?;
        let n = tx.purge_interface_messages(before, now).await?;
        if n == 0 {
            return Ok(0);
        }
        let system = Actor {
            user_id: None,
            username: "system:retention".into(),
            role: aliquot_domain::auth::Role::Admin,
            source: crate::Source::System,
            session_id: None,
        };
        tx.audit(self.entry(
            &system,
            "interface_message.purge",
            "interface_message",
            "retention",
            None,
            Some(serde_json::json!({"purged": n, "received_before": before.to_string(), "days": days})),
            None,
        ));
        tx.commit().await?;
        Ok(n)
    }
}
