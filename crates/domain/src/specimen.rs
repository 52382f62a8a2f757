//! The specimen lifecycle: state machine, rejection reasons, receipt checks, centrifugation,
//! aliquots and dilutions.
//!
//! # State machine
//!
//! ```text
//! planned ──collect──▶ collected ──dispatch──▶ in_transit
//!    │                    │  └─────receive──────┐   │
//!  cancel                 │                     ▼   ▼
//!    ▼                    │                   received ──start_processing──▶ in_process
//! cancelled               │                     │  │                          │
//!                         │               send_out  aliquot/centrifuge   complete_processing
//!                         │                     ▼                            ▼
//!                         │                  sent_out ◀──send_out── processed ◀──retrieve── stored
//!                         │                                              │  └──store──▶ (stored)
//!                         │                                           dispose          dispose
//!  reject{reason} from planned*, collected, in_transit, received, in_process ──▶ rejected ──dispose──▶ disposed
//!  (* planned: only no_specimen_received)
//! ```
//!
//! - Terminal states accept no event: `disposed`, `sent_out`, `cancelled`. `rejected` accepts
//!   only `dispose` (the disposition must be documented, DOMAIN §6.4 / CLIA 493.1291(c)(7)).
//! - `reject` is possible only before processing completes (collected, in_transit, received,
//!   in_process). `no_specimen_received` applies only while nothing has arrived (planned,
//!   collected, in_transit); every other reason needs a specimen in hand (not planned).
//! - `receive` only from collected/in_transit: a double receipt or a receipt after rejection
//!   is refused.
//! - `aliquot` (pour-off into a labelled child tube, DOMAIN §6.6) is allowed in received,
//!   in_process and processed; it does not change the parent's state. A stored specimen must be
//!   retrieved first; rejected/terminal specimens can't be aliquoted.
//! - `centrifuge` is allowed in received and in_process (state unchanged; the store keeps the
//!   [`CentrifugationRecord`]). Serum and plasma can't `complete_processing` without a
//!   centrifugation record (DOMAIN §6.5).
//! - `start_processing` only from received; `store` only from processed; `retrieve` brings a
//!   stored specimen back to processed; `send_out` from received or processed; `dispose` from
//!   processed, stored or rejected.
//!
//! # Receipt check (DOMAIN §6.4)
//! [`check_receipt`] reports every problem found (label, identity, container, specimen type,
//! volume incl. citrate fill ≥ 90 %, stability at the specimen's temperature for every test);
//! each [`ReceiptProblem`] maps to a [`RejectionReason`]. Whether to reject or to process an
//! irreplaceable specimen with a disclaimer is the lab's decision ([CONFIG], DOMAIN §6.4).
//!
//! # Centrifugation (DOMAIN §6.5)
//! Store RCF, not rpm (RCF = 1.118 × 10⁻⁵ × radius_cm × rpm², [`rcf_from_rpm`]). Serum tubes
//! must clot before spinning: ≥ 30 min for clot activator + gel (SST), ≥ 60 min for plain red
//! tubes ([`min_clot_time`], [CONFIG] defaults).
//!
//! # Aliquots and dilutions
//! Children's volumes may not add up to more than the parent's volume; never pour back
//! (DOMAIN §6.6). A dilution `1:10` (or `10`) is a factor of 10 applied by multiplication to the
//! measured value of the diluted specimen.

pub mod processing;
pub mod stability;

use std::fmt;
use std::str::FromStr;

use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;
use thiserror::Error;

use crate::catalog::{
    Additive, ContainerCode, ContainerType, SpecialHandling, SpecimenType, Temperature, code_enum,
};
use crate::error::impl_domain_error;
use crate::order::TestCode;
use crate::patient::IdentityError;
use stability::{SpecimenHistory, StabilityRule};

mod pending;
mod receipt;
pub use pending::{
    PendingTests, SendOutScope, TestStatus, check_dispose, send_out_scope, tests_to_move,
};
pub use receipt::{
    AcceptedSpecimen, ContainerMatch, Fill, FillError, LineFill, check_fill_form,
    content_after_receipt, fill_problems, match_container,
};

code_enum! {
    /// Where a specimen is in its lifecycle.
    SpecimenState, "specimen_state" {
        Planned => "planned",
        Collected => "collected",
        InTransit => "in_transit",
        Received => "received",
        InProcess => "in_process",
        Processed => "processed",
        Stored => "stored",
        Rejected => "rejected",
        SentOut => "sent_out",
        Disposed => "disposed",
        Cancelled => "cancelled",
    }
}

impl SpecimenState {
    /// States that accept no event at all.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Disposed | Self::SentOut | Self::Cancelled)
    }
}

code_enum! {
    /// Why a specimen is unacceptable (DOMAIN §6.4). Codes are stable.
    RejectionReason, "rejection_reason" {
        Unlabeled => "unlabeled",
        /// Identifiers on the tube ≠ order, or fewer than two identifiers.
        Mislabeled => "mislabeled",
        IllegibleLabel => "illegible_label",
        /// Wrong blood in tube suspected (e.g. confirmed delta failure).
        SuspectedWrongBloodInTube => "suspected_wrong_blood_in_tube",
        /// Quantity not sufficient, incl. citrate fill < 90 % / wrong blood:anticoagulant ratio.
        Qns => "qns",
        Hemolyzed => "hemolyzed",
        Clotted => "clotted",
        WrongContainer => "wrong_container",
        WrongSpecimenType => "wrong_specimen_type",
        StabilityExceeded => "stability_exceeded",
        WrongTemperature => "wrong_temperature",
        Leaked => "leaked",
        ContaminatedExterior => "contaminated_exterior",
        NeedleAttached => "needle_attached",
        IvContamination => "iv_contamination",
        NoSpecimenReceived => "no_specimen_received",
    }
}

code_enum! {
    /// The kind of an [`Event`], for messages and audit logs.
    EventKind, "event" {
        Collect => "collect",
        Dispatch => "dispatch",
        Receive => "receive",
        Reject => "reject",
        Cancel => "cancel",
        StartProcessing => "start_processing",
        Centrifuge => "centrifuge",
        CompleteProcessing => "complete_processing",
        Aliquot => "aliquot",
        Store => "store",
        Retrieve => "retrieve",
        SendOut => "send_out",
        Dispose => "dispose",
    }
}

