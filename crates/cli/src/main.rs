//! The `aliquot` binary: `serve`, `migrate`, `user add`, `audit verify`, `backup`,
//! `restore`, `bench`, `catalog import|export`, `qc evaluate`, and the
//! analyst tools for HL7 and ASTM.

/// `println!` that returns the write error instead of panicking: a closed pipe
/// (`aliquot hl7 get FILE MSH-10 | head -3`) travels up with `?` to `main`, which exits
/// quietly (see `exit_status`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!`, likewise.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod bench;
mod demo;
mod protocol_tools;
mod qc;
mod simulate;

/// The process's allocator for Rust's allocations (sqlx's rows, tokio, serde, typst): mimalloc
/// rather than glibc's malloc, whose `malloc`/`free`/consolidation showed in every profile
/// (BENCHMARKS.md); +5–17 % on result posting and +5–21 % on MLLP ingest in interleaved runs on
/// a quiet machine. The crate's `override` feature also makes it the C library's `malloc` for
/// the whole process, so SQLite's own allocations (every row value sqlx copies on the writer's
/// thread and frees on a tokio thread) no longer take glibc's arena locks across threads:
/// with SQLite's statistics mutex gone too (`.cargo/config.toml`), +18–24 % on result posting and
/// +18–26 % on MLLP ingest (BENCHMARKS.md, 2026-11-29).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{IsTerminal, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aliquot_app::{Actor, App, AppConfig, NewUserInput, SystemClock};
use aliquot_store::DatabaseConfig;
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "aliquot",
    version,
    about = "Aliquot laboratory information system"
)]
struct Cli {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where the database is. Every subcommand that opens it creates and migrates it when new.
#[derive(Args, Clone)]
struct DbArgs {
    /// Directory for the embedded database and other data.
    #[arg(
        long,
        global = true,
        env = "ALIQUOT_DATA_DIR",
        default_value = "./aliquot-data"
    )]
    data_dir: PathBuf,
    /// `postgres://user@host/db` for PostgreSQL, or `sqlite:PATH`; default: SQLite under --data-dir.
    #[arg(long, global = true, env = "ALIQUOT_DATABASE")]
    database: Option<String>,
    /// The audit chain's HMAC key file (created with mode 0600 when missing); default:
    /// `audit.key` in --data-dir. Every server of one database needs the same file.
    #[arg(long, global = true, env = "ALIQUOT_AUDIT_KEY", value_name = "PATH")]
    audit_key: Option<PathBuf>,
}

impl DbArgs {
    fn key_path(&self) -> PathBuf {
        self.audit_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.key"))
    }

