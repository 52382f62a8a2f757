//! Identifiers: medical record number, NPI, LOINC code, ICD-10-CM code, accession number.
//!
//! All identifiers are "parse, don't validate" newtypes: once you hold one, it is well formed and
//! normalised. `as_str()` returns the canonical text to store and display.
//!
//! # Rules and sources
//! - [`Mrn`]: facility-assigned; we accept 1–20 characters of `[A-Za-z0-9-]` after trimming
//!   surrounding whitespace and normalise to upper case (local policy; HL7 PID-3 carries it).
//! - [`Npi`]: 10 digits, the last a Luhn check digit computed over the constant prefix `80840`
//!   followed by the first 9 digits (CMS, "Requirements for NPI check digit", 2004). CMS's
//!   worked example `123456789` has check digit 3.
//! - [`LoincCode`]: `NNNNN-N`, 1–7 digits, a hyphen and LOINC's mod-10 check digit (LOINC
//!   Users' Guide, "Calculating Mod 10 check digits": double the digits in odd positions
//!   counted from the right, add all digits, subtract from the next multiple of ten — this is
//!   the Luhn algorithm).
//! - [`Icd10Cm`]: a letter, a digit, an alphanumeric, then optionally a '.' and 1–4
//!   alphanumerics (CMS/NCHS ICD-10-CM code structure). Normalised to upper case with the dot
//!   after the third character; input without the dot is accepted.
//! - [`AccessionNumber`]: our lab-generated specimen ID (DOMAIN §6.8 — practice, not a standard:
//!   unique, never reused, year plus sequence, optional check character, section prefixes).
//!
//! # Accession number format
//!
//! ```text
//! <prefix: 1–3 letters A–Z><year: 2 digits><sequence: 7–10 digits, zero padded><check>[-<aliquot NN>]
//! e.g.  C26 0001234 <check>        -> "C260001234" + check
//!       child aliquot 1            -> "C260001234?-01"
//! ```
//!
//! The check character is ISO/IEC 7064 **MOD 37-2** (pure system, radix 2, modulus 37) computed
//! over every character before it; its alphabet is `0-9`, `A-Z` and `*` (value 36), all of
//! which are Code 128 set B characters (CLSI AUTO2 uses Code 128). Because 37 is prime and the
//! weights are powers of two, every single-character substitution changes the weighted sum by
//! `(a − b)·2^k ≢ 0 (mod 37)` and every adjacent transposition by `(a − b)·2^k·(2 − 1) ≢ 0`,
//! so both error classes are always detected (property-tested below). Luhn mod N was rejected
//! because it misses some adjacent transpositions.
//!
//! Aliquot children (DOMAIN §6.6: "parent accession with an aliquot suffix, e.g. 24-123456-01")
//! append `-NN`, `NN` in `01..=99`. The suffix is not covered by the check character: a
//! mistyped suffix can only name another aliquot of the same specimen (same patient), and the
//! store links each child to its parent.
//!
//! Scanner input is taken literally: leading/trailing whitespace and control characters (a
//! trailing CR from a keyboard-wedge scanner) are errors, not silently trimmed, so a
//! misconfigured scanner is noticed. Lower-case letters are accepted and upper-cased.

use std::fmt;

use thiserror::Error;

use crate::error::impl_domain_error;

// ---------------------------------------------------------------------------------------------
// MRN

/// Medical record number: 1–20 characters of `[A-Z0-9-]`, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mrn(String);

/// Why a medical record number was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MrnError {
    #[error("the MRN is empty")]
    Empty,
    #[error("the MRN has {len} characters; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error(
        "the MRN contains {found:?} at position {position}; only letters, digits and '-' are allowed"
    )]
    InvalidChar { found: char, position: usize },
}

impl MrnError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "mrn_empty",
            Self::TooLong { .. } => "mrn_too_long",
            Self::InvalidChar { .. } => "mrn_invalid_char",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("mrn")
    }
}

impl Mrn {
    /// Maximum length in characters.
    pub const MAX_LEN: usize = 20;

