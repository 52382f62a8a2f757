//! `spawn_app`: each test gets its own database (a fresh SQLite file, or a fresh PostgreSQL
//! database on the machine's server) and its own server on a free loopback port.

use std::sync::Arc;

use aliquot_app::{Actor, App, AppConfig, ManualClock, NewUserInput};
use aliquot_domain::auth::Role;
use aliquot_store::{DatabaseConfig, Store};
use jiff::Timestamp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the suite runs against (trust auth on loopback in CI).
pub fn postgres_server() -> String {
    std::env::var("ALIQUOT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A fresh, empty database of the given kind. PostgreSQL being unreachable is a failure,
/// never a skip.
pub fn fresh_database(db: Db, dir: &std::path::Path) -> DatabaseConfig {
    match db {
        Db::Sqlite => DatabaseConfig::Sqlite {
            path: dir.join("aliquot.db"),
        },
        Db::Postgres => DatabaseConfig::Postgres {
            url: format!(
                "{}/aliquot_t_{}",
                postgres_server(),
                uuid::Uuid::new_v4().simple()
            ),
        },
    }
}

pub async fn open_store(config: &DatabaseConfig) -> Arc<dyn Store> {
    match aliquot_store::open(config).await {
        Ok(s) => s,
        Err(e) => panic!(
            "cannot open {config:?}: {e}\n(PostgreSQL tests need a server at {}; set ALIQUOT_TEST_POSTGRES)",
            postgres_server()
        ),
    }
}

pub async fn drop_database(config: &DatabaseConfig) {
    if let DatabaseConfig::Postgres { url } = config {
        use sqlx::migrate::MigrateDatabase;
        let _ = sqlx::Postgres::force_drop_database(url).await;
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub app: App,
    pub db: DatabaseConfig,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub async fn spawn_app(backend: Db) -> TestApp {
    spawn_app_with(backend, aliquot_server::ServeConfig::default()).await
}

/// [`spawn_app`] with the listener's configuration (limits, trusted proxies).
pub async fn spawn_app_with(backend: Db, serve: aliquot_server::ServeConfig) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = fresh_database(backend, dir.path());
    let store = open_store(&db).await;
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let config = AppConfig {
        data_dir: dir.path().to_path_buf(),
        ..AppConfig::default()
    };
    let app = App::new(store, clock.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(aliquot_server::serve_with(
        app.clone(),
        listener,
        async {
            let _ = rx.await;
        },
        serve,
    ));
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        clock,
        app,
        db,
        _dir: dir,
        shutdown: Some(tx),
        server: Some(server),
    }
}

pub const PASSWORD: &str = "correct horse battery";

impl TestApp {
    /// Creates a user (as the command-line operator) and returns its id.
    pub async fn create_user(&self, username: &str, role: Role) -> i64 {
        self.app
            .create_user(
                &Actor::cli("test"),
                NewUserInput {
                    username: username.to_owned(),
                    display_name: format!("Test {username}"),
                    role: role.as_str().to_owned(),
                    password: PASSWORD.to_owned(),
                },
            )
            .await
            .expect("create user")
            .id
    }

    /// Logs in over HTTP and returns the bearer token.
    pub async fn login(&self, username: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/token",
                None,
                Some(json!({"username": username, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login {username}: {body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// A logged-in user with this role (username = role name).
    pub async fn token_for(&self, role: Role) -> String {
        if self
            .app
            .store()
            .user_by_username(role.as_str())
            .await
            .expect("lookup")
            .is_none()
        {
            self.create_user(role.as_str(), role).await;
        }
        self.login(role.as_str()).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    /// Number of audit events so far.
    pub async fn audit_len(&self) -> i64 {
        self.app
            .store()
            .verify_audit_chain()
            .await
            .expect("verify")
            .head_seq
    }

    /// Asserts that since audit position `before` refused attempts were recorded, and only
    /// they (each refused specimen command is audited as `<action>_refused`): nothing changed.
    pub async fn assert_only_refused(&self, before: i64) {
        let events = self
            .app
            .store()
            .audit_events(before, 10_000, None)
            .await
            .expect("audit");
        assert!(!events.is_empty(), "the refused attempts were not audited");
        for e in &events {
            assert!(
                e.entry.action.ends_with("_refused"),
                "a change was recorded: {} on {}",
                e.entry.action,
                e.entry.entity_id
            );
        }
    }

    /// Stops the server, checks the audit chain is intact, and drops a PostgreSQL database.
    pub async fn finish(mut self) {
        let report = self.app.store().verify_audit_chain().await.expect("verify");
        assert!(report.is_intact(), "audit chain broken: {report:?}");
        let access = self
            .app
            .store()
            .verify_access_chain()
            .await
            .expect("verify");
        assert!(access.is_intact(), "access log chain broken: {access:?}");
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("join").expect("serve");
        }
        drop_database(&self.db).await;
    }
}

/// Asserts an error response: status, `error.code`, and (when given) `error.field`.
#[track_caller]
pub fn assert_error(
    got: &(StatusCode, Value),
    status: StatusCode,
    code: &str,
    field: Option<&str>,
) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    if let Some(f) = field {
        assert_eq!(got.1["error"]["field"], f, "{}", got.1);
    }
}

/// Runs each named `async fn(Db)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Db::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Db::Postgres).await
                }
            )*
        }
    };
}

/// Seeds what ordering needs (as the command-line operator): the demo catalogue, one
/// provider and one client location. Returns `(provider_id, location_id)`.
pub async fn seed_ordering(app: &TestApp) -> (i64, i64) {
    let op = Actor::cli("test");
    app.app
        .import_catalog(&op, aliquot_app::demo_catalog::demo_catalog())
        .await
        .expect("catalogue");
    let p = app
        .app
        .create_provider(
            &op,
            aliquot_app::NewProviderInput {
                npi: "1234567893".into(),
                family_name: "House".into(),
                given_name: "Gregory".into(),
                phone: "+1 555 0100".into(),
            },
        )
        .await
        .expect("provider");
    let l = app
        .app
        .create_location(
            &op,
            aliquot_app::NewLocationInput {
                code: "OPD".into(),
                name: "Outpatient clinic".into(),
                kind: "clinic".into(),
                address: "1 Main Street".into(),
                phone: None,
                contact_name: None,
            },
        )
        .await
        .expect("location");
    (p.id, l.id)
}

/// Registers a patient over HTTP and returns its id.
pub async fn register(app: &TestApp, token: &str, body: Value) -> i64 {
    let (status, b) = app.post("/api/v1/patients", token, body).await;
    assert_eq!(status, StatusCode::CREATED, "{b}");
    b["id"].as_i64().expect("id")
}

pub fn patient_body(mrn: &str, family: &str, given: &str, birth_date: &str) -> Value {
    json!({"mrn": mrn, "family_name": family, "given_name": given,
           "birth_date": birth_date, "sex": "F"})
}

/// Sets a specimen's collection time directly in the database, bypassing the API (which
/// refuses times before the order was placed): tests of add-on stability rules need old
/// specimens.
pub async fn set_collected(app: &TestApp, specimen_id: i64, at: Timestamp) {
    let us = at.as_microsecond();
    match &app.db {
        DatabaseConfig::Sqlite { path } => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", path.display()))
                .await
                .unwrap();
            sqlx::query("UPDATE specimens SET collected_at = $1 WHERE id = $2")
                .bind(us)
                .bind(specimen_id)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        DatabaseConfig::Postgres { url } => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query("UPDATE specimens SET collected_at = $1 WHERE id = $2")
                .bind(us)
                .bind(specimen_id)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

/// The data directory of a test app (scans are stored under it).
pub fn tempfile_dir_of(app: &TestApp) -> std::path::PathBuf {
    app.app.config().data_dir.clone()
}

/// A logged-in physician (username `physician`) linked to `provider_id`: a physician reads
/// only the patients of orders where their provider is the ordering provider.
pub async fn physician_token(app: &TestApp, provider_id: i64) -> String {
    let token = app.token_for(Role::Physician).await;
    let user = app
        .app
        .store()
        .user_by_username("physician")
        .await
        .expect("lookup")
        .expect("physician");
    app.app
        .set_user_provider(
            &Actor::cli("test"),
            user.id,
            Some(provider_id),
            Some("the test's ordering physician"),
        )
        .await
        .expect("link provider");
    token
}

/// The attestations of a full, correctly labelled tube of `container` (issue 10 item 6: no
/// receipt defaults): a citrate tube filled to its line, any other its usable volume.
pub fn full_tube(container: &str) -> Value {
    let c = aliquot_domain::catalog::ContainerType::defaults()
        .into_iter()
        .find(|c| c.code.as_str() == container)
        .unwrap_or_else(|| panic!("container {container}"));
    if c.min_fill_percent.is_some() {
        serde_json::json!({"label": "ok", "container": container, "fill": "to_line"})
    } else {
        serde_json::json!({"label": "ok", "container": container, "volume_ul": c.usable_volume_ul})
    }
}

impl TestApp {
    /// [`full_tube`] for the tube with this accession, as planned.
    pub async fn full_tube_of(&self, accession: &str, token: &str) -> Value {
        let (s, v) = self
            .get(&format!("/api/v1/specimens/{accession}"), token)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        full_tube(v["container"].as_str().unwrap())
    }
}

/// `base` with the fields of `extra` set over it.
pub fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// Registers a reference laboratory `code` performing `tests` (each under the code
/// `<code>-<test>`), expected back within three days.
pub async fn reference_lab(app: &TestApp, code: &str, name: &str, tests: &[&str]) {
    app.app
        .register_reference_lab(
            &Actor::cli("test"),
            aliquot_app::ReferenceLabInput {
                code: code.into(),
                name: name.into(),
                address: "3050 Superior Drive NW, Rochester, MN 55901".into(),
                clia: "24D0404292".into(),
                phone: None,
                expected_tat_hours: 72,
                test_codes: tests
                    .iter()
                    .map(|t| aliquot_app::ReferenceTestCodeInput {
                        code: format!("{code}-{t}"),
                        test: (*t).into(),
                    })
                    .collect(),
            },
        )
        .await
        .expect("reference lab");
}
