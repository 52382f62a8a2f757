//! The demo lab's morning: 40 patients (`DEMO-0001` … `DEMO-0040`, every age, three pairs of
//! look-alikes registered past the duplicate check with a reason), 60 orders of every priority
//! from the demo catalogue, and their tubes in every status from planned to stored, with one
//! send-out and one disposal. Everything goes through the `App` use cases, as the demo staff
//! (the phlebotomist draws, the technician registers, orders, dispatches and receives, the
//! technologist processes, stores, rejects and sends out), so every step is audited like real
//! work. Deterministic: no randomness; times are relative to the app's clock.

use aliquot_app::{
    Actor, AliquotInput, App, CentrifugationInput, CollectInput, DispatchInput, DisposeInput,
    NewLocationInput, NewOrderInput, NewPatientInput, NewProviderInput, NewStorageUnitInput,
    OrderView, PatientIdentification, ReceiveInput, SendOutInput, ShipmentInput, ShipmentStepInput,
    SpecimenView,
};
use aliquot_app::{CorrectionInput, CriticalCallInput, ResultInput};
use aliquot_domain::catalog::ContainerType;
use anyhow::{Context, anyhow};
use jiff::{SignedDuration, Timestamp, ToSpan, tz::TimeZone};

pub struct Staff {
    pub operator: Actor,
    pub phlebotomist: Actor,
    pub technician: Actor,
    pub technologist: Actor,
}

pub struct Summary {
    pub patients: usize,
    pub orders: usize,
    pub specimens: usize,
    pub results: usize,
}

/// A demo patient: family, given, birth date (or days before today), sex, and the patient
/// an earlier entry it resembles (registered anyway, with the registrar's reason).
struct Person {
    family: &'static str,
    given: &'static str,
    born: Born,
    sex: &'static str,
    look_alike: Option<&'static str>,
}

enum Born {
    On(&'static str),
    DaysAgo(i64),
}

const fn p(
    family: &'static str,
    given: &'static str,
    born: &'static str,
    sex: &'static str,
) -> Person {
    Person {
        family,
        given,
        born: Born::On(born),
        sex,
        look_alike: None,
    }
}

const fn twin(
    family: &'static str,
    given: &'static str,
    born: &'static str,
    sex: &'static str,
    reason: &'static str,
) -> Person {
    Person {
        family,
        given,
        born: Born::On(born),
        sex,
        look_alike: Some(reason),
    }
}

/// Forty fictional people of every age. Not MRN-1001 / Garcia Maria 1975-07-14 (the README's
/// walkthrough registers her) nor anyone resembling her.
const PEOPLE: [Person; 40] = [
    p("Abernathy", "Clement", "1931-02-17", "M"),
    p("Okonkwo", "Adaeze", "1984-09-23", "F"),
    p("Lindqvist", "Sven", "1957-12-02", "M"),
    p("Takahashi", "Emiko", "1969-05-30", "F"),
    p("Whitfield", "Jonathan", "1962-04-09", "M"),
    twin(
        "Whitfield",
        "Jonathon",
        "1962-04-09",
        "M",
        "different person: twin brother, checked with photo ID",
    ),
    p("Delacroix", "Amelie", "2019-08-11", "F"),
    p("Brennan", "Fionnuala", "1948-01-26", "F"),
    p("Castellanos", "Rodrigo", "1991-10-15", "M"),
    p("Haddad", "Yasmin", "2008-06-19", "F"),
    p("Moreno", "Lucia", "1988-03-05", "F"),
    twin(
        "Moreno",
        "Lucia",
        "1988-05-03",
        "F",
        "different person: born 3 May, not 5 March; other address and phone",
    ),
    p("Petrovic", "Dragan", "1953-07-28", "M"),
    p("Nguyen", "Thi Hoa", "1977-11-04", "F"),
    p("Osei", "Kwabena", "2001-02-08", "M"),
    p("Fairbanks", "Winifred", "1936-09-12", "F"),
    p("Grant", "Elliot", "1979-11-21", "M"),
    twin(
        "Elliot",
        "Grant",
        "1979-11-21",
        "M",
        "different person: Grant Elliot, not Elliot Grant; other insurance number",
    ),
    p("Kowalczyk", "Zofia", "2024-04-01", "F"),
    p("Ramanathan", "Arjun", "1966-03-14", "M"),
    p("Sorensen", "Ingrid", "1994-12-24", "F"),
    p("Mbeki", "Thandiwe", "1982-05-17", "F"),
    p("Quintero", "Mateo", "2015-10-03", "M"),
    p("Vasquez", "Isabela", "1971-08-29", "F"),
    p("Harrington", "Percival", "1944-04-16", "M"),
    p("Olawale", "Folake", "1959-01-09", "F"),
    p("Lindgren", "Astrid", "2011-07-22", "F"),
    p("Murphy", "Declan", "1986-02-27", "M"),
    p("Yilmaz", "Emre", "1973-06-05", "M"),
    p("Beaumont", "Colette", "1952-10-31", "F"),
    p("Achterberg", "Pieter", "1998-09-07", "M"),
    p("Fontaine", "Manon", "2021-03-18", "F"),
    p("Iwu", "Chinedu", "1964-12-12", "M"),
    p("Rasmussen", "Freja", "1990-04-25", "F"),
    p("Carrow", "Tobias", "1939-11-08", "M"),
    p("Sandoval", "Paloma", "1981-01-19", "F"),
    p("Holloway", "Gideon", "1955-05-02", "M"),
    p("Varga", "Eszter", "2005-12-30", "F"),
    Person {
        family: "Novak",
        given: "Baby Girl",
        born: Born::DaysAgo(2),
        sex: "F",
        look_alike: None,
    },
    p("Prakash", "Meera", "1968-08-13", "F"),
];

/// How far an order's tubes get this morning.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    Planned,
    Collected,
    InTransit,
    Received,
    InProcess,
    Processed,
    Aliquoted,
    Stored,
    Rejected,
    SentOut,
}