/// Something that happens to a specimen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Collect,
    Dispatch,
    Receive,
    Reject {
        reason: RejectionReason,
    },
    Cancel,
    StartProcessing,
    Centrifuge,
    /// `centrifuged`: whether a centrifugation record exists for this specimen.
    CompleteProcessing {
        specimen_type: SpecimenType,
        centrifuged: bool,
    },
    Aliquot,
    Store,
    Retrieve,
    SendOut,
    Dispose,
}

impl Event {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::Collect => EventKind::Collect,
            Self::Dispatch => EventKind::Dispatch,
            Self::Receive => EventKind::Receive,
            Self::Reject { .. } => EventKind::Reject,
            Self::Cancel => EventKind::Cancel,
            Self::StartProcessing => EventKind::StartProcessing,
            Self::Centrifuge => EventKind::Centrifuge,
            Self::CompleteProcessing { .. } => EventKind::CompleteProcessing,
            Self::Aliquot => EventKind::Aliquot,
            Self::Store => EventKind::Store,
            Self::Retrieve => EventKind::Retrieve,
            Self::SendOut => EventKind::SendOut,
            Self::Dispose => EventKind::Dispose,
        }
    }
}

/// Why a transition was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TransitionError {
    #[error("cannot {event} a specimen that is {state}")]
    Illegal {
        state: SpecimenState,
        event: EventKind,
    },
    #[error("the specimen is {state}, a final state; {event} is not possible")]
    Terminal {
        state: SpecimenState,
        event: EventKind,
    },
    #[error("a {specimen_type} specimen can't complete processing without a centrifugation record")]
    CentrifugationRequired { specimen_type: SpecimenType },
    #[error("the rejection reason {reason} does not apply to a specimen that is {state}")]
    ReasonNotApplicable {
        state: SpecimenState,
        reason: RejectionReason,
    },
}

impl TransitionError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Illegal { .. } => "transition_illegal",
            Self::Terminal { .. } => "transition_terminal_state",
            Self::CentrifugationRequired { .. } => "centrifugation_required",
            Self::ReasonNotApplicable { .. } => "rejection_reason_not_applicable",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::ReasonNotApplicable { .. } => Some("reason"),
            _ => Some("event"),
        }
    }
}

/// Applies `event` to a specimen in `state`; see the module doc for the rules.
pub fn transition(state: SpecimenState, event: &Event) -> Result<SpecimenState, TransitionError> {
    use SpecimenState as S;
    let kind = event.kind();
    if state.is_terminal() {
        return Err(TransitionError::Terminal { state, event: kind });
    }
    let next = match (state, event) {
        (S::Planned, Event::Collect) => S::Collected,
        (S::Planned, Event::Cancel) => S::Cancelled,
        (S::Collected, Event::Dispatch) => S::InTransit,
        (S::Collected | S::InTransit, Event::Receive) => S::Received,
        (
            S::Planned | S::Collected | S::InTransit | S::Received | S::InProcess,
            Event::Reject { reason },
        ) => {
            let nothing_arrived = matches!(state, S::Planned | S::Collected | S::InTransit);
            let specimen_in_hand = state != S::Planned;
            let applies = if *reason == RejectionReason::NoSpecimenReceived {
                nothing_arrived
            } else {
                specimen_in_hand
            };
            if !applies {
                return Err(TransitionError::ReasonNotApplicable {
                    state,
                    reason: *reason,
                });
            }
            S::Rejected
        }
        (S::Received, Event::StartProcessing) => S::InProcess,
        (S::Received | S::InProcess, Event::Centrifuge) => state,
        (
            S::InProcess,
            Event::CompleteProcessing {
                specimen_type,
                centrifuged,
            },
        ) => {
            if specimen_type.requires_centrifugation() && !centrifuged {
                return Err(TransitionError::CentrifugationRequired {
                    specimen_type: *specimen_type,
                });
            }
            S::Processed
        }
        (S::Received | S::InProcess | S::Processed, Event::Aliquot) => state,
        (S::Processed, Event::Store) => S::Stored,
        (S::Stored, Event::Retrieve) => S::Processed,
        (S::Received | S::Processed, Event::SendOut) => S::SentOut,
        (S::Processed | S::Stored | S::Rejected, Event::Dispose) => S::Disposed,
        _ => return Err(TransitionError::Illegal { state, event: kind }),
    };
    Ok(next)
}

/// The kinds of event `state` can accept (for UI actions). `reject` is listed when at least one
/// rejection reason applies; `complete_processing` when it is possible given a centrifugation
/// record where required.
pub fn allowed_event_kinds(state: SpecimenState) -> Vec<EventKind> {
    EventKind::ALL
        .iter()
        .copied()
        .filter(|&kind| {
            representative_events(kind)
                .iter()
                .any(|e| transition(state, e).is_ok())
        })
        .collect()
}

fn representative_events(kind: EventKind) -> Vec<Event> {
    match kind {
        EventKind::Collect => vec![Event::Collect],
        EventKind::Dispatch => vec![Event::Dispatch],
        EventKind::Receive => vec![Event::Receive],
        EventKind::Reject => RejectionReason::ALL
            .iter()
            .map(|&reason| Event::Reject { reason })
            .collect(),
        EventKind::Cancel => vec![Event::Cancel],
        EventKind::StartProcessing => vec![Event::StartProcessing],
        EventKind::Centrifuge => vec![Event::Centrifuge],
        EventKind::CompleteProcessing => vec![Event::CompleteProcessing {
            specimen_type: SpecimenType::Serum,
            centrifuged: true,
        }],
        EventKind::Aliquot => vec![Event::Aliquot],
        EventKind::Store => vec![Event::Store],
        EventKind::Retrieve => vec![Event::Retrieve],
        EventKind::SendOut => vec![Event::SendOut],
        EventKind::Dispose => vec![Event::Dispose],
    }
}

// ---------------------------------------------------------------------------------------------
// Receipt check

/// The state of the specimen label at receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelStatus {
    Present,
    Missing,
    Illegible,
}

