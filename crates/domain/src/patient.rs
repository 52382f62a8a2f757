//! Patients: administrative sex, names, birth dates, positive identification and duplicate
//! detection.
//!
//! # Rules and sources
//! - [`AdministrativeSex`]: HL7 v2 table 0001 (F female, M male, O other, U unknown,
//!   A ambiguous, N not applicable).
//! - [`ClinicalSex`]: the HL7 Gender Harmony "sex parameter for clinical use" (SPCU: female,
//!   male, specified, unknown), recorded beside the administrative sex when it differs or is
//!   known better for clinical use; reference intervals use it when given, else the
//!   administrative sex (DOMAIN §5.1, `results::interval`). [`BirthTime`]: an optional local
//!   time of birth (`HH:MM`, the lab's time zone), for intervals by hours of life.
//! - [`PersonName`]: family and given names are required (CLIA 42 CFR 493.1291(c)(1) reports carry
//!   the patient name; DOMAIN §6.7 uses the full name as an identifier). Each part is trimmed,
//!   inner whitespace collapsed, 1–100 characters, at least one letter, and only letters, marks,
//!   digits (temporary aliases such as "Trauma 1234", DOMAIN §6.7), space, `-`, `'`, `’`, `.`, `,`.
//! - [`BirthDate`]: not after `today` (passed in; the domain never reads the clock) and not
//!   before 1880-01-01 (no living person was born earlier; catches typos like 1026).
//! - [`confirm_identity`] (DOMAIN §6.7, CLSI GP33, TJC NPSG.01.01.01): at least **two**
//!   patient-specific identifiers must match — among MRN, full name (family + given), birth
//!   date and another facility identifier — and **no** presented identifier may contradict the
//!   record. Room/bed numbers are not identifiers and have no place here. Names are compared
//!   through [`name_search_key`] (case, diacritics and punctuation ignored); the middle name is
//!   not compared because it is recorded inconsistently (initial vs full). A facility identifier
//!   whose assigning system the record does not hold can't be verified: it neither counts nor
//!   contradicts.
//! - Names are **stored in NFC** (canonical composition: `Zoe\u{308}` is stored as `Zoë`). NFC
//!   changes no character a person can see; NFKC would also rewrite compatibility characters
//!   (the ligature `ﬁ`, full-width letters), which is a change of what was typed, so it is used
//!   only for the comparison keys: [`name_search_key`] and [`name_match_key`] start with NFKC,
//!   so `ﬁsher` compares equal to `Fisher`.
//! - [`name_match_key`]: the comparison key for duplicates and search, the lower-cased
//!   **confusable skeleton** of Unicode TS #39 (`unicode-security`'s `skeleton`, the
//!   confusables table of the Unicode Consortium): a Cyrillic `а` in `G\u{430}rcia` has the
//!   skeleton of the Latin `a`, so the name is found by a search for `Garcia` and is a
//!   duplicate candidate of it. Then diacritics and punctuation are dropped as in the search
//!   key. The skeleton maps one character at a time, so the key of a prefix is a prefix of the
//!   key (prefix search on a stored key stays an index range).
//! - [`duplicate_match`] (registration duplicate check, local policy; case table in the tests):
//!   with the same birth date: equal names (match keys), swapped given/family names, near-miss
//!   names (true Damerau–Levenshtein distance on the search key, ≤ 1 for keys of 4–7
//!   characters, ≤ 2 for 8+, exact below 4, or equal American Soundex codes; not reported
//!   when both sexes are definite (F/M) and differ: twins "Jon"/"Joan"), or a **married-name
//!   change** (same given name and same sex, another family name). With equal names only:
//!   the birth date **one day off** (a birth near midnight, a date typed from another time
//!   zone), day and month **swapped**, or two adjacent **digits of the year transposed**
//!   (1980/1908, 1890/1980). [`candidate_birth_dates`] lists the dates to look up.

use std::collections::HashMap;
use std::fmt;

use jiff::civil::Date;
use thiserror::Error;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::error::impl_domain_error;
use crate::ids::Mrn;

/// HL7 v2 table 0001 administrative sex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdministrativeSex {
    Female,
    Male,
    Other,
    Unknown,
    Ambiguous,
    NotApplicable,
}

/// An administrative sex code outside HL7 table 0001.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{input:?} is not an HL7 table 0001 sex code (F, M, O, U, A, N)")]
pub struct SexError {
    /// The rejected input.
    pub input: String,
}

impl SexError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        "sex_code"
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("sex")
    }
}

impl AdministrativeSex {
    /// Every code, in HL7 table 0001's order.
    pub const ALL: [Self; 6] = [
        Self::Female,
        Self::Male,
        Self::Other,
        Self::Unknown,
        Self::Ambiguous,
        Self::NotApplicable,
    ];

    /// Parses an HL7 table 0001 code (exact, upper case).
    pub fn parse(code: &str) -> Result<Self, SexError> {
        Ok(match code {
            "F" => Self::Female,
            "M" => Self::Male,
            "O" => Self::Other,
            "U" => Self::Unknown,
            "A" => Self::Ambiguous,
            "N" => Self::NotApplicable,
            _ => {
                return Err(SexError {
                    input: code.to_owned(),
                });
            }
        })
    }

    /// The HL7 code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Female => "F",
            Self::Male => "M",
            Self::Other => "O",
            Self::Unknown => "U",
            Self::Ambiguous => "A",
            Self::NotApplicable => "N",
        }
    }

    fn is_definite(self) -> bool {
        matches!(self, Self::Female | Self::Male)
    }
}

/// HL7 Gender Harmony "sex parameter for clinical use" (SPCU). `Specified` means a
/// parameter is given in a comment (e.g. an organ inventory) that no automatic rule reads;
/// `Specified` and `Unknown` never select a sex-specific reference interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClinicalSex {
    Female,
    Male,
    Specified,
    Unknown,
}

/// A clinical sex outside the SPCU value set.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{input:?} is not a sex parameter for clinical use (female, male, specified, unknown)")]
pub struct ClinicalSexError {
    /// The rejected input (at most 20 characters).
    pub input: String,
}

impl ClinicalSexError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        "clinical_sex_code"
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("clinical_sex")
    }
}

impl ClinicalSex {
    /// Every code of the SPCU value set.
    pub const ALL: [Self; 4] = [Self::Female, Self::Male, Self::Specified, Self::Unknown];

