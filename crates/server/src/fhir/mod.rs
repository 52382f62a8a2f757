//! FHIR R4 under `/fhir/r4` (issue 14 item 3): the CapabilityStatement, read and search of
//! Patient, ServiceRequest, Specimen, Observation and DiagnosticReport, and create of
//! ServiceRequest. Each handler calls the same use cases as the REST API (so permissions,
//! a physician's patient scope and the access log are the same) and only translates: JSON in
//! `application/fhir+json`, searchset Bundles with paging, errors as OperationOutcome.
//!
//! Identifiers: a Patient's logical id is the patient id and its MRN is an identifier of system
//! [`MRN_SYSTEM`]; an Observation is a released result (id = result id); a DiagnosticReport is
//! an order's report (id = order id); a ServiceRequest is one ordered test (id =
//! `{order}-{test}`, its requisition = the order); a Specimen's id is its accession number.
//! Searches other than Patient's need the patient (`patient` or `subject`), or for Specimen an
//! accession `identifier`: the lab never lists everyone's results at once.

mod capability;
mod observation;
mod orders;
mod params;
mod patient;
mod specimen;

use aliquot_app::{Actor, Source};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;

/// Where the routes live.
pub const BASE: &str = "/fhir/r4";
/// The identifier system of the lab's medical record numbers.
pub const MRN_SYSTEM: &str = "urn:aliquot:mrn";
/// The identifier system of accession numbers.
pub const ACCESSION_SYSTEM: &str = "urn:aliquot:accession";
/// The identifier system of the lab's own test codes.
pub const TEST_CODE_SYSTEM: &str = "urn:aliquot:test-code";
/// The identifier system of requisitions (orders).
pub const REQUISITION_SYSTEM: &str = "urn:aliquot:order";
/// The identifier system of the placer's (EMR's) order numbers.
pub const PLACER_SYSTEM: &str = "urn:aliquot:placer-order-number";
/// The identifier system of the lab's user accounts (who signed a result off).
pub const USER_SYSTEM: &str = "urn:aliquot:user";
pub const LOINC: &str = "http://loinc.org";
pub const UCUM: &str = "http://unitsofmeasure.org";
/// The media type of every answer.
pub const FHIR_JSON: &str = "application/fhir+json";

/// The routes, with their own guard: a bearer token as for the REST API; `metadata` is public.
pub fn router(state: AppState) -> Router<AppState> {
    let guarded = Router::new()
        .route("/fhir/r4/Patient", get(patient::search))
        .route("/fhir/r4/Patient/{id}", get(patient::read))
        .route(
            "/fhir/r4/Observation",
            get(observation::search_observations),
        )
        .route(
            "/fhir/r4/Observation/{id}",
            get(observation::read_observation),
        )
        .route("/fhir/r4/DiagnosticReport", get(orders::search_reports))
        .route("/fhir/r4/DiagnosticReport/{id}", get(orders::read_report))
        .route(
            "/fhir/r4/ServiceRequest",
            get(orders::search_requests).post(orders::create_request),
        )
        .route("/fhir/r4/ServiceRequest/{id}", get(orders::read_request))
        .route("/fhir/r4/Specimen", get(specimen::search))
        .route("/fhir/r4/Specimen/{id}", get(specimen::read))
        .route_layer(middleware::from_fn_with_state(state, guard));
    Router::new()
        .route("/fhir/r4/metadata", get(capability::metadata))
        .merge(guarded)
}

/// Authenticates the bearer token; the use cases check permissions and patient scope.
async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let Some(token) = token else {
        return FhirError::from(ApiError::unauthorized(
            "unauthenticated",
            "log in and send Authorization: Bearer <token>",
        ))
        .into_response();
    };
    match state.app.authenticate(&token, Source::Fhir).await {
        Ok(actor) => {
            req.extensions_mut().insert::<Actor>(actor);
            next.run(req).await
        }
        Err(e) => FhirError::from(ApiError::from(e)).into_response(),
    }
}

/// Unknown paths under `/fhir/` (the server's fallback answers with this).
pub async fn unknown() -> FhirError {
    FhirError::new(
        StatusCode::NOT_FOUND,
        "not-supported",
        "not_found",
        "no such FHIR resource type or interaction here; see /fhir/r4/metadata",
    )
}

/// An error as an OperationOutcome.
#[derive(Debug)]
pub struct FhirError {
    status: StatusCode,
    /// The FHIR issue type (`invalid`, `not-found`, `forbidden` …).
    issue: &'static str,
    /// Aliquot's error code.
    code: String,
    message: String,
    /// The parameter or element at fault.
    field: Option<String>,
}

