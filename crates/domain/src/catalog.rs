//! Test catalogue vocabulary: departments, specimen types, containers, temperatures, stability,
//! special handling, result types, priorities, TAT targets and a light UCUM syntax check.
//!
//! # Rules and sources
//! - Containers (DOMAIN §6.1): colours are de-facto conventions, not universal, so a container is
//!   identified by its code and additive; the cap colour is display data only.
//! - Order of draw (DOMAIN §6.2, CLSI GP41): blood culture → sodium citrate → serum (with or
//!   without clot activator/gel) → heparin (with or without gel) → EDTA (with or without gel) →
//!   glycolytic inhibitor (fluoride/oxalate). Other tubes "are placed according to the potential of
//!   their additive to contaminate the next tube", so [`ContainerType::draw_rank`] is data
//!   ([CONFIG]) that defaults from the additive via [`Additive::default_draw_rank`]; non-blood
//!   containers (urine cups, swabs) rank after all blood tubes.
//! - Citrate tubes must be filled to ≥ 90 % of nominal volume (DOMAIN §6.1, §6.4):
//!   [`ContainerType::min_fill_percent`].
//! - Stability (DOMAIN §6.3) is per test and temperature and always lab-configured ([CONFIG]):
//!   [`Stability`] holds an optional maximum per [`Temperature`]; `None` means the temperature is
//!   not allowed (e.g. refrigerated whole blood for coagulation or potassium, refrigerated blood
//!   culture bottles).
//! - Priorities use HL7 v2 priority codes (TQ1-9 / OBR-27 component): S stat, A ASAP, R routine,
//!   T timing critical.
//! - TAT targets per priority are lab policy ([CONFIG], DOMAIN §11.2 lists typical targets).
//! - UCUM (DOMAIN §5.4 names UCUM codes such as `mg/dL`, `mmol/L`, `umol/L`, `10*9/L`):
//!   [`Ucum::parse`] is a syntactic check of the UCUM grammar (terms joined by `.` and `/`,
//!   exponents, `10*n` factors, `[...]` atoms, `{...}` annotations); it does not check that
//!   atoms exist in the UCUM table.

use std::fmt;

use jiff::SignedDuration;
use thiserror::Error;

use crate::error::impl_domain_error;

/// Generic "unknown code" error for the small code-string enums in this module.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {what} code {input:?}")]
pub struct UnknownCode {
    /// Which vocabulary (e.g. `department`).
    pub what: &'static str,
    /// The text that was not recognised.
    pub input: String,
}

impl UnknownCode {
    /// Stable machine code, e.g. `unknown_department`.
    pub fn code(&self) -> &'static str {
        match self.what {
            "department" => "unknown_department",
            "specimen_type" => "unknown_specimen_type",
            "temperature" => "unknown_temperature",
            "special_handling" => "unknown_special_handling",
            "priority" => "unknown_priority",
            "additive" => "unknown_additive",
            "specimen_state" => "unknown_specimen_state",
            "rejection_reason" => "unknown_rejection_reason",
            "event" => "unknown_event",
            "milestone" => "unknown_milestone",
            "fill" => "unknown_fill",
            "test_status" => "unknown_test_status",
            "shipment_status" => "unknown_shipment_status",
            "shipment_event" => "unknown_shipment_event",
            _ => "unknown_code",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some(self.what)
    }
}