    /// Parses an SPCU code (exact, lower case).
    pub fn parse(code: &str) -> Result<Self, ClinicalSexError> {
        Ok(match code {
            "female" => Self::Female,
            "male" => Self::Male,
            "specified" => Self::Specified,
            "unknown" => Self::Unknown,
            _ => {
                return Err(ClinicalSexError {
                    input: code.chars().take(20).collect(),
                });
            }
        })
    }

    /// The SPCU code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Female => "female",
            Self::Male => "male",
            Self::Specified => "specified",
            Self::Unknown => "unknown",
        }
    }
}

/// A local time of birth, minutes precision, in the lab's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BirthTime(jiff::civil::Time);

/// A birth time that is not `HH:MM`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the birth time {input:?} is not a time of day HH:MM (00:00–23:59)")]
pub struct BirthTimeError {
    /// The rejected input (at most 20 characters).
    pub input: String,
}

impl BirthTimeError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        "birth_time_format"
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("birth_time")
    }
}

impl BirthTime {
    /// Parses `HH:MM` (24 hours).
    pub fn parse(input: &str) -> Result<Self, BirthTimeError> {
        let err = || BirthTimeError {
            input: input.chars().take(20).collect(),
        };
        let s = input.trim();
        let b = s.as_bytes();
        if b.len() != 5
            || b[2] != b':'
            || !b
                .iter()
                .enumerate()
                .all(|(i, c)| i == 2 || c.is_ascii_digit())
        {
            return Err(err());
        }
        let h: i8 = s[..2].parse().map_err(|_| err())?;
        let m: i8 = s[3..].parse().map_err(|_| err())?;
        jiff::civil::Time::new(h, m, 0, 0)
            .map(Self)
            .map_err(|_| err())
    }

    /// The time of day.
    pub fn time(self) -> jiff::civil::Time {
        self.0
    }

    /// As stored: `HH:MM`.
    pub fn as_string(self) -> String {
        format!("{:02}:{:02}", self.0.hour(), self.0.minute())
    }
}

// ---------------------------------------------------------------------------------------------
// Names

/// Which part of a name an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamePart {
    Family,
    Given,
    Middle,
}

impl NamePart {
    fn as_str(self) -> &'static str {
        match self {
            Self::Family => "family",
            Self::Given => "given",
            Self::Middle => "middle",
        }
    }
}

impl fmt::Display for NamePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("the {part} name is required")]
    Empty { part: NamePart },
    #[error("the {part} name has {len} characters; at most {max} are allowed")]
    TooLong {
        part: NamePart,
        len: usize,
        max: usize,
    },
    #[error("the {part} name contains the character {found:?}, which is not allowed in a name")]
    InvalidChar { part: NamePart, found: char },
    #[error("the {part} name contains no letter")]
    NoLetter { part: NamePart },
}

impl NameError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty { .. } => "name_empty",
            Self::TooLong { .. } => "name_too_long",
            Self::InvalidChar { .. } => "name_invalid_char",
            Self::NoLetter { .. } => "name_no_letter",
        }
    }
    /// The input field concerned (`family`, `given` or `middle`).
    pub fn field(&self) -> Option<&'static str> {
        let part = match self {
            Self::Empty { part }
            | Self::TooLong { part, .. }
            | Self::InvalidChar { part, .. }
            | Self::NoLetter { part } => part,
        };
        Some(part.as_str())
    }
}

/// A patient's name: family and given required, middle optional.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PersonName {
    family: String,
    given: String,
    middle: Option<String>,
}

const NAME_MAX_CHARS: usize = 100;

fn clean_name_part(part: NamePart, input: &str) -> Result<String, NameError> {
    // Stored in NFC: `Zoe\u{308}` and `Zoë` are one name.
    let input: String = input.nfc().collect();
    let input = input.as_str();
    if let Some(found) = input.chars().find(|c| {
        !(c.is_alphanumeric()
            || is_combining_mark(*c)
            || c.is_whitespace() && !c.is_control()
            || matches!(c, '-' | '\'' | '’' | '.' | ','))
    }) {
        return Err(NameError::InvalidChar { part, found });
    }
    let collapsed = input.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return Err(NameError::Empty { part });
    }
    let len = collapsed.chars().count();
    if len > NAME_MAX_CHARS {
        return Err(NameError::TooLong {
            part,
            len,
            max: NAME_MAX_CHARS,
        });
    }
    if !collapsed.chars().any(char::is_alphabetic) {
        return Err(NameError::NoLetter { part });
    }
    Ok(collapsed)
}

impl PersonName {
    /// Validates and normalises a name; an empty or blank `middle` is treated as absent.
    pub fn new(family: &str, given: &str, middle: Option<&str>) -> Result<Self, NameError> {
        let family = clean_name_part(NamePart::Family, family)?;
        let given = clean_name_part(NamePart::Given, given)?;
        let middle = match middle {
            Some(m) if !m.trim().is_empty() => Some(clean_name_part(NamePart::Middle, m)?),
            _ => None,
        };
        Ok(Self {
            family,
            given,
            middle,
        })
    }

    /// Family name as entered (trimmed).
    pub fn family(&self) -> &str {
        &self.family
    }
    /// Given name as entered (trimmed).
    pub fn given(&self) -> &str {
        &self.given
    }
    /// Middle name, if any.
    pub fn middle(&self) -> Option<&str> {
        self.middle.as_deref()
    }

    /// Whether family and given names match `other` ignoring case, diacritics, punctuation and
    /// compatibility forms (NFKC).
    pub fn matches(&self, other: &Self) -> bool {
        name_search_key(&self.family) == name_search_key(&other.family)
            && name_search_key(&self.given) == name_search_key(&other.given)
    }
}

/// Search key for a name: compatibility forms folded (NFKC: `ﬁ` → `fi`), diacritics removed
/// (NFD, combining marks dropped, a few letters that don't decompose mapped: Ø→O, Ł→L, Đ→D,
/// Æ→AE, Œ→OE, ß→SS, Þ→TH), upper case, and everything that is not a letter or digit (spaces,
/// hyphens, apostrophes, dots) removed. `"O'Brien-Núñez"` → `"OBRIENNUNEZ"`.
pub fn name_search_key(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let compat: String = input.nfkc().collect();
    for c in compat.to_uppercase().nfd() {
        if is_combining_mark(c) || !c.is_alphanumeric() {
            continue;
        }
        match c {
            'Ø' => out.push('O'),
            'Ł' => out.push('L'),
            'Đ' => out.push('D'),
            'Æ' => out.push_str("AE"),
            'Œ' => out.push_str("OE"),
            'Þ' => out.push_str("TH"),
            _ => out.push(c),
        }
    }
    out
}

