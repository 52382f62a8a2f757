//! Processing rules that depend on the container and on what was done before (issue 10 items
//! 9 and 10; DOMAIN §6.5, §6.6).
//!
//! - **Spin protocol per container** ([`spin_protocol`]): a citrate tube for coagulation is
//!   spun to platelet-poor plasma, about 1,500 g for 15 minutes (CLSI H21; up to 2,500 g and
//!   30 minutes); serum, heparin and EDTA tubes 1,000–2,000 g for 10–20 minutes (DOMAIN §6.5:
//!   1,000–1,300 g for 10 min in a swing-bucket rotor, 15 min fixed-angle, with room for the
//!   validated faster protocols). Urine cups and other tubes are only held to the general
//!   bounds of [`super::CentrifugationRecord`] (100–5,000 g, [`SPIN_MINUTES`]). [CONFIG]
//! - **A gel tube is never re-spun** (DOMAIN §6.5): the gel barrier has formed; a second spin
//!   releases cell contents past it. Pour into a new tube and spin that.
//! - **An aliquot is poured from separated serum or plasma only**: an unspun (clotted) serum
//!   tube or an unspun plasma tube has no serum or plasma to pour.
//! - **The child container suits the specimen** ([`check_child_container`]): an aliquot goes
//!   into an additive-free transfer tube (a cup only for urine and other non-blood fluids),
//!   never into a tube with an additive or a urine cup for serum.
//! - **Dilutions** are made from a specimen in process or processed (never one only
//!   received), and from separated serum or plasma.
//! - **Storage temperature**: a specimen is not stored at a temperature one of its tests does
//!   not allow; whole blood is never frozen (the cells lyse) unless a test on it allows it.

use std::ops::RangeInclusive;

use thiserror::Error;

use super::SpecimenState;
use crate::catalog::{
    Additive, ContainerCode, ContainerType, SpecimenType, Stability, Temperature,
};
use crate::error::impl_domain_error;
use crate::order::TestCode;

/// The spin times any protocol may use, in minutes (the general bound of a centrifugation
/// record; the edges use this same range).
pub const SPIN_MINUTES: RangeInclusive<i64> = 1..=60;
/// The RCF any protocol may use, in g.
pub const SPIN_RCF_G: RangeInclusive<u32> = 100..=5_000;

/// What a container must be spun at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpinProtocol {
    pub rcf_g: RangeInclusive<u32>,
    pub minutes: RangeInclusive<i64>,
    /// What the protocol is for, for messages.
    pub purpose: &'static str,
}

/// The spin protocol of a container's additive ([CONFIG] defaults, see the module doc);
/// `None`: only the general bounds apply.
pub fn spin_protocol(additive: Additive) -> Option<SpinProtocol> {
    match additive {
        Additive::SodiumCitrate => Some(SpinProtocol {
            rcf_g: 1_500..=2_500,
            minutes: 15..=30,
            purpose: "platelet-poor plasma for coagulation (CLSI H21)",
        }),
        Additive::ClotActivatorGel
        | Additive::HeparinGel
        | Additive::EdtaGel
        | Additive::ClotActivator
        | Additive::NoAdditive
        | Additive::Heparin
        | Additive::Edta
        | Additive::FluorideOxalate
        | Additive::Acd => Some(SpinProtocol {
            rcf_g: 1_000..=2_000,
            minutes: 10..=20,
            purpose: "serum or plasma separation",
        }),
        Additive::CultureMedium
        | Additive::CitrateEsr
        | Additive::SterileContainer
        | Additive::TransportMedium
        | Additive::TransferTube => None,
    }
}

