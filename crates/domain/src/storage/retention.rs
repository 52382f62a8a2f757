//! Retention by use, not only by specimen type (issue 10 item 8; DOMAIN §7.2).
//!
//! - A specimen is kept for the **longest** period any of its uses requires: its specimen
//!   type's period ([`RetentionTable`]) and every rule for that type and one of its departments
//!   or tests ([`RetentionUse`]). So whole blood at CAP's 48 h for haematology does not let a
//!   blood-bank tube go: the blood-bank rule keeps it.
//! - Default use rule: blood-bank whole blood **10 days** — AABB Standards keep the recipient's
//!   pre-transfusion specimen at least 7 days after the transfusion, and a crossmatch specimen
//!   serves transfusions for up to 3 days after its draw, so 7 days after the last possible
//!   transfusion is 10 days. [CONFIG]
//! - **Irreplaceable specimens** (CSF, tissue, bone marrow, body fluids: DOMAIN §6.4) are kept
//!   until a person decides ([`Retention::UntilDecided`]), rejected or not: they are never due
//!   by themselves, and their disposal always carries a person's reason.
//! - A specimen with no period at all is kept until someone decides as well (the safe default).
//! - The period runs from the latest storage, or from the rejection for a rejected specimen
//!   (a rejected specimen is kept like any other: the rejection may be disputed).

use std::collections::BTreeMap;

use jiff::SignedDuration;

use super::{RetentionTable, StorageError};
use crate::catalog::{Department, SpecimenType};
use crate::order::TestCode;

/// A use of a specimen that may need it kept longer than its type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RetentionUse {
    Department(Department),
    Test(TestCode),
}

impl RetentionUse {
    /// `department` or `test`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Department(_) => "department",
            Self::Test(_) => "test",
        }
    }
    /// The department's or the test's code.
    pub fn code(&self) -> &str {
        match self {
            Self::Department(d) => d.as_str(),
            Self::Test(t) => t.as_str(),
        }
    }
}

/// How long a specimen is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Due this long after its latest storage (or rejection).
    Period(SignedDuration),
    /// Kept until a person decides: never due by itself.
    UntilDecided,
}

/// Periods by specimen type and by (specimen type, use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRules {
    pub by_type: RetentionTable,
    by_use: BTreeMap<(SpecimenType, RetentionUse), SignedDuration>,
}

impl Default for RetentionRules {
    fn default() -> Self {
        Self::defaults()
    }
}

impl RetentionRules {
    /// The type defaults of [`RetentionTable::defaults`] and blood-bank whole blood 10 days.
    pub fn defaults() -> Self {
        let mut rules = Self {
            by_type: RetentionTable::defaults(),
            by_use: BTreeMap::new(),
        };
        rules.by_use.insert(
            (
                SpecimenType::WholeBlood,
                RetentionUse::Department(Department::BloodBank),
            ),
            SignedDuration::from_hours(240),
        );
        rules
    }

    /// Sets the period of a specimen type for a use.
    pub fn set_use(
        &mut self,
        specimen_type: SpecimenType,
        usage: RetentionUse,
        period: SignedDuration,
    ) -> Result<(), StorageError> {
        if period <= SignedDuration::ZERO {
            return Err(StorageError::NonPositiveRetention);
        }
        self.by_use.insert((specimen_type, usage), period);
        Ok(())
    }

    /// The period of a specimen type for one use, if a rule exists.
    pub fn get_use(
        &self,
        specimen_type: SpecimenType,
        usage: &RetentionUse,
    ) -> Option<SignedDuration> {
        self.by_use.get(&(specimen_type, usage.clone())).copied()
    }

    /// Every use rule, in a stable order.
    pub fn uses(&self) -> impl Iterator<Item = (SpecimenType, &RetentionUse, SignedDuration)> {
        self.by_use.iter().map(|((t, u), p)| (*t, u, *p))
    }

    /// How long a specimen of `specimen_type` used by `departments` and `tests` is kept.
    pub fn retention(
        &self,
        specimen_type: SpecimenType,
        departments: &[Department],
        tests: &[TestCode],
    ) -> Retention {
        if specimen_type.is_irreplaceable() {
            return Retention::UntilDecided;
        }
        let uses = departments
            .iter()
            .map(|d| RetentionUse::Department(*d))
            .chain(tests.iter().cloned().map(RetentionUse::Test));
        self.by_type
            .get(specimen_type)
            .into_iter()
            .chain(uses.filter_map(|u| self.get_use(specimen_type, &u)))
            .max()
            .map_or(Retention::UntilDecided, Retention::Period)
    }

