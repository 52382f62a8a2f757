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

use jiff::{SignedDuration, Timestamp};

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
/// Machine accounts (instruments, EMRs) register patients, place orders and post results.
/// They do not read patients (issue 16 item 6): an incoming order or result is matched to its
/// patient inside the use case (two-identifier identification, the specimen's accession
/// number), never by a search the account could also run for any other patient.
const INTERFACE: &[Permission] = &[
    P::MetricsRead,
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

    /// The role as printed beside a signature (a report's sign-off line).
    pub fn title(self) -> &'static str {
        match self {
            Role::Admin => "Administrator",
            Role::Director => "Laboratory director",
            Role::Technologist => "Medical technologist",
            Role::Technician => "Laboratory technician",
            Role::Phlebotomist => "Phlebotomist",
            Role::Physician => "Physician",
            Role::Interface => "Interface",
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
    /// Shortest login name, in characters.
    pub const MIN_LEN: usize = 3;
    /// Longest login name, in characters.
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Username, AuthRuleError> {
        let s = raw.trim();
        if s.len() < Self::MIN_LEN || s.len() > Self::MAX_LEN {
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

/// Login throttling (issue 16 item 7): **progressive delay**, never a hard lock an attacker
/// controls. Failed credential checks (a login, or the current password of a password change)
/// are counted per *(source address, account)* pair within a [`window`](Self::window), and the
/// next attempt must wait:
///
/// - **pair**: after `free_per_pair` failures of one account from one address, the next attempt
///   from that address waits `first_delay`, doubling with every further failure up to
///   `max_delay`. The account's owner at another address is not slowed by it.
/// - **address**: after `free_per_address` failures from one address over all accounts
///   (spraying many usernames), that address waits likewise, whatever account it tries.
/// - **account**: when more than `free_addresses_per_account` *other* addresses have failed on
///   one account in the window (a distributed guess), every address waits too, but at most
///   `account_max_delay`: a botnet slows the owner down, it never locks the owner out.
///
/// Known and unknown usernames are counted alike, so the answer does not reveal which exist.
/// A successful check clears its pair. Pure: the caller passes the counts and the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    pub free_per_pair: u32,
    pub free_per_address: u32,
    pub free_addresses_per_account: u32,
    pub first_delay: SignedDuration,
    pub max_delay: SignedDuration,
    pub account_max_delay: SignedDuration,
    /// Failures older than this are forgotten (longer than `max_delay`, so a capped delay
    /// does not reset the count).
    pub window: SignedDuration,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            free_per_pair: 5,
            free_per_address: 20,
            free_addresses_per_account: 5,
            first_delay: SignedDuration::from_secs(1),
            max_delay: SignedDuration::from_mins(15),
            account_max_delay: SignedDuration::from_mins(1),
            window: SignedDuration::from_hours(1),
        }
    }
}

/// A number of failures (or of addresses) and when the latest of them happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    pub count: u32,
    pub last_at: Timestamp,
}

/// What the store knows about recent failures (within the window) around one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttemptHistory {
    /// Failures of this account from this address.
    pub pair: Option<FailureCount>,
    /// Failures from this address, over all accounts.
    pub address: Option<FailureCount>,
    /// The number of *other* addresses with failures on this account.
    pub other_addresses: Option<FailureCount>,
}

/// Which count made an attempt wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleReason {
    Pair,
    Address,
    Account,
}

impl ThrottleReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleReason::Pair => "address_and_account",
            ThrottleReason::Address => "address",
            ThrottleReason::Account => "account",
        }
    }
}

/// The verdict on an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleVerdict {
    Allow,
    Wait {
        until: Timestamp,
        reason: ThrottleReason,
    },
}

/// What a failure leaves in the audit trail: bounded, whatever the number of attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAudit {
    /// The first failure of this pair in the window.
    First,
    /// The failure after which this pair or this address starts to wait (once per window).
    Throttled,
    /// Counted, not audited.
    CountOnly,
}

