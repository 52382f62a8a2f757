//! Results (issue 11): entry, evaluation (interval in force at collection, flags, reportable
//! range, delta check, autoverification), review and release, corrections, critical-value
//! calls, worklists and the cumulative view.
//!
//! A result is one row per ordered test holding its current version (`results`) and an
//! append-only history of every version (`result_versions`): entered, repeated, verified,
//! corrected. Its JSON body ([`Body`]) keeps the value as reported and every fact the decision
//! was made from; the rules' version is recorded with it.

mod batch;
mod calc;
mod entry;
mod group;
pub(crate) mod lists;
mod not_performed;
mod outbound;
mod review;
pub mod rules;

use aliquot_domain::catalog::ResultType;
use aliquot_store::{CriticalCallRecord, ResultRecord, ResultVersionRecord};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::catalog::TestDefinition;
use crate::{AppError, AppResult};

pub(crate) use entry::{DependentsCache, EntrySettings};
pub use entry::{ResultInput, ResultOutcome, ResultPreview};
pub(crate) use group::ResultQueue;
pub use lists::{CriticalCallView, CumulativeView, WorklistItem, WorklistView};
pub use not_performed::NotPerformedInput;
pub use review::{CorrectionInput, CriticalCallInput};
pub use rules::{
    CalculationDoc, ConsistencyDoc, DeltaDoc, IndexDoc, IntervalDoc, LimitsDoc, ResultRulesDoc,
    ResultRulesVersionView, ResultRulesView,
};

/// Why a result is held, as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonView {
    pub code: String,
    pub message: String,
}

/// The reference interval shown with a result (the one in force at collection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalView {
    pub low: Option<String>,
    pub high: Option<String>,
    pub text: String,
}

impl From<aliquot_domain::results::interval::ShownInterval> for IntervalView {
    fn from(i: aliquot_domain::results::interval::ShownInterval) -> IntervalView {
        IntervalView {
            low: i.low.map(|d| d.to_string()),
            high: i.high.map(|d| d.to_string()),
            text: i.text,
        }
    }
}

/// Serum indices as the analyzer reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndicesInput {
    #[serde(default)]
    pub hemolysis: Option<u32>,
    #[serde(default)]
    pub icterus: Option<u32>,
    #[serde(default)]
    pub lipemia: Option<u32>,
}

/// The reference laboratory that performed a sent-out test, as it stood when the result was
/// received (CLIA 42 CFR 493.1291(i): the report names it beside the result).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerformingLab {
    /// The reference laboratory's code in the registry.
    pub code: String,
    pub name: String,
    pub address: String,
    pub clia: String,
}

/// Who signed a result off (a test that needs a pathologist, DOMAIN: `result.sign_off`), as
/// they stood when they signed: the report prints it, FHIR carries it as `resultsInterpreter`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignOff {
    /// The signer's username.
    pub by: String,
    /// Their display name at the time.
    pub name: String,
    /// Their role as printed (e.g. "Laboratory director").
    pub role: String,
    pub at: Timestamp,
}

/// A result version's body (stored as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Body {
    /// As reported: the recorded dilution applied, censored at the reportable range.
    pub value: String,
    /// `numeric`, `coded` or `text`.
    pub kind: String,
    /// The reading as posted, when it differs from `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reading: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posted_units: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dilution: Option<String>,
    pub flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<IntervalView>,
    pub hold_reasons: Vec<ReasonView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instrument: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instrument_flags: Vec<String>,
    #[serde(default)]
    pub indices: IndicesInput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub rules_version: i64,
    /// Released by the rules, without review.
    pub autoverified: bool,
    /// Computed from other results (eGFR, anion gap …).
    #[serde(default)]
    pub calculated: bool,
    pub entered_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<String>,
    /// A sent-out test's result as received: the reference laboratory that performed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performing_lab: Option<PerformingLab>,
    /// The electronic signature applied to this version (release or correction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<crate::Signature>,
    /// The pathologist's sign-off of a test that requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_off: Option<SignOff>,
}

impl Body {
    pub(crate) fn parse(r: &str) -> AppResult<Body> {
        serde_json::from_str(r).map_err(|e| AppError::Internal(format!("result body: {e}")))
    }
    pub(crate) fn json(&self) -> AppResult<String> {
        serde_json::to_string(self).map_err(|e| AppError::Internal(format!("result body: {e}")))
    }
}

/// One version of a result, as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultVersionView {
    pub version: i64,
    pub status: String,
    pub value: String,
    pub units: Option<String>,
    pub flags: Vec<String>,
    pub reason: Option<String>,
    pub at: Timestamp,
    pub by: String,
    /// The electronic signature applied to this version, if any.
    pub signature: Option<crate::Signature>,
}