    /// The shortest period any specimen of this type can have (for a list query that then
    /// filters by use); `None` when none of them is ever due.
    pub fn shortest(&self, specimen_type: SpecimenType) -> Option<SignedDuration> {
        if specimen_type.is_irreplaceable() {
            return None;
        }
        match self.by_type.get(specimen_type) {
            // Uses only lengthen the type's period.
            Some(p) => Some(p),
            None => self
                .by_use
                .iter()
                .filter(|((t, _), _)| *t == specimen_type)
                .map(|(_, p)| *p)
                .min(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hours(n: i64) -> SignedDuration {
        SignedDuration::from_hours(n)
    }

    fn code(c: &str) -> TestCode {
        TestCode::parse(c).unwrap()
    }

    /// The lab of the issue: whole blood at CAP's 48 h (configured), the blood-bank default.
    fn lab() -> RetentionRules {
        let mut r = RetentionRules::defaults();
        r.by_type.set(SpecimenType::WholeBlood, hours(48)).unwrap();
        r.set_use(
            SpecimenType::Serum,
            RetentionUse::Test(code("HCG")),
            hours(168),
        )
        .unwrap();
        r
    }

    #[test]
    fn retention_case_table() {
        use Department as D;
        use SpecimenType as T;
        // One row: type, departments, tests → retention.
        type Row = (T, Vec<D>, Vec<&'static str>, Retention, &'static str);
        let rows: Vec<Row> = vec![
            (
                T::WholeBlood,
                vec![D::Hematology],
                vec!["WBC"],
                Retention::Period(hours(48)),
                "CBC: CAP 48 h",
            ),
            (
                T::WholeBlood,
                vec![D::BloodBank],
                vec!["ABORH"],
                Retention::Period(hours(240)),
                "blood bank: 7 days after transfusion",
            ),
            (
                T::WholeBlood,
                vec![D::Hematology, D::BloodBank],
                vec![],
                Retention::Period(hours(240)),
                "the longest use wins",
            ),
            (
                T::Serum,
                vec![D::Chemistry],
                vec!["K"],
                Retention::Period(hours(48)),
                "serum 48 h",
            ),
            (
                T::Serum,
                vec![D::Chemistry],
                vec!["K", "HCG"],
                Retention::Period(hours(168)),
                "a test rule",
            ),
            (
                T::Csf,
                vec![D::Chemistry],
                vec!["GLU"],
                Retention::UntilDecided,
                "CSF is irreplaceable",
            ),
            (T::Tissue, vec![], vec![], Retention::UntilDecided, "tissue"),
            (
                T::BodyFluid,
                vec![D::Chemistry],
                vec![],
                Retention::UntilDecided,
                "body fluid",
            ),
            (
                T::Swab,
                vec![D::Microbiology],
                vec![],
                Retention::UntilDecided,
                "no period: kept",
            ),
            (
                T::Urine,
                vec![D::Urinalysis],
                vec![],
                Retention::Period(hours(24)),
                "urine 24 h",
            ),
        ];
        let rules = lab();
        for (t, departments, tests, expected, why) in rows {
            let tests: Vec<TestCode> = tests.into_iter().map(code).collect();
            assert_eq!(rules.retention(t, &departments, &tests), expected, "{why}");
        }
        // Without the configured 48 h, haematology whole blood is kept; blood bank 10 days.
        let defaults = RetentionRules::defaults();
        assert_eq!(
            defaults.retention(SpecimenType::WholeBlood, &[Department::Hematology], &[]),
            Retention::UntilDecided
        );
        assert_eq!(
            defaults.shortest(SpecimenType::WholeBlood),
            Some(hours(240))
        );
        assert_eq!(rules.shortest(SpecimenType::WholeBlood), Some(hours(48)));
        assert_eq!(rules.shortest(SpecimenType::Csf), None);
        assert_eq!(
            RetentionRules::defaults()
                .set_use(
                    SpecimenType::Serum,
                    RetentionUse::Department(Department::Chemistry),
                    SignedDuration::ZERO
                )
                .unwrap_err()
                .code(),
            "retention_non_positive"
        );
    }

    proptest! {
        /// A use never shortens what the type alone keeps, and the list query's shortest period
        /// never misses a due specimen.
        #[test]
        fn uses_only_lengthen(type_h in 1i64..500, use_h in 1i64..500) {
            let mut r = RetentionRules::defaults();
            r.by_type.set(SpecimenType::Plasma, hours(type_h)).unwrap();
            r.set_use(SpecimenType::Plasma, RetentionUse::Department(Department::Coagulation), hours(use_h)).unwrap();
            let alone = r.retention(SpecimenType::Plasma, &[], &[]);
            let used = r.retention(SpecimenType::Plasma, &[Department::Coagulation], &[]);
            prop_assert_eq!(alone, Retention::Period(hours(type_h)));
            prop_assert_eq!(used, Retention::Period(hours(type_h.max(use_h))));
            let shortest = r.shortest(SpecimenType::Plasma).unwrap();
            prop_assert!(shortest <= hours(type_h));
        }
    }
}
