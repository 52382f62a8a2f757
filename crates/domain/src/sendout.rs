//! Send-outs to reference laboratories (issue 14 item 4; DOMAIN §11, CLIA 42 CFR
//! 493.1291(i)): the reference laboratory's identity, the shipment's state machine and the
//! outstanding rule.
//!
//! # The shipment
//! Tubes sent out to one reference laboratory at one temperature are packed together into a
//! shipment, whose manifest lists them with their tests (in the reference lab's codes) and the
//! patients' demographics. A shipment moves
//!
//! ```text
//!   created ──ship (courier, tracking number)──▶ shipped ──receive──▶ received
//!                                                   │                    │
//!                                                   └──results back──────┴──▶ resulted
//! ```
//!
//! - *created*: packed (when, by whom, at what temperature); still in the lab, so no result
//!   can have come back for it ([`results_accepted`] refuses).
//! - *shipped*: handed to the courier with a tracking number.
//! - *received*: the reference laboratory confirmed delivery (at a time that is not before the
//!   shipment left, nor in the future).
//! - *resulted*: the results of every tube of the shipment are back. Reference laboratories
//!   often never confirm delivery: a result is itself the proof that the shipment arrived, so
//!   results may close a shipment that is still *shipped*.
//!
//! Every state has exactly one way forward; nothing goes back (a lost shipment is a new
//! shipment of recollected tubes). [`transition`] is the whole rule, checked by a case table
//! over every (state, event) pair.
//!
//! # Outstanding
//! A sent-out test without a result is outstanding from the moment it was sent out; it is
//! overdue once its reference laboratory's expected turnaround time has passed
//! ([`outstanding`]): at the due time exactly it is not yet overdue.

use jiff::{SignedDuration, Timestamp};
use thiserror::Error;

use crate::catalog::code_enum;
use crate::error::impl_domain_error;

code_enum! {
    /// Where a shipment to a reference laboratory is.
    ShipmentStatus, "shipment_status" {
        Created => "created",
        Shipped => "shipped",
        Received => "received",
        Resulted => "resulted",
    }
}

code_enum! {
    /// Something that happens to a shipment.
    ShipmentEvent, "shipment_event" {
        /// Handed to the courier.
        Ship => "ship",
        /// Delivery confirmed by the reference laboratory.
        Receive => "receive",
        /// The results of every tube are back.
        ResultsBack => "results_back",
    }
}

/// How far ahead of the server's clock a reported time may be (clocks of people and
/// couriers differ), as for collection times.
pub const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// Why a shipment rule refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ShipmentError {
    #[error("a shipment that is {state} cannot {event}")]
    Illegal {
        state: ShipmentStatus,
        event: ShipmentEvent,
    },
    #[error("the shipment has not left the laboratory: no result can have come back for it")]
    NotShipped,
    #[error("the delivery time is before the shipment left the laboratory")]
    ReceivedBeforeShipped,
    #[error("the delivery time is in the future")]
    ReceivedInFuture,
}

impl ShipmentError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Illegal { .. } => "shipment_transition_illegal",
            Self::NotShipped => "shipment_not_shipped",
            Self::ReceivedBeforeShipped => "received_before_shipped",
            Self::ReceivedInFuture => "received_in_future",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Illegal { .. } => Some("status"),
            Self::NotShipped => Some("accession"),
            Self::ReceivedBeforeShipped | Self::ReceivedInFuture => Some("received_at"),
        }
    }
}

/// Applies `event` to a shipment in `state`.
pub fn transition(
    state: ShipmentStatus,
    event: ShipmentEvent,
) -> Result<ShipmentStatus, ShipmentError> {
    use ShipmentEvent as E;
    use ShipmentStatus as S;
    match (state, event) {
        (S::Created, E::Ship) => Ok(S::Shipped),
        (S::Shipped, E::Receive) => Ok(S::Received),
        (S::Shipped | S::Received, E::ResultsBack) => Ok(S::Resulted),
        _ => Err(ShipmentError::Illegal { state, event }),
    }
}

/// Whether a result may be entered for a tube of a shipment in `state`: not before it left.
pub fn results_accepted(state: ShipmentStatus) -> Result<(), ShipmentError> {
    match state {
        ShipmentStatus::Created => Err(ShipmentError::NotShipped),
        _ => Ok(()),
    }
}

