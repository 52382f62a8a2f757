//! How order messages from an EMR (ORM^O01, OML^O21) are read: one row per message, the
//! orders as a line each, or the problems that reject it. Public samples from real systems are
//! read in place from `../shared/testdata`.

use aliquot_app::connections::{InboundMessage, InboundOrders, OrderControl};
use aliquot_connect::hl7_orders;

fn sample(path: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata")
        .join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One line per order: control, placer number, priority (with where it was read), the
/// provider's NPI, the location candidates, the tests, the diagnoses, and the patient.
fn lines(m: &InboundOrders) -> Vec<String> {
    m.orders
        .iter()
        .map(|o| {
            let control = match o.control {
                OrderControl::New => "NW",
                OrderControl::Cancel => "CA",
            };
            let located =
                |l: &aliquot_app::connections::Located| format!("{}@{}", l.value, l.location);
            let patient = o.patient.as_ref().map_or("-".to_owned(), |p| {
                format!(
                    "{}^{}|{}|{}|{},{},{}",
                    p.mrn,
                    p.assigning_authority.as_deref().unwrap_or(""),
                    p.birth_date,
                    p.sex,
                    p.family_name,
                    p.given_name,
                    p.middle_name.as_deref().unwrap_or("")
                )
            });
            format!(
                "{} {} {} {}@{} npi={} loc=[{}] tests=[{}] dx=[{}] pid={}{}",
                o.location,
                control,
                located(&o.placer_order_number),
                o.priority,
                o.priority_location,
                o.provider_npi.as_ref().map_or("-".to_owned(), located),
                o.client_locations
                    .iter()
                    .map(located)
                    .collect::<Vec<_>>()
                    .join(" "),
                o.tests
                    .iter()
                    .map(|t| format!("{}@{}", t.codes.join("/"), t.location))
                    .collect::<Vec<_>>()
                    .join(" "),
                o.diagnosis_codes
                    .iter()
                    .map(located)
                    .collect::<Vec<_>>()
                    .join(" "),
                patient,
                o.reason
                    .as_deref()
                    .map_or(String::new(), |r| format!(" reason={r}")),
            )
        })
        .collect()
}

fn rejected(m: &InboundOrders) -> Vec<String> {
    m.rejected
        .iter()
        .map(|e| format!("{} {}", e.location, e.code))
        .collect()
}

const MSH: &str = "MSH|^~\\&|EMR1|CLINIC|ALIQUOT|LAB|20260501080000||ORM^O01^ORM_O01|C1|P|2.3\r";
const PID: &str = "PID|1||E12345^^^CLINIC^MR~999-99-9999^^^SSA^SS||Doe^Jane^Q||19800115|F\r";

#[test]
fn orders_are_read_field_by_field_one_row_per_message() {
    let cases: &[(&str, String, &[&str], &[&str])] = &[
        (
            "a new order: PV1-3, ORC-2, ORC-12 NPI, TQ1-9 stat, OBR-4 LOINC and local, DG1-3",
            format!(
                "{MSH}{PID}PV1|1|O|OPD^^^CLINIC\rORC|NW|PL-1||||||||||1234567893^House^Gregory\r\
                 TQ1|1||||||||S\rOBR|1|PL-1||2951-2^Sodium^LN\rOBR|2|PL-1||K^Potassium^L\r\
                 DG1|1||E11.9^Type 2 diabetes^I10\r"
            ),
            &[
                "ORC[1] NW PL-1@ORC[1]-2 stat@TQ1[1]-9 npi=1234567893@ORC[1]-12 \
               loc=[OPD@PV1[1]-3] tests=[2951-2@OBR[1]-4 K@OBR[2]-4] dx=[E11.9@DG1[1]-3] \
               pid=E12345^CLINIC|1980-01-15|F|Doe,Jane,Q",
            ],
            &[],
        ),
        (
            "placer, provider and priority from the OBR when the ORC leaves them empty; \
             OBR-4.4 the alternate code; ORC-21 and ORC-17 location candidates",
            format!(
                "{MSH}{PID}ORC|NW||||||||||||||||CLIN17||||Clinic^^^^^^^^^CLIN21\r\
                 OBR|1|PL-2||X1^Local name^99LOCAL^GLU^Glucose^L||||||||||||1234567893|||||||||||^^^^^A\r"
            ),
            &[
                "ORC[1] NW PL-2@OBR[1]-2 asap@OBR[1]-27 npi=1234567893@OBR[1]-16 \
               loc=[CLIN21@ORC[1]-21 Clinic@ORC[1]-21 CLIN17@ORC[1]-17] tests=[X1/GLU@OBR[1]-4] \
               dx=[] pid=E12345^CLINIC|1980-01-15|F|Doe,Jane,Q",
            ],
            &[],
        ),
        (
            "a cancellation with its reason; an ORC repeating the placer number continues the \
             order; a second placer number opens a second order",
            format!(
                "{MSH}{PID}ORC|CA|PL-3||||||||||||||^Duplicate order\rOBR|1|PL-3||K\r\
                 ORC|CA|PL-3\rOBR|2|PL-3||NA\rORC|NW|PL-4||||^^^^^R||||||1234567893\rOBR|1|PL-4||K\r"
            ),
            &[
                "ORC[1] CA PL-3@ORC[1]-2 routine@ORC[1]-7 npi=- loc=[] tests=[K@OBR[1]-4 NA@OBR[2]-4] \
                 dx=[] pid=E12345^CLINIC|1980-01-15|F|Doe,Jane,Q reason=Duplicate order",
                "ORC[3] NW PL-4@ORC[3]-2 routine@ORC[3]-7 npi=1234567893@ORC[3]-12 loc=[] \
                 tests=[K@OBR[3]-4] dx=[] pid=E12345^CLINIC|1980-01-15|F|Doe,Jane,Q",
            ],
            &[],
        ),
        (
            "an order control other than NW or CA, and a priority not taken, are rejected",
            format!("{MSH}{PID}ORC|XO|PL-5\rTQ1|1||||||||P\rOBR|1|PL-5||K\r"),
            &[
                "ORC[1] NW PL-5@ORC[1]-2 routine@TQ1[1]-9 npi=- loc=[] tests=[K@OBR[1]-4] dx=[] \
               pid=E12345^CLINIC|1980-01-15|F|Doe,Jane,Q",
            ],
            &["ORC[1]-1 order_control", "TQ1[1]-9 unsupported_priority"],
        ),
        (
            "no placer order number, no test, an OBR before any ORC",
            format!("{MSH}{PID}OBR|1|||K\rORC|NW\rOBR|2\r"),
            &[
                "ORC[1] NW @ORC[1]-2 routine@ORC[1]-7 npi=- loc=[] tests=[@OBR[2]-4] dx=[] \
               pid=E12345^CLINIC|1980-01-15|F|Doe,Jane,Q",
            ],
            &[
                "OBR[1] segment_sequence",
                "OBR[2]-4 required",
                "ORC[1]-2 required",
            ],
        ),
        (
            "no control id, no sender",
            "MSH|^~\\&||CLINIC|ALIQUOT|LAB|20260501080000||OML^O21^OML_O21||P|2.5.1\r".to_owned(),
            &[],
            &["MSH[1]-10 required", "MSH[1]-3 required"],
        ),
    ];
    for (what, raw, want, want_rejected) in cases {
        let m = hl7_orders::read_orders(raw.as_bytes());
        assert_eq!(lines(&m), *want, "{what}");
        assert_eq!(rejected(&m), *want_rejected, "{what}");
        assert!(hl7_orders::is_order_message(raw.as_bytes()), "{what}");
        if want_rejected.is_empty() {
            assert_eq!(m.sender, "EMR1", "{what}");
            assert_eq!(m.control_id, "C1", "{what}");
            assert_eq!(m.message_type, "ORM^O01", "{what}");
        }
    }
}

#[test]
fn public_samples_are_read_in_place() {
    let cases: &[(&str, &str, &[&str], &[&str])] = &[
        (
            "hl7/fhirconv_LAB-ORM-1_orm_o01_v23.hl7",
            "SomeSystem MSGID20060307110114 ORM^O01",
            // OBR-16 has no id: no NPI (the ingest names ORC[1]-12 as missing).
            &[
                "ORC[1] NW 88502218@ORC[1]-2 routine@ORC[1]-7 npi=- loc=[PREOP@PV1[1]-3] \
               tests=[24317-0@OBR[1]-4] dx=[] pid=10006579^1|1924-10-10|M|DUCK,DONALD,D",
            ],
            &[],
        ),
        (
            "hl7/fhirconv_MDHHS-OML-O21-2_oml_o21_v251_enhanced-ack.hl7",
            "MDHHS-DataHub TC14IG030107AA OML^O21",
            // One ORC, two OBRs: one order of two tests; ORC-16 is no reason for a new order.
            &[
                "ORC[1] NW ORD723222@ORC[1]-2 routine@ORC[1]-7 npi=8075000001@ORC[1]-12 \
               loc=[8175000005@ORC[1]-21 Detroit City Hospital@ORC[1]-21] \
               tests=[1320@OBR[1]-4 1680@OBR[2]-4] dx=[] pid=MRNTC14^|2016-02-23|F|Old,Baby Girl,",
            ],
            &[],
        ),
        (
            "hl7/fhirconv_OML-O21-02_multi-order_msh9-orm.hl7",
            "ORDApp MSG00018 ORM^O01",
            // Two ORCs, two orders; TQ1-9 R; the DG1 belongs to the first order.
            &[
                "ORC[1] NW 1101@ORC[1]-2 routine@TQ1[1]-9 npi=3850@ORC[1]-12 \
                 loc=[LABUnit01@PV1[1]-3] tests=[57698-3@OBR[1]-4] dx=[E10.9@DG1[1]-3] \
                 pid=PATID1234^test1|1988-08-18|M|EVERYMAN,ADAM,A",
                "ORC[2] NW 2203@ORC[2]-2 routine@ORC[2]-7 npi=3850@ORC[2]-12 \
                 loc=[LABUnit01@PV1[1]-3] tests=[24590-2@OBR[2]-4] dx=[] \
                 pid=PATID1234^test1|1988-08-18|M|EVERYMAN,ADAM,A",
            ],
            &[],
        ),
        (
            "hl7/hl7apy_oml_o33_v25_multi-specimen-multi-order.hl7",
            "SEND APP 978226056138290600 OML^O33",
            // Four ORC/OBR pairs, four orders; the CX-4 authority's namespace id.
            &[
                "ORC[1] NW 83428@ORC[1]-2 routine@TQ1[1]-9 npi=ND@OBR[1]-16 loc=[] \
                 tests=[TPO@OBR[1]-4] dx=[] pid=1010110909194822^GATEWAY_IL|1979-05-15|M|PIPPO,PLUTO,",
                "ORC[2] NW 83425@ORC[2]-2 routine@TQ1[2]-9 npi=ND@OBR[2]-16 loc=[] \
                 tests=[CA@OBR[2]-4] dx=[] pid=1010110909194822^GATEWAY_IL|1979-05-15|M|PIPPO,PLUTO,",
                "ORC[3] NW 83426@ORC[3]-2 routine@TQ1[3]-9 npi=ND@OBR[3]-16 loc=[] \
                 tests=[HDL@OBR[3]-4] dx=[] pid=1010110909194822^GATEWAY_IL|1979-05-15|M|PIPPO,PLUTO,",
                "ORC[4] NW 83427@ORC[4]-2 routine@TQ1[4]-9 npi=ND@OBR[4]-16 loc=[] \
                 tests=[LDL@OBR[4]-4] dx=[] pid=1010110909194822^GATEWAY_IL|1979-05-15|M|PIPPO,PLUTO,",
            ],
            &[],
        ),
    ];
    for (path, header, want, want_rejected) in cases {
        let raw = sample(path);
        assert!(hl7_orders::is_order_message(&raw), "{path}");
        let InboundMessage::Orders(m) = hl7_orders::read_any(&raw) else {
            panic!("{path} is not read as orders");
        };
        assert_eq!(
            format!("{} {} {}", m.sender, m.control_id, m.message_type),
            *header,
            "{path}"
        );
        assert_eq!(lines(&m), *want, "{path}");
        assert_eq!(rejected(&m), *want_rejected, "{path}");
    }
}

#[test]
fn results_are_still_read_as_results() {
    let raw = sample("hl7/fhirconv_LAB-ORU-1_multi-obr-spm_v25.hl7");
    assert!(!hl7_orders::is_order_message(&raw));
    assert!(matches!(
        hl7_orders::read_any(&raw),
        InboundMessage::Results(_)
    ));
}
