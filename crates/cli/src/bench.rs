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
        .json(&json!({"username": "bench-admin", "password": "benchmark-password-1"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = token["token"].as_str().context("no token")?.to_owned();

    let warmup = (args.requests / 20).max(1);
    let send = {
        let client = client.clone();
        let base = base.clone();
        let token = token.clone();
        move |i: usize| {
            let client = client.clone();
            let base = base.clone();
            let token = token.clone();
            async move {
                let req = match args.scenario {
                    Scenario::AuditedWrite => {
                        client.put(format!("{base}/api/v1/settings/lab.name")).json(
                            &json!({"value": format!("Bench Lab {i}"), "reason": "benchmark run"}),
                        )
                    }
                    Scenario::AuthenticatedRead => client.get(format!("{base}/api/v1/auth/me")),
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
    run_load(&send, warmup, args.concurrency).await?;
    let started = Instant::now();
    let mut latencies = run_load(&send, args.requests, args.concurrency).await?;
    let elapsed = started.elapsed();

    let _ = stop_tx.send(());
    server.await??;
    if let Some(url) = pg_url {
        use sqlx::migrate::MigrateDatabase;
        let _ = sqlx::Postgres::force_drop_database(&url).await;
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }

    latencies.sort_unstable();
    let pct = |p: f64| {
        let idx = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[idx].as_secs_f64() * 1000.0
    };
    let throughput = args.requests as f64 / elapsed.as_secs_f64();
    let name = match args.scenario {
        Scenario::AuditedWrite => "audited-write",
        Scenario::AuthenticatedRead => "authenticated-read",
    };
    let backend = if args.postgres.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    println!(
        "{name} on {backend}: {} requests, concurrency {}: {throughput:.0} req/s, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.requests,
        args.concurrency,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0),
    );
    println!(
        "{}",
        json!({"bench": name, "backend": backend, "requests": args.requests, "concurrency": args.concurrency,
               "throughput_rps": throughput.round(), "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99), "max_ms": pct(1.0)})
    );
    Ok(())
}

async fn run_load<F, Fut>(
    send: &F,
    total: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Duration>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Duration>> + Send + 'static,
{
    use futures_util::StreamExt;
    let results: Vec<anyhow::Result<Duration>> = futures_util::stream::iter(0..total)
        .map(|i| tokio::spawn(send(i)))
        .buffer_unordered(concurrency)
        .map(|r| r.map_err(anyhow::Error::from).and_then(|x| x))
        .collect()
        .await;
    results.into_iter().collect()
}
