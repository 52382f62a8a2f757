//! The lab's live boards (issue 15 items 3 and 10): the phlebotomist's draw list by location,
//! and the TAT and workload dashboard. Both read what the worklists, the TAT rules and the
//! critical calls already compute; no rule of their own.

use std::collections::{BTreeMap, HashMap};

use aliquot_domain::auth::Permission;
use aliquot_domain::catalog::{ContainerType, Department, Priority};
use jiff::{SignedDuration, Timestamp};

use crate::shown::{ShowsPatient, Subject};
use crate::{Actor, App, AppError, AppResult};

/// At most this many tubes on a draw list.
pub const DRAW_LIST_LIMIT: i64 = 500;

/// How many hours of receipts the dashboard counts.
pub const RECEIPT_HOURS: i64 = 12;

/// A tube to draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawItem {
    pub order_id: i64,
    pub accession: String,
    pub priority: String,
    pub location: String,
    pub container: String,
    pub container_name: String,
    pub cap_colour: String,
    pub specimen_type: String,
    pub tests: Vec<String>,
    pub ordered_at: Timestamp,
    /// `Family, Given` and MRN, for a caller who may read patients.
    pub patient: Option<(String, String)>,
    /// Draw a discard tube just before this one (a winged set with a citrate tube first,
    /// issue 10 item 9).
    pub discard_tube_before: bool,
}

impl ShowsPatient for DrawItem {
    fn subject(&self) -> Subject {
        Subject::Order(self.order_id)
    }
}

/// One department's and priority's count on the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCount {
    pub department: String,
    pub priority: String,
    /// No result yet.
    pub pending: usize,
    /// A result waits for review.
    pub held: usize,
}

/// A STAT test at risk of missing, or past, its in-lab target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatAtRisk {
    pub order_id: i64,
    pub accession: String,
    pub test_code: String,
    pub department: Option<String>,
    /// `at_risk` or `overdue`.
    pub tat_status: &'static str,
    pub age_minutes: i64,
}

impl ShowsPatient for StatAtRisk {
    fn subject(&self) -> Subject {
        Subject::Order(self.order_id)
    }
}

/// The live TAT and workload board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardView {
    pub at: Timestamp,
    /// Per department (catalogue order) and priority (STAT first), only non-zero counts.
    pub pending: Vec<PendingCount>,
    pub stats_at_risk: Vec<StatAtRisk>,
    /// The start of each of the last hours (oldest first) and the tubes received in it.
    pub received_per_hour: Vec<(Timestamp, usize)>,
    /// Open critical calls and how many are overdue, for a caller who documents them.
    pub open_calls: Option<(usize, usize)>,
}

/// Receipts counted into the hour (of `hours` ending with the one holding `now`) they fell in.
pub(crate) fn per_hour(
    now: Timestamp,
    hours: i64,
    times: &[Timestamp],
) -> AppResult<Vec<(Timestamp, usize)>> {
    let hour = SignedDuration::from_hours(1);
    let micros = now.as_microsecond();
    let top = Timestamp::from_microsecond(micros - micros.rem_euclid(3_600_000_000))
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let mut out = Vec::new();
    for k in (0..hours).rev() {
        let start = top
            .checked_sub(hour * i32::try_from(k).unwrap_or(0))
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let end = start
            .checked_add(hour)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        out.push((
            start,
            times.iter().filter(|t| **t >= start && **t < end).count(),
        ));
    }
    Ok(out)
}

impl App {
    /// The tubes still to draw, of one ordering location (its code) or all, STAT first, then
    /// the oldest order, in order of draw (`specimen.collect`). Recorded in the access log.
    pub async fn draw_list(
        &self,
        actor: &Actor,
        location: Option<&str>,
    ) -> AppResult<Vec<DrawItem>> {
        actor.require(Permission::SpecimenCollect)?;
        let location_id = match location.map(str::trim).filter(|l| !l.is_empty()) {
            Some(code) => Some(
                self.store
                    .location_by_code(code)
                    .await?
                    .ok_or_else(|| {
                        AppError::invalid(
                            "location",
                            "unknown_location",
                            "no location has this code",
                        )
                    })?
                    .id,
            ),
            None => None,
        };
        let locations: HashMap<i64, String> = self
            .store
            .list_locations()
            .await?
            .into_iter()
            .map(|l| (l.id, l.code))
            .collect();
        let containers = ContainerType::defaults();
        let with_patient = actor.role.allows(Permission::PatientRead);
        let mut orders = HashMap::new();
        let mut tests = HashMap::new();
        let mut discard: HashMap<i64, Option<i64>> = HashMap::new();
        let mut patients: HashMap<i64, (String, String)> = HashMap::new();
        let mut out = Vec::new();
        for s in self
            .store
            .planned_specimens(location_id, DRAW_LIST_LIMIT)
            .await?
        {
            if !orders.contains_key(&s.order_id) {
                let o = self
                    .store
                    .order_by_id(s.order_id)
                    .await?
                    .ok_or_else(|| AppError::Internal("specimen without order".into()))?;
                let specimens = self.store.specimens_of_order(o.id).await?;
                discard.insert(o.id, crate::orders::discard_tube_before_of(&o, &specimens));
                orders.insert(o.id, o);
                tests.insert(s.order_id, self.store.tests_of_order(s.order_id).await?);
            }
            let (Some(order), Some(order_tests)) =
                (orders.get(&s.order_id), tests.get(&s.order_id))
            else {
                continue;
            };
            // A physician sees only their own patients' tubes.
            if actor.role.sees_own_patients_only()
                && self
                    .require_patient_visible(actor, s.patient_id, "order")
                    .await
                    .is_err()
            {
                continue;
            }
            let patient = if with_patient {
                if !patients.contains_key(&s.patient_id)
                    && let Some(p) = self.store.patient_by_id(s.patient_id).await?
                {
                    patients.insert(
                        p.id,
                        (format!("{}, {}", p.family_name, p.given_name), p.mrn),
                    );
                }
                patients.get(&s.patient_id).cloned()
            } else {
                None
            };
            let c = containers.iter().find(|c| c.code.as_str() == s.container);
            out.push(DrawItem {
                order_id: s.order_id,
                accession: s.accession.clone(),
                priority: order.priority.clone(),
                location: locations
                    .get(&order.location_id)
                    .cloned()
                    .unwrap_or_default(),
                container: s.container.clone(),
                container_name: c.map(|c| c.name.clone()).unwrap_or_default(),
                cap_colour: c.map(|c| c.cap_colour.clone()).unwrap_or_default(),
                specimen_type: s.specimen_type.clone(),
                tests: order_tests
                    .iter()
                    .filter(|t| t.specimen_id == s.id && t.status != "cancelled")
                    .map(|t| t.test_code.clone())
                    .collect(),
                ordered_at: order.created_at,
                patient,
                discard_tube_before: discard.get(&s.order_id) == Some(&Some(s.id)),
            });
        }
        self.worklist(
            actor,
            "draw_list.read",
            "location",
            location.unwrap_or("all"),
            out,
        )
        .await
    }