/// How many orders reach each stage, in order of entry (60 in all).
const STAGES: [(Stage, usize); 10] = [
    (Stage::Stored, 6),
    (Stage::Aliquoted, 4),
    (Stage::Processed, 6),
    (Stage::InProcess, 6),
    (Stage::Rejected, 3),
    (Stage::SentOut, 1),
    (Stage::Received, 8),
    (Stage::InTransit, 7),
    (Stage::Collected, 8),
    (Stage::Planned, 11),
];

const PRIORITIES: [&str; 7] = [
    "routine", "stat", "routine", "asap", "routine", "timed", "routine",
];

/// The requisitions of the morning, from the demo catalogue (stable enough to be drawn an hour
/// or two ago: no lactate, which keeps one hour at room temperature).
const MENU: [&[&str]; 13] = [
    &["CBC", "BMP"],
    &["CMP"],
    &["LIPID", "A1C"],
    &["PTINR"],
    &["TSH", "FT4"],
    &["UA", "UCX"],
    &["CBC", "CMP", "PTINR"],
    &["TROPI", "CK", "BMP"],
    &["HEPATIC", "CBC"],
    &["FERR", "IRON", "CBC"],
    &["TS", "CBC"],
    &["CRP", "ESR"],
    &["PSA", "MG", "PHOS"],
];

/// Requisitions with a serum tube, for the orders whose serum is poured off.
const SERUM_MENU: [&[&str]; 4] = [
    &["CMP", "LIPID"],
    &["TSH", "FT4"],
    &["BMP", "CBC"],
    &["HEPATIC"],
];

/// A storage holder: path, kind, grid (rows, columns).
type Holder = (&'static str, &'static str, Option<(i64, i64)>);

