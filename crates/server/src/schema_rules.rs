//! The server's input rules, stated in the OpenAPI document (issue 16, "The API contract":
//! schemas as strict as the server). Each rule is built from the domain's own source of
//! truth — an enum's `ALL` and `as_str`, a length or width constant the parser checks — so
//! the document and the server cannot drift apart; the tests below run every documented value
//! and a case table of inputs through both the stated rule and the domain's parser.
//!
//! A rule is never stricter than the server: a value the server accepts always matches its
//! schema (schemathesis' `negative_data_rejection` check sends values that do not, and fails
//! if one is accepted). Where the server trims surrounding whitespace before parsing, the
//! pattern allows it (`\s*` at the ends); where a check the schema cannot state follows (an
//! accession's check character, a date in the future), the pattern gives the shape only.
//! A closed vocabulary matched exactly is an `enum`; one matched after trimming is a pattern
//! that lists the same codes.

use aliquot_domain::auth::Role;
use aliquot_domain::catalog::{Department, Priority, SpecimenType, Temperature};
use aliquot_domain::ids::{AccessionNumber, Mrn};
use aliquot_domain::patient::{AdministrativeSex, ClinicalSex};
use aliquot_domain::sendout::ShipmentStatus;
use aliquot_domain::specimen::RejectionReason;
use serde_json::Value;
use utoipa::openapi::path::{ParameterIn, PathItem};
use utoipa::openapi::schema::{Object, Schema, SchemaType, Type};
use utoipa::openapi::{OpenApi, RefOr};

/// What the server requires of a value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rule {
    /// Exactly one of these codes.
    pub one_of: Option<Vec<&'static str>>,
    /// ECMA-262 pattern (anchored where it states the whole value).
    pub pattern: Option<String>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub minimum: Option<i64>,
    pub maximum: Option<i64>,
}

/// Where a rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A property of a component schema (a request body).
    Property(&'static str, &'static str),
    /// Every parameter of this name and place.
    Parameter(&'static str, Place),
    /// The query parameter of this name of the operations on one path.
    Query(&'static str, &'static str),
}

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Path,
    Query,
}

impl Place {
    fn is(self, p: &ParameterIn) -> bool {
        matches!(
            (self, p),
            (Place::Path, ParameterIn::Path) | (Place::Query, ParameterIn::Query)
        )
    }
}

/// The codes of a closed vocabulary, matched exactly.
fn exact(codes: Vec<&'static str>) -> Rule {
    Rule {
        one_of: Some(codes),
        ..Rule::default()
    }
}

