//! The API integration suite: every test runs on SQLite and on PostgreSQL through the real
//! HTTP server on a loopback socket.

mod support;

mod auth;
mod bad_input;
mod catalog;
// the API contract schemathesis checks, and forwarded-for behind a proxy (issue 16)
mod contract;
mod durability;
// second factor, electronic signatures, separation of duties (issue 16)
mod grants;
mod matrix;
mod mfa;
mod orders;
mod patient_corrections;
mod patients;
mod proxy;
mod signatures;
// duplicates, physicians, clinical sex (issue 10 items 15-17)
mod registration_rules;
mod settings_audit;
mod specimens;
// receipt attestations, containers, add-ons (issue 10 items 4-6)
mod receipt;
// tests never vanish: pending tests, cancel one, per-test not performed (issue 10 items 7, 11)
mod pending_tests;
// processing (issue 4)
mod processing;

// results (issue 11)
mod reports;
mod results;

// FHIR R4 (issue 14)
mod fhir;
// The venv of fhir.resources, with the CLI's cross-checks' helper.
#[path = "../../../cli/tests/pypi/mod.rs"]
mod pypi;

// instrument and EMR connections (issue 12)
mod emr_orders;
mod interfaces;
mod outbox;

// quality control and calibration (issue 13)
mod qc;

// storage, transport, send-out, disposal (issue 4)
mod storage;
// reference laboratories, shipments, results as received (issue 14 item 4)
mod sendouts;

// stability, unspun blood, spin protocols, retention by use (issue 10 items 2, 3, 8-10)
mod stability;

// turnaround time (issue 4)
mod users;

// the web UI's self-refreshing board and the idle timeout (issue 15 item 10)
mod web_session;