    fn config(&self) -> anyhow::Result<DatabaseConfig> {
        Ok(DatabaseConfig::from_options(
            self.database.as_deref(),
            &self.data_dir,
        )?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: the HTTP API and web UI, HL7 v2 over MLLP, ASTM over TCP.
    Serve(ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Benchmarks (measure, never assert).
    Bench(bench::BenchArgs),
    /// HL7 v2 analyst tools: parse, get.
    #[command(subcommand)]
    Hl7(protocol_tools::Hl7Command),
    /// ASTM E1381/E1394 analyst tools: decode, frames.
    #[command(subcommand)]
    Astm(protocol_tools::AstmCommand),
    /// The test catalogue: import a lab's menu from CSV, export it as CSV.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Simulated instruments, for trying connections and generating load.
    #[command(subcommand)]
    Simulate(simulate::SimulateCommand),
    /// Quality control: judge historical QC data with Westgard rules.
    #[command(subcommand)]
    Qc(qc::QcCommand),
    /// Copy the database (online: the server keeps running and writing) and the scans it
    /// names into a new directory, with a manifest of SHA-256 hashes. PostgreSQL: runs
    /// pg_dump (it must be installed).
    Backup {
        /// A new (or empty) directory for this backup.
        dir: PathBuf,
    },
    /// Restore a backup into --data-dir (or --database). Every file is checked against the
    /// manifest first; refused while a server or another command has the database open.
    Restore {
        /// The backup directory (written by `aliquot backup`).
        dir: PathBuf,
        /// Replace an existing database: it is moved aside to
        /// `<database>.before-restore-<time>`, never deleted. (PostgreSQL: never; restore
        /// into a new database.)
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Add the entries of a CSV file (the `catalog export` format) whose codes are new; tests
    /// are added before the panels that name them. Each entry is validated and audited.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// Write the catalogue as CSV to standard output.
    Export {
        /// Include retired entries.
        #[arg(long)]
        include_retired: bool,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// HTTP address.
    #[arg(long, env = "ALIQUOT_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// HL7 v2 over MLLP address.
    #[arg(long, env = "ALIQUOT_MLLP", default_value = "127.0.0.1:2575")]
    mllp: SocketAddr,
    /// ASTM E1381 over TCP address.
    #[arg(long, env = "ALIQUOT_ASTM", default_value = "127.0.0.1:5001")]
    astm: SocketAddr,
    /// ASTM E1381 on a serial line: a tty such as /dev/ttyUSB0 (repeat for more analyzers).
    #[arg(
        long = "astm-serial",
        env = "ALIQUOT_ASTM_SERIAL",
        value_delimiter = ','
    )]
    astm_serial: Vec<PathBuf>,
    /// Speed of the serial lines, in baud.
    #[arg(long, env = "ALIQUOT_ASTM_BAUD", default_value_t = 9600)]
    astm_baud: u32,
    /// Seed a demonstration lab (users and settings) when the database is empty.
    #[arg(long, env = "ALIQUOT_DEMO")]
    demo: bool,
    /// Log as JSON lines.
    #[arg(long, env = "ALIQUOT_LOG_JSON")]
    log_json: bool,
    #[command(flatten)]
    limits: ConnectionLimits,
    #[command(flatten)]
    tls: TlsArgs,
}

/// HTTPS in the binary (rustls). Without these options the server speaks plain HTTP (behind
/// a TLS-terminating proxy, or on loopback only).
#[derive(Args)]
#[command(next_help_heading = "TLS")]
struct TlsArgs {
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(
        long,
        env = "ALIQUOT_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS #8, PKCS #1 or SEC1).
    #[arg(
        long,
        env = "ALIQUOT_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate made at startup for --tls-name (for the
    /// demo and trials: browsers warn about it). Its PEM is written to
    /// `tls-self-signed.pem` in --data-dir for clients to trust.
    #[arg(long, env = "ALIQUOT_TLS_SELF_SIGNED", conflicts_with_all = ["tls_cert", "tls_key"])]
    tls_self_signed: bool,
    /// Names (DNS names or IP addresses) of the self-signed certificate.
    #[arg(
        long = "tls-name",
        env = "ALIQUOT_TLS_NAMES",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1,::1"
    )]
    tls_names: Vec<String>,
}

impl TlsArgs {
    /// The server's TLS configuration, if any (a self-signed certificate's PEM is written
    /// to `cert_out`).
    fn config(
        &self,
        cert_out: &std::path::Path,
    ) -> anyhow::Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            return Ok(Some(aliquot_server::tls::load_pem(cert, key)?));
        }
        if self.tls_self_signed {
            let (config, pem) = aliquot_server::tls::self_signed(&self.tls_names)?;
            if let Some(dir) = cert_out.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(cert_out, pem)
                .with_context(|| format!("writing {}", cert_out.display()))?;
            return Ok(Some(config));
        }
        Ok(None)
    }
}

