use aliquot_app::Actor;
use aliquot_store::{AccessRecord, AuditRecord};
use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::json::ApiQuery;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Only events with a sequence number above this.
    pub after: Option<i64>,
    /// At most this many (1 to 1000, default 100).
    pub limit: Option<i64>,
    /// With `entity_id`: only events about this entity.
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEventDto {
    pub seq: i64,
    pub at: String,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub actor_role: Option<String>,
    pub source: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    pub reason: Option<String>,
    /// The value before, any JSON (`null` when there was none). For a caller without the
    /// entity's read permission, `{"redacted": true, "fields": [...], "sha256": "…"}`.
    #[schema(value_type = Option<Value>)]
    pub old_value: Option<serde_json::Value>,
    /// The value after, as `old_value`.
    #[schema(value_type = Option<Value>)]
    pub new_value: Option<serde_json::Value>,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditRecord> for AuditEventDto {
    fn from(r: AuditRecord) -> Self {
        AuditEventDto {
            seq: r.seq,
            at: r.entry.at.to_string(),
            actor_id: r.entry.actor_id,
            actor_name: r.entry.actor_name,
            actor_role: r.entry.actor_role,
            source: r.entry.source,
            action: r.entry.action,
            entity_type: r.entry.entity_type,
            entity_id: r.entry.entity_id,
            reason: r.entry.reason,
            old_value: r.entry.old_value,
            new_value: r.entry.new_value,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// The audit trail, oldest first.
#[utoipa::path(get, path = "/api/v1/audit/events", tag = "audit", params(EventQuery),
    responses((status = 200, body = [AuditEventDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> ApiResult<Json<Vec<AuditEventDto>>> {
    let entity = match (&q.entity_type, &q.entity_id) {
        (Some(t), Some(i)) => Some((t.as_str(), i.as_str())),
        _ => None,
    };
    let rows = state
        .app
        .audit_events(&actor, q.after.unwrap_or(0), q.limit.unwrap_or(100), entity)
        .await?;
    Ok(Json(rows.into_iter().map(AuditEventDto::from).collect()))
}

#[derive(Serialize, ToSchema)]
pub struct ChainBreakDto {
    pub seq: i64,
    pub problem: String,
}

#[derive(Serialize, ToSchema)]
pub struct VerifyDto {
    /// The audit chain and the access log's chain both hold.
    pub intact: bool,
    pub rows: i64,
    pub head_seq: i64,
    pub head_hash: String,
    pub first_break: Option<ChainBreakDto>,
    /// The access log's chain (the rows written since it was chained).
    pub access_log: AccessChainDto,
}

#[derive(Serialize, ToSchema)]
pub struct AccessChainDto {
    pub intact: bool,
    pub rows: i64,
    pub head_seq: i64,
    pub head_hash: String,
    pub first_break: Option<ChainBreakDto>,
}

/// Walk the audit hash chain and the access log's chain, and name the first broken link of
/// each.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = VerifyDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> ApiResult<Json<VerifyDto>> {
    let r = state.app.verify_audit(&actor, None).await?;
    let a = state.app.verify_access_log(&actor).await?;
    Ok(Json(VerifyDto {
        intact: r.is_intact() && a.is_intact(),
        rows: r.rows,
        head_seq: r.head_seq,
        head_hash: r.head_hash,
        first_break: r.first_break.map(|b| ChainBreakDto {
            seq: b.seq,
            problem: b.problem,
        }),
        access_log: AccessChainDto {
            intact: a.is_intact(),
            rows: a.rows,
            head_seq: a.head_seq,
            head_hash: a.head_hash,
            first_break: a.first_break.map(|b| ChainBreakDto {
                seq: b.seq,
                problem: b.problem,
            }),
        },
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AccessDto {
    pub id: i64,
    pub at: String,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub source: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    pub patient_ids: Vec<i64>,
}

impl From<AccessRecord> for AccessDto {
    fn from(r: AccessRecord) -> Self {
        AccessDto {
            id: r.id,
            at: r.at.to_string(),
            actor_id: r.actor_id,
            actor_name: r.actor_name,
            source: r.source,
            action: r.action,
            entity_type: r.entity_type,
            entity_id: r.entity_id,
            patient_ids: r.patient_ids,
        }
    }
}

/// Who read which patient's data, and when.
#[utoipa::path(get, path = "/api/v1/audit/access-log", tag = "audit", params(PageQuery),
    responses((status = 200, body = [AccessDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn access_log(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Vec<AccessDto>>> {
    let rows = state
        .app
        .access_log(&actor, q.after.unwrap_or(0), q.limit.unwrap_or(100))
        .await?;
    Ok(Json(rows.into_iter().map(AccessDto::from).collect()))
}
