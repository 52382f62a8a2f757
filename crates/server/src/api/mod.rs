//! The REST API under `/api/v1`, plus `/healthz` and `/metrics`.

pub mod audit;
pub mod auth;
pub mod catalog;
// instrument and EMR connections (issue 12)
pub mod connections;
pub mod directory;
pub mod grants;
pub mod mfa;
pub mod orders;
pub mod outbox;
pub mod patients;
// quality control and calibration (issue 13)
pub mod qc;
pub mod reports;
pub mod settings;
pub mod specimens;
// processing (issue 4)
pub mod processing;

// storage, transport, send-out, disposal (issue 4)
pub mod storage;
// reference laboratories, shipments, outstanding send-outs (issue 14 item 4)
pub mod sendouts;

// results (issue 11)
pub mod results;

// turnaround time (issue 4)
pub mod system;
pub mod tat;
pub mod users;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aliquot",
        description = "Aliquot laboratory information system REST API. Errors are \
                       `{\"error\": {\"code\", \"message\", \"field\"?}}`.",
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "system", description = "Health, metrics, API description"),
        (name = "auth", description = "Tokens and the caller's account"),
        (name = "users", description = "User administration"),
        (name = "settings", description = "Lab-wide settings"),
        (name = "audit", description = "Audit trail and access log"),
        (name = "patients", description = "Registration, search, correction, merge"),
        (name = "directory", description = "Ordering providers and client locations"),
        (name = "catalog", description = "Test catalogue"),
        (name = "orders", description = "Requisitions, accession numbers, tube plans"),
        (name = "specimens", description = "Specimen lifecycle: labels, collection, receipt, rejection"),
        (name = "results", description = "Results: entry, autoverification, review and release, corrections, critical calls, worklists, result rules"),
        (name = "connections", description = "Instruments and their test codes, the interface message log and error queue, outbound destinations and the outbox"),
        (name = "reports", description = "Patient reports as PDF: an order's report (preliminary, final, corrected; every version kept), a patient's cumulative report, a client location's batch print"),
        (name = "send-outs", description = "Send-outs to reference laboratories: the registry (name, address, CLIA number, expected turnaround, test codes), shipments with their manifests and tracking, the outstanding list"),
        (name = "qc", description = "Quality control and calibration: control lots and targets, Westgard rules, QC runs, locks on patient results, corrective actions, statistics, Levey-Jennings charts"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every route, with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::healthz))
        .routes(routes!(system::metrics))
        .routes(routes!(system::openapi_json))
        .routes(routes!(auth::token))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::change_password))
        .routes(routes!(mfa::enroll))
        .routes(routes!(mfa::confirm))
        .routes(routes!(mfa::status))
        .routes(routes!(mfa::reset))
        .routes(routes!(grants::list, grants::request))
        .routes(routes!(grants::approve))
        .routes(routes!(grants::reject))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::set_role))
        .routes(routes!(users::set_disabled))
        .routes(routes!(users::set_provider))
        .routes(routes!(settings::list))
        .routes(routes!(settings::put))
        .routes(routes!(audit::events))
        .routes(routes!(audit::verify))
        .routes(routes!(audit::access_log))
        .routes(routes!(patients::register, patients::search))
        .routes(routes!(patients::get, patients::correct))
        .routes(routes!(patients::versions))
        .routes(routes!(patients::merge))
        .routes(routes!(patients::unmerge))
        .routes(routes!(
            directory::create_provider,
            directory::list_providers
        ))
        .routes(routes!(
            directory::create_location,
            directory::list_locations
        ))
        .routes(routes!(qc::create_lot, qc::list_lots))
        .routes(routes!(qc::set_target, qc::list_targets))
        .routes(routes!(qc::establish_target))
        .routes(routes!(qc::put_config, qc::get_config))
        .routes(routes!(qc::post_run))
        .routes(routes!(qc::list_runs))
        .routes(routes!(qc::status))
        .routes(routes!(qc::corrective_action))
        .routes(routes!(qc::record_calibration, qc::list_calibrations))
        .routes(routes!(qc::statistics))
        .routes(routes!(qc::chart))
        .routes(routes!(reports::order_report))
        .routes(routes!(reports::cumulative_report))
        .routes(routes!(reports::batch_reports))
        .routes(routes!(catalog::list, catalog::create))
        .routes(routes!(catalog::get, catalog::update))
        .routes(routes!(catalog::retire))
        .routes(routes!(catalog::versions))
        .routes(routes!(orders::place, orders::search))
        .routes(routes!(orders::get))
        .routes(routes!(orders::cancel))
        .routes(routes!(orders::add_test))
        .routes(routes!(orders::cancel_test))
        .routes(routes!(orders::attach_scan, orders::list_scans))
        .routes(routes!(orders::get_scan))
        .routes(routes!(specimens::get))
        .routes(routes!(specimens::resolve_problem))
        .routes(routes!(specimens::complete_task))
        .routes(routes!(specimens::label))
        .routes(routes!(specimens::collect))
        .routes(routes!(specimens::correct_collection_time))
        .routes(routes!(specimens::receive))
        .routes(routes!(specimens::reject))
        .routes(routes!(specimens::problem_log))
        .routes(routes!(specimens::recollect_tasks))
        // processing (issue 4)
        .routes(routes!(processing::start_processing))
        .routes(routes!(processing::centrifuge))
        .routes(routes!(processing::complete_processing))
        .routes(routes!(processing::aliquot))
        .routes(routes!(processing::lineage))
        .routes(routes!(processing::dilute))
        .routes(routes!(processing::sorting))
        // storage, transport, send-out, disposal (issue 4)
        .routes(routes!(storage::create_unit, storage::list_units))
        .routes(routes!(storage::contents))
        .routes(routes!(storage::locate))
        .routes(routes!(storage::store))
        .routes(routes!(storage::retrieve))
        .routes(routes!(storage::dispose))
        .routes(routes!(storage::retention))
        .routes(routes!(storage::put_retention))
        .routes(routes!(storage::disposal_due))
        .routes(routes!(storage::dispatch))
        .routes(routes!(storage::manifest))
        .routes(routes!(storage::send_out))
        .routes(routes!(storage::send_outs))
        .routes(routes!(sendouts::outstanding))
        .routes(routes!(sendouts::register_lab, sendouts::list_labs))
        .routes(routes!(sendouts::get_lab, sendouts::replace_lab))
        .routes(routes!(sendouts::pack, sendouts::list))
        .routes(routes!(sendouts::get))
        .routes(routes!(sendouts::ship))
        .routes(routes!(sendouts::receive))
        .routes(routes!(sendouts::manifest))
        .routes(routes!(sendouts::manifest_pdf))
        // turnaround time (issue 4)
        .routes(routes!(tat::order_tat))
        .routes(routes!(tat::overdue))
        // results (issue 11)
        .routes(routes!(results::post))
        .routes(routes!(results::get))
        .routes(routes!(results::verify))
        .routes(routes!(results::correct))
        .routes(routes!(results::critical_call))
        .routes(routes!(results::open_calls))
        .routes(routes!(results::worklist))
        .routes(routes!(results::cumulative))
        .routes(routes!(results::get_rules, results::put_rules))
        .routes(routes!(results::rule_versions))
        .routes(routes!(results::verify_order))
        .routes(routes!(results::not_performed))
        // instrument and EMR connections (issue 12)
        .routes(routes!(connections::register, connections::list))
        .routes(routes!(connections::get, connections::replace))
        .routes(routes!(connections::messages))
        .routes(routes!(connections::message))
        .routes(routes!(connections::replay))
        // outbound results to the EMR (issue 12)
        .routes(routes!(
            outbox::register_destination,
            outbox::list_destinations
        ))
        .routes(routes!(
            outbox::get_destination,
            outbox::replace_destination
        ))
        .routes(routes!(outbox::list))
        .routes(routes!(outbox::get))
        .routes(routes!(outbox::retry))
        .routes(routes!(outbox::skip))
}