    /// Parses an MRN: trims surrounding whitespace, checks the alphabet and length, upper-cases.
    pub fn parse(input: &str) -> Result<Self, MrnError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(MrnError::Empty);
        }
        if let Some((position, found)) = trimmed
            .chars()
            .enumerate()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(MrnError::InvalidChar { found, position });
        }
        let len = trimmed.len();
        if len > Self::MAX_LEN {
            return Err(MrnError::TooLong {
                len,
                max: Self::MAX_LEN,
            });
        }
        Ok(Self(trimmed.to_ascii_uppercase()))
    }

    /// Canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Mrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Luhn (used by NPI and LOINC)

/// Luhn check digit for `digits` (most significant first), i.e. the digit that, appended,
/// makes the Luhn sum divisible by 10. `extra` is added to the sum first (NPI prefix constant).
fn luhn_check_digit(digits: &[u8], extra: u32) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum::<u32>()
        + extra;
    // `sum % 10` is below 10, so the result fits a u8.
    ((10 - sum % 10) % 10) as u8
}

// ---------------------------------------------------------------------------------------------
// NPI

/// National Provider Identifier (CMS): 10 digits with a Luhn check digit over `80840` + 9 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Npi(String);

/// Why an NPI was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NpiError {
    #[error("an NPI has exactly 10 digits; got {len} characters")]
    WrongLength { len: usize },
    #[error("an NPI contains only digits; found {found:?}")]
    NotDigit { found: char },
    #[error("the NPI check digit is {found}, expected {expected}")]
    CheckDigit { expected: u8, found: u8 },
}

impl NpiError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::WrongLength { .. } => "npi_length",
            Self::NotDigit { .. } => "npi_not_digit",
            Self::CheckDigit { .. } => "npi_check",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("npi")
    }
}

/// Sum contributed by the `80840` prefix in the NPI Luhn computation (CMS: "add 24").
const NPI_PREFIX_SUM: u32 = 24;

impl Npi {
    /// Digits of an NPI.
    pub const DIGITS: usize = 10;

    /// Parses a 10-digit NPI (surrounding whitespace trimmed) and verifies the check digit.
    pub fn parse(input: &str) -> Result<Self, NpiError> {
        let s = input.trim();
        if let Some(found) = s.chars().find(|c| !c.is_ascii_digit()) {
            return Err(NpiError::NotDigit { found });
        }
        if s.len() != Self::DIGITS {
            return Err(NpiError::WrongLength { len: s.len() });
        }
        let digits: Vec<u8> = s.bytes().map(|b| b - b'0').collect();
        let expected = luhn_check_digit(&digits[..9], NPI_PREFIX_SUM);
        if digits[9] != expected {
            return Err(NpiError::CheckDigit {
                expected,
                found: digits[9],
            });
        }
        Ok(Self(s.to_owned()))
    }

    /// Canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Npi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// LOINC

/// A LOINC code `NNNNN-N` with a verified mod-10 check digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LoincCode(String);

/// Why a LOINC code was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LoincError {
    #[error("a LOINC code is 1–7 digits, a hyphen and a check digit (e.g. 2345-7); got {input:?}")]
    Format { input: String },
    #[error("the LOINC check digit is {found}, expected {expected}")]
    CheckDigit { expected: u8, found: u8 },
}

impl LoincError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Format { .. } => "loinc_format",
            Self::CheckDigit { .. } => "loinc_check",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("loinc")
    }
}

impl LoincCode {
    /// Parses `NNNNN-N` (surrounding whitespace trimmed) and verifies the check digit.
    pub fn parse(input: &str) -> Result<Self, LoincError> {
        let s = input.trim();
        let format_error = || LoincError::Format {
            input: s.to_owned(),
        };
        let (body, check) = s.split_once('-').ok_or_else(format_error)?;
        let body_ok = (1..=7).contains(&body.len()) && body.bytes().all(|b| b.is_ascii_digit());
        let check_ok = check.len() == 1 && check.bytes().all(|b| b.is_ascii_digit());
        if !body_ok || !check_ok {
            return Err(format_error());
        }
        let digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
        let expected = luhn_check_digit(&digits, 0);
        let found = check.as_bytes()[0] - b'0';
        if found != expected {
            return Err(LoincError::CheckDigit { expected, found });
        }
        Ok(Self(s.to_owned()))
    }

