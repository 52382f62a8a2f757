//! A test's result rules as a document a laboratory director reads and changes (JSON, decimals
//! as strings so nothing passes through floating point), turned into the domain's
//! [`ResultRules`] and reference-interval rows. Every change is a new version, kept with its
//! reason, and audited; reference intervals already in force are closed, never rewritten.

use aliquot_domain::auth::Permission;
use aliquot_domain::results::convert::Analyte;
use aliquot_domain::results::interval::{
    AgeBound, IntervalRow, IntervalSex, check_interval_change,
};
use aliquot_domain::results::rules::{
    Consistency, CriticalAction, DeltaMode, DeltaRule, IndexLimits, Limits, ResultRules,
};
use aliquot_domain::results::value::parse_numeric;
use aliquot_store::{ResultRuleVersionRecord, ResultRulesRecord};
use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::catalog::catalog_key;
use crate::patients::invalid;
use crate::{Actor, App, AppError, AppResult, require_reason};

/// A low and/or high limit, as decimal strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<String>,
}

/// A delta-check rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaDoc {
    /// `absolute`, `percent` (of the previous value) or `rate_per_day`.
    pub mode: String,
    pub limit: String,
    /// The look-back window between collections.
    pub window_hours: u32,
}

/// Serum-index limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hemolysis: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icterus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lipemia: Option<u32>,
}

/// A consistency check against another test of the same order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyDoc {
    /// `not_above` or `not_below`.
    pub kind: String,
    /// The other test's code.
    pub test: String,
}

/// One reference-interval row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntervalDoc {
    /// `F` or `M`; absent for both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<String>,
    /// Half-open age band: `age_from` ≤ age < `age_to`, e.g. `48h` (hours of life), `15d`,
    /// `6m`, `19y`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specimen_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// RFC 3339.
    pub effective_from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_to: Option<String>,
}

/// A test's result rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultRulesDoc {
    /// For unit conversion: `glucose`, `creatinine`, `cholesterol`, `triglycerides`,
    /// `calcium`, `urea_nitrogen`, `bilirubin`, `hemoglobin`, `albumin`, `total_protein`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyte: Option<String>,
    /// The analytical measurement range of the reading.
    #[serde(default)]
    pub reportable: LimitsDoc,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_dilution: Option<String>,
    /// Inclusive critical limits.
    #[serde(default)]
    pub critical: LimitsDoc,
    /// `hold` (default) or `release_and_call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_action: Option<String>,
    /// Physiologically implausible outside these.
    #[serde(default)]
    pub plausible: LimitsDoc,
    /// Whether results may be released without review.
    #[serde(default)]
    pub autoverify: bool,
    #[serde(default)]
    pub autoverify_limits: LimitsDoc,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaDoc>,
    #[serde(default)]
    pub indices: IndexDoc,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub normal_answers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consistency: Vec<ConsistencyDoc>,
    #[serde(default)]
    pub requires_pathologist: bool,
    /// Autoverification suspended for this test.
    #[serde(default)]
    pub suspended: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_intervals: Vec<IntervalDoc>,
    /// For a calculated test: the formula and the tests it is computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calculation: Option<CalculationDoc>,
}

/// A calculated test's formula and inputs (input name → test code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalculationDoc {
    /// `egfr_ckd_epi_2021` (input `creatinine`, mg/dL), `anion_gap` (`sodium`, `chloride`,
    /// `bicarbonate`), `ldl_nih2` (`total_cholesterol`, `hdl_cholesterol`, `triglycerides`),
    /// `corrected_calcium` (`calcium`, `albumin`).
    pub formula: String,
    pub inputs: std::collections::BTreeMap<String, String>,
}

/// The formulas, each with its inputs' names.
pub(crate) const FORMULAS: &[(&str, &[&str])] = &[
    ("egfr_ckd_epi_2021", &["creatinine"]),
    ("anion_gap", &["sodium", "chloride", "bicarbonate"]),
    (
        "ldl_nih2",
        &["total_cholesterol", "hdl_cholesterol", "triglycerides"],
    ),
    ("corrected_calcium", &["calcium", "albumin"]),
];

