//! Aliquot's use cases: each one checks the caller's permission, applies the domain rules,
//! and writes the change with its audit record in one store transaction.
//!
//! API boundary: every edge (REST, web UI, FHIR, HL7, ASTM, CLI) calls these functions with an
//! [`Actor`]; none of them touches the store directly for a change. Use cases never log
//! patient data.

mod audit_log;
mod auth;
// the draw list and the dashboard (issue 15)
mod board;
pub use board::{
    DRAW_LIST_LIMIT, DashboardView, DrawItem, PendingCount, RECEIPT_HOURS, StatAtRisk,
};
pub mod catalog;
pub mod connections;
pub mod demo_catalog;
mod directory;
pub mod idempotency;
mod orders;
mod patients;
mod scans;
pub mod security;
pub use security::{
    MfaEnrolment, MfaStatus, RoleGrantView, SecondFactor, Signature, SignatureInput,
};
mod scope;
pub use scope::PatientScope;
mod settings;
mod shown;
mod specimens;
mod stability;
// processing (issue 4)
mod processing;
pub mod reports;
pub use processing::{
    AliquotChildView, AliquotInput, AliquotPlanView, CentrifugationInput, CentrifugationView,
    DilutionInput, DilutionView, LineageView, MAX_SORTING, SORTING_STATUSES, SortingEntry,
};
pub use reports::ReportDocument;

// storage, transport, send-out, disposal (issue 4)
mod storage;
pub use storage::{
    DISPOSAL_METHODS, DispatchInput, DisposalDueView, DisposeInput, DueView, ManifestView,
    NewStorageUnitInput, RejectedView, RetentionView, SendOutInput, SendOutView,
    SpecimenLocationView, StorageUnitView, StoredSpecimenView,
};

// send-outs to reference laboratories: registry, shipments, outstanding (issue 14 item 4)
mod sendouts;
pub use sendouts::{
    DEFAULT_EXPECTED_TAT_HOURS, MAX_SHIPMENT, ManifestDocument, ManifestItem, ManifestTest,
    OutstandingView, ReferenceLabInput, ReferenceLabView, ReferenceTestCodeInput,
    ShipmentEventView, ShipmentInput, ShipmentItemView, ShipmentStepInput, ShipmentView,
};

// results (issue 11)
mod results;
pub use results::lists::{
    CumulativePoint, EntryHint, EntryListView, OpenCallView, PreviousResult, ReviewItem,
};
pub use results::{
    CalculationDoc, ConsistencyDoc, CorrectionInput, CriticalCallInput, CriticalCallView,
    CumulativeView, DeltaDoc, IndexDoc, IndicesInput, IntervalDoc, IntervalView, LimitsDoc,
    NotPerformedInput, PerformingLab, ReasonView, ResultInput, ResultOutcome, ResultPreview,
    ResultRulesDoc, ResultRulesVersionView, ResultRulesView, ResultVersionView, ResultView,
    SignOff, WorklistItem, WorklistView,
};

// quality control and calibration (issue 13)
pub mod qc;

// released results, orders and specimens for outside systems (FHIR, issue 14)
mod released;
pub use released::{RELEASED_PAGE_MAX, ReleasedResultSearch, ReleasedResultView};

// turnaround time (issue 4)
mod tat;
pub use tat::{OVERDUE_SCAN_LIMIT, TatIntervalView, TestTatView};

// one worker task storing many callers' jobs together (instrument messages, result batches)
mod worker;
pub use worker::GroupStats;

use std::sync::{Arc, Mutex};

use aliquot_domain::auth::{LoginThrottle, Permission, Role};
use aliquot_store::{AuditEntry, Store, StoreError};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

pub use auth::{IssuedToken, NewUserInput, UserView};
pub use catalog::{
    CatalogEntryView, SpecimenAlternative, StabilityLimits, TatMinutes, TestDefinition,
};
pub use directory::{LOCATION_KINDS, NewLocationInput, NewProviderInput};
pub use orders::{NewOrderInput, OrderTestView, OrderView, SpecimenView};
pub use patients::{
    Contact, DuplicateCandidate, FacilityIdentifier, MergeView, NewPatientInput, PatientCorrection,
    PatientIdentification, PatientSearch, PatientVersionView, PatientView,
};
pub use scans::{ScanContent, ScanView};
pub use settings::{SettingView, setting_rules};
pub use specimens::{
    CollectInput, CollectionCorrectionInput, ProblemView, ReceiptProblemView, ReceiveInput,
    RecollectTaskView, RenderedLabel, SpecimenDetail, SpecimenEventView,
};

/// Where a request came from; recorded in every audit entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Api,
    Web,
    Cli,
    Hl7,
    Astm,
    Fhir,
    System,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Web => "web",
            Source::Cli => "cli",
            Source::Hl7 => "hl7",
            Source::Astm => "astm",
            Source::Fhir => "fhir",
            Source::System => "system",
        }
    }
}

/// Who is acting: an authenticated user, or the operator of the command line (who has the
/// database in hand and acts as a named administrator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub username: String,
    pub role: Role,
    pub source: Source,
    pub session_id: Option<i64>,
}

impl Actor {
    /// The command-line operator, named after the OS user for the audit trail.
    pub fn cli(os_user: &str) -> Actor {
        Actor {
            user_id: None,
            username: format!("cli:{os_user}"),
            role: Role::Admin,
            source: Source::Cli,
            session_id: None,
        }
    }

