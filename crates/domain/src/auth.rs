//! Users, roles and the permission matrix.
//!
//! The matrix is a table in code ([`Role::permissions`]): every use case names the
//! [`Permission`] it needs, every HTTP route names the permission it needs, and a test walks
//! every route × every role against this one table. Roles follow DESIGN.md.
//!
//! Identity rules (HIPAA 164.312(a)(2)(i), RELIABILITY.md scenario 27): a username is unique
//! and case-insensitive, so it is normalised to ASCII lower case and anything outside
//! `[a-z0-9._-]` (including look-alike letters such as `ſ`) is refused rather than folded.

use std::fmt;

use jiff::SignedDuration;

/// A role a user holds. One role per user; permissions come only from this table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Admin,
    Director,
    Technologist,
    Technician,
    Phlebotomist,
    Physician,
    Interface,
}

/// Something a caller may be allowed to do. Routes and use cases name exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Create users, change their role, disable them.
    UserManage,
    /// List users and see who holds which role.
    UserRead,
    /// Read the audit trail and the access log.
    AuditRead,
    /// Change lab-wide settings (lab name, time zone, accession prefix).
    SettingsWrite,
    /// Read lab-wide settings.
    SettingsRead,
    /// Scrape operational metrics.
    MetricsRead,
    /// Read patient demographics.
    PatientRead,
    /// Register and correct patients.
    PatientWrite,
    /// Merge and unmerge patient records.
    PatientMerge,
    /// Read the test catalog, providers and locations.
    CatalogRead,
    /// Edit the test catalog, providers and locations.
    CatalogWrite,
    /// Read orders and their specimens.
    OrderRead,
    /// Place, amend and cancel orders.
    OrderWrite,
    /// Print labels and record collection.
    SpecimenCollect,
    /// Receive, reject, sort, process, store and dispose specimens.
    SpecimenProcess,
    /// Post results (technicians, technologists, instruments).
    ResultEnter,
    /// Verify and release held results, correct released ones, document critical calls.
    ResultVerify,
    /// Sign off results of tests that need a pathologist (the director in this model).
    ResultSignOff,
    /// Change result rules and reference intervals (the laboratory director, CLIA 493.1407).
    ResultRulesWrite,
    /// Register instruments and their test codes, read the interface message log and error
    /// queue, replay a message (the interface analyst; a message's content is shown only
    /// with `patient.read`).
    InterfaceManage,
    /// Read QC: lots, targets, runs, lock state, charts, statistics, calibrations.
    QcRead,
    /// Post QC runs and record calibrations (technicians, technologists, instruments).
    QcEnter,
    /// Register control lots and targets, choose the rules, document corrective actions
    /// (which lift a lock).
    QcManage,
}