/// The codes of a closed vocabulary, matched after trimming; `blank_ok` when an empty or
/// blank value means "not given".
fn trimmed(codes: &[&'static str], blank_ok: bool) -> Rule {
    let alternatives = codes
        .iter()
        .map(|c| regex_escape(c))
        .collect::<Vec<_>>()
        .join("|");
    let optional = if blank_ok { "?" } else { "" };
    Rule {
        pattern: Some(format!(r"^\s*({alternatives}){optional}\s*$")),
        ..Rule::default()
    }
}

fn pattern(p: String) -> Rule {
    Rule {
        pattern: Some(p),
        ..Rule::default()
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\^$.|?*+()[]{}-/".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

/// A test code (`aliquot_domain::order::TestCode`): 1 to 20 of A–Z, a–z, 0–9, `.`, `_`, `-`;
/// the server trims it first.
pub fn test_code_pattern() -> String {
    format!(
        r"^\s*[A-Za-z0-9._\-]{{1,{}}}\s*$",
        aliquot_domain::order::TestCode::MAX_LEN
    )
}

/// An accession number's shape (`AccessionNumber::parse`): 1–3 letters, two year digits,
/// the sequence's digits, a MOD 37-2 check character, and an optional two-digit aliquot
/// suffix; the check character itself is verified by the server (422 when wrong).
pub fn accession_pattern() -> String {
    format!(
        r"^\s*[A-Za-z]{{1,3}}[0-9]{{{},{}}}[0-9A-Za-z*](-[0-9]{{2}})?\s*$",
        2 + AccessionNumber::MIN_SEQ_DIGITS,
        2 + AccessionNumber::MAX_SEQ_DIGITS
    )
}

/// A medical record number (`Mrn::parse`): trimmed, 1 to `Mrn::MAX_LEN` of A–Z, a–z, 0–9, `-`.
pub fn mrn_pattern() -> String {
    format!(r"^\s*[A-Za-z0-9\-]{{1,{}}}\s*$", Mrn::MAX_LEN)
}

/// A login name (`Username::parse`): trimmed, 3 to 64 of A–Z, a–z, 0–9, `.`, `_`, `-`.
pub fn username_pattern() -> String {
    format!(
        r"^\s*[A-Za-z0-9._\-]{{{},{}}}\s*$",
        aliquot_domain::auth::Username::MIN_LEN,
        aliquot_domain::auth::Username::MAX_LEN
    )
}

/// A birth date's shape `YYYY-MM-DD` (trimmed), years from `BirthDate::EARLIEST` (1880; a
/// test holds the two together) to 2099, months 01–12, days 01–31; the date itself (30 February,
/// a date in the future) is checked by the server.
pub const DATE_SHAPE: &str =
    r"^\s*(18[89][0-9]|19[0-9]{2}|20[0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])\s*$";

/// A local time of birth `HH:MM` (`BirthTime::parse`), or blank for "not recorded".
pub const BIRTH_TIME: &str = r"^\s*(([01][0-9]|2[0-3]):[0-5][0-9])?\s*$";

/// Any letter of `code` in either case (the app lower-cases before comparing).
fn either_case(code: &str) -> String {
    code.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
            } else {
                regex_escape(&c.to_string())
            }
        })
        .collect()
}

/// A location's kind (`create_location`): trimmed, any case, one of `LOCATION_KINDS`.
pub fn location_kind_pattern() -> String {
    let alternatives = aliquot_app::LOCATION_KINDS
        .iter()
        .map(|k| either_case(k))
        .collect::<Vec<_>>()
        .join("|");
    format!(r"^\s*({alternatives})\s*$")
}

/// An NPI's shape (`Npi::parse`): trimmed, ten digits; the Luhn check digit is the server's.
pub fn npi_pattern() -> String {
    format!(r"^\s*[0-9]{{{}}}\s*$", aliquot_domain::ids::Npi::DIGITS)
}

/// A new password (`PasswordPolicy::check`): 12 to 256 characters, untrimmed; the deny list
/// and the distinct-character rule are the server's.
fn password() -> Rule {
    use aliquot_domain::auth::PasswordPolicy;
    Rule {
        min_length: Some(PasswordPolicy::MIN_LEN),
        max_length: Some(PasswordPolicy::MAX_LEN),
        ..Rule::default()
    }
}

/// Text that is not blank (the server trims and requires something left).
pub const NOT_BLANK: &str = r"\S";

fn codes<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|v| as_str(*v)).collect()
}

