//! A shipment's manifest as a printable document (issue 14 item 4): what goes in the box to
//! the reference laboratory. The same facts as the JSON and CSV manifest
//! ([`App::shipment_manifest`], which checks the permission and writes the access log), as
//! display text in the lab's zone for the template's `manifest` kind.

use aliquot_domain::catalog::ContainerType;
use serde_json::json;

use super::content::{opt_time, sex_text, show_time, title_case};
use super::{ReportDocument, json_text};
use crate::{Actor, App, AppResult};

impl App {
    /// A shipment's manifest, ready to render as a PDF (`specimen.process`; access-logged as
    /// `shipment.manifest`, like the JSON one). Its date is when the shipment left (else when
    /// it was packed), so the same shipment in the same state gives the same bytes.
    pub async fn shipment_manifest_document(
        &self,
        actor: &Actor,
        id: i64,
    ) -> AppResult<ReportDocument> {
        let d = self.shipment_manifest(actor, id).await?;
        let tz = self.lab_timezone().await?;
        let lab = self.lab_block().await?;
        let containers = ContainerType::defaults();
        let dash = |v: &Option<String>| {
            v.as_deref()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or("—")
                .to_owned()
        };
        let items: Vec<serde_json::Value> = d
            .items
            .iter()
            .map(|i| {
                json!({
                    "accession": i.accession,
                    "patient": format!("{}, {}", i.family_name, i.given_name),
                    "mrn": i.mrn,
                    "birth_date": i.birth_date,
                    "sex": sex_text(&i.sex),
                    "type": title_case(&i.specimen_type),
                    "container": containers
                        .iter()
                        .find(|c| c.code.as_str() == i.container)
                        .map_or_else(|| i.container.clone(), |c| c.name.clone()),
                    "collected": opt_time(i.collected_at, &tz),
                    "tests": i.tests.iter().map(|t| json!({
                        "code": t.code,
                        "name": t.name,
                        "reference_code": if t.reference_code.is_empty() { "—" } else { t.reference_code.as_str() },
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let tests: usize = d.items.iter().map(|i| i.tests.len()).sum();
        let created = d.shipped_at.unwrap_or(d.packed_at).max(d.packed_at);
        let to = &d.reference_lab;
        let document = json!({
            "kind": "manifest",
            "title": format!("Shipment manifest {}", d.manifest),
            "lab": lab,
            "reports": [],
            "manifest": {
                "number": d.manifest,
                "status": title_case(&d.status),
                "to": {
                    "code": to.code,
                    "name": to.name,
                    "address": to.address,
                    "clia": if to.clia.is_empty() { "—" } else { to.clia.as_str() },
                },
                "temperature": title_case(&d.temperature),
                "packed": show_time(d.packed_at, &tz),
                "packed_by": d.packed_by,
                "courier": dash(&d.courier),
                "tracking": dash(&d.tracking),
                "shipped": opt_time(d.shipped_at, &tz),
                "items": items,
                "counts": format!(
                    "{} {}, {} {}",
                    d.items.len(),
                    if d.items.len() == 1 { "tube" } else { "tubes" },
                    tests,
                    if tests == 1 { "test" } else { "tests" },
                ),
            },
        });
        Ok(ReportDocument {
            document: json_text(&document)?,
            ident: format!(
                "shipment-{}-{}-{}",
                d.manifest,
                d.status,
                created.as_microsecond()
            ),
            created,
            version: 0,
            status: "manifest".into(),
        })
    }
}
