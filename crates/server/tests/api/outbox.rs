//! Results to the EMR through the transactional outbox, on both databases: a fake EMR (an MLLP
//! listener in the test, answering as scripted) receives ORU^R01 messages from the sender
//! worker. A row is marked sent only by the acknowledgement that names its MSH-10; a
//! destination that is down, refuses, answers out of step or drops the connection gets the
//! message again, in order, and a restarted worker resends only what was not acknowledged.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aliquot_connect::{OutboxConfig, run_outbox};
use aliquot_domain::auth::Role;
use aliquot_hl7::{MllpDecoder, MllpEvent, encode_frame};
use jiff::SignedDuration;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::results::{Ctx, order_tests, received_order, setup, test_of, tube};
use crate::support::*;

crate::both_backends!(
    released_and_corrected_results_are_sent_once_in_order,
    an_emr_that_is_down_gets_everything_later_in_order,
    a_refusing_emr_fails_the_head_which_an_analyst_retries,
    a_wrong_ack_or_a_dropped_connection_is_never_taken_as_sent,
    a_restarted_worker_resends_only_what_was_not_acknowledged,
    one_message_per_order_holds_the_results_released_together,
    a_destination_is_edited_and_retired_with_a_reason,
);

const TIMEOUT: Duration = Duration::from_secs(30);

/// What the fake EMR answers to the next message.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Ack(&'static str),
    /// An AA naming another control id.
    WrongId,
    /// Closes the connection without answering.
    Close,
    /// Reads and never answers.
    Silent,
}

#[derive(Clone, Default)]
struct Emr {
    received: Arc<Mutex<Vec<String>>>,
    /// Scripted answers, in order; AA once it is empty (or `fallback`).
    script: Arc<Mutex<VecDeque<Reply>>>,
    fallback: Arc<Mutex<Option<Reply>>>,
}

impl Emr {
    fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    fn next_reply(&self) -> Reply {
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .or(*self.fallback.lock().unwrap())
            .unwrap_or(Reply::Ack("AA"))
    }

    async fn listen_on(&self, listener: TcpListener) -> JoinHandle<()> {
        let emr = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let emr = emr.clone();
                tokio::spawn(async move {
                    let mut decoder = MllpDecoder::new(1 << 20);
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        while let Some(e) = decoder.next_event() {
                            let MllpEvent::Frame(f) = e else { continue };
                            let msg = String::from_utf8(f).expect("UTF-8 message");
                            let control = field(&msg, "MSH", 10);
                            emr.received.lock().unwrap().push(msg);
                            let ack = match emr.next_reply() {
                                Reply::Ack(code) => ack(code, &control),
                                Reply::WrongId => ack("AA", "SOMEONE-ELSE"),
                                Reply::Close => return,
                                Reply::Silent => continue,
                            };
                            let mut out = Vec::new();
                            encode_frame(ack.as_bytes(), &mut out);
                            if stream.write_all(&out).await.is_err() {
                                return;
                            }
                        }
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => decoder.push(&buf[..n]),
                        }
                    }
                });
            }
        })
    }
}

fn ack(code: &str, control: &str) -> String {
    let mut a = format!(
        "MSH|^~\\&|EMR|HOSP|ALIQUOT|LAB|20260101000000||ACK^R01^ACK|A{control}|P|2.5.1\rMSA|{code}|{control}\r"
    );
    if code != "AA" {
        a.push_str("ERR|||204^Unknown patient^HL70357|E||||Unknown patient MRN-900\r");
    }
    a
}

/// SEG-n of the first segment `seg` of a message (MSH counted as HL7 counts it).
fn field(msg: &str, seg: &str, n: usize) -> String {
    segment(msg, seg)
        .map(|s| {
            let parts: Vec<&str> = s.split('|').collect();
            let i = if seg == "MSH" { n - 1 } else { n };
            parts.get(i).copied().unwrap_or("").to_owned()
        })
        .unwrap_or_default()
}

fn segment<'a>(msg: &'a str, seg: &str) -> Option<&'a str> {
    msg.split('\r').find(|s| s.starts_with(&format!("{seg}|")))
}

/// Field n of every segment `seg` of a message, in order.
fn fields(msg: &str, seg: &str, n: usize) -> Vec<String> {
    msg.split('\r')
        .filter(|s| s.starts_with(&format!("{seg}|")))
        .map(|s| s.split('|').nth(n).unwrap_or("").to_owned())
        .collect()
}

