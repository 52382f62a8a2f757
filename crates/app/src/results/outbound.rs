//! Results leave for the EMR: a result released or corrected is queued for every active
//! destination in the transaction that releases it (see `connections::outbox`).
//!
//! **One message per order.** A destination gets one message per order for the results
//! released together, not one per result: the results of one order released in one batch
//! share one outbox row ([`merge_per_order`]), and a result released while its order's newest
//! row for the destination is still pending and was never attempted joins that row's
//! document ([`App::queue_outbox_rows`], used by every path: a calculated result released
//! right after its inputs, a verification or a second batch before the sender came by). A row that was attempted once is never
//! changed again (a resend is the same bytes), so a later result then gets a row of its own,
//! behind it: order per order is kept, and nothing is sent twice or lost. A result already in
//! the row (its corrected version, say) starts a new row too.

use std::collections::HashMap;

use aliquot_store::{OutboxRecord, ResultRecord, Tx};
use jiff::Timestamp;
use rand::RngCore;

use super::Body;
use super::entry::Context;
use crate::connections::{
    OUTBOX_WORKER, OutboundDocument, OutboundOrder, OutboundPatient, OutboundProvider,
    OutboundResult, OutboundSpecimen,
};
use crate::{App, AppError, AppResult};

fn parse(document: &str) -> AppResult<OutboundDocument> {
    serde_json::from_str(document).map_err(|e| AppError::Internal(format!("outbox document: {e}")))
}

fn serialize(document: &OutboundDocument) -> AppResult<String> {
    serde_json::to_string(document).map_err(|e| AppError::Internal(format!("outbox document: {e}")))
}

/// Adds `new`'s results to `into` (one order's message); false, changing nothing, when one
/// of them is already there (a later version of a result is a message of its own).
fn join(into: &mut OutboundDocument, new: OutboundDocument) -> bool {
    if new
        .results
        .iter()
        .any(|r| into.results.iter().any(|x| x.result_id == r.result_id))
    {
        return false;
    }
    into.results.extend(new.results);
    true
}

/// The rows of one transaction with one row per destination and order: later rows of an
/// order join the first one's document, in the order given (see the module doc).
pub(crate) fn merge_per_order(rows: Vec<OutboxRecord>) -> AppResult<Vec<OutboxRecord>> {
    let mut out: Vec<(OutboxRecord, Option<OutboundDocument>)> = Vec::with_capacity(rows.len());
    let mut open: HashMap<(i64, i64), usize> = HashMap::new();
    for row in rows {
        let key = (row.destination_id, row.order_id);
        if let Some(&i) = open.get(&key) {
            let (first, doc) = &mut out[i];
            if doc.is_none() {
                *doc = Some(parse(&first.document)?);
            }
            if let Some(d) = doc.as_mut()
                && join(d, parse(&row.document)?)
            {
                continue;
            }
        }
        open.insert(key, out.len());
        out.push((row, None));
    }
    out.into_iter()
        .map(|(mut row, doc)| {
            if let Some(d) = doc {
                row.document = serialize(&d)?;
            }
            Ok(row)
        })
        .collect()
}

/// A fresh message control id: `AQ` and 20 hex digits (HL7 MSH-10 allows 199 characters).
fn control_id() -> String {
    let mut bytes = [0u8; 10];
    rand::rng().fill_bytes(&mut bytes);
    format!("AQ{}", hex::encode_upper(bytes))
}

impl App {
    /// Queues `result` (just released or corrected, stored inside `tx`) for every active
    /// destination. No destination, no row.
    pub(crate) async fn queue_outbound(
        &self,
        tx: &mut Box<dyn Tx>,
        ctx: &Context,
        result: &ResultRecord,
    ) -> AppResult<()> {
        let destinations = tx.active_destination_ids().await?;
        let rows = self.outbox_rows(tx, ctx, result, &destinations).await?;
        self.queue_outbox_rows(tx, rows).await
    }

    /// Writes the outbox rows of one transaction, one message per order and destination:
    /// merged per order ([`merge_per_order`]), each joining its order's newest row when that
    /// is pending and was never attempted, else inserted (in one multi-row statement). One
    /// indexed lookup per order and destination; nothing without rows.
    pub(crate) async fn queue_outbox_rows(
        &self,
        tx: &mut Box<dyn Tx>,
        rows: Vec<OutboxRecord>,
    ) -> AppResult<()> {
        let mut new = Vec::with_capacity(rows.len());
        for row in merge_per_order(rows)? {
            if let Some(last) = tx
                .last_outbox_of_order(row.destination_id, row.order_id)
                .await?
                && last.status == "pending"
                && last.attempts == 0
            {
                let mut doc = parse(&last.document)?;
                if join(&mut doc, parse(&row.document)?)
                    && tx
                        .update_outbox_document(last.id, &serialize(&doc)?)
                        .await?
                {
                    continue;
                }
            }
            new.push(row);
        }
        match new.as_slice() {
            [] => {}
            [one] => {
                tx.insert_outbox(one).await?;
            }
            _ => tx.insert_outbox_many(&new).await?,
        }
        Ok(())
    }