const STORAGE: [Holder; 7] = [
    ("CORE", "room", None),
    ("CORE/REF-01", "refrigerator", None),
    ("CORE/REF-01/R1", "rack", None),
    ("CORE/REF-01/R1/B1", "box", Some((9, 9))),
    ("CORE/FRZ-01", "freezer", None),
    ("CORE/FRZ-01/R1", "rack", None),
    ("CORE/FRZ-01/R1/B1", "box", Some((9, 9))),
];
const BOX: &str = "CORE/REF-01/R1/B1";
/// Coagulation plasma is never refrigerated (cold activation of factor VII): it is frozen.
const FREEZER_BOX: &str = "CORE/FRZ-01/R1/B1";

fn err(what: impl std::fmt::Display) -> impl FnOnce(aliquot_app::AppError) -> anyhow::Error {
    move |e| anyhow!("demo morning: {what}: {e}")
}

fn ago(now: Timestamp, minutes: i64) -> anyhow::Result<String> {
    Ok(now
        .checked_sub(SignedDuration::from_mins(minutes))
        .context("time out of range")?
        .to_string())
}

/// A well-filled tube: the container's nominal draw (a citrate tube must be ≥ 90 % full).
/// The receiving technician's fill attestation for a full tube: a citrate tube filled to its
/// line, any other its usable specimen volume measured.
fn full_tube(s: &SpecimenView) -> (Option<i64>, Option<String>) {
    match ContainerType::defaults()
        .into_iter()
        .find(|c| c.code.as_str() == s.container)
    {
        Some(c) if c.min_fill_percent.is_some() => (None, Some("to_line".into())),
        Some(c) => (Some(i64::from(c.usable_volume_ul)), None),
        None => (Some(s.capacity_ul), None),
    }
}

fn needs_spin(s: &SpecimenView) -> bool {
    matches!(s.specimen_type.as_str(), "serum" | "plasma")
}

