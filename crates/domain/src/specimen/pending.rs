//! Tests must not silently vanish (issue 10 items 7 and 11): what happens to the tests a tube
//! carries when the tube is rejected, disposed of or sent out, or one test is not performed.
//!
//! - A test is *pending* while it is ordered or its result is held: it still needs a
//!   specimen. Released, not-performed and cancelled tests need none.
//! - A rejected tube's pending tests move to the replacement tube planned with its
//!   recollection ([`tests_to_move`]); the rejected tube keeps only what is finished, so its
//!   turnaround time stops there.
//! - A tube carrying pending tests is not disposed of ([`check_dispose`]): they are moved
//!   (rejection, recollection) or cancelled first, each with a reason.
//! - A send-out of some of a tube's tests while other pending tests stay in house is partial
//!   ([`send_out_scope`]): the tube is not marked sent out.

use crate::catalog::code_enum;

code_enum! {
    /// The state of an ordered test.
    TestStatus, "test_status" {
        Ordered => "ordered",
        /// A result is posted and held.
        Resulted => "resulted",
        Released => "released",
        NotPerformed => "not_performed",
        Cancelled => "cancelled",
    }
}

impl TestStatus {
    /// Whether the test still needs a specimen.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Ordered | Self::Resulted)
    }
}

/// The codes of the pending tests among `(code, status)`.
pub fn tests_to_move<'a>(tests: &[(&'a str, TestStatus)]) -> Vec<&'a str> {
    tests
        .iter()
        .filter(|(_, s)| s.is_pending())
        .map(|(c, _)| *c)
        .collect()
}

/// Why a tube may not be disposed of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the tube still carries pending tests ({}): move them with a recollection or cancel them, \
     each with a reason, before it is disposed of",
    .tests.join(", ")
)]
pub struct PendingTests {
    pub tests: Vec<String>,
}

impl PendingTests {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        "pending_tests"
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        None
    }
}

crate::error::impl_domain_error!(PendingTests);

/// A tube is disposed of only when none of its tests is pending.
pub fn check_dispose(tests: &[(&str, TestStatus)]) -> Result<(), PendingTests> {
    let pending = tests_to_move(tests);
    if pending.is_empty() {
        Ok(())
    } else {
        Err(PendingTests {
            tests: pending.into_iter().map(str::to_owned).collect(),
        })
    }
}

/// Whether a send-out takes the whole tube.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutScope {
    /// Every pending test goes: the tube is sent out.
    Whole,
    /// These pending tests stay in house: the tube stays, the send-out is recorded.
    Partial { staying: Vec<String> },
}

/// The scope of a send-out of `sent` from a tube carrying `tests`.
pub fn send_out_scope(tests: &[(&str, TestStatus)], sent: &[&str]) -> SendOutScope {
    let staying: Vec<String> = tests
        .iter()
        .filter(|(c, s)| s.is_pending() && !sent.contains(c))
        .map(|(c, _)| (*c).to_owned())
        .collect();
    if staying.is_empty() {
        SendOutScope::Whole
    } else {
        SendOutScope::Partial { staying }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TestStatus as T;

    /// One row: the tube's tests → dispose allowed, tests that move with a recollection.
    #[test]
    fn pending_case_table() {
        type Row = (
            Vec<(&'static str, T)>,
            bool,
            Vec<&'static str>,
            &'static str,
        );
        let rows: Vec<Row> = vec![
            (vec![], true, vec![], "an empty tube"),
            (
                vec![("WBC", T::Ordered), ("HGB", T::Ordered)],
                false,
                vec!["WBC", "HGB"],
                "nine pending CBC tests (the issue): not disposed of",
            ),
            (
                vec![("K", T::Released), ("NA", T::Resulted)],
                false,
                vec!["NA"],
                "a held result is still pending",
            ),
            (
                vec![
                    ("K", T::Released),
                    ("LD", T::NotPerformed),
                    ("AST", T::Cancelled),
                ],
                true,
                vec![],
                "everything finished",
            ),
        ];
        for (tests, dispose, moving, why) in rows {
            assert_eq!(check_dispose(&tests).is_ok(), dispose, "{why}");
            assert_eq!(tests_to_move(&tests), moving, "{why}");
        }
        let e = check_dispose(&[("WBC", T::Ordered)]).unwrap_err();
        assert_eq!(e.code(), "pending_tests");
        assert!(e.to_string().contains("WBC"));
    }

    /// One row: the tube's tests, the tests sent → the scope.
    #[test]
    fn send_out_case_table() {
        let ts = vec![("ABORH", T::Ordered), ("ABSC", T::Ordered)];
        assert_eq!(
            send_out_scope(&ts, &["ABSC"]),
            SendOutScope::Partial {
                staying: vec!["ABORH".into()]
            },
            "the issue: ABO/Rh stays in house"
        );
        assert_eq!(send_out_scope(&ts, &["ABSC", "ABORH"]), SendOutScope::Whole);
        let done = vec![("ABORH", T::Released), ("ABSC", T::Ordered)];
        assert_eq!(
            send_out_scope(&done, &["ABSC"]),
            SendOutScope::Whole,
            "what stays is finished"
        );
        for s in TestStatus::ALL {
            assert_eq!(TestStatus::parse(s.as_str()), Ok(*s));
        }
    }
}