/// Declares a fieldless enum with stable code strings, `as_str`, `parse`, `ALL` and `Display`.
macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal { $( $(#[$vmeta:meta])* $variant:ident => $code:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[ $( Self::$variant ),+ ];

            /// Stable code string.
            pub fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $code ),+ }
            }

            /// Parses the code string (exact, lower case).
            pub fn parse(input: &str) -> Result<Self, $crate::catalog::UnknownCode> {
                match input {
                    $( $code => Ok(Self::$variant), )+
                    _ => Err($crate::catalog::UnknownCode { what: $what, input: input.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use code_enum;

code_enum! {
    /// Laboratory department (section) that performs a test.
    Department, "department" {
        Chemistry => "chemistry",
        Hematology => "hematology",
        Coagulation => "coagulation",
        Urinalysis => "urinalysis",
        Microbiology => "microbiology",
        BloodBank => "blood_bank",
        Molecular => "molecular",
        SendOut => "send_out",
    }
}

code_enum! {
    /// Specimen type (what is in the container when it is tested).
    SpecimenType, "specimen_type" {
        Serum => "serum",
        Plasma => "plasma",
        WholeBlood => "whole_blood",
        Urine => "urine",
        Csf => "csf",
        BodyFluid => "body_fluid",
        Swab => "swab",
        Sputum => "sputum",
        Stool => "stool",
        Tissue => "tissue",
        BoneMarrow => "bone_marrow",
        ArterialBlood => "arterial_blood",
    }
}

impl SpecimenType {
    /// Serum and plasma are separated from cells by centrifugation (DOMAIN §6.5), so processing
    /// can't complete without a centrifugation record.
    pub fn requires_centrifugation(self) -> bool {
        matches!(self, Self::Serum | Self::Plasma)
    }

    /// Specimens that can't be recollected (DOMAIN §6.4: CSF, tissue, bone marrow, surgical
    /// fluids) are usually not discarded on rejection; the lab decides ([CONFIG]).
    pub fn is_irreplaceable(self) -> bool {
        matches!(
            self,
            Self::Csf | Self::Tissue | Self::BoneMarrow | Self::BodyFluid
        )
    }
}

code_enum! {
    /// Container additive (DOMAIN §6.1). Store the additive, not the colour.
    Additive, "additive" {
        /// Blood culture bottle (broth, SPS).
        CultureMedium => "culture_medium",
        /// 3.2 % buffered sodium citrate 9:1 (light blue).
        SodiumCitrate => "sodium_citrate",
        /// Glass red top.
        NoAdditive => "none",
        /// Plastic red top: silica clot activator.
        ClotActivator => "clot_activator",
        /// SST / gold: clot activator + gel.
        ClotActivatorGel => "clot_activator_gel",
        /// Dark green.
        Heparin => "heparin",
        /// Light green PST.
        HeparinGel => "heparin_gel",
        /// Lavender / pink / tan.
        Edta => "edta",
        /// Pearl / white PPT.
        EdtaGel => "edta_gel",
        /// Grey: sodium fluoride + potassium oxalate.
        FluorideOxalate => "fluoride_oxalate",
        /// Yellow ACD.
        Acd => "acd",
        /// Black: buffered citrate 4:1 for ESR.
        CitrateEsr => "citrate_esr",
        /// Sterile container without additive (urine cup, CSF tube).
        SterileContainer => "sterile_container",
        /// Swab in transport medium.
        TransportMedium => "transport_medium",
        /// Plain polypropylene aliquot (transfer) tube, no additive: what a pour-off goes into.
        TransferTube => "transfer_tube",
    }
}

/// Position in the CLSI GP41 order of draw (lower is drawn first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DrawRank(pub u8);

impl DrawRank {
    /// 1. Blood culture bottles/tubes.
    pub const BLOOD_CULTURE: Self = Self(10);
    /// 2. Sodium citrate (coagulation).
    pub const CITRATE: Self = Self(20);
    /// 3. Serum tubes with or without clot activator/gel.
    pub const SERUM: Self = Self(30);
    /// 4. Heparin tubes with or without gel.
    pub const HEPARIN: Self = Self(40);
    /// 5. EDTA tubes with or without gel.
    pub const EDTA: Self = Self(50);
    /// 6. Glycolytic inhibitor (fluoride/oxalate).
    pub const GLYCOLYTIC_INHIBITOR: Self = Self(60);
    /// Tubes outside the GP41 list with an additive (ACD, ESR citrate): after the listed ones
    /// unless the lab configures otherwise.
    pub const OTHER_BLOOD: Self = Self(70);
    /// Not a blood tube (urine, swab, ...): not part of the venipuncture draw.
    pub const NOT_BLOOD: Self = Self(100);
}

impl Additive {
    /// Default GP41 rank for the additive (DOMAIN §6.2).
    pub fn default_draw_rank(self) -> DrawRank {
        match self {
            Self::CultureMedium => DrawRank::BLOOD_CULTURE,
            Self::SodiumCitrate => DrawRank::CITRATE,
            Self::NoAdditive | Self::ClotActivator | Self::ClotActivatorGel => DrawRank::SERUM,
            Self::Heparin | Self::HeparinGel => DrawRank::HEPARIN,
            Self::Edta | Self::EdtaGel => DrawRank::EDTA,
            Self::FluorideOxalate => DrawRank::GLYCOLYTIC_INHIBITOR,
            Self::Acd | Self::CitrateEsr => DrawRank::OTHER_BLOOD,
            Self::SterileContainer | Self::TransportMedium | Self::TransferTube => {
                DrawRank::NOT_BLOOD
            }
        }
    }

    /// Whether the tube contains a gel separator (gel tubes must not be re-spun, DOMAIN §6.5).
    pub fn has_gel(self) -> bool {
        matches!(
            self,
            Self::ClotActivatorGel | Self::HeparinGel | Self::EdtaGel
        )
    }
}

/// Container code, e.g. `SST`, `LAV`: 1–16 characters of `[A-Z0-9_-]`, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerCode(String);

impl ContainerCode {
    /// Parses a container code (upper-cased).
    pub fn parse(input: &str) -> Result<Self, CatalogError> {
        let ok = (1..=16).contains(&input.len())
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(CatalogError::ContainerCode {
                input: input.to_owned(),
            });
        }
        Ok(Self(input.to_ascii_uppercase()))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Errors constructing catalogue data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CatalogError {
    #[error("a container code is 1–16 characters of A–Z, 0–9, '_' or '-'; got {input:?}")]
    ContainerCode { input: String },
    #[error("the container name must be 1–100 characters without control characters")]
    ContainerName,
    #[error("a container's nominal volume must be positive")]
    ZeroVolume,
    #[error("the usable volume ({usable_ul} µL) exceeds the nominal volume ({nominal_ul} µL)")]
    UsableExceedsNominal { usable_ul: u32, nominal_ul: u32 },
    #[error("a minimum fill percentage is 1..=100; got {percent}")]
    FillPercent { percent: u8 },
    #[error("a coded result needs at least one answer")]
    NoAnswers,
    #[error("the coded answer {answer:?} is empty, has control characters or is duplicated")]
    BadAnswer { answer: String },
    #[error("numeric precision is at most 6 decimal places; got {precision}")]
    Precision { precision: u8 },
    #[error("a stability limit must be positive")]
    NonPositiveStability,
    #[error("a TAT target must be positive")]
    NonPositiveTarget,
}

impl CatalogError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ContainerCode { .. } => "container_code",
            Self::ContainerName => "container_name",
            Self::ZeroVolume => "container_zero_volume",
            Self::UsableExceedsNominal { .. } => "container_usable_volume",
            Self::FillPercent { .. } => "container_fill_percent",
            Self::NoAnswers => "result_type_no_answers",
            Self::BadAnswer { .. } => "result_type_bad_answer",
            Self::Precision { .. } => "result_type_precision",
            Self::NonPositiveStability => "stability_non_positive",
            Self::NonPositiveTarget => "tat_target_non_positive",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some(match self {
            Self::ContainerCode { .. } => "container_code",
            Self::ContainerName => "name",
            Self::ZeroVolume | Self::UsableExceedsNominal { .. } => "volume_ul",
            Self::FillPercent { .. } => "min_fill_percent",
            Self::NoAnswers | Self::BadAnswer { .. } => "answers",
            Self::Precision { .. } => "precision",
            Self::NonPositiveStability => "stability",
            Self::NonPositiveTarget => "tat_target",
        })
    }
}

/// A container (tube, bottle, cup) definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerType {
    /// Catalogue code.
    pub code: ContainerCode,
    /// Display name, e.g. "SST gold 5 mL".
    pub name: String,
    /// Cap colour for display only (DOMAIN §6.1: colours are not universal).
    pub cap_colour: String,
    /// Additive.
    pub additive: Additive,
    /// Nominal draw (fill) volume in µL.
    pub nominal_volume_ul: u32,
    /// Specimen volume available for testing in µL (e.g. serum yield of a 5 mL SST ≈ 2.5 mL);
    /// this is the capacity used by tube planning ([CONFIG]).
    pub usable_volume_ul: u32,
    /// Order-of-draw rank ([CONFIG], defaults from the additive).
    pub draw_rank: DrawRank,
    /// Minimum fill as a percentage of nominal volume (citrate: 90), if the tube has one.
    pub min_fill_percent: Option<u8>,
}

impl ContainerType {
    /// The most a tube of this type can physically hold, in µL: its nominal draw volume plus
    /// 10 % (a vacuum tube draws its nominal volume; a manually filled one can be a little
    /// over). A volume reported above it is a typing or unit error (e.g. 99,999 µL in a 5 mL
    /// tube), not a specimen.
    pub fn max_content_ul(&self) -> u32 {
        self.nominal_volume_ul
            .saturating_add(self.nominal_volume_ul / 10)
    }

    /// Builds a validated container definition. `draw_rank` defaults from the additive; fill
    /// tolerance defaults to 90 % for sodium citrate (DOMAIN §6.1).
    pub fn new(
        code: ContainerCode,
        name: &str,
        cap_colour: &str,
        additive: Additive,
        nominal_volume_ul: u32,
        usable_volume_ul: u32,
    ) -> Result<Self, CatalogError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(CatalogError::ContainerName);
        }
        if nominal_volume_ul == 0 || usable_volume_ul == 0 {
            return Err(CatalogError::ZeroVolume);
        }
        if usable_volume_ul > nominal_volume_ul {
            return Err(CatalogError::UsableExceedsNominal {
                usable_ul: usable_volume_ul,
                nominal_ul: nominal_volume_ul,
            });
        }
        Ok(Self {
            code,
            name: name.to_owned(),
            cap_colour: cap_colour.trim().to_owned(),
            additive,
            nominal_volume_ul,
            usable_volume_ul,
            draw_rank: additive.default_draw_rank(),
            min_fill_percent: (additive == Additive::SodiumCitrate).then_some(90),
        })
    }

    /// Overrides the order-of-draw rank ([CONFIG]).
    pub fn with_draw_rank(mut self, rank: DrawRank) -> Self {
        self.draw_rank = rank;
        self
    }

    /// Sets or clears the minimum fill percentage.
    pub fn with_min_fill_percent(mut self, percent: Option<u8>) -> Result<Self, CatalogError> {
        if let Some(p) = percent
            && !(1..=100).contains(&p)
        {
            return Err(CatalogError::FillPercent { percent: p });
        }
        self.min_fill_percent = percent;
        Ok(self)
    }

    /// Minimum acceptable fill volume in µL (rounded up), if the container has a fill rule.
    pub fn min_fill_volume_ul(&self) -> Option<u32> {
        self.min_fill_percent.map(|p| {
            let v = u64::from(self.nominal_volume_ul) * u64::from(p);
            u32::try_from(v.div_ceil(100)).unwrap_or(u32::MAX)
        })
    }

    /// A starter catalogue from DOMAIN §6.1 (volumes are typical adult tubes; [CONFIG]).
    pub fn defaults() -> Vec<Self> {
        let rows: [(&str, &str, &str, Additive, u32, u32); 13] = [
            (
                "BCX",
                "Blood culture bottle",
                "yellow/grey",
                Additive::CultureMedium,
                10_000,
                10_000,
            ),
            (
                "BLU",
                "Sodium citrate 3.2% 2.7 mL",
                "light blue",
                Additive::SodiumCitrate,
                2_700,
                1_200,
            ),
            (
                "RED",
                "Serum plastic 6 mL",
                "red",
                Additive::ClotActivator,
                6_000,
                2_500,
            ),
            (
                "SST",
                "Serum separator 5 mL",
                "gold",
                Additive::ClotActivatorGel,
                5_000,
                2_200,
            ),
            (
                "PST",
                "Lithium heparin gel 4.5 mL",
                "light green",
                Additive::HeparinGel,
                4_500,
                2_000,
            ),
            (
                "GRN",
                "Heparin 4 mL",
                "dark green",
                Additive::Heparin,
                4_000,
                1_800,
            ),
            (
                "LAV",
                "K2EDTA 4 mL",
                "lavender",
                Additive::Edta,
                4_000,
                4_000,
            ),
            (
                "PNK",
                "K2EDTA blood bank 6 mL",
                "pink",
                Additive::Edta,
                6_000,
                6_000,
            ),
            (
                "PPT",
                "K2EDTA gel 5 mL",
                "pearl",
                Additive::EdtaGel,
                5_000,
                2_200,
            ),
            (
                "GRY",
                "Fluoride/oxalate 4 mL",
                "grey",
                Additive::FluorideOxalate,
                4_000,
                1_800,
            ),
            (
                "UCUP",
                "Urine cup",
                "none",
                Additive::SterileContainer,
                100_000,
                100_000,
            ),
            (
                "ALQ",
                "Aliquot tube 5 mL",
                "natural",
                Additive::TransferTube,
                5_000,
                5_000,
            ),
            (
                "SWAB",
                "Swab in transport medium",
                "none",
                Additive::TransportMedium,
                1_000,
                1_000,
            ),
        ];
        rows.into_iter()
            .filter_map(|(code, name, colour, additive, nominal, usable)| {
                let code = ContainerCode::parse(code).ok()?;
                Self::new(code, name, colour, additive, nominal, usable).ok()
            })
            .collect()
    }
}

