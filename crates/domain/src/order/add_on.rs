//! Which tube an add-on test goes on (issue 10, item 4; DOMAIN §6.3, §11.1).
//!
//! - Only a tube the lab can still test takes an add-on: never a cancelled, rejected (e.g.
//!   mislabeled), disposed or sent-out one. When the only tube of the test's kind was rejected
//!   the add-on gets a new tube **and** a recollection: the patient must be drawn again.
//! - Room is counted in one unit (specimen volume, µL) from two separate fields: the planned
//!   *demand* of the tests on the tube, and before receipt its planned *capacity* (usable
//!   volume), after receipt its *measured content*. So an almost empty received tube does not
//!   take an add-on, and a full one does not trigger a needless draw.
//! - A collected tube takes the add-on only within the test's stability at the temperature it
//!   was kept ([`can_add_on`]). A tube of the right kind that is out of stability, and no other,
//!   refuses the add-on (a new draw is a new order).

use jiff::Timestamp;

use crate::catalog::{ContainerCode, SpecimenType, Stability, Temperature};
use crate::specimen::{AcceptedSpecimen, SpecimenState};

use super::{AddOnError, can_add_on};

/// An existing tube of the order, as add-on placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddOnTube {
    pub state: SpecimenState,
    pub container: ContainerCode,
    pub specimen_type: SpecimenType,
    /// Usable volume of the container (planned capacity), µL.
    pub capacity_ul: u32,
    /// The planned demand of the tests already on the tube, µL.
    pub demand_ul: u32,
    /// The measured content after receipt (what is left after aliquots), µL.
    pub content_ul: u32,
    pub collected_at: Option<Timestamp>,
    pub temperature: Option<Temperature>,
}

impl AddOnTube {
    /// Whether the tube has been received (its content is measured).
    fn received(&self) -> bool {
        !matches!(
            self.state,
            SpecimenState::Planned | SpecimenState::Collected | SpecimenState::InTransit
        )
    }

    /// The specimen volume still free for another test.
    pub fn room_ul(&self) -> u32 {
        let total = if self.received() {
            self.content_ul
        } else {
            self.capacity_ul
        };
        total.saturating_sub(self.demand_ul)
    }
}

/// Where an add-on goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOnPlacement {
    /// On the existing tube at this index.
    Existing(usize),
    /// On a new planned tube. `recollect_from`: the index of the rejected tube of this kind,
    /// when the add-on needs the patient drawn again (a recollection task).
    NewTube { recollect_from: Option<usize> },
}