pub async fn seed(app: &App, staff: &Staff) -> anyhow::Result<Summary> {
    let now = app.now();
    let today = now.to_zoned(TimeZone::UTC).date();

    // A second place orders come from, and a second physician (ids 2; the README's ids 1 stay).
    app.create_provider(
        &staff.operator,
        NewProviderInput {
            npi: "1245319599".into(),
            family_name: "Okafor".into(),
            given_name: "Nnamdi".into(),
            phone: "+1 555 010 0101".into(),
        },
    )
    .await
    .map_err(err("the second provider"))?;
    app.create_location(
        &staff.operator,
        NewLocationInput {
            code: "ED".into(),
            name: "Demo emergency department".into(),
            kind: "emergency".into(),
            address: "1 Demo Street, ground floor".into(),
            phone: Some("+1 555 010 0300".into()),
            contact_name: None,
        },
    )
    .await
    .map_err(err("the emergency department"))?;

    for (path, kind, grid) in STORAGE {
        app.register_storage_unit(
            &staff.technologist,
            NewStorageUnitInput {
                path: path.into(),
                kind: kind.into(),
                name: None,
                temperature: match kind {
                    "refrigerator" => Some("refrigerated".into()),
                    "freezer" => Some("frozen".into()),
                    _ => None,
                },
                rows: grid.map(|g| g.0),
                cols: grid.map(|g| g.1),
            },
        )
        .await
        .map_err(err(format!("storage holder {path}")))?;
    }

    // Registration at the front desk.
    let mut ids = Vec::new();
    for (i, person) in PEOPLE.iter().enumerate() {
        let mrn = format!("DEMO-{:04}", i + 1);
        let birth_date = match person.born {
            Born::On(d) => d.to_owned(),
            Born::DaysAgo(n) => today
                .checked_sub(n.days())
                .context("birth date out of range")?
                .to_string(),
        };
        let registered = app
            .register_patient(
                &staff.technician,
                NewPatientInput {
                    mrn: mrn.clone(),
                    family_name: person.family.into(),
                    given_name: person.given.into(),
                    birth_date: birth_date.clone(),
                    sex: person.sex.into(),
                    clinical_sex: None,
                    birth_time: None,
                    confirm_not_duplicate: person.look_alike.is_some(),
                    reason: person.look_alike.map(str::to_owned),
                    ..NewPatientInput::default()
                },
            )
            .await
            .map_err(err(format!("patient {mrn}")))?;
        if let Err(candidates) = registered {
            return Err(anyhow!(
                "demo morning: patient {mrn} resembles patients {:?}",
                candidates.iter().map(|c| c.patient_id).collect::<Vec<_>>()
            ));
        }
        ids.push(PatientIdentification {
            mrn: Some(mrn),
            birth_date: Some(birth_date),
            ..PatientIdentification::default()
        });
    }

    let stages = STAGES
        .iter()
        .flat_map(|&(stage, n)| std::iter::repeat_n(stage, n));
    let mut counts = [0usize; 10];
    let mut position = 0;
    let mut specimens = 0;
    let mut orders = 0;
    let mut in_lab = Vec::new();
    for (i, stage) in stages.enumerate() {
        let nth = {
            let k = STAGES.iter().position(|(s, _)| *s == stage).unwrap_or(0);
            counts[k] += 1;
            counts[k] - 1
        };
        let patient = &ids[i % ids.len()];
        let priority = PRIORITIES[i % PRIORITIES.len()];
        let tests: &[&str] = match stage {
            Stage::SentOut => &["VITD"],
            Stage::Aliquoted => SERUM_MENU[nth % SERUM_MENU.len()],
            Stage::Rejected => [&["CMP"][..], &["CBC"], &["UA"]][nth % 3],
            Stage::Planned if nth == 1 => &["LACT", "BCX"],
            _ => MENU[i % MENU.len()],
        };
        // Stat and asap requisitions come from the emergency department.
        let location_id = if matches!(priority, "stat" | "asap") {
            2
        } else {
            1
        };
        let timed_at = (priority == "timed")
            .then(|| {
                let at = if stage == Stage::Planned {
                    now.checked_add(SignedDuration::from_mins(90))
                } else {
                    now.checked_sub(SignedDuration::from_mins(60))
                };
                at.map(|t| t.to_string()).context("time out of range")
            })
            .transpose()?;
        let order = app
            .place_order(
                &staff.technician,
                NewOrderInput {
                    patient: patient.clone(),
                    provider_id: 1 + i64::from(i % 3 == 2),
                    location_id,
                    tests: tests.iter().map(|t| (*t).to_owned()).collect(),
                    priority: priority.into(),
                    timed_at,
                    clinical_notes: (priority == "timed")
                        .then(|| "trough level: draw at the time given".into()),
                    diagnosis_codes: Vec::new(),
                    placer_order_number: Some(format!("DEMO-PO-{:03}", i + 1)),
                    winged_collection_set: false,
                },
            )
            .await
            .map_err(err(format!("order {}", i + 1)))?;
        orders += 1;
        specimens += order.specimens.len();
        if stage != Stage::Planned {
            walk(
                app,
                staff,
                now,
                &order,
                patient,
                stage,
                i,
                nth,
                &mut position,
            )
            .await?;
        }
        if matches!(
            stage,
            Stage::Received
                | Stage::InProcess
                | Stage::Processed
                | Stage::Stored
                | Stage::Aliquoted
        ) {
            in_lab.push(order.id);
        }
    }
    let results = results(app, staff, &in_lab).await?;
    Ok(Summary {
        patients: PEOPLE.len(),
        orders,
        specimens,
        results,
    })
}