    /// Computes the check digit for a LOINC body of 1–7 digits; `None` if `body` is not that.
    pub fn check_digit_for(body: &str) -> Option<u8> {
        if !(1..=7).contains(&body.len()) || !body.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
        Some(luhn_check_digit(&digits, 0))
    }

    /// Canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LoincCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// ICD-10-CM

/// An ICD-10-CM diagnosis code, upper case, with the dot after the third character.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Icd10Cm(String);

/// Why an ICD-10-CM code was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Icd10Error {
    #[error(
        "an ICD-10-CM code is a letter, a digit, a letter or digit, then optionally '.' and 1–4 letters or digits; got {input:?}"
    )]
    Format { input: String },
}

impl Icd10Error {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        "icd10_format"
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("icd10")
    }
}

impl Icd10Cm {
    /// Parses `A00`, `A00.0`..`A00.0000`, or the same without the dot; normalises.
    pub fn parse(input: &str) -> Result<Self, Icd10Error> {
        let s = input.trim();
        let err = || Icd10Error::Format {
            input: s.to_owned(),
        };
        if !s.is_ascii() || s.len() < 3 {
            return Err(err());
        }
        let (category, rest) = s.split_at(3);
        let c = category.as_bytes();
        if !(c[0].is_ascii_alphabetic() && c[1].is_ascii_digit() && c[2].is_ascii_alphanumeric()) {
            return Err(err());
        }
        let rest = match rest.strip_prefix('.') {
            Some("") => return Err(err()),
            Some(after_dot) => after_dot,
            None => rest,
        };
        if rest.len() > 4 || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(err());
        }
        let mut out = category.to_ascii_uppercase();
        if !rest.is_empty() {
            out.push('.');
            out.push_str(&rest.to_ascii_uppercase());
        }
        Ok(Self(out))
    }

    /// Canonical text, e.g. `E11.9`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Icd10Cm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Accession number

/// ISO/IEC 7064 MOD 37-2 alphabet: value = index.
const MOD37_ALPHABET: &[u8; 37] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*";

fn mod37_value(c: u8) -> Option<u32> {
    MOD37_ALPHABET
        .iter()
        .position(|&a| a == c)
        .and_then(|p| u32::try_from(p).ok())
}

/// ISO/IEC 7064 MOD 37-2 check character for `payload` (characters from the MOD 37 alphabet).
/// Returns `None` if a character is outside the alphabet.
pub fn mod37_2_check_char(payload: &str) -> Option<char> {
    let mut p: u32 = 0;
    for b in payload.bytes() {
        p = ((p + mod37_value(b)?) * 2) % 37;
    }
    let check = (38 - p) % 37;
    MOD37_ALPHABET
        .get(usize::try_from(check).ok()?)
        .map(|&b| char::from(b))
}

/// Accession prefix: 1–3 letters A–Z (e.g. `C` core lab, `M` micro, `BB` blood bank).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessionPrefix(String);

impl AccessionPrefix {
    /// Parses 1–3 ASCII letters (upper-cased).
    pub fn parse(input: &str) -> Result<Self, AccessionError> {
        if !(1..=3).contains(&input.len()) || !input.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(AccessionError::Prefix {
                input: input.to_owned(),
            });
        }
        Ok(Self(input.to_ascii_uppercase()))
    }

    /// The prefix letters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A lab accession number (see the module doc for the format), optionally an aliquot child.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessionNumber {
    text: String,
    /// Length of the parent part (prefix..check) within `text`.
    parent_len: usize,
    prefix_len: usize,
    aliquot: Option<u8>,
}