/// Every rule the document states, with where it applies.
pub fn rules() -> Vec<(Target, Rule)> {
    use Target::{Parameter, Property};
    let sex = codes(&AdministrativeSex::ALL, AdministrativeSex::as_str);
    let clinical_sex = codes(&ClinicalSex::ALL, ClinicalSex::as_str);
    let priority = codes(Priority::ALL, Priority::as_str);
    let roles = codes(&Role::ALL, Role::as_str);
    let departments = codes(Department::ALL, Department::as_str);
    let specimen_types = codes(SpecimenType::ALL, SpecimenType::as_str);
    let rejection = codes(RejectionReason::ALL, RejectionReason::as_str);
    let temperatures = codes(Temperature::ALL, Temperature::as_str);
    let shipment_status = codes(ShipmentStatus::ALL, ShipmentStatus::as_str);
    let reason = Rule {
        min_length: Some(aliquot_app::REASON_MIN_CHARS),
        pattern: Some(NOT_BLANK.to_owned()),
        ..Rule::default()
    };
    let mut rules = vec![
        // Patients.
        (Property("RegisterPatient", "mrn"), pattern(mrn_pattern())),
        (Property("RegisterPatient", "sex"), exact(sex.clone())),
        (Property("CorrectPatient", "sex"), exact(sex)),
        (
            Property("RegisterPatient", "clinical_sex"),
            trimmed(&clinical_sex, true),
        ),
        (
            Property("CorrectPatient", "clinical_sex"),
            trimmed(&clinical_sex, true),
        ),
        (
            Property("RegisterPatient", "birth_date"),
            pattern(DATE_SHAPE.to_owned()),
        ),
        (
            Property("CorrectPatient", "birth_date"),
            pattern(DATE_SHAPE.to_owned()),
        ),
        (
            Property("RegisterPatient", "birth_time"),
            pattern(BIRTH_TIME.to_owned()),
        ),
        (
            Property("CorrectPatient", "birth_time"),
            pattern(BIRTH_TIME.to_owned()),
        ),
        // Orders.
        (Property("NewOrder", "priority"), trimmed(&priority, false)),
        (Property("AddTest", "test"), pattern(test_code_pattern())),
        (Property("CancelTest", "test"), pattern(test_code_pattern())),
        (
            Property("NotPerformed", "test"),
            pattern(test_code_pattern()),
        ),
        // Specimens.
        (Property("Reject", "reason"), trimmed(&rejection, false)),
        (
            Property("Collect", "temperature"),
            trimmed(&temperatures, false),
        ),
        (
            Property("Receive", "temperature"),
            trimmed(&temperatures, false),
        ),
        // Not `POST /results`' items: a batch answers 200 with each item's outcome, an item
        // refused for its accession or test among them.
        // Users and grants.
        (
            Property("CreateUser", "username"),
            pattern(username_pattern()),
        ),
        (Property("CreateUser", "role"), exact(roles.clone())),
        (
            Property("CreateUser", "display_name"),
            pattern(NOT_BLANK.to_owned()),
        ),
        (Property("CreateUser", "password"), password()),
        (Property("PasswordChange", "new_password"), password()),
        (Property("GrantRequest", "role"), exact(roles.clone())),
        // The directory.
        (
            Property("NewLocation", "kind"),
            pattern(location_kind_pattern()),
        ),
        (Property("NewProvider", "npi"), pattern(npi_pattern())),
        (Property("RoleChange", "role"), exact(roles)),
        // Query parameters.
        (
            Parameter("test", Place::Query),
            pattern(test_code_pattern()),
        ),
        (
            Target::Query("/api/v1/sorting", "status"),
            trimmed(&aliquot_app::SORTING_STATUSES, false),
        ),
        (
            Target::Query("/api/v1/sorting", "limit"),
            Rule {
                minimum: Some(1),
                maximum: Some(aliquot_app::MAX_SORTING),
                ..Rule::default()
            },
        ),
        (
            Target::Query("/api/v1/shipments", "status"),
            trimmed(&shipment_status, false),
        ),
        // Path parameters.
        (
            Parameter("accession", Place::Path),
            pattern(accession_pattern()),
        ),
        (Parameter("test", Place::Path), pattern(test_code_pattern())),
        (Parameter("department", Place::Path), exact(departments)),
        (
            Parameter("specimen_type", Place::Path),
            exact(specimen_types),
        ),
        (
            Parameter("id", Place::Path),
            Rule {
                minimum: Some(1),
                ..Rule::default()
            },
        ),
    ];
    for schema in REASON_REQUIRED {
        rules.push((Property(schema, "reason"), reason.clone()));
    }
    rules
}

/// Request bodies whose `reason` is required, 3 to 500 characters after trimming (the app's
/// `require_reason`).
pub const REASON_REQUIRED: &[&str] = &[
    "CancelOrder",
    "CancelTest",
    "DisabledChange",
    "GrantRequest",
    "MergeRequest",
    "MfaReset",
    "RetireEntry",
    "RoleChange",
    "UpdateEntry",
];

