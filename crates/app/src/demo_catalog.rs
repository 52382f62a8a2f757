//! The demonstration catalogue (`data/demo_catalog.csv`): common chemistry, haematology,
//! coagulation, urinalysis, microbiology and blood-bank tests with their LOINC codes, the
//! common panels, and a send-out test. The CSV columns are the catalogue's import format.

use crate::catalog::{SpecimenAlternative, StabilityLimits, TatMinutes, TestDefinition};

/// The demo catalogue, as CSV.
pub const DEMO_CATALOG_CSV: &str = include_str!("../data/demo_catalog.csv");

/// The CSV header, in column order.
pub const CSV_COLUMNS: &[&str] = &[
    "code",
    "kind",
    "name",
    "loinc",
    "department",
    "specimen_type",
    "container",
    "min_volume_ul",
    "room_min",
    "refrigerated_min",
    "frozen_min",
    "unspun_room_min",
    "unspun_refrigerated_min",
    "special_handling",
    "result_type",
    "precision",
    "answers",
    "units",
    "reportable_low",
    "reportable_high",
    "tat_stat_min",
    "tat_asap_min",
    "tat_routine_min",
    "performing_lab",
    "components",
    "alternatives",
];

/// Why a CSV line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CsvError {
    pub line: usize,
    pub message: String,
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

fn list(s: &str) -> Vec<String> {
    s.split(';')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

fn num<T: std::str::FromStr>(s: &str, line: usize, column: &str) -> Result<Option<T>, CsvError> {
    match opt(s) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| CsvError {
            line,
            message: format!("{column}: {v:?} is not a number"),
        }),
    }
}

/// `type:CONTAINER;…`, e.g. `plasma:PST`.
fn alternatives(s: &str, line: usize) -> Result<Vec<SpecimenAlternative>, CsvError> {
    list(s)
        .into_iter()
        .map(|pair| match pair.split_once(':') {
            Some((t, c)) => Ok(SpecimenAlternative {
                specimen_type: t.trim().to_owned(),
                container: c.trim().to_owned(),
            }),
            None => Err(CsvError {
                line,
                message: format!("alternatives: {pair:?} is not specimen_type:CONTAINER"),
            }),
        })
        .collect()
}

/// Reads catalogue definitions from CSV (header line first; fields without commas; lists
/// separated by `;`). Definitions are validated when they are stored, not here.
pub fn parse_catalog_csv(text: &str) -> Result<Vec<TestDefinition>, CsvError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header: Vec<&str> = match lines.next() {
        Some((_, h)) => h.split(',').map(str::trim).collect(),
        None => return Ok(Vec::new()),
    };
    if header != CSV_COLUMNS {
        return Err(CsvError {
            line: 1,
            message: format!("the header must be: {}", CSV_COLUMNS.join(",")),
        });
    }
    let mut out = Vec::new();
    for (i, l) in lines {
        let line = i + 1;
        let f: Vec<&str> = l.split(',').collect();
        if f.len() != CSV_COLUMNS.len() {
            return Err(CsvError {
                line,
                message: format!("{} fields, expected {}", f.len(), CSV_COLUMNS.len()),
            });
        }
        out.push(TestDefinition {
            code: f[0].trim().to_owned(),
            kind: opt(f[1]),
            name: f[2].trim().to_owned(),
            loinc: opt(f[3]),
            department: opt(f[4]),
            specimen_type: opt(f[5]),
            container: opt(f[6]),
            min_volume_ul: num(f[7], line, "min_volume_ul")?,
            stability: StabilityLimits {
                room_minutes: num(f[8], line, "room_min")?,
                refrigerated_minutes: num(f[9], line, "refrigerated_min")?,
                frozen_minutes: num(f[10], line, "frozen_min")?,
                unspun_room_minutes: num(f[11], line, "unspun_room_min")?,
                unspun_refrigerated_minutes: num(f[12], line, "unspun_refrigerated_min")?,
                ..StabilityLimits::default()
            },
            special_handling: list(f[13]),
            result_type: opt(f[14]),
            precision: num(f[15], line, "precision")?,
            answers: list(f[16]),
            units: opt(f[17]),
            reportable_low: num(f[18], line, "reportable_low")?,
            reportable_high: num(f[19], line, "reportable_high")?,
            tat_minutes: TatMinutes {
                stat: num(f[20], line, "tat_stat_min")?,
                asap: num(f[21], line, "tat_asap_min")?,
                timed: None,
                routine: num(f[22], line, "tat_routine_min")?,
            },
            performing_lab: opt(f[23]),
            components: list(f[24]),
            alternatives: alternatives(f[25], line)?,
        });
    }
    Ok(out)
}

/// A limit in minutes, from minutes or from the hours of an older definition.
fn minutes(m: Option<u32>, h: Option<u32>) -> Option<String> {
    m.or(h.map(|h| h.saturating_mul(60))).map(|v| v.to_string())
}