code_enum! {
    /// Storage/transport temperature band.
    Temperature, "temperature" {
        /// 15–25 °C.
        Room => "room",
        /// 2–8 °C.
        Refrigerated => "refrigerated",
        /// ≤ −20 °C.
        Frozen => "frozen",
    }
}

/// Maximum time from collection per temperature; `None` = not allowed at that temperature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stability {
    room: Option<SignedDuration>,
    refrigerated: Option<SignedDuration>,
    frozen: Option<SignedDuration>,
}

impl Stability {
    /// Builds a stability rule; every given limit must be positive.
    pub fn new(
        room: Option<SignedDuration>,
        refrigerated: Option<SignedDuration>,
        frozen: Option<SignedDuration>,
    ) -> Result<Self, CatalogError> {
        if [room, refrigerated, frozen]
            .into_iter()
            .flatten()
            .any(|d| d <= SignedDuration::ZERO)
        {
            return Err(CatalogError::NonPositiveStability);
        }
        Ok(Self {
            room,
            refrigerated,
            frozen,
        })
    }

    /// The limit at `temperature`; `None` if the specimen must not be kept at that temperature.
    pub fn limit(&self, temperature: Temperature) -> Option<SignedDuration> {
        match temperature {
            Temperature::Room => self.room,
            Temperature::Refrigerated => self.refrigerated,
            Temperature::Frozen => self.frozen,
        }
    }
}

