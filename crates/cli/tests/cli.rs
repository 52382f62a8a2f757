//! The `aliquot` binary as an operator uses it: `user add`, `migrate`, `audit verify` (and
//! tampering caught by it), two servers sharing one PostgreSQL database, graceful shutdown.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::migrate::MigrateDatabase;

mod common;
use common::{BIN, Server};

const PASSWORD: &str = "correct horse battery";

fn pg_server() -> String {
    std::env::var("ALIQUOT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

#[derive(Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

/// `--data-dir`/`--database` arguments for a fresh database.
struct Database {
    args: Vec<String>,
    pg_url: Option<String>,
    dir: tempfile::TempDir,
}

impl Database {
    fn new(db: Db) -> Database {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--data-dir".to_owned(),
            dir.path().join("data").display().to_string(),
        ];
        let pg_url = match db {
            Db::Sqlite => None,
            Db::Postgres => {
                let url = format!(
                    "{}/aliquot_t_{}",
                    pg_server(),
                    uuid::Uuid::new_v4().simple()
                );
                args.extend(["--database".to_owned(), url.clone()]);
                Some(url)
            }
        };
        Database { args, pg_url, dir }
    }

    fn aliquot(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(BIN)
            .args(&self.args)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    /// Raw SQL as a superuser, bypassing the application.
    async fn raw(&self, sqlite: &'static str, postgres: &'static str) {
        match &self.pg_url {
            None => {
                let path = self.dir.path().join("data").join("aliquot.db");
                let pool = sqlx::SqlitePool::connect_with(
                    sqlx::sqlite::SqliteConnectOptions::new().filename(path),
                )
                .await
                .unwrap();
                sqlx::raw_sql(sqlite).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Some(url) => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::raw_sql(postgres).execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }

    async fn finish(self) {
        if let Some(url) = &self.pg_url {
            let _ = sqlx::Postgres::force_drop_database(url).await;
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Db::Sqlite).await })* }
        mod postgres { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Db::Postgres).await })* }
    };
}

both!(
    user_add_and_audit_verify_catch_tampering,
    bad_user_add_changes_nothing,
    graceful_shutdown_loses_nothing_acknowledged,
    backup_under_load_restores_and_serves,
    audit_anchor_and_a_keyed_chain,
    audit_verify_reports_a_moved_access_log_keyed_start,
);