/// Why a spin, an aliquot, a dilution or a storage place was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProcessingError {
    #[error(
        "the {container} is a gel tube and was spun already; a gel tube is never re-spun: pour \
         it into a new tube and spin that"
    )]
    GelRespin { container: ContainerCode },
    #[error(
        "{rcf_g} g is outside the {container}'s protocol for {purpose}: {} to {} g",
        .protocol_rcf.start(),
        .protocol_rcf.end()
    )]
    ProtocolRcf {
        container: ContainerCode,
        rcf_g: u32,
        protocol_rcf: RangeInclusive<u32>,
        purpose: &'static str,
    },
    #[error(
        "{minutes} min is outside the {container}'s protocol for {purpose}: {} to {} min",
        .protocol_minutes.start(),
        .protocol_minutes.end()
    )]
    ProtocolMinutes {
        container: ContainerCode,
        minutes: i64,
        protocol_minutes: RangeInclusive<i64>,
        purpose: &'static str,
    },
    #[error(
        "the {specimen_type} tube has not been spun: there is no {specimen_type} to pour or dilute yet"
    )]
    NotSeparated { specimen_type: SpecimenType },
    #[error("a {specimen_type} aliquot can't go into the {container} ({name})")]
    ChildContainer {
        specimen_type: SpecimenType,
        container: ContainerCode,
        name: String,
    },
    #[error("a specimen that is {state} can't be diluted; start processing it first")]
    DilutionState { state: SpecimenState },
    #[error("test {test_code} does not allow keeping the specimen {temperature}")]
    StorageTemperature {
        test_code: TestCode,
        temperature: Temperature,
    },
    #[error("whole blood must not be {temperature}: the cells lyse")]
    WholeBloodFrozen { temperature: Temperature },
}

impl ProcessingError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::GelRespin { .. } => "gel_tube_respin",
            Self::ProtocolRcf { .. } | Self::ProtocolMinutes { .. } => "spin_protocol",
            Self::NotSeparated { .. } => "not_separated",
            Self::ChildContainer { .. } => "aliquot_container_unsuitable",
            Self::DilutionState { .. } => "dilution_state",
            Self::StorageTemperature { .. } | Self::WholeBloodFrozen { .. } => {
                "storage_temperature_not_allowed"
            }
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some(match self {
            Self::GelRespin { .. } | Self::NotSeparated { .. } | Self::DilutionState { .. } => {
                "accession"
            }
            Self::ProtocolRcf { .. } => "rcf_g",
            Self::ProtocolMinutes { .. } => "minutes",
            Self::ChildContainer { .. } => "container",
            Self::StorageTemperature { .. } | Self::WholeBloodFrozen { .. } => "location",
        })
    }
}

/// Checks a spin of `container` at `rcf_g` for `minutes`, `earlier_spins` being the number of
/// spins already recorded for this tube.
pub fn check_spin(
    container: &ContainerType,
    earlier_spins: usize,
    rcf_g: u32,
    minutes: i64,
) -> Result<(), ProcessingError> {
    if earlier_spins > 0 && container.additive.has_gel() {
        return Err(ProcessingError::GelRespin {
            container: container.code.clone(),
        });
    }
    if let Some(p) = spin_protocol(container.additive) {
        if !p.rcf_g.contains(&rcf_g) {
            return Err(ProcessingError::ProtocolRcf {
                container: container.code.clone(),
                rcf_g,
                protocol_rcf: p.rcf_g,
                purpose: p.purpose,
            });
        }
        if !p.minutes.contains(&minutes) {
            return Err(ProcessingError::ProtocolMinutes {
                container: container.code.clone(),
                minutes,
                protocol_minutes: p.minutes,
                purpose: p.purpose,
            });
        }
    }
    Ok(())
}

/// Serum and plasma can be poured or diluted only once separated (`separated`: the tube, or the
/// tube it was poured from, was spun).
pub fn check_separated(
    specimen_type: SpecimenType,
    separated: bool,
) -> Result<(), ProcessingError> {
    if specimen_type.requires_centrifugation() && !separated {
        return Err(ProcessingError::NotSeparated { specimen_type });
    }
    Ok(())
}

/// Whether `container` may receive an aliquot of `specimen_type`: an additive-free transfer
/// tube for any fluid, a sterile cup for urine and non-blood fluids; never a tube with an
/// additive (it would change the specimen) or a swab.
pub fn container_suits_aliquot(container: &ContainerType, specimen_type: SpecimenType) -> bool {
    use SpecimenType as T;
    match container.additive {
        Additive::TransferTube => matches!(
            specimen_type,
            T::Serum | T::Plasma | T::WholeBlood | T::Urine | T::Csf | T::BodyFluid
        ),
        Additive::SterileContainer => matches!(
            specimen_type,
            T::Urine | T::Csf | T::BodyFluid | T::Sputum | T::Stool
        ),
        _ => false,
    }
}