/// The rules of a test, parsed.
#[derive(Debug, Clone, Default)]
pub(crate) struct ParsedRules {
    pub rules: ResultRules,
    pub intervals: Vec<IntervalRow>,
    pub analyte: Option<Analyte>,
    pub suspended: bool,
}

/// A limit or factor: a plain number as labs write it (the domain's `parse_numeric`), without
/// a comparator.
fn dec(field: &str, v: &Option<String>) -> AppResult<Option<Decimal>> {
    v.as_deref()
        .map(|s| {
            parse_numeric(s)
                .ok()
                .filter(|n| n.comparator.is_none())
                .map(|n| n.value)
                .ok_or_else(|| {
                    AppError::invalid(field, "decimal", format!("{s:?} is not a decimal number"))
                })
        })
        .transpose()
}

fn limits(field: &str, l: &LimitsDoc) -> AppResult<Limits> {
    let low = dec(&format!("{field}.low"), &l.low)?;
    let high = dec(&format!("{field}.high"), &l.high)?;
    if let (Some(a), Some(b)) = (low, high)
        && a > b
    {
        return Err(AppError::invalid(
            &format!("{field}.low"),
            "low_above_high",
            "the low limit is above the high limit",
        ));
    }
    Ok(Limits::new(low, high))
}

fn timestamp(field: &str, s: &str) -> AppResult<Timestamp> {
    s.parse::<Timestamp>().map_err(|_| {
        AppError::invalid(field, "timestamp", format!("{s:?} is not an RFC 3339 time"))
    })
}

fn interval_row(i: usize, d: &IntervalDoc) -> AppResult<IntervalRow> {
    let f = |name: &str| format!("reference_intervals[{i}].{name}");
    let age = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(AgeBound::parse)
            .transpose()
            .map_err(|e| invalid(&e, "", &f(name)).with_field(&f(name)))
    };
    let row = IntervalRow {
        sex: d
            .sex
            .as_deref()
            .map(IntervalSex::parse)
            .transpose()
            .map_err(|e| invalid(&e, "", "sex").with_field(&f("sex")))?,
        age_from: age("age_from", &d.age_from)?,
        age_to: age("age_to", &d.age_to)?,
        specimen_type: d.specimen_type.clone(),
        method: d.method.clone(),
        low: dec(&f("low"), &d.low)?,
        high: dec(&f("high"), &d.high)?,
        text: d.text.clone(),
        effective_from: timestamp(&f("effective_from"), &d.effective_from)?,
        effective_to: d
            .effective_to
            .as_deref()
            .map(|t| timestamp(&f("effective_to"), t))
            .transpose()?,
    };
    row.validate().map_err(|e| {
        let field = f(e.field().unwrap_or("low"));
        invalid(&e, "", "low").with_field(&field)
    })?;
    Ok(row)
}

