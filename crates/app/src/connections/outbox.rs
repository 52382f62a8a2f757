//! Outbound results (issue 12): the destinations released and corrected results are sent to,
//! and the transactional outbox the sender worker (crates/connect `outbox.rs`) drains.
//!
//! A result released or corrected writes, in the same transaction, one outbox row per active
//! destination holding an [`OutboundDocument`]: what to report, protocol-neutral (this crate
//! knows no HL7; the worker encodes the document at send time, with the row's control id as
//! its message control id). Each destination's rows are sent strictly in id order; the head
//! of a queue blocks the rows behind it until it is acknowledged, or, refused too often and
//! `failed`, until an analyst retries or skips it (audited). A row is marked sent only with
//! the acknowledgement that names its control id.
//!
//! The worker's own bookkeeping (claims, attempts, back-off, sent) is not audited: it is
//! delivery state kept on the row itself, with the message and the acknowledgement.

use std::time::Duration;

use aliquot_domain::auth::Permission;
use aliquot_store::{DestinationRecord, OutboxRecord, StoreError};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::short_text as text;
use crate::{Actor, App, AppError, AppResult, require_reason};

/// Who the worker's bookkeeping names.
pub const OUTBOX_WORKER: &str = "system:outbox";

/// What one outbound message reports, as stored in the outbox (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundDocument {
    pub patient: OutboundPatient,
    pub order: OutboundOrder,
    pub results: Vec<OutboundResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundPatient {
    pub mrn: String,
    pub family_name: String,
    pub given_name: String,
    pub middle_name: Option<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// Administrative sex code (`F`, `M`, `O`, `U`, …).
    pub sex: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundOrder {
    /// The lab's order id (filler order number).
    pub order_id: i64,
    /// The placer's order number, when the order came with one.
    pub placer_order_number: Option<String>,
    /// The tube of the message's first result.
    pub accession: String,
    pub specimen_type: String,
    pub collected_at: Option<Timestamp>,
    pub priority: String,
    /// The ordering provider (HL7 OBR-16 and ORC-12); absent in rows written before it was
    /// kept.
    #[serde(default)]
    pub ordering_provider: Option<OutboundProvider>,
}

/// A provider as the message names them (HL7 XCN).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundProvider {
    pub npi: String,
    pub family_name: String,
    pub given_name: String,
}

/// The tube a result was measured on, when the message reports results of several tubes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundSpecimen {
    pub accession: String,
    pub specimen_type: String,
    pub collected_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundResult {
    pub result_id: i64,
    pub version: i64,
    pub test_code: String,
    pub loinc: Option<String>,
    pub name: String,
    /// As reported (`<0.5` for a censored value).
    pub value: String,
    /// `numeric`, `coded` or `text`.
    pub kind: String,
    pub units: Option<String>,
    /// The reference interval in force at collection, as shown.
    pub reference_interval: Option<String>,
    /// `L`, `H`, `LL`, `HH`, `A`.
    pub flags: Vec<String>,
    /// `final` or `corrected`.
    pub status: String,
    pub released_at: Option<Timestamp>,
    pub performing_lab: String,
    /// The critical-value call, when the result is critical.
    pub critical_note: Option<String>,
    pub comment: Option<String>,
    /// Its tube (the order's `accession` when absent: rows written before one message could
    /// carry several tubes).
    #[serde(default)]
    pub specimen: Option<OutboundSpecimen>,
}

/// A destination as registered.
#[derive(Debug, Clone)]
pub struct DestinationInput {
    /// The lab's name for it, e.g. `EMR` (letters, digits, `-` and `_`, at most 20).
    pub code: String,
    pub name: String,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone)]
pub struct DestinationView {
    pub code: String,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub version: i64,
    pub created_at: Timestamp,
    pub created_by: String,
    pub updated_at: Timestamp,
    pub updated_by: String,
    pub retired: bool,
}

fn destination_view(r: DestinationRecord) -> DestinationView {
    DestinationView {
        code: r.code,
        name: r.name,
        host: r.host,
        port: u16::try_from(r.port).unwrap_or(0),
        version: r.version,
        created_at: r.created_at,
        created_by: r.created_by,
        updated_at: r.updated_at,
        updated_by: r.updated_by,
        retired: r.retired_at.is_some(),
    }
}