impl FhirError {
    pub fn new(
        status: StatusCode,
        issue: &'static str,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> FhirError {
        FhirError {
            status,
            issue,
            code: code.into(),
            message: message.into(),
            field: None,
        }
    }

    /// A bad search parameter or element (400).
    pub fn invalid(field: &str, message: impl Into<String>) -> FhirError {
        FhirError {
            field: Some(field.to_owned()),
            ..FhirError::new(StatusCode::BAD_REQUEST, "invalid", "invalid", message)
        }
    }

    pub fn not_found(what: &str) -> FhirError {
        FhirError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "not_found",
            format!("{what} not found"),
        )
    }
}

impl From<ApiError> for FhirError {
    fn from(e: ApiError) -> FhirError {
        let issue = match e.status {
            StatusCode::UNAUTHORIZED => "login",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::CONFLICT => "duplicate",
            StatusCode::TOO_MANY_REQUESTS => "throttled",
            s if s.is_server_error() => "exception",
            _ => "invalid",
        };
        FhirError {
            status: e.status,
            issue,
            code: e.code,
            message: e.message,
            field: e.field,
        }
    }
}

impl From<aliquot_app::AppError> for FhirError {
    fn from(e: aliquot_app::AppError) -> FhirError {
        FhirError::from(ApiError::from(e))
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let mut issue = json!({
            "severity": "error",
            "code": self.issue,
            "details": {"text": self.message},
            "diagnostics": self.code,
        });
        if let Some(f) = self.field {
            issue["expression"] = json!([f]);
        }
        let body = json!({"resourceType": "OperationOutcome", "issue": [issue]});
        let mut resp = fhir_json(self.status, body.to_string());
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

pub type FhirResult<T> = Result<T, FhirError>;

/// A response with the FHIR media type.
pub fn fhir_json(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    resp
}

/// One resource, serialised once (so exact decimals survive into Bundles).
pub struct Resource(Box<RawValue>);

impl Resource {
    pub fn from_value(v: &Value) -> Resource {
        Resource::of(v)
    }

    /// Any serialisable resource (a typed one keeps its decimals as written).
    pub fn of<T: Serialize + ?Sized>(v: &T) -> Resource {
        // Serialising a Value or a plain struct to a string cannot fail.
        let text = serde_json::to_string(v).unwrap_or_else(|_| "{}".to_owned());
        Resource(RawValue::from_string(text).unwrap_or_else(|_| {
            RawValue::from_string("{}".to_owned()).expect("an empty object is valid JSON")
        }))
    }

    pub fn into_response(self) -> Response {
        fhir_json(StatusCode::OK, self.0.get().to_owned())
    }
}

#[derive(Serialize)]
struct Link {
    relation: &'static str,
    url: String,
}

#[derive(Serialize)]
struct Search {
    mode: &'static str,
}

#[derive(Serialize)]
struct Entry {
    #[serde(rename = "fullUrl")]
    full_url: String,
    resource: Box<RawValue>,
    search: Search,
}

#[derive(Serialize)]
struct Bundle {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<usize>,
    link: Vec<Link>,
    entry: Vec<Entry>,
}

/// A searchset Bundle: `self` (the query as received) and `next` when there is more.
pub fn searchset(
    resource_type: &str,
    query: &str,
    entries: Vec<(String, Resource)>,
    total: Option<usize>,
    next: Option<String>,
) -> Response {
    let mut link = vec![Link {
        relation: "self",
        url: search_url(resource_type, query),
    }];
    if let Some(n) = next {
        link.push(Link {
            relation: "next",
            url: search_url(resource_type, &n),
        });
    }
    let bundle = Bundle {
        resource_type: "Bundle",
        kind: "searchset",
        total,
        link,
        entry: entries
            .into_iter()
            .map(|(id, r)| Entry {
                full_url: format!("{BASE}/{resource_type}/{id}"),
                resource: r.0,
                search: Search { mode: "match" },
            })
            .collect(),
    };
    fhir_json(
        StatusCode::OK,
        serde_json::to_string(&bundle).unwrap_or_else(|_| "{}".to_owned()),
    )
}

fn search_url(resource_type: &str, query: &str) -> String {
    if query.is_empty() {
        format!("{BASE}/{resource_type}")
    } else {
        format!("{BASE}/{resource_type}?{query}")
    }
}

/// A numeric logical id from the path; anything else is an unknown `what`.
pub fn numeric_id(id: &str, what: &str) -> FhirResult<i64> {
    id.parse::<i64>().map_err(|_| FhirError::not_found(what))
}

/// A reference to a patient.
pub fn patient_ref(id: i64) -> Value {
    json!({"reference": format!("Patient/{id}")})
}

/// A timestamp as a FHIR `instant`/`dateTime` (UTC, seconds).
pub fn instant(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
