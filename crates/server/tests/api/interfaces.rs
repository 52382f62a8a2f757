//! Instruments over MLLP end to end, on both databases: an analyzer registered through the
//! API sends ORU^R01 results over a real socket; they are posted through result entry as the
//! instrument, acknowledged after the commit, answered from the store when resent; problems
//! go to the interface error queue, and a replay after the mapping is fixed posts the rest.

use std::net::SocketAddr;
use std::time::Duration;

use aliquot_connect::simulate::{AstmInstrument, MllpClient, Reading, ack_code, astm_results, oru};
use aliquot_connect::{AstmConfig, MllpConfig};
use aliquot_domain::auth::Role;
use jiff::SignedDuration;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::results::{Ctx, order_tests, received_order, setup, test_of, tube};
use crate::support::*;

crate::both_backends!(
    an_analyzer_posts_results_acknowledged_after_commit_and_a_resend_is_answered_from_the_store,
    problems_wait_in_the_error_queue_and_a_replay_posts_the_rest,
    a_specimen_of_another_patient_or_unknown_sender_posts_nothing,
    enhanced_mode_answers_commit_then_application_acknowledgement,
    garbage_oversized_and_slow_senders_do_not_stop_the_listener,
    an_astm_analyzer_asks_for_its_work_and_is_acknowledged_after_commit,
    content_past_its_retention_is_emptied_and_a_resend_is_still_answered_once,
    an_analyzer_asks_over_hl7_which_tests_its_rack_needs,
    an_astm_analyzer_on_a_serial_line_through_a_virtual_serial_pair,
    an_instrument_that_listens_is_connected_to_and_served_the_same_way,
);

const TIMEOUT: Duration = Duration::from_secs(20);

async fn listen(c: &Ctx, config: MllpConfig) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(aliquot_connect::serve_mllp(
        listener,
        c.app.app.clone(),
        config,
        std::future::pending::<()>(),
    ));
    addr
}

async fn register_chem1(c: &Ctx, admin: &str, codes: Value) {
    let (s, v) = c
        .app
        .post(
            "/api/v1/instruments",
            admin,
            json!({"code": "CHEM1", "name": "Chemistry analyzer 1", "protocol": "hl7",
                   "sender": "CHEM1", "department": "chemistry", "test_codes": codes}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

fn reading(code: &str, value: &str, units: &str) -> Reading {
    Reading {
        code: code.into(),
        value: value.into(),
        units: units.into(),
        flags: Vec::new(),
    }
}

fn segment<'a>(ack: &'a str, name: &str) -> Vec<&'a str> {
    ack.split('\r')
        .filter(|s| s.starts_with(&format!("{name}|")))
        .collect()
}

async fn an_analyzer_posts_results_acknowledged_after_commit_and_a_resend_is_answered_from_the_store(
    db: Db,
) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    register_chem1(
        &c,
        &admin,
        json!([{"code": "K", "test": "K"}, {"code": "NA", "test": "2951-2", "units": "mmol/L"}]),
    )
    .await;
    let now = c.app.app.now();
    let (order, o) = received_order(&c, &["K", "NA"], now - SignedDuration::from_mins(30)).await;
    let sst = tube(&o, "SST");
    let addr = listen(&c, MllpConfig::default()).await;
    let mut client = MllpClient::connect(addr).await.expect("connect");
    let before = c.app.audit_len().await;
    let msg = oru(
        "CHEM1",
        "MSG-0001",
        &sst,
        &[reading("K", "4.2", "mmol/L"), reading("NA", "140", "")],
    );
    let ack = client.send(&msg, TIMEOUT).await.expect("ack");
    let text = String::from_utf8(ack.clone()).unwrap();
    assert_eq!(ack_code(&ack), "AA", "{text}");
    // MSA-2 answers MSH-10; the sender and receiver are swapped.
    assert_eq!(segment(&text, "MSA"), ["MSA|AA|MSG-0001"], "{text}");
    assert!(
        text.starts_with("MSH|^~\\&|ALIQUOT|LAB|CHEM1|LAB|"),
        "{text}"
    );
    // Acknowledged means committed: the results are there, posted as the instrument.
    let tests = order_tests(&c, order).await;
    let k = &test_of(&tests, "K")["result"];
    assert_eq!(k["value"], "4.2");
    assert_eq!(k["status"], "released");
    assert_eq!(k["instrument"], "CHEM1", "{k}");
    // NA came without a unit and takes the one its mapping names.
    assert_eq!(test_of(&tests, "NA")["result"]["units"], "mmol/L");
    let (s, events) = c
        .app
        .get(&format!("/api/v1/audit/events?after={before}"), &admin)
        .await;
    assert_eq!(s, StatusCode::OK);
    let enters: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "result.enter")
        .collect();
    assert_eq!(enters.len(), 2, "{events}");
    for e in &enters {
        assert_eq!(e["actor_name"], "instrument:CHEM1");
        assert_eq!(e["source"], "hl7");
    }
    // The same message again (the ACK was lost): the stored answer, byte for byte, and
    // nothing posted twice.
    let audit = c.app.audit_len().await;
    let again = client.send(&msg, TIMEOUT).await.expect("ack");
    assert_eq!(again, ack);
    assert_eq!(c.app.audit_len().await, audit);
    let tests = order_tests(&c, order).await;
    assert_eq!(
        test_of(&tests, "K")["result"]["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The log lists it, accepted, without content for the administrator.
    let (s, list) = c.app.get("/api/v1/interface/messages", &admin).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["status"], "accepted");
    assert_eq!(list[0]["connection"], "CHEM1");
    assert_eq!(list[0]["posted"], 2);
    assert_eq!(list[0]["content"], Value::Null);
    c.app.finish().await;
}