/// How the HTTP listener protects itself from clients that hold connections: every
/// connection over a limit is answered 503 (with Retry-After) and closed.
#[derive(Args)]
#[command(next_help_heading = "Connection limits")]
struct ConnectionLimits {
    /// Seconds allowed for a request's headers to arrive complete (slow clients are closed).
    #[arg(long, env = "ALIQUOT_HEADER_TIMEOUT", value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    header_timeout: Duration,
    /// Seconds a keep-alive connection may stay idle between requests before it is closed.
    #[arg(long, env = "ALIQUOT_IDLE_TIMEOUT", value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    idle_timeout: Duration,
    /// Seconds allowed for a request body to arrive whole (after its headers); slower
    /// bodies get 408.
    #[arg(long, env = "ALIQUOT_BODY_TIMEOUT", value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    body_timeout: Duration,
    /// Connections served at once; more are refused (503 server_busy). Lowered at startup to
    /// fit the open-file limit (whose soft value is raised to the hard one).
    #[arg(long, env = "ALIQUOT_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Connections served at once from one IP address; more are refused (503
    /// too_many_connections). 0: no per-address limit (e.g. behind a reverse proxy, where
    /// every client has the proxy's address).
    #[arg(long, env = "ALIQUOT_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    max_connections_per_ip: u32,
    /// A reverse proxy whose forwarded header gives the client's address (for login
    /// throttling and the request log): an address or ADDR/PREFIX, repeatable (or
    /// comma-separated in the variable). From any other peer the header is ignored.
    #[arg(
        long = "trusted-proxy",
        env = "ALIQUOT_TRUSTED_PROXIES",
        value_name = "ADDR[/PREFIX]",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<String>,
    /// The header the trusted proxies write: `x-forwarded-for` or `forwarded` (RFC 7239).
    /// Only that one is read, so a client cannot slip the other past the proxy.
    #[arg(
        long,
        env = "ALIQUOT_FORWARDED_HEADER",
        default_value = "x-forwarded-for"
    )]
    forwarded_header: aliquot_server::client::ForwardedHeader,
}

impl ConnectionLimits {
    fn config(&self) -> anyhow::Result<aliquot_server::ServeConfig> {
        let trusted_proxies = aliquot_server::client::TrustedProxies::parse(
            &self.trusted_proxies,
            self.forwarded_header,
        )
        .map_err(|e| anyhow::anyhow!("--trusted-proxy: {e}"))?;
        Ok(aliquot_server::ServeConfig {
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            body_timeout: self.body_timeout,
            max_connections: self.max_connections as usize,
            max_connections_per_ip: self.max_connections_per_ip as usize,
            trusted_proxies,
            tls: None,
        })
    }
}

/// Seconds, whole or decimal (`10`, `0.5`), more than zero and at most a day.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!(
            "{s}: give a number of seconds above 0 and at most 86400"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        #[arg(long)]
        username: String,
        /// admin, director, technologist, technician, phlebotomist, physician or interface.
        #[arg(long)]
        role: String,
        /// Shown in the audit trail and on reports; defaults to the username.
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from standard input (the only way: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users.
    List,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain; exit 1 and name the first broken link if it does not hold.
    Verify {
        /// An anchor printed earlier by `aliquot audit anchor` (SEQ:HASH): the chain must
        /// still hold that event with that hash.
        #[arg(long, value_name = "SEQ:HASH")]
        anchor: Option<aliquot_store::Anchor>,
    },
    /// Verify the chain, then print its head as SEQ:HASH, to be kept outside the database
    /// (a ticket, a log, paper) and checked later with `audit verify --anchor`.
    Anchor,
}

fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "operator".into())
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ALIQUOT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Colour codes only for a person at a terminal: a log file, journald or a pipe gets
    // plain text (and `NO_COLOR` turns colour off everywhere).
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn open_app(db: &DbArgs) -> anyhow::Result<App> {
    let config = db.config()?;
    let store = aliquot_store::open_with_key(&config, Some(&db.key_path()))
        .await
        .with_context(|| format!("opening database {config:?}"))?;
    let config = AppConfig {
        data_dir: db.data_dir.clone(),
        ..AppConfig::default()
    };
    Ok(App::new(store, Arc::new(SystemClock), config))
}