/// The comparison key of a name for duplicates and search (see the module notes): NFKC, lower
/// case, the Unicode TS #39 confusable skeleton, then diacritics and punctuation dropped and
/// lower case again. `G\u{430}rcia` and `Garcia` have one key; `ﬁsher` and `Fisher` too.
/// It is not meant to be read: the skeleton maps `m` to `rn` and `I` to `l`.
pub fn name_match_key(input: &str) -> String {
    let folded: String = input.nfkc().flat_map(char::to_lowercase).collect();
    let skeleton: String = unicode_security::skeleton(&folded).collect();
    let mut out = String::with_capacity(skeleton.len());
    for c in skeleton.nfd().flat_map(char::to_lowercase) {
        if is_combining_mark(c) || !c.is_alphanumeric() {
            continue;
        }
        match c {
            'ø' => out.push('o'),
            'ł' => out.push('l'),
            'đ' => out.push('d'),
            'æ' => out.push_str("ae"),
            'œ' => out.push_str("oe"),
            'þ' => out.push_str("th"),
            'ß' => out.push_str("ss"),
            _ => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Birth date

/// A birth date that is neither in the future nor before 1880.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BirthDate(Date);

/// Why a birth date was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BirthDateError {
    #[error("the birth date {input:?} is not a valid YYYY-MM-DD date")]
    Format { input: String },
    #[error("the birth date {date} is after today ({today})")]
    InFuture { date: Date, today: Date },
    #[error("the birth date {date} is before 1880-01-01")]
    TooEarly { date: Date },
}

impl BirthDateError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Format { .. } => "birth_date_format",
            Self::InFuture { .. } => "birth_date_future",
            Self::TooEarly { .. } => "birth_date_too_early",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("birth_date")
    }
}

/// Age in completed years on `on` (calendar arithmetic: someone born on 29 February turns a
/// year older on 28 February); 0 before the first birthday or for a date before the birth.
pub fn age_in_years(birth: Date, on: Date) -> u32 {
    // The same calendar rule as the reference intervals' age bands (`AgeBound::reached`):
    // the n-th birthday is `birth + n years`, clamped to the month's end.
    let reached = |years: i16| {
        birth
            .checked_add(jiff::Span::new().years(years))
            .is_ok_and(|d| d <= on)
    };
    let mut years = on.year() - birth.year();
    while years > 0 && !reached(years) {
        years -= 1;
    }
    u32::try_from(years).unwrap_or(0)
}

impl BirthDate {
    /// Earliest accepted birth date.
    pub const EARLIEST: Date = jiff::civil::date(1880, 1, 1);

    /// Validates `date` against `today` (the caller's local date).
    pub fn new(date: Date, today: Date) -> Result<Self, BirthDateError> {
        if date > today {
            return Err(BirthDateError::InFuture { date, today });
        }
        if date < Self::EARLIEST {
            return Err(BirthDateError::TooEarly { date });
        }
        Ok(Self(date))
    }

    /// Parses `YYYY-MM-DD` and validates against `today`.
    pub fn parse(input: &str, today: Date) -> Result<Self, BirthDateError> {
        let s = input.trim();
        let format_err = || BirthDateError::Format {
            input: input.to_owned(),
        };
        if s.len() != 10 {
            return Err(format_err());
        }
        let date: Date = s.parse().map_err(|_| format_err())?;
        Self::new(date, today)
    }

    /// The date.
    pub fn date(self) -> Date {
        self.0
    }
}

// ---------------------------------------------------------------------------------------------
// Positive identification

/// An identifier assigned by another system/facility (e.g. a national ID or another hospital's
/// MRN): assigning system plus value, both 1–64 printable characters without spaces at the ends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FacilityId {
    system: String,
    value: String,
}

/// Why a facility identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "a facility identifier needs a system and a value of 1–64 characters without control characters"
)]
pub struct FacilityIdError;

impl FacilityIdError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        "facility_id_format"
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("facility_id")
    }
}

impl FacilityId {
    /// Builds an identifier; the system is upper-cased, the value trimmed and upper-cased.
    pub fn new(system: &str, value: &str) -> Result<Self, FacilityIdError> {
        let ok =
            |s: &str| (1..=64).contains(&s.chars().count()) && !s.chars().any(char::is_control);
        let (system, value) = (system.trim(), value.trim());
        if !ok(system) || !ok(value) {
            return Err(FacilityIdError);
        }
        Ok(Self {
            system: system.to_uppercase(),
            value: value.to_uppercase(),
        })
    }
    /// Assigning system.
    pub fn system(&self) -> &str {
        &self.system
    }
    /// Identifier value.
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// What the lab holds about the patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRecord {
    pub mrn: Mrn,
    pub name: PersonName,
    pub birth_date: BirthDate,
    pub facility_ids: Vec<FacilityId>,
}

/// What is presented at collection/receipt/reporting (ID band, label, requisition, patient).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PresentedIdentifiers {
    pub mrn: Option<Mrn>,
    pub name: Option<PersonName>,
    pub birth_date: Option<BirthDate>,
    pub facility_id: Option<FacilityId>,
}

/// A kind of patient identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentifierKind {
    Mrn,
    Name,
    BirthDate,
    FacilityId,
}

impl IdentifierKind {
    /// Stable code / field name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mrn => "mrn",
            Self::Name => "name",
            Self::BirthDate => "birth_date",
            Self::FacilityId => "facility_id",
        }
    }
}

impl fmt::Display for IdentifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why identity was not confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentityError {
    #[error("identifiers contradict the patient record: {}", list(.mismatched))]
    Mismatch { mismatched: Vec<IdentifierKind> },
    #[error("only {matched} identifier(s) matched; at least two are required")]
    Insufficient { matched: usize },
}

fn list(kinds: &[IdentifierKind]) -> String {
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl IdentityError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Mismatch { .. } => "identity_mismatch",
            Self::Insufficient { .. } => "identity_insufficient",
        }
    }
    /// The first contradicting identifier, if any.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Mismatch { mismatched } => mismatched.first().map(|k| k.as_str()),
            Self::Insufficient { .. } => None,
        }
    }
}

/// Minimum number of matching identifiers (CLSI GP33 / TJC NPSG.01.01.01).
pub const MIN_MATCHING_IDENTIFIERS: usize = 2;

