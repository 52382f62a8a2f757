//! Registration and order entry: patient search, a new patient (with the duplicate warning),
//! the patient's page, a new order with its test picker, the order with its tubes in order of
//! draw, and the tubes' labels.

use aliquot_app::{
    CollectInput, Contact, NewOrderInput, NewPatientInput, PatientIdentification, PatientSearch,
    PatientView,
};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::session::WebSession;
use super::{FormData, Nav, app_error_page, message, nav, render, status_label, urlencode, when};
use crate::AppState;

pub(crate) struct PatientRow {
    pub id: i64,
    pub mrn: String,
    pub name: String,
    pub birth_date: String,
    pub sex: String,
    /// Sex parameter for clinical use, empty when not recorded.
    pub clinical_sex: String,
    /// Local time of birth, empty when not recorded.
    pub birth_time: String,
}

impl From<&PatientView> for PatientRow {
    fn from(p: &PatientView) -> Self {
        let middle = p
            .middle_name
            .as_deref()
            .map(|m| format!(" {m}"))
            .unwrap_or_default();
        PatientRow {
            id: p.id,
            mrn: p.mrn.clone(),
            name: format!("{}, {}{}", p.family_name, p.given_name, middle),
            birth_date: p.birth_date.clone(),
            sex: p.sex.clone(),
            clinical_sex: p.clinical_sex.clone().unwrap_or_default(),
            birth_time: p.birth_time.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "patients.html")]
struct SearchPage {
    nav: Nav,
    q: SearchQuery,
    searched: bool,
    error: Option<String>,
    results: Vec<PatientRow>,
}

#[derive(Deserialize, Default, Clone)]
pub struct SearchQuery {
    #[serde(default)]
    mrn: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    family_name: String,
    #[serde(default)]
    given_name: String,
}

impl SearchQuery {
    fn given(&self) -> usize {
        [
            &self.mrn,
            &self.birth_date,
            &self.family_name,
            &self.given_name,
        ]
        .iter()
        .filter(|v| !v.trim().is_empty())
        .count()
    }
}

pub async fn search(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Query(q): Query<SearchQuery>,
) -> Response {
    let (nav, _) = nav(&state, &s, "/patients").await;
    let mut page = SearchPage {
        nav,
        q: q.clone(),
        searched: false,
        error: None,
        results: Vec::new(),
    };
    match q.given() {
        0 => {}
        1 => {
            page.error = Some(
                "Give two identifiers from the requisition: e.g. the MRN and the birth date, or \
                 the name and the birth date."
                    .into(),
            )
        }
        _ => {
            let found = state
                .app
                .search_patients(
                    &s.actor,
                    PatientSearch {
                        mrn: Some(q.mrn.clone()),
                        birth_date: Some(q.birth_date.clone()),
                        family_name: Some(q.family_name.clone()),
                        given_name: Some(q.given_name.clone()),
                    },
                )
                .await;
            match found {
                Ok(list) => {
                    page.searched = true;
                    page.results = list.iter().map(PatientRow::from).collect();
                }
                Err(e) => page.error = Some(message(&e)),
            }
        }
    }
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "patient_new.html")]
struct NewPatientPage {
    nav: Nav,
    f: PatientForm,
    error: Option<String>,
    candidates: Vec<PatientRow>,
}

#[derive(Default)]
struct PatientForm {
    mrn: String,
    family_name: String,
    given_name: String,
    middle_name: String,
    birth_date: String,
    sex: String,
    clinical_sex: String,
    birth_time: String,
    phone: String,
    reason: String,
}

impl PatientForm {
    fn from_form(f: &FormData) -> PatientForm {
        PatientForm {
            mrn: f.get("mrn").into(),
            family_name: f.get("family_name").into(),
            given_name: f.get("given_name").into(),
            middle_name: f.get("middle_name").into(),
            birth_date: f.get("birth_date").into(),
            sex: f.get("sex").into(),
            clinical_sex: f.get("clinical_sex").into(),
            birth_time: f.get("birth_time").into(),
            phone: f.get("phone").into(),
            reason: f.get("reason").into(),
        }
    }
}