impl LoginThrottle {
    /// The wait after `failures` failures when `free` are allowed: none below `free`, then
    /// `first_delay` doubling per further failure, capped at `cap`.
    pub fn delay(&self, failures: u32, free: u32, cap: SignedDuration) -> SignedDuration {
        if failures < free || failures == 0 {
            return SignedDuration::ZERO;
        }
        let doublings = (failures - free).min(40);
        let secs = self
            .first_delay
            .as_secs()
            .max(1)
            .saturating_mul(1i64 << doublings);
        SignedDuration::from_secs(secs).min(cap)
    }

    /// Whether an attempt at `now` may go ahead, and if not until when it waits and why.
    /// Counts whose latest failure is older than the window are ignored.
    pub fn check(&self, h: &AttemptHistory, now: Timestamp) -> ThrottleVerdict {
        let recent = |c: Option<FailureCount>| {
            c.filter(|c| c.last_at.checked_add(self.window).is_ok_and(|t| t > now))
        };
        let dims = [
            (
                recent(h.pair),
                self.free_per_pair,
                self.max_delay,
                ThrottleReason::Pair,
            ),
            (
                recent(h.address),
                self.free_per_address,
                self.max_delay,
                ThrottleReason::Address,
            ),
            (
                recent(h.other_addresses),
                self.free_addresses_per_account.saturating_add(1),
                self.account_max_delay,
                ThrottleReason::Account,
            ),
        ];
        let mut verdict = ThrottleVerdict::Allow;
        for (count, free, cap, reason) in dims {
            let Some(c) = count else { continue };
            let d = self.delay(c.count, free, cap);
            if d.is_zero() {
                continue;
            }
            let until = c.last_at.checked_add(d).unwrap_or(Timestamp::MAX);
            let later = match verdict {
                ThrottleVerdict::Allow => true,
                ThrottleVerdict::Wait { until: u, .. } => until > u,
            };
            if until > now && later {
                verdict = ThrottleVerdict::Wait { until, reason };
            }
        }
        verdict
    }

    /// What a failure is audited as, given the counts *after* it: the first of a pair's
    /// window, the one that starts a wait for the pair or the address, or nothing more.
    pub fn audit_failure(&self, pair_failures: u32, address_failures: u32) -> FailureAudit {
        // The address's threshold is audited only when the pair did not already start
        // waiting (and was audited then): at most two rows per pair and window.
        if pair_failures == self.free_per_pair
            || (address_failures == self.free_per_address && pair_failures < self.free_per_pair)
        {
            FailureAudit::Throttled
        } else if pair_failures == 1 {
            FailureAudit::First
        } else {
            FailureAudit::CountOnly
        }
    }
}