fn main() {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(cli)));
    if let Err(e) = result {
        if is_broken_pipe(&e) {
            std::process::exit(BROKEN_PIPE_STATUS);
        }
        // The whole chain of causes, one line, for an operator; no backtrace.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The exit status when standard output was closed by its reader (`| head`): 141, what a
/// shell reports for a program ended by SIGPIPE (128 + 13), as `cat` or `grep` would be.
/// Rust ignores SIGPIPE, so the write fails instead and we exit with that status ourselves,
/// silently: the reader chose to stop, which is no error to report on the terminal, but a
/// script under `set -o pipefail` still learns that the output was cut short (0 would claim
/// the command finished writing everything).
const BROKEN_PIPE_STATUS: i32 = 141;

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(&cli.db, args).await,
        Command::Migrate => {
            let app = open_app(&cli.db).await?;
            app.store().close().await;
            outln!("database {:?} is migrated", cli.db.config()?)?;
            Ok(())
        }
        Command::User(UserCommand::Add {
            username,
            role,
            display_name,
            password_stdin: _,
        }) => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            let app = open_app(&cli.db).await?;
            let user = app
                .create_user(
                    &Actor::cli(&os_user()),
                    NewUserInput {
                        display_name: display_name.unwrap_or_else(|| username.clone()),
                        username,
                        role,
                        password,
                    },
                )
                .await;
            app.store().close().await;
            let user = user.map_err(|e| anyhow::anyhow!("{e}"))?;
            outln!(
                "created user {} ({}) with id {}",
                user.username,
                user.role,
                user.id
            )?;
            Ok(())
        }
        Command::User(UserCommand::List) => {
            let app = open_app(&cli.db).await?;
            let users = app.list_users(&Actor::cli(&os_user())).await;
            app.store().close().await;
            for u in users.map_err(|e| anyhow::anyhow!("{e}"))? {
                outln!(
                    "{}\t{}\t{}\t{}",
                    u.id,
                    u.username,
                    u.role,
                    if u.disabled { "disabled" } else { "active" }
                )?;
            }
            Ok(())
        }
        Command::Audit(AuditCommand::Anchor) => {
            let app = open_app(&cli.db).await?;
            let report = app.verify_audit(&Actor::cli(&os_user()), None).await;
            app.store().close().await;
            let report = report.map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(b) = report.first_break {
                let _ = outln!("audit chain BROKEN at event {}: {}", b.seq, b.problem);
                std::process::exit(1);
            }
            outln!("{}:{}", report.head_seq, report.head_hash)?;
            Ok(())
        }
        Command::Audit(AuditCommand::Verify { anchor }) => {
            let app = open_app(&cli.db).await?;
            let actor = Actor::cli(&os_user());
            let integrity = app.check_database_integrity(&actor).await;
            match integrity {
                Ok(Some(problems)) if problems.is_empty() => {
                    outln!("database integrity check: ok")?;
                }
                Ok(Some(problems)) => {
                    app.store().close().await;
                    for p in problems.iter().take(20) {
                        let _ = outln!("database integrity check: {p}");
                    }
                    let _ = outln!(
                        "database integrity check FAILED ({} problems); restore from a backup",
                        problems.len()
                    );
                    std::process::exit(1);
                }
                Ok(None) => {
                    outln!(
                        "database integrity check: not available on PostgreSQL (use pg_amcheck)"
                    )?;
                }
                Err(e) => {
                    app.store().close().await;
                    let _ = outln!("database integrity check FAILED: {e}");
                    std::process::exit(1);
                }
            }
            let report = app.verify_audit(&actor, anchor.as_ref()).await;
            let access = app.verify_access_log(&actor).await;
            app.store().close().await;
            let report = report.map_err(|e| anyhow::anyhow!("{e}"))?;
            let access = access.map_err(|e| anyhow::anyhow!("{e}"))?;
            match report.first_break {
                None => {
                    outln!(
                        "audit chain intact: {} events, head {} {}",
                        report.rows,
                        report.head_seq,
                        report.head_hash
                    )?;
                    if let Some(from) = report.keyed_from {
                        outln!(
                            "keyed (HMAC-SHA256) from event {from} with {}",
                            cli.db.key_path().display()
                        )?;
                    }
                    if let Some(a) = anchor {
                        outln!("anchor {a}: in the chain")?;
                    }
                }
                Some(b) => {
                    // Exit 1 says it, whether or not the reader is still there.
                    let _ = outln!("audit chain BROKEN at event {}: {}", b.seq, b.problem);
                    std::process::exit(1);
                }
            }
            match access.first_break {
                None => {
                    outln!(
                        "access log chain intact: {} rows, head {} {}{}",
                        access.rows,
                        access.head_seq,
                        access.head_hash,
                        access
                            .keyed_from
                            .map(|f| format!(", keyed (HMAC-SHA256) from row {f}"))
                            .unwrap_or_default()
                    )?;
                    Ok(())
                }
                Some(b) => {
                    let _ = outln!("access log chain BROKEN at row {}: {}", b.seq, b.problem);
                    std::process::exit(1);
                }
            }
        }
        Command::Bench(args) => {
            // Quiet unless asked: `ALIQUOT_LOG=aliquot_app=debug` shows where a run's time goes.
            if std::env::var_os("ALIQUOT_LOG").is_some() {
                init_logging(false);
            }
            bench::run(args).await
        }
        Command::Hl7(cmd) => protocol_tools::run_hl7(cmd),
        Command::Astm(cmd) => protocol_tools::run_astm(cmd),
        Command::Simulate(cmd) => simulate::run(cmd).await,
        Command::Qc(cmd) => qc::run(cmd),
        Command::Backup { dir } => backup(&cli.db, &dir).await,
        Command::Restore { dir, force } => restore(&cli.db, &dir, force).await,
        Command::Catalog(CatalogCommand::Import { file }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let defs = aliquot_app::demo_catalog::parse_catalog_csv(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let app = open_app(&cli.db).await?;
            let result = import_catalog(&app, defs).await;
            app.store().close().await;
            let (added, skipped) = result?;
            outln!("imported {added} catalogue entries ({skipped} already present)")?;
            Ok(())
        }
        Command::Catalog(CatalogCommand::Export { include_retired }) => {
            let app = open_app(&cli.db).await?;
            let entries = app.catalog(&Actor::cli(&os_user()), include_retired).await;
            app.store().close().await;
            let defs: Vec<_> = entries
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .into_iter()
                .map(|e| e.definition)
                .collect();
            out!("{}", aliquot_app::demo_catalog::catalog_csv(&defs))?;
            Ok(())
        }
    }
}