    pub fn require(&self, permission: Permission) -> Result<(), AppError> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(AppError::Forbidden {
                message: format!("the {} role may not {}", self.role, permission),
            })
        }
    }
}

/// A use case's failure, in terms an edge can map to its protocol (HTTP status, HL7 ACK code).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{message}")]
    Forbidden { message: String },
    #[error("{entity} not found")]
    NotFound { entity: &'static str },
    #[error("{message}")]
    Invalid {
        field: Option<String>,
        code: &'static str,
        message: String,
    },
    #[error("{message}")]
    Conflict {
        field: Option<String>,
        code: &'static str,
        message: String,
    },
    /// Too many failed credential checks from this address or on this account: the attempt
    /// waits (progressive delay, issue 16 item 7). Answered `429` with `Retry-After`.
    #[error("too many failed attempts; try again in {retry_after_secs} s")]
    Locked { retry_after_secs: u64 },
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    /// The same error about another field (for nested or renamed inputs).
    pub fn with_field(self, name: &str) -> AppError {
        match self {
            AppError::Invalid { code, message, .. } => AppError::Invalid {
                field: Some(name.to_owned()),
                code,
                message,
            },
            other => other,
        }
    }

    pub fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> AppError {
        AppError::Invalid {
            field: Some(field.to_owned()),
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound { entity: "record" },
            // The database's text names tables and constraints: it is logged, never sent.
            StoreError::Conflict(m) => {
                tracing::warn!(detail = %m, "write conflict");
                AppError::Conflict {
                    field: None,
                    code: "conflict",
                    message: "this change conflicts with another made at the same time; \
                              reload and try again"
                        .into(),
                }
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// The time source. Production uses the system clock; tests move a manual one.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to.
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(at: Timestamp) -> ManualClock {
        ManualClock(Mutex::new(at))
    }

    pub fn advance(&self, by: SignedDuration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t = t.checked_add(by).unwrap_or(*t);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Tunable security settings.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Absolute lifetime of a token.
    pub token_ttl: SignedDuration,
    /// A token unused for this long stops working (automatic logoff).
    pub idle_timeout: SignedDuration,
    pub throttle: LoginThrottle,
    /// Where files kept outside the database live (scanned requisitions under `scans/`).
    pub data_dir: std::path::PathBuf,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            token_ttl: SignedDuration::from_hours(8),
            idle_timeout: SignedDuration::from_mins(30),
            throttle: LoginThrottle::default(),
            data_dir: std::path::PathBuf::from("./aliquot-data"),
        }
    }
}

/// The use cases, over one store.
#[derive(Clone)]
pub struct App {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: AppConfig,
    /// Result messages of every connection, ingested in groups (`connections/group.rs`).
    ingest_queue: connections::IngestQueue,
    /// Result batches of concurrent requests, posted in groups (`results/group.rs`).
    result_queue: results::ResultQueue,
    /// Which tests' calculations take which inputs, kept while no rule set changes.
    dependents_cache: Arc<results::DependentsCache>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: AppConfig) -> App {
        App {
            store,
            clock,
            config,
            ingest_queue: connections::IngestQueue::default(),
            result_queue: results::ResultQueue::default(),
            dependents_cache: Arc::default(),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The current time, truncated to the microsecond that the store keeps, so that what a
    /// use case returns equals what a later read returns.
    pub fn now(&self) -> Timestamp {
        let t = self.clock.now();
        Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
    }

    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// An audit entry for `actor` doing `action` on `entity_type`/`entity_id`.
    #[expect(
        clippy::too_many_arguments,
        reason = "an audit entry has this many facts; named at every call site"
    )]
    fn entry(
        &self,
        actor: &Actor,
        action: &str,
        entity_type: &str,
        entity_id: impl ToString,
        old_value: Option<Value>,
        new_value: Option<Value>,
        reason: Option<&str>,
    ) -> AuditEntry {
        AuditEntry {
            at: self.now(),
            actor_id: actor.user_id,
            actor_name: actor.username.clone(),
            actor_role: Some(actor.role.as_str().to_owned()),
            source: actor.source.as_str().to_owned(),
            action: action.to_owned(),
            entity_type: entity_type.to_owned(),
            entity_id: entity_id.to_string(),
            reason: reason.map(str::to_owned),
            old_value,
            new_value,
        }
    }
}

/// A short required text (a name, a code's label, an action): trimmed, 1 to `max` characters,
/// no control characters.
pub(crate) fn short_text(field: &str, value: &str, max: usize) -> AppResult<String> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(AppError::invalid(
            field,
            "invalid_text",
            format!("1 to {max} characters, no control characters"),
        ));
    }
    Ok(v.to_owned())
}

/// Fewest characters of a required reason (after trimming).
pub const REASON_MIN_CHARS: usize = 3;
/// Most characters of a required reason (after trimming).
pub const REASON_MAX_CHARS: usize = 500;

/// A reason is required for corrections and retirements: trimmed, 3 to 500 characters.
pub(crate) fn require_reason(reason: Option<&str>) -> AppResult<String> {
    let r = reason.map(str::trim).unwrap_or("");
    if r.chars().count() < REASON_MIN_CHARS || r.chars().count() > REASON_MAX_CHARS {
        return Err(AppError::invalid(
            "reason",
            "reason_required",
            "a reason (3 to 500 characters) is required for this change",
        ));
    }
    Ok(r.to_owned())
}