impl Permission {
    pub const ALL: [Permission; 23] = [
        Permission::UserManage,
        Permission::UserRead,
        Permission::AuditRead,
        Permission::SettingsWrite,
        Permission::SettingsRead,
        Permission::MetricsRead,
        Permission::PatientRead,
        Permission::PatientWrite,
        Permission::PatientMerge,
        Permission::CatalogRead,
        Permission::CatalogWrite,
        Permission::OrderRead,
        Permission::OrderWrite,
        Permission::SpecimenCollect,
        Permission::SpecimenProcess,
        Permission::ResultEnter,
        Permission::ResultVerify,
        Permission::ResultSignOff,
        Permission::ResultRulesWrite,
        Permission::InterfaceManage,
        Permission::QcRead,
        Permission::QcEnter,
        Permission::QcManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::UserManage => "user.manage",
            Permission::UserRead => "user.read",
            Permission::AuditRead => "audit.read",
            Permission::SettingsWrite => "settings.write",
            Permission::SettingsRead => "settings.read",
            Permission::MetricsRead => "metrics.read",
            Permission::PatientRead => "patient.read",
            Permission::PatientWrite => "patient.write",
            Permission::PatientMerge => "patient.merge",
            Permission::CatalogRead => "catalog.read",
            Permission::CatalogWrite => "catalog.write",
            Permission::OrderRead => "order.read",
            Permission::OrderWrite => "order.write",
            Permission::SpecimenCollect => "specimen.collect",
            Permission::SpecimenProcess => "specimen.process",
            Permission::ResultEnter => "result.enter",
            Permission::ResultVerify => "result.verify",
            Permission::ResultSignOff => "result.sign_off",
            Permission::ResultRulesWrite => "result.rules_write",
            Permission::InterfaceManage => "interface.manage",
            Permission::QcRead => "qc.read",
            Permission::QcEnter => "qc.enter",
            Permission::QcManage => "qc.manage",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

use Permission as P;

const ADMIN: &[Permission] = &[
    P::UserManage,
    P::UserRead,
    P::AuditRead,
    P::SettingsWrite,
    P::SettingsRead,
    P::MetricsRead,
    P::CatalogRead,
    P::CatalogWrite,
    P::InterfaceManage,
];
const DIRECTOR: &[Permission] = &[
    P::UserRead,
    P::AuditRead,
    P::SettingsRead,
    P::PatientRead,
    P::PatientWrite,
    P::PatientMerge,
    P::CatalogRead,
    P::CatalogWrite,
    P::OrderRead,
    P::OrderWrite,
    P::SpecimenCollect,
    P::SpecimenProcess,
    P::ResultEnter,
    P::ResultVerify,
    P::ResultSignOff,
    P::ResultRulesWrite,
    P::InterfaceManage,
    P::QcRead,
    P::QcEnter,
    P::QcManage,
];
const TECHNOLOGIST: &[Permission] = &[
    P::SettingsRead,
    P::PatientRead,
    P::PatientWrite,
    P::CatalogRead,
    P::OrderRead,
    P::OrderWrite,
    P::SpecimenCollect,
    P::SpecimenProcess,
    P::ResultEnter,
    P::ResultVerify,
    P::InterfaceManage,
    P::QcRead,
    P::QcEnter,
    P::QcManage,
];
const TECHNICIAN: &[Permission] = &[
    P::SettingsRead,
    P::PatientRead,
    P::PatientWrite,
    P::CatalogRead,
    P::OrderRead,
    P::OrderWrite,
    P::SpecimenCollect,
    P::SpecimenProcess,
    P::ResultEnter,
    P::QcRead,
    P::QcEnter,
];
const PHLEBOTOMIST: &[Permission] = &[
    P::SettingsRead,
    P::PatientRead,
    P::PatientWrite,
    P::CatalogRead,
    P::OrderRead,
    P::OrderWrite,
    P::SpecimenCollect,
];
const PHYSICIAN: &[Permission] = &[P::PatientRead, P::CatalogRead, P::OrderRead];
const INTERFACE: &[Permission] = &[
    P::MetricsRead,
    P::PatientRead,
    P::PatientWrite,
    P::CatalogRead,
    P::OrderRead,
    P::OrderWrite,
    P::ResultEnter,
    P::QcEnter,
];

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::Director,
        Role::Technologist,
        Role::Technician,
        Role::Phlebotomist,
        Role::Physician,
        Role::Interface,
    ];