/// A test the specimen was sent for, with its requirements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptTest {
    pub test_code: TestCode,
    /// The (specimen type, container) pairs the test accepts, the planned one first.
    pub accepted: Vec<AcceptedSpecimen>,
    pub min_volume_ul: u32,
    pub stability: StabilityRule,
}

/// What the receiving technologist sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptFacts {
    pub label: LabelStatus,
    /// Result of [`crate::patient::confirm_identity`] between label and order.
    pub identity: Result<(), IdentityError>,
    /// The container actually received (attested at receipt).
    pub container: ContainerType,
    /// The specimen type planned for the tube (kept when the tests disagree on the type the
    /// received container stands for, see [`match_container`]).
    pub planned_type: SpecimenType,
    /// The fill, as attested.
    pub fill: Fill,
    /// Collection time from the label/collection record.
    pub collected_at: Option<Timestamp>,
    /// The temperature segments since collection (the receipt's own last) and the separation.
    pub history: SpecimenHistory,
    pub tests: Vec<ReceiptTest>,
}

/// One problem found at receipt.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReceiptProblem {
    #[error("the specimen is unlabeled")]
    LabelMissing,
    #[error("the label is illegible")]
    LabelIllegible,
    #[error("patient identification failed: {0}")]
    IdentityNotConfirmed(IdentityError),
    #[error("the collection time is missing")]
    CollectionTimeMissing,
    #[error("the collection time is after the receipt time")]
    CollectedInFuture,
    /// `expected`: the accepted containers, e.g. `SST or PST`.
    #[error("test {test_code} needs container {expected}, got {actual}")]
    WrongContainer {
        test_code: TestCode,
        expected: String,
        actual: ContainerCode,
    },
    #[error("the tests need {required_ul} µL, the specimen has {actual_ul} µL")]
    InsufficientVolume { required_ul: u32, actual_ul: u32 },
    #[error("the {container} is filled below its line (wrong blood to additive ratio)")]
    Underfilled { container: String },
    #[error("the {container} is filled above its line (wrong blood to additive ratio)")]
    Overfilled { container: String },
    #[error(
        "test {test_code}: the specimen is {} old and has used {used_percent} % of its \
         stability over its temperature history",
        crate::duration::human(.elapsed)
    )]
    StabilityExceeded {
        test_code: TestCode,
        elapsed: SignedDuration,
        used_percent: u64,
    },
    #[error("test {test_code}: the specimen must not be kept {temperature}")]
    TemperatureNotAllowed {
        test_code: TestCode,
        temperature: Temperature,
    },
    #[error(
        "test {test_code}: the blood was {} unspun ({used_percent} % of its stability before \
         separation, CLSI GP44)",
        crate::duration::human(.unspun)
    )]
    SeparationLate {
        test_code: TestCode,
        unspun: SignedDuration,
        used_percent: u64,
    },
    #[error("test {test_code}: unspun whole blood must not be kept {temperature}")]
    UnspunTemperatureNotAllowed {
        test_code: TestCode,
        temperature: Temperature,
    },
    #[error("test {test_code} is {handling}, but the specimen was kept {temperature}")]
    HandlingBroken {
        test_code: TestCode,
        handling: SpecialHandling,
        temperature: Temperature,
    },
}

impl ReceiptProblem {
    /// The rejection reason to record if the specimen is rejected for this problem.
    pub fn rejection_reason(&self) -> RejectionReason {
        match self {
            Self::LabelMissing => RejectionReason::Unlabeled,
            Self::LabelIllegible => RejectionReason::IllegibleLabel,
            Self::IdentityNotConfirmed(_)
            | Self::CollectionTimeMissing
            | Self::CollectedInFuture => RejectionReason::Mislabeled,
            Self::WrongContainer { .. } => RejectionReason::WrongContainer,
            Self::InsufficientVolume { .. }
            | Self::Underfilled { .. }
            | Self::Overfilled { .. } => RejectionReason::Qns,
            Self::StabilityExceeded { .. } | Self::SeparationLate { .. } => {
                RejectionReason::StabilityExceeded
            }
            Self::TemperatureNotAllowed { .. }
            | Self::UnspunTemperatureNotAllowed { .. }
            | Self::HandlingBroken { .. } => RejectionReason::WrongTemperature,
        }
    }

    /// Stable machine code of the problem.
    pub fn code(&self) -> &'static str {
        match self {
            Self::LabelMissing => "receipt_label_missing",
            Self::LabelIllegible => "receipt_label_illegible",
            Self::IdentityNotConfirmed(_) => "receipt_identity_not_confirmed",
            Self::CollectionTimeMissing => "receipt_collection_time_missing",
            Self::CollectedInFuture => "receipt_collected_in_future",
            Self::WrongContainer { .. } => "receipt_wrong_container",
            Self::InsufficientVolume { .. } => "receipt_insufficient_volume",
            Self::Underfilled { .. } => "receipt_underfilled",
            Self::Overfilled { .. } => "receipt_overfilled",
            Self::StabilityExceeded { .. } => "receipt_stability_exceeded",
            Self::TemperatureNotAllowed { .. } => "receipt_temperature_not_allowed",
            Self::SeparationLate { .. } => "receipt_separation_late",
            Self::UnspunTemperatureNotAllowed { .. } => "receipt_unspun_temperature_not_allowed",
            Self::HandlingBroken { .. } => "receipt_special_handling",
        }
    }

    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        None
    }
}