/// The reference laboratory's delivery time: not before the shipment left, not ahead of
/// `now` by more than the clock skew.
pub fn check_received_at(
    shipped_at: Timestamp,
    received_at: Timestamp,
    now: Timestamp,
) -> Result<(), ShipmentError> {
    if received_at < shipped_at {
        return Err(ShipmentError::ReceivedBeforeShipped);
    }
    if received_at.duration_since(now) > CLOCK_SKEW {
        return Err(ShipmentError::ReceivedInFuture);
    }
    Ok(())
}

/// How long a sent-out test has been out and whether it is overdue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outstanding {
    /// Since it was sent out (zero for a send-out time after `now`).
    pub age: SignedDuration,
    /// When its result is expected at the latest.
    pub due_at: Timestamp,
    pub overdue: bool,
}

/// A test sent out at `sent_at` to a laboratory that returns results within `expected_tat`.
pub fn outstanding(
    sent_at: Timestamp,
    expected_tat: SignedDuration,
    now: Timestamp,
) -> Outstanding {
    let due_at = sent_at.checked_add(expected_tat).unwrap_or(Timestamp::MAX);
    Outstanding {
        age: now.duration_since(sent_at).max(SignedDuration::ZERO),
        due_at,
        overdue: now > due_at,
    }
}

/// A CLIA certificate number: ten characters, two digits (the state code), `D`, seven digits
/// (e.g. `05D0642827`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CliaNumber(String);

/// A malformed CLIA number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a CLIA number is two digits, the letter D and seven digits (e.g. 05D0642827)")]
pub struct CliaError;

impl CliaError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        "invalid_clia"
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("clia")
    }
}