code_enum! {
    /// Special pre-analytical handling flags (DOMAIN §6.3).
    SpecialHandling, "special_handling" {
        /// Transport on ice (ammonia, lactate).
        OnIce => "on_ice",
        /// Protect from light (bilirubin).
        ProtectFromLight => "protect_from_light",
        /// Keep at body temperature (cold agglutinins, cryoglobulins).
        KeepAt37C => "keep_at_37c",
        /// Never refrigerate (blood cultures, PT whole blood, potassium whole blood).
        DoNotRefrigerate => "do_not_refrigerate",
        /// Deliver to the lab immediately (blood gases, ammonia).
        DeliverImmediately => "deliver_immediately",
        /// Keep the tube capped (blood gases, CO2).
        KeepCapped => "keep_capped",
    }
}

/// How a test's result is expressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultType {
    /// Numeric with a display precision (decimal places; store unrounded, DOMAIN §5.4).
    Numeric { precision: u8 },
    /// One of a fixed list of answers.
    Coded { answers: Vec<String> },
    /// Free text.
    Text,
}

impl ResultType {
    /// A numeric result type with at most 6 decimal places.
    pub fn numeric(precision: u8) -> Result<Self, CatalogError> {
        if precision > 6 {
            return Err(CatalogError::Precision { precision });
        }
        Ok(Self::Numeric { precision })
    }