/// Criteria of the outbox list.
#[derive(Debug, Clone, Default)]
pub struct OutboxQuery {
    /// A destination's code.
    pub destination: Option<String>,
    /// `pending`, `sent`, `failed` or `skipped`.
    pub status: Option<String>,
    /// Page: rows with a smaller id.
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// An outbox row as an analyst reads it.
#[derive(Debug, Clone)]
pub struct OutboxView {
    pub id: i64,
    pub destination: String,
    pub order_id: i64,
    pub result_id: i64,
    pub result_version: i64,
    pub status: String,
    pub attempts: i64,
    pub refusals: i64,
    pub next_attempt_at: Timestamp,
    /// Why the last attempt did not succeed.
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    pub updated_by: String,
    /// With `patient.read` only (access-logged): the control id, the message as last sent and
    /// the acknowledgement (bytes that are not UTF-8 replaced).
    pub content: Option<OutboxContent>,
}

#[derive(Debug, Clone)]
pub struct OutboxContent {
    pub control_id: String,
    pub message: Option<String>,
    pub ack: Option<String>,
}

fn outbox_view(r: OutboxRecord, destination: String, with_content: bool) -> OutboxView {
    OutboxView {
        id: r.id,
        destination,
        order_id: r.order_id,
        result_id: r.result_id,
        result_version: r.result_version,
        status: r.status,
        attempts: r.attempts,
        refusals: r.refusals,
        next_attempt_at: r.next_attempt_at,
        last_error: r.last_error,
        created_at: r.created_at,
        sent_at: r.sent_at,
        updated_at: r.updated_at,
        updated_by: r.updated_by,
        content: with_content.then(|| OutboxContent {
            control_id: r.control_id,
            message: r.message.map(|m| String::from_utf8_lossy(&m).into_owned()),
            ack: r.ack.map(|a| String::from_utf8_lossy(&a).into_owned()),
        }),
    }
}

/// A destination as the sender worker connects to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundTarget {
    pub id: i64,
    pub code: String,
    pub host: String,
    pub port: u16,
}

/// A row claimed for one attempt.
#[derive(Debug, Clone)]
pub struct OutboundItem {
    pub id: i64,
    pub control_id: String,
    pub document: OutboundDocument,
    pub created_at: Timestamp,
    /// This attempt's number (from 1).
    pub attempt: i64,
    pub refusals: i64,
}

/// What the head of a destination's queue asks of the worker.
#[derive(Debug, Clone)]
pub enum OutboundNext {
    /// Nothing to send.
    Idle,
    /// The head is not due before this time (back-off, or another worker's attempt).
    Wait(Timestamp),
    /// The head was refused too often: the queue waits for an analyst.
    Blocked,
    /// Send this now.
    Send(Box<OutboundItem>),
}

/// How the worker retries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub backoff_start: Duration,
    pub backoff_max: Duration,
    /// Refusals (not transport failures) after which a row is `failed`.
    pub max_refusals: i64,
    /// How long a claimed attempt keeps the row from other workers (longer than the
    /// acknowledgement timeout).
    pub lease: Duration,
}

