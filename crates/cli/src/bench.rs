//! `aliquot bench`: load generators that measure the server end to end over loopback HTTP.
//! They report figures; they never pass or fail on a threshold (BENCHMARKS.md lists them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aliquot_app::{Actor, App, AppConfig, NewUserInput, SystemClock};
use aliquot_store::DatabaseConfig;
use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::json;

#[derive(Clone, Copy, ValueEnum)]
pub enum Scenario {
    /// Authenticated, audited write: PUT /api/v1/settings/lab.name with a reason.
    AuditedWrite,
    /// Authenticated read: GET /api/v1/auth/me.
    AuthenticatedRead,
    /// POST /api/v1/orders with 4 tests (GLU, NA, K, HGB: two tubes, two accession numbers),
    /// against `--patients` bulk-seeded patients identified by MRN and birth date.
    OrderPlacement,
    /// GET /api/v1/patients?family_name=…&birth_date=… among `--patients` bulk-seeded patients.
    PatientSearch,
    /// POST /api/v1/specimens/{accession}/receive (scan-in with the full receipt check), each
    /// request a different collected tube among `--specimens` seeded specimens.
    SpecimenReceipt,
    /// POST /api/v1/results: batches of `--batch` potassium results, each for a different
    /// received tube among `--specimens` seeded ones, judged by the demo lab's rules (interval,
    /// flags, critical limits, delta against the patient's previous result, autoverification).
    /// Throughput is reported in results per second.
    ResultPosting,
    /// ORU^R01 messages over MLLP, one potassium result each for a different received tube
    /// among `--specimens`, from `--concurrency` connections with one message in flight each:
    /// parsed, matched to the instrument's code, posted through result entry (judged as in
    /// result-posting), stored with the message and its ACK, committed (group commit), then
    /// acknowledged. Latency is send → ACK.
    MllpIngest,
    /// GET /fhir/r4/Observation?patient=…&code=K&_count=20: a page of one patient's released
    /// potassium results among `--specimens` released results (one per seeded tube, spread
    /// over `--patients`), as an EMR polls them.
    FhirSearch,
    /// GET /results?department=chemistry: the bench's result-entry page (web session cookie)
    /// with `--specimens` received potassium tubes pending on the chemistry worklist, each row
    /// of the first hundred shown with its reference interval and previous result; the demo
    /// lab's result rules.
    UiWorklist,
}

#[derive(Args)]
pub struct BenchArgs {
    #[arg(value_enum, default_value = "audited-write")]
    scenario: Scenario,
    /// A PostgreSQL server URL to benchmark on (a fresh database is created on it and
    /// dropped afterwards); default: a fresh SQLite file in a temporary directory.
    #[arg(long = "postgres")]
    postgres: Option<String>,
    /// Requests to send (after 5% warm-up).
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Send at this fixed rate (requests per second, open loop) instead of as fast as the
    /// connections allow; latencies then show the service time at that load.
    #[arg(long)]
    rate: Option<u32>,
    /// With `--rate`: also report every window of this many seconds (by when its requests were
    /// sent): how many, p50, p99 and max. A stall (a WAL checkpoint, a cache outgrown) shows as
    /// one window's tail instead of vanishing into the whole run's percentiles.
    #[arg(long, default_value_t = 10)]
    window: u64,
    /// Patients to bulk-seed for the order-placement and patient-search scenarios.
    #[arg(long, default_value_t = 10_000)]
    patients: usize,
    /// Collected specimens (one per order, one test each) to seed for specimen-receipt.
    #[arg(long, default_value_t = 100_000)]
    specimens: usize,
    /// Results per request for result-posting.
    #[arg(long, default_value_t = 100)]
    batch: usize,
}

const FAMILIES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
];
const GIVENS: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Wei",
    "Aisha",
    "Mateo",
    "Yuki",
    "Olga",
];