    /// A coded result type: non-empty, trimmed, unique (case-insensitive), no control chars.
    pub fn coded<S: AsRef<str>>(answers: &[S]) -> Result<Self, CatalogError> {
        if answers.is_empty() {
            return Err(CatalogError::NoAnswers);
        }
        let mut out: Vec<String> = Vec::with_capacity(answers.len());
        for raw in answers {
            let a = raw.as_ref().trim();
            let duplicate = out.iter().any(|o| o.eq_ignore_ascii_case(a));
            if a.is_empty() || a.chars().any(char::is_control) || duplicate {
                return Err(CatalogError::BadAnswer {
                    answer: raw.as_ref().to_owned(),
                });
            }
            out.push(a.to_owned());
        }
        Ok(Self::Coded { answers: out })
    }
}

code_enum! {
    /// Order priority (HL7 v2 priority codes S/A/R/T); the derived order is the urgency order.
    Priority, "priority" {
        Stat => "stat",
        Asap => "asap",
        Timed => "timed",
        Routine => "routine",
    }
}

impl Priority {
    /// HL7 v2 priority code.
    pub fn hl7_code(self) -> &'static str {
        match self {
            Self::Stat => "S",
            Self::Asap => "A",
            Self::Routine => "R",
            Self::Timed => "T",
        }
    }

    /// Parses an HL7 v2 priority code (S, A, R, T).
    pub fn from_hl7(code: &str) -> Result<Self, UnknownCode> {
        match code {
            "S" => Ok(Self::Stat),
            "A" => Ok(Self::Asap),
            "R" => Ok(Self::Routine),
            "T" => Ok(Self::Timed),
            _ => Err(UnknownCode {
                what: "priority",
                input: code.to_owned(),
            }),
        }
    }

    /// Urgency rank, 0 = most urgent (STAT).
    pub fn urgency(self) -> u8 {
        match self {
            Self::Stat => 0,
            Self::Asap => 1,
            Self::Timed => 2,
            Self::Routine => 3,
        }
    }
}

