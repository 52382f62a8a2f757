//! Observation: a released result. Read, and search by patient (required), code (LOINC or the
//! lab's code), date (collection time) and category (`laboratory`), newest first with keyset
//! paging. Numeric values keep their written decimals ("5.0" stays 5.0) and censored values
//! carry a comparator; interpretation uses the v3 codes; the reference range is the interval
//! that was in force at collection.

use std::str::FromStr;

use aliquot_app::{Actor, ReleasedResultSearch, ReleasedResultView};
use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::params::Params;
use super::patient::not_found_as;
use super::{
    FhirError, FhirResult, LOINC, Resource, TEST_CODE_SYSTEM, UCUM, instant, patient_ref, searchset,
};
use crate::AppState;

const PARAMS: &[&str] = &["patient", "subject", "code", "date", "category"];
pub const CATEGORY_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
/// The CLIA certificate numbers' identifier system (CMS's OID).
pub const CLIA_SYSTEM: &str = "urn:oid:2.16.840.1.113883.4.7";
const INTERPRETATION_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";

pub async fn read_observation(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let id = super::numeric_id(&id, "Observation")?;
    let r = state
        .app
        .released_result(&actor, id)
        .await
        .map_err(|e| not_found_as(e, "Observation"))?;
    Ok(Resource::of(&observation(&r)).into_response())
}

pub async fn search_observations(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    RawQuery(raw): RawQuery,
) -> FhirResult<Response> {
    let params = Params::parse(raw.as_deref(), PARAMS)?;
    let patient_id = params.patient()?.ok_or_else(|| {
        FhirError::invalid(
            "patient",
            "search observations of one patient: give patient or subject",
        )
    })?;
    let count = params.count(aliquot_app::RELEASED_PAGE_MAX)?;
    let before_id = params.cursor()?;
    let tz = state.app.lab_timezone().await?;
    let (collected_from, collected_before) = params.date_range("date", &tz)?;
    let mut tests = Vec::new();
    let mut nothing = false;
    let codes = params.tokens("code")?;
    for (system, code) in &codes {
        match system.as_deref() {
            None | Some(LOINC) | Some(TEST_CODE_SYSTEM) => tests.push(code.clone()),
            Some(_) => {}
        }
    }
    if !codes.is_empty() && tests.is_empty() {
        nothing = true;
    }
    for (system, code) in params.tokens("category")? {
        let ours = matches!(system.as_deref(), None | Some(CATEGORY_SYSTEM));
        if !(ours && code == "laboratory") {
            nothing = true;
        }
    }
    let mut found = if nothing {
        // A code system or category the lab does not use matches nothing; the patient must
        // still be one the caller may see.
        state
            .app
            .patient(&actor, patient_id)
            .await
            .map_err(|e| not_found_as(e, "Patient"))?;
        Vec::new()
    } else {
        state
            .app
            .released_results(
                &actor,
                ReleasedResultSearch {
                    patient_id,
                    tests,
                    collected_from,
                    collected_before,
                    before_id,
                    limit: count + 1,
                },
            )
            .await
            .map_err(|e| not_found_as(e, "Patient"))?
    };
    let more = i64::try_from(found.len()).unwrap_or(i64::MAX) > count;
    found.truncate(usize::try_from(count).unwrap_or(0));
    let next = more
        .then(|| found.last().map(|r| params.with_cursor(r.result.id)))
        .flatten();
    let entries = found
        .iter()
        .map(|r| (r.result.id.to_string(), Resource::of(&observation(r))))
        .collect();
    Ok(searchset(
        "Observation",
        &params.query(),
        entries,
        None,
        next,
    ))
}

/// A FHIR `Quantity` whose value is written exactly as the lab reported it.
#[derive(Serialize)]
pub struct Quantity {
    value: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comparator: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
}