/// A plausible value for each test the analysers of the demo lab report.
const VALUES: &[(&str, &str)] = &[
    ("NA", "140"),
    ("K", "4.2"),
    ("CL", "103"),
    ("CO2", "25"),
    ("BUN", "14"),
    ("CREA", "0.86"),
    ("GLU", "92"),
    ("CA", "9.4"),
    ("TP", "7.1"),
    ("ALB", "4.3"),
    ("TBIL", "0.6"),
    ("DBIL", "0.2"),
    ("ALP", "72"),
    ("ALT", "22"),
    ("AST", "24"),
    ("CHOL", "186"),
    ("TRIG", "118"),
    ("HDL", "56"),
    ("A1C", "5.4"),
    ("TSH", "1.850"),
    ("FT4", "1.21"),
    ("CK", "96"),
    ("TROPI", "0.012"),
    ("FERR", "88"),
    ("IRON", "95"),
    ("CRP", "2.1"),
    ("ESR", "9"),
    ("PSA", "0.84"),
    ("MG", "2.0"),
    ("PHOS", "3.6"),
    ("WBC", "6.8"),
    ("RBC", "4.62"),
    ("HGB", "13.9"),
    ("HCT", "41.5"),
    ("MCV", "90.1"),
    ("MCH", "30.2"),
    ("MCHC", "33.5"),
    ("RDW", "13.1"),
    ("PLT", "245"),
    ("PT", "12.1"),
    ("INR", "1.0"),
    ("PTT", "29.8"),
    ("UPH", "6.0"),
    ("USG", "1.015"),
    ("UGLU", "Negative"),
    ("UPRO", "Trace"),
    ("UKET", "Negative"),
    ("UBLD", "Negative"),
    ("ULEU", "1+"),
    ("UNIT", "Negative"),
];

/// The analysers' morning: results for the tubes in the laboratory, most released by the
/// rules, some held (a critical potassium called and verified, another still to call, an
/// instrument flag, tubes past their stability), one corrected; the rest still pending.
async fn results(app: &App, staff: &Staff, in_lab: &[i64]) -> anyhow::Result<usize> {
    let mut posted = 0;
    let mut criticals = 0;
    let mut flagged = false;
    let mut corrected = false;
    let mut not_performed = false;
    for (n, id) in in_lab.iter().enumerate() {
        let order = app
            .order(&staff.technician, *id)
            .await
            .map_err(err(format!("order {id}")))?;
        let mut items: Vec<ResultInput> = Vec::new();
        for t in &order.tests {
            let Some(&(_, value)) = VALUES.iter().find(|(c, _)| *c == t.test_code) else {
                continue;
            };
            let in_lab = order.specimens.iter().any(|s| {
                s.accession == t.accession
                    && matches!(
                        s.status.as_str(),
                        "received" | "in_process" | "processed" | "stored"
                    )
            });
            // Every third order's haematology is still on the analyser.
            if !in_lab
                || (n % 3 == 2
                    && [
                        "WBC", "RBC", "HGB", "HCT", "MCV", "MCH", "MCHC", "RDW", "PLT",
                    ]
                    .contains(&t.test_code.as_str()))
            {
                continue;
            }
            let mut item = ResultInput {
                accession: t.accession.clone(),
                test: t.test_code.clone(),
                value: value.into(),
                instrument: Some("DEMO-ANALYSER".into()),
                ..ResultInput::default()
            };
            if t.test_code == "K" && criticals < 2 {
                item.value = ["6.4", "2.7"][criticals].into();
                criticals += 1;
            } else if t.test_code == "NA" && !flagged {
                item.flags = vec!["short sample".into()];
                flagged = true;
            }
            items.push(item);
        }
        // One urine culture cannot be set up: the container leaked in transport.
        if !not_performed && order.tests.iter().any(|t| t.test_code == "UCX") {
            app.mark_not_performed(
                &staff.technologist,
                order.id,
                "UCX",
                Some("container leaked in transport; recollection requested"),
            )
            .await
            .map_err(err("the urine culture not performed"))?;
            not_performed = true;
        }
        if items.is_empty() {
            continue;
        }
        let codes: Vec<String> = items.iter().map(|i| i.test.clone()).collect();
        let outcomes = app
            .post_results(&staff.technician, items)
            .await
            .map_err(err(format!("results of order {id}")))?;
        for o in &outcomes {
            if let Some(e) = &o.error {
                return Err(anyhow!("demo result {} of order {id}: {e}", o.index));
            }
        }
        posted += outcomes.len();
        // The first critical potassium is called, read back and verified.
        for o in outcomes
            .iter()
            .filter(|o| o.flags.iter().any(|f| f == "HH"))
        {
            let Some(rid) = o.result_id else { continue };
            app.document_critical_call(
                &staff.technologist,
                rid,
                CriticalCallInput {
                    notified_name: "Dr. Nnamdi Okafor".into(),
                    notified_role: "physician".into(),
                    read_back: true,
                },
            )
            .await
            .map_err(err("the critical call"))?;
            app.verify_result(
                &staff.technologist,
                rid,
                None,
                Some("called and read back"),
                None,
            )
            .await
            .map_err(err("verifying the critical potassium"))?;
        }
        // One glucose is corrected: the technologist keyed the wrong line.
        if !corrected
            && let Some(rid) = outcomes
                .iter()
                .find(|o| {
                    o.status.as_deref() == Some("released")
                        && codes.get(o.index).is_some_and(|c| c == "GLU")
                })
                .and_then(|o| o.result_id)
        {
            app.correct_result(
                &staff.technologist,
                rid,
                CorrectionInput {
                    value: "129".into(),
                    units: None,
                    reason: Some("transcription error: value keyed from the wrong line".into()),
                    comment: None,
                    // A correction is an electronic signature: the technologist signs.
                    signature: Some(aliquot_app::SignatureInput {
                        password: Some(super::demo_password(
                            aliquot_domain::auth::Role::Technologist,
                        )),
                        totp: None,
                        address: None,
                    }),
                },
            )
            .await
            .map_err(err("the corrected glucose"))?;
            corrected = true;
        }
    }
    Ok(posted)
}