/// Positive patient identification: ≥ 2 matching identifiers and no contradiction.
pub fn confirm_identity(
    record: &IdentityRecord,
    presented: &PresentedIdentifiers,
) -> Result<(), IdentityError> {
    let mut matched = 0;
    let mut mismatched = Vec::new();
    let mut tally = |kind: IdentifierKind, ok: Option<bool>| match ok {
        Some(true) => matched += 1,
        Some(false) => mismatched.push(kind),
        None => {}
    };
    tally(
        IdentifierKind::Mrn,
        presented.mrn.as_ref().map(|m| *m == record.mrn),
    );
    tally(
        IdentifierKind::Name,
        presented.name.as_ref().map(|n| n.matches(&record.name)),
    );
    tally(
        IdentifierKind::BirthDate,
        presented.birth_date.map(|d| d == record.birth_date),
    );
    tally(
        IdentifierKind::FacilityId,
        presented.facility_id.as_ref().and_then(|p| {
            record
                .facility_ids
                .iter()
                .find(|r| r.system == p.system)
                .map(|r| r.value == p.value)
        }),
    );
    if !mismatched.is_empty() {
        return Err(IdentityError::Mismatch { mismatched });
    }
    if matched < MIN_MATCHING_IDENTIFIERS {
        return Err(IdentityError::Insufficient { matched });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Duplicate detection

/// The demographic key compared for duplicate registrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateKey {
    family_key: String,
    given_key: String,
    family_match: String,
    given_match: String,
    birth_date: Date,
    sex: AdministrativeSex,
}

impl CandidateKey {
    /// Builds the key from a validated name, birth date and sex.
    pub fn new(name: &PersonName, birth_date: BirthDate, sex: AdministrativeSex) -> Self {
        Self {
            family_key: name_search_key(name.family()),
            given_key: name_search_key(name.given()),
            family_match: name_match_key(name.family()),
            given_match: name_match_key(name.given()),
            birth_date: birth_date.date(),
            sex,
        }
    }
    /// Family-name search key.
    pub fn family_key(&self) -> &str {
        &self.family_key
    }
    /// Given-name search key.
    pub fn given_key(&self) -> &str {
        &self.given_key
    }
}

/// Why two registrations look like the same person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicateReason {
    /// Same names (search keys) and birth date.
    ExactName,
    /// Given and family names swapped, same birth date.
    SwappedGivenFamily,
    /// Names within edit distance or phonetically equal, same birth date.
    NearMissName,
    /// Same names, birth date with day and month swapped.
    BirthDayMonthTransposed,
    /// Same names, birth dates one day apart.
    BirthDateOneDayOff,
    /// Same names, same day and month, two adjacent digits of the year swapped (1980/1908).
    BirthYearDigitsTransposed,
    /// Same given name, birth date and sex; another family name (a married name).
    FamilyNameChanged,
}

impl DuplicateReason {
    /// Stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExactName => "exact_name",
            Self::SwappedGivenFamily => "swapped_given_family",
            Self::NearMissName => "near_miss_name",
            Self::BirthDayMonthTransposed => "birth_day_month_transposed",
            Self::BirthDateOneDayOff => "birth_date_one_day_off",
            Self::BirthYearDigitsTransposed => "birth_year_digits_transposed",
            Self::FamilyNameChanged => "family_name_changed",
        }
    }
}