/// The ordering provider of `setup` as an XCN with the NPI (OBR-16, ORC-12).
const HOUSE_XCN: &str = "1234567893^House^Gregory^^^^^^NPI^^^^NPI";

fn config() -> OutboxConfig {
    OutboxConfig {
        poll: Duration::from_millis(20),
        connect_timeout: Duration::from_secs(1),
        ack_timeout: Duration::from_secs(1),
        backoff_start: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        max_refusals: 3,
        sending_application: "ALIQUOT".into(),
        sending_facility: "LAB".into(),
    }
}

/// The test's clock runs five times faster than the wall (back-off and leases are read from
/// the application's clock).
fn tick(c: &Ctx) -> JoinHandle<()> {
    let clock = c.app.clock.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            clock.advance(SignedDuration::from_millis(50));
        }
    })
}

fn worker(c: &Ctx) -> JoinHandle<()> {
    tokio::spawn(run_outbox(
        c.app.app.clone(),
        config(),
        std::future::pending::<()>(),
    ))
}

async fn register_emr(c: &Ctx, token: &str, addr: SocketAddr) {
    let (s, v) = c
        .app
        .post(
            "/api/v1/destinations",
            token,
            json!({"code": "EMR", "name": "Hospital EMR", "host": addr.ip().to_string(),
                   "port": addr.port()}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn outbox(c: &Ctx, token: &str, query: &str) -> Vec<Value> {
    let (s, v) = c.app.get(&format!("/api/v1/outbox{query}"), token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array().unwrap().clone()
}

/// Releases K (and NA) on a fresh order; returns the order id and the K result's id.
async fn release(c: &Ctx, tests: &[(&str, &str)]) -> (i64, Vec<i64>) {
    let now = c.app.app.now();
    let codes: Vec<&str> = tests.iter().map(|(t, _)| *t).collect();
    let (order, o) = received_order(c, &codes, now - SignedDuration::from_mins(30)).await;
    let sst = tube(&o, "SST");
    let items: Vec<Value> = tests
        .iter()
        .map(|(t, v)| json!({"accession": sst, "test": t, "value": v, "instrument": "CHEM-1"}))
        .collect();
    let (s, v) = c
        .app
        .post("/api/v1/results", &c.tech, json!({"results": items}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for r in v["results"].as_array().unwrap() {
        assert_eq!(r["outcome"], "released", "{r}");
    }
    let found = order_tests(c, order).await;
    let ids = tests
        .iter()
        .map(|(t, _)| test_of(&found, t)["result"]["id"].as_i64().unwrap())
        .collect();
    (order, ids)
}

/// The control ids of the outbox rows, oldest first.
async fn control_ids(c: &Ctx, token: &str) -> Vec<String> {
    let mut rows = outbox(c, token, "").await;
    rows.reverse();
    let mut out = Vec::new();
    for r in rows {
        let (s, v) = c
            .app
            .get(&format!("/api/v1/outbox/{}", r["id"]), token)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        out.push(v["content"]["control_id"].as_str().unwrap().to_owned());
    }
    out
}

async fn released_and_corrected_results_are_sent_once_in_order(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    // Without a destination nothing is queued.
    release(&c, &[("GLU", "90")]).await;
    assert!(outbox(&c, &admin, "").await.is_empty());

    let emr = Emr::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _emr = emr.listen_on(listener).await;
    register_emr(&c, &admin, addr).await;
    let (s, v) = c.app.get("/api/v1/destinations", &admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v[0]["code"], "EMR", "{v}");
    let _tick = tick(&c);
    let w = worker(&c);

    let (order, ids) = release(&c, &[("NA", "140"), ("K", "4.2")]).await;
    wait_for("the order's message", || async {
        !emr.received().is_empty()
    })
    .await;
    let got = emr.received();
    let expected = control_ids(&c, &c.mt).await;
    assert_eq!(
        got.iter().map(|m| field(m, "MSH", 10)).collect::<Vec<_>>(),
        expected,
        "one message for the order, MSH-10 = the row's control id"
    );
    let m = &got[0];
    assert_eq!(field(m, "MSH", 9), "ORU^R01^ORU_R01");
    assert_eq!(field(m, "MSH", 12), "2.5.1");
    assert_eq!(field(m, "PID", 3), "MRN-900^^^LAB^MR");
    assert_eq!(field(m, "PID", 5), "Okonkwo-Lindqvist^Zoë^");
    assert_eq!(field(m, "PID", 7), "19610409");
    // Both results, in the order released, each under its ORC/OBR.
    assert_eq!(fields(m, "ORC", 3), [order.to_string(), order.to_string()]);
    assert_eq!(fields(m, "OBR", 25), ["F", "F"]);
    // The ordering provider (issue 12): OBR-16 and ORC-12, an XCN with the NPI.
    assert_eq!(fields(m, "OBR", 16), [HOUSE_XCN, HOUSE_XCN], "{m}");
    assert_eq!(fields(m, "ORC", 12), [HOUSE_XCN, HOUSE_XCN], "{m}");
    let obx3 = fields(m, "OBX", 3);
    assert!(obx3[0].contains("NA") && obx3[1].contains("K"), "{m}");
    assert_eq!(fields(m, "OBX", 2), ["NM", "NM"]);
    assert_eq!(fields(m, "OBX", 5), ["140", "4.2"]);
    assert_eq!(fields(m, "OBX", 6)[1], "mmol/L^mmol/L^UCUM");
    assert_eq!(fields(m, "OBX", 7)[1], "3.5–5.1");
    assert_eq!(fields(m, "OBX", 11), ["F", "F"]);
    assert!(!fields(m, "OBX", 23)[1].is_empty(), "performing lab: {m}");

    // A correction follows as OBX-11 C.
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/results/{}/correct", ids[1]),
            &c.mt,
            json!({"value": "6.9", "reason": "wrong sample line transcribed",
                   "signature": {"password": PASSWORD}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    wait_for("the correction", || async { emr.received().len() >= 2 }).await;
    let corr = &emr.received()[1];
    assert_eq!(field(corr, "OBX", 11), "C");
    assert_eq!(field(corr, "OBR", 25), "C");
    assert_eq!(field(corr, "OBX", 5), "6.9");
    assert_eq!(field(corr, "OBX", 8), "HH", "{corr}");
    assert!(
        segment(corr, "NTE").is_some_and(|n| n.contains("Critical value")),
        "critical-call note: {corr}"
    );

    // Each exactly once, all marked sent with their acknowledgement.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(emr.received().len(), 2);
    let sent = outbox(&c, &admin, "?status=sent").await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    for r in &sent {
        assert_eq!(r["attempts"], 1, "{r}");
        assert_eq!(r["destination"], "EMR");
        assert!(r["content"].is_null(), "no content in the list: {r}");
    }
    // The content only for a caller who may read patients.
    let id = sent[0]["id"].as_i64().unwrap();
    let (_, v) = c.app.get(&format!("/api/v1/outbox/{id}"), &admin).await;
    assert!(v["content"].is_null(), "{v}");
    let (_, v) = c.app.get(&format!("/api/v1/outbox/{id}"), &c.mt).await;
    let content = &v["content"];
    assert!(
        content["message"].as_str().unwrap().starts_with("MSH|"),
        "{v}"
    );
    assert!(content["ack"].as_str().unwrap().contains("MSA|AA|"), "{v}");
    // A sent row is neither retried nor skipped.
    let (s, v) = c
        .app
        .post(&format!("/api/v1/outbox/{id}/retry"), &c.mt, json!({}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    w.abort();
    c.app.finish().await;
}

async fn an_emr_that_is_down_gets_everything_later_in_order(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    // A port nobody listens on (yet).
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    register_emr(&c, &admin, addr).await;
    let _tick = tick(&c);
    let w = worker(&c);
    release(&c, &[("NA", "140"), ("K", "4.2")]).await;
    release(&c, &[("GLU", "95")]).await;
    wait_for("retries against the closed port", || async {
        let rows = outbox(&c, &admin, "?status=pending").await;
        rows.last().is_some_and(|head| {
            head["attempts"].as_i64().unwrap() >= 2
                && head["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("connection failed"))
        })
    })
    .await;
    let rows = outbox(&c, &admin, "?status=pending").await;
    // One row per order.
    assert_eq!(rows.len(), 2);
    // The head blocks the rest: it was never tried.
    assert_eq!(rows[0]["attempts"], 0, "{rows:?}");

    let emr = Emr::default();
    let listener = TcpListener::bind(addr).await.unwrap();
    let _emr = emr.listen_on(listener).await;
    wait_for("everything sent", || async {
        outbox(&c, &admin, "?status=sent").await.len() == 2
    })
    .await;
    let got: Vec<String> = emr.received().iter().map(|m| field(m, "MSH", 10)).collect();
    assert_eq!(got, control_ids(&c, &c.mt).await, "in order, each once");
    w.abort();
    c.app.finish().await;
}

async fn a_refusing_emr_fails_the_head_which_an_analyst_retries(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    let emr = Emr::default();
    *emr.fallback.lock().unwrap() = Some(Reply::Ack("AE"));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _emr = emr.listen_on(listener).await;
    register_emr(&c, &admin, addr).await;
    let _tick = tick(&c);
    let w = worker(&c);
    release(&c, &[("NA", "140"), ("K", "4.2")]).await;
    release(&c, &[("GLU", "95")]).await;
    wait_for("the head failed", || async {
        !outbox(&c, &admin, "?status=failed").await.is_empty()
    })
    .await;
    let failed = outbox(&c, &admin, "?status=failed").await;
    assert_eq!(failed.len(), 1);
    let head = &failed[0];
    assert_eq!(head["refusals"], 3, "{head}");
    assert_eq!(head["attempts"], 3, "{head}");
    let reason = head["last_error"].as_str().unwrap();
    assert!(reason.contains("refused: AE"), "{reason}");
    assert!(reason.contains("Unknown patient"), "{reason}");
    // Blocked: the one behind it was never sent, and nothing more is sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = emr.received();
    assert_eq!(got.len(), 3, "three refused attempts of the head only");
    assert!(
        got.iter()
            .all(|m| field(m, "MSH", 10) == field(&got[0], "MSH", 10))
    );
    let pending = outbox(&c, &admin, "?status=pending").await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["attempts"], 0);

    // The EMR is fixed; the analyst retries (audited) and both go, in order.
    *emr.fallback.lock().unwrap() = None;
    let before = c.app.audit_len().await;
    let id = head["id"].as_i64().unwrap();
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/outbox/{id}/retry"),
            &c.mt,
            json!({"reason": "patient registered in the EMR"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(c.app.audit_len().await, before + 1);
    wait_for("both sent", || async {
        outbox(&c, &admin, "?status=sent").await.len() == 2
    })
    .await;
    let got: Vec<String> = emr.received().iter().map(|m| field(m, "MSH", 10)).collect();
    let ids = control_ids(&c, &c.mt).await;
    assert_eq!(got[3..], ids[..], "the head, then the one behind it");
    // Skipping needs a reason; a sent row cannot be skipped.
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/outbox/{id}/skip"),
            &c.mt,
            json!({"reason": "duplicate"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    w.abort();
    c.app.finish().await;
}

async fn a_wrong_ack_or_a_dropped_connection_is_never_taken_as_sent(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    let emr = Emr::default();
    emr.script
        .lock()
        .unwrap()
        .extend([Reply::WrongId, Reply::Close, Reply::Ack("AA")]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _emr = emr.listen_on(listener).await;
    register_emr(&c, &admin, addr).await;
    let _tick = tick(&c);
    let w = worker(&c);
    release(&c, &[("K", "4.2")]).await;
    wait_for("sent", || async {
        outbox(&c, &admin, "?status=sent").await.len() == 1
    })
    .await;
    let got = emr.received();
    assert_eq!(
        got.len(),
        3,
        "answered out of step, dropped, then acknowledged"
    );
    let control = field(&got[0], "MSH", 10);
    assert!(got.iter().all(|m| field(m, "MSH", 10) == control));
    assert!(
        got.iter().all(|m| *m == got[0]),
        "a resend is the same message"
    );
    let row = &outbox(&c, &admin, "").await[0];
    assert_eq!(row["attempts"], 3, "{row}");
    assert_eq!(row["refusals"], 0, "{row}");
    w.abort();
    c.app.finish().await;
}

async fn a_restarted_worker_resends_only_what_was_not_acknowledged(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    let emr = Emr::default();
    emr.script.lock().unwrap().push_back(Reply::Silent);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _emr = emr.listen_on(listener).await;
    register_emr(&c, &admin, addr).await;
    let _tick = tick(&c);
    let first = worker(&c);
    release(&c, &[("K", "4.2")]).await;
    wait_for("the first message", || async { emr.received().len() == 1 }).await;
    // The worker dies while it waits for the acknowledgement.
    first.abort();
    let _ = first.await;
    let row = &outbox(&c, &admin, "").await[0];
    assert_eq!(row["status"], "pending", "{row}");

    let second = worker(&c);
    wait_for("sent after the restart", || async {
        outbox(&c, &admin, "?status=sent").await.len() == 1
    })
    .await;
    release(&c, &[("GLU", "95")]).await;
    wait_for("the second result sent", || async {
        outbox(&c, &admin, "?status=sent").await.len() == 2
    })
    .await;
    second.abort();
    let _ = second.await;

    // A third worker finds nothing to send.
    let third = worker(&c);
    tokio::time::sleep(Duration::from_millis(500)).await;
    third.abort();
    let got: Vec<String> = emr.received().iter().map(|m| field(m, "MSH", 10)).collect();
    let ids = control_ids(&c, &c.mt).await;
    assert_eq!(got, vec![ids[0].clone(), ids[0].clone(), ids[1].clone()]);
    c.app.finish().await;
}

/// Issue 12: the EMR gets one message per order. The results of an order released in one
/// batch (from two tubes) share one message; a result released later joins it while it was
/// never attempted (a second batch, a critical potassium verified after its call); once the
/// message went, a correction is a message of its own. Another order is another message;
/// order is kept.
async fn one_message_per_order_holds_the_results_released_together(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    let emr = Emr::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _emr = emr.listen_on(listener).await;
    register_emr(&c, &admin, addr).await;

    // No worker yet: the rows wait, never attempted.
    let now = c.app.app.now();
    let (order, o) = received_order(
        &c,
        &["NA", "K", "GLU", "WBC", "CL"],
        now - SignedDuration::from_mins(30),
    )
    .await;
    let (sst, lav) = (tube(&o, "SST"), tube(&o, "LAV"));
    let (s, v) = c
        .app
        .post(
            "/api/v1/results",
            &c.tech,
            json!({"results": [
                {"accession": sst, "test": "NA", "value": "141", "instrument": "CHEM-1"},
                {"accession": sst, "test": "K", "value": "6.8", "instrument": "CHEM-1"},
                {"accession": sst, "test": "GLU", "value": "95", "instrument": "CHEM-1"},
                {"accession": lav, "test": "WBC", "value": "7.2", "instrument": "HEME-1"},
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let outcomes: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["released", "held", "released", "released"],
        "{v}"
    );
    let k = v["results"][1]["result_id"].as_i64().unwrap();
    let na = v["results"][0]["result_id"].as_i64().unwrap();
    let rows = outbox(&c, &admin, "").await;
    assert_eq!(rows.len(), 1, "three results, one order: one row {rows:?}");
    assert_eq!(rows[0]["order_id"], order);

    // Another order's result: a row of its own.
    let (other, _) = release(&c, &[("GLU", "101")]).await;
    assert_eq!(outbox(&c, &admin, "").await.len(), 2);
    // A second batch for the first order joins its row (never attempted yet).
    let (s, v) = c
        .app
        .post(
            "/api/v1/results",
            &c.tech,
            json!({"results": [
                {"accession": sst, "test": "CL", "value": "101", "instrument": "CHEM-1"},
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["results"][0]["outcome"], "released", "{v}");
    assert_eq!(outbox(&c, &admin, "").await.len(), 2);

    // The critical potassium is called and verified: it joins the first order's row.
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/results/{k}/critical-call"),
            &c.mt,
            json!({"notified_name": "RN Mary Hughes", "notified_role": "nurse", "read_back": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = c
        .app
        .post(&format!("/api/v1/results/{k}/verify"), &c.mt, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(outbox(&c, &admin, "").await.len(), 2);

    let _tick = tick(&c);
    let w = worker(&c);
    wait_for("both orders sent", || async {
        outbox(&c, &admin, "?status=sent").await.len() == 2
    })
    .await;
    let got = emr.received();
    assert_eq!(got.len(), 2, "{got:?}");
    let first = &got[0];
    assert_eq!(
        fields(first, "ORC", 3),
        vec![order.to_string(); 5],
        "{first}"
    );
    let tests: Vec<String> = fields(first, "OBX", 3)
        .iter()
        .map(|s| {
            s.split('^')
                .nth(3)
                .unwrap_or(s.split('^').next().unwrap())
                .to_owned()
        })
        .collect();
    assert_eq!(tests, ["NA", "GLU", "WBC", "CL", "K"], "{first}");
    // Each result under the tube it was measured on.
    assert_eq!(
        fields(first, "OBR", 3),
        [&sst[..], &sst, &lav, &sst, &sst],
        "{first}"
    );
    assert_eq!(fields(first, "OBR", 16), vec![HOUSE_XCN; 5], "{first}");
    assert_eq!(fields(&got[1], "ORC", 3), [other.to_string()]);

    // Sent: a correction of the first order is a message of its own, never a resend.
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/results/{na}/correct"),
            &c.mt,
            json!({"value": "139", "reason": "transcription error",
                   "signature": {"password": crate::support::PASSWORD}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    wait_for("the correction", || async { emr.received().len() == 3 }).await;
    let corr = &emr.received()[2];
    assert_eq!(fields(corr, "OBX", 11), ["C"], "{corr}");
    assert_eq!(fields(corr, "OBX", 5), ["139"], "{corr}");
    let got: Vec<String> = emr.received().iter().map(|m| field(m, "MSH", 10)).collect();
    assert_eq!(got, control_ids(&c, &c.mt).await, "in order, each once");
    w.abort();
    c.app.finish().await;
}

/// Issue 12: a destination's address is changed and it is retired and brought back, each
/// with a reason, versioned and audited; a retired destination gets no new message and its
/// queued ones stay listed; bad input names its field and changes nothing.
async fn a_destination_is_edited_and_retired_with_a_reason(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    // First at a port nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    register_emr(&c, &admin, dead).await;
    let (s, d) = c.app.get("/api/v1/destinations/EMR", &admin).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["version"], 1);
    let (s, _) = c.app.get("/api/v1/destinations/NOPE", &admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    release(&c, &[("K", "4.2")]).await;

    let put = |body: Value| {
        let app = &c.app;
        let admin = admin.clone();
        async move { app.put("/api/v1/destinations/EMR", &admin, body).await }
    };
    let change = |version: i64, port: u16, retired: bool, reason: Option<&str>| {
        json!({"version": version, "reason": reason, "retired": retired,
               "destination": {"name": "Hospital EMR", "host": "127.0.0.1", "port": port}})
    };
    // Refusals, each naming its field, none changing anything.
    let emr = Emr::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let live = listener.local_addr().unwrap();
    let _emr = emr.listen_on(listener).await;
    let before = c.app.audit_len().await;
    for (body, status, field) in [
        (
            change(1, live.port(), false, None),
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason",
        ),
        (
            change(1, 0, false, Some("moved")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "port",
        ),
        (
            json!({"version": 1, "reason": "moved", "destination":
                   {"name": "Hospital EMR", "host": "emr host", "port": live.port()}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "host",
        ),
        (
            change(7, live.port(), false, Some("moved")),
            StatusCode::CONFLICT,
            "version",
        ),
    ] {
        let (s, v) = put(body).await;
        assert_eq!(s, status, "{v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    assert_eq!(c.app.audit_len().await, before);
    let (_, d) = c.app.get("/api/v1/destinations/EMR", &admin).await;
    assert_eq!(d["version"], 1, "{d}");

    // The EMR moved: the sender follows the new address and the queued message goes.
    let (s, d) = put(change(1, live.port(), false, Some("EMR interface moved"))).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["version"], 2);
    assert_eq!(d["port"], live.port());
    assert_eq!(d["retired"], false);
    let _tick = tick(&c);
    let w = worker(&c);
    wait_for("sent to the new address", || async {
        outbox(&c, &admin, "?status=sent").await.len() == 1
    })
    .await;

    // Retired: a result released now queues nothing for it; the worker sends nothing.
    let (s, d) = put(change(2, live.port(), true, Some("EMR replaced"))).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["retired"], true);
    assert_eq!(d["version"], 3);
    release(&c, &[("GLU", "95")]).await;
    assert_eq!(outbox(&c, &admin, "").await.len(), 1);
    let (_, list) = c.app.get("/api/v1/destinations", &admin).await;
    assert_eq!(list[0]["retired"], true, "{list}");

    // Audited with the old and new values and the reason.
    let director = c.app.token_for(Role::Director).await;
    let (_, events) = c
        .app
        .get(&format!("/api/v1/audit/events?after={before}"), &director)
        .await;
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entity_type"] == "destination")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["destination.update", "destination.retire"],
        "{events}"
    );
    let retire = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "destination.retire")
        .unwrap();
    assert_eq!(retire["reason"], "EMR replaced", "{retire}");
    assert_eq!(retire["old_value"]["retired"], false, "{retire}");
    assert_eq!(retire["new_value"]["retired"], true, "{retire}");

    // Brought back: results released from now on are queued again.
    let (s, d) = put(change(
        3,
        live.port(),
        false,
        Some("EMR replacement postponed"),
    ))
    .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    release(&c, &[("GLU", "97")]).await;
    wait_for("sent after reinstatement", || async {
        outbox(&c, &admin, "?status=sent").await.len() == 2
    })
    .await;
    assert_eq!(emr.received().len(), 2);
    w.abort();
    c.app.finish().await;
}