/// Chooses the tube for an add-on of a test accepting `accepted` and needing `min_volume_ul`.
pub fn place_add_on(
    tubes: &[AddOnTube],
    accepted: &[AcceptedSpecimen],
    min_volume_ul: u32,
    stability: &Stability,
    now: Timestamp,
) -> Result<AddOnPlacement, AddOnError> {
    let kind = |t: &AddOnTube| {
        accepted
            .iter()
            .any(|a| a.container == t.container && a.specimen_type == t.specimen_type)
    };
    let mut refused = None;
    let mut rejected = None;
    for (i, t) in tubes.iter().enumerate() {
        if !kind(t) {
            continue;
        }
        match t.state {
            SpecimenState::Rejected => {
                rejected.get_or_insert(i);
                continue;
            }
            SpecimenState::Cancelled | SpecimenState::Disposed | SpecimenState::SentOut => {
                continue;
            }
            _ => {}
        }
        if t.room_ul() < min_volume_ul {
            continue;
        }
        if let Some(collected) = t.collected_at {
            let temperature = t.temperature.unwrap_or(Temperature::Room);
            if let Err(e) = can_add_on(collected, now, temperature, stability) {
                refused.get_or_insert(e);
                continue;
            }
        }
        return Ok(AddOnPlacement::Existing(i));
    }
    match (refused, rejected) {
        (_, Some(i)) => Ok(AddOnPlacement::NewTube {
            recollect_from: Some(i),
        }),
        (Some(e), None) => Err(e),
        (None, None) => Ok(AddOnPlacement::NewTube {
            recollect_from: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;
    use proptest::prelude::*;

    use SpecimenState as S;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn sst(state: S, demand: u32, content: u32, collected: Option<&str>) -> AddOnTube {
        AddOnTube {
            state,
            container: ContainerCode::parse("SST").unwrap(),
            specimen_type: SpecimenType::Serum,
            capacity_ul: 2_200,
            demand_ul: demand,
            content_ul: content,
            collected_at: collected.map(ts),
            temperature: Some(Temperature::Room),
        }
    }

    fn serum() -> Vec<AcceptedSpecimen> {
        vec![AcceptedSpecimen {
            specimen_type: SpecimenType::Serum,
            container: ContainerCode::parse("SST").unwrap(),
        }]
    }

    fn eight_hours() -> Stability {
        Stability::new(Some(SignedDuration::from_hours(8)), None, None).unwrap()
    }

    const NOW: &str = "2026-11-21T12:00:00Z";
    const DRAWN: Option<&str> = Some("2026-11-21T10:00:00Z");
    const OLD: Option<&str> = Some("2026-11-21T02:00:00Z");

    /// One row: the order's tubes → where a 500 µL add-on goes.
    #[test]
    fn add_on_case_table() {
        use AddOnPlacement::*;
        let new = NewTube {
            recollect_from: None,
        };
        let rows: Vec<(Vec<AddOnTube>, Result<AddOnPlacement, &str>, &str)> = vec![
            (
                vec![sst(S::Planned, 1_000, 0, None)],
                Ok(Existing(0)),
                "planned tube with room",
            ),
            (
                vec![sst(S::Planned, 2_000, 0, None)],
                Ok(new),
                "planned tube full",
            ),
            (
                vec![sst(S::Received, 1_000, 1_600, DRAWN)],
                Ok(Existing(0)),
                "received with enough measured content",
            ),
            (
                vec![sst(S::Received, 1_000, 1_200, DRAWN)],
                Ok(new),
                "received almost empty: planned room is no content",
            ),
            (
                vec![sst(S::Received, 2_000, 2_600, DRAWN)],
                Ok(Existing(0)),
                "received full: planned demand had no room, the content has",
            ),
            (
                vec![sst(S::Rejected, 500, 2_000, DRAWN)],
                Ok(NewTube {
                    recollect_from: Some(0),
                }),
                "mislabeled tube: new tube and a recollection",
            ),
            (
                vec![sst(S::Disposed, 500, 2_000, DRAWN)],
                Ok(new),
                "disposed",
            ),
            (
                vec![sst(S::SentOut, 500, 2_000, DRAWN)],
                Ok(new),
                "sent out",
            ),
            (vec![sst(S::Cancelled, 500, 0, None)], Ok(new), "cancelled"),
            (
                vec![
                    sst(S::Rejected, 500, 2_000, DRAWN),
                    sst(S::Received, 500, 2_000, DRAWN),
                ],
                Ok(Existing(1)),
                "the good tube, not the rejected one",
            ),
            (
                vec![sst(S::Received, 500, 2_000, OLD)],
                Err("add_on_stability_exceeded"),
                "out of stability: refused",
            ),
            (
                vec![
                    sst(S::Received, 500, 2_000, OLD),
                    sst(S::Planned, 0, 0, None),
                ],
                Ok(Existing(1)),
                "out of stability, but a planned tube",
            ),
            (
                vec![sst(S::Stored, 500, 2_000, DRAWN)],
                Ok(Existing(0)),
                "stored tubes are retrieved for add-ons",
            ),
        ];
        for (tubes, expected, why) in rows {
            let got =
                place_add_on(&tubes, &serum(), 500, &eight_hours(), ts(NOW)).map_err(|e| e.code());
            assert_eq!(got, expected, "{why}");
        }
        // Another kind of tube is not considered.
        let mut lav = sst(S::Planned, 0, 0, None);
        lav.container = ContainerCode::parse("LAV").unwrap();
        assert_eq!(
            place_add_on(&[lav], &serum(), 500, &eight_hours(), ts(NOW)),
            Ok(NewTube {
                recollect_from: None
            })
        );
    }

    proptest! {
        /// An add-on never lands on a tube the lab can't test, nor on one without room.
        #[test]
        fn never_on_an_unusable_tube(
            states in prop::collection::vec(prop::sample::select(S::ALL.to_vec()), 1..6),
            demand in 0u32..3_000, content in 0u32..3_000, need in 1u32..2_000,
        ) {
            let tubes: Vec<AddOnTube> = states.iter().map(|s| sst(*s, demand, content, DRAWN)).collect();
            if let Ok(AddOnPlacement::Existing(i)) = place_add_on(&tubes, &serum(), need, &eight_hours(), ts(NOW)) {
                prop_assert!(!matches!(tubes[i].state, S::Rejected | S::Disposed | S::SentOut | S::Cancelled));
                prop_assert!(tubes[i].room_ul() >= need);
            }
        }
    }
}