async fn problems_wait_in_the_error_queue_and_a_replay_posts_the_rest(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    register_chem1(&c, &admin, json!([{"code": "K", "test": "K"}])).await;
    let now = c.app.app.now();
    let (order, o) = received_order(&c, &["K", "GLU"], now - SignedDuration::from_mins(30)).await;
    let sst = tube(&o, "SST");
    let addr = listen(&c, MllpConfig::default()).await;
    let mut client = MllpClient::connect(addr).await.expect("connect");
    let msg = oru(
        "CHEM1",
        "MSG-0002",
        &sst,
        &[
            reading("K", "4.4", "mmol/L"),
            reading("GLUC3", "95", "mg/dL"),
        ],
    );
    let ack = client.send(&msg, TIMEOUT).await.expect("ack");
    let text = String::from_utf8(ack.clone()).unwrap();
    assert_eq!(ack_code(&ack), "AE", "{text}");
    // v2.5.1: ERR-2 locates the problem (OBX 2, field 3), ERR-3 the HL7 code, ERR-4 severity.
    let err = segment(&text, "ERR");
    assert_eq!(err.len(), 1, "{text}");
    assert!(
        err[0].starts_with("ERR||OBX^2^3|103^Table value not found: "),
        "{text}"
    );
    assert!(err[0].contains("(unknown_test_code)"), "{text}");
    // The mapped result is posted; the other waits.
    let tests = order_tests(&c, order).await;
    assert_eq!(test_of(&tests, "K")["result"]["value"], "4.4");
    assert_eq!(test_of(&tests, "GLU")["result"], Value::Null);
    let (s, queue) = c
        .app
        .get("/api/v1/interface/messages?status=error", &admin)
        .await;
    assert_eq!(s, StatusCode::OK, "{queue}");
    let id = queue[0]["id"].as_i64().unwrap();
    assert_eq!(queue[0]["errors"][0]["location"], "OBX[2]-3");
    assert_eq!(queue[0]["errors"][0]["code"], "unknown_test_code");
    assert_eq!(queue[0]["posted"], 1);
    // A technologist (who may read patients) sees the content; the read is access-logged.
    let (s, m) = c
        .app
        .get(&format!("/api/v1/interface/messages/{id}"), &c.mt)
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert!(m["content"]["raw"].as_str().unwrap().contains(&sst));
    assert_eq!(m["content"]["control_id"], "MSG-0002");
    let (_, m) = c
        .app
        .get(&format!("/api/v1/interface/messages/{id}"), &admin)
        .await;
    assert_eq!(m["content"], Value::Null);
    let (_, log) = c.app.get("/api/v1/audit/access-log", &admin).await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "interface_message.read"),
        "{log}"
    );
    // Replay before the fix: still in error, nothing more posted.
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/interface/messages/{id}/replay"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "error");
    assert_eq!(v["errors"][0]["code"], "unknown_test_code");
    // The analyst maps the code and replays: K comes back as a duplicate, GLU is posted.
    let (_, inst) = c.app.get("/api/v1/instruments/CHEM1", &admin).await;
    let (s, v) = c
        .app
        .put(
            "/api/v1/instruments/CHEM1",
            &admin,
            json!({"version": inst["version"], "reason": "glucose assay added",
                   "instrument": {"code": "CHEM1", "name": "Chemistry analyzer 1",
                     "protocol": "hl7", "sender": "CHEM1", "department": "chemistry",
                     "test_codes": [{"code": "K", "test": "K"}, {"code": "GLUC3", "test": "GLU"}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 2);
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/interface/messages/{id}/replay"),
            &c.mt,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "replayed", "{v}");
    assert_eq!(v["posted"], 2);
    let tests = order_tests(&c, order).await;
    assert_eq!(test_of(&tests, "GLU")["result"]["value"], "95");
    assert_eq!(
        test_of(&tests, "K")["result"]["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Once replayed it is out of the queue, and a second replay is refused.
    let (_, queue) = c
        .app
        .get("/api/v1/interface/messages?status=error", &admin)
        .await;
    assert_eq!(queue, json!([]));
    let got = c
        .app
        .post(
            &format!("/api/v1/interface/messages/{id}/replay"),
            &c.mt,
            json!({}),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, "message_not_in_error", None);
    c.app.finish().await;
}

async fn a_specimen_of_another_patient_or_unknown_sender_posts_nothing(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    register_chem1(&c, &admin, json!([{"code": "K", "test": "K"}])).await;
    let now = c.app.app.now();
    let (order, o) = received_order(&c, &["K"], now - SignedDuration::from_mins(30)).await;
    let sst = tube(&o, "SST");
    let addr = listen(&c, MllpConfig::default()).await;
    let mut client = MllpClient::connect(addr).await.expect("connect");
    // The message names another patient (PID-3) than the tube's (MRN-900).
    let msg = String::from_utf8(oru(
        "CHEM1",
        "MSG-0003",
        &sst,
        &[reading("K", "6.9", "mmol/L")],
    ))
    .unwrap()
    .replacen("\rOBR|", "\rPID|1||MRN-901^^^LAB^MR||Other^Person\rOBR|", 1);
    let ack = client.send(msg.as_bytes(), TIMEOUT).await.expect("ack");
    let text = String::from_utf8(ack.clone()).unwrap();
    assert_eq!(ack_code(&ack), "AE", "{text}");
    assert!(segment(&text, "ERR")[0].contains("PID^1^3"), "{text}");
    assert!(text.contains("(wrong_patient)"), "{text}");
    // The same patient named: accepted.
    let msg_ok = msg
        .replace("MRN-901", "MRN-900")
        .replace("MSG-0003", "MSG-0004");
    let ack = client.send(msg_ok.as_bytes(), TIMEOUT).await.expect("ack");
    // A critical potassium is held for review (and its call opened), but it is posted.
    assert_eq!(ack_code(&ack), "AA");
    let tests = order_tests(&c, order).await;
    assert_eq!(test_of(&tests, "K")["result"]["value"], "6.9");
    // Middleware often echoes the EMR's identifier: a facility identifier of the tube's
    // patient names the same patient; any other does not.
    register(
        &c.app,
        &c.tech,
        json!({"mrn": "MRN-950", "family_name": "Đorđević", "given_name": "Ana",
               "birth_date": "1980-02-02", "sex": "F",
               "identifiers": [{"system": "EMR", "value": "E-12345"}]}),
    )
    .await;
    let (s, o2) = c
        .app
        .post(
            "/api/v1/orders",
            &c.tech,
            json!({"patient": {"mrn": "MRN-950", "birth_date": "1980-02-02"},
                   "provider_id": c.provider, "location_id": c.location,
                   "tests": ["K"], "priority": "stat"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o2}");
    let acc2 = o2["specimens"][0]["accession"].as_str().unwrap().to_owned();
    let drawn = (now - SignedDuration::from_mins(20)).to_string();
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc2}/collect"),
            &c.tech,
            json!({"collected_at": drawn,
                   "patient": {"mrn": "MRN-950", "birth_date": "1980-02-02"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc2}/receive"),
            &c.tech,
            c.app.full_tube_of(&acc2, &c.tech).await,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let with_pid = |id: &str, control: &str| {
        String::from_utf8(oru(
            "CHEM1",
            control,
            &acc2,
            &[reading("K", "4.1", "mmol/L")],
        ))
        .unwrap()
        .replacen("\rOBR|", &format!("\rPID|1||{id}^^^EMR^PI\rOBR|"), 1)
    };
    let ack = client
        .send(with_pid("E-99999", "MSG-0007").as_bytes(), TIMEOUT)
        .await
        .expect("ack");
    assert_eq!(ack_code(&ack), "AE", "another EMR identifier");
    let ack = client
        .send(with_pid("E-12345", "MSG-0008").as_bytes(), TIMEOUT)
        .await
        .expect("ack");
    assert_eq!(ack_code(&ack), "AA", "{}", String::from_utf8_lossy(&ack));
    // An unknown tube and an unregistered sender post nothing and say why.
    let ack = client
        .send(
            &oru(
                "CHEM1",
                "MSG-0005",
                "ZZ260000000",
                &[reading("K", "4.0", "mmol/L")],
            ),
            TIMEOUT,
        )
        .await
        .expect("ack");
    assert_eq!(ack_code(&ack), "AE");
    let ack = client
        .send(
            &oru("CHEM9", "MSG-0006", &sst, &[reading("K", "4.0", "mmol/L")]),
            TIMEOUT,
        )
        .await
        .expect("ack");
    let text = String::from_utf8(ack.clone()).unwrap();
    assert_eq!(ack_code(&ack), "AE", "{text}");
    assert!(text.contains("(unknown_sender)"), "{text}");
    let (_, queue) = c
        .app
        .get("/api/v1/interface/messages?status=error", &admin)
        .await;
    assert_eq!(queue.as_array().unwrap().len(), 4, "{queue}");
    c.app.finish().await;
}

async fn enhanced_mode_answers_commit_then_application_acknowledgement(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    register_chem1(&c, &admin, json!([{"code": "K", "test": "K"}])).await;
    let now = c.app.app.now();
    let (_, o) = received_order(&c, &["K"], now - SignedDuration::from_mins(30)).await;
    let sst = tube(&o, "SST");
    let addr = listen(&c, MllpConfig::default()).await;
    let mut client = MllpClient::connect(addr).await.expect("connect");
    // MSH-15 AL, MSH-16 AL: a commit ACK, then the application ACK.
    let msg = String::from_utf8(oru(
        "CHEM1",
        "MSG-0010",
        &sst,
        &[reading("K", "4.1", "mmol/L")],
    ))
    .unwrap()
    .replacen("|P|2.5.1\r", "|P|2.5.1|||AL|AL\r", 1);
    let commit = client.send(msg.as_bytes(), TIMEOUT).await.expect("ack");
    assert_eq!(ack_code(&commit), "CA");
    let app_ack = client.next_frame(TIMEOUT).await.expect("application ack");
    assert_eq!(ack_code(&app_ack), "AA");
    // A structurally unusable message is refused at commit level: CR.
    let bad = "MSH|^~\\&|CHEM1|LAB|ALIQUOT|LAB|20261128||ADT^A01|MSG-0011|P|2.5.1|||AL|NE\rPID|1\r";
    let commit = client.send(bad.as_bytes(), TIMEOUT).await.expect("ack");
    let text = String::from_utf8(commit.clone()).unwrap();
    assert_eq!(ack_code(&commit), "CR", "{text}");
    assert!(
        text.contains("ERR||MSH^1^9|200^Unsupported message type"),
        "{text}"
    );
    c.app.finish().await;
}

async fn garbage_oversized_and_slow_senders_do_not_stop_the_listener(db: Db) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    register_chem1(&c, &admin, json!([{"code": "K", "test": "K"}])).await;
    let now = c.app.app.now();
    let (order, o) = received_order(&c, &["K"], now - SignedDuration::from_mins(30)).await;
    let sst = tube(&o, "SST");
    let addr = listen(
        &c,
        MllpConfig {
            max_frame: 4096,
            max_connections: 8,
            frame_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(5),
        },
    )
    .await;
    // A slow-loris sender that starts a frame and never ends it is closed.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"\x0bMSH|^~\\&|CHEM1|").await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf))
        .await
        .expect("closed by the frame timeout")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    // Connections over the cap are closed at once; the others keep being served.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = tokio::net::TcpStream::connect(addr).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), over.read(&mut buf))
        .await
        .expect("closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0);
    drop(idle);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Garbage, an oversized frame and a truncated one on one connection, then a good
    // message: only the good one is answered and posted.
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\n\r\n\x00\xff")
        .await
        .unwrap();
    let mut big = vec![0x0b];
    big.extend(std::iter::repeat_n(b'A', 10_000));
    big.extend([0x1c, 0x0d]);
    client.write_all(&big).await.unwrap();
    let mut good = vec![0x0b];
    good.extend(oru(
        "CHEM1",
        "MSG-0020",
        &sst,
        &[reading("K", "4.0", "mmol/L")],
    ));
    good.extend([0x1c, 0x0d]);
    client.write_all(&good).await.unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !got.ends_with(&[0x1c, 0x0d]) {
        let mut b = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, client.read(&mut b))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed");
        got.extend_from_slice(&b[..n]);
    }
    assert_eq!(ack_code(&got), "AA", "{}", String::from_utf8_lossy(&got));
    assert_eq!(got.iter().filter(|b| **b == 0x0b).count(), 1, "one answer");
    let tests = order_tests(&c, order).await;
    assert_eq!(test_of(&tests, "K")["result"]["value"], "4.0");
    let (_, log) = c.app.get("/api/v1/interface/messages", &admin).await;
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
    c.app.finish().await;
}

async fn an_astm_analyzer_asks_for_its_work_and_is_acknowledged_after_commit(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    let (s, v) = c
        .app
        .post(
            "/api/v1/instruments",
            &admin,
            json!({"code": "CHEM2", "name": "Chemistry analyzer 2", "protocol": "astm",
                   "sender": "CHEM2", "department": "chemistry",
                   "test_codes": [{"code": "K", "test": "K"}, {"code": "NA", "test": "NA"},
                                  {"code": "GLUC3", "test": "GLU", "units": "mg/dL"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let now = c.app.app.now();
    let (order, o) = received_order(
        &c,
        &["K", "NA", "GLU", "CL"],
        now - SignedDuration::from_mins(30),
    )
    .await;
    let sst = tube(&o, "SST");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(aliquot_connect::serve_astm(
        listener,
        c.app.app.clone(),
        AstmConfig::default(),
        std::future::pending::<()>(),
    ));
    let mut inst = AstmInstrument::connect(addr).await.expect("connect");
    // The host query names the tests this analyzer runs (CL is not on its menu), in its own
    // codes, with the patient's id; an unknown tube gets nothing.
    let work = inst
        .host_query("CHEM2", &[sst.clone(), "NOSUCHTUBE".into()], TIMEOUT)
        .await
        .expect("host query");
    assert_eq!(
        work,
        vec![(
            sst.clone(),
            "MRN-900".to_owned(),
            vec!["GLUC3".to_owned(), "K".to_owned(), "NA".to_owned()]
        )]
    );
    let none = inst
        .host_query("CHEM2", &["NOSUCHTUBE".into()], TIMEOUT)
        .await
        .expect("host query");
    assert!(none.is_empty());
    assert!(
        String::from_utf8_lossy(inst.received.last().unwrap()).contains("L|1|I"),
        "the no-information answer"
    );
    // Results with decimal commas; the send completes only once the last frame's ACK came,
    // which the host writes after the commit: the results are there.
    let msg = astm_results(
        "CHEM2",
        "MRN-900",
        &sst,
        &[
            reading("K", "4.2", "mmol/L"),
            reading("NA", "141", "mmol/L"),
            reading("GLUC3", "5.4", "mmol/L"),
        ],
        true,
    );
    inst.send(msg.clone(), TIMEOUT).await.expect("acknowledged");
    let tests = order_tests(&c, order).await;
    let k = &test_of(&tests, "K")["result"];
    assert_eq!(k["value"], "4.2", "{k}");
    assert_eq!(k["instrument"], "CHEM2");
    // Glucose in mmol/L is converted to the test's mg/dL by its declared factor.
    assert_eq!(test_of(&tests, "GLU")["result"]["units"], "mg/dL");
    assert_eq!(test_of(&tests, "CL")["result"], Value::Null);
    // The same message in a new session is answered from the store, not posted twice.
    let audit = c.app.audit_len().await;
    let mut again = AstmInstrument::connect(addr).await.expect("connect");
    again.send(msg, TIMEOUT).await.expect("acknowledged");
    assert_eq!(c.app.audit_len().await, audit);
    let (_, log) = c
        .app
        .get("/api/v1/interface/messages?connection=CHEM2", &admin)
        .await;
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
    assert_eq!(log[0]["protocol"], "astm");
    assert_eq!(log[0]["status"], "accepted");
    assert_eq!(log[0]["posted"], 3);
    c.app.finish().await;
}

async fn content_past_its_retention_is_emptied_and_a_resend_is_still_answered_once(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    register_chem1(&c, &admin, json!([{"code": "K", "test": "K"}])).await;
    let now = c.app.app.now();
    let (order, o) = received_order(&c, &["K", "GLU"], now - SignedDuration::from_mins(30)).await;
    let sst = tube(&o, "SST");
    let addr = listen(&c, MllpConfig::default()).await;
    let mut client = MllpClient::connect(addr).await.expect("connect");
    let accepted = oru("CHEM1", "MSG-0030", &sst, &[reading("K", "4.3", "mmol/L")]);
    let ack = client.send(&accepted, TIMEOUT).await.expect("ack");
    assert_eq!(ack_code(&ack), "AA");
    let refused = oru(
        "CHEM1",
        "MSG-0031",
        &sst,
        &[reading("GLUC3", "90", "mg/dL")],
    );
    assert_eq!(
        ack_code(&client.send(&refused, TIMEOUT).await.unwrap()),
        "AE"
    );
    // Within the retention nothing is removed.
    assert_eq!(c.app.app.purge_interface_messages().await.unwrap(), 0);
    let (s, v) = c
        .app
        .put(
            "/api/v1/settings/interfaces.message_retention_days",
            &admin,
            json!({"value": "30", "reason": "lab policy"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    c.app.clock.advance(SignedDuration::from_hours(31 * 24));
    let audit = c.app.audit_len().await;
    assert_eq!(c.app.app.purge_interface_messages().await.unwrap(), 1);
    assert_eq!(c.app.audit_len().await, audit + 1, "the purge is audited");
    // A month later: fresh sessions.
    let admin = c.app.token_for(Role::Admin).await;
    let mt = c.app.token_for(Role::Technologist).await;
    let (_, list) = c.app.get("/api/v1/interface/messages", &admin).await;
    let ids: Vec<(i64, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_i64().unwrap(),
                m["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (id, status) in ids {
        let (_, m) = c
            .app
            .get(&format!("/api/v1/interface/messages/{id}"), &mt)
            .await;
        if status == "accepted" {
            assert_eq!(m["content"]["raw"], "", "{m}");
        } else {
            // The error queue keeps its messages until they are replayed.
            assert!(
                m["content"]["raw"].as_str().unwrap().contains("GLUC3"),
                "{m}"
            );
        }
    }
    // The accepted message sent again: answered AA (rebuilt), nothing posted twice.
    let audit = c.app.audit_len().await;
    let again = client.send(&accepted, TIMEOUT).await.expect("ack");
    assert_eq!(
        ack_code(&again),
        "AA",
        "{}",
        String::from_utf8_lossy(&again)
    );
    assert!(String::from_utf8_lossy(&again).contains("MSA|AA|MSG-0030"));
    assert_eq!(c.app.audit_len().await, audit);
    let (_, o) = c.app.get(&format!("/api/v1/orders/{order}"), &mt).await;
    let tests = o["tests"].clone();
    assert_eq!(
        test_of(&tests, "K")["result"]["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    c.app.finish().await;
}

async fn an_analyzer_asks_over_hl7_which_tests_its_rack_needs(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    register_chem1(
        &c,
        &admin,
        json!([{"code": "K", "test": "K"}, {"code": "GLUC3", "test": "GLU"}]),
    )
    .await;
    let now = c.app.app.now();
    let (_, o) = received_order(&c, &["K", "GLU", "NA"], now - SignedDuration::from_mins(30)).await;
    let sst = tube(&o, "SST");
    let addr = listen(&c, MllpConfig::default()).await;
    let mut client = MllpClient::connect(addr).await.expect("connect");
    let q = format!(
        "MSH|^~\\&|CHEM1|LAB|ALIQUOT|LAB|20261128101500||QBP^Q11^QBP_Q11|Q-0001|P|2.5.1\r\
         QPD|WOS^Work Order Step^IHE_LABTF|RACK-7|{sst}~NOSUCHTUBE\rRCP|I||R\r"
    );
    let rsp = client.send(q.as_bytes(), TIMEOUT).await.expect("answer");
    let text = String::from_utf8(rsp).unwrap();
    // The tests the analyzer runs (NA is not on its menu), in its own codes.
    assert!(text.contains("|RSP^K11^RSP_K11|"), "{text}");
    assert_eq!(segment(&text, "MSA"), ["MSA|AA|Q-0001"], "{text}");
    assert_eq!(segment(&text, "QAK"), ["QAK|RACK-7|OK"], "{text}");
    assert_eq!(
        segment(&text, "PID"),
        ["PID|1||MRN-900^^^^MR||Okonkwo-Lindqvist^Zoë"],
        "{text}"
    );
    assert_eq!(segment(&text, "SPM"), [format!("SPM|1|{sst}")], "{text}");
    assert_eq!(
        segment(&text, "OBR"),
        [
            format!("OBR|1||{sst}|GLUC3^GLUC3|S"),
            format!("OBR|2||{sst}|K^K|S")
        ],
        "{text}"
    );
    // Nothing known: NF. A query changes nothing and is not kept.
    let q2 = "MSH|^~\\&|CHEM1|LAB|ALIQUOT|LAB|20261128101500||QBP^Q11^QBP_Q11|Q-0002|P|2.5.1\r\
              QPD|WOS^Work Order Step^IHE_LABTF|RACK-8|NOSUCHTUBE\rRCP|I||R\r";
    let rsp = client.send(q2.as_bytes(), TIMEOUT).await.expect("answer");
    let text = String::from_utf8(rsp).unwrap();
    assert_eq!(segment(&text, "QAK"), ["QAK|RACK-8|NF"], "{text}");
    let (_, log) = c.app.get("/api/v1/interface/messages", &admin).await;
    assert_eq!(log, json!([]));
    c.app.finish().await;
}

/// A serial analyzer: the LIS and the instrument on the two ends of a virtual serial pair
/// (`socat`, Debian package `socat`; the test fails without it).
async fn an_astm_analyzer_on_a_serial_line_through_a_virtual_serial_pair(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    let (s, v) = c
        .app
        .post(
            "/api/v1/instruments",
            &admin,
            json!({"code": "COAG1", "name": "Serial analyzer", "protocol": "astm",
                   "sender": "COAG1", "department": "chemistry",
                   "test_codes": [{"code": "K", "test": "K"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let now = c.app.app.now();
    let (order, o) = received_order(&c, &["K"], now - SignedDuration::from_mins(30)).await;
    let sst = tube(&o, "SST");
    let dir = tempfile::tempdir().unwrap();
    let (lis, inst) = (dir.path().join("lis"), dir.path().join("inst"));
    let mut socat = std::process::Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", lis.display()))
        .arg(format!("pty,raw,echo=0,link={}", inst.display()))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("socat (Debian package socat) runs the virtual serial pair");
    for _ in 0..200 {
        if lis.exists() && inst.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let app = c.app.app.clone();
    let lis_path = lis.clone();
    tokio::spawn(async move {
        aliquot_connect::astm_listener::serve_astm_serial(
            &lis_path,
            9600,
            app,
            AstmConfig::default(),
            std::future::pending::<()>(),
        )
        .await
    });
    let line = aliquot_connect::serial::open_serial(&inst, 9600).expect("open the pty");
    let mut analyzer = AstmInstrument::over(line);
    let work = analyzer
        .host_query("COAG1", std::slice::from_ref(&sst), TIMEOUT)
        .await
        .expect("host query over the serial line");
    assert_eq!(
        work,
        vec![(sst.clone(), "MRN-900".to_owned(), vec!["K".to_owned()])]
    );
    analyzer
        .send(
            astm_results(
                "COAG1",
                "MRN-900",
                &sst,
                &[reading("K", "4.6", "mmol/L")],
                false,
            ),
            TIMEOUT,
        )
        .await
        .expect("acknowledged after the commit");
    let tests = order_tests(&c, order).await;
    assert_eq!(test_of(&tests, "K")["result"]["value"], "4.6");
    assert_eq!(test_of(&tests, "K")["result"]["instrument"], "COAG1");
    let _ = socat.kill();
    let _ = socat.wait();
    c.app.finish().await;
}

/// An instrument that listens (the lab connects out to it): registered with `connect_to`,
/// connected to by the connector, its results acknowledged after commit on that connection;
/// connected to again after it drops the line.
async fn an_instrument_that_listens_is_connected_to_and_served_the_same_way(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    let instrument = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = instrument.local_addr().unwrap();
    let (s, v) = c
        .app
        .post(
            "/api/v1/instruments",
            &admin,
            json!({"code": "HEMA1", "name": "Listening analyzer", "protocol": "hl7",
                   "sender": "HEMA1", "department": "chemistry", "connect_to": at.to_string(),
                   "test_codes": [{"code": "K", "test": "K"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["connect_to"], at.to_string());
    let (s, v) = c
        .app
        .post(
            "/api/v1/instruments",
            &admin,
            json!({"code": "BAD1", "name": "x", "protocol": "hl7", "sender": "BAD1",
                   "department": "chemistry", "connect_to": "no port", "test_codes": []}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["field"], "connect_to");
    let now = c.app.app.now();
    let (order, o) = received_order(&c, &["K"], now - SignedDuration::from_mins(30)).await;
    let sst = tube(&o, "SST");
    tokio::spawn(aliquot_connect::run_connect_out(
        c.app.app.clone(),
        Duration::from_millis(100),
        std::future::pending::<()>(),
    ));
    let (mut line, _) = tokio::time::timeout(TIMEOUT, instrument.accept())
        .await
        .expect("the lab connects out")
        .unwrap();
    let ack = exchange(
        &mut line,
        oru("HEMA1", "H-1", &sst, &[reading("K", "4.4", "mmol/L")]),
    )
    .await;
    assert_eq!(ack_code(&ack), "AA", "{}", String::from_utf8_lossy(&ack));
    let tests = order_tests(&c, order).await;
    assert_eq!(test_of(&tests, "K")["result"]["value"], "4.4");
    assert_eq!(test_of(&tests, "K")["result"]["instrument"], "HEMA1");
    // The instrument drops the line: the lab connects again; a resend is answered once.
    drop(line);
    let (mut line, _) = tokio::time::timeout(TIMEOUT, instrument.accept())
        .await
        .expect("connected again")
        .unwrap();
    let again = exchange(
        &mut line,
        oru("HEMA1", "H-1", &sst, &[reading("K", "4.4", "mmol/L")]),
    )
    .await;
    assert_eq!(ack_code(&again), "AA");
    // Retired: the lab lets the line go (between messages) and does not call again.
    let (s, v) = c
        .app
        .put(
            "/api/v1/instruments/HEMA1",
            &admin,
            json!({"version": 1, "reason": "analyzer replaced", "retired": true,
                   "instrument": {"code": "HEMA1", "name": "Listening analyzer",
                     "protocol": "hl7", "sender": "HEMA1", "department": "chemistry",
                     "connect_to": at.to_string(), "test_codes": [{"code": "K", "test": "K"}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut b = [0u8; 16];
    let n = tokio::time::timeout(TIMEOUT, tokio::io::AsyncReadExt::read(&mut line, &mut b))
        .await
        .expect("the line is let go")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), instrument.accept())
            .await
            .is_err(),
        "a retired instrument is not called again"
    );
    c.app.finish().await;
}

/// Sends one framed message on `stream` and reads the framed answer.
async fn exchange(stream: &mut tokio::net::TcpStream, msg: Vec<u8>) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut framed = vec![0x0b];
    framed.extend(msg);
    framed.extend([0x1c, 0x0d]);
    stream.write_all(&framed).await.unwrap();
    let mut got = Vec::new();
    while !got.ends_with(&[0x1c, 0x0d]) {
        let mut b = [0u8; 4096];
        let n = tokio::time::timeout(TIMEOUT, stream.read(&mut b))
            .await
            .expect("an ACK")
            .unwrap();
        assert!(n > 0, "closed");
        got.extend_from_slice(&b[..n]);
    }
    got
}

// Messages arriving together are stored in one transaction (`connections/group.rs`); the
// test runs on one thread so that every message is waiting before the worker takes them.
mod grouped {
    #[tokio::test(flavor = "current_thread")]
    async fn sqlite() {
        super::messages_arriving_together_are_answered_as_one_by_one(crate::support::Db::Sqlite)
            .await
    }
    #[tokio::test(flavor = "current_thread")]
    async fn postgres() {
        super::messages_arriving_together_are_answered_as_one_by_one(crate::support::Db::Postgres)
            .await
    }
}

/// A lab with two analyzers and two tubes; returns the messages of the group, in order.
async fn group_scenario(c: &Ctx) -> (Vec<i64>, Vec<Vec<u8>>) {
    let admin = c.app.token_for(Role::Admin).await;
    register_chem1(c, &admin, json!([{"code": "K", "test": "K"}])).await;
    let (s, v) = c
        .app
        .post(
            "/api/v1/instruments",
            &admin,
            json!({"code": "CHEM2", "name": "Chemistry analyzer 2", "protocol": "hl7",
                   "sender": "CHEM2", "department": "chemistry",
                   "test_codes": [{"code": "NA", "test": "NA"}, {"code": "K", "test": "K"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let now = c.app.app.now();
    let (a_id, a) = received_order(c, &["K", "NA"], now - SignedDuration::from_mins(40)).await;
    let (b_id, b) = received_order(c, &["K"], now - SignedDuration::from_mins(30)).await;
    let (a, b) = (tube(&a, "SST"), tube(&b, "SST"));
    let k = |v: &str| reading("K", v, "mmol/L");
    // Received before the group: its resend in the group is answered from the store.
    let earlier = oru("CHEM1", "G-0", &b, &[k("4.4")]);
    let inbound = aliquot_connect::hl7::read_message(&earlier);
    let raw = earlier.clone();
    let ack = c
        .app
        .app
        .ingest(&inbound, move |f| {
            aliquot_connect::hl7::acknowledge(&raw, f)
        })
        .await
        .expect("stored");
    assert_eq!(ack_code(&ack.ack), "AA");
    let wrong_patient = String::from_utf8(oru("CHEM1", "G-3", &a, &[k("4.0")]))
        .unwrap()
        .replacen("\rOBR|", "\rPID|1||MRN-901^^^LAB^MR||Other^Person\rOBR|", 1)
        .into_bytes();
    let messages = vec![
        oru("CHEM1", "G-1", &a, &[k("4.2")]),
        // The same message twice in one group: stored once.
        oru("CHEM1", "G-1", &a, &[k("4.2")]),
        wrong_patient,
        oru("CHEM9", "G-4", &a, &[k("4.0")]),
        // Another instrument between two of CHEM1's.
        oru("CHEM2", "G-5", &a, &[reading("NA", "140", "mmol/L")]),
        oru("CHEM1", "G-6", &b, &[reading("XX", "1", "")]),
        // The same result under another control id: a duplicate, nothing changes.
        oru("CHEM1", "G-7", &a, &[k("4.2")]),
        // A changed potassium for a released one: refused (a correction needs a reason).
        oru("CHEM2", "G-8", &a, &[k("4.6")]),
        earlier,
    ];
    (vec![a_id, b_id], messages)
}

/// What an acknowledgement says, without its timestamp.
fn ack_decision(ack: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(ack).into_owned();
    let mut out = vec![ack_code(ack)];
    out.extend(
        text.split('\r')
            .filter(|s| s.starts_with("MSA|") || s.starts_with("ERR|"))
            .map(str::to_owned),
    );
    out
}

async fn messages_arriving_together_are_answered_as_one_by_one(db: Db) {
    let (group, single) = (setup(db).await, setup(db).await);
    let (orders, messages) = group_scenario(&group).await;
    let (single_orders, single_messages) = group_scenario(&single).await;
    let before = group.app.app.ingest_stats();
    let inbounds: Vec<_> = messages
        .iter()
        .map(|m| aliquot_connect::hl7::read_message(m))
        .collect();
    let answers = futures_util::future::join_all(messages.iter().zip(&inbounds).map(|(m, i)| {
        let raw = m.clone();
        group
            .app
            .app
            .ingest(i, move |f| aliquot_connect::hl7::acknowledge(&raw, f))
    }))
    .await;
    let after = group.app.app.ingest_stats();
    assert_eq!(after.groups, before.groups + 1, "{before:?} → {after:?}");
    assert_eq!(after.grouped, before.grouped + 9);
    let mut one_by_one = Vec::new();
    for m in &single_messages {
        let raw = m.clone();
        let inbound = aliquot_connect::hl7::read_message(m);
        let answer = single
            .app
            .app
            .ingest(&inbound, move |f| {
                aliquot_connect::hl7::acknowledge(&raw, f)
            })
            .await
            .expect("stored");
        one_by_one.push(answer);
    }
    for (i, (g, s)) in answers.iter().zip(&one_by_one).enumerate() {
        let g = g.as_ref().expect("stored");
        assert_eq!(ack_decision(&g.ack), ack_decision(&s.ack), "message {i}");
        assert_eq!(
            (g.repeated, &g.status, g.posted, &g.errors),
            (s.repeated, &s.status, s.posted, &s.errors),
            "message {i}"
        );
    }
    let codes: Vec<String> = answers
        .iter()
        .map(|a| ack_code(&a.as_ref().unwrap().ack))
        .collect();
    assert_eq!(
        codes,
        ["AA", "AA", "AE", "AE", "AA", "AE", "AA", "AE", "AA"],
        "{codes:?}"
    );
    assert!(answers[1].as_ref().unwrap().repeated);
    assert!(answers[8].as_ref().unwrap().repeated);
    for (o, so) in orders.iter().zip(&single_orders) {
        let shown = |t: Value| -> Vec<Value> {
            t.as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    json!({"test": t["test_code"], "status": t["status"],
                           "value": t["result"]["value"], "instrument": t["result"]["instrument"],
                           "versions": t["result"]["versions"].as_array().map(Vec::len)})
                })
                .collect()
        };
        assert_eq!(
            shown(order_tests(&group, *o).await),
            shown(order_tests(&single, *so).await),
            "order {o}"
        );
    }
    let admin = group.app.token_for(Role::Admin).await;
    let (_, list) = group.app.get("/api/v1/interface/messages", &admin).await;
    assert_eq!(list.as_array().unwrap().len(), 8, "{list}");
    group.app.finish().await;
    single.app.finish().await;
}