impl ResultRulesDoc {
    /// Parses the document into the domain's rules (every error names its field).
    pub(crate) fn parse(&self, version: i64) -> AppResult<ParsedRules> {
        let analyte = self
            .analyte
            .as_deref()
            .map(Analyte::parse)
            .transpose()
            .map_err(|e| invalid(&e, "", "analyte"))?;
        let critical_action = match self.critical_action.as_deref() {
            None | Some("hold") => CriticalAction::Hold,
            Some("release_and_call") => CriticalAction::ReleaseAndCall,
            Some(_) => {
                return Err(AppError::invalid(
                    "critical_action",
                    "critical_action",
                    "`hold` or `release_and_call`",
                ));
            }
        };
        let delta = self
            .delta
            .as_ref()
            .map(|d| {
                let mode = DeltaMode::parse(&d.mode).ok_or_else(|| {
                    AppError::invalid(
                        "delta.mode",
                        "delta_mode",
                        "`absolute`, `percent` or `rate_per_day`",
                    )
                })?;
                let limit = dec("delta.limit", &Some(d.limit.clone()))?.unwrap_or_default();
                if limit <= Decimal::ZERO || d.window_hours == 0 || d.window_hours > 24 * 366 {
                    return Err(AppError::invalid(
                        "delta",
                        "delta_rule",
                        "a positive limit and a window of 1 hour to a year",
                    ));
                }
                Ok(DeltaRule {
                    mode,
                    limit,
                    window: SignedDuration::from_hours(i64::from(d.window_hours)),
                })
            })
            .transpose()?;
        let consistency = self
            .consistency
            .iter()
            .enumerate()
            .map(|(i, c)| match c.kind.as_str() {
                "not_above" => Ok(Consistency::NotAbove(c.test.trim().to_ascii_uppercase())),
                "not_below" => Ok(Consistency::NotBelow(c.test.trim().to_ascii_uppercase())),
                _ => Err(AppError::invalid(
                    &format!("consistency[{i}].kind"),
                    "consistency_kind",
                    "`not_above` or `not_below`",
                )),
            })
            .collect::<AppResult<Vec<_>>>()?;
        let max_dilution = dec("max_dilution", &self.max_dilution)?;
        if max_dilution.is_some_and(|m| m <= Decimal::ONE) {
            return Err(AppError::invalid(
                "max_dilution",
                "max_dilution",
                "the largest validated dilution is a factor above 1",
            ));
        }
        if let Some(c) = &self.calculation {
            let Some((_, names)) = FORMULAS.iter().find(|(f, _)| *f == c.formula) else {
                return Err(AppError::invalid(
                    "calculation.formula",
                    "formula",
                    format!(
                        "one of {}",
                        FORMULAS
                            .iter()
                            .map(|(f, _)| *f)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            };
            let given: Vec<&str> = c.inputs.keys().map(String::as_str).collect();
            let mut wanted: Vec<&str> = names.to_vec();
            wanted.sort_unstable();
            if given != wanted {
                return Err(AppError::invalid(
                    "calculation.inputs",
                    "formula_inputs",
                    format!(
                        "{} needs exactly the inputs {}",
                        c.formula,
                        wanted.join(", ")
                    ),
                ));
            }
        }
        let intervals = self
            .reference_intervals
            .iter()
            .enumerate()
            .map(|(i, d)| interval_row(i, d))
            .collect::<AppResult<Vec<_>>>()?;
        Ok(ParsedRules {
            rules: ResultRules {
                version,
                reportable: limits("reportable", &self.reportable)?,
                max_dilution,
                critical: limits("critical", &self.critical)?,
                critical_action,
                plausible: limits("plausible", &self.plausible)?,
                autoverify: self.autoverify,
                autoverify_limits: limits("autoverify_limits", &self.autoverify_limits)?,
                delta,
                indices: IndexLimits {
                    hemolysis: self.indices.hemolysis,
                    icterus: self.indices.icterus,
                    lipemia: self.indices.lipemia,
                },
                normal_answers: self.normal_answers.clone(),
                consistency,
                requires_pathologist: self.requires_pathologist,
            },
            intervals,
            analyte,
            suspended: self.suspended,
        })
    }
}

/// A test's rules with their version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRulesView {
    pub test_code: String,
    /// 0 when the test has no rules yet (every result is reviewed by a technologist).
    pub version: i64,
    pub rules: ResultRulesDoc,
    pub updated_at: Option<Timestamp>,
    pub updated_by: Option<String>,
}

/// A kept version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRulesVersionView {
    pub version: i64,
    pub rules: ResultRulesDoc,
    pub changed_at: Timestamp,
    pub changed_by: String,
    pub reason: String,
}

pub(crate) fn doc_of(r: &ResultRulesRecord) -> AppResult<ResultRulesDoc> {
    serde_json::from_str(&r.definition)
        .map_err(|e| AppError::Internal(format!("result rules {}: {e}", r.test_code)))
}

impl App {
    /// A test's result rules (`catalog.read`).
    pub async fn result_rules(&self, actor: &Actor, test: &str) -> AppResult<ResultRulesView> {
        actor.require(Permission::CatalogRead)?;
        let code = self.test_code_of(test).await?;
        Ok(match self.store.result_rules(&code).await? {
            Some(r) => ResultRulesView {
                rules: doc_of(&r)?,
                test_code: r.test_code,
                version: r.version,
                updated_at: Some(r.updated_at),
                updated_by: Some(r.updated_by),
            },
            None => ResultRulesView {
                test_code: code,
                version: 0,
                rules: ResultRulesDoc::default(),
                updated_at: None,
                updated_by: None,
            },
        })
    }