#[derive(Serialize)]
struct Range {
    #[serde(skip_serializing_if = "Option::is_none")]
    low: Option<Quantity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    high: Option<Quantity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

/// An Observation: everything but the exact decimals as JSON, those typed.
#[derive(Serialize)]
pub struct Observation {
    #[serde(flatten)]
    base: Map<String, Value>,
    #[serde(rename = "valueQuantity", skip_serializing_if = "Option::is_none")]
    value_quantity: Option<Quantity>,
    #[serde(rename = "referenceRange", skip_serializing_if = "Vec::is_empty")]
    reference_range: Vec<Range>,
}

/// A decimal as FHIR writes it (`-?(0|[1-9][0-9]*)(\.[0-9]+)?`), keeping its scale.
pub fn decimal(text: &str) -> Option<Box<RawValue>> {
    let t = text.trim();
    if t.is_empty() || t.contains(['e', 'E']) {
        return None;
    }
    let d = Decimal::from_str(t).ok()?;
    RawValue::from_string(d.to_string()).ok()
}

/// A value with its comparator split off (`<0.5` → (`<`, `0.5`)).
fn censored(value: &str) -> (Option<&'static str>, &str) {
    let v = value.trim();
    for c in ["<=", ">=", "<", ">"] {
        if let Some(rest) = v.strip_prefix(c) {
            return (Some(c), rest.trim());
        }
    }
    (None, v)
}

fn quantity(value: &str, units: Option<&str>) -> Option<Quantity> {
    let (comparator, number) = censored(value);
    Some(Quantity {
        value: decimal(number)?,
        comparator,
        unit: units.map(str::to_owned),
        system: units.map(|_| UCUM),
        code: units.map(str::to_owned),
    })
}

fn interpretation(flags: &[String]) -> Value {
    let coding: Vec<Value> = flags
        .iter()
        .filter_map(|f| {
            let display = match f.as_str() {
                "L" => "Low",
                "H" => "High",
                "LL" => "Critical low",
                "HH" => "Critical high",
                "A" => "Abnormal",
                "AA" => "Critical abnormal",
                "N" => "Normal",
                _ => return None,
            };
            Some(json!({"coding": [{"system": INTERPRETATION_SYSTEM, "code": f, "display": display}]}))
        })
        .collect();
    if coding.is_empty() {
        json!([{"coding": [{"system": INTERPRETATION_SYSTEM, "code": "N", "display": "Normal"}]}])
    } else {
        json!(coding)
    }
}

/// The CodeableConcept of a test: its LOINC code when it has one, the lab's code, its name.
pub fn test_code(code: &str, name: &str, loinc: Option<&str>) -> Value {
    let mut coding = Vec::new();
    if let Some(l) = loinc {
        coding.push(json!({"system": LOINC, "code": l, "display": name}));
    }
    coding.push(json!({"system": TEST_CODE_SYSTEM, "code": code, "display": name}));
    json!({"coding": coding, "text": name})
}

pub fn observation_status(status: &str) -> &'static str {
    match status {
        "corrected" => "corrected",
        "released" => "final",
        "not_performed" => "cancelled",
        "held" => "preliminary",
        _ => "unknown",
    }
}