/// States every rule in the document. A rule whose schema, property or parameter is gone is a
/// programming error (the tests fail on it): see `missing`.
pub fn apply(openapi: &mut OpenApi) {
    for (target, rule) in rules() {
        match target {
            Target::Property(schema, property) => {
                if let Some(object) = property_object(openapi, schema, property) {
                    state(object, &rule);
                }
            }
            Target::Query(path, name) => {
                if let Some(item) = openapi.paths.paths.get_mut(path) {
                    state_parameters(item, name, Place::Query, &rule);
                }
            }
            Target::Parameter(name, place) => {
                for item in openapi.paths.paths.values_mut() {
                    state_parameters(item, name, place, &rule);
                }
            }
        }
    }
}

/// States `rule` on the parameters `name` in `place` of every operation of `item`.
fn state_parameters(item: &mut PathItem, name: &str, place: Place, rule: &Rule) {
    for op in [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .flatten()
    {
        for p in op.parameters.iter_mut().flatten() {
            let RefOr::T(p) = p else { continue };
            if p.name == name
                && place.is(&p.parameter_in)
                && let Some(RefOr::T(Schema::Object(o))) = p.schema.as_mut()
            {
                state(o, rule);
            }
        }
    }
}

fn property_object<'a>(
    openapi: &'a mut OpenApi,
    schema: &str,
    property: &str,
) -> Option<&'a mut Object> {
    let components = openapi.components.as_mut()?;
    match components.schemas.get_mut(schema)? {
        RefOr::T(Schema::Object(o)) => match o.properties.get_mut(property)? {
            RefOr::T(Schema::Object(p)) => Some(p),
            _ => None,
        },
        _ => None,
    }
}

fn nullable(o: &Object) -> bool {
    matches!(&o.schema_type, SchemaType::Array(types) if types.contains(&Type::Null))
}

fn state(o: &mut Object, rule: &Rule) {
    if let Some(codes) = &rule.one_of {
        let mut values: Vec<Value> = codes.iter().map(|c| Value::from(*c)).collect();
        if nullable(o) {
            values.push(Value::Null);
        }
        o.enum_values = Some(values);
    }
    if let Some(p) = &rule.pattern {
        o.pattern = Some(p.clone());
    }
    if rule.min_length.is_some() {
        o.min_length = rule.min_length;
    }
    if rule.max_length.is_some() {
        o.max_length = rule.max_length;
    }
    if let Some(m) = rule.minimum {
        o.minimum = Some(utoipa::Number::Int(m as isize));
    }
    if let Some(m) = rule.maximum {
        o.maximum = Some(utoipa::Number::Int(m as isize));
    }
}