fn max_edit_distance(len: usize) -> usize {
    match len {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

fn names_similar(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let len = a.chars().count().max(b.chars().count());
    damerau_levenshtein(a, b) <= max_edit_distance(len) || {
        let (sa, sb) = (soundex(a), soundex(b));
        !sa.is_empty() && sa == sb
    }
}

fn day_month_transposed(a: Date, b: Date) -> bool {
    a.year() == b.year() && a.day() != a.month() && a.day() == b.month() && a.month() == b.day()
}

/// The years made by swapping two adjacent digits of `year` (4 digits), other than `year`.
fn years_transposed(year: i16) -> Vec<i16> {
    let digits: Vec<u8> = format!("{year:04}").bytes().collect();
    let mut out = Vec::new();
    for i in 0..digits.len().saturating_sub(1) {
        let mut d = digits.clone();
        d.swap(i, i + 1);
        if d != digits
            && let Some(y) = std::str::from_utf8(&d)
                .ok()
                .and_then(|s| s.parse::<i16>().ok())
            && !out.contains(&y)
        {
            out.push(y);
        }
    }
    out
}

fn year_digits_transposed(a: Date, b: Date) -> bool {
    a.month() == b.month() && a.day() == b.day() && years_transposed(a.year()).contains(&b.year())
}

fn one_day_apart(a: Date, b: Date) -> bool {
    a.tomorrow().is_ok_and(|t| t == b) || b.tomorrow().is_ok_and(|t| t == a)
}

/// The birth dates whose patients [`duplicate_match`] may report for a registration born on
/// `date`: the date itself, the day before and after, day and month swapped, and the years with
/// two adjacent digits transposed (only real dates from [`BirthDate::EARLIEST`] on).
pub fn candidate_birth_dates(date: Date) -> Vec<Date> {
    let mut out = vec![date];
    let mut push = |d: Option<Date>| {
        if let Some(d) = d
            && d >= BirthDate::EARLIEST
            && !out.contains(&d)
        {
            out.push(d);
        }
    };
    push(date.yesterday().ok());
    push(date.tomorrow().ok());
    if date.day() != date.month() && date.day() <= 12 {
        push(Date::new(date.year(), date.day(), date.month()).ok());
    }
    for y in years_transposed(date.year()) {
        push(Date::new(y, date.month(), date.day()).ok());
    }
    out
}

/// Compares a new registration with an existing one; `None` = no reason to suspect a duplicate.
pub fn duplicate_match(new: &CandidateKey, existing: &CandidateKey) -> Option<DuplicateReason> {
    let same_names =
        new.family_match == existing.family_match && new.given_match == existing.given_match;
    if new.birth_date == existing.birth_date {
        if same_names {
            return Some(DuplicateReason::ExactName);
        }
        if new.family_match == existing.given_match && new.given_match == existing.family_match {
            return Some(DuplicateReason::SwappedGivenFamily);
        }
        let sex_conflict =
            new.sex.is_definite() && existing.sex.is_definite() && new.sex != existing.sex;
        let similar = |a: &str, b: &str, am: &str, bm: &str| am == bm || names_similar(a, b);
        if !sex_conflict
            && similar(
                &new.family_key,
                &existing.family_key,
                &new.family_match,
                &existing.family_match,
            )
            && similar(
                &new.given_key,
                &existing.given_key,
                &new.given_match,
                &existing.given_match,
            )
        {
            return Some(DuplicateReason::NearMissName);
        }
        if new.given_match == existing.given_match && new.sex == existing.sex {
            return Some(DuplicateReason::FamilyNameChanged);
        }
        return None;
    }
    if !same_names {
        return None;
    }
    let (a, b) = (new.birth_date, existing.birth_date);
    if one_day_apart(a, b) {
        Some(DuplicateReason::BirthDateOneDayOff)
    } else if day_month_transposed(a, b) {
        Some(DuplicateReason::BirthDayMonthTransposed)
    } else if year_digits_transposed(a, b) {
        Some(DuplicateReason::BirthYearDigitsTransposed)
    } else {
        None
    }
}

/// True (unrestricted) Damerau–Levenshtein distance over `char`s: insertions, deletions,
/// substitutions and transpositions of adjacent characters, each cost 1 (Lowrance–Wagner).
pub fn damerau_levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let max = n + m;
    // d has (n + 2) × (m + 2) cells; row/column 0 hold `max` sentinels.
    let width = m + 2;
    let mut d = vec![0usize; (n + 2) * width];
    let idx = |i: usize, j: usize| i * width + j;
    d[idx(0, 0)] = max;
    for i in 0..=n {
        d[idx(i + 1, 0)] = max;
        d[idx(i + 1, 1)] = i;
    }
    for j in 0..=m {
        d[idx(0, j + 1)] = max;
        d[idx(1, j + 1)] = j;
    }
    let mut last_row: HashMap<char, usize> = HashMap::new();
    for i in 1..=n {
        let mut last_match_col = 0;
        for j in 1..=m {
            let i1 = last_row.get(&b[j - 1]).copied().unwrap_or(0);
            let j1 = last_match_col;
            let cost = if a[i - 1] == b[j - 1] {
                last_match_col = j;
                0
            } else {
                1
            };
            let substitution = d[idx(i, j)] + cost;
            let insertion = d[idx(i + 1, j)] + 1;
            let deletion = d[idx(i, j + 1)] + 1;
            let transposition = d[idx(i1, j1)] + (i - i1 - 1) + 1 + (j - j1 - 1);
            d[idx(i + 1, j + 1)] = substitution.min(insertion).min(deletion).min(transposition);
        }
        last_row.insert(a[i - 1], i);
    }
    d[idx(n + 1, m + 1)]
}

fn soundex_digit(c: char) -> Option<char> {
    Some(match c {
        'B' | 'F' | 'P' | 'V' => '1',
        'C' | 'G' | 'J' | 'K' | 'Q' | 'S' | 'X' | 'Z' => '2',
        'D' | 'T' => '3',
        'L' => '4',
        'M' | 'N' => '5',
        'R' => '6',
        _ => return None,
    })
}

/// American Soundex, e.g. `Robert` → `R163`. The input is first folded like the search key
/// ([`name_search_key`]: NFKC, diacritics dropped, Ø→O, ß→SS, Æ→AE …), so `Öztürk` has the
/// code of `Ozturk` (O236); letters still outside A–Z after folding (other scripts) are
/// skipped; empty if none is left. H and W do not separate equal codes; vowels do.
pub fn soundex(input: &str) -> String {
    let folded = name_search_key(input);
    let mut letters = folded
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_uppercase());
    let Some(first) = letters.next() else {
        return String::new();
    };
    let mut out = String::with_capacity(4);
    out.push(first);
    let mut prev = soundex_digit(first);
    for c in letters {
        if out.len() == 4 {
            break;
        }
        match c {
            'H' | 'W' => {}
            _ => {
                let digit = soundex_digit(c);
                if let Some(d) = digit
                    && digit != prev
                {
                    out.push(d);
                }
                prev = digit;
            }
        }
    }
    while out.len() < 4 {
        out.push('0');
    }
    out
}