/// Writes definitions as CSV in the import format.
pub fn catalog_csv(defs: &[TestDefinition]) -> String {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let n = |v: Option<String>| v.unwrap_or_default();
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for d in defs {
        let row = [
            d.code.clone(),
            o(&d.kind),
            d.name.clone(),
            o(&d.loinc),
            o(&d.department),
            o(&d.specimen_type),
            o(&d.container),
            n(d.min_volume_ul.map(|v| v.to_string())),
            n(minutes(d.stability.room_minutes, d.stability.room_hours)),
            n(minutes(
                d.stability.refrigerated_minutes,
                d.stability.refrigerated_hours,
            )),
            n(minutes(
                d.stability.frozen_minutes,
                d.stability.frozen_hours,
            )),
            n(d.stability.unspun_room_minutes.map(|v| v.to_string())),
            n(d.stability
                .unspun_refrigerated_minutes
                .map(|v| v.to_string())),
            d.special_handling.join(";"),
            o(&d.result_type),
            n(d.precision.map(|v| v.to_string())),
            d.answers.join(";"),
            o(&d.units),
            n(d.reportable_low.map(|v| v.to_string())),
            n(d.reportable_high.map(|v| v.to_string())),
            n(d.tat_minutes.stat.map(|v| v.to_string())),
            n(d.tat_minutes.asap.map(|v| v.to_string())),
            n(d.tat_minutes.routine.map(|v| v.to_string())),
            o(&d.performing_lab),
            d.components.join(";"),
            d.alternatives
                .iter()
                .map(|a| format!("{}:{}", a.specimen_type, a.container))
                .collect::<Vec<_>>()
                .join(";"),
        ];
        out.push_str(&row.map(|c| c.replace([',', '\n'], " ")).join(","));
        out.push('\n');
    }
    out
}

/// The demo catalogue's definitions.
pub fn demo_catalog() -> Vec<TestDefinition> {
    parse_catalog_csv(DEMO_CATALOG_CSV).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_entry_is_valid_with_a_correct_loinc_check_digit() {
        let defs = parse_catalog_csv(DEMO_CATALOG_CSV).expect("csv");
        let tests = defs.iter().filter(|d| !d.is_panel()).count();
        assert!(tests >= 40, "{tests} orderable tests");
        let bad: Vec<String> = defs
            .iter()
            .filter_map(|d| {
                d.clone()
                    .validate()
                    .err()
                    .map(|e| format!("{}: {e:?}", d.code))
            })
            .collect();
        assert!(bad.is_empty(), "{bad:#?}");
        for panel in ["CBC", "BMP", "CMP", "LIPID", "HEPATIC", "UA", "PTINR", "TS"] {
            let p = defs.iter().find(|d| d.code == panel).expect(panel);
            for c in &p.components {
                assert!(
                    defs.iter().any(|d| &d.code == c && !d.is_panel()),
                    "{panel}: {c}"
                );
            }
        }
        assert!(
            defs.iter()
                .any(|d| d.department.as_deref() == Some("send_out"))
        );
    }

    #[test]
    fn csv_round_trips() {
        let defs = demo_catalog();
        assert_eq!(parse_catalog_csv(&catalog_csv(&defs)).unwrap(), defs);
    }
}

/// The demo lab's result rules (`data/demo_result_rules.json`): reference intervals (adult
/// and CALIPER-derived paediatric bands for creatinine and ALP, DOMAIN §5.2–5.3), a typical
/// hospital critical-value list (DOMAIN §4.1), reportable ranges, delta rules (DOMAIN §3.2),
/// serum-index limits, and the calculated tests (eGFR, anion gap, LDL). Illustrative values:
/// a real lab replaces them with its verified ones.
pub const DEMO_RESULT_RULES_JSON: &str = include_str!("../data/demo_result_rules.json");

/// The demo result rules, by test code.
pub fn demo_result_rules() -> Vec<(String, crate::ResultRulesDoc)> {
    let map: std::collections::BTreeMap<String, crate::ResultRulesDoc> =
        serde_json::from_str(DEMO_RESULT_RULES_JSON).unwrap_or_default();
    map.into_iter().collect()
}

#[cfg(test)]
mod result_rules_tests {
    use super::*;

    #[test]
    fn the_demo_result_rules_parse_and_name_catalogue_tests() {
        let rules = demo_result_rules();
        assert!(rules.len() >= 30, "{}", rules.len());
        let codes: Vec<String> = demo_catalog().into_iter().map(|d| d.code).collect();
        for (code, doc) in rules {
            assert!(codes.contains(&code), "{code} is not in the demo catalogue");
            doc.parse(1).unwrap_or_else(|e| panic!("{code}: {e}"));
        }
    }
}
