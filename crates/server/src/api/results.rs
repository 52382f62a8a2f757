//! Results: posting (batches), reading, verification and release, corrections, critical
//! calls, worklists, a patient's cumulative results, and the result rules a director edits.

use aliquot_app::{
    Actor, AppError, CalculationDoc, ConsistencyDoc, CorrectionInput, CriticalCallInput,
    CriticalCallView, CumulativeView, DeltaDoc, IndexDoc, IndicesInput, IntervalDoc, IntervalView,
    LimitsDoc, NotPerformedInput, OpenCallView, PerformingLab, ReasonView, ResultInput,
    ResultOutcome, ResultRulesDoc, ResultRulesVersionView, ResultRulesView, ResultVersionView,
    ResultView, SignOff, Signature, SignatureInput, WorklistView,
};
use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::client::ClientAddr;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorDetail};
use crate::json::{ApiJson, ApiPath, ApiQuery};

// ── wire types ──

#[derive(Deserialize, Serialize, ToSchema, Clone, Copy, Default)]
#[serde(deny_unknown_fields)]
pub struct IndicesDto {
    /// Haemolysis index as the analyzer reports it.
    pub hemolysis: Option<u32>,
    pub icterus: Option<u32>,
    pub lipemia: Option<u32>,
}

impl From<IndicesDto> for IndicesInput {
    fn from(d: IndicesDto) -> Self {
        let IndicesDto {
            hemolysis,
            icterus,
            lipemia,
        } = d;
        IndicesInput {
            hemolysis,
            icterus,
            lipemia,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultItemDto {
    /// The tube's accession number (or an aliquot's).
    pub accession: String,
    /// Local test code or LOINC.
    pub test: String,
    /// As reported: `5.0`, `<0.5`, `>1000`, a coded answer (`Trace`), or text.
    pub value: String,
    /// UCUM; converted to the test's units only through an explicit per-analyte conversion.
    pub units: Option<String>,
    /// The instrument that produced it.
    pub instrument: Option<String>,
    /// Instrument flags (any flag holds the result for review).
    #[serde(default)]
    pub flags: Vec<String>,
    pub indices: Option<IndicesDto>,
    pub comment: Option<String>,
    /// A result as received from this reference laboratory (its code): `test` may be the
    /// laboratory's own code; the test must have been sent out to it. A sent-out test's
    /// result carries its performing laboratory either way.
    pub reference_lab: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostResults {
    /// 1 to 5000 results.
    pub results: Vec<ResultItemDto>,
}

#[derive(Serialize, ToSchema)]
pub struct ReasonDto {
    /// e.g. `critical`, `delta`, `instrument_flag`, `specimen_not_stable`, `serum_index`.
    pub code: String,
    pub message: String,
}

impl From<ReasonView> for ReasonDto {
    fn from(r: ReasonView) -> Self {
        let ReasonView { code, message } = r;
        ReasonDto { code, message }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OutcomeDto {
    /// The item's position in the request.
    pub index: usize,
    /// `released`, `held`, `duplicate` (already stored; nothing changed) or `refused`.
    pub outcome: &'static str,
    pub result_id: Option<i64>,
    pub status: Option<String>,
    pub flags: Vec<String>,
    pub hold_reasons: Vec<ReasonDto>,
    /// Why the item was refused (its field is under `results[i]`).
    pub error: Option<ErrorDetail>,
}

impl From<ResultOutcome> for OutcomeDto {
    fn from(o: ResultOutcome) -> Self {
        let ResultOutcome {
            index,
            outcome,
            result_id,
            status,
            flags,
            hold_reasons,
            error,
        } = o;
        OutcomeDto {
            index,
            outcome,
            result_id,
            status,
            flags,
            hold_reasons: hold_reasons.into_iter().map(Into::into).collect(),
            error: error.map(|e: AppError| {
                let a = ApiError::from(e);
                ErrorDetail {
                    code: a.code,
                    message: a.message,
                    field: a.field,
                    candidates: None,
                    problems: None,
                }
            }),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PostResultsResponse {
    /// One outcome per posted item, in order.
    pub results: Vec<OutcomeDto>,
}

#[derive(Serialize, ToSchema)]
pub struct IntervalDto {
    pub low: Option<String>,
    pub high: Option<String>,
    /// As printed, e.g. `3.5–5.1`, `F 0.44–1.00; M 0.61–1.24`.
    pub text: String,
}

impl From<IntervalView> for IntervalDto {
    fn from(i: IntervalView) -> Self {
        let IntervalView { low, high, text } = i;
        IntervalDto { low, high, text }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CriticalCallDto {
    pub id: i64,
    pub result_version: i64,
    pub opened_at: String,
    /// The call should be documented by then; after it, it is overdue (escalate).
    pub due_at: String,
    pub overdue: bool,
    pub called_at: Option<String>,
    /// The laboratory user who called.
    pub called_by: Option<String>,
    pub notified_name: Option<String>,
    pub notified_role: Option<String>,
    pub read_back: Option<bool>,
}

impl From<CriticalCallView> for CriticalCallDto {
    fn from(c: CriticalCallView) -> Self {
        let CriticalCallView {
            id,
            result_id: _,
            result_version,
            opened_at,
            due_at,
            overdue,
            called_at,
            called_by,
            notified_name,
            notified_role,
            read_back,
        } = c;
        CriticalCallDto {
            id,
            result_version,
            opened_at: opened_at.to_string(),
            due_at: due_at.to_string(),
            overdue,
            called_at: called_at.map(|t| t.to_string()),
            called_by,
            notified_name,
            notified_role,
            read_back,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ResultVersionDto {
    pub version: i64,
    pub status: String,
    pub value: String,
    pub units: Option<String>,
    pub flags: Vec<String>,
    /// `repeat`, `verified`, a correction's reason …
    pub reason: Option<String>,
    pub at: String,
    pub by: String,
    /// The electronic signature applied to this version, if any.
    pub signature: Option<SignatureDto>,
}

/// An electronic signature (21 CFR 11.50): who signed, when, and what it means.
#[derive(Serialize, ToSchema)]
pub struct SignatureDto {
    /// `verified`, `signed off` or `corrected`.
    pub meaning: String,
    /// The signer's username.
    pub signer: String,
    /// The signer's printed name.
    pub signer_name: String,
    /// RFC 3339, UTC.
    pub at: String,
    /// `password` or `totp`: what the signer re-entered.
    pub method: String,
    /// The result version signed.
    pub version: i64,
}

impl From<Signature> for SignatureDto {
    fn from(s: Signature) -> Self {
        let Signature {
            meaning,
            signer,
            signer_name,
            at,
            method,
            version,
        } = s;
        SignatureDto {
            meaning,
            signer,
            signer_name,
            at: at.to_string(),
            method,
            version,
        }
    }
}

/// What a signer re-enters at signing: the password, or (with an authenticator app
/// enrolled) its current code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignatureRequest {
    pub password: Option<String>,
    pub totp: Option<String>,
}

impl SignatureRequest {
    fn input(self, client: std::net::IpAddr) -> SignatureInput {
        let SignatureRequest { password, totp } = self;
        SignatureInput {
            password,
            totp,
            address: Some(client),
        }
    }
}

impl From<ResultVersionView> for ResultVersionDto {
    fn from(v: ResultVersionView) -> Self {
        let ResultVersionView {
            version,
            status,
            value,
            units,
            flags,
            reason,
            at,
            by,
            signature,
        } = v;
        ResultVersionDto {
            version,
            status,
            value,
            units,
            flags,
            reason,
            at: at.to_string(),
            by,
            signature: signature.map(Into::into),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ResultDto {
    pub id: i64,
    /// The order the result belongs to.
    pub order_id: i64,
    pub test_code: String,
    /// As reported, the recorded dilution applied; `<x`/`>x` outside the reportable range.
    pub value: String,
    /// `numeric`, `coded` or `text`.
    pub kind: String,
    pub units: Option<String>,
    /// `L`, `H`, `LL`, `HH`, `A`.
    pub flags: Vec<String>,
    /// `held`, `released`, `corrected`, `not_performed`.
    pub status: String,
    pub hold_reasons: Vec<ReasonDto>,
    /// The interval in force at collection.
    pub reference_interval: Option<IntervalDto>,
    pub dilution: Option<String>,
    pub instrument: Option<String>,
    pub comment: Option<String>,
    /// Released by the rules without review.
    pub autoverified: bool,
    pub calculated: bool,
    /// The result rules' version the decision was made with.
    pub rules_version: i64,
    pub version: i64,
    pub collected_at: Option<String>,
    pub resulted_at: String,
    pub verified_at: Option<String>,
    pub released_at: Option<String>,
    pub entered_by: String,
    pub verified_by: Option<String>,
    /// The electronic signature of the current version (release or correction), if any.
    pub signature: Option<SignatureDto>,
    pub critical_call: Option<CriticalCallDto>,
    /// Every version, oldest first.
    pub versions: Vec<ResultVersionDto>,
    /// The reference laboratory that performed a sent-out test (CLIA: named on the report).
    pub performing_lab: Option<PerformingLabDto>,
    /// Who signed the result off, for a test that needs a pathologist (printed on the report).
    pub signed_off: Option<SignOffDto>,
}

/// A pathologist's sign-off of a result: who, as what, when.
#[derive(Serialize, ToSchema)]
pub struct SignOffDto {
    /// The signer's username.
    pub by: String,
    /// Their display name when they signed.
    pub name: String,
    /// Their role as printed on the report (e.g. "Laboratory director").
    pub role: String,
    pub at: String,
}

impl From<SignOff> for SignOffDto {
    fn from(s: SignOff) -> Self {
        let SignOff { by, name, role, at } = s;
        SignOffDto {
            by,
            name,
            role,
            at: at.to_string(),
        }
    }
}

/// The laboratory that performed a sent-out test.
#[derive(Serialize, ToSchema)]
pub struct PerformingLabDto {
    /// Its code in the reference-laboratory registry.
    pub code: String,
    pub name: String,
    pub address: String,
    pub clia: String,
}

impl From<PerformingLab> for PerformingLabDto {
    fn from(p: PerformingLab) -> Self {
        let PerformingLab {
            code,
            name,
            address,
            clia,
        } = p;
        PerformingLabDto {
            code,
            name,
            address,
            clia,
        }
    }
}

impl From<ResultView> for ResultDto {
    fn from(r: ResultView) -> Self {
        let ResultView {
            id,
            order_id,
            test_code,
            value,
            kind,
            units,
            flags,
            status,
            hold_reasons,
            reference_interval,
            dilution,
            instrument,
            comment,
            autoverified,
            calculated,
            rules_version,
            version,
            collected_at,
            resulted_at,
            verified_at,
            released_at,
            entered_by,
            verified_by,
            signature,
            critical_call,
            versions,
            performing_lab,
            signed_off,
        } = r;
        ResultDto {
            id,
            order_id,
            test_code,
            value,
            kind,
            units,
            flags,
            status,
            hold_reasons: hold_reasons.into_iter().map(Into::into).collect(),
            reference_interval: reference_interval.map(Into::into),
            dilution,
            instrument,
            comment,
            autoverified,
            calculated,
            rules_version,
            version,
            collected_at: collected_at.map(|t| t.to_string()),
            resulted_at: resulted_at.to_string(),
            verified_at: verified_at.map(|t| t.to_string()),
            released_at: released_at.map(|t| t.to_string()),
            entered_by,
            verified_by,
            signature: signature.map(Into::into),
            critical_call: critical_call.map(Into::into),
            versions: versions.into_iter().map(Into::into).collect(),
            performing_lab: performing_lab.map(Into::into),
            signed_off: signed_off.map(Into::into),
        }
    }
}

// ── handlers ──

/// Post results: each item answers on its own (released, held with its reasons, duplicate,
/// or refused with an error naming its field); one item's refusal does not lose the others.
#[utoipa::path(post, path = "/api/v1/results", tag = "results", request_body = PostResults,
    responses((status = 200, body = PostResultsResponse), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn post(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<PostResults>,
) -> ApiResult<Json<PostResultsResponse>> {
    let items = req
        .results
        .into_iter()
        .map(|i| {
            let ResultItemDto {
                accession,
                test,
                value,
                units,
                instrument,
                flags,
                indices,
                comment,
                reference_lab,
            } = i;
            ResultInput {
                accession,
                test,
                value,
                units,
                instrument,
                flags,
                indices: indices.map(Into::into),
                comment,
                reference_lab,
            }
        })
        .collect();
    let out = state.app.post_results(&actor, items).await?;
    Ok(Json(PostResultsResponse {
        results: out.into_iter().map(Into::into).collect(),
    }))
}

/// One result with its versions and critical call. Recorded in the access log.
#[utoipa::path(get, path = "/api/v1/results/{id}", tag = "results",
    params(("id" = i64, Path, description = "result id")),
    responses((status = 200, body = ResultDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ResultDto>> {
    Ok(Json(state.app.result(&actor, id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyResult {
    /// The version reviewed: when the result changed since, the verification is refused (409).
    pub version: Option<i64>,
    pub comment: Option<String>,
    /// The electronic signature: required when the lab requires signed releases (setting
    /// `results.verification_signature_required`; 422 `signature_required`), kept when given.
    #[serde(default)]
    pub signature: Option<SignatureRequest>,
}

/// Verify and release a held result. Of two technologists verifying the same result, exactly
/// one succeeds; the other gets 409. Tests that need a pathologist need `result.sign_off`.
/// A signature (password or authenticator code re-entered) is recorded with the released
/// version, meaning `verified` (or `signed off`); a wrong one is 422 `invalid_signature`
/// naming `signature.password` or `signature.totp`, counted as a failed login.
#[utoipa::path(post, path = "/api/v1/results/{id}/verify", tag = "results", request_body = VerifyResult,
    params(("id" = i64, Path, description = "result id")),
    responses((status = 200, body = ResultDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<VerifyResult>,
) -> ApiResult<Json<ResultDto>> {
    let VerifyResult {
        version,
        comment,
        signature,
    } = req;
    let signature = signature.map(|s| s.input(client));
    Ok(Json(
        state
            .app
            .verify_result(&actor, id, version, comment.as_deref(), signature.as_ref())
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectResult {
    pub value: String,
    pub units: Option<String>,
    /// Why (3 to 500 characters).
    pub reason: Option<String>,
    pub comment: Option<String>,
    /// The electronic signature (required: 422 `signature_required`).
    pub signature: Option<SignatureRequest>,
}

/// Correct a released result: a new version with the reason; the original stays visible; the
/// ordering provider is notified; calculated results using it are recomputed. Always signed:
/// the corrector re-enters the password (or authenticator code); the signature, meaning
/// `corrected`, is kept with the new version.
#[utoipa::path(post, path = "/api/v1/results/{id}/correct", tag = "results", request_body = CorrectResult,
    params(("id" = i64, Path, description = "result id")),
    responses((status = 200, body = ResultDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn correct(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<CorrectResult>,
) -> ApiResult<Json<ResultDto>> {
    let CorrectResult {
        value,
        units,
        reason,
        comment,
        signature,
    } = req;
    let input = CorrectionInput {
        value,
        units,
        reason,
        comment,
        signature: signature.map(|s| s.input(client)),
    };
    Ok(Json(
        state.app.correct_result(&actor, id, input).await?.into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentCall {
    /// The person told, full name.
    pub notified_name: String,
    /// Their role or credential (physician, RN …).
    pub notified_role: String,
    /// They read the value back (required).
    pub read_back: bool,
}

/// Document the call of a critical result (the caller is the logged-in user, the time now).
#[utoipa::path(post, path = "/api/v1/results/{id}/critical-call", tag = "results", request_body = DocumentCall,
    params(("id" = i64, Path, description = "result id")),
    responses((status = 200, body = ResultDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn critical_call(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<DocumentCall>,
) -> ApiResult<Json<ResultDto>> {
    let DocumentCall {
        notified_name,
        notified_role,
        read_back,
    } = req;
    let input = CriticalCallInput {
        notified_name,
        notified_role,
        read_back,
    };
    Ok(Json(
        state
            .app
            .document_critical_call(&actor, id, input)
            .await?
            .into(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct OpenCallDto {
    pub result_id: i64,
    pub order_id: i64,
    pub test_code: String,
    pub value: String,
    pub units: Option<String>,
    pub flags: Vec<String>,
    pub call: CriticalCallDto,
}

impl From<OpenCallView> for OpenCallDto {
    fn from(o: OpenCallView) -> Self {
        let OpenCallView {
            call,
            order_id,
            test_code,
            value,
            units,
            flags,
        } = o;
        OpenCallDto {
            result_id: call.result_id,
            order_id,
            test_code,
            value,
            units,
            flags,
            call: call.into(),
        }
    }
}

/// Critical results whose call is not documented yet, the most overdue first.
#[utoipa::path(get, path = "/api/v1/critical-calls", tag = "results",
    responses((status = 200, body = [OpenCallDto]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn open_calls(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> ApiResult<Json<Vec<OpenCallDto>>> {
    let list = state.app.open_critical_calls(&actor).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

#[derive(Serialize, ToSchema)]
pub struct WorklistItemDto {
    pub order_id: i64,
    pub test_code: String,
    pub accession: String,
    pub priority: String,
    /// `pending` or `held`.
    pub status: &'static str,
    pub result_id: Option<i64>,
    pub value: Option<String>,
    pub flags: Vec<String>,
    pub hold_reasons: Vec<ReasonDto>,
    pub received_at: Option<String>,
    pub age_minutes: i64,
    /// In-lab TAT status: `on_time`, `at_risk`, `overdue`, `no_target`, …
    pub tat_status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct WorklistDto {
    pub department: String,
    /// STAT first, then the oldest.
    pub items: Vec<WorklistItemDto>,
}

impl From<WorklistView> for WorklistDto {
    fn from(w: WorklistView) -> Self {
        let WorklistView { department, items } = w;
        WorklistDto {
            department,
            items: items
                .into_iter()
                .map(|i| {
                    let aliquot_app::WorklistItem {
                        order_id,
                        test_code,
                        accession,
                        priority,
                        status,
                        result_id,
                        value,
                        flags,
                        hold_reasons,
                        received_at,
                        age_minutes,
                        tat_status,
                    } = i;
                    WorklistItemDto {
                        order_id,
                        test_code,
                        accession,
                        priority,
                        status,
                        result_id,
                        value,
                        flags,
                        hold_reasons: hold_reasons.into_iter().map(Into::into).collect(),
                        received_at: received_at.map(|t| t.to_string()),
                        age_minutes,
                        tat_status,
                    }
                })
                .collect(),
        }
    }
}

/// A department's pending tests and held results. Recorded in the access log.
#[utoipa::path(get, path = "/api/v1/worklists/{department}", tag = "results",
    params(("department" = String, Path, description = "chemistry, hematology, coagulation, urinalysis, …")),
    responses((status = 200, body = WorklistDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn worklist(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(department): ApiPath<String>,
) -> ApiResult<Json<WorklistDto>> {
    Ok(Json(
        state
            .app
            .results_worklist(&actor, &department)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CumulativeQuery {
    /// Local test code or LOINC.
    pub test: String,
}

#[derive(Serialize, ToSchema)]
pub struct CumulativePointDto {
    pub result_id: i64,
    pub order_id: i64,
    pub collected_at: Option<String>,
    pub value: String,
    pub units: Option<String>,
    pub flags: Vec<String>,
    /// The interval in force at that collection.
    pub reference_interval: Option<IntervalDto>,
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct CumulativeDto {
    pub patient_id: i64,
    pub test_code: String,
    /// Oldest collection first.
    pub points: Vec<CumulativePointDto>,
}

impl From<CumulativeView> for CumulativeDto {
    fn from(c: CumulativeView) -> Self {
        let CumulativeView {
            patient_id,
            test_code,
            points,
        } = c;
        CumulativeDto {
            patient_id,
            test_code,
            points: points
                .into_iter()
                .map(|p| {
                    let aliquot_app::CumulativePoint {
                        result_id,
                        order_id,
                        collected_at,
                        value,
                        units,
                        flags,
                        reference_interval,
                        status,
                    } = p;
                    CumulativePointDto {
                        result_id,
                        order_id,
                        collected_at: collected_at.map(|t| t.to_string()),
                        value,
                        units,
                        flags,
                        reference_interval: reference_interval.map(Into::into),
                        status,
                    }
                })
                .collect(),
        }
    }
}

/// A patient's released results of one test over time. Recorded in the access log.
#[utoipa::path(get, path = "/api/v1/patients/{id}/results", tag = "results",
    params(("id" = i64, Path, description = "patient id"), CumulativeQuery),
    responses((status = 200, body = CumulativeDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn cumulative(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<CumulativeQuery>,
) -> ApiResult<Json<CumulativeDto>> {
    Ok(Json(
        state
            .app
            .cumulative_results(&actor, id, &q.test)
            .await?
            .into(),
    ))
}

// ── result rules ──

#[derive(Deserialize, Serialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsDto {
    /// A decimal, as a string.
    pub low: Option<String>,
    pub high: Option<String>,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeltaDto {
    /// `absolute`, `percent` (of the previous value) or `rate_per_day`.
    pub mode: String,
    pub limit: String,
    pub window_hours: u32,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyDto {
    /// `not_above` or `not_below`.
    pub kind: String,
    /// The other test of the same order.
    pub test: String,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntervalRowDto {
    /// `F` or `M`; absent for both.
    pub sex: Option<String>,
    /// Half-open band `age_from` ≤ age < `age_to`: `15d`, `6m`, `19y`.
    pub age_from: Option<String>,
    pub age_to: Option<String>,
    pub specimen_type: Option<String>,
    pub method: Option<String>,
    pub low: Option<String>,
    pub high: Option<String>,
    pub text: Option<String>,
    /// RFC 3339.
    pub effective_from: String,
    pub effective_to: Option<String>,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalculationDto {
    /// `egfr_ckd_epi_2021`, `anion_gap`, `ldl_nih2`, `corrected_calcium`.
    pub formula: String,
    /// Input name → test code, e.g. `{"creatinine": "CREA"}`.
    pub inputs: std::collections::BTreeMap<String, String>,
}

/// A test's result rules. Decimals are strings.
#[derive(Deserialize, Serialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ResultRulesDto {
    /// For unit conversion, e.g. `glucose`, `creatinine`.
    pub analyte: Option<String>,
    /// Analytical measurement range of the reading.
    #[serde(default)]
    pub reportable: LimitsDto,
    pub max_dilution: Option<String>,
    /// Inclusive critical limits.
    #[serde(default)]
    pub critical: LimitsDto,
    /// `hold` (default) or `release_and_call`.
    pub critical_action: Option<String>,
    #[serde(default)]
    pub plausible: LimitsDto,
    /// Results may be released without review.
    #[serde(default)]
    pub autoverify: bool,
    #[serde(default)]
    pub autoverify_limits: LimitsDto,
    pub delta: Option<DeltaDto>,
    #[serde(default)]
    pub indices: IndicesDto,
    #[serde(default)]
    pub normal_answers: Vec<String>,
    #[serde(default)]
    pub consistency: Vec<ConsistencyDto>,
    #[serde(default)]
    pub requires_pathologist: bool,
    #[serde(default)]
    pub suspended: bool,
    #[serde(default)]
    pub reference_intervals: Vec<IntervalRowDto>,
    pub calculation: Option<CalculationDto>,
}

fn limits_in(l: LimitsDto) -> LimitsDoc {
    let LimitsDto { low, high } = l;
    LimitsDoc { low, high }
}
fn limits_out(l: LimitsDoc) -> LimitsDto {
    let LimitsDoc { low, high } = l;
    LimitsDto { low, high }
}

impl From<ResultRulesDto> for ResultRulesDoc {
    fn from(d: ResultRulesDto) -> Self {
        let ResultRulesDto {
            analyte,
            reportable,
            max_dilution,
            critical,
            critical_action,
            plausible,
            autoverify,
            autoverify_limits,
            delta,
            indices,
            normal_answers,
            consistency,
            requires_pathologist,
            suspended,
            reference_intervals,
            calculation,
        } = d;
        let IndicesDto {
            hemolysis,
            icterus,
            lipemia,
        } = indices;
        ResultRulesDoc {
            analyte,
            reportable: limits_in(reportable),
            max_dilution,
            critical: limits_in(critical),
            critical_action,
            plausible: limits_in(plausible),
            autoverify,
            autoverify_limits: limits_in(autoverify_limits),
            delta: delta.map(|d| {
                let DeltaDto {
                    mode,
                    limit,
                    window_hours,
                } = d;
                DeltaDoc {
                    mode,
                    limit,
                    window_hours,
                }
            }),
            indices: IndexDoc {
                hemolysis,
                icterus,
                lipemia,
            },
            normal_answers,
            consistency: consistency
                .into_iter()
                .map(|c| {
                    let ConsistencyDto { kind, test } = c;
                    ConsistencyDoc { kind, test }
                })
                .collect(),
            requires_pathologist,
            suspended,
            reference_intervals: reference_intervals
                .into_iter()
                .map(|r| {
                    let IntervalRowDto {
                        sex,
                        age_from,
                        age_to,
                        specimen_type,
                        method,
                        low,
                        high,
                        text,
                        effective_from,
                        effective_to,
                    } = r;
                    IntervalDoc {
                        sex,
                        age_from,
                        age_to,
                        specimen_type,
                        method,
                        low,
                        high,
                        text,
                        effective_from,
                        effective_to,
                    }
                })
                .collect(),
            calculation: calculation.map(|c| {
                let CalculationDto { formula, inputs } = c;
                CalculationDoc { formula, inputs }
            }),
        }
    }
}

impl From<ResultRulesDoc> for ResultRulesDto {
    fn from(d: ResultRulesDoc) -> Self {
        let ResultRulesDoc {
            analyte,
            reportable,
            max_dilution,
            critical,
            critical_action,
            plausible,
            autoverify,
            autoverify_limits,
            delta,
            indices,
            normal_answers,
            consistency,
            requires_pathologist,
            suspended,
            reference_intervals,
            calculation,
        } = d;
        let IndexDoc {
            hemolysis,
            icterus,
            lipemia,
        } = indices;
        ResultRulesDto {
            analyte,
            reportable: limits_out(reportable),
            max_dilution,
            critical: limits_out(critical),
            critical_action,
            plausible: limits_out(plausible),
            autoverify,
            autoverify_limits: limits_out(autoverify_limits),
            delta: delta.map(|d| {
                let DeltaDoc {
                    mode,
                    limit,
                    window_hours,
                } = d;
                DeltaDto {
                    mode,
                    limit,
                    window_hours,
                }
            }),
            indices: IndicesDto {
                hemolysis,
                icterus,
                lipemia,
            },
            normal_answers,
            consistency: consistency
                .into_iter()
                .map(|c| {
                    let ConsistencyDoc { kind, test } = c;
                    ConsistencyDto { kind, test }
                })
                .collect(),
            requires_pathologist,
            suspended,
            reference_intervals: reference_intervals
                .into_iter()
                .map(|r| {
                    let IntervalDoc {
                        sex,
                        age_from,
                        age_to,
                        specimen_type,
                        method,
                        low,
                        high,
                        text,
                        effective_from,
                        effective_to,
                    } = r;
                    IntervalRowDto {
                        sex,
                        age_from,
                        age_to,
                        specimen_type,
                        method,
                        low,
                        high,
                        text,
                        effective_from,
                        effective_to,
                    }
                })
                .collect(),
            calculation: calculation.map(|c| {
                let CalculationDoc { formula, inputs } = c;
                CalculationDto { formula, inputs }
            }),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ResultRulesViewDto {
    pub test_code: String,
    /// 0 when the test has no rules yet (every result is then reviewed).
    pub version: i64,
    pub rules: ResultRulesDto,
    pub updated_at: Option<String>,
    pub updated_by: Option<String>,
}

impl From<ResultRulesView> for ResultRulesViewDto {
    fn from(v: ResultRulesView) -> Self {
        let ResultRulesView {
            test_code,
            version,
            rules,
            updated_at,
            updated_by,
        } = v;
        ResultRulesViewDto {
            test_code,
            version,
            rules: rules.into(),
            updated_at: updated_at.map(|t| t.to_string()),
            updated_by,
        }
    }
}

/// A test's result rules: reportable range, reference intervals, critical limits, delta rule,
/// autoverification.
#[utoipa::path(get, path = "/api/v1/result-rules/{test}", tag = "results",
    params(("test" = String, Path, description = "local test code or LOINC")),
    responses((status = 200, body = ResultRulesViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get_rules(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(test): ApiPath<String>,
) -> ApiResult<Json<ResultRulesViewDto>> {
    Ok(Json(state.app.result_rules(&actor, &test).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRules {
    /// The version being replaced (0 for a test without rules).
    pub version: i64,
    /// Why (3 to 500 characters).
    pub reason: Option<String>,
    pub rules: ResultRulesDto,
}

/// Replace a test's result rules (the director). A new version, kept with its reason and
/// audited; reference intervals already in force are closed, never rewritten.
#[utoipa::path(put, path = "/api/v1/result-rules/{test}", tag = "results", request_body = PutRules,
    params(("test" = String, Path, description = "local test code or LOINC")),
    responses((status = 200, body = ResultRulesViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn put_rules(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(test): ApiPath<String>,
    ApiJson(req): ApiJson<PutRules>,
) -> ApiResult<Json<ResultRulesViewDto>> {
    let PutRules {
        version,
        reason,
        rules,
    } = req;
    Ok(Json(
        state
            .app
            .put_result_rules(&actor, &test, version, rules.into(), reason.as_deref())
            .await?
            .into(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct ResultRulesVersionDto {
    pub version: i64,
    pub rules: ResultRulesDto,
    pub changed_at: String,
    pub changed_by: String,
    pub reason: String,
}

/// Every version of a test's result rules, oldest first.
#[utoipa::path(get, path = "/api/v1/result-rules/{test}/versions", tag = "results",
    params(("test" = String, Path, description = "local test code or LOINC")),
    responses((status = 200, body = [ResultRulesVersionDto]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rule_versions(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(test): ApiPath<String>,
) -> ApiResult<Json<Vec<ResultRulesVersionDto>>> {
    let list = state.app.result_rule_versions(&actor, &test).await?;
    Ok(Json(
        list.into_iter()
            .map(|v| {
                let ResultRulesVersionView {
                    version,
                    rules,
                    changed_at,
                    changed_by,
                    reason,
                } = v;
                ResultRulesVersionDto {
                    version,
                    rules: rules.into(),
                    changed_at: changed_at.to_string(),
                    changed_by,
                    reason,
                }
            })
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyOrder {
    pub comment: Option<String>,
    /// One signature for every result released (see `POST /results/{id}/verify`).
    #[serde(default)]
    pub signature: Option<SignatureRequest>,
}

/// Verify and release every held result of an order the caller may release (results needing
/// a pathologist stay held for one). The order's pending tests stay pending: a partial report.
#[utoipa::path(post, path = "/api/v1/orders/{id}/verify", tag = "results", request_body = VerifyOrder,
    params(("id" = i64, Path, description = "order id")),
    responses((status = 200, body = crate::api::orders::OrderDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn verify_order(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<VerifyOrder>,
) -> ApiResult<Json<crate::api::orders::OrderDto>> {
    let VerifyOrder { comment, signature } = req;
    let signature = signature.map(|s| s.input(client));
    Ok(Json(
        state
            .app
            .verify_order(&actor, id, comment.as_deref(), signature.as_ref())
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotPerformed {
    /// Local test code or LOINC.
    pub test: String,
    /// Why (3 to 500 characters), e.g. "insufficient specimen after processing".
    pub reason: Option<String>,
    /// A rejection-reason code for this test, e.g. `hemolyzed` or `clotted` (issue 10 item 7).
    pub reason_code: Option<String>,
    /// Move the test to a redraw (a replacement tube and a recollection task) instead of
    /// closing it; needs `reason_code` and a test without a result yet.
    #[serde(default)]
    pub recollect: bool,
}

/// Record that an ordered test was not performed (haemolysis, a clot… found at the analyser),
/// with a reason and optionally a rejection-reason code, at any point before its result is
/// released; the tube's other tests go on. It keeps its history and leaves the worklists. With
/// `recollect` a test without a result moves to a replacement tube with a recollection task.
/// A released result is corrected instead (409).
#[utoipa::path(post, path = "/api/v1/orders/{id}/not-performed", tag = "results", request_body = NotPerformed,
    params(("id" = i64, Path, description = "order id")),
    responses((status = 200, body = crate::api::orders::OrderDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn not_performed(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<NotPerformed>,
) -> ApiResult<Json<crate::api::orders::OrderDto>> {
    let NotPerformed {
        test,
        reason,
        reason_code,
        recollect,
    } = req;
    Ok(Json(
        state
            .app
            .test_not_performed(
                &actor,
                id,
                NotPerformedInput {
                    test,
                    reason,
                    reason_code,
                    recollect,
                },
            )
            .await?
            .into(),
    ))
}
