//! Aliquot's persistence: one [`Store`] interface, two real backends (embedded SQLite and
//! PostgreSQL), per-backend migrations kept in lockstep, and the hash-chained audit trail.
//!
//! API boundary: this is the only crate that contains SQL. The use cases (`aliquot-app`) see
//! [`Store`] for reads and [`Tx`] for a write transaction; a change and its audit entries are
//! committed by the same [`Tx::commit`]. Audit rows can only be appended: there is no update
//! or delete of them in this API, and triggers on both backends refuse it in SQL.
//!
//! The SQL text is shared by both backends (`$N` placeholders work on both); method bodies
//! are stamped out for each backend by one macro in [`backend`], so a query cannot drift
//! between them. Dialect differences are kept in the small `Dialect` constants.

pub mod access_chain;
pub mod audit;
mod backend;
pub mod backup;
mod checkpoint;
pub mod claim;
pub mod group;
pub mod keyfile;
pub mod migrations;
mod queries;
pub mod records;
mod redact;
pub mod seed;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;

pub use audit::{Anchor, AuditEntry, AuditRecord, ChainBreak, ChainKey, ChainReport};
pub use backend::{PgStore, SqliteStore};
pub use claim::{RequestClaim, with_claim};
pub use records::*;

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Where the database lives: picked from `--database` (a `postgres://` URL, or `sqlite:PATH`)
/// or, without it, an SQLite file under the data directory.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseConfig {
    Sqlite { path: PathBuf },
    Postgres { url: String },
}

impl std::fmt::Debug for DatabaseConfig {
    /// Never prints a PostgreSQL password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseConfig::Sqlite { path } => write!(f, "sqlite:{}", path.display()),
            DatabaseConfig::Postgres { url } => write!(f, "{}", redact_url(url)),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((cred, host)) => match cred.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl DatabaseConfig {
    /// From the `--database` and `--data-dir` options.
    pub fn from_options(
        database: Option<&str>,
        data_dir: &std::path::Path,
    ) -> Result<Self, StoreError> {
        match database {
            None | Some("") => Ok(DatabaseConfig::Sqlite {
                path: data_dir.join("aliquot.db"),
            }),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(DatabaseConfig::Postgres {
                    url: url.to_owned(),
                })
            }
            Some(url) => match url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
            {
                Some(path) if !path.is_empty() => Ok(DatabaseConfig::Sqlite {
                    path: PathBuf::from(path),
                }),
                _ => Err(StoreError::Config(
                    "--database must be a postgres:// URL or sqlite:PATH".into(),
                )),
            },
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseConfig::Sqlite { .. } => Backend::Sqlite,
            DatabaseConfig::Postgres { .. } => Backend::Postgres,
        }
    }
}

/// Opens (creating and migrating when new) the database named by `config`, without an
/// audit key (refused for a database whose chain is keyed).
pub async fn open(config: &DatabaseConfig) -> Result<Arc<dyn Store>, StoreError> {
    open_with_key(config, None).await
}

/// Opens the database and binds its audit chain to the key file `key_file` (created with
/// mode 0600 when missing; see [`keyfile`]).
pub async fn open_with_key(
    config: &DatabaseConfig,
    key_file: Option<&std::path::Path>,
) -> Result<Arc<dyn Store>, StoreError> {
    match config {
        DatabaseConfig::Sqlite { path } => {
            Ok(Arc::new(SqliteStore::open_with_key(path, key_file).await?))
        }
        DatabaseConfig::Postgres { url } => {
            Ok(Arc::new(PgStore::open_with_key(url, key_file).await?))
        }
    }
}