/// The key a source address is throttled under: an IPv4 address as is (also when mapped
/// into IPv6), an IPv6 address by its /64 prefix, since one host commonly holds a whole /64.
pub fn address_key(ip: std::net::IpAddr) -> String {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
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
        // An interface reads only what its connection needs: no patient reads or merges.
        for p in [Permission::PatientRead, Permission::PatientMerge] {
            assert!(!Role::Interface.allows(p), "interface must not hold {p}");
        }
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

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn count(count: u32, last: i64) -> Option<FailureCount> {
        Some(FailureCount {
            count,
            last_at: at(last),
        })
    }

    /// One row: (pair, address, other addresses, now) → verdict (wait in seconds from now,
    /// and why).
    #[test]
    fn throttle_case_table() {
        let t = LoginThrottle::default();
        type Row = (
            &'static str,
            Option<FailureCount>,
            Option<FailureCount>,
            Option<FailureCount>,
            i64,
            Option<(i64, ThrottleReason)>,
        );
        let rows: &[Row] = &[
            ("nothing failed", None, None, None, 0, None),
            (
                "four failures: free",
                count(4, 0),
                count(4, 0),
                None,
                0,
                None,
            ),
            (
                "five failures: one second",
                count(5, 0),
                count(5, 0),
                None,
                0,
                Some((1, ThrottleReason::Pair)),
            ),
            (
                "five failures, a second later",
                count(5, 0),
                count(5, 0),
                None,
                1,
                None,
            ),
            (
                "seven failures: four seconds",
                count(7, 0),
                count(7, 0),
                None,
                0,
                Some((4, ThrottleReason::Pair)),
            ),
            (
                "thirty failures: capped at fifteen minutes",
                count(30, 0),
                count(30, 0),
                None,
                0,
                Some((900, ThrottleReason::Pair)),
            ),
            (
                "capped wait over: the next attempt may go",
                count(30, 0),
                count(30, 0),
                None,
                900,
                None,
            ),
            (
                "failures older than the window are forgotten",
                count(30, 0),
                count(30, 0),
                None,
                3601,
                None,
            ),
            (
                "spraying: a fresh account from a busy address waits",
                None,
                count(22, 0),
                None,
                0,
                Some((4, ThrottleReason::Address)),
            ),
            (
                "owner at a clean address, one attacker address",
                None,
                None,
                count(1, 0),
                0,
                None,
            ),
            (
                "five other addresses: still free",
                None,
                None,
                count(5, 0),
                0,
                None,
            ),
            (
                "a distributed guess slows the owner a little",
                None,
                None,
                count(6, 0),
                0,
                Some((1, ThrottleReason::Account)),
            ),
            (
                "a large botnet slows the owner at most a minute",
                None,
                None,
                count(500, 0),
                0,
                Some((60, ThrottleReason::Account)),
            ),
            (
                "the longest wait wins",
                count(6, 0),
                count(25, 0),
                count(7, 0),
                0,
                Some((32, ThrottleReason::Address)),
            ),
        ];
        for (name, pair, address, other, now, want) in rows {
            let h = AttemptHistory {
                pair: *pair,
                address: *address,
                other_addresses: *other,
            };
            let got = t.check(&h, at(*now));
            let want = match want {
                None => ThrottleVerdict::Allow,
                Some((secs, reason)) => ThrottleVerdict::Wait {
                    until: at(*now + secs),
                    reason: *reason,
                },
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn failures_are_audited_at_most_twice_per_pair_window() {
        let t = LoginThrottle::default();
        let audited: Vec<_> = (1..=100)
            .map(|n| t.audit_failure(n, n))
            .filter(|a| *a != FailureAudit::CountOnly)
            .collect();
        assert_eq!(audited, [FailureAudit::First, FailureAudit::Throttled]);
        assert_eq!(t.audit_failure(1, 20), FailureAudit::Throttled);
        assert_eq!(t.audit_failure(1, 7), FailureAudit::First);
        assert!(t.window > t.max_delay);
    }

    #[test]
    fn addresses_are_keyed_by_host_or_ipv6_prefix() {
        let k = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(k("192.0.2.7"), "192.0.2.7");
        assert_eq!(k("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(k("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(k("2001:db8:1:2:bbbb::9"), k("2001:db8:1:2::1"));
    }

    proptest! {
        /// However many failures an attacker's address piles onto an account, the owner at
        /// another address (with no failures of its own there) is never delayed by them.
        #[test]
        fn owner_elsewhere_is_never_delayed_by_one_attacker(
            failures in 0u32..10_000,
            last in 0i64..7200,
            now in 0i64..7200,
        ) {
            let t = LoginThrottle::default();
            // The attacker's failures are seen from the owner's address only as one other
            // address; the owner's own pair and address are clean.
            let h = AttemptHistory {
                pair: None,
                address: None,
                other_addresses: (failures > 0).then_some(FailureCount { count: 1, last_at: at(last) }),
            };
            prop_assert_eq!(t.check(&h, at(now)), ThrottleVerdict::Allow);
        }

        /// A wait never exceeds the cap, and more failures never shorten it.
        #[test]
        fn delay_is_monotonic_and_capped(n in 0u32..200) {
            let t = LoginThrottle::default();
            let d = t.delay(n, t.free_per_pair, t.max_delay);
            prop_assert!(d <= t.max_delay);
            prop_assert!(t.delay(n + 1, t.free_per_pair, t.max_delay) >= d);
        }

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