/// TAT targets per priority ([CONFIG], DOMAIN §11.2); `None` = no target for that priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TatTargets {
    stat: Option<SignedDuration>,
    asap: Option<SignedDuration>,
    timed: Option<SignedDuration>,
    routine: Option<SignedDuration>,
}

impl TatTargets {
    /// Builds targets; each given target must be positive.
    pub fn new(
        stat: Option<SignedDuration>,
        asap: Option<SignedDuration>,
        timed: Option<SignedDuration>,
        routine: Option<SignedDuration>,
    ) -> Result<Self, CatalogError> {
        if [stat, asap, timed, routine]
            .into_iter()
            .flatten()
            .any(|d| d <= SignedDuration::ZERO)
        {
            return Err(CatalogError::NonPositiveTarget);
        }
        Ok(Self {
            stat,
            asap,
            timed,
            routine,
        })
    }

    /// Example defaults from DOMAIN §11.2 "typical internal targets" (in-lab, receipt →
    /// verified): STAT 60 min, ASAP 2 h, routine 4 h; timed has no default.
    pub fn typical_chemistry() -> Self {
        Self {
            stat: Some(SignedDuration::from_mins(60)),
            asap: Some(SignedDuration::from_hours(2)),
            timed: None,
            routine: Some(SignedDuration::from_hours(4)),
        }
    }

    /// The target for `priority`.
    pub fn target(&self, priority: Priority) -> Option<SignedDuration> {
        match priority {
            Priority::Stat => self.stat,
            Priority::Asap => self.asap,
            Priority::Timed => self.timed,
            Priority::Routine => self.routine,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// UCUM

/// A syntactically valid UCUM unit expression (case-sensitive form).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ucum(String);

/// Why a unit was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UcumError {
    #[error("the unit is empty")]
    Empty,
    #[error("the unit {input:?} contains whitespace")]
    Whitespace { input: String },
    #[error("the unit {input:?} contains a non-ASCII character (UCUM uses 'u' for micro)")]
    NonAscii { input: String },
    #[error("the unit {input:?} is not valid UCUM syntax near position {position}")]
    Syntax { input: String, position: usize },
}

impl UcumError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "ucum_empty",
            Self::Whitespace { .. } => "ucum_whitespace",
            Self::NonAscii { .. } => "ucum_non_ascii",
            Self::Syntax { .. } => "ucum_syntax",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("unit")
    }
}

struct UcumParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl UcumParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// main := '/' term | term (('.' | '/') term)*
    fn main(&mut self) -> Option<()> {
        if self.peek() == Some(b'/') {
            self.pos += 1;
        }
        self.term()?;
        while let Some(b'.' | b'/') = self.peek() {
            self.pos += 1;
            self.term()?;
        }
        Some(())
    }

    /// term := '(' main ')' | annotation | component annotation?
    fn term(&mut self) -> Option<()> {
        match self.peek()? {
            b'(' => {
                self.pos += 1;
                self.main()?;
                (self.peek()? == b')').then_some(())?;
                self.pos += 1;
                self.exponent();
                Some(())
            }
            b'{' => self.annotation(),
            _ => {
                self.component()?;
                if self.peek() == Some(b'{') {
                    self.annotation()?;
                }
                Some(())
            }
        }
    }

    fn annotation(&mut self) -> Option<()> {
        self.pos += 1; // '{'
        while let Some(c) = self.peek() {
            match c {
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                b'{' => return None,
                33..=126 => self.pos += 1,
                _ => return None,
            }
        }
        None
    }

    /// component := digits | '10*' exp | '10^' exp | atom exponent?
    fn component(&mut self) -> Option<()> {
        let c = self.peek()?;
        if c.is_ascii_digit() {
            let start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
            if &self.s[start..self.pos] == b"10" && matches!(self.peek(), Some(b'*' | b'^')) {
                self.pos += 1;
                return self.exponent().then_some(());
            }
            return Some(());
        }
        self.atom()?;
        self.exponent();
        Some(())
    }

    /// atom := ([A-Za-z%'_] | '[' [^\]]+ ']')+ (no digits outside brackets)
    fn atom(&mut self) -> Option<()> {
        let start = self.pos;
        loop {
            match self.peek() {
                Some(c) if c.is_ascii_alphabetic() || c == b'%' || c == b'\'' || c == b'_' => {
                    self.pos += 1;
                }
                Some(b'[') => {
                    self.pos += 1;
                    let inner = self.pos;
                    while self
                        .peek()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || b"_.-'".contains(&c))
                    {
                        self.pos += 1;
                    }
                    if self.pos == inner || self.peek() != Some(b']') {
                        return None;
                    }
                    self.pos += 1;
                }
                _ => break,
            }
        }
        (self.pos > start).then_some(())
    }

    /// exponent := ('+' | '-')? digits ; returns whether one was consumed.
    fn exponent(&mut self) -> bool {
        let save = self.pos;
        if matches!(self.peek(), Some(b'+' | b'-')) {
            self.pos += 1;
        }
        let digits = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == digits {
            self.pos = save;
            return false;
        }
        true
    }
}