    /// The permission matrix: what each role may do. Admin manages the system but is
    /// deliberately not a clinical role (separation of duties): an administrator does not
    /// read or change patient data.
    pub fn permissions(self) -> &'static [Permission] {
        match self {
            Role::Admin => ADMIN,
            Role::Director => DIRECTOR,
            Role::Technologist => TECHNOLOGIST,
            Role::Technician => TECHNICIAN,
            Role::Phlebotomist => PHLEBOTOMIST,
            Role::Physician => PHYSICIAN,
            Role::Interface => INTERFACE,
        }
    }

    pub fn allows(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }

    /// Whether the role reads only its own patients (DESIGN: "physician (read-only, own
    /// patients)"): those with an order where the user's linked provider is the ordering
    /// provider. The other roles' patient reads are limited by their permissions alone.
    pub fn sees_own_patients_only(self) -> bool {
        matches!(self, Role::Physician)
    }

    /// Machine accounts (instruments, EMRs) never get interactive sessions or signatures.
    pub fn is_machine(self) -> bool {
        matches!(self, Role::Interface)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Director => "director",
            Role::Technologist => "technologist",
            Role::Technician => "technician",
            Role::Phlebotomist => "phlebotomist",
            Role::Physician => "physician",
            Role::Interface => "interface",
        }
    }

    pub fn parse(s: &str) -> Result<Role, AuthRuleError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| AuthRuleError::UnknownRole(s.chars().take(40).collect()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of the identity rules. Each has a stable machine code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthRuleError {
    #[error(
        "unknown role {0:?}; expected one of admin, director, technologist, technician, phlebotomist, physician, interface"
    )]
    UnknownRole(String),
    #[error("a username is 3 to 64 characters")]
    UsernameLength,
    #[error("a username may contain only the letters a-z, digits, '.', '_' and '-'")]
    UsernameCharacters,
    #[error("a password is at least {min} characters")]
    PasswordTooShort { min: usize },
    #[error("a password is at most {max} characters")]
    PasswordTooLong { max: usize },
    #[error("this password is too common or too simple; choose another")]
    PasswordTooWeak,
    #[error("a display name is 1 to 120 characters without control characters")]
    DisplayName,
}

impl AuthRuleError {
    pub fn code(&self) -> &'static str {
        match self {
            AuthRuleError::UnknownRole(_) => "unknown_role",
            AuthRuleError::UsernameLength => "username_length",
            AuthRuleError::UsernameCharacters => "username_characters",
            AuthRuleError::PasswordTooShort { .. } => "password_too_short",
            AuthRuleError::PasswordTooLong { .. } => "password_too_long",
            AuthRuleError::PasswordTooWeak => "password_too_weak",
            AuthRuleError::DisplayName => "display_name",
        }
    }
}