pub async fn new_patient(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Query(q): Query<SearchQuery>,
) -> Response {
    let (nav, _) = nav(&state, &s, "/patients").await;
    let f = PatientForm {
        mrn: q.mrn,
        birth_date: q.birth_date,
        family_name: q.family_name,
        given_name: q.given_name,
        ..PatientForm::default()
    };
    render(
        StatusCode::OK,
        &NewPatientPage {
            nav,
            f,
            error: None,
            candidates: Vec::new(),
        },
    )
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub async fn register(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    form: FormData,
) -> Response {
    let f = PatientForm::from_form(&form);
    let confirm = form.get("confirm_not_duplicate") == "yes";
    let input = NewPatientInput {
        mrn: f.mrn.clone(),
        family_name: f.family_name.clone(),
        given_name: f.given_name.clone(),
        middle_name: form.opt("middle_name"),
        birth_date: f.birth_date.clone(),
        sex: f.sex.clone(),
        clinical_sex: form.opt("clinical_sex"),
        birth_time: form.opt("birth_time"),
        identifiers: Vec::new(),
        contact: Contact {
            phone: form.opt("phone"),
            email: None,
            address: None,
        },
        confirm_not_duplicate: confirm,
        reason: form.opt("reason"),
    };
    let (nav, _) = nav(&state, &s, "/patients").await;
    let (error, candidates) = match state.app.register_patient(&s.actor, input).await {
        Ok(Ok(p)) => return see_other(&format!("/patients/{}", p.id)),
        Ok(Err(candidates)) => {
            let mut rows = Vec::new();
            for c in candidates {
                // Shown through the use case, so the look at each candidate is access-logged.
                if let Ok(p) = state.app.patient(&s.actor, c.patient_id).await {
                    rows.push(PatientRow::from(&p));
                }
            }
            (
                "This patient looks like someone already registered. Check the patients below: \
                 if one of them is this patient, open it instead. If not, tick \"a different \
                 person\", give a reason and register again."
                    .to_owned(),
                rows,
            )
        }
        Err(e) => (message(&e), Vec::new()),
    };
    render(
        StatusCode::UNPROCESSABLE_ENTITY,
        &NewPatientPage {
            nav,
            f,
            error: Some(error),
            candidates,
        },
    )
}

pub(crate) struct OrderRow {
    pub id: i64,
    pub created: String,
    pub priority: String,
    pub status: String,
    pub tests: String,
}

#[derive(Template)]
#[template(path = "patient.html")]
struct PatientPage {
    nav: Nav,
    p: PatientRow,
    phone: String,
    orders: Vec<OrderRow>,
    can_order: bool,
}

pub async fn patient(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<i64>,
) -> Response {
    let (nav, lab) = nav(&state, &s, "/patients").await;
    let p = match state.app.patient(&s.actor, id).await {
        Ok(p) => p,
        Err(e) => return app_error_page(&e),
    };
    let orders = if s
        .actor
        .role
        .allows(aliquot_domain::auth::Permission::OrderRead)
    {
        state
            .app
            .find_orders(&s.actor, None, Some(id))
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    render(
        StatusCode::OK,
        &PatientPage {
            nav,
            phone: p.contact.phone.clone().unwrap_or_default(),
            p: PatientRow::from(&p),
            orders: orders
                .iter()
                .map(|o| OrderRow {
                    id: o.id,
                    created: when(o.created_at, &lab.tz),
                    priority: o.priority.clone(),
                    status: status_label(&o.status),
                    tests: o
                        .tests
                        .iter()
                        .map(|t| t.test_code.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                })
                .collect(),
            can_order: s
                .actor
                .role
                .allows(aliquot_domain::auth::Permission::OrderWrite),
        },
    )
}

pub(crate) struct TestChoice {
    pub code: String,
    pub name: String,
    pub loinc: String,
    pub panel: bool,
    pub search: String,
    pub checked: bool,
}

pub(crate) struct Choice {
    pub id: i64,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "order_new.html")]
struct NewOrderPage {
    nav: Nav,
    patient: PatientRow,
    f: OrderForm,
    tests: Vec<TestChoice>,
    providers: Vec<Choice>,
    locations: Vec<Choice>,
    error: Option<String>,
}

#[derive(Default)]
struct OrderForm {
    mrn: String,
    birth_date: String,
    codes: String,
    priority: String,
    timed_at: String,
    diagnosis_codes: String,
    placer_order_number: String,
    /// A winged (butterfly) collection set will be used.
    winged: bool,
    collected_at: String,
    notes: String,
    /// Tests ticked or typed, kept when the form comes back with an error.
    chosen: Vec<String>,
    provider: Option<i64>,
    location: Option<i64>,
}

async fn order_page(
    state: &AppState,
    s: &WebSession,
    patient_id: i64,
    f: OrderForm,
    error: Option<String>,
) -> Response {
    let (chosen, provider, location) = (&f.chosen, f.provider, f.location);
    let (nav, _) = nav(state, s, "/patients").await;
    let patient = match state.app.patient(&s.actor, patient_id).await {
        Ok(p) => PatientRow::from(&p),
        Err(e) => return app_error_page(&e),
    };
    let catalog = match state.app.catalog(&s.actor, false).await {
        Ok(c) => c,
        Err(e) => return app_error_page(&e),
    };
    let tests = catalog
        .iter()
        .map(|e| {
            let d = &e.definition;
            let loinc = d.loinc.clone().unwrap_or_default();
            TestChoice {
                search: format!("{} {} {}", d.code, d.name, loinc).to_lowercase(),
                checked: chosen.iter().any(|c| c.eq_ignore_ascii_case(&d.code)),
                code: d.code.clone(),
                name: d.name.clone(),
                loinc,
                panel: e.definition.is_panel(),
            }
        })
        .collect();
    let providers = state
        .app
        .providers(&s.actor)
        .await
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, p)| Choice {
            id: p.id,
            label: format!("{}, {} (NPI {})", p.family_name, p.given_name, p.npi),
            selected: provider.map_or(i == 0, |id| id == p.id),
        })
        .collect();
    let locations = state
        .app
        .locations(&s.actor)
        .await
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, l)| Choice {
            id: l.id,
            label: format!("{} — {}", l.code, l.name),
            selected: location.map_or(i == 0, |id| id == l.id),
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render(
        status,
        &NewOrderPage {
            nav,
            patient,
            f,
            tests,
            providers,
            locations,
            error,
        },
    )
}