/// Refuses an aliquot container that does not suit the specimen.
pub fn check_child_container(
    container: &ContainerType,
    specimen_type: SpecimenType,
) -> Result<(), ProcessingError> {
    if container_suits_aliquot(container, specimen_type) {
        Ok(())
    } else {
        Err(ProcessingError::ChildContainer {
            specimen_type,
            container: container.code.clone(),
            name: container.name.clone(),
        })
    }
}

/// The default container of an aliquot: the first catalogue container that suits it,
/// preferring a transfer tube.
pub fn default_child_container(
    containers: &[ContainerType],
    specimen_type: SpecimenType,
) -> Option<&ContainerType> {
    containers
        .iter()
        .filter(|c| container_suits_aliquot(c, specimen_type))
        .min_by_key(|c| c.additive != Additive::TransferTube)
}

/// A dilution needs a specimen in process or processed, separated when it is serum or plasma.
pub fn check_dilution(
    state: SpecimenState,
    specimen_type: SpecimenType,
    separated: bool,
) -> Result<(), ProcessingError> {
    if !matches!(state, SpecimenState::InProcess | SpecimenState::Processed) {
        return Err(ProcessingError::DilutionState { state });
    }
    check_separated(specimen_type, separated)
}

/// Whether a specimen may be stored at `temperature`: every test on it must allow it, and
/// whole blood is frozen only when a test on it allows freezing.
pub fn check_storage_temperature(
    specimen_type: SpecimenType,
    temperature: Temperature,
    tests: &[(TestCode, Stability)],
) -> Result<(), ProcessingError> {
    if let Some((test_code, _)) = tests.iter().find(|(_, s)| s.limit(temperature).is_none()) {
        return Err(ProcessingError::StorageTemperature {
            test_code: test_code.clone(),
            temperature,
        });
    }
    let blood = matches!(
        specimen_type,
        SpecimenType::WholeBlood | SpecimenType::ArterialBlood
    );
    if blood && temperature == Temperature::Frozen && tests.is_empty() {
        return Err(ProcessingError::WholeBloodFrozen { temperature });
    }
    Ok(())
}