/// The access log's keyed start is in the audit key file (written when the access log is
/// first keyed); moved in the database, `audit verify` reports it and exits 1.
async fn audit_verify_reports_a_moved_access_log_keyed_start(db: Db) {
    let d = Database::new(db);
    let out = d.aliquot(&["migrate"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = std::fs::read_to_string(d.dir.path().join("data").join("audit.key")).unwrap();
    assert!(key.contains("\naccess_from=1\n"), "{key}");
    let out = d.aliquot(&["audit", "verify"], None);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("access log chain intact: 0 rows")
            && text(&out.stdout).contains("keyed (HMAC-SHA256) from row 1"),
        "{}",
        text(&out.stdout)
    );
    d.raw(
        "DROP TRIGGER access_head_only_advances; UPDATE access_head SET keyed_from = 50 WHERE id = 1;",
        "ALTER TABLE access_head DISABLE TRIGGER USER; \
         UPDATE access_head SET keyed_from = 50 WHERE id = 1;",
    )
    .await;
    let out = d.aliquot(&["audit", "verify"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("access log chain BROKEN at row 1")
            && text(&out.stdout).contains("keyed_from was moved"),
        "{}",
        text(&out.stdout)
    );
    d.finish().await;
}

/// Issue 16 item 5 (part): `audit verify` runs SQLite's integrity check first, so a damaged
/// database file is not called intact because its audit rows still chain. The damage here is
/// an index that no longer matches its table (written through `writable_schema`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_runs_the_database_integrity_check_first() {
    let d = Database::new(Db::Sqlite);
    let out = d.aliquot(&["migrate"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = d.aliquot(&["audit", "verify"], None);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("database integrity check: ok"),
        "{}",
        text(&out.stdout)
    );
    d.raw(
        "CREATE TABLE damage (a INTEGER, b INTEGER); CREATE INDEX damage_a ON damage (a); \
         INSERT INTO damage VALUES (1, 10), (2, 20), (3, 30); \
         PRAGMA writable_schema = ON; \
         UPDATE sqlite_master SET sql = 'CREATE INDEX damage_a ON damage (b)' WHERE name = 'damage_a'; \
         PRAGMA writable_schema = OFF;",
        "",
    )
    .await;
    let out = d.aliquot(&["audit", "verify"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("database integrity check FAILED"),
        "{}",
        text(&out.stdout)
    );
    assert!(!text(&out.stdout).contains("audit chain intact"));
    d.finish().await;
}

async fn user_add_and_audit_verify_catch_tampering(db: Db) {
    let d = Database::new(db);
    let out = d.aliquot(&["migrate"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for name in ["ann", "ben", "cat"] {
        let out = d.aliquot(
            &[
                "user",
                "add",
                "--username",
                name,
                "--role",
                "technician",
                "--password-stdin",
            ],
            Some(&format!("{PASSWORD}\n")),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains(&format!("created user {name} (technician)")));
    }
    let out = d.aliquot(&["audit", "verify"], None);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // The audit key's creation (the first open) is event 1, then the three users.
    assert!(
        text(&out.stdout).contains("audit chain intact: 4 events"),
        "{}",
        text(&out.stdout)
    );

    d.raw(
        "DROP TRIGGER audit_event_no_update; UPDATE audit_event SET actor_name = 'cli:mallory' WHERE seq = 2;",
        "ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_update; \
         UPDATE audit_event SET actor_name = 'cli:mallory' WHERE seq = 2;",
    )
    .await;
    let out = d.aliquot(&["audit", "verify"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("audit chain BROKEN at event 2"),
        "{}",
        text(&out.stdout)
    );
    d.finish().await;
}

async fn bad_user_add_changes_nothing(db: Db) {
    let d = Database::new(db);
    let out = d.aliquot(
        &[
            "user",
            "add",
            "--username",
            "root",
            "--role",
            "superuser",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown role"),
        "{}",
        text(&out.stderr)
    );
    let out = d.aliquot(
        &[
            "user",
            "add",
            "--username",
            "root",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("short"),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("at least 12"),
        "{}",
        text(&out.stderr)
    );
    let out = d.aliquot(&["user", "list"], None);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "");
    let out = d.aliquot(&["audit", "verify"], None);
    assert!(
        text(&out.stdout).contains("intact: 1 events"),
        "{}",
        text(&out.stdout)
    );
    d.finish().await;
}

fn serve(d: &Database) -> Server {
    serve_with(d, &[])
}

fn serve_with(d: &Database, extra: &[&str]) -> Server {
    Server::start(&d.args, extra)
}

impl Server {
    fn terminate(&mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        for _ in 0..200 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("the server did not stop within 10 s of SIGTERM");
    }
}

async fn login(client: &reqwest::Client, base: &str, username: &str) -> String {
    let v: Value = client
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    v["token"].as_str().unwrap().to_owned()
}

async fn put_name(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    i: usize,
) -> Option<reqwest::StatusCode> {
    client
        .put(format!("{base}/api/v1/settings/lab.name"))
        .bearer_auth(token)
        .json(&json!({"value": format!("Lab {i}"), "reason": "shutdown test"}))
        .send()
        .await
        .ok()
        .map(|r| r.status())
}

async fn graceful_shutdown_loses_nothing_acknowledged(db: Db) {
    let d = Database::new(db);
    let out = d.aliquot(
        &[
            "user",
            "add",
            "--username",
            "admin",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut server = serve(&d);
    let client = reqwest::Client::new();
    let token = login(&client, &server.base, "admin").await;
    assert_eq!(
        put_name(&client, &server.base, &token, 0).await,
        Some(reqwest::StatusCode::OK)
    );

    let writers: Vec<_> = (1..=200)
        .map(|i| {
            let client = client.clone();
            let base = server.base.clone();
            let token = token.clone();
            tokio::spawn(async move { put_name(&client, &base, &token, i).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    server.terminate();
    let mut acknowledged = 1; // the first write
    for w in writers {
        match w.await.unwrap() {
            Some(reqwest::StatusCode::OK) => acknowledged += 1,
            Some(other) => panic!("a write failed with {other} during shutdown"),
            None => {} // refused after the listener closed: never acknowledged
        }
    }
    let status = server.wait();
    assert!(status.success(), "exit status {status:?}");

    // Every acknowledged write is in the audit trail, nothing half-written, chain intact.
    let out = d.aliquot(&["audit", "verify"], None);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // The audit key's creation + 1 user.create + 1 login + (first write has no old value, so
    // all audited) acknowledged.
    let expected = 3 + acknowledged;
    assert!(
        stdout.contains(&format!("intact: {expected} events")),
        "expected {expected} events: {stdout}"
    );
    drop(server);
    d.finish().await;
}

/// Two servers on one PostgreSQL database: a token from one works on the other, revocation
/// on one applies on the other, and concurrent audited writes through both keep one chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_one_postgres_database() {
    let d = Database::new(Db::Postgres);
    let out = d.aliquot(
        &[
            "user",
            "add",
            "--username",
            "admin",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let a = serve(&d);
    let b = serve(&d);
    let client = reqwest::Client::new();
    let token = login(&client, &a.base, "admin").await;
    let me = client
        .get(format!("{}/api/v1/auth/me", b.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        reqwest::StatusCode::OK,
        "a token from A must work on B"
    );

    let writes: Vec<_> = (0..100)
        .map(|i| {
            let client = client.clone();
            let base = if i % 2 == 0 {
                a.base.clone()
            } else {
                b.base.clone()
            };
            let token = token.clone();
            tokio::spawn(async move { put_name(&client, &base, &token, i).await })
        })
        .collect();
    for w in writes {
        assert_eq!(w.await.unwrap(), Some(reqwest::StatusCode::OK));
    }
    let verify: Value = client
        .get(format!("{}/api/v1/audit/verify", a.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verify["intact"], true, "{verify}");
    // The audit key's creation (both servers share the data directory's key file), the
    // user, the login and the 100 writes.
    assert_eq!(verify["rows"], 3 + 100, "{verify}");

    let out = client
        .post(format!("{}/api/v1/auth/logout", b.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), reqwest::StatusCode::NO_CONTENT);
    let me = client
        .get(format!("{}/api/v1/auth/me", a.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        reqwest::StatusCode::UNAUTHORIZED,
        "logout on B must apply on A"
    );
    drop((a, b));
    d.finish().await;
}

/// Duplicate detection across processes: the same person registered at the same moment on two
/// servers sharing one database (with different MRNs) is created once; the other registration
/// is answered with the possible duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_servers_never_register_the_same_person_twice() {
    let d = Database::new(Db::Postgres);
    let out = d.aliquot(
        &[
            "user",
            "add",
            "--username",
            "clerk",
            "--role",
            "technician",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let a = serve(&d);
    let b = serve(&d);
    let client = reqwest::Client::new();
    let token = login(&client, &a.base, "clerk").await;
    for round in 0..20 {
        let register = |base: String, mrn: String| {
            let client = client.clone();
            let token = token.clone();
            tokio::spawn(async move {
                client
                    .post(format!("{base}/api/v1/patients"))
                    .bearer_auth(&token)
                    .json(&json!({"mrn": mrn, "family_name": format!("Twinless{round}"),
                        "given_name": "Pat", "birth_date": format!("1970-01-{:02}", round + 1), "sex": "F"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        };
        let first = register(a.base.clone(), format!("A{round}"));
        let second = register(b.base.clone(), format!("B{round}"));
        let mut statuses = [first.await.unwrap(), second.await.unwrap()];
        statuses.sort();
        assert_eq!(
            statuses,
            [reqwest::StatusCode::CREATED, reqwest::StatusCode::CONFLICT],
            "round {round}: both registrations went through or both failed"
        );
    }
    drop((a, b));
    d.finish().await;
}

/// What one client of the mixed load does, in turn.
#[derive(Clone, Copy, Debug)]
enum Work {
    Order,
    Receipt,
    Setting,
    Read,
}

/// Issue 9: three servers on one PostgreSQL database, twelve clients for 30 s placing orders,
/// collecting and receiving tubes, changing settings and reading patients (access-logged),
/// each request to the next server in turn. Every lock is taken in one order (the audit head
/// first), so no request fails with a deadlock: every answer is a 2xx, and the audit chain
/// verifies afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_on_one_postgres_database_under_mixed_load_never_fail() {
    let d = Database::new(Db::Postgres);
    let servers = [serve_with(&d, &["--demo"]), serve(&d), serve(&d)];
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let client = reqwest::Client::new();
    let demo_login = |user: &'static str| {
        let client = client.clone();
        let base = bases[0].clone();
        async move {
            let v: Value = client
                .post(format!("{base}/api/v1/auth/token"))
                .json(&json!({"username": user, "password": format!("demo-{user}-pass")}))
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap()
                .json()
                .await
                .unwrap();
            v["token"].as_str().unwrap().to_owned()
        }
    };
    let tech = demo_login("technician").await;
    let admin = demo_login("admin").await;
    let patient: Value = client
        .post(format!("{}/api/v1/patients", bases[1]))
        .bearer_auth(&tech)
        .json(
            &json!({"mrn": "MRN-LOAD", "family_name": "Load", "given_name": "Lee",
                      "birth_date": "1966-06-06", "sex": "M"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let patient_id = patient["id"].as_i64().expect("patient id");
    let ids = json!({"mrn": "MRN-LOAD", "birth_date": "1966-06-06"});
    let order = json!({"patient": ids, "provider_id": 1, "location_id": 1,
                       "tests": ["BMP"], "priority": "routine"});

    let until = std::time::Instant::now() + Duration::from_secs(30);
    let clients: Vec<_> = (0..12)
        .map(|c| {
            let client = client.clone();
            let bases = bases.clone();
            let (tech, admin, order, ids) = (tech.clone(), admin.clone(), order.clone(), ids.clone());
            let work = [Work::Order, Work::Receipt, Work::Setting, Work::Read][c % 4];
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                let mut round = 0;
                let mut n = c;
                let mut next = || {
                    n += 1;
                    bases[n % bases.len()].clone()
                };
                while std::time::Instant::now() < until {
                    match work {
                        Work::Order | Work::Receipt => {
                            let r = client
                                .post(format!("{}/api/v1/orders", next()))
                                .bearer_auth(&tech)
                                .json(&order)
                                .send()
                                .await
                                .unwrap();
                            statuses.push((work, "order", r.status()));
                            if !r.status().is_success() || matches!(work, Work::Order) {
                                continue;
                            }
                            let placed: Value = r.json().await.unwrap();
                            let acc = placed["specimens"][0]["accession"]
                                .as_str()
                                .unwrap()
                                .to_owned();
                            let now = jiff::Timestamp::now().to_string();
                            let steps = [
                                ("collect", json!({"collected_at": now, "site": "Arm", "patient": ids})),
                                ("dispatch", json!({"courier": "R1", "from_location": "OPD", "destination": "Core"})),
                                ("receive", json!({"label": "ok", "container": "SST", "volume_ul": 2000})),
                            ];
                            for (step, body) in steps {
                                let r = client
                                    .post(format!("{}/api/v1/specimens/{acc}/{step}", next()))
                                    .bearer_auth(&tech)
                                    .json(&body)
                                    .send()
                                    .await
                                    .unwrap();
                                statuses.push((work, step, r.status()));
                            }
                        }
                        Work::Setting => {
                            round += 1;
                            let r = client
                                .put(format!("{}/api/v1/settings/lab.name", next()))
                                .bearer_auth(&admin)
                                .json(&json!({"value": format!("Lab {c}.{round}"), "reason": "load"}))
                                .send()
                                .await
                                .unwrap();
                            statuses.push((work, "setting", r.status()));
                        }
                        Work::Read => {
                            let r = client
                                .get(format!("{}/api/v1/patients/{patient_id}", next()))
                                .bearer_auth(&tech)
                                .send()
                                .await
                                .unwrap();
                            statuses.push((work, "read", r.status()));
                        }
                    }
                }
                statuses
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    let failed: Vec<_> = all.iter().filter(|(_, _, s)| !s.is_success()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        all.len(),
        &failed[..failed.len().min(20)]
    );
    for step in ["order", "collect", "dispatch", "receive", "setting", "read"] {
        assert!(all.iter().any(|(_, s, _)| *s == step), "no {step} ran");
    }
    let verify: Value = client
        .get(format!("{}/api/v1/audit/verify", bases[2]))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verify["intact"], true, "{verify}");
    drop(servers);
    d.finish().await;
}

/// `aliquot hl7 get FILE MSH-10 | head -1`: when the reader closes the pipe, the command
/// stops quietly with status 141 (what a shell reports for a program ended by SIGPIPE): no
/// panic, no backtrace, nothing on stderr.
#[test]
fn a_closed_output_pipe_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("batch.hl7");
    // Far more output than a pipe buffers, so the writer is still writing when the reader goes.
    let batch: String = (0..50_000)
        .map(|i| format!("MSH|^~\\&|LAB|HOSP|LIS|LAB|20260101120000||ORU^R01|MSG{i:08}|P|2.5.1\r"))
        .collect();
    std::fs::write(&file, batch).unwrap();
    let mut child = Command::new(BIN)
        .args(["hl7", "get"])
        .arg(&file)
        .arg("MSH-10")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    // The reader is dropped at the end of this statement: the pipe's read end closes.
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim_end(), "MSG00000000");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(141),
        "stderr: {}",
        text(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "stderr: {}", text(&out.stderr));
}

/// The server's log carries no ANSI colour codes when its output is not a terminal (a log
/// file, journald, a pipe).
#[test]
fn the_server_log_has_no_colour_codes_when_not_at_a_terminal() {
    let d = Database::new(Db::Sqlite);
    let mut child = Command::new(BIN)
        .args(&d.args)
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--mllp",
            "127.0.0.1:0",
            "--astm",
            "127.0.0.1:0",
        ])
        .env("ALIQUOT_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = loop {
        let line = lines
            .next()
            .expect("the server exited before logging that it serves")
            .unwrap();
        if line.contains("aliquot is serving") {
            break line;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("INFO"), "{line}");
    assert!(!line.contains('\u{1b}'), "ANSI escape in {line:?}");
}

/// `aliquot hl7 get FILE FIELD` prints one line per segment occurrence and an empty line where
/// the field is absent, so the lines of `OBX-3` and `OBX-5` pair up.
#[test]
fn hl7_get_prints_an_empty_line_for_an_absent_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oru.hl7");
    std::fs::write(
        &file,
        "MSH|^~\\&|LAB|HOSP|LIS|LAB|20260101120000||ORU^R01|M1|P|2.5.1\r\
         PID|1||P1\r\
         OBR|1||A1|GLU\r\
         OBX|1|NM|GLU^Glucose||5.2|mmol/L\r\
         OBX|2|NM|K^Potassium\r\
         OBX|3|NM|NA^Sodium||140~141|mmol/L\r\
         OBX|4|ST|TXT^Note||a\\R\\b\r",
    )
    .unwrap();
    let get = |field: &str| {
        let out = Command::new(BIN)
            .args(["hl7", "get"])
            .arg(&file)
            .arg(field)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "stderr: {}", text(&out.stderr));
        out.stdout
    };
    assert_eq!(
        get("OBX-3"),
        b"GLU^Glucose\nK^Potassium\nNA^Sodium\nTXT^Note\n"
    );
    assert_eq!(get("OBX-5"), b"5.2\n\n140~141\na~b\n");
    assert_eq!(get("OBX-5[2]"), b"\n\n141\n\n");
    assert_eq!(get("OBX-6"), b"mmol/L\n\nmmol/L\n\n");
}

async fn demo_login(client: &reqwest::Client, base: &str, username: &str) -> String {
    let v: Value = client
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({"username": username, "password": format!("demo-{username}-pass")}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// Issue 16 item 5, end to end: `aliquot backup` while a client keeps registering patients,
/// `aliquot restore` into a fresh data directory (and database), `audit verify` passes, the
/// restored server serves the patients acknowledged before the backup and the scan,
/// byte for byte.
async fn backup_under_load_restores_and_serves(db: Db) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let d = Database::new(db);
    let server = Server::start(&d.args, &["--demo"]);
    let client = reqwest::Client::new();
    let tech = demo_login(&client, &server.base, "technician").await;
    // A scan attached to a demo order: its bytes live outside the database.
    let mut scan = b"%PDF-1.4\n".to_vec();
    scan.extend((0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let attached: Value = client
        .post(format!("{}/api/v1/orders/1/scans", server.base))
        .bearer_auth(&tech)
        .header("content-type", "application/pdf")
        .body(scan.clone())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let scan_id = attached["id"].as_i64().unwrap();

    // The writer: patients registered one after another until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (client, base, tech) = (client.clone(), server.base.clone(), tech.clone());
        let (stop, acked) = (stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                // Names and birth dates far apart: never a possible duplicate.
                let born = jiff::civil::date(1950, 1, 1)
                    .checked_add(jiff::Span::new().days(10 * i as i64))
                    .unwrap();
                let family: String = format!("{i:05}")
                    .bytes()
                    .map(|d| char::from(b'a' + (d - b'0')))
                    .collect();
                let r = client
                    .post(format!("{base}/api/v1/patients"))
                    .bearer_auth(&tech)
                    .json(
                        &json!({"mrn": format!("BK-{i:05}"), "family_name": format!("Load{family}"),
                        "given_name": "Pat", "birth_date": born.to_string(), "sex": "F"}),
                    )
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    r.status(),
                    reqwest::StatusCode::CREATED,
                    "{:?}",
                    r.text().await
                );
                acked.store(i, Ordering::SeqCst);
            }
        })
    };
    while acked.load(Ordering::SeqCst) < 20 {
        assert!(!writer.is_finished(), "the writer stopped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = acked.load(Ordering::SeqCst);
    let backup_dir = d.dir.path().join("backup");
    let out = d.aliquot(&["backup", backup_dir.to_str().unwrap()], None);
    let after = acked.load(Ordering::SeqCst);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("1 scans"),
        "{}",
        text(&out.stdout)
    );
    // The writer is still writing after the backup: the server was never stopped.
    while acked.load(Ordering::SeqCst) < after + 5 {
        assert!(!writer.is_finished(), "the writer stopped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    drop(server);

    // Restore into a fresh data directory (and a new PostgreSQL database).
    let r = Database::new(db);
    let out = r.aliquot(&["restore", backup_dir.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("audit chain intact"),
        "{}",
        text(&out.stdout)
    );
    let out = r.aliquot(&["audit", "verify"], None);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("audit chain intact"));

    let server = Server::start(&r.args, &[]);
    if r.pg_url.is_none() {
        // A restore over the running server's database is refused, naming why.
        let out = r.aliquot(&["restore", "--force", backup_dir.to_str().unwrap()], None);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("is in use"),
            "{}",
            text(&out.stderr)
        );
    }
    let tech = demo_login(&client, &server.base, "technician").await;
    let found: Value = client
        .get(format!(
            "{}/api/v1/patients?mrn=BK-{before:05}",
            server.base
        ))
        .bearer_auth(&tech)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    // Nothing after the backup's end is there (one committed state, not a later one).
    let later: Value = client
        .get(format!(
            "{}/api/v1/patients?mrn=BK-{:05}",
            server.base,
            after + 2
        ))
        .bearer_auth(&tech)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(later.as_array().map(Vec::len), Some(0), "{later}");
    let bytes = client
        .get(format!("{}/api/v1/scans/{scan_id}", server.base))
        .bearer_auth(&tech)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        bytes.as_ref() == scan.as_slice(),
        "the restored scan differs"
    );
    drop(server);
    r.finish().await;
    d.finish().await;
}

/// Issue 16 item 4 as an operator meets it: the key file made on first open (mode 0600,
/// beside the data), `audit anchor` printing the head, `audit verify --anchor` checking it,
/// and a chain whose newest rows were deleted and head rewound by a superuser refused both
/// ways.
async fn audit_anchor_and_a_keyed_chain(db: Db) {
    let d = Database::new(db);
    for name in ["ann", "ben"] {
        let out = d.aliquot(
            &[
                "user",
                "add",
                "--username",
                name,
                "--role",
                "technician",
                "--password-stdin",
            ],
            Some(PASSWORD),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let key = d.dir.path().join("data").join("audit.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let out = d.aliquot(&["audit", "anchor"], None);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let anchor = text(&out.stdout).trim().to_owned();
    assert!(anchor.starts_with("3:"), "{anchor}");
    let out = d.aliquot(&["audit", "verify", "--anchor", &anchor], None);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("keyed (HMAC-SHA256) from event 1"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("in the chain"),
        "{}",
        text(&out.stdout)
    );
    let out = d.aliquot(&["audit", "verify", "--anchor", "3:abc"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("64 hex digits"),
        "{}",
        text(&out.stderr)
    );
    // Without the key file the database is not opened.
    let moved = d.dir.path().join("audit.key.elsewhere");
    std::fs::rename(&key, &moved).unwrap();
    let out = d.aliquot(&["audit", "verify"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is missing"),
        "{}",
        text(&out.stderr)
    );
    let out = d.aliquot(
        &[
            "--audit-key",
            moved.to_str().unwrap(),
            "audit",
            "verify",
            "--anchor",
            &anchor,
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    std::fs::rename(&moved, &key).unwrap();
    // A superuser deletes the newest event and rewinds the head to match.
    d.raw(
        "DROP TRIGGER audit_event_no_delete; DROP TRIGGER audit_head_only_advances; \
         DELETE FROM audit_event WHERE seq = 3; \
         UPDATE audit_head SET seq = 2, last_hash = (SELECT hash FROM audit_event WHERE seq = 2);",
        "ALTER TABLE audit_event DISABLE TRIGGER USER; ALTER TABLE audit_head DISABLE TRIGGER USER; \
         DELETE FROM audit_event WHERE seq = 3; \
         UPDATE audit_head SET seq = 2, last_hash = (SELECT hash FROM audit_event WHERE seq = 2);",
    )
    .await;
    let out = d.aliquot(&["audit", "verify"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("MAC"), "{}", text(&out.stdout));
    let out = d.aliquot(&["audit", "verify", "--anchor", &anchor], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    d.finish().await;
}