/// The i-th synthetic patient: (MRN, family, given, birth date).
fn synthetic(i: usize) -> (String, &'static str, &'static str, String) {
    let family = FAMILIES[i % FAMILIES.len()];
    let given = GIVENS[(i / FAMILIES.len()) % GIVENS.len()];
    let day = (i / (FAMILIES.len() * GIVENS.len())) % 36_500;
    let date = jiff::civil::date(1925, 1, 1)
        .checked_add(jiff::Span::new().days(day as i64))
        .unwrap_or(jiff::civil::date(1925, 1, 1));
    (format!("B{i:09}"), family, given, date.to_string())
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The accession of the i-th seeded specimen (prefix `BR`, so it never meets a real one).
fn seeded_accession(i: usize) -> String {
    let prefix = aliquot_domain::ids::AccessionPrefix::parse("BR").expect("prefix");
    aliquot_domain::ids::AccessionNumber::generate(&prefix, 26, i as u32)
        .as_str()
        .to_owned()
}

/// Seeds `n` serum tubes in `status` (`collected` or `received`), one routine potassium order
/// each, spread over the seeded patients (whose ids are 1..=patients in the fresh database).
/// Collected 10 minutes ago at room temperature, so the receipt check passes.
async fn seed_specimens(
    app: &App,
    patients: usize,
    n: usize,
    provider_id: i64,
    location_id: i64,
    status: &str,
) -> anyhow::Result<()> {
    use aliquot_store::{OrderRecord, OrderTestRecord, SpecimenRecord};
    let now = jiff::Timestamp::now();
    let collected = now - jiff::SignedDuration::from_mins(10);
    let started = Instant::now();
    let batch = 2_000;
    for first in (0..n).step_by(batch) {
        let mut tx = app.store().begin().await?;
        let mut specimens = Vec::with_capacity(batch);
        for i in first..(first + batch).min(n) {
            let patient_id = (i % patients) as i64 + 1;
            let order_id = tx
                .insert_order(&OrderRecord {
                    id: 0,
                    patient_id,
                    provider_id,
                    location_id,
                    priority: "routine".into(),
                    timed_at: None,
                    placer_order_number: None,
                    clinical_notes: None,
                    diagnosis_codes: "[]".into(),
                    status: "active".into(),
                    created_at: collected,
                    created_by: "bench".into(),
                    cancelled_at: None,
                    cancel_reason: None,
                    winged_collection_set: false,
                })
                .await?;
            specimens.push(SpecimenRecord {
                id: 0,
                accession: seeded_accession(i),
                order_id,
                patient_id,
                container: "SST".into(),
                specimen_type: "serum".into(),
                draw_rank: 4,
                status: status.into(),
                volume_ul: 5_000,
                capacity_ul: 5_000,
                created_at: collected,
                collected_at: Some(collected),
                temperature: Some("room".into()),
                demand_ul: 50,
                received_container: None,
            });
        }
        let mut tests = Vec::with_capacity(specimens.len());
        for chunk in specimens.chunks(500) {
            for ((_, id), s) in tx.insert_specimens(chunk).await?.into_iter().zip(chunk) {
                tests.push(OrderTestRecord {
                    id: 0,
                    order_id: s.order_id,
                    test_code: "K".into(),
                    panel_code: None,
                    specimen_id: id,
                    status: "ordered".into(),
                    added_at: collected,
                });
            }
        }
        for chunk in tests.chunks(500) {
            tx.insert_order_tests(chunk).await?;
        }
        tx.commit().await?;
        if first % 100_000 == 0 && first > 0 {
            eprintln!("seeded {first} specimens…");
        }
    }
    eprintln!(
        "seeded {n} {status} specimens (and their orders and tests) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Synthetic patients inserted in bulk through the store's benchmark seeder (not the
/// production `Store`: these rows are not audited).
async fn seed_patients(config: &DatabaseConfig, n: usize) -> anyhow::Result<()> {
    let mut seeder = aliquot_store::seed::BenchSeeder::connect(config).await?;
    let now = jiff::Timestamp::now();
    let started = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        let (mrn, family, given, birth_date) = synthetic(i);
        batch.push(aliquot_store::PatientRecord {
            id: 0,
            mrn,
            family_name: family.to_owned(),
            given_name: given.to_owned(),
            middle_name: None,
            family_key: family.to_ascii_uppercase(),
            given_key: given.to_ascii_uppercase(),
            birth_date,
            sex: "U".into(),
            clinical_sex: None,
            birth_time: None,
            facility_ids: "[]".into(),
            contact: "{}".into(),
            created_at: now,
            updated_at: now,
            merged_into: None,
        });
        if batch.len() == batch.capacity() || i + 1 == n {
            seeder.insert_patients(&batch).await?;
            batch.clear();
        }
    }
    seeder.close().await?;
    eprintln!(
        "seeded {n} patients in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A released potassium result for every seeded received tube, written in one statement by
/// the store's benchmark seeder (not audited). The body is what result entry stores for a
/// normal, autoverified 4.2 mmol/L.
async fn seed_released_results(config: &DatabaseConfig, n: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let body = json!({
        "value": "4.2", "kind": "numeric", "units": "mmol/L", "flags": [],
        "interval": {"low": "3.5", "high": "5.1", "text": "3.5–5.1"},
        "hold_reasons": [], "rules_version": 1, "autoverified": true, "entered_by": "bench",
    })
    .to_string();
    let mut seeder = aliquot_store::seed::BenchSeeder::connect(config).await?;
    let written = seeder
        .release_all_results(&body, jiff::Timestamp::now())
        .await?;
    seeder.close().await?;
    anyhow::ensure!(
        written as usize == n,
        "seeded {written} results, expected {n}"
    );
    eprintln!(
        "seeded {n} released results in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let tmp = std::env::temp_dir().join(format!("aliquot-bench-{}", std::process::id()));
    let (config, pg_url) = match &args.postgres {
        None => (
            DatabaseConfig::Sqlite {
                path: tmp.join("bench.db"),
            },
            None,
        ),
        Some(base) => {
            // The server part of the URL: any database name in it is replaced.
            let base = base.trim_end_matches('/');
            let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
            let server = rest.split('/').next().unwrap_or(rest);
            let url = format!("{scheme}://{server}/aliquot_bench_{}", std::process::id());
            (DatabaseConfig::Postgres { url: url.clone() }, Some(url))
        }
    };
    let store = aliquot_store::open(&config).await?;
    let app = App::new(store, Arc::new(SystemClock), AppConfig::default());
    let operator = Actor::cli("bench");
    app.create_user(
        &operator,
        NewUserInput {
            username: "bench-admin".into(),
            display_name: "Benchmark".into(),
            role: "admin".into(),
            password: "benchmark-password-1".into(),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    app.put_setting(&operator, "lab.name", "Bench Lab", None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ordering = matches!(
        args.scenario,
        Scenario::OrderPlacement
            | Scenario::PatientSearch
            | Scenario::SpecimenReceipt
            | Scenario::ResultPosting
            | Scenario::MllpIngest
            | Scenario::FhirSearch
            | Scenario::UiWorklist
    );
    let (mut provider_id, mut location_id) = (0, 0);
    if ordering {
        app.create_user(
            &operator,
            NewUserInput {
                username: "bench-tech".into(),
                display_name: "Benchmark technician".into(),
                role: "technician".into(),
                password: "benchmark-password-1".into(),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        app.import_catalog(&operator, aliquot_app::demo_catalog::demo_catalog())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        provider_id = app
            .create_provider(
                &operator,
                aliquot_app::NewProviderInput {
                    npi: "1234567893".into(),
                    family_name: "Bench".into(),
                    given_name: "Provider".into(),
                    phone: "+1 555 0100".into(),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .id;
        location_id = app
            .create_location(
                &operator,
                aliquot_app::NewLocationInput {
                    code: "BENCH".into(),
                    name: "Bench clinic".into(),
                    kind: "clinic".into(),
                    address: "1 Bench Street".into(),
                    phone: None,
                    contact_name: None,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .id;
        seed_patients(&config, args.patients.max(1)).await?;
    }
    let receipt = matches!(args.scenario, Scenario::SpecimenReceipt);
    let fhir = matches!(args.scenario, Scenario::FhirSearch);
    let resulting = matches!(
        args.scenario,
        Scenario::ResultPosting | Scenario::MllpIngest
    );
    let mllp = matches!(args.scenario, Scenario::MllpIngest);
    let ui = matches!(args.scenario, Scenario::UiWorklist);
    let batch = if resulting && !mllp {
        args.batch.max(1)
    } else {
        1
    };
    let specimens = args.specimens.max(1);
    if fhir {
        seed_specimens(
            &app,
            args.patients.max(1),
            specimens,
            provider_id,
            location_id,
            "received",
        )
        .await?;
        seed_released_results(&config, specimens).await?;
    } else if ui {
        seed_specimens(
            &app,
            args.patients.max(1),
            specimens,
            provider_id,
            location_id,
            "received",
        )
        .await?;
    } else if receipt || resulting {
        anyhow::ensure!(
            (args.requests + (args.requests / 20).max(1)) * batch <= specimens,
            "--specimens must be at least (--requests plus 5 % warm-up) × --batch (each tube is \
             received or resulted once)"
        );
        seed_specimens(
            &app,
            args.patients.max(1),
            specimens,
            provider_id,
            location_id,
            if resulting { "received" } else { "collected" },
        )
        .await?;
    }
    if resulting || ui {
        let director = Actor {
            role: aliquot_domain::auth::Role::Director,
            ..Actor::cli("bench-director")
        };
        for (test, rules) in aliquot_app::demo_catalog::demo_result_rules() {
            app.put_result_rules(&director, &test, 0, rules, Some("benchmark"))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    // Visits every seeded tube once, in an order spread over the whole table.
    let stride = (7919..).find(|p| gcd(*p, specimens) == 1).unwrap_or(1);
    let user = if ordering {
        "bench-tech"
    } else {
        "bench-admin"
    };
    let patients = args.patients.max(1);

    // The MLLP scenario: the instrument, the listener, one client per connection.
    let clients = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    // One permit per MLLP connection: at a fixed rate a message waits for a free connection
    // (and that wait counts in its latency) instead of failing the run.
    let free = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let mut mllp_server = None;
    if mllp {
        app.register_instrument(
            &operator,
            aliquot_app::connections::InstrumentInput {
                code: "BENCH1".into(),
                name: "Benchmark analyzer".into(),
                protocol: "hl7".into(),
                sender: "BENCH1".into(),
                department: "chemistry".into(),
                connect_to: None,
                test_codes: vec![aliquot_app::connections::TestCodeInput {
                    code: "K".into(),
                    test: "K".into(),
                    units: Some("mmol/L".into()),
                }],
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(aliquot_connect::serve_mllp(
            listener,
            app.clone(),
            aliquot_connect::MllpConfig {
                max_connections: args.concurrency.max(1) + 8,
                ..aliquot_connect::MllpConfig::default()
            },
            async {
                let _ = rx.await;
            },
        ));
        let mut pool = clients.lock().await;
        for _ in 0..args.concurrency.max(1) {
            pool.push(aliquot_connect::simulate::MllpClient::connect(addr).await?);
        }
        drop(pool);
        mllp_server = Some((tx, server));
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(aliquot_server::serve(app.clone(), listener, async {
        let _ = stop_rx.await;
    }));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let base = format!("http://{addr}");
    let token: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({"username": user, "password": "benchmark-password-1"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = token["token"].as_str().context("no token")?.to_owned();
    // The web page's session: the login form's cookie (the UI never takes a bearer token).
    let cookie = if ui {
        let login = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?
            .post(format!("{base}/login"))
            .header("origin", &base)
            .form(&[("username", user), ("password", "benchmark-password-1")])
            .send()
            .await?;
        let set = login
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .context("no session cookie")?;
        set.split(';').next().unwrap_or_default().to_owned()
    } else {
        String::new()
    };

    let warmup = (args.requests / 20).max(1);
    let send = {
        let client = client.clone();
        let base = base.clone();
        let token = token.clone();
        let clients = clients.clone();
        let free = free.clone();
        let cookie = cookie.clone();
        move |i: usize| {
            let client = client.clone();
            let base = base.clone();
            let token = token.clone();
            let clients = clients.clone();
            let free = free.clone();
            let cookie = cookie.clone();
            async move {
                if ui {
                    let start = Instant::now();
                    let resp = client
                        .get(format!("{base}/results?department=chemistry"))
                        .header("cookie", &cookie)
                        .send()
                        .await?;
                    let status = resp.status();
                    let body = resp.text().await?;
                    let took = start.elapsed();
                    anyhow::ensure!(
                        status.is_success() && body.contains("id=\"worklist-more\""),
                        "request {i}: {status}, not the full worklist"
                    );
                    return Ok::<Duration, anyhow::Error>(took);
                }
                if mllp {
                    let acc = seeded_accession((i * stride) % specimens);
                    // 3.6 … 4.9 mmol/L: normal, released by the rules.
                    let value = format!("{}.{}", 3 + (i % 2), 6 + i % 4);
                    let msg = aliquot_connect::simulate::oru(
                        "BENCH1",
                        &format!("B{i}"),
                        &acc,
                        &[aliquot_connect::simulate::Reading {
                            code: "K".into(),
                            value,
                            units: "mmol/L".into(),
                            flags: Vec::new(),
                        }],
                    );
                    let start = Instant::now();
                    let _permit = free.acquire().await?;
                    let mut c = clients.lock().await.pop().context("no free connection")?;
                    let ack = c.send(&msg, Duration::from_secs(60)).await?;
                    let took = start.elapsed();
                    clients.lock().await.push(c);
                    let code = aliquot_connect::simulate::ack_code(&ack);
                    anyhow::ensure!(code == "AA", "message {i} answered {code}");
                    return Ok::<Duration, anyhow::Error>(took);
                }
                let req = match args.scenario {
                    Scenario::AuditedWrite => {
                        client.put(format!("{base}/api/v1/settings/lab.name")).json(
                            &json!({"value": format!("Bench Lab {i}"), "reason": "benchmark run"}),
                        )
                    }
                    Scenario::AuthenticatedRead => client.get(format!("{base}/api/v1/auth/me")),
                    Scenario::OrderPlacement => {
                        let (mrn, _, _, birth_date) = synthetic(i.wrapping_mul(7919) % patients);
                        client.post(format!("{base}/api/v1/orders")).json(&json!({
                            "patient": {"mrn": mrn, "birth_date": birth_date},
                            "provider_id": provider_id, "location_id": location_id,
                            "tests": ["GLU", "NA", "K", "HGB"], "priority": "routine",
                        }))
                    }
                    Scenario::PatientSearch => {
                        let (_, family, _, birth_date) = synthetic(i.wrapping_mul(7919) % patients);
                        client.get(format!(
                            "{base}/api/v1/patients?family_name={family}&birth_date={birth_date}"
                        ))
                    }
                    Scenario::SpecimenReceipt => {
                        let acc = seeded_accession((i * stride) % specimens);
                        client
                            .post(format!("{base}/api/v1/specimens/{acc}/receive"))
                            .json(&json!({"label": "ok", "container": "SST", "volume_ul": 2000}))
                    }
                    Scenario::MllpIngest => anyhow::bail!("mllp-ingest is sent over MLLP"),
                    Scenario::UiWorklist => anyhow::bail!("ui-worklist is sent with its cookie"),
                    Scenario::FhirSearch => {
                        // Seeded patients have ids 1..=patients in the fresh database.
                        let patient = i.wrapping_mul(7919) % patients + 1;
                        client.get(format!(
                            "{base}/fhir/r4/Observation?patient={patient}&code=K&_count=20"
                        ))
                    }
                    Scenario::ResultPosting => {
                        let items: Vec<serde_json::Value> = (i * batch..(i + 1) * batch)
                            .map(|t| {
                                let acc = seeded_accession((t * stride) % specimens);
                                // 3.6 … 4.9 mmol/L: normal, released by the rules.
                                let value = format!("{}.{}", 3 + (t % 2), 6 + t % 4);
                                json!({"accession": acc, "test": "K", "value": value,
                                       "instrument": "BENCH-1"})
                            })
                            .collect();
                        client
                            .post(format!("{base}/api/v1/results"))
                            .json(&json!({"results": items}))
                    }
                };
                let start = Instant::now();
                let resp = req.bearer_auth(&token).send().await?;
                let status = resp.status();
                let _ = resp.bytes().await?;
                anyhow::ensure!(status.is_success(), "request {i} failed: {status}");
                Ok::<Duration, anyhow::Error>(start.elapsed())
            }
        }
    };
    run_load(&send, 0, warmup, args.concurrency, None).await?;
    let started = Instant::now();
    let samples = run_load(&send, warmup, args.requests, args.concurrency, args.rate).await?;
    let elapsed = started.elapsed();
    let windows = args
        .rate
        .map(|_| windowed(&samples, Duration::from_secs(args.window.max(1))))
        .unwrap_or_default();
    let mut latencies: Vec<Duration> = samples.iter().map(|(_, l)| *l).collect();

    let _ = stop_tx.send(());
    server.await??;
    clients.lock().await.clear();
    if let Some((tx, server)) = mllp_server {
        let _ = tx.send(());
        server.await??;
    }
    if let Some(url) = pg_url {
        use sqlx::migrate::MigrateDatabase;
        let _ = sqlx::Postgres::force_drop_database(&url).await;
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }

    latencies.sort_unstable();
    let pct = |p: f64| percentile_ms(&latencies, p);
    let throughput = args.requests as f64 / elapsed.as_secs_f64();
    let per_item = if batch > 1 {
        format!(
            " ({:.0} results/s, {batch} per request)",
            throughput * batch as f64
        )
    } else {
        String::new()
    };
    let name = match args.scenario {
        Scenario::AuditedWrite => "audited-write",
        Scenario::AuthenticatedRead => "authenticated-read",
        Scenario::OrderPlacement => "order-placement",
        Scenario::PatientSearch => "patient-search",
        Scenario::SpecimenReceipt => "specimen-receipt",
        Scenario::ResultPosting => "result-posting",
        Scenario::MllpIngest => "mllp-ingest",
        Scenario::FhirSearch => "fhir-search",
        Scenario::UiWorklist => "ui-worklist",
    };
    let backend = if args.postgres.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let rate = args
        .rate
        .map(|r| format!(", offered {r}/s"))
        .unwrap_or_default();
    // How the writer's worker took the requests: in groups (one transaction each) or alone.
    let groups = if mllp {
        Some(app.ingest_stats())
    } else if resulting {
        Some(app.result_group_stats())
    } else {
        None
    };
    let grouping = groups
        .map(|g| {
            format!(
                "; {} in {} groups ({:.1} each), {} alone",
                g.grouped,
                g.groups,
                g.grouped as f64 / g.groups.max(1) as f64,
                g.alone
            )
        })
        .unwrap_or_default();
    outln!(
        "{name} on {backend}: {} requests, concurrency {}{rate}: {throughput:.0} req/s{per_item}, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms{grouping}",
        args.requests,
        args.concurrency,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0),
    )?;
    for w in &windows {
        outln!(
            "  sent {:>4}–{:<4} s: {:>7} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            w.from_s,
            w.from_s + args.window.max(1),
            w.n,
            w.p50_ms,
            w.p99_ms,
            w.max_ms
        )?;
    }
    outln!(
        "{}",
        json!({"bench": name, "backend": backend, "requests": args.requests, "concurrency": args.concurrency,
               "offered_rate": args.rate, "patients": ordering.then_some(patients),
               "specimens": (receipt || resulting || fhir || ui).then_some(specimens),
               "batch": resulting.then_some(batch),
               "results_per_s": resulting.then(|| (throughput * batch as f64).round()),
               "grouped": groups.map(|g| g.grouped), "groups": groups.map(|g| g.groups),
               "alone": groups.map(|g| g.alone),
               "throughput_rps": throughput.round(), "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99), "max_ms": pct(1.0),
               "windows": args.rate.map(|_| windows.iter().map(|w| json!({"from_s": w.from_s, "requests": w.n,
                   "p50_ms": w.p50_ms, "p99_ms": w.p99_ms, "max_ms": w.max_ms})).collect::<Vec<_>>())})
    )?;
    Ok(())
}

/// Sends requests `first..first + total`: as fast as `concurrency` allows, or, with `rate`,
/// started at that fixed rate (open loop; `concurrency` then only bounds the connections).
/// Each request's answer: when it was sent (from the start of the run) and its latency.
async fn run_load<F, Fut>(
    send: &F,
    first: usize,
    total: usize,
    concurrency: usize,
    rate: Option<u32>,
) -> anyhow::Result<Vec<(Duration, Duration)>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Duration>> + Send + 'static,
{
    use futures_util::StreamExt;
    let started = Instant::now();
    if let Some(rate) = rate.filter(|r| *r > 0) {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut handles = Vec::with_capacity(total);
        for i in first..first + total {
            tick.tick().await;
            handles.push((started.elapsed(), tokio::spawn(send(i))));
        }
        let mut out = Vec::with_capacity(total);
        for (sent, h) in handles {
            out.push((sent, h.await??));
        }
        return Ok(out);
    }
    let results: Vec<anyhow::Result<(Duration, Duration)>> =
        futures_util::stream::iter(first..first + total)
            .map(|i| {
                let sent = started.elapsed();
                let h = tokio::spawn(send(i));
                async move { Ok((sent, h.await??)) }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
    results.into_iter().collect()
}

/// The latency at quantile `p` of `sorted` (ascending), in milliseconds; 0 when empty.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx].as_secs_f64() * 1000.0
}

/// One window of a fixed-rate run: the requests sent in `[from_s, from_s + window)`.
#[derive(Debug, PartialEq)]
struct Window {
    from_s: u64,
    n: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// `samples` (sent at, latency) grouped into consecutive windows of `window` by when each
/// request was sent; a window in which nothing was sent is left out.
fn windowed(samples: &[(Duration, Duration)], window: Duration) -> Vec<Window> {
    let mut by: std::collections::BTreeMap<u64, Vec<Duration>> = std::collections::BTreeMap::new();
    let width = window.as_secs_f64().max(f64::EPSILON);
    for (sent, latency) in samples {
        let k = (sent.as_secs_f64() / width).floor() as u64;
        by.entry(k).or_default().push(*latency);
    }
    by.into_iter()
        .map(|(k, mut l)| {
            l.sort_unstable();
            Window {
                from_s: (k as f64 * width).round() as u64,
                n: l.len(),
                p50_ms: percentile_ms(&l, 0.5),
                p99_ms: percentile_ms(&l, 0.99),
                max_ms: percentile_ms(&l, 1.0),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A stall in the second window shows in that window's tail only.
    #[test]
    fn a_stall_shows_in_its_own_window() {
        let mut samples: Vec<(Duration, Duration)> =
            (0..100).map(|i| (ms(i * 100), ms(2))).collect();
        samples[60].1 = ms(400);
        let w = windowed(&samples, Duration::from_secs(5));
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].from_s, w[0].n, w[0].max_ms), (0, 50, 2.0));
        assert_eq!((w[1].from_s, w[1].n, w[1].p50_ms), (5, 50, 2.0));
        assert_eq!(w[1].max_ms, 400.0);
        assert_eq!(w[1].p99_ms, 400.0);
    }

    #[test]
    fn empty_windows_are_left_out_and_percentiles_of_nothing_are_zero() {
        let w = windowed(
            &[(ms(0), ms(1)), (ms(25_000), ms(3))],
            Duration::from_secs(10),
        );
        assert_eq!(w.iter().map(|w| w.from_s).collect::<Vec<_>>(), vec![0, 20]);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }
}