/// Takes an order's tubes as far as `stage`.
#[allow(clippy::too_many_arguments)]
async fn walk(
    app: &App,
    staff: &Staff,
    now: Timestamp,
    order: &OrderView,
    patient: &PatientIdentification,
    stage: Stage,
    i: usize,
    nth: usize,
    position: &mut usize,
) -> anyhow::Result<()> {
    use Stage as S;
    // Draw times: the earlier the stage, the more recent the draw. Tubes spun this morning were
    // drawn at least 50 minutes ago (a serum tube clots 30 minutes before it may be spun).
    let minutes = match stage {
        S::Collected => [0, 5, 10, 20, 30, 45, 60, 90][nth % 8],
        S::InTransit => 15 + 5 * (nth as i64 % 6),
        S::Received | S::Rejected | S::SentOut => 30 + 10 * (nth as i64 % 6),
        _ => 50 + 10 * (nth as i64 % 6),
    };
    let (site, collector) = match i % 4 {
        0 => ("Outpatient draw station", None),
        1 => ("Emergency department", Some("R. Adeyemi, RN")),
        2 => ("Ward 3", Some("K. Lindholm, RN")),
        _ => ("Outpatient draw station", None),
    };
    for s in &order.specimens {
        let acc = s.accession.as_str();
        let step = |what: &'static str| err(format!("{what} {acc}"));
        app.collect_specimen(
            &staff.phlebotomist,
            acc,
            CollectInput {
                collected_at: ago(now, minutes)?,
                collector: collector.map(str::to_owned),
                site: Some(site.into()),
                patient: patient.clone(),
                temperature: None,
            },
        )
        .await
        .map_err(step("collect"))?;
        if stage == S::Collected {
            continue;
        }
        app.dispatch_specimen(
            &staff.technician,
            acc,
            DispatchInput {
                courier: format!("Route {}", 3 + i % 3),
                from_location: site.into(),
                destination: "Core lab".into(),
                temperature: None,
            },
        )
        .await
        .map_err(step("dispatch"))?;
        if stage == S::InTransit {
            continue;
        }
        if stage == S::Rejected && s.container == "UCUP" {
            app.reject_specimen(
                &staff.technologist,
                acc,
                "leaked",
                Some("cup arrived leaking in the courier bag"),
            )
            .await
            .map_err(step("reject"))?;
            continue;
        }
        let received = app
            .receive_specimen(
                &staff.technician,
                acc,
                ReceiveInput {
                    volume_ul: full_tube(s).0,
                    fill: full_tube(s).1,
                    label: Some("ok".into()),
                    container: Some(s.container.clone()),
                    order_id: Some(order.id),
                    ..ReceiveInput::default()
                },
            )
            .await
            .map_err(step("receive"))?;
        if let Err(problems) = received {
            let codes: Vec<_> = problems.iter().map(|p| p.code.as_str()).collect();
            return Err(anyhow!("demo morning: receipt of {acc} refused: {codes:?}"));
        }
        match stage {
            S::Received => continue,
            S::Rejected => {
                let (reason, comment) = match s.container.as_str() {
                    "SST" => ("hemolyzed", "grossly hemolysed after a difficult draw"),
                    "LAV" => ("clotted", "clot seen on inversion"),
                    _ => continue,
                };
                app.reject_specimen(&staff.technologist, acc, reason, Some(comment))
                    .await
                    .map_err(step("reject"))?;
                // The first rejected tube is discarded at once, as biohazard: before its
                // retention, so with the technologist's reason.
                if nth == 0 {
                    app.dispose_specimen(
                        &staff.technologist,
                        acc,
                        DisposeInput {
                            method: "biohazard".into(),
                            reason: Some("rejection confirmed with the ward; recollected".into()),
                        },
                    )
                    .await
                    .map_err(step("dispose"))?;
                }
                continue;
            }
            S::SentOut => {
                app.send_out_specimen(
                    &staff.technologist,
                    acc,
                    SendOutInput {
                        reference_lab: "RRL".into(),
                        tests: None,
                        tracking: None,
                        temperature: Some("refrigerated".into()),
                    },
                )
                .await
                .map_err(step("send out"))?;
                // Packed into a shipment with its manifest and handed to the courier.
                let shipment = app
                    .pack_shipment(
                        &staff.technologist,
                        ShipmentInput {
                            reference_lab: "RRL".into(),
                            temperature: "refrigerated".into(),
                            accessions: Some(vec![acc.to_owned()]),
                        },
                    )
                    .await
                    .map_err(step("pack the shipment"))?;
                app.ship_shipment(
                    &staff.technologist,
                    shipment.id,
                    ShipmentStepInput {
                        version: shipment.version,
                        courier: Some("Regional courier".into()),
                        tracking: Some("DEMO-TRK-0001".into()),
                        ..ShipmentStepInput::default()
                    },
                )
                .await
                .map_err(step("ship"))?;
                continue;
            }
            _ => {}
        }
        app.start_processing(&staff.technologist, acc)
            .await
            .map_err(step("start processing"))?;
        if needs_spin(s) {
            // Each container's protocol: citrate to platelet-poor plasma (1,500 g × 15 min).
            let (rcf_g, spin_minutes) = if s.container == "BLU" {
                (1500, 15)
            } else {
                (1300, 10)
            };
            app.centrifuge_specimen(
                &staff.technologist,
                acc,
                CentrifugationInput {
                    centrifuge_id: "CF-1".into(),
                    rcf_g: Some(rcf_g),
                    rpm: None,
                    radius_cm: None,
                    minutes: spin_minutes,
                    temperature_c: 20.0,
                    started_at: Some(ago(now, minutes - 40)?),
                },
            )
            .await
            .map_err(step("centrifuge"))?;
        }
        if stage == S::InProcess {
            continue;
        }
        app.complete_processing(&staff.technologist, acc)
            .await
            .map_err(step("complete processing"))?;
        if stage == S::Aliquoted && s.specimen_type == "serum" {
            app.aliquot_specimen(
                &staff.technologist,
                acc,
                AliquotInput {
                    volume_ul: 500,
                    container: None,
                    tests: None,
                },
            )
            .await
            .map_err(step("aliquot"))?;
        }
        if stage == S::Stored {
            let row = char::from(b'A' + u8::try_from(*position / 9).unwrap_or(0));
            let holder = if s.container == "BLU" {
                FREEZER_BOX
            } else {
                BOX
            };
            let location = format!("{holder}/{row}{}", *position % 9 + 1);
            *position += 1;
            app.store_specimen(&staff.technologist, acc, &location)
                .await
                .map_err(step("store"))?;
        }
    }
    Ok(())
}