impl_domain_error!(ProcessingError);

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    fn container(code: &str) -> ContainerType {
        ContainerType::defaults()
            .into_iter()
            .find(|c| c.code.as_str() == code)
            .unwrap()
    }

    /// One row: container, earlier spins, g, minutes → error code (or accepted).
    type SpinRow = (
        &'static str,
        usize,
        u32,
        i64,
        Option<&'static str>,
        &'static str,
    );
    /// (container, spins before, g, minutes, code, why)
    type StorageRow = (
        SpecimenType,
        Temperature,
        Vec<(TestCode, Stability)>,
        Option<&'static str>,
    );

    const SPINS: &[SpinRow] = &[
        ("BLU", 0, 1_500, 15, None, "coagulation PPP"),
        (
            "BLU",
            0,
            150,
            2,
            Some("spin_protocol"),
            "issue 10 item 9: 150 g × 2 min",
        ),
        (
            "BLU",
            0,
            1_500,
            5,
            Some("spin_protocol"),
            "too short for PPP",
        ),
        (
            "BLU",
            0,
            1_000,
            15,
            Some("spin_protocol"),
            "too soft for PPP",
        ),
        (
            "BLU",
            1,
            1_500,
            15,
            None,
            "citrate double spin before freezing",
        ),
        ("SST", 0, 1_300, 10, None, "swing-bucket SST"),
        ("SST", 0, 1_300, 15, None, "fixed-angle SST"),
        (
            "SST",
            1,
            1_300,
            10,
            Some("gel_tube_respin"),
            "a gel tube is never re-spun",
        ),
        ("PST", 1, 1_300, 10, Some("gel_tube_respin"), "nor a PST"),
        (
            "RED",
            1,
            1_300,
            10,
            None,
            "a plain red tube may be spun again",
        ),
        (
            "SST",
            0,
            3_000,
            10,
            Some("spin_protocol"),
            "too hard for a gel tube",
        ),
        ("LAV", 0, 1_200, 10, None, "EDTA plasma"),
        (
            "UCUP",
            0,
            400,
            5,
            None,
            "urine sediment: general bounds only",
        ),
    ];

    #[test]
    fn spin_case_table() {
        for (code, earlier, g, minutes, expected, why) in SPINS {
            let got = check_spin(&container(code), *earlier, *g, *minutes).err();
            assert_eq!(got.as_ref().map(ProcessingError::code), *expected, "{why}");
        }
    }

    /// One row: child container, specimen type → suits.
    const CHILDREN: &[(&str, SpecimenType, bool)] = &[
        ("ALQ", SpecimenType::Serum, true),
        ("ALQ", SpecimenType::Plasma, true),
        ("ALQ", SpecimenType::Urine, true),
        ("UCUP", SpecimenType::Serum, false),
        ("UCUP", SpecimenType::Urine, true),
        ("SST", SpecimenType::Serum, false),
        ("LAV", SpecimenType::WholeBlood, false),
        ("ALQ", SpecimenType::WholeBlood, true),
        ("ALQ", SpecimenType::Swab, false),
    ];

    #[test]
    fn child_container_case_table() {
        for (code, specimen_type, suits) in CHILDREN {
            assert_eq!(
                check_child_container(&container(code), *specimen_type).is_ok(),
                *suits,
                "{code} for {specimen_type}"
            );
        }
        let all = ContainerType::defaults();
        assert_eq!(
            default_child_container(&all, SpecimenType::Serum).map(|c| c.code.as_str()),
            Some("ALQ")
        );
        assert_eq!(
            default_child_container(&all, SpecimenType::Urine).map(|c| c.code.as_str()),
            Some("ALQ")
        );
    }

    #[test]
    fn aliquots_and_dilutions_need_separated_specimens() {
        assert_eq!(
            check_separated(SpecimenType::Serum, false)
                .unwrap_err()
                .code(),
            "not_separated"
        );
        assert!(check_separated(SpecimenType::Serum, true).is_ok());
        assert!(check_separated(SpecimenType::WholeBlood, false).is_ok());
        assert!(check_separated(SpecimenType::Urine, false).is_ok());
        // One row: state, type, separated → dilution allowed.
        let rows = [
            (SpecimenState::Received, SpecimenType::Serum, true, false),
            (SpecimenState::Received, SpecimenType::Urine, false, false),
            (SpecimenState::InProcess, SpecimenType::Serum, false, false),
            (SpecimenState::InProcess, SpecimenType::Serum, true, true),
            (SpecimenState::Processed, SpecimenType::Urine, false, true),
            (SpecimenState::Stored, SpecimenType::Serum, true, false),
        ];
        for (state, t, separated, ok) in rows {
            assert_eq!(
                check_dilution(state, t, separated).is_ok(),
                ok,
                "{state} {t} {separated}"
            );
        }
    }

    #[test]
    fn storage_temperature_case_table() {
        let cbc = Stability::new(
            Some(SignedDuration::from_hours(24)),
            Some(SignedDuration::from_hours(48)),
            None,
        )
        .unwrap();
        let wbc = TestCode::parse("WBC").unwrap();
        let rows: [StorageRow; 5] = [
            (
                SpecimenType::WholeBlood,
                Temperature::Frozen,
                vec![(wbc.clone(), cbc)],
                Some("storage_temperature_not_allowed"),
            ),
            (
                SpecimenType::WholeBlood,
                Temperature::Refrigerated,
                vec![(wbc.clone(), cbc)],
                None,
            ),
            (
                SpecimenType::WholeBlood,
                Temperature::Frozen,
                vec![],
                Some("storage_temperature_not_allowed"),
            ),
            (SpecimenType::Serum, Temperature::Frozen, vec![], None),
            (SpecimenType::WholeBlood, Temperature::Room, vec![], None),
        ];
        for (t, temp, tests, expected) in rows {
            assert_eq!(
                check_storage_temperature(t, temp, &tests)
                    .err()
                    .as_ref()
                    .map(ProcessingError::code),
                expected,
                "{t} {temp}"
            );
        }
    }
}