/// Files kept beside the database that a backup carries: the audit key.
fn backup_extras(db: &DbArgs) -> Vec<aliquot_store::backup::ExtraFile> {
    vec![aliquot_store::backup::ExtraFile {
        name: aliquot_store::backup::KEY_FILE,
        path: db.key_path(),
    }]
}

async fn backup(db: &DbArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    use aliquot_store::backup;
    let scans = db.data_dir.join("scans");
    let extras = backup_extras(db);
    let key = aliquot_store::keyfile::load(&db.key_path())?;
    let report = match db.config()? {
        DatabaseConfig::Sqlite { path } => {
            backup::backup_sqlite(&path, key.as_ref(), &scans, &extras, dir).await?
        }
        DatabaseConfig::Postgres { url } => {
            backup::backup_postgres(&url, key.as_ref(), &scans, &extras, dir).await?
        }
    };
    let m = &report.manifest;
    let bytes: u64 = m.files.iter().map(|f| f.size).sum();
    let scans = m
        .files
        .iter()
        .filter(|f| f.path.starts_with("scans/"))
        .count();
    outln!(
        "backup written to {}: {} database, {scans} scans, {} files, {bytes} bytes; schema \
         version {}; audit head {} {}",
        dir.display(),
        m.backend,
        m.files.len(),
        m.schema_version,
        m.audit_head.seq,
        m.audit_head.hash
    )?;
    let mut bad = false;
    if let Some(b) = report.chain.as_ref().and_then(|c| c.first_break.as_ref()) {
        let _ = outln!(
            "WARNING: the audit chain of the copy is BROKEN at event {}: {}",
            b.seq,
            b.problem
        );
        bad = true;
    }
    if !report.missing_scans.is_empty() {
        let _ = outln!(
            "WARNING: {} scans the database names are missing or damaged in {} and are not in \
             the backup: {}",
            report.missing_scans.len(),
            db.data_dir.join("scans").display(),
            report.missing_scans.join(", ")
        );
        bad = true;
    }
    if bad {
        std::process::exit(1);
    }
    Ok(())
}