impl Ucum {
    /// Checks UCUM syntax (see the module doc); the text is kept as given (UCUM is case-sensitive).
    pub fn parse(input: &str) -> Result<Self, UcumError> {
        if input.is_empty() {
            return Err(UcumError::Empty);
        }
        if input.chars().any(char::is_whitespace) {
            return Err(UcumError::Whitespace {
                input: input.to_owned(),
            });
        }
        if !input.is_ascii() {
            return Err(UcumError::NonAscii {
                input: input.to_owned(),
            });
        }
        let mut p = UcumParser {
            s: input.as_bytes(),
            pos: 0,
        };
        let ok = p.main().is_some() && p.pos == input.len();
        if !ok {
            return Err(UcumError::Syntax {
                input: input.to_owned(),
                position: p.pos,
            });
        }
        Ok(Self(input.to_owned()))
    }

    /// The unit text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ucum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl_domain_error!(UnknownCode, CatalogError, UcumError);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_tube_holds_its_nominal_volume_and_a_tenth_more() {
        // One row: container code → the most it holds (nominal + 10 %).
        for c in ContainerType::defaults() {
            let max = c.max_content_ul();
            assert_eq!(
                max,
                c.nominal_volume_ul + c.nominal_volume_ul / 10,
                "{}",
                c.code.as_str()
            );
            assert!(max >= c.usable_volume_ul, "{}", c.code.as_str());
        }
    }

    #[test]
    fn code_enums_round_trip() {
        for d in Department::ALL {
            assert_eq!(Department::parse(d.as_str()), Ok(*d));
        }
        for s in SpecimenType::ALL {
            assert_eq!(SpecimenType::parse(s.as_str()), Ok(*s));
        }
        for p in Priority::ALL {
            assert_eq!(Priority::from_hl7(p.hl7_code()), Ok(*p));
            assert_eq!(Priority::parse(p.as_str()), Ok(*p));
        }
        let err = Department::parse("Chemistry").unwrap_err();
        assert_eq!(err.code(), "unknown_department");
        assert_eq!(
            Priority::from_hl7("X").unwrap_err().code(),
            "unknown_priority"
        );
    }

    #[test]
    fn priority_urgency_order() {
        assert!(Priority::Stat < Priority::Asap);
        assert!(Priority::Asap < Priority::Routine);
        assert!(Priority::Stat.urgency() < Priority::Routine.urgency());
    }

    #[test]
    fn gp41_order_of_draw() {
        let by_code = |c: &str| {
            ContainerType::defaults()
                .into_iter()
                .find(|t| t.code.as_str() == c)
                .unwrap()
                .draw_rank
        };
        let order = ["BCX", "BLU", "SST", "PST", "LAV", "GRY"];
        for pair in order.windows(2) {
            assert!(by_code(pair[0]) < by_code(pair[1]), "{pair:?}");
        }
        assert_eq!(by_code("RED"), by_code("SST"));
        assert_eq!(by_code("GRN"), by_code("PST"));
        assert!(by_code("GRY") < by_code("UCUP"));
    }

    #[test]
    fn citrate_fill_tolerance() {
        let blu = ContainerType::defaults()
            .into_iter()
            .find(|t| t.code.as_str() == "BLU")
            .unwrap();
        assert_eq!(blu.min_fill_percent, Some(90));
        assert_eq!(blu.min_fill_volume_ul(), Some(2_430));
        let sst = ContainerType::new(
            ContainerCode::parse("x").unwrap(),
            "SST",
            "gold",
            Additive::ClotActivatorGel,
            5000,
            2000,
        )
        .unwrap();
        assert_eq!(sst.min_fill_volume_ul(), None);
        assert_eq!(
            sst.with_min_fill_percent(Some(0)).unwrap_err().code(),
            "container_fill_percent"
        );
    }

    #[test]
    fn container_validation() {
        let code = ContainerCode::parse("lav").unwrap();
        assert_eq!(code.as_str(), "LAV");
        assert_eq!(
            ContainerCode::parse("").unwrap_err().code(),
            "container_code"
        );
        assert_eq!(
            ContainerType::new(code.clone(), "", "x", Additive::Edta, 1, 1)
                .unwrap_err()
                .code(),
            "container_name"
        );
        assert_eq!(
            ContainerType::new(code.clone(), "n", "x", Additive::Edta, 0, 0)
                .unwrap_err()
                .code(),
            "container_zero_volume"
        );
        assert_eq!(
            ContainerType::new(code, "n", "x", Additive::Edta, 1, 2)
                .unwrap_err()
                .code(),
            "container_usable_volume"
        );
    }

    #[test]
    fn stability_limits() {
        let s = Stability::new(Some(SignedDuration::from_hours(24)), None, None).unwrap();
        assert_eq!(
            s.limit(Temperature::Room),
            Some(SignedDuration::from_hours(24))
        );
        assert_eq!(s.limit(Temperature::Refrigerated), None);
        assert_eq!(
            Stability::new(Some(SignedDuration::ZERO), None, None)
                .unwrap_err()
                .code(),
            "stability_non_positive"
        );
    }

    #[test]
    fn result_types() {
        assert!(ResultType::numeric(2).is_ok());
        assert_eq!(
            ResultType::numeric(7).unwrap_err().code(),
            "result_type_precision"
        );
        assert_eq!(
            ResultType::coded(&["Positive", " Negative "]).unwrap(),
            ResultType::Coded {
                answers: vec!["Positive".into(), "Negative".into()]
            }
        );
        assert_eq!(
            ResultType::coded(&["Pos", "pos"]).unwrap_err().code(),
            "result_type_bad_answer"
        );
        assert_eq!(
            ResultType::coded::<&str>(&[]).unwrap_err().code(),
            "result_type_no_answers"
        );
    }

    #[test]
    fn tat_targets() {
        let t = TatTargets::typical_chemistry();
        assert_eq!(
            t.target(Priority::Stat),
            Some(SignedDuration::from_mins(60))
        );
        assert_eq!(t.target(Priority::Timed), None);
        assert!(TatTargets::new(Some(SignedDuration::from_secs(-1)), None, None, None).is_err());
    }

    #[test]
    fn ucum_accepts_common_lab_units() {
        for u in [
            "mmol/L",
            "mg/dL",
            "10*3/uL",
            "10*9/L",
            "10^12/L",
            "%",
            "g/dL",
            "U/L",
            "fL",
            "s",
            "{ratio}",
            "mL/min/{1.73_m2}",
            "umol/L",
            "[IU]/mL",
            "pg",
            "mm[Hg]",
            "/[HPF]",
            "m2",
            "kg.m-2",
            "mL/(24.h)",
            "1",
            "ng/mL{FEU}",
        ] {
            assert!(Ucum::parse(u).is_ok(), "{u}");
        }
    }

    #[test]
    fn ucum_rejects_garbage() {
        assert_eq!(Ucum::parse("").unwrap_err().code(), "ucum_empty");
        assert_eq!(Ucum::parse("mg /dL").unwrap_err().code(), "ucum_whitespace");
        assert_eq!(Ucum::parse("µmol/L").unwrap_err().code(), "ucum_non_ascii");
        for bad in [
            "mg//dL", "/", "mg/", "{a", "[IU", "()", "mg)", "a{b{c}}", "10*", "mg.", "@",
        ] {
            assert_eq!(Ucum::parse(bad).unwrap_err().code(), "ucum_syntax", "{bad}");
        }
    }

    proptest! {
        #[test]
        fn ucum_never_accepts_whitespace(a in "[a-zA-Z/.]{0,5}", b in "[a-zA-Z/.]{0,5}", ws in "[ \t\r\n]") {
            let input = format!("{a}{ws}{b}");
            prop_assert!(Ucum::parse(&input).is_err());
        }

        #[test]
        fn ucum_quotients_of_valid_units_are_valid(
            a in prop::sample::select(vec!["mg", "mmol", "g", "U", "10*3", "[IU]", "{cells}"]),
            b in prop::sample::select(vec!["dL", "L", "uL", "h", "{1.73_m2}", "kg"]),
        ) {
            let quotient = format!("{a}/{b}");
            let product = format!("{a}.{b}");
            prop_assert!(Ucum::parse(&quotient).is_ok());
            prop_assert!(Ucum::parse(&product).is_ok());
        }
    }
}