/// Why an accession number was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AccessionError {
    #[error("the accession number is empty")]
    Empty,
    #[error(
        "the accession number contains the control character {name} at position {position} (a scanner suffix such as CR/LF?)"
    )]
    ControlChar { name: String, position: usize },
    #[error("the accession number has leading or trailing whitespace")]
    Whitespace,
    #[error(
        "the accession number {input:?} is not <1–3 letters><2-digit year><7–10 digit sequence><check>[-NN]"
    )]
    Format { input: String },
    #[error(
        "the accession number check character is {found:?}, expected {expected:?} (mistyped or misread)"
    )]
    Check { expected: char, found: char },
    #[error("an accession prefix is 1–3 letters A–Z; got {input:?}")]
    Prefix { input: String },
    #[error("an aliquot index is 1..=99; got {index}")]
    AliquotIndex { index: u32 },
    #[error("{accession} is already an aliquot; aliquots are made from the parent accession")]
    AlreadyChild { accession: String },
}

impl AccessionError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "accession_empty",
            Self::ControlChar { .. } => "accession_control_char",
            Self::Whitespace => "accession_whitespace",
            Self::Format { .. } => "accession_format",
            Self::Check { .. } => "accession_check",
            Self::Prefix { .. } => "accession_prefix",
            Self::AliquotIndex { .. } => "accession_aliquot_index",
            Self::AlreadyChild { .. } => "accession_already_child",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("accession")
    }
}

fn control_char_name(c: char) -> String {
    let label = match c {
        '\r' => " (carriage return)",
        '\n' => " (line feed)",
        '\t' => " (tab)",
        '\0' => " (NUL)",
        _ => "",
    };
    format!("U+{:04X}{label}", u32::from(c))
}

impl AccessionNumber {
    /// Minimum zero-padded width of the sequence.
    pub const MIN_SEQ_DIGITS: usize = 7;
    /// Maximum width of the sequence (a `u32` has at most 10 digits).
    pub const MAX_SEQ_DIGITS: usize = 10;
    /// Highest aliquot index (two-digit suffix).
    pub const MAX_ALIQUOT: u8 = 99;

    /// Generates the accession for `prefix`, calendar `year` (only the last two digits are
    /// encoded) and sequence number `seq` (zero padded to at least 7 digits).
    pub fn generate(prefix: &AccessionPrefix, year: i16, seq: u32) -> Self {
        let yy = year.rem_euclid(100);
        let payload = format!(
            "{}{yy:02}{seq:0width$}",
            prefix.as_str(),
            width = Self::MIN_SEQ_DIGITS
        );
        // The payload only holds A–Z and 0–9, all inside the MOD 37 alphabet.
        let check = mod37_2_check_char(&payload).unwrap_or('*');
        let text = format!("{payload}{check}");
        Self {
            parent_len: text.len(),
            prefix_len: prefix.as_str().len(),
            text,
            aliquot: None,
        }
    }