/// Checks a specimen at receipt; an empty list means acceptable. The fill's form must have
/// been checked first ([`check_fill_form`]).
pub fn check_receipt(spec: &ReceiptFacts, now: Timestamp) -> Vec<ReceiptProblem> {
    let mut problems = Vec::new();
    match spec.label {
        LabelStatus::Present => {
            if let Err(e) = &spec.identity {
                problems.push(ReceiptProblem::IdentityNotConfirmed(e.clone()));
            }
        }
        LabelStatus::Missing => problems.push(ReceiptProblem::LabelMissing),
        LabelStatus::Illegible => problems.push(ReceiptProblem::LabelIllegible),
    }
    problems.extend(match_container(&spec.tests, &spec.container.code, spec.planned_type).problems);
    problems.extend(fill_problems(&spec.container, spec.fill, &spec.tests));
    match spec.collected_at {
        None => problems.push(ReceiptProblem::CollectionTimeMissing),
        // The same skew as at collection: a time accepted there is not refused here.
        Some(collected_at)
            if collected_at > now.checked_add(COLLECTION_CLOCK_SKEW).unwrap_or(now) =>
        {
            problems.push(ReceiptProblem::CollectedInFuture);
        }
        // Stability over the whole temperature history, before and after separation.
        Some(collected_at) => {
            for test in &spec.tests {
                problems.extend(stability::receipt_problems(
                    test,
                    collected_at,
                    &spec.history,
                    now,
                ));
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Centrifugation

/// A validated centrifugation record: when, how hard (RCF in g) and how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CentrifugationRecord {
    started_at: Timestamp,
    rcf_g: u32,
    duration: SignedDuration,
}

/// Why a centrifugation record was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CentrifugationError {
    #[error("RCF must be between 100 and 5000 g; got {rcf_g} g (store RCF, not rpm)")]
    Rcf { rcf_g: u32 },
    #[error(
        "the spin time must be between 1 and 60 minutes; got {}",
        crate::duration::human(.duration)
    )]
    Duration { duration: SignedDuration },
    #[error(
        "the tube was spun {} after collection; it must clot for at least {} first",
        crate::duration::human(.waited),
        crate::duration::human(.required)
    )]
    ClottingTime {
        waited: SignedDuration,
        required: SignedDuration,
    },
}

impl CentrifugationError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Rcf { .. } => "centrifugation_rcf",
            Self::Duration { .. } => "centrifugation_duration",
            Self::ClottingTime { .. } => "centrifugation_clotting_time",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some(match self {
            Self::Rcf { .. } => "rcf_g",
            Self::Duration { .. } => "duration",
            Self::ClottingTime { .. } => "started_at",
        })
    }
}

impl CentrifugationRecord {
    /// Validates plausible settings (DOMAIN §6.5: 1000–1300 g × 10–15 min, coag 1500 g × 15 min).
    pub fn new(
        started_at: Timestamp,
        rcf_g: u32,
        duration: SignedDuration,
    ) -> Result<Self, CentrifugationError> {
        if !processing::SPIN_RCF_G.contains(&rcf_g) {
            return Err(CentrifugationError::Rcf { rcf_g });
        }
        let minutes = processing::SPIN_MINUTES;
        if duration < SignedDuration::from_mins(*minutes.start())
            || duration > SignedDuration::from_mins(*minutes.end())
        {
            return Err(CentrifugationError::Duration { duration });
        }
        Ok(Self {
            started_at,
            rcf_g,
            duration,
        })
    }
    /// Start of the spin.
    pub fn started_at(&self) -> Timestamp {
        self.started_at
    }
    /// Relative centrifugal force, g.
    pub fn rcf_g(&self) -> u32 {
        self.rcf_g
    }
    /// Spin time.
    pub fn duration(&self) -> SignedDuration {
        self.duration
    }

    /// Checks the tube had clotted long enough before the spin ([`min_clot_time`]).
    pub fn check_clotting(
        &self,
        collected_at: Timestamp,
        additive: Additive,
    ) -> Result<(), CentrifugationError> {
        let Some(required) = min_clot_time(additive) else {
            return Ok(());
        };
        let waited = self.started_at.duration_since(collected_at);
        if waited < required {
            return Err(CentrifugationError::ClottingTime { waited, required });
        }
        Ok(())
    }
}

/// Minimum clotting time before centrifugation ([CONFIG] defaults, DOMAIN §6.5): SST 30 min,
/// plain/clot-activator red 60 min; anticoagulated tubes can be spun at once (`None`).
pub fn min_clot_time(additive: Additive) -> Option<SignedDuration> {
    match additive {
        Additive::ClotActivatorGel => Some(SignedDuration::from_mins(30)),
        Additive::ClotActivator | Additive::NoAdditive => Some(SignedDuration::from_mins(60)),
        _ => None,
    }
}

/// RCF (g) from rotor radius (cm) and rpm: 1.118 × 10⁻⁵ × r × rpm² (DOMAIN §6.5).
pub fn rcf_from_rpm(radius_cm: Decimal, rpm: u32) -> Option<Decimal> {
    let rpm = Decimal::from(rpm);
    Decimal::new(1118, 8)
        .checked_mul(radius_cm)?
        .checked_mul(rpm)?
        .checked_mul(rpm)
}

// ---------------------------------------------------------------------------------------------
// Aliquots

/// Why an aliquot can't be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AliquotError {
    #[error("an aliquot needs a positive volume")]
    ZeroVolume,
    #[error(
        "only {available_ul} µL of the parent's {parent_ul} µL are left; {requested_ul} µL requested"
    )]
    ExceedsParent {
        parent_ul: u32,
        available_ul: u32,
        requested_ul: u32,
    },
    #[error("the parent already has {count} aliquots; the suffix allows at most 99")]
    TooMany { count: usize },
}

impl AliquotError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ZeroVolume => "aliquot_zero_volume",
            Self::ExceedsParent { .. } => "aliquot_volume_exceeded",
            Self::TooMany { .. } => "aliquot_too_many",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("volume_ul")
    }
}