    /// The live board: tests running in the lab by department and priority, STAT tests at
    /// risk of their in-lab target, tubes received per hour, and (for those who document
    /// them) the open critical calls (`specimen.process`). The STAT list is recorded in the
    /// access log; the counts show no patient.
    pub async fn dashboard(&self, actor: &Actor) -> AppResult<DashboardView> {
        actor.require(Permission::SpecimenProcess)?;
        let now = self.now();
        let items = self.running_items(None, false).await?;
        let mut counts: BTreeMap<(usize, usize, String, String), (usize, usize)> = BTreeMap::new();
        let mut stats = Vec::new();
        for (department, i) in &items {
            let d = department.clone().unwrap_or_else(|| "other".into());
            let d_rank = Department::ALL
                .iter()
                .position(|x| x.as_str() == d)
                .unwrap_or(Department::ALL.len());
            let p_rank = Priority::parse(&i.priority)
                .ok()
                .and_then(|p| Priority::ALL.iter().position(|x| *x == p))
                .unwrap_or(usize::MAX);
            let c = counts
                .entry((d_rank, p_rank, d, i.priority.clone()))
                .or_default();
            if i.status == "held" {
                c.1 += 1;
            } else {
                c.0 += 1;
            }
            if i.priority == "stat" && matches!(i.tat_status, "at_risk" | "overdue") {
                stats.push(StatAtRisk {
                    order_id: i.order_id,
                    accession: i.accession.clone(),
                    test_code: i.test_code.clone(),
                    department: department.clone(),
                    tat_status: i.tat_status,
                    age_minutes: i.age_minutes,
                });
            }
        }
        // The most overdue first.
        stats.sort_by_key(|s| (s.tat_status != "overdue", -s.age_minutes));
        let stats_at_risk = self
            .worklist(actor, "dashboard.read", "dashboard", "stat_at_risk", stats)
            .await?;
        let since = now
            .checked_sub(SignedDuration::from_hours(RECEIPT_HOURS))
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let receipts = self.store.receipt_times(since).await?;
        let open_calls = if actor.role.allows(Permission::ResultVerify) {
            let calls = self.store.open_critical_calls(1000).await?;
            let overdue = calls.iter().filter(|c| now > c.due_at).count();
            Some((calls.len(), overdue))
        } else {
            None
        };
        Ok(DashboardView {
            at: now,
            pending: counts
                .into_iter()
                .map(
                    |((_, _, department, priority), (pending, held))| PendingCount {
                        department,
                        priority,
                        pending,
                        held,
                    },
                )
                .collect(),
            stats_at_risk,
            received_per_hour: per_hour(now, RECEIPT_HOURS, &receipts)?,
            open_calls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_fall_into_their_hour() {
        let now: Timestamp = "2026-11-28T16:20:00Z".parse().unwrap();
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let times = [
            t("2026-11-28T13:59:59Z"), // before the three hours
            t("2026-11-28T14:00:00Z"),
            t("2026-11-28T15:30:00Z"),
            t("2026-11-28T15:59:59Z"),
            t("2026-11-28T16:00:00Z"),
            t("2026-11-28T16:19:00Z"),
        ];
        let hours = per_hour(now, 3, &times).unwrap();
        assert_eq!(
            hours,
            vec![
                (t("2026-11-28T14:00:00Z"), 1),
                (t("2026-11-28T15:00:00Z"), 2),
                (t("2026-11-28T16:00:00Z"), 2),
            ]
        );
    }
}
