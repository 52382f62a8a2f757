//! Which tube an add-on test goes on (issue 10, item 4; DOMAIN §6.3, §11.1).
//!
//! - Only a tube the lab can still test takes an add-on: never a cancelled, rejected (e.g.
//!   mislabeled), disposed or sent-out one. When the only tube of the test's kind was rejected
//!   the add-on gets a new tube **and** a recollection: the patient must be drawn again.
//! - Room is counted in one unit (specimen volume, µL) from two separate fields: the planned
//!   *demand* of the tests on the tube, and before receipt its planned *capacity* (usable
//!   volume), after receipt its *measured content*. So an almost empty received tube does not
//!   take an add-on, and a full one does not trigger a needless draw.
//! - A collected tube takes the add-on only within the test's stability over its whole
//!   temperature history (issue 10 item 2: the cumulative fraction of
//!   `specimen::stability`, before and after separation, with the test's handling flags;
//!   [`can_add_on`]), never judged by the last temperature alone. A tube of the right kind
//!   that is out of stability, and no other, refuses the add-on (a new draw is a new order).

use jiff::Timestamp;

use crate::catalog::{ContainerCode, SpecimenType};
use crate::specimen::stability::{SpecimenHistory, StabilityRule};
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
    /// How it was kept since collection (segments and separation time).
    pub history: SpecimenHistory,
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
    stability: &StabilityRule,
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
        if let Some(collected) = t.collected_at
            && let Err(e) = can_add_on(collected, now, &t.history, stability)
        {
            refused.get_or_insert(e);
            continue;
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
    use crate::catalog::{Stability, Temperature};
    use crate::specimen::stability::{TemperatureSegment, TemperatureStage};
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
            history: collected.map_or_else(SpecimenHistory::default, |c| {
                SpecimenHistory::kept(ts(c), Temperature::Room, TemperatureStage::Collection)
            }),
        }
    }

    /// A received tube drawn at 02:00 kept as `segments` say.
    fn history(segments: &[(&str, Temperature)]) -> AddOnTube {
        let mut t = sst(S::Received, 500, 2_000, OLD);
        t.history = SpecimenHistory {
            segments: segments
                .iter()
                .map(|(from, temperature)| TemperatureSegment {
                    from: ts(from),
                    temperature: *temperature,
                    stage: TemperatureStage::Storage,
                })
                .collect(),
            separated_at: None,
        };
        t
    }

    fn serum() -> Vec<AcceptedSpecimen> {
        vec![AcceptedSpecimen {
            specimen_type: SpecimenType::Serum,
            container: ContainerCode::parse("SST").unwrap(),
        }]
    }

    fn eight_hours() -> StabilityRule {
        StabilityRule::simple(
            Stability::new(
                Some(SignedDuration::from_hours(8)),
                Some(SignedDuration::from_hours(48)),
                None,
            )
            .unwrap(),
        )
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
            (
                vec![history(&[
                    ("2026-11-21T02:00:00Z", Temperature::Room),
                    ("2026-11-21T10:00:00Z", Temperature::Refrigerated),
                ])],
                Err("add_on_stability_exceeded"),
                "refrigerated now (10 h of 48 h), but 8 h at room temperature (100 %) and 2 h cold (4 %)",
            ),
            (
                vec![history(&[
                    ("2026-11-21T02:00:00Z", Temperature::Room),
                    ("2026-11-21T03:00:00Z", Temperature::Refrigerated),
                ])],
                Ok(Existing(0)),
                "1 h at room temperature (12.5 %), 9 h cold (19 %)",
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
