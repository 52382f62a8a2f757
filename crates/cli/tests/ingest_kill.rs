//! Durable ingest over MLLP across a crash (RELIABILITY.md section A): the server is killed
//! with SIGKILL while analyzers stream ORU^R01 messages on several connections. After a
//! restart every message that was acknowledged (AA) is stored exactly once; every message
//! without an acknowledgement is stored once or not at all, and is accepted when sent again;
//! nothing is posted twice; the audit chain is intact. On SQLite and on PostgreSQL.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aliquot_connect::simulate::{MllpClient, Reading, ack_code, oru};
use serde_json::{Value, json};
use sqlx::migrate::MigrateDatabase;

mod common;
use common::{BIN, Server};

/// The basic metabolic panel as the demo's CHEM1 sends it: its code, a normal value, unit.
const PANEL: &[(&str, &str, &str, &str)] = &[
    ("NA", "NA", "140", "mmol/L"),
    ("K", "K", "4.2", "mmol/L"),
    ("CL", "CL", "104", "mmol/L"),
    ("CO2-L", "CO2", "24", "mmol/L"),
    ("UREAL", "BUN", "14", "mg/dL"),
    ("CREJ2", "CREA", "0.90", "mg/dL"),
    ("GLUC3", "GLU", "90", "mg/dL"),
    ("CA2", "CA", "9.5", "mg/dL"),
];
const TUBES: usize = 120;
const CONNECTIONS: usize = 4;
/// The server is killed once this many messages were acknowledged.
const KILL_AFTER: usize = 300;

