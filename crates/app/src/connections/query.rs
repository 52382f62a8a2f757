//! Host query: an analyzer scans a rack and asks which tests each specimen needs; the answer
//! names them in the instrument's own codes (only the tests it runs, not yet resulted).

use std::collections::HashMap;

use aliquot_domain::auth::Permission;

use super::Protocol;
use crate::{Actor, App, AppError, AppResult};

/// One specimen's work for the asking instrument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOrder {
    pub accession: String,
    /// The patient's MRN (echoed back in the instrument's results, then checked).
    pub patient_id: String,
    pub family_name: String,
    pub given_name: String,
    /// `S` (stat), `A` (asap) or `R` (routine), as ASTM O-6 writes it.
    pub priority: String,
    /// The instrument's codes of the tests still to do.
    pub tests: Vec<String>,
}

impl App {
    /// What the instrument named `sender` should run on each of `accessions` (unknown tubes,
    /// tubes not in the lab and tubes with nothing for it are left out: the answer for them is
    /// "no information"). The patients shown are access-logged as read by the instrument.
    pub async fn host_query(
        &self,
        protocol: Protocol,
        sender: &str,
        accessions: &[String],
    ) -> AppResult<Vec<HostOrder>> {
        let Some(instrument) = self
            .store
            .instrument_by_sender(protocol.as_str(), sender)
            .await?
            .filter(|i| i.retired_at.is_none())
        else {
            return Err(AppError::NotFound {
                entity: "instrument",
            });
        };
        let actor = Actor::instrument(&instrument.code, protocol);
        actor.require(Permission::OrderRead)?;
        let mut codes: HashMap<String, Vec<String>> = HashMap::new();
        for c in self.store.instrument_test_codes(instrument.id).await? {
            codes.entry(c.test_code).or_default().push(c.code);
        }
        let mut out = Vec::new();
        let mut patients = Vec::new();
        for accession in accessions.iter().take(200) {
            let Some(spec) = self.store.specimen_by_accession(accession.trim()).await? else {
                continue;
            };
            if !matches!(
                spec.status.as_str(),
                "received" | "in_process" | "processed" | "stored"
            ) {
                continue;
            }
            let Some(order) = self.store.order_by_id(spec.order_id).await? else {
                continue;
            };
            if order.status != "active" {
                continue;
            }
            let mut tests: Vec<String> = self
                .store
                .tests_of_order(order.id)
                .await?
                .into_iter()
                .filter(|t| t.specimen_id == spec.id && t.status == "ordered")
                .filter_map(|t| codes.get(&t.test_code).and_then(|c| c.first().cloned()))
                .collect();
            tests.sort();
            tests.dedup();
            if tests.is_empty() {
                continue;
            }
            let Some(patient) = self.store.patient_by_id(order.patient_id).await? else {
                continue;
            };
            patients.push(patient.id);
            out.push(HostOrder {
                accession: spec.accession,
                patient_id: patient.mrn,
                family_name: patient.family_name,
                given_name: patient.given_name,
                priority: match order.priority.as_str() {
                    "stat" => "S",
                    "asap" => "A",
                    _ => "R",
                }
                .to_owned(),
                tests,
            });
        }
        if !patients.is_empty() {
            patients.sort_unstable();
            patients.dedup();
            self.store
                .record_access(&self.access(
                    &actor,
                    "instrument.host_query",
                    "instrument",
                    &instrument.code,
                    patients,
                ))
                .await?;
        }
        Ok(out)
    }
}
