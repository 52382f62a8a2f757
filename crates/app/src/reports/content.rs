//! The report's content: display text built from the store (see the template's header for
//! the shape). Nothing here reads the clock: the same rows give the same document.

use std::collections::BTreeMap;

use aliquot_domain::catalog::ContainerType;
use aliquot_store::{
    CriticalCallRecord, PatientRecord, ResultRecord, ResultVersionRecord, SpecimenRecord,
};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::catalog::definition;
use crate::results::Body;
use crate::{App, AppError, AppResult};

/// The newest results a cumulative report shows.
const CUMULATIVE_LIMIT: i64 = 2000;

/// An order's report content before it is issued.
pub(super) struct Built {
    /// `{"lab": …, "report": …}` without the issue details (version, issue time).
    pub content: Value,
    /// `preliminary`, `final` or `corrected`.
    pub status: &'static str,
}

/// A time in the lab's zone, to the minute, with the zone's abbreviation.
pub(crate) fn show_time(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

pub(super) fn opt_time(t: Option<Timestamp>, tz: &TimeZone) -> String {
    t.map_or_else(|| "—".to_owned(), |t| show_time(t, tz))
}

/// "Family, Given Middle", as registered (NFC), never re-cased.
fn patient_name(p: &PatientRecord) -> String {
    match &p.middle_name {
        Some(m) if !m.is_empty() => format!("{}, {} {}", p.family_name, p.given_name, m),
        _ => format!("{}, {}", p.family_name, p.given_name),
    }
}

pub(super) fn sex_text(code: &str) -> String {
    match code {
        "F" | "female" => "Female".into(),
        "M" | "male" => "Male".into(),
        "O" | "other" => "Other".into(),
        "U" | "unknown" => "Unknown".into(),
        "A" => "Ambiguous".into(),
        "N" => "Not applicable".into(),
        other => other.to_owned(),
    }
}

/// Age on `at` (in the lab's calendar) from an ISO birth date: years, or months under two,
/// or days under a month.
fn age_text(birth_date: &str, at: Timestamp, tz: &TimeZone) -> String {
    let Ok(born) = birth_date.parse::<jiff::civil::Date>() else {
        return "—".into();
    };
    let on = at.to_zoned(tz.clone()).date();
    let Ok(span) = born.until((jiff::Unit::Year, on)) else {
        return "—".into();
    };
    let (years, months, days) = (
        i32::from(span.get_years()),
        span.get_months(),
        span.get_days(),
    );
    if years >= 2 {
        format!("{years} years")
    } else if years * 12 + months >= 1 {
        format!("{} months", years * 12 + months)
    } else {
        format!("{days} days")
    }
}

pub(super) fn title_case(code: &str) -> String {
    code.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn rejection_text(code: &str) -> String {
    match code {
        "qns" => "quantity not sufficient".into(),
        "iv_contamination" => "IV fluid contamination".into(),
        other => other.replace('_', " "),
    }
}

fn value_with_units(value: &str, units: Option<&str>) -> String {
    match units {
        Some(u) if !u.is_empty() => format!("{value} {u}"),
        _ => value.to_owned(),
    }
}

/// "Name, address, CLIA number" of a reference laboratory (the parts it has).
fn performing_text(p: &crate::results::PerformingLab) -> String {
    let mut parts = vec![p.name.clone()];
    if !p.address.is_empty() {
        parts.push(p.address.clone());
    }
    if !p.clia.is_empty() {
        parts.push(format!("CLIA {}", p.clia));
    }
    parts.join(", ")
}

fn critical_note(call: &CriticalCallRecord, tz: &TimeZone) -> String {
    match call.called_at {
        Some(at) => format!(
            "Critical value called to {} ({}) by {} at {}{}.",
            call.notified_name.as_deref().unwrap_or("—"),
            call.notified_role.as_deref().unwrap_or("—"),
            call.called_by.as_deref().unwrap_or("—"),
            show_time(at, tz),
            if call.read_back == Some(true) {
                ", read back"
            } else {
                ""
            }
        ),
        None => format!(
            "Critical value: notification of the ordering provider pending (due {}).",
            show_time(call.due_at, tz)
        ),
    }
}

struct Row {
    department: String,
    json: Value,
}

impl App {
    /// The lab's block: name, address and CLIA number from the settings.
    pub(crate) async fn lab_block(&self) -> AppResult<Value> {
        let get = async |key: &str, default: &str| -> AppResult<String> {
            Ok(self
                .store
                .setting(key)
                .await?
                .map(|s| s.value)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned()))
        };
        Ok(json!({
            "name": get("lab.name", "Aliquot laboratory").await?,
            "address": get("lab.address", "(address not set)").await?,
            "clia": get("lab.clia", "(not set)").await?,
            "phone": self.store.setting("lab.phone").await?.map(|s| s.value),
        }))
    }

    /// Builds an order's report content from the store.
    pub(super) async fn report_content(&self, order_id: i64) -> AppResult<Built> {
        let tz = self.lab_timezone().await?;
        let lab = self.lab_block().await?;
        let order = self
            .store
            .order_by_id(order_id)
            .await?
            .ok_or(AppError::NotFound { entity: "order" })?;
        let patient = self
            .store
            .patient_by_id(order.patient_id)
            .await?
            .ok_or(AppError::NotFound { entity: "patient" })?;
        let provider = self.store.provider_by_id(order.provider_id).await?;
        let location = self.store.location_by_id(order.location_id).await?;
        let mut specimens = self.store.specimens_of_order(order_id).await?;
        specimens.sort_by(|a, b| {
            (a.draw_rank, &a.container, a.id).cmp(&(b.draw_rank, &b.container, b.id))
        });
        let tests = self.store.tests_of_order(order_id).await?;
        let results = self.store.results_of_order(order_id).await?;
        let versions = self.store.result_versions_of_order(order_id).await?;
        let calls = self.store.critical_calls_of_order(order_id).await?;

        let lab_name = lab["name"].as_str().unwrap_or_default().to_owned();
        let lab_clia = lab["clia"].as_str().unwrap_or_default().to_owned();
        let mut performing = vec![format!("{lab_name}, CLIA {lab_clia}")];

        // Specimens: type, container, collection, receipt, condition.
        let containers = ContainerType::defaults();
        let mut specimen_rows = Vec::new();
        for s in specimens.iter().filter(|s| s.parent_or_self()) {
            specimen_rows.push(self.specimen_row(s, &containers, &tz).await?);
        }
        let accession_of: BTreeMap<i64, &str> = specimens
            .iter()
            .map(|s| (s.id, s.accession.as_str()))
            .collect();

        // Tests, grouped by department.
        let mut rows = Vec::new();
        let mut corrections = Vec::new();
        let mut pending = 0usize;
        let mut corrected = false;
        let mut signoffs: Vec<String> = Vec::new();
        for t in &tests {
            let def = match self.store.catalog_by_code(&t.test_code).await? {
                Some(c) => Some(definition(&c)?),
                None => None,
            };
            let name = def
                .as_ref()
                .map_or_else(|| t.test_code.clone(), |d| d.name.clone());
            let department = def
                .as_ref()
                .and_then(|d| d.department.clone())
                .map_or_else(|| "Other".to_owned(), |d| title_case(&d));
            let result = results.iter().find(|r| r.order_test_id == t.id);
            // The laboratory that performed the test: the reference laboratory a result as
            // received names (below), else the catalogue's.
            let received_from = result
                .map(|r| Body::parse(&r.body))
                .transpose()?
                .and_then(|b| b.performing_lab);
            if received_from.is_none()
                && let Some(lab) = def.as_ref().and_then(|d| d.performing_lab.clone())
                && !performing.contains(&lab)
            {
                performing.push(lab);
            }
            let accession = accession_of
                .get(&t.specimen_id)
                .copied()
                .unwrap_or_default();
            let mut row = json!({
                "name": name, "code": t.test_code, "value": "", "units": "", "interval": "",
                "flags": "", "abnormal": false, "critical": false, "accession": accession,
                "notes": [],
            });
            let (status, text) = match (t.status.as_str(), result.map(|r| r.status.as_str())) {
                ("cancelled", _) => ("cancelled", "Cancelled"),
                (_, Some("released")) => ("final", "Final"),
                (_, Some("corrected")) => ("corrected", "Corrected"),
                (_, Some("not_performed")) => ("not_performed", "Not performed"),
                _ => ("pending", "Pending"),
            };
            row["status"] = json!(status);
            row["status_text"] = json!(text);
            if status == "pending" {
                pending += 1;
            }
            if let Some(r) = result.filter(|_| status == "final" || status == "corrected") {
                let b = Body::parse(&r.body)?;
                let mut notes = Vec::new();
                let critical = b.flags.iter().any(|f| f == "LL" || f == "HH");
                row["value"] = json!(b.value);
                row["units"] = json!(b.units.clone().unwrap_or_default());
                row["interval"] = json!(
                    b.interval
                        .as_ref()
                        .map(|i| i.text.clone())
                        .unwrap_or_default()
                );
                row["flags"] = json!(b.flags.join(" "));
                row["abnormal"] = json!(!b.flags.is_empty());
                row["critical"] = json!(critical);
                if let Some(d) = &b.dilution {
                    notes.push(format!(
                        "Diluted {d}; the result is corrected for the dilution."
                    ));
                }
                if b.calculated {
                    notes.push("Calculated from other results of this order.".to_owned());
                }
                if let Some(c) = &b.comment {
                    notes.push(format!("Comment: {c}"));
                }
                if let Some(call) = calls
                    .iter()
                    .filter(|c| c.result_id == r.id)
                    .max_by_key(|c| c.id)
                {
                    notes.push(critical_note(call, &tz));
                }
                if status == "corrected" {
                    corrected = true;
                    for c in self.corrections_of(r, &versions, &tz)? {
                        notes.push(format!(
                            "Corrected {} by {}: previously reported {}. Reason: {}",
                            c["at"].as_str().unwrap_or_default(),
                            c["by"].as_str().unwrap_or_default(),
                            c["previous"].as_str().unwrap_or_default(),
                            c["reason"].as_str().unwrap_or_default(),
                        ));
                        let mut c = c;
                        c["test"] = json!(name);
                        corrections.push(c);
                    }
                }
                // A sent-out test's result as received names the laboratory that performed it
                // (CLIA 42 CFR 493.1291(i)), as it stood when the result came back.
                if let Some(p) = &b.performing_lab {
                    let lab = performing_text(p);
                    notes.push(format!("Performed by {lab}."));
                    if !performing.contains(&lab) {
                        performing.push(lab);
                    }
                } else if let Some(lab) = def.as_ref().and_then(|d| d.performing_lab.clone()) {
                    notes.push(format!("Performed by {lab}."));
                }
                // A test that needs a pathologist names who signed it off, in what role, and
                // when (of a corrected result: who signed the correction off).
                if let Some(so) = &b.signed_off {
                    let who = format!("{} ({}) at {}", so.name, so.role, show_time(so.at, &tz));
                    notes.push(format!("Signed off by {who}."));
                    signoffs.push(format!("{name}: {who}"));
                }
                row["notes"] = json!(notes);
            }
            rows.push(Row {
                department,
                json: row,
            });
        }
        let mut departments: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for r in rows {
            departments.entry(r.department).or_default().push(r.json);
        }
        let departments: Vec<Value> = departments
            .into_iter()
            .map(|(name, tests)| json!({"name": name, "tests": tests}))
            .collect();

        let status = if corrected {
            "corrected"
        } else if pending == 0 {
            "final"
        } else {
            "preliminary"
        };
        let collected = specimens.iter().filter_map(|s| s.collected_at).min();
        let report = json!({
            "status": status.to_uppercase(),
            "patient": {
                "name": patient_name(&patient),
                "mrn": patient.mrn,
                "birth_date": patient.birth_date,
                "age": age_text(&patient.birth_date, collected.unwrap_or(order.created_at), &tz),
                "sex": sex_text(&patient.sex),
            },
            "order": {
                "id": order.id.to_string(),
                "placer": order.placer_order_number,
                "priority": title_case(&order.priority),
                "ordered": show_time(order.created_at, &tz),
            },
            "provider": provider.map_or_else(|| "—".to_owned(), |p| format!(
                "{}, {} (NPI {})", p.family_name, p.given_name, p.npi
            )),
            "location": location.map_or_else(|| "—".to_owned(), |l| format!("{} ({})", l.name, l.code)),
            "specimens": specimen_rows,
            "departments": departments,
            "corrections": corrections,
            "performing": performing,
            "signoff": if signoffs.is_empty() { Value::Null } else { json!(signoffs.join("; ")) },
        });
        Ok(Built {
            content: json!({"lab": lab, "report": report}),
            status,
        })
    }

    async fn specimen_row(
        &self,
        s: &SpecimenRecord,
        containers: &[ContainerType],
        tz: &TimeZone,
    ) -> AppResult<Value> {
        let events = self.store.specimen_events(s.id).await?;
        let received = events.iter().find(|e| e.kind == "receive").map(|e| e.at);
        let rejection = events.iter().rev().find(|e| e.kind == "reject").map(|e| {
            let d: Value = serde_json::from_str(&e.details).unwrap_or_default();
            let reason = rejection_text(d["reason"].as_str().unwrap_or_default());
            match d["comment"].as_str().filter(|c| !c.trim().is_empty()) {
                Some(c) => format!("{reason} ({c}); recollection requested"),
                None => format!("{reason}; recollection requested"),
            }
        });
        let condition = match s.status.as_str() {
            "rejected" => "Rejected",
            "planned" | "labelled" => "Not collected",
            "collected" | "in_transit" | "dispatched" => "Not yet received",
            "cancelled" => "Cancelled",
            _ => "Acceptable",
        };
        let source = containers
            .iter()
            .find(|c| c.code.as_str() == s.container)
            .map_or_else(|| s.container.clone(), |c| c.name.clone());
        Ok(json!({
            "accession": s.accession,
            "type": title_case(&s.specimen_type),
            "source": source,
            "collected": opt_time(s.collected_at, tz),
            "received": opt_time(received, tz),
            "condition": condition,
            "rejection": if s.status == "rejected" { rejection } else { None },
        }))
    }

    /// Each correction of a result: the value it replaced, when, by whom and why.
    fn corrections_of(
        &self,
        r: &ResultRecord,
        versions: &[ResultVersionRecord],
        tz: &TimeZone,
    ) -> AppResult<Vec<Value>> {
        let mine: Vec<&ResultVersionRecord> =
            versions.iter().filter(|v| v.result_id == r.id).collect();
        let mut out = Vec::new();
        for (i, v) in mine.iter().enumerate() {
            if v.status != "corrected" {
                continue;
            }
            // The version it replaced: the latest released or corrected one before it.
            let Some(prev) = mine[..i]
                .iter()
                .rev()
                .find(|p| p.status == "released" || p.status == "corrected")
            else {
                continue;
            };
            let (pb, nb) = (Body::parse(&prev.body)?, Body::parse(&v.body)?);
            let flags = |b: &Body| {
                if b.flags.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", b.flags.join(" "))
                }
            };
            out.push(json!({
                "previous": format!("{}{}", value_with_units(&pb.value, pb.units.as_deref()), flags(&pb)),
                "current": format!("{}{}", value_with_units(&nb.value, nb.units.as_deref()), flags(&nb)),
                "at": show_time(v.at, tz),
                "by": v.by_user,
                "reason": v.reason.clone().unwrap_or_default(),
            }));
        }
        Ok(out)
    }

    /// A patient's cumulative report: `{"kind": "cumulative", …}` and its date (the newest
    /// release shown, else the patient's registration).
    pub(super) async fn cumulative_content(
        &self,
        patient_id: i64,
    ) -> AppResult<(Value, Timestamp)> {
        let tz = self.lab_timezone().await?;
        let lab = self.lab_block().await?;
        let patient = self
            .store
            .patient_by_id(patient_id)
            .await?
            .ok_or(AppError::NotFound { entity: "patient" })?;
        let results = self
            .store
            .released_results_of_patient(patient_id, CUMULATIVE_LIMIT)
            .await?;
        let mut by_test: BTreeMap<String, (String, String, Vec<Value>)> = BTreeMap::new();
        let mut newest = patient.created_at;
        let mut first: Option<Timestamp> = None;
        let mut last: Option<Timestamp> = None;
        let mut previous: BTreeMap<String, Decimal> = BTreeMap::new();
        for r in &results {
            let b = Body::parse(&r.body)?;
            let released = r.released_at.unwrap_or(r.updated_at);
            newest = newest.max(released).max(r.updated_at);
            if let Some(c) = r.collected_at {
                first = Some(first.map_or(c, |f| f.min(c)));
                last = Some(last.map_or(c, |l| l.max(c)));
            }
            if !by_test.contains_key(&r.test_code) {
                let name = match self.store.catalog_by_code(&r.test_code).await? {
                    Some(c) => definition(&c)?.name,
                    None => r.test_code.clone(),
                };
                by_test.insert(
                    r.test_code.clone(),
                    (name, b.units.clone().unwrap_or_default(), Vec::new()),
                );
            }
            let Some(entry) = by_test.get_mut(&r.test_code) else {
                continue;
            };
            let number = b.value.parse::<Decimal>().ok();
            let trend = match (number, previous.get(&r.test_code)) {
                (Some(n), Some(p)) if n > *p => "rising",
                (Some(n), Some(p)) if n < *p => "falling",
                (Some(_), Some(_)) => "unchanged",
                _ => "",
            };
            if let Some(n) = number {
                previous.insert(r.test_code.clone(), n);
            }
            entry.2.push(json!({
                "collected": opt_time(r.collected_at, &tz),
                "value": if r.status == "corrected" { format!("{} (corrected)", b.value) } else { b.value.clone() },
                "flags": b.flags.join(" "),
                "abnormal": !b.flags.is_empty(),
                "critical": b.flags.iter().any(|f| f == "LL" || f == "HH"),
                "interval": b.interval.map(|i| i.text).unwrap_or_default(),
                "status": r.status,
                "order": r.order_id.to_string(),
                "trend": trend,
            }));
        }
        let tests: Vec<Value> = by_test
            .into_values()
            .map(|(name, units, points)| json!({"name": name, "units": units, "points": points}))
            .collect();
        let period = match (first, last) {
            (Some(f), Some(l)) => format!(
                "Collected {} to {}",
                f.to_zoned(tz.clone()).strftime("%Y-%m-%d"),
                l.to_zoned(tz.clone()).strftime("%Y-%m-%d")
            ),
            _ => "No released results".to_owned(),
        };
        let document = json!({
            "kind": "cumulative",
            "title": format!("Cumulative report, patient {}", patient.mrn),
            "lab": lab,
            "reports": [],
            "cumulative": {
                "patient": {
                    "name": patient_name(&patient),
                    "mrn": patient.mrn,
                    "birth_date": patient.birth_date,
                    "age": age_text(&patient.birth_date, newest, &tz),
                    "sex": sex_text(&patient.sex),
                },
                "period": period,
                "issued": format!("results released through {}", show_time(newest, &tz)),
                "tests": tests,
            },
        });
        Ok((document, newest))
    }
}

trait Shown {
    /// Aliquots are not listed as specimens of the report (their parent is).
    fn parent_or_self(&self) -> bool;
}

impl Shown for SpecimenRecord {
    fn parent_or_self(&self) -> bool {
        !self.accession.contains('-')
    }
}