    /// Every version of a test's result rules, oldest first.
    pub async fn result_rule_versions(
        &self,
        actor: &Actor,
        test: &str,
    ) -> AppResult<Vec<ResultRulesVersionView>> {
        actor.require(Permission::CatalogRead)?;
        let code = self.test_code_of(test).await?;
        self.store
            .result_rule_versions(&code)
            .await?
            .into_iter()
            .map(|v| {
                Ok(ResultRulesVersionView {
                    rules: serde_json::from_str(&v.definition)
                        .map_err(|e| AppError::Internal(format!("result rules: {e}")))?,
                    version: v.version,
                    changed_at: v.changed_at,
                    changed_by: v.changed_by,
                    reason: v.reason,
                })
            })
            .collect()
    }

    /// Replaces a test's result rules (`result.rules_write`, the director) with a reason. The
    /// change is refused when another came first (`expected_version`), when a field is
    /// invalid, or when it would rewrite a reference interval already in force.
    pub async fn put_result_rules(
        &self,
        actor: &Actor,
        test: &str,
        expected_version: i64,
        doc: ResultRulesDoc,
        reason: Option<&str>,
    ) -> AppResult<ResultRulesView> {
        actor.require(Permission::ResultRulesWrite)?;
        let reason = require_reason(reason)?;
        let code = self.test_code_of(test).await?;
        let parsed = doc.parse(expected_version + 1)?;
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let old = tx.result_rules(&code).await?;
        let old_version = old.as_ref().map_or(0, |o| o.version);
        if old_version != expected_version {
            return Err(AppError::Conflict {
                field: Some("version".into()),
                code: "rules_changed",
                message: format!(
                    "the rules are at version {old_version}, not {expected_version}: reload them"
                ),
            });
        }
        let old_doc = old.as_ref().map(doc_of).transpose()?;
        if let Some(o) = &old_doc {
            let before = o.parse(old_version)?.intervals;
            check_interval_change(&before, &parsed.intervals, now)
                .map_err(|e| invalid(&e, "", "reference_intervals"))?;
        }
        let definition =
            serde_json::to_string(&doc).map_err(|e| AppError::Internal(e.to_string()))?;
        let record = ResultRulesRecord {
            test_code: code.clone(),
            version: expected_version + 1,
            definition: definition.clone(),
            updated_at: now,
            updated_by: actor.username.clone(),
        };
        if !tx.put_result_rules(&record).await? {
            return Err(AppError::Conflict {
                field: Some("version".into()),
                code: "rules_changed",
                message: "the rules changed meanwhile: reload them".into(),
            });
        }
        tx.insert_result_rule_version(&ResultRuleVersionRecord {
            test_code: code.clone(),
            version: record.version,
            definition,
            changed_at: now,
            changed_by: actor.username.clone(),
            reason: reason.clone(),
        })
        .await?;
        tx.audit(self.entry(
            actor,
            "result_rules.change",
            "result_rules",
            &code,
            old_doc.map(|d| json!({"version": old_version, "rules": d})),
            Some(json!({"version": record.version, "rules": doc})),
            Some(&reason),
        ));
        tx.commit().await?;
        Ok(ResultRulesView {
            test_code: code,
            version: record.version,
            rules: doc,
            updated_at: Some(now),
            updated_by: Some(actor.username.clone()),
        })
    }

    /// The catalogue code of a test named by code or LOINC.
    pub(crate) async fn test_code_of(&self, test: &str) -> AppResult<String> {
        self.store
            .catalog_by_code(&catalog_key(test))
            .await?
            .map(|r| r.code)
            .ok_or_else(|| {
                AppError::invalid("test", "unknown_test", "no such test in the catalogue")
            })
    }
}
