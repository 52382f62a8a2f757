//! A specimen's temperature history and separation time (issue 10 items 2 and 3), read from
//! its chain of custody: the custody events are timed, append-only and audited, so they are
//! the record of where the tube was kept. Each event that says how the specimen was kept
//! starts a segment (`aliquot_domain::specimen::stability`):
//!
//! - `collect`: the collection's temperature, from the draw time (stage `collection`);
//! - `dispatch`: the courier's temperature when given (stage `transport`);
//! - `receive`: the temperature it arrived in (stage `receipt`); the receipt no longer replaces
//!   the history, it adds to it;
//! - `store`: the holder's temperature band (stage `storage`);
//! - `retrieve`: back on the bench at room temperature (stage `bench`).
//!
//! An aliquot inherits its parent's history up to the pour. Separation is the start of the
//! first spin of the tube (or of the tube it was poured from), or the time the draw site spun
//! it, given at receipt (`separated_at` in the receive event).

use aliquot_domain::catalog::Temperature;
use aliquot_domain::order::TestCode;
use aliquot_domain::specimen::stability::StabilityRule;
use aliquot_domain::specimen::stability::{SpecimenHistory, TemperatureSegment, TemperatureStage};
use aliquot_store::{SpecimenEventRecord, SpecimenRecord};
use jiff::Timestamp;
use serde_json::Value;

use crate::catalog::definition;
use crate::{App, AppResult};

/// The segment an event starts, if it says how the specimen was kept.
fn segment_of(
    e: &SpecimenEventRecord,
    collected_at: Option<Timestamp>,
) -> Option<TemperatureSegment> {
    let details: Value = serde_json::from_str(&e.details).unwrap_or(Value::Null);
    let temperature = || {
        details
            .get("temperature")
            .and_then(Value::as_str)
            .and_then(|t| Temperature::parse(t).ok())
    };
    let (from, temperature, stage) = match e.kind.as_str() {
        "collect" => (
            collected_at.unwrap_or(e.at),
            temperature()?,
            TemperatureStage::Collection,
        ),
        "dispatch" => (e.at, temperature()?, TemperatureStage::Transport),
        "receive" => (e.at, temperature()?, TemperatureStage::Receipt),
        "store" => (e.at, temperature()?, TemperatureStage::Storage),
        "retrieve" => (e.at, Temperature::Room, TemperatureStage::Bench),
        _ => return None,
    };
    Some(TemperatureSegment {
        from,
        temperature,
        stage,
    })
}

/// The draw site's spin time recorded at receipt, if any.
fn separated_at_receipt(e: &SpecimenEventRecord) -> Option<Timestamp> {
    if e.kind != "receive" {
        return None;
    }
    let details: Value = serde_json::from_str(&e.details).ok()?;
    details.get("separated_at")?.as_str()?.parse().ok()
}

/// The history from a list of custody events (oldest first) and spin start times.
pub(crate) fn history_from(
    collected_at: Option<Timestamp>,
    events: &[SpecimenEventRecord],
    spins: &[Timestamp],
) -> SpecimenHistory {
    let mut segments: Vec<TemperatureSegment> = events
        .iter()
        .filter_map(|e| segment_of(e, collected_at))
        .collect();
    segments.sort_by_key(|s| s.from);
    let separated_at = spins
        .iter()
        .copied()
        .chain(events.iter().filter_map(separated_at_receipt))
        .min();
    SpecimenHistory {
        segments,
        separated_at,
    }
}

impl App {
    /// The stability rule of every test on a specimen (tests not in the catalogue are skipped).
    pub(crate) async fn test_rules(
        &self,
        s: &SpecimenRecord,
    ) -> AppResult<Vec<(TestCode, StabilityRule)>> {
        let mut rules = Vec::new();
        for t in self.store.tests_of_order(s.order_id).await? {
            if t.specimen_id != s.id {
                continue;
            }
            let Some(entry) = self.store.catalog_by_code(&t.test_code).await? else {
                continue;
            };
            let Ok(code) = TestCode::parse(&t.test_code) else {
                continue;
            };
            rules.push((code, definition(&entry)?.full_stability_rule()));
        }
        Ok(rules)
    }

    /// The temperature history and separation time of a specimen (an aliquot's begins with
    /// its parent's, up to the pour).
    pub(crate) async fn specimen_history(&self, s: &SpecimenRecord) -> AppResult<SpecimenHistory> {
        let mut events = Vec::new();
        let mut spins: Vec<Timestamp> = Vec::new();
        if let Some(parent) = self.store.specimen_parent(s.id).await? {
            events.extend(
                self.store
                    .specimen_events(parent.id)
                    .await?
                    .into_iter()
                    .filter(|e| e.at <= s.created_at),
            );
            spins.extend(
                self.store
                    .centrifugations(parent.id)
                    .await?
                    .iter()
                    .map(|c| c.started_at)
                    .filter(|t| *t <= s.created_at),
            );
        }
        events.extend(self.store.specimen_events(s.id).await?);
        spins.extend(
            self.store
                .centrifugations(s.id)
                .await?
                .iter()
                .map(|c| c.started_at),
        );
        Ok(history_from(s.collected_at, &events, &spins))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, at: &str, details: &str) -> SpecimenEventRecord {
        SpecimenEventRecord {
            id: 0,
            specimen_id: 1,
            at: at.parse().unwrap(),
            actor_id: None,
            actor_name: "t".into(),
            kind: kind.into(),
            from_status: String::new(),
            to_status: String::new(),
            details: details.into(),
            location: None,
        }
    }

    #[test]
    fn custody_events_become_segments() {
        let drawn: Timestamp = "2026-11-21T06:00:00Z".parse().unwrap();
        let events = [
            // Recorded at receipt for an outreach draw: the segment starts at the draw.
            event(
                "collect",
                "2026-11-21T09:00:00Z",
                r#"{"temperature":"room"}"#,
            ),
            event(
                "dispatch",
                "2026-11-21T07:00:00Z",
                r#"{"temperature":"refrigerated"}"#,
            ),
            event("dispatch", "2026-11-21T07:30:00Z", r#"{}"#),
            event(
                "receive",
                "2026-11-21T09:00:00Z",
                r#"{"temperature":"room","separated_at":"2026-11-21T06:45:00Z"}"#,
            ),
            event("store", "2026-11-21T10:00:00Z", r#"{"temperature":null}"#),
            event("retrieve", "2026-11-21T11:00:00Z", r#"{}"#),
            event(
                "label_print",
                "2026-11-21T11:30:00Z",
                r#"{"temperature":"frozen"}"#,
            ),
        ];
        let spun: Timestamp = "2026-11-21T09:30:00Z".parse().unwrap();
        let h = history_from(Some(drawn), &events, &[spun]);
        let got: Vec<(String, &str, &str)> = h
            .segments
            .iter()
            .map(|s| (s.from.to_string(), s.temperature.as_str(), s.stage.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("2026-11-21T06:00:00Z".into(), "room", "collection"),
                ("2026-11-21T07:00:00Z".into(), "refrigerated", "transport"),
                ("2026-11-21T09:00:00Z".into(), "room", "receipt"),
                ("2026-11-21T11:00:00Z".into(), "room", "bench"),
            ]
        );
        assert_eq!(
            h.separated_at,
            Some("2026-11-21T06:45:00Z".parse().unwrap())
        );
    }
}