async fn restore(db: &DbArgs, dir: &std::path::Path, force: bool) -> anyhow::Result<()> {
    use aliquot_store::backup;
    let scans = db.data_dir.join("scans");
    let extras = backup_extras(db);
    let config = db.config()?;
    let report = match &config {
        DatabaseConfig::Sqlite { path } => {
            backup::restore_sqlite(dir, path, &scans, &extras, force).await?
        }
        DatabaseConfig::Postgres { url } => {
            backup::restore_postgres(dir, url, &scans, &extras, force).await?
        }
    };
    if let Some(old) = &report.replaced {
        outln!("the database that was there is kept at {}", old.display())?;
    }
    // Opened as a server would open it (migrated when the backup is older), then checked.
    let app = open_app(db).await?;
    let actor = Actor::cli(&os_user());
    let integrity = app.check_database_integrity(&actor).await;
    // The backup's head must be in the restored chain (opening it may append: the key's
    // creation, for a backup taken before the chain was keyed).
    let head = &report.manifest.audit_head;
    let anchor = (head.seq >= 1).then(|| aliquot_store::Anchor {
        seq: head.seq,
        hash: head.hash.clone(),
    });
    let chain = app.verify_audit(&actor, anchor.as_ref()).await;
    app.store().close().await;
    if let Some(problems) = integrity.map_err(|e| anyhow::anyhow!("{e}"))?
        && !problems.is_empty()
    {
        bail!(
            "the restored database fails its integrity check: {}",
            problems.join("; ")
        );
    }
    let chain = chain.map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(b) = &chain.first_break {
        bail!(
            "the restored audit chain is BROKEN at event {}: {}",
            b.seq,
            b.problem
        );
    }
    outln!(
        "restored {} into {config:?}: {} scans; audit chain intact: {} events, head {} {} \
         (backup taken {})",
        dir.display(),
        report.scans,
        chain.rows,
        chain.head_seq,
        chain.head_hash,
        report.manifest.created_at
    )?;
    Ok(())
}