/// The rules whose target is not in the document (a renamed schema, property or parameter).
pub fn missing(openapi: &OpenApi) -> Vec<Target> {
    let mut doc = openapi.clone();
    rules()
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| match *t {
            Target::Property(schema, property) => {
                property_object(&mut doc, schema, property).is_none()
            }
            Target::Query(path, name) => !doc.paths.paths.get(path).is_some_and(|item| {
                [&item.get, &item.post, &item.put, &item.patch, &item.delete]
                    .into_iter()
                    .flatten()
                    .flat_map(|op| op.parameters.iter().flatten())
                    .any(|p| {
                        matches!(p, RefOr::T(p) if p.name == name
                            && Place::Query.is(&p.parameter_in)
                            && matches!(p.schema, Some(RefOr::T(Schema::Object(_)))))
                    })
            }),
            Target::Parameter(name, place) => !doc.paths.paths.values().any(|item| {
                [&item.get, &item.post, &item.put, &item.patch, &item.delete]
                    .into_iter()
                    .flatten()
                    .flat_map(|op| op.parameters.iter().flatten())
                    .any(|p| {
                        matches!(p, RefOr::T(p) if p.name == name
                            && place.is(&p.parameter_in)
                            && matches!(p.schema, Some(RefOr::T(Schema::Object(_)))))
                    })
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aliquot_domain::auth::Username;
    use aliquot_domain::order::TestCode;
    use aliquot_domain::patient::{BirthDate, BirthTime};
    use regex::Regex;

    /// The rule stated for `target` in the served document.
    fn stated(target: Target) -> Object {
        let mut doc = crate::openapi();
        match target {
            Target::Property(schema, property) => property_object(&mut doc, schema, property)
                .unwrap_or_else(|| panic!("{schema}.{property} is not in the document"))
                .clone(),
            Target::Query(path, name) => doc.paths.paths[path]
                .get
                .as_ref()
                .and_then(|op| op.parameters.as_ref())
                .into_iter()
                .flatten()
                .find_map(|p| match p {
                    RefOr::T(p) if p.name == name => match &p.schema {
                        Some(RefOr::T(Schema::Object(o))) => Some(o.clone()),
                        _ => None,
                    },
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no parameter {name} on {path}")),
            Target::Parameter(name, place) => doc
                .paths
                .paths
                .values()
                .flat_map(|i| [&i.get, &i.post, &i.put, &i.patch, &i.delete])
                .flatten()
                .flat_map(|op| op.parameters.iter().flatten())
                .filter_map(|p| match p {
                    RefOr::T(p) => Some(p),
                    RefOr::Ref(_) => None,
                })
                .find(|p| p.name == name && place.is(&p.parameter_in))
                .and_then(|p| match &p.schema {
                    Some(RefOr::T(Schema::Object(o))) => Some(o.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no parameter {name}")),
        }
    }

    fn documented_enum(target: Target) -> Vec<String> {
        stated(target)
            .enum_values
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    /// Rust's `\s` is Unicode White_Space, what `str::trim` removes: the patterns are checked
    /// with the server's own notion of surrounding whitespace.
    fn matches(pattern: &str, input: &str) -> bool {
        Regex::new(pattern).unwrap().is_match(input)
    }

    #[test]
    fn every_rule_names_something_in_the_document() {
        assert_eq!(missing(&crate::openapi()), Vec::<Target>::new());
    }

    #[test]
    fn documented_enums_are_exactly_what_the_parsers_accept() {
        // (where, the parser, values outside the vocabulary)
        type Case = (Target, fn(&str) -> bool, &'static [&'static str]);
        let cases: Vec<Case> = vec![
            (
                Target::Property("RegisterPatient", "sex"),
                |s| AdministrativeSex::parse(s).is_ok(),
                &["f", "X", "", "female"],
            ),
            (
                Target::Property("CorrectPatient", "sex"),
                |s| AdministrativeSex::parse(s).is_ok(),
                &["m", "Z"],
            ),
            (
                Target::Property("CreateUser", "role"),
                |s| Role::parse(s).is_ok(),
                &["Admin", "root", ""],
            ),
            (
                Target::Property("GrantRequest", "role"),
                |s| Role::parse(s).is_ok(),
                &["DIRECTOR", "superuser"],
            ),
            (
                Target::Property("RoleChange", "role"),
                |s| Role::parse(s).is_ok(),
                &["nobody"],
            ),
            (
                Target::Parameter("department", Place::Path),
                |s| Department::parse(s).is_ok(),
                &["CHEMISTRY", "kitchen"],
            ),
            (
                Target::Parameter("specimen_type", Place::Path),
                |s| SpecimenType::parse(s).is_ok(),
                &["Serum", "soup"],
            ),
        ];
        for (target, accepts, refused) in cases {
            let documented = documented_enum(target);
            assert!(!documented.is_empty(), "{target:?} documents no enum");
            for v in &documented {
                assert!(accepts(v), "{target:?}: documented {v:?} is refused");
            }
            for v in refused {
                assert!(!documented.iter().any(|d| d == v), "{target:?}: {v:?}");
                assert!(!accepts(v), "{target:?}: undocumented {v:?} is accepted");
            }
        }
    }

    #[test]
    fn trimmed_vocabularies_list_every_code_the_parser_accepts() {
        // (target, every code, whether blank is "not given", the parser after trimming)
        type Case = (Target, Vec<&'static str>, bool, fn(&str) -> bool);
        let cases: Vec<Case> = vec![
            (
                Target::Property("NewOrder", "priority"),
                codes(Priority::ALL, Priority::as_str),
                false,
                |s| Priority::parse(s).is_ok(),
            ),
            (
                Target::Property("Reject", "reason"),
                codes(RejectionReason::ALL, RejectionReason::as_str),
                false,
                |s| RejectionReason::parse(s).is_ok(),
            ),
            (
                Target::Property("Receive", "temperature"),
                codes(Temperature::ALL, Temperature::as_str),
                false,
                |s| Temperature::parse(s).is_ok(),
            ),
            (
                Target::Query("/api/v1/shipments", "status"),
                codes(ShipmentStatus::ALL, ShipmentStatus::as_str),
                false,
                |s| ShipmentStatus::parse(s).is_ok(),
            ),
            (
                Target::Property("RegisterPatient", "clinical_sex"),
                codes(&ClinicalSex::ALL, ClinicalSex::as_str),
                true,
                |s| ClinicalSex::parse(s).is_ok(),
            ),
        ];
        for (target, all, blank_ok, accepts) in cases {
            let p = stated(target).pattern.expect("a pattern");
            for code in &all {
                assert!(accepts(code));
                for input in [
                    code.to_string(),
                    format!("  {code}\t"),
                    format!("\u{85}{code}"),
                ] {
                    assert!(matches(&p, &input), "{target:?}: {input:?} against {p}");
                }
                for input in [code.to_uppercase(), format!("{code}x"), format!("x{code}")] {
                    assert_eq!(
                        matches(&p, &input),
                        accepts(input.trim()),
                        "{target:?}: {input:?} against {p}"
                    );
                }
            }
            assert_eq!(matches(&p, ""), blank_ok, "{target:?}: blank");
            assert_eq!(matches(&p, "  "), blank_ok, "{target:?}: spaces");
            assert!(!matches(&p, "unheard_of"), "{target:?}");
        }
    }

    /// Case tables: the pattern never refuses what the server accepts, and refuses what it
    /// refuses for its shape.
    #[test]
    fn patterns_agree_with_the_parsers() {
        type Case = (String, fn(&str) -> bool, Vec<(&'static str, bool)>);
        let cases: Vec<Case> = vec![
            (
                test_code_pattern(),
                |s| TestCode::parse(s.trim()).is_ok(),
                vec![
                    ("GLU", true),
                    ("glu", true),
                    (" K.2_a-b ", true),
                    ("ABCDEFGHIJKLMNOPQRST", true),
                    ("ABCDEFGHIJKLMNOPQRSTU", false),
                    ("", false),
                    ("GL U", false),
                    ("GLÜ", false),
                    ("G/U", false),
                ],
            ),
            (
                accession_pattern(),
                |s| AccessionNumber::parse(s.trim()).is_ok(),
                vec![
                    ("C260000001", false), // shape only: a check character is missing
                    ("", false),
                    ("C2600000017-", false),
                    ("ABCD260000001X", false),
                    ("C26000001X", false),
                ],
            ),
            (
                mrn_pattern(),
                |s| Mrn::parse(s).is_ok(),
                vec![
                    ("MRN-001", true),
                    (" mrn001 ", true),
                    ("12345678901234567890", true),
                    ("123456789012345678901", false),
                    ("", false),
                    ("MRN 1", false),
                    ("MRN_1", false),
                ],
            ),
            (
                username_pattern(),
                |s| Username::parse(s).is_ok(),
                vec![
                    ("tech", true),
                    (" Dr.Who_1-2 ", true),
                    ("ab", false),
                    ("a b c", false),
                    ("ünï", false),
                ],
            ),
            (
                location_kind_pattern(),
                |s| aliquot_app::LOCATION_KINDS.contains(&s.trim().to_ascii_lowercase().as_str()),
                vec![
                    ("ward", true),
                    (" Clinic ", true),
                    ("EMERGENCY", true),
                    ("wards", false),
                    ("", false),
                    ("lab", false),
                ],
            ),
            (
                npi_pattern(),
                |s| aliquot_domain::ids::Npi::parse(s).is_ok(),
                vec![
                    ("1234567893", true),
                    (" 1234567893 ", true),
                    ("123456789", false),
                    ("12345678901", false),
                    ("12345-6789", false),
                ],
            ),
            (
                BIRTH_TIME.to_owned(),
                |s| s.trim().is_empty() || BirthTime::parse(s).is_ok(),
                vec![
                    ("00:00", true),
                    (" 23:59 ", true),
                    ("", true),
                    ("24:00", false),
                    ("12:60", false),
                    ("7:30", false),
                    ("07:30:00", false),
                ],
            ),
            (
                DATE_SHAPE.to_owned(),
                |s| BirthDate::parse(s, jiff::civil::date(2026, 6, 1)).is_ok(),
                vec![
                    ("1980-02-29", true),
                    (" 2001-12-31 ", true),
                    ("1880-01-01", true),
                    ("1879-12-31", false),
                    ("1980-2-29", false),
                    ("1980-13-01", false),
                    ("1980-00-10", false),
                    ("1980-01-32", false),
                    ("", false),
                ],
            ),
        ];
        for (pattern, accepts, table) in cases {
            for (input, accepted) in table {
                assert_eq!(
                    accepts(input),
                    accepted,
                    "{pattern}: the server on {input:?}"
                );
                if accepted {
                    assert!(matches(&pattern, input), "{pattern} refuses {input:?}");
                } else if !matches!(input, "C260000001") {
                    // Refused for its shape: the pattern says so too (the date shape and the
                    // accession's check character are the server's alone).
                    assert!(!matches(&pattern, input), "{pattern} admits {input:?}");
                }
            }
        }
        // Generated accessions, parents and aliquots, all match.
        let prefix = aliquot_domain::ids::AccessionPrefix::parse("BB").unwrap();
        for seq in [1u32, 42, 9_999_999, u32::MAX] {
            let a = AccessionNumber::generate(&prefix, 2026, seq);
            assert!(matches(&accession_pattern(), a.as_str()), "{}", a.as_str());
            let child = format!("{}-07", a.as_str());
            assert!(AccessionNumber::parse(&child).is_ok());
            assert!(matches(&accession_pattern(), &child), "{child}");
            assert!(matches(&accession_pattern(), &a.as_str().to_lowercase()));
        }
    }

    /// Every date the server accepts as a birth date (from its earliest to the end of the
    /// pattern's range) matches the pattern.
    #[test]
    fn the_birth_date_shape_starts_where_the_server_does() {
        assert_eq!(BirthDate::EARLIEST, jiff::civil::date(1880, 1, 1));
        let p = Regex::new(DATE_SHAPE).unwrap();
        let today = jiff::civil::date(2099, 12, 31);
        let mut day = BirthDate::EARLIEST;
        while day <= today {
            let text = day.to_string();
            assert!(p.is_match(&text), "{text}");
            assert!(BirthDate::parse(&text, today).is_ok(), "{text}");
            day = day.tomorrow().unwrap();
        }
    }

    #[test]
    fn new_passwords_are_documented_with_the_policys_lengths() {
        use aliquot_domain::auth::PasswordPolicy;
        for target in [
            Target::Property("CreateUser", "password"),
            Target::Property("PasswordChange", "new_password"),
        ] {
            let o = stated(target);
            let (min, max) = (o.min_length.unwrap(), o.max_length.unwrap());
            // Counted in characters (code points), as JSON Schema counts them.
            assert!(
                PasswordPolicy::check(&"ab1Xé".repeat(60).chars().take(max).collect::<String>())
                    .is_ok()
            );
            assert!(
                PasswordPolicy::check(
                    &"ab1Xé".repeat(60).chars().take(max + 1).collect::<String>()
                )
                .is_err()
            );
            assert!(
                PasswordPolicy::check(&"ab1Xé".repeat(5).chars().take(min - 1).collect::<String>())
                    .is_err()
            );
            assert!(
                PasswordPolicy::check(&"ab1Xé".repeat(5).chars().take(min).collect::<String>())
                    .is_ok()
            );
        }
    }

    #[test]
    fn a_required_reason_is_documented_with_the_apps_bounds() {
        for schema in REASON_REQUIRED {
            let o = stated(Target::Property(schema, "reason"));
            assert_eq!(
                o.min_length,
                Some(aliquot_app::REASON_MIN_CHARS),
                "{schema}"
            );
            assert_eq!(o.pattern.as_deref(), Some(NOT_BLANK), "{schema}");
        }
    }
}