    /// The outbox rows of `result` for `destinations` (none without destinations).
    pub(crate) async fn outbox_rows(
        &self,
        tx: &mut Box<dyn Tx>,
        ctx: &Context,
        result: &ResultRecord,
        destinations: &[i64],
    ) -> AppResult<Vec<OutboxRecord>> {
        if destinations.is_empty() {
            return Ok(Vec::new());
        }
        let body = Body::parse(&result.body)?;
        let critical_note = if body.flags.iter().any(|f| f == "LL" || f == "HH") {
            let call = tx
                .critical_calls_of_order(result.order_id)
                .await?
                .into_iter()
                .filter(|c| c.result_id == result.id)
                .max_by_key(|c| c.id);
            Some(match call {
                Some(c) if c.called_at.is_some() => format!(
                    "Critical value called to {} ({}) by {} at {}{}",
                    c.notified_name.unwrap_or_default(),
                    c.notified_role.unwrap_or_default(),
                    c.called_by.unwrap_or_default(),
                    c.called_at.map(|t| t.to_string()).unwrap_or_default(),
                    if c.read_back == Some(true) {
                        ", read back"
                    } else {
                        ""
                    },
                ),
                _ => "Critical value: the ordering provider is being called".to_owned(),
            })
        } else {
            None
        };
        let performing_lab = match ctx.def.performing_lab.clone() {
            Some(l) => l,
            None => self
                .store
                .setting("lab.name")
                .await?
                .map(|s| s.value)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "Aliquot laboratory".into()),
        };
        let ordering_provider = self
            .store
            .provider_by_id(ctx.order.provider_id)
            .await?
            .map(|p| OutboundProvider {
                npi: p.npi,
                family_name: p.family_name,
                given_name: p.given_name,
            });
        let document = OutboundDocument {
            patient: OutboundPatient {
                mrn: ctx.patient.mrn.clone(),
                family_name: ctx.patient.family_name.clone(),
                given_name: ctx.patient.given_name.clone(),
                middle_name: ctx.patient.middle_name.clone(),
                birth_date: ctx.patient.birth_date.clone(),
                sex: ctx.patient.sex.clone(),
            },
            order: OutboundOrder {
                order_id: ctx.order.id,
                placer_order_number: ctx.order.placer_order_number.clone(),
                accession: ctx.specimen.accession.clone(),
                specimen_type: ctx.specimen.specimen_type.clone(),
                collected_at: ctx.specimen.collected_at,
                priority: ctx.order.priority.clone(),
                ordering_provider,
            },
            results: vec![OutboundResult {
                result_id: result.id,
                version: result.version,
                test_code: result.test_code.clone(),
                loinc: ctx.def.loinc.clone(),
                name: ctx.def.name.clone(),
                value: body.value,
                kind: body.kind,
                units: body.units,
                reference_interval: body.interval.map(|i| i.text),
                flags: body.flags,
                status: if result.status == "corrected" {
                    "corrected".into()
                } else {
                    "final".into()
                },
                released_at: result.released_at,
                performing_lab,
                critical_note,
                comment: body.comment,
                specimen: Some(OutboundSpecimen {
                    accession: ctx.specimen.accession.clone(),
                    specimen_type: ctx.specimen.specimen_type.clone(),
                    collected_at: ctx.specimen.collected_at,
                }),
            }],
        };
        let document = serialize(&document)?;
        let now: Timestamp = self.now();
        let mut rows = Vec::with_capacity(destinations.len());
        for &destination_id in destinations {
            rows.push(OutboxRecord {
                id: 0,
                destination_id,
                order_id: result.order_id,
                result_id: result.id,
                result_version: result.version,
                control_id: control_id(),
                document: document.clone(),
                status: "pending".into(),
                attempts: 0,
                refusals: 0,
                next_attempt_at: now,
                last_error: None,
                message: None,
                ack: None,
                created_at: now,
                sent_at: None,
                updated_at: now,
                updated_by: OUTBOX_WORKER.into(),
            });
        }
        Ok(rows)
    }
}