/// Checks that a child of `requested_ul` fits: Σ children + requested ≤ parent volume.
pub fn check_aliquot(
    parent_volume_ul: u32,
    existing_children_ul: &[u32],
    requested_ul: u32,
) -> Result<(), AliquotError> {
    if requested_ul == 0 {
        return Err(AliquotError::ZeroVolume);
    }
    if existing_children_ul.len() >= 99 {
        return Err(AliquotError::TooMany {
            count: existing_children_ul.len(),
        });
    }
    let used: u64 = existing_children_ul.iter().map(|&v| u64::from(v)).sum();
    let available = u64::from(parent_volume_ul).saturating_sub(used);
    if u64::from(requested_ul) > available {
        return Err(AliquotError::ExceedsParent {
            parent_ul: parent_volume_ul,
            available_ul: u32::try_from(available).unwrap_or(u32::MAX),
            requested_ul,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Dilution

/// A dilution factor > 1 (e.g. `1:10` → 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DilutionFactor(Decimal);

/// Why a dilution was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DilutionError {
    #[error("a dilution is written 1:N or N (e.g. 1:10 or 10); got {input:?}")]
    Format { input: String },
    #[error("a dilution factor must be greater than 1; got {factor}")]
    NotGreaterThanOne { factor: Decimal },
    #[error("a dilution factor may be at most {max}; got {factor}")]
    TooLarge { factor: Decimal, max: Decimal },
    #[error("the diluted result overflows")]
    Overflow,
}

impl DilutionError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Format { .. } => "dilution_format",
            Self::NotGreaterThanOne { .. } => "dilution_not_greater_than_one",
            Self::TooLarge { .. } => "dilution_too_large",
            Self::Overflow => "dilution_overflow",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("dilution")
    }
}

impl DilutionFactor {
    /// Largest accepted factor: 1:10,000, the deepest manual serial dilution a laboratory
    /// validates (e.g. hCG in gestational trophoblastic disease). A deeper one (1:1,000,000 was
    /// accepted before, issue 10 item 10) is a typing error, not a dilution. [CONFIG]
    pub const MAX: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);

    /// A factor from a number.
    pub fn new(factor: Decimal) -> Result<Self, DilutionError> {
        if factor <= Decimal::ONE {
            return Err(DilutionError::NotGreaterThanOne { factor });
        }
        if factor > Self::MAX {
            return Err(DilutionError::TooLarge {
                factor,
                max: Self::MAX,
            });
        }
        Ok(Self(factor.normalize()))
    }

    /// Parses `1:N` (one part specimen in N total parts) or `N`.
    pub fn parse(input: &str) -> Result<Self, DilutionError> {
        let s = input.trim();
        let err = || DilutionError::Format {
            input: input.to_owned(),
        };
        let number = match s.split_once(':') {
            Some((one, n)) if one.trim() == "1" => n.trim(),
            Some(_) => return Err(err()),
            None => s,
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(err());
        }
        let factor = Decimal::from_str(number).map_err(|_| err())?;
        Self::new(factor)
    }

    /// The factor.
    pub fn value(self) -> Decimal {
        self.0
    }
}

impl fmt::Display for DilutionFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1:{}", self.0)
    }
}

/// The undiluted value: measured value of the diluted specimen × factor.
pub fn apply_dilution(value: Decimal, factor: DilutionFactor) -> Result<Decimal, DilutionError> {
    value.checked_mul(factor.0).ok_or(DilutionError::Overflow)
}

// ---------------------------------------------------------------------------------------------
// Collection time

/// How far a collection time may lie ahead of the server's clock (clock skew of handhelds and
/// draw stations). One rule for collection, correction and receipt: a time accepted at the
/// bedside is never refused later as "in the future". RELIABILITY.md scenario 43 puts skew at
/// ±5 min.
pub const COLLECTION_CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// How far back a draw time may lie by default (lab setting `specimen.collection_lookback_hours`).
/// Outreach and outpatient requisitions are entered in the lab at receipt, hours or days after
/// the draw; the draw time is what stability, turnaround time, labels and reports must use (42
/// CFR 493.1241(c)), so it may precede the order's entry. A week bounds typing errors (a wrong
/// year or month) while admitting a weekend's outreach pick-ups.
pub const COLLECTION_LOOKBACK: SignedDuration = SignedDuration::from_hours(7 * 24);

/// Why a reported collection time is not plausible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CollectionTimeError {
    #[error("the collection time is in the future")]
    InFuture,
    #[error("the collection time is further back than the lab accepts; check the date")]
    TooOld,
}

impl CollectionTimeError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InFuture => "collection_in_future",
            Self::TooOld => "collection_too_old",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("collected_at")
    }
}

/// A collection time may lie at most [`COLLECTION_CLOCK_SKEW`] ahead of now and at most
/// `lookback` before now. It may precede the order's entry: the requisition is often entered
/// after the draw.
pub fn check_collection_time(
    collected_at: Timestamp,
    now: Timestamp,
    lookback: SignedDuration,
) -> Result<(), CollectionTimeError> {
    let latest = now.checked_add(COLLECTION_CLOCK_SKEW).unwrap_or(now);
    let earliest = now.checked_sub(lookback).unwrap_or(Timestamp::MIN);
    if collected_at > latest {
        Err(CollectionTimeError::InFuture)
    } else if collected_at < earliest {
        Err(CollectionTimeError::TooOld)
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Labels

/// Why no label is printed for a tube.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum LabelRefused {
    #[error(
        "this tube's order is cancelled or the tube is cancelled or disposed of; no label is printed"
    )]
    NotInUse,
}

impl LabelRefused {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        "no_label_for_cancelled"
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        None
    }
}

/// A label is printed only for a tube someone may still draw or use: not for a tube of a
/// cancelled order, nor a cancelled or disposed tube.
pub fn check_label(state: SpecimenState, order_cancelled: bool) -> Result<(), LabelRefused> {
    if order_cancelled || matches!(state, SpecimenState::Cancelled | SpecimenState::Disposed) {
        Err(LabelRefused::NotInUse)
    } else {
        Ok(())
    }
}

impl_domain_error!(
    LabelRefused,
    TransitionError,
    ReceiptProblem,
    CentrifugationError,
    AliquotError,
    DilutionError,
    CollectionTimeError
);

#[cfg(test)]
mod collection_time_tests {
    use super::*;

    #[test]
    fn labels_only_for_tubes_in_use() {
        // One row: state, order cancelled → label allowed.
        let cases = [
            (SpecimenState::Planned, false, true),
            (SpecimenState::Received, false, true),
            (SpecimenState::Stored, false, true),
            (SpecimenState::Rejected, false, true),
            (SpecimenState::Planned, true, false),
            (SpecimenState::Received, true, false),
            (SpecimenState::Cancelled, false, false),
            (SpecimenState::Disposed, false, false),
        ];
        for (state, order_cancelled, allowed) in cases {
            assert_eq!(
                check_label(state, order_cancelled).is_ok(),
                allowed,
                "{state:?}, order cancelled {order_cancelled}"
            );
        }
        assert_eq!(LabelRefused::NotInUse.code(), "no_label_for_cancelled");
    }