pub fn observation(r: &ReleasedResultView) -> Observation {
    let res = &r.result;
    let mut base = Map::new();
    base.insert("resourceType".into(), json!("Observation"));
    base.insert("id".into(), json!(res.id.to_string()));
    base.insert("meta".into(), json!({"versionId": res.version.to_string()}));
    base.insert(
        "basedOn".into(),
        json!([{"reference": format!("ServiceRequest/{}-{}", r.order_id, res.test_code)}]),
    );
    base.insert("status".into(), json!(observation_status(&res.status)));
    base.insert(
        "category".into(),
        json!([{"coding": [{"system": CATEGORY_SYSTEM, "code": "laboratory", "display": "Laboratory"}]}]),
    );
    base.insert(
        "code".into(),
        test_code(&res.test_code, &r.test_name, r.loinc.as_deref()),
    );
    base.insert("subject".into(), patient_ref(r.patient_id));
    if let Some(c) = res.collected_at {
        base.insert("effectiveDateTime".into(), json!(instant(c)));
    }
    if let Some(t) = res.released_at {
        base.insert("issued".into(), json!(instant(t)));
    }
    base.insert(
        "specimen".into(),
        json!({"reference": format!("Specimen/{}", r.accession)}),
    );
    let mut value_quantity = None;
    match res.kind.as_str() {
        "numeric" => match quantity(&res.value, res.units.as_deref()) {
            Some(q) => value_quantity = Some(q),
            None => {
                base.insert("valueString".into(), json!(res.value));
            }
        },
        "coded" => {
            base.insert("valueCodeableConcept".into(), json!({"text": res.value}));
        }
        _ => {
            base.insert("valueString".into(), json!(res.value));
        }
    }
    // A sent-out test: the reference laboratory that performed it, contained (its name,
    // address and CLIA number as they stood when the result came back).
    if let Some(p) = &res.performing_lab {
        let mut org = json!({"resourceType": "Organization", "id": "performer", "name": p.name});
        if !p.clia.is_empty() {
            org["identifier"] = json!([{"system": CLIA_SYSTEM, "value": p.clia}]);
        }
        if !p.address.is_empty() {
            org["address"] = json!([{"text": p.address}]);
        }
        base.insert("contained".into(), json!([org]));
        base.insert(
            "performer".into(),
            json!([{"reference": "#performer", "type": "Organization", "display": p.name}]),
        );
    }
    base.insert("interpretation".into(), interpretation(&res.flags));
    let mut notes = Vec::new();
    if let Some(c) = &res.comment {
        notes.push(json!({"text": c}));
    }
    if let Some(d) = &res.dilution {
        notes.push(json!({"text": format!("Diluted {d}")}));
    }
    if !notes.is_empty() {
        base.insert("note".into(), json!(notes));
    }
    let reference_range = res
        .reference_interval
        .as_ref()
        .map(|i| Range {
            low: i
                .low
                .as_deref()
                .and_then(|l| quantity(l, res.units.as_deref())),
            high: i
                .high
                .as_deref()
                .and_then(|h| quantity(h, res.units.as_deref())),
            text: Some(i.text.clone()).filter(|t| !t.is_empty()),
        })
        .into_iter()
        .collect();
    Observation {
        base,
        value_quantity,
        reference_range,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_their_scale_and_censored_values_their_comparator() {
        // (value, comparator, JSON number)
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("5.0", None, Some("5.0")),
            ("4.10", None, Some("4.10")),
            ("0.5", None, Some("0.5")),
            (".5", None, Some("0.5")),
            ("-3", None, Some("-3")),
            ("<0.5", Some("<"), Some("0.5")),
            ("> 500", Some(">"), Some("500")),
            (">=1000", Some(">="), Some("1000")),
            ("<=2", Some("<="), Some("2")),
            ("1e3", None, None),
            ("positive", None, None),
            ("", None, None),
        ];
        for (value, comparator, number) in cases {
            let q = quantity(value, Some("mmol/L"));
            assert_eq!(q.as_ref().map(|q| q.value.get()), *number, "{value}");
            if let Some(q) = q {
                assert_eq!(q.comparator, *comparator, "{value}");
                let json = serde_json::to_string(&q).unwrap();
                assert!(
                    json.contains(&format!("\"value\":{}", number.unwrap())),
                    "{json}"
                );
            }
        }
    }

    #[test]
    fn flags_become_v3_interpretation_codes() {
        let code = |flags: &[&str]| {
            let v = interpretation(&flags.iter().map(|f| (*f).to_owned()).collect::<Vec<_>>());
            v.as_array()
                .unwrap()
                .iter()
                .map(|c| c["coding"][0]["code"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(code(&[]), ["N"]);
        assert_eq!(code(&["H"]), ["H"]);
        assert_eq!(code(&["LL"]), ["LL"]);
        assert_eq!(code(&["HH"]), ["HH"]);
        assert_eq!(code(&["A"]), ["A"]);
    }
}