/// Errors of the store. `Conflict` is a unique-key clash the caller may report as 409.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("migration failed: {0}")]
    Migration(String),
    /// The writer's own failures (a group rolled back, a commit whose outcome is unknown).
    #[error("database error: {0}")]
    Database(String),
    /// An error of the database driver, kept whole as the source (connection, protocol,
    /// constraint): its kind tells a lost connection from a refused statement.
    #[error("database error: {source}")]
    Sql {
        #[source]
        source: sqlx::Error,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_owned())
            }
            _ => StoreError::Sql { source: e },
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Reads, on the read side of the database (a pool of readers on SQLite).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Starts a write transaction on the process's writer connection (a savepoint in a group
    /// commit, see [`group`]). On SQLite the group begins with `BEGIN IMMEDIATE`, so it never
    /// fails with SQLITE_BUSY while another process writes; it waits (busy timeout).
    async fn begin(&self) -> StoreResult<Box<dyn Tx>>;

    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Closes the pools, waiting for connections to be returned.
    async fn close(&self);

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    async fn user_by_id(&self, id: i64) -> StoreResult<Option<UserRecord>>;
    async fn list_users(&self) -> StoreResult<Vec<UserRecord>>;
    /// A user's second factor, pending or confirmed.
    async fn user_mfa(&self, user_id: i64) -> StoreResult<Option<MfaRecord>>;
    /// Role grants, newest first (only pending ones with `pending_only`), at most `limit`.
    async fn role_grants(
        &self,
        pending_only: bool,
        limit: i64,
    ) -> StoreResult<Vec<RoleGrantRecord>>;
    async fn session_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<SessionAuth>>;
    /// Failed credential checks since `since` around `(address, account)`.
    async fn login_attempts(
        &self,
        address: &str,
        account: &str,
        since: Timestamp,
    ) -> StoreResult<LoginAttempts>;
    async fn list_settings(&self) -> StoreResult<Vec<SettingRecord>>;
    async fn setting(&self, key: &str) -> StoreResult<Option<SettingRecord>>;

    /// Audit events with `seq > after`, oldest first, at most `limit`, optionally of one entity.
    async fn audit_events(
        &self,
        after: i64,
        limit: i64,
        entity: Option<(&str, &str)>,
    ) -> StoreResult<Vec<AuditRecord>>;
    async fn access_log(&self, after: i64, limit: i64) -> StoreResult<Vec<AccessRecord>>;

    /// Walks the whole audit chain (every row present, in one snapshot) and reports the first
    /// broken link, if any.
    async fn verify_audit_chain(&self) -> StoreResult<ChainReport>;
    /// The same, and the chain must still contain the anchor's event with the anchor's hash.
    async fn verify_audit_anchor(&self, anchor: Option<&Anchor>) -> StoreResult<ChainReport>;
    /// Walks the access log's chain (`access_chain`; the rows written since migration 0025,
    /// in one snapshot) and reports the first broken link, if any.
    async fn verify_access_chain(&self) -> StoreResult<ChainReport>;
    /// The database's own integrity check: SQLite's `PRAGMA integrity_check` (every page,
    /// b-tree, index entry and constraint), the problems it names (empty: intact). `None` on
    /// PostgreSQL, which has no check without an extension (`pg_amcheck`, data checksums).
    async fn integrity_check(&self) -> StoreResult<Option<Vec<String>>>;

    /// Records a read of patient data in the access log, in its own short write (cheaper
    /// than a transaction for a read-only request).
    async fn record_access(&self, entry: &AccessEntry) -> StoreResult<()>;

    async fn patient_by_id(&self, id: i64) -> StoreResult<Option<PatientRecord>>;
    async fn search_patients(&self, q: &PatientQuery) -> StoreResult<Vec<PatientRecord>>;
    /// The provider a user is linked to, if any (a physician's own orders).
    async fn user_provider(&self, user_id: i64) -> StoreResult<Option<i64>>;
    /// Whether the patient has an order placed by the provider.
    async fn patient_ordered_by(&self, patient_id: i64, provider_id: i64) -> StoreResult<bool>;
    async fn merge_by_id(&self, id: i64) -> StoreResult<Option<MergeRecord>>;
    /// The demographics a patient's corrections replaced, oldest first.
    async fn patient_versions(&self, patient_id: i64) -> StoreResult<Vec<PatientVersionRecord>>;
    async fn provider_by_id(&self, id: i64) -> StoreResult<Option<ProviderRecord>>;
    /// The provider with this NPI (unique), for interfaces naming providers by NPI.
    async fn provider_by_npi(&self, npi: &str) -> StoreResult<Option<ProviderRecord>>;
    async fn list_providers(&self) -> StoreResult<Vec<ProviderRecord>>;
    async fn location_by_id(&self, id: i64) -> StoreResult<Option<LocationRecord>>;
    /// The client location with this code (unique), for interfaces naming locations by code.
    async fn location_by_code(&self, code: &str) -> StoreResult<Option<LocationRecord>>;
    async fn list_locations(&self) -> StoreResult<Vec<LocationRecord>>;
    async fn list_catalog(&self, include_retired: bool) -> StoreResult<Vec<CatalogTestRecord>>;
    async fn catalog_by_code(&self, code: &str) -> StoreResult<Option<CatalogTestRecord>>;
    async fn order_by_id(&self, id: i64) -> StoreResult<Option<OrderRecord>>;
    async fn orders_by(
        &self,
        placer_order_number: Option<&str>,
        patient_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<OrderRecord>>;
    async fn specimens_of_order(&self, order_id: i64) -> StoreResult<Vec<SpecimenRecord>>;
    async fn tests_of_order(&self, order_id: i64) -> StoreResult<Vec<OrderTestRecord>>;
    async fn scan_by_id(&self, id: i64) -> StoreResult<Option<ScanRecord>>;
    async fn catalog_versions(&self, test_id: i64) -> StoreResult<Vec<CatalogVersionRecord>>;
    async fn scans_of_order(&self, order_id: i64) -> StoreResult<Vec<ScanRecord>>;

    // Specimen lifecycle.
    async fn specimen_by_accession(&self, accession: &str) -> StoreResult<Option<SpecimenRecord>>;
    /// A specimen's chain of custody, oldest first.
    async fn specimen_events(&self, specimen_id: i64) -> StoreResult<Vec<SpecimenEventRecord>>;
    /// The draw list: tubes still to be drawn (`planned`) of active orders, of one ordering
    /// location or all, most urgent priority first, then the oldest order, in order of draw.
    async fn planned_specimens(
        &self,
        location_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<SpecimenRecord>>;
    /// When tubes were received (custody events `receive`) at or after `since`.
    async fn receipt_times(&self, since: Timestamp) -> StoreResult<Vec<Timestamp>>;
    /// Problem-log entries (only unresolved ones with `open_only`), oldest first.
    async fn problem_log(&self, open_only: bool, limit: i64) -> StoreResult<Vec<ProblemRecord>>;
    async fn problem_by_id(&self, id: i64) -> StoreResult<Option<ProblemRecord>>;
    async fn recollect_task_by_id(&self, id: i64) -> StoreResult<Option<RecollectTaskRecord>>;
    /// Recollection tasks (only those not done with `open_only`), oldest first.
    async fn recollect_tasks(
        &self,
        open_only: bool,
        limit: i64,
    ) -> StoreResult<Vec<RecollectTaskRecord>>;

    // ── processing: centrifugation, aliquots, dilutions, routing (issue 4) ──

    /// The aliquots poured from a specimen, oldest first.
    async fn specimen_children(&self, parent_id: i64) -> StoreResult<Vec<SpecimenRecord>>;
    /// The specimen an aliquot was poured from.
    async fn specimen_parent(&self, specimen_id: i64) -> StoreResult<Option<SpecimenRecord>>;
    async fn centrifugations(&self, specimen_id: i64) -> StoreResult<Vec<CentrifugationRecord>>;
    async fn dilutions(&self, specimen_id: i64) -> StoreResult<Vec<DilutionRecord>>;
    /// Specimens in status `a` or `b`, most urgent priority first, then oldest receipt, then
    /// accession; at most `limit`, each with its tests.
    async fn sorting_list(&self, a: &str, b: &str, limit: i64) -> StoreResult<Vec<SortingRecord>>;

    // ── storage, transport, send-out, disposal (issue 4) ──
    async fn storage_units(&self) -> StoreResult<Vec<StorageUnitRecord>>;
    /// `(unit_id, specimens currently placed in it)` for every holder holding any.
    async fn placement_counts(&self) -> StoreResult<Vec<(i64, i64)>>;
    /// Specimens currently placed in these holders, by holder path and position.
    async fn stored_in(
        &self,
        unit_ids: &[i64],
        limit: i64,
    ) -> StoreResult<Vec<StoredSpecimenRecord>>;
    /// The specimen's most recent placement (current when `removed_at` is `None`).
    async fn latest_placement(&self, specimen_id: i64) -> StoreResult<Option<PlacementRecord>>;
    async fn retention_policies(&self) -> StoreResult<Vec<RetentionPolicyRecord>>;
    /// Retention rules by specimen type and use (department or test).
    async fn retention_use_policies(&self) -> StoreResult<Vec<RetentionUseRecord>>;
    /// Stored specimens placed at or before the cutoff of their type, oldest first.
    async fn stored_before(
        &self,
        cutoffs: &[(String, Timestamp)],
        limit: i64,
    ) -> StoreResult<Vec<StoredSpecimenRecord>>;
    /// Rejected specimens (not yet disposed of), oldest rejection first.
    async fn rejected_specimens(&self, limit: i64) -> StoreResult<Vec<RejectedSpecimenRecord>>;
    /// Send-outs (only those without results with `open_only`), oldest first.
    async fn send_outs(&self, open_only: bool, limit: i64) -> StoreResult<Vec<SendOutRecord>>;

    // ── reference laboratories and shipments (issue 14 item 4) ──
    async fn reference_labs(&self) -> StoreResult<Vec<ReferenceLabRecord>>;
    async fn reference_lab_by_code(&self, code: &str) -> StoreResult<Option<ReferenceLabRecord>>;
    async fn reference_lab_by_id(&self, id: i64) -> StoreResult<Option<ReferenceLabRecord>>;
    async fn reference_lab_test_codes(
        &self,
        reference_lab_id: i64,
    ) -> StoreResult<Vec<ReferenceLabTestCodeRecord>>;
    /// Shipments, newest first, of one status when given.
    async fn shipments(&self, status: Option<&str>, limit: i64)
    -> StoreResult<Vec<ShipmentRecord>>;
    async fn shipment_by_id(&self, id: i64) -> StoreResult<Option<ShipmentRecord>>;
    async fn shipment_events(&self, shipment_id: i64) -> StoreResult<Vec<ShipmentEventRecord>>;
    async fn send_outs_of_shipment(&self, shipment_id: i64) -> StoreResult<Vec<SendOutRecord>>;
    async fn send_outs_of_specimen(&self, specimen_id: i64) -> StoreResult<Vec<SendOutRecord>>;

    // ── turnaround time (issue 4) ──
    /// The tests of one order with their TAT milestones.
    async fn tat_of_order(&self, order_id: i64) -> StoreResult<Vec<TatRow>>;
    /// Tests running in the lab (specimen held, order active, test not finished), most
    /// urgent priority first, at most `limit`.
    async fn running_tests(&self, limit: i64) -> StoreResult<Vec<TatRow>>;
    /// A bench's entry list: the first `limit` running tests of `test_codes` (in
    /// [`Store::running_tests`]' order) with what their rows show, and how many there are.
    async fn entry_list_rows(
        &self,
        test_codes: &[String],
        limit: i64,
    ) -> StoreResult<EntryListRows>;

    // ── access log ──
    /// The patients these specimens and orders belong to (sorted, without repeats), for the
    /// access-log row of a list that shows them.
    async fn patients_of(&self, specimen_ids: &[i64], order_ids: &[i64]) -> StoreResult<Vec<i64>>;
    // ── outbox (issue 12) ──
    /// Every outbound destination by code; `active` leaves out the retired ones.
    async fn destinations(&self, active: bool) -> StoreResult<Vec<DestinationRecord>>;
    async fn destination_by_code(&self, code: &str) -> StoreResult<Option<DestinationRecord>>;
    async fn outbox_by_id(&self, id: i64) -> StoreResult<Option<OutboxRecord>>;
    /// How many rows each destination's queue holds: `(destination id, status, count)` for
    /// `pending` and `failed`.
    async fn outbox_queue_counts(&self) -> StoreResult<Vec<(i64, String, i64)>>;
    /// The head of a destination's queue: its oldest row neither sent nor skipped.
    async fn outbox_head(&self, destination_id: i64) -> StoreResult<Option<OutboxRecord>>;
    /// Newest first; `destination` and `status` narrow the list, `before` pages it by id.
    async fn outbox_list(
        &self,
        destination_id: Option<i64>,
        status: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<OutboxRecord>>;
    // ── quality control (issue 13) ──
    /// Every control lot, newest first.
    async fn qc_lots(&self) -> StoreResult<Vec<QcLotRecord>>;
    async fn qc_lot(&self, lot: &str, level: i64) -> StoreResult<Option<QcLotRecord>>;
    /// Every target of an instrument and test, in the order they took effect.
    async fn qc_targets(
        &self,
        instrument_id: i64,
        test_code: &str,
    ) -> StoreResult<Vec<QcTargetRecord>>;
    async fn qc_config(
        &self,
        instrument_id: i64,
        test_code: &str,
    ) -> StoreResult<Option<QcConfigRecord>>;
    async fn qc_configs(&self) -> StoreResult<Vec<QcConfigRecord>>;
    /// Runs with their control values, oldest first.
    async fn qc_runs(
        &self,
        instrument_id: i64,
        test_code: &str,
        range: RunRange,
    ) -> StoreResult<Vec<QcRunRecord>>;
    /// The instrument and test pairs with QC runs or a configuration.
    async fn qc_pairs(&self) -> StoreResult<Vec<(i64, String)>>;
    async fn qc_open_lock(
        &self,
        instrument_id: i64,
        test_code: &str,
    ) -> StoreResult<Option<QcLockRecord>>;
    /// Newest first.
    async fn qc_locks(
        &self,
        instrument_id: i64,
        test_code: &str,
        limit: i64,
    ) -> StoreResult<Vec<QcLockRecord>>;
    async fn qc_corrective_actions(
        &self,
        lock_id: i64,
    ) -> StoreResult<Vec<QcCorrectiveActionRecord>>;
    async fn qc_corrective_actions_between(
        &self,
        instrument_id: i64,
        test_code: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<Vec<QcCorrectiveActionRecord>>;
    /// Newest first.
    async fn qc_calibrations(
        &self,
        instrument_id: i64,
        test_code: &str,
        limit: i64,
    ) -> StoreResult<Vec<QcCalibrationRecord>>;
    /// Patient results of a test measured on an instrument (by code) since a time, oldest first.
    async fn results_on_instrument(
        &self,
        instrument_code: &str,
        test_code: &str,
        since: Option<Timestamp>,
        limit: i64,
    ) -> StoreResult<Vec<ResultRecord>>;
    // ── connections (issue 12) ──
    async fn instruments(&self) -> StoreResult<Vec<InstrumentRecord>>;
    async fn instrument_by_code(&self, code: &str) -> StoreResult<Option<InstrumentRecord>>;
    async fn instrument_by_sender(
        &self,
        protocol: &str,
        sender: &str,
    ) -> StoreResult<Option<InstrumentRecord>>;
    async fn instrument_test_codes(
        &self,
        instrument_id: i64,
    ) -> StoreResult<Vec<InstrumentTestCodeRecord>>;
    async fn interface_message_by_id(&self, id: i64)
    -> StoreResult<Option<InterfaceMessageRecord>>;
    /// Newest first; `status` and `connection` narrow the list, `before` pages it by id.
    async fn interface_messages(
        &self,
        status: Option<&str>,
        connection: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<InterfaceMessageRecord>>;
    // ── results (issue 11) ──
    async fn result_rules(&self, test_code: &str) -> StoreResult<Option<ResultRulesRecord>>;
    async fn all_result_rules(&self) -> StoreResult<Vec<ResultRulesRecord>>;
    /// Changes whenever any rule set changes (count, sum of versions, latest change).
    async fn result_rules_fingerprint(&self) -> StoreResult<(i64, i64, i64)>;
    async fn result_rule_versions(
        &self,
        test_code: &str,
    ) -> StoreResult<Vec<ResultRuleVersionRecord>>;
    async fn result_by_id(&self, id: i64) -> StoreResult<Option<ResultRecord>>;
    async fn results_of_order(&self, order_id: i64) -> StoreResult<Vec<ResultRecord>>;
    /// All the patient's released or corrected results, by collection time (the newest
    /// `limit`).
    async fn released_results_of_patient(
        &self,
        patient_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<ResultRecord>>;
    /// Version `version` of an order's report, or its latest (`None`).
    async fn report_version(
        &self,
        order_id: i64,
        version: Option<i64>,
    ) -> StoreResult<Option<ReportVersionRecord>>;
    /// Orders of a client location with a result released or corrected since `since`.
    async fn orders_released_since(
        &self,
        location_id: i64,
        since: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<i64>>;
    async fn result_versions_of_order(
        &self,
        order_id: i64,
    ) -> StoreResult<Vec<ResultVersionRecord>>;
    async fn critical_calls_of_order(&self, order_id: i64) -> StoreResult<Vec<CriticalCallRecord>>;
    /// Calls not yet documented, the most overdue first.
    async fn open_critical_calls(&self, limit: i64) -> StoreResult<Vec<CriticalCallRecord>>;
    /// Held results, oldest first.
    async fn held_results(&self, limit: i64) -> StoreResult<Vec<ResultRecord>>;
    /// A patient's released results of one test, oldest collection first (the newest `limit`).
    async fn patient_results(
        &self,
        patient_id: i64,
        test_code: &str,
        limit: i64,
    ) -> StoreResult<Vec<ResultRecord>>;
    /// A page of a patient's released results, newest first (see [`ReleasedResultQuery`]).
    async fn released_results_page(
        &self,
        q: &ReleasedResultQuery<'_>,
    ) -> StoreResult<Vec<ReleasedResultRecord>>;
    async fn open_result_notices(&self, limit: i64) -> StoreResult<Vec<ResultNoticeRecord>>;
}

/// One write transaction. Dropping it without [`Tx::commit`] rolls everything back, audit
/// entries included.
#[async_trait]
pub trait Tx: Send {
    async fn insert_user(&mut self, user: &NewUser) -> StoreResult<i64>;
    async fn user_by_id(&mut self, id: i64) -> StoreResult<Option<UserRecord>>;
    async fn set_user_role(&mut self, id: i64, role: &str) -> StoreResult<()>;
    /// The provider a user is linked to, if any.
    async fn user_provider(&mut self, user_id: i64) -> StoreResult<Option<i64>>;
    /// Links a user to a provider (`None` unlinks); false when the user is missing.
    async fn set_user_provider(
        &mut self,
        user_id: i64,
        provider_id: Option<i64>,
    ) -> StoreResult<bool>;
    async fn set_user_disabled(&mut self, id: i64, at: Option<Timestamp>) -> StoreResult<()>;
    async fn set_user_password(&mut self, id: i64, hash: &str, at: Timestamp) -> StoreResult<()>;

    /// A user's second factor, read inside the transaction.
    async fn user_mfa(&mut self, user_id: i64) -> StoreResult<Option<MfaRecord>>;
    /// Starts (or restarts) a pending TOTP enrolment with `secret` (Base32); false when a
    /// confirmed one exists.
    async fn start_mfa(&mut self, user_id: i64, secret: &str, at: Timestamp) -> StoreResult<bool>;
    /// Uses TOTP time step `step`, only if later than the last one used (guarded update):
    /// with `confirm = Some(at)` the pending enrolment becomes confirmed, otherwise it must
    /// already be. False: replayed or not in that state.
    async fn use_mfa_step(
        &mut self,
        user_id: i64,
        step: i64,
        confirm: Option<Timestamp>,
    ) -> StoreResult<bool>;
    /// Replaces a user's recovery codes by these hashes.
    async fn replace_recovery_codes(&mut self, user_id: i64, hashes: &[String]) -> StoreResult<()>;
    /// Uses one recovery code; false when no unused code has this hash.
    async fn use_recovery_code(
        &mut self,
        user_id: i64,
        code_hash: &str,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Removes a user's second factor and recovery codes; false when there was none.
    async fn delete_mfa(&mut self, user_id: i64) -> StoreResult<bool>;

    /// Requests a privileged role for a user; `Conflict` when one is pending for them.
    async fn insert_role_grant(
        &mut self,
        user_id: i64,
        role: &str,
        reason: &str,
        requested_by: i64,
        at: Timestamp,
    ) -> StoreResult<i64>;
    async fn role_grant(&mut self, id: i64) -> StoreResult<Option<RoleGrantRecord>>;
    /// Approves or rejects a pending grant (guarded); false when no longer pending.
    async fn decide_role_grant(
        &mut self,
        id: i64,
        status: &str,
        decided_by: i64,
        reason: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<bool>;

    async fn insert_session(&mut self, session: &NewSession) -> StoreResult<i64>;
    /// Revokes one session by its token hash; false when there was none to revoke.
    async fn revoke_session(&mut self, token_hash: &str, at: Timestamp) -> StoreResult<bool>;
    /// Revokes every live session of a user, except `keep` if given; returns how many.
    async fn revoke_user_sessions(
        &mut self,
        user_id: i64,
        keep: Option<i64>,
        at: Timestamp,
    ) -> StoreResult<u64>;
    async fn touch_session(&mut self, session_id: i64, at: Timestamp) -> StoreResult<()>;

    /// Counts one failed credential check of `account` from `address` at `at`: first forgets
    /// every counter whose latest failure is before `since` (so the table holds only the
    /// current window), then adds one to the pair's counter. Answers the counts after it.
    async fn record_login_failure(
        &mut self,
        address: &str,
        account: &str,
        at: Timestamp,
        since: Timestamp,
    ) -> StoreResult<LoginAttempts>;
    /// Forgets the failures of `account` from `address` (after a successful check).
    async fn clear_login_failures(&mut self, address: &str, account: &str) -> StoreResult<()>;

    async fn setting(&mut self, key: &str) -> StoreResult<Option<SettingRecord>>;
    async fn put_setting(&mut self, setting: &SettingRecord) -> StoreResult<()>;

    /// The next value of a named database counter (accession sequences and the like). Safe
    /// across processes: the row is locked until the transaction ends.
    async fn next_counter(&mut self, name: &str) -> StoreResult<i64>;

    /// Serialises this transaction with every other audited write, in every process sharing
    /// the database, from here to commit (it takes the audit head's row lock, which every
    /// audited commit takes anyway, so the lock order stays the same and cannot deadlock).
    /// For check-then-insert rules that a unique index cannot express, such as duplicate
    /// patient detection: a concurrent registration in another process waits, then sees ours.
    async fn serialize_writes(&mut self) -> StoreResult<()>;

    /// Advances a counter by `n` (≥ 1) in one step and returns the last value: the caller
    /// owns `last - n + 1 ..= last`.
    async fn next_counter_by(&mut self, name: &str, n: i64) -> StoreResult<i64>;

    /// Queues an audit entry; it is chained and written by [`Tx::commit`], in this transaction.
    fn audit(&mut self, entry: AuditEntry);

    /// Records that someone read patient data (HIPAA access log).
    async fn log_access(&mut self, entry: &AccessEntry) -> StoreResult<()>;

    // Registration and ordering.
    async fn patient_by_id(&mut self, id: i64) -> StoreResult<Option<PatientRecord>>;
    async fn patient_by_mrn(&mut self, mrn: &str) -> StoreResult<Option<PatientRecord>>;
    async fn patients_born_on(&mut self, dates: &[String]) -> StoreResult<Vec<PatientRecord>>;
    async fn insert_patient(&mut self, p: &PatientRecord) -> StoreResult<i64>;
    /// Writes a live patient's corrected demographics and search keys (`p.id`,
    /// `p.updated_at`); false when it is missing or merged away. Never the MRN or identifiers.
    async fn correct_patient(&mut self, p: &PatientRecord) -> StoreResult<bool>;
    /// Appends demographics a correction replaced as the next version; returns its number.
    async fn insert_patient_version(&mut self, v: &PatientVersionRecord) -> StoreResult<i64>;
    async fn set_merged_into(
        &mut self,
        id: i64,
        into: Option<i64>,
        at: Timestamp,
    ) -> StoreResult<()>;
    async fn order_ids_of_patient(&mut self, patient_id: i64) -> StoreResult<Vec<i64>>;
    async fn specimen_ids_of_patient(&mut self, patient_id: i64) -> StoreResult<Vec<i64>>;
    async fn move_row(&mut self, specimen: bool, id: i64, from: i64, to: i64) -> StoreResult<bool>;
    async fn insert_merge(&mut self, m: &MergeRecord) -> StoreResult<i64>;
    async fn merge_by_id(&mut self, id: i64) -> StoreResult<Option<MergeRecord>>;
    async fn set_merge_undone(&mut self, id: i64, at: Timestamp, by: &str) -> StoreResult<bool>;
    async fn insert_provider(&mut self, p: &ProviderRecord) -> StoreResult<i64>;
    async fn provider_by_id(&mut self, id: i64) -> StoreResult<Option<ProviderRecord>>;
    async fn insert_location(&mut self, l: &LocationRecord) -> StoreResult<i64>;
    async fn location_by_id(&mut self, id: i64) -> StoreResult<Option<LocationRecord>>;
    async fn catalog_by_code(&mut self, code: &str) -> StoreResult<Option<CatalogTestRecord>>;
    async fn insert_catalog(&mut self, c: &CatalogTestRecord) -> StoreResult<i64>;
    async fn update_catalog(&mut self, c: &CatalogTestRecord) -> StoreResult<()>;
    async fn insert_catalog_version(&mut self, c: &CatalogTestRecord, by: &str) -> StoreResult<()>;
    async fn insert_order(&mut self, o: &OrderRecord) -> StoreResult<i64>;
    async fn order_by_id(&mut self, id: i64) -> StoreResult<Option<OrderRecord>>;
    /// The oldest order not cancelled with this placer order number from this client location.
    async fn active_order_by_placer(
        &mut self,
        location_id: i64,
        placer_order_number: &str,
    ) -> StoreResult<Option<i64>>;
    async fn cancel_order(&mut self, id: i64, at: Timestamp, reason: &str) -> StoreResult<bool>;
    /// Marks the order's tests cancelled (those not already); returns how many changed.
    async fn cancel_order_tests(&mut self, order_id: i64) -> StoreResult<u64>;
    async fn insert_specimen(&mut self, s: &SpecimenRecord) -> StoreResult<i64>;
    async fn set_specimen_volume(&mut self, id: i64, volume_ul: i64) -> StoreResult<()>;
    async fn set_specimen_demand(&mut self, id: i64, demand_ul: i64) -> StoreResult<()>;
    async fn set_received_container(
        &mut self,
        id: i64,
        container: &str,
        specimen_type: &str,
    ) -> StoreResult<()>;
    async fn specimens_of_order(&mut self, order_id: i64) -> StoreResult<Vec<SpecimenRecord>>;
    async fn insert_order_test(&mut self, t: &OrderTestRecord) -> StoreResult<i64>;
    async fn tests_of_order(&mut self, order_id: i64) -> StoreResult<Vec<OrderTestRecord>>;
    async fn insert_scan(&mut self, s: &ScanRecord) -> StoreResult<i64>;
    /// Registers another facility's identifier for a patient; `Conflict` if another patient
    /// holds it.
    async fn insert_patient_identifier(
        &mut self,
        patient_id: i64,
        system: &str,
        value: &str,
    ) -> StoreResult<()>;
    async fn patient_by_identifier(
        &mut self,
        system: &str,
        value: &str,
    ) -> StoreResult<Option<PatientRecord>>;
    /// Inserts specimens in one statement; returns `(accession, id)` pairs.
    async fn insert_specimens(
        &mut self,
        rows: &[SpecimenRecord],
    ) -> StoreResult<Vec<(String, i64)>>;
    /// Inserts order tests in one statement.
    async fn insert_order_tests(&mut self, rows: &[OrderTestRecord]) -> StoreResult<()>;

    // Specimen lifecycle.
    async fn specimen_by_accession(
        &mut self,
        accession: &str,
    ) -> StoreResult<Option<SpecimenRecord>>;
    /// Applies a guarded status change; false when the status is no longer `change.from`.
    async fn change_specimen(&mut self, change: &SpecimenChange) -> StoreResult<bool>;
    /// Counts a label print; returns the new count (1 = the original print).
    async fn count_label_print(&mut self, specimen_id: i64) -> StoreResult<i64>;
    async fn insert_specimen_event(&mut self, event: &SpecimenEventRecord) -> StoreResult<i64>;
    /// Closes an open problem-log entry; false when none is open with this id.
    async fn resolve_problem(
        &mut self,
        id: i64,
        at: Timestamp,
        by: &str,
        resolution: &str,
    ) -> StoreResult<bool>;
    /// Completes an open recollection task; false when none is open with this id.
    async fn complete_recollect_task(
        &mut self,
        id: i64,
        at: Timestamp,
        by: &str,
        replacement_accession: &str,
    ) -> StoreResult<bool>;
    async fn insert_problem(&mut self, problem: &ProblemRecord) -> StoreResult<i64>;
    async fn insert_recollect_task(&mut self, task: &RecollectTaskRecord) -> StoreResult<i64>;
    /// The open recollection task of a rejected tube, if any.
    async fn open_recollect_task_of(&mut self, specimen_id: i64) -> StoreResult<Option<i64>>;

    // ── processing: centrifugation, aliquots, dilutions, routing (issue 4) ──

    async fn specimen_children(&mut self, parent_id: i64) -> StoreResult<Vec<SpecimenRecord>>;
    async fn specimen_parent(&mut self, specimen_id: i64) -> StoreResult<Option<SpecimenRecord>>;
    /// Inserts an aliquot (child specimen) of `parent_id`; returns its id.
    async fn insert_aliquot(&mut self, s: &SpecimenRecord, parent_id: i64) -> StoreResult<i64>;
    /// Takes `volume_ul` from a specimen, only while its status is still `status` and enough
    /// is left; false otherwise.
    async fn take_volume(&mut self, id: i64, status: &str, volume_ul: i64) -> StoreResult<bool>;
    /// Moves the given tests of specimen `from` to specimen `to`; returns how many moved.
    async fn move_tests(&mut self, from: i64, to: i64, codes: &[String]) -> StoreResult<u64>;
    async fn insert_centrifugation(&mut self, c: &CentrifugationRecord) -> StoreResult<i64>;
    async fn centrifugations(&mut self, specimen_id: i64)
    -> StoreResult<Vec<CentrifugationRecord>>;
    async fn insert_dilution(&mut self, d: &DilutionRecord) -> StoreResult<i64>;

    // ── storage, transport, send-out, disposal (issue 4) ──
    async fn storage_unit_by_path(&mut self, path: &str) -> StoreResult<Option<StorageUnitRecord>>;
    /// `Conflict` when the path is already registered.
    async fn insert_storage_unit(&mut self, unit: &StorageUnitRecord) -> StoreResult<i64>;
    async fn latest_placement(&mut self, specimen_id: i64) -> StoreResult<Option<PlacementRecord>>;
    /// `Conflict` when the position (or the specimen) is already occupied.
    async fn insert_placement(&mut self, p: &PlacementRecord) -> StoreResult<i64>;
    /// Ends a current placement; false when it had already ended.
    async fn close_placement(
        &mut self,
        id: i64,
        at: Timestamp,
        by: &str,
        removal: &str,
        reason: Option<&str>,
    ) -> StoreResult<bool>;
    async fn retention_policies(&mut self) -> StoreResult<Vec<RetentionPolicyRecord>>;
    async fn put_retention_policy(&mut self, p: &RetentionPolicyRecord) -> StoreResult<()>;
    async fn retention_use_policies(&mut self) -> StoreResult<Vec<RetentionUseRecord>>;
    async fn put_retention_use_policy(&mut self, p: &RetentionUseRecord) -> StoreResult<()>;
    async fn insert_send_out(&mut self, s: &SendOutRecord) -> StoreResult<i64>;

    // ── reference laboratories and shipments (issue 14 item 4) ──
    async fn reference_lab_by_code(
        &mut self,
        code: &str,
    ) -> StoreResult<Option<ReferenceLabRecord>>;
    async fn reference_lab_by_id(&mut self, id: i64) -> StoreResult<Option<ReferenceLabRecord>>;
    /// `Conflict` when the code is taken.
    async fn insert_reference_lab(&mut self, r: &ReferenceLabRecord) -> StoreResult<i64>;
    /// Replaces version `r.version - 1`; false when another change came first.
    async fn update_reference_lab(&mut self, r: &ReferenceLabRecord) -> StoreResult<bool>;
    async fn reference_lab_test_codes(
        &mut self,
        reference_lab_id: i64,
    ) -> StoreResult<Vec<ReferenceLabTestCodeRecord>>;
    /// Replaces a reference laboratory's whole mapping.
    async fn replace_reference_lab_test_codes(
        &mut self,
        reference_lab_id: i64,
        rows: &[ReferenceLabTestCodeRecord],
    ) -> StoreResult<()>;
    async fn send_outs_of_specimen(&mut self, specimen_id: i64) -> StoreResult<Vec<SendOutRecord>>;
    async fn send_outs_of_shipment(&mut self, shipment_id: i64) -> StoreResult<Vec<SendOutRecord>>;
    /// Send-outs to a reference laboratory not yet packed, oldest first.
    async fn unpacked_send_outs(
        &mut self,
        reference_lab_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<SendOutRecord>>;
    /// Packs a send-out into a shipment; false when it was packed meanwhile.
    async fn pack_send_out(&mut self, id: i64, shipment_id: i64) -> StoreResult<bool>;
    /// Marks a send-out's results back; false when they already were.
    async fn close_send_out(&mut self, id: i64, at: Timestamp) -> StoreResult<bool>;
    async fn insert_shipment(&mut self, r: &ShipmentRecord) -> StoreResult<i64>;
    async fn shipment_by_id(&mut self, id: i64) -> StoreResult<Option<ShipmentRecord>>;
    /// Writes the shipment over version `r.version - 1`; false when another change came first.
    async fn update_shipment(&mut self, r: &ShipmentRecord) -> StoreResult<bool>;
    async fn insert_shipment_event(&mut self, r: &ShipmentEventRecord) -> StoreResult<i64>;

    // ── idempotency keys (issue 9) ──
    async fn idempotency_by_key(
        &mut self,
        user_id: i64,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>>;
    /// Claims a key; `Conflict` when the user already holds it.
    async fn insert_idempotency(
        &mut self,
        user_id: i64,
        key: &str,
        fingerprint: &str,
        token: &str,
        at: Timestamp,
    ) -> StoreResult<i64>;
    /// Takes over a claim nobody applied nor completed; false when it changed meanwhile.
    async fn take_over_idempotency(
        &mut self,
        id: i64,
        old_token: &str,
        new_token: &str,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Keeps the answer of the claim's request; false when the claim is not `token`'s.
    async fn complete_idempotency(
        &mut self,
        id: i64,
        token: &str,
        status: i64,
        content_type: Option<&str>,
        body: &str,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Gives back a claim whose request changed nothing; false when it was applied.
    async fn release_idempotency(&mut self, id: i64, token: &str) -> StoreResult<bool>;

    /// Appends the queued audit entries to the chain and commits. Returns the sequence numbers
    /// given to the audit entries. Inside [`with_claim`], the claim is marked applied in this
    /// same transaction; a claim taken over by another holder fails the commit (`Conflict`).
    async fn commit(self: Box<Self>) -> StoreResult<Vec<i64>>;
    // ── outbox (issue 12) ──
    /// The ids of the active outbound destinations.
    async fn active_destination_ids(&mut self) -> StoreResult<Vec<i64>>;
    async fn destination_by_code(&mut self, code: &str) -> StoreResult<Option<DestinationRecord>>;
    /// `Conflict` when the code is taken.
    async fn insert_destination(&mut self, r: &DestinationRecord) -> StoreResult<i64>;
    /// Replaces version `r.version - 1`; false when another change came first.
    async fn update_destination(&mut self, r: &DestinationRecord) -> StoreResult<bool>;
    async fn insert_outbox(&mut self, r: &OutboxRecord) -> StoreResult<i64>;
    /// Many outbox rows in multi-row statements, ids in the order given.
    async fn insert_outbox_many(&mut self, rows: &[OutboxRecord]) -> StoreResult<()>;
    async fn outbox_by_id(&mut self, id: i64) -> StoreResult<Option<OutboxRecord>>;
    /// Writes a row's new state over the state it was read in; false when another worker or
    /// an analyst changed it first.
    async fn update_outbox(
        &mut self,
        r: &OutboxRecord,
        seen_status: &str,
        seen_attempts: i64,
    ) -> StoreResult<bool>;
    /// The newest row of a destination for an order (one message per order: a result
    /// released may join it while it was never attempted).
    async fn last_outbox_of_order(
        &mut self,
        destination_id: i64,
        order_id: i64,
    ) -> StoreResult<Option<OutboxRecord>>;
    /// Replaces the document of a row still pending and never attempted; false when a
    /// worker claimed it (or an analyst changed it) first.
    async fn update_outbox_document(&mut self, id: i64, document: &str) -> StoreResult<bool>;
    /// Claims a due pending row for one attempt (attempts + 1, not due again before
    /// `lease_until`); false when it was not due or another worker claimed it first.
    async fn claim_outbox(
        &mut self,
        id: i64,
        seen_attempts: i64,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<bool>;
    // ── quality control (issue 13) ──
    async fn qc_lot(&mut self, lot: &str, level: i64) -> StoreResult<Option<QcLotRecord>>;
    /// `Conflict` when the lot and level exist.
    async fn insert_qc_lot(&mut self, r: &QcLotRecord) -> StoreResult<i64>;
    /// The lot's target on the instrument and test in force at `at`.
    async fn qc_target_at(
        &mut self,
        lot_id: i64,
        instrument_id: i64,
        test_code: &str,
        at: Timestamp,
    ) -> StoreResult<Option<QcTargetRecord>>;
    async fn insert_qc_target(&mut self, r: &QcTargetRecord) -> StoreResult<i64>;
    async fn qc_config(
        &mut self,
        instrument_id: i64,
        test_code: &str,
    ) -> StoreResult<Option<QcConfigRecord>>;
    /// Inserts version 1 (`Conflict` when one exists) or replaces version `r.version - 1`
    /// (false when another change came first).
    async fn put_qc_config(&mut self, r: &QcConfigRecord) -> StoreResult<bool>;
    /// Runs with their control values, oldest first.
    async fn qc_runs(
        &mut self,
        instrument_id: i64,
        test_code: &str,
        range: RunRange,
    ) -> StoreResult<Vec<QcRunRecord>>;
    /// Inserts a run and its control values.
    async fn insert_qc_run(&mut self, r: &QcRunRecord) -> StoreResult<i64>;
    /// The run an instrument message posted for a test, if it did.
    async fn qc_run_of_message(
        &mut self,
        instrument_id: i64,
        test_code: &str,
        message_key: &str,
    ) -> StoreResult<Option<i64>>;
    /// Writes a run's new verdict (status, findings, rules, mode, evaluated_at).
    async fn update_qc_run_verdict(&mut self, r: &QcRunRecord) -> StoreResult<()>;
    /// The time of the last run before `at` that was not rejected.
    async fn qc_last_good_run_before(
        &mut self,
        instrument_id: i64,
        test_code: &str,
        at: Timestamp,
    ) -> StoreResult<Option<Timestamp>>;
    async fn qc_open_lock(
        &mut self,
        instrument_id: i64,
        test_code: &str,
    ) -> StoreResult<Option<QcLockRecord>>;
    /// `Conflict` when the instrument and test are locked already.
    async fn insert_qc_lock(&mut self, r: &QcLockRecord) -> StoreResult<i64>;
    /// False when the lock was lifted already.
    async fn lift_qc_lock(&mut self, id: i64, at: Timestamp, run_id: i64) -> StoreResult<bool>;
    async fn qc_corrective_actions(
        &mut self,
        lock_id: i64,
    ) -> StoreResult<Vec<QcCorrectiveActionRecord>>;
    async fn insert_qc_corrective_action(
        &mut self,
        r: &QcCorrectiveActionRecord,
    ) -> StoreResult<i64>;
    /// Newest first.
    async fn qc_calibrations(
        &mut self,
        instrument_id: i64,
        test_code: &str,
        limit: i64,
    ) -> StoreResult<Vec<QcCalibrationRecord>>;
    async fn insert_qc_calibration(&mut self, r: &QcCalibrationRecord) -> StoreResult<i64>;
    /// Whether the instrument (by code) is locked for the test.
    async fn qc_locked(&mut self, instrument_code: &str, test_code: &str) -> StoreResult<bool>;
    /// For an instrument (by code) and test with a QC configuration: its calibration interval
    /// in hours and the time of its last passed calibration at or before `at`.
    async fn qc_calibration_state(
        &mut self,
        instrument_code: &str,
        test_code: &str,
        at: Timestamp,
    ) -> StoreResult<Option<(Option<i64>, Option<Timestamp>)>>;
    /// The lot an instrument's sample id names, when it is one of its controls.
    async fn qc_control_lot(
        &mut self,
        instrument_id: i64,
        control_id: &str,
    ) -> StoreResult<Option<i64>>;
    async fn put_qc_control_id(
        &mut self,
        instrument_id: i64,
        control_id: &str,
        lot_id: i64,
    ) -> StoreResult<()>;
    // ── connections (issue 12) ──
    async fn instrument_by_code(&mut self, code: &str) -> StoreResult<Option<InstrumentRecord>>;
    async fn instrument_by_sender(
        &mut self,
        protocol: &str,
        sender: &str,
    ) -> StoreResult<Option<InstrumentRecord>>;
    /// `Conflict` when the code or the sender is taken.
    async fn insert_instrument(&mut self, r: &InstrumentRecord) -> StoreResult<i64>;
    /// Replaces version `r.version - 1`; false when another change came first.
    async fn update_instrument(&mut self, r: &InstrumentRecord) -> StoreResult<bool>;
    async fn instrument_test_codes(
        &mut self,
        instrument_id: i64,
    ) -> StoreResult<Vec<InstrumentTestCodeRecord>>;
    /// Replaces an instrument's whole mapping.
    async fn replace_instrument_test_codes(
        &mut self,
        instrument_id: i64,
        rows: &[InstrumentTestCodeRecord],
    ) -> StoreResult<()>;
    async fn interface_message_by_key(
        &mut self,
        protocol: &str,
        sender: &str,
        control_id: &str,
    ) -> StoreResult<Option<InterfaceMessageRecord>>;
    async fn interface_message_by_id(
        &mut self,
        id: i64,
    ) -> StoreResult<Option<InterfaceMessageRecord>>;
    /// `Conflict` when the sender's control id is already stored.
    async fn insert_interface_message(&mut self, m: &InterfaceMessageRecord) -> StoreResult<i64>;
    /// The stored messages under these `(protocol, sender, control id)` keys: one answer
    /// per key, in the keys' order.
    async fn interface_messages_by_keys(
        &mut self,
        keys: &[(String, String, String)],
    ) -> StoreResult<Vec<Option<InterfaceMessageRecord>>>;
    /// Stores messages (each under a key not stored yet) in one statement; their ids in order.
    async fn insert_interface_messages(
        &mut self,
        rows: &[InterfaceMessageRecord],
    ) -> StoreResult<Vec<i64>>;
    /// Every name the instrument gives its control lots, with the lot.
    async fn qc_control_ids_of(&mut self, instrument_id: i64) -> StoreResult<Vec<(String, i64)>>;
    /// Empties the content of accepted or replayed messages received before `before`
    /// (retention); returns how many.
    async fn purge_interface_messages(
        &mut self,
        before: Timestamp,
        at: Timestamp,
    ) -> StoreResult<u64>;
    /// Writes a replay's outcome over the row last updated at `seen`; false when another
    /// replay came first.
    async fn update_interface_message(
        &mut self,
        m: &InterfaceMessageRecord,
        seen: Timestamp,
    ) -> StoreResult<bool>;
    // ── results (issue 11) ──
    async fn result_rules(&mut self, test_code: &str) -> StoreResult<Option<ResultRulesRecord>>;
    /// Inserts version 1 or replaces version `version - 1`; false when another change came first.
    async fn put_result_rules(&mut self, r: &ResultRulesRecord) -> StoreResult<bool>;
    async fn insert_result_rule_version(&mut self, v: &ResultRuleVersionRecord) -> StoreResult<()>;
    async fn result_by_id(&mut self, id: i64) -> StoreResult<Option<ResultRecord>>;
    async fn result_by_order_test(
        &mut self,
        order_test_id: i64,
    ) -> StoreResult<Option<ResultRecord>>;
    async fn results_of_order(&mut self, order_id: i64) -> StoreResult<Vec<ResultRecord>>;
    /// Version `version` of an order's report, or its latest (`None`).
    async fn report_version(
        &mut self,
        order_id: i64,
        version: Option<i64>,
    ) -> StoreResult<Option<ReportVersionRecord>>;
    /// Appends a report version (`UNIQUE (order_id, version)`).
    async fn insert_report_version(&mut self, v: &ReportVersionRecord) -> StoreResult<i64>;
    /// The patient's latest released result of a test collected before `before`.
    async fn previous_released(
        &mut self,
        patient_id: i64,
        test_code: &str,
        before: Timestamp,
    ) -> StoreResult<Option<ResultRecord>>;
    async fn insert_result(&mut self, r: &ResultRecord) -> StoreResult<i64>;
    /// What a batch of results for the tubes `accessions` is judged with, read as a few set
    /// queries instead of several statements per result: the tubes, their orders, the orders'
    /// tests, patients and results, and the tubes' dilutions.
    async fn result_batch_rows(&mut self, accessions: &[String]) -> StoreResult<ResultBatchRows>;
    /// The patient of each tube `accessions` names (through its order), by accession; tubes
    /// that do not exist are left out.
    async fn tube_owners(
        &mut self,
        accessions: &[String],
    ) -> StoreResult<Vec<(String, PatientRecord)>>;
    /// [`Tx::previous_released`] for many `(patient, test, before)`: one answer per key, in
    /// the keys' order.
    async fn previous_released_many(
        &mut self,
        keys: &[(i64, String, Timestamp)],
    ) -> StoreResult<Vec<Option<ResultRecord>>>;
    /// Stores new results (each for an ordered test without one) with their first version,
    /// their tests' statuses and their critical calls, as multi-row statements. Returns the
    /// results' ids in the order given.
    async fn insert_new_results(&mut self, rows: &[NewResultRows]) -> StoreResult<Vec<i64>>;
    /// Replaces the current version, guarded by the version replaced: false when another
    /// request changed the result first.
    async fn update_result(&mut self, r: &ResultRecord, replaces: i64) -> StoreResult<bool>;
    async fn insert_result_version(&mut self, v: &ResultVersionRecord) -> StoreResult<()>;
    async fn set_order_test_status(&mut self, order_test_id: i64, status: &str) -> StoreResult<()>;
    /// Moves an order's results from one patient to another (merge, unmerge).
    async fn move_results(&mut self, order_id: i64, from: i64, to: i64) -> StoreResult<u64>;
    async fn insert_critical_call(&mut self, c: &CriticalCallRecord) -> StoreResult<i64>;
    async fn open_call_of_result(
        &mut self,
        result_id: i64,
    ) -> StoreResult<Option<CriticalCallRecord>>;
    /// Documents an open call; false when it was documented meanwhile.
    async fn document_critical_call(&mut self, c: &CriticalCallRecord) -> StoreResult<bool>;
    async fn insert_result_notice(&mut self, n: &ResultNoticeRecord) -> StoreResult<i64>;
    async fn specimen_by_id(&mut self, id: i64) -> StoreResult<Option<SpecimenRecord>>;
    async fn result_versions_of_order(
        &mut self,
        order_id: i64,
    ) -> StoreResult<Vec<ResultVersionRecord>>;
    async fn critical_calls_of_order(
        &mut self,
        order_id: i64,
    ) -> StoreResult<Vec<CriticalCallRecord>>;
}