    /// One row: minutes of the draw relative to now, look-back in hours → verdict.
    const CASES: &[(i64, i64, Result<(), CollectionTimeError>, &str)] = &[
        (0, 168, Ok(()), "now"),
        (5, 168, Ok(()), "5 min ahead: clock skew"),
        (6, 168, Err(CollectionTimeError::InFuture), "6 min ahead"),
        (
            -180,
            168,
            Ok(()),
            "3 h ago: entered at receipt, before the order existed",
        ),
        (-7 * 24 * 60, 168, Ok(()), "exactly a week ago"),
        (
            -7 * 24 * 60 - 1,
            168,
            Err(CollectionTimeError::TooOld),
            "a minute more",
        ),
        (
            -365 * 24 * 60,
            168,
            Err(CollectionTimeError::TooOld),
            "a year off: typing error",
        ),
        (
            -90,
            1,
            Err(CollectionTimeError::TooOld),
            "a lab that allows only 1 h",
        ),
        (-60, 1, Ok(()), "exactly 1 h"),
    ];

    #[test]
    fn collection_time_window() {
        let now: Timestamp = "2026-11-21T09:00:00Z".parse().unwrap();
        for (minutes, hours, verdict, why) in CASES {
            let at = now
                .checked_add(SignedDuration::from_mins(*minutes))
                .unwrap();
            assert_eq!(
                check_collection_time(at, now, SignedDuration::from_hours(*hours)),
                *verdict,
                "{why}"
            );
        }
        assert_eq!(CollectionTimeError::InFuture.code(), "collection_in_future");
        assert_eq!(CollectionTimeError::TooOld.code(), "collection_too_old");
        assert_eq!(CollectionTimeError::TooOld.field(), Some("collected_at"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Stability, UnknownCode};
    use SpecimenState as S;
    use proptest::prelude::*;
    use stability::TemperatureStage;

    const SERUM_DONE: Event = Event::CompleteProcessing {
        specimen_type: SpecimenType::Serum,
        centrifuged: true,
    };

    fn run(events: &[Event]) -> Result<SpecimenState, TransitionError> {
        events.iter().try_fold(S::Planned, transition)
    }

    #[test]
    fn happy_path() {
        let s = run(&[
            Event::Collect,
            Event::Dispatch,
            Event::Receive,
            Event::StartProcessing,
            Event::Centrifuge,
            Event::Aliquot,
            SERUM_DONE,
            Event::Store,
            Event::Retrieve,
            Event::Aliquot,
            Event::Store,
            Event::Dispose,
        ]);
        assert_eq!(s, Ok(S::Disposed));
    }

    #[test]
    fn illegal_transitions_name_state_and_event() {
        let rejected = run(&[
            Event::Collect,
            Event::Reject {
                reason: RejectionReason::Hemolyzed,
            },
        ])
        .unwrap();
        let err = transition(rejected, &Event::Receive).unwrap_err();
        assert_eq!(err.code(), "transition_illegal");
        assert_eq!(
            err.to_string(),
            "cannot receive a specimen that is rejected"
        );

        let err = transition(S::Received, &Event::Receive).unwrap_err();
        assert_eq!(
            err,
            TransitionError::Illegal {
                state: S::Received,
                event: EventKind::Receive
            }
        );

        let err = transition(S::Disposed, &Event::Aliquot).unwrap_err();
        assert_eq!(err.code(), "transition_terminal_state");
        assert!(err.to_string().contains("disposed"));
        assert!(err.to_string().contains("aliquot"));

        assert_eq!(
            transition(S::Stored, &Event::Aliquot).unwrap_err().code(),
            "transition_illegal"
        );
    }

    #[test]
    fn centrifugation_required_for_serum_and_plasma() {
        for st in [SpecimenType::Serum, SpecimenType::Plasma] {
            let err = transition(
                S::InProcess,
                &Event::CompleteProcessing {
                    specimen_type: st,
                    centrifuged: false,
                },
            )
            .unwrap_err();
            assert_eq!(err.code(), "centrifugation_required");
        }
        assert_eq!(
            transition(
                S::InProcess,
                &Event::CompleteProcessing {
                    specimen_type: SpecimenType::WholeBlood,
                    centrifuged: false
                }
            ),
            Ok(S::Processed)
        );
    }

    #[test]
    fn rejection_reason_applicability() {
        let none = Event::Reject {
            reason: RejectionReason::NoSpecimenReceived,
        };
        assert_eq!(transition(S::Planned, &none), Ok(S::Rejected));
        assert_eq!(transition(S::InTransit, &none), Ok(S::Rejected));
        assert_eq!(
            transition(S::Received, &none).unwrap_err().code(),
            "rejection_reason_not_applicable"
        );
        let hemolyzed = Event::Reject {
            reason: RejectionReason::Hemolyzed,
        };
        assert_eq!(
            transition(S::Planned, &hemolyzed).unwrap_err().code(),
            "rejection_reason_not_applicable"
        );
        assert_eq!(transition(S::InProcess, &hemolyzed), Ok(S::Rejected));
        assert_eq!(
            transition(S::Processed, &hemolyzed).unwrap_err().code(),
            "transition_illegal"
        );
    }

    #[test]
    fn allowed_events_per_state() {
        use EventKind as E;
        assert_eq!(
            allowed_event_kinds(S::Planned),
            vec![E::Collect, E::Reject, E::Cancel]
        );
        assert_eq!(
            allowed_event_kinds(S::Received),
            vec![
                E::Reject,
                E::StartProcessing,
                E::Centrifuge,
                E::Aliquot,
                E::SendOut
            ]
        );
        assert_eq!(
            allowed_event_kinds(S::Stored),
            vec![E::Retrieve, E::Dispose]
        );
        assert_eq!(allowed_event_kinds(S::Rejected), vec![E::Dispose]);
        for terminal in S::ALL.iter().filter(|s| s.is_terminal()) {
            assert!(allowed_event_kinds(*terminal).is_empty());
        }
    }

    #[test]
    fn codes_round_trip() {
        for r in RejectionReason::ALL {
            assert_eq!(RejectionReason::parse(r.as_str()), Ok(*r));
        }
        for s in SpecimenState::ALL {
            assert_eq!(SpecimenState::parse(s.as_str()), Ok(*s));
        }
        assert_eq!(RejectionReason::parse("qns"), Ok(RejectionReason::Qns));
        assert!(matches!(
            RejectionReason::parse("QNS"),
            Err(UnknownCode { .. })
        ));
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        prop_oneof![
            Just(Event::Collect),
            Just(Event::Dispatch),
            Just(Event::Receive),
            prop::sample::select(RejectionReason::ALL.to_vec())
                .prop_map(|reason| Event::Reject { reason }),
            Just(Event::Cancel),
            Just(Event::StartProcessing),
            Just(Event::Centrifuge),
            (
                prop::sample::select(SpecimenType::ALL.to_vec()),
                any::<bool>()
            )
                .prop_map(|(specimen_type, centrifuged)| Event::CompleteProcessing {
                    specimen_type,
                    centrifuged
                }),
            Just(Event::Aliquot),
            Just(Event::Store),
            Just(Event::Retrieve),
            Just(Event::SendOut),
            Just(Event::Dispose),
        ]
    }

    proptest! {
        #[test]
        fn random_sequences_respect_invariants(events in prop::collection::vec(arb_event(), 0..40)) {
            let mut state = S::Planned;
            let mut completed = false;
            let mut receipts = 0;
            for event in &events {
                match transition(state, event) {
                    Ok(next) => {
                        prop_assert!(S::ALL.contains(&next));
                        prop_assert!(!state.is_terminal());
                        if let Event::Reject { .. } = event {
                            prop_assert!(!completed, "rejected after completion");
                        }
                        if event.kind() == EventKind::Receive {
                            receipts += 1;
                        }
                        if next == S::Processed && state == S::InProcess {
                            if let Event::CompleteProcessing { specimen_type, centrifuged } = event {
                                prop_assert!(*centrifuged || !specimen_type.requires_centrifugation());
                            }
                            completed = true;
                        }
                        state = next;
                    }
                    Err(e) => {
                        // A refusal names the state it was in.
                        if state.is_terminal() {
                            prop_assert_eq!(e.code(), "transition_terminal_state");
                        }
                    }
                }
            }
            prop_assert!(receipts <= 1, "received twice");
        }

        #[test]
        fn terminal_states_accept_nothing(event in arb_event()) {
            for state in S::ALL.iter().filter(|s| s.is_terminal()) {
                let err = transition(*state, &event).unwrap_err();
                prop_assert_eq!(err.code(), "transition_terminal_state");
            }
        }

        #[test]
        fn rejected_accepts_only_dispose(event in arb_event()) {
            let result = transition(S::Rejected, &event);
            prop_assert_eq!(result.is_ok(), event.kind() == EventKind::Dispose);
        }

        #[test]
        fn aliquot_never_changes_state(state in prop::sample::select(S::ALL.to_vec())) {
            if let Ok(next) = transition(state, &Event::Aliquot) {
                prop_assert_eq!(next, state);
            }
        }

        #[test]
        fn aliquot_volumes_never_exceed_parent(parent in 0u32..10_000, requests in prop::collection::vec(0u32..3_000, 0..20)) {
            let mut children = Vec::new();
            for r in requests {
                if check_aliquot(parent, &children, r).is_ok() {
                    children.push(r);
                }
            }
            let total: u64 = children.iter().map(|&c| u64::from(c)).sum();
            prop_assert!(total <= u64::from(parent));
        }

        #[test]
        fn dilution_parse_forms_agree(n in 2u32..=10_000) {
            let a = DilutionFactor::parse(&format!("1:{n}")).unwrap();
            let b = DilutionFactor::parse(&n.to_string()).unwrap();
            prop_assert_eq!(a, b);
            prop_assert_eq!(apply_dilution(Decimal::ONE, a).unwrap(), Decimal::from(n));
        }
    }

    fn container(code: &str) -> ContainerType {
        ContainerType::defaults()
            .into_iter()
            .find(|c| c.code.as_str() == code)
            .unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn k_test() -> ReceiptTest {
        ReceiptTest {
            test_code: TestCode::parse("K").unwrap(),
            accepted: vec![AcceptedSpecimen {
                specimen_type: SpecimenType::Serum,
                container: ContainerCode::parse("SST").unwrap(),
            }],
            min_volume_ul: 500,
            stability: StabilityRule::simple(
                Stability::new(
                    Some(SignedDuration::from_hours(8)),
                    Some(SignedDuration::from_hours(48)),
                    None,
                )
                .unwrap(),
            ),
        }
    }

    fn good_facts() -> ReceiptFacts {
        ReceiptFacts {
            label: LabelStatus::Present,
            identity: Ok(()),
            container: container("SST"),
            planned_type: SpecimenType::Serum,
            fill: Fill::Measured { volume_ul: 1000 },
            collected_at: Some(ts("2026-11-21T08:00:00Z")),
            history: SpecimenHistory::kept(
                ts("2026-11-21T08:00:00Z"),
                Temperature::Room,
                TemperatureStage::Collection,
            ),
            tests: vec![k_test()],
        }
    }

    #[test]
    fn receipt_accepts_good_specimen() {
        assert_eq!(
            check_receipt(&good_facts(), ts("2026-11-21T09:00:00Z")),
            vec![]
        );
    }

    #[test]
    fn receipt_reports_every_problem() {
        let mut facts = good_facts();
        facts.label = LabelStatus::Missing;
        facts.container = container("LAV");
        facts.fill = Fill::Measured { volume_ul: 400 };
        let mut second = k_test();
        second.test_code = TestCode::parse("NA").unwrap();
        second.stability = StabilityRule::simple(
            Stability::new(None, Some(SignedDuration::from_hours(1)), None).unwrap(),
        );
        facts.tests.push(second);
        let problems = check_receipt(&facts, ts("2026-11-21T17:00:00Z"));
        let reasons: Vec<RejectionReason> = problems
            .iter()
            .map(ReceiptProblem::rejection_reason)
            .collect();
        use RejectionReason as R;
        assert_eq!(
            reasons,
            vec![
                R::Unlabeled,
                R::WrongContainer,
                R::WrongContainer,
                R::Qns,
                R::StabilityExceeded,
                R::WrongTemperature,
            ]
        );
        assert_eq!(
            problems[3],
            ReceiptProblem::InsufficientVolume {
                required_ul: 1000,
                actual_ul: 400
            }
        );
    }

    #[test]
    fn receipt_identity_and_collection_time() {
        let mut facts = good_facts();
        facts.identity = Err(IdentityError::Insufficient { matched: 1 });
        facts.collected_at = None;
        let problems = check_receipt(&facts, ts("2026-11-21T09:00:00Z"));
        assert_eq!(problems.len(), 2);
        assert!(
            problems
                .iter()
                .all(|p| p.rejection_reason() == RejectionReason::Mislabeled)
        );
        facts.identity = Ok(());
        facts.collected_at = Some(ts("2026-11-21T10:00:00Z"));
        assert_eq!(
            check_receipt(&facts, ts("2026-11-21T09:00:00Z")),
            vec![ReceiptProblem::CollectedInFuture]
        );
    }

    #[test]
    fn receipt_citrate_fill() {
        let mut facts = good_facts();
        let mut pt = k_test();
        pt.accepted = vec![AcceptedSpecimen {
            specimen_type: SpecimenType::Plasma,
            container: ContainerCode::parse("BLU").unwrap(),
        }];
        pt.min_volume_ul = 600;
        facts.tests = vec![pt];
        facts.container = container("BLU");
        facts.planned_type = SpecimenType::Plasma;
        // A correctly filled citrate tube is accepted without any µL (it used to be refused
        // as under-filled when received without a volume).
        facts.fill = Fill::Line(LineFill::ToLine);
        assert_eq!(check_receipt(&facts, ts("2026-11-21T09:00:00Z")), vec![]);
        facts.fill = Fill::Line(LineFill::Under);
        let problems = check_receipt(&facts, ts("2026-11-21T09:00:00Z"));
        assert_eq!(
            problems,
            vec![ReceiptProblem::Underfilled {
                container: "Sodium citrate 3.2% 2.7 mL".into()
            }]
        );
        assert_eq!(problems[0].rejection_reason(), RejectionReason::Qns);
    }

    #[test]
    fn centrifugation_records() {
        let collected = ts("2026-11-21T08:00:00Z");
        let rec = CentrifugationRecord::new(
            ts("2026-11-21T08:20:00Z"),
            1300,
            SignedDuration::from_mins(10),
        )
        .unwrap();
        assert_eq!(
            rec.check_clotting(collected, Additive::ClotActivatorGel)
                .unwrap_err()
                .code(),
            "centrifugation_clotting_time"
        );
        assert!(rec.check_clotting(collected, Additive::HeparinGel).is_ok());
        let later = CentrifugationRecord::new(
            ts("2026-11-21T08:30:00Z"),
            1300,
            SignedDuration::from_mins(10),
        )
        .unwrap();
        assert!(
            later
                .check_clotting(collected, Additive::ClotActivatorGel)
                .is_ok()
        );
        assert_eq!(
            CentrifugationRecord::new(collected, 3000 * 10, SignedDuration::from_mins(10))
                .unwrap_err()
                .code(),
            "centrifugation_rcf"
        );
        assert_eq!(
            CentrifugationRecord::new(collected, 1300, SignedDuration::from_secs(30))
                .unwrap_err()
                .code(),
            "centrifugation_duration"
        );
        // 10 cm rotor at 3000 rpm ≈ 1006 g.
        assert_eq!(
            rcf_from_rpm(Decimal::from(10), 3000).unwrap().round(),
            Decimal::from(1006)
        );
    }

    #[test]
    fn aliquot_checks() {
        assert_eq!(check_aliquot(1000, &[400, 300], 300), Ok(()));
        assert_eq!(
            check_aliquot(1000, &[400, 300], 301),
            Err(AliquotError::ExceedsParent {
                parent_ul: 1000,
                available_ul: 300,
                requested_ul: 301
            })
        );
        assert_eq!(
            check_aliquot(1000, &[], 0).unwrap_err().code(),
            "aliquot_zero_volume"
        );
        assert_eq!(
            check_aliquot(10_000, &[1; 99], 1).unwrap_err().code(),
            "aliquot_too_many"
        );
    }

    #[test]
    fn dilution_parsing() {
        assert_eq!(
            DilutionFactor::parse("1:2").unwrap().value(),
            Decimal::from(2)
        );
        assert_eq!(
            DilutionFactor::parse(" 1 : 10 ").unwrap().value(),
            Decimal::from(10)
        );
        assert_eq!(
            DilutionFactor::parse("2.5").unwrap().value(),
            Decimal::new(25, 1)
        );
        assert_eq!(DilutionFactor::parse("1:10").unwrap().to_string(), "1:10");
        assert_eq!(
            DilutionFactor::parse("1:1").unwrap_err().code(),
            "dilution_not_greater_than_one"
        );
        assert_eq!(
            DilutionFactor::parse("0.5").unwrap_err().code(),
            "dilution_not_greater_than_one"
        );
        for bad in ["", "2:10", "1:", "ten", "-5", "1:1e3", "1:2:3"] {
            assert_eq!(
                DilutionFactor::parse(bad).unwrap_err().code(),
                "dilution_format",
                "{bad}"
            );
        }
        // One row: factor → accepted (the issue's 1:1,000,000 is refused).
        for (input, ok) in [
            ("1:10000", true),
            ("1:10001", false),
            ("1:1000000", false),
            ("10000000", false),
        ] {
            assert_eq!(DilutionFactor::parse(input).is_ok(), ok, "{input}");
        }
        assert_eq!(
            DilutionFactor::parse("1:1000000").unwrap_err().code(),
            "dilution_too_large"
        );
        let f = DilutionFactor::parse("1:10").unwrap();
        assert_eq!(
            apply_dilution(Decimal::new(123, 1), f).unwrap(),
            Decimal::from(123)
        );
        assert_eq!(
            apply_dilution(Decimal::MAX, f).unwrap_err().code(),
            "dilution_overflow"
        );
    }
}
