//! Embedded migrations, one list per backend. The two lists hold the same versions and names
//! in the same order (a test checks it, and that every file on disk is listed). Never edit
//! an applied migration: add a new one to both lists.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// `(version, name, sql)`.
pub type MigrationSource = (i64, &'static str, &'static str);

macro_rules! migrations {
    ($dir:literal: $(($v:literal, $name:literal)),* $(,)?) => {
        &[$(($v, $name, include_str!(concat!("../migrations/", $dir, "/", $name, ".sql")))),*]
    };
}

pub const SQLITE: &[MigrationSource] = migrations!(
    "sqlite": (1, "0001_platform"),
    (2, "0002_registration"),
    (3, "0003_specimen_lifecycle"),
    (4, "0004_processing"),
    (5, "0005_storage"),
    (6, "0006_follow_up_and_tat"),
    (7, "0007_idempotency"),
    (8, "0008_custody_append_only"),
    (9, "0009_patient_versions"),
    (10, "0010_results"),
    (11, "0011_connections"),
    (12, "0012_outbox"),
    (13, "0013_instrument_connect_out"),
    (14, "0014_qc"),
    (15, "0015_registration_keys_clinical_sex_physicians"),
    (16, "0016_retention_by_use"),
    (17, "0017_receipt_demand_container"),
    (18, "0018_report_versions"),
    (19, "0019_login_attempts"),
    (20, "0020_audit_key"),
    (21, "0021_reference_labs_shipments"),
    (22, "0022_specimen_events_by_kind_and_time"),
    (23, "0023_winged_collection_set"),
    (24, "0024_outbox_by_order"),
    (25, "0025_access_log_chain"),
    (26, "0026_mfa"),
    (27, "0027_role_grants")
);
pub const POSTGRES: &[MigrationSource] = migrations!(
    "postgres": (1, "0001_platform"),
    (2, "0002_registration"),
    (3, "0003_specimen_lifecycle"),
    (4, "0004_processing"),
    (5, "0005_storage"),
    (6, "0006_follow_up_and_tat"),
    (7, "0007_idempotency"),
    (8, "0008_custody_append_only"),
    (9, "0009_patient_versions"),
    (10, "0010_results"),
    (11, "0011_connections"),
    (12, "0012_outbox"),
    (13, "0013_instrument_connect_out"),
    (14, "0014_qc"),
    (15, "0015_registration_keys_clinical_sex_physicians"),
    (16, "0016_retention_by_use"),
    (17, "0017_receipt_demand_container"),
    (18, "0018_report_versions"),
    (19, "0019_login_attempts"),
    (20, "0020_audit_key"),
    (21, "0021_reference_labs_shipments"),
    (22, "0022_specimen_events_by_kind_and_time"),
    (23, "0023_winged_collection_set"),
    (24, "0024_outbox_by_order"),
    (25, "0025_access_log_chain"),
    (26, "0026_mfa"),
    (27, "0027_role_grants")
);

pub(crate) fn migrator(list: &[MigrationSource]) -> Migrator {
    let migrations = list
        .iter()
        .map(|(version, name, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*name),
                MigrationType::Simple,
                (*sql).into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}