fn span(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// The delay before attempt `attempt + 1`: `start` doubling per attempt, at most `max`.
pub fn backoff(policy: &RetryPolicy, attempt: i64) -> Duration {
    let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    policy
        .backoff_start
        .saturating_mul(2u32.saturating_pow(exp))
        .min(policy.backoff_max)
}

const STATUSES: [&str; 4] = ["pending", "sent", "failed", "skipped"];

/// A destination's name, host and port, checked (each error names its field).
fn destination_fields(input: &DestinationInput) -> AppResult<(String, String, i64)> {
    let name = text("name", &input.name, 100)?;
    let host = text("host", &input.host, 253)?;
    if host.chars().any(char::is_whitespace) {
        return Err(AppError::invalid(
            "host",
            "invalid_host",
            "a host name or address, without spaces",
        ));
    }
    if input.port == 0 {
        return Err(AppError::invalid("port", "invalid_port", "1 to 65535"));
    }
    Ok((name, host, i64::from(input.port)))
}

impl App {
    /// Registers an outbound destination (`interface.manage`).
    pub async fn register_destination(
        &self,
        actor: &Actor,
        input: DestinationInput,
    ) -> AppResult<DestinationView> {
        actor.require(Permission::InterfaceManage)?;
        let code = input.code.trim();
        if code.is_empty()
            || code.len() > 20
            || !code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(AppError::invalid(
                "code",
                "invalid_destination_code",
                "1 to 20 letters, digits, '-' or '_'",
            ));
        }
        let (name, host, port) = destination_fields(&input)?;
        let now = self.now();
        let mut record = DestinationRecord {
            id: 0,
            code: code.to_owned(),
            name,
            host,
            port,
            version: 1,
            created_at: now,
            created_by: actor.username.clone(),
            updated_at: now,
            updated_by: actor.username.clone(),
            retired_at: None,
        };
        let mut tx = self.store.begin().await?;
        record.id = tx.insert_destination(&record).await.map_err(|e| match e {
            StoreError::Conflict(_) => AppError::Conflict {
                field: Some("code".into()),
                code: "destination_exists",
                message: "a destination with this code is already registered".into(),
            },
            other => other.into(),
        })?;
        tx.audit(self.entry(
            actor,
            "destination.register",
            "destination",
            &record.code,
            None,
            Some(json!({"name": record.name, "host": record.host, "port": record.port})),
            None,
        ));
        tx.commit().await?;
        Ok(destination_view(record))
    }

    /// Changes a destination's name, host and port, or retires it (no new message is queued
    /// for it and its sender stops; the messages already queued stay, visible, until it is
    /// brought back or an analyst skips them), over the version the caller read
    /// (`interface.manage`, with a reason; audited with the old and new values). The code,
    /// which names the destination in its messages, stays.
    pub async fn replace_destination(
        &self,
        actor: &Actor,
        code: &str,
        expected_version: i64,
        input: DestinationInput,
        retired: bool,
        reason: Option<&str>,
    ) -> AppResult<DestinationView> {
        actor.require(Permission::InterfaceManage)?;
        let reason = require_reason(reason)?;
        if !input.code.trim().is_empty() && input.code.trim() != code {
            return Err(AppError::invalid(
                "code",
                "destination_identity",
                "a destination's code is not changed; register another",
            ));
        }
        let (name, host, port) = destination_fields(&input)?;
        let mut tx = self.store.begin().await?;
        let old = tx
            .destination_by_code(code)
            .await?
            .ok_or(AppError::NotFound {
                entity: "destination",
            })?;
        let changed = |current: i64| AppError::Conflict {
            field: Some("version".into()),
            code: "destination_changed",
            message: format!(
                "the destination is at version {current}, not {expected_version}: reload it"
            ),
        };
        if old.version != expected_version {
            return Err(changed(old.version));
        }
        let now = self.now();
        let record = DestinationRecord {
            name,
            host,
            port,
            version: old.version + 1,
            updated_at: now,
            updated_by: actor.username.clone(),
            retired_at: if retired {
                old.retired_at.or(Some(now))
            } else {
                None
            },
            ..old.clone()
        };
        if !tx.update_destination(&record).await? {
            return Err(changed(old.version + 1));
        }
        let value = |r: &DestinationRecord| {
            json!({"name": r.name, "host": r.host, "port": r.port, "version": r.version,
                   "retired": r.retired_at.is_some()})
        };
        let action = match (old.retired_at.is_some(), retired) {
            (false, true) => "destination.retire",
            (true, false) => "destination.reinstate",
            _ => "destination.update",
        };
        tx.audit(self.entry(
            actor,
            action,
            "destination",
            &record.code,
            Some(value(&old)),
            Some(value(&record)),
            Some(&reason),
        ));
        tx.commit().await?;
        Ok(destination_view(record))
    }

    /// One destination (`interface.manage`).
    pub async fn get_destination(&self, actor: &Actor, code: &str) -> AppResult<DestinationView> {
        actor.require(Permission::InterfaceManage)?;
        self.store
            .destination_by_code(code)
            .await?
            .map(destination_view)
            .ok_or(AppError::NotFound {
                entity: "destination",
            })
    }

    /// Every destination with how many of its messages wait (pending) and how many were
    /// refused too often (failed) (`interface.manage`).
    pub async fn destination_queues(
        &self,
        actor: &Actor,
    ) -> AppResult<Vec<(DestinationView, i64, i64)>> {
        actor.require(Permission::InterfaceManage)?;
        let counts = self.store.outbox_queue_counts().await?;
        let count = |id: i64, status: &str| {
            counts
                .iter()
                .find(|(d, s, _)| *d == id && s == status)
                .map_or(0, |c| c.2)
        };
        Ok(self
            .store
            .destinations(false)
            .await?
            .into_iter()
            .map(|d| {
                let (pending, failed) = (count(d.id, "pending"), count(d.id, "failed"));
                (destination_view(d), pending, failed)
            })
            .collect())
    }

    /// Every destination (`interface.manage`).
    pub async fn list_destinations(&self, actor: &Actor) -> AppResult<Vec<DestinationView>> {
        actor.require(Permission::InterfaceManage)?;
        Ok(self
            .store
            .destinations(false)
            .await?
            .into_iter()
            .map(destination_view)
            .collect())
    }

    /// The outbox, newest first, without content (`interface.manage`).
    pub async fn list_outbox(&self, actor: &Actor, q: OutboxQuery) -> AppResult<Vec<OutboxView>> {
        actor.require(Permission::InterfaceManage)?;
        if let Some(s) = q.status.as_deref()
            && !STATUSES.contains(&s)
        {
            return Err(AppError::invalid(
                "status",
                "invalid_status",
                "`pending`, `sent`, `failed` or `skipped`",
            ));
        }
        let destinations = self.store.destinations(false).await?;
        let destination_id = match q.destination.as_deref() {
            None => None,
            Some(code) => Some(
                destinations
                    .iter()
                    .find(|d| d.code == code)
                    .map(|d| d.id)
                    .ok_or_else(|| {
                        AppError::invalid(
                            "destination",
                            "unknown_destination",
                            "no such destination",
                        )
                    })?,
            ),
        };
        let limit = q.limit.unwrap_or(100).clamp(1, 500);
        let code_of = |id: i64| {
            destinations
                .iter()
                .find(|d| d.id == id)
                .map(|d| d.code.clone())
                .unwrap_or_default()
        };
        Ok(self
            .store
            .outbox_list(destination_id, q.status.as_deref(), q.before, limit)
            .await?
            .into_iter()
            .map(|r| {
                let d = code_of(r.destination_id);
                outbox_view(r, d, false)
            })
            .collect())
    }

    /// One outbox row; its content only for a caller who may read patients, access-logged
    /// (`interface.manage`).
    pub async fn get_outbox(&self, actor: &Actor, id: i64) -> AppResult<OutboxView> {
        actor.require(Permission::InterfaceManage)?;
        let r = self
            .store
            .outbox_by_id(id)
            .await?
            .ok_or(AppError::NotFound {
                entity: "outbox message",
            })?;
        let destination = self.destination_code(r.destination_id).await?;
        let with_content = actor.role.allows(Permission::PatientRead);
        if with_content {
            let patients = self.store.patients_of(&[], &[r.order_id]).await?;
            self.store
                .record_access(&self.access(actor, "outbox.read", "outbox", id, patients))
                .await?;
        }
        Ok(outbox_view(r, destination, with_content))
    }

    async fn destination_code(&self, id: i64) -> AppResult<String> {
        Ok(self
            .store
            .destinations(false)
            .await?
            .into_iter()
            .find(|d| d.id == id)
            .map(|d| d.code)
            .unwrap_or_default())
    }

    /// Puts a failed row back in its queue, due now, its refusals counted afresh
    /// (`interface.manage`, audited).
    pub async fn retry_outbox(
        &self,
        actor: &Actor,
        id: i64,
        reason: Option<&str>,
    ) -> AppResult<OutboxView> {
        actor.require(Permission::InterfaceManage)?;
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        self.outbox_analyst_change(actor, id, &["failed"], "pending", "outbox.retry", reason)
            .await
    }

    /// Takes a pending or failed row out of its queue for good, with a reason: the rows
    /// behind it are sent (`interface.manage`, audited).
    pub async fn skip_outbox(
        &self,
        actor: &Actor,
        id: i64,
        reason: Option<&str>,
    ) -> AppResult<OutboxView> {
        actor.require(Permission::InterfaceManage)?;
        let reason = require_reason(reason)?;
        self.outbox_analyst_change(
            actor,
            id,
            &["pending", "failed"],
            "skipped",
            "outbox.skip",
            Some(&reason),
        )
        .await
    }

    async fn outbox_analyst_change(
        &self,
        actor: &Actor,
        id: i64,
        from: &[&str],
        to: &str,
        action: &str,
        reason: Option<&str>,
    ) -> AppResult<OutboxView> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let old = tx.outbox_by_id(id).await?.ok_or(AppError::NotFound {
            entity: "outbox message",
        })?;
        if !from.contains(&old.status.as_str()) {
            return Err(AppError::Conflict {
                field: None,
                code: "outbox_status",
                message: format!("the message is {}, not {}", old.status, from.join(" or ")),
            });
        }
        let next = OutboxRecord {
            status: to.to_owned(),
            refusals: if to == "pending" { 0 } else { old.refusals },
            next_attempt_at: now,
            updated_at: now,
            updated_by: actor.username.clone(),
            ..old.clone()
        };
        if !tx.update_outbox(&next, &old.status, old.attempts).await? {
            return Err(AppError::Conflict {
                field: None,
                code: "outbox_changed",
                message: "the message was changed meanwhile: reload it".into(),
            });
        }
        tx.audit(self.entry(
            actor,
            action,
            "outbox",
            id,
            Some(json!({"status": old.status, "attempts": old.attempts, "refusals": old.refusals})),
            Some(json!({"status": next.status})),
            reason,
        ));
        tx.commit().await?;
        let destination = self.destination_code(next.destination_id).await?;
        Ok(outbox_view(next, destination, false))
    }

    // ── the sender worker's side ──

    /// The active destinations, for the sender worker.
    pub async fn outbox_targets(&self) -> AppResult<Vec<OutboundTarget>> {
        Ok(self
            .store
            .destinations(true)
            .await?
            .into_iter()
            .map(|d| OutboundTarget {
                id: d.id,
                code: d.code,
                host: d.host,
                port: u16::try_from(d.port).unwrap_or(0),
            })
            .collect())
    }

    /// The head of a destination's queue; when it is due, claims it for one attempt.
    pub async fn outbox_next(
        &self,
        destination_id: i64,
        policy: &RetryPolicy,
    ) -> AppResult<OutboundNext> {
        let Some(head) = self.store.outbox_head(destination_id).await? else {
            return Ok(OutboundNext::Idle);
        };
        if head.status == "failed" {
            return Ok(OutboundNext::Blocked);
        }
        let now = self.now();
        if head.next_attempt_at > now {
            return Ok(OutboundNext::Wait(head.next_attempt_at));
        }
        let mut tx = self.store.begin().await?;
        let lease_until = now.saturating_add(span(policy.lease)).unwrap_or(now);
        let claimed = tx
            .claim_outbox(head.id, head.attempts, now, lease_until)
            .await?;
        // The document as claimed: a result may have joined the row (one message per order)
        // after the head was read, until this claim; from now on it never changes.
        let claimed_row = if claimed {
            tx.outbox_by_id(head.id).await?
        } else {
            None
        };
        tx.commit().await?;
        let Some(row) = claimed_row else {
            return Ok(OutboundNext::Wait(lease_until));
        };
        let document: OutboundDocument = serde_json::from_str(&row.document)
            .map_err(|e| AppError::Internal(format!("outbox document: {e}")))?;
        Ok(OutboundNext::Send(Box::new(OutboundItem {
            id: head.id,
            control_id: head.control_id,
            document,
            created_at: head.created_at,
            attempt: head.attempts + 1,
            refusals: head.refusals,
        })))
    }

    /// Marks a claimed row sent, with the message and the acknowledgement that answered it.
    /// The caller has checked that the acknowledgement names the row's control id and
    /// accepts it. False when the claim was lost meanwhile (another worker took the row over).
    pub async fn outbox_sent(
        &self,
        item: &OutboundItem,
        message: &[u8],
        ack: &[u8],
    ) -> AppResult<bool> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let Some(old) = tx.outbox_by_id(item.id).await? else {
            return Ok(false);
        };
        if old.status != "pending" || old.attempts != item.attempt {
            return Ok(false);
        }
        let next = OutboxRecord {
            status: "sent".into(),
            last_error: None,
            message: Some(message.to_vec()),
            ack: Some(ack.to_vec()),
            sent_at: Some(now),
            updated_at: now,
            updated_by: OUTBOX_WORKER.into(),
            ..old.clone()
        };
        let done = tx.update_outbox(&next, &old.status, old.attempts).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Records a claimed row's failed attempt: due again after the back-off; `refused` (the
    /// destination answered AE/AR/CE/CR) counts toward `failed`. Returns the row's status.
    pub async fn outbox_not_sent(
        &self,
        item: &OutboundItem,
        message: &[u8],
        ack: Option<&[u8]>,
        error: &str,
        refused: bool,
        policy: &RetryPolicy,
    ) -> AppResult<String> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let Some(old) = tx.outbox_by_id(item.id).await? else {
            return Ok("gone".into());
        };
        if old.status != "pending" || old.attempts != item.attempt {
            return Ok(old.status);
        }
        let refusals = old.refusals + i64::from(refused);
        let status = if refused && refusals >= policy.max_refusals {
            "failed"
        } else {
            "pending"
        };
        let delay = span(backoff(policy, old.attempts));
        let error: String = error.chars().take(500).collect();
        let next = OutboxRecord {
            status: status.into(),
            refusals,
            next_attempt_at: now.saturating_add(delay).unwrap_or(now),
            last_error: Some(error),
            message: Some(message.to_vec()),
            ack: ack.map(<[u8]>::to_vec).or(old.ack.clone()),
            updated_at: now,
            updated_by: OUTBOX_WORKER.into(),
            ..old.clone()
        };
        tx.update_outbox(&next, &old.status, old.attempts).await?;
        tx.commit().await?;
        Ok(status.into())
    }
}