    /// Parses a scanned or typed accession number (parent or aliquot child).
    pub fn parse(input: &str) -> Result<Self, AccessionError> {
        if input.is_empty() {
            return Err(AccessionError::Empty);
        }
        if let Some((position, c)) = input.chars().enumerate().find(|(_, c)| c.is_control()) {
            return Err(AccessionError::ControlChar {
                name: control_char_name(c),
                position,
            });
        }
        if input.trim() != input {
            return Err(AccessionError::Whitespace);
        }
        let format_error = || AccessionError::Format {
            input: input.to_owned(),
        };
        if !input.is_ascii() {
            return Err(format_error());
        }
        let upper = input.to_ascii_uppercase();
        let (parent, aliquot) = match upper.split_once('-') {
            None => (upper.as_str(), None),
            Some((parent, suffix)) => {
                if suffix.len() != 2 || !suffix.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format_error());
                }
                let index: u8 = suffix.parse().map_err(|_| format_error())?;
                if index == 0 {
                    return Err(AccessionError::AliquotIndex { index: 0 });
                }
                (parent, Some(index))
            }
        };
        let bytes = parent.as_bytes();
        let prefix_len = bytes.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        let Some((&check, body)) = bytes.split_last() else {
            return Err(format_error());
        };
        let digits = body.get(prefix_len..).unwrap_or_default();
        let digits_ok = (2 + Self::MIN_SEQ_DIGITS..=2 + Self::MAX_SEQ_DIGITS)
            .contains(&digits.len())
            && digits.iter().all(u8::is_ascii_digit);
        if !(1..=3).contains(&prefix_len) || !digits_ok || mod37_value(check).is_none() {
            return Err(format_error());
        }
        let seq_text = &parent[prefix_len + 2..parent.len() - 1];
        if seq_text.parse::<u32>().is_err() {
            return Err(format_error());
        }
        let expected = mod37_2_check_char(&parent[..parent.len() - 1]).ok_or_else(format_error)?;
        let found = char::from(check);
        if expected != found {
            return Err(AccessionError::Check { expected, found });
        }
        Ok(Self {
            parent_len: parent.len(),
            prefix_len,
            text: upper,
            aliquot,
        })
    }

    /// The aliquot child number `n` (1..=99) of this (parent) accession, e.g. `…-01`.
    pub fn child(&self, n: u8) -> Result<Self, AccessionError> {
        if self.aliquot.is_some() {
            return Err(AccessionError::AlreadyChild {
                accession: self.text.clone(),
            });
        }
        if n == 0 || n > Self::MAX_ALIQUOT {
            return Err(AccessionError::AliquotIndex {
                index: u32::from(n),
            });
        }
        Ok(Self {
            text: format!("{}-{n:02}", self.text),
            parent_len: self.parent_len,
            prefix_len: self.prefix_len,
            aliquot: Some(n),
        })
    }

    /// The parent accession of a child; `None` for a parent.
    pub fn parent(&self) -> Option<Self> {
        self.aliquot.map(|_| Self {
            text: self.text[..self.parent_len].to_owned(),
            parent_len: self.parent_len,
            prefix_len: self.prefix_len,
            aliquot: None,
        })
    }

    /// The aliquot index of a child (1..=99); `None` for a parent.
    pub fn aliquot_index(&self) -> Option<u8> {
        self.aliquot
    }

    /// The prefix letters.
    pub fn prefix(&self) -> &str {
        &self.text[..self.prefix_len]
    }

    /// The two-digit year.
    pub fn year_two_digits(&self) -> u8 {
        self.text[self.prefix_len..self.prefix_len + 2]
            .parse()
            .unwrap_or_default()
    }

    /// The sequence number.
    pub fn sequence(&self) -> u32 {
        self.text[self.prefix_len + 2..self.parent_len - 1]
            .parse()
            .unwrap_or_default()
    }

    /// Canonical text (what the barcode encodes).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for AccessionNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl_domain_error!(MrnError, NpiError, LoincError, Icd10Error, AccessionError);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mrn_trims_and_uppercases() {
        assert_eq!(Mrn::parse("  ab-123 ").unwrap().as_str(), "AB-123");
    }

    #[test]
    fn mrn_rejects_bad_input() {
        assert_eq!(Mrn::parse("   ").unwrap_err().code(), "mrn_empty");
        assert_eq!(Mrn::parse("A B").unwrap_err().code(), "mrn_invalid_char");
        assert_eq!(Mrn::parse("A\r1").unwrap_err().code(), "mrn_invalid_char");
        assert_eq!(
            Mrn::parse(&"1".repeat(21)).unwrap_err().code(),
            "mrn_too_long"
        );
        assert!(Mrn::parse(&"1".repeat(20)).is_ok());
    }

    #[test]
    fn npi_cms_example() {
        assert_eq!(Npi::parse("1234567893").unwrap().as_str(), "1234567893");
        assert_eq!(
            Npi::parse("1234567890").unwrap_err(),
            NpiError::CheckDigit {
                expected: 3,
                found: 0
            }
        );
        assert_eq!(Npi::parse("123456789").unwrap_err().code(), "npi_length");
        assert_eq!(
            Npi::parse("12345678a3").unwrap_err().code(),
            "npi_not_digit"
        );
    }

    #[test]
    fn loinc_known_codes() {
        for code in [
            "2345-7", "2823-3", "718-7", "6690-2", "4548-4", "3016-3", "5902-2", "6301-6",
        ] {
            assert!(LoincCode::parse(code).is_ok(), "{code}");
        }
        assert_eq!(
            LoincCode::parse("2345-8").unwrap_err(),
            LoincError::CheckDigit {
                expected: 7,
                found: 8
            }
        );
        for bad in ["2345", "-7", "12345678-1", "2345-77", "23a5-7", ""] {
            assert_eq!(LoincCode::parse(bad).unwrap_err().code(), "loinc_format");
        }
        assert_eq!(LoincCode::check_digit_for("718"), Some(7));
    }

    #[test]
    fn icd10_normalises() {
        assert_eq!(Icd10Cm::parse("e11.9").unwrap().as_str(), "E11.9");
        assert_eq!(Icd10Cm::parse("E119").unwrap().as_str(), "E11.9");
        assert_eq!(Icd10Cm::parse("I10").unwrap().as_str(), "I10");
        assert_eq!(Icd10Cm::parse("S72.001A").unwrap().as_str(), "S72.001A");
        for bad in [
            "E1",
            "11.9",
            "EE1.9",
            "E11.",
            "E11.12345",
            "E1.19",
            "E11-9",
            "É11",
        ] {
            assert!(Icd10Cm::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mod37_2_reference_value() {
        // ISO/IEC 7064 worked example: "G123489654321" → check character "Y".
        assert_eq!(mod37_2_check_char("G123489654321"), Some('Y'));
    }

    #[test]
    fn accession_generate_and_parse() {
        let prefix = AccessionPrefix::parse("c").unwrap();
        let acc = AccessionNumber::generate(&prefix, 2026, 1234);
        assert_eq!(&acc.as_str()[..10], "C260001234");
        assert_eq!(acc.as_str().len(), 11);
        let parsed = AccessionNumber::parse(acc.as_str()).unwrap();
        assert_eq!(parsed, acc);
        assert_eq!(parsed.prefix(), "C");
        assert_eq!(parsed.year_two_digits(), 26);
        assert_eq!(parsed.sequence(), 1234);
        assert_eq!(parsed.aliquot_index(), None);
        assert_eq!(parsed.parent(), None);
    }

    #[test]
    fn accession_scanner_artifacts_are_named() {
        let acc = AccessionNumber::generate(&AccessionPrefix::parse("M").unwrap(), 2026, 7);
        let with_cr = format!("{acc}\r");
        let err = AccessionNumber::parse(&with_cr).unwrap_err();
        assert_eq!(err.code(), "accession_control_char");
        assert!(err.to_string().contains("carriage return"));
        assert_eq!(
            AccessionNumber::parse(&format!(" {acc}"))
                .unwrap_err()
                .code(),
            "accession_whitespace"
        );
        assert_eq!(
            AccessionNumber::parse("").unwrap_err().code(),
            "accession_empty"
        );
        for bad in [
            "C26001234X",
            "1260001234X",
            "CCCC260001234X",
            "C26000123456789X",
        ] {
            assert_eq!(
                AccessionNumber::parse(bad).unwrap_err().code(),
                "accession_format",
                "{bad}"
            );
        }
    }

    #[test]
    fn accession_children() {
        let acc = AccessionNumber::generate(&AccessionPrefix::parse("BB").unwrap(), 2025, 42);
        let child = acc.child(1).unwrap();
        assert!(child.as_str().ends_with("-01"));
        let parsed = AccessionNumber::parse(&child.as_str().to_lowercase()).unwrap();
        assert_eq!(parsed.aliquot_index(), Some(1));
        assert_eq!(parsed.parent(), Some(acc.clone()));
        assert_eq!(acc.child(0).unwrap_err().code(), "accession_aliquot_index");
        assert_eq!(
            acc.child(100).unwrap_err().code(),
            "accession_aliquot_index"
        );
        assert_eq!(
            child.child(2).unwrap_err().code(),
            "accession_already_child"
        );
        assert_eq!(
            AccessionNumber::parse(&format!("{acc}-00"))
                .unwrap_err()
                .code(),
            "accession_aliquot_index"
        );
        assert_eq!(
            AccessionNumber::parse(&format!("{acc}-1"))
                .unwrap_err()
                .code(),
            "accession_format"
        );
    }

    fn accession_strategy() -> impl Strategy<Value = AccessionNumber> {
        ("[A-Z]{1,3}", 0i16..3000, any::<u32>()).prop_map(|(p, y, s)| {
            AccessionNumber::generate(&AccessionPrefix::parse(&p).unwrap(), y, s)
        })
    }

    proptest! {
        #[test]
        fn accession_roundtrips(acc in accession_strategy(), n in 1u8..=99) {
            prop_assert_eq!(AccessionNumber::parse(acc.as_str()).unwrap(), acc.clone());
            let child = acc.child(n).unwrap();
            // Code 128 set B: printable ASCII only.
            prop_assert!(child.as_str().bytes().all(|b| (0x21..=0x7E).contains(&b)));
            let parsed = AccessionNumber::parse(child.as_str()).unwrap();
            prop_assert_eq!(parsed.parent(), Some(acc));
            prop_assert_eq!(parsed.aliquot_index(), Some(n));
        }

        #[test]
        fn accession_detects_every_single_substitution(
            acc in accession_strategy(),
            pos in any::<prop::sample::Index>(),
            replacement in any::<prop::sample::Index>(),
        ) {
            let mut bytes = acc.as_str().as_bytes().to_vec();
            let i = pos.index(bytes.len());
            let new = MOD37_ALPHABET[replacement.index(MOD37_ALPHABET.len())];
            prop_assume!(new != bytes[i]);
            bytes[i] = new;
            let mutated = String::from_utf8(bytes).unwrap();
            prop_assert!(AccessionNumber::parse(&mutated).is_err(), "{} accepted", mutated);
        }

        #[test]
        fn accession_detects_every_adjacent_transposition(
            acc in accession_strategy(),
            pos in any::<prop::sample::Index>(),
        ) {
            let mut bytes = acc.as_str().as_bytes().to_vec();
            let i = pos.index(bytes.len() - 1);
            prop_assume!(bytes[i] != bytes[i + 1]);
            bytes.swap(i, i + 1);
            let mutated = String::from_utf8(bytes).unwrap();
            prop_assert!(AccessionNumber::parse(&mutated).is_err(), "{} accepted", mutated);
        }

        #[test]
        fn npi_generated_check_digit_is_accepted(body in "[0-9]{9}") {
            let digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
            let check = luhn_check_digit(&digits, NPI_PREFIX_SUM);
            let npi = format!("{body}{check}");
            prop_assert!(Npi::parse(&npi).is_ok());
            let wrong = format!("{body}{}", (check + 1) % 10);
            prop_assert_eq!(Npi::parse(&wrong).unwrap_err().code(), "npi_check");
        }

        #[test]
        fn loinc_single_digit_errors_detected(body in "[1-9][0-9]{0,6}", pos in any::<prop::sample::Index>(), d in 0u8..10) {
            let check = LoincCode::check_digit_for(&body).unwrap();
            let good = format!("{body}-{check}");
            prop_assert!(LoincCode::parse(&good).is_ok());
            let mut bytes = good.into_bytes();
            let i = pos.index(bytes.len());
            prop_assume!(bytes[i] != b'-' && bytes[i] != b'0' + d);
            bytes[i] = b'0' + d;
            prop_assert!(LoincCode::parse(&String::from_utf8(bytes).unwrap()).is_err());
        }

        #[test]
        fn icd10_normalisation_is_idempotent(code in "[A-Za-z][0-9][A-Za-z0-9](\\.?[A-Za-z0-9]{1,4})?") {
            let parsed = Icd10Cm::parse(&code).unwrap();
            prop_assert_eq!(Icd10Cm::parse(parsed.as_str()).unwrap(), parsed.clone());
            let text = parsed.as_str();
            prop_assert!(text.len() == 3 || text.as_bytes()[3] == b'.');
            prop_assert_eq!(text.to_ascii_uppercase(), text);
        }

        #[test]
        fn mrn_parse_is_idempotent(s in "[ ]{0,2}[A-Za-z0-9-]{1,20}[ ]{0,2}") {
            let mrn = Mrn::parse(&s).unwrap();
            prop_assert_eq!(Mrn::parse(mrn.as_str()).unwrap(), mrn);
        }
    }
}