pub async fn new_order(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<i64>,
) -> Response {
    let f = OrderForm {
        priority: "routine".into(),
        ..OrderForm::default()
    };
    order_page(&state, &s, id, f, None).await
}

/// Places the order through the same use case as `POST /api/v1/orders`; with a draw time
/// (a specimen that came with its requisition) each tube's collection is then recorded
/// through the collection use case, with the same two identifiers.
pub async fn place_order(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    form: FormData,
) -> Response {
    let lab = super::lab(&state).await;
    let patient_id: i64 = form.get("patient_id").parse().unwrap_or(0);
    let split = |text: &str| -> Vec<String> {
        text.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut tests = form.all("test");
    for code in split(form.get("codes")) {
        if !tests.iter().any(|t| t.eq_ignore_ascii_case(&code)) {
            tests.push(code);
        }
    }
    let ident = PatientIdentification {
        id: Some(patient_id),
        mrn: form.opt("mrn"),
        birth_date: form.opt("birth_date"),
        ..PatientIdentification::default()
    };
    let provider = form.get("provider_id").parse().ok();
    let location = form.get("location_id").parse().ok();
    let f = OrderForm {
        mrn: form.get("mrn").into(),
        birth_date: form.get("birth_date").into(),
        codes: String::new(),
        priority: form.get("priority").into(),
        timed_at: form.get("timed_at").into(),
        diagnosis_codes: form.get("diagnosis_codes").into(),
        placer_order_number: form.get("placer_order_number").into(),
        winged: form.get("winged_collection_set") == "on",
        collected_at: form.get("collected_at").into(),
        notes: form.get("clinical_notes").into(),
        chosen: tests.clone(),
        provider,
        location,
    };
    let input = NewOrderInput {
        patient: ident.clone(),
        provider_id: provider.unwrap_or(0),
        location_id: location.unwrap_or(0),
        tests: tests.clone(),
        priority: f.priority.clone(),
        timed_at: form
            .opt("timed_at")
            .map(|t| super::local_to_rfc3339(&t, &lab.tz)),
        clinical_notes: form.opt("clinical_notes"),
        diagnosis_codes: split(&f.diagnosis_codes),
        placer_order_number: form.opt("placer_order_number"),
        winged_collection_set: f.winged,
    };
    let order = match state.app.place_order(&s.actor, input).await {
        Ok(o) => o,
        Err(e) => {
            let error = Some(message(&e));
            return order_page(&state, &s, patient_id, f, error).await;
        }
    };
    if let Some(drawn) = form.opt("collected_at") {
        let at = super::local_to_rfc3339(&drawn, &lab.tz);
        for tube in &order.specimens {
            let input = CollectInput {
                collected_at: at.clone(),
                collector: form.opt("collector"),
                site: None,
                patient: PatientIdentification {
                    id: None,
                    ..ident.clone()
                },
                temperature: None,
            };
            if let Err(e) = state
                .app
                .collect_specimen(&s.actor, &tube.accession, input)
                .await
            {
                // The order stands; the page says which draw time was not recorded.
                return see_other(&format!(
                    "/orders/{}?draw_error={}",
                    order.id,
                    urlencode(&message(&e))
                ));
            }
        }
    }
    see_other(&format!("/orders/{}", order.id))
}

pub(crate) struct TubeRow {
    pub accession: String,
    pub container: String,
    pub cap: String,
    pub cap_class: String,
    pub specimen_type: String,
    pub status: String,
    pub tests: String,
    pub collected: String,
    /// A discard tube is drawn just before this one (winged set, citrate first).
    pub discard_before: bool,
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderPage {
    nav: Nav,
    id: i64,
    patient: PatientRow,
    priority: String,
    stat: bool,
    status: String,
    created: String,
    placer: String,
    diagnosis: String,
    tubes: Vec<TubeRow>,
    results: Vec<OrderResultRow>,
    draw_error: Option<String>,
    can_label: bool,
    can_verify: bool,
}

/// An ordered test and its result on the order page (each result opens its own page, with
/// its versions and the correction form).
pub(crate) struct OrderResultRow {
    pub test: String,
    pub accession: String,
    pub status: String,
    pub result_id: Option<i64>,
    pub value: String,
    pub interval: String,
}

#[derive(Deserialize)]
pub struct OrderQuery {
    draw_error: Option<String>,
}

/// A CSS class for a cap colour (`cap-lavender` …): letters only.
pub(crate) fn cap_class(colour: &str) -> String {
    let c: String = colour
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphabetic())
        .collect();
    format!("cap-{c}")
}

pub async fn order(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<i64>,
    Query(q): Query<OrderQuery>,
) -> Response {
    let (nav, lab) = nav(&state, &s, "/patients").await;
    let o = match state.app.order(&s.actor, id).await {
        Ok(o) => o,
        Err(e) => return app_error_page(&e),
    };
    let patient = match state.app.patient(&s.actor, o.patient_id).await {
        Ok(p) => PatientRow::from(&p),
        Err(e) => return app_error_page(&e),
    };
    let tubes = o
        .specimens
        .iter()
        .map(|t| TubeRow {
            accession: t.accession.clone(),
            container: t.container_name.clone(),
            cap: t.cap_colour.clone(),
            cap_class: cap_class(&t.cap_colour),
            specimen_type: t.specimen_type.replace('_', " "),
            status: status_label(&t.status),
            tests: t.tests.join(" "),
            collected: t.collected_at.map(|c| when(c, &lab.tz)).unwrap_or_default(),
            discard_before: t.discard_tube_before,
        })
        .collect();
    let results = o
        .tests
        .iter()
        .map(|t| OrderResultRow {
            test: t.test_code.clone(),
            accession: t.accession.clone(),
            status: status_label(
                t.result
                    .as_ref()
                    .map(|r| r.status.as_str())
                    .unwrap_or(t.status.as_str()),
            ),
            result_id: t.result.as_ref().map(|r| r.id),
            value: t
                .result
                .as_ref()
                .map(|r| {
                    format!(
                        "{} {} {}",
                        r.value,
                        r.units.as_deref().unwrap_or_default(),
                        r.flags.join(" ")
                    )
                    .trim()
                    .to_owned()
                })
                .unwrap_or_default(),
            interval: t
                .result
                .as_ref()
                .and_then(|r| r.reference_interval.as_ref())
                .map(|i| i.text.clone())
                .unwrap_or_default(),
        })
        .collect();
    render(
        StatusCode::OK,
        &OrderPage {
            nav,
            id: o.id,
            patient,
            stat: o.priority == "stat",
            priority: o.priority.clone(),
            status: status_label(&o.status),
            created: when(o.created_at, &lab.tz),
            placer: o.placer_order_number.clone().unwrap_or_default(),
            diagnosis: o.diagnosis_codes.join(" "),
            tubes,
            results,
            draw_error: q.draw_error,
            can_verify: s
                .actor
                .role
                .allows(aliquot_domain::auth::Permission::ResultVerify),
            can_label: s
                .actor
                .role
                .allows(aliquot_domain::auth::Permission::SpecimenCollect),
        },
    )
}

pub(crate) struct LabelView {
    pub accession: String,
    /// The SVG rendered by `aliquot-labels` through the label use case (counted, audited).
    pub svg: String,
    pub print: i64,
}

#[derive(Template)]
#[template(path = "labels.html")]
struct LabelsPage {
    nav: Nav,
    id: i64,
    labels: Vec<LabelView>,
    errors: Vec<String>,
}

/// Prints the order's labels (SVG in the browser): each one through the label use case, so
/// every print is counted, audited and access-logged, and a reprint says `Rn`. A POST, so a
/// reload never prints again unasked.
pub async fn labels(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<i64>,
) -> Response {
    let (nav, _) = nav(&state, &s, "/patients").await;
    let o = match state.app.order(&s.actor, id).await {
        Ok(o) => o,
        Err(e) => return app_error_page(&e),
    };
    let mut labels = Vec::new();
    let mut errors = Vec::new();
    for t in &o.specimens {
        match state
            .app
            .specimen_label(&s.actor, &t.accession, "svg")
            .await
        {
            Ok(l) => labels.push(LabelView {
                accession: t.accession.clone(),
                svg: strip_xml_prolog(&l.body),
                print: l.print,
            }),
            Err(e) => errors.push(format!("{}: {}", t.accession, message(&e))),
        }
    }
    render(
        StatusCode::OK,
        &LabelsPage {
            nav,
            id,
            labels,
            errors,
        },
    )
}

/// An SVG document without its `<?xml …?>` line, to be placed inside HTML.
pub(crate) fn strip_xml_prolog(svg: &str) -> String {
    match svg.trim_start().strip_prefix("<?xml") {
        Some(rest) => rest
            .find("?>")
            .map(|i| rest[i + 2..].trim_start().to_owned())
            .unwrap_or_default(),
        None => svg.to_owned(),
    }
}