/// A unique login name, normalised to lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Username, AuthRuleError> {
        let s = raw.trim();
        if s.len() < 3 || s.len() > 64 {
            return Err(AuthRuleError::UsernameLength);
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(AuthRuleError::UsernameCharacters);
        }
        Ok(Username(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name shown on reports and in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<DisplayName, AuthRuleError> {
        let s = raw.trim();
        if s.is_empty() || s.chars().count() > 120 || s.chars().any(char::is_control) {
            return Err(AuthRuleError::DisplayName);
        }
        Ok(DisplayName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Password policy (NIST SP 800-63B style: length over composition rules, and a deny list
/// of common passwords). The clear text never leaves the use case that hashes it.
pub struct PasswordPolicy;

impl PasswordPolicy {
    pub const MIN_LEN: usize = 12;
    pub const MAX_LEN: usize = 256;

    const COMMON: &'static [&'static str] = &[
        "password1234",
        "123456789012",
        "qwertyuiopas",
        "passwordpassword",
        "letmeinletmein",
        "administrator",
        "laboratory123",
        "welcome12345",
        "changeme1234",
        "iloveyou1234",
    ];

    pub fn check(password: &str) -> Result<(), AuthRuleError> {
        let n = password.chars().count();
        if n < Self::MIN_LEN {
            return Err(AuthRuleError::PasswordTooShort { min: Self::MIN_LEN });
        }
        if n > Self::MAX_LEN {
            return Err(AuthRuleError::PasswordTooLong { max: Self::MAX_LEN });
        }
        let lower = password.to_lowercase();
        let distinct = {
            let mut cs: Vec<char> = lower.chars().collect();
            cs.sort_unstable();
            cs.dedup();
            cs.len()
        };
        if distinct < 4 || Self::COMMON.contains(&lower.as_str()) {
            return Err(AuthRuleError::PasswordTooWeak);
        }
        Ok(())
    }
}

/// Login throttling: after `max_failures` consecutive failures for one username (known or
/// not, so the answer does not reveal which usernames exist), further attempts are refused
/// for `lockout`. The counter resets on success.
#[derive(Debug, Clone, Copy)]
pub struct LoginThrottle {
    pub max_failures: u32,
    pub lockout: SignedDuration,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            max_failures: 5,
            lockout: SignedDuration::from_mins(15),
        }
    }
}

impl LoginThrottle {
    /// After `failures` consecutive failures, how long the account stays locked (if at all).
    pub fn lock_after(&self, failures: u32) -> Option<SignedDuration> {
        (failures >= self.max_failures).then_some(self.lockout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn roles_round_trip_and_unknown_is_refused() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Ok(r));
        }
        assert_eq!(Role::parse("root").unwrap_err().code(), "unknown_role");
    }

    #[test]
    fn separation_of_duties() {
        assert!(Role::Admin.allows(Permission::UserManage));
        assert!(!Role::Admin.allows(Permission::PatientRead));
        for r in Role::ALL {
            if r != Role::Admin {
                assert!(
                    !r.allows(Permission::UserManage),
                    "{r} must not manage users"
                );
            }
        }
        assert!(!Role::Physician.allows(Permission::OrderWrite));
        assert!(!Role::Phlebotomist.allows(Permission::SpecimenProcess));
        assert!(Role::Interface.is_machine());
        // Machines and technicians post results; only people who may judge them release them.
        assert!(Role::Interface.allows(Permission::ResultEnter));
        for r in [
            Role::Interface,
            Role::Technician,
            Role::Phlebotomist,
            Role::Physician,
            Role::Admin,
        ] {
            assert!(
                !r.allows(Permission::ResultVerify),
                "{r} must not release results"
            );
        }
        for r in Role::ALL {
            assert_eq!(
                r.allows(Permission::ResultRulesWrite),
                r == Role::Director,
                "{r}: only the director changes result rules"
            );
        }
    }

    #[test]
    fn every_permission_is_held_by_someone() {
        for p in Permission::ALL {
            assert!(
                Role::ALL.iter().any(|r| r.allows(p)),
                "{p} is held by no role"
            );
        }
    }

    #[test]
    fn usernames_are_case_insensitive_and_ascii() {
        assert_eq!(Username::parse("Smith").unwrap().as_str(), "smith");
        assert_eq!(
            Username::parse(" smith ").unwrap(),
            Username::parse("SMITH").unwrap()
        );
        assert_eq!(
            Username::parse("ſmith").unwrap_err(),
            AuthRuleError::UsernameCharacters
        );
        assert_eq!(
            Username::parse("ab").unwrap_err(),
            AuthRuleError::UsernameLength
        );
        assert!(Username::parse("j.doe-2_x").is_ok());
    }

    #[test]
    fn password_policy() {
        assert_eq!(
            PasswordPolicy::check("short").unwrap_err().code(),
            "password_too_short"
        );
        assert_eq!(
            PasswordPolicy::check("aaaaaaaaaaaaaaaa")
                .unwrap_err()
                .code(),
            "password_too_weak"
        );
        assert_eq!(
            PasswordPolicy::check("Password1234").unwrap_err().code(),
            "password_too_weak"
        );
        assert!(PasswordPolicy::check("correct horse battery").is_ok());
    }

    #[test]
    fn throttle_locks_at_the_limit() {
        let t = LoginThrottle::default();
        assert_eq!(t.lock_after(4), None);
        assert_eq!(t.lock_after(5), Some(SignedDuration::from_mins(15)));
    }

    proptest! {
        #[test]
        fn username_parse_is_idempotent(s in "[A-Za-z0-9._-]{3,64}") {
            let u = Username::parse(&s).unwrap();
            prop_assert_eq!(Username::parse(u.as_str()).unwrap(), u.clone());
            prop_assert!(u.as_str().chars().all(|c| !c.is_ascii_uppercase()));
        }

        #[test]
        fn username_never_accepts_non_ascii(s in "\\PC{3,20}") {
            if let Ok(u) = Username::parse(&s) {
                prop_assert!(u.as_str().is_ascii());
            }
        }
    }
}