/// Imports entry by entry with a progress bar (hidden when stdout is not a terminal); stops
/// at the first invalid entry, naming it. Returns `(added, already present)`.
async fn import_catalog(
    app: &App,
    defs: Vec<aliquot_app::TestDefinition>,
) -> anyhow::Result<(usize, usize)> {
    let actor = Actor::cli(&os_user());
    let bar = if std::io::stdout().is_terminal() {
        indicatif::ProgressBar::new(defs.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let (panels, tests): (Vec<_>, Vec<_>) = defs.into_iter().partition(|d| d.is_panel());
    let (mut added, mut skipped) = (0, 0);
    for def in tests.into_iter().chain(panels) {
        let code = def.code.clone();
        let n = app
            .import_catalog(&actor, vec![def])
            .await
            .map_err(|e| anyhow::anyhow!("entry {code}: {e}"))?;
        if n == 0 {
            skipped += 1;
        } else {
            added += n;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((added, skipped))
}

async fn serve(db: &DbArgs, args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_json);
    let self_signed_pem = db.data_dir.join("tls-self-signed.pem");
    let tls = args.tls.config(&self_signed_pem)?;
    let app = open_app(db).await?;
    if args.demo {
        demo::seed(&app).await?;
    }
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("binding HTTP on {}", args.http))?;
    let addr = listener.local_addr()?;
    let mut limits = args.limits.config()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    limits.tls = tls;
    let open_files = aliquot_server::conn::raise_open_file_limit();
    if let Some(open_files) = open_files
        && let Some(cap) = limits.fit_to_file_limit(open_files)
    {
        tracing::warn!(
            open_files,
            max_connections = cap,
            "--max-connections lowered to fit the open-file limit (raise it with ulimit -n or LimitNOFILE=)"
        );
    }
    tracing::info!(
        http = %addr,
        max_connections = limits.max_connections,
        max_connections_per_ip = limits.max_connections_per_ip,
        tls = limits.tls.is_some(),
        database = app.store().backend().as_str(),
        "aliquot is serving"
    );
    // One shutdown signal for every listener.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        aliquot_server::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    // Interface message retention, hourly.
    let retention = {
        let app = app.clone();
        let stop = stopped();
        tokio::spawn(async move {
            let mut hourly = tokio::time::interval(Duration::from_secs(3600));
            let work = async {
                loop {
                    hourly.tick().await;
                    match app.purge_interface_messages().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(
                            messages = n,
                            "interface message content past its retention removed"
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "interface message retention did not run")
                        }
                    }
                }
            };
            tokio::select! {
                () = work => {}
                () = stop => {}
            }
        })
    };
    let mllp = tokio::net::TcpListener::bind(args.mllp)
        .await
        .with_context(|| format!("binding MLLP on {}", args.mllp))?;
    let mllp_addr = mllp.local_addr()?;
    tracing::info!(mllp = %mllp_addr, "HL7 v2 over MLLP is served");
    let mllp_task = tokio::spawn(aliquot_connect::serve_mllp(
        mllp,
        app.clone(),
        aliquot_connect::MllpConfig::default(),
        stopped(),
    ));
    let astm = tokio::net::TcpListener::bind(args.astm)
        .await
        .with_context(|| format!("binding ASTM on {}", args.astm))?;
    let astm_addr = astm.local_addr()?;
    tracing::info!(astm = %astm_addr, "ASTM E1381/E1394 over TCP is served");
    // Instruments that listen: connected out to, and served like the others.
    let connect_out = tokio::spawn(aliquot_connect::run_connect_out(
        app.clone(),
        Duration::from_secs(10),
        stopped(),
    ));
    let mut serial_tasks = Vec::new();
    #[cfg(unix)]
    for path in &args.astm_serial {
        let task = tokio::spawn({
            let (path, app, stop) = (path.clone(), app.clone(), stopped());
            let baud = args.astm_baud;
            async move {
                aliquot_connect::astm_listener::serve_astm_serial(
                    &path,
                    baud,
                    app,
                    aliquot_connect::AstmConfig::default(),
                    stop,
                )
                .await
                .with_context(|| format!("serving ASTM on {}", path.display()))
            }
        });
        tracing::info!(line = %path.display(), baud = args.astm_baud, "ASTM on a serial line is served");
        serial_tasks.push(task);
    }
    let astm_task = tokio::spawn(aliquot_connect::serve_astm(
        astm,
        app.clone(),
        aliquot_connect::AstmConfig::default(),
        stopped(),
    ));
    // Released and corrected results leave for the registered destinations.
    let mut outbox_config = aliquot_connect::OutboxConfig::default();
    if let Some(lab) = app
        .store()
        .setting("lab.name")
        .await?
        .map(|s| s.value)
        .filter(|v| !v.trim().is_empty())
    {
        outbox_config.sending_facility = lab;
    }
    let outbox_task = tokio::spawn(aliquot_connect::run_outbox(
        app.clone(),
        outbox_config,
        stopped(),
    ));
    // The banner is a courtesy: a server whose standard output is closed keeps serving.
    let _ = outln!(
        "Aliquot is running at {scheme}://{addr}/ (API: {scheme}://{addr}/api/v1/openapi.json)"
    );
    if args.tls.tls_self_signed {
        let _ = outln!(
            "TLS with a self-signed certificate for {}; trust {} (e.g. curl --cacert)",
            args.tls.tls_names.join(", "),
            self_signed_pem.display()
        );
    }
    let _ = outln!("HL7 v2 over MLLP at {mllp_addr}");
    let _ = outln!("ASTM over TCP at {astm_addr}");
    if args.demo {
        let _ = demo::print_logins(scheme, addr);
    }
    if app.store().list_users().await?.is_empty() {
        let _ = outln!(
            "No users yet. Create the first administrator with:\n  aliquot user add --username NAME --role admin --password-stdin"
        );
    }
    aliquot_server::serve_with(app, listener, stopped(), limits)
        .await
        .context("serving HTTP")?;
    mllp_task
        .await
        .context("the MLLP listener")?
        .context("serving MLLP")?;
    astm_task
        .await
        .context("the ASTM listener")?
        .context("serving ASTM")?;
    for task in serial_tasks {
        task.await.context("an ASTM serial line")??;
    }
    let _ = connect_out.await;
    let _ = retention.await;
    outbox_task.await.context("the outbox sender")?;
    tracing::info!("stopped cleanly");
    Ok(())
}

#[allow(dead_code)]
fn ensure(cond: bool, msg: &str) -> anyhow::Result<()> {
    if !cond {
        bail!("{msg}");
    }
    Ok(())
}
