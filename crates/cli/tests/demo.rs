//! `aliquot serve --demo` seeds a morning's work into an empty database, through the use cases
//! (every row audited, the chain intact), and only once: a restart with `--demo` adds nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::Server;

/// Starts `serve --demo` on `data_dir`; answers with the server and how long it took to
/// print its address (the seeding happens before).
fn start_demo(data_dir: &std::path::Path) -> (Server, Duration) {
    let started = Instant::now();
    let server = Server::start(
        &["--data-dir".into(), data_dir.display().to_string()],
        &["--demo"],
    );
    (server, started.elapsed())
}

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn login(&self, user: &str) -> String {
        let v = self
            .call(
                None,
                reqwest::Method::POST,
                "/auth/token",
                Some(json!({"username": user, "password": format!("demo-{user}-pass")})),
            )
            .await;
        v["token"].as_str().unwrap().to_owned()
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        self.call(Some(token), reqwest::Method::GET, path, None)
            .await
    }

    async fn call(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let mut r = self
            .client
            .request(method, format!("{}/api/v1{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_seeds_a_morning_once_with_every_status_and_an_intact_chain() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (server, seeding) = start_demo(&data);
    println!("serve --demo printed its address after {seeding:?} (seeding included)");
    let api = Api {
        client: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let tech = api.login("technologist").await;
    let admin = api.login("admin").await;

    // 40 patients, DEMO-0001 … DEMO-0040, and no more; the look-alikes are there.
    for n in 1..=40 {
        let found = api.get(&tech, &format!("/patients?mrn=DEMO-{n:04}")).await;
        assert_eq!(found.as_array().unwrap().len(), 1, "DEMO-{n:04}");
    }
    let none = api.get(&tech, "/patients?mrn=DEMO-0041").await;
    assert!(none.as_array().unwrap().is_empty());
    let whitfields = api.get(&tech, "/patients?family_name=Whitfield").await;
    assert_eq!(whitfields.as_array().unwrap().len(), 2, "{whitfields}");

    // 60 orders of every priority, their tubes in every status.
    let mut priorities = BTreeSet::new();
    let mut by_status: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut results_by_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut documented_calls = 0;
    for n in 1..=61 {
        let found = api
            .get(
                &tech,
                &format!("/orders?placer_order_number=DEMO-PO-{n:03}"),
            )
            .await;
        let found = found.as_array().unwrap();
        if n == 61 {
            assert!(found.is_empty());
            continue;
        }
        assert_eq!(found.len(), 1, "DEMO-PO-{n:03}");
        priorities.insert(found[0]["priority"].as_str().unwrap().to_owned());
        let order = api.get(&tech, &format!("/orders/{}", found[0]["id"])).await;
        for t in order["tests"].as_array().unwrap() {
            let status = t["result"]["status"].as_str().unwrap_or("pending");
            *results_by_status.entry(status.to_owned()).or_default() += 1;
            if t["result"]["critical_call"]["read_back"] == true {
                documented_calls += 1;
            }
        }
        for s in found[0]["specimens"].as_array().unwrap() {
            by_status
                .entry(s["status"].as_str().unwrap().to_owned())
                .or_default()
                .push(s["accession"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        priorities.into_iter().collect::<Vec<_>>(),
        ["asap", "routine", "stat", "timed"]
    );
    let counts: BTreeMap<_, _> = by_status.iter().map(|(k, v)| (k, v.len())).collect();
    println!("tubes by status: {counts:?}");
    for status in [
        "planned",
        "collected",
        "in_transit",
        "received",
        "in_process",
        "processed",
        "stored",
        "rejected",
        "sent_out",
        "disposed",
    ] {
        let accessions = by_status
            .get(status)
            .unwrap_or_else(|| panic!("no tube {status}: {counts:?}"));
        let detail = api
            .get(&tech, &format!("/specimens/{}", accessions[0]))
            .await;
        assert_eq!(detail["status"], status, "{detail}");
    }
    // Some draws are back-dated, some by someone else than the recording user.
    let mut back_dated = 0;
    let mut by_collector = 0;
    for acc in &by_status["collected"] {
        let detail = api.get(&tech, &format!("/specimens/{acc}")).await;
        let at: jiff::Timestamp = detail["collected_at"].as_str().unwrap().parse().unwrap();
        if jiff::Timestamp::now().duration_since(at) > jiff::SignedDuration::from_mins(15) {
            back_dated += 1;
        }
        if detail
            .to_string()
            .contains("\"collector\":\"R. Adeyemi, RN\"")
            || detail
                .to_string()
                .contains("\"collector\":\"K. Lindholm, RN\"")
        {
            by_collector += 1;
        }
    }
    assert!(
        back_dated > 0 && by_collector > 0,
        "{back_dated} {by_collector}"
    );
    // Poured aliquots: processed serum tubes with children.
    let mut aliquoted = 0;
    for acc in &by_status["processed"] {
        let lineage = api.get(&tech, &format!("/specimens/{acc}/lineage")).await;
        aliquoted += lineage["children"].as_array().unwrap().len();
    }
    assert!(aliquoted >= 3, "{aliquoted} aliquots");

    // Results in every status: released by the rules, held for review, corrected, pending;
    // one critical call documented with read-back, one still open.
    println!("tests by result status: {results_by_status:?}");
    for status in ["released", "held", "corrected", "pending", "not_performed"] {
        assert!(
            results_by_status.get(status).is_some_and(|n| *n > 0),
            "no result {status}: {results_by_status:?}"
        );
    }
    assert_eq!(documented_calls, 1);
    let calls = api.get(&tech, "/critical-calls").await;
    assert_eq!(calls.as_array().unwrap().len(), 1, "{calls}");
    let worklist = api.get(&tech, "/worklists/chemistry").await;
    assert!(
        worklist["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["status"] == "held"),
        "{worklist}"
    );

    // The lists a lab works from.
    let sorting = api.get(&tech, "/sorting").await;
    assert!(!sorting.as_array().unwrap().is_empty());
    let problems = api.get(&tech, "/problem-log").await;
    assert_eq!(problems.as_array().unwrap().len(), 3, "{problems}");
    let tasks = api.get(&tech, "/recollect-tasks").await;
    assert_eq!(tasks.as_array().unwrap().len(), 3, "{tasks}");
    let send_outs = api.get(&tech, "/send-outs?open=true").await;
    assert_eq!(send_outs.as_array().unwrap().len(), 1, "{send_outs}");
    // Its reference laboratory, and the shipment it left in (issue 14 item 4).
    let labs = api.get(&tech, "/reference-labs").await;
    assert_eq!(labs[0]["code"], "RRL", "{labs}");
    let shipments = api.get(&tech, "/shipments?status=shipped").await;
    assert_eq!(shipments.as_array().unwrap().len(), 1, "{shipments}");
    assert_eq!(shipments[0]["tracking"], "DEMO-TRK-0001");
    assert_eq!(send_outs[0]["shipment_id"], shipments[0]["id"]);
    let outstanding = api.get(&tech, "/send-outs/outstanding").await;
    assert_eq!(outstanding[0]["test"], "VITD", "{outstanding}");
    assert_eq!(outstanding[0]["overdue"], false);
    let units = api.get(&tech, "/storage/units").await;
    // The refrigerator box and the freezer box (coagulation plasma is never refrigerated).
    let in_boxes: i64 = units
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["kind"] == "box")
        .map(|u| u["used"].as_i64().unwrap())
        .sum();
    assert_eq!(in_boxes, i64::try_from(by_status["stored"].len()).unwrap());

    let verify = api.get(&admin, "/audit/verify").await;
    assert_eq!(verify["intact"], true, "{verify}");
    let rows = verify["rows"].as_i64().unwrap();
    assert!(rows > 400, "{rows} audit rows");

    // A restart with --demo on the same data adds nothing (verify itself writes nothing).
    drop(server);
    let (server, _) = start_demo(&data);
    let api = Api {
        client: api.client,
        base: server.base.clone(),
    };
    let again = api.get(&admin, "/audit/verify").await;
    assert_eq!(again["intact"], true, "{again}");
    assert_eq!(again["rows"].as_i64().unwrap(), rows, "{again}");
    let first = api
        .get(&tech, "/orders?placer_order_number=DEMO-PO-001")
        .await;
    assert_eq!(first.as_array().unwrap().len(), 1);
}