impl_domain_error!(
    SexError,
    ClinicalSexError,
    BirthTimeError,
    NameError,
    BirthDateError,
    FacilityIdError,
    IdentityError
);

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    const TODAY: Date = date(2026, 11, 21);

    fn name(f: &str, g: &str) -> PersonName {
        PersonName::new(f, g, None).unwrap()
    }

    fn record() -> IdentityRecord {
        IdentityRecord {
            mrn: Mrn::parse("MRN-1").unwrap(),
            name: name("Núñez", "María"),
            birth_date: BirthDate::new(date(1980, 3, 4), TODAY).unwrap(),
            facility_ids: vec![FacilityId::new("nhs", "943 476 5919").unwrap()],
        }
    }

    #[test]
    fn sex_codes() {
        for code in ["F", "M", "O", "U", "A", "N"] {
            assert_eq!(AdministrativeSex::parse(code).unwrap().as_str(), code);
        }
        assert_eq!(
            AdministrativeSex::parse("f").unwrap_err().code(),
            "sex_code"
        );
    }

    #[test]
    fn person_name_validation() {
        let n = PersonName::new("  de  la Cruz ", "Ana-María", Some(" ")).unwrap();
        assert_eq!(n.family(), "de la Cruz");
        assert_eq!(n.middle(), None);
        assert_eq!(
            PersonName::new("", "A", None).unwrap_err().field(),
            Some("family")
        );
        assert_eq!(
            PersonName::new("A", " ", None).unwrap_err().code(),
            "name_empty"
        );
        assert_eq!(
            PersonName::new("A\u{0}", "B", None).unwrap_err().code(),
            "name_invalid_char"
        );
        assert_eq!(
            PersonName::new("A", "B\r", None).unwrap_err().code(),
            "name_invalid_char"
        );
        assert_eq!(
            PersonName::new("--", "B", None).unwrap_err().code(),
            "name_no_letter"
        );
        assert_eq!(
            PersonName::new(&"a".repeat(101), "B", None)
                .unwrap_err()
                .code(),
            "name_too_long"
        );
        assert_eq!(
            PersonName::new("A", "B", Some("<x>")).unwrap_err().field(),
            Some("middle")
        );
        assert!(PersonName::new("Trauma", "Alias 1234", None).is_ok());
    }

    #[test]
    fn search_key_strips_diacritics_and_punctuation() {
        assert_eq!(name_search_key("O'Brien-Núñez"), "OBRIENNUNEZ");
        assert_eq!(name_search_key("Søren Łukasz"), "SORENLUKASZ");
        assert_eq!(name_search_key("Straße"), "STRASSE");
        assert_eq!(name_search_key("Zoë"), "ZOE");
    }

    #[test]
    fn birth_date_rules() {
        assert!(BirthDate::parse("2026-11-21", TODAY).is_ok());
        assert_eq!(
            BirthDate::parse("2026-11-22", TODAY).unwrap_err().code(),
            "birth_date_future"
        );
        assert_eq!(
            BirthDate::parse("1879-12-31", TODAY).unwrap_err().code(),
            "birth_date_too_early"
        );
        assert!(BirthDate::parse("1880-01-01", TODAY).is_ok());
        for bad in ["2020-02-30", "20-1-1", "yesterday", "2020-1-01"] {
            assert_eq!(
                BirthDate::parse(bad, TODAY).unwrap_err().code(),
                "birth_date_format",
                "{bad}"
            );
        }
    }

    #[test]
    fn identity_needs_two_matches() {
        let r = record();
        let presented = PresentedIdentifiers {
            name: Some(name("NUNEZ", "maria")),
            birth_date: Some(r.birth_date),
            ..Default::default()
        };
        assert_eq!(confirm_identity(&r, &presented), Ok(()));
        let only_mrn = PresentedIdentifiers {
            mrn: Some(r.mrn.clone()),
            ..Default::default()
        };
        assert_eq!(
            confirm_identity(&r, &only_mrn),
            Err(IdentityError::Insufficient { matched: 1 })
        );
        let mrn_and_facility = PresentedIdentifiers {
            mrn: Some(r.mrn.clone()),
            facility_id: Some(FacilityId::new("NHS", "943 476 5919").unwrap()),
            ..Default::default()
        };
        assert_eq!(confirm_identity(&r, &mrn_and_facility), Ok(()));
    }

    #[test]
    fn identity_refuses_contradictions_and_names_them() {
        let r = record();
        let presented = PresentedIdentifiers {
            mrn: Some(r.mrn.clone()),
            name: Some(name("Nunez", "Maria")),
            birth_date: Some(BirthDate::new(date(1980, 4, 3), TODAY).unwrap()),
            facility_id: None,
        };
        let err = confirm_identity(&r, &presented).unwrap_err();
        assert_eq!(
            err,
            IdentityError::Mismatch {
                mismatched: vec![IdentifierKind::BirthDate]
            }
        );
        assert_eq!(err.code(), "identity_mismatch");
        assert_eq!(err.field(), Some("birth_date"));
        assert!(err.to_string().contains("birth_date"));
    }

    #[test]
    fn unknown_facility_system_neither_counts_nor_contradicts() {
        let r = record();
        let presented = PresentedIdentifiers {
            mrn: Some(r.mrn.clone()),
            facility_id: Some(FacilityId::new("OTHER", "1").unwrap()),
            ..Default::default()
        };
        assert_eq!(
            confirm_identity(&r, &presented),
            Err(IdentityError::Insufficient { matched: 1 })
        );
        let wrong_value = PresentedIdentifiers {
            facility_id: Some(FacilityId::new("NHS", "1").unwrap()),
            ..presented
        };
        assert_eq!(
            confirm_identity(&r, &wrong_value).unwrap_err().code(),
            "identity_mismatch"
        );
    }

    fn key(f: &str, g: &str, dob: Date, sex: &str) -> CandidateKey {
        CandidateKey::new(
            &name(f, g),
            BirthDate::new(dob, TODAY).unwrap(),
            AdministrativeSex::parse(sex).unwrap(),
        )
    }

    #[test]
    fn duplicate_reasons() {
        let dob = date(1990, 5, 7);
        let base = key("Smith", "Jonathan", dob, "M");
        assert_eq!(
            duplicate_match(&key("SMITH", "jonathan", dob, "U"), &base),
            Some(DuplicateReason::ExactName)
        );
        assert_eq!(
            duplicate_match(&key("Jonathan", "Smith", dob, "M"), &base),
            Some(DuplicateReason::SwappedGivenFamily)
        );
        assert_eq!(
            duplicate_match(&key("Smtih", "Jonathon", dob, "M"), &base),
            Some(DuplicateReason::NearMissName)
        );
        assert_eq!(
            duplicate_match(&key("Smyth", "Jonathan", dob, "M"), &base),
            Some(DuplicateReason::NearMissName)
        );
        assert_eq!(
            duplicate_match(&key("Smith", "Jonathan", date(1990, 7, 5), "M"), &base),
            Some(DuplicateReason::BirthDayMonthTransposed)
        );
        // Issue 10 item 15: a day off was not flagged.
        assert_eq!(
            duplicate_match(&key("Smith", "Jonathan", date(1990, 5, 8), "M"), &base),
            Some(DuplicateReason::BirthDateOneDayOff)
        );
        assert_eq!(
            duplicate_match(&key("Smith", "Jonathan", date(1990, 5, 9), "M"), &base),
            None
        );
        assert_eq!(
            duplicate_match(&key("Jones", "Jonathan", dob, "M"), &base),
            Some(DuplicateReason::FamilyNameChanged)
        );
        assert_eq!(
            duplicate_match(&key("Jones", "Jonathan", dob, "F"), &base),
            None
        );
        // Twins of different sex with near names are not flagged.
        let jon = key("Smith", "Jon", dob, "M");
        assert_eq!(duplicate_match(&key("Smith", "Joan", dob, "F"), &jon), None);
        assert_eq!(
            duplicate_match(&key("Smith", "Joan", dob, "U"), &jon),
            Some(DuplicateReason::NearMissName)
        );
    }

    /// Item 15 of issue 10: one row per pair of registrations → the reason, or `None` and why.
    #[test]
    fn duplicate_case_table() {
        type Person<'a> = (&'a str, &'a str, &'a str, &'a str);
        let cases: &[(Person, Person, Option<DuplicateReason>, &str)] = &[
            (
                ("Smith", "Anna", "1980-03-04", "F"),
                ("Smith", "Anna", "1980-03-04", "F"),
                Some(DuplicateReason::ExactName),
                "same person",
            ),
            (
                ("Smith", "Anna", "1980-03-04", "F"),
                ("Smith", "Anna", "1980-03-05", "F"),
                Some(DuplicateReason::BirthDateOneDayOff),
                "birth date a day later",
            ),
            (
                ("Smith", "Anna", "1980-03-01", "F"),
                ("Smith", "Anna", "1980-02-29", "F"),
                Some(DuplicateReason::BirthDateOneDayOff),
                "a day off across a leap day",
            ),
            (
                ("Smith", "Anna", "1980-12-31", "F"),
                ("Smith", "Anna", "1981-01-01", "F"),
                Some(DuplicateReason::BirthDateOneDayOff),
                "a day off across a year",
            ),
            (
                ("Smith", "Anna", "1980-03-04", "F"),
                ("Smith", "Anna", "1980-03-06", "F"),
                None,
                "two days off is another person",
            ),
            (
                ("Smith", "Anna", "1980-03-04", "F"),
                ("Smith", "Anna", "1908-03-04", "F"),
                Some(DuplicateReason::BirthYearDigitsTransposed),
                "1980 typed 1908",
            ),
            (
                ("Smith", "Anna", "1980-03-04", "F"),
                ("Smith", "Anna", "1890-03-04", "F"),
                Some(DuplicateReason::BirthYearDigitsTransposed),
                "1980 typed 1890",
            ),
            (
                ("Smith", "Anna", "1980-03-04", "F"),
                ("Smith", "Anna", "1908-03-05", "F"),
                None,
                "transposed year and another day",
            ),
            (
                ("Smith", "Anna", "1980-03-04", "F"),
                ("Smith", "Anna", "1980-04-03", "F"),
                Some(DuplicateReason::BirthDayMonthTransposed),
                "day and month swapped",
            ),
            (
                ("Smith", "Anna", "1980-03-04", "F"),
                ("Smyth", "Anna", "1980-03-05", "F"),
                None,
                "near name and near date: too far",
            ),
            (
                ("Smith", "Anna", "1980-03-04", "F"),
                ("Jones", "Anna", "1980-03-04", "F"),
                Some(DuplicateReason::FamilyNameChanged),
                "married name",
            ),
            (
                ("Smith", "Anna", "1980-03-04", "F"),
                ("Jones", "Anna", "1980-03-04", "M"),
                None,
                "same given name, other sex",
            ),
            (
                ("Smith", "Anna", "1980-03-04", "F"),
                ("Jones", "Anna", "1980-03-05", "F"),
                None,
                "married name needs the same birth date",
            ),
            (
                ("Garcia", "Luis", "1975-07-01", "M"),
                ("G\u{430}rcia", "Luis", "1975-07-01", "M"),
                Some(DuplicateReason::ExactName),
                "Cyrillic a in the family name",
            ),
            (
                ("Garcia", "Luis", "1975-07-01", "M"),
                ("G\u{430}rcia", "Luis", "1975-07-02", "M"),
                Some(DuplicateReason::BirthDateOneDayOff),
                "Cyrillic a and a day off",
            ),
            (
                ("Fisher", "Zoë", "2001-01-01", "F"),
                ("\u{FB01}sher", "Zoe\u{308}", "2001-01-01", "F"),
                Some(DuplicateReason::ExactName),
                "ligature and decomposed diaeresis",
            ),
            (
                ("Öztürk", "Ayşe", "1990-05-05", "F"),
                ("Ozturk", "Ayse", "1990-05-05", "F"),
                Some(DuplicateReason::ExactName),
                "diacritics",
            ),
            (
                ("Smith", "Jonathan", "1990-05-07", "M"),
                ("Jonathan", "Smith", "1990-05-07", "M"),
                Some(DuplicateReason::SwappedGivenFamily),
                "given and family swapped",
            ),
        ];
        for (a, b, reason, why) in cases {
            let k = |p: &Person| key(p.0, p.1, p.2.parse().unwrap(), p.3);
            assert_eq!(duplicate_match(&k(a), &k(b)), *reason, "{why}");
            assert_eq!(duplicate_match(&k(b), &k(a)), *reason, "{why} (reversed)");
            if reason.is_some() {
                let da: Date = a.2.parse().unwrap();
                let db: Date = b.2.parse().unwrap();
                assert!(candidate_birth_dates(da).contains(&db), "{why}: looked up");
            }
        }
    }

    #[test]
    fn candidate_birth_dates_are_the_date_its_neighbours_and_its_typos() {
        let got = candidate_birth_dates(date(1980, 3, 4));
        let want = [
            date(1980, 3, 4),
            date(1980, 3, 3),
            date(1980, 3, 5),
            date(1980, 4, 3),
            date(9180, 3, 4),
            date(1890, 3, 4),
            date(1908, 3, 4),
        ];
        assert_eq!(got, want);
        // 29 February has no transposed-year twin in 1902, nor a swapped month.
        let leap = candidate_birth_dates(date(1920, 2, 29));
        assert!(!leap.iter().any(|d| d.year() == 1902));
        assert!(leap.iter().all(|d| *d >= BirthDate::EARLIEST));
    }

    #[test]
    fn names_are_stored_in_nfc() {
        let n = name("Zoe\u{308}", "\u{FB01}sher");
        assert_eq!(n.family(), "Zoë");
        assert_eq!(n.family().chars().count(), 3, "one precomposed ë");
        // NFC keeps the ligature (compatibility, not canonical); the keys fold it.
        assert_eq!(n.given(), "\u{FB01}sher");
        assert_eq!(name_search_key(n.given()), "FISHER");
        assert_eq!(name_match_key(n.given()), name_match_key("Fisher"));
    }

    #[test]
    fn match_key_sees_through_confusables() {
        let cases = [
            ("G\u{430}rcia", "Garcia", true),
            ("GARCIA", "garcia", true),
            ("Garcïa", "Garcia", true),
            ("O'Brien", "OBrien", true),
            ("\u{FF27}arcia", "Garcia", true), // full-width G
            ("Øster", "Oster", true),
            ("Straße", "Strasse", true),
            ("Garcia", "Garcie", false),
            ("Smith", "Smyth", false),
        ];
        for (a, b, equal) in cases {
            assert_eq!(name_match_key(a) == name_match_key(b), equal, "{a} / {b}");
        }
        // A prefix's key is a prefix of the key: prefix search stays a range.
        for (name, prefix) in [("Garcia", "gar"), ("G\u{430}rcia", "Gar"), ("Smith", "sm")] {
            assert!(
                name_match_key(name).starts_with(&name_match_key(prefix)),
                "{name}"
            );
        }
    }

    #[test]
    fn clinical_sex_and_birth_time() {
        for code in ["female", "male", "specified", "unknown"] {
            assert_eq!(ClinicalSex::parse(code).unwrap().as_str(), code);
        }
        let e = ClinicalSex::parse("F").unwrap_err();
        assert_eq!(
            (e.code(), e.field()),
            ("clinical_sex_code", Some("clinical_sex"))
        );
        assert_eq!(BirthTime::parse("07:05").unwrap().as_string(), "07:05");
        for bad in ["7:05", "24:00", "12:60", "12:5a", "", "12:00:00"] {
            let e = BirthTime::parse(bad).unwrap_err();
            assert_eq!(
                (e.code(), e.field()),
                ("birth_time_format", Some("birth_time")),
                "{bad}"
            );
        }
    }

    #[test]
    fn damerau_levenshtein_known_values() {
        assert_eq!(damerau_levenshtein("", ""), 0);
        assert_eq!(damerau_levenshtein("ABC", ""), 3);
        assert_eq!(damerau_levenshtein("SMITH", "SMTIH"), 1);
        assert_eq!(damerau_levenshtein("CA", "ABC"), 2); // OSA would give 3
        assert_eq!(damerau_levenshtein("KITTEN", "SITTING"), 3);
    }

    #[test]
    fn soundex_known_values() {
        for (input, code) in [
            ("Robert", "R163"),
            ("Rupert", "R163"),
            ("Rubin", "R150"),
            ("Ashcraft", "A261"),
            ("Ashcroft", "A261"),
            ("Tymczak", "T522"),
            ("Pfister", "P236"),
            ("Honeyman", "H555"),
            ("Lee", "L000"),
            ("", ""),
            ("Öztürk", "O236"),
            ("Ozturk", "O236"),
            ("Ødegård", "O326"),
            ("Straße", "S362"),
            ("Æsir", "A260"),
        ] {
            assert_eq!(soundex(input), code, "{input}");
        }
    }

    proptest! {
        #[test]
        fn dl_is_a_metric(a in "[A-D]{0,7}", b in "[A-D]{0,7}", c in "[A-D]{0,7}") {
            let ab = damerau_levenshtein(&a, &b);
            prop_assert_eq!(ab, damerau_levenshtein(&b, &a));
            prop_assert_eq!(damerau_levenshtein(&a, &a), 0);
            prop_assert_eq!(ab == 0, a == b);
            prop_assert!(ab <= a.len().max(b.len()));
            prop_assert!(damerau_levenshtein(&a, &c) <= ab + damerau_levenshtein(&b, &c));
        }

        #[test]
        fn search_key_is_idempotent_and_clean(s in "\\PC{0,20}") {
            let k = name_search_key(&s);
            prop_assert_eq!(name_search_key(&k), k.clone());
            prop_assert!(k.chars().all(char::is_alphanumeric));
        }

        #[test]
        fn identity_confirmed_iff_two_matches_and_no_contradiction(
            states in prop::collection::vec(0u8..3, 4),
        ) {
            // 0 = not presented, 1 = presented and matching, 2 = presented and contradicting.
            let r = record();
            let pick = |i: usize| states[i];
            let presented = PresentedIdentifiers {
                mrn: match pick(0) { 0 => None, 1 => Some(r.mrn.clone()), _ => Some(Mrn::parse("OTHER").unwrap()) },
                name: match pick(1) { 0 => None, 1 => Some(name("nunez", "MARIA")), _ => Some(name("Nunez", "Marta")) },
                birth_date: match pick(2) {
                    0 => None,
                    1 => Some(r.birth_date),
                    _ => Some(BirthDate::new(date(1980, 3, 5), TODAY).unwrap()),
                },
                facility_id: match pick(3) {
                    0 => None,
                    1 => Some(FacilityId::new("NHS", "943 476 5919").unwrap()),
                    _ => Some(FacilityId::new("NHS", "000").unwrap()),
                },
            };
            let matches = states.iter().filter(|&&s| s == 1).count();
            let contradictions = states.iter().filter(|&&s| s == 2).count();
            let result = confirm_identity(&r, &presented);
            prop_assert_eq!(result.is_ok(), contradictions == 0 && matches >= 2);
            if let Err(IdentityError::Mismatch { mismatched }) = &result {
                prop_assert_eq!(mismatched.len(), contradictions);
            }
        }

        #[test]
        fn duplicate_match_is_symmetric(
            f1 in "[A-E]{1,6}", g1 in "[A-E]{1,6}", f2 in "[A-E]{1,6}", g2 in "[A-E]{1,6}",
            d1 in 1i8..=12, d2 in 1i8..=12,
        ) {
            let a = key(&f1, &g1, date(2000, 1, d1), "F");
            let b = key(&f2, &g2, date(2000, 1, d2), "F");
            prop_assert_eq!(duplicate_match(&a, &b), duplicate_match(&b, &a));
        }

        #[test]
        fn different_birth_dates_only_match_when_transposed(
            f in "[A-Z]{1,8}", g in "[A-Z]{1,8}", m1 in 1i8..=12, d1 in 1i8..=28, m2 in 1i8..=12, d2 in 1i8..=28,
        ) {
            let a = key(&f, &g, date(2001, m1, d1), "M");
            let b = key(&f, &g, date(2001, m2, d2), "M");
            let reason = duplicate_match(&a, &b);
            let (da, db) = (date(2001, m1, d1), date(2001, m2, d2));
            if (m1, d1) == (m2, d2) {
                prop_assert_eq!(reason, Some(DuplicateReason::ExactName));
            } else if da.tomorrow().unwrap() == db || db.tomorrow().unwrap() == da {
                prop_assert_eq!(reason, Some(DuplicateReason::BirthDateOneDayOff));
            } else if m1 == d2 && d1 == m2 {
                prop_assert_eq!(reason, Some(DuplicateReason::BirthDayMonthTransposed));
            } else {
                prop_assert_eq!(reason, None);
            }
            if reason.is_some() {
                prop_assert!(candidate_birth_dates(da).contains(&db));
            }
        }
    }

    #[test]
    fn age_in_completed_years_from_a_case_table() {
        // birth, on → years
        let cases = [
            ("1961-04-09", "2026-04-08", 64),
            ("1961-04-09", "2026-04-09", 65),
            ("2000-02-29", "2001-02-27", 0),
            ("2000-02-29", "2001-02-28", 1),
            ("2026-11-28", "2026-11-28", 0),
            ("2026-11-28", "2026-01-01", 0),
        ];
        for (birth, on, years) in cases {
            assert_eq!(
                age_in_years(birth.parse().unwrap(), on.parse().unwrap()),
                years,
                "{birth} on {on}"
            );
        }
    }
}