fn args(db: &str, dir: &std::path::Path) -> (Vec<String>, Option<String>) {
    let mut args = vec![
        "--data-dir".to_owned(),
        dir.join("data").display().to_string(),
    ];
    let mut url = None;
    if db == "postgres" {
        let server = std::env::var("ALIQUOT_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
        let u = format!("{server}/aliquot_t_{}", uuid::Uuid::new_v4().simple());
        args.extend(["--database".to_owned(), u.clone()]);
        url = Some(u);
    }
    (args, url)
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Value,
) -> Value {
    let mut req = client.request(method, &url).bearer_auth(token);
    if !body.is_null() {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {v}");
    v
}

/// Places `TUBES` basic metabolic panels for one patient, each tube drawn and received.
async fn received_tubes(client: &reqwest::Client, base: &str) -> Vec<(i64, String)> {
    let tech: Value = client
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({"username": "technician", "password": "demo-technician-pass"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tech = tech["token"].as_str().unwrap().to_owned();
    let post = reqwest::Method::POST;
    call(
        client,
        post.clone(),
        format!("{base}/api/v1/patients"),
        &tech,
        json!({"mrn": "MRN-KILL-1", "family_name": "Crash", "given_name": "Test",
               "birth_date": "1970-01-01", "sex": "F"}),
    )
    .await;
    let drawn = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(40)).to_string();
    let mut tubes = Vec::new();
    for _ in 0..TUBES {
        let o = call(
            client,
            post.clone(),
            format!("{base}/api/v1/orders"),
            &tech,
            json!({"patient": {"mrn": "MRN-KILL-1", "birth_date": "1970-01-01"},
                   "provider_id": 1, "location_id": 1, "tests": ["BMP"], "priority": "routine"}),
        )
        .await;
        let acc = o["specimens"][0]["accession"].as_str().unwrap().to_owned();
        call(
            client,
            post.clone(),
            format!("{base}/api/v1/specimens/{acc}/collect"),
            &tech,
            json!({"collected_at": drawn, "patient": {"mrn": "MRN-KILL-1", "birth_date": "1970-01-01"}}),
        )
        .await;
        call(
            client,
            post.clone(),
            format!("{base}/api/v1/specimens/{acc}/receive"),
            &tech,
            json!({"label": "ok", "container": "SST", "volume_ul": 2000}),
        )
        .await;
        tubes.push((o["id"].as_i64().unwrap(), acc));
    }
    tubes
}

/// One message per tube and test, keyed by its control id.
fn messages(tubes: &[(i64, String)]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (t, (_, acc)) in tubes.iter().enumerate() {
        for (p, (code, _, value, units)) in PANEL.iter().enumerate() {
            let id = format!("K{t}-{p}");
            let msg = oru(
                "CHEM1",
                &id,
                acc,
                &[Reading {
                    code: (*code).into(),
                    value: (*value).into(),
                    units: (*units).into(),
                    flags: Vec::new(),
                }],
            );
            out.push((id, msg));
        }
    }
    out
}

fn mllp_addr(server: &Server) -> std::net::SocketAddr {
    server.mllp.parse().unwrap()
}

async fn crash_and_resend(db: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (db_args, pg_url) = args(db, dir.path());
    let client = reqwest::Client::new();
    let mut server = Server::start(&db_args, &["--demo"]);
    let tubes = received_tubes(&client, &server.base).await;
    let all = Arc::new(messages(&tubes));
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let addr = mllp_addr(&server);
    let mut senders = Vec::new();
    for c in 0..CONNECTIONS {
        let all = all.clone();
        let acked = acked.clone();
        senders.push(tokio::spawn(async move {
            let Ok(mut conn) = MllpClient::connect(addr).await else {
                return;
            };
            for (id, msg) in all.iter().skip(c).step_by(CONNECTIONS) {
                match conn.send(msg, Duration::from_secs(30)).await {
                    Ok(ack) => {
                        assert_eq!(ack_code(&ack), "AA", "{}", String::from_utf8_lossy(&ack));
                        acked.lock().unwrap().insert(id.clone());
                    }
                    // The server is gone.
                    Err(_) => return,
                }
            }
        }));
    }
    // SIGKILL in the middle of the stream.
    while acked.lock().unwrap().len() < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let acked: HashSet<String> = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= KILL_AFTER && acked.len() < all.len(),
        "killed mid-stream"
    );
    println!(
        "{db}: {} of {} messages acknowledged before SIGKILL",
        acked.len(),
        all.len()
    );
    drop(server);

    // Restart on the same database; the analyzers send what was not acknowledged, and a
    // few acknowledged messages again (as after a lost ACK).
    let server = Server::start(&db_args, &[]);
    let mut conn = MllpClient::connect(mllp_addr(&server)).await.unwrap();
    for (id, msg) in all.iter() {
        if acked.contains(id) && !id.ends_with("-0") {
            continue;
        }
        let ack = conn.send(msg, Duration::from_secs(30)).await.unwrap();
        assert_eq!(
            ack_code(&ack),
            "AA",
            "{id}: {}",
            String::from_utf8_lossy(&ack)
        );
    }
    // Every result is stored exactly once: one result per test, with one version.
    let mt: Value = client
        .post(format!("{}/api/v1/auth/token", server.base))
        .json(&json!({"username": "technologist", "password": "demo-technologist-pass"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mt = mt["token"].as_str().unwrap().to_owned();
    for (order, acc) in &tubes {
        let o = call(
            &client,
            reqwest::Method::GET,
            format!("{}/api/v1/orders/{order}", server.base),
            &mt,
            Value::Null,
        )
        .await;
        for (_, test, value, _) in PANEL {
            let t = o["tests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["test_code"] == *test)
                .unwrap();
            let r = &t["result"];
            assert_eq!(r["value"], *value, "{acc} {test}: {t}");
            assert_eq!(r["instrument"], "CHEM1");
            assert_eq!(
                r["versions"].as_array().unwrap().len(),
                1,
                "{acc} {test}: {r}"
            );
        }
    }
    drop(server);
    // The audit chain survived the crash.
    let out = std::process::Command::new(BIN)
        .args(&db_args)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("intact"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(url) = pg_url {
        let _ = sqlx::Postgres::force_drop_database(&url).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_mllp_messages_survive_sigkill_exactly_once_on_sqlite() {
    crash_and_resend("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_mllp_messages_survive_sigkill_exactly_once_on_postgres() {
    crash_and_resend("postgres").await;
}