impl CliaNumber {
    /// Parses a CLIA number (surrounding spaces ignored; a lower-case `d` is accepted).
    pub fn parse(input: &str) -> Result<Self, CliaError> {
        let s = input.trim().to_ascii_uppercase();
        let b = s.as_bytes();
        let ok = b.len() == 10
            && b[..2].iter().all(u8::is_ascii_digit)
            && b[2] == b'D'
            && b[3..].iter().all(u8::is_ascii_digit);
        if ok { Ok(Self(s)) } else { Err(CliaError) }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl_domain_error!(ShipmentError, CliaError);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use ShipmentEvent as E;
    use ShipmentStatus as S;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Every (state, event) pair: the state it leads to, or the refusal.
    #[test]
    fn shipment_transition_case_table() {
        let rows: &[(S, E, Option<S>)] = &[
            (S::Created, E::Ship, Some(S::Shipped)),
            (S::Created, E::Receive, None),
            (S::Created, E::ResultsBack, None),
            (S::Shipped, E::Ship, None),
            (S::Shipped, E::Receive, Some(S::Received)),
            (S::Shipped, E::ResultsBack, Some(S::Resulted)),
            (S::Received, E::Ship, None),
            (S::Received, E::Receive, None),
            (S::Received, E::ResultsBack, Some(S::Resulted)),
            (S::Resulted, E::Ship, None),
            (S::Resulted, E::Receive, None),
            (S::Resulted, E::ResultsBack, None),
        ];
        assert_eq!(rows.len(), S::ALL.len() * E::ALL.len(), "every pair");
        for (state, event, expected) in rows {
            let got = transition(*state, *event);
            match expected {
                Some(next) => assert_eq!(got, Ok(*next), "{state} + {event}"),
                None => {
                    let e = got.expect_err("refused");
                    assert_eq!(e.code(), "shipment_transition_illegal", "{state} + {event}");
                    assert_eq!(
                        e,
                        ShipmentError::Illegal {
                            state: *state,
                            event: *event
                        }
                    );
                }
            }
        }
    }

    #[test]
    fn results_only_after_the_shipment_left() {
        let rows: &[(S, Result<(), &str>)] = &[
            (S::Created, Err("shipment_not_shipped")),
            (S::Shipped, Ok(())),
            (S::Received, Ok(())),
            (S::Resulted, Ok(())),
        ];
        for (state, expected) in rows {
            assert_eq!(
                results_accepted(*state).map_err(|e| e.code()),
                *expected,
                "{state}"
            );
        }
    }

    #[test]
    fn delivery_time_case_table() {
        let shipped = "2026-11-20T15:00:00Z";
        let now = "2026-11-21T12:00:00Z";
        let rows: &[(&str, Result<(), &str>, &str)] = &[
            ("2026-11-21T09:00:00Z", Ok(()), "next morning"),
            (shipped, Ok(()), "at the very time it left"),
            (
                "2026-11-20T14:59:59Z",
                Err("received_before_shipped"),
                "before it left",
            ),
            (now, Ok(()), "now"),
            ("2026-11-21T12:05:00Z", Ok(()), "within the clock skew"),
            (
                "2026-11-21T12:05:01Z",
                Err("received_in_future"),
                "beyond the skew",
            ),
        ];
        for (at, expected, why) in rows {
            assert_eq!(
                check_received_at(ts(shipped), ts(at), ts(now)).map_err(|e| e.code()),
                *expected,
                "{why}"
            );
        }
    }

    #[test]
    fn outstanding_case_table() {
        let sent = "2026-11-20T12:00:00Z";
        let tat = SignedDuration::from_hours(72);
        // (now, age in hours, overdue)
        let rows: &[(&str, i64, bool)] = &[
            ("2026-11-20T12:00:00Z", 0, false),
            ("2026-11-21T12:00:00Z", 24, false),
            ("2026-11-23T12:00:00Z", 72, false),
            ("2026-11-23T13:00:00Z", 73, true),
            // A clock behind the send-out time: no negative age.
            ("2026-11-20T11:00:00Z", 0, false),
        ];
        for (now, hours, overdue) in rows {
            let o = outstanding(ts(sent), tat, ts(now));
            assert_eq!(o.age, SignedDuration::from_hours(*hours), "{now}");
            assert_eq!(o.overdue, *overdue, "{now}");
            assert_eq!(o.due_at, ts("2026-11-23T12:00:00Z"));
        }
        // One microsecond past the due time is overdue.
        let due = ts("2026-11-23T12:00:00Z");
        let after = due.checked_add(SignedDuration::from_micros(1)).unwrap();
        assert!(outstanding(ts(sent), tat, after).overdue);
    }

    #[test]
    fn clia_numbers() {
        for (input, expected) in [
            ("05D0642827", Some("05D0642827")),
            (" 14d0123456 ", Some("14D0123456")),
            ("05D064282", None),
            ("05D06428270", None),
            ("05X0642827", None),
            ("A5D0642827", None),
            ("05D06428A7", None),
            ("", None),
        ] {
            assert_eq!(
                CliaNumber::parse(input).ok().map(|c| c.as_str().to_owned()),
                expected.map(str::to_owned),
                "{input:?}"
            );
        }
        assert_eq!(CliaNumber::parse("x").unwrap_err().code(), "invalid_clia");
    }

    fn status() -> impl Strategy<Value = S> {
        prop::sample::select(S::ALL.to_vec())
    }
    fn event() -> impl Strategy<Value = E> {
        prop::sample::select(E::ALL.to_vec())
    }

    proptest! {
        /// Nothing goes back: any sequence of events only moves forward, and a resulted
        /// shipment is final.
        #[test]
        fn shipments_only_move_forward(start in status(), events in prop::collection::vec(event(), 0..12)) {
            let mut state = start;
            for e in events {
                if let Ok(next) = transition(state, e) {
                    prop_assert!(next > state, "{state} -> {next}");
                    state = next;
                }
            }
            for e in E::ALL {
                prop_assert!(transition(S::Resulted, *e).is_err());
            }
        }

        /// Overdue exactly when now is past sent + TAT; the age never goes negative.
        #[test]
        fn overdue_is_past_the_due_time(sent_s in 0i64..2_000_000_000, tat_h in 1i64..2_000, now_off in -1_000_000i64..20_000_000) {
            let sent = Timestamp::from_second(sent_s).unwrap();
            let now = Timestamp::from_second(sent_s + now_off).unwrap();
            let tat = SignedDuration::from_hours(tat_h);
            let o = outstanding(sent, tat, now);
            prop_assert_eq!(o.overdue, now_off > tat_h * 3600);
            prop_assert!(o.age >= SignedDuration::ZERO);
        }
    }
}