/// A result as shown with its ordered test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultView {
    pub id: i64,
    /// The order the result belongs to.
    pub order_id: i64,
    pub test_code: String,
    pub value: String,
    pub kind: String,
    pub units: Option<String>,
    pub flags: Vec<String>,
    /// `held`, `released`, `corrected`, `not_performed`.
    pub status: String,
    pub hold_reasons: Vec<ReasonView>,
    pub reference_interval: Option<IntervalView>,
    pub dilution: Option<String>,
    pub instrument: Option<String>,
    pub comment: Option<String>,
    pub autoverified: bool,
    pub calculated: bool,
    pub rules_version: i64,
    pub version: i64,
    pub collected_at: Option<Timestamp>,
    pub resulted_at: Timestamp,
    pub verified_at: Option<Timestamp>,
    pub released_at: Option<Timestamp>,
    pub entered_by: String,
    pub verified_by: Option<String>,
    /// The electronic signature of the current version, if any.
    pub signature: Option<crate::Signature>,
    pub critical_call: Option<CriticalCallView>,
    pub versions: Vec<ResultVersionView>,
    /// The reference laboratory that performed a sent-out test.
    pub performing_lab: Option<PerformingLab>,
    /// The pathologist's sign-off, for tests that require one.
    pub signed_off: Option<SignOff>,
}

pub(crate) fn call_view(c: &CriticalCallRecord, now: Timestamp) -> CriticalCallView {
    CriticalCallView {
        id: c.id,
        result_id: c.result_id,
        result_version: c.result_version,
        opened_at: c.opened_at,
        due_at: c.due_at,
        overdue: c.called_at.is_none() && now > c.due_at,
        called_at: c.called_at,
        called_by: c.called_by.clone(),
        notified_name: c.notified_name.clone(),
        notified_role: c.notified_role.clone(),
        read_back: c.read_back,
    }
}

pub(crate) fn result_view(
    r: &ResultRecord,
    versions: &[ResultVersionRecord],
    calls: &[CriticalCallRecord],
    now: Timestamp,
) -> AppResult<ResultView> {
    let b = Body::parse(&r.body)?;
    let versions = versions
        .iter()
        .filter(|v| v.result_id == r.id)
        .map(|v| {
            let vb = Body::parse(&v.body)?;
            Ok(ResultVersionView {
                version: v.version,
                status: v.status.clone(),
                value: vb.value,
                units: vb.units,
                flags: vb.flags,
                reason: v.reason.clone(),
                at: v.at,
                by: v.by_user.clone(),
                // A signature is shown with the version it was applied to, never carried on.
                signature: vb.signature.filter(|s| s.version == v.version),
            })
        })
        .collect::<AppResult<Vec<_>>>()?;
    Ok(ResultView {
        id: r.id,
        order_id: r.order_id,
        test_code: r.test_code.clone(),
        value: b.value,
        kind: b.kind,
        units: b.units,
        flags: b.flags,
        status: r.status.clone(),
        hold_reasons: b.hold_reasons,
        reference_interval: b.interval,
        dilution: b.dilution,
        instrument: b.instrument,
        comment: b.comment,
        autoverified: b.autoverified,
        calculated: b.calculated,
        rules_version: b.rules_version,
        version: r.version,
        collected_at: r.collected_at,
        resulted_at: r.resulted_at,
        verified_at: r.verified_at,
        released_at: r.released_at,
        entered_by: b.entered_by,
        verified_by: b.verified_by,
        signature: b.signature.filter(|s| s.version == r.version),
        performing_lab: b.performing_lab,
        signed_off: b.signed_off,
        // The newest call: the open one, or the last documented.
        critical_call: calls
            .iter()
            .filter(|c| c.result_id == r.id)
            .max_by_key(|c| c.id)
            .map(|c| call_view(c, now)),
        versions,
    })
}

/// The result type of a catalogue test.
pub(crate) fn result_type(d: &TestDefinition) -> AppResult<ResultType> {
    match d.result_type.as_deref() {
        Some("numeric") | None => ResultType::numeric(d.precision.unwrap_or(0))
            .map_err(|e| AppError::Internal(format!("catalog {}: {e}", d.code))),
        Some("coded") => ResultType::coded(&d.answers)
            .map_err(|e| AppError::Internal(format!("catalog {}: {e}", d.code))),
        Some("text") => Ok(ResultType::Text),
        Some(other) => Err(AppError::Internal(format!(
            "catalog {}: result type {other}",
            d.code
        ))),
    }
}
