//! Orders from an EMR over MLLP end to end, on both databases: an EMR registered like an
//! instrument sends ORM^O01 / OML^O21 over a real socket; the orders are placed through the
//! same use case as `POST /api/v1/orders`, as the EMR, acknowledged after the commit,
//! answered from the store when resent; problems keep the message in the interface error
//! queue (nothing of it placed) until an analyst fixes the cause and replays it.

use std::net::SocketAddr;
use std::time::Duration;

use aliquot_connect::MllpConfig;
use aliquot_connect::simulate::{MllpClient, ack_code};
use aliquot_domain::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::results::{Ctx, setup};
use crate::support::*;

crate::both_backends!(
    a_new_order_is_placed_as_the_emr_and_a_resend_is_answered_from_the_store,
    an_unknown_patient_waits_in_the_error_queue_unless_registration_is_allowed,
    an_unknown_test_or_a_duplicate_placer_number_places_nothing,
    a_cancellation_cancels_the_order_by_placer_number,
    enhanced_mode_answers_commit_then_application_acknowledgement,
);

const TIMEOUT: Duration = Duration::from_secs(20);

/// The patient `setup` registers, as the EMR names them (MRN and birth date).
const PID_900: &str = "PID|1||MRN-900^^^^MR||Okonkwo-Lindqvist^Zoe||19610409|F\r";

async fn listen(c: &Ctx) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(aliquot_connect::serve_mllp(
        listener,
        c.app.app.clone(),
        MllpConfig::default(),
        std::future::pending::<()>(),
    ));
    addr
}

/// The EMR is registered like an instrument: protocol hl7, its MSH-3 as sender.
async fn register_emr(c: &Ctx, admin: &str) {
    let (s, v) = c
        .app
        .post(
            "/api/v1/instruments",
            admin,
            json!({"code": "EMR1", "name": "Clinic EMR", "protocol": "hl7",
                   "sender": "EMR1", "department": "chemistry", "test_codes": []}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

fn orm(control_id: &str, pid: &str, orders: &str) -> String {
    format!(
        "MSH|^~\\&|EMR1|CLINIC|ALIQUOT|LAB|20261128080000||ORM^O01^ORM_O01|{control_id}|P|2.5.1\r\
         {pid}PV1|1|O|OPD^^^CLINIC\r{orders}"
    )
}

/// A new order of potassium and sodium (by LOINC), stat, for a type 2 diabetic.
fn new_order(placer: &str) -> String {
    format!(
        "ORC|NW|{placer}||||||||||1234567893^House^Gregory^^^^^^NPI\rTQ1|1||||||||S\r\
         OBR|1|{placer}||K^Potassium^L\rOBR|2|{placer}||2951-2^Sodium^LN\rDG1|1||E11.9^^I10\r"
    )
}

fn segment<'a>(ack: &'a str, name: &str) -> Vec<&'a str> {
    ack.split('\r')
        .filter(|s| s.starts_with(&format!("{name}|")))
        .collect()
}

async fn orders_by_placer(c: &Ctx, placer: &str) -> Vec<Value> {
    let (s, v) = c
        .app
        .get(
            &format!("/api/v1/orders?placer_order_number={placer}"),
            &c.tech,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array().unwrap().clone()
}

async fn error_queue(c: &Ctx, admin: &str) -> Vec<Value> {
    let (s, q) = c
        .app
        .get("/api/v1/interface/messages?status=error", admin)
        .await;
    assert_eq!(s, StatusCode::OK, "{q}");
    q.as_array().unwrap().clone()
}

async fn a_new_order_is_placed_as_the_emr_and_a_resend_is_answered_from_the_store(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    register_emr(&c, &admin).await;
    let addr = listen(&c).await;
    let mut client = MllpClient::connect(addr).await.expect("connect");
    let before = c.app.audit_len().await;
    let msg = orm("ORM-0001", PID_900, &new_order("PL-1"));
    let ack = client.send(msg.as_bytes(), TIMEOUT).await.expect("ack");
    let text = String::from_utf8(ack.clone()).unwrap();
    assert_eq!(ack_code(&ack), "AA", "{text}");
    assert_eq!(segment(&text, "MSA"), ["MSA|AA|ORM-0001"], "{text}");
    assert!(segment(&text, "ERR").is_empty(), "{text}");
    // Acknowledged means committed: the order is there, as POST /api/v1/orders makes it.
    let found = orders_by_placer(&c, "PL-1").await;
    assert_eq!(found.len(), 1, "{found:?}");
    let o = &found[0];
    assert_eq!(o["priority"], "stat");
    assert_eq!(o["status"], "active");
    assert_eq!(o["diagnosis_codes"], json!(["E11.9"]));
    let mut tests: Vec<&str> = o["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["test_code"].as_str().unwrap())
        .collect();
    tests.sort_unstable();
    assert_eq!(tests, ["K", "NA"], "{o}");
    assert!(!o["specimens"].as_array().unwrap().is_empty(), "{o}");
    // The answer is the order response ORR^O02: per test an ORC/OBR pair, ORC-1 OK, the
    // placer number, and the lab's order id as the filler order number (ORC-3, OBR-3).
    let id = o["id"].as_i64().unwrap();
    assert!(
        segment(&text, "MSH")[0].contains("|ORR^O02^ORR_O02|"),
        "{text}"
    );
    assert_eq!(
        segment(&text, "ORC"),
        [
            format!("ORC|OK|PL-1|{id}||SC"),
            format!("ORC|OK|PL-1|{id}||SC")
        ],
        "{text}"
    );
    assert_eq!(
        segment(&text, "OBR"),
        [
            format!("OBR|1|PL-1|{id}|K"),
            format!("OBR|2|PL-1|{id}|2951-2")
        ],
        "{text}"
    );
    // Audited as the EMR, from HL7.
    let (s, events) = c
        .app
        .get(&format!("/api/v1/audit/events?after={before}"), &admin)
        .await;
    assert_eq!(s, StatusCode::OK);
    let create: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "order.create")
        .collect();
    assert_eq!(create.len(), 1, "{events}");
    assert_eq!(create[0]["actor_name"], "instrument:EMR1");
    assert_eq!(create[0]["source"], "hl7");
    // The same message again (the ACK was lost): the stored answer, byte for byte, and no
    // second order.
    let audit = c.app.audit_len().await;
    let again = client.send(msg.as_bytes(), TIMEOUT).await.expect("ack");
    assert_eq!(again, ack);
    assert_eq!(c.app.audit_len().await, audit);
    assert_eq!(orders_by_placer(&c, "PL-1").await.len(), 1);
    // The log lists it, accepted, for the EMR.
    let (_, list) = c.app.get("/api/v1/interface/messages", &admin).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["status"], "accepted");
    assert_eq!(list[0]["connection"], "EMR1");
    assert_eq!(list[0]["message_type"], "ORM^O01", "{list}");
    assert_eq!(list[0]["posted"], 1);
    c.app.finish().await;
}

async fn an_unknown_patient_waits_in_the_error_queue_unless_registration_is_allowed(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    register_emr(&c, &admin).await;
    let addr = listen(&c).await;
    let mut client = MllpClient::connect(addr).await.expect("connect");
    // Known to the EMR under its own authority, unknown to the lab.
    let pid = "PID|1||E-777^^^CLINIC^MR||Nakamura^Hiro^K||19750302|M\r";
    let ack = client
        .send(orm("ORM-0002", pid, &new_order("PL-2")).as_bytes(), TIMEOUT)
        .await
        .expect("ack");
    let text = String::from_utf8(ack.clone()).unwrap();
    assert_eq!(ack_code(&ack), "AE", "{text}");
    assert_eq!(segment(&text, "MSA")[0], "MSA|AE|ORM-0002", "{text}");
    let err = segment(&text, "ERR");
    assert_eq!(err.len(), 1, "{text}");
    assert!(err[0].starts_with("ERR||PID^1^3|204^"), "{text}");
    assert!(err[0].contains("(unknown_patient)"), "{text}");
    // Unable to accept: no filler order number.
    assert_eq!(
        segment(&text, "ORC"),
        ["ORC|UA|PL-2", "ORC|UA|PL-2"],
        "{text}"
    );
    assert!(orders_by_placer(&c, "PL-2").await.is_empty());
    let queue = error_queue(&c, &admin).await;
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert_eq!(queue[0]["errors"][0]["code"], "unknown_patient");
    assert_eq!(queue[0]["errors"][0]["location"], "PID[1]-3");
    let id = queue[0]["id"].as_i64().unwrap();
    // The lab allows registration by the EMR; the analyst replays: registered, placed.
    let (s, v) = c
        .app
        .put(
            "/api/v1/settings/interfaces.register_unknown_patients",
            &admin,
            json!({"value": "true"}),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/interface/messages/{id}/replay"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "replayed", "{v}");
    assert_eq!(v["posted"], 1);
    let found = orders_by_placer(&c, "PL-2").await;
    assert_eq!(found.len(), 1, "{found:?}");
    let (s, p) = c
        .app
        .get(
            &format!("/api/v1/patients/{}", found[0]["patient_id"]),
            &c.tech,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["mrn"], "E-777");
    assert_eq!(p["birth_date"], "1975-03-02");
    assert_eq!(
        p["identifiers"],
        json!([{"system": "CLINIC", "value": "E-777"}])
    );
    assert!(error_queue(&c, &admin).await.is_empty());
    // The next order for them matches the registered patient by the EMR's identifier.
    let ack = client
        .send(orm("ORM-0003", pid, &new_order("PL-3")).as_bytes(), TIMEOUT)
        .await
        .expect("ack");
    assert_eq!(ack_code(&ack), "AA", "{}", String::from_utf8_lossy(&ack));
    let again = orders_by_placer(&c, "PL-3").await;
    assert_eq!(again[0]["patient_id"], found[0]["patient_id"]);
    // A birth date that does not match is never a new patient: the message waits.
    let wrong = "PID|1||E-777^^^CLINIC^MR||Nakamura^Hiro^K||19750303|M\r";
    let ack = client
        .send(
            orm("ORM-0004", wrong, &new_order("PL-4")).as_bytes(),
            TIMEOUT,
        )
        .await
        .expect("ack");
    let text = String::from_utf8(ack.clone()).unwrap();
    assert_eq!(ack_code(&ack), "AE", "{text}");
    assert!(segment(&text, "ERR")[0].contains("PID^1^7"), "{text}");
    assert!(orders_by_placer(&c, "PL-4").await.is_empty());
    c.app.finish().await;
}

async fn an_unknown_test_or_a_duplicate_placer_number_places_nothing(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    register_emr(&c, &admin).await;
    let addr = listen(&c).await;
    let mut client = MllpClient::connect(addr).await.expect("connect");
    // Two orders; the second's second test is not known: neither order is placed.
    let orders = format!(
        "{}ORC|NW|PL-6||||||||||1234567893\rOBR|1|PL-6||GLU\rOBR|2|PL-6||XYZ-1^Mystery^L\r",
        new_order("PL-5")
    );
    let ack = client
        .send(orm("ORM-0005", PID_900, &orders).as_bytes(), TIMEOUT)
        .await
        .expect("ack");
    let text = String::from_utf8(ack.clone()).unwrap();
    assert_eq!(ack_code(&ack), "AE", "{text}");
    let err = segment(&text, "ERR");
    assert_eq!(err.len(), 1, "{text}");
    assert!(
        err[0].starts_with("ERR||OBR^4^4|103^Table value not found: "),
        "{text}"
    );
    assert!(err[0].contains("(unknown_test_code)"), "{text}");
    assert!(orders_by_placer(&c, "PL-5").await.is_empty());
    assert!(orders_by_placer(&c, "PL-6").await.is_empty());
    let queue = error_queue(&c, &admin).await;
    assert_eq!(queue[0]["errors"][0]["location"], "OBR[4]-4");
    let id = queue[0]["id"].as_i64().unwrap();
    // The analyst maps the EMR's code to the catalogue and replays: both orders placed.
    let (_, inst) = c.app.get("/api/v1/instruments/EMR1", &admin).await;
    let (s, v) = c
        .app
        .put(
            "/api/v1/instruments/EMR1",
            &admin,
            json!({"version": inst["version"], "reason": "EMR code for creatinine",
                   "instrument": {"code": "EMR1", "name": "Clinic EMR", "protocol": "hl7",
                     "sender": "EMR1", "department": "chemistry",
                     "test_codes": [{"code": "XYZ-1", "test": "2160-0"}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/interface/messages/{id}/replay"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "replayed", "{v}");
    assert_eq!(v["posted"], 2);
    assert_eq!(orders_by_placer(&c, "PL-5").await.len(), 1);
    let pl6 = orders_by_placer(&c, "PL-6").await;
    let mut tests: Vec<&str> = pl6[0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["test_code"].as_str().unwrap())
        .collect();
    tests.sort_unstable();
    assert_eq!(tests, ["CREA", "GLU"], "{:?}", pl6[0]);
    // Another message (its own control id) with a placer number already active: the order
    // rules refuse it, and it waits in the queue.
    let ack = client
        .send(
            orm("ORM-0006", PID_900, &new_order("PL-5")).as_bytes(),
            TIMEOUT,
        )
        .await
        .expect("ack");
    let text = String::from_utf8(ack.clone()).unwrap();
    assert_eq!(ack_code(&ack), "AE", "{text}");
    let err = segment(&text, "ERR");
    assert!(
        err[0].starts_with("ERR||ORC^1^2|205^Duplicate key identifier: "),
        "{text}"
    );
    assert!(err[0].contains("(duplicate_placer_order)"), "{text}");
    assert_eq!(orders_by_placer(&c, "PL-5").await.len(), 1);
    // An unknown provider and an unknown location are named too.
    let orders = "ORC|NW|PL-7||||||||||1234567800\rOBR|1|PL-7||K\r";
    let msg = orm("ORM-0007", PID_900, orders).replace("PV1|1|O|OPD^^^CLINIC", "PV1|1|O|WARD9");
    let ack = client.send(msg.as_bytes(), TIMEOUT).await.expect("ack");
    let text = String::from_utf8(ack.clone()).unwrap();
    assert_eq!(ack_code(&ack), "AE", "{text}");
    let err = segment(&text, "ERR");
    assert_eq!(err.len(), 2, "{text}");
    assert!(err[0].starts_with("ERR||PV1^1^3|204^"), "{text}");
    assert!(err[0].contains("(unknown_location)"), "{text}");
    assert!(err[1].starts_with("ERR||ORC^1^12|204^"), "{text}");
    assert!(err[1].contains("(unknown_provider)"), "{text}");
    c.app.finish().await;
}

async fn a_cancellation_cancels_the_order_by_placer_number(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    register_emr(&c, &admin).await;
    let addr = listen(&c).await;
    let mut client = MllpClient::connect(addr).await.expect("connect");
    let ack = client
        .send(
            orm("ORM-0010", PID_900, &new_order("PL-10")).as_bytes(),
            TIMEOUT,
        )
        .await
        .expect("ack");
    assert_eq!(ack_code(&ack), "AA", "{}", String::from_utf8_lossy(&ack));
    let before = c.app.audit_len().await;
    let cancel = "ORC|CA|PL-10||||||||||||||^Ordered in error\rOBR|1|PL-10||K\r";
    let ack = client
        .send(orm("ORM-0011", PID_900, cancel).as_bytes(), TIMEOUT)
        .await
        .expect("ack");
    assert_eq!(ack_code(&ack), "AA", "{}", String::from_utf8_lossy(&ack));
    let found = orders_by_placer(&c, "PL-10").await;
    assert_eq!(found[0]["status"], "cancelled", "{:?}", found[0]);
    // Cancelled as requested, naming the order cancelled.
    let text = String::from_utf8(ack.clone()).unwrap();
    assert_eq!(
        segment(&text, "ORC"),
        [format!("ORC|CR|PL-10|{}||CA", found[0]["id"])],
        "{text}"
    );
    assert_eq!(found[0]["cancel_reason"], "Ordered in error");
    let (_, events) = c
        .app
        .get(&format!("/api/v1/audit/events?after={before}"), &admin)
        .await;
    let cancel_event = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "order.cancel")
        .unwrap_or_else(|| panic!("no order.cancel in {events}"));
    assert_eq!(cancel_event["actor_name"], "instrument:EMR1");
    assert_eq!(cancel_event["source"], "hl7");
    // Cancelling it again: no active order carries the number any more.
    let ack = client
        .send(orm("ORM-0012", PID_900, cancel).as_bytes(), TIMEOUT)
        .await
        .expect("ack");
    let text = String::from_utf8(ack.clone()).unwrap();
    assert_eq!(ack_code(&ack), "AE", "{text}");
    assert!(
        segment(&text, "ERR")[0].contains("(unknown_order)"),
        "{text}"
    );
    assert_eq!(segment(&text, "ORC"), ["ORC|UC|PL-10"], "{text}");
    // Any other order control is refused (AR) and kept.
    let ack = client
        .send(
            orm("ORM-0013", PID_900, "ORC|XO|PL-10\rOBR|1|PL-10||K\r").as_bytes(),
            TIMEOUT,
        )
        .await
        .expect("ack");
    let text = String::from_utf8(ack.clone()).unwrap();
    assert_eq!(ack_code(&ack), "AR", "{text}");
    assert!(
        segment(&text, "ERR")[0].starts_with("ERR||ORC^1^1|103^"),
        "{text}"
    );
    assert_eq!(error_queue(&c, &admin).await.len(), 2);
    c.app.finish().await;
}

async fn enhanced_mode_answers_commit_then_application_acknowledgement(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    register_emr(&c, &admin).await;
    let addr = listen(&c).await;
    let mut client = MllpClient::connect(addr).await.expect("connect");
    // OML^O21 with MSH-15 AL, MSH-16 AL: the commit ACK after the commit, then AA.
    let msg = orm("OML-0001", PID_900, &new_order("PL-20"))
        .replacen("ORM^O01^ORM_O01", "OML^O21^OML_O21", 1)
        .replacen("|P|2.5.1\r", "|P|2.5.1|||AL|AL\r", 1);
    let commit = client.send(msg.as_bytes(), TIMEOUT).await.expect("ack");
    assert_eq!(
        ack_code(&commit),
        "CA",
        "{}",
        String::from_utf8_lossy(&commit)
    );
    // The commit ACK means the order is stored; it stays a plain ACK.
    let placed = orders_by_placer(&c, "PL-20").await;
    assert_eq!(placed.len(), 1);
    let commit_text = String::from_utf8(commit.clone()).unwrap();
    assert!(
        segment(&commit_text, "MSH")[0].contains("|ACK^O21^ACK|"),
        "{commit_text}"
    );
    assert!(segment(&commit_text, "ORC").is_empty(), "{commit_text}");
    // The application answer is ORL^O22: the patient, then the order with its filler number.
    let app_ack = client.next_frame(TIMEOUT).await.expect("application ack");
    assert_eq!(ack_code(&app_ack), "AA");
    let text = String::from_utf8(app_ack.clone()).unwrap();
    assert!(
        segment(&text, "MSH")[0].contains("|ORL^O22^ORL_O22|"),
        "{text}"
    );
    assert_eq!(
        segment(&text, "PID"),
        [PID_900.trim_end_matches('\r')],
        "{text}"
    );
    assert_eq!(
        segment(&text, "ORC")[0],
        format!("ORC|OK|PL-20|{}||SC", placed[0]["id"]),
        "{text}"
    );
    // MSH-16 ER: an error is answered CA, then AE.
    let msg = orm(
        "OML-0002",
        PID_900,
        "ORC|NW|PL-21||||||||||1234567893\rOBR|1|PL-21||NOPE\r",
    )
    .replacen("ORM^O01^ORM_O01", "OML^O21^OML_O21", 1)
    .replacen("|P|2.5.1\r", "|P|2.5.1|||AL|ER\r", 1);
    let commit = client.send(msg.as_bytes(), TIMEOUT).await.expect("ack");
    assert_eq!(ack_code(&commit), "CA");
    let app_ack = client.next_frame(TIMEOUT).await.expect("application ack");
    let text = String::from_utf8(app_ack.clone()).unwrap();
    assert_eq!(ack_code(&app_ack), "AE", "{text}");
    assert!(segment(&text, "ERR")[0].contains("OBR^1^4"), "{text}");
    c.app.finish().await;
}
